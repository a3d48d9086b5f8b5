//! Typed OCPP 1.6 messages (serde), named after the spec: `<Action>Request` / `<Action>Response`.
//!
//! Field names are the spec's in snake_case (`charge_point_vendor` ↔ `chargePointVendor`); optional
//! fields are `Option` and omitted when `None`. Timestamps are [`Timestamp`] (lenient, see
//! [`crate::time`]). String fields bounded by the schema (CiString20 etc.) are plain `String`: the
//! schema has checked the length before these types are built; the server parses identities such as
//! id tags into its own newtypes where it needs them.
//!
//! [`Request`] ties a request type to its action and response type; [`ChargerRequest`] and
//! [`CsmsRequest`] are enums over the actions each side may send, for `match`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::Action;
use crate::time::Timestamp;

/// A string enum of the spec: `as_str()` is the wire value, serde uses it, `FromStr` parses it
/// exactly (the schemas' `enum` keyword is exact too).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $( $variant:ident = $wire:literal ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( #[allow(missing_docs)] $variant, )+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The value on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire, )+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A string that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}")]
pub struct UnknownValue {
    /// The enumeration's type name.
    pub kind: &'static str,
    /// The text that was given.
    pub value: String,
}

/// A request payload type: its action and the type of the matching response.
pub trait Request: Serialize + DeserializeOwned {
    /// The action this is the request of.
    const ACTION: Action;
    /// The CALLRESULT payload type.
    type Response: Serialize + DeserializeOwned;
}

// ---------------------------------------------------------------------------------------------
// Shared types
// ---------------------------------------------------------------------------------------------

/// Result of an authorization (Authorize, StartTransaction, StopTransaction, SendLocalList).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTagInfo {
    /// Authorization status.
    pub status: AuthorizationStatus,
    /// Until when the id tag may be cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<Timestamp>,
    /// Parent (group) id tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id_tag: Option<String>,
}

impl IdTagInfo {
    /// `{status}` with no expiry and no parent.
    pub fn new(status: AuthorizationStatus) -> Self {
        IdTagInfo {
            status,
            expiry_date: None,
            parent_id_tag: None,
        }
    }
}

wire_enum! {
    /// `AuthorizationStatus`.
    AuthorizationStatus {
        Accepted = "Accepted",
        Blocked = "Blocked",
        Expired = "Expired",
        Invalid = "Invalid",
        ConcurrentTx = "ConcurrentTx",
    }
}

/// A set of samples taken at one time (`MeterValue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue {
    /// When the samples were taken.
    pub timestamp: Timestamp,
    /// One or more samples.
    pub sampled_value: Vec<SampledValue>,
}

/// One sample (`SampledValue`). Defaults when absent (spec): context Sample.Periodic, format Raw,
/// measurand Energy.Active.Import.Register, unit Wh; see the `*_or_default` helpers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue {
    /// The value as text (a decimal for Raw, opaque for SignedData).
    pub value: String,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ReadingContext>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ValueFormat>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurand: Option<Measurand>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitOfMeasure>,
}

impl SampledValue {
    /// The measurand, with the spec default `Energy.Active.Import.Register`.
    pub fn measurand_or_default(&self) -> Measurand {
        self.measurand
            .unwrap_or(Measurand::EnergyActiveImportRegister)
    }
    /// The unit, with the spec default `Wh`.
    pub fn unit_or_default(&self) -> UnitOfMeasure {
        self.unit.unwrap_or(UnitOfMeasure::Wh)
    }
    /// The context, with the spec default `Sample.Periodic`.
    pub fn context_or_default(&self) -> ReadingContext {
        self.context.unwrap_or(ReadingContext::SamplePeriodic)
    }
}

wire_enum! {
    /// `ReadingContext`.
    ReadingContext {
        InterruptionBegin = "Interruption.Begin",
        InterruptionEnd = "Interruption.End",
        SampleClock = "Sample.Clock",
        SamplePeriodic = "Sample.Periodic",
        TransactionBegin = "Transaction.Begin",
        TransactionEnd = "Transaction.End",
        Trigger = "Trigger",
        Other = "Other",
    }
}

