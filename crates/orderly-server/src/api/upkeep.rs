//! Insurance and upkeep: policies per charger and the cover they give, alerts for chargers
//! without valid cover or with cover ending soon, fault reports (from people, and the OCPP
//! errors chargers reported), and the property manager's inspection rounds with findings and
//! follow-up.

use super::auth::{Permission, Principal};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::registry::{charger_owned, load_registration, require_operate};
use super::users::check_text;
use super::{outcome_of, record_audit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use orderly_core::ChargePointId;
use orderly_store::{self as store, Lifecycle, PolicyKind, RegistrationFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// product_liability (the manufacturer's) or charging_safety (the owner's or operator's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKindDto {
    ProductLiability,
    ChargingSafety,
}

impl From<PolicyKindDto> for PolicyKind {
    fn from(k: PolicyKindDto) -> Self {
        match k {
            PolicyKindDto::ProductLiability => PolicyKind::ProductLiability,
            PolicyKindDto::ChargingSafety => PolicyKind::ChargingSafety,
        }
    }
}

impl From<PolicyKind> for PolicyKindDto {
    fn from(k: PolicyKind) -> Self {
        match k {
            PolicyKind::ProductLiability => PolicyKindDto::ProductLiability,
            PolicyKind::ChargingSafety => PolicyKindDto::ChargingSafety,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicyDto {
    pub kind: PolicyKindDto,
    pub insurer: String,
    /// Policy number (unique per insurer).
    pub number: String,
    /// Policy holder: the manufacturer, owner or operator.
    pub holder: String,
    pub coverage_cny: f64,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// After `start`.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    pub id: i64,
    pub charger_id: String,
    pub kind: PolicyKindDto,
    pub insurer: String,
    pub number: String,
    pub holder: String,
    pub coverage_cny: f64,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

impl From<store::Policy> for PolicyDto {
    fn from(p: store::Policy) -> Self {
        Self {
            id: p.id,
            charger_id: p.charger_id,
            kind: p.policy.kind.into(),
            insurer: p.policy.insurer,
            number: p.policy.number,
            holder: p.policy.holder,
            coverage_cny: p.policy.coverage_cny,
            start: p.policy.start,
            end: p.policy.end,
        }
    }
}

/// Cover of one kind now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoverDto {
    pub kind: PolicyKindDto,
    pub covered: bool,
    /// The policy in force, if any.
    pub policy_id: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end: Option<Timestamp>,
    pub days_left: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsuranceDto {
    /// Covered by both kinds now.
    pub covered: bool,
    pub cover: Vec<CoverDto>,
    pub policies: Vec<PolicyDto>,
}

fn days_until(end: Timestamp, now: Timestamp) -> i64 {
    end.duration_since(now).as_secs().div_euclid(86_400)
}

/// A charger's insurance policies and whether it is covered now.
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}/insurance", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = InsuranceDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn insurance(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<InsuranceDto>, ApiError> {
    let reg = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&reg)))?;
    let now = Timestamp::now();
    let store = state.store();
    let cover: Vec<CoverDto> = store
        .cover(&reg.charger_id, now)
        .await?
        .into_iter()
        .map(|c| CoverDto {
            kind: c.kind.into(),
            covered: c.policy.is_some(),
            policy_id: c.policy.as_ref().map(|p| p.id),
            end: c.policy.as_ref().map(|p| p.policy.end),
            days_left: c.policy.as_ref().map(|p| days_until(p.policy.end, now)),
        })
        .collect();
    Ok(ApiJson(InsuranceDto {
        covered: cover.iter().all(|c| c.covered),
        cover,
        policies: store
            .list_policies(&reg.charger_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Record an insurance policy (the charger's owner, operators of its community, admins).
#[utoipa::path(post, path = "/api/v1/registry/chargers/{id}/insurance", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = NewPolicyDto,
    responses((status = 201, body = PolicyDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Same insurer and number")))]
pub async fn add_policy(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<NewPolicyDto>,
) -> Result<(StatusCode, ApiJson<PolicyDto>), ApiError> {
    let reg = load_registration(&state, raw.clone()).await?;
    principal.require(Permission::ActOwn(charger_owned(&reg)))?;
    let audited = serde_json::json!(body);
    let result = async {
        check_text("insurer", &body.insurer, 200)?;
        check_text("number", &body.number, 100)?;
        check_text("holder", &body.holder, 200)?;
        let policy = store::NewPolicy {
            kind: body.kind.into(),
            insurer: body.insurer,
            number: body.number,
            holder: body.holder,
            coverage_cny: body.coverage_cny,
            start: body.start,
            end: body.end,
        };
        Ok(state
            .store()
            .add_policy(&reg.charger_id, policy, Timestamp::now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "charger.insurance.add",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Warn this many days before a policy ends (default 30, at most 366).
    pub days: Option<u32>,
    /// Only this community.
    pub community: Option<String>,
}

/// A charger lacking cover now (`missing`) or whose cover ends within the warning period with
/// nothing to follow it (`expiring`).
#[derive(Debug, Serialize, ToSchema)]
pub struct InsuranceAlertDto {
    pub charger_id: String,
    pub community_id: Option<String>,
    pub kind: PolicyKindDto,
    /// missing or expiring.
    #[schema(example = "expiring")]
    pub status: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end: Option<Timestamp>,
    pub days_left: Option<i64>,
}

/// Insurance alerts for the chargers the caller may see (installed and later, not
/// decommissioned).
#[utoipa::path(get, path = "/api/v1/insurance/alerts", tag = "upkeep",
    security(("bearer" = [])),
    params(AlertsQuery),
    responses((status = 200, body = Vec<InsuranceAlertDto>), (status = 400, body = super::error::ErrorBody)))]
pub async fn alerts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AlertsQuery>,
) -> Result<ApiJson<Vec<InsuranceAlertDto>>, ApiError> {
    let days = query.days.unwrap_or(30);
    if days > 366 {
        return Err(ApiError::bad_request("days: at most 366"));
    }
    let now = Timestamp::now();
    let horizon = now
        .checked_add(SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(|e| ApiError::bad_request(format!("days: {e}")))?;
    let store = state.store();
    let filter = RegistrationFilter {
        community_id: query.community,
        owner: None,
    };
    let mut out = Vec::new();
    for reg in store.list_charger_registrations(&filter).await? {
        if matches!(
            reg.lifecycle,
            Lifecycle::Planned | Lifecycle::Decommissioned
        ) || !principal.permits(Permission::ReadOwn(charger_owned(&reg)))
        {
            continue;
        }
        let now_cover = store.cover(&reg.charger_id, now).await?;
        let later_cover = store.cover(&reg.charger_id, horizon).await?;
        for (c, later) in now_cover.into_iter().zip(later_cover) {
            let (status, end) = match (&c.policy, &later.policy) {
                (None, _) => ("missing", None),
                (Some(p), None) => ("expiring", Some(p.policy.end)),
                (Some(_), Some(_)) => continue,
            };
            out.push(InsuranceAlertDto {
                charger_id: reg.charger_id.clone(),
                community_id: reg.facts.community_id.clone(),
                kind: c.kind.into(),
                status: status.to_owned(),
                end,
                days_left: end.map(|e| days_until(e, now)),
            });
        }
    }
    Ok(ApiJson(out))
}

// ----- faults ---------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFaultDto {
    pub description: String,
    pub connector_id: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FaultDto {
    pub id: i64,
    pub charger_id: String,
    pub connector_id: Option<i32>,
    pub reported_by: String,
    pub description: String,
    /// open or resolved.
    pub state: String,
    pub resolution: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
}

impl From<store::FaultReport> for FaultDto {
    fn from(f: store::FaultReport) -> Self {
        Self {
            id: f.id,
            charger_id: f.charger_id,
            connector_id: f.connector_id,
            reported_by: f.reported_by,
            description: f.description,
            state: f.state,
            resolution: f.resolution,
            created_at: f.created_at,
            resolved_at: f.resolved_at,
        }
    }
}

/// An error a charger reported in a StatusNotification.
#[derive(Debug, Serialize, ToSchema)]
pub struct OcppFaultDto {
    pub connector_id: i32,
    pub status: String,
    /// OCPP ChargePointErrorCode (not NoError).
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_error_code: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FaultsDto {
    /// Reported by people, newest first.
    pub reports: Vec<FaultDto>,
    /// Reported by the charger (StatusNotification errors among the last 1000), newest first.
    pub ocpp: Vec<OcppFaultDto>,
}

/// A charger's faults: people's reports and the errors it reported over OCPP.
#[utoipa::path(get, path = "/api/v1/registry/chargers/{id}/faults", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    responses((status = 200, body = FaultsDto), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn faults(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<FaultsDto>, ApiError> {
    let reg = load_registration(&state, raw).await?;
    principal.require(Permission::ReadOwn(charger_owned(&reg)))?;
    let store = state.store();
    let id = ChargePointId::parse(reg.charger_id.clone())
        .map_err(|e| ApiError::internal(format!("stored charger id: {e}")))?;
    let ocpp = store
        .status_history(&id, 1000)
        .await?
        .into_iter()
        .filter(|s| s.error_code != "NoError")
        .map(|s| OcppFaultDto {
            connector_id: s.connector_id,
            status: s.status,
            error_code: s.error_code,
            info: s.info,
            vendor_error_code: s.vendor_error_code,
            timestamp: s.timestamp,
        })
        .collect();
    Ok(ApiJson(FaultsDto {
        reports: store
            .list_faults(&reg.charger_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        ocpp,
    }))
}

/// Report a fault of a charger (any signed-in user but a regulator: residents report what they
/// find at public chargers too).
#[utoipa::path(post, path = "/api/v1/registry/chargers/{id}/faults", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Charge point id")),
    request_body = NewFaultDto,
    responses((status = 201, body = FaultDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "The charger is decommissioned")))]
pub async fn report_fault(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<NewFaultDto>,
) -> Result<(StatusCode, ApiJson<FaultDto>), ApiError> {
    if principal.role == store::Role::Regulator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: regulators read, they do not report",
        ));
    }
    let reg = load_registration(&state, raw.clone()).await?;
    let audited = serde_json::json!(body);
    let result = async {
        check_text("description", &body.description, 2000)?;
        if reg.lifecycle == Lifecycle::Decommissioned {
            return Err(ApiError::conflict(format!(
                "charger {} is decommissioned",
                reg.charger_id
            )));
        }
        Ok(state
            .store()
            .report_fault(
                &reg.charger_id,
                body.connector_id,
                &principal.actor,
                &body.description,
                Timestamp::now(),
            )
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "charger.fault.report",
        Some(raw),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveDto {
    /// What was done.
    pub resolution: String,
}

/// Resolve a fault report (operators of the charger's community, admins).
#[utoipa::path(post, path = "/api/v1/faults/{id}/resolve", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Fault report id")),
    request_body = ResolveDto,
    responses((status = 200, body = FaultDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Already resolved")))]
pub async fn resolve_fault(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ResolveDto>,
) -> Result<ApiJson<FaultDto>, ApiError> {
    let fault = state
        .store()
        .get_fault(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("fault report {id} not found")))?;
    let reg = load_registration(&state, fault.charger_id.clone()).await?;
    require_operate(&principal, reg.facts.community_id.as_deref())?;
    let audited = serde_json::json!(body);
    let result = async {
        check_text("resolution", &body.resolution, 2000)?;
        Ok(state
            .store()
            .resolve_fault(id, &body.resolution, Timestamp::now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "charger.fault.resolve",
        Some(fault.charger_id),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}

// ----- inspections ----------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFindingDto {
    /// A charger registered in the community, if the finding is about one.
    pub charger_id: Option<String>,
    /// info, minor, major or critical.
    #[schema(example = "minor")]
    pub severity: String,
    pub description: String,
    /// When it should be dealt with.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due: Option<Timestamp>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInspectionDto {
    /// When the round took place.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub notes: Option<String>,
    #[serde(default)]
    pub findings: Vec<NewFindingDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingDto {
    pub id: i64,
    pub inspection_id: i64,
    pub charger_id: Option<String>,
    pub severity: String,
    pub description: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due: Option<Timestamp>,
    /// open or done.
    pub state: String,
    /// Follow-up notes, one per line.
    pub follow_up: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Timestamp>,
}

impl From<store::Finding> for FindingDto {
    fn from(f: store::Finding) -> Self {
        Self {
            id: f.id,
            inspection_id: f.inspection_id,
            charger_id: f.charger_id,
            severity: f.severity,
            description: f.description,
            due: f.due,
            state: f.state,
            follow_up: f.follow_up,
            closed_at: f.closed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InspectionDto {
    pub id: i64,
    pub community_id: String,
    pub inspector: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub notes: Option<String>,
    pub findings: Vec<FindingDto>,
}

impl From<store::Inspection> for InspectionDto {
    fn from(i: store::Inspection) -> Self {
        Self {
            id: i.id,
            community_id: i.community_id,
            inspector: i.inspector,
            at: i.at,
            notes: i.notes,
            findings: i.findings.into_iter().map(Into::into).collect(),
        }
    }
}

/// A community's inspection rounds, newest first.
#[utoipa::path(get, path = "/api/v1/registry/communities/{id}/inspections", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    responses((status = 200, body = Vec<InspectionDto>), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn inspections(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Vec<InspectionDto>>, ApiError> {
    principal.require(Permission::ReadCommunity(&id))?;
    let store = state.store();
    if store.community_registry(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("community {id} not found")));
    }
    let all = store.list_inspections(&id).await?;
    Ok(ApiJson(all.into_iter().map(Into::into).collect()))
}

/// Record an inspection round with its findings (the community's property manager, admins).
#[utoipa::path(post, path = "/api/v1/registry/communities/{id}/inspections", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Community id")),
    request_body = NewInspectionDto,
    responses((status = 201, body = InspectionDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn add_inspection(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewInspectionDto>,
) -> Result<(StatusCode, ApiJson<InspectionDto>), ApiError> {
    principal.require(Permission::ManageCommunity(&id))?;
    let audited = serde_json::json!(body);
    let result = async {
        if let Some(n) = &body.notes {
            check_text("notes", n, 5000)?;
        }
        if body.findings.len() > 500 {
            return Err(ApiError::bad_request("findings: at most 500"));
        }
        let mut findings = Vec::with_capacity(body.findings.len());
        for f in body.findings {
            check_text("findings.description", &f.description, 2000)?;
            findings.push(store::NewFinding {
                charger_id: f.charger_id,
                severity: f.severity,
                description: f.description,
                due: f.due,
            });
        }
        Ok(state
            .store()
            .add_inspection(
                &id,
                &principal.actor,
                body.at,
                body.notes,
                findings,
                Timestamp::now(),
            )
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "community.inspection.add",
        Some(id.clone()),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok((StatusCode::CREATED, ApiJson(result?.into())))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpDto {
    pub note: String,
    /// Close the finding.
    #[serde(default)]
    pub done: bool,
}

/// Follow up a finding (the community's property manager or operator, admins).
#[utoipa::path(post, path = "/api/v1/findings/{id}/follow-up", tag = "upkeep",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Finding id")),
    request_body = FollowUpDto,
    responses((status = 200, body = FindingDto), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "Already done")))]
pub async fn follow_up(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<FollowUpDto>,
) -> Result<ApiJson<FindingDto>, ApiError> {
    let (_, community) = state
        .store()
        .get_finding(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("finding {id} not found")))?;
    if !principal.permits(Permission::OperateChargers(&community)) {
        principal.require(Permission::ManageCommunity(&community))?;
    }
    let audited = serde_json::json!(body);
    let result = async {
        check_text("note", &body.note, 2000)?;
        Ok(state
            .store()
            .follow_up_finding(id, &body.note, body.done, Timestamp::now())
            .await?)
    }
    .await;
    record_audit(
        &state,
        &principal.as_actor(),
        "community.finding.follow_up",
        Some(community),
        audited,
        outcome_of(&result),
    )
    .await;
    Ok(ApiJson(result?.into()))
}
