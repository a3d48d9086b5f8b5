//! `orderly demo`: the server on embedded SQLite plus a simulated community whose virtual charge
//! points speak OCPP 1.6 over loopback and replay real residential sessions at accelerated time.
//!
//! What it sets up (every figure printed at start):
//! - a fresh data directory (a temporary one, removed at exit unless `--keep`), the server on
//!   `--listen`, an admin token printed for the API;
//! - the protocol clock starting at noon (Asia/Shanghai) of today, `--speed` times real time
//!   (1440: a day per minute);
//! - community `demo`: `--chargers` chargers of 1 phase, 220 V, 32 A (7.04 kW), behind a
//!   transformer sized in [`sizing`] so that at the households' evening peak the cars get about
//!   35 % of what they would draw uncontrolled;
//! - one virtual charge point per charger (`orderly_loadgen::virtual_cp`), replaying the Norway
//!   sessions mapped onto the chargers by [`replay`]; when a car plugs in its resident states the
//!   departure and energy wanted (`PUT /api/v1/transactions/{id}/wish`, the data gives both), and a
//!   few cars per day ask for emergency fast charging;
//! - history: the sessions of the `--forecast-days` (default 28) days before `--from`, mapped the
//!   same way, written into the fresh database as completed transactions of the demo's chargers
//!   before the replay, so the community's controller learns its forecast of arrivals from them
//!   through the server's real path (`control::forecast`); `--forecast-days 0` runs without.
//!
//! Every `--every` real seconds it prints one line ([`summary`]): protocol time, load against
//! capacity, cars plugged and charging, energy, cost, the peak so far against capacity, and the
//! peak the same cars would have reached uncontrolled. Ctrl-C (or `--for-seconds`) stops the
//! virtual chargers, then the server, and prints the closing summary.

mod http;
pub mod reference;
pub mod replay;
pub mod sizing;
pub mod summary;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use jiff::civil::Date;
use orderly_core::{ChargePointId, IdTag};
use orderly_loadgen::virtual_cp::{
    CarVisit, SharedClock, VcpEvent, VcpSummary, VirtualChargerConfig, run_virtual_charger,
};
use orderly_store::{AuthorizationStatus, IdTagRecord, NewCharger, StoreError};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::control::ControlSettings;
use http::Api;
use replay::{CHARGER_KW, Replay, ReplaySpec, Visit};
use sizing::Sizing;
use summary::Tracker;

/// The community's id in the API.
pub const COMMUNITY: &str = "demo";
/// Emergency fast charging price (CNY/kWh), above the peak band.
pub const EMERGENCY_PRICE_CNY: f64 = 1.5;
const VOLTAGE_V: f64 = 220.0;
const MAX_CURRENT_A: f64 = 32.0;
const MIN_CURRENT_A: f64 = 6.0;
/// How long, in real time, stopping waits for the virtual chargers to hang up.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Flags of `orderly demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of chargers in the simulated community.
    #[arg(long, default_value_t = 60)]
    pub chargers: usize,
    /// Protocol seconds per real second (1440: a day per minute).
    #[arg(long, default_value_t = 1440.0)]
    pub speed: f64,
    /// Address the server listens on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8180", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Data directory for the embedded database [default: a new temporary directory, removed at
    /// exit unless --keep].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary data directory at exit (its path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Print a summary line every this many real seconds.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub every: f64,
    /// Stop after this many real seconds (for scripts and tests) [default: run until Ctrl-C].
    #[arg(long, value_name = "SECONDS")]
    pub for_seconds: Option<f64>,
    /// First day of the Norway data to replay (its sessions from noon to noon the next day).
    #[arg(long, default_value = "2020-01-15", value_name = "DATE")]
    pub from: Date,
    /// Number of consecutive days to replay.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Every car's maximum charging rate in kW (at most the charger's 7.04) [default: its
    /// household's measured charging power in the data, at most 7.04].
    #[arg(long, value_name = "KW")]
    pub car_kw: Option<f64>,
    /// Protocol seconds between a charger's MeterValues.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS")]
    pub meter_interval: f64,
    /// Days of history the controller learns its forecast of arrivals from (`[control]
    /// forecast_days`): the sessions of the days before --from are imported as completed
    /// transactions of the demo's chargers before the replay starts. 0: no history, no forecast.
    #[arg(long, default_value_t = 28, value_name = "DAYS")]
    pub forecast_days: u32,
    /// Sessions CSV (Dataset 1 format) [default: data/norway-residential/sessions.csv].
    #[arg(long, value_name = "FILE")]
    pub sessions: Option<PathBuf>,
    /// Users CSV (Dataset 2 format) [default: data/norway-residential/users.csv].
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
}

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--{flag} must be {what}, not {value}")]
    Flag {
        flag: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("the API refused {what}: HTTP {status}: {body}")]
    Api {
        what: String,
        status: u16,
        body: String,
    },
}

