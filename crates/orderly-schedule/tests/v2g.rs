//! V2G: never below the floor, battery at departure at least where the plan without V2G puts it,
//! capacity respected, and the net cost never above the plan without V2G.

mod common;

use common::*;
use orderly_schedule::{Priority, Problem, Session, V2g, solve_offline};
use proptest::prelude::*;

fn v2g(soc: f64, floor: f64, wear: f64) -> V2g {
    V2g {
        battery_kwh: 60.0,
        soc_kwh: soc,
        floor_kwh: floor,
        max_discharge_kw: 7.0,
        charge_efficiency: 0.95,
        discharge_efficiency: 0.95,
        wear_cny_per_kwh: wear,
    }
}

/// Battery trajectory of a V2G session: (lowest level, level at departure).
fn battery(pr: &Problem, s: &Session, power: &[f64]) -> (f64, f64) {
    let v = s.v2g.as_ref().unwrap();
    let h = f64::from(pr.slot_minutes) / 60.0;
    let mut soc = v.soc_kwh;
    let mut low = soc;
    for &kw in power {
        soc += if kw >= 0.0 {
            v.charge_efficiency * kw * h
        } else {
            kw * h / v.discharge_efficiency
        };
        low = low.min(soc);
    }
    (low, soc)
}

#[test]
fn arbitrage_discharges_at_the_peak_and_recharges_in_the_valley() {
    let pr = Problem {
        slot_minutes: 60,
        capacity_kw: vec![20.0; 4],
        price: vec![1.0044, 1.0044, 0.3946, 0.3946],
        sessions: vec![Session {
            id: 1,
            arrival_slot: 0,
            departure_slot: 4,
            energy_kwh: 5.0,
            max_kw: 7.0,
            min_kw: 0.0,
            priority: Priority::Normal,
            v2g: Some(v2g(30.0, 20.0, 0.05)),
        }],
    };
    let plan = solve_offline(&pr).unwrap();
    let p = &plan.sessions[0].power_kw;
    // Peak: discharge as much as the valley can put back (2 × 7 kW in, 0.95² round trip).
    assert!(p[0] < -1.0 && p[1] < -1.0, "{p:?}");
    assert!(
        (p[2] - 7.0).abs() < 1e-6 && (p[3] - 7.0).abs() < 1e-6,
        "{p:?}"
    );
    let (low, end) = battery(&pr, &pr.sessions[0], p);
    assert!(low >= 20.0 - 1e-6);
    assert!(end >= 30.0 + 0.95 * 5.0 - 1e-6, "{end}");
    assert!(plan.sessions[0].cost_cny < 5.0 * 0.3946);
}

#[test]
fn no_discharge_when_wear_eats_the_spread() {
    let pr = Problem {
        slot_minutes: 60,
        capacity_kw: vec![20.0; 4],
        price: vec![1.0044, 1.0044, 0.3946, 0.3946],
        sessions: vec![Session {
            id: 1,
            arrival_slot: 0,
            departure_slot: 4,
            energy_kwh: 5.0,
            max_kw: 7.0,
            min_kw: 0.0,
            priority: Priority::Normal,
            v2g: Some(v2g(30.0, 20.0, 1.0)),
        }],
    };
    let plan = solve_offline(&pr).unwrap();
    assert!(plan.sessions[0].power_kw.iter().all(|&kw| kw >= 0.0));
    assert!((plan.sessions[0].cost_cny - 5.0 * 0.3946).abs() < 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn v2g_keeps_floor_target_and_capacity(
        pr in problem(8),
        flags in prop::collection::vec((any::<bool>(), 0u32..60, 0u32..30, 0u32..20), 8),
    ) {
        let mut pr = pr;
        for (s, &(on, soc, floor, wear)) in pr.sessions.iter_mut().zip(&flags) {
            if on {
                s.v2g = Some(v2g(f64::from(soc), f64::from(floor), f64::from(wear) / 100.0));
            }
        }
        let plain = Problem {
            sessions: pr.sessions.iter().map(|s| Session { v2g: None, ..s.clone() }).collect(),
            ..pr.clone()
        };
        let base = solve_offline(&plain).unwrap();
        let plan = solve_offline(&pr).unwrap();
        let slots = pr.price.len();
        for t in 0..slots {
            let load: f64 = plan.sessions.iter().map(|s| s.power_kw[t]).sum();
            prop_assert!(load <= pr.capacity_kw[t] + 1e-6, "slot {t}: {load}");
        }
        for ((s, sp), bp) in pr.sessions.iter().zip(&plan.sessions).zip(&base.sessions) {
            for (t, &kw) in sp.power_kw.iter().enumerate() {
                let inside = s.arrival_slot <= t && t < s.departure_slot;
                prop_assert!(inside || kw == 0.0);
                prop_assert!(kw <= s.max_kw + 1e-9);
            }
            match &s.v2g {
                None => prop_assert!(sp.power_kw.iter().all(|&kw| kw >= 0.0)),
                Some(v) => {
                    let (low, end) = battery(&pr, s, &sp.power_kw);
                    let floor = v.floor_kwh.min(v.soc_kwh);
                    prop_assert!(low >= floor - 1e-6, "session {}: {low} below floor {floor}", s.id);
                    let want = v.soc_kwh + v.charge_efficiency * bp.energy_kwh;
                    prop_assert!(end >= want - 1e-5, "session {}: ends at {end}, wants {want}", s.id);
                }
            }
        }
        let cost = plan_cost(&plan);
        let base_cost = plan_cost(&base);
        prop_assert!(cost <= base_cost + 1e-6 * base_cost.abs().max(1.0), "{cost} > {base_cost}");
    }
}
