//! The demo's running figures: load against capacity, cars, energy, cost, peaks.
//!
//! The load is what the virtual charge points report drawing (their `Power` events): the sum of
//! each charger's latest draw, stamped with protocol time when the event arrives. Energy and cost
//! integrate each charger's draw over protocol time, priced at the Beijing time-of-use band in
//! force (emergency sessions at the community's emergency price).
//!
//! Peaks and the check against capacity use 15-minute average demand, the interval a utility's
//! demand meter integrates over (and the controller's slot): instantaneous sums would count the
//! virtual chargers' timer jitter — at 1440× one real millisecond is 1.4 protocol seconds, so when
//! the base load steps up on the hour, the chargers stepping down arrive a few protocol seconds
//! apart. Instantaneous excesses are still recorded (how long, how much) and reported.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use jiff::SignedDuration;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use orderly_sim::tariff::Tariff;

use super::replay::Uncontrolled;
use super::sizing::Sizing;

/// Load above capacity by less than this (kW) is rounding (limits are rounded down to 0.1 A,
/// meters to whole W), not an excess.
pub const TOLERANCE_KW: f64 = 0.05;
/// Demand interval (protocol seconds).
pub const INTERVAL_SECS: i64 = 900;

#[derive(Debug, Default, Clone)]
struct ChargerLive {
    kw: f64,
    since: Option<Timestamp>,
    plugged: bool,
    emergency: bool,
}

/// Running totals of the demo.
pub struct Tracker {
    tz: TimeZone,
    tariff: Tariff,
    emergency_price: f64,
    sizing: Sizing,
    uncontrolled: Uncontrolled,
    start: Timestamp,
    chargers: HashMap<String, ChargerLive>,
    load_kw: f64,
    energy_kwh: f64,
    cost_cny: f64,
    /// Energy per demand interval not yet complete (index since `start` → kWh).
    intervals: BTreeMap<i64, f64>,
    /// Highest 15-minute demand: (kW, interval start, capacity then).
    peak: Option<(f64, Timestamp, f64)>,
    /// Highest 15-minute demand − capacity (kW) and the interval's start.
    worst_excess: Option<(f64, Timestamp)>,
    /// The last complete interval: (demand kW, capacity kW).
    last_interval: Option<(f64, f64)>,
    /// Instantaneous draw above capacity: since when (now), total protocol seconds, worst kW.
    over_since: Option<Timestamp>,
    over_secs: f64,
    over_max_kw: f64,
    /// Number of instantaneous excesses and the longest (protocol seconds).
    over_episodes: usize,
    over_longest_secs: f64,
    sessions_ended: usize,
    delivered_ended_kwh: f64,
    wanted_ended_kwh: f64,
    ended_full: usize,
    /// Cars that left with at least 95 % of what they wanted.
    ended_95: usize,
    plugged_total: usize,
    /// Emergency sessions: plugged in, left, delivered and wanted by those that left.
    emergencies: (usize, usize, f64, f64),
}

impl Tracker {
    pub fn new(
        start: Timestamp,
        tz: TimeZone,
        tariff: Tariff,
        emergency_price: f64,
        sizing: Sizing,
        uncontrolled: Uncontrolled,
    ) -> Self {
        Self {
            tz,
            tariff,
            emergency_price,
            sizing,
            uncontrolled,
            start,
            chargers: HashMap::new(),
            load_kw: 0.0,
            energy_kwh: 0.0,
            cost_cny: 0.0,
            intervals: BTreeMap::new(),
            peak: None,
            worst_excess: None,
            last_interval: None,
            over_since: None,
            over_secs: 0.0,
            over_max_kw: 0.0,
            over_episodes: 0,
            over_longest_secs: 0.0,
            sessions_ended: 0,
            delivered_ended_kwh: 0.0,
            wanted_ended_kwh: 0.0,
            ended_full: 0,
            ended_95: 0,
            plugged_total: 0,
            emergencies: (0, 0, 0.0, 0.0),
        }
    }

    /// Capacity for cars at protocol time `t` (kW).
    pub fn capacity_at(&self, t: Timestamp) -> f64 {
        let hour = t.to_zoned_datetime(self.tz.clone()).hour();
        self.sizing.capacity_kw(hour as usize)
    }

