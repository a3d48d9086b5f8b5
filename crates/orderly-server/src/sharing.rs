//! The sharing sweep: bookings of shared private chargers not started within their grace become
//! no-shows (fee settled, owner and booker told). It runs in protocol time, so an accelerated
//! clock (the demo, the tests) sweeps as often per simulated hour as a real one; the rule itself
//! is `orderly_store::sharing`.

use crate::state::AppState;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[sharing]`: the no-show sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharingSettings {
    /// Protocol seconds between sweeps (a no-show is noticed at most this late).
    pub sweep_interval_secs: u64,
}

impl Default for SharingSettings {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 60,
        }
    }
}

/// Sweeps until `stop` resolves (or its sender is dropped).
pub async fn run(state: AppState, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let protocol = state.config().sharing.sweep_interval_secs.max(1) as f64;
    // Real time between sweeps; at least 20 ms however fast the clock runs.
    let period = Duration::from_secs_f64((protocol / state.clock().speed()).max(0.02));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {}
        }
        match state.store().sweep_sharing(state.clock().now()).await {
            Ok(marked) if !marked.is_empty() => {
                tracing::info!(bookings = ?marked, "sharing: no-shows settled");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sharing: the no-show sweep failed; retrying"),
        }
    }
}
