//! Sharing private chargers with neighbours (policy clause 七): the owner's agreement per
//! charger, availability windows, offers to residents, bookings and their cancellation, and
//! monthly statements as CSV. The rules (who may charge when, settlement figures) live in
//! `orderly_store::sharing`; Authorize and StartTransaction apply them in the gateway.
//!
//! Times a charger sees (window and booking validity, cancellation notice) are protocol time
//! (`state.clock()`); statement months are China Standard Time (UTC+8, no daylight saving).

use super::auth::{Owned, Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::registry::{charger_owned, load_registration};
use super::users::check_text;
use super::{outcome_of, record_audit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use orderly_store::{self as store, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The terms of a sharing agreement, as the owner sets them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTermsDto {
    /// Price per kWh in CNY, 0 to 100.
    #[schema(example = 1.2)]
    pub price_per_kwh_cny: f64,
    /// Price per hour of connection in CNY (optional), 0 to 1000.
    #[serde(default)]
    pub price_per_hour_cny: Option<f64>,
    /// The owner's share of each settlement in percent; the operator gets the rest.
    #[schema(example = 70.0)]
    pub owner_share_percent: f64,
    /// The operator who gets the rest.
    pub operator: String,
    /// The owner's own car keeps priority: the owner may start during a booking that has not
    /// started (the booking is then `bumped`, no fee). Without it the owner's tag is refused
    /// while a neighbour's booking holds the charger.
    pub owner_priority: bool,
    /// A booking not started this many minutes after its start is a no-show (0 to 10080).
    pub no_show_grace_min: i64,
    /// Fee for a no-show, CNY with at most 2 decimals.
    pub no_show_fee_cny: f64,
    /// Cancelling at least this many minutes before the start is free (0 to 10080).
    pub cancel_notice_min: i64,
    /// Fee for a later cancellation by the booker, CNY with at most 2 decimals.
    pub late_cancel_fee_cny: f64,
}

/// A sharing agreement as stored: the charger, the terms' fields ([`AgreementTermsDto`]) and
/// when it was made and changed. Spelled out rather than flattened: the terms refuse unknown
/// fields, and a flattened schema would then refuse `charger_id` and the rest here.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementDto {
    pub charger_id: String,
    pub price_per_kwh_cny: f64,
    pub price_per_hour_cny: Option<f64>,
    pub owner_share_percent: f64,
    pub operator: String,
    pub owner_priority: bool,
    pub no_show_grace_min: i64,
    pub no_show_fee_cny: f64,
    pub cancel_notice_min: i64,
    pub late_cancel_fee_cny: f64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn cny(fen: i64) -> f64 {
    fen as f64 / 100.0
}

fn cny_text(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

/// CNY with at most two decimals → fen; the error names `field`.
fn fen_of(field: &str, v: f64) -> Result<i64, ApiError> {
    let scaled = v * 100.0;
    if !(v.is_finite() && (0.0..=10_000.0).contains(&v)) {
        return Err(ApiError::bad_request(format!(
            "{field}: must be 0 to 10000 CNY"
        )));
    }
    if (scaled - scaled.round()).abs() > 1e-6 {
        return Err(ApiError::bad_request(format!(
            "{field}: at most 2 decimals (whole fen)"
        )));
    }
    Ok(scaled.round() as i64)
}

impl From<store::Terms> for AgreementTermsDto {
    fn from(t: store::Terms) -> Self {
        Self {
            price_per_kwh_cny: t.price_per_kwh_cny,
            price_per_hour_cny: t.price_per_hour_cny,
            owner_share_percent: t.owner_share_percent,
            operator: t.operator,
            owner_priority: t.owner_priority,
            no_show_grace_min: t.no_show_grace_min,
            no_show_fee_cny: cny(t.no_show_fee_fen),
            cancel_notice_min: t.cancel_notice_min,
            late_cancel_fee_cny: cny(t.late_cancel_fee_fen),
        }
    }
}

impl TryFrom<AgreementTermsDto> for store::Terms {
    type Error = ApiError;
    fn try_from(d: AgreementTermsDto) -> Result<Self, ApiError> {
        check_text("operator", &d.operator, 200)?;
        Ok(Self {
            price_per_kwh_cny: d.price_per_kwh_cny,
            price_per_hour_cny: d.price_per_hour_cny,
            owner_share_percent: d.owner_share_percent,
            operator: d.operator,
            owner_priority: d.owner_priority,
            no_show_grace_min: d.no_show_grace_min,
            no_show_fee_fen: fen_of("no_show_fee_cny", d.no_show_fee_cny)?,
            cancel_notice_min: d.cancel_notice_min,
            late_cancel_fee_fen: fen_of("late_cancel_fee_cny", d.late_cancel_fee_cny)?,
        })
    }
}

impl From<store::Agreement> for AgreementDto {
    fn from(a: store::Agreement) -> Self {
        let t = AgreementTermsDto::from(a.terms);
        Self {
            charger_id: a.charger_id,
            price_per_kwh_cny: t.price_per_kwh_cny,
            price_per_hour_cny: t.price_per_hour_cny,
            owner_share_percent: t.owner_share_percent,
            operator: t.operator,
            owner_priority: t.owner_priority,
            no_show_grace_min: t.no_show_grace_min,
            no_show_fee_cny: t.no_show_fee_cny,
            cancel_notice_min: t.cancel_notice_min,
            late_cancel_fee_cny: t.late_cancel_fee_cny,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A charger's sharing agreement (its owner, the community's staff, regulators, admins).
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}/sharing", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = AgreementDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody, description = "Unknown charger or no agreement")))]
pub async fn get_agreement(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<AgreementDto>, ApiError> {
    let reg = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&reg)))?;
    let agreement = state
        .store()
        .sharing_agreement(&reg.charger_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "charger {} has no sharing agreement",
                reg.charger_id
            ))
        })?;
    Ok(ApiJson(agreement.into()))
}

