//! The grid-command benchmark: "grid command → new limits accepted by every charger".
//!
//! N virtual charge points ([`crate::virtual_cp`]) connect to a running `orderly serve`, each
//! with a car plugged in that wants more than it can get. Once every charger has accepted its
//! first TxProfile (and the profile traffic has settled), the community's current draw is
//! summed, and a grid command limiting the community to `fraction` of it is posted
//! (`POST /api/v1/communities/{id}/grid-commands`). For every charger the latency is the time
//! from just before the POST until that charger had answered `Accepted` to the first
//! SetChargingProfile after it that lowers its composite limit. Chargers that never get one
//! within the measuring window are counted as missing.
//!
//! Time is real (protocol speed 1): the benchmark is about wall-clock latency.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::http;
use crate::pattern::IdPattern;
use crate::virtual_cp::{
    CarVisit, SharedClock, VcpEvent, VirtualChargerConfig, run_virtual_charger,
};

/// Which limits the chargers hold when the command comes, and so which profile has to lower.
///
/// The controller sends a charger a TxProfile only when its plan differs from the fallback
/// (TxDefaultProfile) the charger already holds; with room for every car at full power there is
/// none, and the command's lower limit arrives as the command's TxDefaultProfile (stack level 1).
/// When the plan holds cars below their fallback (charging deferred to cheaper hours), each
/// charger holds a TxProfile, which overrides any TxDefaultProfile, so the command is obeyed only
/// once a new, lower TxProfile is accepted: a re-plan of the whole community first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Dear current and next hour (UTC), cheap after; every car wants more than the cheap
    /// hours of its 10-hour stay give, so it charges now at a partial rate under a TxProfile.
    /// Ready = every charger has accepted a TxProfile.
    TxProfile,
    /// Flat tariff, room for all: every car at full power under its fallback.
    /// Ready = every charger's transaction runs and it has accepted its profiles.
    Fallback,
}

/// The `orderly.toml` of the benchmark's community `bench` (N chargers of 1 phase, 220 V, 32 A:
/// 7.04 kW each, transformer sized for all of them at full power, time zone UTC).
pub fn server_config(
    chargers: usize,
    id_pattern: &str,
    first_id: u64,
    scenario: Scenario,
    replan_interval_secs: u64,
    profile_validity_secs: u64,
    now: Timestamp,
) -> Result<String, GridBenchError> {
    let pattern =
        IdPattern::parse(id_pattern).map_err(|e| GridBenchError::Settings(e.to_string()))?;
    let n = chargers as f64;
    let base = 0.05 * n;
    let rating = (n * 7.04 * 1.1 + base) / 0.9;
    let (tariff, energy): (Vec<f64>, f64) = match scenario {
        Scenario::Fallback => (vec![0.5; 24], 10.0),
        Scenario::TxProfile => {
            let hour = (now.as_second().rem_euclid(86_400) / 3600) as usize;
            let tariff = (0..24)
                .map(|h| {
                    if h == hour || h == (hour + 1) % 24 {
                        2.0
                    } else {
                        0.3
                    }
                })
                .collect();
            // The cheap hours of a 10 h stay give 56.3 to 63.4 kWh at 7.04 kW: 68 kWh needs
            // 4.6 to 5.8 kW in the dear hours, i.e. now, below the 7.04 kW fallback.
            (tariff, 68.0)
        }
    };
    let tariff: Vec<String> = tariff.iter().map(|p| format!("{p:.1}")).collect();
    let mut c = format!(
        "clock_speed = 1.0\n\n[control]\nreplan_interval_secs = {replan_interval_secs}\n\
         profile_validity_secs = {profile_validity_secs}\n\n[[communities]]\nid = \"bench\"\n\
         timezone = \"UTC\"\nrating_kva = {rating:.1}\npower_factor = 0.9\nbase_load_kw = {base:.2}\n\
         tariff_cny_per_kwh = [{}]\ndefault_stay_hours = 10.0\ndefault_energy_kwh = {energy:.1}\n\
         chargers = [\n",
        tariff.join(", ")
    );
    for i in 0..chargers {
        c.push_str(&format!(
            "  {{ id = \"{}\", phases = 1, voltage_v = 220.0, max_current_a = 32.0 }},\n",
            pattern.format(first_id + i as u64)
        ));
    }
    c.push_str("]\n");
    Ok(c)
}