impl DemoArgs {
    fn validate(&self) -> Result<(), DemoError> {
        let bad = |flag, what, value: &dyn std::fmt::Display| {
            Err(DemoError::Flag {
                flag,
                what,
                value: value.to_string(),
            })
        };
        if !(1..=9999).contains(&self.chargers) {
            return bad("chargers", "between 1 and 9999", &self.chargers);
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return bad("speed", "a positive number", &self.speed);
        }
        if !(self.every.is_finite() && self.every > 0.0) {
            return bad("every", "a positive number of seconds", &self.every);
        }
        if let Some(s) = self.for_seconds
            && !(s.is_finite() && s > 0.0)
        {
            return bad("for-seconds", "a positive number of seconds", &s);
        }
        if self.forecast_days > 366 {
            return bad("forecast-days", "between 0 and 366", &self.forecast_days);
        }
        if !(1..=366).contains(&self.days) {
            return bad("days", "between 1 and 366", &self.days);
        }
        if let Some(kw) = self.car_kw
            && !(kw.is_finite() && kw > 0.0)
        {
            return bad("car-kw", "a positive number of kW", &kw);
        }
        if !(self.meter_interval.is_finite() && self.meter_interval >= 1.0) {
            return bad("meter-interval", "at least 1 second", &self.meter_interval);
        }
        Ok(())
    }
}

/// The data directory: the user's, or a temporary one removed on drop unless kept.
struct DataDir {
    path: PathBuf,
    remove: bool,
}

impl DataDir {
    fn new(given: Option<PathBuf>, keep: bool) -> std::io::Result<Self> {
        if let Some(path) = given {
            std::fs::create_dir_all(&path)?;
            return Ok(Self {
                path,
                remove: false,
            });
        }
        // A unique name without a tempfile dependency: pid plus a clock reading.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("orderly-demo-{}-{nanos:09}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self {
            path,
            remove: !keep,
        })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Charger ids: DEMO001… (wider when there are more than 999).
fn charger_ids(n: usize) -> Vec<String> {
    let width = n.to_string().len().max(3);
    (1..=n).map(|i| format!("DEMO{i:0width$}")).collect()
}

/// Controller tunables for an accelerated day. The defaults are sized for real time; at 1440×
/// a 60 s re-plan would come every 42 real ms and a 300 s profile would expire 5 times a second,
/// so the demo re-plans every 5 protocol minutes (0.2 s real) and sends profiles valid for 20.
fn demo_control(forecast_days: u32) -> ControlSettings {
    ControlSettings {
        slot_minutes: 15,
        replan_interval_secs: 300,
        profile_validity_secs: 1200,
        retry_after_secs: 60,
        forecast_days,
    }
}

