//! `/api/v1/communities`: communities (transformer, base load, tariff, emergency rules), the
//! chargers attached to them, and each community's plan as its controller sees it.

use super::auth::{Permission, Principal};
use super::chargers::path_id;
use super::error::{ApiError, ApiJson, ApiPath};
use super::{Actor, outcome_of, record_audit};
use crate::control::settings::{ChargerElectricalSettings, CommunitySettings, RateUnitSetting};
use crate::control::{self, Msg, spec};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_store::{ChargerElectrical, CommunityRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;

/// How long the API waits for a controller's answer (it answers between two plan steps).
pub(crate) const CONTROLLER_WAIT: Duration = Duration::from_secs(10);

/// A charger of a community, with its electrical facts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommunityChargerDto {
    pub id: String,
    pub community: String,
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
    pub min_current_a: f64,
    /// `amperes` or `watts`: the unit its charging profiles use.
    pub rate_unit: String,
    /// kW at `max_current_a` on all phases.
    pub max_kw: f64,
    pub connected: bool,
}

impl CommunityChargerDto {
    fn new(c: ChargerElectrical, connected: bool) -> Self {
        Self {
            id: c.charger_id.to_string(),
            max_kw: c.max_current_a * c.voltage_v * f64::from(c.phases) / 1000.0,
            community: c.community_id,
            phases: c.phases,
            voltage_v: c.voltage_v,
            max_current_a: c.max_current_a,
            min_current_a: c.min_current_a,
            rate_unit: c.rate_unit,
            connected,
        }
    }
}

/// A community as stored, with its chargers.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommunityDto {
    pub id: String,
    pub name: Option<String>,
    pub rating_kva: f64,
    pub power_factor: f64,
    /// rating × power factor (kW).
    pub usable_kw: f64,
    /// 24 values (kW) by local clock hour.
    pub base_load_kw: Vec<f64>,
    pub timezone: String,
    /// 24 values (CNY/kWh) by local clock hour.
    pub tariff_cny_per_kwh: Vec<f64>,
    pub emergency_price_cny_per_kwh: f64,
    pub max_emergencies: Option<u32>,
    pub default_stay_hours: f64,
    pub default_energy_kwh: f64,
    pub community_meter: Option<String>,
    pub chargers: Vec<CommunityChargerDto>,
    /// Whether its controller is running.
    pub controller_running: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

async fn dto(state: &AppState, c: CommunityRecord) -> Result<CommunityDto, ApiError> {
    let chargers = state
        .store()
        .community_chargers(&c.id)
        .await?
        .into_iter()
        .map(|e| {
            let connected = state.registry().is_connected(&e.charger_id);
            CommunityChargerDto::new(e, connected)
        })
        .collect();
    Ok(CommunityDto {
        usable_kw: c.rating_kva * c.power_factor,
        controller_running: state.controllers().is_running(&c.id),
        id: c.id,
        name: c.name,
        rating_kva: c.rating_kva,
        power_factor: c.power_factor,
        base_load_kw: c.base_load_kw,
        timezone: c.timezone,
        tariff_cny_per_kwh: c.tariff_cny_per_kwh,
        emergency_price_cny_per_kwh: c.emergency_price_cny_per_kwh,
        max_emergencies: c.max_emergencies,
        default_stay_hours: c.default_stay_hours,
        default_energy_kwh: c.default_energy_kwh,
        community_meter: c.community_meter.map(|m| m.to_string()),
        chargers,
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

pub(crate) async fn load(state: &AppState, id: &str) -> Result<CommunityRecord, ApiError> {
    state
        .store()
        .get_community(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("community {id:?} not found")))
}

/// All communities.
#[utoipa::path(get, path = "/api/v1/communities", tag = "communities",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<CommunityDto>)))]
pub async fn list(State(state): State<AppState>) -> Result<ApiJson<Vec<CommunityDto>>, ApiError> {
    let mut out = Vec::new();
    for c in state.store().list_communities().await? {
        out.push(dto(&state, c).await?);
    }
    Ok(ApiJson(out))
}

/// One community.
#[utoipa::path(get, path = "/api/v1/communities/{id}", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = CommunityDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CommunityDto>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    let c = load(&state, &id).await?;
    Ok(ApiJson(dto(&state, c).await?))
}

/// Create or update a community; its controller starts (or re-plans with the new settings).
///
/// `base_load_kw` is one number (flat) or 24 values by local clock hour; `tariff_cny_per_kwh`
/// defaults to the Beijing EV time-of-use tariff; `timezone` to Asia/Shanghai.
#[utoipa::path(put, path = "/api/v1/communities/{id}", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id (A-Z a-z 0-9 . _ -)")),
    request_body = CommunitySettings,
    responses(
        (status = 200, body = CommunityDto, description = "Updated"),
        (status = 201, body = CommunityDto, description = "Created"),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field (named)"),
    ))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CommunitySettings>,
) -> Result<(StatusCode, ApiJson<CommunityDto>), ApiError> {
    let audited = serde_json::to_value(&body).unwrap_or(Value::Null);
    let actor = principal.as_actor();
    let result = async {
        // Its transformer data: admins and the property manager in scope.
        principal.require(Permission::ManageCommunity(&id))?;
        let now = Timestamp::now();
        let record = spec::community_record(&id, &body, now).map_err(ApiError::bad_request)?;
        let created = state.store().put_community(record, now).await?;
        control::start_or_reload(&state, &id).await?;
        let c = load(&state, &id).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, ApiJson(dto(&state, c).await?)))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "community.put",
        Some(id.clone()),
        audited,
        outcome_of(&result),
    )
    .await;
    result
}

