//! The `orderly` server: OCPP 1.6J central system, HTTP API and CLI.
//!
//! Layout:
//! - [`config`]: defaults → TOML file → `ORDERLY_*` env → flags (figment).
//! - [`cli`]: the clap command tree of the `orderly` binary; [`commands`] runs the storage
//!   subcommands (`charger …`, `id-tag …`).
//! - [`state`]: [`AppState`], shared by everything below (config, store, registry).
//! - [`gateway`]: `/ocpp/{id}`: admission before the WebSocket upgrade, one driver task per
//!   connection (`gateway::session`), the charger-initiated handlers, the registry of
//!   connected chargers that the API uses to reach them.
//! - [`api`]: `/api/v1` (bearer auth, OpenAPI at `/api/v1/openapi.json`) and `/metrics`.
//! - [`metrics`]: Prometheus metric names and recorder.
//! - [`reminders`]: the waiting list's gateway hooks and sweep, insurance alerts (protocol time).
//! - [`parking`]: the task driving `orderly_parking`'s rules (webhook and MQTT occupancy
//!   reports, connector statuses of bays' chargers, ticks).
//! - [`notify`]: the notification dispatcher (outbox → log and webhook notifiers).
//!
//! Entry points: [`open`] prepares the storage (migrations, bootstrap token), [`app`] builds the
//! router for a state (in-process tests), [`serve`] runs it on a bound listener until shutdown,
//! and [`run`] does all three the way `orderly serve` does.

pub mod api;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod demo;
pub mod gateway;
pub mod grid;
pub mod metrics;
pub mod notify;
pub mod parking;
pub mod reminders;
pub mod seed;
pub mod sharing;
pub mod state;

pub use config::Config;
pub use state::AppState;

use axum::Router;
use axum::routing::get;
use orderly_store::{Store, StoreError};
use std::future::Future;
use std::io::Write;
use tokio::net::TcpListener;

/// How long shutdown waits for charger connections to finish their current answer.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors that stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot apply the configured communities: {0}")]
    Communities(#[from] control::ApplyError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// An opened state plus what start-up created.
pub struct Opened {
    pub state: AppState,
    /// The bootstrap admin token, when this start created it (print it once; only its hash is
    /// stored).
    pub created_admin_token: Option<String>,
}

/// Open the store named by `config` (creating the data directory for the embedded database,
/// running migrations) and make sure an admin token exists.
pub async fn open(config: Config) -> Result<Opened, ServerError> {
    let store = open_store(&config).await?;
    let created_admin_token = store
        .ensure_admin_token(config.admin_token.as_deref(), jiff::Timestamp::now())
        .await?;
    // `[[communities]]` of the config file: created or updated, chargers registered if missing.
    control::apply_config(&store, &config.communities, jiff::Timestamp::now()).await?;
    // Compile the 56 schemas now rather than on the first charger's message.
    orderly_ocpp::validate::warm_up();
    Ok(Opened {
        state: AppState::new(config, store),
        created_admin_token,
    })
}

/// Open (and migrate) the database of `config`; used by `serve` and the storage subcommands.
pub async fn open_store(config: &Config) -> Result<Store, ServerError> {
    if config.uses_embedded_database() {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    }
    let url = match &config.database_url {
        Some(url) => url.clone(),
        None => orderly_store::sqlite_url(&config.data_dir.join("orderly.db")),
    };
    Ok(Store::open(&url).await?)
}

/// The whole HTTP surface for `state`: `/ocpp/{id}`, `/api/v1/…`, `/metrics`.
pub fn app(state: AppState) -> Router {
    // Install the recorder before the first message is counted (counts made earlier are lost).
    metrics::handle();
    Router::new()
        .route("/ocpp/{id}", get(gateway::upgrade))
        .route("/metrics", get(api::metrics))
        .merge(api::router(state.clone()))
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` completes, then close the store (flushing the
/// writer). The community controllers run while it serves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // One controller per stored community, before the first charger can connect.
    control::start_all(&state).await?;
    // The OpenADR VEN, when configured, until the server stops (dropping `_ven_stop` ends it).
    let (_ven_stop, ven_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(openadr) = state.config().openadr.clone() {
        tokio::spawn(grid::openadr::run(openadr, state.clone(), async move {
            let _ = ven_stopped.await;
        }));
    }
    // The notification dispatcher, until the server stops (dropping `_notify_stop` ends it).
    let notifiers =
        notify::notifiers(&state.config().notifications).map_err(ServerError::Config)?;
    let (_notify_stop, notify_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(notify::run(
        state.store().clone(),
        notifiers,
        std::time::Duration::from_millis(state.config().notifications.poll_interval_ms.max(10)),
        async move {
            let _ = notify_stopped.await;
        },
    ));
    // The waiting-list sweep and insurance alerts, until the server stops.
    let (reminders_stop, reminders_stopped) = tokio::sync::oneshot::channel::<()>();
    let reminders = tokio::spawn(reminders::run(state.clone(), async move {
        let _ = reminders_stopped.await;
    }));
    // Parking and charging together: reports, connector statuses, ticks (and MQTT if set).
    let (parking_stop, parking_stopped) = tokio::sync::oneshot::channel::<()>();
    let parking = tokio::spawn(parking::run(state.clone(), async move {
        let _ = parking_stopped.await;
    }));
    // The sharing no-show sweep, until the server stops (`sweep_stop` is dropped below).
    let (sweep_stop, sweep_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sharing::run(state.clone(), sweep_stopped));
    let result = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    drop(reminders_stop);
    let _ = reminders.await;
    // No new profiles once shutdown began: chargers keep the fallback they hold.
    state.controllers().stop_all();
    drop(sweep_stop);
    // WebSockets are not HTTP connections any more, so axum does not wait for them: close them,
    // let answers in progress finish, then flush the writer.
    state.registry().disconnect_all();
    if !state.registry().wait_idle(SHUTDOWN_GRACE).await {
        tracing::warn!("some charger connections did not close within {SHUTDOWN_GRACE:?}");
    }
    // The parking task finishes the change in hand before the writer is flushed.
    drop(parking_stop);
    let _ = parking.await;
    state.store().close().await;
    Ok(result?)
}

/// What `orderly serve` does once the listener is bound: open the storage, print
/// `admin token: …` (when created) and `listening on ADDR` to stdout, then serve.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let opened = open(config).await?;
    let addr = listener.local_addr()?;
    {
        // Scripts (and the interop tests) read these lines: one per line, flushed, and
        // `listening on` last, once the server is ready.
        let mut out = std::io::stdout().lock();
        if let Some(token) = &opened.created_admin_token {
            writeln!(out, "admin token: {token}")?;
        }
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "serving OCPP at ws://{addr}/ocpp/{{id}} and the API at http://{addr}/api/v1");
    serve(listener, opened.state, shutdown).await
}
