//! Sans-IO OCPP-J 1.6 for the central system side: framing, validation against the OCA JSON
//! schemas, typed messages and a per-connection RPC state machine. No sockets, no clock, no async:
//! time is passed in as `std::time::Instant`.
//!
//! # Module layout
//! - [`action`]: the 28 OCPP 1.6 core actions ([`Action`]), who initiates each, their embedded
//!   schemas (`schemas/v16/*.json`, from PyPI `ocpp` 2.1.0, MIT — see `schemas/v16/README.md`).
//! - [`frame`]: [`Frame`] (CALL / CALLRESULT / CALLERROR) parse and serialize, [`ErrorCode`], and
//!   how malformed text maps to codes.
//! - [`validate`]: payload validation with the `jsonschema` crate and the schema-breach → error-code
//!   mapping; lenient `date-time` and decimal `multipleOf`.
//! - [`time`]: [`Timestamp`], lenient RFC 3339 (zoneless = UTC), built on `jiff`.
//! - [`v16`]: typed requests/responses, [`ChargerRequest`] (what chargers send), [`CsmsRequest`]
//!   (what we send), the [`v16::Request`] trait linking a request to its action and response.
//! - [`connection`]: [`Connection`], the RPC state machine (one outstanding CALL, queueing,
//!   timeouts), see its module docs for the server loop.
//!
//! For the operator API (`POST /chargers/{id}/operations/{Action}`), [`check_operation`] turns the
//! path segment and body into an [`Action`] or a 404/400-worthy error; [`Connection::call`] then
//! sends it.

pub mod action;
pub mod connection;
pub mod frame;
pub mod smart;
pub mod time;
pub mod v16;
pub mod validate;

pub use action::{Action, Initiator, UnknownAction};
pub use connection::{CallId, CallOutcome, Config, Connection, Event, SendError};
pub use frame::{ErrorCode, Frame, FrameError};
pub use time::Timestamp;
pub use v16::{ChargerRequest, CsmsRequest};
pub use validate::{Direction, SchemaViolation};

use serde_json::Value;

/// The subprotocol to negotiate on the WebSocket.
pub const SUBPROTOCOL: &str = "ocpp1.6";

/// Why an operator operation cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    /// Not an OCPP 1.6 action the central system may send (→ HTTP 404).
    #[error("{0:?} is not an operation the central system can send (OCPP 1.6)")]
    UnknownOperation(String),
    /// The body breaks the action's request schema (→ HTTP 400).
    #[error("invalid {action} request: {violation}")]
    Invalid {
        /// The action.
        action: Action,
        /// What is wrong, naming the field.
        violation: SchemaViolation,
    },
}

/// Check an operator's `{Action}` path segment and JSON body before queueing the call.
pub fn check_operation(name: &str, payload: &Value) -> Result<Action, OperationError> {
    let action = name
        .parse::<Action>()
        .ok()
        .filter(|a| a.is_csms_initiated())
        .ok_or_else(|| OperationError::UnknownOperation(name.to_owned()))?;
    validate::validate(action, Direction::Request, payload)
        .map_err(|violation| OperationError::Invalid { action, violation })?;
    Ok(action)
}
