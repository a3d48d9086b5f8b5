//! The fast path: cars without V2G as a transportation problem, solved by incremental max-flow.
//!
//! Network: source → car *i* (capacity: its energy) → time segment *s* inside its window
//! (capacity `max_kw · Δt · len(s)`) → sink (capacity `cap_s · Δt · len(s)`). A *segment* is a run
//! of consecutive slots with the same price, capacity and base load and no arrival or departure
//! inside it: such slots are interchangeable, so merging them loses nothing, and splitting a
//! segment's flow evenly over its slots is both feasible and the flattest choice.
//!
//! Because the cost of a unit of energy depends only on its slot, the sets of slot loads that the
//! cars can realise form a polymatroid, and the cheapest maximum flow is found greedily: open the
//! segments of the cheapest price level, augment to a maximum, open the next level, augment again.
//! An augmenting path only ever raises the load of the slot where it ends, so earlier (cheaper)
//! levels keep their loads and the greedy order is preserved.
//!
//! Within one price level the load is flattened by capping every segment's total load (base plus
//! charging) at a level `L` and searching the least `L` that still lets the level carry its
//! maximum (Newton's method from below on the concave max-flow value, stepping no further than the
//! next point where another segment's cap starts to bind, so it never overshoots).
//!
//! When not every car can be served, the served fractions `x_i / e_i` are made max-min fair
//! (lexicographically): progressive filling with a common fraction λ, each round finding the largest
//! feasible λ by Newton's method from above on the minimum cut and freezing the cars of the
//! bottleneck cut. The result is the lexicographically optimal base of the polymatroid of servable
//! energies (Fujishige), so it also delivers the most energy in total.

use crate::flow::{EdgeId, FlowBuilder, FlowGraph};

/// A car as the fast path sees it (slot indices relative to the arrays passed in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Car {
    pub arrival: usize,
    pub departure: usize,
    pub energy_kwh: f64,
    pub max_kw: f64,
    /// Ghosts (the online planner's expected arrivals) yield to real cars when not everyone can
    /// be served: real cars' energy is maximised (fairly) first, the ghosts share what is left.
    pub ghost: bool,
}

/// A run of slots `start..end` in which a car draws a constant power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Run {
    pub start: usize,
    pub end: usize,
    pub kw: f64,
}

/// Options of the fast path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Flatten the load within each price level (objective (d)).
    pub flatten: bool,
    /// Instead, fill the earlier slots of each price level first: the online planner's hedge,
    /// free in cost, against arrivals busier than forecast (energy banked early cannot be
    /// crowded out later).
    pub early: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            flatten: true,
            early: false,
        }
    }
}

struct Segment {
    start: usize,
    end: usize,
    price: f64,
    cap_kw: f64,
    base_kw: f64,
}

const SOURCE: usize = 0;
const SINK: usize = 1;

