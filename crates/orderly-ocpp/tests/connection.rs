//! The RPC state machine: inbound requests and each class of bad message, one outstanding call,
//! queueing, timeouts on a simulated clock, unexpected ids, close.

use std::time::{Duration, Instant};

use orderly_ocpp::v16::*;
use orderly_ocpp::{
    Action, CallId, CallOutcome, ChargerRequest, Config, Connection, ErrorCode, Event, Frame,
    SendError,
};
use serde_json::{Value, json};

fn conn() -> Connection {
    Connection::new(Config::default())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The CALLERROR a bad message must be answered with: (unique id, code).
fn rejected(ev: &Event) -> (String, ErrorCode) {
    match ev {
        Event::BadMessage {
            code,
            reply: Some(reply),
            ..
        } => match Frame::parse(reply).unwrap() {
            Frame::CallError {
                unique_id, code: c, ..
            } => {
                assert_eq!(c, *code);
                (unique_id, c)
            }
            other => panic!("reply is not a CALLERROR: {other:?}"),
        },
        other => panic!("expected a rejected message, got {other:?}"),
    }
}

fn sent_call(c: &mut Connection) -> (String, String, Value) {
    match Frame::parse(&c.poll_transmit().expect("a CALL to send")).unwrap() {
        Frame::Call {
            unique_id,
            action,
            payload,
        } => (unique_id, action, payload),
        other => panic!("{other:?}"),
    }
}

#[test]
fn valid_request_becomes_a_typed_event_and_is_answered() {
    let mut c = conn();
    let now = Instant::now();
    let ev = c.handle_text(
        r#"[2,"boot-1","BootNotification",{"chargePointVendor":"Wallbox","chargePointModel":"Pulsar"}]"#,
        now,
    );
    let Event::Request {
        unique_id,
        request: ChargerRequest::BootNotification(boot),
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(unique_id, "boot-1");
    assert_eq!(boot.charge_point_model, "Pulsar");
    let reply = c.respond(
        &unique_id,
        &BootNotificationResponse {
            status: RegistrationStatus::Accepted,
            current_time: "2026-11-26T08:00:00Z".parse().unwrap(),
            interval: 300,
        },
    );
    assert_eq!(
        reply,
        r#"[3,"boot-1",{"currentTime":"2026-11-26T08:00:00Z","interval":300,"status":"Accepted"}]"#
    );
    assert_eq!(
        c.respond_error("x", ErrorCode::InternalError, "db down"),
        r#"[4,"x","InternalError","db down",{}]"#
    );
    assert_eq!(c.poll_transmit(), None, "answers are returned, not queued");
}

#[test]
fn each_class_of_bad_message_gets_its_callerror_and_the_connection_stays_usable() {
    let mut c = conn();
    let now = Instant::now();
    let cases: &[(&str, &str, ErrorCode)] = &[
        ("not json at all", "-1", ErrorCode::FormationViolation),
        (r#"{"not":"an array"}"#, "-1", ErrorCode::ProtocolError),
        (r#"[7,"m1",{}]"#, "m1", ErrorCode::ProtocolError),
        (r#"[2,"m2","Heartbeat"]"#, "m2", ErrorCode::ProtocolError),
        (
            r#"[2,"m3","NoSuchAction",{}]"#,
            "m3",
            ErrorCode::NotImplemented,
        ),
        (
            r#"[2,"m4","Reset",{"type":"Hard"}]"#,
            "m4",
            ErrorCode::NotSupported,
        ),
        // Missing required field.
        (
            r#"[2,"m5","Authorize",{}]"#,
            "m5",
            ErrorCode::OccurenceConstraintViolation,
        ),
        (
            r#"[2,"m6","StartTransaction",{"connectorId":1,"idTag":"A","timestamp":"2026-11-26T08:00:00Z"}]"#,
            "m6",
            ErrorCode::OccurenceConstraintViolation,
        ),
        // Wrong types.
        (
            r#"[2,"m7","StatusNotification",{"connectorId":"1","errorCode":"NoError","status":"Available"}]"#,
            "m7",
            ErrorCode::TypeConstraintViolation,
        ),
        (
            r#"[2,"m8","Heartbeat",[]]"#,
            "m8",
            ErrorCode::TypeConstraintViolation,
        ),
        (
            r#"[2,"m9","MeterValues",{"connectorId":1,"meterValue":{"timestamp":"2026-11-26T08:00:00Z"}}]"#,
            "m9",
            ErrorCode::TypeConstraintViolation,
        ),
        // Bad enum value.
        (
            r#"[2,"m10","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Busy"}]"#,
            "m10",
            ErrorCode::PropertyConstraintViolation,
        ),
        // Too long string (idTag is CiString20).
        (
            r#"[2,"m11","Authorize",{"idTag":"012345678901234567890"}]"#,
            "m11",
            ErrorCode::PropertyConstraintViolation,
        ),
        // Unknown field, bad date-time.
        (
            r#"[2,"m12","Heartbeat",{"extra":1}]"#,
            "m12",
            ErrorCode::PropertyConstraintViolation,
        ),
        (
            r#"[2,"m13","StopTransaction",{"transactionId":1,"meterStop":5,"timestamp":"yesterday"}]"#,
            "m13",
            ErrorCode::PropertyConstraintViolation,
        ),
        // Missing required field inside an array item (sampledValue of a meterValue).
        (
            r#"[2,"m15","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"2026-11-26T08:00:00Z"}]}]"#,
            "m15",
            ErrorCode::OccurenceConstraintViolation,
        ),
        // Payload that is not an object.
        (
            r#"[2,"m16","Heartbeat","nope"]"#,
            "m16",
            ErrorCode::TypeConstraintViolation,
        ),
        // A required array that is missing.
        (
            r#"[2,"m14","MeterValues",{"connectorId":1}]"#,
            "m14",
            ErrorCode::OccurenceConstraintViolation,
        ),
    ];
    for (text, id, code) in cases {
        let ev = c.handle_text(text, now);
        assert_eq!(rejected(&ev), (id.to_string(), *code), "{text}");
    }
    // Still usable: a good request after all of that.
    assert!(matches!(
        c.handle_text(r#"[2,"ok","Heartbeat",{}]"#, now),
        Event::Request {
            request: ChargerRequest::Heartbeat(_),
            ..
        }
    ));
}

#[test]
fn bad_message_names_the_field_and_action() {
    let mut c = conn();
    let ev = c.handle_text(
        r#"[2,"m","StartTransaction",{"connectorId":1,"idTag":"A","meterStart":"12","timestamp":"2026-11-26T08:00:00Z"}]"#,
        Instant::now(),
    );
    let Event::BadMessage {
        code,
        description,
        action,
        unique_id,
        ..
    } = ev
    else {
        panic!()
    };
    assert_eq!(code, ErrorCode::TypeConstraintViolation);
    assert!(description.contains("meterStart"), "{description}");
    assert_eq!(action, Some(Action::StartTransaction));
    assert_eq!(unique_id.as_deref(), Some("m"));
}

#[test]
fn one_outstanding_call_the_rest_queue_in_order() {
    let mut c = conn();
    let t0 = Instant::now();
    let a = c.call(Action::Reset, json!({"type": "Soft"}), t0).unwrap();
    let b = c
        .send(&UnlockConnectorRequest { connector_id: 2 }, t0)
        .unwrap();
    let d = c.send(&ClearCacheRequest {}, t0).unwrap();
    assert_ne!(a, b);
    assert_eq!(c.in_flight(), Some((a, Action::Reset)));
    assert_eq!(c.queued(), 2);

    let (id_a, action, payload) = sent_call(&mut c);
    assert_eq!(
        (id_a.as_str(), action.as_str(), payload),
        (a.to_string().as_str(), "Reset", json!({"type": "Soft"}))
    );
    assert_eq!(c.poll_transmit(), None, "B waits until A is answered");

    let ev = c.handle_text(
        &format!(r#"[3,"{id_a}",{{"status":"Accepted"}}]"#),
        t0 + secs(1),
    );
    assert_eq!(
        ev,
        Event::CallCompleted {
            call_id: a,
            action: Action::Reset,
            outcome: CallOutcome::Result(json!({"status": "Accepted"}))
        }
    );

    let (id_b, action, _) = sent_call(&mut c);
    assert_eq!((id_b, action.as_str()), (b.to_string(), "UnlockConnector"));
    assert_eq!(c.poll_transmit(), None);
    let ev = c.handle_text(
        &format!(r#"[4,"{b}","NotSupported","no lock motor",{{"x":1}}]"#),
        t0 + secs(2),
    );
    assert_eq!(
        ev,
        Event::CallCompleted {
            call_id: b,
            action: Action::UnlockConnector,
            outcome: CallOutcome::Error {
                code: ErrorCode::NotSupported,
                description: "no lock motor".into(),
                details: json!({"x": 1})
            },
        }
    );
    let (id_d, action, _) = sent_call(&mut c);
    assert_eq!((id_d, action.as_str()), (d.to_string(), "ClearCache"));
}

#[test]
fn typed_outcome_decodes() {
    let mut c = conn();
    let t0 = Instant::now();
    let id = c.send(&GetLocalListVersionRequest {}, t0).unwrap();
    sent_call(&mut c);
    let Event::CallCompleted { outcome, .. } =
        c.handle_text(&format!(r#"[3,"{id}",{{"listVersion":4}}]"#), t0)
    else {
        panic!()
    };
    let resp = outcome.decode::<GetLocalListVersionRequest>().unwrap();
    assert_eq!(resp.list_version, 4);
    assert_eq!(
        CallOutcome::Timeout.decode::<ResetRequest>(),
        Err(CallOutcome::Timeout)
    );
}

#[test]
fn outbound_payloads_are_validated_before_anything_is_sent() {
    let mut c = conn();
    let t0 = Instant::now();
    let err = c
        .call(Action::Reset, json!({"type": "Warm"}), t0)
        .unwrap_err();
    let SendError::Invalid { action, violation } = err else {
        panic!("{err:?}")
    };
    assert_eq!(action, Action::Reset);
    assert_eq!(violation.code, ErrorCode::PropertyConstraintViolation);
    assert_eq!(violation.path, "/type");
    let err = c
        .call(
            Action::RemoteStartTransaction,
            json!({"connectorId": 1}),
            t0,
        )
        .unwrap_err();
    assert!(
        matches!(err, SendError::Invalid { ref violation, .. } if violation.code == ErrorCode::OccurenceConstraintViolation),
        "{err}"
    );
    assert!(err.to_string().contains("idTag"), "{err}");
    assert_eq!(
        c.call(Action::Heartbeat, json!({}), t0),
        Err(SendError::NotCsmsAction(Action::Heartbeat))
    );
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.in_flight(), None);
    // DataTransfer goes both ways.
    c.call(Action::DataTransfer, json!({"vendorId": "cn.orderly"}), t0)
        .unwrap();
    assert!(c.poll_transmit().is_some());
}

#[test]
fn queue_is_bounded() {
    let mut c = Connection::new(Config {
        max_queued_calls: 2,
        ..Config::default()
    });
    let t0 = Instant::now();
    for _ in 0..3 {
        c.send(&ClearCacheRequest {}, t0).unwrap();
    }
    assert_eq!(
        c.send(&ClearCacheRequest {}, t0),
        Err(SendError::QueueFull { limit: 2 })
    );
}

#[test]
fn in_flight_call_times_out_then_next_is_released_and_late_answer_is_unmatched() {
    let mut c = conn(); // 30 s timeout
    let t0 = Instant::now();
    let a = c
        .send(
            &ResetRequest {
                kind: ResetType::Hard,
            },
            t0,
        )
        .unwrap();
    let b = c.send(&ClearCacheRequest {}, t0 + secs(10)).unwrap();
    let (id_a, _, _) = sent_call(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30)));
    assert!(c.handle_timeout(t0 + secs(29)).is_empty());
    assert_eq!(c.poll_transmit(), None);

    let evs = c.handle_timeout(t0 + secs(30));
    assert_eq!(
        evs,
        vec![Event::CallCompleted {
            call_id: a,
            action: Action::Reset,
            outcome: CallOutcome::Timeout
        }]
    );
    let (id_b, _, _) = sent_call(&mut c);
    assert_eq!(id_b, b.to_string());
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + secs(40)),
        "B's deadline counts from its call()"
    );

    // A's answer arrives late: reported, nothing sent, B still in flight.
    let ev = c.handle_text(
        &format!(r#"[3,"{id_a}",{{"status":"Accepted"}}]"#),
        t0 + secs(31),
    );
    assert_eq!(ev, Event::UnmatchedResponse { unique_id: id_a });
    assert_eq!(c.in_flight(), Some((b, Action::ClearCache)));
    assert_eq!(c.poll_transmit(), None);
}

#[test]
fn a_call_that_expires_while_queued_is_never_sent() {
    let mut c = conn();
    let t0 = Instant::now();
    let a = c
        .call_with_timeout(Action::ClearCache, json!({}), secs(60), t0)
        .unwrap();
    let b = c
        .call_with_timeout(Action::GetLocalListVersion, json!({}), secs(5), t0)
        .unwrap();
    sent_call(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(5)));
    let evs = c.handle_timeout(t0 + secs(5));
    assert_eq!(
        evs,
        vec![Event::CallCompleted {
            call_id: b,
            action: Action::GetLocalListVersion,
            outcome: CallOutcome::Timeout
        }]
    );
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.in_flight(), Some((a, Action::ClearCache)));

    // Same, but the in-flight answer arrives after B expired and before handle_timeout ran:
    // B must not be released; the due deadline makes the server call handle_timeout.
    let mut c = conn();
    let _a = c
        .call_with_timeout(Action::ClearCache, json!({}), secs(60), t0)
        .unwrap();
    let b = c
        .call_with_timeout(Action::GetLocalListVersion, json!({}), secs(5), t0)
        .unwrap();
    let (id_a, _, _) = sent_call(&mut c);
    let ev = c.handle_text(
        &format!(r#"[3,"{id_a}",{{"status":"Accepted"}}]"#),
        t0 + secs(6),
    );
    assert!(matches!(
        ev,
        Event::CallCompleted {
            outcome: CallOutcome::Result(_),
            ..
        }
    ));
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(5)));
    assert_eq!(
        c.handle_timeout(t0 + secs(6)),
        vec![Event::CallCompleted {
            call_id: b,
            action: Action::GetLocalListVersion,
            outcome: CallOutcome::Timeout
        }]
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn responses_with_unknown_ids_are_reported_and_not_answered() {
    let mut c = conn();
    let t0 = Instant::now();
    assert_eq!(
        c.handle_text(r#"[3,"nobody",{}]"#, t0),
        Event::UnmatchedResponse {
            unique_id: "nobody".into()
        }
    );
    assert_eq!(
        c.handle_text(r#"[4,"nobody","GenericError","",{}]"#, t0),
        Event::UnmatchedResponse {
            unique_id: "nobody".into()
        }
    );
    // An id of a call that is queued but not yet sent is not a match either.
    c.send(&ClearCacheRequest {}, t0).unwrap();
    let queued = c.send(&ClearCacheRequest {}, t0).unwrap();
    let ev = c.handle_text(&format!(r#"[3,"{queued}",{{"status":"Accepted"}}]"#), t0);
    assert_eq!(
        ev,
        Event::UnmatchedResponse {
            unique_id: queued.to_string()
        }
    );
    assert_eq!(c.queued(), 1);
    // A broken response for nobody: reported, no reply.
    assert!(matches!(
        c.handle_text(r#"[3,"zz"]"#, t0),
        Event::BadMessage { reply: None, .. }
    ));
}

#[test]
fn invalid_or_malformed_answers_end_the_call() {
    let mut c = conn();
    let t0 = Instant::now();
    let a = c
        .send(
            &ResetRequest {
                kind: ResetType::Soft,
            },
            t0,
        )
        .unwrap();
    let b = c
        .send(
            &ResetRequest {
                kind: ResetType::Soft,
            },
            t0,
        )
        .unwrap();
    sent_call(&mut c);
    let ev = c.handle_text(&format!(r#"[3,"{a}",{{"status":"Maybe"}}]"#), t0);
    let Event::CallCompleted {
        call_id,
        outcome:
            CallOutcome::InvalidResponse {
                description,
                payload,
            },
        ..
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(call_id, a);
    assert!(description.contains("status"), "{description}");
    assert_eq!(payload, json!({"status": "Maybe"}));
    sent_call(&mut c);
    let ev = c.handle_text(&format!(r#"[3,"{b}"]"#), t0);
    assert!(
        matches!(ev, Event::CallCompleted { call_id, outcome: CallOutcome::InvalidResponse { payload: Value::Null, .. }, .. } if call_id == b),
        "{ev:?}"
    );
    assert_eq!(c.in_flight(), None);
}

#[test]
fn charger_may_call_while_our_call_is_outstanding_and_even_break_its_own_limit() {
    let mut c = conn();
    let t0 = Instant::now();
    let ours = c
        .send(
            &TriggerMessageRequest {
                requested_message: MessageTrigger::StatusNotification,
                connector_id: Some(1),
            },
            t0,
        )
        .unwrap();
    sent_call(&mut c);
    // Two CALLs from the charger without waiting for our answer in between: both delivered.
    let e1 = c.handle_text(r#"[2,"c1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#, t0);
    let e2 = c.handle_text(r#"[2,"c2","Heartbeat",{}]"#, t0);
    assert!(
        matches!(e1, Event::Request { ref unique_id, request: ChargerRequest::StatusNotification(_) } if unique_id == "c1")
    );
    assert!(
        matches!(e2, Event::Request { ref unique_id, request: ChargerRequest::Heartbeat(_) } if unique_id == "c2")
    );
    assert_eq!(c.in_flight(), Some((ours, Action::TriggerMessage)));
    let ev = c.handle_text(&format!(r#"[3,"{ours}",{{"status":"Accepted"}}]"#), t0);
    assert!(matches!(ev, Event::CallCompleted { call_id, .. } if call_id == ours));
}

#[test]
fn close_fails_everything_pending() {
    let mut c = conn();
    let t0 = Instant::now();
    let a = c.send(&ClearCacheRequest {}, t0).unwrap();
    let b = c.send(&ClearCacheRequest {}, t0).unwrap();
    let evs = c.close();
    let ids: Vec<_> = evs
        .iter()
        .map(|e| match e {
            Event::CallCompleted {
                call_id,
                outcome: CallOutcome::Closed,
                ..
            } => *call_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![a, b]);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.send(&ClearCacheRequest {}, t0), Err(SendError::Closed));
}

#[test]
fn message_ids_start_where_configured() {
    let mut c = Connection::new(Config {
        first_message_id: 1_764_000_000_000,
        ..Config::default()
    });
    let id = c.send(&ClearCacheRequest {}, Instant::now()).unwrap();
    assert_eq!(id, CallId(1_764_000_000_000));
    assert_eq!(sent_call(&mut c).0, "1764000000000");
    let next = c.send(&ClearCacheRequest {}, Instant::now()).unwrap();
    assert_eq!(next, CallId(1_764_000_000_001));
}
