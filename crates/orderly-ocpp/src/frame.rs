//! OCPP-J RPC framing: `[2, id, action, payload]`, `[3, id, payload]`, `[4, id, code, description, details]`.
//!
//! # How malformed text is classified
//!
//! OCPP-J 1.6 §4.2.3 defines the codes but does not say which one each kind of broken frame gets, so
//! this follows the spec wording and, where that leaves a choice, the Python `ocpp` package (the
//! charge-point library the interop tests use):
//!
//! | input | code | why |
//! |---|---|---|
//! | not JSON | `FormationViolation` | "syntactically incorrect" |
//! | JSON but not an array, empty array | `ProtocolError` | "incomplete"; Python `ocpp` does the same |
//! | wrong number of elements for the type id | `ProtocolError` | "incomplete" / not the PDU structure |
//! | type id not a number, id/action/code not strings, description not a string | `FormationViolation` | "not conform the PDU structure" |
//! | unknown message type id (e.g. 5) | `ProtocolError` | 1.6 has no code for it; OCPP 2.0.1 later added `MessageTypeNotSupported` for exactly this |
//!
//! The unique id of a broken frame is recovered when element 1 is a string (or a number, used in its
//! JSON text form); otherwise [`UNKNOWN_UNIQUE_ID`] (`"-1"`, the id OCPP 2.0.1 prescribes for this case)
//! is used in the CALLERROR.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// The unique id used in a CALLERROR answering a frame whose id could not be recovered.
pub const UNKNOWN_UNIQUE_ID: &str = "-1";

/// Message type ids of OCPP-J.
pub const CALL: u64 = 2;
/// See [`CALL`].
pub const CALL_RESULT: u64 = 3;
/// See [`CALL`].
pub const CALL_ERROR: u64 = 4;

/// One OCPP-J message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `[2, uniqueId, action, payload]`. `action` is kept as text so unknown actions can be answered
    /// with `NotImplemented` using the id.
    Call {
        /// Message id chosen by the sender.
        unique_id: String,
        /// Action name, e.g. `"Heartbeat"`.
        action: String,
        /// Request payload (an object when well-formed; checked by schema validation, not here).
        payload: Value,
    },
    /// `[3, uniqueId, payload]`.
    CallResult {
        /// Id of the CALL this answers.
        unique_id: String,
        /// Response payload.
        payload: Value,
    },
    /// `[4, uniqueId, errorCode, errorDescription, errorDetails]`.
    CallError {
        /// Id of the CALL this answers.
        unique_id: String,
        /// Error code.
        code: ErrorCode,
        /// Free text, may be empty.
        description: String,
        /// An object, `{}` when there are none.
        details: Value,
    },
}

impl Frame {
    /// Parse one WebSocket text message.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError {
            code: ErrorCode::FormationViolation,
            unique_id: None,
            message_type: None,
            description: format!("message is not valid JSON: {e}"),
        })?;
        Self::from_value(value)
    }

    /// Build a frame from an already parsed JSON value (see [`Frame::parse`]).
    pub fn from_value(value: Value) -> Result<Frame, FrameError> {
        let Value::Array(items) = value else {
            return Err(FrameError {
                code: ErrorCode::ProtocolError,
                unique_id: None,
                message_type: None,
                description: format!(
                    "OCPP-J message must be a JSON array, got {}",
                    json_type(&value)
                ),
            });
        };
        let unique_id = items.get(1).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let fail = |code, message_type, description: String| FrameError {
            code,
            unique_id: unique_id.clone(),
            message_type,
            description,
        };
        let Some(first) = items.first() else {
            return Err(fail(
                ErrorCode::ProtocolError,
                None,
                "message is an empty array: MessageTypeId missing".into(),
            ));
        };
        let Some(type_id) = first.as_u64() else {
            return Err(fail(
                ErrorCode::FormationViolation,
                None,
                format!("MessageTypeId must be an integer, got {}", json_type(first)),
            ));
        };
        let expected_len = match type_id {
            CALL => 4,
            CALL_RESULT => 3,
            CALL_ERROR => 5,
            other => {
                return Err(fail(
                    ErrorCode::ProtocolError,
                    Some(other),
                    format!(
                        "MessageTypeId {other} is not one of 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR)"
                    ),
                ));
            }
        };
        if items.len() != expected_len {
            return Err(fail(
                ErrorCode::ProtocolError,
                Some(type_id),
                format!(
                    "message of type {type_id} must have {expected_len} elements, got {}",
                    items.len()
                ),
            ));
        }
        let mut it = items.into_iter().skip(1);
        let mut next = || it.next().unwrap_or(Value::Null);
        let Value::String(unique_id) = next() else {
            return Err(fail(
                ErrorCode::FormationViolation,
                Some(type_id),
                "UniqueId must be a string".into(),
            ));
        };
        match type_id {
            CALL => {
                let Value::String(action) = next() else {
                    return Err(fail(
                        ErrorCode::FormationViolation,
                        Some(type_id),
                        "Action must be a string".into(),
                    ));
                };
                Ok(Frame::Call {
                    unique_id,
                    action,
                    payload: next(),
                })
            }
            CALL_RESULT => Ok(Frame::CallResult {
                unique_id,
                payload: next(),
            }),
            _ => {
                let Value::String(code) = next() else {
                    return Err(fail(
                        ErrorCode::FormationViolation,
                        Some(type_id),
                        "ErrorCode must be a string".into(),
                    ));
                };
                let Value::String(description) = next() else {
                    return Err(fail(
                        ErrorCode::FormationViolation,
                        Some(type_id),
                        "ErrorDescription must be a string".into(),
                    ));
                };
                Ok(Frame::CallError {
                    unique_id,
                    code: ErrorCode::from_wire_lenient(&code),
                    description,
                    details: next(),
                })
            }
        }
    }

    /// The message id.
    pub fn unique_id(&self) -> &str {
        match self {
            Frame::Call { unique_id, .. }
            | Frame::CallResult { unique_id, .. }
            | Frame::CallError { unique_id, .. } => unique_id,
        }
    }

    /// Serialize to the text sent over the WebSocket.
    pub fn to_text(&self) -> String {
        let value = match self {
            Frame::Call {
                unique_id,
                action,
                payload,
            } => serde_json::json!([CALL, unique_id, action, payload]),
            Frame::CallResult { unique_id, payload } => {
                serde_json::json!([CALL_RESULT, unique_id, payload])
            }
            Frame::CallError {
                unique_id,
                code,
                description,
                details,
            } => serde_json::json!([CALL_ERROR, unique_id, code.as_str(), description, details]),
        };
        value.to_string()
    }

    /// A CALLERROR frame with empty details (`{}`).
    pub fn call_error(
        unique_id: impl Into<String>,
        code: ErrorCode,
        description: impl Into<String>,
    ) -> Frame {
        Frame::CallError {
            unique_id: unique_id.into(),
            code,
            description: description.into(),
            details: Value::Object(Default::default()),
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Frame {
    type Err = FrameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Frame::parse(s)
    }
}

/// Why a text is not a valid OCPP-J frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct FrameError {
    /// The code to answer with (see the module docs for the mapping).
    pub code: ErrorCode,
    /// The message id, if one could be recovered.
    pub unique_id: Option<String>,
    /// The message type id, if it was an integer.
    pub message_type: Option<u64>,
    /// Human-readable reason.
    pub description: String,
}

