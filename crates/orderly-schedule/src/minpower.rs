//! Minimum power: a planned charging power is 0 or in `[min_kw, max_kw]`.
//!
//! The rule makes the problem non-convex, so it is handled by repairing the relaxed optimum:
//!
//! 1. every *sliver* (a power in `(0, min_kw)`) of every normal session is removed, which frees
//!    capacity in the slots where the relaxation spread energy thinly;
//! 2. sessions are then served in order of departure (the least flexible first), each putting its
//!    removed energy back into its own window, cheapest slot first (ties: the earlier slot): a slot
//!    where it already charges is topped up towards `max_kw`, an idle slot is opened only with at
//!    least `min_kw` of headroom and at least `min_kw` of energy left to place;
//! 3. a remainder smaller than one slot at `min_kw` is placed by opening one more slot at exactly
//!    `min_kw` and taking the excess back from the session's most expensive slots that stay at or
//!    above `min_kw`; if that is impossible, the remainder is not delivered.
//!
//! Capacity, windows and rates are never violated; the price is energy that cannot be placed and
//! energy moved to dearer slots, measured against the relaxation by the `minpower_cost` example.
//! Emergency sessions (full rate first) and V2G cars (whose battery floor a move could break) are
//! left as they are.

use crate::model::{Priority, Problem};
use crate::offline::{slot_hours, window};

pub(crate) fn repair(p: &Problem, power: &mut [Vec<f64>]) {
    let slots = p.price.len();
    let h = slot_hours(p);
    let mut load = vec![0.0; slots];
    for pw in power.iter() {
        for t in 0..slots {
            load[t] += pw[t];
        }
    }
    // 1. Remove every sliver.
    let mut owed: Vec<(usize, f64)> = Vec::new();
    for (i, s) in p.sessions.iter().enumerate() {
        // V2G cars are left alone: moving their charging could take the battery below its floor
        // between the old and the new slot.
        if s.min_kw <= 0.0 || s.priority == Priority::Emergency || s.v2g.is_some() {
            continue;
        }
        let mut e = 0.0;
        for t in 0..slots {
            let kw = power[i][t];
            if kw > 0.0 && kw < s.min_kw {
                e += kw * h;
                load[t] -= kw;
                power[i][t] = 0.0;
            }
        }
        if e > 0.0 {
            owed.push((i, e));
        }
    }
    owed.sort_by_key(|&(i, _)| (p.sessions[i].departure_slot, p.sessions[i].id));

    // 2. and 3. Put each session's energy back.
    let cap: Vec<f64> = p.capacity_kw.iter().map(|c| c.max(0.0)).collect();
    for (i, mut left) in owed {
        let s = &p.sessions[i];
        let (a, d) = window(s, slots);
        let mut order: Vec<usize> = (a..d).collect();
        order.sort_by(|&x, &y| p.price[x].total_cmp(&p.price[y]).then(x.cmp(&y)));
        let tol = 1e-12 * s.energy_kwh.max(1.0);
        for &t in &order {
            if left <= tol {
                break;
            }
            let room = (cap[t] - load[t]).max(0.0);
            let kw = power[i][t];
            let add = if kw >= s.min_kw {
                (s.max_kw - kw).min(room).min(left / h)
            } else if kw == 0.0 && room >= s.min_kw && left >= s.min_kw * h - tol {
                s.max_kw.min(room).min(left / h).max(s.min_kw)
            } else {
                0.0
            };
            if add > 0.0 {
                power[i][t] += add;
                load[t] += add;
                left -= add * h;
            }
        }
        if left > tol {
            place_remainder(p, i, left, &order, &cap, &mut load, power, h);
        }
    }
}

/// Open one slot at exactly `min_kw` for a remainder `left < min_kw · h`, and take the excess
/// back from the session's dearest slots that stay at or above `min_kw`.
#[allow(clippy::too_many_arguments)]
fn place_remainder(
    p: &Problem,
    i: usize,
    left: f64,
    order: &[usize],
    cap: &[f64],
    load: &mut [f64],
    power: &mut [Vec<f64>],
    h: f64,
) {
    let s = &p.sessions[i];
    let excess_kwh = s.min_kw * h - left;
    let spare: f64 = order
        .iter()
        .map(|&t| (power[i][t] - s.min_kw).max(0.0) * h)
        .filter(|&x| x > 0.0)
        .sum();
    if spare < excess_kwh {
        return;
    }
    let Some(&open) = order
        .iter()
        .find(|&&t| power[i][t] == 0.0 && cap[t] - load[t] >= s.min_kw)
    else {
        return;
    };
    power[i][open] = s.min_kw;
    load[open] += s.min_kw;
    let mut excess = excess_kwh;
    for &t in order.iter().rev() {
        if excess <= 0.0 {
            break;
        }
        if t == open || power[i][t] <= s.min_kw {
            continue;
        }
        let take = ((power[i][t] - s.min_kw) * h).min(excess);
        power[i][t] -= take / h;
        load[t] -= take / h;
        excess -= take;
    }
}
