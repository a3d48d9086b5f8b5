//! Parking and charging together (clause 十二): occupancy reports by webhook, a bay's current
//! state, each community's parking rule, idle episodes and the caller's own idle fees. The rules
//! run in [`crate::parking`]; these handlers check who may ask and turn records into JSON.

use super::auth::{Owned, Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::{outcome_of, record_audit};
use crate::parking::{OccupancyReport, ParkingError};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_parking::Fen;
use orderly_store::{self as store, EpisodeFilter, NewParkingRule};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Reports taken per bay in a [`BayOccupancyDto`].
const RECENT: u32 = 20;

/// One occupancy report as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccupancyEventDto {
    pub id: i64,
    pub occupied: bool,
    /// ev, fuel or unknown.
    pub vehicle: String,
    pub plate: Option<String>,
    /// sensor, ground_lock or camera.
    pub source: String,
    /// When it was observed.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
}

impl From<store::OccupancyEvent> for OccupancyEventDto {
    fn from(e: store::OccupancyEvent) -> Self {
        Self {
            id: e.id,
            occupied: e.event.occupied,
            vehicle: e.event.vehicle,
            plate: e.event.plate,
            source: e.event.source,
            at: e.event.at,
            received_at: e.received_at,
        }
    }
}

/// An idle episode: a car not charging in an EV-only bay, or an EV left after charging, with
/// its fee.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdleEpisodeDto {
    pub id: i64,
    pub bay_id: i64,
    pub community_id: String,
    /// not_charging or overstay.
    pub kind: String,
    pub vehicle: String,
    pub plate: Option<String>,
    pub charger_id: Option<String>,
    /// The user who pays (the driver of the finished transaction), when known.
    pub payer: Option<String>,
    /// When the condition began (arrival, or charging finished).
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// When the rule's wait or grace ran out: the fee runs from here.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    /// When the car left or charged again (settled episodes).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    /// open or settled.
    pub state: String,
    /// The fee so far (final when settled), CNY.
    pub fee_cny: f64,
    /// The most one episode costs under the rule in force when it opened, CNY.
    pub cap_cny: f64,
    /// The notification sent when it opened.
    pub notification_id: Option<i64>,
}

impl From<store::IdleEpisode> for IdleEpisodeDto {
    fn from(e: store::IdleEpisode) -> Self {
        Self {
            id: e.id,
            bay_id: e.bay_id,
            community_id: e.community_id,
            kind: e.episode.kind,
            vehicle: e.episode.vehicle,
            plate: e.episode.plate,
            charger_id: e.episode.charger_id,
            payer: e.episode.payer,
            since: e.episode.since,
            opened_at: e.episode.opened_at,
            ended_at: e.ended_at,
            state: e.state,
            fee_cny: Fen(e.episode.fee_fen).as_cny(),
            cap_cny: Fen(e.episode.cap_fen).as_cny(),
            notification_id: e.notification_id,
        }
    }
}

/// A bay's occupancy now, its open idle episode and its latest reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct BayOccupancyDto {
    pub bay_id: i64,
    pub community_id: String,
    pub number: String,
    pub ev_only: bool,
    pub occupied: bool,
    pub vehicle: Option<String>,
    pub plate: Option<String>,
    /// When the car arrived.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// Last status of the bay's charger connector (OCPP 1.6), if it has one.
    pub connector_status: Option<String>,
    pub open_episode: Option<IdleEpisodeDto>,
    /// Latest reports, newest first (at most 20).
    pub recent: Vec<OccupancyEventDto>,
    /// Protocol time as of which the parking rules last checked every occupied bay (thresholds,
    /// grace, fees); null before the first check since the server started.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub rules_checked_at: Option<Timestamp>,
}

async fn load_bay(state: &AppState, id: i64) -> Result<store::Bay, ApiError> {
    state
        .store()
        .get_bay(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("bay {id} not found")))
}

