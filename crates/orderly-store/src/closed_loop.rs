//! The closed loop's records (migration 0003): communities and their chargers' electrical facts,
//! residents' wishes (per transaction and per id tag), grid load-control commands with their
//! latest report, and chargers' compliance changes.
//!
//! The store keeps these as plain records (strings, numbers, JSON values for the grid crate's
//! source and report); the server turns them into `orderly_control` / `orderly_grid` types, so
//! this crate stays free of the planning crates. Writes go through the group-commit writer like
//! every other write ([`LoopOp`]), one database transaction each, deciding conflicts before
//! writing anything.

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::ops::{Op, OpResult, Outcome, take_ids};
use crate::rows::{get, ms, opt_ms, opt_ts, ts};
use crate::{Result, Store, StoreError, TransactionId, done, flag, unexpected};

/// A community: one transformer (or feeder) and what the controller needs to plan under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommunityRecord {
    pub id: String,
    pub name: Option<String>,
    pub rating_kva: f64,
    pub power_factor: f64,
    /// 24 values (kW), index = local clock hour.
    pub base_load_kw: Vec<f64>,
    /// IANA time zone, e.g. "Asia/Shanghai".
    pub timezone: String,
    /// 24 values (CNY/kWh), index = local clock hour.
    pub tariff_cny_per_kwh: Vec<f64>,
    pub emergency_price_cny_per_kwh: f64,
    pub max_emergencies: Option<u32>,
    pub default_stay_hours: f64,
    pub default_energy_kwh: f64,
    /// The charger whose meter measures the whole community, if any.
    pub community_meter: Option<ChargePointId>,
    /// Set by the store (ignored on write).
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A charger's electrical facts and the community it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargerElectrical {
    pub charger_id: ChargePointId,
    pub community_id: String,
    /// 1 or 3.
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
    pub min_current_a: f64,
    /// "amperes" or "watts": the unit the charger takes charging-profile limits in.
    pub rate_unit: String,
}

/// What a resident said for one transaction; absent fields are resolved by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WishRecord {
    pub transaction_id: TransactionId,
    pub departure: Option<Timestamp>,
    pub stay_hours: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub target_soc_percent: Option<f64>,
    pub battery_kwh: Option<f64>,
    pub emergency: bool,
    pub updated_at: Timestamp,
}

/// A resident's defaults for the sessions of one id tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WishDefaults {
    pub id_tag: IdTag,
    /// Local clock time "HH:MM" (community time zone).
    pub departure_local: Option<String>,
    pub stay_hours: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub updated_at: Timestamp,
}

/// A finished session of an id tag (for learning its habits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedSession {
    pub transaction_id: TransactionId,
    pub started_at: Timestamp,
    pub stopped_at: Timestamp,
    pub energy_wh: i64,
}

/// A completed transaction of a community's charger (start and stop both known), as the
/// forecast of arrivals learns from it ([`Store::completed_transactions`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletedTransaction {
    pub transaction_id: TransactionId,
    pub charger_id: ChargePointId,
    pub connector_id: Option<i32>,
    pub started_at: Timestamp,
    pub stopped_at: Timestamp,
    /// meter stop − meter start (kWh), as recorded: the reader judges plausibility (it may be
    /// negative, or the stop before the start, in data imported or sent by a faulty charger).
    pub energy_kwh: f64,
}

/// A transaction that happened elsewhere (an earlier system, a data set), imported as history
/// with [`Store::import_transactions`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricTransaction {
    pub charger_id: ChargePointId,
    pub connector_id: i32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    pub meter_stop_wh: i64,
    pub started_at: Timestamp,
    pub stopped_at: Timestamp,
}

/// "limit" (stay at or below kw) or "reduce" (kw below the baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GridCommandKind {
    Limit,
    Reduce,
}

impl GridCommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Reduce => "reduce",
        }
    }
}

/// A grid command to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewGridCommand {
    pub community_id: String,
    pub kind: GridCommandKind,
    pub kw: f64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub received: Timestamp,
    /// JSON of `orderly_grid::CommandSource`.
    pub source: Value,
    /// The command's identity at its source (e.g. an OpenADR event): recording a command with a
    /// key already stored updates that record (and un-cancels it) instead of adding one.
    pub source_key: Option<String>,
}

