//! Answers to the ten charger-initiated OCPP 1.6 actions.
//!
//! Each handler persists what the charger reported and only then returns the answer, so nothing
//! acknowledged to a charger can be lost (the store's group-commit writer resolves a write once
//! its batch has committed). Payloads arrive schema-validated and typed by `orderly-ocpp`; values
//! are converted to the store's types here, at the edge.

use super::loop_inputs;
use crate::config::UnknownChargers;
use crate::control;
use crate::state::AppState;
use jiff::Timestamp;
use orderly_control::Input;
use orderly_core::{ChargePointId, IdTag};
use orderly_ocpp::ErrorCode;
use orderly_ocpp::v16::{self, ChargerRequest};
use orderly_store as store;
use orderly_store::StoreError;
use serde::Serialize;
use serde_json::Value;

/// Vendor id for DataTransfer messages addressed to Orderly itself. No message ids are defined
/// yet, so such messages are answered `UnknownMessageId`; any other vendor gets `UnknownVendorId`.
pub const ORDERLY_VENDOR_ID: &str = "orderly";

/// What a handler answers with instead of a CALLRESULT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub code: ErrorCode,
    pub description: String,
}

impl HandlerError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(err: StoreError) -> Self {
        match err {
            // A decision about this message's values (e.g. out-of-range ids): the charger sent
            // something the schema allows but storage cannot hold.
            StoreError::Invalid { .. } => {
                Self::new(ErrorCode::PropertyConstraintViolation, err.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure while handling a charger request");
                // Not acknowledged, so the charger keeps the message queued and retries it.
                Self::new(ErrorCode::InternalError, "storage unavailable, retry later")
            }
        }
    }
}

/// Per-connection facts the handlers need.
#[derive(Debug)]
pub struct Session {
    pub id: ChargePointId,
    /// Registered by an operator (as of the handshake or the last BootNotification). Chargers
    /// that are not may only send BootNotification (OCPP 1.6 §4.2: a Pending/Rejected charge
    /// point must not send other requests).
    pub accepted: bool,
}

