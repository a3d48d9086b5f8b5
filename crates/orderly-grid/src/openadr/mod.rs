//! OpenADR 2.0b VEN, simple HTTP pull, sans-IO.
//!
//! The [`Ven`] is a state machine: the driver asks it for the next request
//! ([`Ven::poll_transmit`]), posts the body to `{vtn_url}/{request.path}`, and hands the answer
//! back ([`Ven::handle_response`]) or reports the failure ([`Ven::handle_failure`]); it sleeps
//! until [`Ven::poll_timeout`]. What the VEN learns comes out of [`Ven::poll_output`]: the
//! registration, and per event version a [`Decision`] (opt in/out and the grid commands), or its
//! cancellation. The driver reports the community's charging load through
//! [`Ven::set_charging_load`].
//!
//! Sequence: oadrQueryRegistration → oadrCreatePartyRegistration → oadrRegisterReport
//! (METADATA_TELEMETRY_USAGE: the charging load, kW) → oadrCreatedReport for what the VTN
//! requested → oadrRequestEvent (the events the VTN already holds, e.g. after a restart) →
//! oadrPoll every `oadrRequestedOadrPollFreq`; oadrDistributeEvent → oadrCreatedEvent
//! (per new or modified event); report requests → oadrUpdateReport on their schedule.
//! One request is in flight at a time. Messages are unsigned (no XML signature, no TLS client
//! certificate here: the transport is the driver's business).
//!
//! Module layout: [`xml`] (tree and writer over quick-xml), [`time`] (xCal date-times and
//! durations), [`message`] (typed 2.0b messages and their XML), [`mod@decide`] (event → commands).

pub mod decide;
pub mod message;
pub mod time;
pub mod xml;

use std::collections::{BTreeMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

pub use decide::{CommandPolicy, Decision, PlannedCommand, decide};
pub use message::{
    EiResponse, Event, EventResponse, EventStatus, OptType, Reading, ReportRequest, Service,
    TelemetryOffer, VenMessage, VtnMessage,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpenAdrError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("invalid OpenADR message: {0}")]
    Invalid(String),
    #[error("no request is in flight")]
    NothingInFlight,
    #[error("{got} is not an answer to {sent}")]
    Unexpected { sent: &'static str, got: String },
    #[error("{message} refused by the VTN: {code} {description}")]
    Refused {
        message: &'static str,
        code: u16,
        description: String,
    },
}

/// VEN settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VenConfig {
    pub ven_name: String,
    /// The resource the telemetry describes (the community id).
    pub resource_id: String,
    pub policy: CommandPolicy,
    /// Poll period until the VTN requests one.
    pub default_poll: SignedDuration,
    /// Wait after a failed or refused request before trying again.
    pub retry: SignedDuration,
    /// Telemetry sampling period offered to the VTN.
    pub report_sampling: SignedDuration,
    /// For the report metadata (`power:powerAttributes`).
    pub hertz: f64,
    pub voltage: f64,
}

impl VenConfig {
    pub fn new(ven_name: impl Into<String>, resource_id: impl Into<String>) -> Self {
        Self {
            ven_name: ven_name.into(),
            resource_id: resource_id.into(),
            policy: CommandPolicy::default(),
            default_poll: SignedDuration::from_secs(10),
            retry: SignedDuration::from_secs(5),
            report_sampling: SignedDuration::from_secs(10),
            hertz: 50.0,
            voltage: 220.0,
        }
    }
}

/// A POST to `{vtn_url}/{path}` with an `application/xml` body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub service: Service,
    pub path: &'static str,
    pub body: String,
}

/// What the VEN tells its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum VenOutput {
    Registered {
        vtn_id: Option<String>,
        ven_id: String,
        registration_id: String,
        poll_freq: SignedDuration,
    },
    /// A new or modified event: replace whatever commands earlier versions of `event_id` made
    /// with `decision.commands` (possibly none).
    Event {
        event_id: String,
        modification_number: i64,
        decision: Decision,
    },
    /// Cancelled by the VTN (status `cancelled`, or no longer in its event list): cancel the
    /// event's commands.
    EventCancelled { event_id: String },
    /// Something the operator should see in the log; the VEN carries on.
    Warning(String),
}