/// A grid command as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridCommandRecord {
    pub id: i64,
    pub community_id: String,
    pub kind: GridCommandKind,
    pub kw: f64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub received: Timestamp,
    pub source: Value,
    pub source_key: Option<String>,
    pub cancelled_at: Option<Timestamp>,
    /// JSON of the latest `orderly_grid::CommandReport`.
    pub report: Option<Value>,
    pub report_at: Option<Timestamp>,
}

/// A change of a charger's compliance (drawing more than its limit, or back within it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceEvent {
    pub id: i64,
    pub charger_id: ChargePointId,
    pub community_id: Option<String>,
    pub compliant: bool,
    pub at: Timestamp,
    pub detail: String,
}

/// The closed loop's write operations (applied by the group-commit writer).
#[derive(Debug, Clone)]
pub(crate) enum LoopOp {
    PutCommunity {
        record: Box<CommunityRecord>,
        now: Timestamp,
    },
    RemoveCommunity {
        id: String,
    },
    AttachCharger {
        attrs: ChargerElectrical,
        now: Timestamp,
    },
    DetachCharger {
        id: ChargePointId,
        now: Timestamp,
    },
    FinishProfileRelease {
        id: ChargePointId,
    },
    PutWish {
        wish: WishRecord,
    },
    ImportTransactions {
        rows: Vec<HistoricTransaction>,
        now: Timestamp,
    },
    PutWishDefaults {
        defaults: WishDefaults,
    },
    InsertGridCommand {
        command: Box<NewGridCommand>,
    },
    CancelGridCommand {
        id: i64,
        at: Timestamp,
    },
    SetGridCommandReport {
        id: i64,
        report: Value,
        at: Timestamp,
    },
    AppendCompliance {
        charger_id: ChargePointId,
        community_id: Option<String>,
        compliant: bool,
        at: Timestamp,
        detail: String,
    },
}

