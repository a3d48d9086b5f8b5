//! Write operations, as values the group-commit writer can apply (and re-apply alone after a
//! failed batch).
//!
//! Contract of [`Op::apply`]: the outer `Err` is a database failure and aborts the whole batch;
//! the inner `Err` is a decision about this operation only (conflict, not found, invalid) and is
//! taken *before* the operation writes anything, so the rest of the batch commits unaffected.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::StoreError;
use crate::rows::{self, ms, opt_ms};
use crate::types::*;

/// Outcome handed back to the caller; one variant per kind of answer.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done,
    Flag(bool),
    Registration(Registration),
    ChargerStatus(ChargerStatus),
    Start(StartOutcome),
    Stop(StopOutcome),
    Meter(MeterValuesOutcome),
    Id(i64),
    /// The answer of an [`Op::Dyn`] operation, downcast by the module that defined it.
    Boxed(Box<dyn std::any::Any + Send>),
}

pub(crate) type OpResult = Result<Outcome, StoreError>;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    RegisterCharger {
        id: ChargePointId,
        password_hash: Option<String>,
        description: Option<String>,
        now: Timestamp,
    },
    EnsurePendingCharger {
        id: ChargePointId,
        now: Timestamp,
    },
    RemoveCharger {
        id: ChargePointId,
    },
    SetChargerPassword {
        id: ChargePointId,
        password_hash: Option<String>,
    },
    RecordBoot {
        id: ChargePointId,
        info: BootInfo,
        at: Timestamp,
    },
    RecordSeen {
        id: ChargePointId,
        at: Timestamp,
    },
    RecordFirmwareStatus {
        id: ChargePointId,
        status: String,
        at: Timestamp,
    },
    RecordDiagnosticsStatus {
        id: ChargePointId,
        status: String,
        at: Timestamp,
    },
    RecordStatus {
        id: ChargePointId,
        report: StatusReport,
        received_at: Timestamp,
    },
    AddIdTag {
        record: IdTagRecord,
        now: Timestamp,
    },
    PutIdTag {
        record: IdTagRecord,
        now: Timestamp,
    },
    RemoveIdTag {
        tag: IdTag,
    },
    StartTransaction {
        start: StartTransaction,
        now: Timestamp,
    },
    StopTransaction {
        stop: StopTransaction,
        now: Timestamp,
    },
    MeterValues {
        report: MeterValuesReport,
        received_at: Timestamp,
    },
    AppendAudit(NewAuditEntry),
    PutAdminToken {
        name: String,
        token_hash: String,
        now: Timestamp,
    },
    InsertBootstrapToken {
        name: String,
        token_hash: String,
        now: Timestamp,
    },
    RevokeAdminToken {
        name: String,
    },
    /// The closed loop's records (communities, wishes, grid commands…), see `closed_loop`.
    Loop(Box<crate::closed_loop::LoopOp>),
    /// An operation defined in another module (users, registry), so those need no variant here.
    Dyn(std::sync::Arc<dyn DynOp>),
}

/// A write operation defined outside this file. Same contract as [`Op::apply`]: outer `Err`
/// aborts the batch, inner `Err` is decided before anything is written; it may be re-applied
/// alone after a failed batch.
pub(crate) trait DynOp: std::fmt::Debug + Send + Sync {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Applied> + Send + 'c>>;
}

pub(crate) type Applied = Result<OpResult, sqlx::Error>;

/// Last-seen times collected over one database transaction, written by [`Touches::flush`] in one
/// statement per 400 chargers instead of one per message.
#[derive(Default)]
pub(crate) struct Touches(HashMap<String, i64>);

