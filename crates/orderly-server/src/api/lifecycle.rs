//! A charger's lifecycle and ownership transfers.
//!
//! `POST /api/v1/registry/chargers/{id}/lifecycle` moves a charger along planned → installed →
//! active ⇄ suspended, or to decommissioned (refused while a transaction is live; its OCPP
//! password is revoked and an open connection closed). A change of owner is a transfer request
//! that only the new owner can accept; accepting makes the charger `transferred`.

use super::auth::{Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath};
use super::registry::{
    ChargerRegistrationDto, LifecycleDto, charger_owned, load_registration, require_operate,
};
use super::{outcome_of, record_audit, with_audit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::ChargePointId;
use orderly_store::{self as store, Lifecycle, TransferDecision};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleChangeDto {
    /// The state to move to (`transferred` only happens through an accepted transfer).
    pub to: LifecycleDto,
}

/// Move a charger along its lifecycle. Operators of its community and admins; its owner may
/// switch an operating charger between active and suspended.
#[utoipa::path(post, path = "/api/v1/registry/chargers/{id}/lifecycle", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = LifecycleChangeDto,
    responses((status = 200, body = ChargerRegistrationDto),
        (status = 400, body = super::error::ErrorBody, description = "`to` is transferred"),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody,
            description = "Not allowed from the current state, or a transaction is live")))]
pub async fn change(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<LifecycleChangeDto>,
) -> Result<ApiJson<ChargerRegistrationDto>, ApiError> {
    let current = load_registration(&state, raw.clone()).await?;
    let to: Lifecycle = body.to.into();
    let owner_switch = matches!(to, Lifecycle::Active | Lifecycle::Suspended)
        && matches!(
            current.lifecycle,
            Lifecycle::Active | Lifecycle::Suspended | Lifecycle::Transferred
        );
    if owner_switch {
        principal.require(Permission::ActOwn(charger_owned(&current)))?;
    } else {
        require_operate(&principal, current.facts.community_id.as_deref())?;
    }
    let result = state
        .store()
        .set_lifecycle(&current.charger_id, to, &principal.actor, Timestamp::now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "charger.lifecycle",
        Some(raw),
        serde_json::json!({ "from": current.lifecycle.as_str(), "to": to.as_str() }),
        outcome_of(&result),
    )
    .await;
    let updated = result?;
    let id = ChargePointId::parse(updated.charger_id.clone())
        .map_err(|e| ApiError::internal(format!("stored charger id: {e}")))?;
    if to == Lifecycle::Decommissioned {
        // Its password is revoked: close the session it may still hold.
        state.registry().disconnect(&id);
    }
    let connected = state.registry().is_connected(&id);
    Ok(ApiJson(ChargerRegistrationDto::new(updated, connected)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferDto {
    pub id: i64,
    pub charger_id: String,
    pub from_user: Option<String>,
    pub to_user: String,
    /// pending, accepted, declined or cancelled.
    #[schema(example = "pending")]
    pub state: String,
    pub requested_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
}

impl From<store::Transfer> for TransferDto {
    fn from(t: store::Transfer) -> Self {
        Self {
            id: t.id,
            charger_id: t.charger_id,
            from_user: t.from_user,
            to_user: t.to_user,
            state: t.state.as_str().to_owned(),
            requested_by: t.requested_by,
            created_at: t.created_at,
            decided_at: t.decided_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransferDto {
    /// Login name of the new owner; nothing changes until they accept.
    pub to_user: String,
}

/// Ask a user to take over a charger (its owner, operators of its community, admins).
#[utoipa::path(post, path = "/api/v1/registry/chargers/{id}/transfers", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = NewTransferDto,
    responses((status = 201, body = TransferDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Not transferable now, or one is pending")))]
pub async fn request(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<NewTransferDto>,
) -> Result<(StatusCode, ApiJson<TransferDto>), ApiError> {
    let current = load_registration(&state, raw.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&current)))?;
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "charger.transfer.request",
        Some(raw),
        audited,
        async {
            super::users::check_login(&body.to_user)
                .map_err(|_| ApiError::bad_request("to_user: not a login name"))?;
            Ok(state
                .store()
                .request_transfer(
                    &current.charger_id,
                    &body.to_user,
                    &principal.actor,
                    Timestamp::now(),
                )
                .await?)
        },
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

/// Transfers of a charger, newest first (whoever may read the charger).
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}/transfers", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = Vec<TransferDto>), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<Vec<TransferDto>>, ApiError> {
    let current = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&current)))?;
    let all = state.store().list_transfers(&current.charger_id).await?;
    Ok(ApiJson(all.into_iter().map(Into::into).collect()))
}

async fn load_transfer(state: &AppState, id: i64) -> Result<store::Transfer, ApiError> {
    state
        .store()
        .get_transfer(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("transfer {id} not found")))
}

/// One transfer (its two users, whoever may read the charger).
#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Transfer id")),
    responses((status = 200, body = TransferDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<TransferDto>, ApiError> {
    let t = load_transfer(&state, id).await?;
    let me = principal.user.as_deref();
    if me != Some(t.to_user.as_str()) {
        let current = load_registration(&state, t.charger_id.clone()).await?;
        principal.require(Permission::ReadOwn(charger_owned(&current)))?;
    }
    Ok(ApiJson(t.into()))
}

/// Decide a pending transfer: `accept` or `decline` (only the new owner), `cancel` (its
/// requester, the current owner, operators of the charger's community, admins).
#[utoipa::path(post, path = "/api/v1/transfers/{id}/{decision}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Transfer id"),
        ("decision" = String, Path, description = "accept, decline or cancel")),
    responses((status = 200, body = TransferDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Not pending any more")))]
pub async fn decide(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, decision)): ApiPath<(i64, String)>,
) -> Result<ApiJson<TransferDto>, ApiError> {
    let decision = match decision.as_str() {
        "accept" => TransferDecision::Accept,
        "decline" => TransferDecision::Decline,
        "cancel" => TransferDecision::Cancel,
        other => {
            return Err(ApiError::not_found(format!(
                "decision {other:?} (expected accept, decline or cancel)"
            )));
        }
    };
    let t = load_transfer(&state, id).await?;
    let me = principal.user.as_deref();
    match decision {
        // Nobody accepts on the new owner's behalf, not even an admin.
        TransferDecision::Accept | TransferDecision::Decline => {
            if me != Some(t.to_user.as_str()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("forbidden: only {} may accept or decline", t.to_user),
                ));
            }
        }
        TransferDecision::Cancel => {
            let party =
                t.requested_by == principal.actor || (me.is_some() && me == t.from_user.as_deref());
            if !party {
                let current = load_registration(&state, t.charger_id.clone()).await?;
                require_operate(&principal, current.facts.community_id.as_deref())?;
            }
        }
    }
    let result = state
        .store()
        .decide_transfer(id, decision, &principal.actor, Timestamp::now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "charger.transfer.decide",
        Some(t.charger_id.clone()),
        serde_json::json!({ "transfer": id, "decision": format!("{decision:?}").to_lowercase() }),
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}