/// What the operator asks for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ws://127.0.0.1:PORT/ocpp/`; the charger id is appended.
    pub ws_base: String,
    /// The API's address (same server).
    pub api: SocketAddr,
    pub token: String,
    pub community: String,
    pub chargers: usize,
    pub id_pattern: String,
    pub first_id: u64,
    /// Register chargers (`POST /chargers`) before connecting; 409 (already there) is fine.
    pub register: bool,
    /// The id tag every car presents (registered through the API).
    pub id_tag: String,
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
    /// Each car's own maximum; above the charger's so the profile is what limits it.
    pub car_max_kw: f64,
    pub car_energy_kwh: f64,
    /// New charger connections per second.
    pub rate: f64,
    /// Source addresses used round-robin from 127.0.0.1 (each gives ~28k ports).
    pub source_addrs: usize,
    pub meter_interval_secs: f64,
    /// Longest wait for every charger's first TxProfile.
    pub ready_timeout: Duration,
    /// Quiet time (no SetChargingProfile anywhere) required before the command is posted.
    pub settle: Duration,
    /// Longest wait for the lowered limits after the POST.
    pub measure_timeout: Duration,
    /// The command's limit as a fraction of the community's current draw.
    pub fraction: f64,
    pub command_minutes: u32,
    /// What "ready for the command" means (see [`Scenario`]).
    pub scenario: Scenario,
}

