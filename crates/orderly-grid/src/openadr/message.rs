//! The OpenADR 2.0b messages a simple-HTTP pull VEN exchanges, typed, with their XML.
//!
//! Encoding follows openleadr's templates element for element (the 2.0b XSD is a strict
//! `xs:sequence` everywhere, and openleadr's VTN validates every message against it).
//! Decoding reads fields by local name, so any conforming VTN's prefixes are accepted.

use jiff::{SignedDuration, Timestamp};

use super::OpenAdrError;
use super::time::{format_duration, format_timestamp, parse_duration, parse_timestamp};
use super::xml::{
    self, Element, NS_EI, NS_EMIX, NS_OADR, NS_POWER, NS_PYLD, NS_SCALE, NS_STRM, NS_XCAL, Writer,
};

/// The four simple-HTTP endpoints under the VTN's base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    EiRegisterParty,
    OadrPoll,
    EiEvent,
    EiReport,
}

impl Service {
    pub fn path(self) -> &'static str {
        match self {
            Service::EiRegisterParty => "EiRegisterParty",
            Service::OadrPoll => "OadrPoll",
            Service::EiEvent => "EiEvent",
            Service::EiReport => "EiReport",
        }
    }
}

/// `ei:eiResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct EiResponse {
    pub code: u16,
    pub description: String,
    pub request_id: Option<String>,
}

impl EiResponse {
    pub fn ok(request_id: Option<String>) -> Self {
        Self {
            code: 200,
            description: "OK".into(),
            request_id,
        }
    }

    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptType {
    OptIn,
    OptOut,
}

impl OptType {
    pub fn as_str(self) -> &'static str {
        match self {
            OptType::OptIn => "optIn",
            OptType::OptOut => "optOut",
        }
    }
}

/// One `ei:eventResponse` in an oadrCreatedEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResponse {
    pub code: u16,
    pub description: String,
    /// The requestID of the oadrDistributeEvent that carried the event.
    pub request_id: String,
    pub event_id: String,
    pub modification_number: i64,
    pub opt: OptType,
}

/// The telemetry the VEN offers: one data point, the community's charging load.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryOffer {
    pub report_specifier_id: String,
    pub r_id: String,
    pub resource_id: String,
    /// Sampling period offered (min = max).
    pub sampling: SignedDuration,
    /// How long the VEN can buffer readings (`xcal:duration` of the metadata report).
    pub duration: SignedDuration,
    pub hertz: f64,
    pub voltage: f64,
}

/// One reading in an oadrUpdateReport.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at: Timestamp,
    pub r_id: String,
    pub value: f64,
}

/// Messages the VEN sends.
#[derive(Debug, Clone, PartialEq)]
pub enum VenMessage {
    QueryRegistration {
        request_id: String,
    },
    CreatePartyRegistration {
        request_id: String,
        /// Set when re-registering.
        ven_id: Option<String>,
        registration_id: Option<String>,
        ven_name: String,
    },
    RegisterReport {
        request_id: String,
        ven_id: String,
        offer: TelemetryOffer,
        created: Timestamp,
    },
    /// Answer to a VTN's own oadrRegisterReport (the VEN requests none of its reports).
    RegisteredReport {
        ven_id: String,
        response: EiResponse,
    },
    CreatedReport {
        ven_id: String,
        response: EiResponse,
        pending: Vec<String>,
    },
    CanceledReport {
        ven_id: String,
        response: EiResponse,
        pending: Vec<String>,
    },
    Poll {
        ven_id: String,
    },
    /// Asks for every event the VTN holds for this VEN (after registering, so that events
    /// distributed before a restart are known again).
    RequestEvent {
        request_id: String,
        ven_id: String,
    },
    CreatedEvent {
        ven_id: String,
        responses: Vec<EventResponse>,
    },
    UpdateReport {
        request_id: String,
        ven_id: String,
        report_request_id: String,
        report_specifier_id: String,
        readings: Vec<Reading>,
        created: Timestamp,
    },
    /// Answer to a VTN's oadrCancelPartyRegistration.
    CanceledPartyRegistration {
        response: EiResponse,
        registration_id: String,
        ven_id: String,
    },
    /// Plain acknowledgement (of oadrRequestReregistration).
    Response {
        ven_id: String,
        response: EiResponse,
    },
}

