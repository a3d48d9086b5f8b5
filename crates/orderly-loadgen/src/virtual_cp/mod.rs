//! Virtual OCPP 1.6J charge points: one connector each, a car schedule replayed in protocol time,
//! charging profiles obeyed as a real charge point would (see [`crate::smart`]).
//!
//! [`run_virtual_charger`] connects with subprotocol `ocpp1.6` (from a chosen 127.0.0.x source
//! address, so tens of thousands fit on one machine), boots, reports its connectors, and then for
//! every [`CarVisit`]: at arrival StatusNotification Preparing, Authorize, StartTransaction,
//! Charging; while plugged it draws min(composite limit, the car's maximum, what the car still
//! needs), sends MeterValues every meter interval, and at departure StopTransaction (reason
//! `EVDisconnected`). It answers SetChargingProfile, ClearChargingProfile, GetCompositeSchedule,
//! RemoteStart/StopTransaction and TriggerMessage, and `NotImplemented` to anything else.
//!
//! Protocol time is whatever the shared clock says (it may run e.g. 1440× faster than real time);
//! sleeps are computed as real = protocol / [`VirtualChargerConfig::speed`]. If the socket drops,
//! the charge point keeps charging under the profiles it holds, queues its transaction messages,
//! and reconnects with exponential backoff (0.5 s doubling to 30 s, real time).
//!
//! The charge point's behaviour lives in [`model`] (no IO, testable with any instants); this
//! module only moves frames and sleeps.

pub mod model;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::conn::SUBPROTOCOL;
use crate::ocpp::{self, Incoming};
use crate::smart::Electrical;
use model::{Model, Out, Reply};

/// Protocol time, shared by all virtual charge points (and usually by the server under test).
pub type SharedClock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// First wait before reconnecting; doubles up to [`BACKOFF_MAX`], back to this after a boot.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// TCP connect + WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the charge point waits for an answer to its CALL (real time, OCPP-J §4.1.1 style).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry of a BootNotification that failed or timed out.
const BOOT_RETRY: Duration = Duration::from_secs(10);
/// A closing connection waits this long for the server's close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Longest single sleep (a far-away wake-up is re-evaluated now and then).
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// One virtual charge point (one connector).
#[derive(Clone)]
pub struct VirtualChargerConfig {
    /// `ws://127.0.0.1:PORT/ocpp/ID`: the full URL, id included. Loopback only.
    pub url: String,
    /// Charge point id (names it in events; also its serial number).
    pub id: String,
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
    /// MeterValues period during a transaction, protocol seconds (0 = none).
    pub meter_interval_secs: f64,
    pub clock: SharedClock,
    /// Protocol seconds per real second; must match `clock` (sleeps are protocol / speed).
    /// An addition to the contract's struct.
    pub speed: f64,
    /// HTTP Basic password (user = id), if the central system wants one. Addition.
    pub password: Option<String>,
    /// Source address to bind (127.0.0.x), to spread many chargers over port ranges. Addition.
    pub source_addr: Option<Ipv4Addr>,
    /// Set the charge point's clock from BootNotification.conf `currentTime`, as OCPP 1.6 asks
    /// a charge point to do: protocol time is then `clock() + (currentTime − clock() when the
    /// BootNotification was sent)`, and visits are read on that clock too. Measured from the
    /// request, the charge point errs ahead of the server by up to one round trip, never behind:
    /// a profile the server starts "now" is in force when it arrives, instead of leaving a gap
    /// (under the replaced profile's fallback) until the charger's clock reaches its start. At
    /// 240× a 25 ms round trip is 6 s of protocol time. Off by default (a server whose clock
    /// runs at another speed would shift every visit). Addition.
    pub adopt_server_time: bool,
}

