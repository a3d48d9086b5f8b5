//! Who is calling and what they may do: bearer-token authentication (admin tokens and login
//! sessions), the [`Principal`] every handler can check, `POST /api/v1/login` and
//! `POST /api/v1/logout`.
//!
//! A handler states its rule in one line, before it changes or returns anything:
//!
//! ```text
//! pub async fn update(State(state): State<AppState>, principal: Principal, ...) -> ... {
//!     principal.require(Permission::ManageCommunity(&id))?;
//! ```
//!
//! Routes whose handlers do not check a `Principal` stay admin-only (regulators may read them):
//! [`authenticate`] refuses everyone else unless the route is listed in [`SELF_CHECKED`]. So a
//! new route is closed until its handler checks, never open by omission.

use super::error::{ApiError, ApiJson};
use super::users::UserDto;
use super::{Actor, outcome_of, record_audit};
use crate::state::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};
use orderly_core::ChargePointId;
use orderly_store::{Role, Scope, UserRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// How long a login session lasts.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(12);

/// Routes reachable without a token.
const PUBLIC: &[&str] = &["/api/v1/login"];

/// Routes whose handlers check the [`Principal`] themselves, so users of any role may reach
/// them. Every other route is for admins only (regulators: GET only). Add a route here in the
/// same change that makes its handler call [`Principal::require`] (or filter by it).
pub const SELF_CHECKED: &[&str] = &[
    "/api/v1/logout",
    "/api/v1/me",
    "/api/v1/users",
    "/api/v1/users/{id}",
    "/api/v1/districts",
    "/api/v1/districts/{id}",
    "/api/v1/registry/communities",
    "/api/v1/registry/communities/{id}",
    "/api/v1/registry/communities/{id}/figures",
    "/api/v1/registry/communities/{id}/bays",
    "/api/v1/bays",
    "/api/v1/bays/{id}",
    "/api/v1/registry/chargers",
    "/api/v1/registry/chargers/{id}",
    "/api/v1/registry/chargers/{id}/lifecycle",
    "/api/v1/registry/chargers/{id}/transfers",
    "/api/v1/transfers/{id}",
    "/api/v1/transfers/{id}/{decision}",
    "/api/v1/registry-events",
    "/api/v1/transactions",
    "/api/v1/transactions/{id}",
    "/api/v1/transactions/{id}/meter-values",
    "/api/v1/registry/chargers/{id}/insurance",
    "/api/v1/insurance/alerts",
    "/api/v1/registry/chargers/{id}/faults",
    "/api/v1/faults/{id}/resolve",
    "/api/v1/registry/communities/{id}/inspections",
    "/api/v1/findings/{id}/follow-up",
    "/api/v1/chargers",
    "/api/v1/chargers/{id}",
    "/api/v1/chargers/{id}/connectors",
    "/api/v1/chargers/{id}/status-history",
    "/api/v1/chargers/{id}/operations/{action}",
    // The closed loop: residents' wishes, grid commands, a community and its plan.
    "/api/v1/transactions/{id}/wish",
    "/api/v1/id-tags/{tag}/wish-defaults",
    "/api/v1/communities/{id}",
    "/api/v1/communities/{id}/plan",
    "/api/v1/communities/{id}/grid-commands",
    "/api/v1/grid-commands/{cid}",
    // ops: waiting lists (residents join/leave their own, staff in scope manage), and id tags
    // (a user reads and blocks their own; other writes stay admin, checked in the handlers).
    "/api/v1/registry/communities/{id}/waiting-list",
    "/api/v1/registry/communities/{id}/waiting-list/{entry}",
    "/api/v1/registry/communities/{id}/waiting-list/settings",
    "/api/v1/id-tags",
    "/api/v1/id-tags/{tag}",
    // Parking and charging together: occupancy reports, parking rules, idle episodes and fees.
    "/api/v1/bays/{id}/occupancy",
    "/api/v1/registry/communities/{id}/parking-rule",
    "/api/v1/registry/communities/{id}/idle-episodes",
    "/api/v1/me/idle-fees",
    // Notifications: own, a community's (staff in scope), all (admin, regulator).
    "/api/v1/notifications",
    // Sharing private chargers with neighbours (clause 七).
    "/api/v1/registry/chargers/{id}/sharing",
    "/api/v1/registry/chargers/{id}/sharing/windows",
    "/api/v1/sharing/windows/{id}",
    "/api/v1/sharing/offers",
    "/api/v1/sharing/bookings",
    "/api/v1/sharing/bookings/{id}",
    "/api/v1/sharing/bookings/{id}/cancel",
    "/api/v1/sharing/statements",
];

/// The authenticated caller: a user (login session) or an admin token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's login name; None for an admin token.
    pub user: Option<String>,
    /// The name recorded in the audit log: the token's name, or `user:LOGIN`.
    pub actor: String,
    pub role: Role,
    /// Communities in reach: the community scopes plus every community of a district scope.
    pub communities: BTreeSet<String>,
    pub districts: BTreeSet<String>,
}

