//! JSON shapes of the HTTP API, converted from store records at the edge so the wire format is
//! stated in one place (and documented in the OpenAPI schema).

use jiff::Timestamp;
use orderly_store as store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A charger, with whether it is connected now and its connectors' last status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargerDto {
    pub id: String,
    /// `registered` (added by an operator) or `pending` (connected unannounced, awaiting an operator).
    #[schema(example = "registered")]
    pub status: String,
    /// Whether the charger has an open OCPP WebSocket to this server now.
    pub connected: bool,
    /// Last message received from the charger (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<Timestamp>,
    /// Whether HTTP Basic auth is required.
    pub has_password: bool,
    pub description: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub charge_box_serial_number: Option<String>,
    pub firmware_version: Option<String>,
    /// Last FirmwareStatusNotification status.
    pub firmware_status: Option<String>,
    /// Last DiagnosticsStatusNotification status.
    pub diagnostics_status: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_boot_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub connectors: Vec<ConnectorDto>,
}

impl ChargerDto {
    pub fn new(
        charger: store::Charger,
        connected: bool,
        connectors: Vec<store::Connector>,
    ) -> Self {
        Self {
            id: charger.id.to_string(),
            status: charger.status.as_str().to_owned(),
            connected,
            last_seen: charger.last_seen_at,
            has_password: charger.has_password,
            description: charger.description,
            vendor: charger.vendor,
            model: charger.model,
            serial_number: charger.serial_number,
            charge_box_serial_number: charger.charge_box_serial_number,
            firmware_version: charger.firmware_version,
            firmware_status: charger.firmware_status,
            diagnostics_status: charger.diagnostics_status,
            last_boot_at: charger.last_boot_at,
            created_at: charger.created_at,
            connectors: connectors.into_iter().map(ConnectorDto::from).collect(),
        }
    }
}

/// Latest status of one connector (0 = the charge point as a whole).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorDto {
    pub connector_id: i32,
    /// OCPP ChargePointStatus, e.g. `Available`, `Charging`.
    pub status: String,
    /// OCPP ChargePointErrorCode, e.g. `NoError`.
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<store::Connector> for ConnectorDto {
    fn from(c: store::Connector) -> Self {
        Self {
            connector_id: c.connector_id,
            status: c.status,
            error_code: c.error_code,
            info: c.info,
            vendor_id: c.vendor_id,
            vendor_error_code: c.vendor_error_code,
            updated_at: c.updated_at,
        }
    }
}

/// One StatusNotification as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusRecordDto {
    pub connector_id: i32,
    pub status: String,
    pub error_code: String,
    pub info: Option<String>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
    /// The charger's time of the report.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
}

impl From<store::StatusRecord> for StatusRecordDto {
    fn from(r: store::StatusRecord) -> Self {
        Self {
            connector_id: r.connector_id,
            status: r.status,
            error_code: r.error_code,
            info: r.info,
            vendor_id: r.vendor_id,
            vendor_error_code: r.vendor_error_code,
            timestamp: r.timestamp,
            received_at: r.received_at,
        }
    }
}

/// Registering a charger (or accepting a pending one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChargerDto {
    /// Charge point id: the last segment of the charger's OCPP URL.
    #[schema(example = "CP_001")]
    pub id: String,
    /// HTTP Basic password the charger must send; omit for no authentication.
    pub password: Option<String>,
    pub description: Option<String>,
}

/// OCPP 1.6 AuthorizationStatus of an id tag.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum TagStatusDto {
    Accepted,
    Blocked,
    Expired,
    Invalid,
    ConcurrentTx,
}

impl From<TagStatusDto> for store::AuthorizationStatus {
    fn from(s: TagStatusDto) -> Self {
        match s {
            TagStatusDto::Accepted => Self::Accepted,
            TagStatusDto::Blocked => Self::Blocked,
            TagStatusDto::Expired => Self::Expired,
            TagStatusDto::Invalid => Self::Invalid,
            TagStatusDto::ConcurrentTx => Self::ConcurrentTx,
        }
    }
}

impl From<store::AuthorizationStatus> for TagStatusDto {
    fn from(s: store::AuthorizationStatus) -> Self {
        match s {
            store::AuthorizationStatus::Accepted => Self::Accepted,
            store::AuthorizationStatus::Blocked => Self::Blocked,
            store::AuthorizationStatus::Expired => Self::Expired,
            store::AuthorizationStatus::Invalid => Self::Invalid,
            store::AuthorizationStatus::ConcurrentTx => Self::ConcurrentTx,
        }
    }
}