impl VirtualChargerConfig {
    /// A 1-phase 220 V 32 A charger at real-time speed, MeterValues every 60 s.
    pub fn new(url: impl Into<String>, id: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            url: url.into(),
            id: id.into(),
            phases: 1,
            voltage_v: 220.0,
            max_current_a: 32.0,
            meter_interval_secs: 60.0,
            clock,
            speed: 1.0,
            password: None,
            source_addr: None,
            adopt_server_time: false,
        }
    }

    pub fn electrical(&self) -> Electrical {
        Electrical {
            phases: self.phases,
            voltage_v: self.voltage_v,
            max_current_a: self.max_current_a,
        }
    }

    /// Checks the configuration; returns the server address.
    fn check(&self) -> Result<SocketAddrV4, VcpError> {
        let bad = |why: &str| Err(VcpError::Config(format!("{}: {why}", self.id)));
        if !(1..=3).contains(&self.phases) {
            return bad("phases must be 1, 2 or 3");
        }
        if !(self.voltage_v > 0.0 && self.voltage_v.is_finite()) {
            return bad("voltage_v must be positive");
        }
        if !(self.max_current_a > 0.0 && self.max_current_a.is_finite()) {
            return bad("max_current_a must be positive");
        }
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return bad("speed must be positive");
        }
        if !(self.meter_interval_secs >= 0.0 && self.meter_interval_secs.is_finite()) {
            return bad("meter_interval_secs must be zero or positive");
        }
        if self.source_addr.is_some_and(|a| !a.is_loopback()) {
            return Err(VcpError::NotLoopback(format!("{:?}", self.source_addr)));
        }
        target_of(&self.url)
    }
}

impl std::fmt::Debug for VirtualChargerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualChargerConfig")
            .field("url", &self.url)
            .field("id", &self.id)
            .field("phases", &self.phases)
            .field("voltage_v", &self.voltage_v)
            .field("max_current_a", &self.max_current_a)
            .field("meter_interval_secs", &self.meter_interval_secs)
            .field("speed", &self.speed)
            .field("source_addr", &self.source_addr)
            .finish_non_exhaustive()
    }
}

/// `ws://HOST:PORT/...` with HOST an IPv4 loopback literal or `localhost`.
fn target_of(url: &str) -> Result<SocketAddrV4, VcpError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| VcpError::Config(format!("{url}: only ws:// URLs are supported")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.replace("localhost:", "127.0.0.1:");
    let addr: SocketAddrV4 = authority
        .parse()
        .map_err(|_| VcpError::Config(format!("{url}: host must be 127.x.y.z:PORT")))?;
    if !addr.ip().is_loopback() {
        return Err(VcpError::NotLoopback(url.to_owned()));
    }
    Ok(addr)
}

/// One car's stay at the charger, in protocol time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarVisit {
    pub id_tag: String,
    pub arrival: Timestamp,
    pub departure: Timestamp,
    /// Energy the car takes before it is full.
    pub energy_kwh: f64,
    /// The car's own maximum charging power.
    pub max_kw: f64,
}

/// What a virtual charge point reports to its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum VcpEvent {
    /// StartTransaction answered: the transaction id of the visit.
    Plugged {
        charger: String,
        transaction_id: i64,
        visit: CarVisit,
    },
    /// StopTransaction sent.
    Unplugged {
        charger: String,
        transaction_id: i64,
        delivered_kwh: f64,
        wanted_kwh: f64,
    },
    /// A SetChargingProfile was answered.
    Profile {
        charger: String,
        /// When the CALL frame arrived.
        received: std::time::Instant,
        /// When the answer had been written to the socket (addition to the contract).
        answered: std::time::Instant,
        /// `chargingProfilePurpose` as received ("?" if absent).
        purpose: String,
        /// Addition: `chargingProfileId`.
        profile_id: Option<i64>,
        accepted: bool,
        /// Addition: this profile's limit at the instant it arrived, kW (None: not in force now).
        limit_kw: Option<f64>,
        /// Addition: the connector's composite limit right after the answer, kW.
        composite_kw: f64,
    },
    /// The power drawn changed.
    Power { charger: String, kw: f64 },
}

