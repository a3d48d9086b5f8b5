//! How big the demo's transformer is, so that orderly charging matters.
//!
//! - Households: one per parking space, with a diversified evening peak of
//!   [`HOUSEHOLD_PEAK_KW`] each, shaped over the day by [`BASE_LOAD_SHAPE`] (a winter weekday of
//!   a northern Chinese residential feeder: low at night, morning shoulder, peak 19:00–21:00).
//! - The rating leaves the cars, at the households' evening peak, [`EVENING_SHARE`] of what they
//!   would draw uncontrolled (every car at full rate from arrival, first demo day):
//!   `rating × pf = 0.35 × uncontrolled peak + base-load peak`, rounded up to 5 kVA. At night the
//!   households draw less, so the cars get more: that valley is where orderly charging puts them.
//!
//! For the default 60 chargers and days (from 2020-01-15) the first day's uncontrolled peak is
//! 148 kW (15-minute demand, at 17:15), so the transformer is 160 kVA: 54 kW for cars at
//! 19:00–21:00, up to 111 kW at night, against 60 × 7.04 = 422 kW of charger ratings.

/// Power factor of the community's load.
pub const POWER_FACTOR: f64 = 0.9;
/// Diversified evening peak per household (kW).
pub const HOUSEHOLD_PEAK_KW: f64 = 1.5;
/// Share of the uncontrolled EV peak the transformer leaves for cars at the base-load peak.
pub const EVENING_SHARE: f64 = 0.35;
/// Household load per local clock hour, as a fraction of its evening peak.
pub const BASE_LOAD_SHAPE: [f64; 24] = [
    0.45, 0.40, 0.38, 0.37, 0.37, 0.40, 0.50, 0.60, 0.60, 0.55, 0.55, 0.60, //
    0.62, 0.58, 0.55, 0.55, 0.60, 0.75, 0.90, 1.00, 1.00, 0.92, 0.75, 0.58,
];

/// The demo community's electrical facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    pub rating_kva: f64,
    pub power_factor: f64,
    /// Household base load per local clock hour (kW).
    pub base_load_kw: [f64; 24],
    /// What the cars would draw at the peak uncontrolled (first demo day, kW).
    pub uncontrolled_peak_kw: f64,
}

impl Sizing {
    /// Size the transformer for `chargers` households whose cars would peak at
    /// `uncontrolled_peak_kw` uncontrolled.
    pub fn for_community(chargers: usize, uncontrolled_peak_kw: f64) -> Self {
        let base_peak = HOUSEHOLD_PEAK_KW * chargers as f64;
        let base_load_kw = BASE_LOAD_SHAPE.map(|f| round1(f * base_peak));
        let needed_kw = EVENING_SHARE * uncontrolled_peak_kw + base_peak;
        let rating_kva = (needed_kw / POWER_FACTOR / 5.0).ceil() * 5.0;
        Self {
            rating_kva,
            power_factor: POWER_FACTOR,
            base_load_kw,
            uncontrolled_peak_kw,
        }
    }

    /// Capacity left for cars at local clock hour `hour` (kW).
    pub fn capacity_kw(&self, hour: usize) -> f64 {
        (self.rating_kva * self.power_factor - self.base_load_kw[hour % 24]).max(0.0)
    }

    /// The least capacity over the day (at the households' peak).
    pub fn min_capacity_kw(&self) -> f64 {
        (0..24)
            .map(|h| self.capacity_kw(h))
            .fold(f64::INFINITY, f64::min)
    }

    pub fn max_capacity_kw(&self) -> f64 {
        (0..24).map(|h| self.capacity_kw(h)).fold(0.0, f64::max)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evening_capacity_is_about_35_percent_of_the_uncontrolled_peak() {
        let s = Sizing::for_community(60, 250.0);
        // 0.35 × 250 + 90 = 177.5 kW → 197.2 kVA → 200 kVA.
        assert_eq!(s.rating_kva, 200.0);
        assert_eq!(s.base_load_kw[19], 90.0);
        assert!((s.min_capacity_kw() - 90.0).abs() < 1e-9);
        assert!((s.capacity_kw(3) - (180.0 - 33.3)).abs() < 1e-9);
        let share = s.min_capacity_kw() / 250.0;
        assert!((0.3..0.4).contains(&share), "{share}");
        assert!(s.max_capacity_kw() < 60.0 * 7.04 / 2.0);
    }
}