/// Set the sharing agreement of a privately owned (self_use) charger: its owner, an operator of
/// its community, admins. Bookings already made keep the terms they were made under.
#[utoipa::path(put, path = "/api/v1/registry/chargers/{id}/sharing", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = AgreementTermsDto,
    responses((status = 200, body = AgreementDto),
        (status = 400, body = super::error::ErrorBody, description = "A term is out of range (named), or the charger is not a privately owned self_use charger"),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn put_agreement(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<AgreementTermsDto>,
) -> Result<ApiJson<AgreementDto>, ApiError> {
    let reg = load_registration(&state, raw.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&reg)))?;
    let audited = serde_json::json!(body);
    let result = async {
        let terms = store::Terms::try_from(body)?;
        Ok(state
            .store()
            .put_sharing_agreement(&reg.charger_id, terms, state.clock().now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.agreement.put",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}

/// Bookings cancelled when sharing ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharingEndedDto {
    pub cancelled_bookings: Vec<i64>,
}

/// Stop sharing a charger (its owner, an operator of its community, admins): every availability
/// window is withdrawn, pending bookings are cancelled without fee and their bookers notified,
/// and the agreement is deleted, all at once. Past bookings and settlements stay (statements do
/// not change). Refused (409) while a neighbour is charging on it.
#[utoipa::path(delete, path = "/api/v1/registry/chargers/{id}/sharing", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = SharingEndedDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody, description = "Unknown charger or no agreement"),
        (status = 409, body = super::error::ErrorBody, description = "A neighbour's booking is active")))]
pub async fn end_agreement(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<SharingEndedDto>, ApiError> {
    let reg = load_registration(&state, raw.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&reg)))?;
    let result = state
        .store()
        .end_sharing_agreement(&reg.charger_id, &principal.actor, state.clock().now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.agreement.end",
        Some(raw),
        serde_json::json!({}),
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(SharingEndedDto {
        cancelled_bookings: result?,
    }))
}

