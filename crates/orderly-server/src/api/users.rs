//! `/api/v1/users` (admins manage people who log in) and `/api/v1/me`.

use super::auth::{Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath};
use super::{outcome_of, record_audit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_core::IdTag;
use orderly_store::{NewUser, Role, Scope, UserRecord, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `community` or `district`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Community,
    District,
}

/// A community or district a property manager, operator or grid aggregator acts in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDto {
    pub kind: ScopeKind,
    pub id: String,
}

impl From<Scope> for ScopeDto {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Community(id) => Self {
                kind: ScopeKind::Community,
                id,
            },
            Scope::District(id) => Self {
                kind: ScopeKind::District,
                id,
            },
        }
    }
}

/// A user (never the password).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    /// Login name.
    pub id: String,
    pub name: String,
    /// resident, charger_owner, property_manager, operator, grid_aggregator, regulator, admin.
    #[schema(example = "resident")]
    pub role: String,
    pub scopes: Vec<ScopeDto>,
    /// Id tags that make transactions this user's.
    pub id_tags: Vec<String>,
    pub disabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<UserRecord> for UserDto {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            name: u.name,
            role: u.role.as_str().to_owned(),
            scopes: u.scopes.into_iter().map(Into::into).collect(),
            id_tags: u.id_tags,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A user to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserDto {
    /// Login name: 1 to 64 of `A-Z a-z 0-9 . _ - @`.
    pub id: String,
    pub name: String,
    /// At least 8 characters; stored as an argon2 hash.
    pub password: String,
    #[schema(example = "property_manager")]
    pub role: String,
    /// Only for property_manager, operator and grid_aggregator.
    #[serde(default)]
    pub scopes: Vec<ScopeDto>,
    #[serde(default)]
    pub id_tags: Vec<String>,
}

/// Changes to a user; absent fields stay as they are. Users may change their own name and
/// password; the rest is for admins.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateDto {
    pub name: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    pub scopes: Option<Vec<ScopeDto>>,
    pub id_tags: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

/// The caller as the server sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    /// Login name; null for an admin token.
    pub user: Option<String>,
    /// Name in the audit log.
    pub actor: String,
    pub role: String,
    /// Communities in reach (district scopes expanded).
    pub communities: Vec<String>,
    pub districts: Vec<String>,
}

fn parse_role(raw: &str) -> Result<Role, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("role: unknown role {raw:?}")))
}

pub(crate) fn check_login(id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "id: 1 to 64 characters of A-Z a-z 0-9 . _ - @",
        ))
    }
}

pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field}: must be 1 to {max} characters, not blank"
        )));
    }
    Ok(())
}

fn scopes(role: Role, raw: Vec<ScopeDto>) -> Result<Vec<Scope>, ApiError> {
    if !raw.is_empty() && !role.is_scoped() {
        return Err(ApiError::bad_request(format!(
            "scopes: a {} has no scopes (only property_manager, operator, grid_aggregator)",
            role.as_str()
        )));
    }
    raw.into_iter()
        .map(|s| {
            check_text("scopes.id", &s.id, 64)?;
            Ok(match s.kind {
                ScopeKind::Community => Scope::Community(s.id),
                ScopeKind::District => Scope::District(s.id),
            })
        })
        .collect()
}

fn id_tags(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    raw.into_iter()
        .map(|t| {
            IdTag::parse(t.clone())
                .map(|_| t)
                .map_err(|e| ApiError::bad_request(format!("id_tags: {e}")))
        })
        .collect()
}

fn password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < 8 || p.len() > 1024 {
        return Err(ApiError::bad_request(
            "password: must have 8 to 1024 characters",
        ));
    }
    Ok(())
}

/// Who is calling: user, role and scopes.
#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = MeDto), (status = 401, body = super::error::ErrorBody)))]
pub async fn me(principal: Principal) -> ApiJson<MeDto> {
    ApiJson(MeDto {
        user: principal.user.clone(),
        actor: principal.actor.clone(),
        role: principal.role.as_str().to_owned(),
        communities: principal.communities.iter().cloned().collect(),
        districts: principal.districts.iter().cloned().collect(),
    })
}

