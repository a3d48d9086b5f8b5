//! The closed loop through the real server: communities, wishes and grid commands over the API
//! (good and bad input, on every backend), and real controllers driving real OCPP charge points
//! (a WebSocket client that answers the server's SetChargingProfile calls and keeps them).

use super::{Backend, TestApp, WAIT, each_backend, spawn_app, spawn_app_prepared, user};
use axum::http::{HeaderValue, Method, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use orderly_server::control::CommunityConfig;
use orderly_server::control::settings::{BaseLoad, ChargerConfig, RateUnitSetting};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A community of `rating` kW usable (pf 1, no base load) with a flat tariff, so the plan has
/// no reason to move charging to later hours.
fn community_body(rating: f64) -> Value {
    json!({
        "name": "Garden Court",
        "rating_kva": rating,
        "power_factor": 1.0,
        "base_load_kw": 0.0,
        "tariff_cny_per_kwh": vec![0.5; 24],
    })
}

async fn put(app: &TestApp, path: &str, body: Value) -> super::Reply {
    app.api(Method::PUT, path, Some(body)).await
}

async fn delete(app: &TestApp, path: &str) -> super::Reply {
    app.api(Method::DELETE, path, None).await
}

fn error_of(reply: &super::Reply) -> String {
    reply.body["error"].as_str().unwrap_or_default().to_owned()
}

/// Asserts a 4xx whose message names `field`.
fn assert_refused(reply: &super::Reply, status: StatusCode, field: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert!(
        error_of(reply).contains(field),
        "error should name {field}: {:?}",
        reply.body
    );
}

#[tokio::test]
async fn communities_and_chargers_are_configured_and_bad_input_changes_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        let created = put(&app, "/api/v1/communities/c1", community_body(100.0)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["base_load_kw"].as_array().unwrap().len(), 24);
        assert_eq!(created.body["timezone"], "Asia/Shanghai");
        assert_eq!(created.body["usable_kw"], 100.0);

        // Each bad field is named, and the stored community stays as it was.
        for (patch, field) in [
            (json!({"rating_kva": -1.0}), "rating_kva"),
            (json!({"power_factor": 1.5}), "power_factor"),
            (json!({"base_load_kw": [1.0, 2.0]}), "base_load_kw"),
            (json!({"timezone": "Mars/Olympus"}), "timezone"),
            (json!({"tariff_cny_per_kwh": [0.5]}), "tariff_cny_per_kwh"),
            (json!({"default_stay_hours": 0.0}), "default_stay_hours"),
            (
                json!({"community_meter": "bad id with spaces"}),
                "community_meter",
            ),
            (json!({"surprise": 1}), "surprise"),
        ] {
            let mut body = community_body(50.0);
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let reply = put(&app, "/api/v1/communities/c1", body).await;
            assert!(reply.status.is_client_error(), "{patch}: {:?}", reply.body);
            assert!(
                error_of(&reply).contains(field),
                "{field}: {:?}",
                reply.body
            );
        }
        let bad_id = put(&app, "/api/v1/communities/bad%20id", community_body(1.0)).await;
        assert_refused(&bad_id, StatusCode::BAD_REQUEST, "id");
        let got = app.get("/api/v1/communities/c1").await;
        assert_eq!(got.body["rating_kva"], 100.0);
        let updated = put(&app, "/api/v1/communities/c1", community_body(120.0)).await;
        assert_eq!(updated.status, StatusCode::OK);
        assert_eq!(updated.body["rating_kva"], 120.0);
        assert_eq!(
            app.get("/api/v1/communities")
                .await
                .body
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            app.get("/api/v1/communities/nope").await.status,
            StatusCode::NOT_FOUND
        );

        // Chargers.
        let attach =
            json!({"community": "c1", "phases": 3, "voltage_v": 230.0, "max_current_a": 16.0});
        assert_eq!(
            put(&app, "/api/v1/chargers/CP1/community", attach.clone())
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        app.add_charger("CP1", None).await;
        let unknown = put(
            &app,
            "/api/v1/chargers/CP1/community",
            json!({"community": "nope"}),
        )
        .await;
        assert_refused(&unknown, StatusCode::NOT_FOUND, "nope");
        for (patch, field) in [
            (json!({"phases": 2}), "phases"),
            (json!({"voltage_v": 0.0}), "voltage_v"),
            (json!({"min_current_a": 40.0}), "min_current_a"),
            (json!({"rate_unit": "volts"}), "rate_unit"),
        ] {
            let mut body = attach.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let reply = put(&app, "/api/v1/chargers/CP1/community", body).await;
            assert!(reply.status.is_client_error(), "{patch}: {:?}", reply.body);
            assert!(
                error_of(&reply).contains(field),
                "{field}: {:?}",
                reply.body
            );
        }
        assert!(
            app.get("/api/v1/communities/c1").await.body["chargers"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let attached = put(&app, "/api/v1/chargers/CP1/community", attach).await;
        assert_eq!(attached.status, StatusCode::OK, "{:?}", attached.body);
        assert_eq!(attached.body["phases"], 3);
        assert_eq!(attached.body["rate_unit"], "amperes");
        assert!((attached.body["max_kw"].as_f64().unwrap() - 11.04).abs() < 1e-9);
        let c1 = app.get("/api/v1/communities/c1").await;
        assert_eq!(c1.body["chargers"][0]["id"], "CP1");

        // A community with chargers stays until they are detached.
        let refused = delete(&app, "/api/v1/communities/c1").await;
        assert_refused(&refused, StatusCode::CONFLICT, "c1");
        assert_eq!(
            delete(&app, "/api/v1/chargers/CP1/community").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            delete(&app, "/api/v1/chargers/CP1/community").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            delete(&app, "/api/v1/communities/c1").await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            delete(&app, "/api/v1/communities/c1").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/api/v1/communities/c1").await.status,
            StatusCode::NOT_FOUND
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn configured_communities_are_applied_at_start_up() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |config| {
            config.communities = vec![CommunityConfig {
                id: "demo".into(),
                name: None,
                rating_kva: 250.0,
                power_factor: 0.9,
                base_load_kw: BaseLoad::Flat(120.0),
                timezone: None,
                tariff_cny_per_kwh: None,
                emergency_price_cny_per_kwh: None,
                max_emergencies: Some(2),
                default_stay_hours: None,
                default_energy_kwh: None,
                community_meter: None,
                chargers: vec![ChargerConfig {
                    id: "CP001".into(),
                    phases: 1,
                    voltage_v: 220.0,
                    max_current_a: 32.0,
                    min_current_a: 6.0,
                    rate_unit: RateUnitSetting::Watts,
                }],
            }];
        })
        .await;
        let demo = app.get("/api/v1/communities/demo").await;
        assert_eq!(demo.status, StatusCode::OK, "{:?}", demo.body);
        assert_eq!(demo.body["base_load_kw"][5], 120.0);
        assert_eq!(demo.body["max_emergencies"], 2);
        // Beijing time-of-use by default: valley at night, peak at 19:00.
        assert_eq!(demo.body["tariff_cny_per_kwh"][3], 0.3946);
        assert_eq!(demo.body["tariff_cny_per_kwh"][19], 1.0044);
        assert_eq!(demo.body["chargers"][0]["id"], "CP001");
        assert_eq!(demo.body["chargers"][0]["rate_unit"], "watts");
        // The charger was registered, so it may connect.
        assert_eq!(
            app.get("/api/v1/chargers/CP001").await.status,
            StatusCode::OK
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn wishes_are_validated_and_stored() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        put(&app, "/api/v1/communities/c1", community_body(100.0)).await;
        app.add_charger("CP1", None).await;
        app.add_charger("LONE", None).await;
        put(
            &app,
            "/api/v1/chargers/CP1/community",
            json!({"community": "c1"}),
        )
        .await;
        app.add_tag("TAG1", "Accepted", None).await;

        assert_eq!(
            put(
                &app,
                "/api/v1/transactions/999/wish",
                json!({"energy_kwh": 5.0})
            )
            .await
            .status,
            StatusCode::NOT_FOUND
        );
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let tx = cp.start(1, "TAG1", 1000).await;
        let path = format!("/api/v1/transactions/{tx}/wish");
        for (body, field) in [
            (json!({"departure": "2020-01-01T00:00:00Z"}), "departure"),
            (json!({"departure": "tomorrow"}), "departure"),
            (json!({"stay_hours": -1.0}), "stay_hours"),
            (
                json!({"stay_hours": 2.0, "departure": "2099-01-01T00:00:00Z"}),
                "stay_hours",
            ),
            (json!({"energy_kwh": 1e9}), "energy_kwh"),
            (json!({"target_soc_percent": 80.0}), "battery_kwh"),
            (json!({"battery_kwh": 60.0}), "target_soc_percent"),
            (
                json!({"target_soc_percent": 180.0, "battery_kwh": 60.0}),
                "target_soc_percent",
            ),
            (json!({"emergency": "yes"}), "emergency"),
        ] {
            let reply = put(&app, &path, body.clone()).await;
            assert!(reply.status.is_client_error(), "{body}: {:?}", reply.body);
            assert!(
                error_of(&reply).contains(field),
                "{field}: {:?}",
                reply.body
            );
        }
        let ok = put(&app, &path, json!({"stay_hours": 3.0, "energy_kwh": 6.0})).await;
        assert!(
            ok.status == StatusCode::OK || ok.status == StatusCode::ACCEPTED,
            "{:?}",
            ok.body
        );
        if ok.status == StatusCode::OK {
            assert_eq!(ok.body["transaction_id"], tx);
            assert_eq!(ok.body["wish"]["source"], "explicit");
            assert_eq!(ok.body["wish"]["energy_kwh"], 6.0);
        }
        cp.stop(tx, 2000).await;
        let finished = put(&app, &path, json!({"energy_kwh": 5.0})).await;
        assert_refused(&finished, StatusCode::CONFLICT, "finished");

        // A charger in no community: nothing to plan with.
        let mut lone = LoopCp::connect(&app, "LONE").await;
        lone.boot().await;
        let lone_tx = lone.start(1, "TAG1", 0).await;
        let reply = put(
            &app,
            &format!("/api/v1/transactions/{lone_tx}/wish"),
            json!({"energy_kwh": 5.0}),
        )
        .await;
        assert_refused(&reply, StatusCode::CONFLICT, "no community");

        // Id-tag defaults.
        let defaults = "/api/v1/id-tags/TAG1/wish-defaults";
        let unknown = put(
            &app,
            "/api/v1/id-tags/NOPE/wish-defaults",
            json!({"energy_kwh": 5.0}),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        for (body, field) in [
            (json!({"departure_local": "25:00"}), "departure_local"),
            (json!({"departure_local": "7:30"}), "departure_local"),
            (json!({"energy_kwh": -2.0}), "energy_kwh"),
            (
                json!({"departure_local": "07:30", "stay_hours": 3.0}),
                "stay_hours",
            ),
        ] {
            let reply = put(&app, defaults, body.clone()).await;
            assert_refused(&reply, StatusCode::BAD_REQUEST, field);
        }
        assert_eq!(app.get(defaults).await.status, StatusCode::NOT_FOUND);
        let body = json!({"departure_local": "07:30", "energy_kwh": 12.0});
        assert_eq!(
            put(&app, defaults, body.clone()).await.status,
            StatusCode::CREATED
        );
        assert_eq!(
            put(&app, defaults, body.clone()).await.status,
            StatusCode::OK
        );
        let got = app.get(defaults).await;
        assert_eq!(got.body["departure_local"], "07:30");
        assert_eq!(got.body["energy_kwh"], 12.0);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn grid_commands_are_validated_recorded_and_cancelled() {
    each_backend(|backend| async move {
        let app = spawn_app(backend, |_| {}).await;
        put(&app, "/api/v1/communities/c1", community_body(100.0)).await;
        let path = "/api/v1/communities/c1/grid-commands";
        for (body, field) in [
            (json!({"kind": "limit", "kw": -1.0, "duration_minutes": 30}), "kw"),
            (json!({"kind": "shed", "kw": 1.0, "duration_minutes": 30}), "kind"),
            (json!({"kind": "limit", "kw": 1.0}), "end"),
            (json!({"kind": "limit", "kw": 1.0, "duration_minutes": 0}), "duration_minutes"),
            (json!({"kind": "limit", "kw": 1.0, "duration_minutes": 5, "end": "2099-01-01T00:00:00Z"}), "duration_minutes"),
            (json!({"kind": "limit", "kw": 1.0, "start": "2099-01-02T00:00:00Z", "end": "2099-01-01T00:00:00Z"}), "end"),
            (json!({"kind": "limit", "kw": 1.0, "start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}), "end"),
        ] {
            let reply = app.post(path, body.clone()).await;
            assert!(reply.status.is_client_error(), "{body}: {:?}", reply.body);
            assert!(error_of(&reply).contains(field), "{field}: {:?}", reply.body);
        }
        assert!(app.get(path).await.body.as_array().unwrap().is_empty());
        let unknown = app
            .post("/api/v1/communities/nope/grid-commands", json!({"kind": "limit", "kw": 1.0, "duration_minutes": 30}))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        let now_cmd = app.post(path, json!({"kind": "limit", "kw": 20.0, "duration_minutes": 60})).await;
        assert_eq!(now_cmd.status, StatusCode::CREATED, "{:?}", now_cmd.body);
        assert_eq!(now_cmd.body["status"], "active");
        assert_eq!(now_cmd.body["kind"], "limit");
        assert_eq!(now_cmd.body["community"], "c1");
        assert_eq!(now_cmd.body["source"]["source"], "api");
        let later = app
            .post(path, json!({"kind": "reduce", "kw": 5.0, "start": "2099-01-01T00:00:00Z", "end": "2099-01-01T02:00:00Z"}))
            .await;
        assert_eq!(later.status, StatusCode::CREATED, "{:?}", later.body);
        assert_eq!(later.body["status"], "scheduled");
        assert_eq!(app.get(path).await.body.as_array().unwrap().len(), 2);
        let id = later.body["id"].as_i64().unwrap();
        let one = app.get(&format!("/api/v1/grid-commands/{id}")).await;
        assert_eq!(one.body["kw"], 5.0);
        let cancelled = delete(&app, &format!("/api/v1/grid-commands/{id}")).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
        assert_eq!(cancelled.body["status"], "cancelled");
        let again = delete(&app, &format!("/api/v1/grid-commands/{id}")).await;
        assert_refused(&again, StatusCode::CONFLICT, "cancelled");
        assert_eq!(app.get("/api/v1/grid-commands/4242").await.status, StatusCode::NOT_FOUND);
        assert_eq!(delete(&app, "/api/v1/grid-commands/4242").await.status, StatusCode::NOT_FOUND);
        app.stop().await;
    })
    .await;
}

// ----- the loop with a real controller -----------------------------------------------------

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An OCPP 1.6 charge point that accepts every SetChargingProfile / ClearChargingProfile and
/// keeps the profiles it got, in order.
struct LoopCp {
    ws: Ws,
    next_id: u64,
    /// csChargingProfiles of every SetChargingProfile received (with connectorId added).
    profiles: Vec<Value>,
    seen: usize,
    /// Its `ChargingScheduleAllowedChargingRateUnit` (answered to GetConfiguration).
    rate_units: &'static str,
    /// Payloads of every ClearChargingProfile received, not yet taken by `cleared`.
    clears: Vec<Value>,
}

impl LoopCp {
    async fn connect(app: &TestApp, id: &str) -> Self {
        let mut request = app.ws_url(id).into_client_request().unwrap();
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("ocpp1.6"),
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake in time")
            .expect("handshake");
        Self {
            ws,
            next_id: 1,
            profiles: Vec::new(),
            seen: 0,
            rate_units: "Current,Power",
            clears: Vec::new(),
        }
    }

    /// Next frame; server CALLs are answered (and profiles kept) and returned too.
    async fn frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame from the server in time")
                .expect("connection open")
                .expect("frame");
            if let Some(frame) = self.on_message(message).await {
                return frame;
            }
        }
    }

    /// A text frame parsed; a server CALL is answered Accepted (a profile kept) first.
    async fn on_message(&mut self, message: Message) -> Option<Value> {
        let Message::Text(text) = message else {
            return None;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame[0] == 2 {
            if frame[2] == "SetChargingProfile" {
                let mut profile = frame[3]["csChargingProfiles"].clone();
                profile["connectorId"] = frame[3]["connectorId"].clone();
                self.profiles.push(profile);
            }
            if frame[2] == "ClearChargingProfile" {
                self.clears.push(frame[3].clone());
            }
            let answer = if frame[2] == "GetConfiguration" {
                let key = "ChargingScheduleAllowedChargingRateUnit";
                let known = json!([{"key": key, "readonly": true, "value": self.rate_units}]);
                json!([3, frame[1], {"configurationKey": known}]).to_string()
            } else {
                json!([3, frame[1], {"status": "Accepted"}]).to_string()
            };
            self.ws.send(Message::text(answer)).await.unwrap();
        }
        Some(frame)
    }

    async fn call(&mut self, action: &str, payload: Value) -> Value {
        let id = format!("cp{}", self.next_id);
        self.next_id += 1;
        let text = json!([2, id, action, payload]).to_string();
        self.ws.send(Message::text(text)).await.unwrap();
        loop {
            let frame = self.frame().await;
            if frame[0] != 2 && frame[1] == json!(id) {
                assert_eq!(frame[0], 3, "{action} answered with {frame}");
                return frame[2].clone();
            }
        }
    }

    async fn boot(&mut self) {
        let r = self
            .call(
                "BootNotification",
                json!({"chargePointVendor": "Acme", "chargePointModel": "Loop"}),
            )
            .await;
        assert_eq!(r["status"], "Accepted");
    }

    async fn start(&mut self, connector: i64, tag: &str, meter: i64) -> i64 {
        let now = jiff::Timestamp::now().to_string();
        let r = self
            .call(
                "StartTransaction",
                json!({"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": now}),
            )
            .await;
        r["transactionId"].as_i64().unwrap()
    }

    async fn stop(&mut self, tx: i64, meter: i64) {
        let now = jiff::Timestamp::now().to_string();
        self.call(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": meter, "timestamp": now}),
        )
        .await;
    }

    /// The next profile received (after those already returned) matching `pred`; on timeout
    /// the failure lists every profile received.
    async fn profile_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while self.seen < self.profiles.len() {
                let p = self.profiles[self.seen].clone();
                self.seen += 1;
                if pred(&p) {
                    return p;
                }
            }
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(message))) => self.on_message(message).await,
                other => panic!(
                    "no {what} in time ({other:?}); profiles received: {:#}",
                    Value::Array(self.profiles.clone())
                ),
            };
        }
    }
}

impl LoopCp {
    /// Waits (answering everything) until the server has sent a ClearChargingProfile; returns
    /// its payload.
    async fn cleared(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.clears.is_empty() {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(message))) => self.on_message(message).await,
                other => panic!("no ClearChargingProfile in time ({other:?})"),
            };
        }
        self.clears.remove(0)
    }

    /// Waits until the latest TxProfile the charge point holds satisfies `pred` (it may hold
    /// it already: an unchanged plan is not sent again); returns that profile.
    async fn holds_tx_profile(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(latest) = self
                .profiles
                .iter()
                .rev()
                .find(|p| purpose(p) == "TxProfile")
                && pred(latest)
            {
                return latest.clone();
            }
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(message))) => self.on_message(message).await,
                other => panic!(
                    "no {what} in time ({other:?}); profiles received: {:#}",
                    Value::Array(self.profiles.clone())
                ),
            };
        }
    }
}

