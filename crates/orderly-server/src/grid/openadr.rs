//! OpenADR 2.0b VEN driver: registers with a VTN, polls for events, opts in, reports.
//!
//! The protocol is `orderly_grid::openadr::Ven` (sans-IO); this task only moves its requests
//! over HTTP (hyper-util's client, plain `http://` — no TLS client certificates yet), feeds it
//! the community's measured charging load, and turns its decisions into grid commands for
//! `config.community`: one stored command per event interval (merged when consecutive and
//! equal), keyed `openadr:{event_id}:{n}` so a modified event updates its commands in place and
//! a cancelled one cancels them.
//!
//! Time: the VEN polls and reports on real time; event instants are absolute (as the VTN sent
//! them) and the commands keep them as they are. With an accelerated clock (demo) OpenADR event
//! times therefore only line up with the plan when the clock starts at the real time.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::{SignedDuration, Timestamp};
use orderly_grid::CommandKind;
use orderly_grid::openadr::{self, PlannedCommand, Ven, VenConfig, VenOutput};
use orderly_store::closed_loop::{GridCommandKind, NewGridCommand};
use serde::{Deserialize, Serialize};

use crate::state::AppState;

/// `[openadr]` in orderly.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAdrConfig {
    /// e.g. `http://127.0.0.1:8080/OpenADR2/Simple/2.0b`
    pub vtn_url: String,
    pub ven_name: String,
    /// The community whose load the events control.
    pub community: String,
    /// SIMPLE event levels 1, 2, 3: reduce the community's charging load by this fraction of
    /// its capacity (rating × power factor). Default [0.1, 0.25, 0.5].
    #[serde(default = "default_simple_fractions")]
    pub simple_reduce_fraction: [f64; 3],
    /// Telemetry sampling period offered to the VTN (seconds). Default 10.
    #[serde(default = "default_report_secs")]
    pub report_interval_secs: u64,
    /// Poll period until the VTN asks for one (seconds). Default 10.
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
    /// HTTP timeout per request (seconds). Default 10.
    #[serde(default = "default_timeout_secs")]
    pub http_timeout_secs: u64,
}

fn default_simple_fractions() -> [f64; 3] {
    openadr::CommandPolicy::default().simple_reduce_fraction
}
fn default_report_secs() -> u64 {
    10
}
fn default_poll_secs() -> u64 {
    10
}
fn default_timeout_secs() -> u64 {
    10
}

impl OpenAdrConfig {
    /// The VEN settings for a community of `capacity_kw`.
    pub fn ven_config(&self, capacity_kw: f64) -> VenConfig {
        let mut ven = VenConfig::new(&self.ven_name, &self.community);
        ven.policy.capacity_kw = capacity_kw;
        ven.policy.simple_reduce_fraction = self.simple_reduce_fraction;
        ven.report_sampling = SignedDuration::from_secs(self.report_interval_secs.max(1) as i64);
        ven.default_poll = SignedDuration::from_secs(self.poll_interval_secs.max(1) as i64);
        ven
    }
}

