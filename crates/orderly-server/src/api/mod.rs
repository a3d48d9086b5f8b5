//! The HTTP API under `/api/v1` (JSON, bearer-token auth), its OpenAPI document, and `/metrics`.
//!
//! - [`error`]: `{"error": ...}` responses and extractors whose rejections use them.
//! - [`dto`]: the JSON shapes, converted from store records.
//! - [`chargers`], [`id_tags`], [`transactions`], [`operations`], [`audit`]: the handlers.
//! - [`auth`]: bearer tokens → [`auth::Principal`], permissions, login/logout; [`users`],
//!   [`registry`], [`lifecycle`], [`upkeep`]: roles, the registry, the charger lifecycle and
//!   transfers, insurance and upkeep; [`sharing`]: sharing private chargers with neighbours.
//! - [`communities`], [`wishes`], [`grid_commands`]: the closed loop's endpoints (communities
//!   and their plan, residents' wishes, grid load-control commands).
//! - [`waiting`]: waiting lists for public chargers.
//! - [`parking`]: occupancy reports, bay occupancy, parking rules, idle episodes and fees.
//! - [`notifications`]: the notifications sent (own, a community's, or all).
//!
//! Every handler carries a `#[utoipa::path]` annotation and is registered through
//! `utoipa_axum::routes!`, so the route table and the OpenAPI document cannot drift apart.

pub mod audit;
pub mod auth;
pub mod chargers;
pub mod communities;
pub mod dto;
pub mod error;
pub mod grid_commands;
pub mod id_tags;
pub mod lifecycle;
pub mod notifications;
pub mod operations;
pub mod parking;
pub mod registry;
pub mod sharing;
pub mod transactions;
pub mod upkeep;
pub mod users;
pub mod waiting;
pub mod wishes;

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use jiff::Timestamp;
use orderly_store::NewAuditEntry;
use serde_json::Value;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Name of the security scheme in the OpenAPI document.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly API",
        description = "Operate an Orderly OCPP 1.6J central system: chargers, id tags, \
                       transactions, meter values, and OCPP operations forwarded to chargers. \
                       Every endpoint except this document and `POST /api/v1/login` needs \
                       `Authorization: Bearer TOKEN` (an admin token or a login session)."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "chargers", description = "Chargers, their connectors and status"),
        (name = "operations", description = "OCPP calls forwarded to a connected charger"),
        (name = "id-tags", description = "Authorization identifiers"),
        (name = "transactions", description = "Charging transactions and meter values"),
        (name = "audit", description = "Operator commands as recorded"),
        (name = "users", description = "Users, roles, scopes, login sessions"),
        (name = "registry", description = "Districts, communities, parking bays, chargers' \
                                           registry facts, lifecycle, transfers, change events"),
        (name = "upkeep", description = "Insurance policies and cover alerts, fault reports, \
                                         inspection rounds with findings and follow-up"),
        (name = "sharing", description = "Sharing private chargers with neighbours: agreements, \
                                          availability windows, offers, bookings, monthly statements"),
        (name = "communities", description = "Communities (transformer, base load, tariff), their chargers and plan"),
        (name = "wishes", description = "Residents' wishes: departure, energy, emergency"),
        (name = "grid-commands", description = "Grid load-control commands (limit / reduce) and their reports"),
        (name = "waiting-list", description = "Waiting lists for public chargers: join, offers, leave, hold time"),
        (name = "parking", description = "Parking and charging together: bay occupancy reports \
                                          (webhook; MQTT too), parking rules, idle episodes and fees"),
        (name = "notifications", description = "What the service told people, and whether it was delivered"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Documents the error answers every operation can give besides its own: 401 and 403 where a
/// token is needed, 400 for a path or query parameter that does not parse, and for a JSON body 400 (not
/// JSON), 413 (over
/// the size limit), 415 (not `application/json`) and 422 (does not fit the schema; the message
/// names the field). Added here once rather than on each handler, so none can be forgotten;
/// [`router`] applies it once every route is in the document.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                };
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = operation.request_body.is_some();
                if secured {
                    add("401", "Missing or invalid bearer token");
                    add("403", "The caller's role or scope does not allow this");
                }
                if has_params {
                    add("400", "A path or query parameter that does not parse");
                }
                if has_body {
                    add("400", "Body is not valid JSON");
                    add("413", "Body over the size limit");
                    add("415", "Body is not `Content-Type: application/json`");
                    add(
                        "422",
                        "Body does not fit the schema (the message names the field)",
                    );
                }
            }
        }
    }
}

