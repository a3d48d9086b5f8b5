//! The charge point itself, without sockets or clocks: one connector, the profiles it holds, the
//! car plugged in, its energy register. Protocol time comes in as arguments (`now`), the
//! charge point's own CALLs go out through [`Model::outbox`], its answers to the central system
//! are return values. The IO task in [`super`] only moves frames and sleeps.
//!
//! Energy is integrated exactly: power is constant between the instants at which something can
//! change it (a profile period boundary, a validity bound, the car becoming full, the arrival of a
//! new profile), and [`Model::advance`] steps through those instants one by one, however late the
//! task wakes up. Meter samples are taken at their own instants, not at wake-up time.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::{CarVisit, VcpEvent, VcpSummary};
use crate::smart::{self, Electrical, Installed, Purpose, RateUnit, RunningTx};

/// The only connector of a virtual charge point.
pub const CONNECTOR: u32 = 1;

/// Below this power the EVSE counts as suspended by the limit (`SuspendedEVSE`).
const SUSPENDED_BELOW_W: f64 = 1.0;
/// Energy this close to what the car wants counts as full (floating-point slack).
const FULL_EPS_WH: f64 = 1e-6;
/// How long a RemoteStartTransaction session lasts unless RemoteStopTransaction ends it sooner.
const REMOTE_SESSION: SignedDuration = SignedDuration::from_hours(24);
/// What a car started by RemoteStartTransaction wants: more than any session delivers.
const REMOTE_ENERGY_KWH: f64 = 1e6;
/// Transaction messages kept while the central system is unreachable (oldest samples dropped).
const OUTBOX_LIMIT: usize = 10_000;

/// A CALL the charge point will send; the payload is built when it is sent, so the transaction
/// id learnt from StartTransaction.conf reaches the messages queued before it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Boot,
    Heartbeat,
    Status {
        connector: u32,
        status: &'static str,
        at: Timestamp,
    },
    Authorize {
        id_tag: String,
    },
    Start {
        id_tag: String,
        meter_start_wh: i64,
        at: Timestamp,
    },
    Meter {
        register_wh: i64,
        power_w: f64,
        at: Timestamp,
    },
    Stop {
        id_tag: String,
        meter_stop_wh: i64,
        at: Timestamp,
        reason: &'static str,
        delivered_kwh: f64,
        wanted_kwh: f64,
    },
}

impl Out {
    pub fn action(&self) -> &'static str {
        match self {
            Out::Boot => "BootNotification",
            Out::Heartbeat => "Heartbeat",
            Out::Status { .. } => "StatusNotification",
            Out::Authorize { .. } => "Authorize",
            Out::Start { .. } => "StartTransaction",
            Out::Meter { .. } => "MeterValues",
            Out::Stop { .. } => "StopTransaction",
        }
    }

    /// Messages a charge point must deliver even across a lost connection (OCPP 1.6 §4.7:
    /// transaction-related messages are queued and retried).
    pub fn must_deliver(&self) -> bool {
        matches!(
            self,
            Out::Start { .. } | Out::Meter { .. } | Out::Stop { .. }
        )
    }
}

/// The answer to a CALL from the central system.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Result(Value),
    Error {
        code: &'static str,
        description: String,
    },
}

/// What a SetChargingProfile did (the IO layer stamps it with real instants for [`VcpEvent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileNote {
    pub purpose: String,
    pub profile_id: Option<i64>,
    pub accepted: bool,
    /// The limit this profile sets at the instant it arrived, in kW (None: not in force now).
    pub limit_kw: Option<f64>,
    /// The connector's composite limit right after, in kW.
    pub composite_kw: f64,
}

#[derive(Debug)]
struct Session {
    visit: CarVisit,
    tx: RunningTx,
    start_wh: f64,
    next_tick: Option<Timestamp>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the next visit.
    Idle,
    /// Car plugged in, Authorize sent, no answer yet.
    Authorizing(CarVisit),
    Charging(Session),
}

/// One virtual charge point with one connector.
#[derive(Debug)]
pub struct Model {
    id: String,
    elec: Electrical,
    meter_interval: Option<SignedDuration>,
    visits: VecDeque<CarVisit>,
    profiles: Vec<Installed>,
    /// Energy.Active.Import.Register in Wh (lifetime, fractional).
    register_wh: f64,
    phase: Phase,
    /// Integration cursor: energy is known up to this instant.
    cursor: Timestamp,
    /// CALLs waiting to be sent, in order.
    pub outbox: VecDeque<Out>,
    /// Events for the owner of the charge point.
    pub events: Vec<VcpEvent>,
    /// The last transaction id the central system gave (used for the messages of that session).
    current_tx_id: Option<i64>,
    status: &'static str,
    reported_power_w: Option<f64>,
    pub summary: VcpSummary,
}

fn round_wh(wh: f64) -> i64 {
    wh.round() as i64
}

fn ms_between(a: Timestamp, b: Timestamp) -> i64 {
    b.as_millisecond() - a.as_millisecond()
}