/// Counts over a charge point's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VcpSummary {
    pub visits_started: u64,
    pub visits_completed: u64,
    /// Visits whose stay passed before the charger could start them.
    pub visits_skipped: u64,
    /// Visits whose Authorize was not Accepted.
    pub visits_refused: u64,
    pub delivered_kwh: f64,
    pub connects: u64,
    pub disconnects: u64,
    pub profiles_accepted: u64,
    pub profiles_rejected: u64,
    pub call_errors: u64,
    pub calls_timed_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum VcpError {
    #[error("invalid virtual charger configuration: {0}")]
    Config(String),
    #[error("not a loopback address: {0}")]
    NotLoopback(String),
    /// The server refused the handshake for good (unknown id, bad password).
    #[error("{id}: the central system refused the connection with HTTP {status}")]
    Refused { id: String, status: u16 },
}

type Ws = WebSocketStream<TcpStream>;

enum ConnectError {
    Refused(u16),
    Failed,
}

async fn connect(config: &VirtualChargerConfig, target: SocketAddrV4) -> Result<Ws, ConnectError> {
    let socket = TcpSocket::new_v4().map_err(|_| ConnectError::Failed)?;
    if let Some(source) = config.source_addr {
        // Lets a source port still in TIME_WAIT from an earlier run be bound again.
        socket
            .set_reuseaddr(true)
            .map_err(|_| ConnectError::Failed)?;
        socket
            .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
            .map_err(|_| ConnectError::Failed)?;
    }
    let stream = socket
        .connect(SocketAddr::V4(target))
        .await
        .map_err(|_| ConnectError::Failed)?;
    stream.set_nodelay(true).map_err(|_| ConnectError::Failed)?;
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|_| ConnectError::Failed)?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Some(password) = &config.password {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", config.id));
        let value =
            HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| ConnectError::Failed)?;
        headers.insert("Authorization", value);
    }
    // Small buffers: one process drives up to ~20,000 of these.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(256 << 10))
        .max_frame_size(Some(256 << 10));
    match client_async_with_config(request, stream, Some(ws_config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) if matches!(response.status().as_u16(), 401 | 403 | 404) => {
            Err(ConnectError::Refused(response.status().as_u16()))
        }
        Err(_) => Err(ConnectError::Failed),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Io<'a> {
    config: &'a VirtualChargerConfig,
    model: Model,
    /// Charge point clock − shared clock (see [`VirtualChargerConfig::adopt_server_time`]).
    offset: jiff::SignedDuration,
    events: &'a mpsc::UnboundedSender<VcpEvent>,
}

enum End {
    Shutdown,
    Dropped,
}

struct Pending {
    id: u64,
    out: Out,
    sent: Instant,
}