/// An id tag (RFID card, app token) and how chargers should treat it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdTagDto {
    #[schema(example = "04A2B3C4D5")]
    pub id_tag: String,
    pub status: TagStatusDto,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiry_date: Option<Timestamp>,
    pub parent_id_tag: Option<String>,
}

impl From<store::IdTagRecord> for IdTagDto {
    fn from(r: store::IdTagRecord) -> Self {
        Self {
            id_tag: r.id_tag.to_string(),
            status: r.status.into(),
            expiry_date: r.expiry_date,
            parent_id_tag: r.parent_id_tag.map(|t| t.to_string()),
        }
    }
}

/// Creating an id tag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIdTagDto {
    pub id_tag: String,
    pub status: TagStatusDto,
    /// RFC 3339; after it the tag answers `Expired`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiry_date: Option<Timestamp>,
    pub parent_id_tag: Option<String>,
}

/// Changing an id tag (the tag itself is in the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIdTagDto {
    pub status: TagStatusDto,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiry_date: Option<Timestamp>,
    pub parent_id_tag: Option<String>,
}

/// A charging transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionDto {
    /// The OCPP transactionId.
    pub id: i32,
    pub charger_id: String,
    /// Unknown only for a transaction learned from its StopTransaction.
    pub connector_id: Option<i32>,
    pub id_tag: Option<String>,
    /// The id tag's authorization when the transaction started.
    pub id_tag_status: Option<TagStatusDto>,
    pub meter_start_wh: Option<i64>,
    pub meter_stop_wh: Option<i64>,
    /// meter_stop_wh − meter_start_wh, when both are known.
    pub energy_wh: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<Timestamp>,
    pub stop_reason: Option<String>,
    pub reservation_id: Option<i32>,
    /// `start_transaction`, or `stop_transaction` for a transaction first seen at its stop.
    pub origin: String,
}

impl From<store::Transaction> for TransactionDto {
    fn from(t: store::Transaction) -> Self {
        Self {
            id: t.id.0,
            energy_wh: t.energy_wh(),
            charger_id: t.charger_id.to_string(),
            connector_id: t.connector_id,
            id_tag: t.id_tag.map(|x| x.to_string()),
            id_tag_status: t.id_tag_status.map(Into::into),
            meter_start_wh: t.meter_start_wh,
            meter_stop_wh: t.meter_stop_wh,
            started_at: t.started_at,
            stopped_at: t.stopped_at,
            stop_reason: t.stop_reason,
            reservation_id: t.reservation_id,
            origin: match t.origin {
                store::TransactionOrigin::StartTransaction => "start_transaction",
                store::TransactionOrigin::StopTransaction => "stop_transaction",
            }
            .to_owned(),
        }
    }
}

/// One sampled meter value, OCPP defaults filled in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeterValueDto {
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    pub connector_id: i32,
    pub transaction_id: Option<i32>,
    #[schema(example = "Energy.Active.Import.Register")]
    pub measurand: String,
    /// The value exactly as the charger sent it.
    pub value: String,
    /// The value as a number, when it is one.
    pub value_number: Option<f64>,
    pub unit: String,
    pub phase: Option<String>,
    pub context: String,
    pub location: String,
    pub format: String,
}

impl From<store::StoredSample> for MeterValueDto {
    fn from(s: store::StoredSample) -> Self {
        Self {
            timestamp: s.timestamp,
            connector_id: s.connector_id,
            transaction_id: s.transaction_id.map(|t| t.0),
            measurand: s.measurand,
            value: s.value,
            value_number: s.value_number,
            unit: s.unit,
            phase: s.phase,
            context: s.context,
            location: s.location,
            format: s.format,
        }
    }
}

/// One operator command, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: the API token's name, or `cli`.
    pub actor: String,
    /// What, e.g. `charger.add`, `operation.Reset`.
    pub action: String,
    /// On what, e.g. a charger id.
    pub target: Option<String>,
    /// The request as received: any JSON value (a malformed body is recorded as sent).
    pub request: Value,
    /// How it ended.
    pub outcome: String,
}

impl From<store::AuditEntry> for AuditEntryDto {
    fn from(e: store::AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            request: e.request,
            outcome: e.outcome,
        }
    }
}

/// The charger's answer to an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationResponse {
    /// The CALLRESULT payload as the charger sent it.
    #[schema(value_type = Object)]
    pub response: Value,
}
