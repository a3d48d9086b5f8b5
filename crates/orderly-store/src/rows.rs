//! Row decoding and the few queries shared by reads and writes.
//!
//! Every conversion from a stored value back to a domain type goes through here, so a bad row
//! becomes `StoreError::Corrupt` naming the column instead of a panic.

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::StoreError;
use crate::types::*;

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(ms)
}

fn ts_of(col: &str, v: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(v).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp, StoreError> {
    ts_of(col, get(row, col)?)
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    get::<Option<i64>>(row, col)?
        .map(|v| ts_of(col, v))
        .transpose()
}

pub(crate) fn i32_of(col: &str, v: i64) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col}: {v} out of range")))
}

pub(crate) fn int32(row: &AnyRow, col: &str) -> Result<i32, StoreError> {
    i32_of(col, get(row, col)?)
}

pub(crate) fn opt_int32(row: &AnyRow, col: &str) -> Result<Option<i32>, StoreError> {
    get::<Option<i64>>(row, col)?
        .map(|v| i32_of(col, v))
        .transpose()
}

pub(crate) fn charger_id(row: &AnyRow, col: &str) -> Result<ChargePointId, StoreError> {
    ChargePointId::parse(get::<String>(row, col)?)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn opt_tag(row: &AnyRow, col: &str) -> Result<Option<IdTag>, StoreError> {
    get::<Option<String>>(row, col)?
        .map(|s| IdTag::parse(s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

pub(crate) fn auth_status(col: &str, s: &str) -> Result<AuthorizationStatus, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{col}: {s:?}")))
}

pub(crate) const CHARGER_COLUMNS: &str = "id, password_hash, status, description, vendor, model, \
    serial_number, charge_box_serial_number, firmware_version, iccid, imsi, meter_type, \
    meter_serial_number, firmware_status, firmware_status_at_ms, diagnostics_status, \
    diagnostics_status_at_ms, created_at_ms, registered_at_ms, last_boot_at_ms, last_seen_at_ms";

pub(crate) fn charger(row: &AnyRow) -> Result<Charger, StoreError> {
    Ok(Charger {
        id: charger_id(row, "id")?,
        status: get::<String>(row, "status")?.parse()?,
        has_password: get::<Option<String>>(row, "password_hash")?.is_some(),
        description: get(row, "description")?,
        vendor: get(row, "vendor")?,
        model: get(row, "model")?,
        serial_number: get(row, "serial_number")?,
        charge_box_serial_number: get(row, "charge_box_serial_number")?,
        firmware_version: get(row, "firmware_version")?,
        iccid: get(row, "iccid")?,
        imsi: get(row, "imsi")?,
        meter_type: get(row, "meter_type")?,
        meter_serial_number: get(row, "meter_serial_number")?,
        firmware_status: get(row, "firmware_status")?,
        firmware_status_at: opt_ts(row, "firmware_status_at_ms")?,
        diagnostics_status: get(row, "diagnostics_status")?,
        diagnostics_status_at: opt_ts(row, "diagnostics_status_at_ms")?,
        created_at: ts(row, "created_at_ms")?,
        registered_at: opt_ts(row, "registered_at_ms")?,
        last_boot_at: opt_ts(row, "last_boot_at_ms")?,
        last_seen_at: opt_ts(row, "last_seen_at_ms")?,
    })
}

pub(crate) const CONNECTOR_COLUMNS: &str = "charger_id, connector_id, status, error_code, info, \
    vendor_id, vendor_error_code, updated_at_ms";

pub(crate) fn connector(row: &AnyRow) -> Result<Connector, StoreError> {
    Ok(Connector {
        charger_id: charger_id(row, "charger_id")?,
        connector_id: int32(row, "connector_id")?,
        status: get(row, "status")?,
        error_code: get(row, "error_code")?,
        info: get(row, "info")?,
        vendor_id: get(row, "vendor_id")?,
        vendor_error_code: get(row, "vendor_error_code")?,
        updated_at: ts(row, "updated_at_ms")?,
    })
}

pub(crate) fn status_record(row: &AnyRow) -> Result<StatusRecord, StoreError> {
    Ok(StatusRecord {
        connector_id: int32(row, "connector_id")?,
        status: get(row, "status")?,
        error_code: get(row, "error_code")?,
        info: get(row, "info")?,
        vendor_id: get(row, "vendor_id")?,
        vendor_error_code: get(row, "vendor_error_code")?,
        timestamp: ts(row, "timestamp_ms")?,
        received_at: ts(row, "received_at_ms")?,
    })
}

pub(crate) fn id_tag_record(row: &AnyRow) -> Result<IdTagRecord, StoreError> {
    Ok(IdTagRecord {
        id_tag: IdTag::parse(get::<String>(row, "tag")?)
            .map_err(|e| StoreError::Corrupt(format!("tag: {e}")))?,
        status: auth_status("status", &get::<String>(row, "status")?)?,
        expiry_date: opt_ts(row, "expiry_ms")?,
        parent_id_tag: opt_tag(row, "parent_tag")?,
    })
}

pub(crate) const TRANSACTION_COLUMNS: &str = "id, charger_id, connector_id, id_tag, \
    id_tag_status, meter_start_wh, started_at_ms, reservation_id, meter_stop_wh, stopped_at_ms, \
    stop_reason, stop_id_tag, origin, reported_id";

pub(crate) fn transaction(row: &AnyRow) -> Result<Transaction, StoreError> {
    Ok(Transaction {
        id: TransactionId(int32(row, "id")?),
        charger_id: charger_id(row, "charger_id")?,
        connector_id: opt_int32(row, "connector_id")?,
        id_tag: opt_tag(row, "id_tag")?,
        id_tag_status: get::<Option<String>>(row, "id_tag_status")?
            .map(|s| auth_status("id_tag_status", &s))
            .transpose()?,
        meter_start_wh: get(row, "meter_start_wh")?,
        meter_stop_wh: get(row, "meter_stop_wh")?,
        started_at: opt_ts(row, "started_at_ms")?,
        stopped_at: opt_ts(row, "stopped_at_ms")?,
        stop_reason: get(row, "stop_reason")?,
        stop_id_tag: opt_tag(row, "stop_id_tag")?,
        reservation_id: opt_int32(row, "reservation_id")?,
        origin: match get::<String>(row, "origin")?.as_str() {
            "start" => TransactionOrigin::StartTransaction,
            "stop" => TransactionOrigin::StopTransaction,
            other => return Err(StoreError::Corrupt(format!("origin: {other:?}"))),
        },
        reported_id: opt_int32(row, "reported_id")?.map(TransactionId),
    })
}

pub(crate) const SAMPLE_COLUMNS: &str = "charger_id, connector_id, transaction_id, timestamp_ms, \
    measurand, phase, location, context, unit, format, value_text, value_num";

pub(crate) fn sample(row: &AnyRow) -> Result<StoredSample, StoreError> {
    let phase: String = get(row, "phase")?;
    Ok(StoredSample {
        charger_id: charger_id(row, "charger_id")?,
        connector_id: int32(row, "connector_id")?,
        transaction_id: opt_int32(row, "transaction_id")?.map(TransactionId),
        timestamp: ts(row, "timestamp_ms")?,
        measurand: get(row, "measurand")?,
        phase: (!phase.is_empty()).then_some(phase),
        location: get(row, "location")?,
        context: get(row, "context")?,
        unit: get(row, "unit")?,
        format: get(row, "format")?,
        value: get(row, "value_text")?,
        value_number: get(row, "value_num")?,
    })
}

pub(crate) fn audit_entry(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let request: String = get(row, "request")?;
    Ok(AuditEntry {
        id: get(row, "id")?,
        at: ts(row, "at_ms")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target: get(row, "target")?,
        request: serde_json::from_str(&request)
            .map_err(|e| StoreError::Corrupt(format!("audit request: {e}")))?,
        outcome: get(row, "outcome")?,
    })
}

/// The idTagInfo for `tag` at `now`: unknown → Invalid, past expiry → Expired, else the stored
/// status. Shared by Authorize (read path) and Start/StopTransaction (inside the write).
pub(crate) async fn authorize(
    conn: &mut AnyConnection,
    tag: &IdTag,
    now: Timestamp,
) -> Result<Result<IdTagInfo, StoreError>, sqlx::Error> {
    let row = sqlx::query("SELECT tag, status, expiry_ms, parent_tag FROM id_tags WHERE tag = $1")
        .bind(tag.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Ok(IdTagInfo {
            status: AuthorizationStatus::Invalid,
            expiry_date: None,
            parent_id_tag: None,
        }));
    };
    Ok(id_tag_record(&row).map(|rec| {
        let expired = rec.expiry_date.is_some_and(|e| e <= now);
        let status = match rec.status {
            // A blocked tag stays Blocked after expiry: blocking is the stronger statement.
            AuthorizationStatus::Accepted | AuthorizationStatus::ConcurrentTx if expired => {
                AuthorizationStatus::Expired
            }
            s => s,
        };
        IdTagInfo {
            status,
            expiry_date: rec.expiry_date,
            parent_id_tag: rec.parent_id_tag,
        }
    }))
}