impl Model {
    pub fn new(
        id: String,
        elec: Electrical,
        meter_interval_secs: f64,
        mut visits: Vec<CarVisit>,
        now: Timestamp,
    ) -> Self {
        visits.sort_by_key(|v| v.arrival);
        let meter_interval = (meter_interval_secs > 0.0)
            .then(|| SignedDuration::from_millis((meter_interval_secs * 1000.0).round() as i64))
            .filter(|d| d.as_millis() > 0);
        Self {
            id,
            elec,
            meter_interval,
            visits: visits.into(),
            profiles: Vec::new(),
            register_wh: 0.0,
            phase: Phase::Idle,
            cursor: now,
            outbox: VecDeque::new(),
            events: Vec::new(),
            current_tx_id: None,
            status: "Available",
            reported_power_w: None,
            summary: VcpSummary::default(),
        }
    }

    pub fn profiles(&self) -> &[Installed] {
        &self.profiles
    }

    pub fn register_wh(&self) -> f64 {
        self.register_wh
    }

    pub fn status(&self) -> &'static str {
        self.status
    }

    fn running(&self) -> Option<&RunningTx> {
        match &self.phase {
            Phase::Charging(s) => Some(&s.tx),
            _ => None,
        }
    }

    /// The composite limit of the connector at `t`, in watts.
    pub fn limit_w(&self, t: Timestamp) -> f64 {
        smart::limit_w(&self.profiles, CONNECTOR, self.running(), t, &self.elec)
    }

    /// What the car draws at `t` (given the energy at the cursor).
    fn power_at(&self, t: Timestamp) -> f64 {
        let Phase::Charging(s) = &self.phase else {
            return 0.0;
        };
        let delivered = self.register_wh - s.start_wh;
        if delivered >= s.visit.energy_kwh * 1000.0 - FULL_EPS_WH {
            return 0.0;
        }
        self.limit_w(t).min(s.visit.max_kw * 1000.0).max(0.0)
    }

    /// The current power, in watts.
    pub fn power_w(&self) -> f64 {
        self.power_at(self.cursor)
    }

    /// Integrates energy from the cursor up to `to`, changing power only at the instants where
    /// the composite limit changes or the car becomes full.
    pub fn advance(&mut self, to: Timestamp) {
        while self.cursor < to {
            let now = self.cursor;
            let Phase::Charging(s) = &self.phase else {
                self.cursor = to;
                return;
            };
            let power = self.power_at(now);
            let mut next = to;
            if let Some(change) = smart::next_change(&self.profiles, CONNECTOR, Some(&s.tx), now) {
                next = next.min(change);
            }
            let wanted = s.visit.energy_kwh * 1000.0;
            let start_wh = s.start_wh;
            if power > 0.0 {
                let missing = wanted - (self.register_wh - start_wh);
                let full_ms = (missing / power * 3.6e6).ceil().max(1.0) as i64;
                if let Ok(full_at) = now.checked_add(SignedDuration::from_millis(full_ms)) {
                    next = next.min(full_at);
                }
            }
            let dt_ms = ms_between(now, next) as f64;
            self.register_wh =
                (self.register_wh + power * dt_ms / 3.6e6).min(start_wh + wanted.max(0.0));
            self.cursor = next;
        }
    }

    /// The next instant at which the model must run (arrival, departure, meter sample, or a
    /// change of power worth reporting); `None` = nothing scheduled.
    pub fn next_wake(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Idle => self.visits.front().map(|v| v.arrival),
            Phase::Authorizing(v) => Some(v.departure),
            Phase::Charging(s) => {
                let mut next = s.visit.departure;
                if let Some(tick) = s.next_tick {
                    next = next.min(tick);
                }
                if let Some(change) =
                    smart::next_change(&self.profiles, CONNECTOR, Some(&s.tx), self.cursor)
                {
                    next = next.min(change);
                }
                let power = self.power_w();
                if power > 0.0 {
                    let missing = s.visit.energy_kwh * 1000.0 - (self.register_wh - s.start_wh);
                    let full_ms = (missing / power * 3.6e6).ceil().max(1.0) as i64;
                    if let Ok(full_at) = self
                        .cursor
                        .checked_add(SignedDuration::from_millis(full_ms))
                    {
                        next = next.min(full_at);
                    }
                }
                Some(next)
            }
        }
    }

    /// The next arrival, departure or meter sample.
    fn next_event(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Idle => self.visits.front().map(|v| v.arrival),
            Phase::Authorizing(v) => Some(v.departure),
            Phase::Charging(s) => Some(match s.next_tick {
                Some(tick) => tick.min(s.visit.departure),
                None => s.visit.departure,
            }),
        }
    }

    /// Runs everything due up to `now` in time order (events, and power changes, each reported
    /// at its own instant), then brings the energy up to `now`.
    pub fn poll(&mut self, now: Timestamp) {
        while let Some(wake) = self.next_wake().filter(|w| *w <= now) {
            let wake = wake.max(self.cursor);
            self.advance(wake);
            if self.next_event().is_some_and(|e| e <= wake) {
                self.on_due(wake);
            }
            self.report(wake);
        }
        self.advance(now);
        self.report(now);
    }

    fn on_due(&mut self, at: Timestamp) {
        if let Phase::Charging(s) = &self.phase {
            if s.next_tick
                .is_some_and(|tick| tick <= at && tick < s.visit.departure)
            {
                let power_w = self.power_at(at);
                let interval = self.meter_interval;
                if let Phase::Charging(s) = &mut self.phase {
                    s.next_tick = s
                        .next_tick
                        .and_then(|t| interval.and_then(|i| t.checked_add(i).ok()));
                }
                self.outbox.push_back(Out::Meter {
                    register_wh: round_wh(self.register_wh),
                    power_w,
                    at,
                });
            } else {
                self.end_session(at, "EVDisconnected");
            }
            return;
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Authorizing(_) => {
                // Left before the central system answered Authorize.
                self.summary.visits_skipped += 1;
                self.set_status("Available", at);
            }
            _ => {
                let Some(visit) = self.visits.pop_front() else {
                    return;
                };
                if visit.departure <= at {
                    // Its whole stay passed while the charger could not act on it.
                    self.summary.visits_skipped += 1;
                    return;
                }
                self.set_status("Preparing", at);
                self.outbox.push_back(Out::Authorize {
                    id_tag: visit.id_tag.clone(),
                });
                self.phase = Phase::Authorizing(visit);
            }
        }
    }

    /// Ends the running transaction at `at` (the car leaves or is stopped remotely).
    fn end_session(&mut self, at: Timestamp, reason: &'static str) {
        let Phase::Charging(s) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        let delivered_kwh = (self.register_wh - s.start_wh) / 1000.0;
        self.outbox.push_back(Out::Stop {
            id_tag: s.visit.id_tag.clone(),
            meter_stop_wh: round_wh(self.register_wh),
            at,
            reason,
            delivered_kwh,
            wanted_kwh: s.visit.energy_kwh,
        });
        self.summary.visits_completed += 1;
        self.summary.delivered_kwh += delivered_kwh;
        // A TxProfile lives as long as its transaction (OCPP 1.6 §3.13.2).
        self.profiles
            .retain(|i| i.profile.charging_profile_purpose != Purpose::TxProfile);
        self.set_status("Finishing", at);
        self.set_status("Available", at);
    }

    fn begin_session(&mut self, visit: CarVisit, at: Timestamp) {
        let next_tick = self.meter_interval.and_then(|i| at.checked_add(i).ok());
        self.outbox.push_back(Out::Start {
            id_tag: visit.id_tag.clone(),
            meter_start_wh: round_wh(self.register_wh),
            at,
        });
        self.phase = Phase::Charging(Session {
            tx: RunningTx {
                id: None,
                start: at,
            },
            start_wh: self.register_wh,
            next_tick,
            visit,
        });
        self.summary.visits_started += 1;
        self.set_status("Charging", at);
    }

    fn set_status(&mut self, status: &'static str, at: Timestamp) {
        if self.status != status {
            self.status = status;
            self.outbox.push_back(Out::Status {
                connector: CONNECTOR,
                status,
                at,
            });
        }
    }

    /// Reports a changed power (event) and the status it implies while charging.
    fn report(&mut self, now: Timestamp) {
        let power = self.power_w();
        if self.reported_power_w != Some(power) {
            self.reported_power_w = Some(power);
            self.events.push(VcpEvent::Power {
                charger: self.id.clone(),
                kw: power / 1000.0,
            });
        }
        if let Phase::Charging(s) = &self.phase {
            let full = self.register_wh - s.start_wh >= s.visit.energy_kwh * 1000.0 - FULL_EPS_WH;
            let status = if full {
                "SuspendedEV"
            } else if power < SUSPENDED_BELOW_W {
                "SuspendedEVSE"
            } else {
                "Charging"
            };
            self.set_status(status, now);
        }
        // Keep only the newest transaction messages if the central system has been away long.
        while self.outbox.len() > OUTBOX_LIMIT {
            match self
                .outbox
                .iter()
                .position(|o| matches!(o, Out::Meter { .. }))
            {
                Some(i) => {
                    self.outbox.remove(i);
                }
                None => break,
            }
        }
    }

    /// After BootNotification was accepted: the connectors' status, as after every (re)boot.
    pub fn on_booted(&mut self, now: Timestamp) {
        self.outbox.push_front(Out::Status {
            connector: CONNECTOR,
            status: self.status,
            at: now,
        });
        self.outbox.push_front(Out::Status {
            connector: 0,
            status: "Available",
            at: now,
        });
    }

    /// The payload of `out`, as it is sent now; `None` = nothing to send any more.
    pub fn payload(&mut self, out: &Out) -> Option<Value> {
        let time = |t: &Timestamp| t.round(jiff::Unit::Millisecond).unwrap_or(*t).to_string();
        Some(match out {
            Out::Boot => json!({
                "chargePointVendor": "Orderly",
                "chargePointModel": "VirtualCP",
                "chargePointSerialNumber": self.id.chars().take(25).collect::<String>(),
                "firmwareVersion": env!("CARGO_PKG_VERSION"),
            }),
            Out::Heartbeat => json!({}),
            Out::Status {
                connector,
                status,
                at,
            } => json!({
                "connectorId": connector,
                "errorCode": "NoError",
                "status": status,
                "timestamp": time(at),
            }),
            Out::Authorize { id_tag } => json!({ "idTag": id_tag }),
            Out::Start {
                id_tag,
                meter_start_wh,
                at,
            } => {
                // Messages of the previous session are all out; the next id comes with the answer.
                self.current_tx_id = None;
                json!({
                    "connectorId": CONNECTOR,
                    "idTag": id_tag,
                    "meterStart": meter_start_wh,
                    "timestamp": time(at),
                })
            }
            Out::Meter {
                register_wh,
                power_w,
                at,
            } => {
                let mut p = json!({
                    "connectorId": CONNECTOR,
                    "meterValue": [{
                        "timestamp": time(at),
                        "sampledValue": [
                            {"value": register_wh.to_string(), "context": "Sample.Periodic",
                             "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"},
                            {"value": format!("{:.0}", power_w), "context": "Sample.Periodic",
                             "measurand": "Power.Active.Import", "location": "Outlet", "unit": "W"},
                        ],
                    }],
                });
                if let Some(tx) = self.current_tx_id {
                    p["transactionId"] = json!(tx);
                }
                p
            }
            Out::Stop {
                id_tag,
                meter_stop_wh,
                at,
                reason,
                delivered_kwh,
                wanted_kwh,
            } => {
                // StopTransaction needs the id; without one the central system never knew it.
                let tx = self.current_tx_id?;
                self.events.push(VcpEvent::Unplugged {
                    charger: self.id.clone(),
                    transaction_id: tx,
                    delivered_kwh: *delivered_kwh,
                    wanted_kwh: *wanted_kwh,
                });
                json!({
                    "transactionId": tx,
                    "idTag": id_tag,
                    "meterStop": meter_stop_wh,
                    "timestamp": time(at),
                    "reason": reason,
                })
            }
        })
    }

    /// The central system answered `out` with `payload` at `now`.
    pub fn on_result(&mut self, out: &Out, payload: &Value, now: Timestamp) {
        let status = payload
            .pointer("/idTagInfo/status")
            .and_then(Value::as_str)
            .unwrap_or("");
        match out {
            Out::Authorize { .. } => {
                let Phase::Authorizing(visit) = std::mem::replace(&mut self.phase, Phase::Idle)
                else {
                    return;
                };
                self.advance(now);
                if status == "Accepted" {
                    self.begin_session(visit, now);
                } else {
                    self.summary.visits_refused += 1;
                    self.set_status("Available", now);
                }
            }
            Out::Start { .. } => {
                let Some(tx) = payload.get("transactionId").and_then(Value::as_i64) else {
                    return;
                };
                self.current_tx_id = Some(tx);
                if let Phase::Charging(s) = &mut self.phase
                    && s.tx.id.is_none()
                {
                    s.tx.id = Some(tx);
                    let visit = s.visit.clone();
                    self.events.push(VcpEvent::Plugged {
                        charger: self.id.clone(),
                        transaction_id: tx,
                        visit,
                    });
                    if status != "Accepted" {
                        self.advance(now);
                        self.end_session(now, "DeAuthorized");
                    }
                }
            }
            _ => {}
        }
    }

    /// The central system answered `out` with a CALLERROR (or never answered).
    pub fn on_failed(&mut self, out: &Out, now: Timestamp) {
        if let Out::Authorize { .. } = out
            && let Phase::Authorizing(_) = self.phase
        {
            self.phase = Phase::Idle;
            self.summary.visits_refused += 1;
            self.set_status("Available", now);
        }
    }

    /// Answers a CALL from the central system at `now` (after [`Model::poll`]`(now)`).
    pub fn handle_call(
        &mut self,
        action: &str,
        payload: &Value,
        now: Timestamp,
    ) -> (Reply, Option<ProfileNote>) {
        match action {
            "SetChargingProfile" => {
                let (status, note) = self.set_charging_profile(payload, now);
                (Reply::Result(json!({ "status": status })), Some(note))
            }
            "ClearChargingProfile" => {
                let status = self.clear_charging_profile(payload);
                (Reply::Result(json!({ "status": status })), None)
            }
            "GetCompositeSchedule" => (Reply::Result(self.composite_schedule(payload, now)), None),
            "RemoteStartTransaction" => (Reply::Result(self.remote_start(payload, now)), None),
            "RemoteStopTransaction" => {
                let wanted = payload.get("transactionId").and_then(Value::as_i64);
                let running = self.running().and_then(|tx| tx.id);
                let status = if wanted.is_some() && wanted == running {
                    self.end_session(now, "Remote");
                    "Accepted"
                } else {
                    "Rejected"
                };
                (Reply::Result(json!({ "status": status })), None)
            }
            "TriggerMessage" => (Reply::Result(self.trigger(payload, now)), None),
            other => (
                Reply::Error {
                    code: "NotImplemented",
                    description: format!("virtual charge point does not implement {other}"),
                },
                None,
            ),
        }
    }

    fn set_charging_profile(
        &mut self,
        payload: &Value,
        now: Timestamp,
    ) -> (&'static str, ProfileNote) {
        let purpose_hint = payload
            .pointer("/csChargingProfiles/chargingProfilePurpose")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let mut note = ProfileNote {
            purpose: purpose_hint,
            profile_id: payload
                .pointer("/csChargingProfiles/chargingProfileId")
                .and_then(Value::as_i64),
            accepted: false,
            limit_kw: None,
            composite_kw: self.limit_w(now) / 1000.0,
        };
        match self.install(payload, now) {
            Ok(()) => {
                self.summary.profiles_accepted += 1;
                note.accepted = true;
                let installed = self
                    .profiles
                    .iter()
                    .find(|i| Some(i.profile.charging_profile_id) == note.profile_id);
                note.limit_kw = installed
                    .and_then(|i| smart::period_at(i, self.running(), now).map(|p| (i, p)))
                    .map(|(i, p)| {
                        self.elec.to_watts(
                            p.limit,
                            i.profile.charging_schedule.charging_rate_unit,
                            p.number_phases,
                        ) / 1000.0
                    });
                note.composite_kw = self.limit_w(now) / 1000.0;
                ("Accepted", note)
            }
            Err(_) => {
                self.summary.profiles_rejected += 1;
                ("Rejected", note)
            }
        }
    }

    fn install(&mut self, payload: &Value, now: Timestamp) -> Result<(), smart::ProfileError> {
        let connector = payload
            .get("connectorId")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let profile: smart::ChargingProfile = payload
            .get("csChargingProfiles")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .ok_or(smart::ProfileError::NoPeriods)?;
        smart::validate(&profile)?;
        if !(0..=i64::from(CONNECTOR)).contains(&connector) {
            return Err(smart::ProfileError::NoSuchConnector(connector));
        }
        match profile.charging_profile_purpose {
            Purpose::ChargePointMaxProfile if connector != 0 => {
                return Err(smart::ProfileError::MaxProfileOnConnector);
            }
            Purpose::TxProfile => {
                if connector == 0 {
                    return Err(smart::ProfileError::TxProfileOnConnectorZero);
                }
                let running = self.running().ok_or(smart::ProfileError::NoTransaction)?;
                if let (Some(want), Some(have)) = (profile.transaction_id, running.id)
                    && want != have
                {
                    return Err(smart::ProfileError::OtherTransaction(want));
                }
            }
            _ => {}
        }
        let connector = connector as u32;
        // Same id, or same stack level and purpose on the same connector: replaced (§5.16).
        self.profiles.retain(|i| {
            let p = &i.profile;
            p.charging_profile_id != profile.charging_profile_id
                && !(p.stack_level == profile.stack_level
                    && p.charging_profile_purpose == profile.charging_profile_purpose
                    && i.connector_id == connector)
        });
        self.profiles.push(Installed {
            connector_id: connector,
            profile,
            received: now,
        });
        Ok(())
    }

    fn clear_charging_profile(&mut self, payload: &Value) -> &'static str {
        let id = payload.get("id").and_then(Value::as_i64);
        let connector = payload.get("connectorId").and_then(Value::as_i64);
        let purpose = payload
            .get("chargingProfilePurpose")
            .and_then(Value::as_str);
        let stack = payload.get("stackLevel").and_then(Value::as_i64);
        let before = self.profiles.len();
        self.profiles.retain(|i| {
            let p = &i.profile;
            let matches = match id {
                // An id identifies the profile whatever the other fields say.
                Some(id) => p.charging_profile_id == id,
                None => {
                    connector.is_none_or(|c| c == i64::from(i.connector_id))
                        && purpose.is_none_or(|x| x == p.charging_profile_purpose.as_str())
                        && stack.is_none_or(|s| s == p.stack_level)
                }
            };
            !matches
        });
        if self.profiles.len() < before {
            "Accepted"
        } else {
            "Unknown"
        }
    }

    fn composite_schedule(&self, payload: &Value, now: Timestamp) -> Value {
        let connector = payload
            .get("connectorId")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        let duration = payload.get("duration").and_then(Value::as_i64).unwrap_or(0);
        if !(0..=i64::from(CONNECTOR)).contains(&connector) || duration <= 0 {
            return json!({ "status": "Rejected" });
        }
        let unit = match payload.get("chargingRateUnit").and_then(Value::as_str) {
            Some("W") => RateUnit::W,
            _ => RateUnit::A,
        };
        let periods: Vec<Value> = smart::composite_schedule(
            &self.profiles,
            CONNECTOR,
            self.running(),
            now,
            duration,
            unit,
            &self.elec,
        )
        .into_iter()
        .map(|(start, limit)| {
            let mut p = json!({ "startPeriod": start, "limit": limit });
            if unit == RateUnit::A {
                p["numberPhases"] = json!(self.elec.phases);
            }
            p
        })
        .collect();
        let start = now.round(jiff::Unit::Second).unwrap_or(now).to_string();
        json!({
            "status": "Accepted",
            "connectorId": connector,
            "scheduleStart": start,
            "chargingSchedule": {
                "duration": duration,
                "startSchedule": start,
                "chargingRateUnit": if unit == RateUnit::W { "W" } else { "A" },
                "chargingSchedulePeriod": periods,
            },
        })
    }

    /// RemoteStartTransaction: with the connector free, a transaction starts at once (as with
    /// AuthorizeRemoteTxRequests = false) for a car that takes all it is given for up to 24 h,
    /// until RemoteStopTransaction or the next scheduled arrival.
    fn remote_start(&mut self, payload: &Value, now: Timestamp) -> Value {
        let id_tag = payload.get("idTag").and_then(Value::as_str);
        let connector = payload
            .get("connectorId")
            .and_then(Value::as_i64)
            .unwrap_or(i64::from(CONNECTOR));
        let (Some(id_tag), true, Phase::Idle) =
            (id_tag, connector == i64::from(CONNECTOR), &self.phase)
        else {
            return json!({ "status": "Rejected" });
        };
        let mut departure = now.checked_add(REMOTE_SESSION).unwrap_or(Timestamp::MAX);
        if let Some(next) = self.visits.front() {
            departure = departure.min(next.arrival.max(now));
        }
        let visit = CarVisit {
            id_tag: id_tag.to_owned(),
            arrival: now,
            departure,
            energy_kwh: REMOTE_ENERGY_KWH,
            max_kw: self.elec.hardware_max_w() / 1000.0,
        };
        self.set_status("Preparing", now);
        self.begin_session(visit, now);
        if let Some(profile) = payload.get("chargingProfile") {
            let wrapped = json!({ "connectorId": CONNECTOR, "csChargingProfiles": profile });
            if self.install(&wrapped, now).is_err() {
                self.summary.profiles_rejected += 1;
            }
        }
        json!({ "status": "Accepted" })
    }

    fn trigger(&mut self, payload: &Value, now: Timestamp) -> Value {
        let status = match payload.get("requestedMessage").and_then(Value::as_str) {
            Some("BootNotification") => {
                self.outbox.push_back(Out::Boot);
                "Accepted"
            }
            Some("Heartbeat") => {
                self.outbox.push_back(Out::Heartbeat);
                "Accepted"
            }
            Some("StatusNotification") => {
                self.outbox.push_back(Out::Status {
                    connector: CONNECTOR,
                    status: self.status,
                    at: now,
                });
                "Accepted"
            }
            Some("MeterValues") => {
                self.outbox.push_back(Out::Meter {
                    register_wh: round_wh(self.register_wh),
                    power_w: self.power_w(),
                    at: now,
                });
                "Accepted"
            }
            Some(_) => "NotImplemented",
            None => "Rejected",
        };
        json!({ "status": status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// 1 phase, 220 V, 32 A: 7,040 W.
    const ELEC: Electrical = Electrical {
        phases: 1,
        voltage_v: 220.0,
        max_current_a: 32.0,
    };

    fn visit(energy_kwh: f64, max_kw: f64) -> CarVisit {
        CarVisit {
            id_tag: "TAG1".into(),
            arrival: t("2026-11-26T18:00:00Z"),
            departure: t("2026-11-27T02:00:00Z"),
            energy_kwh,
            max_kw,
        }
    }

    /// Plays the central system: every queued CALL is sent and answered at `now`.
    fn exchange(m: &mut Model, now: Timestamp, sent: &mut Vec<(&'static str, Value)>) {
        while let Some(out) = m.outbox.pop_front() {
            let Some(payload) = m.payload(&out) else {
                continue;
            };
            let answer = match &out {
                Out::Authorize { .. } => json!({"idTagInfo": {"status": "Accepted"}}),
                Out::Start { .. } => {
                    json!({"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
                }
                _ => json!({}),
            };
            sent.push((out.action(), payload));
            m.on_result(&out, &answer, now);
        }
    }

    fn meters(sent: &[(&str, Value)]) -> Vec<(String, i64, i64)> {
        sent.iter()
            .filter(|(a, _)| *a == "MeterValues")
            .map(|(_, p)| {
                let mv = &p["meterValue"][0];
                let v = |i: usize| {
                    mv["sampledValue"][i]["value"]
                        .as_str()
                        .unwrap()
                        .parse::<i64>()
                        .unwrap()
                };
                (mv["timestamp"].as_str().unwrap().to_owned(), v(0), v(1))
            })
            .collect()
    }

    fn set_profile(
        m: &mut Model,
        now: Timestamp,
        connector: i64,
        profile: Value,
    ) -> (Reply, Option<ProfileNote>) {
        m.poll(now);
        m.handle_call(
            "SetChargingProfile",
            &json!({"connectorId": connector, "csChargingProfiles": profile}),
            now,
        )
    }

    fn tx_profile(start: &str, periods: Value) -> Value {
        json!({"chargingProfileId": 11, "transactionId": 42, "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": {"startSchedule": start, "chargingRateUnit": "A", "chargingSchedulePeriod": periods}})
    }

    #[test]
    fn uncontrolled_visit_delivers_what_the_car_wants_and_stops_at_departure() {
        let arrival = t("2026-11-26T18:00:00Z");
        let mut m = Model::new(
            "CP1".into(),
            ELEC,
            900.0,
            vec![visit(10.0, 11.0)],
            t("2026-11-26T17:00:00Z"),
        );
        let mut sent = Vec::new();
        m.poll(arrival);
        exchange(&mut m, arrival, &mut sent);
        let actions: Vec<&str> = sent.iter().map(|(a, _)| *a).collect();
        assert_eq!(
            actions,
            [
                "StatusNotification",
                "Authorize",
                "StartTransaction",
                "StatusNotification"
            ]
        );
        assert_eq!(sent[0].1["status"], "Preparing");
        assert_eq!(sent[2].1["meterStart"], 0);
        assert_eq!(sent[3].1["status"], "Charging");
        // Woken only once, long after departure: every sample still lands on its own instant.
        m.poll(t("2026-11-27T03:00:00Z"));
        exchange(&mut m, t("2026-11-27T03:00:00Z"), &mut sent);
        let mv = meters(&sent);
        // 10 kWh at 7,040 W takes 1 h 25 min 13.6 s: samples every 15 min until departure.
        assert_eq!(mv[0], ("2026-11-26T18:15:00Z".into(), 1760, 7040));
        assert_eq!(mv[4], ("2026-11-26T19:15:00Z".into(), 8800, 7040));
        assert_eq!(mv[5], ("2026-11-26T19:30:00Z".into(), 10000, 0));
        assert_eq!(
            mv.len(),
            31,
            "8 h of 15 min samples, the one at departure is the Stop"
        );
        let stop = &sent
            .iter()
            .find(|(a, _)| *a == "StopTransaction")
            .unwrap()
            .1;
        assert_eq!(stop["meterStop"], 10000);
        assert_eq!(stop["reason"], "EVDisconnected");
        assert_eq!(stop["transactionId"], 42);
        assert_eq!(stop["timestamp"], "2026-11-27T02:00:00Z");
        let statuses: Vec<&str> = sent
            .iter()
            .filter(|(a, _)| *a == "StatusNotification")
            .map(|(_, p)| p["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                "Preparing",
                "Charging",
                "SuspendedEV",
                "Finishing",
                "Available"
            ]
        );
        assert!(m.events.iter().any(|e| matches!(e, VcpEvent::Unplugged { transaction_id: 42, delivered_kwh, .. } if (*delivered_kwh - 10.0).abs() < 1e-9)));
        assert_eq!(m.summary.visits_completed, 1);
    }

    #[test]
    fn tx_profile_periods_are_integrated_exactly() {
        let arrival = t("2026-11-26T18:00:00Z");
        let mut m = Model::new("CP1".into(), ELEC, 900.0, vec![visit(30.0, 11.0)], arrival);
        let mut sent = Vec::new();
        m.poll(arrival);
        exchange(&mut m, arrival, &mut sent);
        // 10 A from 18:00, 0 A from 18:20, 16 A from 18:40; profile arrives at 18:05.
        let (reply, note) = set_profile(
            &mut m,
            t("2026-11-26T18:05:00Z"),
            1,
            tx_profile(
                "2026-11-26T18:00:00Z",
                json!([{"startPeriod": 0, "limit": 10.0}, {"startPeriod": 1200, "limit": 0.0}, {"startPeriod": 2400, "limit": 16.0}]),
            ),
        );
        assert_eq!(reply, Reply::Result(json!({"status": "Accepted"})));
        let note = note.unwrap();
        assert!(note.accepted);
        assert_eq!(note.limit_kw, Some(2.2));
        assert_eq!(note.composite_kw, 2.2);
        m.poll(t("2026-11-26T19:10:00Z"));
        exchange(&mut m, t("2026-11-26T19:10:00Z"), &mut sent);
        let mv = meters(&sent);
        // 18:00-18:05 at 7,040 W = 586.67 Wh; 18:05-18:15 at 2,200 W = 366.67 Wh.
        assert_eq!(mv[0], ("2026-11-26T18:15:00Z".into(), 953, 2200));
        // + 5 min at 2,200 W (183.33), then 0 W: 1,136.67 Wh at 18:30.
        assert_eq!(mv[1], ("2026-11-26T18:30:00Z".into(), 1137, 0));
        // + 5 min at 3,520 W from 18:40 (293.33): 1,430 Wh at 18:45.
        assert_eq!(mv[2], ("2026-11-26T18:45:00Z".into(), 1430, 3520));
        assert_eq!(mv[3], ("2026-11-26T19:00:00Z".into(), 2310, 3520));
        let statuses: Vec<&str> = sent
            .iter()
            .filter(|(a, _)| *a == "StatusNotification")
            .map(|(_, p)| p["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["Preparing", "Charging", "SuspendedEVSE", "Charging"]
        );
    }

    #[test]
    fn profiles_are_validated_replaced_and_cleared() {
        let arrival = t("2026-11-26T18:00:00Z");
        let mut m = Model::new("CP1".into(), ELEC, 0.0, vec![visit(30.0, 11.0)], arrival);
        let accepted = |r: (Reply, Option<ProfileNote>)| r.1.unwrap().accepted;
        // No transaction yet: a TxProfile is refused.
        assert!(!accepted(set_profile(
            &mut m,
            arrival,
            1,
            tx_profile(
                "2026-11-26T18:00:00Z",
                json!([{"startPeriod": 0, "limit": 10.0}])
            )
        )));
        // Malformed: no periods / not a profile at all / max profile on connector 1.
        assert!(!accepted(set_profile(
            &mut m,
            arrival,
            0,
            json!({"chargingProfileId": 1})
        )));
        let max = json!({"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": {"startSchedule": "2026-11-26T00:00:00Z",
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0}]}});
        assert!(!accepted(set_profile(&mut m, arrival, 1, max.clone())));
        assert!(accepted(set_profile(&mut m, arrival, 0, max.clone())));
        assert_eq!(m.limit_w(arrival), 4400.0);
        let mut default = max.clone();
        default["chargingProfileId"] = json!(2);
        default["chargingProfilePurpose"] = json!("TxDefaultProfile");
        default["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = json!(8.0);
        assert!(accepted(set_profile(&mut m, arrival, 0, default.clone())));
        assert_eq!(m.limit_w(arrival), 1760.0);
        // Same purpose and stack level on the same connector: replaced.
        default["chargingProfileId"] = json!(3);
        default["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = json!(12.0);
        assert!(accepted(set_profile(&mut m, arrival, 0, default)));
        assert_eq!(m.profiles().len(), 2);
        assert_eq!(m.limit_w(arrival), 2640.0);
        // GetCompositeSchedule in W and in A.
        let (r, _) = m.handle_call(
            "GetCompositeSchedule",
            &json!({"connectorId": 1, "duration": 600, "chargingRateUnit": "W"}),
            arrival,
        );
        let Reply::Result(r) = r else { panic!() };
        assert_eq!(r["status"], "Accepted");
        assert_eq!(
            r["chargingSchedule"]["chargingSchedulePeriod"],
            json!([{"startPeriod": 0, "limit": 2640.0}])
        );
        // Clear by id, then by purpose; unknown id answers Unknown.
        let clear =
            |m: &mut Model, p: Value| match m.handle_call("ClearChargingProfile", &p, arrival).0 {
                Reply::Result(v) => v["status"].as_str().unwrap().to_owned(),
                Reply::Error { .. } => panic!(),
            };
        assert_eq!(clear(&mut m, json!({"id": 3})), "Accepted");
        assert_eq!(m.limit_w(arrival), 4400.0);
        assert_eq!(clear(&mut m, json!({"id": 99})), "Unknown");
        assert_eq!(
            clear(
                &mut m,
                json!({"chargingProfilePurpose": "ChargePointMaxProfile"})
            ),
            "Accepted"
        );
        assert_eq!(m.limit_w(arrival), 7040.0);
        // Anything else: NotImplemented.
        assert!(matches!(
            m.handle_call("Reset", &json!({"type": "Soft"}), arrival).0,
            Reply::Error {
                code: "NotImplemented",
                ..
            }
        ));
    }

    #[test]
    fn tx_profile_ends_with_its_transaction_and_remote_stop_ends_the_visit() {
        let arrival = t("2026-11-26T18:00:00Z");
        let mut m = Model::new("CP1".into(), ELEC, 0.0, vec![visit(30.0, 11.0)], arrival);
        let mut sent = Vec::new();
        m.poll(arrival);
        exchange(&mut m, arrival, &mut sent);
        let at = t("2026-11-26T18:30:00Z");
        assert!(
            set_profile(
                &mut m,
                at,
                1,
                tx_profile(
                    "2026-11-26T18:00:00Z",
                    json!([{"startPeriod": 0, "limit": 10.0}])
                )
            )
            .1
            .unwrap()
            .accepted
        );
        assert_eq!(
            m.handle_call("RemoteStopTransaction", &json!({"transactionId": 7}), at)
                .0,
            Reply::Result(json!({"status": "Rejected"}))
        );
        m.poll(t("2026-11-26T19:00:00Z"));
        assert_eq!(
            m.handle_call(
                "RemoteStopTransaction",
                &json!({"transactionId": 42}),
                t("2026-11-26T19:00:00Z")
            )
            .0,
            Reply::Result(json!({"status": "Accepted"}))
        );
        exchange(&mut m, t("2026-11-26T19:00:00Z"), &mut sent);
        let stop = &sent
            .iter()
            .find(|(a, _)| *a == "StopTransaction")
            .unwrap()
            .1;
        // 30 min at 7,040 W + 30 min at 2,200 W.
        assert_eq!(stop["meterStop"], 4620);
        assert_eq!(stop["reason"], "Remote");
        assert!(m.profiles().is_empty());
        // RemoteStart on a free connector starts at once, with its TxProfile.
        let (r, _) = m.handle_call(
            "RemoteStartTransaction",
            &json!({"idTag": "R1", "chargingProfile":
            tx_profile("2026-11-26T19:00:00Z", json!([{"startPeriod": 0, "limit": 6.0}]))}),
            t("2026-11-26T19:00:00Z"),
        );
        assert_eq!(r, Reply::Result(json!({"status": "Accepted"})));
        assert_eq!(m.limit_w(t("2026-11-26T19:00:00Z")), 1320.0);
        let (r, _) = m.handle_call(
            "RemoteStartTransaction",
            &json!({"idTag": "R2"}),
            t("2026-11-26T19:00:00Z"),
        );
        assert_eq!(r, Reply::Result(json!({"status": "Rejected"})));
    }

    #[test]
    fn trigger_message_queues_the_message() {
        let now = t("2026-11-26T18:00:00Z");
        let mut m = Model::new("CP1".into(), ELEC, 0.0, vec![], now);
        let status = |r: Reply| match r {
            Reply::Result(v) => v["status"].as_str().unwrap().to_owned(),
            Reply::Error { .. } => panic!(),
        };
        assert_eq!(
            status(
                m.handle_call(
                    "TriggerMessage",
                    &json!({"requestedMessage": "StatusNotification"}),
                    now
                )
                .0
            ),
            "Accepted"
        );
        assert_eq!(
            status(
                m.handle_call(
                    "TriggerMessage",
                    &json!({"requestedMessage": "DiagnosticsStatusNotification"}),
                    now
                )
                .0
            ),
            "NotImplemented"
        );
        assert_eq!(
            m.outbox.pop_front().map(|o| o.action()),
            Some("StatusNotification")
        );
    }
}
