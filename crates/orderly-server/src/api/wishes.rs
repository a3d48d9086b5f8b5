//! Residents' wishes: per transaction (`PUT /transactions/{id}/wish`) and per id tag
//! (`PUT /id-tags/{tag}/wish-defaults`). How they combine with history and the community's
//! defaults is in `control::wish`.

use super::auth::{Belonging, Permission, Principal};
use super::communities::CONTROLLER_WAIT;
use super::error::{ApiError, ApiJson, ApiPath};
use super::{outcome_of, record_audit};
use crate::control::{Msg, wish};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use orderly_core::IdTag;
use orderly_store::{TransactionId, WishDefaults, WishRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Body of `PUT /transactions/{id}/wish`. Give the departure as `departure` or `stay_hours`
/// (from the start), the energy as `energy_kwh` or `target_soc_percent` with `battery_kwh`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WishDto {
    /// When the car leaves (RFC 3339), in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub departure: Option<Timestamp>,
    /// Hours after the transaction's start the car leaves (0 < h ≤ 168).
    pub stay_hours: Option<f64>,
    /// Energy wanted from plug-in (kWh, grid side, 0–500).
    pub energy_kwh: Option<f64>,
    /// Wanted state of charge (%, 1–100); needs `battery_kwh`. Converted to energy from the
    /// first SoC reading of the transaction, or 20 % when the charger reports none, at 90 %
    /// charging efficiency.
    pub target_soc_percent: Option<f64>,
    /// Usable battery capacity (kWh, 1–500).
    pub battery_kwh: Option<f64>,
    /// Emergency fast charging: served first, at the community's emergency price.
    #[serde(default)]
    pub emergency: bool,
}

fn range(field: &str, v: Option<f64>, lo: f64, hi: f64, lo_inclusive: bool) -> Result<(), String> {
    let Some(v) = v else { return Ok(()) };
    let above = if lo_inclusive { v >= lo } else { v > lo };
    if v.is_finite() && above && v <= hi {
        Ok(())
    } else {
        let op = if lo_inclusive { "from" } else { "above" };
        Err(format!("{field}: must be a number {op} {lo} up to {hi}"))
    }
}

impl WishDto {
    fn check(&self, now: Timestamp) -> Result<(), String> {
        if self.departure.is_some() && self.stay_hours.is_some() {
            return Err("stay_hours: give departure or stay_hours, not both".into());
        }
        if let Some(d) = self.departure
            && d <= now
        {
            return Err(format!("departure: {d} is not in the future (now {now})"));
        }
        range("stay_hours", self.stay_hours, 0.0, 168.0, false)?;
        range("energy_kwh", self.energy_kwh, 0.0, 500.0, true)?;
        range(
            "target_soc_percent",
            self.target_soc_percent,
            1.0,
            100.0,
            true,
        )?;
        range("battery_kwh", self.battery_kwh, 1.0, 500.0, true)?;
        if self.energy_kwh.is_some() && self.target_soc_percent.is_some() {
            return Err(
                "target_soc_percent: give energy_kwh or target_soc_percent, not both".into(),
            );
        }
        match (self.target_soc_percent, self.battery_kwh) {
            (Some(_), None) => Err("battery_kwh: required with target_soc_percent".into()),
            (None, Some(_)) => Err("target_soc_percent: required with battery_kwh".into()),
            _ => Ok(()),
        }
    }
}

/// Set the resident's wish for a running transaction; the community re-plans at once and the
/// answer is the session as now planned (`orderly_control::SessionView`: expected finish,
/// energy by departure, cost). 202 when the controller has not planned the transaction yet
/// (the wish is stored and applies when it does).
#[utoipa::path(put, path = "/api/v1/transactions/{id}/wish", tag = "wishes",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "OCPP transactionId")),
    request_body = WishDto,
    responses(
        (status = 200, body = Object, description = "The session after the re-plan"),
        (status = 202, body = Object, description = "Stored; not planned yet"),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field (named)"),
        (status = 404, body = super::error::ErrorBody, description = "Unknown transaction"),
        (status = 409, body = super::error::ErrorBody, description = "Finished, or its charger is in no community"),
    ))]
