//! Grid load-control commands over HTTP (policy clause 八): the grid company or an aggregator
//! limits a community's charging load to X kW, or reduces it by Y kW, from t1 to t2. Each
//! command is stored with its status and its latest report (baseline, drawn, delivered
//! reduction, compliance) as the community's controller measures it.

use super::auth::{Permission, Principal};
use super::communities::load;
use super::error::{ApiError, ApiJson, ApiPath};
use super::{outcome_of, record_audit};
use crate::control::task::grid_command;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use orderly_control::Input;
use orderly_grid::{CommandId, CommandSource};
use orderly_store::{GridCommandKind, GridCommandRecord, NewGridCommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Body of `POST /communities/{id}/grid-commands`. Give the end as `end` or
/// `duration_minutes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGridCommandDto {
    /// `limit`: the community's charging load stays at or below `kw`; `reduce`: it is `kw`
    /// below what it would have been.
    #[schema(value_type = String, example = "limit")]
    pub kind: GridCommandKind,
    /// kW, finite, 0 or more.
    pub kw: f64,
    /// RFC 3339; default now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start: Option<Timestamp>,
    /// RFC 3339, after `start` and in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end: Option<Timestamp>,
    /// Minutes after `start` (instead of `end`).
    pub duration_minutes: Option<f64>,
}

/// A grid command as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct GridCommandDto {
    pub id: i64,
    pub community: String,
    /// `limit` or `reduce`.
    pub kind: String,
    pub kw: f64,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub received: Timestamp,
    /// Who sent it: `{"source": "api", "actor": …}` or `{"source": "openadr", …}`.
    #[schema(value_type = Object)]
    pub source: Value,
    /// `scheduled`, `active`, `done` or `cancelled` (protocol time).
    pub status: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<Timestamp>,
    /// The latest `orderly_grid::CommandReport`: baseline and drawn kW per slot, delivered
    /// reduction, whether it complied; null until the controller reports.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
}

impl GridCommandDto {
    pub fn new(r: GridCommandRecord, now: Timestamp) -> Self {
        let complete = r
            .report
            .as_ref()
            .and_then(|v| v.get("complete"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let status = if r.cancelled_at.is_some() {
            "cancelled"
        } else if complete || now >= r.end {
            "done"
        } else if now >= r.start {
            "active"
        } else {
            "scheduled"
        };
        Self {
            id: r.id,
            community: r.community_id,
            kind: r.kind.as_str().to_owned(),
            kw: r.kw,
            start: r.start,
            end: r.end,
            received: r.received,
            source: r.source,
            status: status.to_owned(),
            cancelled_at: r.cancelled_at,
            report: r.report,
        }
    }
}

/// Give a community a grid command; its controller re-plans under it at once.
#[utoipa::path(post, path = "/api/v1/communities/{id}/grid-commands", tag = "grid-commands",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = NewGridCommandDto,
    responses(
        (status = 201, body = GridCommandDto),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field (named)"),
        (status = 404, body = super::error::ErrorBody, description = "Unknown community"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(community): ApiPath<String>,
    ApiJson(body): ApiJson<NewGridCommandDto>,
) -> Result<(StatusCode, ApiJson<GridCommandDto>), ApiError> {
    let audited = serde_json::to_value(&body).unwrap_or(Value::Null);
    let actor = principal.as_actor();
    let result = async {
        // Admins, and grid aggregators or operators whose scope includes the community.
        principal.require(Permission::ControlGrid(&community))?;
        let now = state.clock().now();
        if !(body.kw.is_finite() && body.kw >= 0.0) {
            return Err(ApiError::bad_request(
                "kw: must be a finite number, 0 or more",
            ));
        }
        let start = body.start.unwrap_or(now);
        let end = match (body.end, body.duration_minutes) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "duration_minutes: give end or duration_minutes, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request("end: required (or duration_minutes)"));
            }
            (Some(end), None) => end,
            (None, Some(minutes)) => {
                if !(minutes.is_finite() && minutes > 0.0 && minutes <= 7.0 * 24.0 * 60.0) {
                    return Err(ApiError::bad_request(
                        "duration_minutes: must be above 0 and at most a week (10080)",
                    ));
                }
                start
                    .checked_add(SignedDuration::from_secs_f64(minutes * 60.0))
                    .map_err(|_| ApiError::bad_request("duration_minutes: out of range"))?
            }
        };
        if end <= start {
            return Err(ApiError::bad_request(format!(
                "end: {end} must be after start {start}"
            )));
        }
        if end <= now {
            return Err(ApiError::bad_request(format!(
                "end: {end} is not in the future (now {now})"
            )));
        }
        load(&state, &community).await?;
        let source = CommandSource::Api {
            actor: actor.0.clone(),
        };
        let id = state
            .store()
            .insert_grid_command(NewGridCommand {
                community_id: community.clone(),
                kind: body.kind,
                kw: body.kw,
                start,
                end,
                received: now,
                source: serde_json::to_value(&source).unwrap_or(Value::Null),
                source_key: None,
            })
            .await?;
        let record = state
            .store()
            .get_grid_command(id)
            .await?
            .ok_or_else(|| ApiError::internal("grid command vanished after insert"))?;
        if let Some(command) = grid_command(&record) {
            state.controllers().post_community(
                &community,
                crate::control::Msg::Input(Input::GridCommand(command)),
            );
        }
        Ok((
            StatusCode::CREATED,
            ApiJson(GridCommandDto::new(record, now)),
        ))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "grid_command.create",
        Some(community.clone()),
        audited,
        outcome_of(&result),
    )
    .await;
    result
}

/// A community's grid commands, newest start first.
#[utoipa::path(get, path = "/api/v1/communities/{id}/grid-commands", tag = "grid-commands",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = Vec<GridCommandDto>), (status = 404, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(community): ApiPath<String>,
) -> Result<ApiJson<Vec<GridCommandDto>>, ApiError> {
    principal.require(Permission::ReadCommunity(&community))?;
    load(&state, &community).await?;
    let now = state.clock().now();
    let records = state.store().list_grid_commands(&community).await?;
    Ok(ApiJson(
        records
            .into_iter()
            .map(|r| GridCommandDto::new(r, now))
            .collect(),
    ))
}

