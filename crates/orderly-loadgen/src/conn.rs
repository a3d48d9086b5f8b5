//! One task per simulated charge point: connect from its source address, WebSocket handshake
//! with subprotocol `ocpp1.6` (and Basic auth if configured), BootNotification, then one CALL per
//! interval (Heartbeat and MeterValues alternating; BootNotification again while not Accepted),
//! one outstanding CALL at a time as OCPP-J requires. On stop it lets an outstanding CALL finish,
//! closes the WebSocket and waits briefly for the server's close.
//!
//! State per connection is kept small (one pending CALL, two counters, a 4 KiB read buffer by
//! default) so that one process can drive 19,000 connections.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::ocpp::{self, Action, Incoming};
use crate::plan::Plan;
use crate::stats::Stats;

/// The OCPP 1.6J WebSocket subprotocol.
pub const SUBPROTOCOL: &str = "ocpp1.6";

/// How long a stopping connection waits for its outstanding CALL before closing.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long a closing connection waits for the server's close frame / TCP close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// A scheduled send this much past its slot counts as late.
const LATE_AFTER: Duration = Duration::from_millis(100);

type Ws = WebSocketStream<TcpStream>;

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub plan: Plan,
    pub stats: Stats,
    pub ws_config: WebSocketConfig,
}

impl Shared {
    pub fn new(plan: Plan) -> Self {
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(plan.settings.read_buffer)
            // Write each frame straight through: frames are small and one is in flight at a time.
            .write_buffer_size(0)
            .max_message_size(Some(64 << 10))
            .max_frame_size(Some(64 << 10));
        // One slice per message interval: each connection sends once per slice.
        let slice = plan.settings.interval;
        let slices = plan
            .settings
            .duration
            .as_nanos()
            .div_ceil(slice.as_nanos().max(1)) as usize;
        let stats = Stats::new(plan.settings.connections as u64, slice, slices);
        Self {
            plan,
            stats,
            ws_config,
        }
    }
}

/// Runs connection `index` until `stop` turns true (or the server drops it).
pub async fn run_connection(index: usize, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let stats = &shared.stats;
    stats.attempted.incr();
    let connected = timeout(
        shared.plan.settings.connect_timeout,
        connect(&shared, index),
    )
    .await;
    let ws = match connected {
        Ok(Ok(ws)) => ws,
        Ok(Err(reason)) => {
            stats.connect_failed(&reason);
            stats.settle();
            return;
        }
        Err(_) => {
            stats.connect_failed("connect timeout");
            stats.settle();
            return;
        }
    };
    stats.opened();
    let mut conn = Connection {
        index,
        shared: &shared,
        ws,
        next_id: 1,
        pending: None,
        accepted: false,
        settled: false,
        next_is_meter: false,
        energy_wh: 0,
    };
    let outcome = conn.run(stop).await;
    if !conn.settled {
        stats.settle();
    }
    if let Err(reason) = outcome {
        stats.dropped.incr();
        stats.note_failure(&reason);
    }
    stats.closed();
}

async fn connect(shared: &Shared, index: usize) -> Result<Ws, String> {
    let plan = &shared.plan;
    let source = SocketAddr::V4(SocketAddrV4::new(plan.source_for(index), 0));
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {:?}", e.kind()))?;
    // Lets a source port still in TIME_WAIT from an earlier run be bound again.
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("socket: {:?}", e.kind()))?;
    socket
        .bind(source)
        .map_err(|e| format!("bind: {:?}", e.kind()))?;
    let stream = socket
        .connect(SocketAddr::V4(plan.target))
        .await
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("socket: {:?}", e.kind()))?;

    let id = plan.id_for(index);
    let mut request = format!("{}{}", plan.url_base, id)
        .into_client_request()
        .map_err(|e| classify(&e))?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Some(password) = plan.password_for(index) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
        let value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| "password is not a valid header value".to_owned())?;
        headers.insert("Authorization", value);
    }
    let (ws, response) = client_async_with_config(request, stream, Some(shared.ws_config))
        .await
        .map_err(|e| classify(&e))?;
    // tungstenite already refuses a missing or foreign subprotocol; this keeps the guarantee local.
    let protocol = response.headers().get("Sec-WebSocket-Protocol");
    if protocol.and_then(|v| v.to_str().ok()) != Some(SUBPROTOCOL) {
        return Err("handshake: server did not select ocpp1.6".into());
    }
    Ok(ws)
}

