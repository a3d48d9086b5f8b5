//! Which cars come to which charger when: real residential sessions (the Norway data, read with
//! `orderly_sim::data`) mapped onto the demo's chargers and shifted to the demo's days.
//!
//! Rules (deterministic, so two runs show the same day):
//! - Demo day `k` (0-based) replays source day `from + k`: every session of any location that
//!   plugs in during that source day's *charging day*, 12:00 to 12:00 the next day (noon to noon,
//!   so the evening arrivals and the night they charge through are one day). Its clock times
//!   are kept and its date shifted by the constant `demo day 0 − from`; the data's naive
//!   Norwegian clock times are read as local time in the demo's community (Asia/Shanghai).
//! - Pooling all 12 locations gives about 90–130 sessions a day, more than a 60-space garage
//!   holds; sessions are placed in arrival order on the charger that has been free the longest
//!   (free = its previous car left at least [`TURNAROUND`] earlier), and a session that finds
//!   every charger busy is not replayed (counted in `not_placed`).
//! - A car's rate is its household's measured charging power capped at the charger's 7.04 kW
//!   (7.04 kW where the data says `NA`; `--car-kw` sets one rate for every car); the energy it wants is the recorded energy capped at
//!   what that rate delivers in its stay. Sessions under [`MIN_ENERGY_KWH`] or
//!   [`MIN_STAY_MINUTES`] are skipped (nothing to plan).
//! - Emergencies: on each demo day the `max(1, N / 20)` cars with the least laxity (stay minus
//!   the time needed at full rate) among those wanting at least 5 kWh ask for emergency fast
//!   charging — the cars that could least afford to wait.

use std::collections::HashMap;
use std::path::Path;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use orderly_sim::data::{SessionRow, UserRow};
use orderly_sim::error::DataError;

/// Rating of a demo charger: one phase, 220 V, 32 A.
pub const CHARGER_KW: f64 = 7.04;
/// A charger is free for the next car this long after the previous one left.
pub const TURNAROUND: SignedDuration = SignedDuration::from_mins(10);
pub const MIN_ENERGY_KWH: f64 = 0.5;
pub const MIN_STAY_MINUTES: i64 = 15;
/// Charging days start at this local clock hour.
pub const DAY_START_HOUR: i8 = 12;

/// One car's visit to one charger, in protocol time.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub session_id: String,
    pub id_tag: String,
    pub arrival: Timestamp,
    pub departure: Timestamp,
    /// What the car wants (kWh), feasible at `max_kw` within its stay.
    pub energy_kwh: f64,
    pub max_kw: f64,
    pub emergency: bool,
}

impl Visit {
    /// Hours the car stays.
    pub fn stay_hours(&self) -> f64 {
        self.departure.duration_since(self.arrival).as_secs_f64() / 3600.0
    }

    /// Hours of slack: stay minus the time it needs at full rate.
    pub fn laxity_hours(&self) -> f64 {
        self.stay_hours() - self.energy_kwh / self.max_kw
    }
}

/// The whole replay: each charger's visits in order.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Start of demo day 0 (noon local) — where the protocol clock starts.
    pub start: Timestamp,
    pub days: u32,
    pub tz: TimeZone,
    /// `chargers[i]`: the visits of charger i, by arrival.
    pub chargers: Vec<Vec<Visit>>,
    /// Sessions of the chosen days that found every charger busy.
    pub not_placed: usize,
    /// Sessions of the chosen days left out (no plug-out or energy, too short, too little energy).
    pub skipped: usize,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    pub chargers: usize,
    /// First source day (its charging day starts at noon).
    pub from: Date,
    pub days: u32,
    /// The demo's day 0 (its charging day starts at noon local).
    pub demo_day: Date,
    pub tz: TimeZone,
    /// Every car's maximum rate (kW, at most the charger's) instead of its household's measured
    /// charging power.
    pub car_kw: Option<f64>,
}

/// The demo's time zone: China has kept UTC+8 without daylight saving since 1991, so a fixed
/// offset is exact and needs no time-zone database on the machine.
pub fn shanghai() -> TimeZone {
    TimeZone::fixed(jiff::tz::offset(8))
}

/// Read the sessions and users files and build the replay.
pub fn read(spec: &ReplaySpec, sessions: &Path, users: &Path) -> Result<Replay, DataError> {
    let rows = orderly_sim::data::read_sessions(sessions)?;
    let users = orderly_sim::data::read_users(users)?;
    Ok(build(spec, &rows, &users))
}