/// Answer one charger request; `now` is the receive time.
pub async fn handle(
    state: &AppState,
    session: &mut Session,
    request: ChargerRequest,
    now: Timestamp,
) -> Result<Value, HandlerError> {
    if !session.accepted && !matches!(request, ChargerRequest::BootNotification(_)) {
        return Err(HandlerError::new(
            ErrorCode::SecurityError,
            "charge point is not registered: only BootNotification is allowed until an operator \
             registers it",
        ));
    }
    let store = state.store();
    let id = &session.id;
    match request {
        ChargerRequest::BootNotification(req) => boot(state, session, req, now).await.map(to_value),
        ChargerRequest::Heartbeat(_) => {
            store.record_seen(id, now).await?;
            Ok(to_value(v16::HeartbeatResponse {
                current_time: now.into(),
            }))
        }
        ChargerRequest::StatusNotification(req) => {
            let report = store::StatusReport {
                connector_id: connector(req.connector_id)?,
                status: req.status.as_str().to_owned(),
                error_code: req.error_code.as_str().to_owned(),
                info: req.info,
                vendor_id: req.vendor_id,
                vendor_error_code: req.vendor_error_code,
                timestamp: req.timestamp.map(|t| t.as_jiff()),
            };
            let (connector_id, status) = (report.connector_id, report.status.clone());
            store.record_status(id, report, now).await?;
            crate::reminders::status_stored(state, id, connector_id, &status, now).await;
            // Committed: a bay's charger feeds the parking rules (clause 十二).
            state
                .parking()
                .connector_status(id.as_str(), connector_id, &status, now);
            Ok(to_value(v16::StatusNotificationResponse {}))
        }
        ChargerRequest::Authorize(req) => {
            let info = match IdTag::parse(req.id_tag) {
                // The tag's status, and on a shared private charger the sharing rule.
                Ok(tag) => store.authorize_at(id, &tag, now).await?.into_ocpp(),
                // Printable ASCII is all we ever register, so any other tag is unknown.
                Err(_) => v16::IdTagInfo::new(v16::AuthorizationStatus::Invalid),
            };
            Ok(to_value(v16::AuthorizeResponse { id_tag_info: info }))
        }
        ChargerRequest::StartTransaction(req) => {
            let start = store::StartTransaction {
                charger_id: id.clone(),
                connector_id: connector(req.connector_id)?,
                id_tag: id_tag(req.id_tag)?,
                meter_start_wh: req.meter_start,
                timestamp: req.timestamp.as_jiff(),
                reservation_id: req
                    .reservation_id
                    .map(|r| small_int(r, "reservationId"))
                    .transpose()?,
            };
            let (charger, connector_id, tag, meter_start_wh, at) = (
                start.charger_id.clone(),
                start.connector_id,
                start.id_tag.clone(),
                start.meter_start_wh,
                start.timestamp,
            );
            let outcome = store.start_transaction(start, now).await?;
            // Committed: tell the community's controller (a replay is already known to it).
            if !outcome.replayed
                && outcome.id_tag_info.status == store::AuthorizationStatus::Accepted
            {
                let transaction_id = i64::from(outcome.transaction_id.0);
                crate::reminders::transaction_started(
                    state,
                    &charger,
                    connector_id,
                    &tag,
                    transaction_id,
                    now,
                )
                .await;
                state.controllers().post(
                    &charger,
                    control::Msg::Started {
                        transaction_id: i64::from(outcome.transaction_id.0),
                        charger: charger.clone(),
                        connector_id,
                        id_tag: Some(tag),
                        meter_start_wh,
                        at,
                    },
                );
            }
            Ok(to_value(v16::StartTransactionResponse {
                id_tag_info: outcome.id_tag_info.into_ocpp(),
                transaction_id: i64::from(outcome.transaction_id.0),
            }))
        }
        ChargerRequest::StopTransaction(req) => {
            let stop = store::StopTransaction {
                charger_id: id.clone(),
                transaction_id: store::TransactionId(small_int(
                    req.transaction_id,
                    "transactionId",
                )?),
                id_tag: req.id_tag.map(id_tag).transpose()?,
                meter_stop_wh: req.meter_stop,
                timestamp: req.timestamp.as_jiff(),
                reason: req.reason.map(|r| r.as_str().to_owned()),
                transaction_data: req
                    .transaction_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(meter_value)
                    .collect(),
            };
            let stopped_at = stop.timestamp;
            let outcome = store.stop_transaction(stop, now).await?;
            if outcome.was_known && !outcome.already_stopped {
                state.controllers().input(
                    id,
                    Input::TransactionStopped {
                        transaction_id: i64::from(outcome.recorded_as.0),
                        at: stopped_at,
                    },
                );
            }
            Ok(to_value(v16::StopTransactionResponse {
                id_tag_info: outcome.id_tag_info.map(IntoOcpp::into_ocpp),
            }))
        }
        ChargerRequest::MeterValues(req) => {
            let report = store::MeterValuesReport {
                charger_id: id.clone(),
                connector_id: connector(req.connector_id)?,
                transaction_id: req
                    .transaction_id
                    .map(|t| small_int(t, "transactionId").map(store::TransactionId))
                    .transpose()?,
                meter_values: req.meter_value.into_iter().map(meter_value).collect(),
            };
            let readings = loop_inputs::readings(&report.meter_values);
            let (connector_id, transaction_id) = (
                report.connector_id,
                report.transaction_id.map(|t| i64::from(t.0)),
            );
            store.record_meter_values(report, now).await?;
            post_readings(state, id, connector_id, transaction_id, readings);
            Ok(to_value(v16::MeterValuesResponse {}))
        }
        ChargerRequest::DataTransfer(req) => {
            let status = if req.vendor_id == ORDERLY_VENDOR_ID {
                v16::DataTransferStatus::UnknownMessageId
            } else {
                v16::DataTransferStatus::UnknownVendorId
            };
            store.record_seen(id, now).await?;
            Ok(to_value(v16::DataTransferResponse { status, data: None }))
        }
        ChargerRequest::FirmwareStatusNotification(req) => {
            store
                .record_firmware_status(id, req.status.as_str(), now)
                .await?;
            Ok(to_value(v16::FirmwareStatusNotificationResponse {}))
        }
        ChargerRequest::DiagnosticsStatusNotification(req) => {
            store
                .record_diagnostics_status(id, req.status.as_str(), now)
                .await?;
            Ok(to_value(v16::DiagnosticsStatusNotificationResponse {}))
        }
    }
}

