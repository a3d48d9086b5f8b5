//! `/api/v1/audit`: the operator commands recorded, newest first.

use super::dto::AuditEntryDto;
use super::error::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many entries (default 100, max 10000).
    pub limit: Option<u32>,
}

/// Operator commands (API and CLI), newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntryDto>)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<Vec<AuditEntryDto>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 10000"));
    }
    let entries = state.store().list_audit(limit).await?;
    Ok(ApiJson(entries.into_iter().map(Into::into).collect()))
}
