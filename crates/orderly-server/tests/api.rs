//! Integration tests: the real server in-process on an ephemeral port over a fresh database
//! (SQLite always, PostgreSQL too when `ORDERLY_TEST_POSTGRES_URL` is set), driven by an OCPP-J
//! charge point on tokio-tungstenite and an HTTP client.

mod helpers;
// Roles, tenancy, the registry and the charger lifecycle (issue 5).
#[path = "api/roles.rs"]
mod roles;
// Waiting lists for public chargers, id tags per role, insurance alerts (issue 5).
#[path = "api/waiting.rs"]
mod waiting;
// Parking and charging together (issue 5, clause 十二).
#[path = "api/parking.rs"]
mod parking;
// Sharing private chargers with neighbours (issue 5, clause 七).
#[path = "api/sharing.rs"]
mod sharing;

use axum::http::{Method, StatusCode, header};
use helpers::{Backend, TestApp, each_backend, spawn_app};
use orderly_server::config::UnknownChargers;
use serde_json::json;

async fn app(backend: Backend) -> TestApp {
    spawn_app(backend, |_| {}).await
}

#[tokio::test]
async fn handshake_refusals_happen_before_the_upgrade() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", Some("correct horse battery")).await;
        app.add_charger("OPEN", None).await;
        let ok = Some(("CP1", "correct horse battery"));
        assert_eq!(
            app.handshake_status("CP1", None, ok).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp2.0.1"), ok).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            app.handshake_status("NOPE", Some("ocpp1.6"), None).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp1.6"), None).await,
            StatusCode::UNAUTHORIZED
        );
        let wrong = Some(("CP1", "wrong"));
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp1.6"), wrong).await,
            StatusCode::UNAUTHORIZED
        );
        let other_user = Some(("OPEN", "correct horse battery"));
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp1.6"), other_user)
                .await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp1.6"), ok).await,
            StatusCode::SWITCHING_PROTOCOLS
        );
        assert_eq!(
            app.handshake_status("OPEN", Some("ocpp1.6"), None).await,
            StatusCode::SWITCHING_PROTOCOLS
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn boot_and_heartbeat_are_persisted() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.heartbeat_interval = 120).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        let boot = cp.boot().await;
        assert_eq!(boot["status"], "Accepted");
        assert_eq!(boot["interval"], 120);
        assert!(boot["currentTime"].as_str().unwrap().ends_with('Z'));
        let heartbeat = cp.call_ok("Heartbeat", json!({})).await;
        assert!(heartbeat["currentTime"].is_string());

        let charger = app.get("/api/v1/chargers/CP1").await.body;
        assert_eq!(charger["connected"], true);
        assert_eq!(charger["vendor"], "Acme");
        assert_eq!(charger["model"], "Wallbox 7");
        assert_eq!(charger["firmware_version"], "1.2.3");
        assert!(charger["last_seen"].is_string(), "{charger}");

        let status = json!({ "connectorId": 1, "errorCode": "NoError", "status": "Available" });
        cp.call_ok("StatusNotification", status).await;
        let connectors = app.get("/api/v1/chargers/CP1/connectors").await.body;
        assert_eq!(connectors[0]["connector_id"], 1);
        assert_eq!(connectors[0]["status"], "Available");
        let history = app.get("/api/v1/chargers/CP1/status-history").await.body;
        assert_eq!(history.as_array().unwrap().len(), 1);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn authorize_answers_each_tag_status() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        app.add_tag("GOOD", "Accepted", None).await;
        app.add_tag("BLOCKED", "Blocked", None).await;
        app.add_tag("OLD", "Accepted", Some("2020-01-01T00:00:00Z"))
            .await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        for (tag, expected) in [
            ("GOOD", "Accepted"),
            ("BLOCKED", "Blocked"),
            ("OLD", "Expired"),
            ("STRANGER", "Invalid"),
        ] {
            let answer = cp.call_ok("Authorize", json!({ "idTag": tag })).await;
            assert_eq!(answer["idTagInfo"]["status"], expected, "tag {tag}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_transaction_records_meter_values_in_time_order_and_energy() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        app.add_tag("GOOD", "Accepted", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        let start = json!({
            "connectorId": 1, "idTag": "GOOD", "meterStart": 1000,
            "timestamp": "2026-11-26T08:00:00Z",
        });
        let started = cp.call_ok("StartTransaction", start).await;
        assert_eq!(started["idTagInfo"]["status"], "Accepted");
        let tx = started["transactionId"].as_i64().unwrap();
        assert!(tx > 0);
        let running = app.get("/api/v1/transactions?active=true").await.body;
        assert_eq!(running.as_array().unwrap().len(), 1);

        // Sent out of order: the later sample first.
        for (time, wh) in [("2026-11-26T08:30:00Z", "4000"), ("2026-11-26T08:15:00Z", "2500")] {
            let meter = json!({
                "connectorId": 1, "transactionId": tx,
                "meterValue": [{ "timestamp": time, "sampledValue": [{ "value": wh }] }],
            });
            cp.call_ok("MeterValues", meter).await;
        }
        let stop = json!({
            "transactionId": tx, "meterStop": 6500, "timestamp": "2026-11-26T09:00:00Z",
            "reason": "EVDisconnected", "idTag": "GOOD",
            "transactionData": [{ "timestamp": "2026-11-26T09:00:00Z",
                                  "sampledValue": [{ "value": "6500", "context": "Transaction.End" }] }],
        });
        let stopped = cp.call_ok("StopTransaction", stop).await;
        assert_eq!(stopped["idTagInfo"]["status"], "Accepted");

        let record = app.get(&format!("/api/v1/transactions/{tx}")).await.body;
        assert_eq!(record["meter_start_wh"], 1000);
        assert_eq!(record["meter_stop_wh"], 6500);
        assert_eq!(record["energy_wh"], 5500);
        assert_eq!(record["stop_reason"], "EVDisconnected");
        let values = app.get(&format!("/api/v1/transactions/{tx}/meter-values")).await.body;
        let values: Vec<(&str, &str)> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["timestamp"].as_str().unwrap(), v["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            values,
            [
                ("2026-11-26T08:15:00Z", "2500"),
                ("2026-11-26T08:30:00Z", "4000"),
                ("2026-11-26T09:00:00Z", "6500")
            ]
        );
        let running = app.get("/api/v1/transactions?active=true").await.body;
        assert_eq!(running, json!([]));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn replayed_start_gets_the_same_id_and_unknown_stop_is_recorded() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        let start = json!({
            "connectorId": 2, "idTag": "UNKNOWN1", "meterStart": 200,
            "timestamp": "2026-11-20T07:00:00Z",
        });
        // No boot: a charger that reconnects replays its queue straight away.
        let first = cp.call_ok("StartTransaction", start.clone()).await;
        // An unknown tag is still recorded (OCA L12): id > 0, status Invalid.
        assert_eq!(first["idTagInfo"]["status"], "Invalid");
        let replay = cp.call_ok("StartTransaction", start).await;
        assert_eq!(first["transactionId"], replay["transactionId"]);
        let all = app.get("/api/v1/transactions?charger_id=CP1").await.body;
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");

        let stop = json!({ "transactionId": 777_777, "meterStop": 900, "timestamp": "2026-11-20T08:00:00Z" });
        let answer = cp.call("StopTransaction", stop).await;
        assert_eq!(answer[0], 3, "an unknown stop is answered normally: {answer}");
        let record = app.get("/api/v1/transactions/777777").await;
        assert_eq!(record.status, StatusCode::OK, "{:?}", record.body);
        assert_eq!(record.body["meter_stop_wh"], 900);
        assert_eq!(record.body["origin"], "stop_transaction");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_frames_get_the_right_callerror_and_the_connection_survives() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        let cases: [(&str, &str); 6] = [
            ("this is not json", "FormationViolation"),
            (r#"{"not": "an array"}"#, "ProtocolError"),
            (r#"[2, "a1", "Heartbeat"]"#, "ProtocolError"),
            (r#"[2, "a2", "MakeCoffee", {}]"#, "NotImplemented"),
            (r#"[2, "a3", "BootNotification", {"chargePointVendor": "Acme"}]"#, "OccurenceConstraintViolation"),
            (r#"[2, "a4", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}]"#,
             "TypeConstraintViolation"),
        ];
        for (text, code) in cases {
            cp.send_text(text).await;
            let frame = cp.recv_frame().await;
            assert_eq!(frame[0], 4, "{text} → {frame}");
            assert_eq!(frame[2], code, "{text} → {frame}");
        }
        cp.send_text(r#"[2, "a5", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]"#).await;
        assert_eq!(cp.recv_frame().await[2], "PropertyConstraintViolation");
        // Still usable.
        let heartbeat = cp.call_ok("Heartbeat", json!({})).await;
        assert!(heartbeat["currentTime"].is_string());

        let metrics = app.request(Method::GET, "/metrics", None, None).await;
        let text = metrics.body.as_str().unwrap().to_owned();
        assert!(text.contains("orderly_ocpp_errors_total{code=\"FormationViolation\"}"), "{text}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operator_calls_round_trip_and_time_out() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;

        let path = "/api/v1/chargers/CP1/operations/Reset";
        let api = app.post(path, json!({ "type": "Hard" }));
        let charger = async {
            let call = cp.recv_frame().await;
            assert_eq!(call[0], 2);
            assert_eq!(call[2], "Reset");
            assert_eq!(call[3], json!({ "type": "Hard" }));
            cp.send_text(&json!([3, call[1], { "status": "Accepted" }]).to_string())
                .await;
        };
        let (reply, ()) = tokio::join!(api, charger);
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body, json!({ "response": { "status": "Accepted" } }));

        // A CALLERROR comes back as 502 with the charger's error.
        let api = app.post("/api/v1/chargers/CP1/operations/ClearCache", json!({}));
        let charger = async {
            let call = cp.recv_frame().await;
            cp.send_text(&json!([4, call[1], "NotSupported", "no cache here", {}]).to_string())
                .await;
        };
        let (reply, ()) = tokio::join!(api, charger);
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
        assert_eq!(reply.body["call_error"]["code"], "NotSupported");

        // No answer: 504 once the requested timeout has passed.
        let api = app.post(
            "/api/v1/chargers/CP1/operations/GetLocalListVersion?timeout=1",
            json!({}),
        );
        let charger = async { assert_eq!(cp.recv_frame().await[2], "GetLocalListVersion") };
        let (reply, ()) = tokio::join!(api, charger);
        assert_eq!(
            reply.status,
            StatusCode::GATEWAY_TIMEOUT,
            "{:?}",
            reply.body
        );

        // Refusals before anything is sent.
        let bad = app.post(path, json!({ "type": "Medium" })).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(
            bad.body["error"].as_str().unwrap().contains("type"),
            "{:?}",
            bad.body
        );
        let unknown = app
            .post("/api/v1/chargers/CP1/operations/Heartbeat", json!({}))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        app.add_charger("CP2", None).await;
        let offline = app
            .post(
                "/api/v1/chargers/CP2/operations/Reset",
                json!({ "type": "Soft" }),
            )
            .await;
        assert_eq!(offline.status, StatusCode::CONFLICT);
        let nobody = app
            .post(
                "/api/v1/chargers/CP9/operations/Reset",
                json!({ "type": "Soft" }),
            )
            .await;
        assert_eq!(nobody.status, StatusCode::NOT_FOUND);

        // Every operator command is in the audit log, newest first.
        let audit = app.get("/api/v1/audit").await.body;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions[..5],
            [
                "operation.Reset",
                "operation.Reset",
                "charger.add",
                "operation.Heartbeat",
                "operation.Reset"
            ]
        );
        assert!(actions.contains(&"operation.GetLocalListVersion"));
        let first_reset = audit
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["action"] == "operation.Reset")
            .unwrap();
        assert_eq!(first_reset["outcome"], "Accepted");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn api_needs_a_token_and_documents_itself() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let none = app
            .request(Method::GET, "/api/v1/chargers", None, None)
            .await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        assert!(none.headers.contains_key(header::WWW_AUTHENTICATE));
        assert!(none.body["error"].is_string());
        let wrong = app
            .request(Method::GET, "/api/v1/chargers", None, Some("not-the-token"))
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let ok = app.get("/api/v1/chargers").await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.body, json!([]));

        let doc = app
            .request(Method::GET, "/api/v1/openapi.json", None, None)
            .await;
        assert_eq!(doc.status, StatusCode::OK);
        assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc.body["paths"].as_object().unwrap();
        for path in [
            "/api/v1/chargers",
            "/api/v1/chargers/{id}/operations/{action}",
            "/api/v1/transactions/{id}/meter-values",
            "/api/v1/id-tags/{tag}",
            "/api/v1/audit",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} missing from the OpenAPI document"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let bad_id = app.post("/api/v1/chargers", json!({ "id": "a/b" })).await;
        assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
        assert!(
            bad_id.body["error"].as_str().unwrap().starts_with("id:"),
            "{:?}",
            bad_id.body
        );
        let missing = app
            .post("/api/v1/chargers", json!({ "password": "x" }))
            .await;
        assert!(missing.status.is_client_error());
        assert!(
            missing.body["error"].as_str().unwrap().contains("`id`"),
            "{:?}",
            missing.body
        );
        let bad_tag = app
            .post(
                "/api/v1/id-tags",
                json!({ "id_tag": "T1", "status": "Maybe" }),
            )
            .await;
        assert!(bad_tag.status.is_client_error());
        assert!(
            bad_tag.body["error"].as_str().unwrap().contains("status"),
            "{:?}",
            bad_tag.body
        );
        assert_eq!(app.get("/api/v1/chargers").await.body, json!([]));
        assert_eq!(app.get("/api/v1/id-tags").await.body, json!([]));

        app.add_charger("CP1", None).await;
        let again = app.post("/api/v1/chargers", json!({ "id": "CP1" })).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_messages_and_connected_chargers() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        cp.call_ok("Heartbeat", json!({})).await;
        let text = app.request(Method::GET, "/metrics", None, None).await.body;
        let text = text.as_str().unwrap();
        assert!(text.contains("orderly_connected_chargers 1"), "{text}");
        assert!(
            text.contains("orderly_ocpp_messages_total{action=\"Heartbeat\",direction=\"in\"}"),
            "{text}"
        );
        assert!(
            text.contains("orderly_ocpp_handling_seconds_bucket"),
            "{text}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn pending_policy_lists_unknown_chargers_until_registered() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.unknown_chargers = UnknownChargers::Pending).await;
        let mut cp = app.charge_point("NEW1", None).await;
        assert_eq!(cp.boot().await["status"], "Pending");
        // Not registered yet: nothing but BootNotification is accepted.
        let early = cp.call("Heartbeat", json!({})).await;
        assert_eq!(early[0], 4);
        assert_eq!(early[2], "SecurityError");
        let listed = app.get("/api/v1/chargers/NEW1").await.body;
        assert_eq!(listed["status"], "pending");
        assert_eq!(listed["vendor"], "Acme");

        app.add_charger("NEW1", None).await;
        assert_eq!(cp.boot().await["status"], "Accepted");
        cp.call_ok("Heartbeat", json!({})).await;
        assert_eq!(
            app.get("/api/v1/chargers/NEW1").await.body["status"],
            "registered"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reject_policy_rejects_the_boot() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.unknown_chargers = UnknownChargers::Reject).await;
        let mut cp = app.charge_point("STRANGER", None).await;
        assert_eq!(cp.boot().await["status"], "Rejected");
        let listed = app.get("/api/v1/chargers/STRANGER").await;
        assert_eq!(listed.status, StatusCode::NOT_FOUND);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_newer_connection_replaces_the_older_and_removal_disconnects() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut old = app.charge_point("CP1", None).await;
        old.boot().await;
        let mut new = app.charge_point("CP1", None).await;
        old.expect_closed().await;
        new.call_ok("Heartbeat", json!({})).await;
        assert_eq!(
            app.get("/api/v1/chargers/CP1").await.body["connected"],
            true
        );

        let removed = app.api(Method::DELETE, "/api/v1/chargers/CP1", None).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT);
        new.expect_closed().await;
        assert_eq!(
            app.get("/api/v1/chargers/CP1").await.status,
            StatusCode::NOT_FOUND
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_charger_connections() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        tokio::join!(app.stop(), cp.expect_closed());
    })
    .await;
}

