//! Property tests: no input text panics the parser or the state machine, and every bad CALL-ish
//! input gets a CALLERROR that itself parses.

use std::time::Instant;

use orderly_ocpp::{Action, Connection, Event, Frame};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,30}".prop_map(Value::from),
        prop::sample::select(vec![
            "Accepted",
            "2026-11-26T08:00:00",
            "Energy.Active.Import.Register",
            "L1-N",
            ""
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "connectorId",
                        "idTag",
                        "status",
                        "timestamp",
                        "meterValue",
                        "sampledValue",
                        "value",
                        "transactionId",
                        "errorCode",
                        "chargePointVendor",
                        "chargePointModel"
                    ])
                    .prop_map(String::from),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn frame_like() -> impl Strategy<Value = String> {
    let action = prop_oneof![
        prop::sample::select(Action::ALL.to_vec()).prop_map(|a| Value::from(a.as_str())),
        json_value(),
    ];
    (
        0u64..6,
        json_value(),
        action,
        json_value(),
        prop::collection::vec(json_value(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(ty, id, action, payload, extra, string_id)| {
            let id = if string_id { json!(id.to_string()) } else { id };
            let mut items = vec![json!(ty), id, action, payload];
            items.extend(extra);
            Value::Array(items).to_string()
        })
}

fn check(conn: &mut Connection, text: &str) {
    let parsed = Frame::parse(text);
    if let Ok(f) = &parsed {
        // Whatever parses prints back to something that parses to the same frame.
        assert_eq!(&Frame::parse(&f.to_text()).unwrap(), f);
    }
    match conn.handle_text(text, Instant::now()) {
        Event::BadMessage {
            reply: Some(reply), ..
        } => {
            assert!(
                matches!(Frame::parse(&reply), Ok(Frame::CallError { .. })),
                "{reply}"
            );
        }
        Event::BadMessage { reply: None, .. } | Event::UnmatchedResponse { .. } => {
            assert!(
                !matches!(parsed, Ok(Frame::Call { .. })),
                "a CALL is always answered: {text}"
            );
        }
        Event::Request { request, .. } => {
            let Ok(Frame::Call { action, .. }) = parsed else {
                panic!("request from a non-CALL: {text}")
            };
            assert_eq!(request.action().as_str(), action);
        }
        Event::CallCompleted { .. } => panic!("no call was made"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let mut conn = Connection::new(Default::default());
        check(&mut conn, &text);
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut conn = Connection::new(Default::default());
        check(&mut conn, &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn frame_shaped_json_never_panics(text in frame_like()) {
        let mut conn = Connection::new(Default::default());
        check(&mut conn, &text);
    }

    #[test]
    fn arbitrary_payloads_for_real_actions_never_panic(action in prop::sample::select(Action::ALL.to_vec()), payload in json_value()) {
        let mut conn = Connection::new(Default::default());
        let text = json!([2, "p", action.as_str(), payload]).to_string();
        check(&mut conn, &text);
        // The outbound side must refuse or accept, never panic, on the same payloads.
        let _ = conn.call(action, payload, Instant::now());
    }
}