wire_enum! {
    /// `ValueFormat`.
    ValueFormat {
        Raw = "Raw",
        SignedData = "SignedData",
    }
}

wire_enum! {
    /// `Measurand`.
    Measurand {
        EnergyActiveExportRegister = "Energy.Active.Export.Register",
        EnergyActiveImportRegister = "Energy.Active.Import.Register",
        EnergyReactiveExportRegister = "Energy.Reactive.Export.Register",
        EnergyReactiveImportRegister = "Energy.Reactive.Import.Register",
        EnergyActiveExportInterval = "Energy.Active.Export.Interval",
        EnergyActiveImportInterval = "Energy.Active.Import.Interval",
        EnergyReactiveExportInterval = "Energy.Reactive.Export.Interval",
        EnergyReactiveImportInterval = "Energy.Reactive.Import.Interval",
        PowerActiveExport = "Power.Active.Export",
        PowerActiveImport = "Power.Active.Import",
        PowerOffered = "Power.Offered",
        PowerReactiveExport = "Power.Reactive.Export",
        PowerReactiveImport = "Power.Reactive.Import",
        PowerFactor = "Power.Factor",
        CurrentImport = "Current.Import",
        CurrentExport = "Current.Export",
        CurrentOffered = "Current.Offered",
        Voltage = "Voltage",
        Frequency = "Frequency",
        Temperature = "Temperature",
        SoC = "SoC",
        Rpm = "RPM",
    }
}

wire_enum! {
    /// `Phase`.
    Phase {
        L1 = "L1",
        L2 = "L2",
        L3 = "L3",
        N = "N",
        L1N = "L1-N",
        L2N = "L2-N",
        L3N = "L3-N",
        L1L2 = "L1-L2",
        L2L3 = "L2-L3",
        L3L1 = "L3-L1",
    }
}

wire_enum! {
    /// `Location` (of a measurement).
    Location {
        Cable = "Cable",
        Ev = "EV",
        Inlet = "Inlet",
        Outlet = "Outlet",
        Body = "Body",
    }
}

wire_enum! {
    /// `UnitOfMeasure`. `Celcius` is the 1.6 schema's misspelling, kept alongside `Celsius`; `Hertz` is
    /// allowed by the MeterValues schema as shipped.
    UnitOfMeasure {
        Wh = "Wh",
        KWh = "kWh",
        Varh = "varh",
        Kvarh = "kvarh",
        W = "W",
        KW = "kW",
        Va = "VA",
        KVa = "kVA",
        Var = "var",
        Kvar = "kvar",
        A = "A",
        V = "V",
        K = "K",
        Celcius = "Celcius",
        Celsius = "Celsius",
        Fahrenheit = "Fahrenheit",
        Percent = "Percent",
        Hertz = "Hertz",
    }
}

/// `ChargingProfile` (`csChargingProfiles` in SetChargingProfile, `chargingProfile` in
/// RemoteStartTransaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingProfile {
    #[allow(missing_docs)]
    pub charging_profile_id: i64,
    /// Only for TxProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    #[allow(missing_docs)]
    pub stack_level: i64,
    #[allow(missing_docs)]
    pub charging_profile_purpose: ChargingProfilePurpose,
    #[allow(missing_docs)]
    pub charging_profile_kind: ChargingProfileKind,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrency_kind: Option<RecurrencyKind>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Timestamp>,
    #[allow(missing_docs)]
    pub charging_schedule: ChargingSchedule,
}

/// `ChargingSchedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingSchedule {
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_schedule: Option<Timestamp>,
    #[allow(missing_docs)]
    pub charging_rate_unit: ChargingRateUnit,
    #[allow(missing_docs)]
    pub charging_schedule_period: Vec<ChargingSchedulePeriod>,
    /// In `charging_rate_unit`, one decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<f64>,
}

