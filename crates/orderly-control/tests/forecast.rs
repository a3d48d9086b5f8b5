//! The controller with a learned forecast (`Input::Forecast`): expected late arrivals make a car
//! plugged in early take energy before the valley; without a forecast it waits for the valley.
//! Simulated clock (see `common`).

mod common;

use common::{Sim, community, config};
use orderly_control::{DayType, DaysObserved, Forecast, HistoricSession, Input};

/// 17:00 Asia/Shanghai, Thursday 2026-11-26.
const THURSDAY_EVENING: &str = "2026-11-26T09:00:00Z";
/// 17:00 Asia/Shanghai, Saturday 2026-11-28.
const SATURDAY_EVENING: &str = "2026-11-28T09:00:00Z";

/// Late, tight arrivals: on every day of `day_type`, 8 cars arrive at 22:00 and stay 9 hours,
/// wanting 30 kWh each at 7.04 kW: 240 kWh, more than the community's 25 kW give from 22:00 to
/// 07:00 (225 kWh).
fn late_arrivals(day_type: DayType) -> Forecast {
    let history: Vec<HistoricSession> = (0..16)
        .map(|_| HistoricSession {
            day_type,
            arrival_slot_of_day: 88,
            duration_slots: 36,
            energy_kwh: 30.0,
            max_kw: 7.04,
        })
        .collect();
    let days = match day_type {
        DayType::Weekday => DaysObserved {
            weekdays: 2,
            weekend_days: 0,
        },
        DayType::Weekend => DaysObserved {
            weekdays: 0,
            weekend_days: 2,
        },
    };
    Forecast::learn(15, days, &history).unwrap()
}

/// One car plugged in at 17:00 for 14 hours wanting 20 kWh; the planned load per slot from 17:00.
fn evening(start: &str, forecast: Option<Forecast>) -> Sim {
    // 8 chargers, 45 kW × pf 0.9… : 25 kW for charging (20 kW 18:00–22:00); valley 23:00–07:00.
    let mut sim = Sim::new(community(8, 50.0, 20.0), config(), start);
    if let Some(f) = forecast {
        sim.input(Input::Forecast(f));
    }
    sim.plug(0, 20.0, 14.0, 7040.0, false);
    sim
}

/// Planned kWh of slots `a..b` (15-minute slots from 17:00).
fn planned_kwh(sim: &Sim, a: usize, b: usize) -> f64 {
    sim.ctl.plan_view().planned_kw[a..b].iter().sum::<f64>() * 0.25
}

#[test]
fn without_a_forecast_the_car_waits_for_the_valley() {
    let sim = evening(THURSDAY_EVENING, None);
    let view = sim.ctl.plan_view();
    assert!(view.forecast.is_none());
    assert_eq!(view.ghost_sessions, 0);
    // 17:00–23:00 is slots 0..24.
    assert!(planned_kwh(&sim, 0, 24) < 1e-6, "{:?}", view.planned_kw);
    assert!((planned_kwh(&sim, 24, 56) - 20.0).abs() < 0.5);
}

#[test]
fn expected_late_arrivals_make_the_early_car_charge_before_the_valley() {
    let mut sim = evening(THURSDAY_EVENING, Some(late_arrivals(DayType::Weekday)));
    let view = sim.ctl.plan_view();
    let fv = view.forecast.clone().expect("forecast in the plan view");
    assert_eq!((fv.weekday_ghosts, fv.weekend_ghosts), (1, 0));
    assert!((fv.weekday_kwh - 240.0).abs() < 1e-9);
    assert_eq!(view.ghost_sessions, 1);
    // The ghosts are not sessions: the plan shows the one car, and the engine's input too.
    assert_eq!(view.sessions.len(), 1);
    assert_eq!(sim.ctl.last_problem().unwrap().sessions.len(), 1);
    // Before 22:00 (slots 0..20) the car takes energy so the valley is left to the arrivals.
    let early = planned_kwh(&sim, 0, 20);
    assert!(
        early > 5.0,
        "{early} kWh before 22:00: {:?}",
        view.planned_kw
    );
    // The charger's profile lets it draw now.
    let now = sim.now;
    assert!(sim.cps[0].limit_w(now) > 1000.0);
    // Through the night: the car gets all it wanted, capacity is never exceeded, and profiles
    // only ever go to the community's chargers for the real transaction.
    sim.run(15 * 3600, 60);
    assert!(
        sim.over.is_empty(),
        "{:?}",
        &sim.over[..sim.over.len().min(3)]
    );
    let (wanted, got, _) = sim.cps[0].visits[0];
    assert!(got >= wanted * 0.995, "{got} of {wanted} Wh");
}

#[test]
fn the_calendar_follows_the_local_day_type() {
    // A weekend forecast on a Thursday adds no ghosts: the car waits as without one.
    let sim = evening(THURSDAY_EVENING, Some(late_arrivals(DayType::Weekend)));
    assert_eq!(sim.ctl.plan_view().ghost_sessions, 0);
    assert!(planned_kwh(&sim, 0, 24) < 1e-6);
    // On a Saturday it does.
    let sim = evening(SATURDAY_EVENING, Some(late_arrivals(DayType::Weekend)));
    assert_eq!(sim.ctl.plan_view().ghost_sessions, 1);
    assert!(planned_kwh(&sim, 0, 20) > 5.0);
    // A weekday forecast on a Saturday: none (Sunday 22:00 is beyond the 24-hour horizon).
    let sim = evening(SATURDAY_EVENING, Some(late_arrivals(DayType::Weekday)));
    assert_eq!(sim.ctl.plan_view().ghost_sessions, 0);
    assert!(planned_kwh(&sim, 0, 24) < 1e-6);
}

#[test]
fn arrivals_already_past_today_are_not_expected() {
    // At 23:30 the 22:00 arrivals of today are past and tomorrow's are beyond the car's stay
    // and the horizon's start: the car plugged in now plans as without a forecast.
    let start = "2026-11-26T15:30:00Z";
    let with = evening(start, Some(late_arrivals(DayType::Weekday)));
    let without = evening(start, None);
    let (a, b) = (with.ctl.plan_view(), without.ctl.plan_view());
    for (x, y) in a.planned_kw.iter().zip(&b.planned_kw) {
        assert!(
            (x - y).abs() < 1e-6,
            "{:?} vs {:?}",
            a.planned_kw,
            b.planned_kw
        );
    }
}

#[test]
fn a_forecast_of_other_slots_is_refused() {
    let mut sim = Sim::new(community(8, 50.0, 20.0), config(), THURSDAY_EVENING);
    let f = Forecast::learn(
        5,
        DaysObserved {
            weekdays: 1,
            weekend_days: 0,
        },
        &[],
    )
    .unwrap();
    sim.ctl.handle(Input::Forecast(f), sim.now);
    assert!(sim.ctl.last_error().unwrap().contains("5-minute"));
    assert_eq!(sim.ctl.forecast().slot_minutes, 15);
}
