//! Shared test helpers: random instances and an independent LP reference (good_lp + Clarabel).
#![allow(dead_code)]

use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, clarabel, variable};
use orderly_schedule::{Plan, Priority, Problem, Session};
use proptest::prelude::*;

pub const BEIJING: [f64; 3] = [0.3946, 0.6950, 1.0044];

/// Powers of an LP solution: `p[i][t]` (kW) for each session.
pub type Powers = Vec<Vec<f64>>;

/// What the lexicographic LP says about the normal (non-emergency, non-V2G) sessions.
pub struct LpReference {
    pub max_energy: f64,
    pub max_min_fraction: f64,
}

pub fn h(p: &Problem) -> f64 {
    f64::from(p.slot_minutes) / 60.0
}

struct Model {
    vars: ProblemVariables,
    p: Vec<Vec<Option<Variable>>>,
}

fn model(pr: &Problem) -> Model {
    let slots = pr.price.len();
    let mut vars = ProblemVariables::new();
    let p = pr
        .sessions
        .iter()
        .map(|s| {
            (0..slots)
                .map(|t| {
                    (s.arrival_slot <= t && t < s.departure_slot)
                        .then(|| vars.add(variable().min(0.0).max(s.max_kw)))
                })
                .collect()
        })
        .collect();
    Model { vars, p }
}

fn energy(m: &Model, i: usize, hh: f64) -> Expression {
    m.p[i].iter().flatten().map(|&v| hh * v).sum()
}

fn base_constraints(pr: &Problem, m: &Model, cap: &[f64]) -> Vec<good_lp::Constraint> {
    let hh = h(pr);
    let mut cs = Vec::new();
    for (i, s) in pr.sessions.iter().enumerate() {
        if m.p[i].iter().any(|v| v.is_some()) {
            cs.push(energy(m, i, hh).leq(s.energy_kwh));
        }
    }
    for (t, &c) in cap.iter().enumerate() {
        let load: Expression = m.p.iter().filter_map(|r| r[t]).map(Expression::from).sum();
        cs.push(load.leq(c.max(0.0)));
    }
    cs
}

fn solve_max(
    vars: ProblemVariables,
    objective: Expression,
    cs: Vec<good_lp::Constraint>,
) -> impl Solution {
    let mut pb = vars.maximise(objective).using(clarabel);
    pb.settings()
        .tol_gap_abs(1e-11)
        .tol_gap_rel(1e-11)
        .tol_feas(1e-11)
        .max_iter(500);
    pb.with_all(cs).solve().expect("reference LP solves")
}

fn solve_min(
    vars: ProblemVariables,
    objective: Expression,
    cs: Vec<good_lp::Constraint>,
) -> impl Solution {
    let mut pb = vars.minimise(objective).using(clarabel);
    pb.settings()
        .tol_gap_abs(1e-11)
        .tol_gap_rel(1e-11)
        .tol_feas(1e-11)
        .max_iter(500);
    pb.with_all(cs).solve().expect("reference LP solves")
}

/// Stage 1 and 2 of the lexicographic LP: most energy, then the best worst served fraction among
/// maximum-energy plans. `cap` is the capacity left for these sessions.
pub fn reference(pr: &Problem, cap: &[f64]) -> LpReference {
    let hh = h(pr);
    let m = model(pr);
    let total: Expression = (0..pr.sessions.len()).map(|i| energy(&m, i, hh)).sum();
    let cs = base_constraints(pr, &m, cap);
    let sol = solve_max(m.vars, total.clone(), cs);
    let max_energy = sol.eval(&total);

    let mut m = model(pr);
    let z = m.vars.add(variable().min(0.0).max(1.0));
    let mut cs = base_constraints(pr, &m, cap);
    let total: Expression = (0..pr.sessions.len()).map(|i| energy(&m, i, hh)).sum();
    cs.push(total.geq(max_energy - 1e-9 * max_energy.max(1.0)));
    for (i, s) in pr.sessions.iter().enumerate() {
        if s.energy_kwh > 0.0 {
            cs.push(energy(&m, i, hh).geq(servable(pr, s) * z));
        }
    }
    let sol = solve_max(m.vars, z.into(), cs);
    LpReference {
        max_energy,
        max_min_fraction: sol.value(z),
    }
}

