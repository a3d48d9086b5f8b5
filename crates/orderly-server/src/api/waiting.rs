//! The waiting list for a community's public chargers: residents join with one of their id
//! tags, the first in line is offered a connector as one frees up (see
//! `orderly_store::waiting`), staff see and manage the whole list, residents their own entry and
//! its position. Times are protocol time (`state.clock()`), like the offers' expiry.

use super::auth::{Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::with_audit;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::IdTag;
use orderly_store::{self as store, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Joining a waiting list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinDto {
    /// One of the caller's own id tags: the one they will start charging with.
    #[schema(example = "04A2B3C4D5")]
    pub id_tag: String,
}

/// A connector held for an entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingOfferDto {
    pub charger_id: String,
    pub connector_id: i32,
    #[schema(value_type = String, format = DateTime)]
    pub offered_at: Timestamp,
    /// Start charging before this, or the connector passes to the next in line.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// An entry of a waiting list.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingEntryDto {
    pub id: i64,
    pub community_id: String,
    pub user: String,
    pub id_tag: String,
    /// waiting, offered, served, expired or left.
    #[schema(example = "waiting")]
    pub state: String,
    /// 1-based place among the live (waiting or offered) entries; absent once ended.
    pub position: Option<u32>,
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Timestamp,
    /// The offer made, kept after it was taken or expired.
    pub offer: Option<WaitingOfferDto>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
    /// The transaction that served the entry.
    pub transaction_id: Option<i64>,
    /// Who ended it: the user or staff (`user:LOGIN`, token name), or `service`.
    pub closed_by: Option<String>,
}

impl From<store::WaitingEntry> for WaitingEntryDto {
    fn from(e: store::WaitingEntry) -> Self {
        Self {
            id: e.id,
            community_id: e.community_id,
            user: e.user_id,
            id_tag: e.id_tag,
            state: e.state.as_str().to_owned(),
            position: e.position,
            joined_at: e.joined_at,
            offer: e.offer.map(|o| WaitingOfferDto {
                charger_id: o.charger_id,
                connector_id: o.connector_id,
                offered_at: o.offered_at,
                expires_at: o.expires_at,
            }),
            closed_at: e.closed_at,
            transaction_id: e.transaction_id,
            closed_by: e.closed_by,
        }
    }
}

/// A community's waiting list as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingListDto {
    pub community_id: String,
    /// How long an offer holds a connector.
    pub hold_minutes: u32,
    /// Live entries in queue order (staff: everyone's; others: their own), then, with
    /// `all=true`, ended ones, newest first.
    pub entries: Vec<WaitingEntryDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include ended entries (served, expired, left).
    pub all: Option<bool>,
}

/// A community's waiting-list settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingSettingsDto {
    /// How long an offer holds a connector, 1 to 1440 minutes (default 15).
    pub hold_minutes: u32,
}

async fn require_community(state: &AppState, id: &str) -> Result<(), ApiError> {
    if state.store().community_registry(id).await?.is_none() {
        return Err(ApiError::not_found(format!("community {id} not found")));
    }
    Ok(())
}

/// Staff who manage a community's list: its property manager or operators, admins.
fn is_staff(principal: &Principal, community: &str) -> bool {
    principal.permits(Permission::ManageCommunity(community))
        || principal.permits(Permission::OperateChargers(community))
}