// ----- windows --------------------------------------------------------------------------------

/// A time span (start inclusive, end exclusive).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpanDto {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// After `start`, at most 31 days later.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WindowDto {
    pub id: i64,
    pub charger_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

impl From<store::Window> for WindowDto {
    fn from(w: store::Window) -> Self {
        Self {
            id: w.id,
            charger_id: w.charger_id,
            start: w.start,
            end: w.end,
        }
    }
}

/// A charger's availability windows not yet over.
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}/sharing/windows", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = Vec<WindowDto>), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn list_windows(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<Vec<WindowDto>>, ApiError> {
    let reg = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&reg)))?;
    let windows = state
        .store()
        .list_sharing_windows(&reg.charger_id, state.clock().now())
        .await?;
    Ok(ApiJson(windows.into_iter().map(Into::into).collect()))
}

/// Publish an availability window (the owner, an operator of the community, admins): not in the
/// past, not overlapping another window of the charger; the charger needs an agreement.
#[utoipa::path(post, path = "/api/v1/registry/chargers/{id}/sharing/windows", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = SpanDto,
    responses((status = 201, body = WindowDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody, description = "Unknown charger, or no agreement"),
        (status = 409, body = super::error::ErrorBody, description = "Overlaps another window (named)")))]
pub async fn add_window(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<SpanDto>,
) -> Result<(StatusCode, ApiJson<WindowDto>), ApiError> {
    let reg = load_registration(&state, raw.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&reg)))?;
    let result = state
        .store()
        .add_sharing_window(&reg.charger_id, body.start, body.end, state.clock().now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.window.add",
        Some(raw),
        serde_json::json!(body),
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

/// Bookings cancelled with a withdrawn window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowRemovedDto {
    pub cancelled_bookings: Vec<i64>,
}

/// Withdraw an availability window (the owner, an operator of the community, admins). Refused
/// (409) while one of its bookings is active; its pending bookings are cancelled without fee and
/// their bookers notified.
#[utoipa::path(delete, path = "/api/v1/sharing/windows/{id}", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Window id")),
    responses((status = 200, body = WindowRemovedDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "A booking in it is active")))]
pub async fn remove_window(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<WindowRemovedDto>, ApiError> {
    let window = state
        .store()
        .get_sharing_window(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("window {id} not found")))?;
    let reg = load_registration(&state, window.charger_id.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&reg)))?;
    let result = state
        .store()
        .remove_sharing_window(id, &principal.actor, state.clock().now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.window.remove",
        Some(id.to_string()),
        serde_json::json!({ "window": id }),
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(WindowRemovedDto {
        cancelled_bookings: result?,
    }))
}

// ----- offers ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OffersQuery {
    /// The community whose shared chargers to list.
    pub community: String,
}