/// Stage 3: least cost delivering at least `energies[i]` to each session (and at most its request).
/// Returns the cost and the LP's powers.
pub fn min_cost(pr: &Problem, cap: &[f64], energies: &[f64]) -> (f64, Powers) {
    let hh = h(pr);
    let m = model(pr);
    let mut cs = base_constraints(pr, &m, cap);
    for (i, &e) in energies.iter().enumerate() {
        if m.p[i].iter().any(|v| v.is_some()) && e > 0.0 {
            cs.push(energy(&m, i, hh).geq(e - 1e-10 * e.max(1.0)));
        }
    }
    let cost: Expression =
        m.p.iter()
            .flat_map(|r| r.iter().enumerate().filter_map(|(t, v)| v.map(|v| (t, v))))
            .map(|(t, v)| (pr.price[t] * hh) * v)
            .sum();
    let sol = solve_min(m.vars, cost.clone(), cs);
    let powers =
        m.p.iter()
            .map(|r| r.iter().map(|v| v.map_or(0.0, |v| sol.value(v))).collect())
            .collect();
    (sol.eval(&cost), powers)
}

/// Stage 4 (partial): a plan with the least peak load over the slots of the cheapest price
/// level, among plans with these energies and at most this cost: power per session per slot, as
/// the solver returned it (the caller measures what it violated).
pub fn min_cheapest_peak(pr: &Problem, cap: &[f64], energies: &[f64], cost: f64) -> Powers {
    let hh = h(pr);
    let mut m = model(pr);
    let peak = m.vars.add(variable().min(0.0));
    let mut cs = base_constraints(pr, &m, cap);
    for (i, &e) in energies.iter().enumerate() {
        if m.p[i].iter().any(|v| v.is_some()) && e > 0.0 {
            cs.push(energy(&m, i, hh).geq(e - 1e-10 * e.max(1.0)));
        }
    }
    let c: Expression =
        m.p.iter()
            .flat_map(|r| r.iter().enumerate().filter_map(|(t, v)| v.map(|v| (t, v))))
            .map(|(t, v)| (pr.price[t] * hh) * v)
            .sum();
    cs.push(c.leq(cost + 1e-9 * cost.abs().max(1.0)));
    let cheapest = pr.price.iter().cloned().fold(f64::INFINITY, f64::min);
    for t in 0..pr.price.len() {
        if pr.price[t] == cheapest {
            let load: Expression = m.p.iter().filter_map(|r| r[t]).map(Expression::from).sum();
            cs.push(load.leq(peak));
        }
    }
    let p = m.p.clone();
    let sol = solve_min(m.vars, peak.into(), cs);
    p.iter()
        .map(|r| r.iter().map(|v| v.map_or(0.0, |v| sol.value(v))).collect())
        .collect()
}

/// The largest total load over the slots of the cheapest price level.
pub fn cheapest_peak(pr: &Problem, powers: &[Vec<f64>]) -> f64 {
    let cheapest = pr.price.iter().cloned().fold(f64::INFINITY, f64::min);
    (0..pr.price.len())
        .filter(|&t| pr.price[t] == cheapest)
        .map(|t| powers.iter().map(|r| r[t]).sum::<f64>())
        .fold(0.0, f64::max)
}

