//! Drives the generator against a small in-process OCPP 1.6J central system written directly on
//! tokio-tungstenite (a real WebSocket server on loopback), and checks what both sides saw.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

use orderly_loadgen::plan::{Plan, Settings};
use orderly_loadgen::run::{Environment, run};
use orderly_loadgen::stats::Report;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers every CALL; BootNotification → Accepted.
    Accept,
    /// BootNotification → Pending.
    Pending,
    /// Closes the WebSocket right after answering the boot.
    CloseAfterBoot,
}

#[derive(Default)]
struct Seen {
    peers: BTreeSet<IpAddr>,
    identities: BTreeSet<String>,
    actions: BTreeMap<String, u64>,
    /// Every inbound CALL's `[2, id, action, payload]` had a fresh id per connection.
    duplicate_ids: u64,
}

/// Starts the central system; returns its ws URL and what it observes.
async fn start_csms(
    password_of: fn(&str) -> String,
    behaviour: Behaviour,
) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ocpp/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            seen2.lock().unwrap().peers.insert(peer.ip());
            let seen = seen2.clone();
            tokio::spawn(async move {
                let identity = Arc::new(Mutex::new(String::new()));
                let identity2 = identity.clone();
                // The error type is fixed by tungstenite's `Callback` trait.
                #[allow(clippy::result_large_err)]
                let callback =
                    move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
                        let id = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let offered = req
                            .headers()
                            .get("Sec-WebSocket-Protocol")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        if !offered.split(',').any(|p| p.trim() == "ocpp1.6") {
                            let mut e = ErrorResponse::new(Some("ocpp1.6 required".into()));
                            *e.status_mut() = StatusCode::BAD_REQUEST;
                            return Err(e);
                        }
                        let expected = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{id}:{}", password_of(&id)))
                        );
                        let auth = req
                            .headers()
                            .get("Authorization")
                            .and_then(|v| v.to_str().ok());
                        if auth != Some(expected.as_str()) {
                            let mut e = ErrorResponse::new(Some("bad credentials".into()));
                            *e.status_mut() = StatusCode::UNAUTHORIZED;
                            return Err(e);
                        }
                        resp.headers_mut().insert(
                            "Sec-WebSocket-Protocol",
                            HeaderValue::from_static("ocpp1.6"),
                        );
                        *identity2.lock().unwrap() = id;
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                seen.lock()
                    .unwrap()
                    .identities
                    .insert(identity.lock().unwrap().clone());
                let mut ids = BTreeSet::new();
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    let (id, action) = (
                        frame[1].as_str().unwrap().to_owned(),
                        frame[2].as_str().unwrap().to_owned(),
                    );
                    {
                        let mut seen = seen.lock().unwrap();
                        *seen.actions.entry(action.clone()).or_default() += 1;
                        if !ids.insert(id.clone()) {
                            seen.duplicate_ids += 1;
                        }
                    }
                    let payload = match (action.as_str(), behaviour) {
                        ("BootNotification", Behaviour::Pending) => {
                            json!({"status": "Pending", "interval": 1, "currentTime": "2026-11-26T12:00:00Z"})
                        }
                        ("BootNotification", _) => {
                            json!({"status": "Accepted", "interval": 10, "currentTime": "2026-11-26T12:00:00Z"})
                        }
                        ("Heartbeat", _) => json!({"currentTime": "2026-11-26T12:00:00Z"}),
                        _ => json!({}),
                    };
                    if ws
                        .send(Message::text(json!([3, id, payload]).to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if action == "BootNotification"
                        && matches!(behaviour, Behaviour::CloseAfterBoot)
                    {
                        let _ = ws.close(None).await;
                        while let Some(Ok(_)) = ws.next().await {}
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

fn settings(url: &str, n: usize) -> Settings {
    let mut s = Settings::new(url, n);
    s.rate = 200.0;
    s.interval = Duration::from_millis(100);
    s.warmup = Duration::from_millis(100);
    s.duration = Duration::from_millis(1000);
    s.call_timeout = Duration::from_secs(5);
    s.connect_timeout = Duration::from_secs(5);
    s.password = Some("pw-%d".into());
    s
}

async fn run_plan(s: Settings) -> Report {
    let plan = Plan::new(s, 28_000).unwrap();
    run(
        plan,
        Environment {
            open_files_limit: 1024,
            worker_threads: 1,
        },
    )
    .await
}

fn right_password(id: &str) -> String {
    format!("pw-{}", id.trim_start_matches("LG").trim_start_matches('0'))
}

fn wrong_password(_: &str) -> String {
    "something else".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_and_sends_scheduled_messages_from_two_source_addresses() {
    let (url, seen) = start_csms(right_password, Behaviour::Accept).await;
    let mut s = settings(&url, 6);
    s.source_addrs = Some(2);
    let report = run_plan(s).await;

    let c = &report.connections;
    assert_eq!(
        (c.attempted, c.established, c.failed, c.dropped),
        (6, 6, 0, 0),
        "{report:#?}"
    );
    assert_eq!(c.held, 6);
    assert_eq!(report.boot.accepted, 6);
    assert_eq!(report.boot.rtt.count, 6);
    // Everything sent was answered: the drain waits for the last outstanding CALL.
    assert_eq!(report.messages.sent, report.messages.answered);
    assert_eq!(
        report.messages.timeouts + report.messages.call_errors + report.messages.bad_frames,
        0
    );
    assert!(report.steady.sent > 0);
    assert_eq!(report.steady.sent, report.steady.answered);
    assert_eq!(report.steady.rtt.count, report.steady.answered);

    let seen = seen.lock().unwrap();
    let peers: Vec<String> = seen.peers.iter().map(ToString::to_string).collect();
    assert_eq!(peers, ["127.0.0.1", "127.0.0.2"]);
    let ids: Vec<&str> = seen.identities.iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "LG00001", "LG00002", "LG00003", "LG00004", "LG00005", "LG00006"
        ]
    );
    assert_eq!(seen.actions.get("BootNotification"), Some(&6));
    assert!(
        seen.actions.get("Heartbeat").is_some_and(|n| *n > 0),
        "{:?}",
        seen.actions
    );
    assert!(
        seen.actions.get("MeterValues").is_some_and(|n| *n > 0),
        "{:?}",
        seen.actions
    );
    assert_eq!(seen.duplicate_ids, 0);
    let total: u64 = seen.actions.values().sum();
    assert_eq!(total, report.messages.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_every_connection_with_401() {
    let (url, seen) = start_csms(wrong_password, Behaviour::Accept).await;
    let report = run_plan(settings(&url, 3)).await;
    assert_eq!(report.connections.established, 0);
    assert_eq!(report.connections.failed, 3);
    assert_eq!(
        report.failures.get("http 401"),
        Some(&3),
        "{:?}",
        report.failures
    );
    assert!(report.timing.all_settled);
    assert!(seen.lock().unwrap().actions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_boot_is_counted_and_retried_instead_of_heartbeats() {
    let (url, seen) = start_csms(right_password, Behaviour::Pending).await;
    let report = run_plan(settings(&url, 2)).await;
    assert_eq!(report.boot.accepted, 0);
    assert!(report.boot.pending >= 2, "{:?}", report.boot);
    let seen = seen.lock().unwrap();
    assert!(seen.actions.get("BootNotification").is_some_and(|n| *n > 2));
    assert_eq!(seen.actions.get("Heartbeat"), None);
    assert_eq!(seen.actions.get("MeterValues"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_counts_as_dropped() {
    let (url, _seen) = start_csms(right_password, Behaviour::CloseAfterBoot).await;
    let report = run_plan(settings(&url, 4)).await;
    assert_eq!(report.connections.established, 4);
    assert_eq!(report.connections.dropped, 4);
    assert_eq!(report.connections.held, 0);
    assert_eq!(
        report.failures.get("closed by server"),
        Some(&4),
        "{:?}",
        report.failures
    );
}
