//! Online V2G guard: a discharge is never paid for by anyone's energy. With V2G on, every car
//! gets by its departure at least what the same re-plan gives it without V2G (a V2G car: its
//! battery gain; any other car: its delivered energy).

use orderly_schedule::{
    Calendar, DayType, Forecast, OnlineConfig, OnlinePlanner, Plan, Priority, Problem, Session, V2g,
};
use proptest::prelude::*;

fn planner(slot_minutes: u32) -> OnlinePlanner {
    OnlinePlanner::new(
        Forecast::none(slot_minutes).unwrap(),
        Calendar {
            slot_of_day_at_zero: 0,
            day_types: vec![DayType::Weekday],
        },
        OnlineConfig::for_slot_minutes(slot_minutes),
    )
}

fn v2g(soc: f64) -> V2g {
    V2g {
        battery_kwh: 60.0,
        soc_kwh: soc,
        floor_kwh: 10.0,
        max_discharge_kw: 7.0,
        charge_efficiency: 0.95,
        discharge_efficiency: 0.95,
        wear_cny_per_kwh: 0.02,
    }
}

/// What a session gets by departure: a V2G car's battery gain, anyone else's grid energy.
fn gained(pr: &Problem, s: &Session, power: &[f64]) -> f64 {
    let h = f64::from(pr.slot_minutes) / 60.0;
    match &s.v2g {
        Some(v) => power
            .iter()
            .map(|&kw| {
                if kw >= 0.0 {
                    v.charge_efficiency * kw * h
                } else {
                    kw * h / v.discharge_efficiency
                }
            })
            .sum(),
        None => power.iter().map(|&kw| kw * h).sum(),
    }
}

/// The same problem with V2G switched off for every car.
fn without_v2g(pr: &Problem) -> Problem {
    let mut plain = pr.clone();
    for s in &mut plain.sessions {
        s.v2g = None;
    }
    plain
}

fn assert_no_one_pays(pr: &Problem, with: &Plan, without: &Plan) {
    for (s, (a, b)) in pr
        .sessions
        .iter()
        .zip(with.sessions.iter().zip(&without.sessions))
    {
        // Without V2G the V2G car's battery would gain its grid energy times the efficiency.
        let base = match &s.v2g {
            Some(v) => v.charge_efficiency * b.energy_kwh,
            None => b.energy_kwh,
        };
        let got = gained(pr, s, &a.power_kw);
        assert!(
            got >= base - 1e-6,
            "session {} gets {got} kWh with V2G, {base} without: {:?} vs {:?}",
            s.id,
            a.power_kw,
            b.power_kw
        );
    }
}

fn car(
    id: u64,
    (arrival_slot, departure_slot): (usize, usize),
    energy_kwh: f64,
    min_kw: f64,
    v2g: Option<V2g>,
) -> Session {
    Session {
        id,
        arrival_slot,
        departure_slot,
        energy_kwh,
        max_kw: 7.0,
        min_kw,
        priority: Priority::Normal,
        v2g,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn no_car_gets_less_with_v2g(
        cap in 4.0f64..16.0,
        cars in prop::collection::vec(
            (0usize..4, 1usize..6, 1.0f64..25.0, prop::bool::ANY, 0.0f64..6.0),
            2..6,
        ),
    ) {
        let slots = 8;
        let price = vec![1.0, 1.0, 0.7, 0.7, 0.4, 0.4, 0.4, 1.0];
        let sessions = cars
            .iter()
            .enumerate()
            .map(|(i, &(a, len, e, is_v2g, min_kw))| {
                let d = (a + len).min(slots);
                if is_v2g {
                    car(i as u64, (a, d), e, 0.0, Some(v2g(30.0)))
                } else {
                    car(i as u64, (a, d), e, min_kw, None)
                }
            })
            .collect();
        let pr = Problem { slot_minutes: 60, capacity_kw: vec![cap; slots], price, sessions };
        let p = planner(60);
        let with = p.plan(0, &pr).unwrap();
        let without = p.plan(0, &without_v2g(&pr)).unwrap();
        assert_no_one_pays(&pr, &with, &without);
    }
}

/// Car 2 needs at least 4 kW and has only slots 2 and 3, which the V2G car (after discharging at
/// the 1.0 CNY/kWh peak) would fill with its make-up: the minimum-power repair then finds no slot
/// for car 2, which without V2G gets 4.5 kWh. Guarded, the re-plan goes without V2G.
#[test]
fn a_discharge_never_takes_a_slack_less_cars_energy() {
    let pr = Problem {
        slot_minutes: 60,
        capacity_kw: vec![9.8; 8],
        price: vec![1.0, 1.0, 0.7, 0.7, 0.4, 0.4, 0.4, 1.0],
        sessions: vec![
            car(0, (0, 4), 9.5, 0.0, None),
            car(1, (0, 4), 1.0, 0.0, Some(v2g(30.0))),
            car(2, (2, 4), 5.0, 4.0, None),
            car(3, (1, 6), 1.0, 0.0, None),
        ],
    };
    let p = planner(60);
    let with = p.plan(0, &pr).unwrap();
    let without = p.plan(0, &without_v2g(&pr)).unwrap();
    assert!(without.sessions[2].energy_kwh > 4.0, "{without:?}");
    assert_no_one_pays(&pr, &with, &without);
}
