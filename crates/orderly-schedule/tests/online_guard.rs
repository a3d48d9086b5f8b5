//! The online feasibility guard (`OnlineConfig::guard_z`): the current slot delivers the least
//! extra energy without which the busy scenario (arrivals at mean + z sd) could not be served,
//! and nothing else changes.

mod common;

use orderly_schedule::*;

/// 15-minute slots from 16:00; 16:00–18:00 at the peak price, 18:00–23:00 flat, then the
/// valley. 10 kW. History: 4 cars of 20 kWh (7.4 kW) arriving at 18:00 over 2 weekdays and
/// staying 10 h: mean 40 kWh a day, Poisson sd 28.3 kWh. One car plugged in until 04:00
/// (slot 48) wanting 30 kWh.
fn day(guard_z: f64) -> (OnlinePlanner, Problem) {
    let history: Vec<HistoricSession> = (0..4)
        .map(|k| HistoricSession {
            day_type: DayType::Weekday,
            arrival_slot_of_day: 72 + k,
            duration_slots: 40,
            energy_kwh: 20.0,
            max_kw: 7.4,
        })
        .collect();
    let fc = Forecast::learn(
        15,
        DaysObserved {
            weekdays: 2,
            weekend_days: 0,
        },
        &history,
    )
    .unwrap();
    let planner = OnlinePlanner::new(
        fc,
        Calendar {
            slot_of_day_at_zero: 64,
            day_types: vec![DayType::Weekday; 3],
        },
        OnlineConfig {
            lookahead_slots: 96,
            guard_z,
            ..OnlineConfig::for_slot_minutes(15)
        },
    );
    let slots = 96;
    let pr = Problem {
        slot_minutes: 15,
        capacity_kw: vec![10.0; slots],
        price: (0..slots)
            .map(|t| match t {
                0..8 => 1.0044,
                28..60 => 0.3946,
                _ => 0.695,
            })
            .collect(),
        sessions: vec![Session {
            id: 1,
            arrival_slot: 0,
            departure_slot: 48,
            energy_kwh: 30.0,
            max_kw: 7.4,
            min_kw: 0.0,
            priority: Priority::Normal,
            v2g: None,
        }],
    };
    (planner, pr)
}

#[test]
fn guard_charges_now_only_what_a_busy_evening_needs() {
    // Off (the default): the car waits for the flat band and the valley.
    let (off, pr) = day(-1.0);
    assert!(OnlineConfig::for_slot_minutes(15).guard_z < 0.0);
    let base = off.plan(0, &pr).unwrap();
    common::check_invariants(&pr, &base).unwrap();
    assert_eq!(base.sessions[0].power_kw[0], 0.0);
    // At the mean (40 kWh in the 100 kWh the 18:00–04:00 slots hold, besides the car's 30)
    // nothing needs the peak slot: the guard changes nothing.
    let (mean, _) = day(0.0);
    assert_eq!(mean.plan(0, &pr).unwrap(), base);
    // At mean + 2 sd (96.6 kWh) the arrivals need nearly all of 18:00–04:00: every kWh the car
    // takes before 18:00 is one more for them, so slot 0 is needed at the car's full rate.
    let (busy, _) = day(2.0);
    let plan = busy.plan(0, &pr).unwrap();
    common::check_invariants(&pr, &plan).unwrap();
    assert!(
        (plan.sessions[0].power_kw[0] - 7.4).abs() < 1e-9,
        "{:?}",
        &plan.sessions[0].power_kw[..8]
    );
    // The car still gets all it wants, and the rest of the plan is the cheapest given slot 0.
    assert!((plan.sessions[0].energy_kwh - 30.0).abs() < 1e-9);
    assert!(plan.sessions[0].power_kw[1..8].iter().all(|&p| p == 0.0));
    assert_eq!(busy.plan(0, &pr).unwrap(), plan, "deterministic");
}

#[test]
fn guard_stays_out_of_emergency_and_minimum_power() {
    let (busy, mut pr) = day(2.0);
    let (off, _) = day(-1.0);
    for change in [
        |s: &mut Session| s.priority = Priority::Emergency,
        |s: &mut Session| s.min_kw = 1.38,
    ] {
        change(&mut pr.sessions[0]);
        assert_eq!(busy.plan(0, &pr).unwrap(), off.plan(0, &pr).unwrap());
        pr = day(2.0).1;
    }
}

fn planner_for(pr: &Problem, guard_z: f64) -> OnlinePlanner {
    // The forecast: the instance's own sessions as one day of history.
    let spd = (1440 / pr.slot_minutes) as usize;
    let history: Vec<HistoricSession> = pr
        .sessions
        .iter()
        .map(|s| HistoricSession {
            day_type: DayType::Weekday,
            arrival_slot_of_day: s.arrival_slot % spd,
            duration_slots: s.departure_slot - s.arrival_slot,
            energy_kwh: s.energy_kwh,
            max_kw: s.max_kw,
        })
        .collect();
    let fc = Forecast::learn(
        pr.slot_minutes,
        DaysObserved {
            weekdays: 1,
            weekend_days: 0,
        },
        &history,
    )
    .unwrap();
    OnlinePlanner::new(
        fc,
        Calendar {
            slot_of_day_at_zero: 0,
            day_types: vec![DayType::Weekday],
        },
        OnlineConfig {
            guard_z,
            ..OnlineConfig::for_slot_minutes(pr.slot_minutes)
        },
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 96, ..Default::default() })]

    /// With the guard on, a re-plan keeps every hard rule and plans the plugged-in cars as much
    /// energy as without it (the guard only moves energy into the current slot), and never
    /// less in the current slot.
    #[test]
    fn guard_keeps_the_rules_and_the_energy(pr in common::problem(10), now_pick in 0usize..4, z in 0.0f64..4.0) {
        let now = (now_pick * pr.price.len() / 4).min(pr.price.len() - 1);
        // The cars plugged in at `now`, the rest of the instance is the forecast's history.
        let mut live = pr.clone();
        live.sessions.retain(|s| s.arrival_slot <= now && now < s.departure_slot);
        for s in &mut live.sessions {
            s.arrival_slot = now;
        }
        proptest::prop_assume!(!live.sessions.is_empty());
        let off = planner_for(&pr, -1.0).plan(now, &live).unwrap();
        let on = planner_for(&pr, z).plan(now, &live).unwrap();
        common::check_invariants(&live, &on).map_err(proptest::test_runner::TestCaseError::fail)?;
        let (e1, e0) = (common::plan_energy(&on), common::plan_energy(&off));
        proptest::prop_assert!(e1 >= e0 - 1e-6 * e0.max(1.0), "energy {e1} < {e0}");
        let slot = |p: &Plan| p.sessions.iter().map(|s| s.power_kw[now]).sum::<f64>();
        proptest::prop_assert!(slot(&on) >= slot(&off) - 1e-9 * slot(&off).max(1.0), "slot now {} < {}", slot(&on), slot(&off));
    }
}
