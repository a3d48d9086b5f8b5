//! Error types. Input errors name the file and, where there is one, the line and field, so a
//! broken data file can be fixed without reading the simulator's source.

use std::path::PathBuf;

/// A problem with one of the input files (sessions, users, state of charge, tariff).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: malformed CSV row: {reason}")]
    Row {
        file: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{file}: the header has no column `{field}`")]
    MissingColumn { file: PathBuf, field: &'static str },
    #[error("{file}:{line}: field `{field}`: {reason} (value {value:?})")]
    Field {
        file: PathBuf,
        line: u64,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{file}: {reason}")]
    Tariff { file: PathBuf, reason: String },
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("invalid argument --{arg}: {reason}")]
    Argument { arg: &'static str, reason: String },
    #[error("no session of location {location:?} arrives in the window {from} + {days} days")]
    EmptyWindow {
        location: String,
        from: jiff::civil::Date,
        days: u32,
    },
    #[error("the scheduling engine failed: {0}")]
    Engine(String),
    #[error("{file}: cannot write the plan: {source}")]
    PlanOut {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
