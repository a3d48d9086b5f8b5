//! Shared counters and round-trip histograms, written by every connection task, and the JSON
//! report built from them at the end of a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Longest round trip the histograms hold (longer ones are clamped): above every call timeout.
const MAX_RTT_US: u64 = 3_600_000_000;

/// A relaxed counter: totals are read once at the end, after the tasks have stopped.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed) + n
    }
    pub fn incr(&self) -> u64 {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything the tasks count.
#[derive(Debug)]
pub struct Stats {
    pub attempted: Counter,
    pub established: Counter,
    pub failed: Counter,
    /// Established connections that ended before the generator stopped them.
    pub dropped: Counter,
    /// Connections open right now (the gauge behind "connections held").
    open: AtomicU64,
    /// Connections that finished their attempt (boot answered, refused or failed).
    settled: Counter,
    all_settled: Notify,
    expected: u64,

    pub boot_accepted: Counter,
    pub boot_pending: Counter,
    pub boot_rejected: Counter,
    pub boot_errors: Counter,

    pub sent: Counter,
    pub answered: Counter,
    pub call_errors: Counter,
    pub timeouts: Counter,
    pub server_calls: Counter,
    pub bad_frames: Counter,
    /// Scheduled sends that were due while the previous CALL was still unanswered.
    pub late_sends: Counter,

    pub steady_sent: Counter,
    pub steady_answered: Counter,
    pub steady_errors: Counter,
    pub steady_timeouts: Counter,
    /// True while the steady window is open: messages sent then feed the steady figures.
    steady: AtomicBool,
    steady_start: OnceLock<Instant>,
    slice_len: Duration,

    rtt: Mutex<Histogram<u64>>,
    /// The steady window cut into slices of `slice_len` (by send time), to show whether slow
    /// round trips are spread out or bunched (a pause, a compaction, a burst).
    slices: Mutex<Vec<Histogram<u64>>>,
    boot_rtt: Mutex<Histogram<u64>>,
    failures: Mutex<BTreeMap<String, u64>>,
    error_codes: Mutex<BTreeMap<String, u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_RTT_US, 3).expect("static histogram bounds are valid")
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(key.to_owned()).or_default() += 1;
}

fn record(h: &Mutex<Histogram<u64>>, rtt: Duration) {
    let us = u64::try_from(rtt.as_micros())
        .unwrap_or(MAX_RTT_US)
        .clamp(1, MAX_RTT_US);
    h.lock()
        .unwrap_or_else(|e| e.into_inner())
        .saturating_record(us);
}