impl Settings {
    pub fn new(
        ws_base: impl Into<String>,
        api: SocketAddr,
        token: impl Into<String>,
        chargers: usize,
    ) -> Self {
        Self {
            ws_base: ws_base.into(),
            api,
            token: token.into(),
            community: "bench".into(),
            chargers,
            id_pattern: "GB%05d".into(),
            first_id: 1,
            register: true,
            id_tag: "GRIDBENCH".into(),
            phases: 1,
            voltage_v: 220.0,
            max_current_a: 32.0,
            car_max_kw: 11.0,
            car_energy_kwh: 60.0,
            rate: 500.0,
            source_addrs: 1,
            meter_interval_secs: 60.0,
            ready_timeout: Duration::from_secs(300),
            settle: Duration::from_secs(3),
            measure_timeout: Duration::from_secs(60),
            fraction: 0.5,
            command_minutes: 60,
            scenario: Scenario::TxProfile,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GridBenchError {
    #[error("bad settings: {0}")]
    Settings(String),
    #[error("API {what}: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: http::HttpError,
    },
    #[error("API {what} answered {status}: {body}")]
    Api {
        what: &'static str,
        status: u16,
        body: String,
    },
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(mut ms: Vec<f64>) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        // Nearest-rank percentile: the smallest value with at least q of the samples at or below.
        let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Self {
            count: ms.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }
}

/// The benchmark's JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub n: usize,
    /// Chargers whose transaction started (StartTransaction answered).
    pub plugged: usize,
    pub scenario: Scenario,
    /// Chargers that accepted a TxProfile before the command.
    pub with_tx_profile: usize,
    /// Seconds from the first connection until every charger had its first TxProfile.
    pub ready_secs: f64,
    /// Community draw when the command was posted (sum of the chargers' power).
    pub aggregate_kw_before: f64,
    pub command_kw: f64,
    pub command_id: Option<serde_json::Value>,
    /// Round trip of the POST itself.
    pub post_ms: f64,
    /// Just-before-POST → lowered limit accepted, per charger.
    pub latency_ms: Latency,
    /// Chargers with no lowered limit accepted within the measuring window.
    pub missing: usize,
    /// Just-before-POST → the sum of the limits the chargers hold (their composite limits) is at
    /// or below the command's kW for the first time; `None` if not within the window. A charger's
    /// first lowered profile need not be its last, so this can come after `latency_ms.max`.
    pub limits_within_command_ms: Option<f64>,
    /// Community draw once the measuring window closed.
    pub aggregate_kw_after: f64,
    pub profiles_after_post: u64,
    pub profiles_rejected: u64,
    /// SetChargingProfile answered before the command, by purpose (diagnostics).
    pub profiles_before_post: std::collections::BTreeMap<String, u64>,
    pub disconnects: u64,
}

#[derive(Debug, Default, Clone)]
struct Charger {
    plugged: bool,
    tx_profile: bool,
    composite_kw: Option<f64>,
    power_kw: f64,
    /// Composite limit just before the POST.
    before_kw: Option<f64>,
    latency: Option<Duration>,
}

struct Collector {
    chargers: HashMap<String, Charger>,
    last_profile: Instant,
    posted_at: Option<Instant>,
    /// Sum of the chargers' composite limits (kW).
    limits_kw: f64,
    command_kw: f64,
    within_command: Option<Duration>,
    profiles_after_post: u64,
    profiles_rejected: u64,
    profiles_before_post: std::collections::BTreeMap<String, u64>,
}

impl Collector {
    fn on(&mut self, e: VcpEvent) {
        match e {
            VcpEvent::Plugged { charger, .. } => {
                self.chargers.entry(charger).or_default().plugged = true
            }
            VcpEvent::Unplugged { charger, .. } => {
                self.chargers.entry(charger).or_default().plugged = false
            }
            VcpEvent::Power { charger, kw } => {
                self.chargers.entry(charger).or_default().power_kw = kw
            }
            VcpEvent::Profile {
                charger,
                received,
                answered,
                purpose,
                accepted,
                composite_kw,
                ..
            } => {
                self.last_profile = self.last_profile.max(received);
                if !accepted {
                    self.profiles_rejected += 1;
                }
                let c = self.chargers.entry(charger).or_default();
                if accepted && purpose == "TxProfile" {
                    c.tx_profile = true;
                }
                if accepted {
                    self.limits_kw += composite_kw - c.composite_kw.unwrap_or(0.0);
                    c.composite_kw = Some(composite_kw);
                }
                if self.posted_at.is_none_or(|t0| received < t0) {
                    *self
                        .profiles_before_post
                        .entry(purpose.clone())
                        .or_default() += 1;
                }
                if let Some(t0) = self.posted_at
                    && received >= t0
                {
                    self.profiles_after_post += 1;
                    let lowered = c.before_kw.is_some_and(|b| composite_kw < b - 1e-6);
                    if accepted && lowered && c.latency.is_none() {
                        c.latency = Some(answered.saturating_duration_since(t0));
                    }
                    if self.within_command.is_none() && self.limits_kw <= self.command_kw + 1e-6 {
                        self.within_command = Some(answered.saturating_duration_since(t0));
                    }
                }
            }
        }
    }

    fn count(&self, f: impl Fn(&Charger) -> bool) -> usize {
        self.chargers.values().filter(|c| f(c)).count()
    }

