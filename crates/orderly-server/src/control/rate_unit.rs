//! Which unit a charger takes charging-profile limits in, asked when it boots.
//!
//! OCPP 1.6 chargers publish it as the configuration key `ChargingScheduleAllowedChargingRateUnit`
//! ("Current", "Power", or both, comma-separated). A limit in a unit the charger does not take is
//! rejected, and a rejected TxProfile leaves the car planned around instead of planned, so the
//! configured unit is corrected from what the charger says before its profiles are sent. A
//! charger that allows both, does not know the key, or does not answer keeps the configured unit.

use crate::gateway::registry::{Command, OperatorCall};
use crate::state::AppState;
use orderly_control::Input;
use orderly_core::ChargePointId;
use orderly_ocpp::CallOutcome;
use orderly_ocpp::v16::{GetConfigurationRequest, GetConfigurationResponse};

/// The configuration key (OCPP 1.6 §9.4 Smart Charging profile).
pub const KEY: &str = "ChargingScheduleAllowedChargingRateUnit";

/// The store's rate unit a key value forces: `Some("amperes")` for "Current" only,
/// `Some("watts")` for "Power" only, `None` when both (or neither) are allowed.
pub fn forced_unit(value: &str) -> Option<&'static str> {
    let mut current = false;
    let mut power = false;
    for item in value.split(',').map(str::trim) {
        current |= item.eq_ignore_ascii_case("Current");
        power |= item.eq_ignore_ascii_case("Power");
    }
    match (current, power) {
        (true, false) => Some("amperes"),
        (false, true) => Some("watts"),
        _ => None,
    }
}

/// After an accepted BootNotification of a charger in a community: ask its rate unit, store a
/// correction (and reload the community's controller), then tell the controller the charger is
/// connected, which sends its profiles. Runs as its own task: the gateway does not wait for it.
pub async fn discover_then_connect(state: AppState, charger: ChargePointId) {
    if let Some(community) = state.controllers().community_of(&charger)
        && let Some(unit) = ask(&state, &charger).await
    {
        match correct(&state, &charger, unit).await {
            Ok(true) => {
                tracing::info!(%charger, unit, "charger takes charging-profile limits only in {unit}");
                if let Err(error) = super::start_or_reload(&state, &community).await {
                    tracing::warn!(%charger, %error, "could not reload the community after a rate unit change");
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%charger, %error, "could not store the charger's rate unit");
            }
        }
    }
    state.controllers().input(
        &charger,
        Input::ChargerConnected {
            charger: charger.clone(),
        },
    );
}

/// The unit the charger's answer forces, if it answers and forces one.
async fn ask(state: &AppState, charger: &ChargePointId) -> Option<&'static str> {
    let sender = state.registry().sender(charger)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let payload = serde_json::to_value(GetConfigurationRequest {
        key: Some(vec![KEY.to_owned()]),
    })
    .ok()?;
    let call = OperatorCall {
        action: orderly_ocpp::Action::GetConfiguration,
        payload,
        timeout: state.config().call_timeout(),
        reply,
    };
    sender.send(Command::Call(Box::new(call))).await.ok()?;
    let Ok(Ok(CallOutcome::Result(response))) = answer.await else {
        return None;
    };
    let response: GetConfigurationResponse = serde_json::from_value(response).ok()?;
    let value = response
        .configuration_key?
        .into_iter()
        .find(|k| k.key.eq_ignore_ascii_case(KEY))?
        .value?;
    forced_unit(&value)
}

/// Store `unit` as the charger's rate unit; whether it changed.
async fn correct(
    state: &AppState,
    charger: &ChargePointId,
    unit: &str,
) -> Result<bool, orderly_store::StoreError> {
    let store = state.store();
    let Some(mut attrs) = store.charger_electrical(charger).await? else {
        return Ok(false);
    };
    if attrs.rate_unit == unit {
        return Ok(false);
    }
    attrs.rate_unit = unit.to_owned();
    store.attach_charger(attrs, state.clock().now()).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::forced_unit;

    #[test]
    fn only_a_single_allowed_unit_forces_it() {
        assert_eq!(forced_unit("Current"), Some("amperes"));
        assert_eq!(forced_unit("Power"), Some("watts"));
        assert_eq!(forced_unit(" power "), Some("watts"));
        assert_eq!(forced_unit("Current,Power"), None);
        assert_eq!(forced_unit("Power, Current"), None);
        assert_eq!(forced_unit(""), None);
        assert_eq!(forced_unit("Amps"), None);
    }
}
