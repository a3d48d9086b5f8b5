//! Baseline policies, decided slot by slot from what is plugged in now:
//!
//! - `uncontrolled`: every car at its full rate from arrival until it is done, blind to the
//!   capacity (what happens without orderly charging).
//! - `edf` / `llf`: acnportal's sorted schedulers (`SortedSchedulingAlgo` with
//!   `earliest_deadline_first` / `least_laxity_first`, re-run every period). In each slot the
//!   cars that still want energy are sorted — by departure, or by laxity
//!   `(departure − now) − remaining / (rate · slot)` in slots — and served in that order, each
//!   the most it can take (its rate, and no more than it still wants) within the capacity left.
//!   Ties keep the order of the session list (plug-in time, then id), as Python's stable sort
//!   keeps acnportal's station order; the acnportal comparison registers one station per
//!   session in that order.

use std::time::Instant;

use crate::plant::{ENERGY_EPS_KWH, Plant};

/// Which sorted scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    EarliestDeadline,
    LeastLaxity,
}

/// Runs the uncontrolled policy; returns the decision times (ms) of the slots with a car.
pub fn uncontrolled(plant: &mut Plant<'_>) -> Vec<f64> {
    let mut times = Vec::new();
    for slot in 0..plant.scenario.n_slots {
        let began = Instant::now();
        let present: Vec<usize> = plant.present(slot).collect();
        for &i in &present {
            let rate = plant.scenario.sessions[i].rate_kw;
            plant.apply(slot, i, rate);
        }
        if !present.is_empty() {
            times.push(began.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
}

/// Runs EDF or LLF; returns the decision times (ms) of the slots with a car wanting energy.
pub fn sorted(plant: &mut Plant<'_>, order: Order) -> Vec<f64> {
    let h = plant.scenario.slot_hours();
    let capacity = plant.scenario.capacity_kw;
    let mut times = Vec::new();
    for slot in 0..plant.scenario.n_slots {
        let began = Instant::now();
        let mut queue: Vec<(f64, usize)> = plant
            .present(slot)
            .filter(|&i| plant.remaining_kwh[i] > ENERGY_EPS_KWH)
            .map(|i| {
                let s = &plant.scenario.sessions[i];
                let key = match order {
                    Order::EarliestDeadline => s.departure_slot as f64,
                    Order::LeastLaxity => {
                        (s.departure_slot - slot) as f64 - plant.remaining_kwh[i] / (s.rate_kw * h)
                    }
                };
                (key, i)
            })
            .collect();
        if queue.is_empty() {
            continue;
        }
        queue.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut left = capacity;
        for (_, i) in queue {
            let s = &plant.scenario.sessions[i];
            let want = s.rate_kw.min(plant.remaining_kwh[i] / h).min(left.max(0.0));
            left -= plant.apply(slot, i, want);
        }
        times.push(began.elapsed().as_secs_f64() * 1e3);
    }
    times
}
