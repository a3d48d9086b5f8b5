//! Sharing private chargers with neighbours (policy clause 七), through the real server (SQLite,
//! and PostgreSQL when `ORDERLY_TEST_POSTGRES_URL` is set) and a real OCPP charge point: the
//! booking authorizes the neighbour's tag on that charger during the booking only (Authorize and
//! StartTransaction), the owner's priority both ways, settlement figures against values worked
//! out by hand, no-shows found by the sweep in accelerated protocol time, late cancellations,
//! the monthly CSV statement parsed, role and scope per endpoint, and bad input refused with
//! nothing changed.
//!
//! The server's protocol clock runs 60× (a minute per second), starting at a fixed instant so
//! the statement month is known. Waits poll the charger's Heartbeat (protocol time) or the API
//! with a deadline; nothing asserts on wall-clock timing.

use crate::helpers::{
    ChargePoint, Reply, TestApp, WAIT, call, each_backend, spawn_app, until, user,
};
use axum::http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const SPEED: f64 = 60.0;
const CLOCK_START: &str = "2026-11-26T08:00:00Z";

async fn app(backend: crate::helpers::Backend) -> TestApp {
    spawn_app(backend, |c| {
        c.clock_speed = SPEED;
        c.clock_start = Some(CLOCK_START.parse().unwrap());
        // Every 30 protocol seconds (half a real second at 60×).
        c.sharing.sweep_interval_secs = 30;
    })
    .await
}