fn json_text(v: &[f64]) -> String {
    // A Vec<f64> of finite numbers always serializes.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl LoopOp {
    pub(crate) async fn apply(
        &self,
        conn: &mut AnyConnection,
    ) -> std::result::Result<OpResult, sqlx::Error> {
        match self {
            LoopOp::PutCommunity { record, now } => {
                let r = &**record;
                let max_emergencies = r.max_emergencies.map(i64::from);
                let meter = r.community_meter.as_ref().map(ChargePointId::as_str);
                let updated = sqlx::query(
                    "UPDATE communities SET name = $1, rating_kva = $2, power_factor = $3, \
                     base_load_kw = $4, timezone = $5, tariff_cny_per_kwh = $6, \
                     emergency_price_cny_per_kwh = $7, max_emergencies = $8, \
                     default_stay_hours = $9, default_energy_kwh = $10, community_meter = $11, \
                     updated_at_ms = $12 WHERE id = $13",
                )
                .bind(r.name.as_deref())
                .bind(r.rating_kva)
                .bind(r.power_factor)
                .bind(json_text(&r.base_load_kw))
                .bind(r.timezone.as_str())
                .bind(json_text(&r.tariff_cny_per_kwh))
                .bind(r.emergency_price_cny_per_kwh)
                .bind(max_emergencies)
                .bind(r.default_stay_hours)
                .bind(r.default_energy_kwh)
                .bind(meter)
                .bind(ms(*now))
                .bind(r.id.as_str())
                .execute(&mut *conn)
                .await?;
                if updated.rows_affected() > 0 {
                    return Ok(Ok(Outcome::Flag(false)));
                }
                sqlx::query(
                    "INSERT INTO communities (id, name, rating_kva, power_factor, base_load_kw, \
                     timezone, tariff_cny_per_kwh, emergency_price_cny_per_kwh, max_emergencies, \
                     default_stay_hours, default_energy_kwh, community_meter, created_at_ms, \
                     updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14)",
                )
                .bind(r.id.as_str())
                .bind(r.name.as_deref())
                .bind(r.rating_kva)
                .bind(r.power_factor)
                .bind(json_text(&r.base_load_kw))
                .bind(r.timezone.as_str())
                .bind(json_text(&r.tariff_cny_per_kwh))
                .bind(r.emergency_price_cny_per_kwh)
                .bind(max_emergencies)
                .bind(r.default_stay_hours)
                .bind(r.default_energy_kwh)
                .bind(meter)
                .bind(ms(*now))
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Flag(true)))
            }
            LoopOp::RemoveCommunity { id } => {
                let attached: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM charger_electrical WHERE community_id = $1",
                )
                .bind(id.as_str())
                .fetch_one(&mut *conn)
                .await?;
                if attached > 0 {
                    return Ok(Err(StoreError::Conflict(format!(
                        "community {id} has {attached} charger(s) attached; it"
                    ))));
                }
                let r = sqlx::query("DELETE FROM communities WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
            LoopOp::AttachCharger { attrs, now } => {
                let charger: Option<String> =
                    sqlx::query_scalar("SELECT id FROM chargers WHERE id = $1")
                        .bind(attrs.charger_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                if charger.is_none() {
                    return Ok(Err(StoreError::NotFound(format!(
                        "charger {}",
                        attrs.charger_id
                    ))));
                }
                let community: Option<String> =
                    sqlx::query_scalar("SELECT id FROM communities WHERE id = $1")
                        .bind(attrs.community_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                if community.is_none() {
                    return Ok(Err(StoreError::NotFound(format!(
                        "community {}",
                        attrs.community_id
                    ))));
                }
                sqlx::query("DELETE FROM charger_electrical WHERE charger_id = $1")
                    .bind(attrs.charger_id.as_str())
                    .execute(&mut *conn)
                    .await?;
                // Its new controller sends its own profiles (same ids), so nothing to clear.
                sqlx::query("DELETE FROM profile_releases WHERE charger_id = $1")
                    .bind(attrs.charger_id.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO charger_electrical (charger_id, community_id, phases, voltage_v, \
                     max_current_a, min_current_a, rate_unit, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(attrs.charger_id.as_str())
                .bind(attrs.community_id.as_str())
                .bind(i64::from(attrs.phases))
                .bind(attrs.voltage_v)
                .bind(attrs.max_current_a)
                .bind(attrs.min_current_a)
                .bind(attrs.rate_unit.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Done))
            }
            LoopOp::DetachCharger { id, now } => {
                let community: Option<String> = sqlx::query_scalar(
                    "SELECT community_id FROM charger_electrical WHERE charger_id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                let Some(community) = community else {
                    return Ok(Ok(Outcome::Flag(false)));
                };
                sqlx::query("DELETE FROM charger_electrical WHERE charger_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                // In the same commit: a detached charger is never forgotten with our profiles.
                sqlx::query("DELETE FROM profile_releases WHERE charger_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO profile_releases (charger_id, community_id, requested_at_ms) \
                     VALUES ($1, $2, $3)",
                )
                .bind(id.as_str())
                .bind(community)
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Flag(true)))
            }
            LoopOp::FinishProfileRelease { id } => {
                let r = sqlx::query("DELETE FROM profile_releases WHERE charger_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() > 0)))
            }
            LoopOp::ImportTransactions { rows, now } => {
                if let Some(r) = rows.iter().find(|r| r.connector_id < 1) {
                    return Ok(Err(StoreError::Invalid {
                        field: "connector_id",
                        reason: format!(
                            "{}: must be 1 or more, not {}",
                            r.charger_id, r.connector_id
                        ),
                    }));
                }
                if rows.is_empty() {
                    return Ok(Ok(Outcome::Id(0)));
                }
                let first = take_ids(conn, "transactions", rows.len() as i64).await?;
                if i32::try_from(first + rows.len() as i64).is_err() {
                    return Ok(Err(StoreError::Invalid {
                        field: "transactionId",
                        reason: "the id sequence passed i32::MAX".into(),
                    }));
                }
                let mut imported = 0;
                for (k, r) in rows.iter().enumerate() {
                    // A row already stored (same start identity as a StartTransaction replay)
                    // is kept as it is: importing twice imports once.
                    let done = sqlx::query(
                        "INSERT INTO transactions (id, charger_id, connector_id, id_tag, \
                         id_tag_status, meter_start_wh, started_at_ms, meter_stop_wh, \
                         stopped_at_ms, stop_reason, origin, created_at_ms) \
                         VALUES ($1, $2, $3, $4, 'Accepted', $5, $6, $7, $8, 'Imported', \
                         'start', $9) ON CONFLICT DO NOTHING",
                    )
                    .bind(first + k as i64)
                    .bind(r.charger_id.as_str())
                    .bind(i64::from(r.connector_id))
                    .bind(r.id_tag.as_str())
                    .bind(r.meter_start_wh)
                    .bind(ms(r.started_at))
                    .bind(r.meter_stop_wh)
                    .bind(ms(r.stopped_at))
                    .bind(ms(*now))
                    .execute(&mut *conn)
                    .await?;
                    imported += done.rows_affected() as i64;
                }
                Ok(Ok(Outcome::Id(imported)))
            }
            LoopOp::PutWish { wish } => {
                sqlx::query("DELETE FROM transaction_wishes WHERE transaction_id = $1")
                    .bind(i64::from(wish.transaction_id.0))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO transaction_wishes (transaction_id, departure_ms, stay_hours, \
                     energy_kwh, target_soc_percent, battery_kwh, emergency, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(i64::from(wish.transaction_id.0))
                .bind(opt_ms(wish.departure))
                .bind(wish.stay_hours)
                .bind(wish.energy_kwh)
                .bind(wish.target_soc_percent)
                .bind(wish.battery_kwh)
                .bind(i64::from(wish.emergency))
                .bind(ms(wish.updated_at))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Done))
            }
            LoopOp::PutWishDefaults { defaults } => {
                let r = sqlx::query("DELETE FROM id_tag_wish_defaults WHERE tag = $1")
                    .bind(defaults.id_tag.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO id_tag_wish_defaults (tag, departure_local, stay_hours, \
                     energy_kwh, updated_at_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(defaults.id_tag.as_str())
                .bind(defaults.departure_local.as_deref())
                .bind(defaults.stay_hours)
                .bind(defaults.energy_kwh)
                .bind(ms(defaults.updated_at))
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Flag(r.rows_affected() == 0)))
            }
            LoopOp::InsertGridCommand { command } => insert_grid_command(conn, command).await,
            LoopOp::CancelGridCommand { id, at } => {
                let row: Option<(Option<i64>,)> =
                    sqlx::query_as("SELECT cancelled_at_ms FROM grid_commands WHERE id = $1")
                        .bind(*id)
                        .fetch_optional(&mut *conn)
                        .await?;
                match row {
                    None => Ok(Err(StoreError::NotFound(format!("grid command {id}")))),
                    Some((Some(_),)) => Ok(Ok(Outcome::Flag(false))),
                    Some((None,)) => {
                        sqlx::query("UPDATE grid_commands SET cancelled_at_ms = $1 WHERE id = $2")
                            .bind(ms(*at))
                            .bind(*id)
                            .execute(&mut *conn)
                            .await?;
                        Ok(Ok(Outcome::Flag(true)))
                    }
                }
            }
            LoopOp::SetGridCommandReport { id, report, at } => {
                let r = sqlx::query(
                    "UPDATE grid_commands SET report = $1, report_at_ms = $2 WHERE id = $3",
                )
                .bind(report.to_string())
                .bind(ms(*at))
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                Ok(Ok(if r.rows_affected() > 0 {
                    Outcome::Done
                } else {
                    return Ok(Err(StoreError::NotFound(format!("grid command {id}"))));
                }))
            }
            LoopOp::AppendCompliance {
                charger_id,
                community_id,
                compliant,
                at,
                detail,
            } => {
                let id = take_ids(conn, "compliance_events", 1).await?;
                sqlx::query(
                    "INSERT INTO compliance_events (id, charger_id, community_id, compliant, \
                     at_ms, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(charger_id.as_str())
                .bind(community_id.as_deref())
                .bind(i64::from(*compliant))
                .bind(ms(*at))
                .bind(detail.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(Ok(Outcome::Id(id)))
            }
        }
    }
}

async fn insert_grid_command(
    conn: &mut AnyConnection,
    c: &NewGridCommand,
) -> std::result::Result<OpResult, sqlx::Error> {
    let community: Option<String> = sqlx::query_scalar("SELECT id FROM communities WHERE id = $1")
        .bind(c.community_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if community.is_none() {
        return Ok(Err(StoreError::NotFound(format!(
            "community {}",
            c.community_id
        ))));
    }
    if let Some(key) = &c.source_key {
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM grid_commands WHERE source_key = $1")
                .bind(key.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(id) = existing {
            sqlx::query(
                "UPDATE grid_commands SET community_id = $1, kind = $2, kw = $3, start_ms = $4, \
                 end_ms = $5, received_ms = $6, source = $7, cancelled_at_ms = NULL WHERE id = $8",
            )
            .bind(c.community_id.as_str())
            .bind(c.kind.as_str())
            .bind(c.kw)
            .bind(ms(c.start))
            .bind(ms(c.end))
            .bind(ms(c.received))
            .bind(c.source.to_string())
            .bind(id)
            .execute(&mut *conn)
            .await?;
            return Ok(Ok(Outcome::Id(id)));
        }
    }
    let id = take_ids(conn, "grid_commands", 1).await?;
    sqlx::query(
        "INSERT INTO grid_commands (id, community_id, kind, kw, start_ms, end_ms, received_ms, \
         source, source_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(c.community_id.as_str())
    .bind(c.kind.as_str())
    .bind(c.kw)
    .bind(ms(c.start))
    .bind(ms(c.end))
    .bind(ms(c.received))
    .bind(c.source.to_string())
    .bind(c.source_key.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(Ok(Outcome::Id(id)))
}

// ----- row decoding ---------------------------------------------------------------------------

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{col}: {e}"))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| corrupt(col, e))
}

fn opt_json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    get::<Option<String>>(row, col)?
        .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(col, e)))
        .transpose()
}

fn charger_col(row: &AnyRow, col: &str) -> Result<ChargePointId> {
    ChargePointId::parse(get::<String>(row, col)?).map_err(|e| corrupt(col, e))
}

const COMMUNITY_COLUMNS: &str = "id, name, rating_kva, power_factor, base_load_kw, timezone, \
    tariff_cny_per_kwh, emergency_price_cny_per_kwh, max_emergencies, default_stay_hours, \
    default_energy_kwh, community_meter, created_at_ms, updated_at_ms";

fn community(row: &AnyRow) -> Result<CommunityRecord> {
    Ok(CommunityRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        rating_kva: get(row, "rating_kva")?,
        power_factor: get(row, "power_factor")?,
        base_load_kw: json_col(row, "base_load_kw")?,
        timezone: get(row, "timezone")?,
        tariff_cny_per_kwh: json_col(row, "tariff_cny_per_kwh")?,
        emergency_price_cny_per_kwh: get(row, "emergency_price_cny_per_kwh")?,
        max_emergencies: get::<Option<i64>>(row, "max_emergencies")?
            .map(|v| u32::try_from(v).map_err(|e| corrupt("max_emergencies", e)))
            .transpose()?,
        default_stay_hours: get(row, "default_stay_hours")?,
        default_energy_kwh: get(row, "default_energy_kwh")?,
        community_meter: get::<Option<String>>(row, "community_meter")?
            .map(|s| ChargePointId::parse(s).map_err(|e| corrupt("community_meter", e)))
            .transpose()?,
        created_at: ts(row, "created_at_ms")?,
        updated_at: ts(row, "updated_at_ms")?,
    })
}

const ELECTRICAL_COLUMNS: &str =
    "charger_id, community_id, phases, voltage_v, max_current_a, min_current_a, rate_unit";

fn electrical(row: &AnyRow) -> Result<ChargerElectrical> {
    Ok(ChargerElectrical {
        charger_id: charger_col(row, "charger_id")?,
        community_id: get(row, "community_id")?,
        phases: u8::try_from(get::<i64>(row, "phases")?).map_err(|e| corrupt("phases", e))?,
        voltage_v: get(row, "voltage_v")?,
        max_current_a: get(row, "max_current_a")?,
        min_current_a: get(row, "min_current_a")?,
        rate_unit: get(row, "rate_unit")?,
    })
}

const GRID_COLUMNS: &str = "id, community_id, kind, kw, start_ms, end_ms, received_ms, source, \
    source_key, cancelled_at_ms, report, report_at_ms";

fn grid_command(row: &AnyRow) -> Result<GridCommandRecord> {
    Ok(GridCommandRecord {
        id: get(row, "id")?,
        community_id: get(row, "community_id")?,
        kind: match get::<String>(row, "kind")?.as_str() {
            "limit" => GridCommandKind::Limit,
            "reduce" => GridCommandKind::Reduce,
            other => return Err(corrupt("kind", format!("{other:?}"))),
        },
        kw: get(row, "kw")?,
        start: ts(row, "start_ms")?,
        end: ts(row, "end_ms")?,
        received: ts(row, "received_ms")?,
        source: json_col(row, "source")?,
        source_key: get(row, "source_key")?,
        cancelled_at: opt_ts(row, "cancelled_at_ms")?,
        report: opt_json_col(row, "report")?,
        report_at: opt_ts(row, "report_at_ms")?,
    })
}

impl Store {
    async fn loop_write(&self, op: LoopOp) -> Result<Outcome> {
        self.write(Op::Loop(Box::new(op))).await
    }

    // ----- communities ----------------------------------------------------------------------

    /// Creates or updates a community (`created_at`/`updated_at` of `record` are ignored).
    /// Returns true if it was created.
    pub async fn put_community(&self, record: CommunityRecord, now: Timestamp) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::PutCommunity {
                record: Box::new(record),
                now,
            })
            .await?,
        )
    }

    /// Removes a community and its grid commands; [`StoreError::Conflict`] while chargers are
    /// attached. Returns whether it existed.
    pub async fn remove_community(&self, id: &str) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::RemoveCommunity { id: id.to_owned() })
                .await?,
        )
    }

    pub async fn get_community(&self, id: &str) -> Result<Option<CommunityRecord>> {
        let sql = format!("SELECT {COMMUNITY_COLUMNS} FROM communities WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(community).transpose()
    }

    /// All communities, by id.
    pub async fn list_communities(&self) -> Result<Vec<CommunityRecord>> {
        let sql = format!("SELECT {COMMUNITY_COLUMNS} FROM communities ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(community).collect()
    }

    /// Attaches a charger to a community with its electrical facts (replacing earlier ones).
    /// NotFound if the charger or the community does not exist.
    pub async fn attach_charger(&self, attrs: ChargerElectrical, now: Timestamp) -> Result<()> {
        done(
            self.loop_write(LoopOp::AttachCharger { attrs, now })
                .await?,
        )
    }

    /// Detaches a charger from its community; returns whether it was attached. The charger is
    /// recorded as holding profiles to clear ([`Store::profile_release_pending`]) in the same
    /// commit.
    pub async fn detach_charger(&self, id: &ChargePointId, now: Timestamp) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::DetachCharger {
                id: id.clone(),
                now,
            })
            .await?,
        )
    }

    /// Whether a charger left a community and its profiles have not been cleared yet.
    pub async fn profile_release_pending(&self, id: &ChargePointId) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM profile_releases WHERE charger_id = $1")
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// The charger confirmed its profiles are cleared; returns whether one was pending.
    pub async fn finish_profile_release(&self, id: &ChargePointId) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::FinishProfileRelease { id: id.clone() })
                .await?,
        )
    }

    pub async fn charger_electrical(
        &self,
        id: &ChargePointId,
    ) -> Result<Option<ChargerElectrical>> {
        let sql =
            format!("SELECT {ELECTRICAL_COLUMNS} FROM charger_electrical WHERE charger_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(electrical).transpose()
    }

    /// The chargers of a community, by id.
    pub async fn community_chargers(&self, community_id: &str) -> Result<Vec<ChargerElectrical>> {
        let sql = format!(
            "SELECT {ELECTRICAL_COLUMNS} FROM charger_electrical WHERE community_id = $1 \
             ORDER BY charger_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(community_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(electrical).collect()
    }

    // ----- wishes ---------------------------------------------------------------------------

    /// Stores (replacing) the wish of a transaction.
    pub async fn put_wish(&self, wish: WishRecord) -> Result<()> {
        done(self.loop_write(LoopOp::PutWish { wish }).await?)
    }

    pub async fn get_wish(&self, transaction: TransactionId) -> Result<Option<WishRecord>> {
        let row = sqlx::query(
            "SELECT transaction_id, departure_ms, stay_hours, energy_kwh, target_soc_percent, \
             battery_kwh, emergency, updated_at_ms FROM transaction_wishes WHERE transaction_id = $1",
        )
        .bind(i64::from(transaction.0))
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(WishRecord {
                transaction_id: transaction,
                departure: opt_ts(&row, "departure_ms")?,
                stay_hours: get(&row, "stay_hours")?,
                energy_kwh: get(&row, "energy_kwh")?,
                target_soc_percent: get(&row, "target_soc_percent")?,
                battery_kwh: get(&row, "battery_kwh")?,
                emergency: get::<i64>(&row, "emergency")? != 0,
                updated_at: ts(&row, "updated_at_ms")?,
            })
        })
        .transpose()
    }

    /// Stores (replacing) an id tag's wish defaults; returns true if none were stored before.
    pub async fn put_wish_defaults(&self, defaults: WishDefaults) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::PutWishDefaults { defaults })
                .await?,
        )
    }

    pub async fn get_wish_defaults(&self, tag: &IdTag) -> Result<Option<WishDefaults>> {
        let row = sqlx::query(
            "SELECT departure_local, stay_hours, energy_kwh, updated_at_ms \
             FROM id_tag_wish_defaults WHERE tag = $1",
        )
        .bind(tag.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(WishDefaults {
                id_tag: tag.clone(),
                departure_local: get(&row, "departure_local")?,
                stay_hours: get(&row, "stay_hours")?,
                energy_kwh: get(&row, "energy_kwh")?,
                updated_at: ts(&row, "updated_at_ms")?,
            })
        })
        .transpose()
    }

    /// The newest `limit` finished sessions started with `tag` (start and stop both known),
    /// newest first.
    pub async fn finished_sessions(&self, tag: &IdTag, limit: u32) -> Result<Vec<FinishedSession>> {
        let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT id, started_at_ms, stopped_at_ms, meter_start_wh, meter_stop_wh \
             FROM transactions WHERE id_tag = $1 AND started_at_ms IS NOT NULL \
             AND stopped_at_ms IS NOT NULL AND meter_start_wh IS NOT NULL \
             AND meter_stop_wh IS NOT NULL ORDER BY started_at_ms DESC LIMIT $2",
        )
        .bind(tag.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, start, stop, m0, m1)| {
                let at =
                    |col: &str, v: i64| Timestamp::from_millisecond(v).map_err(|e| corrupt(col, e));
                Ok(FinishedSession {
                    transaction_id: TransactionId(i32::try_from(id).map_err(|e| corrupt("id", e))?),
                    started_at: at("started_at_ms", start)?,
                    stopped_at: at("stopped_at_ms", stop)?,
                    energy_wh: m1 - m0,
                })
            })
            .collect()
    }

    /// The completed transactions (start, stop and both meter readings known) of the chargers
    /// now in `community_id` that started in `[from, to)`, by start time.
    pub async fn completed_transactions(
        &self,
        community_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CompletedTransaction>> {
        type Row = (i64, String, Option<i64>, i64, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.id, t.charger_id, t.connector_id, t.started_at_ms, t.stopped_at_ms, \
             t.meter_start_wh, t.meter_stop_wh \
             FROM transactions t JOIN charger_electrical e ON e.charger_id = t.charger_id \
             WHERE e.community_id = $1 AND t.started_at_ms >= $2 AND t.started_at_ms < $3 \
             AND t.stopped_at_ms IS NOT NULL AND t.meter_start_wh IS NOT NULL \
             AND t.meter_stop_wh IS NOT NULL ORDER BY t.started_at_ms, t.id",
        )
        .bind(community_id)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, charger, connector, start, stop, m0, m1)| {
                let at =
                    |col: &str, v: i64| Timestamp::from_millisecond(v).map_err(|e| corrupt(col, e));
                Ok(CompletedTransaction {
                    transaction_id: TransactionId(i32::try_from(id).map_err(|e| corrupt("id", e))?),
                    charger_id: ChargePointId::parse(charger)
                        .map_err(|e| corrupt("charger_id", e))?,
                    connector_id: connector
                        .map(i32::try_from)
                        .transpose()
                        .map_err(|e| corrupt("connector_id", e))?,
                    started_at: at("started_at_ms", start)?,
                    stopped_at: at("stopped_at_ms", stop)?,
                    energy_kwh: (m1 - m0) as f64 / 1000.0,
                })
            })
            .collect()
    }

    /// Records transactions that happened elsewhere as completed ones (origin `start`, tag status
    /// Accepted, stop reason `Imported`), in one database transaction, with fresh ids; a row whose
    /// start (charger, connector, tag, meter start, time) is already stored is skipped. Nothing is
    /// checked beyond the connector (≥ 1): history is recorded as given. Returns how many rows
    /// were added.
    pub async fn import_transactions(
        &self,
        rows: Vec<HistoricTransaction>,
        now: Timestamp,
    ) -> Result<usize> {
        match self
            .loop_write(LoopOp::ImportTransactions { rows, now })
            .await?
        {
            Outcome::Id(n) => Ok(n as usize),
            other => Err(unexpected(other)),
        }
    }

    // ----- grid commands --------------------------------------------------------------------

    /// Records a grid command (or updates the one with the same `source_key`); returns its id.
    /// NotFound if the community does not exist.
    pub async fn insert_grid_command(&self, command: NewGridCommand) -> Result<i64> {
        match self
            .loop_write(LoopOp::InsertGridCommand {
                command: Box::new(command),
            })
            .await?
        {
            Outcome::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Marks a command cancelled at `at`; returns false if it already was. NotFound if unknown.
    pub async fn cancel_grid_command(&self, id: i64, at: Timestamp) -> Result<bool> {
        flag(
            self.loop_write(LoopOp::CancelGridCommand { id, at })
                .await?,
        )
    }

    /// Stores the latest report of a command (JSON of `orderly_grid::CommandReport`).
    pub async fn set_grid_command_report(
        &self,
        id: i64,
        report: Value,
        at: Timestamp,
    ) -> Result<()> {
        done(
            self.loop_write(LoopOp::SetGridCommandReport { id, report, at })
                .await?,
        )
    }

    pub async fn get_grid_command(&self, id: i64) -> Result<Option<GridCommandRecord>> {
        let sql = format!("SELECT {GRID_COLUMNS} FROM grid_commands WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grid_command).transpose()
    }

    pub async fn get_grid_command_by_key(&self, key: &str) -> Result<Option<GridCommandRecord>> {
        let sql = format!("SELECT {GRID_COLUMNS} FROM grid_commands WHERE source_key = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(grid_command).transpose()
    }

    /// A community's commands, newest start first.
    pub async fn list_grid_commands(&self, community_id: &str) -> Result<Vec<GridCommandRecord>> {
        let sql = format!(
            "SELECT {GRID_COLUMNS} FROM grid_commands WHERE community_id = $1 \
             ORDER BY start_ms DESC, id DESC"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(community_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(grid_command).collect()
    }

    /// A community's commands not cancelled and not over at `now`, by start.
    pub async fn open_grid_commands(
        &self,
        community_id: &str,
        now: Timestamp,
    ) -> Result<Vec<GridCommandRecord>> {
        let sql = format!(
            "SELECT {GRID_COLUMNS} FROM grid_commands WHERE community_id = $1 \
             AND cancelled_at_ms IS NULL AND end_ms > $2 ORDER BY start_ms, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(community_id)
            .bind(ms(now))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(grid_command).collect()
    }

    // ----- compliance -----------------------------------------------------------------------

    /// Records a change of a charger's compliance; returns the event id.
    pub async fn append_compliance_event(
        &self,
        charger_id: &ChargePointId,
        community_id: Option<&str>,
        compliant: bool,
        at: Timestamp,
        detail: &str,
    ) -> Result<i64> {
        match self
            .loop_write(LoopOp::AppendCompliance {
                charger_id: charger_id.clone(),
                community_id: community_id.map(str::to_owned),
                compliant,
                at,
                detail: detail.to_owned(),
            })
            .await?
        {
            Outcome::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Compliance changes, newest first (of one charger if given), at most `limit`.
    pub async fn list_compliance_events(
        &self,
        charger_id: Option<&ChargePointId>,
        limit: u32,
    ) -> Result<Vec<ComplianceEvent>> {
        let rows = match charger_id {
            Some(id) => sqlx::query(
                "SELECT id, charger_id, community_id, compliant, at_ms, detail \
                 FROM compliance_events WHERE charger_id = $1 ORDER BY at_ms DESC, id DESC LIMIT $2",
            )
            .bind(id.as_str())
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?,
            None => sqlx::query(
                "SELECT id, charger_id, community_id, compliant, at_ms, detail \
                 FROM compliance_events ORDER BY at_ms DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?,
        };
        rows.iter()
            .map(|row| {
                Ok(ComplianceEvent {
                    id: get(row, "id")?,
                    charger_id: charger_col(row, "charger_id")?,
                    community_id: get(row, "community_id")?,
                    compliant: get::<i64>(row, "compliant")? != 0,
                    at: ts(row, "at_ms")?,
                    detail: get(row, "detail")?,
                })
            })
            .collect()
    }
}
