//! The offline solver: every session known in advance. Validates the problem, serves emergency
//! sessions first, runs the fast path for the rest, improves V2G cars by linear programming,
//! repairs minimum-power slivers, and assembles the [`Plan`].

use crate::error::ScheduleError;
use crate::model::{Plan, Priority, Problem, Session, SessionPlan};
use crate::transport::{self, Car, Options};
use crate::{minpower, v2g};

/// Numerical tolerance (relative to the quantities compared) used when reporting a plan.
pub(crate) const REL_TOL: f64 = 1e-9;

/// The exact offline optimum of `problem`, with the lexicographic objective of the crate docs.
pub fn solve_offline(problem: &Problem) -> Result<Plan, ScheduleError> {
    validate(problem)?;
    let power = plan_powers(problem, &SolveOptions::default(), problem.sessions.len())?;
    Ok(assemble(problem, power))
}

/// Knobs of the solver pipeline; the defaults give the documented objective.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SolveOptions {
    pub flatten: bool,
    pub early: bool,
    pub repair_min_power: bool,
    pub v2g: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            flatten: true,
            early: false,
            repair_min_power: true,
            v2g: true,
        }
    }
}

pub(crate) fn validate(p: &Problem) -> Result<(), ScheduleError> {
    if p.slot_minutes == 0 {
        return Err(ScheduleError::InvalidSlotMinutes(0));
    }
    if p.capacity_kw.len() != p.price.len() {
        return Err(ScheduleError::LengthMismatch {
            capacity: p.capacity_kw.len(),
            price: p.price.len(),
        });
    }
    for (slot, c) in p.capacity_kw.iter().enumerate() {
        if !c.is_finite() {
            return Err(ScheduleError::NonFiniteSlot {
                what: "capacity",
                slot,
            });
        }
    }
    for (slot, c) in p.price.iter().enumerate() {
        if !c.is_finite() {
            return Err(ScheduleError::NonFiniteSlot {
                what: "price",
                slot,
            });
        }
    }
    for s in &p.sessions {
        let bad = |reason: &str| {
            Err(ScheduleError::InvalidSession {
                id: s.id,
                reason: reason.to_string(),
            })
        };
        if !(s.energy_kwh.is_finite() && s.energy_kwh >= 0.0) {
            return bad("energy must be a finite number ≥ 0");
        }
        if !(s.max_kw.is_finite() && s.max_kw >= 0.0) {
            return bad("max_kw must be a finite number ≥ 0");
        }
        if !(s.min_kw.is_finite() && s.min_kw >= 0.0 && s.min_kw <= s.max_kw) {
            return bad("min_kw must be finite and in [0, max_kw]");
        }
        if let Some(v) = &s.v2g {
            let fin = [
                v.battery_kwh,
                v.soc_kwh,
                v.floor_kwh,
                v.max_discharge_kw,
                v.charge_efficiency,
                v.discharge_efficiency,
                v.wear_cny_per_kwh,
            ]
            .iter()
            .all(|x| x.is_finite());
            if !fin {
                return bad("V2G parameters must be finite");
            }
            let efficiency = |x: f64| x > 0.0 && x <= 1.0;
            if !(efficiency(v.charge_efficiency) && efficiency(v.discharge_efficiency)) {
                return bad("V2G efficiencies must be in (0, 1]");
            }
            if v.battery_kwh < 0.0
                || v.soc_kwh < 0.0
                || v.soc_kwh > v.battery_kwh + 1e-9
                || v.floor_kwh < 0.0
                || v.max_discharge_kw < 0.0
                || v.wear_cny_per_kwh < 0.0
            {
                return bad("V2G: need 0 ≤ soc ≤ battery, floor ≥ 0, discharge ≥ 0, wear ≥ 0");
            }
        }
    }
    Ok(())
}

pub(crate) fn slot_hours(p: &Problem) -> f64 {
    f64::from(p.slot_minutes) / 60.0
}

/// The session's window clamped to the horizon.
pub(crate) fn window(s: &Session, slots: usize) -> (usize, usize) {
    let d = s.departure_slot.min(slots);
    (s.arrival_slot.min(d), d)
}

