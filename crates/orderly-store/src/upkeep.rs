//! Insurance and upkeep (migration 0005): insurance policies per charger and the cover they
//! give at an instant, fault reports from people, and inspection rounds with findings and their
//! follow-up. Like the registry, every change is one writer operation that validates first and
//! emits its `registry_events` entry in the same commit.

use std::pin::Pin;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::ops::{Applied, DynOp, Outcome, take_ids};
use crate::registry::{emit, exists};
use crate::rows::{get, ms, opt_ms, opt_ts, ts};
use crate::{Result, Store, StoreError};

/// Product liability (the manufacturer's) or charging-safety liability (the owner's or
/// operator's): a charger needs both to be covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    ProductLiability,
    ChargingSafety,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 2] = [PolicyKind::ProductLiability, PolicyKind::ChargingSafety];
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ProductLiability => "product_liability",
            PolicyKind::ChargingSafety => "charging_safety",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("insurance_policies.kind: {s:?}")))
    }
}

/// An insurance policy to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewPolicy {
    pub kind: PolicyKind,
    pub insurer: String,
    pub number: String,
    pub holder: String,
    pub coverage_cny: f64,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub id: i64,
    pub charger_id: String,
    #[serde(flatten)]
    pub policy: NewPolicy,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultReport {
    pub id: i64,
    pub charger_id: String,
    pub connector_id: Option<i32>,
    pub reported_by: String,
    pub description: String,
    /// open or resolved.
    pub state: String,
    pub resolution: Option<String>,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A finding to record with an inspection round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewFinding {
    pub charger_id: Option<String>,
    /// info, minor, major or critical.
    pub severity: String,
    pub description: String,
    pub due: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: i64,
    pub inspection_id: i64,
    pub charger_id: Option<String>,
    pub severity: String,
    pub description: String,
    pub due: Option<Timestamp>,
    /// open or done.
    pub state: String,
    pub follow_up: Option<String>,
    pub closed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    pub id: i64,
    pub community_id: String,
    pub inspector: String,
    pub at: Timestamp,
    pub notes: Option<String>,
    pub findings: Vec<Finding>,
    pub created_at: Timestamp,
}

pub const SEVERITIES: [&str; 4] = ["info", "minor", "major", "critical"];

#[derive(Debug)]
enum UpkeepOp {
    AddPolicy {
        charger_id: String,
        policy: NewPolicy,
        now: Timestamp,
    },
    ReportFault {
        charger_id: String,
        connector_id: Option<i32>,
        reported_by: String,
        description: String,
        now: Timestamp,
    },
    ResolveFault {
        id: i64,
        resolution: String,
        now: Timestamp,
    },
    AddInspection {
        community_id: String,
        inspector: String,
        at: Timestamp,
        notes: Option<String>,
        findings: Vec<NewFinding>,
        now: Timestamp,
    },
    FollowUp {
        id: i64,
        note: String,
        done: bool,
        now: Timestamp,
    },
}

impl DynOp for UpkeepOp {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(self.run(conn))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

const POLICY_COLUMNS: &str = "id, charger_id, kind, insurer, number, holder, coverage_cny, \
    start_ms, end_ms, created_at_ms";

fn policy(row: &AnyRow) -> Result<Policy> {
    Ok(Policy {
        id: get(row, "id")?,
        charger_id: get(row, "charger_id")?,
        policy: NewPolicy {
            kind: PolicyKind::parse(&get::<String>(row, "kind")?)?,
            insurer: get(row, "insurer")?,
            number: get(row, "number")?,
            holder: get(row, "holder")?,
            coverage_cny: get(row, "coverage_cny")?,
            start: ts(row, "start_ms")?,
            end: ts(row, "end_ms")?,
        },
        created_at: ts(row, "created_at_ms")?,
    })
}

const FAULT_COLUMNS: &str = "id, charger_id, connector_id, reported_by, description, state, \
    resolution, created_at_ms, resolved_at_ms";

fn fault(row: &AnyRow) -> Result<FaultReport> {
    Ok(FaultReport {
        id: get(row, "id")?,
        charger_id: get(row, "charger_id")?,
        connector_id: crate::rows::opt_int32(row, "connector_id")?,
        reported_by: get(row, "reported_by")?,
        description: get(row, "description")?,
        state: get(row, "state")?,
        resolution: get(row, "resolution")?,
        created_at: ts(row, "created_at_ms")?,
        resolved_at: opt_ts(row, "resolved_at_ms")?,
    })
}

const FINDING_COLUMNS: &str = "id, inspection_id, charger_id, severity, description, due_ms, \
    state, follow_up, closed_at_ms";

fn finding(row: &AnyRow) -> Result<Finding> {
    Ok(Finding {
        id: get(row, "id")?,
        inspection_id: get(row, "inspection_id")?,
        charger_id: get(row, "charger_id")?,
        severity: get(row, "severity")?,
        description: get(row, "description")?,
        due: opt_ts(row, "due_ms")?,
        state: get(row, "state")?,
        follow_up: get(row, "follow_up")?,
        closed_at: opt_ts(row, "closed_at_ms")?,
    })
}

async fn charger_community(
    conn: &mut AnyConnection,
    charger_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT community_id FROM charger_registry WHERE charger_id = $1",
    )
    .bind(charger_id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten())
}

async fn load_one<T>(
    conn: &mut AnyConnection,
    sql: String,
    id: i64,
    decode: fn(&AnyRow) -> Result<T>,
) -> Result<Result<Option<T>>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(decode).transpose())
}

