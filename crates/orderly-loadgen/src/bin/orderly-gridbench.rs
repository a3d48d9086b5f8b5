//! `orderly-gridbench`: grid command → new limits accepted by every charger (see
//! `orderly_loadgen::gridbench`). Prints the report as JSON on stdout, progress on stderr.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use orderly_loadgen::gridbench::{Scenario, Settings, run, server_config};
use orderly_loadgen::sys;

/// Connects N virtual OCPP 1.6J charge points (each with a car plugged in) to a running
/// `orderly serve`, waits until every one has accepted its first TxProfile, posts a grid command
/// limiting the community to a fraction of its current draw, and measures per charger the time
/// until it has accepted a SetChargingProfile that lowers its limit. Loopback only.
#[derive(Debug, Parser)]
#[command(name = "orderly-gridbench", version)]
struct Cli {
    /// The server's address (OCPP at ws://ADDR/ocpp/ID, API at http://ADDR/api/v1).
    #[arg(long, default_value = "127.0.0.1:8180")]
    server: SocketAddr,
    /// API bearer token.
    #[arg(long, env = "ORDERLY_ADMIN_TOKEN", default_value = "")]
    token: String,
    /// Write the server's orderly.toml for this benchmark (community `bench`, N chargers) to
    /// FILE and exit.
    #[arg(long, value_name = "FILE")]
    write_config: Option<std::path::PathBuf>,
    /// What the chargers hold when the command comes (tx-profile: a TxProfile below the
    /// fallback, so the command needs new TxProfiles; fallback: only the fallback profiles).
    #[arg(long, value_enum, default_value = "tx-profile")]
    scenario: Scenario,
    /// `[control] replan_interval_secs` written by --write-config.
    #[arg(long, default_value_t = 60)]
    replan_interval: u64,
    /// `[control] profile_validity_secs` written by --write-config.
    #[arg(long, default_value_t = 300)]
    profile_validity: u64,
    /// Community id the chargers belong to (from the server's config file).
    #[arg(long, default_value = "bench")]
    community: String,
    /// Number of chargers.
    #[arg(short = 'n', long, default_value_t = 1000)]
    chargers: usize,
    /// Charger id pattern (one %d / %0Nd directive).
    #[arg(long, default_value = "GB%05d")]
    id_pattern: String,
    /// Index rendered into the first id.
    #[arg(long, default_value_t = 1)]
    first_id: u64,
    /// Do not register the chargers through the API (the config file already does).
    #[arg(long)]
    no_register: bool,
    /// Phases, voltage and maximum current of every charger (match the server's config).
    #[arg(long, default_value_t = 1)]
    phases: u8,
    #[arg(long, default_value_t = 220.0)]
    voltage_v: f64,
    #[arg(long, default_value_t = 32.0)]
    max_current_a: f64,
    /// New charger connections per second.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Source addresses 127.0.0.1.. used round-robin [default: one per 10,000 chargers].
    #[arg(long)]
    source_addrs: Option<usize>,
    /// MeterValues period of the chargers, seconds.
    #[arg(long, default_value_t = 60.0)]
    meter_interval: f64,
    /// Longest wait for every charger's first TxProfile, seconds.
    #[arg(long, default_value_t = 300.0)]
    ready_timeout: f64,
    /// Quiet time without any SetChargingProfile before the command is posted, seconds.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Longest wait for the lowered limits after the POST, seconds.
    #[arg(long, default_value_t = 60.0)]
    measure_timeout: f64,
    /// The command's limit as a fraction of the community's current draw.
    #[arg(long, default_value_t = 0.5)]
    fraction: f64,
    /// Tokio worker threads (the server shares the machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(path) = &cli.write_config {
        let text = server_config(
            cli.chargers,
            &cli.id_pattern,
            cli.first_id,
            cli.scenario,
            cli.replan_interval,
            cli.profile_validity,
            jiff::Timestamp::now(),
        )?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    anyhow::ensure!(
        !cli.token.is_empty(),
        "--token (or ORDERLY_ADMIN_TOKEN) is required"
    );
    let mut s = Settings::new(
        format!("ws://{}/ocpp/", cli.server),
        cli.server,
        cli.token,
        cli.chargers,
    );
    s.community = cli.community;
    s.id_pattern = cli.id_pattern;
    s.first_id = cli.first_id;
    s.register = !cli.no_register;
    s.phases = cli.phases;
    s.voltage_v = cli.voltage_v;
    s.max_current_a = cli.max_current_a;
    s.rate = cli.rate;
    s.source_addrs = cli
        .source_addrs
        .unwrap_or(cli.chargers.div_ceil(10_000))
        .max(1);
    s.meter_interval_secs = cli.meter_interval;
    s.ready_timeout = Duration::try_from_secs_f64(cli.ready_timeout).context("--ready-timeout")?;
    s.settle = Duration::try_from_secs_f64(cli.settle).context("--settle")?;
    s.measure_timeout =
        Duration::try_from_secs_f64(cli.measure_timeout).context("--measure-timeout")?;
    s.fraction = cli.fraction;
    s.scenario = cli.scenario;
    anyhow::ensure!(
        cli.server.ip().is_loopback(),
        "--server must be a loopback address"
    );
    let limit = sys::raise_open_files_limit().context("raising the open-file limit")?;
    if limit < cli.chargers as u64 + 64 {
        eprintln!(
            "warning: open-file limit {limit} is below the {} descriptors needed",
            cli.chargers + 64
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(s))?;
    runtime.shutdown_background();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
