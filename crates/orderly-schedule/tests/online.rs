//! The online planner on a synthetic community: close to the offline optimum, better than
//! re-planning without a forecast, never over capacity, deterministic.

mod common;

use common::sim::compare;
use orderly_schedule::*;

#[test]
fn online_near_offline_on_a_synthetic_community() {
    for seed in [3, 5] {
        let (online, offline) = compare(40, 28, 7, seed, true);
        let (blind, _) = compare(40, 28, 7, seed, false);
        eprintln!(
            "seed {seed}: offline {:.3} kWh {:.3} CNY | online {:.3} kWh {:.3} CNY | no forecast {:.3} kWh {:.3} CNY",
            offline.energy, offline.cost, online.energy, online.cost, blind.energy, blind.cost
        );
        assert_eq!(online.over_capacity, 0);
        assert!(online.energy >= 0.999 * offline.energy);
        assert!(online.cost <= 1.02 * offline.cost);
        // The forecast is what keeps later arrivals from being starved.
        assert!(online.energy > blind.energy);
    }
}

fn day(ghost_scale: f64) -> (OnlinePlanner, Problem) {
    day_with(ghost_scale, 0.0)
}

fn day_with(ghost_scale: f64, upper_z: f64) -> (OnlinePlanner, Problem) {
    day_cfg(OnlineConfig {
        lookahead_slots: 96,
        forecast_scale: ghost_scale,
        upper_z,
        ..OnlineConfig::for_slot_minutes(15)
    })
}

