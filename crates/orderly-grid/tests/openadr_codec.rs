//! The VEN's XML codec against messages produced by openleadr 0.5.36 (fixtures/openadr, see its
//! README), and the VEN state machine driven through a whole exchange with those messages.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use orderly_grid::openadr::{
    self, CommandPolicy, EventStatus, OptType, Ven, VenConfig, VenMessage, VenOutput, VtnMessage,
    xml,
};
use orderly_grid::{CommandKind, CommandSource};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openadr")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decode(name: &str) -> VtnMessage {
    VtnMessage::from_xml(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn created_party_registration_answers_query_and_registration() {
    let VtnMessage::CreatedPartyRegistration {
        response,
        registration_id,
        ven_id,
        vtn_id,
        poll_freq,
    } = decode("vtn-register-oadrCreatedPartyRegistration.xml")
    else {
        panic!("wrong type")
    };
    assert_eq!(response.code, 200);
    assert!(response.request_id.is_some());
    assert_eq!((registration_id, ven_id), (None, None));
    assert_eq!(vtn_id.as_deref(), Some("vtn-fixture"));
    assert_eq!(poll_freq, Some(SignedDuration::from_secs(1)));

    let VtnMessage::CreatedPartyRegistration {
        registration_id,
        ven_id,
        ..
    } = decode("vtn-register-oadrCreatedPartyRegistration-2.xml")
    else {
        panic!("wrong type")
    };
    assert_eq!(registration_id.as_deref(), Some("reg-fixture"));
    assert_eq!(ven_id.as_deref(), Some("ven-fixture"));
}

#[test]
fn registered_report_carries_the_report_request() {
    let VtnMessage::RegisteredReport { response, requests } =
        decode("vtn-register-oadrRegisteredReport.xml")
    else {
        panic!("wrong type")
    };
    assert!(response.is_ok());
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.report_specifier_id, "orderly-telemetry");
    assert_eq!(r.granularity, Some(SignedDuration::from_secs(10)));
    assert_eq!(r.report_back_duration, Some(SignedDuration::from_secs(10)));
    assert_eq!(r.r_ids.len(), 1);
    assert!(!r.report_request_id.is_empty());
}

#[test]
fn create_and_cancel_report() {
    let VtnMessage::CreateReport {
        request_id,
        requests,
    } = decode("vtn-poll-oadrCreateReport.xml")
    else {
        panic!("wrong type")
    };
    assert_eq!(request_id, "req-create-1");
    assert_eq!(requests[0].report_request_id, "rr-created-1");
    assert_eq!(requests[0].r_ids, vec!["charging_load".to_string()]);
    assert_eq!(requests[0].granularity, Some(SignedDuration::from_secs(30)));
    assert_eq!(
        requests[0].report_back_duration,
        Some(SignedDuration::from_secs(60))
    );
    assert_eq!(
        decode("vtn-poll-oadrCancelReport.xml"),
        VtnMessage::CancelReport {
            request_id: "req-cancel-1".into(),
            report_request_ids: vec!["rr-created-1".into()],
            report_to_follow: false,
        }
    );
}

#[test]
fn responses_and_reregistration() {
    let VtnMessage::Response { response } = decode("vtn-register-oadrResponse.xml") else {
        panic!("wrong type")
    };
    assert_eq!(response.code, 200);
    assert_eq!(response.request_id, None);
    let VtnMessage::Response { response } = decode("vtn-error-oadrResponse.xml") else {
        panic!("wrong type")
    };
    assert_eq!(
        (response.code, response.description.as_str()),
        (452, "Invalid ID")
    );
    assert_eq!(
        decode("vtn-poll-oadrRequestReregistration.xml"),
        VtnMessage::RequestReregistration
    );
    let VtnMessage::UpdatedReport { response, cancel } =
        decode("vtn-capacity-oadrUpdatedReport.xml")
    else {
        panic!("wrong type")
    };
    assert!(response.is_ok());
    assert_eq!(cancel, None);
}