impl VenMessage {
    /// The endpoint this message is posted to.
    pub fn service(&self) -> Service {
        match self {
            VenMessage::QueryRegistration { .. } | VenMessage::CreatePartyRegistration { .. } => {
                Service::EiRegisterParty
            }
            VenMessage::Poll { .. } => Service::OadrPoll,
            VenMessage::CreatedEvent { .. } | VenMessage::RequestEvent { .. } => Service::EiEvent,
            VenMessage::RegisterReport { .. }
            | VenMessage::RegisteredReport { .. }
            | VenMessage::CreatedReport { .. }
            | VenMessage::CanceledReport { .. }
            | VenMessage::UpdateReport { .. } => Service::EiReport,
            VenMessage::Response { .. } | VenMessage::CanceledPartyRegistration { .. } => {
                Service::EiRegisterParty
            }
        }
    }

    /// The message's element name (`oadrPoll`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            VenMessage::QueryRegistration { .. } => "oadrQueryRegistration",
            VenMessage::CreatePartyRegistration { .. } => "oadrCreatePartyRegistration",
            VenMessage::RegisterReport { .. } => "oadrRegisterReport",
            VenMessage::RegisteredReport { .. } => "oadrRegisteredReport",
            VenMessage::CreatedReport { .. } => "oadrCreatedReport",
            VenMessage::CanceledReport { .. } => "oadrCanceledReport",
            VenMessage::Poll { .. } => "oadrPoll",
            VenMessage::CreatedEvent { .. } => "oadrCreatedEvent",
            VenMessage::RequestEvent { .. } => "oadrRequestEvent",
            VenMessage::UpdateReport { .. } => "oadrUpdateReport",
            VenMessage::CanceledPartyRegistration { .. } => "oadrCanceledPartyRegistration",
            VenMessage::Response { .. } => "oadrResponse",
        }
    }

    /// The whole `oadrPayload` document (unsigned: no `ds:Signature`).
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        w.start("oadr:oadrPayload").attr("xmlns:oadr", NS_OADR);
        w.start("oadr:oadrSignedObject")
            .attr("xmlns:oadr", NS_OADR)
            .attr("oadr:Id", "oadrSignedObject");
        let name: &'static str = match self.name() {
            "oadrQueryRegistration" => "oadr:oadrQueryRegistration",
            "oadrCreatePartyRegistration" => "oadr:oadrCreatePartyRegistration",
            "oadrRegisterReport" => "oadr:oadrRegisterReport",
            "oadrRegisteredReport" => "oadr:oadrRegisteredReport",
            "oadrCreatedReport" => "oadr:oadrCreatedReport",
            "oadrCanceledReport" => "oadr:oadrCanceledReport",
            "oadrPoll" => "oadr:oadrPoll",
            "oadrCreatedEvent" => "oadr:oadrCreatedEvent",
            "oadrRequestEvent" => "oadr:oadrRequestEvent",
            "oadrUpdateReport" => "oadr:oadrUpdateReport",
            "oadrCanceledPartyRegistration" => "oadr:oadrCanceledPartyRegistration",
            _ => "oadr:oadrResponse",
        };
        w.start(name)
            .attr("ei:schemaVersion", "2.0b")
            .attr("xmlns:ei", NS_EI);
        self.write_body(&mut w);
        w.end().end().end();
        w.finish()
    }

    fn write_body(&self, w: &mut Writer) {
        match self {
            VenMessage::QueryRegistration { request_id } => {
                w.leaf_ns("requestID", NS_PYLD, request_id);
            }
            VenMessage::CreatePartyRegistration {
                request_id,
                ven_id,
                registration_id,
                ven_name,
            } => {
                w.leaf_ns("requestID", NS_PYLD, request_id);
                if let Some(id) = registration_id {
                    w.leaf("ei:registrationID", id);
                }
                if let Some(id) = ven_id {
                    w.leaf("ei:venID", id);
                }
                w.leaf("oadr:oadrProfileName", "2.0b");
                w.leaf("oadr:oadrTransportName", "simpleHttp");
                w.leaf("oadr:oadrReportOnly", "false");
                w.leaf("oadr:oadrXmlSignature", "false");
                w.leaf("oadr:oadrVenName", ven_name);
                w.leaf("oadr:oadrHttpPullModel", "true");
            }
            VenMessage::RegisterReport {
                request_id,
                ven_id,
                offer,
                created,
            } => {
                w.leaf_ns("requestID", NS_PYLD, request_id);
                w.start("oadr:oadrReport")
                    .attr("xmlns:xcal", NS_XCAL)
                    .attr("xmlns:strm", NS_STRM);
                w.start("xcal:duration");
                w.leaf("xcal:duration", &format_duration(offer.duration));
                w.end();
                w.start("oadr:oadrReportDescription")
                    .attr("xmlns:emix", NS_EMIX)
                    .attr("xmlns:power", NS_POWER);
                w.leaf("ei:rID", &offer.r_id);
                w.start("ei:reportDataSource");
                w.leaf("ei:resourceID", &offer.resource_id);
                w.end();
                w.leaf("ei:reportType", "usage");
                w.start("power:powerReal").attr("xmlns:scale", NS_SCALE);
                w.leaf("power:itemDescription", "RealPower");
                w.leaf("power:itemUnits", "W");
                w.leaf("scale:siScaleCode", "k");
                w.start("power:powerAttributes");
                w.leaf("power:hertz", &offer.hertz.to_string());
                w.leaf("power:voltage", &offer.voltage.to_string());
                w.leaf("power:ac", "true");
                w.end().end();
                w.leaf("ei:readingType", "Direct Read");
                w.start("oadr:oadrSamplingRate");
                w.leaf("oadr:oadrMinPeriod", &format_duration(offer.sampling));
                w.leaf("oadr:oadrMaxPeriod", &format_duration(offer.sampling));
                w.leaf("oadr:oadrOnChange", "false");
                w.end().end();
                w.leaf("ei:reportRequestID", "0");
                w.leaf("ei:reportSpecifierID", &offer.report_specifier_id);
                w.leaf("ei:reportName", "METADATA_TELEMETRY_USAGE");
                w.leaf("ei:createdDateTime", &format_timestamp(*created));
                w.end();
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::RegisteredReport { ven_id, response } => {
                write_response(w, response);
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::CreatedReport {
                ven_id,
                response,
                pending,
            }
            | VenMessage::CanceledReport {
                ven_id,
                response,
                pending,
            } => {
                write_response(w, response);
                w.start("oadr:oadrPendingReports");
                for id in pending {
                    w.leaf("ei:reportRequestID", id);
                }
                w.end();
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::Poll { ven_id } => {
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::RequestEvent { request_id, ven_id } => {
                w.start("eiRequestEvent").attr("xmlns", NS_PYLD);
                w.leaf("requestID", request_id);
                w.leaf("ei:venID", ven_id);
                w.end();
            }
            VenMessage::CreatedEvent { ven_id, responses } => {
                w.start("eiCreatedEvent").attr("xmlns", NS_PYLD);
                write_response(w, &EiResponse::ok(None));
                if !responses.is_empty() {
                    w.start("ei:eventResponses");
                    for r in responses {
                        w.start("ei:eventResponse");
                        w.leaf("ei:responseCode", &r.code.to_string());
                        w.leaf("ei:responseDescription", &r.description);
                        w.leaf_ns("requestID", NS_PYLD, &r.request_id);
                        w.start("ei:qualifiedEventID");
                        w.leaf("ei:eventID", &r.event_id);
                        w.leaf("ei:modificationNumber", &r.modification_number.to_string());
                        w.end();
                        w.leaf("ei:optType", r.opt.as_str());
                        w.end();
                    }
                    w.end();
                }
                w.leaf("ei:venID", ven_id);
                w.end();
            }
            VenMessage::UpdateReport {
                request_id,
                ven_id,
                report_request_id,
                report_specifier_id,
                readings,
                created,
            } => {
                w.leaf_ns("requestID", NS_PYLD, request_id);
                w.start("oadr:oadrReport").attr("xmlns:xcal", NS_XCAL);
                if let Some(first) = readings.iter().map(|r| r.at).min() {
                    w.start("xcal:dtstart");
                    w.leaf("xcal:date-time", &format_timestamp(first));
                    w.end();
                }
                if !readings.is_empty() {
                    w.start("strm:intervals").attr("xmlns:strm", NS_STRM);
                    for r in readings {
                        w.start("ei:interval");
                        w.start("xcal:dtstart");
                        w.leaf("xcal:date-time", &format_timestamp(r.at));
                        w.end();
                        w.start("oadr:oadrReportPayload");
                        w.leaf("ei:rID", &r.r_id);
                        w.start("ei:payloadFloat");
                        w.leaf("ei:value", &format_value(r.value));
                        w.end().end().end();
                    }
                    w.end();
                }
                w.leaf(
                    "ei:eiReportID",
                    &format!("{report_request_id}-{request_id}"),
                );
                w.leaf("ei:reportRequestID", report_request_id);
                w.leaf("ei:reportSpecifierID", report_specifier_id);
                w.leaf("ei:reportName", "TELEMETRY_USAGE");
                w.leaf("ei:createdDateTime", &format_timestamp(*created));
                w.end();
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::CanceledPartyRegistration {
                response,
                registration_id,
                ven_id,
            } => {
                write_response(w, response);
                w.leaf("ei:registrationID", registration_id);
                w.leaf("ei:venID", ven_id);
            }
            VenMessage::Response { ven_id, response } => {
                write_response(w, response);
                w.leaf("ei:venID", ven_id);
            }
        }
    }
}

/// A float as xs:float text (no exponent for ordinary magnitudes, always finite).
fn format_value(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "0".into()
    }
}

fn write_response(w: &mut Writer, response: &EiResponse) {
    w.start("ei:eiResponse");
    w.leaf("ei:responseCode", &response.code.to_string());
    w.leaf("ei:responseDescription", &response.description);
    w.leaf_ns(
        "requestID",
        NS_PYLD,
        response.request_id.as_deref().unwrap_or(""),
    );
    w.end();
}

// ---------------------------------------------------------------------------------------------
// VTN → VEN

/// A report the VTN asks the VEN to send (`oadr:oadrReportRequest`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    pub report_request_id: String,
    pub report_specifier_id: String,
    /// Sampling granularity; zero or absent = one reading per report.
    pub granularity: Option<SignedDuration>,
    /// How often to send; zero = once.
    pub report_back_duration: Option<SignedDuration>,
    pub r_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    None,
    Far,
    Near,
    Active,
    Completed,
    Cancelled,
}

impl EventStatus {
    fn parse(text: &str) -> Result<Self, OpenAdrError> {
        Ok(match text {
            "none" => EventStatus::None,
            "far" => EventStatus::Far,
            "near" => EventStatus::Near,
            "active" => EventStatus::Active,
            "completed" => EventStatus::Completed,
            "cancelled" => EventStatus::Cancelled,
            other => return Err(OpenAdrError::Invalid(format!("eventStatus {other:?}"))),
        })
    }
}

/// One interval of an event signal, with its absolute start.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalInterval {
    pub start: Timestamp,
    pub duration: SignedDuration,
    pub value: f64,
}

/// The unit an event signal's values are in (`emix:itemBase`), where it says.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemBase {
    /// Local element name, e.g. `powerReal`.
    pub kind: String,
    pub units: Option<String>,
    pub scale: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSignal {
    pub name: String,
    pub signal_type: String,
    pub signal_id: String,
    pub intervals: Vec<SignalInterval>,
    pub item_base: Option<ItemBase>,
    pub current_value: Option<f64>,
}

/// `oadr:oadrEvent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub modification_number: i64,
    pub priority: Option<u32>,
    pub market_context: String,
    pub status: EventStatus,
    pub test_event: bool,
    pub start: Timestamp,
    /// Zero = open-ended (2.0b: "until cancelled"); the signal intervals bound it then.
    pub duration: SignedDuration,
    pub signals: Vec<EventSignal>,
    /// `oadrResponseRequired`: "always" (true) or "never".
    pub response_required: bool,
}

