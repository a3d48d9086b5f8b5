//! The driver task of one charger connection.
//!
//! It owns the WebSocket and the sans-IO [`Connection`], and is the only place either is touched,
//! so there are no locks on the message path. One `select!` waits for the first of: a message
//! from the charger, an operator call from the API (via the [`registry`](super::registry)), or the
//! next deadline (a call's response timeout, or the liveness check).
//!
//! Liveness: after half a heartbeat interval without hearing anything the driver sends a
//! WebSocket Ping; if a whole interval passes in silence (no pong, no message), the connection is
//! considered dead and closed, so a vanished charger is noticed within one heartbeat interval.
//!
//! Memory: this future lives as long as the connection (19,000 of them in the benchmark), so it
//! holds only small state; the handler futures (which hold database futures) are boxed and exist
//! only while a request is being answered.

use super::handlers::{self, Session};
use super::registry::{Command, OperatorCall};
use crate::metrics;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use orderly_ocpp::{CallId, CallOutcome, Connection, Event};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A send that cannot complete in this time means the charger stopped reading: give up on it.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the driver stopped (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClosedByCharger,
    /// The registry dropped this connection: a newer one replaced it, its charger was removed,
    /// or the server is shutting down.
    Dropped,
    Dead,
    /// A message over the size limit: refused with close code 1009 (RFC 6455).
    TooBig,
    SocketError,
}

/// Whether a receive error is a message (or frame) over the configured size limit.
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Run one connection until it closes.
pub async fn run(state: AppState, mut session: Session, mut socket: WebSocket) {
    let registration = state.registry().register(session.id.clone());
    if registration.replaced {
        tracing::info!(charger = %session.id, "new connection replaces the previous one");
    }
    let serial = registration.serial;
    let mut commands = registration.commands;
    let mut connection = Connection::new(orderly_ocpp::Config {
        call_timeout: state.config().call_timeout(),
        max_queued_calls: 16,
        // Distinct ids across reconnects, so a late answer to a call of an earlier connection
        // can never be taken for an answer to a new one.
        first_message_id: jiff::Timestamp::now().as_millisecond().unsigned_abs() * 1000,
    });
    // Operator calls in flight or queued in `connection`, with where to send the outcome.
    let mut waiting: Vec<(CallId, oneshot::Sender<super::registry::CallReply>)> = Vec::new();
    let heartbeat = state.config().heartbeat_interval();
    let mut last_heard = Instant::now();
    let mut pinged = false;
    // The liveness check is not moved on every message (that would touch the timer wheel per
    // message); when it fires early, it is simply re-armed from `last_heard`.
    let mut check_at = last_heard + heartbeat / 2;
    let sleep = tokio::time::sleep_until(check_at.into());
    tokio::pin!(sleep);
    let mut armed = Some(check_at);
    tracing::debug!(charger = %session.id, accepted = session.accepted, "connected");

    let end = 'driver: loop {
        let deadline = connection
            .poll_timeout()
            .map_or(check_at, |t| t.min(check_at));
        if armed != Some(deadline) {
            sleep.as_mut().reset(deadline.into());
            armed = Some(deadline);
        }
        let step = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(message)) => {
                    last_heard = Instant::now();
                    pinged = false;
                    on_message(&state, &mut session, &mut connection, &mut waiting, message).await
                }
                Some(Err(error)) if is_too_big(&error) => Step::End(End::TooBig),
                Some(Err(error)) => {
                    tracing::debug!(charger = %session.id, %error, "WebSocket error");
                    Step::End(End::SocketError)
                }
                None => Step::End(End::ClosedByCharger),
            },
            command = commands.recv() => match command {
                Some(Command::Call(call)) => {
                    on_operator_call(&mut connection, &mut waiting, *call);
                    Step::Continue(None)
                }
                None => Step::End(End::Dropped),
            },
            () = &mut sleep => {
                armed = None;
                let now = Instant::now();
                for event in connection.handle_timeout(now) {
                    complete(&mut waiting, event);
                }
                if now >= last_heard + heartbeat {
                    Step::End(End::Dead)
                } else if !pinged && now >= last_heard + heartbeat / 2 {
                    pinged = true;
                    check_at = last_heard + heartbeat;
                    Step::Continue(Some(Message::Ping(Default::default())))
                } else {
                    check_at = last_heard + if pinged { heartbeat } else { heartbeat / 2 };
                    Step::Continue(None)
                }
            }
        };
        let reply = match step {
            Step::End(end) => break end,
            Step::Continue(reply) => reply,
        };
        if let Some(message) = reply
            && !send(&mut socket, message).await
        {
            break End::SocketError;
        }
        while let Some(text) = connection.poll_transmit() {
            if !send(&mut socket, Message::Text(text.into())).await {
                break 'driver End::SocketError;
            }
        }
    };

    for event in connection.close() {
        complete(&mut waiting, event);
    }
    match end {
        End::Dropped => {
            let frame = CloseFrame {
                code: close_code::AWAY,
                reason: "closed by the server".into(),
            };
            let _ = send(&mut socket, Message::Close(Some(frame))).await;
        }
        End::TooBig => {
            tracing::warn!(charger = %session.id, limit = super::MAX_MESSAGE, "message too big: closing with 1009");
            let frame = CloseFrame {
                code: close_code::SIZE,
                reason: "message too big".into(),
            };
            let _ = send(&mut socket, Message::Close(Some(frame))).await;
        }
        End::Dead => {
            tracing::info!(charger = %session.id, "no sign of life for a heartbeat interval: closing");
        }
        End::ClosedByCharger | End::SocketError => {}
    }
    // Last, so that waiting for an empty registry means every answer has been sent.
    if state.registry().unregister(&session.id, serial) {
        // Only when this was the charger's live connection: a replaced one ending must not
        // mark its successor disconnected.
        state.controllers().input(
            &session.id,
            orderly_control::Input::ChargerDisconnected {
                charger: session.id.clone(),
            },
        );
    }
    tracing::debug!(charger = %session.id, ?end, "disconnected");
}