/// `ChargingSchedulePeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingSchedulePeriod {
    /// Seconds from the start of the schedule.
    pub start_period: i64,
    /// In the schedule's unit (A or W), one decimal (`multipleOf 0.1`).
    pub limit: f64,
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_phases: Option<i64>,
}

wire_enum! {
    /// `ChargingProfilePurposeType`.
    ChargingProfilePurpose {
        ChargePointMaxProfile = "ChargePointMaxProfile",
        TxDefaultProfile = "TxDefaultProfile",
        TxProfile = "TxProfile",
    }
}

wire_enum! {
    /// `ChargingProfileKindType`.
    ChargingProfileKind {
        Absolute = "Absolute",
        Recurring = "Recurring",
        Relative = "Relative",
    }
}

wire_enum! {
    /// `RecurrencyKindType`.
    RecurrencyKind {
        Daily = "Daily",
        Weekly = "Weekly",
    }
}

wire_enum! {
    /// `ChargingRateUnitType`.
    ChargingRateUnit {
        A = "A",
        W = "W",
    }
}

wire_enum! {
    /// `status` values shared by several responses (`Accepted` / `Rejected`).
    AcceptedRejected {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

// ---------------------------------------------------------------------------------------------
// Charge point → central system
// ---------------------------------------------------------------------------------------------

/// Authorize.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    #[allow(missing_docs)]
    pub id_tag: String,
}

/// Authorize.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    #[allow(missing_docs)]
    pub id_tag_info: IdTagInfo,
}

/// BootNotification.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BootNotificationRequest {
    pub charge_point_vendor: String,
    pub charge_point_model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_point_serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_box_serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imsi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_serial_number: Option<String>,
}

/// BootNotification.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationResponse {
    #[allow(missing_docs)]
    pub status: RegistrationStatus,
    /// The central system's clock.
    pub current_time: Timestamp,
    /// Heartbeat interval (Accepted) or retry interval (Pending/Rejected), seconds.
    pub interval: i64,
}

wire_enum! {
    /// `RegistrationStatus`.
    RegistrationStatus {
        Accepted = "Accepted",
        Pending = "Pending",
        Rejected = "Rejected",
    }
}

/// DataTransfer.req (either direction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DataTransferRequest {
    pub vendor_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// DataTransfer.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct DataTransferResponse {
    pub status: DataTransferStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

wire_enum! {
    /// `DataTransferStatus`.
    DataTransferStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        UnknownMessageId = "UnknownMessageId",
        UnknownVendorId = "UnknownVendorId",
    }
}

/// DiagnosticsStatusNotification.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticsStatusNotificationRequest {
    #[allow(missing_docs)]
    pub status: DiagnosticsStatus,
}

wire_enum! {
    /// `DiagnosticsStatus`.
    DiagnosticsStatus {
        Idle = "Idle",
        Uploaded = "Uploaded",
        UploadFailed = "UploadFailed",
        Uploading = "Uploading",
    }
}

/// DiagnosticsStatusNotification.conf (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticsStatusNotificationResponse {}

/// FirmwareStatusNotification.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareStatusNotificationRequest {
    #[allow(missing_docs)]
    pub status: FirmwareStatus,
}

wire_enum! {
    /// `FirmwareStatus`.
    FirmwareStatus {
        Downloaded = "Downloaded",
        DownloadFailed = "DownloadFailed",
        Downloading = "Downloading",
        Idle = "Idle",
        InstallationFailed = "InstallationFailed",
        Installing = "Installing",
        Installed = "Installed",
    }
}

/// FirmwareStatusNotification.conf (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareStatusNotificationResponse {}

/// Heartbeat.req (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {}

/// Heartbeat.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The central system's clock.
    pub current_time: Timestamp,
}

/// MeterValues.req.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct MeterValuesRequest {
    pub connector_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    pub meter_value: Vec<MeterValue>,
}

/// MeterValues.conf (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterValuesResponse {}

/// StartTransaction.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StartTransactionRequest {
    pub connector_id: i64,
    pub id_tag: String,
    /// Wh.
    pub meter_start: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<i64>,
    pub timestamp: Timestamp,
}

