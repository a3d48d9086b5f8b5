//! The OCPP-J 1.6 frames one simulated charge point needs: CALLs for BootNotification, Heartbeat
//! and MeterValues with schema-valid payloads, and a reader for the server's CALLRESULT,
//! CALLERROR and CALL frames. (The generator stays independent of the server's own OCPP crate, so
//! the benchmark does not measure one implementation against itself.)

use serde_json::{Value, json};
use thiserror::Error;

/// The actions the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    BootNotification,
    Heartbeat,
    MeterValues,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::BootNotification => "BootNotification",
            Action::Heartbeat => "Heartbeat",
            Action::MeterValues => "MeterValues",
        }
    }
}

/// A CALL frame `[2, id, action, payload]` as text.
pub fn call(message_id: &str, action: Action, payload: &Value) -> String {
    json!([2, message_id, action.name(), payload]).to_string()
}

/// BootNotification.req: vendor/model within the schema's 20 characters, serial within 25.
pub fn boot_notification(serial: &str) -> Value {
    json!({
        "chargePointVendor": "Orderly",
        "chargePointModel": "LoadGen",
        "chargePointSerialNumber": serial,
        "firmwareVersion": env!("CARGO_PKG_VERSION"),
    })
}

/// Heartbeat.req has an empty payload.
pub fn heartbeat() -> Value {
    json!({})
}

/// MeterValues.req for connector 1 with one periodic energy register sample.
/// `timestamp` is RFC 3339 (the schema's `date-time`).
pub fn meter_values(energy_wh: u64, timestamp: &str) -> Value {
    json!({
        "connectorId": 1,
        "meterValue": [{
            "timestamp": timestamp,
            "sampledValue": [{
                "value": energy_wh.to_string(),
                "context": "Sample.Periodic",
                "format": "Raw",
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            }],
        }],
    })
}

/// A frame received from the central system.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `[3, id, payload]`
    Result { id: String, payload: Value },
    /// `[4, id, code, description, details]`
    Error { id: String, code: String },
    /// `[2, id, action, payload]`: a server-initiated request.
    Call {
        id: String,
        action: String,
        payload: Value,
    },
}

/// Why a received frame could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    #[error("frame is not an OCPP-J array of the right shape")]
    Shape,
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Incoming, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let Value::Array(mut items) = value else {
        return Err(FrameError::Shape);
    };
    let kind = items
        .first()
        .and_then(Value::as_u64)
        .ok_or(FrameError::Shape)?;
    let text_at = |items: &[Value], i: usize| {
        items
            .get(i)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(FrameError::Shape)
    };
    match (kind, items.len()) {
        (3, 3) => Ok(Incoming::Result {
            id: text_at(&items, 1)?,
            payload: items.pop().unwrap_or(Value::Null),
        }),
        (4, 5) => Ok(Incoming::Error {
            id: text_at(&items, 1)?,
            code: text_at(&items, 2)?,
        }),
        (2, 4) => Ok(Incoming::Call {
            id: text_at(&items, 1)?,
            action: text_at(&items, 2)?,
            payload: items.pop().unwrap_or(Value::Null),
        }),
        _ => Err(FrameError::Shape),
    }
}

/// The CALLERROR a charge point sends back for a server request it does not implement.
pub fn not_implemented(message_id: &str, action: &str) -> String {
    json!([
        4,
        message_id,
        "NotImplemented",
        format!("load generator does not implement {action}"),
        {}
    ])
    .to_string()
}

/// `status` of a BootNotification.conf payload (`Accepted`, `Pending`, `Rejected`).
pub fn boot_status(payload: &Value) -> Option<&str> {
    payload.get("status").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_frame_layout() {
        let text = call("17", Action::Heartbeat, &heartbeat());
        assert_eq!(text, r#"[2,"17","Heartbeat",{}]"#);
    }

    #[test]
    fn boot_payload_respects_schema_lengths() {
        let p = boot_notification("LG00001");
        assert!(p["chargePointVendor"].as_str().unwrap().len() <= 20);
        assert!(p["chargePointModel"].as_str().unwrap().len() <= 20);
        assert_eq!(p["chargePointSerialNumber"], "LG00001");
    }

    #[test]
    fn meter_values_payload_shape() {
        let p = meter_values(1500, "2026-11-26T12:00:00Z");
        assert_eq!(p["connectorId"], 1);
        let sample = &p["meterValue"][0]["sampledValue"][0];
        assert_eq!(sample["value"], "1500");
        assert_eq!(sample["unit"], "Wh");
        assert_eq!(p["meterValue"][0]["timestamp"], "2026-11-26T12:00:00Z");
    }

    #[test]
    fn parses_result_error_and_call() {
        assert_eq!(
            parse(r#"[3,"1",{"status":"Accepted","interval":10}]"#).unwrap(),
            Incoming::Result {
                id: "1".into(),
                payload: json!({"status":"Accepted","interval":10})
            }
        );
        assert_eq!(
            parse(r#"[4,"2","FormationViolation","bad",{}]"#).unwrap(),
            Incoming::Error {
                id: "2".into(),
                code: "FormationViolation".into()
            }
        );
        assert_eq!(
            parse(r#"[2,"x","Reset",{"type":"Soft"}]"#).unwrap(),
            Incoming::Call {
                id: "x".into(),
                action: "Reset".into(),
                payload: json!({"type": "Soft"})
            }
        );
    }

    #[test]
    fn refuses_malformed_frames() {
        assert!(matches!(parse("nope"), Err(FrameError::NotJson(_))));
        assert_eq!(parse(r#"{"a":1}"#), Err(FrameError::Shape));
        assert_eq!(parse(r#"[3,"1"]"#), Err(FrameError::Shape));
        assert_eq!(parse(r#"[3,1,{}]"#), Err(FrameError::Shape));
        assert_eq!(parse(r#"[9,"1",{}]"#), Err(FrameError::Shape));
    }

    #[test]
    fn not_implemented_is_a_callerror() {
        let v: Value = serde_json::from_str(&not_implemented("5", "Reset")).unwrap();
        assert_eq!(v[0], 4);
        assert_eq!(v[1], "5");
        assert_eq!(v[2], "NotImplemented");
    }

    #[test]
    fn boot_status_reads_the_status_field() {
        assert_eq!(boot_status(&json!({"status":"Pending"})), Some("Pending"));
        assert_eq!(boot_status(&json!({})), None);
    }
}