impl Touches {
    fn add(&mut self, id: &ChargePointId, at: Timestamp) {
        let at = ms(at);
        let slot = self.0.entry(id.as_str().to_owned()).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// Moves each charger's last_seen forward (never back) and returns the ids that exist.
    pub(crate) async fn flush(
        self,
        conn: &mut AnyConnection,
    ) -> Result<HashSet<String>, sqlx::Error> {
        let all: Vec<(String, i64)> = self.0.into_iter().collect();
        let mut existing = HashSet::with_capacity(all.len());
        for chunk in all.chunks(400) {
            // VALUES columns are named column1, column2 on both SQLite and PostgreSQL. Every
            // existing charger matches (CASE keeps a newer time), so RETURNING lists them all.
            let mut sql = String::from(
                "UPDATE chargers SET last_seen_at_ms = CASE WHEN chargers.last_seen_at_ms IS NULL \
                 OR chargers.last_seen_at_ms < v.column2 THEN v.column2 \
                 ELSE chargers.last_seen_at_ms END FROM (VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            }
            sql.push_str(") AS v WHERE chargers.id = v.column1 RETURNING chargers.id");
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for (id, at) in chunk {
                q = q.bind(id.as_str()).bind(*at);
            }
            existing.extend(q.fetch_all(&mut *conn).await?);
        }
        Ok(existing)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Op {
    /// For a heartbeat whose charger does not exist, the NotFound answer (decided after the
    /// batch's last-seen update, which is what looks the charger up).
    pub(crate) fn unseen_charger(&self, existing: &HashSet<String>) -> Option<StoreError> {
        match self {
            Op::RecordSeen { id, .. } if !existing.contains(id.as_str()) => {
                Some(StoreError::NotFound(format!("charger {id}")))
            }
            _ => None,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Takes `n` consecutive ids from a named sequence; returns the first. Runs inside the batch's
/// transaction, so ids are never handed out twice, on either backend, even across processes.
pub(crate) async fn take_ids(
    conn: &mut AnyConnection,
    name: &'static str,
    n: i64,
) -> Result<i64, sqlx::Error> {
    let end: i64 = sqlx::query_scalar(
        "UPDATE id_sequences SET next_id = next_id + $1 WHERE name = $2 RETURNING next_id",
    )
    .bind(n)
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    Ok(end - n)
}

impl Op {
    /// Applies the op; on success, notes in `touches` that its charger was seen.
    pub(crate) async fn apply(&self, conn: &mut AnyConnection, touches: &mut Touches) -> Applied {
        let applied = self.apply_only(conn).await?;
        if applied.is_ok()
            && let Some((id, at)) = self.charger_seen()
        {
            touches.add(id, at);
        }
        Ok(applied)
    }

    /// The charger whose message this op records, and when it was received: any message shows
    /// the charger is alive (a charger busy charging may send MeterValues and no Heartbeat).
    fn charger_seen(&self) -> Option<(&ChargePointId, Timestamp)> {
        match self {
            Op::RecordSeen { id, at }
            | Op::RecordFirmwareStatus { id, at, .. }
            | Op::RecordDiagnosticsStatus { id, at, .. } => Some((id, *at)),
            Op::RecordStatus {
                id, received_at, ..
            } => Some((id, *received_at)),
            Op::StartTransaction { start, now } => Some((&start.charger_id, *now)),
            Op::StopTransaction { stop, now } => Some((&stop.charger_id, *now)),
            Op::MeterValues {
                report,
                received_at,
            } => Some((&report.charger_id, *received_at)),
            _ => None,
        }
    }

    async fn apply_only(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            Op::RegisterCharger {
                id,
                password_hash,
                description,
                now,
            } => register_charger(conn, id, password_hash, description, *now).await,
            Op::EnsurePendingCharger { id, now } => {
                sqlx::query(
                    "INSERT INTO chargers (id, status, created_at_ms) VALUES ($1, 'pending', $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let status: String =
                    sqlx::query_scalar("SELECT status FROM chargers WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_one(&mut *conn)
                        .await?;
                Ok(status.parse().map(Outcome::ChargerStatus))
            }
            Op::RemoveCharger { id } => {
                let r = sqlx::query("DELETE FROM chargers WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
            Op::SetChargerPassword { id, password_hash } => {
                let r = sqlx::query("UPDATE chargers SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash.as_deref())
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(found(r.rows_affected(), || format!("charger {id}")))
            }
            Op::RecordBoot { id, info, at } => {
                let r = sqlx::query(
                    "UPDATE chargers SET vendor = $1, model = $2, serial_number = $3, \
                     charge_box_serial_number = $4, firmware_version = $5, iccid = $6, imsi = $7, \
                     meter_type = $8, meter_serial_number = $9, last_boot_at_ms = $10, \
                     last_seen_at_ms = $11 WHERE id = $12",
                )
                .bind(info.vendor.as_str())
                .bind(info.model.as_str())
                .bind(info.serial_number.as_deref())
                .bind(info.charge_box_serial_number.as_deref())
                .bind(info.firmware_version.as_deref())
                .bind(info.iccid.as_deref())
                .bind(info.imsi.as_deref())
                .bind(info.meter_type.as_deref())
                .bind(info.meter_serial_number.as_deref())
                .bind(ms(*at))
                .bind(ms(*at))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(found(r.rows_affected(), || format!("charger {id}")))
            }
            // Written by `Touches::flush` with every other last-seen of the batch; the writer
            // turns the answer into NotFound if the charger turned out not to exist.
            Op::RecordSeen { .. } => Ok(Ok(Outcome::Done)),
            Op::RecordFirmwareStatus { id, status, at } => {
                let r = sqlx::query(
                    "UPDATE chargers SET firmware_status = $1, firmware_status_at_ms = $2 WHERE id = $3",
                )
                .bind(status.as_str())
                .bind(ms(*at))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(found(r.rows_affected(), || format!("charger {id}")))
            }
            Op::RecordDiagnosticsStatus { id, status, at } => {
                let r = sqlx::query(
                    "UPDATE chargers SET diagnostics_status = $1, diagnostics_status_at_ms = $2 \
                     WHERE id = $3",
                )
                .bind(status.as_str())
                .bind(ms(*at))
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(found(r.rows_affected(), || format!("charger {id}")))
            }
            Op::RecordStatus {
                id,
                report,
                received_at,
            } => record_status(conn, id, report, *received_at).await,
            Op::AddIdTag { record, now } => {
                let r = sqlx::query(
                    "INSERT INTO id_tags (tag, status, expiry_ms, parent_tag, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tag) DO NOTHING",
                )
                .bind(record.id_tag.as_str())
                .bind(record.status.as_str())
                .bind(opt_ms(record.expiry_date))
                .bind(record.parent_id_tag.as_ref().map(IdTag::as_str))
                .bind(ms(*now))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(if r.rows_affected() == 0 {
                    Err(StoreError::Conflict(format!("id tag {}", record.id_tag)))
                } else {
                    Ok(Outcome::Done)
                })
            }
            Op::PutIdTag { record, now } => {
                let r = sqlx::query(
                    "UPDATE id_tags SET status = $1, expiry_ms = $2, parent_tag = $3, updated_at_ms = $4 \
                     WHERE tag = $5",
                )
                .bind(record.status.as_str())
                .bind(opt_ms(record.expiry_date))
                .bind(record.parent_id_tag.as_ref().map(IdTag::as_str))
                .bind(ms(*now))
                .bind(record.id_tag.as_str())
                .execute(&mut *conn)
                .await?;
                if r.rows_affected() > 0 {
                    return Ok(Ok(Outcome::Flag(false)));
                }
                sqlx::query(
                    "INSERT INTO id_tags (tag, status, expiry_ms, parent_tag, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(record.id_tag.as_str())
                .bind(record.status.as_str())
                .bind(opt_ms(record.expiry_date))
                .bind(record.parent_id_tag.as_ref().map(IdTag::as_str))
                .bind(ms(*now))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Flag(true)))
            }
            Op::RemoveIdTag { tag } => {
                let r = sqlx::query("DELETE FROM id_tags WHERE tag = $1")
                    .bind(tag.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
            Op::Loop(op) => op.apply(conn).await,
            Op::Dyn(op) => op.apply(conn).await,
            Op::StartTransaction { start, now } => start_transaction(conn, start, *now).await,
            Op::StopTransaction { stop, now } => stop_transaction(conn, stop, *now).await,
            Op::MeterValues {
                report,
                received_at,
            } => {
                if report.connector_id < 0 {
                    return Ok(Err(invalid("connectorId", "must be 0 or more")));
                }
                let n = insert_samples(
                    conn,
                    &report.charger_id,
                    report.connector_id,
                    report.transaction_id,
                    &report.meter_values,
                    *received_at,
                )
                .await?;
                Ok(Ok(Outcome::Meter(n)))
            }
            Op::AppendAudit(e) => {
                let id = take_ids(conn, "audit_log", 1).await?;
                sqlx::query(
                    "INSERT INTO audit_log (id, at_ms, actor, action, target, request, outcome) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id)
                .bind(ms(e.at))
                .bind(e.actor.as_str())
                .bind(e.action.as_str())
                .bind(e.target.as_deref())
                .bind(e.request.to_string())
                .bind(e.outcome.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Id(id)))
            }
            Op::PutAdminToken {
                name,
                token_hash,
                now,
            } => {
                // Replace by name (a configured token that changed) and by hash (the same token
                // configured under a new name), so the insert cannot conflict.
                sqlx::query("DELETE FROM admin_tokens WHERE name = $1 OR token_hash = $2")
                    .bind(name.as_str())
                    .bind(token_hash.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO admin_tokens (token_hash, name, created_at_ms) VALUES ($1, $2, $3)",
                )
                .bind(token_hash.as_str())
                .bind(name.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Done))
            }
            Op::InsertBootstrapToken {
                name,
                token_hash,
                now,
            } => {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
                    .fetch_one(&mut *conn)
                    .await?;
                if count > 0 {
                    return Ok(Ok(Outcome::Flag(false)));
                }
                sqlx::query(
                    "INSERT INTO admin_tokens (token_hash, name, created_at_ms) VALUES ($1, $2, $3)",
                )
                .bind(token_hash.as_str())
                .bind(name.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Flag(true)))
            }
            Op::RevokeAdminToken { name } => {
                let r = sqlx::query("DELETE FROM admin_tokens WHERE name = $1")
                    .bind(name.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
        }
    }
}

fn found(rows: u64, what: impl FnOnce() -> String) -> OpResult {
    if rows > 0 {
        Ok(Outcome::Done)
    } else {
        Err(StoreError::NotFound(what()))
    }
}

async fn register_charger(
    conn: &mut AnyConnection,
    id: &ChargePointId,
    password_hash: &Option<String>,
    description: &Option<String>,
    now: Timestamp,
) -> Applied {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM chargers WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match status.as_deref() {
        None => {
            sqlx::query(
                "INSERT INTO chargers (id, password_hash, status, description, created_at_ms, \
                 registered_at_ms) VALUES ($1, $2, 'registered', $3, $4, $5)",
            )
            .bind(id.as_str())
            .bind(password_hash.as_deref())
            .bind(description.as_deref())
            .bind(ms(now))
            .bind(ms(now))
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Registration(Registration::Created)))
        }
        Some("pending") => {
            sqlx::query(
                "UPDATE chargers SET status = 'registered', password_hash = $1, \
                 description = COALESCE($2, description), registered_at_ms = $3 WHERE id = $4",
            )
            .bind(password_hash.as_deref())
            .bind(description.as_deref())
            .bind(ms(now))
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Registration(Registration::PromotedFromPending)))
        }
        Some(_) => Ok(Err(StoreError::Conflict(format!("charger {id}")))),
    }
}

async fn record_status(
    conn: &mut AnyConnection,
    id: &ChargePointId,
    report: &StatusReport,
    received_at: Timestamp,
) -> Applied {
    if report.connector_id < 0 {
        return Ok(Err(invalid("connectorId", "must be 0 or more")));
    }
    let exists = sqlx::query("SELECT 1 AS one FROM chargers WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !exists {
        return Ok(Err(StoreError::NotFound(format!("charger {id}"))));
    }
    let at = ms(report.timestamp.unwrap_or(received_at));
    let hid = take_ids(conn, "status_history", 1).await?;
    sqlx::query(
        "INSERT INTO status_history (id, charger_id, connector_id, status, error_code, info, \
         vendor_id, vendor_error_code, timestamp_ms, received_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(hid)
    .bind(id.as_str())
    .bind(i64::from(report.connector_id))
    .bind(report.status.as_str())
    .bind(report.error_code.as_str())
    .bind(report.info.as_deref())
    .bind(report.vendor_id.as_deref())
    .bind(report.vendor_error_code.as_deref())
    .bind(at)
    .bind(ms(received_at))
    .execute(&mut *conn)
    .await?;
    // A replayed, older notification goes to history but must not overwrite a newer state.
    sqlx::query(
        "INSERT INTO connectors (charger_id, connector_id, status, error_code, info, vendor_id, \
         vendor_error_code, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status, \
         error_code = excluded.error_code, info = excluded.info, vendor_id = excluded.vendor_id, \
         vendor_error_code = excluded.vendor_error_code, updated_at_ms = excluded.updated_at_ms \
         WHERE connectors.updated_at_ms <= excluded.updated_at_ms",
    )
    .bind(id.as_str())
    .bind(i64::from(report.connector_id))
    .bind(report.status.as_str())
    .bind(report.error_code.as_str())
    .bind(report.info.as_deref())
    .bind(report.vendor_id.as_deref())
    .bind(report.vendor_error_code.as_deref())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(Outcome::Done))
}

async fn start_transaction(
    conn: &mut AnyConnection,
    start: &StartTransaction,
    now: Timestamp,
) -> Applied {
    if start.connector_id < 1 {
        return Ok(Err(invalid("connectorId", "must be 1 or more")));
    }
    let existing = sqlx::query(
        "SELECT id, id_tag_status FROM transactions WHERE charger_id = $1 AND connector_id = $2 \
         AND id_tag = $3 AND meter_start_wh = $4 AND started_at_ms = $5",
    )
    .bind(start.charger_id.as_str())
    .bind(i64::from(start.connector_id))
    .bind(start.id_tag.as_str())
    .bind(start.meter_start_wh)
    .bind(ms(start.timestamp))
    .fetch_optional(&mut *conn)
    .await?;
    let current = match rows::authorize(conn, &start.id_tag, now).await? {
        Ok(info) => info,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(row) = existing {
        // A replay: same id, and the status the charger was first told, so its local state and
        // ours agree whatever happened to the tag since.
        let answer = (|| {
            let id = rows::int32(&row, "id")?;
            let status: Option<String> = rows::get(&row, "id_tag_status")?;
            let status = match status {
                Some(s) => rows::auth_status("id_tag_status", &s)?,
                None => current.status,
            };
            Ok(StartOutcome {
                transaction_id: TransactionId(id),
                id_tag_info: IdTagInfo { status, ..current },
                replayed: true,
            })
        })();
        return Ok(answer.map(Outcome::Start));
    }
    // Sharing (clause 七): on a privately owned charger only the owner's tags and a booking's
    // tag during its booking are accepted; decided here, in the write that records the start,
    // so a booking cannot start two transactions.
    let mut current = current;
    let sharing = if current.status == AuthorizationStatus::Accepted {
        crate::sharing::gate(
            conn,
            start.charger_id.as_str(),
            start.id_tag.as_str(),
            now,
            crate::sharing::Purpose::StartTransaction,
        )
        .await?
    } else {
        None
    };
    if sharing == Some(crate::sharing::Decision::Refuse) {
        current.status = AuthorizationStatus::Invalid;
    }
    let id = take_ids(conn, "transactions", 1).await?;
    let Ok(id32) = i32::try_from(id) else {
        return Ok(Err(invalid(
            "transactionId",
            "the id sequence passed i32::MAX",
        )));
    };
    sqlx::query(
        "INSERT INTO transactions (id, charger_id, connector_id, id_tag, id_tag_status, \
         meter_start_wh, started_at_ms, reservation_id, origin, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'start', $9)",
    )
    .bind(id)
    .bind(start.charger_id.as_str())
    .bind(i64::from(start.connector_id))
    .bind(start.id_tag.as_str())
    .bind(current.status.as_str())
    .bind(start.meter_start_wh)
    .bind(ms(start.timestamp))
    .bind(start.reservation_id.map(i64::from))
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    if let Some(decision) = &sharing {
        crate::sharing::started(conn, decision, id, now).await?;
    }
    Ok(Ok(Outcome::Start(StartOutcome {
        transaction_id: TransactionId(id32),
        id_tag_info: current,
        replayed: false,
    })))
}

/// The columns of a stored transaction that a stop needs.
struct StopTarget {
    id: i64,
    owner: String,
    connector_id: Option<i32>,
    meter_start: Option<i64>,
    meter_stop: Option<i64>,
    stopped_at: Option<i64>,
}

async fn find_stop_target(
    conn: &mut AnyConnection,
    sql: &'static str,
    binds: (i64, Option<&str>),
) -> Result<Result<Option<StopTarget>, StoreError>, sqlx::Error> {
    let mut q = sqlx::query(sql).bind(binds.0);
    if let Some(charger) = binds.1 {
        q = q.bind(charger);
    }
    let Some(row) = q.fetch_optional(&mut *conn).await? else {
        return Ok(Ok(None));
    };
    Ok((|| {
        Ok(Some(StopTarget {
            id: rows::get(&row, "id")?,
            owner: rows::get(&row, "charger_id")?,
            connector_id: rows::opt_int32(&row, "connector_id")?,
            meter_start: rows::get(&row, "meter_start_wh")?,
            meter_stop: rows::get(&row, "meter_stop_wh")?,
            stopped_at: rows::get(&row, "stopped_at_ms")?,
        }))
    })())
}

async fn stop_transaction(
    conn: &mut AnyConnection,
    stop: &StopTransaction,
    now: Timestamp,
) -> Applied {
    let reported = i64::from(stop.transaction_id.0);
    let id_tag_info = match &stop.id_tag {
        Some(tag) => match rows::authorize(conn, tag, now).await? {
            Ok(info) => Some(info),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    let mut target = match find_stop_target(
        conn,
        "SELECT id, charger_id, connector_id, meter_start_wh, meter_stop_wh, stopped_at_ms \
         FROM transactions WHERE id = $1",
        (reported, None),
    )
    .await?
    {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    // The id is another charger's: look for this charger's earlier stop stored under a fresh id.
    let clash = target
        .as_ref()
        .is_some_and(|t| t.owner != stop.charger_id.as_str());
    if clash {
        target = match find_stop_target(
            conn,
            "SELECT id, charger_id, connector_id, meter_start_wh, meter_stop_wh, stopped_at_ms \
             FROM transactions WHERE reported_id = $1 AND charger_id = $2",
            (reported, Some(stop.charger_id.as_str())),
        )
        .await?
        {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
    }
    let (record_id, was_known, already_stopped, connector_id, energy_wh);
    match target {
        Some(t) => {
            record_id = t.id;
            was_known = true;
            already_stopped = t.stopped_at.is_some();
            connector_id = t.connector_id.unwrap_or(0);
            if already_stopped {
                energy_wh = t.meter_stop.zip(t.meter_start).map(|(b, a)| b - a);
            } else {
                sqlx::query(
                    "UPDATE transactions SET meter_stop_wh = $1, stopped_at_ms = $2, \
                     stop_reason = $3, stop_id_tag = $4 WHERE id = $5",
                )
                .bind(stop.meter_stop_wh)
                .bind(ms(stop.timestamp))
                .bind(stop.reason.as_deref())
                .bind(stop.id_tag.as_ref().map(IdTag::as_str))
                .bind(t.id)
                .execute(&mut *conn)
                .await?;
                energy_wh = t.meter_start.map(|a| stop.meter_stop_wh - a);
                // A booking's session is settled in the commit that records its stop.
                crate::sharing::stopped(conn, t.id, now).await?;
            }
        }
        None => {
            // Never seen: keep what the stop tells us, so the session is not lost. Under the
            // charger's own id if it is free, else (clash) under a fresh one.
            record_id = if clash {
                take_ids(conn, "transactions", 1).await?
            } else {
                reported
            };
            if i32::try_from(record_id).is_err() {
                return Ok(Err(invalid(
                    "transactionId",
                    "the id sequence passed i32::MAX",
                )));
            }
            sqlx::query(
                "INSERT INTO transactions (id, charger_id, id_tag, meter_stop_wh, stopped_at_ms, \
                 stop_reason, stop_id_tag, origin, created_at_ms, reported_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'stop', $8, $9)",
            )
            .bind(record_id)
            .bind(stop.charger_id.as_str())
            .bind(stop.id_tag.as_ref().map(IdTag::as_str))
            .bind(stop.meter_stop_wh)
            .bind(ms(stop.timestamp))
            .bind(stop.reason.as_deref())
            .bind(stop.id_tag.as_ref().map(IdTag::as_str))
            .bind(ms(now))
            .bind(clash.then_some(reported))
            .execute(&mut *conn)
            .await?;
            if !clash {
                // Keep the sequence ahead of ids we did not issue, so we never issue this one.
                sqlx::query(
                    "UPDATE id_sequences SET next_id = $1 \
                     WHERE name = 'transactions' AND next_id <= $2",
                )
                .bind(reported + 1)
                .bind(reported)
                .execute(&mut *conn)
                .await?;
            }
            was_known = false;
            already_stopped = false;
            connector_id = 0;
            energy_wh = None;
        }
    }
    // record_id fits i32: it is either the charger's id or was checked above.
    let recorded_as = TransactionId(i32::try_from(record_id).unwrap_or(stop.transaction_id.0));
    insert_samples(
        conn,
        &stop.charger_id,
        connector_id,
        Some(recorded_as),
        &stop.transaction_data,
        now,
    )
    .await?;
    Ok(Ok(Outcome::Stop(StopOutcome {
        id_tag_info,
        was_known,
        already_stopped,
        energy_wh,
        recorded_as,
    })))
}

/// Rows per INSERT statement: 13 parameters each stays far below both backends' limits, and a
/// typical MeterValues (a handful of measurands × phases) becomes one statement.
const SAMPLES_PER_STATEMENT: usize = 40;

/// Inserts sampled values, skipping ones already stored (same charger, connector, time, measurand,
/// phase, location, context).
async fn insert_samples(
    conn: &mut AnyConnection,
    charger: &ChargePointId,
    connector_id: i32,
    transaction_id: Option<TransactionId>,
    values: &[MeterValue],
    received_at: Timestamp,
) -> Result<MeterValuesOutcome, sqlx::Error> {
    let rows: Vec<(i64, &SampledValue)> = values
        .iter()
        .flat_map(|mv| {
            mv.sampled_values
                .iter()
                .map(move |sv| (ms(mv.timestamp), sv))
        })
        .collect();
    let mut out = MeterValuesOutcome::default();
    for chunk in rows.chunks(SAMPLES_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO meter_values (charger_id, connector_id, timestamp_ms, measurand, phase, \
             location, context, transaction_id, unit, format, value_text, value_num, received_at_ms) \
             VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 13;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for k in 1..=13 {
                if k > 1 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", p + k));
            }
            sql.push(')');
        }
        sql.push_str(
            " ON CONFLICT (charger_id, connector_id, timestamp_ms, measurand, phase, location, \
             context) DO NOTHING",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (at, sv) in chunk {
            let format = sv.format.as_deref().unwrap_or("Raw");
            // Only Raw values are numbers; SignedData is an opaque blob that may look numeric.
            let number = (format == "Raw")
                .then(|| sv.value.trim().parse::<f64>().ok())
                .flatten()
                .filter(|v| v.is_finite());
            q = q
                .bind(charger.as_str())
                .bind(i64::from(connector_id))
                .bind(*at)
                .bind(
                    sv.measurand
                        .as_deref()
                        .unwrap_or("Energy.Active.Import.Register"),
                )
                .bind(sv.phase.as_deref().unwrap_or(""))
                .bind(sv.location.as_deref().unwrap_or("Outlet"))
                .bind(sv.context.as_deref().unwrap_or("Sample.Periodic"))
                .bind(transaction_id.map(|t| i64::from(t.0)))
                .bind(sv.unit.as_deref().unwrap_or("Wh"))
                .bind(format)
                .bind(sv.value.as_str())
                .bind(number)
                .bind(ms(received_at));
        }
        let stored = usize::try_from(q.execute(&mut *conn).await?.rows_affected()).unwrap_or(0);
        out.stored += stored;
        out.duplicates += chunk.len() - stored.min(chunk.len());
    }
    Ok(out)
}