/// Something that belongs to a user, for [`Permission::ReadOwn`] / [`Permission::ActOwn`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Owned<'a> {
    /// The user it belongs to (charger owner, bay holder, id-tag holder), if any.
    pub owner: Option<&'a str>,
    /// The community it is in, if any.
    pub community: Option<&'a str>,
}

/// Who something belongs to, looked up from the store (owned strings; see [`Belonging::owned`]).
#[derive(Debug, Clone, Default)]
pub struct Belonging {
    pub owner: Option<String>,
    pub community: Option<String>,
}

impl Belonging {
    pub fn owned(&self) -> Owned<'_> {
        Owned {
            owner: self.owner.as_deref(),
            community: self.community.as_deref(),
        }
    }

    /// A charger's community: its registry facts, else the closed loop's electrical record.
    pub async fn charger_community(
        state: &AppState,
        charger: &ChargePointId,
    ) -> Result<Option<String>, ApiError> {
        let store = state.store();
        if let Some(r) = store.charger_registration(charger.as_str()).await?
            && r.facts.community_id.is_some()
        {
            return Ok(r.facts.community_id);
        }
        Ok(store
            .charger_electrical(charger)
            .await?
            .map(|e| e.community_id))
    }

    /// An id tag belongs to the user holding it (in no community: staff do not read residents'
    /// tags through a community).
    pub async fn of_id_tag(state: &AppState, tag: &str) -> Result<Self, ApiError> {
        Ok(Self {
            owner: state.store().id_tag_owner(tag).await?,
            community: None,
        })
    }

    /// A charger belongs to its registered owner, in its community.
    pub async fn of_charger(state: &AppState, charger: &ChargePointId) -> Result<Self, ApiError> {
        let registration = state.store().charger_registration(charger.as_str()).await?;
        Ok(Self {
            owner: registration.and_then(|r| r.facts.owner),
            community: Self::charger_community(state, charger).await?,
        })
    }

    /// A transaction belongs to the user holding its id tag, in its charger's community. Use
    /// it for wishes too: `principal.require(Permission::ActOwn(b.owned()))`.
    pub async fn of_transaction(
        state: &AppState,
        transaction: &orderly_store::Transaction,
    ) -> Result<Self, ApiError> {
        let owner = match &transaction.id_tag {
            Some(tag) => state.store().id_tag_owner(tag.as_str()).await?,
            None => None,
        };
        Ok(Self {
            owner,
            community: Self::charger_community(state, &transaction.charger_id).await?,
        })
    }
}

