//! The `orderly` server: OCPP 1.6J central system, HTTP API and CLI.
//!
//! Layout:
//! - [`config`]: defaults → TOML file → `ORDERLY_*` env → flags (figment).
//! - [`cli`]: the clap command tree of the `orderly` binary.
//! - [`metrics`]: Prometheus names and the process-wide recorder.
pub mod cli;
pub mod config;
pub mod metrics;