/// Remove a community (and its grid commands); refused while chargers are attached.
#[utoipa::path(delete, path = "/api/v1/communities/{id}", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Chargers attached"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let actor = principal.as_actor();
    let result = async {
        principal.require(Permission::Administer)?;
        match state.store().remove_community(&id).await {
            Ok(true) => {}
            Ok(false) => return Err(ApiError::not_found(format!("community {id:?} not found"))),
            Err(StoreError::Conflict(what)) => {
                return Err(ApiError::conflict(format!(
                    "{what} cannot be removed; detach them first"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        state.controllers().stop(&id);
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    let request = serde_json::json!({ "id": id });
    record_audit(
        &state,
        &actor,
        "community.remove",
        Some(id.clone()),
        request,
        outcome_of(&result),
    )
    .await;
    result
}

/// Body of `PUT /chargers/{id}/community`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachDto {
    /// The community's id.
    pub community: String,
    /// 1 or 3 (default 1).
    pub phases: Option<u8>,
    /// Default 220 V; at most 1,000.
    pub voltage_v: Option<f64>,
    /// Default 32 A; at most 1,000.
    pub max_current_a: Option<f64>,
    /// Default 6 A.
    pub min_current_a: Option<f64>,
    /// `amperes` (default) or `watts`.
    pub rate_unit: Option<RateUnitSetting>,
}

/// Attach a charger to a community with its electrical facts (moving it from another one).
#[utoipa::path(put, path = "/api/v1/chargers/{id}/community", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = AttachDto,
    responses(
        (status = 200, body = CommunityChargerDto),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field (named)"),
        (status = 404, body = super::error::ErrorBody, description = "Unknown charger or community"),
    ))]
pub async fn attach(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<AttachDto>,
) -> Result<ApiJson<CommunityChargerDto>, ApiError> {
    let audited = serde_json::to_value(&body).unwrap_or(Value::Null);
    let result = async {
        let id = path_id(raw.clone())?;
        let settings = ChargerElectricalSettings {
            phases: body.phases.unwrap_or(1),
            voltage_v: body.voltage_v.unwrap_or(220.0),
            max_current_a: body.max_current_a.unwrap_or(32.0),
            min_current_a: body.min_current_a.unwrap_or(6.0),
            rate_unit: body.rate_unit.unwrap_or_default(),
        };
        let attrs =
            spec::charger_record(&id, &body.community, &settings).map_err(ApiError::bad_request)?;
        let before = state.store().charger_electrical(&id).await?;
        state
            .store()
            .attach_charger(attrs.clone(), Timestamp::now())
            .await?;
        if let Some(old) = before
            && old.community_id != attrs.community_id
        {
            control::start_or_reload(&state, &old.community_id).await?;
        }
        control::start_or_reload(&state, &attrs.community_id).await?;
        let connected = state.registry().is_connected(&id);
        Ok(ApiJson(CommunityChargerDto::new(attrs, connected)))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "charger.attach",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    result
}

/// Detach a charger from its community.
#[utoipa::path(delete, path = "/api/v1/chargers/{id}/community", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 204, description = "Detached"), (status = 404, body = super::error::ErrorBody)))]
pub async fn detach(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let id = path_id(raw.clone())?;
        let Some(before) = state.store().charger_electrical(&id).await? else {
            return Err(ApiError::not_found(format!(
                "charger {id} is not attached to a community"
            )));
        };
        state
            .store()
            .detach_charger(&id, state.clock().now())
            .await?;
        control::start_or_reload(&state, &before.community_id).await?;
        // Its controller's recurring profiles come off the charger (now, or at its next boot).
        tokio::spawn(control::release::release_if_pending(state.clone(), id));
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    let request = serde_json::json!({ "id": raw });
    record_audit(
        &state,
        &actor,
        "charger.detach",
        Some(raw),
        request,
        outcome_of(&result),
    )
    .await;
    result
}

/// The community's plan now: capacity and planned load per slot, every session's wish and
/// expectations (finish time, energy by departure, cost), and each charger's profile state
/// (`chargers`: connected, profiles confirmed, compliant).
#[utoipa::path(get, path = "/api/v1/communities/{id}/plan", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses(
        (status = 200, body = Object, description = "orderly_control::PlanView plus `chargers`"),
        (status = 404, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody, description = "Controller not running"),
    ))]