/// What a request wants to do. Each variant says who may.
#[derive(Debug, Clone, Copy)]
pub enum Permission<'a> {
    /// Users, tokens, districts, anything global: admin.
    Administer,
    /// Read anything anywhere (audit log, registry events, every list): admin, regulator.
    ReadAll,
    /// Read a community and everything in it: admin, regulator, a property manager, operator
    /// or grid aggregator whose scope includes it.
    ReadCommunity(&'a str),
    /// Change a community's registry facts and parking bays, and its transformer data: admin,
    /// a property manager in scope.
    ManageCommunity(&'a str),
    /// A community's chargers (registry facts, lifecycle, OCPP operations): admin, an operator
    /// in scope.
    OperateChargers(&'a str),
    /// Grid commands for a community: admin, a grid aggregator or operator in scope.
    ControlGrid(&'a str),
    /// Read one user's thing: its owner, plus whoever may read its community.
    ReadOwn(Owned<'a>),
    /// Act on one user's thing (wishes for their transaction, their charger's transfer): its
    /// owner, admin, an operator of its community. Never a regulator.
    ActOwn(Owned<'a>),
}

impl Principal {
    /// A principal for an admin bearer token.
    pub fn admin_token(name: String) -> Self {
        Self {
            user: None,
            actor: name,
            role: Role::Admin,
            communities: BTreeSet::new(),
            districts: BTreeSet::new(),
        }
    }

    fn in_scope(&self, community: &str) -> bool {
        self.role.is_scoped() && self.communities.contains(community)
    }

    fn is_owner(&self, owned: &Owned<'_>) -> bool {
        owned.owner.is_some() && owned.owner == self.user.as_deref()
    }

    /// Whether `permission` is granted (for filtering lists).
    pub fn permits(&self, permission: Permission<'_>) -> bool {
        use Permission::*;
        if self.role == Role::Admin {
            return true;
        }
        match permission {
            Administer => false,
            ReadAll => self.role == Role::Regulator,
            ReadCommunity(c) => self.role == Role::Regulator || self.in_scope(c),
            ManageCommunity(c) => self.role == Role::PropertyManager && self.in_scope(c),
            OperateChargers(c) => self.role == Role::Operator && self.in_scope(c),
            ControlGrid(c) => {
                matches!(self.role, Role::GridAggregator | Role::Operator) && self.in_scope(c)
            }
            ReadOwn(owned) => {
                self.is_owner(&owned)
                    || self.role == Role::Regulator
                    || owned.community.is_some_and(|c| self.in_scope(c))
            }
            ActOwn(owned) => {
                self.role != Role::Regulator
                    && (self.is_owner(&owned)
                        || owned
                            .community
                            .is_some_and(|c| self.role == Role::Operator && self.in_scope(c)))
            }
        }
    }

    /// `Ok(())` if `permission` is granted, else 403 naming the role.
    pub fn require(&self, permission: Permission<'_>) -> Result<(), ApiError> {
        if self.permits(permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: {} {} may not do this",
                    self.role.as_str(),
                    self.user.as_deref().unwrap_or(&self.actor)
                ),
            ))
        }
    }

    /// The audit identity, for handlers written against [`Actor`].
    pub fn as_actor(&self) -> Actor {
        Actor(self.actor.clone())
    }

    async fn for_user(state: &AppState, user: UserRecord) -> Result<Self, ApiError> {
        let mut communities = BTreeSet::new();
        let mut districts = BTreeSet::new();
        for scope in &user.scopes {
            match scope {
                Scope::Community(c) => {
                    communities.insert(c.clone());
                }
                Scope::District(d) => {
                    districts.insert(d.clone());
                }
            }
        }
        if !districts.is_empty() {
            let list: Vec<String> = districts.iter().cloned().collect();
            communities.extend(state.store().communities_in_districts(&list).await?);
        }
        Ok(Self {
            actor: format!("user:{}", user.id),
            user: Some(user.id),
            role: user.role,
            communities,
            districts,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing header Authorization: Bearer TOKEN"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The API's authentication layer: resolves the bearer token (admin token, else login session)
/// to a [`Principal`] (and the [`Actor`] older handlers take), and keeps routes whose handlers
/// do not check it for admins (and regulators reading).
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if PUBLIC.contains(&path.as_str()) {
        return Ok(next.run(request).await);
    }
    let token = bearer(request.headers())
        .ok_or_else(|| ApiError::unauthorized("missing header Authorization: Bearer TOKEN"))?;
    let principal = if let Some(admin) = state.store().verify_admin_token(token).await? {
        Principal::admin_token(admin.name)
    } else if let Some(user) = state.store().session_user(token, Timestamp::now()).await? {
        Principal::for_user(&state, user).await?
    } else {
        return Err(ApiError::unauthorized(
            "invalid token in Authorization header",
        ));
    };
    if !SELF_CHECKED.contains(&path.as_str()) {
        let reading = matches!(*request.method(), Method::GET | Method::HEAD);
        let allowed = match principal.role {
            Role::Admin => true,
            Role::Regulator => reading,
            _ => false,
        };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "forbidden: this endpoint is for admins ({})",
                    principal.role.as_str()
                ),
            ));
        }
    }
    request.extensions_mut().insert(principal.as_actor());
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Login name and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginDto {
    pub user: String,
    pub password: String,
}

/// A session token (send it as `Authorization: Bearer TOKEN`), shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    pub user: UserDto,
}

/// Log in with a user name and password; returns a session token valid for 12 hours.
#[utoipa::path(post, path = "/api/v1/login", tag = "users",
    request_body = LoginDto,
    responses(
        (status = 200, body = SessionDto),
        (status = 401, body = super::error::ErrorBody, description = "Wrong user or password"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginDto>,
) -> Result<ApiJson<SessionDto>, ApiError> {
    let store = state.store();
    let result = async {
        let Some(user) = store
            .verify_user_password(&body.user, &body.password)
            .await?
        else {
            return Err(ApiError::unauthorized("wrong user or password"));
        };
        let session = store
            .open_session(&user.id, SESSION_TTL, Timestamp::now())
            .await?;
        Ok(SessionDto {
            token: session.token,
            expires_at: session.expires_at,
            user: user.into(),
        })
    }
    .await;
    // Failed logins are recorded too: they are what an intrusion looks like.
    record_audit(
        &state,
        &Actor(format!("user:{}", body.user)),
        "user.login",
        Some(body.user.clone()),
        serde_json::json!({ "user": body.user }),
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?))
}

/// End the session of the token used (admin tokens are revoked with the CLI instead).
#[utoipa::path(post, path = "/api/v1/logout", tag = "users",
    security(("bearer" = [])),
    responses((status = 204, description = "Session ended"),
        (status = 400, body = super::error::ErrorBody, description = "Not a session token")))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if principal.user.is_none() {
        return Err(ApiError::bad_request(
            "Authorization: an admin token is not a session; revoke it with the CLI",
        ));
    }
    let token = bearer(&headers).unwrap_or_default().to_owned();
    state.store().close_session(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}
