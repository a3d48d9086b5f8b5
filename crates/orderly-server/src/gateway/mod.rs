//! The OCPP 1.6J gateway: `GET /ocpp/{chargePointId}` upgraded to a WebSocket.
//!
//! Admission happens before the upgrade, with plain HTTP answers a person can read in a charger's
//! log: subprotocol `ocpp1.6` offered (else 400), the charge point id known or admitted by the
//! policy (else 404), HTTP Basic credentials valid when the charger has a password (else 401).
//! After the upgrade, [`session`] runs one driver task per connection.
//!
//! - [`handlers`]: answers to the ten charger-initiated actions; after each commit they post
//!   what the community's controller needs (never waiting for it).
//! - [`loop_inputs`]: meter values converted to the controller's units.
//! - [`registry`]: connected chargers, and the channel to each driver.
//! - [`session`]: the driver task (socket ⇄ `orderly_ocpp::Connection` ⇄ handlers/operators).

pub mod handlers;
pub mod loop_inputs;
pub mod registry;
pub mod session;

use crate::config::UnknownChargers;
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use orderly_core::ChargePointId;
use orderly_ocpp::SUBPROTOCOL;
use orderly_store::{ChargerStatus, PasswordCheck};

/// Bytes the WebSocket reader preallocates per connection. OCPP messages are mostly a few hundred
/// bytes; larger ones grow the buffer temporarily. The library default (128 KiB) would cost
/// 2.4 GiB at 19,000 connections.
pub const READ_BUFFER: usize = 2 * 1024;
/// Write eagerly: each OCPP message is one frame, and nothing is gained by collecting them.
pub const WRITE_BUFFER: usize = 0;
/// Largest message accepted from a charger. The biggest legitimate 1.6 payloads are a
/// StopTransaction carrying a whole long session in transactionData (10 h of per-minute samples
/// of five measurands is ~350 KiB) and large GetConfiguration answers; larger messages are
/// refused with close code 1009.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Unsent bytes a slow reader may accumulate before sends fail (and the connection is dropped).
pub const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// Axum handler of `GET /ocpp/{id}`.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !offers_ocpp16(&headers) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "WebSocket subprotocol \"ocpp1.6\" is required (Sec-WebSocket-Protocol header)",
        );
    }
    let Ok(id) = ChargePointId::parse(raw_id) else {
        return refuse(StatusCode::NOT_FOUND, "unknown charge point id");
    };
    let accepted = match admit(&state, &id, &headers).await {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| session::run(state, handlers::Session { id, accepted }, socket))
}

/// Whether the client offered the `ocpp1.6` subprotocol (the header is a comma-separated list
/// and may appear more than once).
fn offers_ocpp16(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// Decide admission; `Ok(accepted)` tells whether the charger is registered (pending/unknown
/// chargers admitted by the policy may only boot).
async fn admit(
    state: &AppState,
    id: &ChargePointId,
    headers: &HeaderMap,
) -> Result<bool, Response> {
    let store = state.store();
    let charger = store.get_charger(id).await.map_err(internal)?;
    let registered = charger
        .as_ref()
        .is_some_and(|c| c.status == ChargerStatus::Registered);
    if !registered {
        return match state.config().unknown_chargers {
            UnknownChargers::Refuse => {
                Err(refuse(StatusCode::NOT_FOUND, "unknown charge point id"))
            }
            UnknownChargers::Pending | UnknownChargers::Reject => Ok(false),
        };
    }
    if charger.is_some_and(|c| !c.has_password) {
        return Ok(true);
    }
    let Some(credentials) = basic_credentials(headers) else {
        return Err(unauthorized("HTTP Basic credentials required"));
    };
    // The user must be the charge point id. Ids may contain ':', which RFC 7617 forbids in a
    // user name, but the id is known from the URL, so `id:password` splits unambiguously.
    let Some(password) = credentials
        .strip_prefix(id.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return Err(unauthorized("HTTP Basic user must be the charge point id"));
    };
    match store
        .verify_charger_password(id, password)
        .await
        .map_err(internal)?
    {
        PasswordCheck::Valid | PasswordCheck::NoPasswordSet => Ok(true),
        PasswordCheck::Invalid => Err(unauthorized("wrong password")),
        // Removed between the two lookups.
        PasswordCheck::UnknownCharger => {
            Err(refuse(StatusCode::NOT_FOUND, "unknown charge point id"))
        }
    }
}

/// `Authorization: Basic base64(user:password)` → the decoded `user:password` text.
fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    // OCPP 1.6 security profile 1 passwords are printable text, but some chargers send raw
    // bytes: compare whatever arrives, lossily decoded.
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

fn unauthorized(message: &'static str) -> Response {
    let mut response = refuse(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"orderly\", charset=\"UTF-8\""),
    );
    response
}

fn internal(err: orderly_store::StoreError) -> Response {
    tracing::error!(error = %err, "store failure during WebSocket admission");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage unavailable, retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_lists_are_parsed() {
        let mut h = HeaderMap::new();
        assert!(!offers_ocpp16(&h));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("ocpp2.0.1, ocpp1.6"),
        );
        assert!(offers_ocpp16(&h));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("ocpp1.5,ocpp2.0"),
        );
        assert!(!offers_ocpp16(&h));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        // "CP1:pa:ss": the password (and the id) may contain colons.
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Q1AxOnBhOnNz"),
        );
        assert_eq!(basic_credentials(&h).as_deref(), Some("CP1:pa:ss"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(basic_credentials(&h), None);
    }
}