/// An open availability window, its free parts and its terms.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferDto {
    pub window_id: i64,
    pub charger_id: String,
    pub owner: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// The parts not booked yet, from now on.
    pub free: Vec<OfferSpanDto>,
    pub terms: AgreementTermsDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferSpanDto {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

/// Open windows of a community's shared chargers: residents and charger owners (any
/// community: neighbours), the community's staff, regulators, admins.
#[utoipa::path(get, path = "/api/v1/sharing/offers", tag = "sharing",
    security(("bearer" = [])),
    params(OffersQuery),
    responses((status = 200, body = Vec<OfferDto>), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn offers(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<OffersQuery>,
) -> Result<ApiJson<Vec<OfferDto>>, ApiError> {
    check_text("community", &query.community, 200)?;
    if !is_neighbour(&principal) {
        principal.require(Permission::ReadCommunity(&query.community))?;
    }
    let offers = state
        .store()
        .sharing_offers(&query.community, state.clock().now())
        .await?;
    Ok(ApiJson(
        offers
            .into_iter()
            .map(|o| OfferDto {
                window_id: o.window.id,
                charger_id: o.window.charger_id,
                owner: o.owner,
                start: o.window.start,
                end: o.window.end,
                free: o
                    .free
                    .into_iter()
                    .map(|(start, end)| OfferSpanDto { start, end })
                    .collect(),
                terms: o.terms.into(),
            })
            .collect(),
    ))
}

/// Residents and charger owners with a login: the people who book.
fn is_neighbour(principal: &Principal) -> bool {
    principal.user.is_some() && matches!(principal.role, Role::Resident | Role::ChargerOwner)
}

// ----- bookings -------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBookingDto {
    pub charger_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// One of the booker's own id tags: the one the charger will accept during the booking.
    pub id_tag: String,
}

/// One settlement: a session (energy and time), a no-show or a late cancellation. Amounts in
/// fen (1/100 CNY); owner_share_fen + operator_share_fen = total_fen.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementDto {
    pub id: i64,
    /// session, no_show or late_cancel.
    pub kind: String,
    pub booking_id: i64,
    pub charger_id: String,
    pub transaction_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub energy_wh: i64,
    pub duration_ms: i64,
    pub energy_fee_fen: i64,
    pub time_fee_fen: i64,
    /// No-show or late-cancellation fee.
    pub fee_fen: i64,
    pub total_fen: i64,
    pub owner_share_fen: i64,
    pub operator_share_fen: i64,
    pub operator: String,
}

