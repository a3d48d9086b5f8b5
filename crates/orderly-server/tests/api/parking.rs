//! Parking and charging together (clause 十二) through the real server (SQLite, and PostgreSQL
//! when `ORDERLY_TEST_POSTGRES_URL` is set): occupancy reports by webhook (and over MQTT through
//! the real broker when `ORDERLY_TEST_MQTT_URL` is set), connector statuses from a real OCPP
//! charge point, idle episodes with notifications and fees, bad input, roles and scopes.
//!
//! Time: tests that wait for a threshold run the server's protocol clock accelerated and poll
//! with a deadline; tests that check exact fees give the reports explicit times instead.

use crate::helpers::{
    Backend, Reply, TestApp, backends, community, each_backend, spawn_app, until, user,
};
use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::time::Duration;

/// A server whose protocol clock runs `speed` times real time, checking thresholds every second.
async fn app_at(backend: Backend, speed: f64) -> TestApp {
    spawn_app(backend, |c| {
        c.clock_speed = speed;
        c.parking.tick_seconds = 1;
    })
    .await
}

async fn bay(app: &TestApp, community: &str, number: &str, holder: Option<&str>) -> i64 {
    let tenure = if holder.is_some() { "owned" } else { "public" };
    let body = json!({ "number": number, "tenure": tenure, "holder": holder, "ev_only": true,
                       "charger": "built" });
    let reply = app
        .post(
            &format!("/api/v1/registry/communities/{community}/bays"),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

/// `not_charging` and `grace` in minutes, fee per interval and cap in CNY.
async fn rule(
    app: &TestApp,
    community: &str,
    not_charging: i64,
    grace: i64,
    fee: f64,
    interval: i64,
    cap: f64,
) {
    let body = json!({ "not_charging_minutes": not_charging, "grace_minutes": grace,
                       "fee_per_interval_cny": fee, "interval_minutes": interval, "cap_cny": cap });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/registry/communities/{community}/parking-rule"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

/// Registers an OCPP charger built on `bay`.
async fn charger_on_bay(app: &TestApp, id: &str, community: &str, bay: i64) {
    app.add_charger(id, None).await;
    let facts = json!({ "community_id": community, "bay_id": bay, "kind": "public",
                        "operator": "GridCo", "model": "Wallbox 7", "rated_power_kw": 7.0,
                        "phases": 1,
                        "connectors": [{ "connector_id": 1, "standard": "GB/T", "max_power_kw": 7.0 }] });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/registry/chargers/{id}"),
            Some(facts),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

async fn report(app: &TestApp, bay: i64, body: Value) -> Reply {
    app.post(&format!("/api/v1/bays/{bay}/occupancy"), body)
        .await
}

async fn report_ok(app: &TestApp, bay: i64, body: Value) -> Value {
    let reply = report(app, bay, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn episodes(app: &TestApp, community: &str) -> Vec<Value> {
    let reply = app
        .get(&format!(
            "/api/v1/registry/communities/{community}/idle-episodes"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body.as_array().unwrap().clone()
}

/// Waits until a parking tick has run wholly after this call (every occupied bay checked since):
/// two successive advances of the server's `rules_checked_at`, so a later assertion that
/// nothing more happened has had a tick to happen in, without guessing at wall-clock time.
async fn a_full_tick(app: &TestApp, bay: i64) {
    let checked = || async move {
        app.get(&format!("/api/v1/bays/{bay}/occupancy")).await.body["rules_checked_at"]
            .as_str()
            .map(str::to_owned)
    };
    let mut seen = checked().await;
    for _ in 0..2 {
        let before = seen.clone();
        seen = Some(
            until("a parking tick", || async {
                checked().await.filter(|now| Some(now) != before.as_ref())
            })
            .await,
        );
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

#[tokio::test]
async fn a_fuel_car_in_an_ev_bay_is_notified_and_charged_after_the_wait() {
    each_backend(|backend| async move {
        // A protocol minute per real second.
        let app = app_at(backend, 60.0).await;
        community(&app, "A").await;
        let b = bay(&app, "A", "B-1", None).await;
        rule(&app, "A", 2, 1, 1.5, 1, 100.0).await;
        let now = report_ok(
            &app,
            b,
            json!({ "occupied": true, "vehicle": "fuel", "plate": "京A12345",
                                             "source": "camera" }),
        )
        .await;
        assert_eq!(now["occupied"], true);
        assert_eq!(now["vehicle"], "fuel");
        assert_eq!(now["plate"], "京A12345");
        assert_eq!(
            now["open_episode"],
            Value::Null,
            "not before the wait: {now}"
        );

        let open = until("a not-charging episode", || async {
            episodes(&app, "A")
                .await
                .into_iter()
                .find(|e| e["state"] == "open")
        })
        .await;
        assert_eq!(open["kind"], "not_charging");
        assert_eq!(open["vehicle"], "fuel");
        assert_eq!(open["plate"], "京A12345");
        assert_eq!(
            open["payer"],
            Value::Null,
            "nobody known: the staff are told"
        );
        assert!(open["notification_id"].is_i64(), "{open}");
        // The community's staff are told, once.
        let told = app.get("/api/v1/notifications?community=A").await;
        assert_eq!(told.status, StatusCode::OK, "{:?}", told.body);
        let told = told.body.as_array().unwrap().clone();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["id"], open["notification_id"]);
        assert_eq!(told[0]["kind"], "parking.not_charging");
        assert_eq!(told[0]["recipient"], Value::Null);
        assert_eq!(told[0]["bay_id"], b);
        assert_eq!(told[0]["data"]["episode_id"], open["id"]);
        assert!(
            told[0]["message"].as_str().unwrap().contains("京A12345"),
            "{:?}",
            told[0]
        );
        let since: Timestamp = open["since"].as_str().unwrap().parse().unwrap();
        let opened: Timestamp = open["opened_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(opened.duration_since(since), SignedDuration::from_mins(2));
        assert!(open["fee_cny"].as_f64().unwrap() >= 1.5);

        // The fee grows per started minute while it stays.
        until("the fee to grow", || async {
            let e = episodes(&app, "A").await;
            (e[0]["fee_cny"].as_f64().unwrap() >= 3.0).then_some(())
        })
        .await;
        let bay_now = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
        assert_eq!(bay_now["open_episode"]["id"], open["id"]);

        let left = report_ok(
            &app,
            b,
            json!({ "occupied": false, "vehicle": "unknown", "source": "sensor" }),
        )
        .await;
        assert_eq!(left["occupied"], false);
        assert_eq!(left["open_episode"], Value::Null);
        assert_eq!(left["recent"].as_array().unwrap().len(), 2);
        assert_eq!(left["recent"][0]["occupied"], false);
        let all = episodes(&app, "A").await;
        assert_eq!(all.len(), 1, "one episode, one notification: {all:?}");
        let settled = &all[0];
        assert_eq!(settled["state"], "settled");
        let fee = settled["fee_cny"].as_f64().unwrap();
        assert!((3.0..=100.0).contains(&fee), "{settled}");
        assert!(
            (fee / 1.5 - (fee / 1.5).round()).abs() < 1e-9,
            "whole intervals: {fee}"
        );
        let ended: Timestamp = settled["ended_at"].as_str().unwrap().parse().unwrap();
        let intervals = ended.duration_since(opened).as_secs() / 60 + 1;
        assert_eq!(fee, 1.5 * intervals as f64, "{settled}");

        // Nothing more accrues once the bay is free.
        a_full_tick(&app, b).await;
        assert_eq!(episodes(&app, "A").await[0]["fee_cny"].as_f64(), Some(fee));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_ev_left_after_charging_pays_an_overstay_fee_up_to_the_cap() {
    each_backend(|backend| async move {
        // Two protocol minutes per real second.
        let app = app_at(backend, 120.0).await;
        community(&app, "A").await;
        app.add_tag("TAGD", "Accepted", None).await;
        let driver = user(&app, "driver", "resident", json!([]), json!(["TAGD"])).await;
        let other = user(&app, "other", "resident", json!([]), json!(["TAGO"])).await;
        let b = bay(&app, "A", "C-7", None).await;
        charger_on_bay(&app, "CP1", "A", b).await;
        // 30 min to plug in, 2 min grace after charging, 5 CNY per 2 min, at most 15 CNY.
        rule(&app, "A", 30, 2, 5.0, 2, 15.0).await;
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        let status = |s: &str| json!({ "connectorId": 1, "errorCode": "NoError", "status": s });
        cp.call_ok("StatusNotification", status("Available")).await;

        report_ok(
            &app,
            b,
            json!({ "occupied": true, "vehicle": "ev", "plate": "京AD1234",
                                   "source": "ground_lock" }),
        )
        .await;
        cp.call_ok("StatusNotification", status("Preparing")).await;
        let protocol_now = |v: &Value| v["currentTime"].as_str().unwrap().to_owned();
        let t = protocol_now(&cp.call_ok("Heartbeat", json!({})).await);
        let started = cp
            .call_ok(
                "StartTransaction",
                json!({ "connectorId": 1, "idTag": "TAGD",
                                                 "meterStart": 0, "timestamp": t }),
            )
            .await;
        assert_eq!(started["idTagInfo"]["status"], "Accepted");
        cp.call_ok("StatusNotification", status("Charging")).await;
        until("the bay to see the charger charging", || async {
            let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
            (bay["connector_status"] == "Charging").then_some(())
        })
        .await;
        assert!(
            episodes(&app, "A").await.is_empty(),
            "a charging car is never counted"
        );

        let t = protocol_now(&cp.call_ok("Heartbeat", json!({})).await);
        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": started["transactionId"],
                                              "meterStop": 7000, "timestamp": t,
                                              "idTag": "TAGD" }),
        )
        .await;
        cp.call_ok("StatusNotification", status("Finishing")).await;

        let capped = until("the overstay fee at its cap", || async {
            episodes(&app, "A")
                .await
                .into_iter()
                .find(|e| e["fee_cny"].as_f64() == Some(15.0))
        })
        .await;
        assert_eq!(capped["kind"], "overstay");
        assert_eq!(capped["state"], "open");
        assert_eq!(
            capped["payer"], "driver",
            "the driver of the finished transaction pays"
        );
        assert_eq!(capped["charger_id"], "CP1");
        assert_eq!(capped["cap_cny"], 15.0);
        assert!(capped["notification_id"].is_i64());
        // The driver is told, once; another resident is not.
        let told = app
            .request(Method::GET, "/api/v1/notifications", None, Some(&driver))
            .await;
        assert_eq!(told.status, StatusCode::OK, "{:?}", told.body);
        let told = told.body.as_array().unwrap().clone();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["id"], capped["notification_id"]);
        assert_eq!(told[0]["kind"], "parking.overstay");
        assert_eq!(told[0]["recipient"], "driver");
        assert_eq!(told[0]["charger_id"], "CP1");
        let not_told = app
            .request(Method::GET, "/api/v1/notifications", None, Some(&other))
            .await;
        assert_eq!(not_told.body, json!([]));
        // The cable comes out; the car stays: nothing restarts, the cap holds.
        cp.call_ok("StatusNotification", status("Available")).await;
        a_full_tick(&app, b).await;
        let still = episodes(&app, "A").await;
        assert_eq!(still.len(), 1, "{still:?}");
        assert_eq!(still[0]["fee_cny"], 15.0);

        // The driver sees their fee; another resident does not.
        let mine = app
            .request(Method::GET, "/api/v1/me/idle-fees", None, Some(&driver))
            .await;
        assert_eq!(mine.status, StatusCode::OK, "{:?}", mine.body);
        assert_eq!(mine.body.as_array().unwrap().len(), 1);
        assert_eq!(mine.body[0]["id"], capped["id"]);
        let theirs = app
            .request(Method::GET, "/api/v1/me/idle-fees", None, Some(&other))
            .await;
        assert_eq!(theirs.body, json!([]));

        report_ok(
            &app,
            b,
            json!({ "occupied": false, "vehicle": "ev", "source": "ground_lock" }),
        )
        .await;
        let settled = &episodes(&app, "A").await[0];
        assert_eq!(settled["state"], "settled");
        assert_eq!(settled["fee_cny"], 15.0);
        assert!(settled["ended_at"].is_string());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn leaving_within_the_wait_costs_nothing_and_a_late_departure_settles_at_its_time() {
    each_backend(|backend| async move {
        // Real time: reports carry their own times, so the fees are exact.
        let app = spawn_app(backend, |c| c.parking.tick_seconds = 1).await;
        community(&app, "A").await;
        let quick = bay(&app, "A", "Q-1", None).await;
        let slow = bay(&app, "A", "S-1", None).await;
        // 30 min, 15 min grace, 2 CNY per 15 min, at most 10 CNY.
        rule(&app, "A", 30, 15, 2.0, 15, 10.0).await;
        let now = Timestamp::now();
        let ago = |m: i64| rfc3339(now - SignedDuration::from_mins(m));

        report_ok(
            &app,
            quick,
            json!({ "occupied": true, "vehicle": "fuel", "source": "sensor", "at": ago(20) }),
        )
        .await;
        report_ok(
            &app,
            quick,
            json!({ "occupied": false, "vehicle": "unknown", "source": "sensor", "at": ago(5) }),
        )
        .await;

        // Arrived an hour ago: the episode opened 30 min ago, at once on receipt.
        let arrived = report_ok(
            &app,
            slow,
            json!({ "occupied": true, "vehicle": "fuel", "source": "camera",
                                                   "at": ago(60) }),
        )
        .await;
        let open = &arrived["open_episode"];
        assert_eq!(open["kind"], "not_charging");
        assert_eq!(
            open["opened_at"]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap(),
            Timestamp::from_millisecond((now - SignedDuration::from_mins(30)).as_millisecond())
                .unwrap()
        );
        assert_eq!(open["fee_cny"], 6.0, "three started intervals: {open}");
        // It had left 10 min ago (reported late): it owes for the 20 min it overstayed.
        let left = report_ok(
            &app,
            slow,
            json!({ "occupied": false, "vehicle": "unknown", "source": "sensor",
                                                "at": ago(10) }),
        )
        .await;
        assert_eq!(left["open_episode"], Value::Null);

        a_full_tick(&app, quick).await;
        let all = episodes(&app, "A").await;
        assert_eq!(all.len(), 1, "no episode for the quick one: {all:?}");
        assert_eq!(all[0]["bay_id"], slow);
        assert_eq!(all[0]["state"], "settled");
        assert_eq!(all[0]["fee_cny"], 4.0);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_occupancy_reports_and_rules_are_refused_and_change_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.parking.tick_seconds = 1).await;
        community(&app, "A").await;
        let b = bay(&app, "A", "X-1", None).await;
        rule(&app, "A", 30, 15, 2.0, 15, 10.0).await;
        let first = report_ok(&app, b, json!({ "occupied": true, "vehicle": "ev", "source": "sensor" })).await;
        let at = first["recent"][0]["at"].as_str().unwrap().to_owned();
        let earlier = rfc3339(at.parse::<Timestamp>().unwrap() - SignedDuration::from_secs(1));
        let future = rfc3339(Timestamp::now() + SignedDuration::from_hours(1));

        let cases = [
            (json!({ "occupied": true, "vehicle": "truck", "source": "sensor" }), "vehicle"),
            (json!({ "occupied": true, "vehicle": "ev", "source": "radar" }), "source"),
            (json!({ "occupied": "yes", "vehicle": "ev", "source": "sensor" }), "occupied"),
            (json!({ "vehicle": "ev", "source": "sensor" }), "occupied"),
            (json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "colour": "red" }), "colour"),
            (json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "plate": "X".repeat(17) }), "plate"),
            (json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "plate": " " }), "plate"),
            (json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "at": "yesterday" }), "at"),
            (json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "at": future }), "at"),
        ];
        for (body, field) in cases {
            let reply = report(&app, b, body.clone()).await;
            assert!(reply.status.is_client_error(), "{body}: {:?}", reply.body);
            let message = reply.body["error"].as_str().unwrap_or_default();
            assert!(message.contains(field), "{body}: {message:?} should name {field}");
        }
        let late = report(&app, b, json!({ "occupied": false, "vehicle": "ev", "source": "sensor", "at": earlier })).await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{:?}", late.body);
        assert!(late.body["error"].as_str().unwrap().starts_with("at:"), "{:?}", late.body);
        let unknown = report(&app, 999_999, json!({ "occupied": true, "vehicle": "ev", "source": "sensor" })).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);
        let malformed = app
            .request_raw(Method::POST, &format!("/api/v1/bays/{b}/occupancy"), b"{\"occupied\": ".to_vec())
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{:?}", malformed.body);
        let huge = format!(
            "{{\"occupied\": false, \"vehicle\": \"ev\", \"source\": \"sensor\", \"plate\": \"{}\"}}",
            "9".repeat(3 << 20)
        );
        let oversized = app
            .request_raw(Method::POST, &format!("/api/v1/bays/{b}/occupancy"), huge.into_bytes())
            .await;
        assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", oversized.body);
        let not_a_bay = app.get("/api/v1/bays/abc/occupancy").await;
        assert_eq!(not_a_bay.status, StatusCode::BAD_REQUEST);

        let now = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
        assert_eq!(now["occupied"], true, "every refusal left the bay as it was: {now}");
        assert_eq!(now["recent"].as_array().unwrap().len(), 1, "{now}");

        // Rules.
        let path = "/api/v1/registry/communities/A/parking-rule";
        let good = json!({ "not_charging_minutes": 30, "grace_minutes": 15, "fee_per_interval_cny": 2.0,
                           "interval_minutes": 15, "cap_cny": 10.0 });
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            b
        };
        let rule_cases = [
            (with("interval_minutes", json!(0)), "interval_minutes"),
            (with("not_charging_minutes", json!(-1)), "not_charging_minutes"),
            (with("grace_minutes", json!(20_000)), "grace_minutes"),
            (with("fee_per_interval_cny", json!(0.001)), "fee_per_interval_cny"),
            (with("cap_cny", json!(-5)), "cap_cny"),
            (with("cap", json!(5)), "cap"),
        ];
        for (body, field) in rule_cases {
            let reply = app.api(Method::PUT, path, Some(body.clone())).await;
            assert!(reply.status.is_client_error(), "{body}: {:?}", reply.body);
            let message = reply.body["error"].as_str().unwrap_or_default();
            assert!(message.contains(field), "{body}: {message:?} should name {field}");
        }
        let nowhere = app
            .api(Method::PUT, "/api/v1/registry/communities/ZZ/parking-rule", Some(good.clone()))
            .await;
        assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{:?}", nowhere.body);
        let stored = app.get(path).await.body;
        assert_eq!(stored["cap_cny"], 10.0);
        assert_eq!(stored["fee_per_interval_cny"], 2.0);
        assert_eq!(app.get("/api/v1/registry/communities/ZZ/parking-rule").await.status, StatusCode::NOT_FOUND);
        let limit = app.get("/api/v1/registry/communities/A/idle-episodes?limit=0").await;
        assert_eq!(limit.status, StatusCode::BAD_REQUEST);
        assert!(limit.body["error"].as_str().unwrap().contains("limit"));
        let admin_fees = app.get("/api/v1/me/idle-fees").await;
        assert_eq!(admin_fees.status, StatusCode::BAD_REQUEST);

        // Every endpoint is in the OpenAPI document.
        let doc = app.request(Method::GET, "/api/v1/openapi.json", None, None).await.body;
        for p in ["/api/v1/bays/{id}/occupancy", "/api/v1/registry/communities/{id}/parking-rule",
                  "/api/v1/registry/communities/{id}/idle-episodes", "/api/v1/me/idle-fees"] {
            assert!(doc["paths"][p].is_object(), "{p} missing from the OpenAPI document");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn parking_endpoints_check_role_and_scope() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.parking.tick_seconds = 1).await;
        community(&app, "A").await;
        community(&app, "B").await;
        let scope = |c: &str| json!([{ "kind": "community", "id": c }]);
        let pm_a = user(&app, "pm_a", "property_manager", scope("A"), json!([])).await;
        let pm_b = user(&app, "pm_b", "property_manager", scope("B"), json!([])).await;
        let op_a = user(&app, "op_a", "operator", scope("A"), json!([])).await;
        let regulator = user(&app, "reg", "regulator", json!([]), json!([])).await;
        let holder = user(&app, "holder", "resident", json!([]), json!(["TAGH"])).await;
        let stranger = user(&app, "stranger", "resident", json!([]), json!(["TAGS"])).await;
        let b = bay(&app, "A", "H-1", Some("holder")).await;
        let report_path = format!("/api/v1/bays/{b}/occupancy");
        let rule_path = "/api/v1/registry/communities/A/parking-rule";
        let episodes_path = "/api/v1/registry/communities/A/idle-episodes";
        let rule_body = json!({ "not_charging_minutes": 30, "grace_minutes": 15, "fee_per_interval_cny": 2.0,
                                "interval_minutes": 15, "cap_cny": 10.0 });
        let status = |token: &str, method: Method, path: &str, body: Option<Value>| {
            let token = token.to_owned();
            let path = path.to_owned();
            let app = &app;
            async move { app.request(method, &path, body, Some(&token)).await.status }
        };

        // Writing a rule: the property manager in scope (and admins) only.
        for (token, expected) in [(&op_a, StatusCode::FORBIDDEN), (&pm_b, StatusCode::FORBIDDEN),
                                  (&regulator, StatusCode::FORBIDDEN), (&holder, StatusCode::FORBIDDEN),
                                  (&pm_a, StatusCode::OK)] {
            assert_eq!(status(token, Method::PUT, rule_path, Some(rule_body.clone())).await, expected);
        }
        assert_eq!(app.get(rule_path).await.body["updated_by"], "user:pm_a");
        for (token, expected) in [(&pm_b, StatusCode::FORBIDDEN), (&stranger, StatusCode::FORBIDDEN),
                                  (&regulator, StatusCode::OK), (&op_a, StatusCode::OK)] {
            assert_eq!(status(token, Method::GET, rule_path, None).await, expected);
        }

        // Reports: staff of the bay's community (devices use their token), admins.
        let arrive = json!({ "occupied": true, "vehicle": "ev", "source": "sensor" });
        for (token, expected) in [(&pm_b, StatusCode::FORBIDDEN), (&regulator, StatusCode::FORBIDDEN),
                                  (&holder, StatusCode::FORBIDDEN), (&op_a, StatusCode::OK),
                                  (&pm_a, StatusCode::OK)] {
            assert_eq!(status(token, Method::POST, &report_path, Some(arrive.clone())).await, expected);
        }
        let seen = app.get(&report_path).await.body;
        assert_eq!(seen["recent"].as_array().unwrap().len(), 2, "only the two allowed reports: {seen}");

        // Reading a bay's occupancy: its holder, staff in scope, regulators.
        for (token, expected) in [(&stranger, StatusCode::FORBIDDEN), (&pm_b, StatusCode::FORBIDDEN),
                                  (&holder, StatusCode::OK), (&pm_a, StatusCode::OK),
                                  (&regulator, StatusCode::OK)] {
            assert_eq!(status(token, Method::GET, &report_path, None).await, expected);
        }
        // A community's episodes: staff in scope, regulators; not residents.
        for (token, expected) in [(&pm_b, StatusCode::FORBIDDEN), (&holder, StatusCode::FORBIDDEN),
                                  (&pm_a, StatusCode::OK), (&op_a, StatusCode::OK),
                                  (&regulator, StatusCode::OK)] {
            assert_eq!(status(token, Method::GET, episodes_path, None).await, expected);
        }
        // Own fees: any user, their own only.
        for token in [&holder, &stranger, &pm_a] {
            let reply = app.request(Method::GET, "/api/v1/me/idle-fees", None, Some(token)).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.body, json!([]));
        }
        app.stop().await;
    })
    .await;
}