#[test]
fn load_dispatch_event_decodes_with_its_intervals() {
    let VtnMessage::DistributeEvent {
        request_id,
        vtn_id,
        events,
    } = decode("vtn-dispatch-oadrDistributeEvent.xml")
    else {
        panic!("wrong type")
    };
    assert!(!request_id.is_empty());
    assert_eq!(vtn_id.as_deref(), Some("vtn-fixture"));
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_id, "evt-dispatch");
    assert_eq!(e.modification_number, 0);
    assert_eq!(e.status, EventStatus::Far);
    assert_eq!(e.market_context, "oadr://orderly.test/dr");
    assert!(!e.test_event);
    assert!(e.response_required);
    assert_eq!(e.start, ts("2030-01-02T10:00:00Z"));
    assert_eq!(e.duration, SignedDuration::from_hours(1));
    let s = &e.signals[0];
    assert_eq!(
        (s.name.as_str(), s.signal_type.as_str()),
        ("LOAD_DISPATCH", "setpoint")
    );
    let values: Vec<_> = s
        .intervals
        .iter()
        .map(|i| (i.start, i.duration, i.value))
        .collect();
    assert_eq!(
        values,
        vec![
            (
                ts("2030-01-02T10:00:00Z"),
                SignedDuration::from_mins(30),
                50.0
            ),
            (
                ts("2030-01-02T10:30:00Z"),
                SignedDuration::from_mins(30),
                40.0
            ),
        ]
    );
}

#[test]
fn events_become_commands() {
    let policy = CommandPolicy {
        capacity_kw: 200.0,
        ..CommandPolicy::default()
    };
    let now = ts("2030-01-01T00:00:00Z");
    let VtnMessage::DistributeEvent { events, .. } = decode("vtn-capacity-oadrDistributeEvent.xml")
    else {
        panic!("wrong type")
    };
    let by_id = |id: &str| events.iter().find(|e| e.event_id == id).unwrap();

    let d = openadr::decide(by_id("evt-dispatch"), "vtn-fixture", &policy, now);
    assert_eq!(d.opt, OptType::OptIn);
    let got: Vec<_> = d
        .commands
        .iter()
        .map(|c| (c.kind, c.start, c.end))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                CommandKind::Limit { kw: 50.0 },
                ts("2030-01-02T10:00:00Z"),
                ts("2030-01-02T10:30:00Z")
            ),
            (
                CommandKind::Limit { kw: 40.0 },
                ts("2030-01-02T10:30:00Z"),
                ts("2030-01-02T11:00:00Z")
            ),
        ]
    );
    assert_eq!(
        d.commands[0].source,
        CommandSource::OpenAdr {
            vtn_id: "vtn-fixture".into(),
            event_id: "evt-dispatch".into(),
            modification_number: 0
        }
    );
    assert_eq!(d.commands[0].received, now);

    // SIMPLE level 2 → reduce by 25 % of the capacity.
    let d = openadr::decide(by_id("evt-simple"), "vtn-fixture", &policy, now);
    assert_eq!(d.opt, OptType::OptIn);
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].kind, CommandKind::Reduce { kw: 50.0 });
    assert_eq!(
        (d.commands[0].start, d.commands[0].end),
        (ts("2030-01-02T12:00:00Z"), ts("2030-01-02T12:15:00Z"))
    );

    // x-loadControlCapacity 0.5 → limit to half the capacity.
    let d = openadr::decide(by_id("evt-capacity"), "vtn-fixture", &policy, now);
    assert_eq!(d.opt, OptType::OptIn);
    assert_eq!(d.commands[0].kind, CommandKind::Limit { kw: 100.0 });

    // x-loadControlSetpoint 60 (kW); a signal in W (itemBase powerReal, scale none).
    let mut setpoint = by_id("evt-capacity").clone();
    setpoint.signals[0].signal_type = "x-loadControlSetpoint".into();
    setpoint.signals[0].intervals[0].value = 60.0;
    let d = openadr::decide(&setpoint, "v", &policy, now);
    assert_eq!(d.commands[0].kind, CommandKind::Limit { kw: 60.0 });
    setpoint.signals[0].intervals[0].value = 60_000.0;
    setpoint.signals[0].item_base = Some(openadr::message::ItemBase {
        kind: "powerReal".into(),
        units: Some("W".into()),
        scale: Some("none".into()),
    });
    let d = openadr::decide(&setpoint, "v", &policy, now);
    assert_eq!(d.commands[0].kind, CommandKind::Limit { kw: 60.0 });
    // A LOAD_DISPATCH delta of -15 kW reduces; a positive delta is not acted on (but the
    // signal is understood: opt in).
    let mut delta = by_id("evt-dispatch").clone();
    delta.signals[0].signal_type = "delta".into();
    delta.signals[0].intervals[0].value = -15.0;
    delta.signals[0].intervals[1].value = 5.0;
    let d = openadr::decide(&delta, "v", &policy, now);
    assert_eq!(d.opt, OptType::OptIn);
    assert_eq!(d.commands.len(), 1);
    assert_eq!(d.commands[0].kind, CommandKind::Reduce { kw: 15.0 });
    // Consecutive equal intervals merge into one command.
    let mut equal = by_id("evt-dispatch").clone();
    equal.signals[0].intervals[1].value = 50.0;
    let d = openadr::decide(&equal, "v", &policy, now);
    assert_eq!(d.commands.len(), 1);
    assert_eq!(
        (d.commands[0].start, d.commands[0].end),
        (ts("2030-01-02T10:00:00Z"), ts("2030-01-02T11:00:00Z"))
    );
    // A test event is opted in and changes nothing.
    let mut test = by_id("evt-dispatch").clone();
    test.test_event = true;
    let d = openadr::decide(&test, "v", &policy, now);
    assert_eq!((d.opt, d.commands.len()), (OptType::OptIn, 0));

    // An event that is over produces no command; one with no signal we act on is opted out.
    let late = ts("2030-01-03T00:00:00Z");
    assert!(
        openadr::decide(by_id("evt-dispatch"), "v", &policy, late)
            .commands
            .is_empty()
    );
    let mut price = by_id("evt-dispatch").clone();
    price.signals[0].name = "ELECTRICITY_PRICE".into();
    price.signals[0].signal_type = "price".into();
    let d = openadr::decide(&price, "v", &policy, now);
    assert_eq!(d.opt, OptType::OptOut);
    assert!(d.commands.is_empty());
    assert_eq!(d.unsupported, vec!["ELECTRICITY_PRICE/price".to_string()]);
}

