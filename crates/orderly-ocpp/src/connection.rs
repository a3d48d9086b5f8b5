//! The per-connection RPC state machine of the central system side, sans-IO.
//!
//! One [`Connection`] per charger WebSocket. It never touches a socket or a clock: the server feeds
//! it received text with [`Connection::handle_text`], the current time with `now`, and sends what
//! [`Connection::poll_transmit`] and [`Connection::respond`] give it.
//!
//! ```text
//! loop {
//!     select! {
//!         text = ws.recv()                     => handle(conn.handle_text(&text, now)),
//!         _ = sleep_until(conn.poll_timeout()) => for ev in conn.handle_timeout(now) { handle(ev) },
//!         op = operations.recv()               => op.reply_to(conn.call(op.action, op.payload, now)),
//!     }
//!     while let Some(text) = conn.poll_transmit() { ws.send(text) }   // after EVERY step
//! }
//! // socket gone: for ev in conn.close() { handle(ev) }  → every pending call gets `Closed`
//! ```
//!
//! # Rules it implements
//! - **One outstanding CALL towards the charger** (OCPP-J §4.1.1): [`Connection::call`] queues;
//!   the next queued CALL is released (appears in `poll_transmit`) when the previous one gets its
//!   CALLRESULT/CALLERROR or times out.
//! - **Timeouts** count from the moment `call` was made, queueing included, so an API caller waits
//!   at most its timeout. A call whose deadline passes while still queued is never sent (the charger
//!   must not execute a command the operator was already told timed out).
//! - **A charger that breaks "one outstanding CALL"** (sends a second CALL before we answered the
//!   first) gets each CALL delivered as an [`Event::Request`] and answered in order. The spec puts
//!   the SHOULD NOT on the sender, and refusing would make the charger drop or retry transaction
//!   messages, which is worse than answering.
//! - **Responses with an unknown id** (e.g. a late answer to a call that already timed out) are
//!   reported as [`Event::UnmatchedResponse`] and otherwise ignored; nothing is sent back (a
//!   CALLRESULT/CALLERROR is never answered).
//! - **Bad frames** give [`Event::BadMessage`] with a ready CALLERROR text when the frame may have
//!   been a CALL; the connection stays usable.
//! - Inbound CALLs: unknown action → `NotImplemented`; a 1.6 action only the central system may send
//!   (e.g. `Reset`) → `NotSupported`; schema breach → the code from [`crate::validate`].
//! - CALLRESULTs of our calls are validated against the action's response schema; a breach gives
//!   [`CallOutcome::InvalidResponse`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::action::Action;
use crate::frame::{ErrorCode, Frame, FrameError};
use crate::v16::{ChargerRequest, Request};
use crate::validate::{Direction, SchemaViolation, validate};

/// Settings of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long a call may wait (queued + in flight) for the charger's answer. Default 30 s.
    pub call_timeout: Duration,
    /// Calls allowed to wait behind the outstanding one; more are refused with
    /// [`SendError::QueueFull`]. Default 16.
    pub max_queued_calls: usize,
    /// The number used as the unique id of the first CALL we send; later ones count up. Pick a
    /// different start per connection (e.g. unix milliseconds × 1000) so ids do not repeat across
    /// reconnects of the same charger. Default 1.
    pub first_message_id: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            call_timeout: Duration::from_secs(30),
            max_queued_calls: 16,
            first_message_id: 1,
        }
    }
}

/// Identifies a call we made; its `Display` is the unique id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happened on the connection; every input produces events the server must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A valid request from the charger. Answer it with [`Connection::respond`] (or
    /// [`Connection::respond_error`]) using this `unique_id`.
    Request {
        /// The charger's message id, to echo in the answer.
        unique_id: String,
        /// The typed request.
        request: ChargerRequest,
    },
    /// One of our calls finished (answered, timed out, or the connection closed).
    CallCompleted {
        /// The id `call` returned.
        call_id: CallId,
        /// The action we called.
        action: Action,
        /// How it ended.
        outcome: CallOutcome,
    },
    /// Text that was not a valid request: a broken frame, unknown action or schema breach. Send
    /// `reply` if present (a CALLERROR); the connection stays usable.
    BadMessage {
        /// The code of the CALLERROR (also useful for metrics).
        code: ErrorCode,
        /// Why, naming the offending field when there is one.
        description: String,
        /// The message id, when one could be recovered.
        unique_id: Option<String>,
        /// The action named in the CALL, when it is a known one.
        action: Option<Action>,
        /// The CALLERROR text to send back; `None` when the bad message was a response (those
        /// are never answered).
        reply: Option<String>,
    },
    /// A CALLRESULT/CALLERROR whose id matches no outstanding call (late, duplicated or made up).
    /// Nothing needs to be sent.
    UnmatchedResponse {
        /// The id it carried.
        unique_id: String,
    },
}