pub async fn plan(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Value>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    load(&state, &id).await?;
    let query = state.controllers().query(&id, |reply| Msg::Plan { reply });
    let plan = match tokio::time::timeout(CONTROLLER_WAIT, query).await {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the controller of community {id} did not answer in time"),
            ));
        }
    };
    let chargers: Vec<Value> = state
        .store()
        .community_chargers(&id)
        .await?
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "id": c.charger_id,
                "connected": state.registry().is_connected(&c.charger_id),
                "profiles_confirmed": !plan.unconfirmed_chargers.contains(&c.charger_id),
                "compliant": !plan.non_compliant_chargers.contains(&c.charger_id),
            })
        })
        .collect();
    let mut value = serde_json::to_value(&plan)
        .map_err(|e| ApiError::internal(format!("plan does not serialize: {e}")))?;
    if let Value::Object(map) = &mut value {
        map.insert("community".into(), Value::String(id));
        map.insert("chargers".into(), Value::Array(chargers));
    }
    Ok(ApiJson(value))
}

/// A change of a charger's compliance, as the controller detected it from meter values.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplianceEventDto {
    pub id: i64,
    pub charger: String,
    pub community: Option<String>,
    /// false: it drew more than its limit (beyond the tolerance); true: back within it.
    pub compliant: bool,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub detail: String,
}

/// A charger's compliance changes, newest first (at most 1000).
#[utoipa::path(get, path = "/api/v1/chargers/{id}/compliance", tag = "communities",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = Vec<ComplianceEventDto>), (status = 404, body = super::error::ErrorBody)))]
pub async fn compliance(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<Vec<ComplianceEventDto>>, ApiError> {
    let id = path_id(raw)?;
    if state.store().get_charger(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("charger {id} not found")));
    }
    let events = state
        .store()
        .list_compliance_events(Some(&id), 1000)
        .await?;
    Ok(ApiJson(
        events
            .into_iter()
            .map(|e| ComplianceEventDto {
                id: e.id,
                charger: e.charger_id.to_string(),
                community: e.community_id,
                compliant: e.compliant,
                at: e.at,
                detail: e.detail,
            })
            .collect(),
    ))
}

impl From<control::QueryError> for ApiError {
    fn from(e: control::QueryError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}