/// Run the demo until Ctrl-C (`shutdown` completes) or `--for-seconds`.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    args.validate()?;
    let tz = replay::shanghai();
    let demo_day = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let sessions = args
        .sessions
        .clone()
        .unwrap_or_else(|| orderly_sim::default_data_file("norway-residential/sessions.csv"));
    let users = args
        .users
        .clone()
        .unwrap_or_else(|| orderly_sim::default_data_file("norway-residential/users.csv"));
    let spec = ReplaySpec {
        chargers: args.chargers,
        from: args.from,
        days: args.days,
        demo_day,
        tz: tz.clone(),
        car_kw: args.car_kw,
    };
    // The history: the same mapping one day more than `forecast_days` before (so the window of
    // whole local days the controller learns from is covered from its first midnight on).
    let history_spec = (args.forecast_days > 0).then(|| {
        let back = jiff::Span::new().days(i64::from(args.forecast_days) + 1);
        ReplaySpec {
            from: args.from.checked_sub(back).unwrap_or(args.from),
            days: args.forecast_days + 1,
            demo_day: demo_day.checked_sub(back).unwrap_or(demo_day),
            ..spec.clone()
        }
    });
    let (replay, history) = tokio::task::spawn_blocking(move || {
        let replay = replay::read(&spec, &sessions, &users)?;
        let history = history_spec
            .map(|h| replay::read(&h, &sessions, &users))
            .transpose()?;
        Ok::<_, orderly_sim::error::DataError>((replay, history))
    })
    .await
    .context("reading the sessions failed")??;
    let tariff = orderly_sim::tariff::Tariff::read(&orderly_sim::default_data_file(
        "tariffs/beijing-ev-tou-2016.json",
    ))?;
    let uncontrolled = replay.uncontrolled();
    let sizing = Sizing::for_community(args.chargers, uncontrolled.first_day_peak());
    let ids = charger_ids(args.chargers);
    // What was possible: the engine's offline optimum for day 1 (about a second; before the
    // protocol clock starts).
    let reference = {
        let (replay, sizing, tariff) = (replay.clone(), sizing.clone(), tariff.clone());
        tokio::task::spawn_blocking(move || {
            reference::day_one(&replay, &sizing, &tariff, EMERGENCY_PRICE_CNY)
        })
        .await
        .context("the offline reference failed")?
    };
    let reference = match reference {
        Ok(r) => r.describe(),
        Err(e) => format!("offline reference for day 1: not available ({e})"),
    };

    let data_dir = DataDir::new(args.data_dir.clone(), args.keep)
        .context("cannot create the data directory")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = Config {
        listen: addr,
        data_dir: data_dir.path.clone(),
        clock_speed: args.speed,
        clock_start: Some(replay.start),
        control: demo_control(args.forecast_days),
        ..Config::default()
    };
    let opened = crate::open(config).await?;
    let state = opened.state;
    let token = match opened.created_admin_token {
        Some(token) => token,
        // A kept data directory already has its bootstrap token (only its hash): make one to
        // print.
        None => {
            state
                .store()
                .create_admin_token("demo", Timestamp::now())
                .await?
        }
    };
    let imported = match &history {
        Some(history) => import_history(&state, &ids, history).await?,
        None => 0,
    };
    print_header(&args, &replay, &sizing, &reference, &token, addr, &data_dir);
    let mut out = std::io::stdout().lock();
    let _ = match &history {
        Some(h) => writeln!(
            out,
            "  history: {imported} sessions of the {} days before {} imported as completed transactions; the controller learns its forecast of arrivals from the last {} days (--forecast-days)",
            h.days, args.from, args.forecast_days
        ),
        None => writeln!(
            out,
            "  history: none (--forecast-days 0): the controller plans the cars plugged in only"
        ),
    };
    drop(out);

    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(listener, state.clone(), async move {
        let _ = server_stopped.await;
    }));

    let api = Api::new(addr, token);
    let controlled = set_up_community(&state, &api, &ids, &replay, &sizing).await?;
    if !controlled {
        println!(
            "note: this build has no community API (PUT /api/v1/communities/{COMMUNITY} → 404): the chargers run uncontrolled"
        );
    }

    // The virtual chargers.
    let clock = *state.clock();
    let shared_clock: SharedClock = Arc::new(move || clock.now());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_fleet, fleet_stopped) = watch::channel(false);
    let mut fleet = tokio::task::JoinSet::new();
    // (charger, arrival) → the visit, to know a plugged car's wish.
    let mut by_arrival: HashMap<(String, i64), Visit> = HashMap::new();
    for (id, visits) in ids.iter().zip(&replay.chargers) {
        let config = VirtualChargerConfig {
            phases: 1,
            voltage_v: VOLTAGE_V,
            max_current_a: MAX_CURRENT_A,
            meter_interval_secs: args.meter_interval,
            speed: args.speed,
            ..VirtualChargerConfig::new(
                format!("ws://{addr}/ocpp/{id}"),
                id.clone(),
                shared_clock.clone(),
            )
        };
        let cars = visits
            .iter()
            .map(|v| {
                by_arrival.insert((id.clone(), v.arrival.as_second()), v.clone());
                CarVisit {
                    id_tag: v.id_tag.clone(),
                    arrival: v.arrival,
                    departure: v.departure,
                    energy_kwh: v.energy_kwh,
                    max_kw: v.max_kw,
                }
            })
            .collect();
        let id = id.clone();
        let (tx, stop) = (events_tx.clone(), fleet_stopped.clone());
        fleet.spawn(async move { (id, run_virtual_charger(config, cars, tx, stop).await) });
    }
    drop(events_tx);

    let mut tracker = Tracker::new(
        replay.start,
        tz,
        tariff,
        EMERGENCY_PRICE_CNY,
        sizing,
        uncontrolled,
    );
    let wish_failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(args.every));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let deadline = async {
        match args.for_seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline, shutdown);
    let mut events_open = true;
    let mut ended: Vec<VcpSummary> = Vec::new();
    loop {
        tokio::select! {
            event = events.recv(), if events_open => match event {
                Some(event) => on_event(
                    event, &mut tracker, &clock, &by_arrival, controlled.then_some(&api), &wish_failures,
                ),
                None => events_open = false,
            },
            _ = ticker.tick() => {
                let now = clock.now();
                tracker.advance(now);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", tracker.line(now));
                let _ = out.flush();
            }
            Some(joined) = fleet.join_next() => report_charger_end(joined, &mut ended),
            () = &mut shutdown => break,
            () = &mut deadline => break,
        }
    }

    // Freeze the figures now: what the chargers do while hanging up is not part of the day.
    let stopped_at = clock.now();
    tracker.advance(stopped_at);
    let report = tracker.report(stopped_at);
    let _ = stop_fleet.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while let Some(joined) = fleet.join_next().await {
            report_charger_end(joined, &mut ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some virtual chargers did not stop within {STOP_GRACE:?}");
        fleet.abort_all();
    }
    let _ = stop_server.send(());
    server.await.context("the server task failed")??;

    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", tracker.line(stopped_at))?;
    writeln!(out, "{report}")?;
    writeln!(out, "  {reference}")?;
    writeln!(out, "{}", fleet_line(&ended, args.chargers))?;
    let failures = wish_failures.load(std::sync::atomic::Ordering::Relaxed);
    if failures > 0 {
        writeln!(out, "  wishes the API refused: {failures} (see the log)")?;
    }
    if !data_dir.remove {
        writeln!(out, "data kept in {}", data_dir.path.display())?;
    }
    out.flush()?;
    Ok(())
}