/// How one of our calls ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// CALLRESULT with a payload valid against the action's response schema. Decode with
    /// [`CallOutcome::decode`] or use the JSON as is.
    Result(Value),
    /// The charger answered with a CALLERROR.
    Error {
        /// Its code (OCPP 2.0 spellings mapped, unknown codes → GenericError).
        code: ErrorCode,
        /// Its description.
        description: String,
        /// Its details (an object, often `{}`).
        details: Value,
    },
    /// The charger answered, but the CALLRESULT breaks the response schema or the frame was malformed.
    InvalidResponse {
        /// What is wrong.
        description: String,
        /// The payload as received (`Null` for a malformed frame).
        payload: Value,
    },
    /// No answer within the call's timeout (the call may never have been sent if it timed out
    /// while queued).
    Timeout,
    /// The connection closed before an answer.
    Closed,
}

impl CallOutcome {
    /// Decode a [`CallOutcome::Result`] into the typed response of `R`, or return `self` back.
    pub fn decode<R: Request>(self) -> Result<R::Response, CallOutcome> {
        match self {
            CallOutcome::Result(payload) => {
                serde_json::from_value(payload.clone()).map_err(|e| CallOutcome::InvalidResponse {
                    description: e.to_string(),
                    payload,
                })
            }
            other => Err(other),
        }
    }
}

/// Why a call was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The action is one only a charge point may send (e.g. Heartbeat).
    #[error("{0} is not an action the central system may send")]
    NotCsmsAction(Action),
    /// The payload breaks the request schema (the API should answer 400).
    #[error("invalid {action} request: {violation}")]
    Invalid {
        /// The action.
        action: Action,
        /// What is wrong.
        violation: SchemaViolation,
    },
    /// Too many calls already waiting.
    #[error("{limit} calls already queued for this charger")]
    QueueFull {
        /// `Config::max_queued_calls`.
        limit: usize,
    },
    /// [`Connection::close`] was called.
    #[error("connection closed")]
    Closed,
}

#[derive(Debug)]
struct Pending {
    id: CallId,
    unique_id: String,
    action: Action,
    /// The CALL text; taken when released to `transmit`.
    text: Option<String>,
    deadline: Instant,
}

/// The RPC state of one charger connection (central system side). See the module docs.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    next_id: u64,
    in_flight: Option<Pending>,
    queue: VecDeque<Pending>,
    transmit: VecDeque<String>,
    closed: bool,
}

