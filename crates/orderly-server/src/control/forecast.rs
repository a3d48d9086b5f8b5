//! The community's forecast of arrivals, learned from its completed transactions
//! (`[control] forecast_days`): the controller task learns it at start, when the community's
//! chargers change, and once a (protocol-time) day, and hands it to the controller as
//! `Input::Forecast`, whose re-plans then keep room for the cars expected later.
//!
//! The window is the `forecast_days` whole local days before today (today's sessions are not
//! finished). Each completed transaction of a charger now in the community that started in it
//! becomes one `HistoricSession`: the type (weekday or weekend) of its local arrival day, its
//! local arrival slot of the day, its stay in slots (rounded, at least 1), the energy it took
//! (meter stop − meter start) and its charger's rated maximum power. Every day of the window
//! from the first on which the community charged a car counts for `DaysObserved`, with
//! sessions or not (a community younger than the window does not divide by days it did not
//! have). Rows that cannot be right (energy negative or not finite, the stop before the start,
//! more energy than the charger could give in the stay, a charger no longer in the community)
//! are skipped and counted.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use orderly_control::{CommunitySpec, DaysObserved, Forecast, HistoricSession, day_type};
use orderly_core::ChargePointId;
use orderly_store::CompletedTransaction;
use std::collections::HashMap;

/// A learned forecast and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub forecast: Forecast,
    /// Sessions learned from.
    pub sessions: usize,
    /// Rows skipped as implausible.
    pub skipped: usize,
    pub days: DaysObserved,
}

/// The window of `days` whole local days before the local day of `now`: `[from, to)`.
pub fn window(now: Timestamp, tz: &TimeZone, days: u32) -> Option<(Timestamp, Timestamp)> {
    let today = now.to_zoned_datetime(tz.clone()).date();
    let to = today.to_zoned_datetime(tz.clone()).ok()?;
    let from = today
        .checked_sub(i64::from(days).days())
        .ok()?
        .to_zoned_datetime(tz.clone())
        .ok()?;
    Some((from.timestamp(), to.timestamp()))
}