/// StartTransaction.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StartTransactionResponse {
    pub id_tag_info: IdTagInfo,
    pub transaction_id: i64,
}

/// StatusNotification.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StatusNotificationRequest {
    /// 0 = the charge point as a whole.
    pub connector_id: i64,
    pub error_code: ChargePointErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    pub status: ChargePointStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_error_code: Option<String>,
}

wire_enum! {
    /// `ChargePointErrorCode`.
    ChargePointErrorCode {
        ConnectorLockFailure = "ConnectorLockFailure",
        EvCommunicationError = "EVCommunicationError",
        GroundFailure = "GroundFailure",
        HighTemperature = "HighTemperature",
        InternalError = "InternalError",
        LocalListConflict = "LocalListConflict",
        NoError = "NoError",
        OtherError = "OtherError",
        OverCurrentFailure = "OverCurrentFailure",
        PowerMeterFailure = "PowerMeterFailure",
        PowerSwitchFailure = "PowerSwitchFailure",
        ReaderFailure = "ReaderFailure",
        ResetFailure = "ResetFailure",
        UnderVoltage = "UnderVoltage",
        OverVoltage = "OverVoltage",
        WeakSignal = "WeakSignal",
    }
}

wire_enum! {
    /// `ChargePointStatus`.
    ChargePointStatus {
        Available = "Available",
        Preparing = "Preparing",
        Charging = "Charging",
        SuspendedEvse = "SuspendedEVSE",
        SuspendedEv = "SuspendedEV",
        Finishing = "Finishing",
        Reserved = "Reserved",
        Unavailable = "Unavailable",
        Faulted = "Faulted",
    }
}

/// StatusNotification.conf (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusNotificationResponse {}

/// StopTransaction.req.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StopTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag: Option<String>,
    /// Wh.
    pub meter_stop: i64,
    pub timestamp: Timestamp,
    pub transaction_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StopReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_data: Option<Vec<MeterValue>>,
}

wire_enum! {
    /// `Reason` of StopTransaction (spec default when absent: Local).
    StopReason {
        EmergencyStop = "EmergencyStop",
        EvDisconnected = "EVDisconnected",
        HardReset = "HardReset",
        Local = "Local",
        Other = "Other",
        PowerLoss = "PowerLoss",
        Reboot = "Reboot",
        Remote = "Remote",
        SoftReset = "SoftReset",
        UnlockCommand = "UnlockCommand",
        DeAuthorized = "DeAuthorized",
    }
}

/// StopTransaction.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTransactionResponse {
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}

// ---------------------------------------------------------------------------------------------
// Central system → charge point
// ---------------------------------------------------------------------------------------------

/// CancelReservation.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelReservationRequest {
    #[allow(missing_docs)]
    pub reservation_id: i64,
}

/// CancelReservation.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelReservationResponse {
    #[allow(missing_docs)]
    pub status: AcceptedRejected,
}

/// ChangeAvailability.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ChangeAvailabilityRequest {
    pub connector_id: i64,
    #[serde(rename = "type")]
    pub kind: AvailabilityType,
}

wire_enum! {
    /// `AvailabilityType`.
    AvailabilityType {
        Inoperative = "Inoperative",
        Operative = "Operative",
    }
}

/// ChangeAvailability.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeAvailabilityResponse {
    #[allow(missing_docs)]
    pub status: AvailabilityStatus,
}

wire_enum! {
    /// `AvailabilityStatus`.
    AvailabilityStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        Scheduled = "Scheduled",
    }
}

/// ChangeConfiguration.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ChangeConfigurationRequest {
    pub key: String,
    pub value: String,
}

/// ChangeConfiguration.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeConfigurationResponse {
    #[allow(missing_docs)]
    pub status: ConfigurationStatus,
}

wire_enum! {
    /// `ConfigurationStatus`.
    ConfigurationStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        RebootRequired = "RebootRequired",
        NotSupported = "NotSupported",
    }
}