async fn load_command(state: &AppState, id: i64) -> Result<GridCommandRecord, ApiError> {
    state
        .store()
        .get_grid_command(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("grid command {id} not found")))
}

/// One grid command with its status and latest report.
#[utoipa::path(get, path = "/api/v1/grid-commands/{cid}", tag = "grid-commands",
    security(("bearer" = [])),
    params(("cid" = i64, Path, description = "Command id")),
    responses((status = 200, body = GridCommandDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<GridCommandDto>, ApiError> {
    let record = load_command(&state, id).await?;
    principal.require(Permission::ReadCommunity(&record.community_id))?;
    Ok(ApiJson(GridCommandDto::new(record, state.clock().now())))
}

/// Cancel a grid command (the community's limits are restored at once). 409 once it is over.
#[utoipa::path(delete, path = "/api/v1/grid-commands/{cid}", tag = "grid-commands",
    security(("bearer" = [])),
    params(("cid" = i64, Path, description = "Command id")),
    responses(
        (status = 200, body = GridCommandDto, description = "Cancelled"),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Already over or cancelled"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<GridCommandDto>, ApiError> {
    let actor = principal.as_actor();
    let result = async {
        let now = state.clock().now();
        let record = load_command(&state, id).await?;
        principal.require(Permission::ControlGrid(&record.community_id))?;
        if record.cancelled_at.is_some() {
            return Err(ApiError::conflict(format!(
                "grid command {id} is already cancelled"
            )));
        }
        if record.end <= now {
            return Err(ApiError::conflict(format!(
                "grid command {id} is already over"
            )));
        }
        state.store().cancel_grid_command(id, now).await?;
        state.controllers().post_community(
            &record.community_id,
            crate::control::Msg::Input(Input::GridCommandCancelled { id: CommandId(id) }),
        );
        let record = load_command(&state, id).await?;
        Ok(ApiJson(GridCommandDto::new(record, now)))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "grid_command.cancel",
        Some(id.to_string()),
        serde_json::json!({ "id": id }),
        outcome_of(&result),
    )
    .await;
    result
}