impl Io<'_> {
    /// Protocol time as the charge point's clock shows it.
    fn now(&self) -> Timestamp {
        let t = (self.config.clock)();
        t.checked_add(self.offset).unwrap_or(t)
    }

    /// The real instant at which the charge point's clock shows `protocol`.
    fn real(&self, protocol: Timestamp) -> Instant {
        let secs = protocol.duration_since(self.now()).as_secs_f64() / self.config.speed;
        let wait = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(MAX_SLEEP);
        Instant::now() + wait.min(MAX_SLEEP)
    }

    /// Runs the model up to now and hands its events out.
    fn poll(&mut self) {
        let now = self.now();
        self.model.poll(now);
        self.flush();
    }

    fn flush(&mut self) {
        for e in self.model.events.drain(..) {
            // Nobody listening is fine: events are a courtesy.
            let _ = self.events.send(e);
        }
    }

    fn model_wake(&self) -> Option<Instant> {
        self.model.next_wake().map(|t| self.real(t))
    }

    /// Disconnected: lets the model run (the car keeps charging under the profiles held) for
    /// `wait`; true if shutdown was asked meanwhile.
    async fn idle(&mut self, wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        let until = Instant::now() + wait;
        loop {
            self.poll();
            if Instant::now() >= until {
                return false;
            }
            let wake = self.model_wake().map_or(until, |w| w.min(until));
            tokio::select! {
                biased;
                () = stopped(shutdown) => return true,
                () = sleep_until(wake) => {}
            }
        }
    }

    async fn session(
        &mut self,
        mut ws: Ws,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> End {
        let mut pending: Option<Pending> = None;
        let mut booted = false;
        let mut boot_at = Instant::now();
        let mut heartbeat_every = Duration::from_secs(300);
        let mut next_heartbeat = Instant::now() + heartbeat_every;
        let mut next_id: u64 = 1;
        // Shared clock when the last BootNotification went out (for adopt_server_time).
        let mut boot_sent = (self.config.clock)();
        let end = loop {
            self.poll();
            if pending.is_none() {
                let out = if !booted {
                    (Instant::now() >= boot_at).then_some(Out::Boot)
                } else if let Some(out) = self.model.outbox.pop_front() {
                    Some(out)
                } else {
                    (Instant::now() >= next_heartbeat).then_some(Out::Heartbeat)
                };
                if let Some(out) = out {
                    let payload = self.model.payload(&out);
                    self.flush();
                    let Some(payload) = payload else { continue };
                    let id = next_id;
                    next_id += 1;
                    let text = json!([2, id.to_string(), out.action(), payload]).to_string();
                    if out == Out::Boot {
                        boot_sent = (self.config.clock)();
                    }
                    if ws.send(Message::text(text)).await.is_err() {
                        if out.must_deliver() {
                            self.model.outbox.push_front(out);
                        }
                        break End::Dropped;
                    }
                    next_heartbeat = Instant::now() + heartbeat_every;
                    pending = Some(Pending {
                        id,
                        out,
                        sent: Instant::now(),
                    });
                    continue;
                }
            }
            let mut wake = self.model_wake().unwrap_or(Instant::now() + MAX_SLEEP);
            match &pending {
                Some(p) => wake = wake.min(p.sent + CALL_TIMEOUT),
                None if !booted => wake = wake.min(boot_at),
                None => wake = wake.min(next_heartbeat),
            }
            tokio::select! {
                biased;
                () = stopped(shutdown) => {
                    let _ = ws.close(None).await;
                    let _ = timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = ws.next().await {} }).await;
                    break End::Shutdown;
                }
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        // Pings are answered inside tungstenite; nothing else carries OCPP.
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::Dropped,
                        Some(Ok(_)) => continue,
                    };
                    let received = std::time::Instant::now();
                    let Ok(incoming) = ocpp::parse(&text) else { continue };
                    match incoming {
                        Incoming::Call { id, action, payload } => {
                            self.poll();
                            let now = self.now();
                            let (reply, note) = self.model.handle_call(&action, &payload, now);
                            let frame = match reply {
                                Reply::Result(v) => json!([3, id, v]),
                                Reply::Error { code, description } => json!([4, id, code, description, {}]),
                            };
                            if ws.send(Message::text(frame.to_string())).await.is_err() {
                                break End::Dropped;
                            }
                            if let Some(note) = note {
                                let _ = self.events.send(VcpEvent::Profile {
                                    charger: self.config.id.clone(),
                                    received,
                                    answered: std::time::Instant::now(),
                                    purpose: note.purpose,
                                    profile_id: note.profile_id,
                                    accepted: note.accepted,
                                    limit_kw: note.limit_kw,
                                    composite_kw: note.composite_kw,
                                });
                            }
                            self.flush();
                        }
                        Incoming::Result { id, payload } => {
                            let Some(p) = pending.take_if(|p| id.parse() == Ok(p.id)) else { continue };
                            let now = self.now();
                            if p.out == Out::Boot {
                                if ocpp::boot_status(&payload) == Some("Accepted") {
                                    booted = true;
                                    *backoff = BACKOFF_MIN;
                                    if let Some(i) = payload.get("interval").and_then(Value::as_u64).filter(|i| *i > 0) {
                                        heartbeat_every = Duration::from_secs(i);
                                    }
                                    next_heartbeat = Instant::now() + heartbeat_every;
                                    if self.config.adopt_server_time
                                        && let Some(server) = payload
                                            .get("currentTime")
                                            .and_then(Value::as_str)
                                            .and_then(|t| t.parse::<Timestamp>().ok())
                                    {
                                        self.offset = server.duration_since(boot_sent);
                                    }
                                    let now = self.now();
                                    self.model.on_booted(now);
                                } else {
                                    // Pending / Rejected: ask again after the interval given.
                                    let i = payload.get("interval").and_then(Value::as_u64).unwrap_or(10).max(1);
                                    boot_at = Instant::now() + Duration::from_secs(i);
                                }
                            } else {
                                self.model.poll(now);
                                self.model.on_result(&p.out, &payload, now);
                            }
                            self.flush();
                        }
                        Incoming::Error { id, .. } => {
                            let Some(p) = pending.take_if(|p| id.parse() == Ok(p.id)) else { continue };
                            self.model.summary.call_errors += 1;
                            if p.out == Out::Boot {
                                boot_at = Instant::now() + BOOT_RETRY;
                            }
                            let now = self.now();
                            self.model.on_failed(&p.out, now);
                            self.flush();
                        }
                    }
                }
                () = sleep_until(wake) => {
                    if pending.as_ref().is_some_and(|p| p.sent.elapsed() >= CALL_TIMEOUT) {
                        let p = pending.take().expect("checked");
                        self.model.summary.calls_timed_out += 1;
                        if p.out == Out::Boot {
                            boot_at = Instant::now() + BOOT_RETRY;
                        }
                        let now = self.now();
                        self.model.on_failed(&p.out, now);
                    }
                }
            }
        };
        // A transaction message that was sent but not answered goes again after reconnecting.
        if let Some(p) = pending
            && p.out.must_deliver()
        {
            self.model.outbox.push_front(p.out);
        }
        end
    }
}