/// Registration phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Query,
    Register,
    RegisterReports,
    Ready,
}

/// Identifies the rID of the one data point the VEN offers.
pub const CHARGING_LOAD_RID: &str = "charging_load";
/// The reportSpecifierID of the VEN's telemetry report.
pub const TELEMETRY_SPECIFIER: &str = "orderly-charging-load";

#[derive(Debug, Clone)]
struct ActiveReport {
    request_id: String,
    granularity: SignedDuration,
    /// Zero: send one report and stop.
    back: SignedDuration,
    next_sample: Timestamp,
    next_send: Timestamp,
    samples: Vec<Reading>,
}

#[derive(Debug, Clone)]
struct KnownEvent {
    modification_number: i64,
    /// Cancellation already reported to the driver.
    cancelled: bool,
}

pub struct Ven {
    config: VenConfig,
    phase: Phase,
    vtn_id: Option<String>,
    ven_id: Option<String>,
    registration_id: Option<String>,
    poll_freq: SignedDuration,
    in_flight: Option<VenMessage>,
    queue: VecDeque<VenMessage>,
    next_poll: Timestamp,
    retry_at: Option<Timestamp>,
    reports: Vec<ActiveReport>,
    events: BTreeMap<String, KnownEvent>,
    outputs: VecDeque<VenOutput>,
    charging_kw: f64,
    /// requestIDs are `{ven_name}-{first now in ms}-{seq}`: unique across restarts without a
    /// random source.
    id_base: Option<String>,
    seq: u64,
}

impl Ven {
    pub fn new(config: VenConfig) -> Self {
        Self {
            poll_freq: config.default_poll,
            config,
            phase: Phase::Query,
            vtn_id: None,
            ven_id: None,
            registration_id: None,
            in_flight: None,
            queue: VecDeque::new(),
            next_poll: Timestamp::UNIX_EPOCH,
            retry_at: None,
            reports: Vec::new(),
            events: BTreeMap::new(),
            outputs: VecDeque::new(),
            charging_kw: 0.0,
            id_base: None,
            seq: 0,
        }
    }

    pub fn ven_id(&self) -> Option<&str> {
        self.ven_id.as_deref()
    }

    pub fn vtn_id(&self) -> Option<&str> {
        self.vtn_id.as_deref()
    }

    /// Registered, reports offered, polling.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// The community's measured charging load (kW), sampled into the telemetry report.
    pub fn set_charging_load(&mut self, kw: f64) {
        if kw.is_finite() {
            self.charging_kw = kw.max(0.0);
        }
    }

    /// The community capacity (kW) relative signals scale by, for events decided from now on.
    pub fn set_capacity_kw(&mut self, kw: f64) {
        if kw.is_finite() && kw >= 0.0 {
            self.config.policy.capacity_kw = kw;
        }
    }

    fn request_id(&mut self) -> String {
        self.seq += 1;
        let base = self.id_base.as_deref().unwrap_or(&self.config.ven_name);
        format!("{base}-{}", self.seq)
    }

    fn offer(&self) -> TelemetryOffer {
        TelemetryOffer {
            report_specifier_id: TELEMETRY_SPECIFIER.into(),
            r_id: CHARGING_LOAD_RID.into(),
            resource_id: self.config.resource_id.clone(),
            sampling: self.config.report_sampling,
            // Readings are not buffered beyond one sampling period.
            duration: self.config.report_sampling,
            hertz: self.config.hertz,
            voltage: self.config.voltage,
        }
    }

    fn ven_id_or_empty(&self) -> String {
        self.ven_id.clone().unwrap_or_default()
    }

    /// Takes the readings due at `now` into the active reports.
    fn sample(&mut self, now: Timestamp) {
        let kw = self.charging_kw;
        for report in &mut self.reports {
            if report.next_sample <= now {
                report.samples.push(Reading {
                    at: now,
                    r_id: CHARGING_LOAD_RID.into(),
                    value: kw,
                });
                report.next_sample = now
                    .checked_add(report.granularity)
                    .unwrap_or(Timestamp::MAX);
            }
        }
    }