/// Power per session per slot (kW), the pipeline without validation and assembly. Sessions from
/// index `ghosts_from` on are the online planner's ghosts.
pub(crate) fn plan_powers(
    p: &Problem,
    opts: &SolveOptions,
    ghosts_from: usize,
) -> Result<Vec<Vec<f64>>, ScheduleError> {
    let slots = p.price.len();
    let h = slot_hours(p);
    let n = p.sessions.len();
    let mut power = vec![vec![0.0; slots]; n];
    let mut residual: Vec<f64> = p.capacity_kw.iter().map(|c| c.max(0.0)).collect();

    let base = emergency(p, h, &mut power, &mut residual);

    let normal: Vec<usize> = (0..n)
        .filter(|&i| p.sessions[i].priority == Priority::Normal)
        .collect();
    let cars: Vec<Car> = normal
        .iter()
        .map(|&i| {
            let s = &p.sessions[i];
            let (a, d) = window(s, slots);
            Car {
                arrival: a,
                departure: d,
                energy_kwh: s.energy_kwh,
                max_kw: s.max_kw,
                ghost: i >= ghosts_from,
            }
        })
        .collect();
    let runs = transport::solve(
        h,
        &p.price,
        &residual,
        &base,
        &cars,
        Options {
            flatten: opts.flatten,
            early: opts.early,
        },
    );
    for (k, &i) in normal.iter().enumerate() {
        for r in &runs[k] {
            for x in &mut power[i][r.start..r.end] {
                *x = r.kw;
            }
        }
    }

    if opts.v2g && p.sessions.iter().any(|s| s.v2g.is_some()) {
        v2g::improve(p, &mut power)?;
    }
    if opts.repair_min_power && p.sessions.iter().any(|s| s.min_kw > 0.0) {
        minpower::repair(p, &mut power);
    }
    Ok(power)
}

/// Emergency sessions charge at full rate from arrival until done. When they alone exceed the
/// capacity of a slot, the slot's capacity is water-filled among them: every emergency car gets
/// the same power, except those that need less (rate or remaining energy), whose share is spread
/// over the others. Returns the emergency load per slot and lowers `residual` by it.
fn emergency(p: &Problem, h: f64, power: &mut [Vec<f64>], residual: &mut [f64]) -> Vec<f64> {
    let slots = p.price.len();
    let mut base = vec![0.0; slots];
    let em: Vec<usize> = (0..p.sessions.len())
        .filter(|&i| p.sessions[i].priority == Priority::Emergency)
        .collect();
    if em.is_empty() {
        return base;
    }
    let mut left: Vec<f64> = em.iter().map(|&i| p.sessions[i].energy_kwh).collect();
    let mut want: Vec<(f64, usize)> = Vec::new();
    for t in 0..slots {
        want.clear();
        for (k, &i) in em.iter().enumerate() {
            let s = &p.sessions[i];
            let (a, d) = window(s, slots);
            if a <= t && t < d && left[k] > 0.0 {
                want.push(((left[k] / h).min(s.max_kw), k));
            }
        }
        if want.is_empty() {
            continue;
        }
        want.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut cap = residual[t];
        let mut rest = want.len();
        for &(w, k) in want.iter() {
            let share = cap / rest as f64;
            let kw = w.min(share).max(0.0);
            cap -= kw;
            rest -= 1;
            power[em[k]][t] = kw;
            left[k] -= kw * h;
            base[t] += kw;
        }
        residual[t] = cap.max(0.0);
    }
    base
}

/// Turn powers into the [`Plan`]: energy, finish slot and cost per session.
pub(crate) fn assemble(p: &Problem, power: Vec<Vec<f64>>) -> Plan {
    let h = slot_hours(p);
    let sessions = p
        .sessions
        .iter()
        .zip(power)
        .map(|(s, pw)| session_plan(s, pw, &p.price, h))
        .collect();
    Plan { sessions }
}

pub(crate) fn session_plan(s: &Session, power_kw: Vec<f64>, price: &[f64], h: f64) -> SessionPlan {
    let mut energy = 0.0;
    let mut cost = 0.0;
    let mut finish = None;
    let tol = REL_TOL * s.energy_kwh.max(1.0);
    let (a, _) = window(s, power_kw.len());
    if s.energy_kwh <= tol {
        finish = Some(a);
    }
    let wear = s.v2g.as_ref();
    for (t, &kw) in power_kw.iter().enumerate() {
        energy += kw * h;
        cost += kw * h * price[t];
        if let (true, Some(v)) = (kw < 0.0, wear) {
            cost += v.wear_cny_per_kwh * (-kw) * h / v.discharge_efficiency;
        }
        if finish.is_none() && energy >= s.energy_kwh - tol {
            finish = Some(t + 1);
        }
    }
    SessionPlan {
        id: s.id,
        power_kw,
        energy_kwh: energy,
        finish_slot: finish,
        cost_cny: cost,
    }
}