#[test]
fn cancelled_event_is_decoded_with_its_new_modification_number() {
    let VtnMessage::DistributeEvent { events, .. } = decode("vtn-cancel-oadrDistributeEvent.xml")
    else {
        panic!("wrong type")
    };
    let e = events
        .iter()
        .find(|e| e.event_id == "evt-dispatch")
        .unwrap();
    assert_eq!(e.status, EventStatus::Cancelled);
    assert_eq!(e.modification_number, 1);
}

/// Every message the VEN writes parses back (the interop test checks them against openleadr's
/// XSD validation), and carries what openleadr's own VEN would put there.
#[test]
fn encoded_messages_have_the_2_0b_shape() {
    let mut ven = Ven::new(VenConfig::new("orderly", "demo"));
    let now = ts("2030-01-01T00:00:00Z");
    let q = ven.poll_transmit(now).unwrap();
    assert_eq!(q.path, "EiRegisterParty");
    let root = xml::parse(&q.body).unwrap();
    assert_eq!(root.name, "oadrPayload");
    let msg = &root.child("oadrSignedObject").unwrap().children[0];
    assert_eq!(msg.name, "oadrQueryRegistration");
    // Same element sequence as openleadr's VEN.
    let ours: Vec<_> = msg.children.iter().map(|c| c.name.clone()).collect();
    let theirs = xml::parse(&fixture("ven-register-oadrQueryRegistration.xml")).unwrap();
    let theirs: Vec<_> = theirs.children[0].children[0]
        .children
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(ours, theirs);
}

/// The element sequence of `ours` equals openleadr's message, ignoring elements openleadr
/// writes and the VEN leaves out (all optional in the XSD).
fn same_sequence(ours: &xml::Element, theirs: &xml::Element, optional: &[&str]) {
    assert_eq!(ours.name, theirs.name);
    let a: Vec<_> = ours.children.iter().map(|c| c.name.as_str()).collect();
    let b: Vec<_> = theirs
        .children
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !optional.contains(n))
        .collect();
    assert_eq!(a, b, "children of {}", ours.name);
    for (x, y) in ours.children.iter().zip(
        theirs
            .children
            .iter()
            .filter(|c| !optional.contains(&c.name.as_str())),
    ) {
        same_sequence(x, y, optional);
    }
}

fn body(message: &VenMessage) -> xml::Element {
    let root = xml::parse(&message.to_xml()).unwrap();
    root.child("oadrSignedObject").unwrap().children[0].clone()
}