impl FrameError {
    /// Whether the sender expects an answer. A broken CALLRESULT/CALLERROR must not be answered
    /// (that could loop between two peers); anything else that might be a CALL is answered.
    pub fn wants_reply(&self) -> bool {
        !matches!(self.message_type, Some(CALL_RESULT) | Some(CALL_ERROR))
    }

    /// The CALLERROR answering this broken frame, with the recovered id or [`UNKNOWN_UNIQUE_ID`].
    pub fn reply(&self) -> Frame {
        Frame::call_error(
            self.unique_id.as_deref().unwrap_or(UNKNOWN_UNIQUE_ID),
            self.code,
            self.description.clone(),
        )
    }
}

/// OCPP-J 1.6 CALLERROR codes (§4.2.3), with the 1.6 spelling `OccurenceConstraintViolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Requested Action is not known by receiver.
    NotImplemented,
    /// Requested Action is recognized but not supported by the receiver.
    NotSupported,
    /// An internal error occurred and the receiver was not able to process the requested Action.
    InternalError,
    /// Payload for Action is incomplete.
    ProtocolError,
    /// During the processing of Action a security issue occurred.
    SecurityError,
    /// Payload for Action is syntactically incorrect or not conform the PDU structure for Action.
    FormationViolation,
    /// Payload is syntactically correct but at least one field contains an invalid value.
    PropertyConstraintViolation,
    /// Payload is syntactically correct but at least one of the fields violates occurence constraints.
    OccurenceConstraintViolation,
    /// Payload is syntactically correct but at least one of the fields violates data type constraints.
    TypeConstraintViolation,
    /// Any other error not covered by the previous ones.
    GenericError,
}

impl ErrorCode {
    /// All codes.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::NotImplemented,
        ErrorCode::NotSupported,
        ErrorCode::InternalError,
        ErrorCode::ProtocolError,
        ErrorCode::SecurityError,
        ErrorCode::FormationViolation,
        ErrorCode::PropertyConstraintViolation,
        ErrorCode::OccurenceConstraintViolation,
        ErrorCode::TypeConstraintViolation,
        ErrorCode::GenericError,
    ];

    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormationViolation => "FormationViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurenceConstraintViolation => "OccurenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
        }
    }

    /// Read a code sent by a peer. Chargers in the field also send the OCPP 2.0 spellings
    /// (`FormatViolation`, `OccurrenceConstraintViolation`), which map to their 1.6 equivalents;
    /// any other unknown code becomes `GenericError` (the spec's catch-all) rather than failing
    /// the whole frame, so the answer to our call is still delivered.
    pub fn from_wire_lenient(s: &str) -> ErrorCode {
        match s {
            "FormatViolation" => ErrorCode::FormationViolation,
            "OccurrenceConstraintViolation" => ErrorCode::OccurenceConstraintViolation,
            _ => s.parse().unwrap_or(ErrorCode::GenericError),
        }
    }
}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;
    /// Strict: only the ten 1.6 names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A string that is not an OCPP 1.6 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OCPP 1.6 error code {0:?}")]
pub struct UnknownErrorCode(pub String);

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