fn print_header(
    args: &DemoArgs,
    replay: &Replay,
    sizing: &Sizing,
    reference: &str,
    token: &str,
    addr: SocketAddr,
    data_dir: &DataDir,
) {
    let base = |f: fn(f64, f64) -> f64, init| sizing.base_load_kw.iter().copied().fold(init, f);
    let emergencies = replay.visits().filter(|v| v.emergency).count();
    let start = replay.start.to_zoned_datetime(replay.tz.clone());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "orderly demo: community \"{COMMUNITY}\", {} chargers (1 phase, 220 V, 32 A = {CHARGER_KW} kW; {:.0} kW in all) behind a {:.0} kVA transformer (power factor {})",
        args.chargers,
        args.chargers as f64 * CHARGER_KW,
        sizing.rating_kva,
        sizing.power_factor,
    );
    let _ = writeln!(
        out,
        "  households draw {:.0}–{:.0} kW (peak 19:00–21:00), leaving {:.1}–{:.1} kW for cars; uncontrolled, the cars would peak at {:.1} kW on day 1",
        base(f64::min, f64::INFINITY),
        base(f64::max, 0.0),
        sizing.min_capacity_kw(),
        sizing.max_capacity_kw(),
        sizing.uncontrolled_peak_kw,
    );
    let _ = writeln!(
        out,
        "  replaying {} day(s) of Norwegian residential sessions from {} (12 garages, noon to noon): {} visits, {} emergency requests ({} sessions found every charger busy)",
        replay.days,
        args.from,
        replay.visit_count(),
        emergencies,
        replay.not_placed,
    );
    let _ = writeln!(
        out,
        "  protocol clock: {} at {}× real time ({:.0} real seconds per day); data in {}",
        start.strftime("%Y-%m-%d %H:%M %:z"),
        args.speed,
        86_400.0 / args.speed,
        data_dir.path.display(),
    );
    let _ = writeln!(out, "  {reference}");
    let _ = writeln!(
        out,
        "  every {} s: protocol time | load now of capacity now | cars | energy and cost so far | peak 15-minute demand so far (capacity then) | the same cars' uncontrolled peak",
        args.every
    );
    let _ = writeln!(out, "admin token: {token}");
    let _ = writeln!(out, "listening on {addr}");
    let _ = writeln!(
        out,
        "  try: curl -H \"Authorization: Bearer {token}\" http://{addr}/api/v1/communities/{COMMUNITY}/plan"
    );
    let _ = out.flush();
}

