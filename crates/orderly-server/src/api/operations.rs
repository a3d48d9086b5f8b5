//! `POST /api/v1/chargers/{id}/operations/{action}`: an OCPP call forwarded to a connected
//! charger, answered with the charger's response (or a timeout).
//!
//! The payload is sent exactly as given once it passes the action's OCA request schema: the
//! platform does not second-guess transaction or reservation ids (OCA CSMS test cases L1/L2).

use super::auth::{Belonging, Permission, Principal};
use super::chargers::path_id;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, CallErrorBody};
use super::record_audit;
use super::registry::require_operate;
use crate::gateway::registry::{Command, OperatorCall};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use orderly_ocpp::{CallOutcome, OperationError, SendError, check_operation};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::oneshot;
use utoipa::IntoParams;

/// Longest wait an operator may ask for.
const MAX_TIMEOUT_SECS: u64 = 600;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OperationQuery {
    /// Seconds to wait for the charger's answer (default: the server's `call_timeout`, max 600).
    pub timeout: Option<u64>,
}

/// Send an OCPP 1.6 call to a connected charger and return its answer.
///
/// `action` is one of RemoteStartTransaction, RemoteStopTransaction, Reset, UnlockConnector,
/// ChangeAvailability, GetConfiguration, ChangeConfiguration, ClearCache, TriggerMessage,
/// SetChargingProfile, ClearChargingProfile, GetCompositeSchedule, ReserveNow, CancelReservation,
/// SendLocalList, GetLocalListVersion, UpdateFirmware, GetDiagnostics, DataTransfer; the body is
/// that action's request payload.
#[utoipa::path(post, path = "/api/v1/chargers/{id}/operations/{action}", tag = "operations",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Charge point id"),
        ("action" = String, Path, description = "OCPP action, e.g. Reset"),
        OperationQuery,
    ),
    request_body(content = Object, description = "The OCPP request payload of the action"),
    responses(
        (status = 200, body = super::dto::OperationResponse, description = "The charger's CALLRESULT"),
        (status = 400, body = super::error::ErrorBody, description = "Payload breaks the action's schema"),
        (status = 404, body = super::error::ErrorBody, description = "Unknown charger or action"),
        (status = 409, body = super::error::ErrorBody, description = "Charger not connected"),
        (status = 502, body = super::error::ErrorBody, description = "The charger answered with a CALLERROR or an invalid CALLRESULT, or disconnected"),
        (status = 504, body = super::error::ErrorBody, description = "No answer in time"),
    ))]
pub async fn call(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((raw_id, action_name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<OperationQuery>,
    ApiJson(payload): ApiJson<Value>,
) -> Result<ApiJson<super::dto::OperationResponse>, ApiError> {
    // Admins, and operators of the charger's community.
    if !principal.permits(Permission::Administer) {
        let id = path_id(raw_id.clone())?;
        let community = Belonging::charger_community(&state, &id).await?;
        require_operate(&principal, community.as_deref())?;
    }
    let actor = principal.as_actor();
    let result = forward(&state, &raw_id, &action_name, query, payload.clone()).await;
    let outcome = match &result {
        Ok(response) => response
            .get("status")
            .and_then(Value::as_str)
            .map_or_else(|| "answered".to_owned(), str::to_owned),
        Err(e) => match &e.call_error {
            Some(call_error) => format!("CALLERROR {}", call_error.code),
            None => format!("{} {}", e.status.as_u16(), e.message),
        },
    };
    let action = format!("operation.{action_name}");
    record_audit(&state, &actor, action, Some(raw_id), payload, outcome).await;
    result.map(|response| ApiJson(super::dto::OperationResponse { response }))
}

async fn forward(
    state: &AppState,
    raw_id: &str,
    action_name: &str,
    query: OperationQuery,
    payload: Value,
) -> Result<Value, ApiError> {
    let timeout_secs = query.timeout.unwrap_or(state.config().call_timeout);
    if timeout_secs == 0 || timeout_secs > MAX_TIMEOUT_SECS {
        return Err(ApiError::bad_request(format!(
            "timeout: must be between 1 and {MAX_TIMEOUT_SECS} seconds"
        )));
    }
    let timeout = Duration::from_secs(timeout_secs);
    let id = path_id(raw_id.to_owned())?;
    let action = check_operation(action_name, &payload).map_err(|e| match e {
        OperationError::UnknownOperation(_) => ApiError::not_found(e.to_string()),
        OperationError::Invalid { .. } => ApiError::bad_request(e.to_string()),
    })?;
    // A community's chargers hold the controller's profiles, and its safety rule (Invariant S)
    // relies on knowing every one of them: a profile set or cleared by hand would go around it.
    if matches!(
        action,
        orderly_ocpp::Action::SetChargingProfile | orderly_ocpp::Action::ClearChargingProfile
    ) && let Some(community) = state.controllers().community_of(&id)
    {
        return Err(ApiError::conflict(format!(
            "charger {id} belongs to community {community}: its charging profiles are set by the \
             community's controller"
        )));
    }
    let Some(sender) = state.registry().sender(&id) else {
        return Err(if state.store().get_charger(&id).await?.is_some() {
            ApiError::conflict(format!("charger {id} is not connected"))
        } else {
            ApiError::not_found(format!("charger {id} not found"))
        });
    };
    let (reply, answer) = oneshot::channel();
    let call = OperatorCall {
        action,
        payload,
        timeout,
        reply,
    };
    if sender.send(Command::Call(Box::new(call))).await.is_err() {
        return Err(ApiError::conflict(format!("charger {id} is not connected")));
    }
    // The connection enforces the timeout; the outer bound only guards against a driver that
    // vanished without answering.
    let outcome = match tokio::time::timeout(timeout + Duration::from_secs(5), answer).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => return Err(disconnected(&id)),
        Err(_) => return Err(timed_out(&id, timeout_secs)),
    };
    match outcome {
        Ok(CallOutcome::Result(response)) => Ok(response),
        Ok(CallOutcome::Error {
            code,
            description,
            details,
        }) => Err(ApiError {
            status: StatusCode::BAD_GATEWAY,
            message: format!("charger {id} answered {action} with CALLERROR {code}"),
            call_error: Some(CallErrorBody {
                code: code.as_str().to_owned(),
                description,
                details,
            }),
        }),
        Ok(CallOutcome::InvalidResponse { description, .. }) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("charger {id} answered {action} with an invalid response: {description}"),
        )),
        Ok(CallOutcome::Timeout) => Err(timed_out(&id, timeout_secs)),
        Ok(CallOutcome::Closed) => Err(disconnected(&id)),
        Err(SendError::QueueFull { limit }) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{limit} operations already wait for charger {id}; retry later"),
        )),
        Err(SendError::Closed) => Err(disconnected(&id)),
        Err(e @ (SendError::Invalid { .. } | SendError::NotCsmsAction(_))) => {
            Err(ApiError::bad_request(e.to_string()))
        }
    }
}

fn timed_out(id: &orderly_core::ChargePointId, secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!("charger {id} did not answer within {secs} s"),
    )
}

fn disconnected(id: &orderly_core::ChargePointId) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("charger {id} disconnected before answering"),
    )
}