/// Runs one virtual charge point until `shutdown` turns true, replaying `visits` (in protocol
/// time, by arrival). Returns counts; fails only on a bad configuration or a handshake the
/// server refuses for good (HTTP 401/403/404). Connection losses are retried.
pub async fn run_virtual_charger(
    config: VirtualChargerConfig,
    visits: Vec<CarVisit>,
    events: mpsc::UnboundedSender<VcpEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<VcpSummary, VcpError> {
    let target = config.check()?;
    let model = Model::new(
        config.id.clone(),
        config.electrical(),
        config.meter_interval_secs,
        visits,
        (config.clock)(),
    );
    let mut io = Io {
        config: &config,
        model,
        offset: jiff::SignedDuration::ZERO,
        events: &events,
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let attempt = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            r = timeout(CONNECT_TIMEOUT, connect(&config, target)) => r,
        };
        match attempt {
            Ok(Ok(ws)) => {
                io.model.summary.connects += 1;
                match io.session(ws, &mut shutdown, &mut backoff).await {
                    End::Shutdown => break,
                    End::Dropped => io.model.summary.disconnects += 1,
                }
            }
            Ok(Err(ConnectError::Refused(status))) => {
                return Err(VcpError::Refused {
                    id: config.id.clone(),
                    status,
                });
            }
            Ok(Err(ConnectError::Failed)) | Err(_) => {}
        }
        if io.idle(backoff, &mut shutdown).await {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    io.poll();
    Ok(io.model.summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_loopback_ws() {
        assert_eq!(
            target_of("ws://127.0.0.2:8180/ocpp/CP1").unwrap(),
            "127.0.0.2:8180".parse().unwrap()
        );
        assert_eq!(
            target_of("ws://localhost:9/ocpp/CP1").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(matches!(
            target_of("ws://10.0.0.1:8180/ocpp/CP1"),
            Err(VcpError::NotLoopback(_))
        ));
        assert!(matches!(
            target_of("wss://127.0.0.1:8180/x"),
            Err(VcpError::Config(_))
        ));
    }
}