async fn boot(
    state: &AppState,
    session: &mut Session,
    req: v16::BootNotificationRequest,
    now: Timestamp,
) -> Result<v16::BootNotificationResponse, HandlerError> {
    let store = state.store();
    let id = &session.id;
    let info = store::BootInfo {
        vendor: req.charge_point_vendor,
        model: req.charge_point_model,
        serial_number: req.charge_point_serial_number,
        charge_box_serial_number: req.charge_box_serial_number,
        firmware_version: req.firmware_version,
        iccid: req.iccid,
        imsi: req.imsi,
        meter_type: req.meter_type,
        meter_serial_number: req.meter_serial_number,
    };
    let registered = store
        .get_charger(id)
        .await?
        .is_some_and(|c| c.status == store::ChargerStatus::Registered);
    let status = if registered {
        v16::RegistrationStatus::Accepted
    } else {
        match state.config().unknown_chargers {
            UnknownChargers::Pending => {
                // Listed as pending (with what it told us) until an operator registers it.
                store.ensure_pending_charger(id, now).await?;
                v16::RegistrationStatus::Pending
            }
            // `refuse` reaches here only for a charger removed while it was connected.
            UnknownChargers::Reject | UnknownChargers::Refuse => v16::RegistrationStatus::Rejected,
        }
    };
    if status != v16::RegistrationStatus::Rejected {
        store.record_boot(id, info, now).await?;
    }
    session.accepted = registered;
    if status == v16::RegistrationStatus::Accepted {
        // Its profiles (ChargePointMax, TxDefault) are (re)sent: a rebooted charger may have
        // lost them. First its rate unit is asked (GetConfiguration), so they go out in a unit
        // it takes; the call queues behind this answer on the connection.
        tokio::spawn(crate::control::rate_unit::discover_then_connect(
            state.clone(),
            id.clone(),
        ));
        // A charger that left its community while offline still holds its profiles.
        tokio::spawn(crate::control::release::release_if_pending(
            state.clone(),
            id.clone(),
        ));
    }
    Ok(v16::BootNotificationResponse {
        status,
        current_time: now.into(),
        // Accepted: the heartbeat interval; Pending/Rejected: when to retry the boot, the same
        // interval so an operator's registration takes effect within one heartbeat period.
        interval: i64::from(state.config().heartbeat_interval),
    })
}

/// Hand a charger's readings to its community's controller, and the community meter's to the
/// community it measures.
fn post_readings(
    state: &AppState,
    charger: &ChargePointId,
    connector_id: i32,
    transaction_id: Option<i64>,
    readings: Vec<loop_inputs::Reading>,
) {
    let controllers = state.controllers();
    if let Some(community) = controllers.metered_community(charger) {
        for r in &readings {
            if let Some(power_w) = r.power_w {
                controllers.post_community(
                    &community,
                    control::Msg::Input(Input::CommunityMeter { at: r.at, power_w }),
                );
            }
        }
    }
    for r in readings {
        controllers.input(
            charger,
            Input::Meter {
                charger: charger.clone(),
                connector_id,
                transaction_id,
                at: r.at,
                power_w: r.power_w,
                energy_wh: r.energy_wh,
                soc_percent: r.soc_percent,
            },
        );
    }
}

fn to_value<T: Serialize>(response: T) -> Value {
    // The response types are plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_value(response).unwrap_or(Value::Null)
}

fn connector(connector_id: i64) -> Result<i32, HandlerError> {
    small_int(connector_id, "connectorId")
}

fn small_int(value: i64, field: &str) -> Result<i32, HandlerError> {
    i32::try_from(value).map_err(|_| {
        HandlerError::new(
            ErrorCode::PropertyConstraintViolation,
            format!("{field} {value} is outside the 32-bit range OCPP integers have"),
        )
    })
}

fn id_tag(raw: String) -> Result<IdTag, HandlerError> {
    IdTag::parse(raw)
        .map_err(|e| HandlerError::new(ErrorCode::PropertyConstraintViolation, e.to_string()))
}

fn meter_value(mv: v16::MeterValue) -> store::MeterValue {
    store::MeterValue {
        timestamp: mv.timestamp.as_jiff(),
        sampled_values: mv
            .sampled_value
            .into_iter()
            .map(|s| store::SampledValue {
                value: s.value,
                context: s.context.map(|x| x.as_str().to_owned()),
                format: s.format.map(|x| x.as_str().to_owned()),
                measurand: s.measurand.map(|x| x.as_str().to_owned()),
                phase: s.phase.map(|x| x.as_str().to_owned()),
                location: s.location.map(|x| x.as_str().to_owned()),
                unit: s.unit.map(|x| x.as_str().to_owned()),
            })
            .collect(),
    }
}

/// Store → wire conversion of idTagInfo.
trait IntoOcpp {
    fn into_ocpp(self) -> v16::IdTagInfo;
}

impl IntoOcpp for store::IdTagInfo {
    fn into_ocpp(self) -> v16::IdTagInfo {
        v16::IdTagInfo {
            status: match self.status {
                store::AuthorizationStatus::Accepted => v16::AuthorizationStatus::Accepted,
                store::AuthorizationStatus::Blocked => v16::AuthorizationStatus::Blocked,
                store::AuthorizationStatus::Expired => v16::AuthorizationStatus::Expired,
                store::AuthorizationStatus::Invalid => v16::AuthorizationStatus::Invalid,
                store::AuthorizationStatus::ConcurrentTx => v16::AuthorizationStatus::ConcurrentTx,
            },
            expiry_date: self.expiry_date.map(Into::into),
            parent_id_tag: self.parent_id_tag.map(|t| t.to_string()),
        }
    }
}