/// Learn the forecast of `spec`'s community from `rows` (its completed transactions that started
/// in `[from, to)`, see [`window`]) in slots of `slot_minutes`.
pub fn learn(
    spec: &CommunitySpec,
    slot_minutes: u32,
    from: Timestamp,
    to: Timestamp,
    rows: &[CompletedTransaction],
) -> Result<Learned, String> {
    let tz = TimeZone::get(&spec.timezone).map_err(|e| format!("timezone: {e}"))?;
    let max_kw: HashMap<&ChargePointId, f64> =
        spec.chargers.iter().map(|c| (&c.id, c.max_kw())).collect();
    let slot_secs = i64::from(slot_minutes.max(1)) * 60;
    let slots_per_day = (1440 / slot_minutes.max(1)) as usize;
    // Days of the window by local date, from the first day the community charged a car in it:
    // a community younger than the window has not observed the days before it, and counting
    // them would divide its expected arrivals by days it did not have (a 7-day-old community
    // with a 28-day window would expect a quarter of its cars).
    // Nothing charged in the window: no days observed (the loop below does not run).
    let in_window: Vec<&CompletedTransaction> = rows
        .iter()
        .filter(|r| r.started_at >= from && r.started_at < to)
        .collect();
    let last = to.to_zoned_datetime(tz.clone()).date();
    let first = in_window
        .iter()
        .filter(|r| max_kw.contains_key(&r.charger_id))
        .map(|r| r.started_at)
        .min()
        .map_or(last, |t| {
            t.to_zoned_datetime(tz.clone())
                .date()
                .max(from.to_zoned_datetime(tz.clone()).date())
        });
    let mut days = DaysObserved::default();
    let mut d = first;
    while d < last {
        days.add(day_type(d));
        d = d.tomorrow().map_err(|e| e.to_string())?;
    }
    let mut history = Vec::with_capacity(in_window.len());
    let mut skipped = 0;
    for r in in_window {
        let Some(&kw) = max_kw.get(&r.charger_id) else {
            skipped += 1;
            continue;
        };
        let stay = r.started_at.duration_until(r.stopped_at);
        let hours = stay.as_secs_f64() / 3600.0;
        let plausible = r.energy_kwh.is_finite()
            && r.energy_kwh >= 0.0
            && stay >= SignedDuration::ZERO
            && r.energy_kwh <= kw * hours * 1.05 + 0.5;
        if !plausible {
            skipped += 1;
            continue;
        }
        let local = r.started_at.to_zoned_datetime(tz.clone());
        let since_midnight = local
            .start_of_day()
            .map(|m| m.timestamp().duration_until(r.started_at).as_secs())
            .unwrap_or(0);
        let slot = ((since_midnight.max(0) / slot_secs) as usize).min(slots_per_day - 1);
        let duration = ((stay.as_secs() as f64 / slot_secs as f64).round() as usize).max(1);
        history.push(HistoricSession {
            day_type: day_type(local.date()),
            arrival_slot_of_day: slot,
            duration_slots: duration,
            energy_kwh: r.energy_kwh,
            max_kw: kw,
        });
    }
    let forecast = Forecast::learn(slot_minutes, days, &history).map_err(|e| e.to_string())?;
    Ok(Learned {
        forecast,
        sessions: history.len(),
        skipped,
        days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_control::community::HourlyTariff;
    use orderly_control::{ChargerSpec, DayType, RateUnit};
    use orderly_store::TransactionId;

    fn spec() -> CommunitySpec {
        CommunitySpec {
            id: "c1".into(),
            rating_kva: 100.0,
            power_factor: 1.0,
            base_load_kw: vec![0.0; 24],
            timezone: "Asia/Shanghai".into(),
            tariff: HourlyTariff {
                cny_per_kwh: vec![0.5; 24],
            },
            emergency_price_cny_per_kwh: 1.5,
            max_emergencies: None,
            default_stay_hours: 10.0,
            default_energy_kwh: 10.0,
            chargers: vec![ChargerSpec {
                id: ChargePointId::parse("CP1").unwrap(),
                phases: 1,
                voltage_v: 220.0,
                max_current_a: 32.0,
                min_current_a: 6.0,
                rate_unit: RateUnit::Amperes,
            }],
        }
    }

    fn row(charger: &str, start: &str, stop: &str, kwh: f64) -> CompletedTransaction {
        CompletedTransaction {
            transaction_id: TransactionId(1),
            charger_id: ChargePointId::parse(charger).unwrap(),
            connector_id: Some(1),
            started_at: start.parse().unwrap(),
            stopped_at: stop.parse().unwrap(),
            energy_kwh: kwh,
        }
    }

    #[test]
    fn sessions_become_ghosts_and_bad_rows_are_counted() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        // Thursday 2026-11-26 15:00 local; 7 days back: Thu 19 … Wed 25 (5 weekdays, 2 weekend).
        let now: Timestamp = "2026-11-26T07:00:00Z".parse().unwrap();
        let (from, to) = window(now, &tz, 7).unwrap();
        assert_eq!(from, "2026-11-18T16:00:00Z".parse().unwrap());
        assert_eq!(to, "2026-11-25T16:00:00Z".parse().unwrap());
        let rows = [
            // Thursday 19 Nov, the window's first day, 08:00 local: the community charged
            // from the start of the window, so all its days count.
            row("CP1", "2026-11-19T00:00:00Z", "2026-11-19T01:00:00Z", 3.0),
            // Monday 23 Nov, 18:10 local, 10 h, 20 kWh.
            row("CP1", "2026-11-23T10:10:00Z", "2026-11-23T20:10:00Z", 20.0),
            // Saturday 21 Nov 09:00 local.
            row("CP1", "2026-11-21T01:00:00Z", "2026-11-21T03:00:00Z", 5.0),
            // Negative energy, stop before start, more than 7.04 kW for an hour, other charger.
            row("CP1", "2026-11-22T10:00:00Z", "2026-11-22T12:00:00Z", -1.0),
            row("CP1", "2026-11-22T10:00:00Z", "2026-11-22T09:00:00Z", 1.0),
            row("CP1", "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z", 30.0),
            row("GONE", "2026-11-22T10:00:00Z", "2026-11-22T12:00:00Z", 5.0),
        ];
        let learned = learn(&spec(), 15, from, to, &rows).unwrap();
        assert_eq!((learned.sessions, learned.skipped), (3, 4));
        assert_eq!(
            learned.days,
            DaysObserved {
                weekdays: 5,
                weekend_days: 2
            }
        );
        let weekday = learned.forecast.ghosts_of(DayType::Weekday);
        let weekend = learned.forecast.ghosts_of(DayType::Weekend);
        assert_eq!(weekday.len(), 2);
        assert_eq!(weekday[0].arrival_slot_of_day, 32);
        assert!((weekday[0].energy_kwh - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!(weekday[1].arrival_slot_of_day, 72);
        assert_eq!(weekday[1].duration_slots, 40);
        assert!((weekday[1].energy_kwh - 20.0 / 5.0).abs() < 1e-9);
        assert!((weekday[1].max_kw - 7.04 / 5.0).abs() < 1e-9);
        assert_eq!(weekend.len(), 1);
        assert_eq!(weekend[0].arrival_slot_of_day, 36);
        assert!((weekend[0].energy_kwh - 2.5).abs() < 1e-9);
    }

    #[test]
    fn a_community_younger_than_the_window_counts_only_its_own_days() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let now: Timestamp = "2026-11-26T07:00:00Z".parse().unwrap();
        let (from, to) = window(now, &tz, 28).unwrap();
        // Its first car: Monday 23 Nov; then Tuesday and Wednesday, 10 kWh each at 18:00.
        let rows = [
            row("CP1", "2026-11-23T10:00:00Z", "2026-11-23T20:00:00Z", 10.0),
            row("CP1", "2026-11-24T10:00:00Z", "2026-11-24T20:00:00Z", 10.0),
            row("CP1", "2026-11-25T10:00:00Z", "2026-11-25T20:00:00Z", 10.0),
        ];
        let learned = learn(&spec(), 15, from, to, &rows).unwrap();
        assert_eq!(
            learned.days,
            DaysObserved {
                weekdays: 3,
                weekend_days: 0
            }
        );
        // One car a weekday, as it had: not 3 / 20 of one.
        let weekday = learned.forecast.ghosts_of(DayType::Weekday);
        let weekend = learned.forecast.ghosts_of(DayType::Weekend);
        assert_eq!(weekday.len(), 1);
        assert!((weekday[0].energy_kwh - 10.0).abs() < 1e-9);
        assert!(weekend.is_empty());

        // Nothing charged yet: no days observed, nothing expected.
        let learned = learn(&spec(), 15, from, to, &[]).unwrap();
        assert_eq!(learned.days, DaysObserved::default());
        assert!(!learned.forecast.expects_arrivals());
    }
}
