//! `/api/v1/chargers`: registration, listing, connectors and status history.

use super::auth::{Belonging, Permission, Principal};
use super::dto::{ChargerDto, ConnectorDto, NewChargerDto, StatusRecordDto};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::{outcome_of, record_audit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::ChargePointId;
use orderly_store::{Connector, NewCharger};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;

/// Parse a charge point id from a path or body, naming the field on failure.
pub(crate) fn parse_id(raw: String, field: &str) -> Result<ChargePointId, ApiError> {
    ChargePointId::parse(raw).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// Parse a charge point id from the path: a malformed one cannot exist, so 404.
pub(crate) fn path_id(raw: String) -> Result<ChargePointId, ApiError> {
    ChargePointId::parse(raw.clone())
        .map_err(|_| ApiError::not_found(format!("charger {raw:?} not found")))
}

/// A charger may be read by admins, regulators, its owner and its community's staff.
async fn require_read(
    state: &AppState,
    principal: &Principal,
    id: &ChargePointId,
) -> Result<(), ApiError> {
    if principal.permits(Permission::ReadAll) {
        return Ok(());
    }
    let belonging = Belonging::of_charger(state, id).await?;
    principal.require(Permission::ReadOwn(belonging.owned()))
}

async fn load(state: &AppState, id: &ChargePointId) -> Result<ChargerDto, ApiError> {
    let store = state.store();
    let charger = store
        .get_charger(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("charger {id} not found")))?;
    let connectors = store.connectors(id).await?;
    Ok(ChargerDto::new(
        charger,
        state.registry().is_connected(id),
        connectors,
    ))
}

/// List chargers (registered and pending), with connection state and connectors: all for
/// admins and regulators, otherwise those the caller owns or whose community they serve.
#[utoipa::path(get, path = "/api/v1/chargers", tag = "chargers",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ChargerDto>), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<Vec<ChargerDto>>, ApiError> {
    let store = state.store();
    let mut chargers = store.list_chargers().await?;
    if !principal.permits(Permission::ReadAll) {
        let mut visible = Vec::new();
        for c in chargers {
            let belonging = Belonging::of_charger(&state, &c.id).await?;
            if principal.permits(Permission::ReadOwn(belonging.owned())) {
                visible.push(c);
            }
        }
        chargers = visible;
    }
    let mut connectors: HashMap<ChargePointId, Vec<Connector>> = HashMap::new();
    for c in store.all_connectors().await? {
        connectors.entry(c.charger_id.clone()).or_default().push(c);
    }
    let registry = state.registry();
    Ok(ApiJson(
        chargers
            .into_iter()
            .map(|c| {
                let own = connectors.remove(&c.id).unwrap_or_default();
                let connected = registry.is_connected(&c.id);
                ChargerDto::new(c, connected, own)
            })
            .collect(),
    ))
}

/// Register a charger (a pending one becomes registered). Its HTTP Basic password is stored as
/// an argon2 hash.
#[utoipa::path(post, path = "/api/v1/chargers", tag = "chargers",
    security(("bearer" = [])),
    request_body = NewChargerDto,
    responses(
        (status = 201, body = ChargerDto, description = "Registered"),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field"),
        (status = 409, body = super::error::ErrorBody, description = "Already registered"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewChargerDto>,
) -> Result<(StatusCode, ApiJson<ChargerDto>), ApiError> {
    principal.require(Permission::Administer)?;
    let actor = principal.as_actor();
    // The password never goes into the audit log.
    let audited = serde_json::json!({
        "id": body.id, "password_set": body.password.is_some(), "description": body.description,
    });
    let target = Some(body.id.clone());
    let result = async {
        let id = parse_id(body.id, "id")?;
        if body.password.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::bad_request(
                "password: must not be empty (omit it for none)",
            ));
        }
        let new = NewCharger {
            id: id.clone(),
            password: body.password,
            description: body.description,
        };
        state
            .store()
            .register_charger(new, Timestamp::now())
            .await?;
        load(&state, &id).await
    }
    .await;
    record_audit(
        &state,
        &actor,
        "charger.add",
        target,
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?)))
}

/// One charger.
#[utoipa::path(get, path = "/api/v1/chargers/{id}", tag = "chargers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = ChargerDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ChargerDto>, ApiError> {
    let id = path_id(id)?;
    require_read(&state, &principal, &id).await?;
    Ok(ApiJson(load(&state, &id).await?))
}

/// Remove a charger; an open connection of it is closed.
#[utoipa::path(delete, path = "/api/v1/chargers/{id}", tag = "chargers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 204, description = "Removed"), (status = 404, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::Administer)?;
    let actor = principal.as_actor();
    let result = async {
        let id = path_id(raw.clone())?;
        let community = state.store().charger_electrical(&id).await?;
        if !state.store().remove_charger(&id).await? {
            return Err(ApiError::not_found(format!("charger {id} not found")));
        }
        state.registry().disconnect(&id);
        // Its electrical facts went with it: its community's controller plans without it.
        if let Some(attrs) = community {
            crate::control::start_or_reload(&state, &attrs.community_id).await?;
        }
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    let request = serde_json::json!({ "id": raw });
    record_audit(
        &state,
        &actor,
        "charger.remove",
        Some(raw),
        request,
        outcome_of(&result),
    )
    .await;
    result
}

/// Latest status of each connector of a charger.
#[utoipa::path(get, path = "/api/v1/chargers/{id}/connectors", tag = "chargers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = Vec<ConnectorDto>), (status = 404, body = super::error::ErrorBody)))]
pub async fn connectors(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Vec<ConnectorDto>>, ApiError> {
    let id = path_id(id)?;
    require_read(&state, &principal, &id).await?;
    let store = state.store();
    if store.get_charger(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("charger {id} not found")));
    }
    Ok(ApiJson(
        store
            .connectors(&id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many entries, newest first (default 100, max 10000).
    pub limit: Option<u32>,
}

/// StatusNotifications received from a charger, newest first.
#[utoipa::path(get, path = "/api/v1/chargers/{id}/status-history", tag = "chargers",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id"), HistoryQuery),
    responses((status = 200, body = Vec<StatusRecordDto>), (status = 404, body = super::error::ErrorBody)))]
pub async fn status_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<ApiJson<Vec<StatusRecordDto>>, ApiError> {
    let id = path_id(id)?;
    require_read(&state, &principal, &id).await?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 10000"));
    }
    let store = state.store();
    if store.get_charger(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("charger {id} not found")));
    }
    let history = store.status_history(&id, limit).await?;
    Ok(ApiJson(history.into_iter().map(Into::into).collect()))
}