/// Why one HTTP exchange with the VTN failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad VTN URL {0}")]
    Url(String),
    #[error("{0}")]
    Request(String),
    #[error("timed out")]
    Timeout,
    #[error("HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn post(
    client: &HttpClient,
    url: &str,
    body: String,
    timeout: Duration,
) -> Result<String, HttpError> {
    let request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| HttpError::Url(url.to_owned()))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status != StatusCode::OK {
            return Err(HttpError::Status {
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(text)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout)?
}

/// What the VEN made of an event, as a stored grid command (the same record
/// `POST /api/v1/communities/{id}/grid-commands` makes), keyed by event and position.
pub fn new_grid_command(
    community: &str,
    event_id: &str,
    n: usize,
    c: &PlannedCommand,
) -> NewGridCommand {
    let (kind, kw) = match c.kind {
        CommandKind::Limit { kw } => (GridCommandKind::Limit, kw),
        CommandKind::Reduce { kw } => (GridCommandKind::Reduce, kw),
    };
    NewGridCommand {
        community_id: community.to_owned(),
        kind,
        kw,
        start: c.start,
        end: c.end,
        received: c.received,
        source: serde_json::to_value(&c.source).unwrap_or(serde_json::Value::Null),
        source_key: Some(source_key(event_id, n)),
    }
}

/// Store key of the `n`th command of an event.
pub fn source_key(event_id: &str, n: usize) -> String {
    format!("openadr:{event_id}:{n}")
}

/// The community's capacity (kW) the relative signals scale by: rating × power factor.
async fn capacity_kw(state: &AppState, community: &str) -> Result<f64, String> {
    match state.store().get_community(community).await {
        Ok(Some(c)) => Ok(c.rating_kva * c.power_factor),
        Ok(None) => Err("community not found".into()),
        Err(err) => Err(format!("reading the community failed: {err}")),
    }
}

/// The community's measured charging load (kW) from its controller; 0 when it has none.
async fn measured_kw(state: &AppState, community: &str) -> f64 {
    let query = state
        .controllers()
        .query(community, |reply| crate::control::Msg::Plan { reply });
    match tokio::time::timeout(Duration::from_secs(2), query).await {
        Ok(Ok(plan)) => plan.measured_kw,
        _ => 0.0,
    }
}

/// Applies the VEN's outputs to the store and the controller. Keeps, per event, how many
/// commands it has stored (to cancel those a modification dropped).
struct Applier {
    community: String,
    per_event: HashMap<String, usize>,
}

impl Applier {
    async fn apply(&mut self, state: &AppState, output: VenOutput) {
        match output {
            VenOutput::Registered {
                vtn_id,
                ven_id,
                registration_id,
                poll_freq,
            } => tracing::info!(
                vtn = vtn_id.as_deref().unwrap_or("?"),
                ven_id,
                registration_id,
                poll = %poll_freq,
                "openadr: registered with the VTN"
            ),
            VenOutput::Warning(text) => tracing::warn!("openadr: {text}"),
            VenOutput::Event {
                event_id,
                modification_number,
                decision,
            } => {
                tracing::info!(
                    event_id,
                    modification_number,
                    opt = decision.opt.as_str(),
                    commands = decision.commands.len(),
                    unsupported = ?decision.unsupported,
                    "openadr: event"
                );
                let before = self.per_event.get(&event_id).copied().unwrap_or(0);
                for (n, command) in decision.commands.iter().enumerate() {
                    let record = new_grid_command(&self.community, &event_id, n, command);
                    match state.store().insert_grid_command(record).await {
                        Ok(id) => {
                            tracing::info!(event_id, id, kind = ?command.kind, start = %command.start, end = %command.end, "openadr: grid command")
                        }
                        Err(err) => {
                            tracing::error!(event_id, %err, "openadr: storing a grid command failed")
                        }
                    }
                }
                self.cancel_from(
                    state,
                    &event_id,
                    decision.commands.len(),
                    before.max(decision.commands.len()),
                )
                .await;
                self.per_event.insert(event_id, decision.commands.len());
                notify_controller(state, &self.community);
            }
            VenOutput::EventCancelled { event_id } => {
                tracing::info!(event_id, "openadr: event cancelled");
                let before = self.per_event.remove(&event_id).unwrap_or(0);
                // After a restart the count is unknown: look keys up until one is missing.
                let upto = if before == 0 { usize::MAX } else { before };
                self.cancel_from(state, &event_id, 0, upto).await;
                notify_controller(state, &self.community);
            }
        }
    }

    /// Cancels the stored commands `from..upto` of an event (stops at the first missing key).
    async fn cancel_from(&self, state: &AppState, event_id: &str, from: usize, upto: usize) {
        let now = state.clock().now();
        for n in from..upto {
            match state
                .store()
                .get_grid_command_by_key(&source_key(event_id, n))
                .await
            {
                Ok(Some(record)) => {
                    if let Err(err) = state.store().cancel_grid_command(record.id, now).await {
                        tracing::error!(event_id, %err, "openadr: cancelling a grid command failed");
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(event_id, %err, "openadr: reading a grid command failed");
                    break;
                }
            }
        }
    }
}

/// Tells the community's controller its grid commands changed.
fn notify_controller(state: &AppState, community: &str) {
    state
        .controllers()
        .post_community(community, crate::control::Msg::Reload);
}

/// Runs the VEN until `shutdown` resolves.
pub async fn run(config: OpenAdrConfig, state: AppState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let base = config.vtn_url.trim_end_matches('/').to_owned();
    if !base.starts_with("http://") {
        // The client has no TLS (2.0b's certificate-based security is not implemented).
        tracing::error!(vtn = %base, "openadr: only http:// VTN URLs are supported; the VEN is not started");
        return;
    }
    let timeout = Duration::from_secs(config.http_timeout_secs.max(1));
    let mut ven = Ven::new(config.ven_config(0.0));
    // Logged once per change, not on every round.
    let mut capacity_problem: Option<String> = None;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut applier = Applier {
        community: config.community.clone(),
        per_event: HashMap::new(),
    };
    tracing::info!(vtn = %base, ven = %config.ven_name, community = %config.community, "openadr: VEN starting");
    loop {
        // Both may change while the VEN runs (the community is edited, or created after the
        // VEN started): read them afresh before each round of requests.
        match capacity_kw(&state, &config.community).await {
            Ok(kw) => {
                ven.set_capacity_kw(kw);
                capacity_problem = None;
            }
            Err(problem) => {
                if capacity_problem.as_ref() != Some(&problem) {
                    tracing::warn!(community = %config.community, "openadr: {problem}; relative signals (SIMPLE, x-loadControlCapacity) use the last capacity known");
                }
                capacity_problem = Some(problem);
            }
        }
        ven.set_charging_load(measured_kw(&state, &config.community).await);
        while let Some(request) = ven.poll_transmit(Timestamp::now()) {
            let url = format!("{base}/{}", request.path);
            let result = tokio::select! {
                result = post(&client, &url, request.body, timeout) => result,
                () = &mut shutdown => return,
            };
            let now = Timestamp::now();
            match result {
                Ok(body) => {
                    if let Err(err) = ven.handle_response(&body, now) {
                        tracing::warn!(%err, path = request.path, "openadr: VTN answer not usable");
                    }
                }
                Err(err) => ven.handle_failure(now, &err.to_string()),
            }
            while let Some(output) = ven.poll_output() {
                applier.apply(&state, output).await;
            }
        }
        while let Some(output) = ven.poll_output() {
            applier.apply(&state, output).await;
        }
        let wait = match ven.poll_timeout() {
            Some(at) => {
                let d = at.duration_since(Timestamp::now()).as_secs_f64().max(0.0);
                Duration::from_secs_f64(d.min(60.0))
            }
            None => Duration::from_millis(100),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_grid::CommandSource;

    #[test]
    fn config_defaults_and_ven_settings() {
        let config: OpenAdrConfig = serde_json::from_value(serde_json::json!({
            "vtn_url": "http://127.0.0.1:8080/OpenADR2/Simple/2.0b",
            "ven_name": "orderly",
            "community": "demo",
        }))
        .unwrap();
        assert_eq!(config.simple_reduce_fraction, [0.1, 0.25, 0.5]);
        let ven = config.ven_config(200.0);
        assert_eq!(ven.policy.capacity_kw, 200.0);
        assert_eq!(ven.report_sampling, SignedDuration::from_secs(10));
    }

    #[test]
    fn planned_commands_become_store_records() {
        let start: Timestamp = "2030-01-02T10:00:00Z".parse().unwrap();
        let c = PlannedCommand {
            kind: CommandKind::Limit { kw: 50.0 },
            start,
            end: start + SignedDuration::from_mins(30),
            received: start,
            source: CommandSource::OpenAdr {
                vtn_id: "vtn".into(),
                event_id: "e1".into(),
                modification_number: 2,
            },
        };
        let r = new_grid_command("demo", "e1", 1, &c);
        assert_eq!(r.kind, GridCommandKind::Limit);
        assert_eq!(r.kw, 50.0);
        assert_eq!(r.source_key.as_deref(), Some("openadr:e1:1"));
        assert_eq!(r.source["source"], "openadr");
        assert_eq!(r.source["modification_number"], 2);
    }
}