/// ClearCache.req (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearCacheRequest {}

/// ClearCache.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearCacheResponse {
    #[allow(missing_docs)]
    pub status: AcceptedRejected,
}

/// ClearChargingProfile.req (all fields optional filters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ClearChargingProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_purpose: Option<ChargingProfilePurpose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_level: Option<i64>,
}

/// ClearChargingProfile.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearChargingProfileResponse {
    #[allow(missing_docs)]
    pub status: ClearChargingProfileStatus,
}

wire_enum! {
    /// `ClearChargingProfileStatus`.
    ClearChargingProfileStatus {
        Accepted = "Accepted",
        Unknown = "Unknown",
    }
}

/// GetCompositeSchedule.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetCompositeScheduleRequest {
    pub connector_id: i64,
    /// Seconds.
    pub duration: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_rate_unit: Option<ChargingRateUnit>,
}

/// GetCompositeSchedule.conf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetCompositeScheduleResponse {
    pub status: AcceptedRejected,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_start: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_schedule: Option<ChargingSchedule>,
}

/// GetConfiguration.req (no keys = all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConfigurationRequest {
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
}

/// GetConfiguration.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetConfigurationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_key: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_key: Option<Vec<String>>,
}

/// `KeyValue` of GetConfiguration.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct KeyValue {
    pub key: String,
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// GetDiagnostics.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct GetDiagnosticsRequest {
    /// Upload URI.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Timestamp>,
}

/// GetDiagnostics.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetDiagnosticsResponse {
    #[allow(missing_docs)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// GetLocalListVersion.req (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetLocalListVersionRequest {}

/// GetLocalListVersion.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLocalListVersionResponse {
    /// -1: no local list support; 0: empty list.
    pub list_version: i64,
}

/// RemoteStartTransaction.req.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct RemoteStartTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    pub id_tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile: Option<ChargingProfile>,
}

/// RemoteStartTransaction.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStartTransactionResponse {
    #[allow(missing_docs)]
    pub status: AcceptedRejected,
}

/// RemoteStopTransaction.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteStopTransactionRequest {
    #[allow(missing_docs)]
    pub transaction_id: i64,
}

/// RemoteStopTransaction.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStopTransactionResponse {
    #[allow(missing_docs)]
    pub status: AcceptedRejected,
}

/// ReserveNow.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ReserveNowRequest {
    pub connector_id: i64,
    pub expiry_date: Timestamp,
    pub id_tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id_tag: Option<String>,
    pub reservation_id: i64,
}

/// ReserveNow.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveNowResponse {
    #[allow(missing_docs)]
    pub status: ReservationStatus,
}

wire_enum! {
    /// `ReservationStatus`.
    ReservationStatus {
        Accepted = "Accepted",
        Faulted = "Faulted",
        Occupied = "Occupied",
        Rejected = "Rejected",
        Unavailable = "Unavailable",
    }
}

/// Reset.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequest {
    #[allow(missing_docs)]
    #[serde(rename = "type")]
    pub kind: ResetType,
}

wire_enum! {
    /// `ResetType`.
    ResetType {
        Hard = "Hard",
        Soft = "Soft",
    }
}

/// Reset.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetResponse {
    #[allow(missing_docs)]
    pub status: AcceptedRejected,
}

/// SendLocalList.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct SendLocalListRequest {
    pub list_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_authorization_list: Option<Vec<AuthorizationData>>,
    pub update_type: UpdateType,
}

/// `AuthorizationData` of SendLocalList.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AuthorizationData {
    pub id_tag: String,
    /// Absent in a Differential update = remove the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}

wire_enum! {
    /// `UpdateType`.
    UpdateType {
        Differential = "Differential",
        Full = "Full",
    }
}

/// SendLocalList.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLocalListResponse {
    #[allow(missing_docs)]
    pub status: UpdateStatus,
}

wire_enum! {
    /// `UpdateStatus`.
    UpdateStatus {
        Accepted = "Accepted",
        Failed = "Failed",
        NotSupported = "NotSupported",
        VersionMismatch = "VersionMismatch",
    }
}