async fn occupancy_of(state: &AppState, bay: store::Bay) -> Result<BayOccupancyDto, ApiError> {
    let store = state.store();
    let current = store.bay_parking_state(bay.id).await?.map(|s| s.state);
    let open_episode = store
        .idle_episodes(&EpisodeFilter {
            bay_id: Some(bay.id),
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|e| e.state == "open")
        .map(Into::into);
    let recent = store
        .occupancy_events(bay.id, RECENT)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(BayOccupancyDto {
        bay_id: bay.id,
        community_id: bay.community_id,
        number: bay.input.number,
        ev_only: bay.input.ev_only,
        occupied: current.as_ref().is_some_and(|s| s.occupied),
        vehicle: current.as_ref().and_then(|s| s.vehicle.clone()),
        plate: current.as_ref().and_then(|s| s.plate.clone()),
        since: current.as_ref().and_then(|s| s.since),
        connector_status: current.and_then(|s| s.connector_status),
        open_episode,
        recent,
        rules_checked_at: state.parking().checked_at(),
    })
}

fn check_plate(plate: &Option<String>) -> Result<(), ApiError> {
    if let Some(p) = plate
        && (p.trim().is_empty()
            || p.chars().count() > store::parking::MAX_PLATE_CHARS
            || p.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "plate: must be 1 to {} printable characters",
            store::parking::MAX_PLATE_CHARS
        )));
    }
    Ok(())
}

/// An occupancy report from a bay's sensor, ground lock or plate camera (admins, and the
/// operators and property managers of the bay's community: devices use such a token).
#[utoipa::path(post, path = "/api/v1/bays/{id}/occupancy", tag = "parking",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Bay id")),
    request_body = OccupancyReport,
    responses((status = 200, body = BayOccupancyDto, description = "Recorded; the bay as it is now"),
        (status = 400, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "`at` before the bay's last report"),
        (status = 413, description = "Body too large"),
        (status = 503, body = super::error::ErrorBody, description = "The parking task did not answer in time")))]
pub async fn report(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<OccupancyReport>,
) -> Result<ApiJson<BayOccupancyDto>, ApiError> {
    let bay = load_bay(&state, id).await?;
    if !principal.permits(Permission::OperateChargers(&bay.community_id)) {
        principal.require(Permission::ManageCommunity(&bay.community_id))?;
    }
    check_plate(&body.plate)?;
    match state.parking().report(id, body).await {
        Ok(_) => {}
        Err(ParkingError::Store(e)) => return Err(e.into()),
        Err(e @ ParkingError::OutOfOrder(_)) => return Err(ApiError::conflict(e.to_string())),
        Err(e @ ParkingError::Future(_)) => return Err(ApiError::bad_request(e.to_string())),
        Err(e @ ParkingError::Stopped) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            ));
        }
    }
    metrics::counter!(crate::parking::mqtt::REPORTS_TOTAL, "via" => "http", "outcome" => "ok")
        .increment(1);
    Ok(ApiJson(occupancy_of(&state, bay).await?))
}

/// A bay's occupancy, open idle episode and latest reports (its holder, its community's staff,
/// regulators, admins).
#[utoipa::path(get, path = "/api/v1/bays/{id}/occupancy", tag = "parking",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Bay id")),
    responses((status = 200, body = BayOccupancyDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn occupancy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<BayOccupancyDto>, ApiError> {
    let bay = load_bay(&state, id).await?;
    principal.require(Permission::ReadOwn(Owned {
        owner: bay.input.holder.as_deref(),
        community: Some(&bay.community_id),
    }))?;
    Ok(ApiJson(occupancy_of(&state, bay).await?))
}

/// A community's rule for idle cars in its EV-only bays.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParkingRuleDto {
    /// Minutes a car that is not charging (a fuel car, an EV not plugged in) may stay in an
    /// EV-only bay before it counts (0 to 10080).
    pub not_charging_minutes: i64,
    /// Minutes an EV may stay after its charging finished (0 to 10080).
    pub grace_minutes: i64,
    /// Fee per started interval once an episode opens, CNY (whole fen).
    pub fee_per_interval_cny: f64,
    /// Length of an interval, minutes (1 to 10080).
    pub interval_minutes: i64,
    /// Most charged for one episode, CNY (whole fen).
    pub cap_cny: f64,
}

/// The stored rule and who set it. The rule's fields are spelled out rather than flattened
/// from [`ParkingRuleDto`]: that one refuses unknown fields, and its schema would then refuse
/// `community_id` and the rest here.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkingRuleRecordDto {
    pub community_id: String,
    pub not_charging_minutes: i64,
    pub grace_minutes: i64,
    pub fee_per_interval_cny: f64,
    pub interval_minutes: i64,
    pub cap_cny: f64,
    pub updated_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<store::ParkingRuleRecord> for ParkingRuleRecordDto {
    fn from(r: store::ParkingRuleRecord) -> Self {
        Self {
            community_id: r.community_id,
            not_charging_minutes: r.rule.not_charging_minutes,
            grace_minutes: r.rule.grace_minutes,
            fee_per_interval_cny: Fen(r.rule.fee_per_interval_fen).as_cny(),
            interval_minutes: r.rule.interval_minutes,
            cap_cny: Fen(r.rule.cap_fen).as_cny(),
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }
    }
}

fn fen(field: &str, cny: f64) -> Result<Fen, ApiError> {
    Fen::from_cny(cny).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{field}: must be a non-negative amount in whole fen (0.01 CNY)"
        ))
    })
}