/// Messages the VEN receives (answers to its requests; the poll answer carries the rest).
#[derive(Debug, Clone, PartialEq)]
pub enum VtnMessage {
    CreatedPartyRegistration {
        response: EiResponse,
        registration_id: Option<String>,
        ven_id: Option<String>,
        vtn_id: Option<String>,
        poll_freq: Option<SignedDuration>,
    },
    RegisteredReport {
        response: EiResponse,
        requests: Vec<ReportRequest>,
    },
    CreateReport {
        request_id: String,
        requests: Vec<ReportRequest>,
    },
    CancelReport {
        request_id: String,
        report_request_ids: Vec<String>,
        report_to_follow: bool,
    },
    /// The VTN offers its own reports; the VEN requests none.
    RegisterReport {
        request_id: String,
    },
    UpdatedReport {
        response: EiResponse,
        /// The VTN may cancel a report in its answer.
        cancel: Option<String>,
    },
    DistributeEvent {
        request_id: String,
        vtn_id: Option<String>,
        events: Vec<Event>,
    },
    RequestReregistration,
    CancelPartyRegistration {
        request_id: String,
        registration_id: Option<String>,
    },
    Response {
        response: EiResponse,
    },
    /// A well-formed message of a type the VEN does not handle (named).
    Other(String),
}