/// Resolves when the run is stopping (or the run dropped its sender). Drops the watch guard
/// before returning, so the task future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A short, low-cardinality class of a WebSocket error, for the failure counts.
fn classify(e: &WsError) -> String {
    match e {
        WsError::Http(response) => format!("http {}", response.status().as_u16()),
        WsError::Io(io) => format!("io: {:?}", io.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        other => {
            let mut text = other.to_string();
            text.truncate(80);
            text
        }
    }
}

struct Pending {
    id: u64,
    action: Action,
    sent: Instant,
    /// Sent inside the steady window, so it feeds the steady figures.
    steady: bool,
}

struct Connection<'a> {
    index: usize,
    shared: &'a Shared,
    ws: Ws,
    next_id: u64,
    pending: Option<Pending>,
    accepted: bool,
    /// The boot outcome (or the loss of the connection) has been reported to the ramp.
    settled: bool,
    next_is_meter: bool,
    energy_wh: u64,
}

impl Connection<'_> {
    /// Runs until stopped (`Ok`) or dropped by the server / the network (`Err(reason)`).
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let settings = &self.shared.plan.settings;
        let interval = settings.interval;
        let call_timeout = settings.call_timeout;
        self.send(Action::BootNotification).await?;
        // Set once the first boot answer (or its timeout) is in: the schedule starts from there.
        let mut next_send: Option<Instant> = None;
        loop {
            let deadline = self.pending.as_ref().map(|p| p.sent + call_timeout);
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break,
                frame = self.ws.next() => {
                    let boot_done = self.on_frame(frame).await?;
                    if boot_done && next_send.is_none() {
                        next_send = Some(Instant::now() + self.shared.plan.offset_for(self.index));
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let was_boot = self.on_timeout();
                    if was_boot && next_send.is_none() {
                        next_send = Some(Instant::now() + self.shared.plan.offset_for(self.index));
                    }
                }
                _ = sleep_until(next_send.unwrap_or_else(Instant::now)),
                    if next_send.is_some() && self.pending.is_none() =>
                {
                    let now = Instant::now();
                    let slot = next_send.unwrap_or(now);
                    if now.duration_since(slot) > LATE_AFTER {
                        self.shared.stats.late_sends.incr();
                    }
                    // Keep the grid; a slot missed while waiting on a slow answer is skipped.
                    let mut next = slot + interval;
                    if next <= now {
                        next = now + interval;
                    }
                    next_send = Some(next);
                    let action = if !self.accepted {
                        Action::BootNotification
                    } else if self.next_is_meter {
                        Action::MeterValues
                    } else {
                        Action::Heartbeat
                    };
                    self.next_is_meter = self.accepted && !self.next_is_meter;
                    self.send(action).await?;
                }
            }
        }
        self.drain().await;
        Ok(())
    }

    /// After stop: let the outstanding CALL finish (bounded), then close politely.
    async fn drain(&mut self) {
        let give_up = Instant::now() + DRAIN_GRACE;
        while let Some(p) = &self.pending {
            let deadline = (p.sent + self.shared.plan.settings.call_timeout).min(give_up);
            match timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.ws.next(),
            )
            .await
            {
                Ok(frame) => {
                    if self.on_frame(frame).await.is_err() {
                        return;
                    }
                }
                Err(_) => {
                    self.on_timeout();
                    break;
                }
            }
        }
        if self.ws.close(None).await.is_err() {
            return;
        }
        // Read until the server's close arrives and the stream ends, so the server (not the
        // generator) ends up with the TIME_WAIT socket and the source ports stay free.
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    async fn send(&mut self, action: Action) -> Result<(), String> {
        let payload = match action {
            Action::BootNotification => {
                ocpp::boot_notification(&self.shared.plan.id_for(self.index))
            }
            Action::Heartbeat => ocpp::heartbeat(),
            Action::MeterValues => {
                self.energy_wh += 125;
                let now = jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                ocpp::meter_values(self.energy_wh, &now)
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let text = ocpp::call(&id.to_string(), action, &payload);
        let stats = &self.shared.stats;
        let steady = stats.in_steady();
        let sent = Instant::now();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| classify(&e))?;
        stats.sent.incr();
        if steady {
            stats.steady_sent.incr();
        }
        self.pending = Some(Pending {
            id,
            action,
            sent,
            steady,
        });
        Ok(())
    }

    /// Handles one received frame; returns true when it was the answer to a BootNotification.
    async fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> Result<bool, String> {
        let stats = &self.shared.stats;
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return Err("closed by server".into()),
            Some(Err(e)) => return Err(classify(&e)),
            Some(Ok(Message::Text(text))) => text,
            // Pings are answered inside tungstenite; pongs and binary frames carry nothing here.
            Some(Ok(_)) => return Ok(false),
        };
        let incoming = match ocpp::parse(&text) {
            Ok(incoming) => incoming,
            Err(_) => {
                stats.bad_frames.incr();
                return Ok(false);
            }
        };
        match incoming {
            Incoming::Call { id, action, .. } => {
                stats.server_calls.incr();
                self.ws
                    .send(Message::text(ocpp::not_implemented(&id, &action)))
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(false)
            }
            Incoming::Result { id, payload } => {
                let Some(p) = self.take_pending(&id) else {
                    stats.bad_frames.incr();
                    return Ok(false);
                };
                let rtt = p.sent.elapsed();
                stats.answered.incr();
                if p.steady {
                    stats.steady_answered.incr();
                    stats.record_rtt(rtt, p.sent);
                }
                if p.action != Action::BootNotification {
                    return Ok(false);
                }
                stats.record_boot_rtt(rtt);
                match ocpp::boot_status(&payload) {
                    Some("Accepted") => {
                        self.accepted = true;
                        stats.boot_accepted.incr();
                    }
                    Some("Pending") => {
                        stats.boot_pending.incr();
                    }
                    Some("Rejected") => {
                        stats.boot_rejected.incr();
                    }
                    _ => {
                        stats.boot_errors.incr();
                    }
                }
                self.settle();
                Ok(true)
            }
            Incoming::Error { id, code } => {
                let Some(p) = self.take_pending(&id) else {
                    stats.bad_frames.incr();
                    return Ok(false);
                };
                stats.call_errors.incr();
                stats.note_error_code(&code);
                if p.steady {
                    stats.steady_errors.incr();
                }
                if p.action == Action::BootNotification {
                    stats.boot_errors.incr();
                    self.settle();
                    return Ok(true);
                }
                Ok(false)
            }
        }
    }

    /// The outstanding CALL timed out; returns true if it was a BootNotification.
    fn on_timeout(&mut self) -> bool {
        let Some(p) = self.pending.take() else {
            return false;
        };
        let stats = &self.shared.stats;
        stats.timeouts.incr();
        if p.steady {
            stats.steady_timeouts.incr();
        }
        if p.action == Action::BootNotification {
            stats.boot_errors.incr();
            self.settle();
            return true;
        }
        false
    }

    fn take_pending(&mut self, id: &str) -> Option<Pending> {
        match &self.pending {
            Some(p) if id.parse::<u64>().ok() == Some(p.id) => self.pending.take(),
            _ => None,
        }
    }

    fn settle(&mut self) {
        if !self.settled {
            self.settled = true;
            self.shared.stats.settle();
        }
    }
}
