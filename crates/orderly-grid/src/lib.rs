//! Demand response, sans-IO.
//!
//! Layout:
//! - [`command`]: a grid load-control command (limit the community to X kW, or reduce it by Y kW,
//!   from `start` to `end`), however it arrived (HTTP API or OpenADR), and its report (baseline,
//!   drawn, delivered reduction, compliance).
//! - [`openadr`]: an OpenADR 2.0b VEN (simple HTTP pull): the 2.0b messages as XML, and a
//!   state machine that registers, polls, opts in or out of events (turning them into grid
//!   commands) and reports the community's charging load.
//!
//! Architecture invariant: no IO, no clock, no async. Time is an argument.

pub mod command;
pub mod openadr;
pub mod report;

pub use command::{CommandId, CommandKind, CommandReport, CommandSource, GridCommand};
