//! The registry: districts, communities' registry facts and construction figures, parking bays,
//! chargers' registry facts, and the `registry-events` outbox. Every read is limited to what
//! the caller may see ([`Permission`]); every change is checked, audited, and emitted as an
//! event by the store in the same commit.

use super::auth::{Owned, Permission, Principal};
use super::chargers::path_id;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::users::check_text;
use super::with_audit;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use orderly_store as store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

/// Mirrors a store enum with a schema for the OpenAPI document.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident => $store:ident { $($v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($v),+ }
        impl From<$name> for store::$store {
            fn from(v: $name) -> Self { match v { $($name::$v => store::$store::$v),+ } }
        }
        impl From<store::$store> for $name {
            fn from(v: store::$store) -> Self { match v { $(store::$store::$v => $name::$v),+ } }
        }
    };
}

wire_enum!(
    /// owned, leased (needs `lease_end`) or public.
    TenureDto => Tenure { Owned, Leased, Public }
);
wire_enum!(
    /// A charger built at the bay, reserved (planned) or none.
    BayChargerDto => BayCharger { Built, Reserved, None }
);
wire_enum!(
    /// self_use (a resident's own), public, or mobile.
    ChargerKindDto => ChargerKind { SelfUse, Public, Mobile }
);
wire_enum!(
    /// planned → installed → active ⇄ suspended → transferred / decommissioned.
    LifecycleDto => Lifecycle { Planned, Installed, Active, Suspended, Transferred, Decommissioned }
);

// ----- districts ------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct DistrictDto {
    pub id: String,
    pub name: String,
    pub city: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<store::District> for DistrictDto {
    fn from(d: store::District) -> Self {
        Self {
            id: d.id,
            name: d.name,
            city: d.city,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDistrictDto {
    pub name: String,
    pub city: Option<String>,
}

/// Districts (every signed-in user may read them).
#[utoipa::path(get, path = "/api/v1/districts", tag = "registry",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<DistrictDto>)))]
pub async fn list_districts(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<ApiJson<Vec<DistrictDto>>, ApiError> {
    let all = state.store().list_districts().await?;
    Ok(ApiJson(all.into_iter().map(Into::into).collect()))
}

/// One district.
#[utoipa::path(get, path = "/api/v1/districts/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "District id")),
    responses((status = 200, body = DistrictDto), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_district(
    State(state): State<AppState>,
    _principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<DistrictDto>, ApiError> {
    let d = state
        .store()
        .get_district(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("district {id} not found")))?;
    Ok(ApiJson(d.into()))
}

/// Create or rename a district (admins).
#[utoipa::path(put, path = "/api/v1/districts/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "District id")),
    request_body = PutDistrictDto,
    responses((status = 200, body = DistrictDto, description = "Updated"),
        (status = 201, body = DistrictDto, description = "Created"),
        (status = 400, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)))]
pub async fn put_district(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PutDistrictDto>,
) -> Result<(StatusCode, ApiJson<DistrictDto>), ApiError> {
    principal.require(Permission::Administer)?;
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "district.put",
        Some(id.clone()),
        audited,
        async {
            super::users::check_login(&id).map_err(|_| {
                ApiError::bad_request("id: 1 to 64 characters of A-Z a-z 0-9 . _ - @")
            })?;
            check_text("name", &body.name, 200)?;
            if let Some(c) = &body.city {
                check_text("city", c, 200)?;
            }
            let store = state.store();
            let created = store
                .put_district(&id, &body.name, body.city.as_deref(), Timestamp::now())
                .await?;
            let d = store
                .get_district(&id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("district {id} not found")))?;
            Ok((created, d))
        },
    )
    .await;
    let (created, d) = result?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(d.into())))
}

// ----- communities ----------------------------------------------------------------------------

/// A community's registry facts (its transformer data is under `/api/v1/communities`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CommunityRegistryDto {
    pub community_id: String,
    pub name: Option<String>,
    pub address: Option<String>,
    pub district_id: Option<String>,
    /// The property-management company.
    pub property_manager: Option<String>,
}

impl From<store::CommunityRegistry> for CommunityRegistryDto {
    fn from(c: store::CommunityRegistry) -> Self {
        Self {
            community_id: c.community_id,
            name: c.name,
            address: c.facts.address,
            district_id: c.facts.district_id,
            property_manager: c.facts.property_manager,
        }
    }
}

