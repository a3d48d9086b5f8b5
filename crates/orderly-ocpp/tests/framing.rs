//! OCPP-J framing: well-formed frames, and each class of broken frame with its error code.

use orderly_ocpp::frame::UNKNOWN_UNIQUE_ID;
use orderly_ocpp::{ErrorCode, Frame};
use serde_json::json;

#[test]
fn parses_and_prints_the_three_message_types() {
    let call = Frame::parse(r#"[2, "19223201", "BootNotification", {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"}]"#).unwrap();
    assert_eq!(
        call,
        Frame::Call {
            unique_id: "19223201".into(),
            action: "BootNotification".into(),
            payload: json!({"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"}),
        }
    );
    assert_eq!(call.unique_id(), "19223201");

    let result = Frame::parse(r#"[3,"19223201",{"status":"Accepted","currentTime":"2013-02-01T20:53:32.486Z","interval":300}]"#).unwrap();
    assert!(
        matches!(&result, Frame::CallResult { unique_id, payload } if unique_id == "19223201" && payload["interval"] == 300)
    );

    let error = Frame::parse(
        r#"[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]"#,
    )
    .unwrap();
    assert_eq!(
        error,
        Frame::CallError {
            unique_id: "162376037".into(),
            code: ErrorCode::NotSupported,
            description: "SetDisplayMessageRequest not implemented".into(),
            details: json!({}),
        }
    );

    for f in [call, result, error] {
        assert_eq!(Frame::parse(&f.to_text()).unwrap(), f);
        assert_eq!(f.to_string().parse::<Frame>().unwrap(), f);
    }
}

#[test]
fn prints_compact_json_with_escaping() {
    let f = Frame::Call {
        unique_id: "1".into(),
        action: "DataTransfer".into(),
        // One key: the text must not depend on serde_json's map order feature.
        payload: json!({"data": "引号\"\n"}),
    };
    assert_eq!(f.to_text(), r#"[2,"1","DataTransfer",{"data":"引号\"\n"}]"#);
    assert_eq!(
        Frame::call_error(
            "7",
            ErrorCode::OccurenceConstraintViolation,
            "missing idTag"
        )
        .to_text(),
        r#"[4,"7","OccurenceConstraintViolation","missing idTag",{}]"#
    );
}

#[test]
fn not_json_is_a_formation_violation_answered_with_id_minus_one() {
    let e = Frame::parse("this is not json").unwrap_err();
    assert_eq!(e.code, ErrorCode::FormationViolation);
    assert_eq!(e.unique_id, None);
    assert!(e.wants_reply());
    assert_eq!(e.reply().unique_id(), UNKNOWN_UNIQUE_ID);
    // Truncated frame: still not JSON.
    let e = Frame::parse(r#"[2,"abc","Heartbeat",{"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::FormationViolation);
}

#[test]
fn json_that_is_not_an_array_is_a_protocol_error() {
    for text in [
        r#"{"messageTypeId":2}"#,
        "42",
        r#""[2,\"1\",\"Heartbeat\",{}]""#,
        "null",
    ] {
        let e = Frame::parse(text).unwrap_err();
        assert_eq!(e.code, ErrorCode::ProtocolError, "{text}");
        assert!(e.wants_reply());
    }
}

#[test]
fn wrong_element_count_is_a_protocol_error_keeping_the_id() {
    for (text, ty) in [
        ("[]", None),
        (r#"[2,"a1","Heartbeat"]"#, Some(2)),
        (r#"[2,"a1","Heartbeat",{},{}]"#, Some(2)),
        (r#"[4,"a1","GenericError"]"#, Some(4)),
    ] {
        let e = Frame::parse(text).unwrap_err();
        assert_eq!(e.code, ErrorCode::ProtocolError, "{text}");
        assert_eq!(e.message_type, ty, "{text}");
        if ty.is_some() {
            assert_eq!(e.unique_id.as_deref(), Some("a1"));
        }
    }
}

#[test]
fn unknown_message_type_id_is_a_protocol_error() {
    let e = Frame::parse(r#"[5,"x9",{}]"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::ProtocolError);
    assert_eq!(e.message_type, Some(5));
    assert_eq!(e.unique_id.as_deref(), Some("x9"));
    assert!(e.wants_reply());
    let reply = e.reply();
    assert!(
        matches!(reply, Frame::CallError { ref unique_id, code: ErrorCode::ProtocolError, .. } if unique_id == "x9")
    );
}

#[test]
fn elements_of_the_wrong_type_are_formation_violations() {
    for (text, id) in [
        (r#"["2","a","Heartbeat",{}]"#, Some("a")),
        (r#"[2.5,"a","Heartbeat",{}]"#, Some("a")),
        (r#"[-2,"a","Heartbeat",{}]"#, Some("a")),
        (r#"[2,17,"Heartbeat",{}]"#, Some("17")),
        (r#"[2,null,"Heartbeat",{}]"#, None),
        (r#"[2,"a",7,{}]"#, Some("a")),
        (r#"[4,"a",500,"boom",{}]"#, Some("a")),
        (r#"[4,"a","GenericError",null,{}]"#, Some("a")),
    ] {
        let e = Frame::parse(text).unwrap_err();
        assert_eq!(e.code, ErrorCode::FormationViolation, "{text}");
        assert_eq!(e.unique_id.as_deref(), id, "{text}");
        assert_eq!(e.reply().unique_id(), id.unwrap_or("-1"));
    }
}

#[test]
fn broken_responses_are_never_answered() {
    for text in [r#"[3,"a"]"#, r#"[4,"a",1,"x",{}]"#, r#"[3,5,{},{}]"#] {
        let e = Frame::parse(text).unwrap_err();
        assert!(!e.wants_reply(), "{text}");
    }
}

#[test]
fn error_codes_of_peers_are_read_leniently() {
    let code = |c: &str| match Frame::parse(&format!(r#"[4,"1","{c}","",{{}}]"#)).unwrap() {
        Frame::CallError { code, .. } => code,
        other => panic!("{other:?}"),
    };
    for c in ErrorCode::ALL {
        assert_eq!(code(c.as_str()), c);
        assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
    }
    assert_eq!(code("FormatViolation"), ErrorCode::FormationViolation);
    assert_eq!(
        code("OccurrenceConstraintViolation"),
        ErrorCode::OccurenceConstraintViolation
    );
    assert_eq!(code("MessageTypeNotSupported"), ErrorCode::GenericError);
    assert!(
        "FormatViolation".parse::<ErrorCode>().is_err(),
        "strict parse keeps the 1.6 names"
    );
}