fn their_body(name: &str) -> xml::Element {
    let root = xml::parse(&fixture(name)).unwrap();
    root.child("oadrSignedObject").unwrap().children[0].clone()
}

#[test]
fn ven_messages_match_openleadrs_element_order() {
    let now = ts("2030-01-01T00:00:00Z");
    same_sequence(
        &body(&VenMessage::CreatePartyRegistration {
            request_id: "r".into(),
            ven_id: None,
            registration_id: None,
            ven_name: "orderly".into(),
        }),
        &their_body("ven-register-oadrCreatePartyRegistration.xml"),
        &["oadrTransportAddress"],
    );
    same_sequence(
        &body(&VenMessage::RequestEvent {
            request_id: "r".into(),
            ven_id: "v".into(),
        }),
        &their_body("ven-register-oadrRequestEvent.xml"),
        &[],
    );
    same_sequence(
        &body(&VenMessage::Poll { ven_id: "v".into() }),
        &their_body("ven-register-oadrPoll.xml"),
        &[],
    );
    same_sequence(
        &body(&VenMessage::CreatedReport {
            ven_id: "v".into(),
            response: openadr::EiResponse::ok(Some("r".into())),
            pending: vec!["rr".into()],
        }),
        &their_body("ven-register-oadrCreatedReport.xml"),
        &[],
    );
    same_sequence(
        &body(&VenMessage::CreatedEvent {
            ven_id: "v".into(),
            responses: vec![openadr::EventResponse {
                code: 200,
                description: "OK".into(),
                request_id: "r".into(),
                event_id: "e".into(),
                modification_number: 0,
                opt: OptType::OptIn,
            }],
        }),
        &their_body("ven-dispatch-oadrCreatedEvent.xml"),
        &[],
    );
    let offer = openadr::TelemetryOffer {
        report_specifier_id: "s".into(),
        r_id: "charging_load".into(),
        resource_id: "demo".into(),
        sampling: SignedDuration::from_secs(10),
        duration: SignedDuration::from_secs(10),
        hertz: 50.0,
        voltage: 230.0,
    };
    same_sequence(
        &body(&VenMessage::RegisterReport {
            request_id: "r".into(),
            ven_id: "v".into(),
            offer,
            created: now,
        }),
        &their_body("ven-register-oadrRegisterReport.xml"),
        &[],
    );
    same_sequence(
        &body(&VenMessage::UpdateReport {
            request_id: "r".into(),
            ven_id: "v".into(),
            report_request_id: "rr".into(),
            report_specifier_id: "s".into(),
            readings: vec![openadr::Reading {
                at: now,
                r_id: "charging_load".into(),
                value: 12.5,
            }],
            created: now,
        }),
        &their_body("ven-capacity-oadrUpdateReport.xml"),
        &[],
    );
}

