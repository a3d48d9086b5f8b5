//! Records the store takes and returns. Times are `jiff::Timestamp` (UTC instants, stored as
//! milliseconds); free-form OCPP enumerations (connector status, error codes, measurands…) are kept
//! as the strings the charger sent, so the store does not depend on a protocol crate.

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::StoreError;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Admission state of a charger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargerStatus {
    /// Added by an operator; BootNotification is Accepted.
    Registered,
    /// Connected unannounced under the `pending` admission policy; waits for an operator.
    Pending,
}

impl ChargerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Pending => "pending",
        }
    }
}

impl FromStr for ChargerStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "registered" => Ok(Self::Registered),
            "pending" => Ok(Self::Pending),
            other => Err(StoreError::Corrupt(format!("charger status {other:?}"))),
        }
    }
}

/// An operator's request to register a charger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharger {
    pub id: ChargePointId,
    /// Plain-text password for HTTP Basic auth (security profile 1); `None` = no auth required.
    /// The store hashes it with argon2; the hash never leaves the store.
    pub password: Option<String>,
    pub description: Option<String>,
}

/// What [`Store::register_charger`](crate::Store::register_charger) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A new charger row was created.
    Created,
    /// A charger that had connected under the `pending` policy is now registered.
    PromotedFromPending,
}

/// A charger as stored. The password hash is deliberately absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Charger {
    pub id: ChargePointId,
    pub status: ChargerStatus,
    /// Whether HTTP Basic auth is required for this charger.
    pub has_password: bool,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub charge_box_serial_number: Option<String>,
    pub firmware_version: Option<String>,
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    pub meter_type: Option<String>,
    pub meter_serial_number: Option<String>,
    /// Last FirmwareStatusNotification status, and when it was received.
    pub firmware_status: Option<String>,
    pub firmware_status_at: Option<Timestamp>,
    /// Last DiagnosticsStatusNotification status, and when it was received.
    pub diagnostics_status: Option<String>,
    pub diagnostics_status_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub registered_at: Option<Timestamp>,
    pub last_boot_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
}

/// The fields of a BootNotification.req worth keeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootInfo {
    pub vendor: String,
    pub model: String,
    pub serial_number: Option<String>,
    pub charge_box_serial_number: Option<String>,
    pub firmware_version: Option<String>,
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    pub meter_type: Option<String>,
    pub meter_serial_number: Option<String>,
}

/// Result of checking a charger's HTTP Basic password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// No charger with this id is stored.
    UnknownCharger,
    /// The charger exists and has no password: no authentication is required.
    NoPasswordSet,
    /// The password matches.
    Valid,
    /// The password does not match.
    Invalid,
}

/// A StatusNotification.req.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// 0 = the charge point as a whole.
    pub connector_id: i32,
    /// OCPP ChargePointStatus, e.g. "Available", "Charging", "Faulted".
    pub status: String,
    /// OCPP ChargePointErrorCode, e.g. "NoError".
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
    /// The charger's own time for the report; the receive time is used when absent.
    pub timestamp: Option<Timestamp>,
}

/// Latest known state of one connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connector {
    pub charger_id: ChargePointId,
    pub connector_id: i32,
    pub status: String,
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
    pub updated_at: Timestamp,
}

/// One StatusNotification as received (status history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRecord {
    pub connector_id: i32,
    pub status: String,
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
    /// The charger's time (or the receive time if it sent none).
    pub timestamp: Timestamp,
    pub received_at: Timestamp,
}

/// OCPP 1.6 AuthorizationStatus: stored for id tags and answered in idTagInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizationStatus {
    Accepted,
    Blocked,
    Expired,
    Invalid,
    ConcurrentTx,
}

impl AuthorizationStatus {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::Blocked => "Blocked",
            Self::Expired => "Expired",
            Self::Invalid => "Invalid",
            Self::ConcurrentTx => "ConcurrentTx",
        }
    }
}

impl fmt::Display for AuthorizationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the OCPP spelling (exact case), e.g. from an API request or the CLI.
impl FromStr for AuthorizationStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "Accepted" => Ok(Self::Accepted),
            "Blocked" => Ok(Self::Blocked),
            "Expired" => Ok(Self::Expired),
            "Invalid" => Ok(Self::Invalid),
            "ConcurrentTx" => Ok(Self::ConcurrentTx),
            other => Err(StoreError::Invalid {
                field: "status",
                reason: format!(
                    "{other:?} is not one of Accepted, Blocked, Expired, Invalid, ConcurrentTx"
                ),
            }),
        }
    }
}

/// An id tag as an operator manages it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTagRecord {
    pub id_tag: IdTag,
    pub status: AuthorizationStatus,
    /// After this instant the tag answers `Expired` whatever its stored status.
    pub expiry_date: Option<Timestamp>,
    pub parent_id_tag: Option<IdTag>,
}

/// OCPP idTagInfo: the answer to Authorize / StartTransaction / StopTransaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTagInfo {
    pub status: AuthorizationStatus,
    pub expiry_date: Option<Timestamp>,
    pub parent_id_tag: Option<IdTag>,
}

/// OCPP transactionId. Ids the store issues start at 1 and stay within `i32` as OCPP requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionId(pub i32);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A StartTransaction.req.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartTransaction {
    pub charger_id: ChargePointId,
    pub connector_id: i32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    /// The charger's start time (may be in the past for an offline start).
    pub timestamp: Timestamp,
    pub reservation_id: Option<i32>,
}

/// What [`Store::start_transaction`](crate::Store::start_transaction) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartOutcome {
    pub transaction_id: TransactionId,
    /// The tag's status at start (for a replay: as first recorded).
    pub id_tag_info: IdTagInfo,
    /// True when this StartTransaction had been recorded before (a replay): same id returned.
    pub replayed: bool,
}