/// Check the plan's hard rules: windows, rates, capacity, never more than requested.
pub fn check_invariants(pr: &Problem, plan: &Plan) -> Result<(), String> {
    let hh = h(pr);
    let slots = pr.price.len();
    if plan.sessions.len() != pr.sessions.len() {
        return Err("plan has a different number of sessions".into());
    }
    let mut load = vec![0.0; slots];
    for (s, sp) in pr.sessions.iter().zip(&plan.sessions) {
        if sp.id != s.id || sp.power_kw.len() != slots {
            return Err(format!("session {}: id or length wrong", s.id));
        }
        let mut e = 0.0;
        for (t, &kw) in sp.power_kw.iter().enumerate() {
            let inside = s.arrival_slot <= t && t < s.departure_slot;
            if !inside && kw != 0.0 {
                return Err(format!(
                    "session {} charges outside its window at {t}",
                    s.id
                ));
            }
            if kw > s.max_kw + 1e-9 || (s.v2g.is_none() && kw < 0.0) {
                return Err(format!("session {} rate {kw} at {t}", s.id));
            }
            if kw > 0.0 && kw < s.min_kw - 1e-9 {
                return Err(format!("session {} below min power: {kw} at {t}", s.id));
            }
            load[t] += kw;
            e += kw * hh;
        }
        if s.v2g.is_none() && e > s.energy_kwh + 1e-9 * s.energy_kwh.max(1.0) {
            return Err(format!(
                "session {} over-served: {e} > {}",
                s.id, s.energy_kwh
            ));
        }
        if (e - sp.energy_kwh).abs() > 1e-9 * e.abs().max(1.0) {
            return Err(format!("session {} energy misreported", s.id));
        }
    }
    for (t, &l) in load.iter().enumerate() {
        if l > pr.capacity_kw[t].max(0.0) + 1e-9 * pr.capacity_kw[t].abs().max(1.0) {
            return Err(format!(
                "slot {t} over capacity: {l} > {}",
                pr.capacity_kw[t]
            ));
        }
    }
    Ok(())
}

/// What a session could take alone: its request capped by its rate over its window.
pub fn servable(pr: &Problem, s: &Session) -> f64 {
    let d = s.departure_slot.min(pr.price.len());
    let a = s.arrival_slot.min(d);
    s.energy_kwh.min(s.max_kw * (d - a) as f64 * h(pr))
}

pub fn plan_cost(plan: &Plan) -> f64 {
    plan.sessions.iter().map(|s| s.cost_cny).sum()
}

pub fn plan_energy(plan: &Plan) -> f64 {
    plan.sessions.iter().map(|s| s.energy_kwh).sum()
}

pub fn close(a: f64, b: f64, rel: f64, floor: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(floor)
}

/// Prices: a tariff-like pattern with few levels, or arbitrary values per slot.
pub fn prices(slots: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        // Few levels in blocks, like a time-of-use tariff.
        (prop::collection::vec(0usize..3, 1..6), 1usize..12).prop_map(move |(bands, block)| {
            (0..slots)
                .map(|t| BEIJING[bands[(t / block) % bands.len()]])
                .collect()
        }),
        // Arbitrary, with occasional ties.
        prop::collection::vec(1u32..400, slots)
            .prop_map(|v| v.into_iter().map(|x| f64::from(x) / 200.0).collect()),
    ]
}

pub fn session(slots: usize, id: u64) -> impl Strategy<Value = Session> {
    (
        0..slots,
        1..=slots,
        0u32..120,
        prop::sample::select(vec![1.5, 3.6, 7.4, 11.0, 22.0]),
    )
        .prop_map(move |(a, len, e, r)| Session {
            id,
            arrival_slot: a,
            departure_slot: (a + len).min(slots),
            energy_kwh: f64::from(e) / 2.0,
            max_kw: r,
            min_kw: 0.0,
            priority: Priority::Normal,
            v2g: None,
        })
}

pub fn problem(max_sessions: usize) -> impl Strategy<Value = Problem> {
    (4usize..=48, prop::sample::select(vec![15u32, 60]))
        .prop_flat_map(move |(slots, minutes)| {
            let caps = prop_oneof![
                (1u32..80).prop_map(move |c| vec![f64::from(c) / 2.0; slots]),
                prop::collection::vec(0u32..80, slots)
                    .prop_map(|v| v.into_iter().map(|c| f64::from(c) / 2.0).collect()),
            ];
            let sessions = prop::collection::vec(session(slots, 0), 1..=max_sessions);
            (Just(minutes), caps, prices(slots), sessions)
        })
        .prop_map(|(slot_minutes, capacity_kw, price, mut sessions)| {
            for (i, s) in sessions.iter_mut().enumerate() {
                s.id = i as u64 + 1;
            }
            Problem {
                slot_minutes,
                capacity_kw,
                price,
                sessions,
            }
        })
}

pub mod sim;