/// A charger that stops answering (here: never reads, so never pongs) is pinged after half a
/// heartbeat interval of silence and dropped after a whole one.
#[tokio::test]
async fn a_silent_connection_is_pinged_then_closed_within_the_heartbeat_interval() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.heartbeat_interval = 2).await;
        app.add_charger("CP1", None).await;
        // A raw socket: no WebSocket library, so nothing answers the server's ping.
        let mut tcp = helpers::raw_websocket(&app, "CP1").await;
        let frames = helpers::read_frames_until_closed(&mut tcp).await;
        let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
        assert_eq!(opcodes.first(), Some(&0x9), "a ping first: {opcodes:?}");
        assert_eq!(
            app.get("/api/v1/chargers/CP1").await.body["connected"],
            false
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_id_with_a_colon_authenticates_with_basic_auth() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("SITE:7", Some("pass:with:colons")).await;
        let status = app
            .handshake_status("SITE:7", Some("ocpp1.6"), Some(("SITE:7", "wrong")))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let mut cp = app.charge_point("SITE:7", Some("pass:with:colons")).await;
        assert_eq!(cp.boot().await["status"], "Accepted");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_long_session_stop_is_recorded_and_an_oversized_message_is_refused_with_1009() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        app.add_charger("CP1", None).await;
        let mut cp = app.charge_point("CP1", None).await;
        let start = json!({
            "connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": "2026-11-25T00:00:00Z",
        });
        let tx = cp.call_ok("StartTransaction", start).await["transactionId"].clone();
        // 10 h of per-minute samples, five measurands each: ~350 KiB of JSON.
        let data: Vec<_> = (0..600)
            .map(|m| {
                let time = jiff::Timestamp::from_second(1_764_028_800 + 60 * (m + 1)).unwrap();
                json!({ "timestamp": time.to_string(), "sampledValue": [
                    { "value": (120 * m).to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic" },
                    { "value": "7200", "measurand": "Power.Active.Import", "unit": "W", "context": "Sample.Periodic" },
                    { "value": "10.4", "measurand": "Current.Import", "phase": "L1", "unit": "A", "context": "Sample.Periodic" },
                    { "value": "10.4", "measurand": "Current.Import", "phase": "L2", "unit": "A", "context": "Sample.Periodic" },
                    { "value": "10.4", "measurand": "Current.Import", "phase": "L3", "unit": "A", "context": "Sample.Periodic" },
                ]})
            })
            .collect();
        let stop = json!({
            "transactionId": tx, "meterStop": 72_000, "timestamp": "2026-11-25T10:01:00Z",
            "transactionData": data,
        });
        assert!(stop.to_string().len() > 300 * 1024);
        cp.call_ok("StopTransaction", stop).await;
        let values = app.get(&format!("/api/v1/transactions/{tx}/meter-values")).await.body;
        assert_eq!(values.as_array().unwrap().len(), 3000);

        // Over the limit: closed with 1009 (message too big) rather than dropped silently. A
        // raw frame header announcing 5 MiB is enough: the server refuses it on the length.
        let mut tcp = helpers::raw_websocket(&app, "CP1").await;
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(5u64 << 20).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]); // masking key
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &header).await.unwrap();
        let frames = helpers::read_frames_until_closed(&mut tcp).await;
        let close = frames.iter().find(|(op, _)| *op == 0x8).expect("a close frame");
        assert_eq!(close.1[..2], 1009u16.to_be_bytes(), "{frames:?}");
        app.stop().await;
    })
    .await;
}