impl Connection {
    /// A new connection in its initial state.
    pub fn new(config: Config) -> Self {
        Connection {
            next_id: config.first_message_id,
            config,
            in_flight: None,
            queue: VecDeque::new(),
            transmit: VecDeque::new(),
            closed: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Process one received WebSocket text message. Afterwards drain [`Connection::poll_transmit`]
    /// (an answer to our call releases the next queued one).
    pub fn handle_text(&mut self, text: &str, now: Instant) -> Event {
        match Frame::parse(text) {
            Err(e) => self.bad_frame(e, now),
            Ok(Frame::Call {
                unique_id,
                action,
                payload,
            }) => inbound_call(unique_id, &action, payload),
            Ok(Frame::CallResult { unique_id, payload }) => {
                let Some(action) = self.matching_action(&unique_id) else {
                    return Event::UnmatchedResponse { unique_id };
                };
                let outcome = match validate(action, Direction::Response, &payload) {
                    Ok(()) => CallOutcome::Result(payload),
                    Err(v) => CallOutcome::InvalidResponse {
                        description: v.to_string(),
                        payload,
                    },
                };
                self.complete_in_flight(outcome, now)
            }
            Ok(Frame::CallError {
                unique_id,
                code,
                description,
                details,
            }) => {
                if self.matching_action(&unique_id).is_none() {
                    return Event::UnmatchedResponse { unique_id };
                }
                self.complete_in_flight(
                    CallOutcome::Error {
                        code,
                        description,
                        details,
                    },
                    now,
                )
            }
        }
    }

    /// The text answering the charger's request `unique_id` with a CALLRESULT of `payload` (one
    /// of the `*Response` types of [`crate::v16`], or any JSON value).
    pub fn respond<T: Serialize + ?Sized>(&self, unique_id: &str, payload: &T) -> String {
        match serde_json::to_value(payload) {
            Ok(payload) => Frame::CallResult {
                unique_id: unique_id.to_owned(),
                payload,
            }
            .to_text(),
            // Only a hand-written Serialize impl can fail here; answer rather than leave the
            // charger waiting for a timeout.
            Err(e) => self.respond_error(
                unique_id,
                ErrorCode::InternalError,
                &format!("response could not be serialized: {e}"),
            ),
        }
    }

    /// The text answering the charger's request `unique_id` with a CALLERROR (details `{}`).
    pub fn respond_error(&self, unique_id: &str, code: ErrorCode, description: &str) -> String {
        Frame::call_error(unique_id, code, description).to_text()
    }

    /// Queue a CALL to the charger with the configured timeout. The payload is validated against
    /// the action's request schema first. Returns the id its [`Event::CallCompleted`] will carry.
    pub fn call(
        &mut self,
        action: Action,
        payload: Value,
        now: Instant,
    ) -> Result<CallId, SendError> {
        self.call_with_timeout(action, payload, self.config.call_timeout, now)
    }

    /// [`Connection::call`] with a typed request.
    pub fn send<R: Request>(&mut self, request: &R, now: Instant) -> Result<CallId, SendError> {
        let payload = serde_json::to_value(request).map_err(|e| SendError::Invalid {
            action: R::ACTION,
            violation: SchemaViolation {
                code: ErrorCode::FormationViolation,
                path: String::new(),
                message: e.to_string(),
            },
        })?;
        self.call(R::ACTION, payload, now)
    }

    /// [`Connection::call`] with its own timeout (e.g. the API's `?timeout=`).
    pub fn call_with_timeout(
        &mut self,
        action: Action,
        payload: Value,
        timeout: Duration,
        now: Instant,
    ) -> Result<CallId, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        if !action.is_csms_initiated() {
            return Err(SendError::NotCsmsAction(action));
        }
        validate(action, Direction::Request, &payload)
            .map_err(|violation| SendError::Invalid { action, violation })?;
        if self.in_flight.is_some() && self.queue.len() >= self.config.max_queued_calls {
            return Err(SendError::QueueFull {
                limit: self.config.max_queued_calls,
            });
        }
        let id = CallId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let unique_id = id.to_string();
        let text = Frame::Call {
            unique_id: unique_id.clone(),
            action: action.as_str().to_owned(),
            payload,
        }
        .to_text();
        self.queue.push_back(Pending {
            id,
            unique_id,
            action,
            text: Some(text),
            deadline: now + timeout,
        });
        self.release(now);
        Ok(id)
    }

    /// The next text to send to the charger (a CALL), if any. Drain after every other method.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.transmit.pop_front()
    }