/// Plan the cars: per car, the runs of constant power (kW).
///
/// `capacity_kw` is what is left for these cars in each slot, `base_kw` the load already planned
/// there by others (emergency sessions), used only to flatten the total load.
pub(crate) fn solve(
    slot_hours: f64,
    price: &[f64],
    capacity_kw: &[f64],
    base_kw: &[f64],
    cars: &[Car],
    opts: Options,
) -> Vec<Vec<Run>> {
    let slots = price.len();
    debug_assert_eq!(capacity_kw.len(), slots);
    debug_assert_eq!(base_kw.len(), slots);
    let n = cars.len();
    let mut out = vec![Vec::new(); n];
    // What each car could take alone: its request, capped by its rate over its window. Fairness
    // is measured against this, so a car limited by its own rate does not drag the others down.
    let cars: Vec<Car> = cars
        .iter()
        .map(|c| {
            let d = c.departure.min(slots);
            let room = c.max_kw * d.saturating_sub(c.arrival) as f64 * slot_hours;
            Car {
                departure: d,
                energy_kwh: c.energy_kwh.min(room),
                ..*c
            }
        })
        .collect();
    let active: Vec<usize> = (0..n)
        .filter(|&i| {
            let c = &cars[i];
            c.energy_kwh > 0.0 && c.max_kw > 0.0 && c.arrival < c.departure.min(slots)
        })
        .collect();
    if active.is_empty() {
        return out;
    }

    // Segments: cut wherever something changes.
    let mut cut = vec![false; slots + 1];
    cut[0] = true;
    cut[slots] = true;
    for &i in &active {
        cut[cars[i].arrival] = true;
        cut[cars[i].departure.min(slots)] = true;
    }
    for t in 1..slots {
        if price[t] != price[t - 1]
            || capacity_kw[t] != capacity_kw[t - 1]
            || base_kw[t] != base_kw[t - 1]
        {
            cut[t] = true;
        }
    }
    let mut segs: Vec<Segment> = Vec::new();
    let mut seg_of_slot = vec![0usize; slots];
    let mut s0 = 0;
    for (t, &boundary) in cut.iter().enumerate().skip(1) {
        if boundary {
            let idx = segs.len();
            for x in seg_of_slot.iter_mut().take(t).skip(s0) {
                *x = idx;
            }
            segs.push(Segment {
                start: s0,
                end: t,
                price: price[s0],
                cap_kw: capacity_kw[s0].max(0.0),
                base_kw: base_kw[s0],
            });
            s0 = t;
        }
    }
    let m = segs.len();
    let seg_len = |s: usize| (segs[s].end - segs[s].start) as f64 * slot_hours;

    // Graph.
    let car_node = |k: usize| 2 + k;
    let seg_node = |s: usize| 2 + active.len() + s;
    let mut est_edges = 0usize;
    for &i in &active {
        let c = &cars[i];
        est_edges += seg_of_slot[c.departure.min(slots) - 1] + 1 - seg_of_slot[c.arrival];
    }
    let mut b = FlowBuilder::with_capacity(2 + active.len() + m, est_edges + active.len() + m);
    let mut src_e = Vec::with_capacity(active.len());
    let mut car_edges: Vec<(u32, EdgeId)> = Vec::with_capacity(est_edges);
    let mut car_edge_start = Vec::with_capacity(active.len() + 1);
    let mut demand = 0.0;
    let mut scale: f64 = 1.0;
    for (k, &i) in active.iter().enumerate() {
        let c = &cars[i];
        src_e.push(b.add_edge(SOURCE, car_node(k), c.energy_kwh));
        demand += c.energy_kwh;
        scale = scale.max(c.energy_kwh);
        car_edge_start.push(car_edges.len());
        let (lo, hi) = (seg_of_slot[c.arrival], seg_of_slot[c.departure - 1]);
        for (s, seg) in segs.iter().enumerate().take(hi + 1).skip(lo) {
            if seg.cap_kw > 0.0 {
                let e = b.add_edge(car_node(k), seg_node(s), c.max_kw * seg_len(s));
                car_edges.push((s as u32, e));
            }
        }
    }
    car_edge_start.push(car_edges.len());
    let sink_e: Vec<EdgeId> = (0..m).map(|s| b.add_edge(seg_node(s), SINK, 0.0)).collect();
    let full_cap: Vec<f64> = (0..m).map(|s| segs[s].cap_kw * seg_len(s)).collect();
    let mut g = b.build();
    scale = scale.max(demand);
    let eps = 1e-13 * scale;
    let tol = 1e-10 * scale;

    // Price levels, cheapest first.
    let mut order: Vec<usize> = (0..m).filter(|&s| segs[s].cap_kw > 0.0).collect();
    order.sort_by(|&a, &b| segs[a].price.total_cmp(&segs[b].price).then(a.cmp(&b)));
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for s in order {
        match levels.last_mut() {
            Some(l) if segs[l[0]].price == segs[s].price => l.push(s),
            _ => levels.push(vec![s]),
        }
    }

    let energies: Vec<f64> = active.iter().map(|&i| cars[i].energy_kwh).collect();
    let ctx = Ctx {
        segs: &segs,
        sink_e: &sink_e,
        full_cap: &full_cap,
        slot_hours,
        eps,
        tol,
        seg_node_base: 2 + active.len(),
    };
    let served = ctx.cheapest(&mut g, &src_e, &energies, &levels, opts);
    if served < demand - tol {
        // Shortfall: make the served fractions max-min fair, then plan those energies cheaply.
        let ghost: Vec<bool> = active.iter().map(|&i| cars[i].ghost).collect();
        let mut x = vec![0.0; ghost.len()];
        if ghost.iter().any(|&g| g) {
            // Real cars first, with the ghosts held at zero; then the ghosts, real cars held.
            let real = ctx.fair_targets(&mut g, &src_e, &energies, &ghost, &x);
            let real_fixed: Vec<bool> = ghost.iter().map(|&g| !g).collect();
            x = ctx.fair_targets(&mut g, &src_e, &energies, &real_fixed, &real);
        } else {
            x = ctx.fair_targets(&mut g, &src_e, &energies, &ghost, &x);
        }
        ctx.cheapest(&mut g, &src_e, &x, &levels, opts);
    }

    for (k, &i) in active.iter().enumerate() {
        let runs = &mut out[i];
        for &(s, e) in &car_edges[car_edge_start[k]..car_edge_start[k + 1]] {
            let f = g.flow(e);
            if f > eps {
                let s = s as usize;
                let kw = (f / seg_len(s)).min(cars[i].max_kw);
                runs.push(Run {
                    start: segs[s].start,
                    end: segs[s].end,
                    kw,
                });
            }
        }
    }
    out
}