enum Step {
    /// Keep going, after sending this message if any.
    Continue(Option<Message>),
    End(End),
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn on_message(
    state: &AppState,
    session: &mut Session,
    connection: &mut Connection,
    waiting: &mut Vec<(CallId, oneshot::Sender<super::registry::CallReply>)>,
    message: Message,
) -> Step {
    let text = match &message {
        Message::Text(text) => text.as_str(),
        // OCPP-J is text only, but some chargers send the JSON in binary frames: accept UTF-8.
        Message::Binary(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                tracing::debug!(charger = %session.id, "ignored a binary frame that is not UTF-8");
                return Step::Continue(None);
            }
        },
        Message::Ping(_) | Message::Pong(_) => return Step::Continue(None),
        Message::Close(_) => return Step::End(End::ClosedByCharger),
    };
    let received = Instant::now();
    match connection.handle_text(text, received) {
        Event::Request { unique_id, request } => {
            let action = request.action();
            metrics::message(action.as_str(), metrics::INBOUND);
            // Boxed: the handler future holds database futures, far larger than this task's
            // idle state, and only exists while a request is being answered.
            let result = Box::pin(handlers::handle(
                state,
                session,
                request,
                state.clock().now(),
            ))
            .await;
            let reply = match result {
                Ok(payload) => connection.respond(&unique_id, &payload),
                Err(error) => {
                    metrics::error(error.code.as_str());
                    connection.respond_error(&unique_id, error.code, &error.description)
                }
            };
            metrics::message(action.as_str(), metrics::OUTBOUND);
            metrics::handling_time(received.elapsed());
            Step::Continue(Some(Message::Text(reply.into())))
        }
        Event::BadMessage {
            code,
            description,
            reply,
            action,
            ..
        } => {
            metrics::error(code.as_str());
            if let Some(action) = action {
                metrics::message(action.as_str(), metrics::INBOUND);
            }
            tracing::debug!(charger = %session.id, %code, %description, "bad message");
            Step::Continue(reply.map(|text| Message::Text(text.into())))
        }
        event @ Event::CallCompleted { .. } => {
            complete(waiting, event);
            Step::Continue(None)
        }
        Event::UnmatchedResponse { unique_id } => {
            tracing::debug!(charger = %session.id, %unique_id, "response to no outstanding call");
            Step::Continue(None)
        }
    }
}

fn on_operator_call(
    connection: &mut Connection,
    waiting: &mut Vec<(CallId, oneshot::Sender<super::registry::CallReply>)>,
    call: OperatorCall,
) {
    match connection.call_with_timeout(call.action, call.payload, call.timeout, Instant::now()) {
        Ok(id) => {
            metrics::message(call.action.as_str(), metrics::OUTBOUND);
            waiting.push((id, call.reply));
        }
        Err(error) => {
            let _ = call.reply.send(Err(error));
        }
    }
}

/// Hand a finished call's outcome to the API request waiting for it.
fn complete(
    waiting: &mut Vec<(CallId, oneshot::Sender<super::registry::CallReply>)>,
    event: Event,
) {
    let Event::CallCompleted {
        call_id,
        action,
        outcome,
    } = event
    else {
        return;
    };
    match &outcome {
        CallOutcome::Result(_) => metrics::message(action.as_str(), metrics::INBOUND),
        CallOutcome::Error { code, .. } => {
            metrics::message(action.as_str(), metrics::INBOUND);
            metrics::error(code.as_str());
        }
        CallOutcome::InvalidResponse { .. } => {
            metrics::message(action.as_str(), metrics::INBOUND);
            metrics::error("InvalidResponse");
        }
        CallOutcome::Timeout => metrics::error("Timeout"),
        CallOutcome::Closed => {}
    }
    if let Some(pos) = waiting.iter().position(|(id, _)| *id == call_id) {
        let (_, reply) = waiting.swap_remove(pos);
        // The API request may have given up already; nothing to do then.
        let _ = reply.send(Ok(outcome));
    }
    if waiting.is_empty() {
        // Release the vector's buffer: most connections never see an operator call again.
        waiting.shrink_to_fit();
    }
}