/// Write the history's visits into the store as completed transactions of the demo's chargers
/// (meter registers counting up per charger), for the controller's forecast. Returns how many.
async fn import_history(
    state: &crate::AppState,
    ids: &[String],
    history: &Replay,
) -> anyhow::Result<usize> {
    let mut rows = Vec::with_capacity(history.visit_count());
    for (id, visits) in ids.iter().zip(&history.chargers) {
        let charger = ChargePointId::parse(id.clone())?;
        let mut register_wh: i64 = 0;
        for v in visits {
            let wh = (v.energy_kwh * 1000.0).round() as i64;
            rows.push(orderly_store::HistoricTransaction {
                charger_id: charger.clone(),
                connector_id: 1,
                id_tag: IdTag::parse(v.id_tag.clone())?,
                meter_start_wh: register_wh,
                meter_stop_wh: register_wh + wh,
                started_at: v.arrival,
                stopped_at: v.departure,
            });
            register_wh += wh;
        }
    }
    Ok(state
        .store()
        .import_transactions(rows, Timestamp::now())
        .await?)
}

/// Register the chargers and id tags, then create the community and attach the chargers through
/// the API. Returns false when this build has no community API (the demo then runs uncontrolled).
async fn set_up_community(
    state: &crate::AppState,
    api: &Api,
    ids: &[String],
    replay: &Replay,
    sizing: &Sizing,
) -> anyhow::Result<bool> {
    // Concurrently: the store's group-commit writer then puts them in a few transactions
    // instead of one fsync each (the demo's clock is already running).
    let now = state.clock().now();
    let chargers = ids.iter().map(|id| async move {
        let new = NewCharger {
            id: ChargePointId::parse(id.clone())?,
            password: None,
            description: Some("orderly demo virtual charge point".into()),
        };
        match state.store().register_charger(new, now).await {
            // Already there from an earlier run in the same data directory.
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(anyhow::Error::from(e)),
        }
    });
    futures_util::future::try_join_all(chargers).await?;
    let tags = replay.id_tags().into_iter().map(|tag| async move {
        let record = IdTagRecord {
            id_tag: IdTag::parse(tag)?,
            status: AuthorizationStatus::Accepted,
            expiry_date: None,
            parent_id_tag: None,
        };
        state.store().put_id_tag(record, now).await?;
        anyhow::Ok(())
    });
    futures_util::future::try_join_all(tags).await?;
    let per_day_emergencies = (ids.len() / 20).max(1);
    let community = json!({
        "name": "Orderly demo community",
        "rating_kva": sizing.rating_kva,
        "power_factor": sizing.power_factor,
        "base_load_kw": sizing.base_load_kw,
        "timezone": "Asia/Shanghai",
        "emergency_price_cny_per_kwh": EMERGENCY_PRICE_CNY,
        "max_emergencies": per_day_emergencies,
        "default_stay_hours": 10,
        "default_energy_kwh": 10,
    });
    let answer = api
        .put(&format!("/communities/{COMMUNITY}"), &community)
        .await?;
    if answer.status == 404 || answer.status == 405 {
        return Ok(false);
    }
    if !answer.is_success() {
        return Err(DemoError::Api {
            what: format!("community {COMMUNITY}"),
            status: answer.status,
            body: answer.body,
        }
        .into());
    }
    let attach = ids.iter().map(|id| async move {
        let body = json!({
            "community": COMMUNITY,
            "phases": 1,
            "voltage_v": VOLTAGE_V,
            "max_current_a": MAX_CURRENT_A,
            "min_current_a": MIN_CURRENT_A,
            "rate_unit": "amperes",
        });
        let answer = api.put(&format!("/chargers/{id}/community"), &body).await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(anyhow::Error::from(DemoError::Api {
                what: format!("charger {id} in community {COMMUNITY}"),
                status: answer.status,
                body: answer.body,
            }))
        }
    });
    futures_util::future::try_join_all(attach).await?;
    Ok(true)
}