/// A community's waiting list: staff in scope, regulators and admins see every entry; anyone
/// else sees their own entry and its position.
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/waiting-list", tag = "waiting-list",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id"), ListQuery),
    responses((status = 200, body = WaitingListDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<ApiJson<WaitingListDto>, ApiError> {
    require_community(&state, &id).await?;
    let store = state.store();
    let sees_all = principal.permits(Permission::ReadCommunity(&id));
    let entries = store
        .list_waiting(&id, query.all.unwrap_or(false))
        .await?
        .into_iter()
        .filter(|e| sees_all || principal.user.as_deref() == Some(e.user_id.as_str()))
        .map(Into::into)
        .collect();
    Ok(ApiJson(WaitingListDto {
        hold_minutes: store.waiting_hold_minutes(&id).await?,
        community_id: id,
        entries,
    }))
}

/// Join a community's waiting list with one of your own id tags (one live entry per user and
/// community). If a public connector is free now, the offer comes at once.
#[utoipa::path(post, path = "/api/v1/registry/communities/{id}/waiting-list", tag = "waiting-list",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = JoinDto,
    responses((status = 201, body = WaitingEntryDto),
        (status = 400, body = super::error::ErrorBody, description = "id_tag invalid or not yours"),
        (status = 403, body = super::error::ErrorBody, description = "Not a user, or a regulator"),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Already on this list")))]
pub async fn join(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<JoinDto>,
) -> Result<(StatusCode, ApiJson<WaitingEntryDto>), ApiError> {
    let Some(user) = principal.user.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: an admin token is not a user; residents join with their own id tags",
        ));
    };
    if principal.role == Role::Regulator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: regulators read, they do not queue",
        ));
    }
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "waiting_list.join",
        Some(id.clone()),
        audited,
        async {
            let tag = IdTag::parse(body.id_tag.clone())
                .map_err(|e| ApiError::bad_request(format!("id_tag: {e}")))?;
            Ok(state
                .store()
                .join_waiting_list(&id, &user, tag.as_str(), state.clock().now())
                .await?)
        },
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

/// Leave a waiting list (the entry's user), or remove an entry (the community's property
/// manager or operators, admins). A held connector passes to the next in line.
#[utoipa::path(delete, path = "/api/v1/registry/communities/{id}/waiting-list/{entry}", tag = "waiting-list",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id"),
        ("entry" = i64, Path, description = "Entry id")),
    responses((status = 200, body = WaitingEntryDto, description = "The entry, now `left`"),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The entry has ended")))]
pub async fn leave(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, entry)): ApiPath<(String, i64)>,
) -> Result<ApiJson<WaitingEntryDto>, ApiError> {
    let store = state.store();
    let found = store
        .waiting_entry(entry)
        .await?
        .filter(|e| e.community_id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("waiting-list entry {entry} of community {id}"))
        })?;
    let own = principal.user.as_deref() == Some(found.user_id.as_str());
    if !own && !is_staff(&principal, &id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "forbidden: {} {} may not remove another user's entry",
                principal.role.as_str(),
                principal.user.as_deref().unwrap_or(&principal.actor)
            ),
        ));
    }
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "waiting_list.leave",
        Some(format!("{id}/{entry}")),
        serde_json::json!({ "community": id, "entry": entry, "user": found.user_id }),
        async {
            Ok(store
                .leave_waiting_list(entry, &principal.actor, state.clock().now())
                .await?)
        },
    )
    .await;
    Ok(ApiJson(result?.into()))
}

/// Set how long an offer holds a connector in this community (its property manager or
/// operators, admins).
#[utoipa::path(put, path = "/api/v1/registry/communities/{id}/waiting-list/settings", tag = "waiting-list",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = WaitingSettingsDto,
    responses((status = 200, body = WaitingSettingsDto),
        (status = 400, body = super::error::ErrorBody, description = "hold_minutes out of range"),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn settings(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<WaitingSettingsDto>,
) -> Result<ApiJson<WaitingSettingsDto>, ApiError> {
    if !is_staff(&principal, &id) {
        principal.require(Permission::ManageCommunity(&id))?;
    }
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "waiting_list.settings",
        Some(id.clone()),
        audited,
        async {
            Ok(state
                .store()
                .set_waiting_hold(&id, body.hold_minutes, state.clock().now())
                .await?)
        },
    )
    .await;
    Ok(ApiJson(WaitingSettingsDto {
        hold_minutes: result?,
    }))
}