struct Ctx<'a> {
    segs: &'a [Segment],
    sink_e: &'a [EdgeId],
    full_cap: &'a [f64],
    slot_hours: f64,
    eps: f64,
    tol: f64,
    seg_node_base: usize,
}

impl Ctx<'_> {
    fn seg_len(&self, s: usize) -> f64 {
        (self.segs[s].end - self.segs[s].start) as f64 * self.slot_hours
    }

    /// Least-cost flow serving at most `targets` per car, with the most energy in total.
    /// Returns the energy served.
    fn cheapest(
        &self,
        g: &mut FlowGraph,
        src_e: &[EdgeId],
        targets: &[f64],
        levels: &[Vec<usize>],
        opts: Options,
    ) -> f64 {
        for (k, &e) in src_e.iter().enumerate() {
            g.set_cap(e, targets[k]);
        }
        for &e in self.sink_e {
            g.set_cap(e, 0.0);
        }
        g.clear_flow();
        let mut served = 0.0;
        let want: f64 = targets.iter().sum();
        for level in levels {
            if served >= want - self.tol {
                // Everyone is served: dearer levels would carry nothing.
                break;
            }
            if level.len() == 1 || opts.early {
                // Segments are numbered in time order, and so sorted within a level.
                for &s in level {
                    g.set_cap(self.sink_e[s], self.full_cap[s]);
                    served += g.augment_into(SOURCE, SINK, self.sink_e[s], self.eps);
                }
                continue;
            }
            if !opts.flatten {
                for &s in level {
                    g.set_cap(self.sink_e[s], self.full_cap[s]);
                }
                served += g.max_flow(SOURCE, SINK, self.eps);
                continue;
            }
            served += self.flatten_level(g, level);
        }
        served
    }

    /// Open one price level with the least peak load that still carries the level's maximum.
    fn flatten_level(&self, g: &mut FlowGraph, level: &[usize]) -> f64 {
        let snap = g.snapshot();
        for &s in level {
            g.set_cap(self.sink_e[s], self.full_cap[s]);
        }
        let target = g.max_flow(SOURCE, SINK, self.eps);
        if target <= self.tol {
            return target;
        }
        g.restore(&snap);
        let segs = self.segs;
        let cap_at =
            |s: usize, l: f64| (l - segs[s].base_kw).clamp(0.0, segs[s].cap_kw) * self.seg_len(s);
        // Water-filling lower bound: the level if the cars imposed no limits of their own.
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for &s in level {
            lo = lo.min(segs[s].base_kw);
            hi = hi.max(segs[s].base_kw + segs[s].cap_kw);
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            let c: f64 = level.iter().map(|&s| cap_at(s, mid)).sum();
            if c >= target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let mut l = lo;
        let mut added = 0.0;
        for _ in 0..200 {
            for &s in level {
                g.set_cap(self.sink_e[s], cap_at(s, l));
            }
            added += g.max_flow(SOURCE, SINK, self.eps);
            if added >= target - self.tol {
                return added;
            }
            let side = g.source_side(SOURCE, self.eps);
            let mut slope = 0.0;
            let mut next_kink = f64::INFINITY;
            for &s in level {
                if !side[self.seg_node_base + s] {
                    continue;
                }
                let sg = &segs[s];
                if sg.base_kw <= l && l < sg.base_kw + sg.cap_kw {
                    slope += self.seg_len(s);
                } else if sg.base_kw > l {
                    next_kink = next_kink.min(sg.base_kw);
                }
            }
            let step = if slope > 0.0 {
                l + (target - added) / slope
            } else {
                f64::INFINITY
            };
            let nl = step.min(next_kink);
            if !nl.is_finite() || nl <= l {
                break;
            }
            l = nl;
        }
        // Numerical stall: open the level fully (still optimal in cost, only less flat).
        for &s in level {
            g.set_cap(self.sink_e[s], self.full_cap[s]);
        }
        added + g.max_flow(SOURCE, SINK, self.eps)
    }

    /// Max-min fair served energies (fraction of each car's request), lexicographically.
    /// Cars marked `fixed` keep the energy given in `x0`; the others are filled fairly.
    fn fair_targets(
        &self,
        g: &mut FlowGraph,
        src_e: &[EdgeId],
        energies: &[f64],
        fixed: &[bool],
        x0: &[f64],
    ) -> Vec<f64> {
        let n = energies.len();
        for (s, &e) in self.sink_e.iter().enumerate() {
            g.set_cap(e, self.full_cap[s]);
        }
        let mut x = x0.to_vec();
        let mut frozen = fixed.to_vec();
        let mut left = frozen.iter().filter(|&&f| !f).count();
        while left > 0 {
            let mut lambda = 1.0f64;
            let mut bottleneck: Vec<usize> = Vec::new();
            let mut rounds = 0;
            loop {
                rounds += 1;
                let mut want = 0.0;
                for k in 0..n {
                    let c = if frozen[k] {
                        x[k]
                    } else {
                        lambda * energies[k]
                    };
                    g.set_cap(src_e[k], c);
                    want += c;
                }
                g.clear_flow();
                let f = g.max_flow(SOURCE, SINK, self.eps);
                if f >= want - self.tol || rounds > 100 {
                    break;
                }
                let side = g.source_side(SOURCE, self.eps);
                // Minimum cut = source edges of cars outside the source side + the rest (R).
                let mut outside = 0.0;
                let mut frozen_in = 0.0;
                let mut e_in = 0.0;
                bottleneck.clear();
                for k in 0..n {
                    if side[2 + k] {
                        if frozen[k] {
                            frozen_in += x[k];
                        } else {
                            e_in += energies[k];
                            bottleneck.push(k);
                        }
                    } else {
                        outside += g.cap(src_e[k]);
                    }
                }
                if e_in <= 0.0 {
                    break;
                }
                let r = f - outside;
                let nl = ((r - frozen_in) / e_in).clamp(0.0, lambda);
                if nl >= lambda {
                    break;
                }
                lambda = nl;
            }
            if bottleneck.is_empty() {
                // Every remaining car reaches λ = 1 (or numerics stalled): take the flow as it is.
                for k in 0..n {
                    if !frozen[k] {
                        x[k] = g.flow(src_e[k]);
                        frozen[k] = true;
                    }
                }
                break;
            }
            for &k in &bottleneck {
                x[k] = lambda * energies[k];
                frozen[k] = true;
                left -= 1;
            }
        }
        x
    }
}
