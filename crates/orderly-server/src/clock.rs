//! The server's clock: real time, or real time accelerated (the demo and the end-to-end tests run
//! a day in minutes).
//!
//! Everything that stamps or plans in protocol time (the gateway's receive times, the
//! controller's plans, profile validity) reads this clock; connection liveness and call timeouts
//! stay on real time (`Instant`), since they are about sockets, not about the simulated day.

use jiff::{SignedDuration, Timestamp};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Protocol time at `origin`.
    start: Timestamp,
    origin: Instant,
    /// Protocol seconds per real second (1.0 = real time).
    speed: f64,
    /// Read the wall clock directly (keeps in step with NTP instead of drifting with `Instant`).
    wall: bool,
}

impl Clock {
    /// Real time.
    pub fn real() -> Self {
        Self {
            wall: true,
            ..Self::accelerated(Timestamp::now(), 1.0)
        }
    }

    /// A clock that reads `start` now and runs `speed` times faster than real time.
    pub fn accelerated(start: Timestamp, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "clock speed must be positive"
        );
        Self {
            start,
            origin: Instant::now(),
            speed,
            wall: false,
        }
    }

    pub fn now(&self) -> Timestamp {
        if self.wall {
            return Timestamp::now();
        }
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.start
            .saturating_add(SignedDuration::from_secs_f64(elapsed))
            .unwrap_or(self.start)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Real time until protocol time `at` (zero if it has passed).
    pub fn real_until(&self, at: Timestamp) -> std::time::Duration {
        let protocol = at.duration_since(self.now()).as_secs_f64();
        std::time::Duration::from_secs_f64((protocol / self.speed).max(0.0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::real()
    }
}