/// A community's parking rule (its staff, regulators, admins); 404 when it has none (then its
/// EV-only bays are not watched).
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/parking-rule", tag = "parking",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = ParkingRuleRecordDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ParkingRuleRecordDto>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    let rule =
        state.store().parking_rule(&id).await?.ok_or_else(|| {
            ApiError::not_found(format!("parking rule of community {id} not found"))
        })?;
    Ok(ApiJson(rule.into()))
}

/// Set a community's parking rule (its property manager, admins). Applies to episodes that
/// open from now on.
#[utoipa::path(put, path = "/api/v1/registry/communities/{id}/parking-rule", tag = "parking",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = ParkingRuleDto,
    responses((status = 200, body = ParkingRuleRecordDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn put_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ParkingRuleDto>,
) -> Result<ApiJson<ParkingRuleRecordDto>, ApiError> {
    principal.require(Permission::ManageCommunity(&id))?;
    let audited = serde_json::json!(body);
    let result = async {
        let fee = fen("fee_per_interval_cny", body.fee_per_interval_cny)?;
        let cap = fen("cap_cny", body.cap_cny)?;
        // The core's validation: one place says what a valid rule is.
        orderly_parking::Rule::from_minutes(
            body.not_charging_minutes,
            body.grace_minutes,
            fee,
            body.interval_minutes,
            cap,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let rule = NewParkingRule {
            not_charging_minutes: body.not_charging_minutes,
            grace_minutes: body.grace_minutes,
            fee_per_interval_fen: fee.0,
            interval_minutes: body.interval_minutes,
            cap_fen: cap.0,
        };
        Ok(state
            .store()
            .put_parking_rule(&id, rule, &principal.actor, Timestamp::now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "community.parking_rule.set",
        Some(id.clone()),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EpisodeQuery {
    /// At most this many, newest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

fn limit(q: &EpisodeQuery) -> Result<u32, ApiError> {
    match q.limit {
        None => Ok(100),
        Some(l @ 1..=1000) => Ok(l),
        Some(_) => Err(ApiError::bad_request("limit: must be 1 to 1000")),
    }
}

/// A community's idle episodes, newest first (its staff, regulators, admins).
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/idle-episodes", tag = "parking",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id"), EpisodeQuery),
    responses((status = 200, body = [IdleEpisodeDto]), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn community_episodes(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EpisodeQuery>,
) -> Result<ApiJson<Vec<IdleEpisodeDto>>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    let limit = limit(&q)?;
    if state.store().community_registry(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("community {id} not found")));
    }
    let episodes = state
        .store()
        .idle_episodes(&EpisodeFilter {
            community_id: Some(id),
            limit,
            ..Default::default()
        })
        .await?;
    Ok(ApiJson(episodes.into_iter().map(Into::into).collect()))
}

/// The caller's own idle fees (episodes they pay for), newest first.
#[utoipa::path(get, path = "/api/v1/me/idle-fees", tag = "parking",
    security(("bearer" = [])),
    params(EpisodeQuery),
    responses((status = 200, body = [IdleEpisodeDto]),
        (status = 400, body = super::error::ErrorBody, description = "An admin token is not a user")))]
pub async fn my_fees(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<EpisodeQuery>,
) -> Result<ApiJson<Vec<IdleEpisodeDto>>, ApiError> {
    let Some(user) = principal.user.clone() else {
        return Err(ApiError::bad_request(
            "Authorization: an admin token is not a user; list a community's idle-episodes",
        ));
    };
    let limit = limit(&q)?;
    let episodes = state
        .store()
        .idle_episodes(&EpisodeFilter {
            payer: Some(user),
            limit,
            ..Default::default()
        })
        .await?;
    Ok(ApiJson(episodes.into_iter().map(Into::into).collect()))
}