impl VtnMessage {
    /// Parses an `oadrPayload` document.
    pub fn from_xml(body: &str) -> Result<Self, OpenAdrError> {
        let root = xml::parse(body)?;
        if root.name != "oadrPayload" {
            return Err(OpenAdrError::Invalid(format!(
                "root element is {}, not oadrPayload",
                root.name
            )));
        }
        let signed = root
            .child("oadrSignedObject")
            .ok_or_else(|| OpenAdrError::Invalid("no oadrSignedObject".into()))?;
        let msg = signed
            .children
            .first()
            .ok_or_else(|| OpenAdrError::Invalid("empty oadrSignedObject".into()))?;
        decode(msg)
    }

    pub fn name(&self) -> &str {
        match self {
            VtnMessage::CreatedPartyRegistration { .. } => "oadrCreatedPartyRegistration",
            VtnMessage::RegisteredReport { .. } => "oadrRegisteredReport",
            VtnMessage::CreateReport { .. } => "oadrCreateReport",
            VtnMessage::CancelReport { .. } => "oadrCancelReport",
            VtnMessage::RegisterReport { .. } => "oadrRegisterReport",
            VtnMessage::UpdatedReport { .. } => "oadrUpdatedReport",
            VtnMessage::DistributeEvent { .. } => "oadrDistributeEvent",
            VtnMessage::RequestReregistration => "oadrRequestReregistration",
            VtnMessage::CancelPartyRegistration { .. } => "oadrCancelPartyRegistration",
            VtnMessage::Response { .. } => "oadrResponse",
            VtnMessage::Other(name) => name,
        }
    }
}