fn purpose(p: &Value) -> &str {
    p["chargingProfilePurpose"].as_str().unwrap_or_default()
}

fn first_limit(p: &Value) -> f64 {
    p["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        .as_f64()
        .unwrap()
}

async fn loop_app(backend: Backend, rating_kw: f64) -> TestApp {
    let app = spawn_app(backend, |_| {}).await;
    let reply = put(&app, "/api/v1/communities/c1", community_body(rating_kw)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    app.add_charger("CP1", None).await;
    let reply = put(
        &app,
        "/api/v1/chargers/CP1/community",
        json!({"community": "c1", "phases": 1, "voltage_v": 220.0, "max_current_a": 32.0}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    app.add_tag("TAG1", "Accepted", None).await;
    app
}

#[tokio::test]
async fn a_charger_that_takes_only_watts_gets_its_profiles_in_watts() {
    each_backend(|backend| async move {
        // Configured in amperes; the charger says it takes power limits only.
        let app = loop_app(backend, 100.0).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.rate_units = "Power";
        cp.boot().await;
        let max = cp
            .profile_where("ChargePointMaxProfile", |p| {
                purpose(p) == "ChargePointMaxProfile"
            })
            .await;
        assert_eq!(max["chargingSchedule"]["chargingRateUnit"], "W");
        assert_eq!(first_limit(&max), 7040.0);
        let fallback = cp
            .profile_where("TxDefaultProfile", |p| purpose(p) == "TxDefaultProfile")
            .await;
        assert_eq!(fallback["chargingSchedule"]["chargingRateUnit"], "W");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn profiles_by_hand_are_refused_for_a_community_charger() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        let profile = json!({"connectorId": 0, "csChargingProfiles": {
            "chargingProfileId": 99, "stackLevel": 5,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}]}}});
        let reply = app
            .api(
                Method::POST,
                "/api/v1/chargers/CP1/operations/SetChargingProfile",
                Some(profile),
            )
            .await;
        assert_refused(&reply, StatusCode::CONFLICT, "community c1");
        let reply = app
            .api(
                Method::POST,
                "/api/v1/chargers/CP1/operations/ClearChargingProfile",
                Some(json!({})),
            )
            .await;
        assert_refused(&reply, StatusCode::CONFLICT, "community c1");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_detached_charger_has_its_profiles_cleared_now_or_at_its_next_boot() {
    each_backend(|backend| async move {
        // Connected when detached: cleared at once.
        let app = loop_app(backend, 100.0).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        cp.profile_where("TxDefaultProfile", |p| purpose(p) == "TxDefaultProfile")
            .await;
        let reply = delete(&app, "/api/v1/chargers/CP1/community").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        // No filter: everything it holds came from the controller.
        assert_eq!(cp.cleared().await, json!({}));

        // Offline when detached: cleared after its next boot, and only once it answered.
        app.add_charger("CP2", None).await;
        let reply = put(
            &app,
            "/api/v1/chargers/CP2/community",
            json!({"community": "c1", "phases": 1, "voltage_v": 220.0, "max_current_a": 16.0}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let mut cp2 = LoopCp::connect(&app, "CP2").await;
        cp2.boot().await;
        cp2.profile_where("TxDefaultProfile", |p| purpose(p) == "TxDefaultProfile")
            .await;
        drop(cp2);
        // Wait until the server saw it go, so the detach finds it offline.
        super::until("CP2 to be seen disconnected", || async {
            (app.get("/api/v1/chargers/CP2").await.body["connected"] == json!(false)).then_some(())
        })
        .await;
        let reply = delete(&app, "/api/v1/chargers/CP2/community").await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let mut cp2 = LoopCp::connect(&app, "CP2").await;
        cp2.boot().await;
        assert_eq!(cp2.cleared().await, json!({}));
        assert!(
            cp2.profiles.is_empty(),
            "a detached charger gets no new profiles: {:?}",
            cp2.profiles
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_booted_charger_gets_its_hardware_limit_and_safe_fallback() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let max = cp
            .profile_where("ChargePointMaxProfile", |p| {
                purpose(p) == "ChargePointMaxProfile"
            })
            .await;
        assert_eq!(max["connectorId"], 0);
        assert_eq!(max["chargingSchedule"]["chargingRateUnit"], "A");
        assert_eq!(first_limit(&max), 32.0);
        let fallback = cp
            .profile_where("TxDefaultProfile", |p| purpose(p) == "TxDefaultProfile")
            .await;
        assert_eq!(fallback["connectorId"], 0);
        // One charger of 7 kW under 100 kW: its fallback is within both.
        let limits: Vec<f64> = fallback["chargingSchedule"]["chargingSchedulePeriod"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["limit"].as_f64().unwrap())
            .collect();
        assert!(!limits.is_empty());
        assert!(
            limits.iter().all(|l| (0.0..=32.0).contains(l)),
            "{limits:?}"
        );
        let plan = app.get("/api/v1/communities/c1/plan").await;
        assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
        assert_eq!(plan.body["chargers"][0]["id"], "CP1");
        assert_eq!(plan.body["chargers"][0]["connected"], true);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_transaction_gets_a_tx_profile_a_wish_replans_and_a_grid_command_lowers_it() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let tx = cp.start(1, "TAG1", 0).await;
        let first = cp
            .profile_where("TxProfile", |p| purpose(p) == "TxProfile")
            .await;
        assert_eq!(first["transactionId"], tx);
        assert_eq!(first["connectorId"], 1);
        assert_eq!(first["chargingProfileKind"], "Absolute");

        // Leaving in an hour wanting 6 kWh: the plan must charge at (nearly) full rate now.
        let path = format!("/api/v1/transactions/{tx}/wish");
        let wish = put(&app, &path, json!({"stay_hours": 1.0, "energy_kwh": 6.0})).await;
        assert_eq!(wish.status, StatusCode::OK, "{:?}", wish.body);
        assert_eq!(wish.body["transaction_id"], tx);
        assert_eq!(wish.body["wish"]["source"], "explicit");
        assert_eq!(wish.body["wish"]["energy_kwh"], 6.0);
        let expected = wish.body["expected_energy_by_departure_kwh"]
            .as_f64()
            .unwrap();
        // An hour at 7.04 kW is 7 kWh; the plan counts whole 15-minute slots before the
        // departure, so at least 45 minutes (5.28 kWh) are planned at full rate.
        assert!(expected > 5.2, "full rate until departure: {:?}", wish.body);
        let urgent = cp
            .holds_tx_profile("TxProfile at >= 25 A", |p| first_limit(p) >= 25.0)
            .await;
        assert_eq!(urgent["transactionId"], tx);
        let plan = app.get("/api/v1/communities/c1/plan").await;
        assert_eq!(plan.body["sessions"][0]["transaction_id"], tx);

        // A 2 kW limit on the community: the charger's live limit drops to 2 kW / 220 V.
        let command = app
            .post(
                "/api/v1/communities/c1/grid-commands",
                json!({"kind": "limit", "kw": 2.0, "duration_minutes": 60}),
            )
            .await;
        assert_eq!(command.status, StatusCode::CREATED, "{:?}", command.body);
        let lowered = cp
            .holds_tx_profile("TxProfile within 2 kW", |p| {
                first_limit(p) <= 2000.0 / 220.0 + 1e-9
            })
            .await;
        assert!(first_limit(&lowered) < first_limit(&urgent));

        // Drawing 7 kW against that limit, reading after reading: non-compliant, recorded.
        for k in 1..=3 {
            let at = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(k))
                .unwrap()
                .to_string();
            cp.call(
                "MeterValues",
                json!({"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": at, "sampledValue": [
                    {"measurand": "Power.Active.Import", "unit": "W", "value": "7000"}
                ]}]}),
            )
            .await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let events = app.get("/api/v1/chargers/CP1/compliance").await;
            assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
            if let Some(first) = events.body.as_array().and_then(|a| a.first()) {
                assert_eq!(first["compliant"], false);
                assert_eq!(first["community"], "c1");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no compliance event in time");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            app.get("/api/v1/chargers/NOPE/compliance").await.status,
            StatusCode::NOT_FOUND
        );
        app.stop().await;
    })
    .await;
}

/// Polls the plan until `pred` holds (bounded by [`WAIT`]; the controller takes inputs
/// asynchronously, so a read right after a message may predate it).
async fn plan_where(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let plan = app.get("/api/v1/communities/c1/plan").await;
        assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
        if pred(&plan.body) {
            return plan.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plan with {what} in time: {:#}",
            plan.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn session(plan: &Value, tx: i64) -> Option<Value> {
    plan["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["transaction_id"] == tx)
        .cloned()
}

#[tokio::test]
async fn wishes_resolve_from_defaults_history_or_community_and_readings_reach_the_plan() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        app.add_tag("TAG2", "Accepted", None).await;
        app.add_tag("TAG3", "Accepted", None).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;

        // Nothing said, no history: the community's defaults (10 kWh).
        let tx = cp.start(1, "TAG1", 0).await;
        let plan = plan_where(&app, "the session", |p| session(p, tx).is_some()).await;
        let s = session(&plan, tx).unwrap();
        assert_eq!(s["wish"]["source"], "community");
        assert_eq!(s["wish"]["energy_kwh"], 10.0);

        // Readings in kW reach the plan in W.
        let now = jiff::Timestamp::now().to_string();
        cp.call(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": now, "sampledValue": [
                {"measurand": "Power.Active.Import", "unit": "kW", "value": "3.5"},
                {"measurand": "Energy.Active.Import.Register", "unit": "kWh", "value": "0.5"}
            ]}]}),
        )
        .await;
        plan_where(&app, "3.5 kW measured", |p| {
            (p["measured_kw"].as_f64().unwrap_or(0.0) - 3.5).abs() < 1e-6
        })
        .await;
        cp.stop(tx, 500).await;
        plan_where(&app, "the session gone", |p| session(p, tx).is_none()).await;

        // The id tag's defaults.
        let reply = put(
            &app,
            "/api/v1/id-tags/TAG2/wish-defaults",
            json!({"stay_hours": 5.0, "energy_kwh": 12.0}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let tx = cp.start(1, "TAG2", 1000).await;
        let plan = plan_where(&app, "the session", |p| session(p, tx).is_some()).await;
        let s = session(&plan, tx).unwrap();
        assert_eq!(s["wish"]["source"], "id_tag_default");
        assert_eq!(s["wish"]["energy_kwh"], 12.0);
        cp.stop(tx, 2000).await;

        // History: the median energy of the tag's last finished sessions (8, 9, 10 kWh).
        for wh in [8_000, 10_000, 9_000] {
            let tx = cp.start(1, "TAG3", 0).await;
            cp.stop(tx, wh).await;
        }
        let tx = cp.start(1, "TAG3", 0).await;
        let plan = plan_where(&app, "the session", |p| session(p, tx).is_some()).await;
        let s = session(&plan, tx).unwrap();
        assert_eq!(s["wish"]["source"], "history");
        assert_eq!(s["wish"]["energy_kwh"], 9.0);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_connected_charger_attached_later_gets_profiles_and_commands_get_reports() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        app.add_charger("CP2", None).await;
        let mut cp = LoopCp::connect(&app, "CP2").await;
        cp.boot().await;
        let reply = put(
            &app,
            "/api/v1/chargers/CP2/community",
            json!({"community": "c1", "phases": 3, "voltage_v": 230.0, "max_current_a": 16.0, "rate_unit": "watts"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let max = cp
            .profile_where("ChargePointMaxProfile", |p| {
                purpose(p) == "ChargePointMaxProfile"
            })
            .await;
        // Watts: 16 A × 230 V × 3 phases.
        assert_eq!(max["chargingSchedule"]["chargingRateUnit"], "W");
        assert_eq!(first_limit(&max), 11_040.0);

        let command = app
            .post(
                "/api/v1/communities/c1/grid-commands",
                json!({"kind": "limit", "kw": 5.0, "duration_minutes": 30}),
            )
            .await;
        assert_eq!(command.status, StatusCode::CREATED, "{:?}", command.body);
        let id = command.body["id"].as_i64().unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        let report = loop {
            let got = app.get(&format!("/api/v1/grid-commands/{id}")).await;
            if !got.body["report"].is_null() {
                break got.body["report"].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no report in time: {:?}",
                got.body
            );
            // Keep answering the profiles the command causes.
            if let Ok(Some(Ok(message))) =
                tokio::time::timeout(std::time::Duration::from_millis(50), cp.ws.next()).await
            {
                cp.on_message(message).await;
            }
        };
        assert_eq!(report["command"], id);
        assert_eq!(report["slot_minutes"], 15);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn residents_wish_for_their_own_sessions_and_aggregators_command_their_communities() {
    each_backend(|backend| async move {
        let app = loop_app(backend, 100.0).await;
        app.add_tag("TAGRES", "Accepted", None).await;
        let res = user(&app, "res", "resident", json!([]), json!(["TAGRES"])).await;
        let other = user(&app, "oth", "resident", json!([]), json!(["TAG1"])).await;
        let reg = user(&app, "reg", "regulator", json!([]), json!([])).await;
        let scope = json!([{ "kind": "community", "id": "c1" }]);
        let agg = user(&app, "agg", "grid_aggregator", scope, json!([])).await;
        let elsewhere = json!([{ "kind": "community", "id": "c2" }]);
        let agg2 = user(&app, "agg2", "grid_aggregator", elsewhere, json!([])).await;

        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let tx = cp.start(1, "TAGRES", 0).await;
        let path = format!("/api/v1/transactions/{tx}/wish");
        let body = json!({"stay_hours": 4.0, "energy_kwh": 8.0});
        for (token, allowed) in [(&other, false), (&reg, false), (&res, true)] {
            let reply = app
                .request(Method::PUT, &path, Some(body.clone()), Some(token))
                .await;
            if allowed {
                assert!(reply.status.is_success(), "{:?}", reply.body);
            } else {
                assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
            }
        }
        let defaults = "/api/v1/id-tags/TAGRES/wish-defaults";
        let body = json!({"energy_kwh": 9.0});
        let refused = app
            .request(Method::PUT, defaults, Some(body.clone()), Some(&other))
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let ok = app
            .request(Method::PUT, defaults, Some(body), Some(&res))
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);

        // Grid commands: an aggregator in scope, not one elsewhere, not a resident.
        let commands = "/api/v1/communities/c1/grid-commands";
        let body = json!({"kind": "reduce", "kw": 1.0, "duration_minutes": 15});
        for token in [&agg2, &res, &reg] {
            let reply = app
                .request(Method::POST, commands, Some(body.clone()), Some(token))
                .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        }
        let created = app
            .request(Method::POST, commands, Some(body), Some(&agg))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        assert_eq!(created.body["source"]["actor"], "user:agg");
        let plan = app
            .request(Method::GET, "/api/v1/communities/c1/plan", None, Some(&agg))
            .await;
        assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
        let read = app
            .request(Method::GET, "/api/v1/communities/c1", None, Some(&reg))
            .await;
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
        // Changing the community stays with admins and its property manager.
        let put = app
            .request(
                Method::PUT,
                "/api/v1/communities/c1",
                Some(community_body(10.0)),
                Some(&agg),
            )
            .await;
        assert_eq!(put.status, StatusCode::FORBIDDEN, "{:?}", put.body);
        app.stop().await;
    })
    .await;
}

/// History written before the server starts: every day of the last two weeks a car came to CP1
/// at 18:00 local for 10 hours and took 20 kWh; plus rows the forecast must skip.
async fn write_history(store: orderly_store::Store) {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let cp1 = orderly_core::ChargePointId::parse("CP1").unwrap();
    let tag = orderly_core::IdTag::parse("TAG1").unwrap();
    let mut rows = Vec::new();
    for d in 1..=14i64 {
        let day = today.checked_sub(jiff::Span::new().days(d)).unwrap();
        let start = day
            .to_datetime(jiff::civil::Time::constant(18, 0, 0, 0))
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp();
        let stop = start
            .checked_add(jiff::SignedDuration::from_hours(10))
            .unwrap();
        rows.push(orderly_store::HistoricTransaction {
            charger_id: cp1.clone(),
            connector_id: 1,
            id_tag: tag.clone(),
            meter_start_wh: d * 100_000,
            meter_stop_wh: d * 100_000 + 20_000,
            started_at: start,
            stopped_at: stop,
        });
        if d <= 2 {
            // Implausible: the meter went backwards; the stop before the start.
            rows.push(orderly_store::HistoricTransaction {
                meter_start_wh: 50_000,
                meter_stop_wh: 40_000,
                started_at: start
                    .checked_add(jiff::SignedDuration::from_mins(1))
                    .unwrap(),
                ..rows[rows.len() - 1].clone()
            });
            rows.push(orderly_store::HistoricTransaction {
                meter_start_wh: 60_000,
                meter_stop_wh: 61_000,
                started_at: start
                    .checked_add(jiff::SignedDuration::from_mins(2))
                    .unwrap(),
                stopped_at: start,
                ..rows[rows.len() - 1].clone()
            });
        }
    }
    assert_eq!(
        store
            .import_transactions(rows, jiff::Timestamp::now())
            .await
            .unwrap(),
        18
    );
}

fn garden_with_cp1() -> CommunityConfig {
    CommunityConfig {
        id: "c1".into(),
        name: None,
        rating_kva: 100.0,
        power_factor: 1.0,
        base_load_kw: BaseLoad::Flat(0.0),
        timezone: None,
        tariff_cny_per_kwh: None,
        emergency_price_cny_per_kwh: None,
        max_emergencies: None,
        default_stay_hours: None,
        default_energy_kwh: None,
        community_meter: None,
        chargers: vec![ChargerConfig {
            id: "CP1".into(),
            phases: 1,
            voltage_v: 220.0,
            max_current_a: 32.0,
            min_current_a: 6.0,
            rate_unit: RateUnitSetting::Amperes,
        }],
    }
}

#[tokio::test]
async fn the_controller_learns_its_forecast_from_the_stored_history() {
    each_backend(|backend| async move {
        let app = spawn_app_prepared(
            backend,
            |config| {
                config.communities = vec![garden_with_cp1()];
                config.control.forecast_days = 28;
            },
            write_history,
        )
        .await;
        app.add_tag("TAG1", "Accepted", None).await;
        // Learned at start: one car a day at 18:00, the bad rows skipped.
        let plan = plan_where(&app, "a forecast", |p| !p["forecast"].is_null()).await;
        let f = &plan["forecast"];
        let ghosts = f["weekday_ghosts"].as_u64().unwrap() + f["weekend_ghosts"].as_u64().unwrap();
        assert!(ghosts >= 1, "{f}");
        // The community charged on only the last 14 of the 28 days: those are the days it
        // observed, so it expects its 20 kWh every weekday and every weekend day (not half).
        let (weekday, weekend) = (
            f["weekday_kwh"].as_f64().unwrap(),
            f["weekend_kwh"].as_f64().unwrap(),
        );
        assert!((weekday - 20.0).abs() < 1e-6, "{f}");
        assert!((weekend - 20.0).abs() < 1e-6, "{f}");
        assert_eq!(
            plan["ghost_sessions"], 0,
            "no car plugged in: nothing planned"
        );

        // A car plugged in: the re-plan adds the expected arrivals of the next 24 hours, which
        // are not sessions: CP1's profiles are for its own transaction only.
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let tx = cp.start(1, "TAG1", 0).await;
        let plan = plan_where(&app, "ghost sessions", |p| {
            p["ghost_sessions"].as_u64().unwrap_or(0) > 0
        })
        .await;
        let sessions = plan["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "{plan:#}");
        assert_eq!(sessions[0]["transaction_id"], tx);
        cp.profile_where("TxProfile", |p| purpose(p) == "TxProfile")
            .await;
        for p in &cp.profiles {
            if purpose(p) == "TxProfile" {
                assert_eq!(p["transactionId"], tx, "{p}");
            }
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn forecast_days_zero_learns_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app_prepared(
            backend,
            |config| {
                config.communities = vec![garden_with_cp1()];
                config.control.forecast_days = 0;
            },
            write_history,
        )
        .await;
        app.add_tag("TAG1", "Accepted", None).await;
        let mut cp = LoopCp::connect(&app, "CP1").await;
        cp.boot().await;
        let tx = cp.start(1, "TAG1", 0).await;
        let plan = plan_where(&app, "the session", |p| session(p, tx).is_some()).await;
        assert!(plan["forecast"].is_null(), "{plan:#}");
        assert_eq!(plan["ghost_sessions"], 0);
        app.stop().await;
    })
    .await;
}