/// All users (admins and regulators).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<UserDto>), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<Vec<UserDto>>, ApiError> {
    principal.require(Permission::ReadAll)?;
    let users = state.store().list_users().await?;
    Ok(ApiJson(users.into_iter().map(Into::into).collect()))
}

/// Create a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    security(("bearer" = [])),
    request_body = NewUserDto,
    responses(
        (status = 201, body = UserDto),
        (status = 400, body = super::error::ErrorBody, description = "Invalid field"),
        (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Login name or id tag taken"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewUserDto>,
) -> Result<(StatusCode, ApiJson<UserDto>), ApiError> {
    principal.require(Permission::Administer)?;
    // The password never goes into the audit log.
    let audited = serde_json::json!({
        "id": body.id, "name": body.name, "role": body.role, "scopes": body.scopes,
        "id_tags": body.id_tags,
    });
    let target = Some(body.id.clone());
    let result = async {
        check_login(&body.id)?;
        check_text("name", &body.name, 200)?;
        password(&body.password)?;
        let role = parse_role(&body.role)?;
        let user = NewUser {
            scopes: scopes(role, body.scopes)?,
            id_tags: id_tags(body.id_tags)?,
            id: body.id,
            name: body.name,
            password: body.password,
            role,
        };
        Ok(state.store().create_user(user, Timestamp::now()).await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "user.add",
        target,
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

/// One user (admins, regulators, the user themselves).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Login name")),
    responses((status = 200, body = UserDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<UserDto>, ApiError> {
    if principal.user.as_deref() != Some(id.as_str()) {
        principal.require(Permission::ReadAll)?;
    }
    let user = state
        .store()
        .get_user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(ApiJson(user.into()))
}

/// Change a user. Admins change anything; users their own name and password. A new password,
/// role or disabling ends the user's sessions.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Login name")),
    request_body = UserUpdateDto,
    responses((status = 200, body = UserDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserUpdateDto>,
) -> Result<ApiJson<UserDto>, ApiError> {
    let own_only = body.role.is_none()
        && body.scopes.is_none()
        && body.id_tags.is_none()
        && body.disabled.is_none();
    if !(own_only && principal.user.as_deref() == Some(id.as_str())) {
        principal.require(Permission::Administer)?;
    }
    let audited = serde_json::json!({
        "name": body.name, "password_set": body.password.is_some(), "role": body.role,
        "scopes": body.scopes, "id_tags": body.id_tags, "disabled": body.disabled,
    });
    let result = async {
        let store = state.store();
        let current = store
            .get_user(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
        if let Some(n) = &body.name {
            check_text("name", n, 200)?;
        }
        if let Some(p) = &body.password {
            password(p)?;
        }
        let role = body.role.as_deref().map(parse_role).transpose()?;
        let effective_role = role.unwrap_or(current.role);
        let new_scopes = match body.scopes {
            Some(s) => Some(scopes(effective_role, s)?),
            // A role without scopes drops the ones it had.
            None if !effective_role.is_scoped() && !current.scopes.is_empty() => Some(vec![]),
            None => None,
        };
        let update = UserUpdate {
            name: body.name,
            password: body.password,
            role,
            scopes: new_scopes,
            id_tags: body.id_tags.map(id_tags).transpose()?,
            disabled: body.disabled,
        };
        Ok(store.update_user(&id, update, Timestamp::now()).await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "user.update",
        Some(id.clone()),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}

/// Remove a user with their sessions (admins).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Login name")),
    responses((status = 204, description = "Removed"), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::Administer)?;
    let result = async {
        if !state.store().delete_user(&id).await? {
            return Err(ApiError::not_found(format!("user {id} not found")));
        }
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "user.remove",
        Some(id.clone()),
        serde_json::json!({ "id": id }),
        outcome_of(&result),
    )
    .await;
    result
}
