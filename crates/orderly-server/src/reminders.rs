//! What the service tells people on its own, in protocol time: the waiting list for public
//! chargers (hooks the gateway calls after a StatusNotification or StartTransaction is stored,
//! and the sweep that expires offers and passes them on) and insurance alerts (policies ending
//! within 30 days, chargers without cover). The rules live in `orderly_store::waiting` and
//! `orderly_store::upkeep::insurance_alerts`; this module only decides when to run them and
//! keeps their failures away from the charger's answer.

use crate::state::AppState;
use jiff::{SignedDuration, Timestamp};
use orderly_core::{ChargePointId, IdTag};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// `[reminders]`: how often the periodic checks run, in protocol seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemindersSettings {
    /// Waiting-list sweep (offers that ran out pass to the next in line): default 30 s.
    pub waiting_sweep_secs: u64,
    /// Insurance alerts (also once at start): default 3600 s.
    pub insurance_check_secs: u64,
}

impl Default for RemindersSettings {
    fn default() -> Self {
        Self {
            waiting_sweep_secs: 30,
            insurance_check_secs: 3600,
        }
    }
}

/// The gateway stored a connector status: a public connector that is `Available` goes to the
/// waiting list. Errors are logged: the status is stored and the charger gets its answer; the
/// next sweep offers the connector if this failed.
pub async fn status_stored(
    state: &AppState,
    charger: &ChargePointId,
    connector_id: i32,
    status: &str,
    now: Timestamp,
) {
    if connector_id == 0 || status != "Available" {
        return;
    }
    match state
        .store()
        .connector_available(charger.as_str(), now)
        .await
    {
        Ok(offered) => {
            for e in offered {
                tracing::info!(entry = e.id, user = %e.user_id, %charger, connector_id,
                    "waiting list: connector offered");
            }
        }
        Err(error) => tracing::error!(%error, %charger, "waiting list: could not offer"),
    }
}

/// The gateway stored an accepted StartTransaction: the user's entry on that community's
/// waiting list, if any, is served; an offer held on that connector for someone else goes back.
pub async fn transaction_started(
    state: &AppState,
    charger: &ChargePointId,
    connector_id: i32,
    tag: &IdTag,
    transaction_id: i64,
    now: Timestamp,
) {
    match state
        .store()
        .waiting_transaction_started(
            charger.as_str(),
            connector_id,
            tag.as_str(),
            transaction_id,
            now,
        )
        .await
    {
        Ok(Some(e)) => {
            tracing::info!(entry = e.id, user = %e.user_id, transaction_id, "waiting list: served")
        }
        Ok(None) => {}
        Err(error) => tracing::error!(%error, %charger, "waiting list: could not mark served"),
    }
}

/// Real time for `secs` protocol seconds on the server's clock (at least 20 ms, so an absurdly
/// fast clock cannot spin the loop).
fn period(state: &AppState, secs: u64) -> Duration {
    let protocol = SignedDuration::from_secs(i64::try_from(secs.max(1)).unwrap_or(i64::MAX));
    let clock = state.clock();
    let real = clock.real_until(clock.now().saturating_add(protocol).unwrap_or(clock.now()));
    real.max(Duration::from_millis(20))
}

/// Runs the waiting-list sweep and the insurance check until `stop` completes. The insurance
/// check runs once at start, then every `insurance_check_secs`.
pub async fn run(state: AppState, stop: impl Future<Output = ()> + Send + 'static) {
    let settings = state.config().reminders.clone();
    let mut stop = std::pin::pin!(stop);
    let mut next_insurance = tokio::time::Instant::now();
    loop {
        let now = state.clock().now();
        match state.store().sweep_waiting_list(now).await {
            Ok(sweep) => {
                if !sweep.expired.is_empty() || !sweep.offered.is_empty() {
                    tracing::info!(expired = ?sweep.expired, offered = sweep.offered.len(),
                        "waiting list: swept");
                }
            }
            Err(error) => tracing::error!(%error, "waiting list: sweep failed"),
        }
        if tokio::time::Instant::now() >= next_insurance {
            match state.store().enqueue_insurance_alerts(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(alerts = n, "insurance alerts enqueued"),
                Err(error) => tracing::error!(%error, "insurance alerts failed"),
            }
            next_insurance =
                tokio::time::Instant::now() + period(&state, settings.insurance_check_secs);
        }
        let sweep = period(&state, settings.waiting_sweep_secs);
        let wait = sweep.min(next_insurance.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
