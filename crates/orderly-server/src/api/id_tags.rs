//! `/api/v1/id-tags`: the authorization identifiers chargers may present.

use super::dto::{IdTagDto, NewIdTagDto, UpdateIdTagDto};
use super::error::{ApiError, ApiJson, ApiPath};
use super::{Actor, outcome_of, record_audit};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::IdTag;
use orderly_store::IdTagRecord;

fn parse_tag(raw: String, field: &str) -> Result<IdTag, ApiError> {
    IdTag::parse(raw).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn path_tag(raw: String) -> Result<IdTag, ApiError> {
    IdTag::parse(raw.clone()).map_err(|_| ApiError::not_found(format!("id tag {raw:?} not found")))
}

/// All id tags.
#[utoipa::path(get, path = "/api/v1/id-tags", tag = "id-tags",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<IdTagDto>)))]
pub async fn list(State(state): State<AppState>) -> Result<ApiJson<Vec<IdTagDto>>, ApiError> {
    let tags = state.store().list_id_tags().await?;
    Ok(ApiJson(tags.into_iter().map(Into::into).collect()))
}

/// Add an id tag.
#[utoipa::path(post, path = "/api/v1/id-tags", tag = "id-tags",
    security(("bearer" = [])),
    request_body = NewIdTagDto,
    responses(
        (status = 201, body = IdTagDto),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field"),
        (status = 409, body = super::error::ErrorBody, description = "Tag exists"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<NewIdTagDto>,
) -> Result<(StatusCode, ApiJson<IdTagDto>), ApiError> {
    let audited = serde_json::json!({
        "id_tag": body.id_tag, "status": body.status, "expiry_date": body.expiry_date,
        "parent_id_tag": body.parent_id_tag,
    });
    let target = Some(body.id_tag.clone());
    let result = async {
        let record = IdTagRecord {
            id_tag: parse_tag(body.id_tag, "id_tag")?,
            status: body.status.into(),
            expiry_date: body.expiry_date,
            parent_id_tag: body
                .parent_id_tag
                .map(|p| parse_tag(p, "parent_id_tag"))
                .transpose()?,
        };
        state
            .store()
            .add_id_tag(record.clone(), Timestamp::now())
            .await?;
        Ok(IdTagDto::from(record))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "id_tag.add",
        target,
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?)))
}

/// One id tag.
#[utoipa::path(get, path = "/api/v1/id-tags/{tag}", tag = "id-tags",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    responses((status = 200, body = IdTagDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(tag): ApiPath<String>,
) -> Result<ApiJson<IdTagDto>, ApiError> {
    let tag = path_tag(tag)?;
    let record = state
        .store()
        .get_id_tag(&tag)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("id tag {tag} not found")))?;
    Ok(ApiJson(record.into()))
}

/// Create or replace an id tag's status, expiry and parent.
#[utoipa::path(put, path = "/api/v1/id-tags/{tag}", tag = "id-tags",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    request_body = UpdateIdTagDto,
    responses((status = 200, body = IdTagDto), (status = 400, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateIdTagDto>,
) -> Result<ApiJson<IdTagDto>, ApiError> {
    let audited = serde_json::json!({
        "status": body.status, "expiry_date": body.expiry_date, "parent_id_tag": body.parent_id_tag,
    });
    let result = async {
        let record = IdTagRecord {
            id_tag: parse_tag(raw.clone(), "tag")?,
            status: body.status.into(),
            expiry_date: body.expiry_date,
            parent_id_tag: body
                .parent_id_tag
                .map(|p| parse_tag(p, "parent_id_tag"))
                .transpose()?,
        };
        state
            .store()
            .put_id_tag(record.clone(), Timestamp::now())
            .await?;
        Ok(IdTagDto::from(record))
    }
    .await;
    record_audit(
        &state,
        &actor,
        "id_tag.put",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?))
}

/// Remove an id tag (chargers then get `Invalid` for it).
#[utoipa::path(delete, path = "/api/v1/id-tags/{tag}", tag = "id-tags",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    responses((status = 204, description = "Removed"), (status = 404, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let tag = path_tag(raw.clone())?;
        if !state.store().remove_id_tag(&tag).await? {
            return Err(ApiError::not_found(format!("id tag {tag} not found")));
        }
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    let request = serde_json::json!({ "id_tag": raw });
    record_audit(
        &state,
        &actor,
        "id_tag.remove",
        Some(raw),
        request,
        outcome_of(&result),
    )
    .await;
    result
}