pub async fn put_wish(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i32>,
    ApiJson(body): ApiJson<WishDto>,
) -> Result<Response, ApiError> {
    let audited = serde_json::to_value(&body).unwrap_or(Value::Null);
    let result = async {
        let now = state.clock().now();
        let store = state.store();
        let transaction = store
            .get_transaction(TransactionId(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("transaction {id} not found")))?;
        // The resident holding the transaction's id tag, admins, its community's operators.
        let belonging = Belonging::of_transaction(&state, &transaction).await?;
        principal.require(Permission::ActOwn(belonging.owned()))?;
        body.check(now).map_err(ApiError::bad_request)?;
        if transaction.stopped_at.is_some() {
            return Err(ApiError::conflict(format!(
                "transaction {id} has finished; a wish applies to a running transaction"
            )));
        }
        let Some(attrs) = store.charger_electrical(&transaction.charger_id).await? else {
            return Err(ApiError::conflict(format!(
                "transaction {id} is on charger {}, which belongs to no community",
                transaction.charger_id
            )));
        };
        store
            .put_wish(WishRecord {
                transaction_id: TransactionId(id),
                departure: body.departure,
                stay_hours: body.stay_hours,
                energy_kwh: body.energy_kwh,
                target_soc_percent: body.target_soc_percent,
                battery_kwh: body.battery_kwh,
                emergency: body.emergency,
                updated_at: now,
            })
            .await?;
        let query = state
            .controllers()
            .query(&attrs.community_id, |reply| Msg::Rewish {
                transaction_id: i64::from(id),
                reply,
            });
        let session = match tokio::time::timeout(CONTROLLER_WAIT, query).await {
            Ok(Ok(session)) => session,
            Ok(Err(_)) | Err(_) => None,
        };
        Ok(match session {
            Some(session) => (
                StatusCode::OK,
                ApiJson(serde_json::to_value(session).unwrap_or(Value::Null)),
            )
                .into_response(),
            None => (
                StatusCode::ACCEPTED,
                ApiJson(serde_json::json!({
                    "transaction_id": id,
                    "stored": true,
                    "planned": false,
                })),
            )
                .into_response(),
        })
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "transaction.wish",
        Some(id.to_string()),
        audited,
        outcome_of(&result),
    )
    .await;
    result
}

/// Body (and answer) of `PUT /id-tags/{tag}/wish-defaults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WishDefaultsDto {
    /// Usual departure, local clock time "HH:MM" in the community's time zone.
    pub departure_local: Option<String>,
    /// Usual stay (hours after plug-in), when no departure time is given.
    pub stay_hours: Option<f64>,
    /// Usual energy wanted (kWh).
    pub energy_kwh: Option<f64>,
}

fn path_tag(raw: String) -> Result<IdTag, ApiError> {
    IdTag::parse(raw.clone()).map_err(|_| ApiError::not_found(format!("id tag {raw:?} not found")))
}

/// Set the defaults used for every session started with this id tag (when the resident says
/// nothing for the session itself).
#[utoipa::path(put, path = "/api/v1/id-tags/{tag}/wish-defaults", tag = "wishes",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    request_body = WishDefaultsDto,
    responses(
        (status = 200, body = WishDefaultsDto, description = "Replaced"),
        (status = 201, body = WishDefaultsDto, description = "Created"),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field (named)"),
        (status = 404, body = super::error::ErrorBody, description = "Unknown id tag"),
    ))]
pub async fn put_defaults(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<WishDefaultsDto>,
) -> Result<(StatusCode, ApiJson<WishDefaultsDto>), ApiError> {
    let audited = serde_json::to_value(&body).unwrap_or(Value::Null);
    let result = async {
        let tag = path_tag(raw.clone())?;
        let belonging = Belonging::of_id_tag(&state, tag.as_str()).await?;
        principal.require(Permission::ActOwn(belonging.owned()))?;
        if let Some(t) = &body.departure_local {
            wish::check_local_time("departure_local", t).map_err(ApiError::bad_request)?;
        }
        if body.departure_local.is_some() && body.stay_hours.is_some() {
            return Err(ApiError::bad_request(
                "stay_hours: give departure_local or stay_hours, not both",
            ));
        }
        range("stay_hours", body.stay_hours, 0.0, 168.0, false).map_err(ApiError::bad_request)?;
        range("energy_kwh", body.energy_kwh, 0.0, 500.0, true).map_err(ApiError::bad_request)?;
        if state.store().get_id_tag(&tag).await?.is_none() {
            return Err(ApiError::not_found(format!("id tag {tag} not found")));
        }
        let created = state
            .store()
            .put_wish_defaults(WishDefaults {
                id_tag: tag,
                departure_local: body.departure_local.clone(),
                stay_hours: body.stay_hours,
                energy_kwh: body.energy_kwh,
                updated_at: Timestamp::now(),
            })
            .await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, ApiJson(body.clone())))
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "id_tag.wish_defaults",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    result
}

/// The defaults stored for an id tag.
#[utoipa::path(get, path = "/api/v1/id-tags/{tag}/wish-defaults", tag = "wishes",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    responses((status = 200, body = WishDefaultsDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_defaults(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<WishDefaultsDto>, ApiError> {
    let tag = path_tag(raw)?;
    let belonging = Belonging::of_id_tag(&state, tag.as_str()).await?;
    principal.require(Permission::ReadOwn(belonging.owned()))?;
    let d = state
        .store()
        .get_wish_defaults(&tag)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("id tag {tag} has no wish defaults")))?;
    Ok(ApiJson(WishDefaultsDto {
        departure_local: d.departure_local,
        stay_hours: d.stay_hours,
        energy_kwh: d.energy_kwh,
    }))
}
