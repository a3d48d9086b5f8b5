//! V2G: which cars are chosen, the parameters they get, and what the engine does with them.

mod common;

use common::real_args;
use orderly_sim::{Inputs, Policy, simulate, v2g};

#[test]
fn assignment_is_deterministic_and_consistent() {
    let args = real_args("OSL_S", "2019-11-04", 7, 0.25);
    let inputs = Inputs::read(&args).unwrap();
    let sc = inputs.scenario(args.window()).unwrap();
    let a = inputs.v2g(&sc, 0.3).unwrap();
    let b = inputs.v2g(&sc, 0.3).unwrap();
    assert_eq!(a, b, "the same cars, the same parameters");
    let chosen = a.iter().flatten().count();
    assert_eq!(chosen, (0.3 * sc.sessions.len() as f64).round() as usize);
    for (s, p) in sc.sessions.iter().zip(&a) {
        let Some(p) = p else { continue };
        assert!(s.battery_kwh.is_some() && s.slots() > 0);
        assert!(p.soc_kwh >= 0.0 && p.floor_kwh <= p.soc_kwh + 1e-12);
        // The wanted energy fits in the battery.
        assert!(p.soc_kwh + s.wanted_kwh * p.charge_efficiency <= p.battery_kwh + 1e-9);
        assert_eq!(p.max_discharge_kw, s.rate_kw);
        assert_eq!(p.wear_cny_per_kwh, v2g::WEAR_CNY_PER_KWH);
    }
    // A larger share keeps the cars of a smaller one (ranked by hash).
    let more = inputs.v2g(&sc, 0.6).unwrap();
    for (x, y) in a.iter().zip(&more) {
        if x.is_some() {
            assert!(y.is_some());
        }
    }
    assert!(inputs.v2g(&sc, 1.5).is_err());
    assert!(inputs.v2g(&sc, 0.0).unwrap().iter().all(Option::is_none));
}

#[test]
fn offline_v2g_trades_without_breaking_floors_or_targets() {
    // A week with room for everyone, so that every car can reach its target.
    let args = real_args("OSL_S", "2019-11-04", 7, 0.40);
    let inputs = Inputs::read(&args).unwrap();
    let sc = inputs.scenario(args.window()).unwrap();
    let none = vec![None; sc.sessions.len()];
    let (plain, _) = simulate(&sc, none, Policy::OfflineOptimal).unwrap();
    let (with, plant) =
        simulate(&sc, inputs.v2g(&sc, 0.3).unwrap(), Policy::OfflineOptimal).unwrap();
    assert!(with.v2g_discharged_kwh > 0.0, "{with:?}");
    assert_eq!(with.floor_violations, 0);
    assert_eq!(with.slots_over_capacity, 0);
    assert!((with.energy_delivered_kwh - plain.energy_delivered_kwh).abs() < 1e-6);
    assert!(
        with.cost_cny < plain.cost_cny,
        "{} vs {}",
        with.cost_cny,
        plain.cost_cny
    );
    for (i, car) in plant.v2g.iter().enumerate() {
        if let Some(car) = car {
            assert!(car.soc_kwh >= car.target_kwh - 1e-3, "car {i} left short");
        }
    }
}

/// Issue 3's V2G target, where capacity is scarce: at a capacity fraction of 0.15 no V2G car
/// leaves with less than the same online policy gives it without V2G (before the busy-scenario
/// rule, 2 of 35 OSL_S cars did, by 0.07 and 0.12 kWh, and 19 of 82 TRO_R cars), and no floor is
/// broken. (Fast enough in a debug build because the workspace optimises the engine crates.)
#[test]
fn online_v2g_leaves_no_car_worse_off_when_capacity_is_scarce() {
    // The two weeks (four re-planned-every-slot replays) run side by side.
    std::thread::scope(|scope| {
        for location in ["OSL_S", "TRO_R"] {
            scope.spawn(move || no_v2g_car_worse_off(location));
        }
    });
}

fn no_v2g_car_worse_off(location: &str) {
    let args = real_args(location, "2019-11-04", 7, 0.15);
    let inputs = Inputs::read(&args).unwrap();
    let sc = inputs.scenario(args.window()).unwrap();
    let none = vec![None; sc.sessions.len()];
    let (plain, without) = simulate(&sc, none, Policy::Online).unwrap();
    let (with, plant) = simulate(&sc, inputs.v2g(&sc, 0.3).unwrap(), Policy::Online).unwrap();
    assert_eq!(with.floor_violations, 0);
    assert_eq!(with.slots_over_capacity, 0);
    assert!(
        with.cost_cny <= plain.cost_cny + 1e-6,
        "{location}: {with:?} vs {plain:?}"
    );
    let tol = orderly_sim::metrics::FULLY_SERVED_TOLERANCE_KWH;
    for i in (0..sc.sessions.len()).filter(|&i| plant.v2g[i].is_some()) {
        assert!(
            plant.delivered_kwh(i) >= without.delivered_kwh(i) - tol,
            "{location}: V2G car {i} got {} kWh, {} without V2G",
            plant.delivered_kwh(i),
            without.delivered_kwh(i)
        );
    }
}