    /// The next report to send at `now`, if one is due.
    fn due_report(&mut self, now: Timestamp) -> Option<VenMessage> {
        let index = self.reports.iter().position(|r| r.next_send <= now)?;
        let report = &mut self.reports[index];
        let readings = std::mem::take(&mut report.samples);
        let report_request_id = report.request_id.clone();
        if report.back.is_zero() {
            self.reports.remove(index);
        } else {
            report.next_send = now.checked_add(report.back).unwrap_or(Timestamp::MAX);
        }
        let request_id = self.request_id();
        Some(VenMessage::UpdateReport {
            request_id,
            ven_id: self.ven_id_or_empty(),
            report_request_id,
            report_specifier_id: TELEMETRY_SPECIFIER.into(),
            readings,
            created: now,
        })
    }

    /// The next request to post, if any is due at `now` and none is in flight.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<HttpRequest> {
        if self.in_flight.is_some() || self.retry_at.is_some_and(|at| at > now) {
            return None;
        }
        self.retry_at = None;
        if self.id_base.is_none() {
            self.id_base = Some(format!("{}-{}", self.config.ven_name, now.as_millisecond()));
        }
        if self.phase == Phase::Ready {
            self.sample(now);
        }
        let message = if let Some(message) = self.queue.pop_front() {
            message
        } else {
            match self.phase {
                Phase::Query => VenMessage::QueryRegistration {
                    request_id: self.request_id(),
                },
                Phase::Register => VenMessage::CreatePartyRegistration {
                    request_id: self.request_id(),
                    ven_id: self.ven_id.clone(),
                    registration_id: self.registration_id.clone(),
                    ven_name: self.config.ven_name.clone(),
                },
                Phase::RegisterReports => VenMessage::RegisterReport {
                    request_id: self.request_id(),
                    ven_id: self.ven_id_or_empty(),
                    offer: self.offer(),
                    created: now,
                },
                Phase::Ready => {
                    if let Some(report) = self.due_report(now) {
                        report
                    } else if self.next_poll <= now {
                        self.next_poll = now.checked_add(self.poll_freq).unwrap_or(Timestamp::MAX);
                        VenMessage::Poll {
                            ven_id: self.ven_id_or_empty(),
                        }
                    } else {
                        return None;
                    }
                }
            }
        };
        let request = HttpRequest {
            service: message.service(),
            path: message.service().path(),
            body: message.to_xml(),
        };
        self.in_flight = Some(message);
        Some(request)
    }

    /// When the VEN next has something to do (`None` while a request is in flight: the driver
    /// waits for its answer instead).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        if !self.queue.is_empty() || self.phase != Phase::Ready {
            return Some(Timestamp::UNIX_EPOCH);
        }
        let mut at = self.next_poll;
        for report in &self.reports {
            at = at.min(report.next_sample).min(report.next_send);
        }
        Some(at)
    }

    pub fn poll_output(&mut self) -> Option<VenOutput> {
        self.outputs.pop_front()
    }

    /// The request in flight failed (connection error, timeout, HTTP status other than 200):
    /// acknowledgements are sent again after `retry`, polls and reports are not (the next ones
    /// carry fresher data).
    pub fn handle_failure(&mut self, now: Timestamp, reason: &str) {
        if let Some(sent) = self.in_flight.take() {
            self.outputs.push_back(VenOutput::Warning(format!(
                "{} to the VTN failed: {reason}",
                sent.name()
            )));
            self.retry_later(sent, now);
        }
    }

    /// Keeps an acknowledgement for the next attempt and waits `retry`.
    fn retry_later(&mut self, sent: VenMessage, now: Timestamp) {
        if matches!(
            sent,
            VenMessage::CreatedEvent { .. }
                | VenMessage::CreatedReport { .. }
                | VenMessage::CanceledReport { .. }
                | VenMessage::RegisteredReport { .. }
                | VenMessage::CanceledPartyRegistration { .. }
                | VenMessage::Response { .. }
        ) {
            self.queue.push_front(sent);
        }
        self.retry_at = Some(now.checked_add(self.config.retry).unwrap_or(Timestamp::MAX));
    }

    /// The VTN's answer (HTTP 200 body) to the request in flight.
    pub fn handle_response(&mut self, body: &str, now: Timestamp) -> Result<(), OpenAdrError> {
        let sent = self.in_flight.take().ok_or(OpenAdrError::NothingInFlight)?;
        if body.trim().is_empty() {
            // openleadr answers a VEN's oadrResponse with an empty body; anything else that
            // expects an answer will be asked again.
            if matches!(sent, VenMessage::Response { .. } | VenMessage::Poll { .. }) {
                return Ok(());
            }
            let name = sent.name();
            self.retry_later(sent, now);
            return Err(OpenAdrError::Unexpected {
                sent: name,
                got: "an empty body".into(),
            });
        }
        let message = match VtnMessage::from_xml(body) {
            Ok(message) => message,
            Err(err) => {
                self.retry_later(sent, now);
                return Err(err);
            }
        };
        // The VTN may ask any VEN to register again, whatever it sent.
        if message == VtnMessage::RequestReregistration {
            self.reregister();
            return Ok(());
        }
        match (&sent, message) {
            (
                VenMessage::QueryRegistration { .. },
                VtnMessage::CreatedPartyRegistration {
                    response,
                    vtn_id,
                    poll_freq,
                    ..
                },
            ) => {
                if !response.is_ok() {
                    return self.refused(sent.name(), response, now);
                }
                self.vtn_id = vtn_id.or(self.vtn_id.take());
                if let Some(freq) = poll_freq.filter(|f| f.is_positive()) {
                    self.poll_freq = freq;
                }
                self.phase = Phase::Register;
            }
            (
                VenMessage::CreatePartyRegistration { .. },
                VtnMessage::CreatedPartyRegistration {
                    response,
                    registration_id,
                    ven_id,
                    vtn_id,
                    poll_freq,
                },
            ) => {
                let (Some(registration_id), Some(ven_id)) = (registration_id, ven_id) else {
                    let response = if response.is_ok() {
                        EiResponse {
                            code: response.code,
                            description: "no registrationID/venID (registration rejected)".into(),
                            request_id: None,
                        }
                    } else {
                        response
                    };
                    return self.refused(sent.name(), response, now);
                };
                if !response.is_ok() {
                    return self.refused(sent.name(), response, now);
                }
                self.vtn_id = vtn_id.or(self.vtn_id.take());
                if let Some(freq) = poll_freq.filter(|f| f.is_positive()) {
                    self.poll_freq = freq;
                }
                self.ven_id = Some(ven_id.clone());
                self.registration_id = Some(registration_id.clone());
                self.phase = Phase::RegisterReports;
                self.outputs.push_back(VenOutput::Registered {
                    vtn_id: self.vtn_id.clone(),
                    ven_id,
                    registration_id,
                    poll_freq: self.poll_freq,
                });
            }
            (
                VenMessage::RegisterReport { request_id, .. },
                VtnMessage::RegisteredReport { response, requests },
            ) => {
                if !response.is_ok() {
                    return self.refused(sent.name(), response, now);
                }
                let request_id = request_id.clone();
                self.phase = Phase::Ready;
                self.next_poll = now;
                if !requests.is_empty() {
                    self.accept_report_requests(requests, Some(request_id), now);
                }
                let request_id = self.request_id();
                self.queue.push_back(VenMessage::RequestEvent {
                    request_id,
                    ven_id: self.ven_id_or_empty(),
                });
            }
            (VenMessage::Poll { .. }, message) => self.handle_poll_answer(message, now),
            (
                VenMessage::RequestEvent { .. },
                VtnMessage::DistributeEvent {
                    request_id,
                    vtn_id,
                    events,
                },
            ) => self.distribute(request_id, vtn_id, events, now),
            (_, VtnMessage::UpdatedReport { response, cancel }) => {
                if !response.is_ok() {
                    self.warn_refused(sent.name(), &response);
                }
                if let Some(id) = cancel {
                    self.reports.retain(|r| r.request_id != id);
                }
            }
            (_, VtnMessage::Response { response }) => {
                if !response.is_ok() {
                    self.warn_refused(sent.name(), &response);
                }
            }
            (_, other) => {
                let got = other.name().to_owned();
                if matches!(sent, VenMessage::QueryRegistration { .. })
                    || matches!(sent, VenMessage::CreatePartyRegistration { .. })
                    || matches!(sent, VenMessage::RegisterReport { .. })
                {
                    self.retry_at =
                        Some(now.checked_add(self.config.retry).unwrap_or(Timestamp::MAX));
                }
                return Err(OpenAdrError::Unexpected {
                    sent: sent.name(),
                    got,
                });
            }
        }
        Ok(())
    }

    fn refused(
        &mut self,
        message: &'static str,
        response: EiResponse,
        now: Timestamp,
    ) -> Result<(), OpenAdrError> {
        self.retry_at = Some(now.checked_add(self.config.retry).unwrap_or(Timestamp::MAX));
        Err(OpenAdrError::Refused {
            message,
            code: response.code,
            description: response.description,
        })
    }

    fn warn_refused(&mut self, message: &str, response: &EiResponse) {
        self.outputs.push_back(VenOutput::Warning(format!(
            "VTN answered {message} with {} {}",
            response.code, response.description
        )));
    }

    fn reregister(&mut self) {
        let ven_id = self.ven_id_or_empty();
        self.queue.clear();
        self.queue.push_back(VenMessage::Response {
            ven_id,
            response: EiResponse::ok(None),
        });
        self.reports.clear();
        self.phase = Phase::Register;
    }

    fn accept_report_requests(
        &mut self,
        requests: Vec<ReportRequest>,
        request_id: Option<String>,
        now: Timestamp,
    ) {
        let mut code = 200;
        for request in requests {
            let ours = request.report_specifier_id == TELEMETRY_SPECIFIER
                && (request.r_ids.is_empty()
                    || request.r_ids.iter().any(|r| r == CHARGING_LOAD_RID));
            if !ours {
                code = 452; // Invalid ID: the VEN offered no such report.
                self.outputs.push_back(VenOutput::Warning(format!(
                    "VTN requested unknown report {}",
                    request.report_specifier_id
                )));
                continue;
            }
            let granularity = request
                .granularity
                .filter(|g| g.is_positive())
                .unwrap_or(self.config.report_sampling);
            let back = request
                .report_back_duration
                .filter(|b| b.is_positive())
                .unwrap_or(SignedDuration::ZERO);
            self.reports
                .retain(|r| r.request_id != request.report_request_id);
            self.reports.push(ActiveReport {
                request_id: request.report_request_id,
                granularity,
                back,
                // Readings at request + k·granularity; a report every `back` carries those
                // taken since the last one (the reading due at the same instant is taken
                // first). With granularity = back, as openleadr asks, each report carries the
                // load at the time it is sent. A one-shot request is answered at once with the
                // load then.
                next_sample: if back.is_zero() {
                    now
                } else {
                    now.checked_add(granularity).unwrap_or(Timestamp::MAX)
                },
                next_send: now.checked_add(back).unwrap_or(Timestamp::MAX),
                samples: Vec::new(),
            });
        }
        let pending = self.reports.iter().map(|r| r.request_id.clone()).collect();
        self.queue.push_back(VenMessage::CreatedReport {
            ven_id: self.ven_id_or_empty(),
            response: EiResponse {
                code,
                description: if code == 200 {
                    "OK".into()
                } else {
                    "Invalid ID".into()
                },
                request_id,
            },
            pending,
        });
    }

    fn handle_poll_answer(&mut self, message: VtnMessage, now: Timestamp) {
        match message {
            VtnMessage::DistributeEvent {
                request_id,
                vtn_id,
                events,
            } => self.distribute(request_id, vtn_id, events, now),
            VtnMessage::CreateReport {
                request_id,
                requests,
            } => self.accept_report_requests(requests, Some(request_id), now),
            VtnMessage::CancelReport {
                request_id,
                report_request_ids,
                report_to_follow: _,
            } => {
                self.reports
                    .retain(|r| !report_request_ids.contains(&r.request_id));
                self.queue.push_back(VenMessage::CanceledReport {
                    ven_id: self.ven_id_or_empty(),
                    response: EiResponse::ok(Some(request_id)),
                    pending: self.reports.iter().map(|r| r.request_id.clone()).collect(),
                });
            }
            VtnMessage::RegisterReport { request_id } => {
                self.queue.push_back(VenMessage::RegisteredReport {
                    ven_id: self.ven_id_or_empty(),
                    response: EiResponse::ok(Some(request_id)),
                });
            }
            VtnMessage::CancelPartyRegistration {
                request_id,
                registration_id,
            } => {
                // Registration cancelled by the VTN: acknowledge, drop everything (its events
                // are void without a registration) and start over.
                for event_id in std::mem::take(&mut self.events).into_keys() {
                    self.outputs
                        .push_back(VenOutput::EventCancelled { event_id });
                }
                self.reports.clear();
                self.queue.clear();
                self.queue.push_back(VenMessage::CanceledPartyRegistration {
                    response: EiResponse::ok(Some(request_id)),
                    registration_id: registration_id
                        .or(self.registration_id.take())
                        .unwrap_or_default(),
                    ven_id: self.ven_id_or_empty(),
                });
                self.ven_id = None;
                self.registration_id = None;
                self.phase = Phase::Query;
                self.outputs.push_back(VenOutput::Warning(
                    "VTN cancelled the registration; registering again".into(),
                ));
            }
            VtnMessage::RequestReregistration => self.reregister(),
            VtnMessage::Response { response } => {
                if !response.is_ok() {
                    self.warn_refused("oadrPoll", &response);
                }
            }
            other => self.outputs.push_back(VenOutput::Warning(format!(
                "ignored {} in answer to oadrPoll",
                other.name()
            ))),
        }
    }

    fn distribute(
        &mut self,
        request_id: String,
        vtn_id: Option<String>,
        events: Vec<Event>,
        now: Timestamp,
    ) {
        if vtn_id.is_some() {
            self.vtn_id = vtn_id;
        }
        let vtn = self.vtn_id.clone().unwrap_or_default();
        let mut responses = Vec::new();
        // oadrDistributeEvent lists every event the VTN holds for this VEN: one that is no
        // longer listed has been cancelled (2.0b profile, "implied cancellation").
        let listed: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.event_id.as_str()).collect();
        let gone: Vec<String> = self
            .events
            .keys()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned()
            .collect();
        for event_id in gone {
            if self.events.remove(&event_id).is_some_and(|e| !e.cancelled) {
                self.outputs
                    .push_back(VenOutput::EventCancelled { event_id });
            }
        }
        for event in events {
            let known = self.events.get(&event.event_id);
            if known.is_some_and(|k| k.modification_number >= event.modification_number) {
                continue; // already answered this version
            }
            let cancelled = matches!(
                event.status,
                EventStatus::Cancelled | EventStatus::Completed
            );
            let opt = match event.status {
                EventStatus::Cancelled => {
                    if known.is_some_and(|k| !k.cancelled) {
                        self.outputs.push_back(VenOutput::EventCancelled {
                            event_id: event.event_id.clone(),
                        });
                    }
                    OptType::OptIn
                }
                EventStatus::Completed => OptType::OptIn,
                _ => {
                    let decision = decide(&event, &vtn, &self.config.policy, now);
                    let opt = decision.opt;
                    self.outputs.push_back(VenOutput::Event {
                        event_id: event.event_id.clone(),
                        modification_number: event.modification_number,
                        decision,
                    });
                    opt
                }
            };
            self.events.insert(
                event.event_id.clone(),
                KnownEvent {
                    modification_number: event.modification_number,
                    cancelled,
                },
            );
            if event.response_required {
                responses.push(EventResponse {
                    code: 200,
                    description: "OK".into(),
                    request_id: request_id.clone(),
                    event_id: event.event_id,
                    modification_number: event.modification_number,
                    opt,
                });
            }
        }
        if !responses.is_empty() {
            self.queue.push_back(VenMessage::CreatedEvent {
                ven_id: self.ven_id_or_empty(),
                responses,
            });
        }
    }
}
