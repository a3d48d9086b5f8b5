//! `/api/v1/id-tags`: the authorization identifiers chargers may present.
//!
//! Admins and regulators read every tag; any other user reads the tags they hold (tags are in
//! no community, so staff do not read residents' tags). Writes are for admins, except that a
//! holder may block their own tag (a lost card); that is audited like every write.

use super::auth::{Belonging, Permission, Principal};
use super::dto::{IdTagDto, NewIdTagDto, TagStatusDto, UpdateIdTagDto};
use super::error::{ApiError, ApiJson, ApiPath};
use super::with_audit;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::IdTag;
use orderly_store::{AuthorizationStatus, IdTagRecord};

fn parse_tag(raw: String, field: &str) -> Result<IdTag, ApiError> {
    IdTag::parse(raw).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn path_tag(raw: String) -> Result<IdTag, ApiError> {
    IdTag::parse(raw.clone()).map_err(|_| ApiError::not_found(format!("id tag {raw:?} not found")))
}

/// Id tags: all of them for admins and regulators, the caller's own for anyone else.
#[utoipa::path(get, path = "/api/v1/id-tags", tag = "id-tags",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<IdTagDto>)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<Vec<IdTagDto>>, ApiError> {
    let store = state.store();
    let tags = store.list_id_tags().await?;
    if principal.permits(Permission::ReadAll) {
        return Ok(ApiJson(tags.into_iter().map(Into::into).collect()));
    }
    let own = match &principal.user {
        Some(user) => store.get_user(user).await?.map(|u| u.id_tags),
        None => None,
    }
    .unwrap_or_default();
    Ok(ApiJson(
        tags.into_iter()
            .filter(|t| own.iter().any(|o| o == t.id_tag.as_str()))
            .map(Into::into)
            .collect(),
    ))
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
    principal: Principal,
    ApiJson(body): ApiJson<NewIdTagDto>,
) -> Result<(StatusCode, ApiJson<IdTagDto>), ApiError> {
    principal.require(Permission::Administer)?;
    let actor = principal.as_actor();
    let audited = serde_json::json!({
        "id_tag": body.id_tag, "status": body.status, "expiry_date": body.expiry_date,
        "parent_id_tag": body.parent_id_tag,
    });
    let target = Some(body.id_tag.clone());
    let result = with_audit(&state, &actor, "id_tag.add", target, audited, async {
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
    })
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?)))
}

/// One id tag (admins, regulators, its holder).
#[utoipa::path(get, path = "/api/v1/id-tags/{tag}", tag = "id-tags",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    responses((status = 200, body = IdTagDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tag): ApiPath<String>,
) -> Result<ApiJson<IdTagDto>, ApiError> {
    // Permission before existence: others learn nothing about tags that are not theirs.
    let belonging = Belonging::of_id_tag(&state, &tag).await?;
    principal.require(Permission::ReadOwn(belonging.owned()))?;
    let tag = path_tag(tag)?;
    let record = state
        .store()
        .get_id_tag(&tag)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("id tag {tag} not found")))?;
    Ok(ApiJson(record.into()))
}

/// Create or replace an id tag's status, expiry and parent (admins). A tag's holder may set
/// their own tag to `Blocked` (a lost card), and change nothing else.
#[utoipa::path(put, path = "/api/v1/id-tags/{tag}", tag = "id-tags",
    security(("bearer" = [])),
    params(("tag" = String, Path, description = "The id tag")),
    request_body = UpdateIdTagDto,
    responses((status = 200, body = IdTagDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "Not an admin, nor the holder blocking it"),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateIdTagDto>,
) -> Result<ApiJson<IdTagDto>, ApiError> {
    if !principal.permits(Permission::Administer) {
        return block_own(&state, &principal, raw, body).await;
    }
    let actor = principal.as_actor();
    let audited = serde_json::json!({
        "status": body.status, "expiry_date": body.expiry_date, "parent_id_tag": body.parent_id_tag,
    });
    let result = with_audit(
        &state,
        &actor,
        "id_tag.put",
        Some(raw.clone()),
        audited,
        async {
            let record = IdTagRecord {
                id_tag: parse_tag(raw, "tag")?,
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
        },
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
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::Administer)?;
    let actor = principal.as_actor();
    let request = serde_json::json!({ "id_tag": raw });
    with_audit(
        &state,
        &actor,
        "id_tag.remove",
        Some(raw.clone()),
        request,
        async {
            let tag = path_tag(raw)?;
            if !state.store().remove_id_tag(&tag).await? {
                return Err(ApiError::not_found(format!("id tag {tag} not found")));
            }
            Ok(StatusCode::NO_CONTENT)
        },
    )
    .await
}

/// A holder blocking their own tag: the status becomes `Blocked`, expiry and parent stay as
/// stored (given ones must match them). Anything else is refused before anything changes.
async fn block_own(
    state: &AppState,
    principal: &Principal,
    raw: String,
    body: UpdateIdTagDto,
) -> Result<ApiJson<IdTagDto>, ApiError> {
    let belonging = Belonging::of_id_tag(state, &raw).await?;
    if principal.user.is_none() || belonging.owner != principal.user {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: only admins change id tags; a holder may block their own",
        ));
    }
    let audited = serde_json::json!({
        "status": body.status, "expiry_date": body.expiry_date, "parent_id_tag": body.parent_id_tag,
    });
    let result = with_audit(
        state,
        &principal.as_actor(),
        "id_tag.block",
        Some(raw.clone()),
        audited,
        async {
            let tag = path_tag(raw)?;
            let stored = state
                .store()
                .get_id_tag(&tag)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("id tag {tag} not found")))?;
            if !matches!(body.status, TagStatusDto::Blocked) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "status: a holder may only set their own tag to Blocked",
                ));
            }
            if body.expiry_date.is_some() && body.expiry_date != stored.expiry_date {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "expiry_date: a holder may not change it (leave it out)",
                ));
            }
            if body
                .parent_id_tag
                .as_deref()
                .is_some_and(|p| Some(p) != stored.parent_id_tag.as_ref().map(IdTag::as_str))
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "parent_id_tag: a holder may not change it (leave it out)",
                ));
            }
            let record = IdTagRecord {
                status: AuthorizationStatus::Blocked,
                ..stored
            };
            state
                .store()
                .put_id_tag(record.clone(), Timestamp::now())
                .await?;
            Ok(IdTagDto::from(record))
        },
    )
    .await;
    Ok(ApiJson(result?))
}
