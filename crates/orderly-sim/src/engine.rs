//! The policies that drive the `orderly-schedule` engine.
//!
//! - `offline-optimal`: one [`orderly_schedule::solve_offline`] call on every session of the
//!   window (all arrivals known in advance), then the plan is played through the plant. This
//!   is the yardstick, not a policy a real site could run.
//!
//! - `online`: [`receding_horizon`] with the engine's online planner: at each event (an
//!   arrival, a departure, or a slot whose measured power differed from the plan) the planner
//!   gets only the cars plugged in now, with what they still want and their battery level now,
//!   over the rest of the window, and the plan's first slots are played until the next event.
//!
//! Sessions are given to the engine with no minimum power (the dataset's chargers are
//! measured at one power, and the reference LP has none) and normal priority.

use std::time::Instant;

use orderly_schedule::{Plan, Priority, Problem, ScheduleError, Session, V2g};

use crate::error::SimError;
use crate::plant::Plant;
use crate::window::Scenario;

/// The engine's view of a scenario: every session that occupies at least one slot.
pub fn problem(scenario: &Scenario, v2g: &[Option<V2g>]) -> Problem {
    Problem {
        slot_minutes: scenario.spec.slot_minutes,
        capacity_kw: vec![scenario.capacity_kw; scenario.n_slots],
        price: scenario.price.clone(),
        sessions: scenario
            .sessions
            .iter()
            .filter(|s| s.slots() > 0)
            .map(|s| Session {
                id: s.index as u64,
                arrival_slot: s.arrival_slot,
                departure_slot: s.departure_slot,
                energy_kwh: s.wanted_kwh,
                max_kw: s.rate_kw,
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g: v2g[s.index].clone(),
            })
            .collect(),
    }
}

/// Runs the offline optimum; returns the solve time (ms) as the one planning call.
pub fn offline(plant: &mut Plant<'_>) -> Result<Vec<f64>, SimError> {
    let v2g: Vec<Option<V2g>> = plant
        .v2g
        .iter()
        .map(|c| c.as_ref().map(|c| c.params.clone()))
        .collect();
    let problem = problem(plant.scenario, &v2g);
    let began = Instant::now();
    let plan =
        orderly_schedule::solve_offline(&problem).map_err(|e| SimError::Engine(e.to_string()))?;
    let solve_ms = began.elapsed().as_secs_f64() * 1e3;
    for slot in 0..plant.scenario.n_slots {
        for session in &plan.sessions {
            let kw = session.power_kw.get(slot).copied().unwrap_or(0.0);
            if kw != 0.0 {
                plant.apply(slot, session.id as usize, kw);
            }
        }
    }
    Ok(vec![solve_ms])
}

/// A measured power this far from the plan's (kW) triggers a re-plan: float noise does not.
pub const MEASURED_DIFFERS_KW: f64 = 1e-6;

/// What the planner is told at slot `now`: the cars plugged in now, slot indices relative to
/// `now` (slot 0 is `now`), capacity and prices until the window end. A charge-only car that
/// is full is left out; a V2G car stays in while plugged in (it may still trade), with its
/// battery level now.
pub fn problem_now(plant: &Plant<'_>, now: usize) -> Problem {
    let sc = plant.scenario;
    let sessions = plant
        .present(now)
        .filter_map(|i| {
            let s = &sc.sessions[i];
            let v2g = plant.v2g[i].as_ref().map(|car| V2g {
                soc_kwh: car.soc_kwh.clamp(0.0, car.params.battery_kwh),
                ..car.params.clone()
            });
            let remaining = plant.remaining_kwh[i];
            if v2g.is_none() && remaining <= crate::plant::ENERGY_EPS_KWH {
                return None;
            }
            Some(Session {
                id: i as u64,
                arrival_slot: 0,
                departure_slot: s.departure_slot - now,
                energy_kwh: remaining.max(0.0),
                max_kw: s.rate_kw,
                min_kw: 0.0,
                priority: Priority::Normal,
                v2g,
            })
        })
        .collect();
    Problem {
        slot_minutes: sc.spec.slot_minutes,
        capacity_kw: vec![sc.capacity_kw; sc.n_slots - now],
        price: sc.price[now..].to_vec(),
        sessions,
    }
}

/// Replays a receding-horizon policy: `planner(now, problem)` is called at each event with
/// [`problem_now`]; between events the latest plan is followed. Returns each call's time (ms).
pub fn receding_horizon(
    plant: &mut Plant<'_>,
    mut planner: impl FnMut(usize, &Problem) -> Result<Plan, ScheduleError>,
) -> Result<Vec<f64>, SimError> {
    let sc = plant.scenario;
    let mut times = Vec::new();
    // Per session index: its planned powers and the slot they start at.
    let mut planned: Vec<Option<(usize, Vec<f64>)>> = vec![None; sc.sessions.len()];
    let mut differs = false;
    let mut event = vec![false; sc.n_slots + 1];
    for s in sc.sessions.iter().filter(|s| s.slots() > 0) {
        event[s.arrival_slot] = true;
        event[s.departure_slot] = true;
    }
    for (now, &is_event) in event.iter().enumerate().take(sc.n_slots) {
        if is_event || differs {
            let problem = problem_now(plant, now);
            planned.iter_mut().for_each(|p| *p = None);
            if !problem.sessions.is_empty() {
                let began = Instant::now();
                let plan = planner(now, &problem).map_err(|e| SimError::Engine(e.to_string()))?;
                times.push(began.elapsed().as_secs_f64() * 1e3);
                for session in plan.sessions {
                    planned[session.id as usize] = Some((now, session.power_kw));
                }
            }
            differs = false;
        }
        let present: Vec<usize> = plant.present(now).collect();
        for i in present {
            let want = planned[i]
                .as_ref()
                .and_then(|(origin, kw)| kw.get(now - origin).copied())
                .unwrap_or(0.0);
            let got = plant.apply(now, i, want);
            if (got - want).abs() > MEASURED_DIFFERS_KW {
                differs = true;
            }
        }
    }
    Ok(times)
}