fn missing(what: &str) -> OpenAdrError {
    OpenAdrError::Invalid(format!("missing {what}"))
}

fn text(el: &Element, path: &[&str]) -> Option<String> {
    el.text_at(path).map(str::to_owned)
}

fn response(el: &Element) -> Result<EiResponse, OpenAdrError> {
    let r = el
        .child("eiResponse")
        .ok_or_else(|| missing("eiResponse"))?;
    let code = r
        .text_at(&["responseCode"])
        .ok_or_else(|| missing("responseCode"))?;
    Ok(EiResponse {
        code: code
            .parse()
            .map_err(|_| OpenAdrError::Invalid(format!("responseCode {code:?}")))?,
        description: text(r, &["responseDescription"]).unwrap_or_default(),
        request_id: text(r, &["requestID"]),
    })
}

fn duration_at(el: &Element, path: &[&str]) -> Result<Option<SignedDuration>, OpenAdrError> {
    el.text_at(path).map(parse_duration).transpose()
}

fn report_requests(el: &Element) -> Result<Vec<ReportRequest>, OpenAdrError> {
    el.children_named("oadrReportRequest")
        .map(|rr| {
            let spec = rr
                .child("reportSpecifier")
                .ok_or_else(|| missing("reportSpecifier"))?;
            Ok(ReportRequest {
                report_request_id: text(rr, &["reportRequestID"])
                    .ok_or_else(|| missing("reportRequestID"))?,
                report_specifier_id: text(spec, &["reportSpecifierID"])
                    .ok_or_else(|| missing("reportSpecifierID"))?,
                granularity: duration_at(spec, &["granularity", "duration"])?,
                report_back_duration: duration_at(spec, &["reportBackDuration", "duration"])?,
                r_ids: spec
                    .children_named("specifierPayload")
                    .filter_map(|p| text(p, &["rID"]))
                    .collect(),
            })
        })
        .collect()
}

