//! Maximum flow with `f64` capacities (Dinic), built for incremental use.
//!
//! The offline solver opens the slot→sink edges of one price level after another and augments
//! the flow already found; capacities only ever grow between calls, so each call continues from
//! the previous maximum instead of starting again. The graph is stored in compressed (CSR) form
//! for cache-friendly scans, and the augmenting search is iterative: paths in the car/slot graph
//! can be thousands of edges long, too deep for recursion on a test thread's stack.

/// Handle of an edge added through [`FlowBuilder::add_edge`].
pub(crate) type EdgeId = usize;

/// Collects edges before the graph is frozen into CSR form.
pub(crate) struct FlowBuilder {
    nodes: usize,
    edges: Vec<(u32, u32, f64)>,
}

impl FlowBuilder {
    pub(crate) fn with_capacity(nodes: usize, edges: usize) -> Self {
        Self {
            nodes,
            edges: Vec::with_capacity(edges),
        }
    }

    pub(crate) fn add_edge(&mut self, from: usize, to: usize, cap: f64) -> EdgeId {
        debug_assert!(from < self.nodes && to < self.nodes);
        self.edges.push((from as u32, to as u32, cap.max(0.0)));
        self.edges.len() - 1
    }

    pub(crate) fn build(self) -> FlowGraph {
        let n = self.nodes;
        let m = self.edges.len();
        let mut start = vec![0usize; n + 1];
        for &(u, v, _) in &self.edges {
            start[u as usize + 1] += 1;
            start[v as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut to = vec![0u32; 2 * m];
        let mut rev = vec![0u32; 2 * m];
        let mut res = vec![0.0f64; 2 * m];
        let mut fwd = Vec::with_capacity(m);
        let mut cap = Vec::with_capacity(m);
        for &(u, v, c) in &self.edges {
            let a = fill[u as usize];
            fill[u as usize] += 1;
            let b = fill[v as usize];
            fill[v as usize] += 1;
            to[a] = v;
            to[b] = u;
            rev[a] = b as u32;
            rev[b] = a as u32;
            res[a] = c;
            fwd.push(a as u32);
            cap.push(c);
        }
        FlowGraph {
            start,
            to,
            rev,
            res,
            fwd,
            cap,
            level: vec![-1; n],
            iter: vec![0; n],
            queue: Vec::with_capacity(n),
            path: Vec::new(),
            seen: vec![false; n],
        }
    }
}

/// A flow network with residual capacities; the flow on an edge is `cap - residual`.
#[derive(Clone)]
pub(crate) struct FlowGraph {
    start: Vec<usize>,
    to: Vec<u32>,
    rev: Vec<u32>,
    res: Vec<f64>,
    /// CSR position of each added edge's forward half.
    fwd: Vec<u32>,
    cap: Vec<f64>,
    level: Vec<i32>,
    iter: Vec<usize>,
    queue: Vec<u32>,
    path: Vec<u32>,
    /// Marks of the backward search, all false between searches.
    seen: Vec<bool>,
}

impl FlowGraph {
    /// Flow currently on an added edge.
    pub(crate) fn flow(&self, e: EdgeId) -> f64 {
        self.cap[e] - self.res[self.fwd[e] as usize]
    }

    pub(crate) fn cap(&self, e: EdgeId) -> f64 {
        self.cap[e]
    }

    /// Change an edge's capacity, keeping its flow. The new capacity must not be below the flow.
    pub(crate) fn set_cap(&mut self, e: EdgeId, cap: f64) {
        let cap = cap.max(0.0);
        let p = self.fwd[e] as usize;
        self.res[p] += cap - self.cap[e];
        self.cap[e] = cap;
    }

    /// Remove all flow.
    pub(crate) fn clear_flow(&mut self) {
        for (e, &p) in self.fwd.iter().enumerate() {
            let p = p as usize;
            self.res[p] = self.cap[e];
            self.res[self.rev[p] as usize] = 0.0;
        }
    }

    /// The residual capacities, to restore after a trial augmentation.
    pub(crate) fn snapshot(&self) -> (Vec<f64>, Vec<f64>) {
        (self.res.clone(), self.cap.clone())
    }

    pub(crate) fn restore(&mut self, snap: &(Vec<f64>, Vec<f64>)) {
        self.res.copy_from_slice(&snap.0);
        self.cap.copy_from_slice(&snap.1);
    }

    /// Augment the current flow to a maximum one; returns the amount added.
    /// Residual capacities at or below `eps` count as saturated.
    pub(crate) fn max_flow(&mut self, s: usize, t: usize, eps: f64) -> f64 {
        let mut total = 0.0;
        while self.bfs(s, t, eps) {
            self.iter
                .copy_from_slice(&self.start[..self.start.len() - 1]);
            total += self.blocking_flow(s, t, eps);
        }
        total
    }

    /// Augment to a maximum after opening the edge `last` (into `t`) when every other open edge
    /// into `t` is already maximal, so every augmenting path ends with `last`: the two-edge paths
    /// source → u → tail are pushed in one sweep of the tail's neighbours, then Dinic finishes
    /// if a backward search shows that more can reach the tail. Returns the amount added.
    pub(crate) fn augment_into(&mut self, s: usize, t: usize, last: EdgeId, eps: f64) -> f64 {
        let last_pos = self.fwd[last] as usize;
        let tail = self.to[self.rev[last_pos] as usize] as usize;
        let mut total = 0.0;
        // Paths source → u → tail first, in one sweep: most of the flow in the common case, and
        // the searches below would otherwise rescan the tail's whole neighbourhood for each one.
        for e in self.start[tail]..self.start[tail + 1] {
            if self.res[last_pos] <= eps {
                return total;
            }
            let u = self.to[e] as usize;
            let into = self.rev[e] as usize;
            if u == t || u == s || self.res[into] <= eps {
                continue;
            }
            let Some(src) = (self.start[u]..self.start[u + 1])
                .find(|&f| self.to[f] as usize == s)
                .map(|f| self.rev[f] as usize)
            else {
                continue;
            };
            let b = self.res[src].min(self.res[into]).min(self.res[last_pos]);
            if b <= eps {
                continue;
            }
            for x in [src, into, last_pos] {
                self.res[x] -= b;
                self.res[self.rev[x] as usize] += b;
            }
            total += b;
        }
        // The rest needs rerouting. First a cheap check, searching backwards from the tail: when
        // every car that could send more is fully served, the search stays among the few nodes
        // near the tail, where a forward search would sweep every car still waiting.
        if self.res[last_pos] <= eps || !self.reaches_backwards(s, t, tail, eps) {
            return total;
        }
        // Blocking flows from the source, which can only end here because every other open
        // edge into `t` already carries all it can.
        total + self.max_flow(s, t, eps)
    }

    /// Whether `s` reaches `tail` in the residual graph without passing through `t`.
    fn reaches_backwards(&mut self, s: usize, t: usize, tail: usize, eps: f64) -> bool {
        let n = self.level.len();
        if self.seen.len() != n {
            self.seen = vec![false; n];
        }
        self.queue.clear();
        self.queue.push(tail as u32);
        self.seen[tail] = true;
        self.seen[t] = true;
        let mut head = 0;
        let mut found = false;
        'search: while head < self.queue.len() {
            let v = self.queue[head] as usize;
            head += 1;
            for e in self.start[v]..self.start[v + 1] {
                let u = self.to[e] as usize;
                // The edge u → v is the reverse of e.
                if !self.seen[u] && self.res[self.rev[e] as usize] > eps {
                    if u == s {
                        found = true;
                        break 'search;
                    }
                    self.seen[u] = true;
                    self.queue.push(u as u32);
                }
            }
        }
        // Reset only what was marked.
        for &v in &self.queue {
            self.seen[v as usize] = false;
        }
        self.seen[t] = false;
        found
    }

    /// Nodes reachable from `s` in the residual graph: the source side of a minimum cut.
    pub(crate) fn source_side(&mut self, s: usize, eps: f64) -> Vec<bool> {
        let n = self.level.len();
        let mut seen = vec![false; n];
        self.queue.clear();
        self.queue.push(s as u32);
        seen[s] = true;
        let mut head = 0;
        while head < self.queue.len() {
            let u = self.queue[head] as usize;
            head += 1;
            for e in self.start[u]..self.start[u + 1] {
                let v = self.to[e] as usize;
                if !seen[v] && self.res[e] > eps {
                    seen[v] = true;
                    self.queue.push(v as u32);
                }
            }
        }
        seen
    }

    fn bfs(&mut self, s: usize, t: usize, eps: f64) -> bool {
        self.level.fill(-1);
        self.queue.clear();
        self.queue.push(s as u32);
        self.level[s] = 0;
        let mut head = 0;
        while head < self.queue.len() {
            let u = self.queue[head] as usize;
            head += 1;
            let lu = self.level[u];
            // Nodes at the sink's depth or deeper cannot lie on a shortest path.
            if self.level[t] >= 0 && lu >= self.level[t] {
                break;
            }
            for e in self.start[u]..self.start[u + 1] {
                let v = self.to[e] as usize;
                if self.level[v] < 0 && self.res[e] > eps {
                    self.level[v] = lu + 1;
                    self.queue.push(v as u32);
                }
            }
        }
        self.level[t] >= 0
    }

    fn blocking_flow(&mut self, s: usize, t: usize, eps: f64) -> f64 {
        let mut total = 0.0;
        let mut path = std::mem::take(&mut self.path);
        path.clear();
        let mut u = s;
        loop {
            if u == t {
                let mut b = f64::INFINITY;
                for &e in &path {
                    b = b.min(self.res[e as usize]);
                }
                for &e in &path {
                    let e = e as usize;
                    self.res[e] -= b;
                    self.res[self.rev[e] as usize] += b;
                }
                total += b;
                // Retreat to the tail of the first saturated edge.
                let k = path
                    .iter()
                    .position(|&e| self.res[e as usize] <= eps)
                    .unwrap_or(path.len() - 1);
                path.truncate(k);
                u = match path.last() {
                    Some(&e) => self.to[e as usize] as usize,
                    None => s,
                };
                continue;
            }
            let end = self.start[u + 1];
            let want = self.level[u] + 1;
            let mut advanced = false;
            while self.iter[u] < end {
                let e = self.iter[u];
                let v = self.to[e] as usize;
                if self.res[e] > eps && self.level[v] == want {
                    path.push(e as u32);
                    u = v;
                    advanced = true;
                    break;
                }
                self.iter[u] += 1;
            }
            if !advanced {
                // Dead end: no shortest path continues through `u` in this phase.
                self.level[u] = -1;
                match path.pop() {
                    None => break,
                    Some(e) => {
                        u = self.to[self.rev[e as usize] as usize] as usize;
                        self.iter[u] += 1;
                    }
                }
            }
        }
        self.path = path;
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_network() {
        // CLRS figure 26.1: maximum flow 23.
        let mut b = FlowBuilder::with_capacity(6, 9);
        b.add_edge(0, 1, 16.0);
        b.add_edge(0, 2, 13.0);
        b.add_edge(2, 1, 4.0);
        b.add_edge(1, 3, 12.0);
        b.add_edge(3, 2, 9.0);
        b.add_edge(2, 4, 14.0);
        b.add_edge(4, 3, 7.0);
        b.add_edge(3, 5, 20.0);
        b.add_edge(4, 5, 4.0);
        let mut g = b.build();
        let f = g.max_flow(0, 5, 1e-12);
        assert!((f - 23.0).abs() < 1e-9);
        let side = g.source_side(0, 1e-12);
        assert!(side[0] && !side[5]);
    }

    #[test]
    fn incremental_growth_keeps_flow() {
        let mut b = FlowBuilder::with_capacity(4, 4);
        b.add_edge(0, 1, 5.0);
        let e = b.add_edge(1, 3, 1.0);
        b.add_edge(0, 2, 5.0);
        let e2 = b.add_edge(2, 3, 0.0);
        let mut g = b.build();
        assert!((g.max_flow(0, 3, 1e-12) - 1.0).abs() < 1e-12);
        g.set_cap(e2, 2.5);
        assert!((g.max_flow(0, 3, 1e-12) - 2.5).abs() < 1e-12);
        assert!((g.flow(e) - 1.0).abs() < 1e-12);
        g.clear_flow();
        assert!((g.max_flow(0, 3, 1e-12) - 3.5).abs() < 1e-12);
    }

    #[test]
    fn backward_augmentation_reroutes_through_other_sinks() {
        // Car A (node 1) can use slots 3 and 4, car B (node 2) only slot 3. With only slot 3 open,
        // either car may take it; opening slot 4 then serves the other one, if need be by the
        // path source → B → slot 3 ← A → slot 4 that moves A over. Slot 3 stays full.
        let mut b = FlowBuilder::with_capacity(6, 7);
        b.add_edge(0, 1, 2.0);
        b.add_edge(0, 2, 2.0);
        b.add_edge(1, 3, 2.0);
        b.add_edge(1, 4, 2.0);
        b.add_edge(2, 3, 2.0);
        let s3 = b.add_edge(3, 5, 2.0);
        let s4 = b.add_edge(4, 5, 0.0);
        let mut g = b.build();
        assert!((g.max_flow(0, 5, 1e-12) - 2.0).abs() < 1e-12);
        g.set_cap(s4, 2.0);
        assert!((g.augment_into(0, 5, s4, 1e-12) - 2.0).abs() < 1e-12);
        assert!((g.flow(s3) - 2.0).abs() < 1e-12 && (g.flow(s4) - 2.0).abs() < 1e-12);
        assert_eq!(g.augment_into(0, 5, s4, 1e-12), 0.0);
    }
}