/// A StopTransaction.req.
#[derive(Debug, Clone, PartialEq)]
pub struct StopTransaction {
    pub charger_id: ChargePointId,
    pub transaction_id: TransactionId,
    pub id_tag: Option<IdTag>,
    pub meter_stop_wh: i64,
    pub timestamp: Timestamp,
    /// OCPP Reason, e.g. "Local", "EVDisconnected"; OCPP's default when absent is "Local".
    pub reason: Option<String>,
    /// transactionData: stored as meter values of this transaction.
    pub transaction_data: Vec<MeterValue>,
}

/// What [`Store::stop_transaction`](crate::Store::stop_transaction) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// Present when the stop carried an idTag: its current authorization.
    pub id_tag_info: Option<IdTagInfo>,
    /// False when the transaction was never seen before: a row was created from the stop.
    pub was_known: bool,
    /// True when the transaction had already been stopped (a replayed stop); the first stop's
    /// values are kept.
    pub already_stopped: bool,
    /// meterStop − meterStart, when both are known.
    pub energy_wh: Option<i64>,
    /// The id the stop is stored under: the charger's transactionId, except when that id
    /// belongs to another charger's transaction; then a fresh id (see
    /// [`Transaction::reported_id`]).
    pub recorded_as: TransactionId,
}

/// Where a transaction row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionOrigin {
    /// A StartTransaction.req (the normal case).
    StartTransaction,
    /// A StopTransaction.req for a transaction never seen: start fields are unknown.
    StopTransaction,
}

/// A transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub id: TransactionId,
    pub charger_id: ChargePointId,
    /// Unknown (None) only for a transaction learned from its stop.
    pub connector_id: Option<i32>,
    pub id_tag: Option<IdTag>,
    /// The tag's authorization when the transaction started.
    pub id_tag_status: Option<AuthorizationStatus>,
    pub meter_start_wh: Option<i64>,
    pub meter_stop_wh: Option<i64>,
    pub started_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub stop_reason: Option<String>,
    /// The idTag given in StopTransaction, if any.
    pub stop_id_tag: Option<IdTag>,
    pub reservation_id: Option<i32>,
    pub origin: TransactionOrigin,
    /// The transactionId the charger used, when it differs from `id`: its StopTransaction named
    /// an id that belonged to another charger's transaction, so it was stored under a new id.
    pub reported_id: Option<TransactionId>,
}

impl Transaction {
    /// Energy delivered: meterStop − meterStart, when both are known.
    pub fn energy_wh(&self) -> Option<i64> {
        Some(self.meter_stop_wh? - self.meter_start_wh?)
    }
    /// Started and not yet stopped.
    pub fn is_active(&self) -> bool {
        self.stopped_at.is_none()
    }
}

/// Which transactions to list; all fields optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub charger_id: Option<ChargePointId>,
    /// Some(true): only running; Some(false): only stopped.
    pub active: Option<bool>,
    /// Newest first; at most this many (default 1000).
    pub limit: Option<u32>,
}

/// One OCPP MeterValue: a timestamp and its sampled values.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterValue {
    pub timestamp: Timestamp,
    pub sampled_values: Vec<SampledValue>,
}

/// One OCPP SampledValue as received. Absent optional fields get OCPP's defaults when stored
/// (measurand Energy.Active.Import.Register, context Sample.Periodic, location Outlet, unit Wh,
/// format Raw).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledValue {
    pub value: String,
    pub context: Option<String>,
    pub format: Option<String>,
    pub measurand: Option<String>,
    pub phase: Option<String>,
    pub location: Option<String>,
    pub unit: Option<String>,
}

/// A MeterValues.req.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterValuesReport {
    pub charger_id: ChargePointId,
    pub connector_id: i32,
    pub transaction_id: Option<TransactionId>,
    pub meter_values: Vec<MeterValue>,
}

/// Counts from storing meter values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterValuesOutcome {
    /// Samples newly stored.
    pub stored: usize,
    /// Samples already present (replays), not stored again.
    pub duplicates: usize,
}

/// One stored sample, OCPP defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSample {
    pub charger_id: ChargePointId,
    pub connector_id: i32,
    pub transaction_id: Option<TransactionId>,
    pub timestamp: Timestamp,
    pub measurand: String,
    /// None when the sample had no phase.
    pub phase: Option<String>,
    pub location: String,
    pub context: String,
    pub unit: String,
    pub format: String,
    /// The value exactly as sent.
    pub value: String,
    /// The value as a number, when it parses as one (Raw format).
    pub value_number: Option<f64>,
}

/// An operator command to record in the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: Timestamp,
    /// Who: e.g. the admin token's name, or "cli".
    pub actor: String,
    /// What: e.g. "charger.add", "operation.Reset".
    pub action: String,
    /// On what: e.g. a charger id.
    pub target: Option<String>,
    /// The request body or arguments.
    pub request: serde_json::Value,
    /// How it ended, e.g. "ok", "409 conflict", "Accepted".
    pub outcome: String,
}

/// A stored audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub request: serde_json::Value,
    pub outcome: String,
}

/// An API token's metadata (the token itself is only known when created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    pub name: String,
    pub created_at: Timestamp,
}

/// Counters of the group-commit writer since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    /// Database transactions committed.
    pub batches: u64,
    /// Write operations applied (each caller's request is one).
    pub operations: u64,
    /// Batches that failed as a whole and were retried one operation at a time.
    pub fallbacks: u64,
    /// Wall time spent applying and committing batches, in microseconds (busy / batches = mean
    /// commit time; busy / elapsed = how close the writer is to saturation).
    pub busy_micros: u64,
}
