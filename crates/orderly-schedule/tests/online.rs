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
            forecast_scale: ghost_scale,
            early: true,
            upper_z,
        },
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