    /// Integrate a charger's current draw up to `now`.
    fn settle(&mut self, charger: &str, now: Timestamp) {
        let Some(live) = self.chargers.get_mut(charger) else {
            return;
        };
        let Some(since) = live.since else {
            live.since = Some(now);
            return;
        };
        if now <= since {
            return;
        }
        let (kw, emergency) = (live.kw, live.emergency);
        live.since = Some(now);
        if kw <= 0.0 {
            return;
        }
        self.energy_kwh += kw * now.duration_since(since).as_secs_f64() / 3600.0;
        // Priced minute by minute: a band boundary can fall inside a long interval; each minute
        // lies in one demand interval (the start is on a whole minute).
        let mut t = since;
        while t < now {
            let next_minute =
                Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(60) + 60)
                    .unwrap_or(now)
                    .min(now);
            let hours = next_minute.duration_since(t).as_secs_f64() / 3600.0;
            let price = if emergency {
                self.emergency_price
            } else {
                self.tariff
                    .price_at(t.to_zoned_datetime(self.tz.clone()).datetime())
            };
            self.cost_cny += kw * hours * price;
            *self.intervals.entry(self.interval_of(t)).or_default() += kw * hours;
            t = next_minute;
        }
    }

    /// A car plugged in at `charger`.
    pub fn plugged(&mut self, charger: &str, emergency: bool, now: Timestamp) {
        self.settle(charger, now);
        let live = self.chargers.entry(charger.to_owned()).or_default();
        live.plugged = true;
        live.emergency = emergency;
        live.since.get_or_insert(now);
        self.plugged_total += 1;
        if emergency {
            self.emergencies.0 += 1;
        }
    }

    /// A car left `charger` with `delivered` of the `wanted` kWh.
    pub fn unplugged(&mut self, charger: &str, delivered: f64, wanted: f64, now: Timestamp) {
        self.power(charger, 0.0, now);
        if let Some(live) = self.chargers.get_mut(charger) {
            if live.emergency {
                self.emergencies.1 += 1;
                self.emergencies.2 += delivered;
                self.emergencies.3 += wanted;
            }
            live.plugged = false;
            live.emergency = false;
        }
        self.sessions_ended += 1;
        self.delivered_ended_kwh += delivered;
        self.wanted_ended_kwh += wanted;
        // Within 1 % or 0.1 kWh of the wish counts as full (meters report whole Wh).
        if delivered + (0.01 * wanted).max(0.1) >= wanted {
            self.ended_full += 1;
        }
        if delivered >= 0.95 * wanted {
            self.ended_95 += 1;
        }
    }

    /// `charger` now draws `kw`.
    pub fn power(&mut self, charger: &str, kw: f64, now: Timestamp) {
        self.settle(charger, now);
        let live = self.chargers.entry(charger.to_owned()).or_default();
        live.since.get_or_insert(now);
        let before = live.kw;
        live.kw = kw.max(0.0);
        self.load_kw += live.kw - before;
        if self.load_kw.abs() < 1e-9 {
            self.load_kw = 0.0;
        }
        self.observe(now);
    }

    fn interval_of(&self, t: Timestamp) -> i64 {
        t.duration_since(self.start)
            .as_secs()
            .div_euclid(INTERVAL_SECS)
    }

    fn interval_start(&self, index: i64) -> Timestamp {
        self.start + SignedDuration::from_secs(index * INTERVAL_SECS)
    }

    /// Instantaneous check (recorded, not the headline figure; see the module doc).
    fn observe(&mut self, now: Timestamp) {
        let excess = self.load_kw - self.capacity_at(now);
        if excess > TOLERANCE_KW {
            self.over_max_kw = self.over_max_kw.max(excess);
            if self.over_since.is_none() {
                self.over_since = Some(now);
                self.over_episodes += 1;
            }
        } else if let Some(since) = self.over_since.take() {
            let secs = now.duration_since(since).as_secs_f64();
            tracing::debug!(from = %since.to_zoned_datetime(self.tz.clone()).time(), secs, "instantaneous draw above capacity");
            self.over_secs += secs;
            self.over_longest_secs = self.over_longest_secs.max(secs);
        }
    }

    /// Bring energy and cost up to `now` (before printing) and close the demand intervals that
    /// ended.
    pub fn advance(&mut self, now: Timestamp) {
        let ids: Vec<String> = self.chargers.keys().cloned().collect();
        for id in ids {
            self.settle(&id, now);
        }
        self.observe(now);
        let current = self.interval_of(now);
        while let Some((&index, &kwh)) = self.intervals.first_key_value() {
            if index >= current {
                break;
            }
            self.intervals.remove(&index);
            let at = self.interval_start(index);
            let demand = kwh * 3600.0 / INTERVAL_SECS as f64;
            let cap = self.capacity_at(at);
            self.last_interval = Some((demand, cap));
            if self.peak.is_none_or(|(p, _, _)| demand > p) {
                self.peak = Some((demand, at, cap));
            }
            if self.worst_excess.is_none_or(|(e, _)| demand - cap > e) {
                self.worst_excess = Some((demand - cap, at));
            }
        }
    }

    pub fn load_kw(&self) -> f64 {
        self.load_kw
    }

    pub fn energy_kwh(&self) -> f64 {
        self.energy_kwh
    }

    /// Highest load − capacity seen so far (kW; negative when always under).
    pub fn worst_excess_kw(&self) -> f64 {
        self.worst_excess.map_or(0.0, |(e, _)| e)
    }

    fn local(&self, t: Timestamp) -> String {
        let z = t.to_zoned_datetime(self.tz.clone());
        let day = self.start.to_zoned_datetime(self.tz.clone()).date();
        let n = day.until(z.date()).map_or(0, |s| s.get_days()) + 1;
        format!("day {n} {:02}:{:02}", z.hour(), z.minute())
    }

    /// One summary line.
    pub fn line(&self, now: Timestamp) -> String {
        let plugged = self.chargers.values().filter(|c| c.plugged).count();
        let charging = self.chargers.values().filter(|c| c.kw > 0.0).count();
        let (peak, peak_at, peak_cap) = self.peak.unwrap_or((0.0, now, self.capacity_at(now)));
        let (unc, _) = self.uncontrolled.peak_until(now);
        let over = self.worst_excess_kw();
        let over = if over > TOLERANCE_KW {
            format!("OVER by {over:.1} kW")
        } else {
            "never over".to_owned()
        };
        format!(
            "[{}] load {:.1} of {:.1} kW | {plugged} plugged, {charging} charging | {:.1} kWh, {:.2} CNY | peak {peak:.1} kW (capacity {peak_cap:.1}) at {}, {over} | uncontrolled peak {unc:.1} kW",
            self.local(now),
            self.load_kw,
            self.capacity_at(now),
            self.energy_kwh,
            self.cost_cny,
            self.local(peak_at),
        )
    }

    /// The closing summary (several lines).
    pub fn report(&self, now: Timestamp) -> String {
        let mut out = String::new();
        let hours = now.duration_since(self.start).as_secs_f64() / 3600.0;
        let (peak, peak_at, peak_cap) = self.peak.unwrap_or((0.0, now, self.capacity_at(now)));
        let (unc, unc_at) = self.uncontrolled.peak_until(now);
        let unc_cap = self.capacity_at(unc_at);
        let _ = writeln!(
            out,
            "summary after {hours:.1} protocol hours (to {}):",
            self.local(now)
        );
        let _ = writeln!(
            out,
            "  cars plugged in: {}; left: {} ({} with all the energy they wanted, {} with at least 95 %)",
            self.plugged_total, self.sessions_ended, self.ended_full, self.ended_95
        );
        let _ = writeln!(
            out,
            "  energy delivered: {:.1} kWh (cars that left: {:.1} of {:.1} kWh wanted); uncontrolled would have drawn {:.1} kWh by now",
            self.energy_kwh,
            self.delivered_ended_kwh,
            self.wanted_ended_kwh,
            self.uncontrolled.energy_until(now),
        );
        let (e_in, e_left, e_got, e_wanted) = self.emergencies;
        let _ = writeln!(
            out,
            "  emergency requests: {e_in} plugged in, {e_left} left with {e_got:.1} of {e_wanted:.1} kWh wanted"
        );
        let avg = if self.energy_kwh > 0.0 {
            self.cost_cny / self.energy_kwh
        } else {
            0.0
        };
        let _ = writeln!(out, "  cost: {:.2} CNY ({avg:.3} CNY/kWh)", self.cost_cny);
        let _ = writeln!(
            out,
            "  peak load: {peak:.1} kW in the 15 minutes from {} (capacity then {peak_cap:.1} kW)",
            self.local(peak_at)
        );
        let _ = writeln!(
            out,
            "  max over capacity: {:.1} kW (15-minute demand){}",
            self.worst_excess_kw().max(0.0),
            match self.worst_excess {
                Some((e, at)) if e > TOLERANCE_KW =>
                    format!(", in the 15 minutes from {}", self.local(at)),
                _ => String::new(),
            }
        );
        let ongoing = self
            .over_since
            .map_or(0.0, |since| now.duration_since(since).as_secs_f64());
        let _ = writeln!(
            out,
            "  instantaneous draw above capacity: {:.0} protocol seconds in all, {} times, longest {:.0} s, at most {:.1} kW",
            self.over_secs + ongoing,
            self.over_episodes,
            self.over_longest_secs.max(ongoing),
            self.over_max_kw
        );
        let _ = write!(
            out,
            "  uncontrolled peak: {unc:.1} kW in the 15 minutes from {} (capacity then {unc_cap:.1} kW)",
            self.local(unc_at)
        );
        out
    }

    /// Minutes since the start (for tests).
    #[cfg(test)]
    fn at(&self, minutes: i64) -> Timestamp {
        self.start + SignedDuration::from_mins(minutes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::replay::{ReplaySpec, build, shanghai};

    fn tracker() -> Tracker {
        let tariff = Tariff::read(&orderly_sim::default_data_file(
            "tariffs/beijing-ev-tou-2016.json",
        ))
        .unwrap();
        let replay = build(
            &ReplaySpec {
                chargers: 2,
                from: "2020-01-15".parse().unwrap(),
                days: 1,
                demo_day: "2026-11-26".parse().unwrap(),
                tz: shanghai(),
                car_kw: None,
            },
            &[],
            &HashMap::new(),
        );
        Tracker::new(
            replay.start,
            shanghai(),
            tariff,
            1.5,
            Sizing::for_community(2, 14.08),
            replay.uncontrolled(),
        )
    }

    #[test]
    fn energy_cost_and_peaks_integrate_over_protocol_time() {
        let mut t = tracker();
        // Capacity: 2 households, 0.35 × 14.08 + 3 = 7.93 kW → 10 kVA → 9 kW − base load.
        // 20:00 local (minute 480 after noon): base load 3.0, capacity 6.0 kW.
        assert!((t.capacity_at(t.at(480)) - 6.0).abs() < 1e-9);
        t.plugged("A", false, t.at(420));
        t.power("A", 4.0, t.at(420));
        t.plugged("B", true, t.at(480));
        t.power("B", 3.0, t.at(480)); // 7 kW at 20:00 > 6 kW
        t.power("A", 2.0, t.at(490));
        t.advance(t.at(540));
        // A: 4 kW × 70 min + 2 kW × 50 min = 6.333 kWh at the 19:00–21:00 peak price (1.0044);
        // B: 3 kW × 60 min = 3 kWh at the emergency price.
        let a = 4.0 * 70.0 / 60.0 + 2.0 * 50.0 / 60.0;
        assert!((t.energy_kwh() - (a + 3.0)).abs() < 1e-9);
        assert!((t.cost_cny - (a * 1.0044 + 3.0 * 1.5)).abs() < 1e-9);
        // The 20:00–20:15 demand: A (4 kW × 10 min + 2 kW × 5 min) / 15 + B 3 kW = 6.333 kW
        // against 6.0: over by 0.333 (the instantaneous 7 kW lasted 10 minutes).
        let demand = (4.0 * 10.0 + 2.0 * 5.0) / 15.0 + 3.0;
        assert!((t.worst_excess_kw() - (demand - 6.0)).abs() < 1e-9);
        let line = t.line(t.at(540));
        assert!(line.starts_with("[day 1 21:00] load 5.0 of "), "{line}");
        assert!(line.contains("2 plugged, 2 charging"), "{line}");
        assert!(
            line.contains("peak 6.3 kW (capacity 6.0) at day 1 20:00"),
            "{line}"
        );
        assert!(line.contains("OVER by 0.3 kW"), "{line}");
        t.unplugged("B", 3.0, 3.0, t.at(540));
        t.unplugged("A", 6.0, 10.0, t.at(540));
        assert_eq!(t.load_kw(), 0.0);
        let report = t.report(t.at(600));
        assert!(
            report.contains("left: 2 (1 with all the energy"),
            "{report}"
        );
        assert!(report.contains("max over capacity: 0.3 kW"), "{report}");
        assert!(
            report.contains("emergency requests: 1 plugged in, 1 left with 3.0 of 3.0 kWh"),
            "{report}"
        );
        assert!(
            report.contains("above capacity: 600 protocol seconds in all, 1 times, longest 600 s, at most 1.0 kW"),
            "{report}"
        );
    }
}