    fn aggregate_kw(&self) -> f64 {
        self.chargers.values().map(|c| c.power_kw).sum()
    }
}

async fn api(
    settings: &Settings,
    what: &'static str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<http::Response, GridBenchError> {
    http::request(
        settings.api,
        method,
        &format!("/api/v1{path}"),
        Some(&settings.token),
        Some(&body),
    )
    .await
    .map_err(|source| GridBenchError::Http { what, source })
}

/// Registers the id tag and (if asked) the chargers, 32 requests at a time.
async fn register(settings: &Settings, ids: &[String]) -> Result<(), GridBenchError> {
    let ok = |r: &http::Response, what| {
        if r.status < 300 || r.status == 409 {
            Ok(())
        } else {
            Err(GridBenchError::Api {
                what,
                status: r.status,
                body: r.body.to_string(),
            })
        }
    };
    let r = api(
        settings,
        "register id tag",
        "POST",
        "/id-tags",
        json!({"id_tag": settings.id_tag, "status": "Accepted"}),
    )
    .await?;
    ok(&r, "register id tag")?;
    if !settings.register {
        return Ok(());
    }
    let settings = Arc::new(settings.clone());
    for chunk in ids.chunks(32) {
        let mut set = JoinSet::new();
        for id in chunk {
            let (settings, id) = (settings.clone(), id.clone());
            set.spawn(async move {
                api(
                    &settings,
                    "register charger",
                    "POST",
                    "/chargers",
                    json!({"id": id}),
                )
                .await
            });
        }
        while let Some(r) = set.join_next().await {
            let r = r.expect("registration task")?;
            ok(&r, "register charger")?;
        }
    }
    Ok(())
}

/// Runs the benchmark; progress goes to stderr.
pub async fn run(settings: Settings) -> Result<Report, GridBenchError> {
    let pattern = IdPattern::parse(&settings.id_pattern)
        .map_err(|e| GridBenchError::Settings(e.to_string()))?;
    if settings.chargers == 0
        || settings.rate.is_nan()
        || settings.rate <= 0.0
        || !(settings.fraction > 0.0 && settings.fraction < 1.0)
    {
        return Err(GridBenchError::Settings(
            "chargers > 0, rate > 0 and 0 < fraction < 1 are required".into(),
        ));
    }
    let ids: Vec<String> = (0..settings.chargers)
        .map(|i| pattern.format(settings.first_id + i as u64))
        .collect();
    register(&settings, &ids).await?;

    let clock: SharedClock = Arc::new(Timestamp::now);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let start = Instant::now();
    let now = Timestamp::now();
    let visit = CarVisit {
        id_tag: settings.id_tag.clone(),
        arrival: now,
        departure: now
            .checked_add(SignedDuration::from_hours(12))
            .unwrap_or(now),
        energy_kwh: settings.car_energy_kwh,
        max_kw: settings.car_max_kw,
    };
    let spawner = {
        let settings = settings.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let step = Duration::from_secs_f64(1.0 / settings.rate);
            for (i, id) in ids.iter().enumerate() {
                tokio::time::sleep_until((start + step.mul_f64(i as f64)).into()).await;
                let mut config = VirtualChargerConfig::new(
                    format!("{}{id}", settings.ws_base),
                    id.clone(),
                    clock.clone(),
                );
                config.phases = settings.phases;
                config.voltage_v = settings.voltage_v;
                config.max_current_a = settings.max_current_a;
                config.meter_interval_secs = settings.meter_interval_secs;
                config.source_addr = Some(Ipv4Addr::new(
                    127,
                    0,
                    0,
                    1 + (i % settings.source_addrs.max(1)) as u8,
                ));
                tasks.spawn(run_virtual_charger(
                    config,
                    vec![visit.clone()],
                    events_tx.clone(),
                    shutdown.clone(),
                ));
            }
            drop(events_tx);
            tasks
        })
    };

    let mut col = Collector {
        chargers: HashMap::new(),
        last_profile: start,
        posted_at: None,
        profiles_after_post: 0,
        profiles_rejected: 0,
        profiles_before_post: Default::default(),
        limits_kw: 0.0,
        command_kw: 0.0,
        within_command: None,
    };
    let n = settings.chargers;

    // Phase 1: every charger has its first TxProfile, and the profile traffic is quiet.
    let ready_deadline = start + settings.ready_timeout;
    let mut last_progress = Instant::now();
    let mut ready_at = None;
    loop {
        let now = Instant::now();
        let ready = match settings.scenario {
            Scenario::TxProfile => col.count(|c| c.tx_profile),
            Scenario::Fallback => col.count(|c| c.plugged && c.composite_kw.is_some()),
        };
        if ready_at.is_none() && ready >= n {
            ready_at = Some(now);
        }
        if ready_at.is_some() && now.saturating_duration_since(col.last_profile) >= settings.settle
        {
            break;
        }
        if now >= ready_deadline + settings.settle {
            eprintln!("gridbench: ready timeout; going on with {ready} of {n} chargers ready");
            break;
        }
        if now.duration_since(last_progress) >= Duration::from_secs(5) {
            last_progress = now;
            eprintln!(
                "gridbench: {:.0} s: {} plugged, {} with a TxProfile, {:.1} kW",
                start.elapsed().as_secs_f64(),
                col.count(|c| c.plugged),
                col.count(|c| c.tx_profile),
                col.aggregate_kw()
            );
        }
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            col.on(e);
        }
    }
    let ready_secs = ready_at
        .unwrap_or_else(Instant::now)
        .duration_since(start)
        .as_secs_f64();
    while let Ok(e) = events.try_recv() {
        col.on(e);
    }

    // Phase 2: the command.
    let aggregate_kw_before = col.aggregate_kw();
    let command_kw = (aggregate_kw_before * settings.fraction * 10.0).floor() / 10.0;
    for c in col.chargers.values_mut() {
        c.before_kw = c.composite_kw;
    }
    eprintln!("gridbench: posting a {command_kw} kW limit (draw {aggregate_kw_before:.1} kW)");
    let t0 = Instant::now();
    col.posted_at = Some(t0);
    col.command_kw = command_kw;
    let r = api(
        &settings,
        "post grid command",
        "POST",
        &format!("/communities/{}/grid-commands", settings.community),
        json!({"kind": "limit", "kw": command_kw, "duration_minutes": settings.command_minutes}),
    )
    .await?;
    let post_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if r.status != 201 && r.status != 200 {
        return Err(GridBenchError::Api {
            what: "post grid command",
            status: r.status,
            body: r.body.to_string(),
        });
    }
    let command_id = r.body.get("id").cloned();

    // Phase 3: wait for every charger's lowered limit.
    let with_tx_profile = col.count(|c| c.tx_profile);
    let expected = col.count(|c| c.before_kw.is_some());
    let deadline = t0 + settings.measure_timeout;
    while (col.count(|c| c.latency.is_some()) < expected || col.within_command.is_none())
        && Instant::now() < deadline
    {
        match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Ok(Some(e)) => col.on(e),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    while let Ok(e) = events.try_recv() {
        col.on(e);
    }
    let latencies: Vec<f64> = col
        .chargers
        .values()
        .filter_map(|c| c.latency.map(|l| l.as_secs_f64() * 1000.0))
        .collect();

    shutdown_tx.send_replace(true);
    let mut disconnects = 0;
    if let Ok(mut tasks) = spawner.await {
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(r) = tasks.join_next().await {
                if let Ok(Ok(summary)) = r {
                    disconnects += summary.disconnects;
                }
            }
        })
        .await;
        tasks.abort_all();
    }
    Ok(Report {
        n,
        scenario: settings.scenario,
        plugged: col.count(|c| c.plugged),
        with_tx_profile,
        ready_secs,
        aggregate_kw_before,
        command_kw,
        command_id,
        post_ms,
        missing: n - latencies.len(),
        limits_within_command_ms: col.within_command.map(|d| d.as_secs_f64() * 1000.0),
        latency_ms: Latency::of(latencies),
        aggregate_kw_after: col.aggregate_kw(),
        profiles_after_post: col.profiles_after_post,
        profiles_rejected: col.profiles_rejected,
        profiles_before_post: col.profiles_before_post,
        disconnects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_makes_the_current_and_next_hour_dear() {
        let now: Timestamp = "2026-11-26T23:30:00Z".parse().unwrap();
        let c = server_config(2, "GB%05d", 7, Scenario::TxProfile, 60, 300, now).unwrap();
        let tariff = c
            .lines()
            .find(|l| l.starts_with("tariff_cny_per_kwh"))
            .unwrap();
        let prices: Vec<&str> = tariff
            .trim_start_matches("tariff_cny_per_kwh = [")
            .trim_end_matches(']')
            .split(", ")
            .collect();
        assert_eq!(prices.len(), 24);
        assert_eq!((prices[23], prices[0], prices[1]), ("2.0", "2.0", "0.3"));
        assert!(c.contains("default_energy_kwh = 68.0"));
        assert!(c.contains(r#"{ id = "GB00007", phases = 1"#));
        assert!(c.contains(r#"{ id = "GB00008", phases = 1"#));
        assert!(!c.contains("GB00009"));
        let flat = server_config(1, "GB%05d", 1, Scenario::Fallback, 60, 300, now).unwrap();
        assert!(!flat.contains("2.0,"));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (l.p50, l.p90, l.p99, l.max, l.count),
            (50.0, 90.0, 99.0, 100.0, 100)
        );
        assert_eq!(Latency::of(vec![7.0]).p99, 7.0);
        assert_eq!(Latency::of(vec![]).count, 0);
    }
}