impl From<store::Settlement> for SettlementDto {
    fn from(s: store::Settlement) -> Self {
        Self {
            id: s.id,
            kind: s.kind.as_str().to_owned(),
            booking_id: s.booking_id,
            charger_id: s.charger_id,
            transaction_id: s.transaction_id,
            at: s.at,
            energy_wh: s.figures.energy_wh,
            duration_ms: s.figures.duration_ms,
            energy_fee_fen: s.figures.energy_fee_fen,
            time_fee_fen: s.figures.time_fee_fen,
            fee_fen: s.figures.fee_fen,
            total_fen: s.figures.total_fen,
            owner_share_fen: s.figures.owner_share_fen,
            operator_share_fen: s.figures.operator_share_fen,
            operator: s.operator,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BookingDto {
    pub id: i64,
    pub window_id: i64,
    pub charger_id: String,
    pub owner: Option<String>,
    pub community_id: Option<String>,
    pub booker: String,
    pub id_tag: String,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// pending, active (charging), completed, cancelled, no_show, bumped (the owner took
    /// priority).
    pub state: String,
    /// The agreement's terms when booked (what it is settled at).
    pub terms: AgreementTermsDto,
    /// The transaction it started.
    pub transaction_id: Option<i64>,
    pub cancelled_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub settlement: Option<SettlementDto>,
}

impl From<store::Booking> for BookingDto {
    fn from(b: store::Booking) -> Self {
        Self {
            id: b.id,
            window_id: b.window_id,
            charger_id: b.charger_id,
            owner: b.owner,
            community_id: b.community_id,
            booker: b.booker,
            id_tag: b.id_tag,
            start: b.start,
            end: b.end,
            state: b.state.as_str().to_owned(),
            terms: b.terms.into(),
            transaction_id: b.transaction_id,
            cancelled_by: b.cancelled_by,
            created_at: b.created_at,
            settlement: b.settlement.map(Into::into),
        }
    }
}

fn booking_owned(b: &store::Booking) -> Owned<'_> {
    Owned {
        owner: b.owner.as_deref(),
        community: b.community_id.as_deref(),
    }
}

fn is_booker(principal: &Principal, b: &store::Booking) -> bool {
    principal.user.as_deref() == Some(b.booker.as_str())
}

/// Book part of an availability window (residents and charger owners, for themselves, with
/// one of their own id tags). 400: outside a window, in the past, not their tag, their own
/// charger; 404: unknown charger or no agreement; 409: overlaps another booking (named).
#[utoipa::path(post, path = "/api/v1/sharing/bookings", tag = "sharing",
    security(("bearer" = [])),
    request_body = NewBookingDto,
    responses((status = 201, body = BookingDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Overlaps a pending or active booking")))]
pub async fn book(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewBookingDto>,
) -> Result<(StatusCode, ApiJson<BookingDto>), ApiError> {
    let Some(booker) = principal.user.clone().filter(|_| is_neighbour(&principal)) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "forbidden: only residents and charger owners book ({})",
                principal.role.as_str()
            ),
        ));
    };
    let audited = serde_json::json!(body);
    let result = async {
        check_text("charger_id", &body.charger_id, 100)?;
        check_text("id_tag", &body.id_tag, 20)?;
        let booking = store::NewBooking {
            charger_id: body.charger_id,
            booker,
            id_tag: body.id_tag,
            start: body.start,
            end: body.end,
        };
        Ok(state
            .store()
            .book_sharing(booking, state.clock().now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.booking.create",
        None,
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingsQuery {
    /// Only this charger's bookings.
    pub charger: Option<String>,
    /// Only this community's bookings.
    pub community: Option<String>,
}

/// Bookings the caller may see: a resident their own (as booker) and those on their chargers
/// (as owner); staff their communities'; regulators and admins all. Newest first, at most 1000.
#[utoipa::path(get, path = "/api/v1/sharing/bookings", tag = "sharing",
    security(("bearer" = [])),
    params(BookingsQuery),
    responses((status = 200, body = Vec<BookingDto>)))]
pub async fn list_bookings(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<BookingsQuery>,
) -> Result<ApiJson<Vec<BookingDto>>, ApiError> {
    let store = state.store();
    let base = store::BookingFilter {
        charger_id: query.charger,
        community_id: query.community,
        ..Default::default()
    };
    let mut found = Vec::new();
    match (&principal.user, principal.role) {
        (Some(me), Role::Resident | Role::ChargerOwner) => {
            for filter in [
                store::BookingFilter {
                    booker: Some(me.clone()),
                    ..base.clone()
                },
                store::BookingFilter {
                    owner: Some(me.clone()),
                    ..base.clone()
                },
            ] {
                for b in store.list_sharing_bookings(&filter).await? {
                    if !found.iter().any(|f: &store::Booking| f.id == b.id) {
                        found.push(b);
                    }
                }
            }
            found.sort_by_key(|b| std::cmp::Reverse((b.start, b.id)));
        }
        // Staff: one query per community in scope, so other communities' bookings never
        // crowd theirs out of the page.
        (_, role) if role.is_scoped() && base.community_id.is_none() => {
            for community in &principal.communities {
                let filter = store::BookingFilter {
                    community_id: Some(community.clone()),
                    ..base.clone()
                };
                found.extend(store.list_sharing_bookings(&filter).await?);
            }
            found.sort_by_key(|b| std::cmp::Reverse((b.start, b.id)));
        }
        _ => {
            found = store
                .list_sharing_bookings(&base)
                .await?
                .into_iter()
                .filter(|b| {
                    is_booker(&principal, b)
                        || principal.permits(Permission::ReadOwn(booking_owned(b)))
                })
                .collect();
        }
    }
    Ok(ApiJson(found.into_iter().map(Into::into).collect()))
}

async fn load_booking(state: &AppState, id: i64) -> Result<store::Booking, ApiError> {
    state
        .store()
        .get_sharing_booking(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("booking {id} not found")))
}

/// One booking: its booker, the charger's owner, the community's staff, regulators, admins.
#[utoipa::path(get, path = "/api/v1/sharing/bookings/{id}", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Booking id")),
    responses((status = 200, body = BookingDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get_booking(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<BookingDto>, ApiError> {
    let b = load_booking(&state, id).await?;
    if !is_booker(&principal, &b) {
        principal.require(Permission::ReadOwn(booking_owned(&b)))?;
    }
    Ok(ApiJson(b.into()))
}

/// Cancel a pending booking. By its booker: free until the agreement's notice before the
/// start, later the late-cancellation fee is settled (the owner is notified). By the charger's
/// owner, an operator of its community or an admin: free, the booker is notified.
#[utoipa::path(post, path = "/api/v1/sharing/bookings/{id}/cancel", tag = "sharing",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Booking id")),
    responses((status = 200, body = BookingDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Not pending")))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<BookingDto>, ApiError> {
    let b = load_booking(&state, id).await?;
    let by_booker = is_booker(&principal, &b);
    if !by_booker {
        principal.require(Permission::ActOwn(booking_owned(&b)))?;
    }
    let by = principal.user.clone().unwrap_or(principal.actor.clone());
    let result = state
        .store()
        .cancel_sharing_booking(id, &by, by_booker, state.clock().now())
        .await
        .map_err(ApiError::from);
    record_audit(
        &state,
        &principal.as_actor(),
        "sharing.booking.cancel",
        Some(id.to_string()),
        serde_json::json!({ "booking": id, "by_booker": by_booker }),
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}

// ----- statements -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// The month, `YYYY-MM`, in China Standard Time (UTC+8).
    #[param(example = "2026-11")]
    pub month: String,
    /// The charger owner (login name).
    pub owner: String,
}

/// China Standard Time: statements follow the owners' calendar, not UTC.
fn cst() -> TimeZone {
    TimeZone::fixed(jiff::tz::offset(8))
}

/// `YYYY-MM` → [first instant, first instant of the next month).
fn month_range(month: &str) -> Result<(Timestamp, Timestamp), ApiError> {
    let bad = || ApiError::bad_request(format!("month: expected YYYY-MM, not {month:?}"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i16 = y.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    let first = jiff::civil::Date::new(y, m, 1).map_err(|_| bad())?;
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .map_err(|_| bad())?;
    let at = |d: jiff::civil::Date| {
        d.to_zoned_datetime(cst())
            .map(|z| z.timestamp())
            .map_err(|_| bad())
    };
    Ok((at(first)?, at(next)?))
}

/// An owner's monthly statement as CSV: one row per settlement (sessions, no-shows, late
/// cancellations) and a totals row. The owner, operators whose scope holds one of the owner's
/// chargers (rows of their communities only), regulators, admins.
#[utoipa::path(get, path = "/api/v1/sharing/statements", tag = "sharing",
    security(("bearer" = [])),
    params(StatementQuery),
    responses((status = 200, content_type = "text/csv", body = String,
            description = "date,charger,booking,booker,kind,kwh,hours,energy_fee_cny,\
                           time_fee_cny,fee_cny,total_cny,owner_share_cny,operator_share_cny"),
        (status = 400, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)))]
pub async fn statement(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (from, to) = month_range(&query.month)?;
    super::users::check_login(&query.owner)
        .map_err(|_| ApiError::bad_request("owner: 1 to 64 characters of A-Z a-z 0-9 . _ - @"))?;
    let own = principal.user.as_deref() == Some(query.owner.as_str());
    let all = own || principal.permits(Permission::ReadAll);
    if !all {
        let operates = principal.role == Role::Operator
            && state
                .store()
                .list_charger_registrations(&store::RegistrationFilter {
                    community_id: None,
                    owner: Some(query.owner.clone()),
                })
                .await?
                .iter()
                .any(|r| {
                    r.facts
                        .community_id
                        .as_deref()
                        .is_some_and(|c| principal.permits(Permission::OperateChargers(c)))
                });
        if !operates {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: {} may not read the statements of {}",
                    principal.role.as_str(),
                    query.owner
                ),
            ));
        }
    }
    let rows: Vec<store::Settlement> = state
        .store()
        .sharing_settlements(&query.owner, from, to)
        .await?
        .into_iter()
        .filter(|s| {
            all || s
                .community_id
                .as_deref()
                .is_some_and(|c| principal.permits(Permission::OperateChargers(c)))
        })
        .collect();
    let csv = statement_csv(&rows).map_err(|e| ApiError::internal(format!("csv: {e}")))?;
    let filename = format!(
        "attachment; filename=\"sharing-{}-{}.csv\"",
        query.owner, query.month
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        csv,
    ))
}

fn statement_csv(rows: &[store::Settlement]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "date",
        "charger",
        "booking",
        "booker",
        "kind",
        "kwh",
        "hours",
        "energy_fee_cny",
        "time_fee_cny",
        "fee_cny",
        "total_cny",
        "owner_share_cny",
        "operator_share_cny",
    ])?;
    let mut sum = store::Figures {
        energy_wh: 0,
        duration_ms: 0,
        energy_fee_fen: 0,
        time_fee_fen: 0,
        fee_fen: 0,
        total_fen: 0,
        owner_share_fen: 0,
        operator_share_fen: 0,
    };
    let kwh = |wh: i64| format!("{:.3}", wh as f64 / 1000.0);
    let hours = |ms: i64| format!("{:.3}", ms as f64 / 3_600_000.0);
    for s in rows {
        let f = &s.figures;
        for (acc, v) in [
            (&mut sum.energy_wh, f.energy_wh),
            (&mut sum.duration_ms, f.duration_ms),
            (&mut sum.energy_fee_fen, f.energy_fee_fen),
            (&mut sum.time_fee_fen, f.time_fee_fen),
            (&mut sum.fee_fen, f.fee_fen),
            (&mut sum.total_fen, f.total_fen),
            (&mut sum.owner_share_fen, f.owner_share_fen),
            (&mut sum.operator_share_fen, f.operator_share_fen),
        ] {
            *acc = acc.saturating_add(v);
        }
        w.write_record([
            s.at.to_zoned_datetime(cst()).date().to_string(),
            s.charger_id.clone(),
            s.booking_id.to_string(),
            s.booker.clone(),
            s.kind.as_str().to_owned(),
            kwh(f.energy_wh),
            hours(f.duration_ms),
            cny_text(f.energy_fee_fen),
            cny_text(f.time_fee_fen),
            cny_text(f.fee_fen),
            cny_text(f.total_fen),
            cny_text(f.owner_share_fen),
            cny_text(f.operator_share_fen),
        ])?;
    }
    w.write_record([
        "total".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        rows.len().to_string(),
        kwh(sum.energy_wh),
        hours(sum.duration_ms),
        cny_text(sum.energy_fee_fen),
        cny_text(sum.time_fee_fen),
        cny_text(sum.fee_fen),
        cny_text(sum.total_fen),
        cny_text(sum.owner_share_fen),
        cny_text(sum.operator_share_fen),
    ])?;
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_china_standard_time() {
        let (from, to) = month_range("2026-11").unwrap();
        assert_eq!(from.to_string(), "2026-10-31T16:00:00Z");
        assert_eq!(to.to_string(), "2026-11-30T16:00:00Z");
        let (_, to) = month_range("2026-12").unwrap();
        assert_eq!(to.to_string(), "2026-12-31T16:00:00Z");
        for bad in [
            "2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "abcd-ef",
        ] {
            let e = month_range(bad).unwrap_err();
            assert!(e.message.starts_with("month:"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn fees_must_be_whole_fen() {
        assert_eq!(fen_of("f", 5.0).unwrap(), 500);
        assert_eq!(fen_of("f", 0.1).unwrap(), 10);
        assert_eq!(fen_of("f", 12.34).unwrap(), 1234);
        for bad in [0.001, -1.0, f64::NAN, 1e9] {
            assert!(
                fen_of("late_cancel_fee_cny", bad)
                    .unwrap_err()
                    .message
                    .starts_with("late_cancel_fee_cny")
            );
        }
        assert_eq!(cny_text(945), "9.45");
        assert_eq!(cny_text(5), "0.05");
    }
}
