//! Roles and tenancy, the registry and the charger lifecycle, through the real server (SQLite,
//! and PostgreSQL when `ORDERLY_TEST_POSTGRES_URL` is set): who may read and change what, the
//! lifecycle rules (with a real OCPP charge point holding a live transaction), transfers that
//! need the new owner's acceptance, and bad input refused without changing anything.

use crate::helpers::{Reply, TestApp, call, each_backend, login, spawn_app, user};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

/// A community with transformer data (the closed loop's endpoint), then its registry facts.
async fn community(app: &TestApp, id: &str, district: &str) {
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
    let facts = json!({ "address": format!("{id} Garden Road"), "district_id": district,
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

async fn district(app: &TestApp, id: &str) {
    let reply = app
        .api(
            Method::PUT,
            &format!("/api/v1/districts/{id}"),
            Some(json!({ "name": format!("District {id}"), "city": "Beijing" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

async fn bay(app: &TestApp, community: &str, number: &str, holder: Option<&str>) -> i64 {
    let body = json!({ "number": number, "tenure": "owned", "holder": holder, "ev_only": true,
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

/// Registers an OCPP charger and its registry facts, and brings it to `active`.
async fn charger(app: &TestApp, id: &str, community: &str, owner: Option<&str>, pw: Option<&str>) {
    app.add_charger(id, pw).await;
    let facts = json!({ "community_id": community, "kind": "self_use", "owner": owner,
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
    assert_eq!(reply.body["lifecycle"], "planned");
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

async fn event_count(app: &TestApp) -> usize {
    let reply = app.get("/api/v1/registry-events?limit=1000").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body.as_array().unwrap().len()
}

fn ids(reply: &Reply, field: &str) -> Vec<String> {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match &v[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn login_sessions_roles_and_admin_tokens() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        let resident = user(&app, "res", "resident", json!([]), json!(["TAGRES"])).await;
        let regulator = user(&app, "reg", "regulator", json!([]), json!([])).await;

        let me = call(&app, &resident, Method::GET, "/api/v1/me", None).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["role"], "resident");
        assert_eq!(me.body["user"], "res");
        let me = app.get("/api/v1/me").await;
        assert_eq!(me.body["role"], "admin", "admin bearer tokens keep working");

        let wrong = app
            .request(
                Method::POST,
                "/api/v1/login",
                Some(json!({ "user": "res", "password": "not the password" })),
                None,
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let nobody = app
            .request(
                Method::POST,
                "/api/v1/login",
                Some(json!({ "user": "nobody", "password": "whatever-password" })),
                None,
            )
            .await;
        assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.body, nobody.body, "no user enumeration");

        // Endpoints that do not check a principal are for admins; regulators may read them.
        for (token, method, status) in [
            (&resident, Method::GET, StatusCode::FORBIDDEN),
            (&regulator, Method::GET, StatusCode::OK),
        ] {
            let reply = call(&app, token, method, "/api/v1/audit", None).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
        }
        let add = call(
            &app,
            &regulator,
            Method::POST,
            "/api/v1/id-tags",
            Some(json!({ "id_tag": "TAGX", "status": "Accepted" })),
        )
        .await;
        assert_eq!(add.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/id-tags").await.body, json!([]));
        assert_eq!(
            call(&app, &resident, Method::GET, "/api/v1/users", None)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ids(
                &call(&app, &regulator, Method::GET, "/api/v1/users", None).await,
                "id"
            ),
            ["reg", "res"]
        );
        // A user reads themselves, changes their own password, but not their role.
        let own = call(&app, &resident, Method::GET, "/api/v1/users/res", None).await;
        assert_eq!(own.status, StatusCode::OK);
        assert_eq!(own.body["id_tags"], json!(["TAGRES"]));
        let other = call(&app, &resident, Method::GET, "/api/v1/users/reg", None).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN);
        let promote = call(
            &app,
            &resident,
            Method::PATCH,
            "/api/v1/users/res",
            Some(json!({ "role": "admin" })),
        )
        .await;
        assert_eq!(promote.status, StatusCode::FORBIDDEN);
        let renamed = call(
            &app,
            &resident,
            Method::PATCH,
            "/api/v1/users/res",
            Some(json!({ "name": "Resident One" })),
        )
        .await;
        assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
        assert_eq!(renamed.body["role"], "resident");

        // Logout ends the session; other sessions stay.
        let second = login(&app, "res").await;
        let out = call(&app, &resident, Method::POST, "/api/v1/logout", None).await;
        assert_eq!(out.status, StatusCode::NO_CONTENT, "{:?}", out.body);
        let gone = call(&app, &resident, Method::GET, "/api/v1/me", None).await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
        let still = call(&app, &second, Method::GET, "/api/v1/me", None).await;
        assert_eq!(still.status, StatusCode::OK);
        // Disabling a user ends their sessions at once.
        let disabled = app
            .api(
                Method::PATCH,
                "/api/v1/users/res",
                Some(json!({ "disabled": true })),
            )
            .await;
        assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
        let gone = call(&app, &second, Method::GET, "/api/v1/me", None).await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED);

        // Logins and user changes are in the audit log under the acting user.
        let audit = app.get("/api/v1/audit?limit=100").await.body;
        let actions: Vec<(String, String)> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_owned(),
                    e["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            actions.contains(&("user:res".into(), "user.update".into())),
            "{actions:?}"
        );
        assert!(
            actions.contains(&("user:res".into(), "user.login".into())),
            "{actions:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tenancy_property_manager_operator_resident_regulator() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        district(&app, "D2").await;
        community(&app, "A", "D1").await;
        community(&app, "B", "D2").await;
        let pm_a = user(
            &app,
            "pm_a",
            "property_manager",
            json!([{ "kind": "community", "id": "A" }]),
            json!([]),
        )
        .await;
        let op_d1 = user(
            &app,
            "op_d1",
            "operator",
            json!([{ "kind": "district", "id": "D1" }]),
            json!([]),
        )
        .await;
        let res = user(&app, "res", "resident", json!([]), json!(["TAGRES"])).await;
        let owner = user(&app, "owner", "charger_owner", json!([]), json!([])).await;
        let reg = user(&app, "reg", "regulator", json!([]), json!([])).await;
        let bay_a = bay(&app, "A", "A-001", Some("res")).await;
        let _bay_a2 = bay(&app, "A", "A-002", None).await;
        let bay_b = bay(&app, "B", "B-001", None).await;
        charger(&app, "CPA1", "A", Some("owner"), None).await;
        charger(&app, "CPB1", "B", None, None).await;

        let me = call(&app, &op_d1, Method::GET, "/api/v1/me", None)
            .await
            .body;
        assert_eq!(me["communities"], json!(["A"]), "district scope expanded");

        let get = |token: &str, path: &str| {
            let (app, token, path) = (&app, token.to_owned(), path.to_owned());
            async move { call(app, &token, Method::GET, &path, None).await }
        };
        // Reads: each sees their own part.
        assert_eq!(
            ids(
                &get(&pm_a, "/api/v1/registry/communities").await,
                "community_id"
            ),
            ["A"]
        );
        assert_eq!(
            ids(
                &get(&reg, "/api/v1/registry/communities").await,
                "community_id"
            ),
            ["A", "B"]
        );
        assert!(
            ids(
                &get(&res, "/api/v1/registry/communities").await,
                "community_id"
            )
            .is_empty()
        );
        assert_eq!(ids(&get(&res, "/api/v1/bays").await, "number"), ["A-001"]);
        assert_eq!(
            ids(&get(&pm_a, "/api/v1/bays").await, "number"),
            ["A-001", "A-002"]
        );
        assert_eq!(ids(&get(&reg, "/api/v1/bays").await, "number").len(), 3);
        assert_eq!(
            ids(
                &get(&owner, "/api/v1/registry/chargers").await,
                "charger_id"
            ),
            ["CPA1"]
        );
        assert!(ids(&get(&res, "/api/v1/registry/chargers").await, "charger_id").is_empty());
        assert_eq!(
            ids(
                &get(&op_d1, "/api/v1/registry/chargers").await,
                "charger_id"
            ),
            ["CPA1"]
        );
        assert_eq!(
            ids(&get(&reg, "/api/v1/registry/chargers").await, "charger_id"),
            ["CPA1", "CPB1"]
        );

        let b_bay = format!("/api/v1/bays/{bay_b}");
        let a_bay = format!("/api/v1/bays/{bay_a}");
        for (token, path, status) in [
            (&pm_a, "/api/v1/registry/communities/A", StatusCode::OK),
            (
                &pm_a,
                "/api/v1/registry/communities/B",
                StatusCode::FORBIDDEN,
            ),
            (
                &pm_a,
                "/api/v1/registry/communities/A/figures",
                StatusCode::OK,
            ),
            (
                &pm_a,
                "/api/v1/registry/communities/B/figures",
                StatusCode::FORBIDDEN,
            ),
            (
                &pm_a,
                "/api/v1/registry/communities/B/bays",
                StatusCode::FORBIDDEN,
            ),
            (&pm_a, b_bay.as_str(), StatusCode::FORBIDDEN),
            (
                &pm_a,
                "/api/v1/registry/chargers/CPB1",
                StatusCode::FORBIDDEN,
            ),
            (&pm_a, "/api/v1/registry/chargers/CPA1", StatusCode::OK),
            (&pm_a, "/api/v1/registry-events", StatusCode::FORBIDDEN),
            (
                &op_d1,
                "/api/v1/registry/chargers/CPB1",
                StatusCode::FORBIDDEN,
            ),
            (&res, a_bay.as_str(), StatusCode::OK),
            (&res, b_bay.as_str(), StatusCode::FORBIDDEN),
            (
                &res,
                "/api/v1/registry/communities/A",
                StatusCode::FORBIDDEN,
            ),
            (
                &res,
                "/api/v1/registry/chargers/CPA1",
                StatusCode::FORBIDDEN,
            ),
            (&res, "/api/v1/registry-events", StatusCode::FORBIDDEN),
            (&owner, "/api/v1/registry/chargers/CPA1", StatusCode::OK),
            (
                &owner,
                "/api/v1/registry/chargers/CPA1/transfers",
                StatusCode::OK,
            ),
            (
                &owner,
                "/api/v1/registry/chargers/CPB1",
                StatusCode::FORBIDDEN,
            ),
            (&reg, "/api/v1/registry/communities/B", StatusCode::OK),
            (
                &reg,
                "/api/v1/registry/communities/B/figures",
                StatusCode::OK,
            ),
            (&reg, "/api/v1/registry/communities/B/bays", StatusCode::OK),
            (&reg, b_bay.as_str(), StatusCode::OK),
            (&reg, "/api/v1/registry/chargers/CPB1", StatusCode::OK),
            (&reg, "/api/v1/registry-events", StatusCode::OK),
            (&reg, "/api/v1/audit", StatusCode::OK),
        ] {
            let reply = get(token, path).await;
            assert_eq!(reply.status, status, "GET {path}: {:?}", reply.body);
        }
        let figures = get(&pm_a, "/api/v1/registry/communities/A/figures")
            .await
            .body;
        assert_eq!(figures["bays"], 2);
        assert_eq!(figures["bays_with_chargers"], 2);
        assert_eq!(figures["chargers"], 1);
        assert_eq!(figures["chargers_active"], 1);

        // Changes refused: nothing changes, no event is emitted.
        let events = event_count(&app).await;
        let facts = json!({ "address": "elsewhere", "district_id": "D2", "property_manager": "X" });
        let new_bay = json!({ "number": "X-1", "tenure": "public", "charger": "none" });
        let charger_facts = json!({ "community_id": "B", "kind": "public" });
        let b_facts_path = "/api/v1/registry/communities/B";
        let b_bays_path = "/api/v1/registry/communities/B/bays";
        let forbidden: Vec<(&str, Method, String, Value)> = vec![
            (
                pm_a.as_str(),
                Method::PUT,
                b_facts_path.into(),
                facts.clone(),
            ),
            (
                pm_a.as_str(),
                Method::POST,
                b_bays_path.into(),
                new_bay.clone(),
            ),
            (pm_a.as_str(), Method::PUT, b_bay.clone(), new_bay.clone()),
            (
                pm_a.as_str(),
                Method::PUT,
                "/api/v1/registry/chargers/CPA1".into(),
                charger_facts.clone(),
            ),
            (
                pm_a.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPA1/lifecycle".into(),
                json!({ "to": "suspended" }),
            ),
            (
                op_d1.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPB1/lifecycle".into(),
                json!({ "to": "suspended" }),
            ),
            (
                op_d1.as_str(),
                Method::PUT,
                "/api/v1/registry/chargers/CPB1".into(),
                charger_facts.clone(),
            ),
            (
                op_d1.as_str(),
                Method::POST,
                b_bays_path.into(),
                new_bay.clone(),
            ),
            (res.as_str(), Method::PUT, a_bay.clone(), new_bay.clone()),
            (
                res.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPA1/transfers".into(),
                json!({ "to_user": "res" }),
            ),
            (
                res.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPA1/lifecycle".into(),
                json!({ "to": "suspended" }),
            ),
            (
                owner.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPA1/lifecycle".into(),
                json!({ "to": "decommissioned" }),
            ),
            (
                reg.as_str(),
                Method::PUT,
                b_facts_path.into(),
                facts.clone(),
            ),
            (
                reg.as_str(),
                Method::POST,
                b_bays_path.into(),
                new_bay.clone(),
            ),
            (reg.as_str(), Method::PUT, b_bay.clone(), new_bay.clone()),
            (
                reg.as_str(),
                Method::PUT,
                "/api/v1/registry/chargers/CPB1".into(),
                charger_facts.clone(),
            ),
            (
                reg.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPB1/lifecycle".into(),
                json!({ "to": "suspended" }),
            ),
            (
                reg.as_str(),
                Method::POST,
                "/api/v1/registry/chargers/CPA1/transfers".into(),
                json!({ "to_user": "res" }),
            ),
            (
                reg.as_str(),
                Method::PUT,
                "/api/v1/districts/D3".into(),
                json!({ "name": "New" }),
            ),
            (
                reg.as_str(),
                Method::POST,
                "/api/v1/users".into(),
                json!({ "id": "x", "name": "x", "password": "long enough", "role": "admin" }),
            ),
            (
                reg.as_str(),
                Method::DELETE,
                "/api/v1/users/res".into(),
                Value::Null,
            ),
            (
                pm_a.as_str(),
                Method::PUT,
                "/api/v1/registry/communities/A".into(),
                json!({ "district_id": "D2" }),
            ),
        ];
        for (token, method, path, body) in forbidden {
            let body = (!body.is_null()).then_some(body);
            let reply = call(&app, token, method.clone(), &path, body).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {:?}",
                reply.body
            );
        }
        assert_eq!(event_count(&app).await, events);
        let b = app.get("/api/v1/registry/communities/B").await.body;
        assert_eq!(b["address"], "B Garden Road");
        assert_eq!(
            ids(
                &app.get("/api/v1/registry/communities/B/bays").await,
                "number"
            ),
            ["B-001"]
        );
        assert!(app.get("/api/v1/users/res").await.status.is_success());
        assert_eq!(
            app.get("/api/v1/districts/D3").await.status,
            StatusCode::NOT_FOUND
        );

        // Allowed changes within scope.
        let ok = call(
            &app,
            &pm_a,
            Method::PUT,
            "/api/v1/registry/communities/A",
            Some(
                json!({ "address": "1 New Road", "district_id": "D1", "property_manager": "Acme" }),
            ),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
        let ok = call(
            &app,
            &pm_a,
            Method::POST,
            "/api/v1/registry/communities/A/bays",
            Some(
                json!({ "number": "A-003", "tenure": "leased", "lease_end": "2030-06-30T00:00:00Z",
                         "holder": "res", "charger": "reserved" }),
            ),
        )
        .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
        let ok = call(
            &app,
            &op_d1,
            Method::POST,
            "/api/v1/registry/chargers/CPA1/lifecycle",
            Some(json!({ "to": "suspended" })),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
        // The owner may switch their operating charger back on.
        let ok = call(
            &app,
            &owner,
            Method::POST,
            "/api/v1/registry/chargers/CPA1/lifecycle",
            Some(json!({ "to": "active" })),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
        assert_eq!(event_count(&app).await, events + 4);
        assert_eq!(
            ids(&get(&res, "/api/v1/bays").await, "number"),
            ["A-001", "A-003"]
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn decommission_waits_for_the_live_transaction_and_revokes_the_charger() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        app.add_charger("CP1", Some("charger secret")).await;
        let facts = json!({ "community_id": "A", "kind": "public", "operator": "GridCo" });
        let reply = app
            .api(Method::PUT, "/api/v1/registry/chargers/CP1", Some(facts))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let lifecycle = |to: &'static str| {
            let app = &app;
            async move {
                app.post(
                    "/api/v1/registry/chargers/CP1/lifecycle",
                    json!({ "to": to }),
                )
                .await
            }
        };
        assert_eq!(
            lifecycle("active").await.status,
            StatusCode::CONFLICT,
            "planned → active skips installed"
        );
        assert_eq!(
            lifecycle("transferred").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(lifecycle("installed").await.status, StatusCode::OK);
        assert_eq!(lifecycle("active").await.status, StatusCode::OK);

        app.add_tag("GOOD", "Accepted", None).await;
        let mut cp = app.charge_point("CP1", Some("charger secret")).await;
        cp.boot().await;
        let started = cp
            .call_ok(
                "StartTransaction",
                json!({ "connectorId": 1, "idTag": "GOOD", "meterStart": 0,
                        "timestamp": "2026-11-26T08:00:00Z" }),
            )
            .await;
        let tx = started["transactionId"].as_i64().unwrap();
        let events = event_count(&app).await;
        let refused = lifecycle("decommissioned").await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
        assert!(
            refused.body["error"]
                .as_str()
                .unwrap()
                .contains("live transaction")
        );
        assert_eq!(event_count(&app).await, events, "nothing emitted");
        // Still connected and serving.
        let heartbeat = cp.call_ok("Heartbeat", json!({})).await;
        assert!(heartbeat["currentTime"].is_string());
        let status = app.get("/api/v1/registry/chargers/CP1").await.body;
        assert_eq!(status["lifecycle"], "active");
        assert_eq!(status["connected"], true);

        cp.call_ok(
            "StopTransaction",
            json!({ "transactionId": tx, "meterStop": 5000, "timestamp": "2026-11-26T09:00:00Z" }),
        )
        .await;
        let done = lifecycle("decommissioned").await;
        assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
        assert_eq!(done.body["lifecycle"], "decommissioned");
        cp.expect_closed().await;
        assert_eq!(
            app.handshake_status("CP1", Some("ocpp1.6"), Some(("CP1", "charger secret")))
                .await,
            StatusCode::UNAUTHORIZED,
            "the gateway refuses a decommissioned charger"
        );
        assert_eq!(lifecycle("active").await.status, StatusCode::CONFLICT);
        let facts = json!({ "community_id": "A", "kind": "public" });
        let reply = app
            .api(Method::PUT, "/api/v1/registry/chargers/CP1", Some(facts))
            .await;
        assert_eq!(reply.status, StatusCode::CONFLICT);

        let events = app.get("/api/v1/registry-events").await.body;
        let last = events.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "charger.lifecycle");
        assert_eq!(last["charger_id"], "CP1");
        assert_eq!(last["community_id"], "A");
        assert_eq!(last["payload"]["to"], "decommissioned");
        let after = last["id"].as_i64().unwrap();
        let none = app
            .get(&format!("/api/v1/registry-events?after={after}"))
            .await
            .body;
        assert_eq!(none, json!([]));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_transfer_takes_effect_only_when_the_new_owner_accepts() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        let alice = user(&app, "alice", "charger_owner", json!([]), json!([])).await;
        let bob = user(&app, "bob", "charger_owner", json!([]), json!([])).await;
        let carol = user(&app, "carol", "resident", json!([]), json!([])).await;
        charger(&app, "CP1", "A", Some("alice"), None).await;

        // Owners change only through a transfer, not by editing the facts.
        let edit = app
            .api(
                Method::PUT,
                "/api/v1/registry/chargers/CP1",
                Some(json!({ "community_id": "A", "kind": "self_use", "owner": "bob" })),
            )
            .await;
        assert_eq!(edit.status, StatusCode::BAD_REQUEST);
        assert!(edit.body["error"].as_str().unwrap().contains("owner"));

        let stranger = call(
            &app,
            &carol,
            Method::POST,
            "/api/v1/registry/chargers/CP1/transfers",
            Some(json!({ "to_user": "carol" })),
        )
        .await;
        assert_eq!(stranger.status, StatusCode::FORBIDDEN);
        let unknown = call(
            &app,
            &alice,
            Method::POST,
            "/api/v1/registry/chargers/CP1/transfers",
            Some(json!({ "to_user": "nobody" })),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        assert!(unknown.body["error"].as_str().unwrap().contains("to_user"));

        let t = call(
            &app,
            &alice,
            Method::POST,
            "/api/v1/registry/chargers/CP1/transfers",
            Some(json!({ "to_user": "bob" })),
        )
        .await;
        assert_eq!(t.status, StatusCode::CREATED, "{:?}", t.body);
        assert_eq!(t.body["state"], "pending");
        let id = t.body["id"].as_i64().unwrap();
        let again = call(
            &app,
            &alice,
            Method::POST,
            "/api/v1/registry/chargers/CP1/transfers",
            Some(json!({ "to_user": "carol" })),
        )
        .await;
        assert_eq!(
            again.status,
            StatusCode::CONFLICT,
            "one pending transfer at a time"
        );

        let owner = app.get("/api/v1/registry/chargers/CP1").await.body;
        assert_eq!(owner["owner"], "alice", "nothing changes before acceptance");
        assert_eq!(owner["lifecycle"], "active");
        // Nobody accepts for bob: not the current owner, not an admin.
        for token in [&alice, &carol, &app.token] {
            let reply = call(
                &app,
                token,
                Method::POST,
                &format!("/api/v1/transfers/{id}/accept"),
                None,
            )
            .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        assert_eq!(
            call(
                &app,
                &bob,
                Method::GET,
                &format!("/api/v1/transfers/{id}"),
                None
            )
            .await
            .status,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &app,
                &carol,
                Method::GET,
                &format!("/api/v1/transfers/{id}"),
                None
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );
        let bad = call(
            &app,
            &bob,
            Method::POST,
            &format!("/api/v1/transfers/{id}/maybe"),
            None,
        )
        .await;
        assert_eq!(bad.status, StatusCode::NOT_FOUND);
        let accepted = call(
            &app,
            &bob,
            Method::POST,
            &format!("/api/v1/transfers/{id}/accept"),
            None,
        )
        .await;
        assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
        assert_eq!(accepted.body["state"], "accepted");
        let now = app.get("/api/v1/registry/chargers/CP1").await.body;
        assert_eq!(now["owner"], "bob");
        assert_eq!(now["lifecycle"], "transferred");
        let twice = call(
            &app,
            &bob,
            Method::POST,
            &format!("/api/v1/transfers/{id}/accept"),
            None,
        )
        .await;
        assert_eq!(twice.status, StatusCode::CONFLICT);
        // The new owner sees it, the old one no longer does.
        assert_eq!(
            call(
                &app,
                &bob,
                Method::GET,
                "/api/v1/registry/chargers/CP1",
                None
            )
            .await
            .status,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &app,
                &alice,
                Method::GET,
                "/api/v1/registry/chargers/CP1",
                None
            )
            .await
            .status,
            StatusCode::FORBIDDEN
        );

        // Declined: nothing changes.
        let t = call(
            &app,
            &bob,
            Method::POST,
            "/api/v1/registry/chargers/CP1/transfers",
            Some(json!({ "to_user": "carol" })),
        )
        .await;
        let id = t.body["id"].as_i64().unwrap();
        let declined = call(
            &app,
            &carol,
            Method::POST,
            &format!("/api/v1/transfers/{id}/decline"),
            None,
        )
        .await;
        assert_eq!(declined.body["state"], "declined");
        assert_eq!(
            app.get("/api/v1/registry/chargers/CP1").await.body["owner"],
            "bob"
        );

        let kinds: Vec<String> = ids(&app.get("/api/v1/registry-events").await, "kind");
        assert!(
            kinds.ends_with(&[
                "charger.transfer_requested".into(),
                "charger.transferred".into(),
                "charger.transfer_requested".into(),
                "charger.transfer_declined".into(),
            ]),
            "{kinds:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        app.add_charger("CP1", None).await;
        let events = event_count(&app).await;
        let cases: Vec<(Method, &str, Value, StatusCode, &str)> = vec![
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": "1", "tenure": "leased", "charger": "none" }), StatusCode::BAD_REQUEST, "lease_end"),
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": "1", "tenure": "owned", "lease_end": "2030-01-01T00:00:00Z", "charger": "none" }),
             StatusCode::BAD_REQUEST, "lease_end"),
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": "1", "tenure": "rented", "charger": "none" }), StatusCode::UNPROCESSABLE_ENTITY, "tenure"),
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": "1", "tenure": "owned", "charger": "none", "colour": "red" }),
             StatusCode::UNPROCESSABLE_ENTITY, "colour"),
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": " ", "tenure": "owned", "charger": "none" }), StatusCode::BAD_REQUEST, "number"),
            (Method::POST, "/api/v1/registry/communities/A/bays",
             json!({ "number": "1", "tenure": "owned", "holder": "ghost", "charger": "none" }),
             StatusCode::BAD_REQUEST, "holder"),
            (Method::POST, "/api/v1/registry/communities/NOPE/bays",
             json!({ "number": "1", "tenure": "owned", "charger": "none" }), StatusCode::NOT_FOUND, "NOPE"),
            (Method::PUT, "/api/v1/bays/999999",
             json!({ "number": "1", "tenure": "owned", "charger": "none" }), StatusCode::NOT_FOUND, "999999"),
            (Method::PUT, "/api/v1/registry/communities/A",
             json!({ "district_id": "NOPE" }), StatusCode::BAD_REQUEST, "district_id"),
            (Method::PUT, "/api/v1/registry/chargers/CP1",
             json!({ "community_id": "A", "kind": "public", "phases": 2 }), StatusCode::BAD_REQUEST, "phases"),
            (Method::PUT, "/api/v1/registry/chargers/CP1",
             json!({ "community_id": "A", "kind": "public", "rated_power_kw": -7 }), StatusCode::BAD_REQUEST, "rated_power_kw"),
            (Method::PUT, "/api/v1/registry/chargers/CP1",
             json!({ "community_id": "A", "kind": "public",
                     "connectors": [{ "connector_id": 1, "standard": "GB/T" }, { "connector_id": 1, "standard": "GB/T" }] }),
             StatusCode::BAD_REQUEST, "connector_id"),
            (Method::PUT, "/api/v1/registry/chargers/CP1",
             json!({ "community_id": "NOPE", "kind": "public" }), StatusCode::BAD_REQUEST, "community_id"),
            (Method::PUT, "/api/v1/registry/chargers/CP1",
             json!({ "community_id": "A", "kind": "public", "bay_id": 424242 }), StatusCode::BAD_REQUEST, "bay_id"),
            (Method::PUT, "/api/v1/registry/chargers/GHOST",
             json!({ "community_id": "A", "kind": "public" }), StatusCode::NOT_FOUND, "GHOST"),
            (Method::POST, "/api/v1/registry/chargers/CP1/lifecycle",
             json!({ "to": "installed" }), StatusCode::NOT_FOUND, "CP1"),
            (Method::POST, "/api/v1/users",
             json!({ "id": "u1", "name": "U", "password": "short", "role": "resident" }), StatusCode::BAD_REQUEST, "password"),
            (Method::POST, "/api/v1/users",
             json!({ "id": "u1", "name": "U", "password": "long enough", "role": "king" }), StatusCode::BAD_REQUEST, "role"),
            (Method::POST, "/api/v1/users",
             json!({ "id": "u 1", "name": "U", "password": "long enough", "role": "resident" }), StatusCode::BAD_REQUEST, "id"),
            (Method::POST, "/api/v1/users",
             json!({ "id": "u1", "name": "U", "password": "long enough", "role": "resident",
                     "scopes": [{ "kind": "community", "id": "A" }] }), StatusCode::BAD_REQUEST, "scopes"),
            (Method::POST, "/api/v1/users",
             json!({ "id": "u1", "name": "U", "password": "long enough", "role": "resident",
                     "id_tags": ["THIS-TAG-IS-FAR-TOO-LONG-FOR-OCPP"] }), StatusCode::BAD_REQUEST, "id_tags"),
            (Method::PUT, "/api/v1/districts/D1", json!({ "name": "" }), StatusCode::BAD_REQUEST, "name"),
        ];
        for (method, path, body, status, needle) in cases {
            let reply = app.api(method.clone(), path, Some(body.clone())).await;
            assert_eq!(reply.status, status, "{method} {path} {body}: {:?}", reply.body);
            let message = reply.body["error"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{method} {path} {body}: {message:?} should name {needle}");
        }
        let limit = app.get("/api/v1/registry-events?limit=0").await;
        assert_eq!(limit.status, StatusCode::BAD_REQUEST);
        assert!(limit.body["error"].as_str().unwrap().contains("limit"));

        // Malformed and oversized bodies.
        let malformed = app
            .request_raw(Method::POST, "/api/v1/registry/communities/A/bays", b"{\"number\": ".to_vec())
            .await;
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST, "{:?}", malformed.body);
        let huge = format!("{{\"number\": \"{}\", \"tenure\": \"owned\", \"charger\": \"none\"}}", "9".repeat(3 << 20));
        let oversized = app
            .request_raw(Method::POST, "/api/v1/registry/communities/A/bays", huge.into_bytes())
            .await;
        assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", oversized.body);

        assert_eq!(event_count(&app).await, events, "no refused change emitted an event");
        assert_eq!(app.get("/api/v1/registry/communities/A/bays").await.body, json!([]));
        assert_eq!(app.get("/api/v1/registry/chargers").await.body, json!([]));
        assert_eq!(app.get("/api/v1/users").await.body, json!([]));
        assert_eq!(app.get("/api/v1/registry/communities/A").await.body["district_id"], "D1");

        // Every endpoint is in the OpenAPI document.
        let doc = app.request(Method::GET, "/api/v1/openapi.json", None, None).await.body;
        for path in [
            "/api/v1/login", "/api/v1/logout", "/api/v1/me", "/api/v1/users", "/api/v1/users/{id}",
            "/api/v1/districts", "/api/v1/districts/{id}", "/api/v1/registry/communities",
            "/api/v1/registry/communities/{id}", "/api/v1/registry/communities/{id}/figures",
            "/api/v1/registry/communities/{id}/bays", "/api/v1/bays", "/api/v1/bays/{id}",
            "/api/v1/registry/chargers", "/api/v1/registry/chargers/{id}",
            "/api/v1/registry/chargers/{id}/lifecycle", "/api/v1/registry/chargers/{id}/transfers",
            "/api/v1/transfers/{id}", "/api/v1/transfers/{id}/{decision}", "/api/v1/registry-events",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn seed_fills_a_district_whose_users_can_log_in() {
    // SQLite only: the seed runs before the server starts, on the database the server opens.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("seeded");
    let mut out = Vec::new();
    let args = orderly_server::seed::SeedArgs {
        storage: orderly_server::cli::StorageArgs {
            data_dir: Some(data_dir.clone()),
            ..Default::default()
        },
    };
    orderly_server::seed::run(args, &mut out).await.unwrap();
    let printed = String::from_utf8(out).unwrap();
    let password_of = |user: &str| {
        printed
            .lines()
            .find_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                (parts.first() == Some(&user)).then(|| parts.last().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("{user} not printed: {printed}"))
    };
    let app = spawn_app(crate::helpers::Backend::Sqlite, |c| {
        c.data_dir = data_dir.clone()
    })
    .await;
    let login_as = |user: &'static str| {
        let (app, password) = (&app, password_of(user));
        async move {
            let reply = app
                .request(
                    Method::POST,
                    "/api/v1/login",
                    Some(json!({ "user": user, "password": password })),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{user}: {:?}", reply.body);
            reply.body["token"].as_str().unwrap().to_owned()
        }
    };
    let pm = login_as("pm-greenleaf").await;
    let seen = call(&app, &pm, Method::GET, "/api/v1/registry/communities", None).await;
    assert_eq!(ids(&seen, "community_id"), ["garden-court", "river-view"]);
    let figures = call(
        &app,
        &pm,
        Method::GET,
        "/api/v1/registry/communities/garden-court/figures",
        None,
    )
    .await;
    assert_eq!(figures.body["bays"], 12, "{:?}", figures.body);
    assert!(figures.body["bays_with_chargers"].as_i64().unwrap() > 0);
    assert!(figures.body["reserved_bays"].as_i64().unwrap() > 0);
    let resident = login_as("res-1-001").await;
    let bays = call(&app, &resident, Method::GET, "/api/v1/bays", None).await;
    assert_eq!(ids(&bays, "number"), ["B1-001"]);
    let chargers = call(
        &app,
        &resident,
        Method::GET,
        "/api/v1/registry/chargers",
        None,
    )
    .await;
    assert_eq!(ids(&chargers, "charger_id"), ["GARDEN-COURT-001"]);
    assert_eq!(chargers.body[0]["lifecycle"], "active");
    // Private chargers shared with neighbours: weekday windows with the agreement's terms.
    let neighbour = login_as("res-1-002").await;
    let offers = call(
        &app,
        &neighbour,
        Method::GET,
        "/api/v1/sharing/offers?community=garden-court",
        None,
    )
    .await;
    assert_eq!(offers.status, StatusCode::OK, "{:?}", offers.body);
    let offers = offers.body.as_array().unwrap();
    assert!(!offers.is_empty(), "no sharing offers seeded");
    assert!(
        offers
            .iter()
            .all(|o| o["terms"]["price_per_kwh_cny"] == 1.2)
    );
    // Insurance: some cover ends within 30 days, some is missing, so alerts show.
    let alerts = call(&app, &pm, Method::GET, "/api/v1/insurance/alerts", None).await;
    assert_eq!(alerts.status, StatusCode::OK, "{:?}", alerts.body);
    let statuses: Vec<&str> = alerts
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"expiring"), "{statuses:?}");
    assert!(statuses.contains(&"missing"), "{statuses:?}");
    let regulator = login_as("regulator").await;
    let all = call(
        &app,
        &regulator,
        Method::GET,
        "/api/v1/registry/communities",
        None,
    )
    .await;
    assert_eq!(ids(&all, "community_id").len(), 3);
    let operator = login_as("operator-chaoyang").await;
    let theirs = call(
        &app,
        &operator,
        Method::GET,
        "/api/v1/registry/communities",
        None,
    )
    .await;
    assert_eq!(ids(&theirs, "community_id"), ["sunrise"]);
    // Every role got a user.
    for role in [
        "resident",
        "charger_owner",
        "property_manager",
        "operator",
        "grid_aggregator",
        "regulator",
        "admin",
    ] {
        assert!(
            printed.contains(&format!(" {role} ")),
            "no {role} in {printed}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_resident_sees_only_their_own_sessions() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        community(&app, "B", "D1").await;
        let res1 = user(&app, "res1", "resident", json!([]), json!(["TAG1"])).await;
        let res2 = user(&app, "res2", "resident", json!([]), json!(["TAG2"])).await;
        let pm_a = user(
            &app,
            "pm_a",
            "property_manager",
            json!([{ "kind": "community", "id": "A" }]),
            json!([]),
        )
        .await;
        let pm_b = user(
            &app,
            "pm_b",
            "property_manager",
            json!([{ "kind": "community", "id": "B" }]),
            json!([]),
        )
        .await;
        let reg = user(&app, "reg", "regulator", json!([]), json!([])).await;
        charger(&app, "CPA", "A", None, None).await;
        app.add_tag("TAG1", "Accepted", None).await;
        app.add_tag("TAG2", "Accepted", None).await;
        let mut cp = app.charge_point("CPA", None).await;
        cp.boot().await;
        let mut txs = Vec::new();
        for (connector, tag) in [(1, "TAG1"), (2, "TAG2")] {
            let started = cp
                .call_ok(
                    "StartTransaction",
                    json!({ "connectorId": connector, "idTag": tag, "meterStart": 0,
                            "timestamp": "2026-11-26T08:00:00Z" }),
                )
                .await;
            txs.push(started["transactionId"].as_i64().unwrap().to_string());
        }
        let list = |token: &str| {
            let (app, token) = (&app, token.to_owned());
            async move {
                ids(
                    &call(app, &token, Method::GET, "/api/v1/transactions", None).await,
                    "id",
                )
            }
        };
        assert_eq!(list(&res1).await, [txs[0].clone()]);
        assert_eq!(list(&res2).await, [txs[1].clone()]);
        assert!(list(&pm_b).await.is_empty());
        assert_eq!(list(&pm_a).await.len(), 2);
        assert_eq!(list(&reg).await.len(), 2);
        for (token, tx, status) in [
            (&res1, &txs[0], StatusCode::OK),
            (&res1, &txs[1], StatusCode::FORBIDDEN),
            (&pm_b, &txs[0], StatusCode::FORBIDDEN),
            (&pm_a, &txs[1], StatusCode::OK),
            (&reg, &txs[1], StatusCode::OK),
        ] {
            for path in [
                format!("/api/v1/transactions/{tx}"),
                format!("/api/v1/transactions/{tx}/meter-values"),
            ] {
                let reply = call(&app, token, Method::GET, &path, None).await;
                assert_eq!(reply.status, status, "GET {path}: {:?}", reply.body);
            }
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn insurance_faults_and_inspections() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        community(&app, "B", "D1").await;
        let alice = user(&app, "alice", "charger_owner", json!([]), json!([])).await;
        let op_a = user(&app, "op_a", "operator", json!([{ "kind": "community", "id": "A" }]), json!([])).await;
        let pm_a = user(&app, "pm_a", "property_manager", json!([{ "kind": "community", "id": "A" }]), json!([])).await;
        let pm_b = user(&app, "pm_b", "property_manager", json!([{ "kind": "community", "id": "B" }]), json!([])).await;
        let res = user(&app, "res", "resident", json!([]), json!([])).await;
        let reg = user(&app, "reg", "regulator", json!([]), json!([])).await;
        charger(&app, "CP1", "A", Some("alice"), None).await;
        charger(&app, "CPB", "B", None, None).await;

        let alerts = |token: &str, query: &str| {
            let (app, token, path) = (&app, token.to_owned(), format!("/api/v1/insurance/alerts{query}"));
            async move {
                let reply = call(app, &token, Method::GET, &path, None).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                reply.body.as_array().unwrap().clone()
            }
        };
        let missing = alerts(&op_a, "").await;
        assert_eq!(missing.len(), 2, "no cover of either kind: {missing:?}");
        assert!(missing.iter().all(|a| a["status"] == "missing" && a["charger_id"] == "CP1"));
        assert_eq!(alerts(&reg, "").await.len(), 4, "the regulator sees both chargers");
        assert!(alerts(&res, "").await.is_empty());

        let now = jiff::Timestamp::now();
        let day = jiff::SignedDuration::from_hours(24);
        let policy = |kind: &str, number: &str, start: jiff::Timestamp, end: jiff::Timestamp| {
            json!({ "kind": kind, "insurer": "PICC", "number": number, "holder": "Alice",
                    "coverage_cny": 1_000_000.0, "start": start.to_string(), "end": end.to_string() })
        };
        let safety = policy("charging_safety", "CS-1", now - day, now + day * 10);
        let added = call(&app, &alice, Method::POST, "/api/v1/registry/chargers/CP1/insurance", Some(safety.clone())).await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
        let product = policy("product_liability", "PL-1", now - day, now + day * 700);
        let added = call(&app, &op_a, Method::POST, "/api/v1/registry/chargers/CP1/insurance", Some(product)).await;
        assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
        let expiring = alerts(&op_a, "").await;
        assert_eq!(expiring.len(), 1, "{expiring:?}");
        assert_eq!(expiring[0]["kind"], "charging_safety");
        assert_eq!(expiring[0]["status"], "expiring");
        assert!((9..=10).contains(&expiring[0]["days_left"].as_i64().unwrap()));
        assert!(alerts(&op_a, "?days=5").await.is_empty());
        let cover = call(&app, &alice, Method::GET, "/api/v1/registry/chargers/CP1/insurance", None).await;
        assert_eq!(cover.body["covered"], true, "{:?}", cover.body);

        let events = event_count(&app).await;
        for (token, body, status, needle) in [
            (&alice, policy("charging_safety", "X-1", now, now - day), StatusCode::BAD_REQUEST, "end"),
            (&alice, json!({ "kind": "charging_safety", "insurer": "PICC", "number": "X-2", "holder": "A",
                             "coverage_cny": 0.0, "start": now.to_string(), "end": (now + day).to_string() }),
             StatusCode::BAD_REQUEST, "coverage_cny"),
            (&alice, policy("charging_safety", "CS-1", now, now + day), StatusCode::CONFLICT, "CS-1"),
            (&alice, policy("theft", "X-3", now, now + day), StatusCode::UNPROCESSABLE_ENTITY, "kind"),
            (&alice, policy("charging_safety", "", now, now + day), StatusCode::BAD_REQUEST, "number"),
            (&pm_b, policy("charging_safety", "X-4", now, now + day), StatusCode::FORBIDDEN, "forbidden"),
            (&res, policy("charging_safety", "X-5", now, now + day), StatusCode::FORBIDDEN, "forbidden"),
            (&reg, policy("charging_safety", "X-6", now, now + day), StatusCode::FORBIDDEN, "forbidden"),
        ] {
            let reply = call(&app, token, Method::POST, "/api/v1/registry/chargers/CP1/insurance", Some(body)).await;
            assert_eq!(reply.status, status, "{:?}", reply.body);
            assert!(reply.body["error"].as_str().unwrap().contains(needle), "{:?}", reply.body);
        }
        let unknown = call(&app, &op_a, Method::POST, "/api/v1/registry/chargers/NOPE/insurance",
            Some(policy("charging_safety", "X-7", now, now + day))).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(event_count(&app).await, events, "refused policies emitted nothing");
        assert_eq!(
            call(&app, &pm_b, Method::GET, "/api/v1/registry/chargers/CP1/insurance", None).await.status,
            StatusCode::FORBIDDEN
        );

        // Faults: from people and from the charger itself.
        let reported = call(&app, &res, Method::POST, "/api/v1/registry/chargers/CP1/faults",
            Some(json!({ "description": "cable holster broken", "connector_id": 1 }))).await;
        assert_eq!(reported.status, StatusCode::CREATED, "{:?}", reported.body);
        let fault = reported.body["id"].as_i64().unwrap();
        let by_regulator = call(&app, &reg, Method::POST, "/api/v1/registry/chargers/CP1/faults",
            Some(json!({ "description": "x" }))).await;
        assert_eq!(by_regulator.status, StatusCode::FORBIDDEN);
        let mut cp = app.charge_point("CP1", None).await;
        cp.boot().await;
        cp.call_ok("StatusNotification",
            json!({ "connectorId": 1, "errorCode": "GroundFailure", "status": "Faulted" })).await;
        cp.call_ok("StatusNotification",
            json!({ "connectorId": 1, "errorCode": "NoError", "status": "Available" })).await;
        let faults = call(&app, &alice, Method::GET, "/api/v1/registry/chargers/CP1/faults", None).await;
        assert_eq!(faults.status, StatusCode::OK, "{:?}", faults.body);
        assert_eq!(faults.body["reports"][0]["description"], "cable holster broken");
        assert_eq!(faults.body["reports"][0]["reported_by"], "user:res");
        let ocpp = faults.body["ocpp"].as_array().unwrap();
        assert_eq!(ocpp.len(), 1, "{ocpp:?}");
        assert_eq!(ocpp[0]["error_code"], "GroundFailure");
        let resolve = |token: &str| {
            let (app, token) = (&app, token.to_owned());
            async move {
                call(app, &token, Method::POST, &format!("/api/v1/faults/{fault}/resolve"),
                    Some(json!({ "resolution": "holster replaced" }))).await
            }
        };
        assert_eq!(resolve(&pm_b).await.status, StatusCode::FORBIDDEN);
        assert_eq!(resolve(&alice).await.status, StatusCode::FORBIDDEN);
        let done = resolve(&op_a).await;
        assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
        assert_eq!(done.body["state"], "resolved");
        assert_eq!(resolve(&op_a).await.status, StatusCode::CONFLICT);

        // Inspection rounds with findings and follow-up.
        let round = json!({ "at": "2026-11-20T10:00:00Z", "notes": "quarterly round",
            "findings": [{ "charger_id": "CP1", "severity": "minor", "description": "label faded",
                           "due": "2026-12-31T00:00:00Z" },
                         { "severity": "info", "description": "bay lines repainted" }] });
        let forbidden = call(&app, &pm_b, Method::POST, "/api/v1/registry/communities/A/inspections", Some(round.clone())).await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
        let events = event_count(&app).await;
        for (bad, needle) in [
            (json!({ "at": "2026-11-20T10:00:00Z", "findings": [{ "charger_id": "CPB", "severity": "minor", "description": "x" }] }),
             "findings.charger_id"),
            (json!({ "at": "2026-11-20T10:00:00Z", "findings": [{ "severity": "awful", "description": "x" }] }),
             "findings.severity"),
            (json!({ "at": "yesterday" }), "at"),
        ] {
            let reply = call(&app, &pm_a, Method::POST, "/api/v1/registry/communities/A/inspections", Some(bad)).await;
            assert!(reply.status.is_client_error(), "{:?}", reply.body);
            assert!(reply.body["error"].as_str().unwrap().contains(needle), "{:?}", reply.body);
        }
        assert_eq!(event_count(&app).await, events);
        let created = call(&app, &pm_a, Method::POST, "/api/v1/registry/communities/A/inspections", Some(round)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["inspector"], "user:pm_a");
        assert_eq!(created.body["findings"].as_array().unwrap().len(), 2);
        let finding = created.body["findings"][0]["id"].as_i64().unwrap();
        let listed = call(&app, &op_a, Method::GET, "/api/v1/registry/communities/A/inspections", None).await;
        assert_eq!(listed.body.as_array().unwrap().len(), 1);
        assert_eq!(
            call(&app, &pm_b, Method::GET, "/api/v1/registry/communities/A/inspections", None).await.status,
            StatusCode::FORBIDDEN
        );
        let follow = |token: &str, body: Value| {
            let (app, token) = (&app, token.to_owned());
            async move {
                call(app, &token, Method::POST, &format!("/api/v1/findings/{finding}/follow-up"), Some(body)).await
            }
        };
        assert_eq!(follow(&pm_b, json!({ "note": "x" })).await.status, StatusCode::FORBIDDEN);
        assert_eq!(follow(&reg, json!({ "note": "x" })).await.status, StatusCode::FORBIDDEN);
        let open = follow(&op_a, json!({ "note": "new label ordered" })).await;
        assert_eq!(open.body["state"], "open", "{:?}", open.body);
        let closed = follow(&pm_a, json!({ "note": "label replaced", "done": true })).await;
        assert_eq!(closed.body["state"], "done");
        assert_eq!(closed.body["follow_up"], "new label ordered\nlabel replaced");
        assert_eq!(follow(&pm_a, json!({ "note": "again" })).await.status, StatusCode::CONFLICT);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn chargers_and_operations_follow_ownership_and_scope() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        district(&app, "D1").await;
        community(&app, "A", "D1").await;
        community(&app, "B", "D1").await;
        let op_a = user(
            &app,
            "op_a",
            "operator",
            json!([{ "kind": "community", "id": "A" }]),
            json!([]),
        )
        .await;
        let pm_a = user(
            &app,
            "pm_a",
            "property_manager",
            json!([{ "kind": "community", "id": "A" }]),
            json!([]),
        )
        .await;
        let pm_b = user(
            &app,
            "pm_b",
            "property_manager",
            json!([{ "kind": "community", "id": "B" }]),
            json!([]),
        )
        .await;
        let owner = user(&app, "owner", "charger_owner", json!([]), json!([])).await;
        let res = user(&app, "res", "resident", json!([]), json!([])).await;
        let reg = user(&app, "reg", "regulator", json!([]), json!([])).await;
        charger(&app, "CPA", "A", Some("owner"), None).await;
        charger(&app, "CPB", "B", None, None).await;

        for (token, expected) in [
            (&op_a, vec!["CPA"]),
            (&owner, vec!["CPA"]),
            (&pm_b, vec!["CPB"]),
            (&reg, vec!["CPA", "CPB"]),
            (&res, vec![]),
        ] {
            let reply = call(&app, token, Method::GET, "/api/v1/chargers", None).await;
            assert_eq!(ids(&reply, "id"), expected);
        }
        for (token, path, status) in [
            (&op_a, "/api/v1/chargers/CPA", StatusCode::OK),
            (&op_a, "/api/v1/chargers/CPB", StatusCode::FORBIDDEN),
            (
                &op_a,
                "/api/v1/chargers/CPB/connectors",
                StatusCode::FORBIDDEN,
            ),
            (
                &op_a,
                "/api/v1/chargers/CPB/status-history",
                StatusCode::FORBIDDEN,
            ),
            (
                &owner,
                "/api/v1/chargers/CPA/status-history",
                StatusCode::OK,
            ),
            (&res, "/api/v1/chargers/CPA", StatusCode::FORBIDDEN),
            (&reg, "/api/v1/chargers/CPB/connectors", StatusCode::OK),
        ] {
            let reply = call(&app, token, Method::GET, path, None).await;
            assert_eq!(reply.status, status, "GET {path}: {:?}", reply.body);
        }
        // Registering and removing chargers stays with admins.
        for token in [&op_a, &reg] {
            let add = call(
                &app,
                token,
                Method::POST,
                "/api/v1/chargers",
                Some(json!({ "id": "NEW" })),
            )
            .await;
            assert_eq!(add.status, StatusCode::FORBIDDEN);
            let del = call(&app, token, Method::DELETE, "/api/v1/chargers/CPA", None).await;
            assert_eq!(del.status, StatusCode::FORBIDDEN);
        }
        // OCPP operations: operators of the charger's community (the permission is checked
        // before the connection: CPA is not connected, hence 409 for the operator).
        let op = |token: &str, charger: &str| {
            let (app, token, path) = (
                &app,
                token.to_owned(),
                format!("/api/v1/chargers/{charger}/operations/Reset"),
            );
            async move {
                call(
                    app,
                    &token,
                    Method::POST,
                    &path,
                    Some(json!({ "type": "Soft" })),
                )
                .await
                .status
            }
        };
        assert_eq!(op(&op_a, "CPA").await, StatusCode::CONFLICT);
        assert_eq!(op(&op_a, "CPB").await, StatusCode::FORBIDDEN);
        assert_eq!(op(&pm_a, "CPA").await, StatusCode::FORBIDDEN);
        assert_eq!(op(&owner, "CPA").await, StatusCode::FORBIDDEN);
        assert_eq!(op(&reg, "CPA").await, StatusCode::FORBIDDEN);
        assert_eq!(
            app.get("/api/v1/chargers")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            2
        );
        app.stop().await;
    })
    .await;
}
