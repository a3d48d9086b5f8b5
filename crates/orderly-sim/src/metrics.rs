//! The metrics printed by `orderly simulate`, measured on the plant after a run. The JSON keys
//! are fixed by issue 3 (plus `energy_delivered_pct`).

use serde::Serialize;

use crate::plant::Plant;

/// A session is fully served when it got its wanted energy to within this (kWh): acnportal's
/// "fully charged" threshold.
pub const FULLY_SERVED_TOLERANCE_KWH: f64 = 1e-3;

/// A slot is over capacity when its load exceeds the capacity by more than this (kW): float
/// noise of summing many powers is not an overshoot.
pub const OVERSHOOT_TOLERANCE_KW: f64 = 1e-6;

/// What a run measured. Energies in kWh, powers in kW, costs in CNY, times in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub policy: String,
    pub sessions: usize,
    pub sessions_skipped: usize,
    pub capacity_kw: f64,
    pub energy_requested_kwh: f64,
    pub energy_delivered_kwh: f64,
    /// Delivered as a percentage of requested.
    pub energy_delivered_pct: f64,
    pub sessions_fully_served_pct: f64,
    /// Grid energy at the slot prices (V2G discharge earns the slot price) plus battery wear.
    pub cost_cny: f64,
    pub peak_kw: f64,
    pub slots_over_capacity: usize,
    pub max_overshoot_kw: f64,
    pub replan_ms_mean: f64,
    pub replan_ms_p95: f64,
    pub replan_ms_max: f64,
    pub v2g_discharged_kwh: f64,
    pub floor_violations: usize,
}

impl Metrics {
    /// Measures a finished run. `replan_ms` holds the time of each planning call.
    pub fn measure(policy: &str, plant: &Plant<'_>, replan_ms: &[f64]) -> Self {
        let sc = plant.scenario;
        let h = sc.slot_hours();
        let requested = sc.energy_requested_kwh();
        let n = sc.sessions.len();
        let delivered = (0..n)
            .map(|i| plant.delivered_kwh(i))
            .fold(0.0, |a, b| a + b);
        let fully = (0..n)
            .filter(|&i| {
                plant.delivered_kwh(i) >= sc.sessions[i].wanted_kwh - FULLY_SERVED_TOLERANCE_KWH
            })
            .count();
        let energy_cost: f64 = plant
            .load_kw
            .iter()
            .zip(&sc.price)
            .map(|(kw, price)| kw * h * price)
            .sum();
        let wear = plant
            .v2g
            .iter()
            .flatten()
            .fold(0.0, |a, c| a + c.cycled_kwh * c.params.wear_cny_per_kwh);
        let overshoots: Vec<f64> = plant
            .load_kw
            .iter()
            .map(|kw| kw - sc.capacity_kw)
            .filter(|over| *over > OVERSHOOT_TOLERANCE_KW)
            .collect();
        let (mean, p95, max) = summarize(replan_ms);
        Self {
            policy: policy.to_owned(),
            sessions: n,
            sessions_skipped: sc.skipped,
            capacity_kw: sc.capacity_kw,
            energy_requested_kwh: requested,
            energy_delivered_kwh: delivered,
            energy_delivered_pct: percent(delivered, requested),
            sessions_fully_served_pct: percent(fully as f64, n as f64),
            cost_cny: energy_cost + wear,
            peak_kw: plant.load_kw.iter().copied().fold(0.0, f64::max),
            slots_over_capacity: overshoots.len(),
            max_overshoot_kw: overshoots.iter().copied().fold(0.0, f64::max),
            replan_ms_mean: mean,
            replan_ms_p95: p95,
            replan_ms_max: max,
            // Folding from +0.0: an empty `sum()` of f64 is -0.0, which prints as `-0.0`.
            v2g_discharged_kwh: plant
                .v2g
                .iter()
                .flatten()
                .fold(0.0, |a, c| a + c.discharged_kwh),
            floor_violations: plant.floor_violations,
        }
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        100.0
    }
}

/// Mean, 95th percentile (nearest rank) and maximum; zeros when there is no sample.
fn summarize(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (0.95 * sorted.len() as f64).ceil() as usize;
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    (mean, sorted[rank.max(1) - 1], sorted[sorted.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn nearest_rank_percentile() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(summarize(&samples), (50.5, 95.0, 100.0));
        assert_eq!(summarize(&[3.0]), (3.0, 3.0, 3.0));
        assert_eq!(summarize(&[]), (0.0, 0.0, 0.0));
    }
}