fn float(text: &str) -> Result<f64, OpenAdrError> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| OpenAdrError::Invalid(format!("number {text:?}")))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(OpenAdrError::Invalid(format!("number {text:?}")))
    }
}

/// `ei:signalPayload`/`ei:currentValue` → the float inside (payloadFloat/value).
fn payload_value(el: &Element) -> Result<Option<f64>, OpenAdrError> {
    el.find("value").map(|v| float(&v.text)).transpose()
}

fn event(el: &Element) -> Result<Event, OpenAdrError> {
    let ei = el.child("eiEvent").ok_or_else(|| missing("eiEvent"))?;
    let desc = ei
        .child("eventDescriptor")
        .ok_or_else(|| missing("eventDescriptor"))?;
    let event_id = text(desc, &["eventID"]).ok_or_else(|| missing("eventID"))?;
    let modification_number = desc
        .text_at(&["modificationNumber"])
        .ok_or_else(|| missing("modificationNumber"))?
        .parse()
        .map_err(|_| OpenAdrError::Invalid("modificationNumber".into()))?;
    let status = EventStatus::parse(
        desc.text_at(&["eventStatus"])
            .ok_or_else(|| missing("eventStatus"))?,
    )?;
    let props = ei
        .path(&["eiActivePeriod", "properties"])
        .ok_or_else(|| missing("eiActivePeriod/properties"))?;
    let start = parse_timestamp(
        props
            .text_at(&["dtstart", "date-time"])
            .ok_or_else(|| missing("active period dtstart"))?,
    )?;
    let duration = duration_at(props, &["duration", "duration"])?.unwrap_or(SignedDuration::ZERO);
    let mut signals = Vec::new();
    if let Some(list) = ei.child("eiEventSignals") {
        for s in list.children_named("eiEventSignal") {
            let mut intervals = Vec::new();
            // 2.0b intervals carry a duration and a uid; their start is the active period's
            // start plus the durations before them. openleadr also writes each dtstart.
            let mut at = start;
            if let Some(list) = s.child("intervals") {
                for i in list.children_named("interval") {
                    let interval_start = match i.text_at(&["dtstart", "date-time"]) {
                        Some(t) => parse_timestamp(t)?,
                        None => at,
                    };
                    let interval_duration =
                        duration_at(i, &["duration", "duration"])?.unwrap_or(SignedDuration::ZERO);
                    let value = i
                        .child("signalPayload")
                        .map(payload_value)
                        .transpose()?
                        .flatten()
                        .ok_or_else(|| missing("signalPayload value"))?;
                    intervals.push(SignalInterval {
                        start: interval_start,
                        duration: interval_duration,
                        value,
                    });
                    at = interval_start
                        .checked_add(interval_duration)
                        .map_err(|_| OpenAdrError::Invalid("interval out of range".into()))?;
                }
            }
            let item_base = s
                .children
                .iter()
                .find(|c| c.children.iter().any(|g| g.name == "itemUnits"))
                .map(|c| ItemBase {
                    kind: c.name.clone(),
                    units: text(c, &["itemUnits"]),
                    scale: text(c, &["siScaleCode"]),
                });
            signals.push(EventSignal {
                name: text(s, &["signalName"]).ok_or_else(|| missing("signalName"))?,
                signal_type: text(s, &["signalType"]).ok_or_else(|| missing("signalType"))?,
                signal_id: text(s, &["signalID"]).unwrap_or_default(),
                intervals,
                item_base,
                current_value: s
                    .child("currentValue")
                    .map(payload_value)
                    .transpose()?
                    .flatten(),
            });
        }
    }
    Ok(Event {
        event_id,
        modification_number,
        priority: desc.text_at(&["priority"]).and_then(|p| p.parse().ok()),
        market_context: desc
            .path(&["eiMarketContext", "marketContext"])
            .map(|m| m.text.trim().to_owned())
            .unwrap_or_default(),
        status,
        test_event: desc
            .text_at(&["testEvent"])
            .is_some_and(|t| t != "false" && t != "0"),
        start,
        duration,
        signals,
        response_required: el.text_at(&["oadrResponseRequired"]) != Some("never"),
    })
}