/// SetChargingProfile.req.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct SetChargingProfileRequest {
    /// 0 = the whole charge point (ChargePointMaxProfile, or TxDefaultProfile for all connectors).
    pub connector_id: i64,
    pub cs_charging_profiles: ChargingProfile,
}

/// SetChargingProfile.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChargingProfileResponse {
    #[allow(missing_docs)]
    pub status: ChargingProfileStatus,
}

wire_enum! {
    /// `ChargingProfileStatus`.
    ChargingProfileStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotSupported = "NotSupported",
    }
}

/// TriggerMessage.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct TriggerMessageRequest {
    pub requested_message: MessageTrigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
}

wire_enum! {
    /// `MessageTrigger`.
    MessageTrigger {
        BootNotification = "BootNotification",
        DiagnosticsStatusNotification = "DiagnosticsStatusNotification",
        FirmwareStatusNotification = "FirmwareStatusNotification",
        Heartbeat = "Heartbeat",
        MeterValues = "MeterValues",
        StatusNotification = "StatusNotification",
    }
}

/// TriggerMessage.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerMessageResponse {
    #[allow(missing_docs)]
    pub status: TriggerMessageStatus,
}

wire_enum! {
    /// `TriggerMessageStatus`.
    TriggerMessageStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotImplemented = "NotImplemented",
    }
}

/// UnlockConnector.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockConnectorRequest {
    #[allow(missing_docs)]
    pub connector_id: i64,
}

/// UnlockConnector.conf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockConnectorResponse {
    #[allow(missing_docs)]
    pub status: UnlockStatus,
}

wire_enum! {
    /// `UnlockStatus`.
    UnlockStatus {
        Unlocked = "Unlocked",
        UnlockFailed = "UnlockFailed",
        NotSupported = "NotSupported",
    }
}

/// UpdateFirmware.req.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct UpdateFirmwareRequest {
    /// Download URI.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    pub retrieve_date: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<i64>,
}

/// UpdateFirmware.conf (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFirmwareResponse {}

// ---------------------------------------------------------------------------------------------
// Action ↔ type wiring
// ---------------------------------------------------------------------------------------------

macro_rules! requests {
    ($( $action:ident: $req:ident => $resp:ident ),+ $(,)?) => {
        $( impl Request for $req {
            const ACTION: Action = Action::$action;
            type Response = $resp;
        } )+
    };
}

requests! {
    Authorize: AuthorizeRequest => AuthorizeResponse,
    BootNotification: BootNotificationRequest => BootNotificationResponse,
    CancelReservation: CancelReservationRequest => CancelReservationResponse,
    ChangeAvailability: ChangeAvailabilityRequest => ChangeAvailabilityResponse,
    ChangeConfiguration: ChangeConfigurationRequest => ChangeConfigurationResponse,
    ClearCache: ClearCacheRequest => ClearCacheResponse,
    ClearChargingProfile: ClearChargingProfileRequest => ClearChargingProfileResponse,
    DataTransfer: DataTransferRequest => DataTransferResponse,
    DiagnosticsStatusNotification: DiagnosticsStatusNotificationRequest => DiagnosticsStatusNotificationResponse,
    FirmwareStatusNotification: FirmwareStatusNotificationRequest => FirmwareStatusNotificationResponse,
    GetCompositeSchedule: GetCompositeScheduleRequest => GetCompositeScheduleResponse,
    GetConfiguration: GetConfigurationRequest => GetConfigurationResponse,
    GetDiagnostics: GetDiagnosticsRequest => GetDiagnosticsResponse,
    GetLocalListVersion: GetLocalListVersionRequest => GetLocalListVersionResponse,
    Heartbeat: HeartbeatRequest => HeartbeatResponse,
    MeterValues: MeterValuesRequest => MeterValuesResponse,
    RemoteStartTransaction: RemoteStartTransactionRequest => RemoteStartTransactionResponse,
    RemoteStopTransaction: RemoteStopTransactionRequest => RemoteStopTransactionResponse,
    ReserveNow: ReserveNowRequest => ReserveNowResponse,
    Reset: ResetRequest => ResetResponse,
    SendLocalList: SendLocalListRequest => SendLocalListResponse,
    SetChargingProfile: SetChargingProfileRequest => SetChargingProfileResponse,
    StartTransaction: StartTransactionRequest => StartTransactionResponse,
    StatusNotification: StatusNotificationRequest => StatusNotificationResponse,
    StopTransaction: StopTransactionRequest => StopTransactionResponse,
    TriggerMessage: TriggerMessageRequest => TriggerMessageResponse,
    UnlockConnector: UnlockConnectorRequest => UnlockConnectorResponse,
    UpdateFirmware: UpdateFirmwareRequest => UpdateFirmwareResponse,
}

