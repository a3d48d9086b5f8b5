//! V2G: cars that may also discharge to the grid, planned by a linear program (Clarabel).
//!
//! The fast path first plans every car as if none discharged; that fixes the energy each car gets
//! (objectives (a) and (b)). The V2G cars are then re-planned together by an LP over the capacity
//! the other cars leave, keeping each one's battery at departure at least where the plan without
//! V2G put it, never below its floor and never above its size, and minimising energy cost minus
//! discharge revenue plus wear. The plan without V2G is a feasible point of that LP, so V2G never
//! costs more than not using it. The other cars are not re-planned around the V2G cars, so this
//! is optimal for the V2G cars given the others, not a joint optimum.

use good_lp::{
    Constraint, Expression, ProblemVariables, Solution, SolverModel, Variable, clarabel, variable,
};

use crate::error::ScheduleError;
use crate::model::{Priority, Problem};
use crate::offline::{slot_hours, window};

/// Values below this (kW) are interior-point noise and are set to zero.
const CLEAN_KW: f64 = 1e-7;

struct Car {
    idx: usize,
    start: usize,
    charge: Vec<Variable>,
    discharge: Vec<Variable>,
}

/// Re-plan the V2G cars of `power` (all sessions' powers, kW) by linear programming.
pub(crate) fn improve(p: &Problem, power: &mut [Vec<f64>]) -> Result<(), ScheduleError> {
    let slots = p.price.len();
    let h = slot_hours(p);
    let eligible: Vec<usize> = (0..p.sessions.len())
        .filter(|&i| {
            let s = &p.sessions[i];
            let (a, d) = window(s, slots);
            match &s.v2g {
                // A car below its floor cannot discharge at all: it keeps the plain plan.
                Some(v) => {
                    s.priority == Priority::Normal
                        && a < d
                        && v.max_discharge_kw > 0.0
                        && v.soc_kwh >= v.floor_kwh
                }
                None => false,
            }
        })
        .collect();
    if eligible.is_empty() {
        return Ok(());
    }
    let mut is_v2g = vec![false; p.sessions.len()];
    for &i in &eligible {
        is_v2g[i] = true;
    }
    // Room for the V2G cars: capacity minus every other car's planned load (never less than what
    // the V2G cars already use, so that their current plan stays feasible despite rounding).
    let mut room: Vec<f64> = p.capacity_kw.iter().map(|c| c.max(0.0)).collect();
    let mut own = vec![0.0; slots];
    for (i, pw) in power.iter().enumerate() {
        for t in 0..slots {
            if is_v2g[i] {
                own[t] += pw[t];
            } else {
                room[t] -= pw[t];
            }
        }
    }
    for t in 0..slots {
        room[t] = room[t].max(own[t]);
    }

    let mut vars = ProblemVariables::new();
    let mut cars = Vec::with_capacity(eligible.len());
    let mut cons: Vec<Constraint> = Vec::new();
    let mut objective = Expression::default();
    let mut load: Vec<Expression> = vec![Expression::default(); slots];
    let mut used = vec![false; slots];
    for &i in &eligible {
        let s = &p.sessions[i];
        let v = s.v2g.as_ref().expect("eligible cars have V2G");
        let (a, d) = window(s, slots);
        let gained: f64 = power[i][a..d].iter().map(|kw| kw * h).sum();
        let target = v.soc_kwh + v.charge_efficiency * gained;
        let top = v.battery_kwh.max(target);
        let mut car = Car {
            idx: i,
            start: a,
            charge: Vec::with_capacity(d - a),
            discharge: Vec::with_capacity(d - a),
        };
        let mut soc: Expression = v.soc_kwh.into();
        for t in a..d {
            let c = vars.add(variable().min(0.0).max(s.max_kw));
            let dis = vars.add(variable().min(0.0).max(v.max_discharge_kw));
            let next = vars.add(variable().min(v.floor_kwh).max(top));
            cons.push(
                Expression::from(next)
                    .eq(soc + (v.charge_efficiency * h) * c - (h / v.discharge_efficiency) * dis),
            );
            soc = next.into();
            objective += (p.price[t] * h) * c;
            objective += ((v.wear_cny_per_kwh / v.discharge_efficiency - p.price[t]) * h) * dis;
            load[t] += c - dis;
            used[t] = true;
            car.charge.push(c);
            car.discharge.push(dis);
        }
        cons.push(soc.geq(target));
        cars.push(car);
    }
    for t in 0..slots {
        if used[t] {
            cons.push(std::mem::take(&mut load[t]).leq(room[t]));
        }
    }
    let mut model = vars.minimise(objective).using(clarabel);
    model
        .settings()
        .tol_gap_abs(1e-10)
        .tol_gap_rel(1e-10)
        .tol_feas(1e-10)
        .max_iter(400);
    let sol = model
        .with_all(cons)
        .solve()
        .map_err(|e| ScheduleError::V2gSolver(e.to_string()))?;

    for car in &cars {
        let s = &p.sessions[car.idx];
        let v = s.v2g.as_ref().expect("eligible cars have V2G");
        for (k, (&c, &dis)) in car.charge.iter().zip(&car.discharge).enumerate() {
            // Netting a slot's charge and discharge only reduces losses: the battery ends higher.
            let mut kw = sol.value(c) - sol.value(dis);
            // Drop only tiny discharges: dropping a tiny charge could leave the battery a hair
            // below its floor or target later on.
            if kw < 0.0 && kw > -CLEAN_KW {
                kw = 0.0;
            }
            power[car.idx][car.start + k] = kw.clamp(-v.max_discharge_kw, s.max_kw);
        }
    }
    Ok(())
}
