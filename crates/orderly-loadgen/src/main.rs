//! `orderly-loadgen`: drives N OCPP 1.6J charge points against a central system on loopback and
//! prints a JSON report (see the `orderly_loadgen` library for the layout).

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use orderly_loadgen::plan::{Plan, Settings};
use orderly_loadgen::run::{Environment, run};
use orderly_loadgen::sys;

/// Opens N OCPP 1.6J charge-point WebSocket connections (subprotocol ocpp1.6) to a central system
/// on this machine, boots each, sends Heartbeat and MeterValues on a schedule, and prints
/// connections held, messages per second, round-trip percentiles and the server's RSS as JSON.
///
/// The run is bounded: ramp (at most --ramp-timeout) + --warmup + --duration + a 10 s drain. Only loopback
/// targets and source addresses (127.0.0.0/8) are accepted. A process may hold at most as many
/// sockets as its open-file hard limit allows (20,000 on the benchmark machine); the generator
/// raises its soft limit to the hard limit.
#[derive(Debug, Parser)]
#[command(name = "orderly-loadgen", version)]
struct Cli {
    /// Target URL; the charge point id is appended, e.g. ws://127.0.0.1:8180/ocpp/
    #[arg(long)]
    url: String,
    /// Number of charge-point connections.
    #[arg(short = 'n', long, default_value_t = 1000)]
    connections: usize,
    /// Charge point id pattern (one %d / %0Nd directive).
    #[arg(long, default_value = "LG%05d")]
    id_pattern: String,
    /// Index rendered into the first id.
    #[arg(long, default_value_t = 1)]
    first_id: u64,
    /// HTTP Basic password (user = charge point id); may contain the same %d directive as the id.
    #[arg(long)]
    password: Option<String>,
    /// New connections per second during the ramp.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds between two messages of one connection (Heartbeat and MeterValues alternate).
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Seconds between the end of the ramp and the start of the steady window.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Length of the steady measuring window in seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Longest wait for all connections to boot, in seconds [default: N / rate + 60].
    #[arg(long)]
    ramp_timeout: Option<f64>,
    /// Seconds to wait for a CALLRESULT before counting a timeout.
    #[arg(long, default_value_t = 30.0)]
    call_timeout: f64,
    /// Seconds allowed for TCP connect + WebSocket handshake.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Number of source addresses used round-robin, from --source-base [default: one per 10,000].
    #[arg(long)]
    source_addrs: Option<usize>,
    /// First source address.
    #[arg(long, default_value = "127.0.0.1")]
    source_base: Ipv4Addr,
    /// Seed of the deterministic per-connection schedule offsets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PID of the server under test: its VmRSS is read before connecting and at steady state.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Tokio worker threads (the server under test shares the machine's cores).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// WebSocket read buffer per connection in bytes.
    #[arg(long, default_value_t = 4096)]
    read_buffer: usize,
}

fn secs(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let settings = Settings {
        url: cli.url,
        connections: cli.connections,
        id_pattern: cli.id_pattern,
        first_id: cli.first_id,
        password: cli.password,
        rate: cli.rate,
        interval: secs("interval", cli.interval)?,
        warmup: secs("warmup", cli.warmup)?,
        duration: secs("duration", cli.duration)?,
        ramp_timeout: cli
            .ramp_timeout
            .map(|t| secs("ramp-timeout", t))
            .transpose()?,
        call_timeout: secs("call-timeout", cli.call_timeout)?,
        connect_timeout: secs("connect-timeout", cli.connect_timeout)?,
        source_addrs: cli.source_addrs,
        source_base: cli.source_base,
        seed: cli.seed,
        server_pid: cli.server_pid,
        read_buffer: cli.read_buffer,
    };
    let plan = Plan::new(settings, sys::ephemeral_port_count())?;
    let open_files_limit = sys::raise_open_files_limit().context("raising the open-file limit")?;
    let needed = plan.settings.connections as u64 + 64;
    if open_files_limit < needed {
        eprintln!(
            "warning: open-file limit {open_files_limit} is below the {needed} descriptors {} connections need; the excess will fail",
            plan.settings.connections
        );
    }
    let threads = cli.threads.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(
        plan,
        Environment {
            open_files_limit,
            worker_threads: threads,
        },
    ));
    // Tasks that outlived the stop grace were aborted; do not wait for their sockets.
    runtime.shutdown_background();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