    /// The earliest deadline of a pending call: call [`Connection::handle_timeout`] at (or after)
    /// this instant. `None` when nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight
            .iter()
            .chain(self.queue.iter())
            .map(|p| p.deadline)
            .min()
    }

    /// Expire every call whose deadline is at or before `now`, then release the next queued call.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if self.in_flight.as_ref().is_some_and(|p| p.deadline <= now)
            && let Some(p) = self.in_flight.take()
        {
            events.push(completed(p, CallOutcome::Timeout));
        }
        let (expired, waiting): (Vec<_>, Vec<_>) =
            self.queue.drain(..).partition(|p| p.deadline <= now);
        self.queue = waiting.into();
        events.extend(
            expired
                .into_iter()
                .map(|p| completed(p, CallOutcome::Timeout)),
        );
        self.release(now);
        events
    }

    /// The socket is gone: every pending call completes with [`CallOutcome::Closed`], and later
    /// calls are refused with [`SendError::Closed`].
    pub fn close(&mut self) -> Vec<Event> {
        self.closed = true;
        self.transmit.clear();
        self.in_flight
            .take()
            .into_iter()
            .chain(self.queue.drain(..))
            .map(|p| completed(p, CallOutcome::Closed))
            .collect()
    }

    /// The call awaiting the charger's answer, if any.
    pub fn in_flight(&self) -> Option<(CallId, Action)> {
        self.in_flight.as_ref().map(|p| (p.id, p.action))
    }

    /// How many calls wait behind the outstanding one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn matching_action(&self, unique_id: &str) -> Option<Action> {
        self.in_flight
            .as_ref()
            .filter(|p| p.unique_id == unique_id)
            .map(|p| p.action)
    }

    fn complete_in_flight(&mut self, outcome: CallOutcome, now: Instant) -> Event {
        match self.in_flight.take() {
            Some(p) => {
                self.release(now);
                completed(p, outcome)
            }
            // Callers check `matching_action` first; keep a sane answer anyway.
            None => Event::UnmatchedResponse {
                unique_id: String::new(),
            },
        }
    }

    /// Move the first queued call that has not expired into flight. Expired ones stay queued for
    /// `handle_timeout` to report (their deadline is already due in `poll_timeout`).
    fn release(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(pos) = self.queue.iter().position(|p| p.deadline > now) else {
            return;
        };
        if let Some(mut p) = self.queue.remove(pos) {
            if let Some(text) = p.text.take() {
                self.transmit.push_back(text);
            }
            self.in_flight = Some(p);
        }
    }

    fn bad_frame(&mut self, e: FrameError, now: Instant) -> Event {
        // A malformed answer to our outstanding call still ends that call: waiting for the
        // timeout would only delay the operator's error.
        if !e.wants_reply()
            && let Some(id) = e.unique_id.as_deref()
            && self.matching_action(id).is_some()
        {
            return self.complete_in_flight(
                CallOutcome::InvalidResponse {
                    description: e.to_string(),
                    payload: Value::Null,
                },
                now,
            );
        }
        Event::BadMessage {
            code: e.code,
            reply: e.wants_reply().then(|| e.reply().to_text()),
            description: e.description,
            unique_id: e.unique_id,
            action: None,
        }
    }
}

fn completed(p: Pending, outcome: CallOutcome) -> Event {
    Event::CallCompleted {
        call_id: p.id,
        action: p.action,
        outcome,
    }
}

fn inbound_call(unique_id: String, action_name: &str, payload: Value) -> Event {
    let refuse = |code: ErrorCode, description: String, action: Option<Action>| Event::BadMessage {
        reply: Some(Frame::call_error(unique_id.clone(), code, description.clone()).to_text()),
        code,
        description,
        unique_id: Some(unique_id.clone()),
        action,
    };
    let Ok(action) = action_name.parse::<Action>() else {
        return refuse(
            ErrorCode::NotImplemented,
            format!("action {action_name:?} is not known"),
            None,
        );
    };
    if !action.is_charger_initiated() {
        return refuse(
            ErrorCode::NotSupported,
            format!("{action} is sent by the central system, not by a charge point"),
            Some(action),
        );
    }
    if let Err(v) = validate(action, Direction::Request, &payload) {
        return refuse(v.code, v.message, Some(action));
    }
    match ChargerRequest::from_payload(action, payload) {
        Some(Ok(request)) => Event::Request { unique_id, request },
        // Values the schema allows but i64/our types cannot hold (e.g. 1e30 as an integer).
        Some(Err(e)) => refuse(
            ErrorCode::PropertyConstraintViolation,
            format!("{action}: {e}"),
            Some(action),
        ),
        None => refuse(
            ErrorCode::NotSupported,
            format!("{action} is not supported from a charge point"),
            Some(action),
        ),
    }
}
