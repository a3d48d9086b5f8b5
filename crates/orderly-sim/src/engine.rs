//! The policies that drive the `orderly-schedule` engine.
//!
//! - `offline-optimal`: one [`orderly_schedule::solve_offline`] call on every session of the
//!   window (all arrivals known in advance), then the plan is played through the plant. This
//!   is the yardstick, not a policy a real site could run.
//!
//! Sessions are given to the engine with no minimum power (the dataset's chargers are
//! measured at one power, and the reference LP has none) and normal priority.

use std::time::Instant;

use orderly_schedule::{Priority, Problem, Session, V2g};

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
