//! The HTTP API under `/api/v1` (JSON, bearer-token auth), its OpenAPI document, and `/metrics`.
//!
//! - [`error`]: `{"error": ...}` responses and extractors whose rejections use them.
//! - [`dto`]: the JSON shapes, converted from store records.
//! - [`chargers`], [`id_tags`], [`transactions`], [`operations`], [`audit`]: the handlers.
//! - [`communities`], [`wishes`], [`grid_commands`]: the closed loop's endpoints (communities
//!   and their plan, residents' wishes, grid load-control commands).
//!
//! Every handler carries a `#[utoipa::path]` annotation and is registered through
//! `utoipa_axum::routes!`, so the route table and the OpenAPI document cannot drift apart.

pub mod audit;
pub mod chargers;
pub mod communities;
pub mod dto;
pub mod error;
pub mod grid_commands;
pub mod id_tags;
pub mod operations;
pub mod transactions;
pub mod wishes;

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
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
                       Every endpoint except this document needs `Authorization: Bearer TOKEN`."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "chargers", description = "Chargers, their connectors and status"),
        (name = "operations", description = "OCPP calls forwarded to a connected charger"),
        (name = "id-tags", description = "Authorization identifiers"),
        (name = "transactions", description = "Charging transactions and meter values"),
        (name = "audit", description = "Operator commands as recorded"),
        (name = "communities", description = "Communities (transformer, base load, tariff), their chargers and plan"),
        (name = "wishes", description = "Residents' wishes: departure, energy, emergency"),
        (name = "grid-commands", description = "Grid load-control commands (limit / reduce) and their reports"),
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
        .routes(routes!(communities::list))
        .routes(routes!(
            communities::get,
            communities::put,
            communities::remove
        ))
        .routes(routes!(communities::attach, communities::detach))
        .routes(routes!(communities::plan))
        .routes(routes!(wishes::put_wish))
        .routes(routes!(wishes::put_defaults, wishes::get_defaults))
        .routes(routes!(grid_commands::create, grid_commands::list))
        .routes(routes!(grid_commands::get, grid_commands::cancel))
        .split_for_parts();
    let document: Arc<Value> =
        Arc::new(serde_json::to_value(&openapi).expect("the OpenAPI document serializes"));
    protected
        .route_layer(middleware::from_fn_with_state(state, require_token))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = Arc::clone(&document);
                async move { Json(document.as_ref().clone()) }
            }),
        )
}

/// Who made an API request: the name of the token used.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("missing header Authorization: Bearer TOKEN"))?;
    let Some(token) = state.store().verify_admin_token(token).await? else {
        return Err(ApiError::unauthorized(
            "invalid token in Authorization header",
        ));
    };
    request.extensions_mut().insert(Actor(token.name));
    Ok(next.run(request).await)
}

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
