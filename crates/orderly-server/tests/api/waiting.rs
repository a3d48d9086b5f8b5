//! The waiting list for public chargers, id tags per role, and insurance alerts, through the
//! real server (SQLite, and PostgreSQL when `ORDERLY_TEST_POSTGRES_URL` is set) and a real OCPP
//! charge point: an `Available` connector is offered to the first in line, a start serves the
//! entry, an offer not taken passes to the next; who may read and change what; bad input
//! refused with nothing changed.

use crate::helpers::{
    ChargePoint, Reply, TestApp, call, community, each_backend, password, spawn_app, until,
};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates a user (with id tags, also added as OCPP id tags) and returns a session token.
async fn user(app: &TestApp, id: &str, role: &str, scopes: Value, tags: &[&str]) -> String {
    for tag in tags {
        app.add_tag(tag, "Accepted", None).await;
    }
    let body = json!({
        "id": id, "name": format!("User {id}"), "password": password(id), "role": role,
        "scopes": scopes, "id_tags": tags,
    });
    let reply = app.post("/api/v1/users", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let reply = app
        .request(
            Method::POST,
            "/api/v1/login",
            Some(json!({ "user": id, "password": password(id) })),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["token"].as_str().unwrap().to_owned()
}

/// Registers an OCPP charger of `kind` in `community` with one connector, brought to `active`.
async fn charger(app: &TestApp, id: &str, community: &str, kind: &str, owner: Option<&str>) {
    planned_charger(app, id, community, kind, owner).await;
    activate(app, id).await;
}

/// Registers an OCPP charger of `kind` in `community` with one connector, left `planned`.
async fn planned_charger(
    app: &TestApp,
    id: &str,
    community: &str,
    kind: &str,
    owner: Option<&str>,
) {
    app.add_charger(id, None).await;
    let facts = json!({ "community_id": community, "kind": kind, "owner": owner,
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

/// planned → installed → active.
async fn activate(app: &TestApp, id: &str) {
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

async fn status(cp: &mut ChargePoint, connector: i64, status: &str) {
    cp.call_ok(
        "StatusNotification",
        json!({ "connectorId": connector, "errorCode": "NoError", "status": status }),
    )
    .await;
}

async fn join(app: &TestApp, token: &str, tag: &str) -> Reply {
    call(
        app,
        token,
        Method::POST,
        LIST,
        Some(json!({ "id_tag": tag })),
    )
    .await
}

const LIST: &str = "/api/v1/registry/communities/C1/waiting-list";

/// The admin's view of C1's list, ended entries included: (user, state) in order.
async fn states(app: &TestApp) -> Vec<(String, String)> {
    let reply = app.get(&format!("{LIST}?all=true")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry_of<'a>(list: &'a Value, user: &str) -> &'a Value {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["user"] == user)
        .unwrap_or_else(|| panic!("no entry of {user} in {list}"))
}

async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until(what, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn waiting_list_offers_a_freed_public_connector_serves_on_start_and_passes_expired_offers_on()
{
    each_backend(|backend| async move {
        // Six protocol seconds per real second: a one-minute hold runs out in ten real seconds
        // (long enough to see the offer passed on), the default fifteen minutes does not.
        let app = spawn_app(backend, |c| {
            c.clock_speed = 6.0;
            c.reminders.waiting_sweep_secs = 5;
        })
        .await;
        community(&app, "C1").await;
        community(&app, "C2").await;
        charger(&app, "PUB1", "C1", "public", None).await;
        let alice = user(&app, "alice", "resident", json!([]), &["TAGA"]).await;
        let bob = user(&app, "bob", "resident", json!([]), &["TAGB"]).await;
        let carol = user(&app, "carol", "resident", json!([]), &["TAGC"]).await;
        let pm1 = user(
            &app,
            "pm1",
            "property_manager",
            json!([{ "kind": "community", "id": "C1" }]),
            &[],
        )
        .await;
        let pm2 = user(
            &app,
            "pm2",
            "property_manager",
            json!([{ "kind": "community", "id": "C2" }]),
            &[],
        )
        .await;
        let op1 = user(
            &app,
            "op1",
            "operator",
            json!([{ "kind": "community", "id": "C1" }]),
            &[],
        )
        .await;
        let reg = user(&app, "reg", "regulator", json!([]), &[]).await;

        let mut cp = app.charge_point("PUB1", None).await;
        cp.boot().await;
        // A car is plugged in: nothing is free.
        status(&mut cp, 1, "Preparing").await;

        let a = join(&app, &alice, "TAGA").await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        assert_eq!(a.body["state"], "waiting");
        assert_eq!(a.body["position"], 1);
        assert_eq!(a.body["offer"], Value::Null);
        let b = join(&app, &bob, "TAGB").await;
        assert_eq!(b.body["position"], 2, "{:?}", b.body);
        let c = join(&app, &carol, "TAGC").await;
        assert_eq!(c.body["position"], 3, "{:?}", c.body);
        let waiting = [
            ("alice".to_owned(), "waiting".to_owned()),
            ("bob".to_owned(), "waiting".to_owned()),
            ("carol".to_owned(), "waiting".to_owned()),
        ];

        // Bad input: refused, nothing changed.
        let again = join(&app, &alice, "TAGA").await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
        let not_hers = join(&app, &bob, "TAGA").await;
        assert_eq!(
            not_hers.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            not_hers.body
        );
        assert!(not_hers.body["error"].as_str().unwrap().contains("id_tag"));
        let unknown_tag = join(&app, &bob, "NOSUCHTAG").await;
        assert_eq!(unknown_tag.status, StatusCode::BAD_REQUEST);
        let bad_tag = join(&app, &bob, "a tag far longer than twenty characters").await;
        assert_eq!(bad_tag.status, StatusCode::BAD_REQUEST);
        assert!(
            bad_tag.body["error"]
                .as_str()
                .unwrap()
                .starts_with("id_tag")
        );
        let nowhere = call(
            &app,
            &bob,
            Method::POST,
            "/api/v1/registry/communities/NOPE/waiting-list",
            Some(json!({ "id_tag": "TAGB" })),
        )
        .await;
        assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{:?}", nowhere.body);
        let extra = call(
            &app,
            &bob,
            Method::POST,
            LIST,
            Some(json!({ "id_tag": "TAGB", "position": 1 })),
        )
        .await;
        assert!(extra.status.is_client_error(), "{:?}", extra.body);
        let missing = call(&app, &bob, Method::POST, LIST, Some(json!({}))).await;
        assert!(missing.status.is_client_error());
        assert!(missing.body["error"].as_str().unwrap().contains("id_tag"));
        let malformed = app
            .request_raw(Method::POST, LIST, b"{\"id_tag\":".to_vec())
            .await;
        assert_eq!(
            malformed.status,
            StatusCode::BAD_REQUEST,
            "{:?}",
            malformed.body
        );
        let oversized = app
            .request_raw(
                Method::POST,
                LIST,
                format!("{{\"id_tag\":\"{}\"}}", "x".repeat(3 << 20)).into_bytes(),
            )
            .await;
        assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Admin tokens and regulators do not queue.
        let admin = app.post(LIST, json!({ "id_tag": "TAGA" })).await;
        assert_eq!(admin.status, StatusCode::FORBIDDEN);
        let regulator = join(&app, &reg, "TAGA").await;
        assert_eq!(regulator.status, StatusCode::FORBIDDEN);
        assert_eq!(states(&app).await, waiting);

        // Who sees what: staff in scope, the regulator and admins everything; residents their
        // own entry and its position; staff of another community nothing.
        for token in [&pm1, &op1, &reg] {
            let list = call(&app, token, Method::GET, LIST, None).await;
            assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
            assert_eq!(list.body["entries"].as_array().unwrap().len(), 3);
            assert_eq!(list.body["hold_minutes"], 15);
        }
        let bobs = call(&app, &bob, Method::GET, LIST, None).await;
        assert_eq!(
            bobs.body["entries"].as_array().unwrap().len(),
            1,
            "{:?}",
            bobs.body
        );
        assert_eq!(bobs.body["entries"][0]["user"], "bob");
        assert_eq!(bobs.body["entries"][0]["position"], 2);
        let other = call(&app, &pm2, Method::GET, LIST, None).await;
        assert_eq!(other.status, StatusCode::OK);
        assert_eq!(other.body["entries"], json!([]));
        let unknown = call(
            &app,
            &pm1,
            Method::GET,
            "/api/v1/registry/communities/NOPE/waiting-list",
            None,
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // Removing: not someone else's entry, not staff of another community, not a regulator.
        let bob_entry = b.body["id"].as_i64().unwrap();
        let bob_path = format!("{LIST}/{bob_entry}");
        for token in [&carol, &pm2, &reg] {
            let reply = call(&app, token, Method::DELETE, &bob_path, None).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let wrong_community = call(
            &app,
            &bob,
            Method::DELETE,
            &format!("/api/v1/registry/communities/C2/waiting-list/{bob_entry}"),
            None,
        )
        .await;
        assert_eq!(wrong_community.status, StatusCode::NOT_FOUND);
        let no_entry = call(&app, &bob, Method::DELETE, &format!("{LIST}/99999"), None).await;
        assert_eq!(no_entry.status, StatusCode::NOT_FOUND);
        let not_a_number = call(&app, &bob, Method::DELETE, &format!("{LIST}/x"), None).await;
        assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
        // Hold time: the community's staff, within bounds.
        let settings = format!("{LIST}/settings");
        for token in [&alice, &pm2, &reg] {
            let reply = call(
                &app,
                token,
                Method::PUT,
                &settings,
                Some(json!({ "hold_minutes": 1 })),
            )
            .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        for bad in [
            json!({ "hold_minutes": 0 }),
            json!({ "hold_minutes": 5000 }),
        ] {
            let reply = call(&app, &pm1, Method::PUT, &settings, Some(bad)).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
            assert!(
                reply.body["error"]
                    .as_str()
                    .unwrap()
                    .contains("hold_minutes")
            );
        }
        let reply = call(
            &app,
            &pm1,
            Method::PUT,
            "/api/v1/registry/communities/NOPE/waiting-list/settings",
            Some(json!({ "hold_minutes": 5 })),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "out of scope first");
        assert_eq!(
            app.get(LIST).await.body["hold_minutes"],
            15,
            "refusals changed nothing"
        );
        assert_eq!(states(&app).await, waiting);

        // The connector frees up: alice, first in line, is offered it for fifteen minutes.
        status(&mut cp, 1, "Available").await;
        let list = app.get(LIST).await.body;
        let offered = entry_of(&list, "alice");
        assert_eq!(offered["state"], "offered", "{list}");
        assert_eq!(offered["offer"]["charger_id"], "PUB1");
        assert_eq!(offered["offer"]["connector_id"], 1);
        let held =
            ts(&offered["offer"]["expires_at"]).duration_since(ts(&offered["offer"]["offered_at"]));
        assert_eq!(held, jiff::SignedDuration::from_mins(15));
        assert_eq!(entry_of(&list, "bob")["state"], "waiting");
        // The same connector reported free again is not offered twice.
        status(&mut cp, 1, "Available").await;
        assert_eq!(
            entry_of(&app.get(LIST).await.body, "bob")["state"],
            "waiting"
        );
        notifications_check::offer_told(&app, &alice, "PUB1").await;

        // alice starts with her tag: served.
        let start = json!({ "connectorId": 1, "idTag": "TAGA", "meterStart": 0,
                            "timestamp": jiff::Timestamp::now().to_string() });
        let tx = cp.call_ok("StartTransaction", start).await;
        assert_eq!(tx["idTagInfo"]["status"], "Accepted");
        status(&mut cp, 1, "Charging").await;
        let all = app.get(&format!("{LIST}?all=true")).await.body;
        let served = entry_of(&all, "alice");
        assert_eq!(served["state"], "served", "{all}");
        assert_eq!(served["transaction_id"], tx["transactionId"]);
        assert_eq!(served["position"], Value::Null);
        assert_eq!(entry_of(&all, "bob")["position"], 1);

        // A one-minute hold: bob's offer runs out and passes to carol.
        let reply = call(
            &app,
            &op1,
            Method::PUT,
            &settings,
            Some(json!({ "hold_minutes": 1 })),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": tx["transactionId"], "meterStop": 5000,
                    "timestamp": jiff::Timestamp::now().to_string() }),
        )
        .await;
        status(&mut cp, 1, "Available").await;
        poll_until("bob's offer to expire and carol's to come", || async {
            let s = states(&app).await;
            s.contains(&("bob".to_owned(), "expired".to_owned()))
                && s.contains(&("carol".to_owned(), "offered".to_owned()))
        })
        .await;
        let all = app.get(&format!("{LIST}?all=true")).await.body;
        let expired = entry_of(&all, "bob");
        assert_eq!(
            expired["offer"]["connector_id"], 1,
            "the offer is kept: {expired}"
        );
        assert_eq!(
            ts(&expired["offer"]["expires_at"]).duration_since(ts(&expired["offer"]["offered_at"])),
            jiff::SignedDuration::from_mins(1)
        );
        assert!(ts(&expired["closed_at"]) >= ts(&expired["offer"]["expires_at"]));
        assert_eq!(entry_of(&all, "carol")["offer"]["charger_id"], "PUB1");

        // An ended entry cannot be left; carol leaves hers (an offer: the connector is free
        // again, nobody waits).
        let ended = call(&app, &bob, Method::DELETE, &bob_path, None).await;
        assert_eq!(ended.status, StatusCode::CONFLICT, "{:?}", ended.body);
        let carol_path = format!("{LIST}/{}", c.body["id"]);
        let left = call(&app, &carol, Method::DELETE, &carol_path, None).await;
        assert_eq!(left.status, StatusCode::OK, "{:?}", left.body);
        assert_eq!(left.body["state"], "left");
        assert_eq!(left.body["closed_by"], "user:carol");
        // bob queues again, and since the connector is free he is offered it at once; the
        // property manager removes him.
        let again = join(&app, &bob, "TAGB").await;
        assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
        assert_eq!(again.body["state"], "offered", "{:?}", again.body);
        let removed = call(
            &app,
            &pm1,
            Method::DELETE,
            &format!("{LIST}/{}", again.body["id"]),
            None,
        )
        .await;
        assert_eq!(removed.status, StatusCode::OK, "{:?}", removed.body);
        assert_eq!(removed.body["closed_by"], "user:pm1");
        assert!(
            app.get(LIST).await.body["entries"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        // The endpoints are in the OpenAPI document.
        let doc = app
            .request(Method::GET, "/api/v1/openapi.json", None, None)
            .await;
        for path in [
            "/api/v1/registry/communities/{id}/waiting-list",
            "/api/v1/registry/communities/{id}/waiting-list/{entry}",
            "/api/v1/registry/communities/{id}/waiting-list/settings",
        ] {
            assert!(
                doc.body["paths"][path].is_object(),
                "{path} is not documented"
            );
        }
        // Every change is in the audit log.
        let audit = app.get("/api/v1/audit?limit=200").await.body;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for action in [
            "waiting_list.join",
            "waiting_list.leave",
            "waiting_list.settings",
        ] {
            assert!(actions.contains(&action), "{action} missing: {actions:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_self_use_charger_freeing_up_offers_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        community(&app, "C1").await;
        charger(&app, "OWN1", "C1", "self_use", None).await;
        let alice = user(&app, "alice", "resident", json!([]), &["TAGA"]).await;
        let mut cp = app.charge_point("OWN1", None).await;
        cp.boot().await;
        status(&mut cp, 1, "Preparing").await;
        let a = call(
            &app,
            &alice,
            Method::POST,
            LIST,
            Some(json!({ "id_tag": "TAGA" })),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        status(&mut cp, 1, "Available").await;
        // A start with her tag on someone's own charger does not serve her either.
        let start = json!({ "connectorId": 1, "idTag": "TAGA", "meterStart": 0,
                            "timestamp": jiff::Timestamp::now().to_string() });
        cp.call_ok("StartTransaction", start).await;
        assert_eq!(
            states(&app).await,
            [("alice".to_owned(), "waiting".to_owned())]
        );
        app.stop().await;
    })
    .await;
}

/// A charger that went offline keeps its last status, `Available`: that says nothing about
/// whether a car can charge there now, so nobody is sent to it until it is back.
#[tokio::test]
async fn an_offline_charger_is_not_offered_until_it_is_back() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |c| c.reminders.waiting_sweep_secs = 1).await;
        community(&app, "C1").await;
        charger(&app, "PUB1", "C1", "public", None).await;
        let alice = user(&app, "alice", "resident", json!([]), &["TAGA"]).await;
        let mut cp = app.charge_point("PUB1", None).await;
        cp.boot().await;
        status(&mut cp, 1, "Available").await;
        cp.close().await;
        until("PUB1 offline", || async {
            let reply = app.get("/api/v1/chargers/PUB1").await;
            (reply.body["connected"] == false).then_some(())
        })
        .await;
        assert_eq!(
            app.get("/api/v1/chargers/PUB1").await.body["connectors"][0]["status"],
            "Available",
            "the last status is kept"
        );

        // Joining runs the matching in the same commit: the stored Available is not offered.
        let a = join(&app, &alice, "TAGA").await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        assert_eq!(a.body["state"], "waiting", "{:?}", a.body);
        assert_eq!(a.body["offer"], Value::Null);

        // Back online and Available: offered.
        let mut cp = app.charge_point("PUB1", None).await;
        cp.boot().await;
        status(&mut cp, 1, "Available").await;
        poll_until("the offer", || async {
            states(&app).await == [("alice".to_owned(), "offered".to_owned())]
        })
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn id_tags_are_read_by_their_holder_and_blocked_by_them_and_written_by_admins() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        let alice = user(&app, "alice", "resident", json!([]), &["TAGA", "TAGA2"]).await;
        let bob = user(&app, "bob", "charger_owner", json!([]), &["TAGB"]).await;
        let reg = user(&app, "reg", "regulator", json!([]), &[]).await;
        let pm = user(
            &app,
            "pm",
            "property_manager",
            json!([{ "kind": "community", "id": "C1" }]),
            &[],
        )
        .await;
        app.add_tag("LOOSE", "Accepted", Some("2030-01-01T00:00:00Z"))
            .await;
        let tags = |reply: Reply| -> Vec<String> {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            reply
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id_tag"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            tags(call(&app, &alice, Method::GET, "/api/v1/id-tags", None).await),
            ["TAGA", "TAGA2"]
        );
        assert_eq!(
            tags(call(&app, &bob, Method::GET, "/api/v1/id-tags", None).await),
            ["TAGB"]
        );
        assert!(tags(call(&app, &pm, Method::GET, "/api/v1/id-tags", None).await).is_empty());
        assert_eq!(
            tags(call(&app, &reg, Method::GET, "/api/v1/id-tags", None).await).len(),
            4
        );
        assert_eq!(tags(app.get("/api/v1/id-tags").await).len(), 4);
        let own = call(&app, &alice, Method::GET, "/api/v1/id-tags/TAGA", None).await;
        assert_eq!(own.status, StatusCode::OK);
        assert_eq!(own.body["status"], "Accepted");
        for (token, path) in [
            (&alice, "/api/v1/id-tags/TAGB"),
            (&pm, "/api/v1/id-tags/TAGA"),
            (&alice, "/api/v1/id-tags/NOSUCH"),
        ] {
            let reply = call(&app, token, Method::GET, path, None).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path}: {:?}",
                reply.body
            );
        }
        assert_eq!(
            call(&app, &reg, Method::GET, "/api/v1/id-tags/TAGB", None)
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.get("/api/v1/id-tags/NOSUCH").await.status,
            StatusCode::NOT_FOUND
        );

        // Writes stay with admins.
        let before = app.get("/api/v1/id-tags").await.body;
        for token in [&alice, &reg] {
            let add = call(
                &app,
                token,
                Method::POST,
                "/api/v1/id-tags",
                Some(json!({ "id_tag": "NEW1", "status": "Accepted" })),
            )
            .await;
            assert_eq!(add.status, StatusCode::FORBIDDEN, "{:?}", add.body);
            let del = call(&app, token, Method::DELETE, "/api/v1/id-tags/TAGA", None).await;
            assert_eq!(del.status, StatusCode::FORBIDDEN, "{:?}", del.body);
        }
        // A holder may block their own tag, and do nothing else with it.
        let put = |token: String, tag: &'static str, body: Value| {
            let app = &app;
            async move {
                call(
                    app,
                    &token,
                    Method::PUT,
                    &format!("/api/v1/id-tags/{tag}"),
                    Some(body),
                )
                .await
            }
        };
        for (token, tag, body) in [
            (alice.clone(), "TAGA", json!({ "status": "Accepted" })),
            (
                alice.clone(),
                "TAGA",
                json!({ "status": "Blocked", "expiry_date": "2099-01-01T00:00:00Z" }),
            ),
            (
                alice.clone(),
                "TAGA",
                json!({ "status": "Blocked", "parent_id_tag": "TAGB" }),
            ),
            (alice.clone(), "TAGB", json!({ "status": "Blocked" })),
            (alice.clone(), "LOOSE", json!({ "status": "Blocked" })),
            (reg.clone(), "TAGA", json!({ "status": "Blocked" })),
            (pm.clone(), "TAGA", json!({ "status": "Blocked" })),
        ] {
            let reply = put(token, tag, body.clone()).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{tag} {body}: {:?}",
                reply.body
            );
        }
        let malformed = app
            .request_raw(
                Method::PUT,
                "/api/v1/id-tags/TAGA",
                b"{\"status\":".to_vec(),
            )
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        let unknown_field = put(
            alice.clone(),
            "TAGA",
            json!({ "status": "Blocked", "owner": "x" }),
        )
        .await;
        assert!(unknown_field.status.is_client_error());
        let huge = put(
            alice.clone(),
            "TAGA",
            json!({ "status": "Blocked", "parent_id_tag": "p".repeat(3 << 20) }),
        )
        .await;
        assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            app.get("/api/v1/id-tags").await.body,
            before,
            "refusals changed nothing"
        );

        let blocked = put(alice.clone(), "TAGA", json!({ "status": "Blocked" })).await;
        assert_eq!(blocked.status, StatusCode::OK, "{:?}", blocked.body);
        assert_eq!(blocked.body["status"], "Blocked");
        assert_eq!(
            app.get("/api/v1/id-tags/TAGA").await.body["status"],
            "Blocked"
        );
        assert_eq!(
            app.get("/api/v1/id-tags/TAGA2").await.body["status"],
            "Accepted"
        );
        // The admin may unblock it.
        let unblock = app
            .api(
                Method::PUT,
                "/api/v1/id-tags/TAGA",
                Some(json!({ "status": "Accepted" })),
            )
            .await;
        assert_eq!(unblock.status, StatusCode::OK);
        // The blocking is audited, refusals too.
        let audit = app.get("/api/v1/audit?limit=200").await.body;
        let blocks: Vec<&Value> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "id_tag.block")
            .collect();
        assert!(
            blocks
                .iter()
                .any(|e| e["actor"] == "user:alice" && e["outcome"] == "ok"),
            "{blocks:?}"
        );
        assert!(
            blocks
                .iter()
                .any(|e| e["outcome"].as_str().unwrap().starts_with("403")),
            "{blocks:?}"
        );
        app.stop().await;
    })
    .await;
}

async fn policy(app: &TestApp, charger: &str, kind: &str, number: &str, start: &str, end: &str) {
    let body = json!({ "kind": kind, "insurer": "PICC", "number": number, "holder": "holder",
                       "coverage_cny": 1_000_000.0, "start": start, "end": end });
    let reply = app
        .post(
            &format!("/api/v1/registry/chargers/{charger}/insurance"),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[tokio::test]
async fn insurance_alerts_are_pushed_once_per_policy_and_daily_for_missing_cover() {
    each_backend(|backend| async move {
        // Protocol time starts on 1 June and runs a minute per real second; the check runs
        // every protocol minute, so many times during the test, all on the same day.
        let app = spawn_app(backend, |c| {
            c.clock_speed = 60.0;
            c.clock_start = Some("2026-06-01T00:00:00Z".parse().unwrap());
            c.reminders.insurance_check_secs = 60;
            c.reminders.waiting_sweep_secs = 3600;
        })
        .await;
        community(&app, "C1").await;
        community(&app, "C2").await;
        let alice = user(&app, "alice", "charger_owner", json!([]), &[]).await;
        let bob = user(&app, "bob", "charger_owner", json!([]), &[]).await;
        let pm1 = user(
            &app,
            "pm1",
            "property_manager",
            json!([{ "kind": "community", "id": "C1" }]),
            &[],
        )
        .await;
        let pm2 = user(
            &app,
            "pm2",
            "property_manager",
            json!([{ "kind": "community", "id": "C2" }]),
            &[],
        )
        .await;
        // INS1 (alice's): product liability ends on 20 June with nothing after it; charging
        // safety ends on 15 June but a renewal starts that day.
        // Policies are recorded while the chargers are planned, so that no check sees them in
        // service without cover.
        planned_charger(&app, "INS1", "C1", "self_use", Some("alice")).await;
        policy(
            &app,
            "INS1",
            "product_liability",
            "PL1",
            "2026-01-01T00:00:00Z",
            "2026-06-20T00:00:00Z",
        )
        .await;
        policy(
            &app,
            "INS1",
            "charging_safety",
            "CS1",
            "2026-01-01T00:00:00Z",
            "2026-06-15T00:00:00Z",
        )
        .await;
        policy(
            &app,
            "INS1",
            "charging_safety",
            "CS2",
            "2026-06-15T00:00:00Z",
            "2027-06-15T00:00:00Z",
        )
        .await;
        // INS2 (public, nobody's): no cover at all. INS3 (bob's): covered for a year.
        charger(&app, "INS2", "C1", "public", None).await;
        planned_charger(&app, "INS3", "C1", "self_use", Some("bob")).await;
        policy(
            &app,
            "INS3",
            "product_liability",
            "PL3",
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        )
        .await;
        policy(
            &app,
            "INS3",
            "charging_safety",
            "CS3",
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        )
        .await;
        activate(&app, "INS1").await;
        activate(&app, "INS3").await;

        let of_kind = |all: &[Value], kind: &str| -> Vec<Value> {
            all.iter().filter(|n| n["kind"] == kind).cloned().collect()
        };
        poll_until("alice's expiry alert", || async {
            !of_kind(
                &notifications_check::read(&app, &alice).await,
                "insurance.expiring",
            )
            .is_empty()
        })
        .await;
        // A later check has run once bob hears about a charger registered after that alert.
        charger(&app, "INS4", "C2", "self_use", Some("bob")).await;
        poll_until("bob's alert for INS4", || async {
            of_kind(
                &notifications_check::read(&app, &bob).await,
                "insurance.uncovered",
            )
            .iter()
            .any(|n| n["charger_id"] == "INS4")
        })
        .await;
        // And one more after it, so that at least two checks saw INS1's policy ending.
        charger(&app, "INS5", "C2", "self_use", Some("bob")).await;
        poll_until("bob's alert for INS5", || async {
            of_kind(
                &notifications_check::read(&app, &bob).await,
                "insurance.uncovered",
            )
            .iter()
            .any(|n| n["charger_id"] == "INS5")
        })
        .await;

        let alices = notifications_check::read(&app, &alice).await;
        let expiring = of_kind(&alices, "insurance.expiring");
        assert_eq!(expiring.len(), 1, "one alert per policy: {expiring:?}");
        assert_eq!(expiring[0]["recipient"], "alice");
        assert_eq!(expiring[0]["charger_id"], "INS1");
        assert_eq!(expiring[0]["community_id"], "C1");
        assert_eq!(expiring[0]["data"]["number"], "PL1");
        assert_eq!(expiring[0]["data"]["kind"], "product_liability");
        assert!(
            of_kind(&alices, "insurance.uncovered").is_empty(),
            "{alices:?}"
        );
        assert_eq!(
            alices.len(),
            1,
            "nothing about others' chargers: {alices:?}"
        );

        // The public charger without cover: for the community's staff, once per kind today.
        let c1 = call(
            &app,
            &pm1,
            Method::GET,
            "/api/v1/notifications?community=C1&limit=1000",
            None,
        )
        .await;
        assert_eq!(c1.status, StatusCode::OK, "{:?}", c1.body);
        let uncovered: Vec<(String, String)> =
            of_kind(c1.body.as_array().unwrap(), "insurance.uncovered")
                .iter()
                .map(|n| {
                    (
                        n["charger_id"].as_str().unwrap().to_owned(),
                        n["data"]["kind"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
        assert_eq!(
            uncovered,
            [
                ("INS2".to_owned(), "product_liability".to_owned()),
                ("INS2".to_owned(), "charging_safety".to_owned())
            ]
        );
        assert!(
            of_kind(c1.body.as_array().unwrap(), "insurance.uncovered")
                .iter()
                .all(|n| n["recipient"].is_null())
        );
        assert!(
            !c1.body
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["charger_id"] == "INS3"),
            "a covered charger raises nothing"
        );
        // Staff of another community do not read C1's.
        let other = call(
            &app,
            &pm2,
            Method::GET,
            "/api/v1/notifications?community=C1",
            None,
        )
        .await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{:?}", other.body);
        app.stop().await;
    })
    .await;
}

/// Seeing what the service told people, through `GET /api/v1/notifications`.
pub mod notifications_check {
    use super::*;

    /// The notifications `token` may read (all pages).
    pub async fn read(app: &TestApp, token: &str) -> Vec<Value> {
        let reply = call(
            app,
            token,
            Method::GET,
            "/api/v1/notifications?limit=1000",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body.as_array().unwrap().clone()
    }

    /// `user` (token) was told exactly once of an offer on `charger`, with the details.
    pub async fn offer_told(app: &TestApp, token: &str, charger: &str) {
        let told: Vec<Value> = read(app, token)
            .await
            .into_iter()
            .filter(|n| n["kind"] == "waiting_list.offer")
            .collect();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["charger_id"], charger);
        assert_eq!(told[0]["data"]["charger"], charger);
        assert_eq!(told[0]["data"]["connector"], 1);
        assert!(told[0]["data"]["expires_at"].is_string());
    }
}