macro_rules! request_enum {
    ($(#[$meta:meta])* $name:ident { $( $action:ident($req:ident) ),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum $name {
            $( $action($req), )+
        }

        impl $name {
            /// The action of this request.
            pub fn action(&self) -> Action {
                match self { $( $name::$action(_) => Action::$action, )+ }
            }

            /// Build from a payload of `action`. Call after schema validation: then the only
            /// failures left are values the schema allows but the types cannot hold (e.g. an
            /// integer beyond i64). `None` when `action` is not in this enum.
            pub fn from_payload(action: Action, payload: Value) -> Option<Result<Self, serde_json::Error>> {
                match action {
                    $( Action::$action => Some(serde_json::from_value::<$req>(payload).map($name::$action)), )+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// The payload as JSON.
            pub fn to_payload(&self) -> Value {
                // Serializing these plain structs into a Value cannot fail (string keys, finite
                // numbers from parsed JSON); Null would only hide a bug, caught by the round-trip tests.
                match self { $( $name::$action(r) => serde_json::to_value(r).unwrap_or(Value::Null), )+ }
            }
        }

        $( impl From<$req> for $name {
            fn from(r: $req) -> Self { $name::$action(r) }
        } )+
    };
}

request_enum! {
    /// A request a charge point sends to the central system, typed after validation.
    ChargerRequest {
        Authorize(AuthorizeRequest),
        BootNotification(BootNotificationRequest),
        DataTransfer(DataTransferRequest),
        DiagnosticsStatusNotification(DiagnosticsStatusNotificationRequest),
        FirmwareStatusNotification(FirmwareStatusNotificationRequest),
        Heartbeat(HeartbeatRequest),
        MeterValues(MeterValuesRequest),
        StartTransaction(StartTransactionRequest),
        StatusNotification(StatusNotificationRequest),
        StopTransaction(StopTransactionRequest),
    }
}

request_enum! {
    /// A request the central system sends to a charge point (what a charge-point implementation
    /// such as a simulator or load generator receives).
    CsmsRequest {
        CancelReservation(CancelReservationRequest),
        ChangeAvailability(ChangeAvailabilityRequest),
        ChangeConfiguration(ChangeConfigurationRequest),
        ClearCache(ClearCacheRequest),
        ClearChargingProfile(ClearChargingProfileRequest),
        DataTransfer(DataTransferRequest),
        GetCompositeSchedule(GetCompositeScheduleRequest),
        GetConfiguration(GetConfigurationRequest),
        GetDiagnostics(GetDiagnosticsRequest),
        GetLocalListVersion(GetLocalListVersionRequest),
        RemoteStartTransaction(RemoteStartTransactionRequest),
        RemoteStopTransaction(RemoteStopTransactionRequest),
        ReserveNow(ReserveNowRequest),
        Reset(ResetRequest),
        SendLocalList(SendLocalListRequest),
        SetChargingProfile(SetChargingProfileRequest),
        TriggerMessage(TriggerMessageRequest),
        UnlockConnector(UnlockConnectorRequest),
        UpdateFirmware(UpdateFirmwareRequest),
    }
}
