//! Each policy's invariants: on a hand-made case with known answers, and on real weeks.

mod common;

use common::{Fixture, real_args, session};
use orderly_sim::plant::Plant;
use orderly_sim::{Inputs, Metrics, Policy, Scenario, engine, simulate};

const EPS: f64 = 1e-9;

/// Three cars with 4 kW chargers under an 8 kW cap (15-minute slots, 1 kWh per slot at full
/// rate): X1 and X2 each want 1 kWh by 00:30, Y wants 4 kWh by 01:00, i.e. all of its slots.
/// EDF serves the two early deadlines first and leaves Y 1 kWh short; LLF sees Y has no laxity.
fn dhall() -> Fixture {
    Fixture::new(
        &[
            session(
                "u1",
                "X1",
                "2020-01-01 00:00:00",
                "2020-01-01 00:30:00",
                "1",
            ),
            session(
                "u2",
                "X2",
                "2020-01-01 00:00:00",
                "2020-01-01 00:30:00",
                "1",
            ),
            session("u3", "Y", "2020-01-01 00:00:00", "2020-01-01 01:00:00", "4"),
        ],
        &["\"u1\";4;40", "\"u2\";4;40", "\"u3\";4;40"],
    )
}

fn dhall_scenario() -> Scenario {
    let f = dhall();
    let args = f.args("2020-01-01", 1, 15, 2.0 / 3.0);
    Inputs::read(&args)
        .unwrap()
        .scenario(args.window())
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn edf_misses_what_llf_serves_in_the_textbook_case() {
    let sc = dhall_scenario();
    assert!(close(sc.capacity_kw, 8.0));

    let (edf, plant) = simulate(&sc, vec![None; 3], Policy::Edf).unwrap();
    assert!(close(edf.energy_delivered_kwh, 5.0), "{edf:?}");
    assert!(close(plant.delivered_kwh(2), 3.0));
    assert!(close(edf.sessions_fully_served_pct, 200.0 / 3.0));
    assert_eq!(edf.slots_over_capacity, 0);

    let (llf, _) = simulate(&sc, vec![None; 3], Policy::Llf).unwrap();
    assert!(close(llf.energy_delivered_kwh, 6.0), "{llf:?}");
    assert!(close(llf.sessions_fully_served_pct, 100.0));
    assert!(close(llf.peak_kw, 8.0));

    let (unc, _) = simulate(&sc, vec![None; 3], Policy::Uncontrolled).unwrap();
    assert!(close(unc.energy_delivered_kwh, 6.0));
    assert!(close(unc.peak_kw, 12.0));
    assert_eq!(unc.slots_over_capacity, 1);
    assert!(close(unc.max_overshoot_kw, 4.0));

    let (opt, _) = simulate(&sc, vec![None; 3], Policy::OfflineOptimal).unwrap();
    assert!(close(opt.energy_delivered_kwh, 6.0));
    assert_eq!(opt.slots_over_capacity, 0);
    // All of it in the 00:00–01:00 valley.
    assert!(close(opt.cost_cny, 6.0 * 0.3946), "{}", opt.cost_cny);
}

/// Remaining energy of every session at the start of every slot, recomputed from what the
/// plant delivered.
fn remaining_before(plant: &Plant<'_>) -> Vec<Vec<f64>> {
    let sc = plant.scenario;
    let h = sc.slot_hours();
    sc.sessions
        .iter()
        .map(|s| {
            let mut left = s.wanted_kwh;
            (0..=sc.n_slots)
                .map(|slot| {
                    let before = left;
                    if s.is_present(slot) {
                        left -= plant.delivered_kw[s.index][slot - s.arrival_slot] * h;
                    }
                    before
                })
                .collect()
        })
        .collect()
}

/// Limits every policy keeps: no car above its rate or below zero, none given more than it
/// wants, and the metrics add up to what the plant delivered.
fn check_car_limits(plant: &Plant<'_>, requested: f64, delivered: f64) {
    let sc = plant.scenario;
    let h = sc.slot_hours();
    let mut total = 0.0;
    for s in &sc.sessions {
        let got: f64 = plant.delivered_kw[s.index].iter().sum::<f64>() * h;
        assert!(
            got <= s.wanted_kwh + EPS,
            "{} got {got} > {}",
            s.session_id,
            s.wanted_kwh
        );
        for &kw in &plant.delivered_kw[s.index] {
            assert!(
                (-EPS..=s.rate_kw + EPS).contains(&kw),
                "{}: {kw} kW",
                s.session_id
            );
        }
        total += got;
    }
    assert!(close(total, delivered), "{total} vs {delivered}");
    assert!(close(sc.energy_requested_kwh(), requested));
}

/// Sorted-policy invariants, slot by slot: within the capacity; work-conserving (spare
/// capacity means every car that wants energy got all it could take); and in priority order
/// (a car that got anything means every car ahead of it got all it could take).
fn check_sorted(plant: &Plant<'_>, laxity: bool) {
    let sc = plant.scenario;
    let h = sc.slot_hours();
    let rem = remaining_before(plant);
    #[allow(clippy::needless_range_loop)] // `slot` indexes the load and every session's row.
    for slot in 0..sc.n_slots {
        assert!(
            plant.load_kw[slot] <= sc.capacity_kw + 1e-6,
            "slot {slot} over capacity"
        );
        let spare = plant.load_kw[slot] < sc.capacity_kw - 1e-6;
        let mut waiting: Vec<(f64, usize, f64, f64)> = Vec::new();
        for s in sc.sessions.iter().filter(|s| s.is_present(slot)) {
            let r = rem[s.index][slot];
            if r <= 1e-9 {
                continue;
            }
            let full = s.rate_kw.min(r / h);
            let got = plant.delivered_kw[s.index][slot - s.arrival_slot];
            if spare {
                assert!(
                    close(got, full),
                    "slot {slot}: {} idle with spare capacity",
                    s.session_id
                );
            }
            let key = if laxity {
                (s.departure_slot - slot) as f64 - r / (s.rate_kw * h)
            } else {
                s.departure_slot as f64
            };
            waiting.push((key, s.index, got, full));
        }
        waiting.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut starved_ahead = false;
        for &(_, index, got, full) in &waiting {
            if starved_ahead {
                assert!(
                    got <= 1e-9,
                    "slot {slot}: session {index} served after a starved one"
                );
            }
            if got < full - 1e-9 {
                starved_ahead = true;
            }
        }
    }
}

#[test]
fn policies_keep_their_invariants_on_real_weeks() {
    // Short windows for the busy locations keep the debug-build test quick.
    let weeks = [
        ("OSL_S", "2019-11-04", 7, 0.15),
        ("ASK", "2019-12-02", 3, 0.25),
        ("TRO_R", "2020-01-06", 2, 0.40),
    ];
    for (location, from, days, fraction) in weeks {
        let args = real_args(location, from, days, fraction);
        let inputs = Inputs::read(&args).unwrap();
        let sc = inputs.scenario(args.window()).unwrap();
        let none = vec![None; sc.sessions.len()];
        let mut energies = Vec::new();

        let (m, plant) = simulate(&sc, none.clone(), Policy::Uncontrolled).unwrap();
        check_car_limits(&plant, m.energy_requested_kwh, m.energy_delivered_kwh);
        // Full rate from arrival until done: everyone gets all they want, as early as possible.
        assert!(close(m.energy_delivered_kwh, m.energy_requested_kwh));
        let rem = remaining_before(&plant);
        for s in &sc.sessions {
            for (k, &got) in plant.delivered_kw[s.index].iter().enumerate() {
                let left = rem[s.index][s.arrival_slot + k];
                let full = s.rate_kw.min(left / sc.slot_hours());
                assert!(close(got, full));
            }
        }

        for (policy, laxity) in [(Policy::Edf, false), (Policy::Llf, true)] {
            let (m, plant) = simulate(&sc, none.clone(), policy).unwrap();
            check_car_limits(&plant, m.energy_requested_kwh, m.energy_delivered_kwh);
            check_sorted(&plant, laxity);
            assert_eq!(m.slots_over_capacity, 0);
            energies.push((policy.name(), m.energy_delivered_kwh, m.cost_cny));
        }

        // The receding-horizon driver, with the offline solver on the plugged-in cars as a
        // forecast-free planner: within the capacity and the cars' limits, never better than
        // the optimum.
        let mut plant = Plant::new(&sc, none.clone());
        let times = engine::receding_horizon(&mut plant, engine::Replan::AtEvents, |_, p| {
            orderly_schedule::solve_offline(p)
        })
        .unwrap();
        let mpc = Metrics::measure("mpc", &plant, &times);
        check_car_limits(&plant, mpc.energy_requested_kwh, mpc.energy_delivered_kwh);
        assert_eq!(mpc.slots_over_capacity, 0, "{location}");
        assert!(!times.is_empty());
        energies.push(("mpc", mpc.energy_delivered_kwh, mpc.cost_cny));

        let (online, plant) = simulate(&sc, none.clone(), Policy::Online).unwrap();
        check_car_limits(
            &plant,
            online.energy_requested_kwh,
            online.energy_delivered_kwh,
        );
        assert_eq!(online.slots_over_capacity, 0, "{location}");
        energies.push(("online", online.energy_delivered_kwh, online.cost_cny));

        let (opt, plant) = simulate(&sc, none.clone(), Policy::OfflineOptimal).unwrap();
        check_car_limits(&plant, opt.energy_requested_kwh, opt.energy_delivered_kwh);
        assert_eq!(opt.slots_over_capacity, 0, "{location}");
        for (policy, energy, cost) in energies {
            // The optimum delivers the most energy, and at equal energy costs the least.
            assert!(
                opt.energy_delivered_kwh >= energy - 1e-6,
                "{location}: {policy}"
            );
            if close(energy, opt.energy_delivered_kwh) {
                assert!(opt.cost_cny <= cost + 1e-6, "{location}: {policy}");
            }
        }
    }
}

#[test]
fn plan_out_lists_every_slot_of_every_stay() {
    let f = dhall();
    let mut args = f.args("2020-01-01", 1, 15, 2.0 / 3.0);
    args.policy = Policy::Llf;
    args.plan_out = Some(f.path("plan.csv"));
    let metrics = orderly_sim::run(&args).unwrap();
    let text = std::fs::read_to_string(f.path("plan.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("session_id,slot_start,kw"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // X1 and X2 stay 2 slots, Y 4.
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0], ["X1", "2020-01-01T00:00:00", "4.000000"]);
    let kwh: f64 = rows
        .iter()
        .map(|r| r[2].parse::<f64>().unwrap() * 0.25)
        .sum();
    assert!(close(kwh, metrics.energy_delivered_kwh));
}

#[test]
fn online_is_deterministic_and_serves_the_textbook_case() {
    let sc = dhall_scenario();
    let (a, plant_a) = simulate(&sc, vec![None; 3], Policy::Online).unwrap();
    let (_, plant_b) = simulate(&sc, vec![None; 3], Policy::Online).unwrap();
    assert_eq!(plant_a.delivered_kw, plant_b.delivered_kw);
    assert!(close(a.energy_delivered_kwh, 6.0), "{a:?}");
    assert_eq!(a.slots_over_capacity, 0);
}

#[test]
fn forecast_learns_only_from_before_the_window() {
    // Window from 2020-02-01 (a Saturday). History period: 2020-01-03 .. 2020-01-31 (exclusive).
    let f = Fixture::new(
        &[
            // Too old.
            session(
                "u1",
                "old",
                "2020-01-02 18:00:00",
                "2020-01-03 07:00:00",
                "10",
            ),
            // Learnt: a Friday evening, 18:02 → first 15-min slot 18:15 (slot 73), to 07:00.
            session(
                "u1",
                "fri",
                "2020-01-03 18:02:00",
                "2020-01-04 07:00:00",
                "10",
            ),
            // Learnt: a Sunday.
            session(
                "u1",
                "sun",
                "2020-01-05 08:00:00",
                "2020-01-05 09:00:00",
                "50",
            ),
            // In the gap day: not learnt.
            session(
                "u1",
                "gap",
                "2020-01-31 08:00:00",
                "2020-01-31 09:00:00",
                "5",
            ),
            // In the window: never learnt.
            session(
                "u1",
                "in",
                "2020-02-01 08:00:00",
                "2020-02-01 09:00:00",
                "5",
            ),
            session(
                "u1",
                "later",
                "2020-02-05 08:00:00",
                "2020-02-05 09:00:00",
                "5",
            ),
        ],
        &["\"u1\";4;40"],
    );
    let args = f.args("2020-02-01", 1, 15, 0.5);
    let sc = Inputs::read(&args)
        .unwrap()
        .scenario(args.window())
        .unwrap();
    let (days, history) = engine::forecast_history(&sc);
    assert_eq!((days.weekdays, days.weekend_days), (20, 8));
    assert_eq!(history.len(), 2, "{history:?}");
    let fri = &history[0];
    assert_eq!(fri.day_type, orderly_schedule::DayType::Weekday);
    assert_eq!((fri.arrival_slot_of_day, fri.duration_slots), (73, 51));
    assert_eq!(fri.energy_kwh, 10.0);
    let sun = &history[1];
    assert_eq!(sun.day_type, orderly_schedule::DayType::Weekend);
    // 50 kWh recorded, capped at 4 kW × 1 h.
    assert!(close(sun.energy_kwh, 4.0));
}