async fn community(app: &TestApp, id: &str) {
    let body = json!({ "name": format!("Community {id}"), "rating_kva": 400.0,
                       "power_factor": 0.9, "base_load_kw": 50.0 });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/communities/{id}"),
            Some(body),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
    let facts = json!({ "address": format!("{id} Garden Road"), "district_id": "D1",
                        "property_manager": "Acme Property" });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/registry/communities/{id}"),
            Some(facts),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

async fn charger(app: &TestApp, id: &str, community: &str, kind: &str, owner: Option<&str>) {
    app.add_charger(id, None).await;
    let facts = json!({ "community_id": community, "kind": kind, "owner": owner,
                        "operator": "GridCo", "model": "Wallbox 7", "rated_power_kw": 7.0,
                        "phases": 1,
                        "connectors": [{ "connector_id": 1, "standard": "GB/T", "max_power_kw": 7.0 },
                                       { "connector_id": 2, "standard": "GB/T", "max_power_kw": 7.0 }] });
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/registry/chargers/{id}"),
            Some(facts),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    for to in ["installed", "active"] {
        let reply = app
            .post(
                &format!("/api/v1/registry/chargers/{id}/lifecycle"),
                json!({ "to": to }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
}

/// Everyone in the scenarios, logged in.
struct People {
    olga: String,
    nina: String,
    sam: String,
    op_a: String,
    op_b: String,
    pm_a: String,
    reg: String,
}

/// District D1 with communities A and B; olga owns CPS (self_use, A); nina and sam are
/// residents; operators of A and B, a property manager of A, a regulator. Tags are known.
async fn world(app: &TestApp) -> People {
    let reply = app
        .api(
            Method::PUT,
            "/api/v1/districts/D1",
            Some(json!({ "name": "District D1", "city": "Beijing" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    community(app, "A").await;
    community(app, "B").await;
    let scope = |c: &str| json!([{ "kind": "community", "id": c }]);
    let people = People {
        olga: user(app, "olga", "charger_owner", json!([]), json!(["OLGA"])).await,
        nina: user(app, "nina", "resident", json!([]), json!(["NINA", "NINA2"])).await,
        sam: user(app, "sam", "resident", json!([]), json!(["SAM"])).await,
        op_a: user(app, "op_a", "operator", scope("A"), json!([])).await,
        op_b: user(app, "op_b", "operator", scope("B"), json!([])).await,
        pm_a: user(app, "pm_a", "property_manager", scope("A"), json!([])).await,
        reg: user(app, "reg", "regulator", json!([]), json!([])).await,
    };
    for tag in ["OLGA", "NINA", "NINA2", "SAM"] {
        app.add_tag(tag, "Accepted", None).await;
    }
    charger(app, "CPS", "A", "self_use", Some("olga")).await;
    people
}

fn terms(owner_priority: bool) -> Value {
    json!({
        "price_per_kwh_cny": 1.2, "price_per_hour_cny": 0.5, "owner_share_percent": 70.0,
        "operator": "GridCo", "owner_priority": owner_priority, "no_show_grace_min": 3,
        "no_show_fee_cny": 5.0, "cancel_notice_min": 60, "late_cancel_fee_cny": 3.0,
    })
}

#[track_caller]
fn ok(reply: &Reply, status: StatusCode) -> &Value {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    &reply.body
}

#[track_caller]
fn refused(reply: &Reply, status: StatusCode, needle: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    let message = reply.body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "{message:?} should name {needle:?}"
    );
}

/// Protocol time as the charger sees it.
async fn now(cp: &mut ChargePoint) -> Timestamp {
    let hb = cp.call_ok("Heartbeat", json!({})).await;
    let t: Timestamp = hb["currentTime"].as_str().unwrap().parse().unwrap();
    // The store keeps milliseconds.
    Timestamp::from_millisecond(t.as_millisecond()).unwrap()
}

/// Polls protocol time until it reaches `at` (at most WAIT of real time).
async fn wait_until(cp: &mut ChargePoint, at: Timestamp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while now(cp).await < at {
        assert!(
            tokio::time::Instant::now() < deadline,
            "protocol time did not reach {at}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

async fn authorize(cp: &mut ChargePoint, tag: &str) -> String {
    let r = cp.call_ok("Authorize", json!({ "idTag": tag })).await;
    r["idTagInfo"]["status"].as_str().unwrap().to_owned()
}

/// StartTransaction; returns (status, transaction id).
async fn start(
    cp: &mut ChargePoint,
    connector: i64,
    tag: &str,
    meter: i64,
    at: Timestamp,
) -> (String, i64) {
    let r = cp
        .call_ok(
            "StartTransaction",
            json!({ "connectorId": connector, "idTag": tag, "meterStart": meter,
                    "timestamp": at.to_string() }),
        )
        .await;
    (
        r["idTagInfo"]["status"].as_str().unwrap().to_owned(),
        r["transactionId"].as_i64().unwrap(),
    )
}

async fn book(app: &TestApp, token: &str, tag: &str, from: Timestamp, to: Timestamp) -> Reply {
    call(
        app,
        token,
        Method::POST,
        "/api/v1/sharing/bookings",
        Some(
            json!({ "charger_id": "CPS", "start": from.to_string(), "end": to.to_string(),
                     "id_tag": tag }),
        ),
    )
    .await
}

async fn booking(app: &TestApp, id: i64) -> Value {
    let reply = app.get(&format!("/api/v1/sharing/bookings/{id}")).await;
    ok(&reply, StatusCode::OK).clone()
}

async fn event_count(app: &TestApp) -> usize {
    let reply = app.get("/api/v1/registry-events?limit=1000").await;
    ok(&reply, StatusCode::OK).as_array().unwrap().len()
}

fn booking_ids(reply: &Reply) -> Vec<i64> {
    let mut ids: Vec<i64> = ok(reply, StatusCode::OK)
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

async fn notifications(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = call(app, token, Method::GET, "/api/v1/notifications", None).await;
    ok(&reply, StatusCode::OK).as_array().unwrap().clone()
}

#[tokio::test]
async fn a_booking_authorizes_its_tag_on_that_charger_during_the_booking_only() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;

        // Before any agreement: a private charger takes its owner's tags only.
        assert_eq!(authorize(&mut cp, "OLGA").await, "Accepted");
        assert_eq!(authorize(&mut cp, "NINA").await, "Invalid");

        let reply = call(
            &app,
            &p.olga,
            Method::PUT,
            "/api/v1/registry/chargers/CPS/sharing",
            Some(terms(false)),
        )
        .await;
        let agreement = ok(&reply, StatusCode::OK);
        assert_eq!(agreement["no_show_fee_cny"], 5.0);
        let t0 = now(&mut cp).await;
        let reply = call(
            &app,
            &p.olga,
            Method::POST,
            "/api/v1/registry/chargers/CPS/sharing/windows",
            Some(json!({ "start": (t0 + mins(2)).to_string(),
                                      "end": (t0 + mins(600)).to_string() })),
        )
        .await;
        let window = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        let (b_start, b_end) = (t0 + mins(2), t0 + mins(60));
        let reply = book(&app, &p.nina, "NINA", b_start, b_end).await;
        let b1 = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        assert_eq!(reply.body["state"], "pending");
        assert_eq!(reply.body["window_id"], window);

        // Offers show the window with the booked part taken out.
        let reply = call(
            &app,
            &p.sam,
            Method::GET,
            "/api/v1/sharing/offers?community=A",
            None,
        )
        .await;
        let offers = ok(&reply, StatusCode::OK).as_array().unwrap().clone();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0]["charger_id"], "CPS");
        assert_eq!(offers[0]["terms"]["price_per_kwh_cny"], 1.2);
        // The booking takes the window's first hour: the rest is free.
        let free = offers[0]["free"].as_array().unwrap();
        assert_eq!(free.len(), 1, "{free:?}");
        assert_eq!(
            free[0]["start"]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap(),
            b_end
        );
        assert_eq!(
            free[0]["end"]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap(),
            t0 + mins(600)
        );

        // Before the booking starts: the neighbour is refused, the owner is not.
        assert!(now(&mut cp).await < b_start);
        assert_eq!(authorize(&mut cp, "NINA").await, "Invalid");
        assert_eq!(authorize(&mut cp, "OLGA").await, "Accepted");
        assert_eq!(authorize(&mut cp, "SAM").await, "Invalid");

        wait_until(&mut cp, b_start).await;
        // During it: the booking's tag only; another tag of the same neighbour is not booked;
        // a stranger is refused; without priority the owner waits.
        assert_eq!(authorize(&mut cp, "NINA").await, "Accepted");
        assert_eq!(authorize(&mut cp, "NINA2").await, "Invalid");
        assert_eq!(authorize(&mut cp, "SAM").await, "Invalid");
        assert_eq!(authorize(&mut cp, "OLGA").await, "Invalid");
        let (status, _) = start(&mut cp, 2, "OLGA", 0, b_start).await;
        assert_eq!(
            status, "Invalid",
            "the owner without priority waits for the booking"
        );
        assert_eq!(booking(&app, b1).await["state"], "pending");

        // The neighbour starts: accepted, the booking is active and linked to the transaction.
        let started_at: Timestamp = "2026-11-26T08:05:00Z".parse().unwrap();
        let (status, tx) = start(&mut cp, 1, "NINA", 1_000, started_at).await;
        assert_eq!(status, "Accepted");
        let b = booking(&app, b1).await;
        assert_eq!(b["state"], "active");
        assert_eq!(b["transaction_id"], tx);
        // A replay of the same StartTransaction gets the same answer and id.
        assert_eq!(
            start(&mut cp, 1, "NINA", 1_000, started_at).await,
            ("Accepted".into(), tx)
        );
        // The booking is used: a second transaction on it is refused; Authorize still holds.
        let (status, _) = start(&mut cp, 2, "NINA", 5_000, started_at + mins(1)).await;
        assert_eq!(status, "Invalid", "a booking starts one transaction");
        assert_eq!(authorize(&mut cp, "NINA").await, "Accepted");

        // A window holding an active booking is not withdrawn.
        let events = event_count(&app).await;
        let reply = call(
            &app,
            &p.olga,
            Method::DELETE,
            &format!("/api/v1/sharing/windows/{window}"),
            None,
        )
        .await;
        refused(
            &reply,
            StatusCode::CONFLICT,
            &format!("active booking ({b1})"),
        );
        assert_eq!(event_count(&app).await, events, "nothing emitted");

        // Stop after 7.25 kWh and 1 h 30 min (the charger's timestamps):
        // energy 7.25 × 1.20 = 8.70; time 1.5 h × 0.50 = 0.75; total 9.45 CNY;
        // owner 70 % = 6.615 → 6.62 (half up); operator 9.45 − 6.62 = 2.83.
        let stopped = cp
            .call_ok(
                "StopTransaction",
                json!({ "transactionId": tx, "idTag": "NINA", "meterStop": 8_250,
                        "timestamp": (started_at + mins(90)).to_string() }),
            )
            .await;
        assert_eq!(stopped["idTagInfo"]["status"], "Accepted");
        let b = booking(&app, b1).await;
        assert_eq!(b["state"], "completed");
        let s = &b["settlement"];
        assert_eq!(s["kind"], "session");
        assert_eq!(s["transaction_id"], tx);
        assert_eq!(s["energy_wh"], 7_250);
        assert_eq!(s["duration_ms"], 90 * 60_000);
        assert_eq!(s["energy_fee_fen"], 870);
        assert_eq!(s["time_fee_fen"], 75);
        assert_eq!(s["total_fen"], 945);
        assert_eq!(s["owner_share_fen"], 662);
        assert_eq!(s["operator_share_fen"], 283);
        // A repeated stop settles nothing twice.
        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": tx, "idTag": "NINA", "meterStop": 8_250,
                    "timestamp": (started_at + mins(90)).to_string() }),
        )
        .await;
        assert_eq!(booking(&app, b1).await["settlement"]["id"], s["id"]);
        // The booking is spent: still inside its time, the tag is refused again.
        assert!(now(&mut cp).await < b_end);
        assert_eq!(authorize(&mut cp, "NINA").await, "Invalid");
        assert_eq!(authorize(&mut cp, "OLGA").await, "Accepted");

        // Public chargers and chargers outside the registry are unchanged: any known tag.
        charger(&app, "PUB", "A", "public", None).await;
        app.add_charger("LOOSE", None).await;
        for id in ["PUB", "LOOSE"] {
            let mut other = app.charge_point(id, None).await;
            other.boot().await;
            assert_eq!(authorize(&mut other, "SAM").await, "Accepted");
            let (status, _) = start(&mut other, 1, "SAM", 0, started_at).await;
            assert_eq!(status, "Accepted");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn owner_priority_bumps_a_booking_not_started_and_never_a_charging_neighbour() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;
        let reply = call(
            &app,
            &p.olga,
            Method::PUT,
            "/api/v1/registry/chargers/CPS/sharing",
            Some(terms(true)),
        )
        .await;
        assert_eq!(ok(&reply, StatusCode::OK)["owner_priority"], true);
        let t0 = now(&mut cp).await;
        let reply = call(
            &app,
            &p.olga,
            Method::POST,
            "/api/v1/registry/chargers/CPS/sharing/windows",
            Some(json!({ "start": (t0 + mins(1)).to_string(),
                                      "end": (t0 + mins(300)).to_string() })),
        )
        .await;
        ok(&reply, StatusCode::CREATED);
        let reply = book(&app, &p.nina, "NINA", t0 + mins(1), t0 + mins(30)).await;
        let b1 = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        wait_until(&mut cp, t0 + mins(1)).await;

        // The owner keeps priority over a booking that has not started.
        assert_eq!(authorize(&mut cp, "OLGA").await, "Accepted");
        assert_eq!(authorize(&mut cp, "NINA").await, "Accepted");
        let (status, owner_tx) = start(&mut cp, 1, "OLGA", 0, t0 + mins(1)).await;
        assert_eq!(status, "Accepted");
        let b = booking(&app, b1).await;
        assert_eq!(b["state"], "bumped");
        assert!(b["settlement"].is_null(), "a bumped booking owes nothing");
        assert_eq!(authorize(&mut cp, "NINA").await, "Invalid");
        let told = notifications(&app, &p.nina).await;
        assert!(
            told.iter()
                .any(|n| n["kind"] == "sharing.booking_bumped" && n["data"]["booking_id"] == b1),
            "{told:?}"
        );
        // The owner's own session is not settled.
        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": owner_tx, "meterStop": 3_000,
                                               "timestamp": (t0 + mins(2)).to_string() }),
        )
        .await;

        // A neighbour who is charging keeps the charger, priority or not.
        let now_p = now(&mut cp).await;
        let reply = book(&app, &p.sam, "SAM", now_p + mins(1), now_p + mins(60)).await;
        let b2 = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        wait_until(&mut cp, now_p + mins(1)).await;
        let (status, _) = start(&mut cp, 1, "SAM", 0, now_p + mins(1)).await;
        assert_eq!(status, "Accepted");
        assert_eq!(booking(&app, b2).await["state"], "active");
        assert_eq!(authorize(&mut cp, "OLGA").await, "Invalid");
        let (status, _) = start(&mut cp, 2, "OLGA", 0, now_p + mins(2)).await;
        assert_eq!(status, "Invalid");
        assert_eq!(booking(&app, b2).await["state"], "active");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn no_shows_cancellations_and_the_monthly_statement() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;
        let reply = call(
            &app,
            &p.op_a,
            Method::PUT,
            "/api/v1/registry/chargers/CPS/sharing",
            Some(terms(false)),
        )
        .await;
        ok(&reply, StatusCode::OK);
        let t0 = now(&mut cp).await;
        let reply = call(
            &app,
            &p.olga,
            Method::POST,
            "/api/v1/registry/chargers/CPS/sharing/windows",
            Some(json!({ "start": (t0 + mins(1)).to_string(),
                                      "end": (t0 + mins(600)).to_string() })),
        )
        .await;
        ok(&reply, StatusCode::CREATED);

        // A session (settled at 9.45, as worked out in the test above).
        let reply = book(&app, &p.nina, "NINA", t0 + mins(1), t0 + mins(4)).await;
        let session = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        // A no-show: sam books and never comes. Grace 3 min, fee 5.00: owner 3.50, operator 1.50.
        let reply = book(&app, &p.sam, "SAM", t0 + mins(4), t0 + mins(40)).await;
        let no_show = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        // A late cancellation: within the 60 min notice, fee 3.00: owner 2.10, operator 0.90.
        let reply = book(&app, &p.nina, "NINA", t0 + mins(50), t0 + mins(70)).await;
        let late = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        // A free cancellation (long before), and one by the owner (free, booker told).
        let reply = book(&app, &p.nina, "NINA", t0 + mins(300), t0 + mins(320)).await;
        let early = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        let reply = book(&app, &p.sam, "SAM", t0 + mins(400), t0 + mins(420)).await;
        let by_owner = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();

        let reply = call(
            &app,
            &p.nina,
            Method::POST,
            &format!("/api/v1/sharing/bookings/{late}/cancel"),
            None,
        )
        .await;
        let b = ok(&reply, StatusCode::OK);
        assert_eq!(b["state"], "cancelled");
        assert_eq!(b["settlement"]["kind"], "late_cancel");
        assert_eq!(b["settlement"]["total_fen"], 300);
        assert_eq!(b["settlement"]["owner_share_fen"], 210);
        assert_eq!(b["settlement"]["operator_share_fen"], 90);
        let reply = call(
            &app,
            &p.nina,
            Method::POST,
            &format!("/api/v1/sharing/bookings/{early}/cancel"),
            None,
        )
        .await;
        let b = ok(&reply, StatusCode::OK);
        assert_eq!(b["state"], "cancelled");
        assert!(b["settlement"].is_null(), "free before the notice");
        let reply = call(
            &app,
            &p.olga,
            Method::POST,
            &format!("/api/v1/sharing/bookings/{by_owner}/cancel"),
            None,
        )
        .await;
        let b = ok(&reply, StatusCode::OK);
        assert_eq!(b["cancelled_by"], "olga");
        assert!(b["settlement"].is_null());
        let told = notifications(&app, &p.sam).await;
        assert!(
            told.iter()
                .any(|n| n["kind"] == "sharing.booking_cancelled"
                    && n["data"]["booking_id"] == by_owner),
            "{told:?}"
        );
        let owner_told = notifications(&app, &p.olga).await;
        assert!(
            owner_told.iter().any(
                |n| n["kind"] == "sharing.booking_cancelled" && n["data"]["booking_id"] == late
            ),
            "{owner_told:?}"
        );
        // A cancelled booking is not cancelled again.
        let reply = call(
            &app,
            &p.nina,
            Method::POST,
            &format!("/api/v1/sharing/bookings/{late}/cancel"),
            None,
        )
        .await;
        refused(&reply, StatusCode::CONFLICT, "not pending");

        wait_until(&mut cp, t0 + mins(1)).await;
        let started_at: Timestamp = "2026-11-26T08:05:00Z".parse().unwrap();
        let (status, tx) = start(&mut cp, 1, "NINA", 1_000, started_at).await;
        assert_eq!(status, "Accepted");
        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": tx, "meterStop": 8_250,
                                               "timestamp": (started_at + mins(90)).to_string() }),
        )
        .await;
        assert_eq!(booking(&app, session).await["settlement"]["total_fen"], 945);

        // The sweep marks sam's booking a no-show 3 protocol minutes after its start.
        assert_eq!(booking(&app, no_show).await["state"], "pending");
        let b = until(&format!("no sweep marked booking {no_show}"), || async {
            Some(booking(&app, no_show).await).filter(|b| b["state"] != "pending")
        })
        .await;
        assert_eq!(b["state"], "no_show");
        assert!(
            now(&mut cp).await >= t0 + mins(7),
            "not before the grace ran out"
        );
        assert_eq!(b["settlement"]["kind"], "no_show");
        assert_eq!(b["settlement"]["fee_fen"], 500);
        assert_eq!(b["settlement"]["owner_share_fen"], 350);
        assert_eq!(b["settlement"]["operator_share_fen"], 150);
        let owner_told = notifications(&app, &p.olga).await;
        assert!(
            owner_told
                .iter()
                .any(|n| n["kind"] == "sharing.no_show" && n["data"]["booking_id"] == no_show),
            "{owner_told:?}"
        );
        // Too late now: SAM's tag is refused even inside the booked time.
        assert_eq!(authorize(&mut cp, "SAM").await, "Invalid");

        // A booking on a charger taken out of service meanwhile is not a no-show: cancelled by
        // the sweep, no fee, the booker told.
        let t1 = now(&mut cp).await;
        let reply = book(&app, &p.nina, "NINA", t1 + mins(1), t1 + mins(5)).await;
        let out_of_service = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        let lifecycle = "/api/v1/registry/chargers/CPS/lifecycle";
        ok(
            &call(
                &app,
                &p.olga,
                Method::POST,
                lifecycle,
                Some(json!({ "to": "suspended" })),
            )
            .await,
            StatusCode::OK,
        );
        let b = until(&format!("booking {out_of_service} not swept"), || async {
            Some(booking(&app, out_of_service).await).filter(|b| b["state"] != "pending")
        })
        .await;
        assert_eq!(b["state"], "cancelled");
        assert_eq!(b["cancelled_by"], "system");
        assert!(
            b["settlement"].is_null(),
            "no fee when the charger was out of service"
        );
        let told = notifications(&app, &p.nina).await;
        assert!(
            told.iter().any(|n| n["kind"] == "sharing.booking_cancelled"
                && n["data"]["booking_id"] == out_of_service),
            "{told:?}"
        );
        ok(
            &call(
                &app,
                &p.olga,
                Method::POST,
                lifecycle,
                Some(json!({ "to": "active" })),
            )
            .await,
            StatusCode::OK,
        );

        // The statement: three settlements and the totals, parsed.
        let path = "/api/v1/sharing/statements?month=2026-11&owner=olga";
        let reply = call(&app, &p.olga, Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = reply.body.as_str().unwrap().to_owned();
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(
            header,
            [
                "date",
                "charger",
                "booking",
                "booker",
                "kind",
                "kwh",
                "hours",
                "energy_fee_cny",
                "time_fee_cny",
                "fee_cny",
                "total_cny",
                "owner_share_cny",
                "operator_share_cny"
            ]
        );
        let rows: Vec<Vec<String>> = csv
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(rows.len(), 4, "{text}");
        let by_kind = |kind: &str| {
            rows.iter()
                .find(|r| r[4] == kind)
                .unwrap_or_else(|| panic!("{kind}: {text}"))
                .clone()
        };
        let s = by_kind("session");
        assert_eq!(
            s,
            [
                "2026-11-26",
                "CPS",
                session.to_string().as_str(),
                "nina",
                "session",
                "7.250",
                "1.500",
                "8.70",
                "0.75",
                "0.00",
                "9.45",
                "6.62",
                "2.83"
            ]
        );
        let n = by_kind("no_show");
        assert_eq!(
            &n[2..],
            [
                no_show.to_string().as_str(),
                "sam",
                "no_show",
                "0.000",
                "0.000",
                "0.00",
                "0.00",
                "5.00",
                "5.00",
                "3.50",
                "1.50"
            ]
        );
        let l = by_kind("late_cancel");
        assert_eq!(
            &l[2..],
            [
                late.to_string().as_str(),
                "nina",
                "late_cancel",
                "0.000",
                "0.000",
                "0.00",
                "0.00",
                "3.00",
                "3.00",
                "2.10",
                "0.90"
            ]
        );
        let total = rows.last().unwrap();
        assert_eq!(total[0], "total");
        assert_eq!(
            &total[4..],
            [
                "3", "7.250", "1.500", "8.70", "0.75", "8.00", "17.45", "12.22", "5.23"
            ]
        );
        // Every row adds up: owner + operator = total.
        for r in &rows {
            let fen = |s: &str| (s.parse::<f64>().unwrap() * 100.0).round() as i64;
            assert_eq!(fen(&r[11]) + fen(&r[12]), fen(&r[10]), "{r:?}");
        }
        // Another month is empty but for its totals row; October's ends before these.
        let reply = call(
            &app,
            &p.olga,
            Method::GET,
            "/api/v1/sharing/statements?month=2026-10&owner=olga",
            None,
        )
        .await;
        let text = reply.body.as_str().unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("total,,,,0,"));

        // Who may read it.
        for (token, status) in [
            (&p.op_a, StatusCode::OK),
            (&p.reg, StatusCode::OK),
            (&app.token, StatusCode::OK),
            (&p.nina, StatusCode::FORBIDDEN),
            (&p.op_b, StatusCode::FORBIDDEN),
            (&p.pm_a, StatusCode::FORBIDDEN),
        ] {
            let reply = call(&app, token, Method::GET, path, None).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
            if status == StatusCode::OK {
                assert_eq!(reply.body.as_str().unwrap().lines().count(), 5);
            }
        }
        for bad in ["2026-13", "2026-1", "november"] {
            let reply = call(
                &app,
                &p.olga,
                Method::GET,
                &format!("/api/v1/sharing/statements?month={bad}&owner=olga"),
                None,
            )
            .await;
            refused(&reply, StatusCode::BAD_REQUEST, "month");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn roles_and_scope_per_sharing_endpoint() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;
        let agreement = "/api/v1/registry/chargers/CPS/sharing";
        // PUT: the owner, an operator of A, admins; nobody else.
        for token in [&p.nina, &p.sam, &p.op_b, &p.pm_a, &p.reg] {
            let reply = call(&app, token, Method::PUT, agreement, Some(terms(false))).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let reply = call(&app, &p.reg, Method::GET, agreement, None).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "no agreement yet: {:?}",
            reply.body
        );
        for token in [&p.olga, &p.op_a, &app.token] {
            let reply = call(&app, token, Method::PUT, agreement, Some(terms(false))).await;
            ok(&reply, StatusCode::OK);
        }
        // GET: owner, staff of A, regulator; not other residents, not staff of B.
        for (token, status) in [
            (&p.olga, StatusCode::OK),
            (&p.op_a, StatusCode::OK),
            (&p.pm_a, StatusCode::OK),
            (&p.reg, StatusCode::OK),
            (&p.sam, StatusCode::FORBIDDEN),
            (&p.op_b, StatusCode::FORBIDDEN),
        ] {
            let reply = call(&app, token, Method::GET, agreement, None).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
        }
        // Windows: published by the owner side only.
        let t0 = now(&mut cp).await;
        let span =
            json!({ "start": (t0 + mins(30)).to_string(), "end": (t0 + mins(300)).to_string() });
        let windows = "/api/v1/registry/chargers/CPS/sharing/windows";
        for token in [&p.nina, &p.op_b, &p.pm_a, &p.reg] {
            let reply = call(&app, token, Method::POST, windows, Some(span.clone())).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let reply = call(&app, &p.olga, Method::POST, windows, Some(span)).await;
        let window = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        for (token, status) in [
            (&p.olga, StatusCode::OK),
            (&p.reg, StatusCode::OK),
            (&p.nina, StatusCode::FORBIDDEN),
            (&p.op_b, StatusCode::FORBIDDEN),
        ] {
            let reply = call(&app, token, Method::GET, windows, None).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
        }
        // Offers: neighbours (any community), staff in scope, regulators.
        for (token, status) in [
            (&p.nina, StatusCode::OK),
            (&p.olga, StatusCode::OK),
            (&p.pm_a, StatusCode::OK),
            (&p.reg, StatusCode::OK),
            (&p.op_b, StatusCode::FORBIDDEN),
        ] {
            let reply = call(
                &app,
                token,
                Method::GET,
                "/api/v1/sharing/offers?community=A",
                None,
            )
            .await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
        }
        let reply = call(
            &app,
            &p.op_b,
            Method::GET,
            "/api/v1/sharing/offers?community=B",
            None,
        )
        .await;
        assert_eq!(ok(&reply, StatusCode::OK), &json!([]));
        // Booking: residents and owners for themselves only.
        for token in [&p.op_a, &p.pm_a, &p.reg, &app.token] {
            let reply = book(&app, token, "NINA", t0 + mins(40), t0 + mins(50)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let nina_b = ok(
            &book(&app, &p.nina, "NINA", t0 + mins(40), t0 + mins(50)).await,
            StatusCode::CREATED,
        )["id"]
            .as_i64()
            .unwrap();
        let sam_b = ok(
            &book(&app, &p.sam, "SAM", t0 + mins(60), t0 + mins(70)).await,
            StatusCode::CREATED,
        )["id"]
            .as_i64()
            .unwrap();
        // Lists: a resident sees their own; the owner the charger's; staff of A all of A's;
        // staff of B none; the regulator all.
        let list = |token: &str| {
            let (app, token) = (&app, token.to_owned());
            async move {
                booking_ids(&call(app, &token, Method::GET, "/api/v1/sharing/bookings", None).await)
            }
        };
        assert_eq!(list(&p.nina).await, [nina_b]);
        assert_eq!(list(&p.sam).await, [sam_b]);
        assert_eq!(list(&p.olga).await, [nina_b, sam_b]);
        assert_eq!(list(&p.op_a).await, [nina_b, sam_b]);
        assert_eq!(list(&p.pm_a).await, [nina_b, sam_b]);
        assert_eq!(list(&p.op_b).await, Vec::<i64>::new());
        assert_eq!(list(&p.reg).await, [nina_b, sam_b]);
        let reply = call(
            &app,
            &p.reg,
            Method::GET,
            "/api/v1/sharing/bookings?community=B",
            None,
        )
        .await;
        assert_eq!(booking_ids(&reply), Vec::<i64>::new());
        // One booking: booker, owner, staff of A, regulator; not another resident or staff of B.
        let path = format!("/api/v1/sharing/bookings/{nina_b}");
        for (token, status) in [
            (&p.nina, StatusCode::OK),
            (&p.olga, StatusCode::OK),
            (&p.pm_a, StatusCode::OK),
            (&p.reg, StatusCode::OK),
            (&p.sam, StatusCode::FORBIDDEN),
            (&p.op_b, StatusCode::FORBIDDEN),
        ] {
            let reply = call(&app, token, Method::GET, &path, None).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
        }
        // Cancel: not another resident, not staff of B, not a property manager, not the regulator.
        let cancel = format!("/api/v1/sharing/bookings/{nina_b}/cancel");
        for token in [&p.sam, &p.op_b, &p.pm_a, &p.reg] {
            let reply = call(&app, token, Method::POST, &cancel, None).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        assert_eq!(booking(&app, nina_b).await["state"], "pending");
        let reply = call(&app, &p.op_a, Method::POST, &cancel, None).await;
        assert_eq!(ok(&reply, StatusCode::OK)["cancelled_by"], "op_a");
        // Withdrawing a window: not the neighbours, not the regulator; the owner may, and its
        // pending bookings are cancelled with their bookers told.
        let remove = format!("/api/v1/sharing/windows/{window}");
        for token in [&p.nina, &p.reg, &p.op_b] {
            let reply = call(&app, token, Method::DELETE, &remove, None).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let reply = call(&app, &p.olga, Method::DELETE, &remove, None).await;
        assert_eq!(
            ok(&reply, StatusCode::OK)["cancelled_bookings"],
            json!([sam_b])
        );
        assert_eq!(booking(&app, sam_b).await["state"], "cancelled");
        let told = notifications(&app, &p.sam).await;
        assert!(
            told.iter()
                .any(|n| n["kind"] == "sharing.booking_cancelled"
                    && n["data"]["booking_id"] == sam_b),
            "{told:?}"
        );
        let reply = call(&app, &p.olga, Method::DELETE, &remove, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        // Every sharing endpoint is in the OpenAPI document.
        let doc = app
            .request(Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .body;
        for path in [
            "/api/v1/registry/chargers/{id}/sharing",
            "/api/v1/registry/chargers/{id}/sharing/windows",
            "/api/v1/sharing/windows/{id}",
            "/api/v1/sharing/offers",
            "/api/v1/sharing/bookings",
            "/api/v1/sharing/bookings/{id}",
            "/api/v1/sharing/bookings/{id}/cancel",
            "/api/v1/sharing/statements",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_sharing_input_is_refused_naming_the_field_and_changes_nothing() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        charger(&app, "PUB", "A", "public", None).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;
        let agreement = "/api/v1/registry/chargers/CPS/sharing";
        let events = event_count(&app).await;
        // Agreements: each bad term named; only privately owned self_use chargers.
        let with = |key: &str, v: Value| {
            let mut t = terms(false);
            t[key] = v;
            t
        };
        for (body, needle) in [
            (with("price_per_kwh_cny", json!(-1.0)), "price_per_kwh_cny"),
            (with("price_per_kwh_cny", json!(1000.0)), "price_per_kwh_cny"),
            (with("price_per_hour_cny", json!(-0.5)), "price_per_hour_cny"),
            (with("owner_share_percent", json!(150.0)), "owner_share_percent"),
            (with("operator", json!("  ")), "operator"),
            (with("no_show_grace_min", json!(-5)), "no_show_grace_min"),
            (with("cancel_notice_min", json!(1_000_000)), "cancel_notice_min"),
            (with("no_show_fee_cny", json!(0.001)), "no_show_fee_cny"),
            (with("late_cancel_fee_cny", json!(-3.0)), "late_cancel_fee_cny"),
        ] {
            let reply = call(&app, &p.olga, Method::PUT, agreement, Some(body.clone())).await;
            refused(&reply, StatusCode::BAD_REQUEST, needle);
        }
        let reply = app.api(Method::PUT, "/api/v1/registry/chargers/PUB/sharing", Some(terms(false))).await;
        refused(&reply, StatusCode::BAD_REQUEST, "charger_id");
        let reply = app.api(Method::PUT, "/api/v1/registry/chargers/NOPE/sharing", Some(terms(false))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let mut unknown_field = terms(false);
        unknown_field["discount"] = json!(10);
        let reply = call(&app, &p.olga, Method::PUT, agreement, Some(unknown_field)).await;
        assert!(reply.status.is_client_error(), "{:?}", reply.body);
        assert!(reply.body["error"].as_str().unwrap().contains("discount"));
        let reply = app.request_raw(Method::PUT, agreement, b"{\"price_per_kwh_cny\": ".to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        let huge = format!("{{\"operator\": \"{}\"}}", "x".repeat(3 << 20));
        let reply = app.request_raw(Method::PUT, agreement, huge.into_bytes()).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.get(agreement).await.status, StatusCode::NOT_FOUND, "no agreement was stored");
        // No window without an agreement.
        let t0 = now(&mut cp).await;
        let windows = "/api/v1/registry/chargers/CPS/sharing/windows";
        let span = |a: i64, b: i64| json!({ "start": (t0 + mins(a)).to_string(), "end": (t0 + mins(b)).to_string() });
        let reply = call(&app, &p.olga, Method::POST, windows, Some(span(30, 90))).await;
        refused(&reply, StatusCode::NOT_FOUND, "sharing agreement");
        assert_eq!(event_count(&app).await, events, "no refused change emitted an event");

        ok(&call(&app, &p.olga, Method::PUT, agreement, Some(terms(false))).await, StatusCode::OK);
        ok(&call(&app, &p.olga, Method::POST, windows, Some(span(30, 300))).await, StatusCode::CREATED);
        // Windows: end after start, not in the past, not overlapping, not too long.
        for (body, status, needle) in [
            (span(100, 50), StatusCode::BAD_REQUEST, "end"),
            (span(-60, 20), StatusCode::BAD_REQUEST, "start"),
            (span(200, 400), StatusCode::CONFLICT, "overlapping availability window"),
            (span(400, 400 + 32 * 24 * 60), StatusCode::BAD_REQUEST, "end"),
            (json!({ "start": "yesterday", "end": (t0 + mins(500)).to_string() }),
             StatusCode::UNPROCESSABLE_ENTITY, "start"),
        ] {
            let reply = call(&app, &p.olga, Method::POST, windows, Some(body)).await;
            refused(&reply, status, needle);
        }
        let reply = call(&app, &p.olga, Method::GET, windows, None).await;
        assert_eq!(ok(&reply, StatusCode::OK).as_array().unwrap().len(), 1);

        let b = ok(&book(&app, &p.nina, "NINA", t0 + mins(60), t0 + mins(120)).await, StatusCode::CREATED)["id"].as_i64().unwrap();
        // Out of service: no new window, no new booking.
        let lifecycle = "/api/v1/registry/chargers/CPS/lifecycle";
        ok(&call(&app, &p.olga, Method::POST, lifecycle, Some(json!({ "to": "suspended" }))).await, StatusCode::OK);
        let reply = book(&app, &p.sam, "SAM", t0 + mins(200), t0 + mins(250)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "suspended, not active");
        let reply = call(&app, &p.olga, Method::POST, windows, Some(span(400, 500))).await;
        refused(&reply, StatusCode::BAD_REQUEST, "charger_id");
        ok(&call(&app, &p.olga, Method::POST, lifecycle, Some(json!({ "to": "active" }))).await, StatusCode::OK);
        let events = event_count(&app).await;
        // Bookings: overlapping (named), outside the window, in the past, end before start,
        // not their tag, the owner on their own charger, an unknown charger.
        let reply = book(&app, &p.sam, "SAM", t0 + mins(100), t0 + mins(150)).await;
        refused(&reply, StatusCode::CONFLICT, &format!("overlapping booking (id {b}"));
        let reply = book(&app, &p.sam, "SAM", t0 + mins(250), t0 + mins(350)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "availability window");
        let reply = book(&app, &p.sam, "SAM", t0 + mins(10), t0 + mins(40)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "availability window");
        let reply = book(&app, &p.sam, "SAM", t0 - mins(10), t0 + mins(40)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "start");
        let reply = book(&app, &p.sam, "SAM", t0 + mins(200), t0 + mins(150)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "end");
        let reply = book(&app, &p.sam, "NINA", t0 + mins(200), t0 + mins(250)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "id_tag");
        let reply = book(&app, &p.sam, "GHOST", t0 + mins(200), t0 + mins(250)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "id_tag");
        let reply = book(&app, &p.olga, "OLGA", t0 + mins(200), t0 + mins(250)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "charger_id");
        let reply = call(&app, &p.sam, Method::POST, "/api/v1/sharing/bookings",
                         Some(json!({ "charger_id": "NOPE", "start": (t0 + mins(200)).to_string(),
                                      "end": (t0 + mins(250)).to_string(), "id_tag": "SAM" }))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
        let reply = call(&app, &p.sam, Method::POST, "/api/v1/sharing/bookings",
                         Some(json!({ "charger_id": "CPS", "start": (t0 + mins(200)).to_string() }))).await;
        assert!(reply.status.is_client_error());
        assert!(reply.body["error"].as_str().unwrap().contains("end"), "{:?}", reply.body);
        // Unknown ids.
        for (method, path) in [(Method::GET, "/api/v1/sharing/bookings/999"),
                               (Method::POST, "/api/v1/sharing/bookings/999/cancel"),
                               (Method::DELETE, "/api/v1/sharing/windows/999"),
                               (Method::GET, "/api/v1/registry/chargers/NOPE/sharing/windows")] {
            let reply = app.api(method.clone(), path, None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {:?}", reply.body);
        }
        let reply = app.api(Method::GET, "/api/v1/sharing/bookings/abc", None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let reply = call(&app, &p.nina, Method::GET, "/api/v1/sharing/offers", None).await;
        refused(&reply, StatusCode::BAD_REQUEST, "community");
        let reply = call(&app, &p.nina, Method::GET, "/api/v1/sharing/statements?month=2026-11", None).await;
        refused(&reply, StatusCode::BAD_REQUEST, "owner");
        let huge = format!("{{\"charger_id\": \"{}\"}}", "C".repeat(3 << 20));
        let reply = app.request_raw(Method::POST, "/api/v1/sharing/bookings", huge.into_bytes()).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        let reply = app.request_raw(Method::POST, "/api/v1/sharing/bookings", b"{\"charger_id\": ".to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);

        // Nothing changed: one booking, the same events.
        assert_eq!(event_count(&app).await, events, "no refused change emitted an event");
        assert_eq!(booking_ids(&app.get("/api/v1/sharing/bookings").await), [b]);
        app.stop().await;
    })
    .await;
}

/// Ending sharing: refused while a neighbour charges; then every window goes, pending bookings
/// are cancelled without fee with their bookers told, the agreement is gone, the neighbour's
/// tag no longer opens the charger, and the finished booking's settlement stays.
#[tokio::test]
async fn ending_sharing_withdraws_everything_at_once_and_keeps_the_history() {
    each_backend(|backend| async move {
        let app = app(backend).await;
        let p = world(&app).await;
        let mut cp = app.charge_point("CPS", None).await;
        cp.boot().await;
        let sharing = "/api/v1/registry/chargers/CPS/sharing";
        // No agreement yet: nothing to end.
        let reply = call(&app, &p.olga, Method::DELETE, sharing, None).await;
        refused(&reply, StatusCode::NOT_FOUND, "agreement");
        let reply = call(&app, &p.olga, Method::PUT, sharing, Some(terms(false))).await;
        ok(&reply, StatusCode::OK);
        let t0 = now(&mut cp).await;
        let mut windows = Vec::new();
        for (from, to) in [(1, 120), (200, 300)] {
            let reply = call(
                &app,
                &p.olga,
                Method::POST,
                &format!("{sharing}/windows"),
                Some(json!({ "start": (t0 + mins(from)).to_string(),
                             "end": (t0 + mins(to)).to_string() })),
            )
            .await;
            windows.push(ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap());
        }
        let reply = book(&app, &p.nina, "NINA", t0 + mins(1), t0 + mins(60)).await;
        let charging = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        let reply = book(&app, &p.sam, "SAM", t0 + mins(210), t0 + mins(240)).await;
        let later = ok(&reply, StatusCode::CREATED)["id"].as_i64().unwrap();
        wait_until(&mut cp, t0 + mins(1)).await;
        let (status, tx) = start(&mut cp, 1, "NINA", 0, t0 + mins(1)).await;
        assert_eq!(status, "Accepted");

        // Not while nina is charging, and not by the neighbours or the regulator.
        let events = event_count(&app).await;
        for token in [&p.nina, &p.sam, &p.reg, &p.op_b] {
            let reply = call(&app, token, Method::DELETE, sharing, None).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let reply = call(&app, &p.olga, Method::DELETE, sharing, None).await;
        refused(&reply, StatusCode::CONFLICT, &format!("booking {charging}"));
        assert_eq!(event_count(&app).await, events, "a refusal changes nothing");
        assert_eq!(booking(&app, later).await["state"], "pending");
        let reply = call(
            &app,
            &p.olga,
            Method::GET,
            &format!("{sharing}/windows"),
            None,
        )
        .await;
        assert_eq!(ok(&reply, StatusCode::OK).as_array().unwrap().len(), 2);

        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": tx, "meterStop": 5_000,
                    "timestamp": (t0 + mins(2)).to_string() }),
        )
        .await;
        assert_eq!(booking(&app, charging).await["state"], "completed");
        let reply = call(&app, &p.olga, Method::DELETE, sharing, None).await;
        assert_eq!(
            ok(&reply, StatusCode::OK)["cancelled_bookings"],
            json!([later])
        );
        assert_eq!(booking(&app, later).await["state"], "cancelled");
        let told = notifications(&app, &p.sam).await;
        assert!(
            told.iter().any(|n| n["kind"] == "sharing.booking_cancelled"
                && n["data"]["booking_id"] == later
                && n["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("stopped sharing")),
            "{told:?}"
        );
        let reply = call(
            &app,
            &p.olga,
            Method::GET,
            &format!("{sharing}/windows"),
            None,
        )
        .await;
        assert_eq!(ok(&reply, StatusCode::OK), &json!([]));
        let reply = call(&app, &p.olga, Method::GET, sharing, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        for w in &windows {
            let reply = call(
                &app,
                &p.olga,
                Method::DELETE,
                &format!("/api/v1/sharing/windows/{w}"),
                None,
            )
            .await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
        }
        // Nothing to book any more, and the neighbour's tag no longer opens the charger.
        let reply = book(&app, &p.sam, "SAM", t0 + mins(220), t0 + mins(230)).await;
        assert!(reply.status.is_client_error(), "{:?}", reply.body);
        assert_eq!(authorize(&mut cp, "NINA").await, "Invalid");
        assert_eq!(authorize(&mut cp, "OLGA").await, "Accepted");
        // The finished session's settlement stays.
        let settled = booking(&app, charging).await;
        assert_eq!(settled["settlement"]["energy_wh"], 5_000, "{settled}");
        // Ended once; again is 404.
        let reply = call(&app, &p.olga, Method::DELETE, sharing, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        app.stop().await;
    })
    .await;
}
