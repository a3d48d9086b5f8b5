//! The `orderly` binary: parses the command line and hands over to `orderly_server`.

use anyhow::Context;
use clap::Parser;
use orderly_server::cli::{Cli, Command};
use orderly_server::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries the lines scripts read (`listening on`, `admin token`,
    // listings).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Command::Simulate(args) = &cli.command {
        // CPU-bound and synchronous: no runtime needed.
        let metrics = orderly_sim::run(args)?;
        println!("{}", serde_json::to_string_pretty(&metrics)?);
        return Ok(());
    }
    // Two workers: the gateway is I/O bound, and the machine it is sized for has two cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut out = std::io::stdout().lock();
        match cli.command {
            Command::Serve(args) => {
                let config = Config::load(&args.overrides())?;
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.listen))?;
                drop(out);
                orderly_server::run(listener, config, shutdown_signal()).await?;
            }
            Command::Charger(command) => {
                orderly_server::commands::charger(command, &mut out).await?
            }
            Command::IdTag(command) => orderly_server::commands::id_tag(command, &mut out).await?,
            Command::Seed(args) => orderly_server::seed::run(args, &mut out).await?,
            Command::Demo(args) => {
                drop(out);
                orderly_server::demo::run(args, shutdown_signal()).await?;
            }
            Command::Simulate(_) => unreachable!("handled before the runtime starts"),
        }
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