macro_rules! found {
    ($e:expr, $what:expr) => {
        match $e? {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Err(StoreError::NotFound($what))),
            Err(e) => return Ok(Err(e)),
        }
    };
}

fn boxed<T: Send + 'static>(v: T) -> Applied {
    Ok(Ok(Outcome::Boxed(Box::new(v))))
}

impl UpkeepOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            UpkeepOp::AddPolicy {
                charger_id,
                policy: p,
                now,
            } => {
                if !exists(
                    conn,
                    "SELECT 1 AS one FROM chargers WHERE id = $1",
                    charger_id,
                )
                .await?
                {
                    return Ok(Err(StoreError::NotFound(format!("charger {charger_id}"))));
                }
                if p.end <= p.start {
                    return Ok(Err(invalid("end", "must be after start")));
                }
                if !(p.coverage_cny.is_finite() && p.coverage_cny > 0.0) {
                    return Ok(Err(invalid("coverage_cny", "must be above 0")));
                }
                let taken = sqlx::query(
                    "SELECT 1 AS one FROM insurance_policies WHERE insurer = $1 AND number = $2",
                )
                .bind(p.insurer.as_str())
                .bind(p.number.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
                if taken {
                    return Ok(Err(StoreError::Conflict(format!(
                        "policy {} of {}",
                        p.number, p.insurer
                    ))));
                }
                let id = take_ids(conn, "insurance_policies", 1).await?;
                sqlx::query(
                    "INSERT INTO insurance_policies (id, charger_id, kind, insurer, number, holder, \
                     coverage_cny, start_ms, end_ms, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(id)
                .bind(charger_id.as_str())
                .bind(p.kind.as_str())
                .bind(p.insurer.as_str())
                .bind(p.number.as_str())
                .bind(p.holder.as_str())
                .bind(p.coverage_cny)
                .bind(ms(p.start))
                .bind(ms(p.end))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let stored = found!(
                    load_one(
                        conn,
                        format!("SELECT {POLICY_COLUMNS} FROM insurance_policies WHERE id = $1"),
                        id,
                        policy
                    )
                    .await,
                    format!("policy {id}")
                );
                let community = charger_community(conn, charger_id).await?;
                emit(
                    conn,
                    *now,
                    "charger.insurance_added",
                    Some(charger_id),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            UpkeepOp::ReportFault {
                charger_id,
                connector_id,
                reported_by,
                description,
                now,
            } => {
                if !exists(
                    conn,
                    "SELECT 1 AS one FROM chargers WHERE id = $1",
                    charger_id,
                )
                .await?
                {
                    return Ok(Err(StoreError::NotFound(format!("charger {charger_id}"))));
                }
                if connector_id.is_some_and(|c| c < 0) {
                    return Ok(Err(invalid("connector_id", "must be 0 or more")));
                }
                let id = take_ids(conn, "fault_reports", 1).await?;
                sqlx::query(
                    "INSERT INTO fault_reports (id, charger_id, connector_id, reported_by, \
                     description, state, created_at_ms) VALUES ($1, $2, $3, $4, $5, 'open', $6)",
                )
                .bind(id)
                .bind(charger_id.as_str())
                .bind(connector_id.map(i64::from))
                .bind(reported_by.as_str())
                .bind(description.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let stored = found!(
                    load_one(
                        conn,
                        format!("SELECT {FAULT_COLUMNS} FROM fault_reports WHERE id = $1"),
                        id,
                        fault
                    )
                    .await,
                    format!("fault report {id}")
                );
                let community = charger_community(conn, charger_id).await?;
                emit(
                    conn,
                    *now,
                    "charger.fault_reported",
                    Some(charger_id),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            UpkeepOp::ResolveFault {
                id,
                resolution,
                now,
            } => {
                let old = found!(
                    load_one(
                        conn,
                        format!("SELECT {FAULT_COLUMNS} FROM fault_reports WHERE id = $1"),
                        *id,
                        fault
                    )
                    .await,
                    format!("fault report {id}")
                );
                if old.state != "open" {
                    return Ok(Err(StoreError::Conflict(format!(
                        "fault report {id} is already resolved"
                    ))));
                }
                sqlx::query(
                    "UPDATE fault_reports SET state = 'resolved', resolution = $1, \
                     resolved_at_ms = $2 WHERE id = $3",
                )
                .bind(resolution.as_str())
                .bind(ms(*now))
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                let stored = found!(
                    load_one(
                        conn,
                        format!("SELECT {FAULT_COLUMNS} FROM fault_reports WHERE id = $1"),
                        *id,
                        fault
                    )
                    .await,
                    format!("fault report {id}")
                );
                let community = charger_community(conn, &old.charger_id).await?;
                emit(
                    conn,
                    *now,
                    "charger.fault_resolved",
                    Some(&old.charger_id),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            UpkeepOp::AddInspection {
                community_id,
                inspector,
                at,
                notes,
                findings,
                now,
            } => {
                if !exists(
                    conn,
                    "SELECT 1 AS one FROM communities WHERE id = $1",
                    community_id,
                )
                .await?
                {
                    return Ok(Err(StoreError::NotFound(format!(
                        "community {community_id}"
                    ))));
                }
                for f in findings {
                    if !SEVERITIES.contains(&f.severity.as_str()) {
                        return Ok(Err(invalid(
                            "findings.severity",
                            format!("{:?} (expected info, minor, major, critical)", f.severity),
                        )));
                    }
                    if let Some(c) = &f.charger_id
                        && charger_community(conn, c).await?.as_deref()
                            != Some(community_id.as_str())
                    {
                        return Ok(Err(invalid(
                            "findings.charger_id",
                            format!("charger {c} is not registered in community {community_id}"),
                        )));
                    }
                }
                let id = take_ids(conn, "inspections", 1).await?;
                sqlx::query(
                    "INSERT INTO inspections (id, community_id, inspector, at_ms, notes, \
                     created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(community_id.as_str())
                .bind(inspector.as_str())
                .bind(ms(*at))
                .bind(notes.as_deref())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                for f in findings {
                    let fid = take_ids(conn, "inspection_findings", 1).await?;
                    sqlx::query(
                        "INSERT INTO inspection_findings (id, inspection_id, charger_id, severity, \
                         description, due_ms, state) VALUES ($1, $2, $3, $4, $5, $6, 'open')",
                    )
                    .bind(fid)
                    .bind(id)
                    .bind(f.charger_id.as_deref())
                    .bind(f.severity.as_str())
                    .bind(f.description.as_str())
                    .bind(opt_ms(f.due))
                    .execute(&mut *conn)
                    .await?;
                }
                let stored = match load_inspection(conn, id).await? {
                    Ok(Some(i)) => i,
                    Ok(None) => return Ok(Err(StoreError::NotFound(format!("inspection {id}")))),
                    Err(e) => return Ok(Err(e)),
                };
                emit(
                    conn,
                    *now,
                    "community.inspection",
                    None,
                    Some(community_id),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            UpkeepOp::FollowUp {
                id,
                note,
                done,
                now,
            } => {
                let old = found!(
                    load_one(
                        conn,
                        format!("SELECT {FINDING_COLUMNS} FROM inspection_findings WHERE id = $1"),
                        *id,
                        finding
                    )
                    .await,
                    format!("finding {id}")
                );
                if old.state == "done" {
                    return Ok(Err(StoreError::Conflict(format!(
                        "finding {id} is already done"
                    ))));
                }
                // Notes accumulate, one line each, so the follow-up history is kept.
                let follow_up = match &old.follow_up {
                    Some(prev) => format!("{prev}\n{note}"),
                    None => note.clone(),
                };
                sqlx::query(
                    "UPDATE inspection_findings SET follow_up = $1, state = $2, closed_at_ms = $3 \
                     WHERE id = $4",
                )
                .bind(follow_up)
                .bind(if *done { "done" } else { "open" })
                .bind(done.then_some(ms(*now)))
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                let stored = found!(
                    load_one(
                        conn,
                        format!("SELECT {FINDING_COLUMNS} FROM inspection_findings WHERE id = $1"),
                        *id,
                        finding
                    )
                    .await,
                    format!("finding {id}")
                );
                let community: Option<String> =
                    sqlx::query_scalar("SELECT community_id FROM inspections WHERE id = $1")
                        .bind(old.inspection_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                emit(
                    conn,
                    *now,
                    "community.finding_follow_up",
                    stored.charger_id.as_deref(),
                    community.as_deref(),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
        }
    }
}

async fn load_inspection(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Result<Option<Inspection>>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, community_id, inspector, at_ms, notes, created_at_ms FROM inspections \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Ok(None));
    };
    let findings = sqlx::query(AssertSqlSafe(format!(
        "SELECT {FINDING_COLUMNS} FROM inspection_findings WHERE inspection_id = $1 ORDER BY id"
    )))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok((|| {
        Ok(Some(Inspection {
            id: get(&row, "id")?,
            community_id: get(&row, "community_id")?,
            inspector: get(&row, "inspector")?,
            at: ts(&row, "at_ms")?,
            notes: get(&row, "notes")?,
            findings: findings.iter().map(finding).collect::<Result<Vec<_>>>()?,
            created_at: ts(&row, "created_at_ms")?,
        }))
    })())
}

/// Whether a charger is covered by one kind of policy at an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cover {
    pub kind: PolicyKind,
    /// The policy in force with the latest end, if any.
    pub policy: Option<Policy>,
}

impl Store {
    /// Records an insurance policy of a charger. NotFound (charger), Invalid (end, coverage),
    /// Conflict (same insurer and number).
    pub async fn add_policy(
        &self,
        charger_id: &str,
        policy: NewPolicy,
        now: Timestamp,
    ) -> Result<Policy> {
        self.write_boxed(UpkeepOp::AddPolicy {
            charger_id: charger_id.to_owned(),
            policy,
            now,
        })
        .await
    }

    /// A charger's policies, latest end first.
    pub async fn list_policies(&self, charger_id: &str) -> Result<Vec<Policy>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {POLICY_COLUMNS} FROM insurance_policies WHERE charger_id = $1 \
             ORDER BY end_ms DESC, id DESC"
        )))
        .bind(charger_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(policy).collect()
    }

    /// For each kind, the policy in force at `at` that runs longest (None: not covered).
    pub async fn cover(&self, charger_id: &str, at: Timestamp) -> Result<Vec<Cover>> {
        let policies = self.list_policies(charger_id).await?;
        Ok(PolicyKind::ALL
            .into_iter()
            .map(|kind| Cover {
                kind,
                policy: policies
                    .iter()
                    .find(|p| p.policy.kind == kind && p.policy.start <= at && at < p.policy.end)
                    .cloned(),
            })
            .collect())
    }

    pub async fn report_fault(
        &self,
        charger_id: &str,
        connector_id: Option<i32>,
        reported_by: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<FaultReport> {
        self.write_boxed(UpkeepOp::ReportFault {
            charger_id: charger_id.to_owned(),
            connector_id,
            reported_by: reported_by.to_owned(),
            description: description.to_owned(),
            now,
        })
        .await
    }

    pub async fn resolve_fault(
        &self,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<FaultReport> {
        self.write_boxed(UpkeepOp::ResolveFault {
            id,
            resolution: resolution.to_owned(),
            now,
        })
        .await
    }

    pub async fn get_fault(&self, id: i64) -> Result<Option<FaultReport>> {
        let mut conn = self.pool().acquire().await?;
        load_one(
            &mut conn,
            format!("SELECT {FAULT_COLUMNS} FROM fault_reports WHERE id = $1"),
            id,
            fault,
        )
        .await?
    }

    /// People's fault reports of a charger, newest first.
    pub async fn list_faults(&self, charger_id: &str) -> Result<Vec<FaultReport>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FAULT_COLUMNS} FROM fault_reports WHERE charger_id = $1 ORDER BY id DESC"
        )))
        .bind(charger_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(fault).collect()
    }

    /// Records an inspection round with its findings (all or nothing).
    pub async fn add_inspection(
        &self,
        community_id: &str,
        inspector: &str,
        at: Timestamp,
        notes: Option<String>,
        findings: Vec<NewFinding>,
        now: Timestamp,
    ) -> Result<Inspection> {
        self.write_boxed(UpkeepOp::AddInspection {
            community_id: community_id.to_owned(),
            inspector: inspector.to_owned(),
            at,
            notes,
            findings,
            now,
        })
        .await
    }

    /// A community's inspection rounds, newest first.
    pub async fn list_inspections(&self, community_id: &str) -> Result<Vec<Inspection>> {
        let mut conn = self.pool().acquire().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM inspections WHERE community_id = $1 ORDER BY at_ms DESC, id DESC",
        )
        .bind(community_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(i) = load_inspection(&mut conn, id).await?? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// A finding and the community of its inspection.
    pub async fn get_finding(&self, id: i64) -> Result<Option<(Finding, String)>> {
        let mut conn = self.pool().acquire().await?;
        let Some(f) = load_one(
            &mut conn,
            format!("SELECT {FINDING_COLUMNS} FROM inspection_findings WHERE id = $1"),
            id,
            finding,
        )
        .await??
        else {
            return Ok(None);
        };
        let community: String =
            sqlx::query_scalar("SELECT community_id FROM inspections WHERE id = $1")
                .bind(f.inspection_id)
                .fetch_one(&mut *conn)
                .await?;
        Ok(Some((f, community)))
    }

    /// Adds a follow-up note to a finding, closing it when `done`.
    pub async fn follow_up_finding(
        &self,
        id: i64,
        note: &str,
        done: bool,
        now: Timestamp,
    ) -> Result<Finding> {
        self.write_boxed(UpkeepOp::FollowUp {
            id,
            note: note.to_owned(),
            done,
            now,
        })
        .await
    }
}