/// Drives the VEN with openleadr's answers, in the order openleadr's VTN gave them.
#[test]
fn ven_registers_reports_and_answers_events() {
    let mut config = VenConfig::new("orderly", "demo");
    config.policy.capacity_kw = 200.0;
    let mut ven = Ven::new(config);
    let mut now = ts("2030-01-01T00:00:00Z");
    let sec = SignedDuration::from_secs(1);

    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrQueryRegistration"));
    assert_eq!(ven.poll_transmit(now), None, "one request in flight");
    assert_eq!(ven.poll_timeout(), None);
    ven.handle_response(
        &fixture("vtn-register-oadrCreatedPartyRegistration.xml"),
        now,
    )
    .unwrap();

    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrCreatePartyRegistration"));
    ven.handle_response(
        &fixture("vtn-register-oadrCreatedPartyRegistration-2.xml"),
        now,
    )
    .unwrap();
    assert_eq!(
        ven.poll_output(),
        Some(VenOutput::Registered {
            vtn_id: Some("vtn-fixture".into()),
            ven_id: "ven-fixture".into(),
            registration_id: "reg-fixture".into(),
            poll_freq: sec,
        })
    );

    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiReport");
    assert!(sent.body.contains("METADATA_TELEMETRY_USAGE"));
    // openleadr's request names the report it was offered; answer with one naming ours.
    let registered = fixture("vtn-register-oadrRegisteredReport.xml");
    let VtnMessage::RegisteredReport { requests, .. } = VtnMessage::from_xml(&registered).unwrap()
    else {
        panic!("wrong type")
    };
    let registered = registered
        .replace("orderly-telemetry", openadr::TELEMETRY_SPECIFIER)
        .replace(&requests[0].r_ids[0], openadr::CHARGING_LOAD_RID);
    ven.handle_response(&registered, now).unwrap();
    assert!(ven.is_ready());
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrCreatedReport"), "{}", sent.body);
    assert!(sent.body.contains("<ei:reportRequestID>"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();
    // Then the events the VTN already holds (none: openleadr answers oadrResponse).
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiEvent");
    assert!(sent.body.contains("oadrRequestEvent"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    // First poll at once, then nothing until the poll period (1 s) or the report (10 s).
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "OadrPoll");
    ven.handle_response(&fixture("vtn-dispatch-oadrDistributeEvent.xml"), now)
        .unwrap();
    match ven.poll_output() {
        Some(VenOutput::Event {
            event_id,
            modification_number: 0,
            decision,
        }) => {
            assert_eq!(event_id, "evt-dispatch");
            assert_eq!(decision.opt, OptType::OptIn);
            assert_eq!(decision.commands.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiEvent");
    let created = body(&VenMessage::CreatedEvent {
        ven_id: "x".into(),
        responses: vec![],
    });
    assert_eq!(created.name, "oadrCreatedEvent");
    assert!(sent.body.contains("<ei:optType>optIn</ei:optType>"));
    assert!(sent.body.contains("<ei:eventID>evt-dispatch</ei:eventID>"));
    ven.handle_response("", now).unwrap_err(); // an empty answer to oadrCreatedEvent is retried
    assert_eq!(ven.poll_timeout(), Some(now + SignedDuration::from_secs(5)));
    now += SignedDuration::from_secs(5);
    let again = ven.poll_transmit(now).unwrap();
    assert_eq!(again, sent);
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    // The same event again (unchanged): no new output or response.
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "OadrPoll");
    ven.handle_response(&fixture("vtn-dispatch-oadrDistributeEvent.xml"), now)
        .unwrap();
    assert_eq!(ven.poll_output(), None);
    assert_eq!(ven.poll_timeout(), Some(now + sec));

    // Cancelled (modification 1) plus two new events: cancel + two decisions + one response.
    now += sec;
    ven.poll_transmit(now).unwrap();
    ven.handle_response(&fixture("vtn-cancel-oadrDistributeEvent.xml"), now)
        .unwrap();
    let outputs: Vec<_> = std::iter::from_fn(|| ven.poll_output()).collect();
    assert_eq!(
        outputs[0],
        VenOutput::EventCancelled {
            event_id: "evt-dispatch".into()
        }
    );
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiEvent");
    assert_eq!(sent.body.matches("<ei:eventResponse>").count(), 3);
    assert!(
        sent.body
            .contains("<ei:modificationNumber>1</ei:modificationNumber>")
    );
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    // The event list without evt-dispatch: already cancelled, nothing more.
    now += sec;
    ven.poll_transmit(now).unwrap();
    ven.handle_response(
        &fixture("vtn-capacity-oadrDistributeEvent.xml").replace("evt-dispatch", "evt-other"),
        now,
    )
    .unwrap();
    let outputs: Vec<_> = std::iter::from_fn(|| ven.poll_output()).collect();
    assert_eq!(outputs.len(), 1, "only evt-other is new: {outputs:?}");
    // The charging load the next telemetry reading takes.
    ven.set_charging_load(42.5);
    let sent = ven.poll_transmit(now).unwrap(); // its oadrCreatedEvent
    ven.handle_response("", now).unwrap_err();
    // ... is sent again after the retry wait.
    now += SignedDuration::from_secs(5);
    assert_eq!(ven.poll_transmit(now).unwrap(), sent);
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    // Telemetry: the report is due 10 s after the request, with the reading taken then
    // (at 12 s here: the VEN was waiting to retry at 10 s).
    now = ts("2030-01-01T00:00:15Z");
    let sent = loop {
        let sent = ven.poll_transmit(now).unwrap();
        if sent.path == "EiReport" {
            break sent;
        }
        ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
            .unwrap();
    };
    assert!(
        sent.body.contains("<ei:value>42.5</ei:value>"),
        "{}",
        sent.body
    );
    assert!(sent.body.contains("TELEMETRY_USAGE"));
    ven.handle_response(&fixture("vtn-capacity-oadrUpdatedReport.xml"), now)
        .unwrap();

    // Reregistration requested in a poll answer: acknowledge, then register again.
    now += sec;
    while ven.poll_transmit(now).is_some_and(|s| s.path != "OadrPoll") {
        ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
            .unwrap();
    }
    ven.handle_response(&fixture("vtn-poll-oadrRequestReregistration.xml"), now)
        .unwrap();
    assert!(!ven.is_ready());
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrResponse"));
    ven.handle_response("", now).unwrap();
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrCreatePartyRegistration"));
    assert!(sent.body.contains("<ei:venID>ven-fixture</ei:venID>"));
}

#[test]
fn failures_back_off_and_keep_acknowledgements() {
    let mut ven = Ven::new(VenConfig::new("orderly", "demo"));
    let now = ts("2030-01-01T00:00:00Z");
    ven.poll_transmit(now).unwrap();
    ven.handle_failure(now, "connection refused");
    assert!(matches!(ven.poll_output(), Some(VenOutput::Warning(_))));
    assert_eq!(ven.poll_transmit(now), None);
    let later = now + SignedDuration::from_secs(5);
    assert_eq!(ven.poll_timeout(), Some(later));
    assert!(
        ven.poll_transmit(later)
            .unwrap()
            .body
            .contains("oadrQueryRegistration")
    );
    // A malformed answer is an error, and the request is tried again later.
    assert!(ven.handle_response("<oadrPayload", later).is_err());
    assert_eq!(ven.poll_transmit(later), None);
    // A registration the VTN rejects (no registrationID) is retried.
    let t = later + SignedDuration::from_secs(5);
    ven.poll_transmit(t).unwrap();
    ven.handle_response(&fixture("vtn-register-oadrCreatedPartyRegistration.xml"), t)
        .unwrap();
    ven.poll_transmit(t).unwrap();
    let err = ven
        .handle_response(&fixture("vtn-register-oadrCreatedPartyRegistration.xml"), t)
        .unwrap_err();
    assert!(
        matches!(err, openadr::OpenAdrError::Refused { .. }),
        "{err}"
    );
    assert!(!ven.is_ready());
}

/// A VEN registered and past its initial oadrRequestEvent, at `now`.
fn ready_ven(now: Timestamp) -> Ven {
    let mut ven = Ven::new(VenConfig::new("orderly", "demo"));
    for answer in [
        "vtn-register-oadrCreatedPartyRegistration.xml",
        "vtn-register-oadrCreatedPartyRegistration-2.xml",
    ] {
        ven.poll_transmit(now).unwrap();
        ven.handle_response(&fixture(answer), now).unwrap();
    }
    // oadrRegisterReport → no report requested.
    ven.poll_transmit(now).unwrap();
    let registered = fixture("vtn-register-oadrRegisteredReport.xml");
    let start = registered.find("<oadr:oadrReportRequest>").unwrap();
    let end =
        registered.find("</oadr:oadrReportRequest>").unwrap() + "</oadr:oadrReportRequest>".len();
    let none_requested = format!("{}{}", &registered[..start], &registered[end..]);
    ven.handle_response(&none_requested, now).unwrap();
    assert!(ven.is_ready());
    while let Some(out) = ven.poll_output() {
        assert!(matches!(out, VenOutput::Registered { .. }), "{out:?}");
    }
    ven
}

#[test]
fn initial_request_event_learns_existing_events() {
    let now = ts("2030-01-01T00:00:00Z");
    let mut ven = ready_ven(now);
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrRequestEvent"), "{}", sent.body);
    // A VTN that already held events (e.g. the server restarted) answers with all of them.
    ven.handle_response(&fixture("vtn-capacity-oadrDistributeEvent.xml"), now)
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| ven.poll_output()).collect();
    assert_eq!(events.len(), 3, "{events:?}");
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiEvent");
    assert_eq!(
        sent.body.matches("<ei:optType>optIn</ei:optType>").count(),
        3
    );
}

#[test]
fn report_requests_from_a_poll_are_created_sent_and_cancelled() {
    let mut now = ts("2030-01-01T00:00:00Z");
    let mut ven = ready_ven(now);
    ven.poll_transmit(now).unwrap(); // oadrRequestEvent
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();
    ven.poll_transmit(now).unwrap(); // oadrPoll
    let create = fixture("vtn-poll-oadrCreateReport.xml")
        .replace("orderly-telemetry", openadr::TELEMETRY_SPECIFIER);
    ven.handle_response(&create, now).unwrap();
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrCreatedReport"));
    assert!(
        sent.body
            .contains("<ei:reportRequestID>rr-created-1</ei:reportRequestID>")
    );
    assert!(sent.body.contains("<ei:responseCode>200</ei:responseCode>"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    // Granularity 30 s, back duration 60 s: one report a minute with two readings (taken at
    // 30 s and 60 s; the load changes at 45 s).
    ven.set_charging_load(10.0);
    let mut reports = Vec::new();
    for _ in 0..120 {
        now += SignedDuration::from_secs(1);
        if now == ts("2030-01-01T00:00:45Z") {
            ven.set_charging_load(20.0);
        }
        while let Some(sent) = ven.poll_transmit(now) {
            if sent.body.contains("oadrUpdateReport") {
                reports.push((now, sent.body));
            }
            ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
                .unwrap();
        }
    }
    assert_eq!(
        reports.len(),
        2,
        "{:?}",
        reports.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(reports[0].0, ts("2030-01-01T00:01:00Z"));
    let values = |body: &str| body.matches("<ei:value>").count();
    assert_eq!(values(&reports[0].1), 2);
    assert!(reports[0].1.contains("<ei:value>10</ei:value>"));
    assert!(reports[0].1.contains("<ei:value>20</ei:value>"));

    // A request for a report the VEN never offered is refused (452) but acknowledged.
    now += SignedDuration::from_secs(1);
    ven.poll_transmit(now).unwrap();
    ven.handle_response(&fixture("vtn-poll-oadrCreateReport.xml"), now)
        .unwrap();
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("<ei:responseCode>452</ei:responseCode>"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();
    assert!(matches!(ven.poll_output(), Some(VenOutput::Warning(_))));

    // oadrCancelReport: acknowledged, and the report stops.
    now += SignedDuration::from_secs(1);
    ven.poll_transmit(now).unwrap();
    ven.handle_response(&fixture("vtn-poll-oadrCancelReport.xml"), now)
        .unwrap();
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrCanceledReport"));
    assert!(sent.body.contains("req-cancel-1"));
    assert!(!sent.body.contains("rr-created-1"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();
    for _ in 0..120 {
        now += SignedDuration::from_secs(1);
        while let Some(sent) = ven.poll_transmit(now) {
            assert!(!sent.body.contains("oadrUpdateReport"));
            ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
                .unwrap();
        }
    }
}

#[test]
fn cancelled_registration_is_acknowledged_and_started_over() {
    assert_eq!(
        decode("vtn-poll-oadrCancelPartyRegistration.xml"),
        VtnMessage::CancelPartyRegistration {
            request_id: "req-cancel-reg-1".into(),
            registration_id: Some("reg-fixture".into()),
        }
    );
    let now = ts("2030-01-01T00:00:00Z");
    let mut ven = ready_ven(now);
    ven.poll_transmit(now).unwrap(); // oadrRequestEvent
    ven.handle_response(&fixture("vtn-dispatch-oadrDistributeEvent.xml"), now)
        .unwrap();
    assert!(matches!(ven.poll_output(), Some(VenOutput::Event { .. })));
    ven.poll_transmit(now).unwrap(); // oadrCreatedEvent
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();

    ven.poll_transmit(now).unwrap(); // oadrPoll
    ven.handle_response(&fixture("vtn-poll-oadrCancelPartyRegistration.xml"), now)
        .unwrap();
    assert_eq!(
        ven.poll_output(),
        Some(VenOutput::EventCancelled {
            event_id: "evt-dispatch".into()
        })
    );
    assert!(!ven.is_ready());
    let sent = ven.poll_transmit(now).unwrap();
    assert_eq!(sent.path, "EiRegisterParty");
    assert!(sent.body.contains("oadrCanceledPartyRegistration"));
    assert!(
        sent.body
            .contains("<ei:registrationID>reg-fixture</ei:registrationID>")
    );
    assert!(sent.body.contains("req-cancel-reg-1"));
    ven.handle_response(&fixture("vtn-register-oadrResponse.xml"), now)
        .unwrap();
    // Then a fresh registration, without the old venID.
    let sent = ven.poll_transmit(now).unwrap();
    assert!(sent.body.contains("oadrQueryRegistration"));
    assert_eq!(ven.ven_id(), None);
}