/// The `/api/v1` router (with its OpenAPI document) for `state`.
pub fn router(state: AppState) -> Router<AppState> {
    let (protected, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(chargers::list, chargers::create))
        .routes(routes!(chargers::get, chargers::remove))
        .routes(routes!(chargers::connectors))
        .routes(routes!(chargers::status_history))
        .routes(routes!(operations::call))
        .routes(routes!(id_tags::list, id_tags::create))
        .routes(routes!(id_tags::get, id_tags::update, id_tags::remove))
        .routes(routes!(transactions::list))
        .routes(routes!(transactions::get))
        .routes(routes!(transactions::meter_values))
        .routes(routes!(audit::list))
        // Users, registry, lifecycle: handlers check the Principal (listed in auth::SELF_CHECKED).
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(users::me))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::remove))
        .routes(routes!(registry::list_districts))
        .routes(routes!(registry::get_district, registry::put_district))
        .routes(routes!(registry::list_communities))
        .routes(routes!(registry::get_community, registry::put_community))
        .routes(routes!(registry::figures))
        .routes(routes!(registry::community_bays, registry::create_bay))
        .routes(routes!(registry::list_bays))
        .routes(routes!(registry::get_bay, registry::update_bay))
        .routes(routes!(registry::list_chargers))
        .routes(routes!(registry::get_charger, registry::put_charger))
        .routes(routes!(lifecycle::change))
        .routes(routes!(lifecycle::request, lifecycle::list))
        .routes(routes!(lifecycle::get))
        .routes(routes!(lifecycle::decide))
        .routes(routes!(registry::events))
        .routes(routes!(upkeep::insurance, upkeep::add_policy))
        .routes(routes!(upkeep::alerts))
        .routes(routes!(upkeep::faults, upkeep::report_fault))
        .routes(routes!(upkeep::resolve_fault))
        .routes(routes!(upkeep::inspections, upkeep::add_inspection))
        .routes(routes!(upkeep::follow_up))
        // Sharing (clause 七): handlers check the Principal (listed in auth::SELF_CHECKED).
        .routes(routes!(
            sharing::get_agreement,
            sharing::put_agreement,
            sharing::end_agreement
        ))
        .routes(routes!(sharing::list_windows, sharing::add_window))
        .routes(routes!(sharing::remove_window))
        .routes(routes!(sharing::offers))
        .routes(routes!(sharing::list_bookings, sharing::book))
        .routes(routes!(sharing::get_booking))
        .routes(routes!(sharing::cancel))
        .routes(routes!(sharing::statement))
        .routes(routes!(communities::list))
        .routes(routes!(
            communities::get,
            communities::put,
            communities::remove
        ))
        .routes(routes!(communities::attach, communities::detach))
        .routes(routes!(communities::plan))
        .routes(routes!(communities::compliance))
        .routes(routes!(wishes::put_wish))
        .routes(routes!(wishes::put_defaults, wishes::get_defaults))
        .routes(routes!(grid_commands::create, grid_commands::list))
        .routes(routes!(grid_commands::get, grid_commands::cancel))
        // The waiting list for public chargers (handlers check the Principal).
        .routes(routes!(waiting::list, waiting::join))
        .routes(routes!(waiting::leave))
        .routes(routes!(waiting::settings))
        // Parking and charging together (clause 十二); handlers check the Principal.
        .routes(routes!(parking::report, parking::occupancy))
        .routes(routes!(parking::get_rule, parking::put_rule))
        .routes(routes!(parking::community_episodes))
        .routes(routes!(parking::my_fees))
        .routes(routes!(notifications::list))
        .split_for_parts();
    // After the routes are in: `modifiers(...)` above runs before any path exists.
    let mut openapi = openapi;
    utoipa::Modify::modify(&CommonErrors, &mut openapi);
    let document: Arc<Value> =
        Arc::new(serde_json::to_value(&openapi).expect("the OpenAPI document serializes"));
    protected
        .route_layer(middleware::from_fn_with_state(state, auth::authenticate))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = Arc::clone(&document);
                async move { Json(document.as_ref().clone()) }
            }),
        )
}

/// Who made an API request, as the audit log records it: the admin token's name or
/// `user:LOGIN`. Set next to the [`auth::Principal`], which handlers check for permissions.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Record an operator command in the audit log. A failure to record is logged, not returned:
/// the command itself has already taken effect and its result must reach the operator.
pub(crate) async fn record_audit(
    state: &AppState,
    actor: &Actor,
    action: impl Into<String>,
    target: Option<String>,
    request: Value,
    outcome: impl Into<String>,
) {
    let entry = NewAuditEntry {
        at: Timestamp::now(),
        actor: actor.0.clone(),
        action: action.into(),
        target,
        request,
        outcome: outcome.into(),
    };
    if let Err(error) = state.store().append_audit(entry).await {
        tracing::error!(%error, "could not record an operator command in the audit log");
    }
}

/// Runs a command's `work`, then records it in the audit log with its outcome (`ok`, or the
/// error with its status: refusals are recorded too) and returns its result.
pub(crate) async fn with_audit<T>(
    state: &AppState,
    actor: &Actor,
    action: &str,
    target: Option<String>,
    request: Value,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = work.await;
    record_audit(state, actor, action, target, request, outcome_of(&result)).await;
    result
}

/// The audit outcome text of an API result: `ok` or the error message with its status.
pub(crate) fn outcome_of<T>(result: &Result<T, ApiError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{} {}", e.status.as_u16(), e.message),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(state.registry().len(), state.store().writer_stats()),
    )
}