/// Build the replay from parsed rows (see the module rules).
pub fn build(spec: &ReplaySpec, rows: &[SessionRow], users: &HashMap<String, UserRow>) -> Replay {
    let noon = Time::constant(DAY_START_HOUR, 0, 0, 0);
    let window_start = spec.from.to_datetime(noon);
    let window_end = window_start
        .checked_add(i64::from(spec.days).days())
        .unwrap_or(DateTime::MAX);
    let shift = spec.from.until(spec.demo_day).unwrap_or_default();
    let to_protocol = |t: DateTime| -> Option<Timestamp> {
        let shifted = t.checked_add(shift).ok()?;
        spec.tz.to_timestamp(shifted).ok()
    };
    let start = to_protocol(window_start).unwrap_or(Timestamp::UNIX_EPOCH);

    let mut skipped = 0;
    let mut candidates: Vec<(Visit, usize)> = Vec::new();
    for row in rows {
        let Some(plugin) = row.plugin else { continue };
        if plugin < window_start || plugin >= window_end {
            continue;
        }
        let (Some(plugout), Some(recorded)) = (row.plugout, row.energy_kwh) else {
            skipped += 1;
            continue;
        };
        let (Some(arrival), Some(departure)) = (to_protocol(plugin), to_protocol(plugout)) else {
            skipped += 1;
            continue;
        };
        let stay = departure.duration_since(arrival);
        if stay < SignedDuration::from_mins(MIN_STAY_MINUTES) || recorded < MIN_ENERGY_KWH {
            skipped += 1;
            continue;
        }
        let max_kw = spec
            .car_kw
            .or_else(|| users.get(&row.user_id).and_then(|u| u.charging_power_kw))
            .unwrap_or(CHARGER_KW)
            .min(CHARGER_KW);
        let energy_kwh = recorded.min(max_kw * stay.as_secs_f64() / 3600.0);
        let day = (window_start.duration_until(plugin).as_secs() / 86_400) as usize;
        candidates.push((
            Visit {
                session_id: row.session_id.clone(),
                id_tag: id_tag_for(&row.user_id),
                arrival,
                departure,
                energy_kwh,
                max_kw,
                emergency: false,
            },
            day,
        ));
    }
    // Arrival order; the session id breaks ties so the placement does not depend on file order.
    candidates.sort_by(|a, b| (a.0.arrival, &a.0.session_id).cmp(&(b.0.arrival, &b.0.session_id)));

    // Emergencies: per demo day, the least laxity among the cars wanting at least 5 kWh. Chosen
    // among the placed cars below, so count how many per day first.
    let mut chargers: Vec<Vec<(Visit, usize)>> = vec![Vec::new(); spec.chargers];
    let mut free_at: Vec<Option<Timestamp>> = vec![None; spec.chargers];
    let mut not_placed = 0;
    for (visit, day) in candidates {
        // The charger free the longest (never used counts as longest); lowest index on ties.
        let best = free_at
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_none_or(|f| f + TURNAROUND <= visit.arrival))
            .min_by_key(|(i, f)| (f.map_or(i64::MIN, |f| f.as_second()), *i))
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                free_at[i] = Some(visit.departure);
                chargers[i].push((visit, day));
            }
            None => not_placed += 1,
        }
    }
    let per_day = (spec.chargers / 20).max(1);
    for day in 0..spec.days as usize {
        let mut ranked: Vec<(usize, usize, f64)> = chargers
            .iter()
            .enumerate()
            .flat_map(|(c, visits)| {
                visits
                    .iter()
                    .enumerate()
                    .filter(|(_, (v, d))| *d == day && v.energy_kwh >= 5.0)
                    .map(move |(j, (v, _))| (c, j, v.laxity_hours()))
            })
            .collect();
        ranked.sort_by(|a, b| a.2.total_cmp(&b.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        for (c, j, _) in ranked.into_iter().take(per_day) {
            chargers[c][j].0.emergency = true;
        }
    }
    Replay {
        start,
        days: spec.days,
        tz: spec.tz.clone(),
        chargers: chargers
            .into_iter()
            .map(|v| v.into_iter().map(|(visit, _)| visit).collect())
            .collect(),
        not_placed,
        skipped,
    }
}

/// An OCPP id tag (≤ 20 printable ASCII) for a user of the data: the user id itself when it
/// fits (they are like `ASK_Plass15`), so the API shows whose car it is.
pub fn id_tag_for(user_id: &str) -> String {
    let clean: String = user_id
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(20)
        .collect();
    if clean.is_empty() {
        "DEMO".to_owned()
    } else {
        clean
    }
}

impl Replay {
    pub fn visits(&self) -> impl Iterator<Item = &Visit> {
        self.chargers.iter().flatten()
    }

    pub fn visit_count(&self) -> usize {
        self.chargers.iter().map(Vec::len).sum()
    }

    /// Every distinct id tag, sorted.
    pub fn id_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.visits().map(|v| v.id_tag.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// End of the last demo day.
    pub fn end(&self) -> Timestamp {
        self.start + SignedDuration::from_hours(24 * i64::from(self.days))
    }

    /// The uncontrolled load: every car at its full rate from arrival until it has its energy
    /// (or leaves), per minute from `start` to the last departure.
    pub fn uncontrolled(&self) -> Uncontrolled {
        let last = self
            .visits()
            .map(|v| v.departure)
            .max()
            .unwrap_or(self.start);
        let minutes = (last.duration_since(self.start).as_secs().max(0) / 60 + 1) as usize;
        let mut kw = vec![0.0; minutes];
        for v in self.visits() {
            let from = v.arrival.duration_since(self.start).as_secs_f64() / 60.0;
            let full_rate_minutes = v.energy_kwh / v.max_kw * 60.0;
            let to = (from + full_rate_minutes)
                .min(v.departure.duration_since(self.start).as_secs_f64() / 60.0);
            // Each minute gets the car's rate times the share of the minute it charges in.
            let mut m = from.floor().max(0.0);
            while m < to && (m as usize) < minutes {
                let covered = (m + 1.0).min(to) - m.max(from);
                kw[m as usize] += v.max_kw * covered.max(0.0);
                m += 1.0;
            }
        }
        Uncontrolled {
            start: self.start,
            kw,
        }
    }
}

/// Load of the uncontrolled counterfactual, per minute (average over the minute, kW).
#[derive(Debug, Clone)]
pub struct Uncontrolled {
    pub start: Timestamp,
    pub kw: Vec<f64>,
}

impl Uncontrolled {
    fn minute(&self, t: Timestamp) -> usize {
        (t.duration_since(self.start).as_secs().max(0) / 60) as usize
    }

    /// Highest 15-minute average demand among the intervals that ended by `until`, with the
    /// interval's start (the same measure as the demo's own peak).
    pub fn peak_until(&self, until: Timestamp) -> (f64, Timestamp) {
        let end = self.minute(until).min(self.kw.len());
        let mut best = (0.0, self.start);
        for (q, quarter) in self.kw[..end - end % 15].chunks(15).enumerate() {
            let avg = quarter.iter().sum::<f64>() / 15.0;
            if avg > best.0 {
                best = (avg, self.start + SignedDuration::from_mins(15 * q as i64));
            }
        }
        best
    }

    /// Highest 15-minute demand of the first day.
    pub fn first_day_peak(&self) -> f64 {
        self.peak_until(self.start + SignedDuration::from_hours(24))
            .0
    }

    /// Energy (kWh) the uncontrolled cars would have drawn from the start up to `until`.
    pub fn energy_until(&self, until: Timestamp) -> f64 {
        let end = self.minute(until).min(self.kw.len());
        self.kw[..end].iter().sum::<f64>() / 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, user: &str, plugin: &str, plugout: &str, kwh: f64) -> SessionRow {
        SessionRow {
            line: 2,
            location: "X".into(),
            user_id: user.into(),
            session_id: id.into(),
            plugin: Some(plugin.parse().unwrap()),
            plugout: Some(plugout.parse().unwrap()),
            energy_kwh: Some(kwh),
        }
    }

    fn users() -> HashMap<String, UserRow> {
        [("u1", Some(3.5)), ("u2", Some(11.0)), ("u3", None)]
            .into_iter()
            .map(|(id, kw)| {
                (
                    id.to_owned(),
                    UserRow {
                        line: 2,
                        user_id: id.into(),
                        charging_power_kw: kw,
                        battery_kwh: None,
                    },
                )
            })
            .collect()
    }

    fn spec(chargers: usize) -> ReplaySpec {
        ReplaySpec {
            chargers,
            from: "2020-01-15".parse().unwrap(),
            days: 1,
            demo_day: "2026-11-26".parse().unwrap(),
            tz: shanghai(),
            car_kw: None,
        }
    }

    #[test]
    fn sessions_are_shifted_capped_and_placed() {
        let rows = vec![
            // Before the charging day (morning): not replayed.
            row("a", "u1", "2020-01-15T08:00:00", "2020-01-15T09:00:00", 5.0),
            row(
                "b",
                "u1",
                "2020-01-15T18:00:00",
                "2020-01-16T07:00:00",
                20.0,
            ),
            // 11 kW household capped at the charger's 7.04 kW; 2 h at 7.04 = 14.08 kWh.
            row(
                "c",
                "u2",
                "2020-01-15T19:00:00",
                "2020-01-15T21:00:00",
                30.0,
            ),
            // No charger free (2 chargers busy): not placed.
            row(
                "d",
                "u3",
                "2020-01-15T20:00:00",
                "2020-01-16T06:00:00",
                10.0,
            ),
            // Too little energy: skipped.
            row("e", "u3", "2020-01-15T22:00:00", "2020-01-16T06:00:00", 0.1),
            // Charger of c is free again after 21:00 + turnaround.
            row(
                "f",
                "u3",
                "2020-01-15T21:30:00",
                "2020-01-16T06:00:00",
                10.0,
            ),
            // After the charging day: not replayed.
            row(
                "g",
                "u3",
                "2020-01-16T12:00:00",
                "2020-01-16T16:00:00",
                10.0,
            ),
        ];
        let replay = build(&spec(2), &rows, &users());
        assert_eq!(replay.start, "2026-11-26T04:00:00Z".parse().unwrap());
        assert_eq!(replay.not_placed, 1);
        assert_eq!(replay.skipped, 1);
        let ids: Vec<Vec<&str>> = replay
            .chargers
            .iter()
            .map(|c| c.iter().map(|v| v.session_id.as_str()).collect())
            .collect();
        assert_eq!(ids, vec![vec!["b"], vec!["c", "f"]]);
        let c = &replay.chargers[1][0];
        assert_eq!(c.arrival, "2026-11-26T11:00:00Z".parse().unwrap());
        assert_eq!(c.max_kw, CHARGER_KW);
        assert!((c.energy_kwh - 14.08).abs() < 1e-9);
        assert_eq!(replay.chargers[0][0].max_kw, 3.5);
        assert_eq!(replay.chargers[1][1].max_kw, CHARGER_KW);
        // One emergency per day for fewer than 40 chargers: c has no laxity at all.
        let emergencies: Vec<&str> = replay
            .visits()
            .filter(|v| v.emergency)
            .map(|v| v.session_id.as_str())
            .collect();
        assert_eq!(emergencies, vec!["c"]);
        assert_eq!(replay.id_tags(), vec!["u1", "u2", "u3"]);
    }

    #[test]
    fn uncontrolled_runs_every_car_at_full_rate_from_arrival() {
        let rows = vec![
            // 3.5 kW for 2 h from 18:00 (7 kWh).
            row("b", "u1", "2020-01-15T18:00:00", "2020-01-16T07:00:00", 7.0),
            // 7.04 kW from 19:00 until it leaves at 20:30 (wants 30, gets 10.56).
            row(
                "c",
                "u2",
                "2020-01-15T19:00:00",
                "2020-01-15T20:30:00",
                30.0,
            ),
        ];
        let replay = build(&spec(2), &rows, &users());
        let u = replay.uncontrolled();
        let at = |hh: i64, mm: i64| replay.start + SignedDuration::from_mins((hh - 12) * 60 + mm);
        assert!((u.peak_until(at(19, 0)).0 - 3.5).abs() < 1e-9);
        let (peak, when) = u.peak_until(at(23, 0));
        assert!((peak - 10.54).abs() < 1e-9);
        assert_eq!(when, at(19, 0));
        assert!((u.energy_until(at(23, 0)) - (7.0 + 10.56)).abs() < 1e-6);
        assert!((u.first_day_peak() - 10.54).abs() < 1e-9);
    }

    #[test]
    fn the_real_data_fills_a_60_space_garage() {
        let replay = read(
            &ReplaySpec {
                days: 2,
                ..spec(60)
            },
            &orderly_sim::default_data_file("norway-residential/sessions.csv"),
            &orderly_sim::default_data_file("norway-residential/users.csv"),
        )
        .unwrap();
        let count = replay.visit_count();
        assert!(count >= 100, "only {count} visits in two days");
        assert!(replay.chargers.iter().all(|c| !c.is_empty()));
        assert_eq!(replay.visits().filter(|v| v.emergency).count(), 2 * 3);
        for c in &replay.chargers {
            for pair in c.windows(2) {
                assert!(pair[0].departure + TURNAROUND <= pair[1].arrival);
            }
        }
        // All cars at full rate at once would far exceed the 35 % the demo sizes for.
        assert!(replay.uncontrolled().first_day_peak() > 100.0);
    }
}
