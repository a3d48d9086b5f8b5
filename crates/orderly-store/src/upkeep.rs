//! Insurance and upkeep (migration 0005): insurance policies per charger and the cover they
//! give at an instant, fault reports from people, and inspection rounds with findings and their
//! follow-up. Like the registry, every change is one writer operation that validates first and
//! emits its `registry_events` entry in the same commit.

use std::pin::Pin;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::dynop::{
    boxed, check, corrupt, dyn_op, found, invalid, load_one, require_charger, require_community,
    string_enum,
};
use crate::ops::{Applied, DynOp, take_ids};
use crate::registry::emit;
use crate::rows::{get, ms, opt_ms, opt_ts, ts};
use crate::{Result, Store, StoreError};

string_enum!(
    /// Product liability (the manufacturer's) or charging-safety liability (the owner's or
    /// operator's): a charger needs both to be covered.
    PolicyKind, "kind" {
        ProductLiability = "product_liability",
        ChargingSafety = "charging_safety",
    }
);

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

dyn_op!(UpkeepOp);

const POLICY_COLUMNS: &str = "id, charger_id, kind, insurer, number, holder, coverage_cny, \
    start_ms, end_ms, created_at_ms";

fn policy(row: &AnyRow) -> Result<Policy> {
    Ok(Policy {
        id: get(row, "id")?,
        charger_id: get(row, "charger_id")?,
        policy: NewPolicy {
            kind: get::<String>(row, "kind")?.parse().map_err(corrupt)?,
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

/// Emits a charger's registry event in the charger's community.
async fn emit_for_charger(
    conn: &mut AnyConnection,
    now: Timestamp,
    kind: &str,
    charger_id: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let community = charger_community(conn, charger_id).await?;
    emit(
        conn,
        now,
        kind,
        Some(charger_id),
        community.as_deref(),
        payload,
    )
    .await?;
    Ok(())
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

impl UpkeepOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            UpkeepOp::AddPolicy {
                charger_id,
                policy: p,
                now,
            } => {
                check!(require_charger(conn, charger_id).await);
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
                emit_for_charger(
                    conn,
                    *now,
                    "charger.insurance_added",
                    charger_id,
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
                check!(require_charger(conn, charger_id).await);
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
                emit_for_charger(
                    conn,
                    *now,
                    "charger.fault_reported",
                    charger_id,
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
                emit_for_charger(
                    conn,
                    *now,
                    "charger.fault_resolved",
                    &old.charger_id,
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
                check!(require_community(conn, community_id).await);
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
            .iter()
            .map(|&kind| Cover {
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

// ----- insurance alerts -----------------------------------------------------------------------

/// What the alert rules need to know of one charger in service.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargerInsurance {
    pub charger_id: String,
    pub community_id: Option<String>,
    pub owner: Option<String>,
    pub policies: Vec<Policy>,
}

/// How many days before its end a policy is announced as expiring.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The insurance notifications due at `now` (sans IO: the rules, given the chargers in service
/// and their policies):
///
/// - `insurance.expiring` for every policy in force whose end is within `warn_days`, unless a
///   policy of the same kind for that charger takes over at or before its end and runs past it
///   (the cover continues). Dedupe key per policy: one alert per policy, however often run.
/// - `insurance.uncovered` for every kind with no policy in force. Dedupe key per charger, kind
///   and UTC day: reminded once a day until covered.
///
/// Recipient: the charger's owner (None: the community's staff read it through the community).
pub fn insurance_alerts(
    chargers: &[ChargerInsurance],
    now: Timestamp,
    warn_days: i64,
) -> Vec<crate::NewNotification> {
    let horizon = now.saturating_add(SignedDuration::from_hours(24 * warn_days.max(0)));
    let horizon = horizon.unwrap_or(now);
    let day = now.strftime("%Y-%m-%d").to_string();
    let mut out = Vec::new();
    for c in chargers {
        let base = |kind: &str, message: String| {
            let mut n = crate::NewNotification::new(kind, message);
            n.recipient = c.owner.clone();
            n.community_id = c.community_id.clone();
            n.charger_id = Some(c.charger_id.clone());
            n
        };
        for &kind in PolicyKind::ALL {
            let of_kind: Vec<&Policy> = c
                .policies
                .iter()
                .filter(|p| p.policy.kind == kind)
                .collect();
            let in_force: Vec<&&Policy> = of_kind
                .iter()
                .filter(|p| p.policy.start <= now && now < p.policy.end)
                .collect();
            if in_force.is_empty() {
                let mut n = base(
                    "insurance.uncovered",
                    format!(
                        "Charger {} has no {} insurance in force.",
                        c.charger_id,
                        kind.as_str().replace('_', " ")
                    ),
                );
                n.data = json!({ "charger": c.charger_id, "kind": kind.as_str() });
                n.dedupe_key = Some(format!(
                    "insurance.uncovered:{}:{}:{day}",
                    c.charger_id,
                    kind.as_str()
                ));
                out.push(n);
                continue;
            }
            for p in in_force {
                let end = p.policy.end;
                if end > horizon {
                    continue;
                }
                let continued = of_kind
                    .iter()
                    .any(|q| q.id != p.id && q.policy.start <= end && q.policy.end > end);
                if continued {
                    continue;
                }
                let days_left = end.duration_since(now).as_secs().div_euclid(86_400);
                let mut n = base(
                    "insurance.expiring",
                    format!(
                        "Policy {} of {} ({}) for charger {} ends on {} ({days_left} days) and \
                         no policy continues the cover.",
                        p.policy.number,
                        p.policy.insurer,
                        kind.as_str().replace('_', " "),
                        c.charger_id,
                        end.strftime("%Y-%m-%d"),
                    ),
                );
                n.data = json!({
                    "charger": c.charger_id, "kind": kind.as_str(), "policy": p.id,
                    "number": p.policy.number, "insurer": p.policy.insurer,
                    "end": end.to_string(), "days_left": days_left,
                });
                n.dedupe_key = Some(format!("insurance.expiring:{}", p.id));
                out.push(n);
            }
        }
    }
    out
}

#[derive(Debug)]
struct EnqueueAlerts {
    alerts: Vec<crate::NewNotification>,
    now: Timestamp,
}

impl DynOp for EnqueueAlerts {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(async move {
            let mut enqueued = 0usize;
            for n in &self.alerts {
                if crate::notifications::enqueue(conn, n, self.now)
                    .await?
                    .is_some()
                {
                    enqueued += 1;
                }
            }
            boxed(enqueued)
        })
    }
}

impl Store {
    /// The chargers in service (installed and later, not decommissioned) with their policies.
    pub async fn chargers_insurance(&self) -> Result<Vec<ChargerInsurance>> {
        let chargers: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT charger_id, community_id, owner_user_id FROM charger_registry \
             WHERE lifecycle NOT IN ('planned', 'decommissioned') ORDER BY charger_id",
        )
        .fetch_all(self.pool())
        .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {POLICY_COLUMNS} FROM insurance_policies ORDER BY charger_id, end_ms DESC, id"
        )))
        .fetch_all(self.pool())
        .await?;
        let mut policies: std::collections::HashMap<String, Vec<Policy>> =
            std::collections::HashMap::new();
        for row in &rows {
            let p = policy(row)?;
            policies.entry(p.charger_id.clone()).or_default().push(p);
        }
        Ok(chargers
            .into_iter()
            .map(|(charger_id, community_id, owner)| ChargerInsurance {
                policies: policies.remove(&charger_id).unwrap_or_default(),
                charger_id,
                community_id,
                owner,
            })
            .collect())
    }

    /// Enqueues the insurance notifications due at `now` ([`insurance_alerts`]); those told
    /// before (same dedupe key) are skipped. Returns how many were enqueued.
    pub async fn enqueue_insurance_alerts(&self, now: Timestamp) -> Result<usize> {
        let due = insurance_alerts(&self.chargers_insurance().await?, now, EXPIRY_WARNING_DAYS);
        // Most are known after the first run: ask the pool which keys are new, so the writer
        // only sees those (it checks again, in its transaction).
        let mut fresh = Vec::new();
        for n in due {
            let seen = match &n.dedupe_key {
                Some(key) => {
                    sqlx::query("SELECT 1 AS one FROM notifications WHERE dedupe_key = $1")
                        .bind(key.as_str())
                        .fetch_optional(self.pool())
                        .await?
                        .is_some()
                }
                None => false,
            };
            if !seen {
                fresh.push(n);
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        self.write_boxed(EnqueueAlerts { alerts: fresh, now }).await
    }
}

#[cfg(test)]
mod alert_tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pol(id: i64, kind: PolicyKind, start: &str, end: &str) -> Policy {
        Policy {
            id,
            charger_id: "CP1".into(),
            policy: NewPolicy {
                kind,
                insurer: "PICC".into(),
                number: format!("N{id}"),
                holder: "alice".into(),
                coverage_cny: 1e6,
                start: t(start),
                end: t(end),
            },
            created_at: t("2026-01-01T00:00:00Z"),
        }
    }

    fn charger(policies: Vec<Policy>) -> ChargerInsurance {
        ChargerInsurance {
            charger_id: "CP1".into(),
            community_id: Some("C1".into()),
            owner: Some("alice".into()),
            policies,
        }
    }

    fn kinds(alerts: &[crate::NewNotification]) -> Vec<(String, String)> {
        alerts
            .iter()
            .map(|n| (n.kind.clone(), n.dedupe_key.clone().unwrap()))
            .collect()
    }

    #[test]
    fn expiring_within_thirty_days_unless_a_later_policy_continues() {
        let now = t("2026-11-26T12:00:00Z");
        use PolicyKind::*;
        // Product liability ends in 10 days with nothing after it; charging safety ends in 10
        // days but a renewal starts on its end day.
        let c = charger(vec![
            pol(
                1,
                ProductLiability,
                "2025-12-06T00:00:00Z",
                "2026-12-06T00:00:00Z",
            ),
            pol(
                2,
                ChargingSafety,
                "2025-12-06T00:00:00Z",
                "2026-12-06T00:00:00Z",
            ),
            pol(
                3,
                ChargingSafety,
                "2026-12-06T00:00:00Z",
                "2027-12-06T00:00:00Z",
            ),
        ]);
        let alerts = insurance_alerts(&[c], now, 30);
        assert_eq!(
            kinds(&alerts),
            [(
                "insurance.expiring".to_owned(),
                "insurance.expiring:1".to_owned()
            )]
        );
        assert_eq!(alerts[0].recipient.as_deref(), Some("alice"));
        assert_eq!(alerts[0].community_id.as_deref(), Some("C1"));
        assert_eq!(alerts[0].data["days_left"], 9);
    }

    #[test]
    fn a_gap_between_policies_does_not_continue_the_cover_and_far_ends_are_quiet() {
        let now = t("2026-11-26T12:00:00Z");
        use PolicyKind::*;
        let c = charger(vec![
            pol(
                1,
                ProductLiability,
                "2026-01-01T00:00:00Z",
                "2026-12-10T00:00:00Z",
            ),
            // Starts a day after the end: a gap, so policy 1 is announced.
            pol(
                2,
                ProductLiability,
                "2026-12-11T00:00:00Z",
                "2027-12-10T00:00:00Z",
            ),
            // Ends in 40 days: not yet.
            pol(
                3,
                ChargingSafety,
                "2026-01-05T00:00:00Z",
                "2027-01-05T00:00:00Z",
            ),
        ]);
        let alerts = insurance_alerts(&[c], now, 30);
        assert_eq!(
            kinds(&alerts),
            [(
                "insurance.expiring".to_owned(),
                "insurance.expiring:1".to_owned()
            )]
        );
    }

    #[test]
    fn uncovered_kinds_are_reminded_once_a_day_per_charger_and_kind() {
        use PolicyKind::*;
        // Only an expired product policy and a future charging-safety one: neither in force.
        let c = charger(vec![
            pol(
                1,
                ProductLiability,
                "2025-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
            pol(
                2,
                ChargingSafety,
                "2026-12-01T00:00:00Z",
                "2027-12-01T00:00:00Z",
            ),
        ]);
        let morning = insurance_alerts(std::slice::from_ref(&c), t("2026-11-26T08:00:00Z"), 30);
        let evening = insurance_alerts(std::slice::from_ref(&c), t("2026-11-26T20:00:00Z"), 30);
        let next_day = insurance_alerts(&[c], t("2026-11-27T08:00:00Z"), 30);
        assert_eq!(
            kinds(&morning),
            [
                (
                    "insurance.uncovered".to_owned(),
                    "insurance.uncovered:CP1:product_liability:2026-11-26".to_owned()
                ),
                (
                    "insurance.uncovered".to_owned(),
                    "insurance.uncovered:CP1:charging_safety:2026-11-26".to_owned()
                ),
            ]
        );
        assert_eq!(kinds(&morning), kinds(&evening));
        assert_ne!(kinds(&morning), kinds(&next_day));
    }
}