impl Stats {
    /// Counters for a run of `expected` connections whose steady window is cut into `slices`
    /// slices of `slice_len` each.
    pub fn new(expected: u64, slice_len: Duration, slices: usize) -> Self {
        Self {
            attempted: Counter::default(),
            established: Counter::default(),
            failed: Counter::default(),
            dropped: Counter::default(),
            open: AtomicU64::new(0),
            settled: Counter::default(),
            all_settled: Notify::new(),
            expected,
            boot_accepted: Counter::default(),
            boot_pending: Counter::default(),
            boot_rejected: Counter::default(),
            boot_errors: Counter::default(),
            sent: Counter::default(),
            answered: Counter::default(),
            call_errors: Counter::default(),
            timeouts: Counter::default(),
            server_calls: Counter::default(),
            bad_frames: Counter::default(),
            late_sends: Counter::default(),
            steady_sent: Counter::default(),
            steady_answered: Counter::default(),
            steady_errors: Counter::default(),
            steady_timeouts: Counter::default(),
            steady: AtomicBool::new(false),
            steady_start: OnceLock::new(),
            slice_len: if slice_len.is_zero() {
                Duration::from_secs(1)
            } else {
                slice_len
            },
            rtt: Mutex::new(histogram()),
            slices: Mutex::new((0..slices.max(1)).map(|_| histogram()).collect()),
            boot_rtt: Mutex::new(histogram()),
            failures: Mutex::new(BTreeMap::new()),
            error_codes: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn opened(&self) {
        self.established.incr();
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// A connection attempt failed before or during the handshake; `reason` is a short class.
    pub fn connect_failed(&self, reason: &str) {
        self.failed.incr();
        bump(&self.failures, reason);
    }

    /// Something went wrong after the handshake (kept apart from connect failures in the report).
    pub fn note_failure(&self, reason: &str) {
        bump(&self.failures, reason);
    }

    pub fn note_error_code(&self, code: &str) {
        bump(&self.error_codes, code);
    }

    /// One connection finished its attempt (booted, refused or failed).
    pub fn settle(&self) {
        if self.settled.incr() == self.expected {
            // `notify_one` keeps a permit, so a waiter that arrives late still wakes.
            self.all_settled.notify_one();
        }
    }

    pub fn settled(&self) -> u64 {
        self.settled.get()
    }

    /// Resolves once every expected connection has settled.
    pub async fn wait_all_settled(&self) {
        if self.settled.get() >= self.expected {
            return;
        }
        self.all_settled.notified().await;
    }

    pub fn set_steady(&self, on: bool) {
        if on {
            let _ = self.steady_start.set(Instant::now());
        }
        self.steady.store(on, Ordering::SeqCst);
    }

    pub fn in_steady(&self) -> bool {
        self.steady.load(Ordering::Relaxed)
    }

    /// Records the round trip of a steady-window CALL sent at `sent`.
    pub fn record_rtt(&self, rtt: Duration, sent: Instant) {
        record(&self.rtt, rtt);
        let start = *self.steady_start.get_or_init(|| sent);
        let index =
            (sent.saturating_duration_since(start).as_nanos() / self.slice_len.as_nanos()) as usize;
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        let last = slices.len() - 1;
        let us = u64::try_from(rtt.as_micros())
            .unwrap_or(MAX_RTT_US)
            .clamp(1, MAX_RTT_US);
        slices[index.min(last)].saturating_record(us);
    }

    /// p99 round trip of each slice of the steady window, in ms.
    pub fn slice_p99_ms(&self) -> Vec<f64> {
        self.slices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|h| RttSummary::of(h).p99_ms)
            .collect()
    }

    pub fn record_boot_rtt(&self, rtt: Duration) {
        record(&self.boot_rtt, rtt);
    }

    pub fn rtt_summary(&self) -> RttSummary {
        RttSummary::of(&self.rtt.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn boot_rtt_summary(&self) -> RttSummary {
        RttSummary::of(&self.boot_rtt.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn error_codes(&self) -> BTreeMap<String, u64> {
        self.error_codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Round-trip percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttSummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl RttSummary {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// The JSON printed at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub settings: ReportSettings,
    pub timing: Timing,
    pub connections: Connections,
    pub boot: Boot,
    pub messages: Messages,
    pub steady: Steady,
    pub server: Option<ServerMemory>,
    pub loadgen: LoadgenFacts,
    /// Reasons of failed connections and of errors after the handshake, with counts.
    pub failures: BTreeMap<String, u64>,
    /// CALLERROR codes received, with counts.
    pub call_error_codes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportSettings {
    pub connections: usize,
    pub rate_per_s: f64,
    pub interval_s: f64,
    pub steady_s: f64,
    pub source_addrs: Vec<String>,
    pub id_first: String,
    pub id_last: String,
    pub basic_auth: bool,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// From the first connect to the moment every connection had settled (or the ramp timeout).
    pub ramp_s: f64,
    pub all_settled: bool,
    /// Pause between the end of the ramp and the steady window.
    pub warmup_s: f64,
    pub steady_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Open at the end of the steady window.
    pub held: u64,
    /// Open at the start of the steady window.
    pub held_at_steady_start: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub accepted: u64,
    pub pending: u64,
    pub rejected: u64,
    pub errors: u64,
    pub rtt: RttSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    /// All CALLs (boots included), over the whole run.
    pub sent: u64,
    pub answered: u64,
    pub call_errors: u64,
    pub timeouts: u64,
    pub bad_frames: u64,
    pub server_calls: u64,
    pub late_sends: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Steady {
    /// Heartbeat/MeterValues (or boot retries) sent during the steady window.
    pub sent: u64,
    pub answered: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub messages_per_second: f64,
    pub rtt: RttSummary,
    /// p99 round trip per slice of the steady window (slice = one message interval).
    pub rtt_p99_by_slice_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub rss_before_kib: Option<u64>,
    pub rss_steady_kib: Option<u64>,
    /// (steady − before) / connections held.
    pub kib_per_connection: Option<f64>,
    /// CPU used by the server during the steady window, in percent of one core.
    pub cpu_steady_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadgenFacts {
    pub open_files_limit: u64,
    pub rss_steady_kib: Option<u64>,
    /// CPU used by the generator during the steady window, in percent of one core.
    pub cpu_steady_percent: Option<f64>,
    pub worker_threads: usize,
}

/// CPU used between two readings over `wall`, in percent of one core (one decimal).
pub fn cpu_percent(
    before: Option<Duration>,
    after: Option<Duration>,
    wall: Duration,
) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if !wall.is_zero() && a >= b => {
            Some(((a - b).as_secs_f64() / wall.as_secs_f64() * 1000.0).round() / 10.0)
        }
        _ => None,
    }
}

/// (steady − before) / held, rounded to 0.1 KiB; `None` without both readings or connections.
pub fn per_connection_kib(before: Option<u64>, steady: Option<u64>, held: u64) -> Option<f64> {
    match (before, steady) {
        (Some(b), Some(s)) if held > 0 => {
            Some(((s as f64 - b as f64) / held as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let stats = Stats::new(1, Duration::from_secs(10), 1);
        stats.set_steady(true);
        let now = Instant::now();
        for ms in 1..=100u64 {
            stats.record_rtt(Duration::from_millis(ms), now);
        }
        let s = stats.rtt_summary();
        assert_eq!(s.count, 100);
        // hdrhistogram keeps 3 significant digits.
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn slices_by_send_time() {
        let stats = Stats::new(1, Duration::from_secs(10), 3);
        stats.set_steady(true);
        let start = Instant::now();
        stats.record_rtt(Duration::from_millis(1), start);
        stats.record_rtt(Duration::from_millis(50), start + Duration::from_secs(12));
        // Past the last slice (sent at the very end of the window): folded into the last one.
        stats.record_rtt(Duration::from_millis(7), start + Duration::from_secs(45));
        let p99 = stats.slice_p99_ms();
        assert_eq!(p99.len(), 3);
        assert!((p99[0] - 1.0).abs() < 0.01, "{p99:?}");
        assert!((p99[1] - 50.0).abs() < 0.1, "{p99:?}");
        assert!((p99[2] - 7.0).abs() < 0.01, "{p99:?}");
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let s = Stats::new(1, Duration::from_secs(10), 1).rtt_summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.p99_ms, 0.0);
    }

    #[tokio::test]
    async fn settling_every_connection_wakes_the_waiter() {
        let stats = std::sync::Arc::new(Stats::new(3, Duration::from_secs(10), 1));
        let s2 = stats.clone();
        let waiter = tokio::spawn(async move { s2.wait_all_settled().await });
        stats.settle();
        stats.settle();
        stats.settle();
        waiter.await.unwrap();
        assert_eq!(stats.settled(), 3);
        // A waiter arriving after the fact returns at once.
        stats.wait_all_settled().await;
    }

    #[test]
    fn gauge_and_failure_classes() {
        let stats = Stats::new(2, Duration::from_secs(10), 1);
        stats.opened();
        stats.opened();
        stats.closed();
        assert_eq!(stats.open_now(), 1);
        assert_eq!(stats.established.get(), 2);
        stats.connect_failed("http 401");
        stats.connect_failed("http 401");
        assert_eq!(stats.failures().get("http 401"), Some(&2));
        assert_eq!(stats.failed.get(), 2);
    }

    #[test]
    fn cpu_share_of_one_core() {
        let s = Duration::from_secs;
        assert_eq!(cpu_percent(Some(s(10)), Some(s(40)), s(60)), Some(50.0));
        assert_eq!(cpu_percent(None, Some(s(40)), s(60)), None);
        assert_eq!(cpu_percent(Some(s(1)), Some(s(2)), Duration::ZERO), None);
    }

    #[test]
    fn per_connection_memory() {
        assert_eq!(
            per_connection_kib(Some(1000), Some(21_000), 1000),
            Some(20.0)
        );
        assert_eq!(per_connection_kib(Some(1000), None, 1000), None);
        assert_eq!(per_connection_kib(Some(1000), Some(2000), 0), None);
    }
}
