//! Clearing the profiles of a charger that left its community. The controller's daily fallback
//! (TxDefaultProfile) and ChargePointMaxProfile recur; left on a detached charger they would
//! limit it for ever with nobody planning for it. The store records the release in the same
//! commit as the detach (`profile_releases`); this clears every profile on the charger
//! (ClearChargingProfile without filters: profiles by hand are refused for community chargers,
//! so all it holds are the controller's) at once if it is connected, else after its next boot,
//! and forgets the release only once the charger answered.

use crate::gateway::registry::{Command, OperatorCall};
use crate::state::AppState;
use orderly_core::ChargePointId;
use orderly_ocpp::CallOutcome;
use orderly_ocpp::v16::{
    ClearChargingProfileRequest, ClearChargingProfileResponse, ClearChargingProfileStatus,
};

/// If `charger` has a pending release and is connected, clear its profiles and finish the
/// release. Runs as its own task; failures leave the release for the next boot.
pub async fn release_if_pending(state: AppState, charger: ChargePointId) {
    match state.store().profile_release_pending(&charger).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%charger, %error, "could not read the charger's profile release");
            return;
        }
    }
    if state.controllers().community_of(&charger).is_some() {
        // Joined a community again meanwhile: its controller owns the profiles now.
        return;
    }
    match clear_all(&state, &charger).await {
        Ok(status) => {
            tracing::info!(%charger, ?status, "cleared the profiles of a charger that left its community");
            if let Err(error) = state.store().finish_profile_release(&charger).await {
                tracing::warn!(%charger, %error, "could not record the profile release");
            }
        }
        Err(reason) => {
            tracing::info!(%charger, "profiles of a detached charger not cleared yet ({reason}); retried at its next boot");
        }
    }
}

async fn clear_all(
    state: &AppState,
    charger: &ChargePointId,
) -> Result<ClearChargingProfileStatus, String> {
    let sender = state
        .registry()
        .sender(charger)
        .ok_or_else(|| "not connected".to_owned())?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let payload =
        serde_json::to_value(ClearChargingProfileRequest::default()).map_err(|e| e.to_string())?;
    let call = OperatorCall {
        action: orderly_ocpp::Action::ClearChargingProfile,
        payload,
        timeout: state.config().call_timeout(),
        reply,
    };
    sender
        .send(Command::Call(Box::new(call)))
        .await
        .map_err(|_| "connection closed".to_owned())?;
    match answer.await {
        Ok(Ok(CallOutcome::Result(response))) => {
            serde_json::from_value::<ClearChargingProfileResponse>(response)
                .map(|r| r.status)
                .map_err(|e| format!("answer does not parse: {e}"))
        }
        Ok(Ok(other)) => Err(format!("{other:?}")),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("connection closed".to_owned()),
    }
}