fn day_cfg(config: OnlineConfig) -> (OnlinePlanner, Problem) {
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
        config,
    );
    let slots = 96;
    let pr = Problem {
        slot_minutes: 15,
        capacity_kw: vec![10.0; slots],
        price: (0..slots)
            .map(|t| if (28..60).contains(&t) { 0.3946 } else { 0.695 })
            .collect(),
        sessions: vec![Session {
            id: 1,
            arrival_slot: 0,
            departure_slot: 60,
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
fn ghosts_hold_back_the_valley_for_expected_arrivals() {
    // Slot 0 is 16:00; the valley (slots 28..60) holds 80 kWh. Two more cars of 20 kWh each are
    // expected at 18:00 (2 × 4 sessions over 2 days → 40 kWh); this car wants 30 kWh.
    let (planner, pr) = day(1.0);
    let ghosts = planner.ghosts(0, 96);
    let ghost_energy: f64 = ghosts.iter().map(|g| g.energy_kwh).sum();
    assert!((ghost_energy - 40.0).abs() < 1e-9, "{ghosts:?}");
    assert!(
        ghosts
            .iter()
            .all(|g| g.arrival_slot >= 8 && g.arrival_slot < 12)
    );
    let plan = planner.plan(0, &pr).unwrap();
    assert!((plan.sessions[0].energy_kwh - 30.0).abs() < 1e-9);
    // With 40 kWh expected, the valley is still big enough: nothing before 23:00.
    assert!(plan.sessions[0].power_kw[..28].iter().all(|&p| p == 0.0));
    // Expecting three times as much (120 kWh) makes the car charge before the valley.
    let (planner, pr) = day(3.0);
    let plan = planner.plan(0, &pr).unwrap();
    assert!(plan.sessions[0].power_kw[..28].iter().any(|&p| p > 0.0));
    assert!((plan.sessions[0].energy_kwh - 30.0).abs() < 1e-9);
    // Deterministic.
    assert_eq!(planner.plan(0, &pr).unwrap(), plan);
}

#[test]
fn upper_quantile_margin_hedges_the_arrivals_that_compete() {
    // History: 4 arrivals of 20 kWh over 2 weekdays, one group: per day 2 arrivals expected
    // (mean 40 kWh), Poisson variance 2 × 20² = 800 kWh², sd 28.28 kWh.
    let (planner, pr) = day_with(1.0, 1.0);
    let total = |g: &[Session]| g.iter().map(|s| s.energy_kwh).sum::<f64>();
    let hedged = planner.ghosts_until(0, 96, 60);
    assert!(
        (total(&hedged) - (40.0 + 800f64.sqrt())).abs() < 1e-9,
        "{hedged:?}"
    );
    // Ghosts arriving after every plugged-in car has left get no margin.
    assert!((total(&planner.ghosts_until(0, 96, 5)) - 40.0).abs() < 1e-9);
    // The car stays until slot 60, so the 18:00 arrivals compete: 30 + 68.3 kWh no longer fit in
    // the 80 kWh valley, and the car charges some before 23:00 although the mean (40 kWh) fits.
    let plan = planner.plan(0, &pr).unwrap();
    assert!(plan.sessions[0].power_kw[..28].iter().any(|&p| p > 0.0));
    assert!((plan.sessions[0].energy_kwh - 30.0).abs() < 1e-9);
    let (mean_planner, _) = day_with(1.0, 0.0);
    let mean_plan = mean_planner.plan(0, &pr).unwrap();
    assert!(
        mean_plan.sessions[0].power_kw[..28]
            .iter()
            .all(|&p| p == 0.0)
    );
    assert_eq!(planner.plan(0, &pr).unwrap(), plan);
}

#[test]
fn v2g_discharges_only_what_a_busier_evening_leaves_room_to_make_up() {
    // A V2G car in from 16:00 (peak until 18:00) to 07:00 wanting 10 kWh; two cars expected at
    // 18:00 (mean 40 kWh, sd 28 kWh) compete for the 80 kWh valley.
    let plan_with = |v2g_upper_z: f64| {
        let (planner, mut pr) = day_cfg(OnlineConfig {
            lookahead_slots: 96,
            v2g_upper_z,
            // This test is about the robust room; the make-up margin is tested on its own
            // (online_v2g_makeup.rs) and would keep this car, which needs its last hours, from
            // discharging at all.
            v2g_makeup_margin_slots: 0,
            ..OnlineConfig::for_slot_minutes(15)
        });
        for t in 0..8 {
            pr.price[t] = 1.0044;
        }
        let car = &mut pr.sessions[0];
        car.energy_kwh = 10.0;
        car.v2g = Some(V2g {
            battery_kwh: 60.0,
            soc_kwh: 30.0,
            floor_kwh: 10.0,
            max_discharge_kw: 7.4,
            charge_efficiency: 0.95,
            discharge_efficiency: 0.95,
            wear_cny_per_kwh: 0.1,
        });
        let plan = planner.plan(0, &pr).unwrap();
        assert_eq!(planner.plan(0, &pr).unwrap(), plan, "deterministic");
        let out: f64 = plan.sessions[0]
            .power_kw
            .iter()
            .map(|&p| (-p).max(0.0) * 0.25)
            .sum();
        (out, plan.sessions[0].energy_kwh)
    };
    let (bold, bold_net) = plan_with(0.0);
    let (careful, careful_net) = plan_with(4.0);
    // Planning for the mean, the car sells at the peak what the valley can give back…
    assert!(bold > 1.0, "discharged {bold} kWh");
    // …planning for a busier evening (153 kWh expected in an 80 kWh valley), it sells less.
    assert!(careful < bold - 1.0, "{careful} vs {bold}");
    // Either way its battery is planned back to where charging alone would put it: the net
    // energy from the grid covers the 10 kWh plus the round-trip losses of what it sold.
    assert!(bold_net >= 10.0 - 1e-6 && careful_net >= 10.0 - 1e-6);
}

#[test]
fn online_rejects_now_past_the_horizon() {
    let (planner, pr) = day(1.0);
    assert!(planner.plan(96, &pr).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 96, ..Default::default() })]

    /// Without a forecast, a re-plan at slot 0 sees everything: its plan (earliest slots first
    /// within a price level) must deliver the same energy at the same cost as the offline optimum.
    #[test]
    fn replan_at_zero_without_forecast_is_optimal(pr in common::problem(12)) {
        let planner = OnlinePlanner::new(
            Forecast::none(pr.slot_minutes).unwrap(),
            Calendar { slot_of_day_at_zero: 0, day_types: vec![DayType::Weekday] },
            OnlineConfig::for_slot_minutes(pr.slot_minutes),
        );
        let online = planner.plan(0, &pr).unwrap();
        let offline = solve_offline(&pr).unwrap();
        common::check_invariants(&pr, &online).map_err(proptest::test_runner::TestCaseError::fail)?;
        let (e1, e0) = (common::plan_energy(&online), common::plan_energy(&offline));
        let (c1, c0) = (common::plan_cost(&online), common::plan_cost(&offline));
        proptest::prop_assert!(common::close(e1, e0, 1e-9, 1e-3), "energy {e1} vs {e0}");
        proptest::prop_assert!(common::close(c1, c0, 1e-9, 1e-3), "cost {c1} vs {c0}");
    }
}

#[test]
fn no_v2g_discharge_while_a_plugged_in_car_is_short() {
    // 8 slots of 15 minutes, 5 kW; the first 4 at the peak price, the rest in the valley. Car 1
    // can only charge in the first 4 slots; the V2G car stays all 8 and wants 2 kWh.
    let problem = |car1_kwh: f64| Problem {
        slot_minutes: 15,
        capacity_kw: vec![5.0; 8],
        price: (0..8)
            .map(|t| if t < 4 { 1.0044 } else { 0.3946 })
            .collect(),
        sessions: vec![
            Session {
                id: 1,
                arrival_slot: 0,
                departure_slot: 4,
                energy_kwh: car1_kwh,
                max_kw: 7.4,
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g: None,
            },
            Session {
                id: 2,
                arrival_slot: 0,
                departure_slot: 8,
                energy_kwh: 2.0,
                max_kw: 7.4,
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g: Some(V2g {
                    battery_kwh: 60.0,
                    soc_kwh: 30.0,
                    floor_kwh: 10.0,
                    max_discharge_kw: 3.0,
                    charge_efficiency: 0.95,
                    discharge_efficiency: 0.95,
                    wear_cny_per_kwh: 0.05,
                }),
            },
        ],
    };
    let planner = OnlinePlanner::new(
        Forecast::none(15).unwrap(),
        Calendar {
            slot_of_day_at_zero: 0,
            day_types: vec![DayType::Weekday],
        },
        // No make-up margin: the V2G car's only room to make up is its last hour, and this
        // test is about the short-capacity rule (the margin has its own, online_v2g_makeup.rs).
        OnlineConfig {
            v2g_makeup_margin_slots: 0,
            ..OnlineConfig::for_slot_minutes(15)
        },
    );
    let discharged = |pr: &Problem| -> f64 {
        let plan = planner.plan(0, pr).unwrap();
        common::check_invariants(pr, &plan).unwrap();
        plan.sessions[1]
            .power_kw
            .iter()
            .map(|&p| (-p).max(0.0) * 0.25)
            .sum()
    };
    // Car 1 wants 4 kWh of the 5 its slots hold: the V2G car sells at the peak.
    assert!(discharged(&problem(4.0)) > 0.1);
    // Car 1 wants 8 kWh and can only get 5: nobody discharges.
    assert_eq!(discharged(&problem(8.0)), 0.0);
}