/// A community's registry facts; all three are replaced (absent = none).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunityFactsDto {
    pub address: Option<String>,
    pub district_id: Option<String>,
    pub property_manager: Option<String>,
}

/// Communities the caller may read, with their registry facts.
#[utoipa::path(get, path = "/api/v1/registry/communities", tag = "registry",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<CommunityRegistryDto>)))]
pub async fn list_communities(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<ApiJson<Vec<CommunityRegistryDto>>, ApiError> {
    let all = state.store().list_community_registry().await?;
    Ok(ApiJson(
        all.into_iter()
            .filter(|c| principal.permits(Permission::ReadCommunity(&c.community_id)))
            .map(Into::into)
            .collect(),
    ))
}

async fn load_community(state: &AppState, id: &str) -> Result<store::CommunityRegistry, ApiError> {
    state
        .store()
        .community_registry(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("community {id} not found")))
}

/// One community's registry facts.
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = CommunityRegistryDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get_community(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CommunityRegistryDto>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    Ok(ApiJson(load_community(&state, &id).await?.into()))
}

/// Set a community's address, district and property manager (admins, its property manager).
#[utoipa::path(put, path = "/api/v1/registry/communities/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = CommunityFactsDto,
    responses((status = 200, body = CommunityRegistryDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn put_community(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CommunityFactsDto>,
) -> Result<ApiJson<CommunityRegistryDto>, ApiError> {
    principal.require(Permission::ManageCommunity(&id))?;
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "community.registry",
        Some(id.clone()),
        audited,
        async {
            for (field, value) in [
                ("address", &body.address),
                ("district_id", &body.district_id),
                ("property_manager", &body.property_manager),
            ] {
                if let Some(v) = value {
                    check_text(field, v, 500)?;
                }
            }
            // Moving a community to another district changes who reaches it through a district
            // scope: only admins may.
            let current = load_community(&state, &id).await?;
            if current.facts.district_id != body.district_id {
                principal.require(Permission::Administer)?;
            }
            let facts = store::CommunityFacts {
                address: body.address,
                district_id: body.district_id,
                property_manager: body.property_manager,
            };
            state
                .store()
                .set_community_facts(&id, facts, Timestamp::now())
                .await?;
            load_community(&state, &id).await
        },
    )
    .await;
    Ok(ApiJson(result?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConstructionFiguresDto {
    pub community_id: String,
    pub bays: i64,
    /// Bays with a charger built.
    pub bays_with_chargers: i64,
    /// Bays with a charger reserved (planned).
    pub reserved_bays: i64,
    pub ev_only_bays: i64,
    /// Chargers in the registry, not decommissioned.
    pub chargers: i64,
    pub chargers_active: i64,
}

/// Construction figures of a community: bays, bays with chargers, reserved bays, chargers.
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/figures", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = ConstructionFiguresDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn figures(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ConstructionFiguresDto>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    let f = state
        .store()
        .construction_figures(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("community {id} not found")))?;
    Ok(ApiJson(ConstructionFiguresDto {
        community_id: f.community_id,
        bays: f.bays,
        bays_with_chargers: f.bays_with_chargers,
        reserved_bays: f.reserved_bays,
        ev_only_bays: f.ev_only_bays,
        chargers: f.chargers,
        chargers_active: f.chargers_active,
    }))
}

// ----- bays -----------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct BayDto {
    pub id: i64,
    pub community_id: String,
    pub number: String,
    pub tenure: TenureDto,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_end: Option<Timestamp>,
    /// The resident who owns or leases it.
    pub holder: Option<String>,
    pub ev_only: bool,
    pub charger: BayChargerDto,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<store::Bay> for BayDto {
    fn from(b: store::Bay) -> Self {
        Self {
            id: b.id,
            community_id: b.community_id,
            number: b.input.number,
            tenure: b.input.tenure.into(),
            lease_end: b.input.lease_end,
            holder: b.input.holder,
            ev_only: b.input.ev_only,
            charger: b.input.charger.into(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A parking bay's facts (all replaced on update).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BayInputDto {
    pub number: String,
    pub tenure: TenureDto,
    /// Required for a leased bay, refused otherwise (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub lease_end: Option<Timestamp>,
    pub holder: Option<String>,
    #[serde(default)]
    pub ev_only: bool,
    pub charger: BayChargerDto,
}

impl BayInputDto {
    fn into_store(self) -> Result<store::BayInput, ApiError> {
        check_text("number", &self.number, 32)?;
        Ok(store::BayInput {
            number: self.number,
            tenure: self.tenure.into(),
            lease_end: self.lease_end,
            holder: self.holder,
            ev_only: self.ev_only,
            charger: self.charger.into(),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BaysQuery {
    /// Only this community's bays.
    pub community: Option<String>,
}

fn bay_owned(b: &store::Bay) -> Owned<'_> {
    Owned {
        owner: b.input.holder.as_deref(),
        community: Some(&b.community_id),
    }
}

/// Bays the caller may see: a community's staff see its bays, residents the bays they hold.
#[utoipa::path(get, path = "/api/v1/bays", tag = "registry",
    security(("bearer" = [])),
    params(BaysQuery),
    responses((status = 200, body = Vec<BayDto>)))]
pub async fn list_bays(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<BaysQuery>,
) -> Result<ApiJson<Vec<BayDto>>, ApiError> {
    let bays = state.store().list_bays(query.community.as_deref()).await?;
    Ok(ApiJson(
        bays.into_iter()
            .filter(|b| principal.permits(Permission::ReadOwn(bay_owned(b))))
            .map(Into::into)
            .collect(),
    ))
}

/// Every bay of a community (its staff, admins, regulators).
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/bays", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = Vec<BayDto>), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn community_bays(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Vec<BayDto>>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    load_community(&state, &id).await?;
    let bays = state.store().list_bays(Some(&id)).await?;
    Ok(ApiJson(bays.into_iter().map(Into::into).collect()))
}

/// Add a parking bay to a community (admins, its property manager).
#[utoipa::path(post, path = "/api/v1/registry/communities/{id}/bays", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = BayInputDto,
    responses((status = 201, body = BayDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Number taken")))]
pub async fn create_bay(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<BayInputDto>,
) -> Result<(StatusCode, ApiJson<BayDto>), ApiError> {
    principal.require(Permission::ManageCommunity(&id))?;
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "bay.add",
        Some(id.clone()),
        audited,
        async {
            let input = body.into_store()?;
            Ok(state
                .store()
                .create_bay(&id, input, Timestamp::now())
                .await?)
        },
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

async fn load_bay(state: &AppState, id: i64) -> Result<store::Bay, ApiError> {
    state
        .store()
        .get_bay(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("bay {id} not found")))
}

/// One bay (its holder, its community's staff).
#[utoipa::path(get, path = "/api/v1/bays/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Bay id")),
    responses((status = 200, body = BayDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get_bay(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<BayDto>, ApiError> {
    let bay = load_bay(&state, id).await?;
    principal.require(Permission::ReadOwn(bay_owned(&bay)))?;
    Ok(ApiJson(bay.into()))
}

/// Change a bay (admins, its community's property manager).
#[utoipa::path(put, path = "/api/v1/bays/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Bay id")),
    request_body = BayInputDto,
    responses((status = 200, body = BayDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
pub async fn update_bay(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<BayInputDto>,
) -> Result<ApiJson<BayDto>, ApiError> {
    let bay = load_bay(&state, id).await?;
    principal.require(Permission::ManageCommunity(&bay.community_id))?;
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "bay.update",
        Some(id.to_string()),
        audited,
        async {
            let input = body.into_store()?;
            Ok(state
                .store()
                .update_bay(id, input, Timestamp::now())
                .await?)
        },
    )
    .await;
    Ok(ApiJson(result?.into()))
}

// ----- chargers -------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConnectorDto {
    /// 1, 2, … as in OCPP.
    pub connector_id: i32,
    /// Plug standard, e.g. "GB/T", "Type2".
    pub standard: String,
    pub max_power_kw: Option<f64>,
}

/// A charger's registry facts; the OCPP identity is the charger id in the path.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargerFactsDto {
    pub community_id: Option<String>,
    pub bay_id: Option<i64>,
    pub kind: ChargerKindDto,
    /// The owning user. Set once; later changes go through a transfer request.
    pub owner: Option<String>,
    /// The operating company.
    pub operator: Option<String>,
    pub model: Option<String>,
    pub rated_power_kw: Option<f64>,
    /// 1 or 3.
    pub phases: Option<u8>,
    #[serde(default)]
    pub connectors: Vec<RegistryConnectorDto>,
    /// Who maintains it (company or person).
    pub maintainer: Option<String>,
}

impl ChargerFactsDto {
    fn into_store(self) -> Result<store::ChargerFacts, ApiError> {
        for (field, value, max) in [
            ("community_id", &self.community_id, 64),
            ("operator", &self.operator, 200),
            ("model", &self.model, 200),
            ("maintainer", &self.maintainer, 200),
        ] {
            if let Some(v) = value {
                check_text(field, v, max)?;
            }
        }
        if let Some(p) = self.rated_power_kw
            && !(p.is_finite() && p > 0.0 && p <= 2000.0)
        {
            return Err(ApiError::bad_request(
                "rated_power_kw: must be above 0 and at most 2000",
            ));
        }
        if let Some(p) = self.phases
            && p != 1
            && p != 3
        {
            return Err(ApiError::bad_request("phases: must be 1 or 3"));
        }
        let mut seen = BTreeSet::new();
        for c in &self.connectors {
            if c.connector_id < 1 || !seen.insert(c.connector_id) {
                return Err(ApiError::bad_request(
                    "connectors.connector_id: must be 1 or more, each once",
                ));
            }
            check_text("connectors.standard", &c.standard, 32)?;
            if let Some(p) = c.max_power_kw
                && !(p.is_finite() && p > 0.0 && p <= 2000.0)
            {
                return Err(ApiError::bad_request(
                    "connectors.max_power_kw: must be above 0 and at most 2000",
                ));
            }
        }
        Ok(store::ChargerFacts {
            community_id: self.community_id,
            bay_id: self.bay_id,
            kind: self.kind.into(),
            owner: self.owner,
            operator: self.operator,
            model: self.model,
            rated_power_kw: self.rated_power_kw,
            phases: self.phases,
            connectors: self
                .connectors
                .into_iter()
                .map(|c| store::RegistryConnector {
                    connector_id: c.connector_id,
                    standard: c.standard,
                    max_power_kw: c.max_power_kw,
                })
                .collect(),
            maintainer: self.maintainer,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargerRegistrationDto {
    pub charger_id: String,
    pub community_id: Option<String>,
    pub bay_id: Option<i64>,
    pub kind: ChargerKindDto,
    pub owner: Option<String>,
    pub operator: Option<String>,
    pub model: Option<String>,
    pub rated_power_kw: Option<f64>,
    pub phases: Option<u8>,
    pub connectors: Vec<RegistryConnectorDto>,
    pub maintainer: Option<String>,
    pub lifecycle: LifecycleDto,
    #[schema(value_type = String, format = DateTime)]
    pub lifecycle_at: Timestamp,
    /// Whether the charger has an open OCPP connection now.
    pub connected: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl ChargerRegistrationDto {
    pub(crate) fn new(r: store::ChargerRegistration, connected: bool) -> Self {
        Self {
            charger_id: r.charger_id,
            community_id: r.facts.community_id,
            bay_id: r.facts.bay_id,
            kind: r.facts.kind.into(),
            owner: r.facts.owner,
            operator: r.facts.operator,
            model: r.facts.model,
            rated_power_kw: r.facts.rated_power_kw,
            phases: r.facts.phases,
            connectors: r
                .facts
                .connectors
                .into_iter()
                .map(|c| RegistryConnectorDto {
                    connector_id: c.connector_id,
                    standard: c.standard,
                    max_power_kw: c.max_power_kw,
                })
                .collect(),
            maintainer: r.facts.maintainer,
            lifecycle: r.lifecycle.into(),
            lifecycle_at: r.lifecycle_at,
            connected,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Who a charger belongs to, for permission checks.
pub(crate) fn charger_owned(r: &store::ChargerRegistration) -> Owned<'_> {
    Owned {
        owner: r.facts.owner.as_deref(),
        community: r.facts.community_id.as_deref(),
    }
}

/// Who may operate a charger: an operator of its community, or admins when it has none.
pub(crate) fn require_operate(
    principal: &Principal,
    community: Option<&str>,
) -> Result<(), ApiError> {
    match community {
        Some(c) => principal.require(Permission::OperateChargers(c)),
        None => principal.require(Permission::Administer),
    }
}

pub(crate) async fn load_registration(
    state: &AppState,
    raw: String,
) -> Result<store::ChargerRegistration, ApiError> {
    let id = path_id(raw)?;
    state
        .store()
        .charger_registration(id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("charger {id} not found in the registry")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargersQuery {
    /// Only this community's chargers.
    pub community: Option<String>,
    /// Only this user's chargers.
    pub owner: Option<String>,
}

/// Registered chargers the caller may see (owners: their own; staff: their communities').
#[utoipa::path(get, path = "/api/v1/registry/chargers", tag = "registry",
    security(("bearer" = [])),
    params(ChargersQuery),
    responses((status = 200, body = Vec<ChargerRegistrationDto>)))]
pub async fn list_chargers(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ChargersQuery>,
) -> Result<ApiJson<Vec<ChargerRegistrationDto>>, ApiError> {
    let filter = store::RegistrationFilter {
        community_id: query.community,
        owner: query.owner,
    };
    let all = state.store().list_charger_registrations(&filter).await?;
    let registry = state.registry();
    Ok(ApiJson(
        all.into_iter()
            .filter(|r| principal.permits(Permission::ReadOwn(charger_owned(r))))
            .map(|r| {
                let connected = orderly_core::ChargePointId::parse(r.charger_id.clone())
                    .is_ok_and(|id| registry.is_connected(&id));
                ChargerRegistrationDto::new(r, connected)
            })
            .collect(),
    ))
}

/// One charger's registry facts and lifecycle.
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = ChargerRegistrationDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn get_charger(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<ChargerRegistrationDto>, ApiError> {
    let r = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&r)))?;
    let connected = orderly_core::ChargePointId::parse(r.charger_id.clone())
        .is_ok_and(|id| state.registry().is_connected(&id));
    Ok(ApiJson(ChargerRegistrationDto::new(r, connected)))
}

/// Set a charger's registry facts (first time: lifecycle `planned`). The charger must be known
/// (`POST /api/v1/chargers`). Operators of its community (old and new), admins.
#[utoipa::path(put, path = "/api/v1/registry/chargers/{id}", tag = "registry",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = ChargerFactsDto,
    responses((status = 200, body = ChargerRegistrationDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Decommissioned")))]
pub async fn put_charger(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<ChargerFactsDto>,
) -> Result<ApiJson<ChargerRegistrationDto>, ApiError> {
    let id = path_id(raw.clone())?;
    require_operate(&principal, body.community_id.as_deref())?;
    if let Some(old) = state.store().charger_registration(id.as_str()).await? {
        require_operate(&principal, old.facts.community_id.as_deref())?;
    }
    let audited = serde_json::json!(body);
    let result = with_audit(
        &state,
        &principal.as_actor(),
        "charger.registry",
        Some(raw),
        audited,
        async {
            let facts = body.into_store()?;
            Ok(state
                .store()
                .put_charger_facts(id.as_str(), facts, Timestamp::now())
                .await?)
        },
    )
    .await;
    let connected = state.registry().is_connected(&id);
    Ok(ApiJson(ChargerRegistrationDto::new(result?, connected)))
}

// ----- outbox ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryEventDto {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// e.g. `charger.registered`, `charger.lifecycle`, `charger.transferred`, `bay.created`.
    pub kind: String,
    pub charger_id: Option<String>,
    pub community_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events with a larger id (the last id seen; default 0).
    pub after: Option<i64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<u32>,
}

/// Registry changes in commit order, for the city-platform sync (admins, regulators).
#[utoipa::path(get, path = "/api/v1/registry-events", tag = "registry",
    security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, body = Vec<RegistryEventDto>), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<ApiJson<Vec<RegistryEventDto>>, ApiError> {
    principal.require(Permission::ReadAll)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit: must be between 1 and 1000"));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request("after: must be 0 or more"));
    }
    let events = state.store().registry_events(after, limit).await?;
    Ok(ApiJson(
        events
            .into_iter()
            .map(|e| RegistryEventDto {
                id: e.id,
                at: e.at,
                kind: e.kind,
                charger_id: e.charger_id,
                community_id: e.community_id,
                payload: e.payload,
            })
            .collect(),
    ))
}