fn decode(msg: &Element) -> Result<VtnMessage, OpenAdrError> {
    Ok(match msg.name.as_str() {
        "oadrCreatedPartyRegistration" => VtnMessage::CreatedPartyRegistration {
            response: response(msg)?,
            registration_id: text(msg, &["registrationID"]),
            ven_id: text(msg, &["venID"]),
            vtn_id: text(msg, &["vtnID"]),
            poll_freq: duration_at(msg, &["oadrRequestedOadrPollFreq", "duration"])?,
        },
        "oadrRegisteredReport" => VtnMessage::RegisteredReport {
            response: response(msg)?,
            requests: report_requests(msg)?,
        },
        "oadrCreateReport" => VtnMessage::CreateReport {
            request_id: text(msg, &["requestID"]).unwrap_or_default(),
            requests: report_requests(msg)?,
        },
        "oadrCancelReport" => VtnMessage::CancelReport {
            request_id: text(msg, &["requestID"]).unwrap_or_default(),
            report_request_ids: msg
                .children_named("reportRequestID")
                .map(|e| e.text.trim().to_owned())
                .collect(),
            report_to_follow: msg.text_at(&["reportToFollow"]) == Some("true"),
        },
        "oadrRegisterReport" => VtnMessage::RegisterReport {
            request_id: text(msg, &["requestID"]).unwrap_or_default(),
        },
        "oadrUpdatedReport" => VtnMessage::UpdatedReport {
            response: response(msg)?,
            cancel: msg
                .child("oadrCancelReport")
                .and_then(|c| text(c, &["reportRequestID"])),
        },
        "oadrDistributeEvent" => VtnMessage::DistributeEvent {
            request_id: text(msg, &["requestID"]).unwrap_or_default(),
            vtn_id: text(msg, &["vtnID"]),
            events: msg
                .children_named("oadrEvent")
                .map(event)
                .collect::<Result<_, _>>()?,
        },
        "oadrRequestReregistration" => VtnMessage::RequestReregistration,
        "oadrCancelPartyRegistration" => VtnMessage::CancelPartyRegistration {
            request_id: text(msg, &["requestID"]).unwrap_or_default(),
            registration_id: text(msg, &["registrationID"]),
        },
        "oadrResponse" => VtnMessage::Response {
            response: response(msg)?,
        },
        other => VtnMessage::Other(other.to_owned()),
    })
}