/// The MQTT broker to test against, or None (then the MQTT tests are skipped, and say so).
fn mqtt_url() -> Option<String> {
    let url = std::env::var("ORDERLY_TEST_MQTT_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("ORDERLY_TEST_MQTT_URL is not set: MQTT tests SKIPPED");
    }
    url
}

#[tokio::test]
async fn occupancy_reports_over_mqtt_reach_the_rules_and_malformed_ones_are_counted() {
    let Some(url) = mqtt_url() else { return };
    for backend in backends() {
        let prefix = format!("orderly-test/{:016x}", rand::random::<u64>());
        let app = spawn_app(backend, |c| {
            c.clock_speed = 60.0;
            c.parking.tick_seconds = 1;
            c.parking.mqtt_url = Some(url.clone());
            c.parking.mqtt_topic_prefix = prefix.clone();
        })
        .await;
        community(&app, "A").await;
        let b = bay(&app, "A", "M-1", None).await;
        rule(&app, "A", 2, 1, 1.0, 1, 50.0).await;

        let (host, port) = orderly_server::parking::mqtt::parse_url(&url).unwrap();
        let mut options = rumqttc::MqttOptions::new(
            format!("orderly-test-pub-{:x}", rand::random::<u64>()),
            host,
            port,
        );
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
        let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
        let topic = format!("{prefix}/A/M-1");
        let publish = |topic: String, payload: Vec<u8>| {
            let client = client.clone();
            async move {
                client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
        };

        // The server subscribes once connected: publish until the report arrives.
        let arrive =
            json!({ "occupied": true, "vehicle": "fuel", "plate": "京M0001", "source": "camera" });
        until("the first MQTT report", || async {
            publish(topic.clone(), arrive.to_string().into_bytes()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
            (bay["occupied"] == true).then_some(())
        })
        .await;

        // Malformed messages: logged and counted, never applied, and the subscriber lives on.
        publish(topic.clone(), b"{not json".to_vec()).await;
        publish(
            topic.clone(),
            json!({ "occupied": false, "vehicle": "bus", "source": "camera" })
                .to_string()
                .into_bytes(),
        )
        .await;
        publish(
            format!("{prefix}/A/NO-SUCH-BAY"),
            json!({ "occupied": false, "vehicle": "ev", "source": "camera" })
                .to_string()
                .into_bytes(),
        )
        .await;
        publish(format!("{prefix}/A"), b"{}".to_vec()).await;
        publish(topic.clone(), vec![b' '; 5000]).await;

        // The rules run on MQTT reports as on webhook ones.
        let open = until("an episode from an MQTT report", || async {
            episodes(&app, "A")
                .await
                .into_iter()
                .find(|e| e["state"] == "open")
        })
        .await;
        assert_eq!(open["vehicle"], "fuel");
        assert_eq!(open["plate"], "京M0001");

        publish(
            topic.clone(),
            json!({ "occupied": false, "vehicle": "unknown", "source": "sensor" })
                .to_string()
                .into_bytes(),
        )
        .await;
        until("the departure over MQTT", || async {
            let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
            (bay["occupied"] == false).then_some(bay)
        })
        .await;
        let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
        for event in bay["recent"].as_array().unwrap() {
            assert!(
                ["camera", "sensor"].contains(&event["source"].as_str().unwrap()),
                "{event}"
            );
            assert!(
                event["vehicle"] == "fuel" || event["occupied"] == false,
                "only valid reports: {event}"
            );
        }
        assert_eq!(episodes(&app, "A").await[0]["state"], "settled");
        let metrics = app.request(Method::GET, "/metrics", None, None).await.body;
        let metrics = metrics.as_str().unwrap();
        for outcome in ["malformed", "unknown_bay", "ok"] {
            let needle =
                format!("orderly_parking_reports_total{{via=\"mqtt\",outcome=\"{outcome}\"}}");
            let alt =
                format!("orderly_parking_reports_total{{outcome=\"{outcome}\",via=\"mqtt\"}}");
            assert!(
                metrics.contains(&needle) || metrics.contains(&alt),
                "{outcome} not counted:\n{metrics}"
            );
        }
        driver.abort();
        app.stop().await;
    }
}

/// A Mosquitto of this test's own on a free loopback port (the shared broker must stay up for
/// other tests), stopped when dropped.
struct OwnBroker {
    child: std::process::Child,
}

impl OwnBroker {
    /// A broker listening on a free loopback port: it, the port and its `mqtt://` URL.
    async fn on_a_free_port() -> (Self, u16, String) {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let broker = Self::start(port);
        Self::wait_listening(port).await;
        (broker, port, format!("mqtt://127.0.0.1:{port}"))
    }

    fn start(port: u16) -> Self {
        let child = std::process::Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        Self { child }
    }

    async fn wait_listening(port: u16) {
        until("the broker to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The subscriber survives the broker going away: it reconnects, subscribes again, and the
/// reports published after the restart are applied.
#[tokio::test]
async fn the_mqtt_subscriber_reconnects_after_the_broker_restarts() {
    // Needs the MQTT test setup (CI has Mosquitto installed and running).
    if mqtt_url().is_none() {
        return;
    }
    let (mut broker, port, url) = OwnBroker::on_a_free_port().await;
    let app = spawn_app(Backend::Sqlite, |c| {
        c.parking.tick_seconds = 1;
        c.parking.mqtt_url = Some(url.clone());
        c.parking.mqtt_topic_prefix = "orderly-test/restart".to_owned();
    })
    .await;
    community(&app, "A").await;
    let b = bay(&app, "A", "R-1", None).await;
    let topic = "orderly-test/restart/A/R-1".to_owned();
    let occupancy = |occupied: bool| {
        json!({ "occupied": occupied, "vehicle": "ev", "source": "sensor" })
            .to_string()
            .into_bytes()
    };
    // Publish (each acknowledged by the broker) until the server shows the report.
    let publish_until = |occupied: bool| {
        let (app, topic) = (&app, topic.clone());
        async move {
            until("the report over MQTT", || async {
                publish_acknowledged(port, &topic, occupancy(occupied)).await;
                let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
                (bay["occupied"] == occupied).then_some(())
            })
            .await;
        }
    };
    publish_until(true).await;
    drop(broker);
    // Down for a while: the subscriber's reconnection attempts fail meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker = OwnBroker::start(port);
    OwnBroker::wait_listening(port).await;
    publish_until(false).await;
    let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
    assert_eq!(bay["recent"][0]["occupied"], false, "{bay}");
    drop(broker);
    app.stop().await;
}

/// Publishes one QoS 1 message to the broker on `port` and returns once the broker has
/// acknowledged it (so it is the broker's to deliver).
async fn publish_acknowledged(port: u16, topic: &str, payload: Vec<u8>) {
    let mut options = rumqttc::MqttOptions::new(
        format!("orderly-test-pub-{:x}", rand::random::<u64>()),
        "127.0.0.1",
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 64);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    loop {
        match events.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(error) => panic!("publishing to the test broker: {error}"),
        }
    }
    let _ = client.disconnect().await;
}

/// No report is lost to a restart of the server: the subscriber's session is persistent, so a
/// report published while the server is down is delivered when it comes back (published once,
/// never again).
#[tokio::test]
async fn a_report_published_while_the_server_is_down_is_applied_when_it_is_back() {
    if mqtt_url().is_none() {
        return;
    }
    // The test's own broker: the session it keeps dies with it.
    let (broker, port, url) = OwnBroker::on_a_free_port().await;
    for backend in backends() {
        let prefix = format!("orderly-test/{:016x}", rand::random::<u64>());
        let mut app = spawn_app(backend, |c| {
            c.parking.tick_seconds = 1;
            c.parking.mqtt_url = Some(url.clone());
            c.parking.mqtt_topic_prefix = prefix.clone();
        })
        .await;
        community(&app, "A").await;
        let b = bay(&app, "A", "D-1", None).await;
        let topic = format!("{prefix}/A/D-1");
        let occupancy = |occupied: bool| {
            json!({ "occupied": occupied, "vehicle": "ev", "source": "sensor" })
                .to_string()
                .into_bytes()
        };
        // Subscribed: a report gets through.
        until("the first report over MQTT", || async {
            publish_acknowledged(port, &topic, occupancy(true)).await;
            let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
            (bay["occupied"] == true).then_some(())
        })
        .await;
        // The car leaves while the server is down.
        app.restart(publish_acknowledged(port, &topic, occupancy(false)))
            .await;
        let bay = until("the report published while the server was down", || async {
            let bay = app.get(&format!("/api/v1/bays/{b}/occupancy")).await.body;
            (bay["occupied"] == false).then_some(bay)
        })
        .await;
        assert_eq!(bay["recent"][0]["occupied"], false, "{bay}");
        app.stop().await;
    }
    drop(broker);
}