fn on_event(
    event: VcpEvent,
    tracker: &mut Tracker,
    clock: &crate::clock::Clock,
    by_arrival: &HashMap<(String, i64), Visit>,
    api: Option<&Api>,
    wish_failures: &Arc<std::sync::atomic::AtomicUsize>,
) {
    let now = clock.now();
    match event {
        VcpEvent::Plugged {
            charger,
            transaction_id,
            visit,
        } => {
            let wish = by_arrival.get(&(charger.clone(), visit.arrival.as_second()));
            let emergency = wish.is_some_and(|w| w.emergency);
            tracing::debug!(%charger, transaction_id, emergency, max_kw = visit.max_kw, energy_kwh = visit.energy_kwh, arrival = %visit.arrival, departure = %visit.departure, "car plugged in");
            tracker.plugged(&charger, emergency, now);
            if let Some(api) = api {
                // The resident states departure and energy as the car plugs in; asynchronous so
                // the summary never waits on the API.
                let body = json!({
                    "departure": visit.departure.to_string(),
                    "energy_kwh": (visit.energy_kwh * 1000.0).round() / 1000.0,
                    "emergency": emergency,
                });
                let (api, failures) = (api.clone(), wish_failures.clone());
                tokio::spawn(async move {
                    let path = format!("/transactions/{transaction_id}/wish");
                    match api.put(&path, &body).await {
                        Ok(answer) if answer.is_success() => {}
                        Ok(answer) => {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(%charger, transaction_id, status = answer.status, body = %answer.body, "wish refused");
                        }
                        Err(e) => {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(%charger, transaction_id, "wish not sent: {e}");
                        }
                    }
                });
            }
        }
        VcpEvent::Unplugged {
            charger,
            transaction_id,
            delivered_kwh,
            wanted_kwh,
        } => {
            tracing::debug!(%charger, transaction_id, delivered_kwh, wanted_kwh, "car left");
            tracker.unplugged(&charger, delivered_kwh, wanted_kwh, now);
        }
        VcpEvent::Power { charger, kw } => tracker.power(&charger, kw, now),
        VcpEvent::Profile { .. } => {}
    }
}

fn report_charger_end<E: std::fmt::Display>(
    joined: Result<(String, Result<VcpSummary, E>), tokio::task::JoinError>,
    ended: &mut Vec<VcpSummary>,
) {
    match joined {
        Ok((_, Ok(summary))) => ended.push(summary),
        Ok((id, Err(e))) => tracing::warn!(charger = %id, "virtual charger stopped: {e}"),
        Err(e) => tracing::warn!("virtual charger task failed: {e}"),
    }
}

/// One line of what the virtual chargers counted.
fn fleet_line(ended: &[VcpSummary], chargers: usize) -> String {
    let sum = |f: fn(&VcpSummary) -> u64| ended.iter().map(f).sum::<u64>();
    format!(
        "  virtual chargers ({} of {chargers} reported): {} visits started, {} completed, {} skipped, {} refused; profiles {} accepted, {} rejected; {} reconnects",
        ended.len(),
        sum(|s| s.visits_started),
        sum(|s| s.visits_completed),
        sum(|s| s.visits_skipped),
        sum(|s| s.visits_refused),
        sum(|s| s.profiles_accepted),
        sum(|s| s.profiles_rejected),
        sum(|s| s.disconnects),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charger_ids_are_zero_padded() {
        assert_eq!(charger_ids(2), vec!["DEMO001", "DEMO002"]);
        assert_eq!(charger_ids(1000)[999], "DEMO1000");
    }
}
