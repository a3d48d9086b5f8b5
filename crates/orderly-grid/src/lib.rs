//! Demand response, sans-IO.
//!
//! Layout:
//! - [`command`]: a grid load-control command (limit the community to X kW, or reduce it by Y kW,
//!   from `start` to `end`), however it arrived (HTTP API or OpenADR), and its report (baseline,
//!   drawn, delivered reduction, compliance).
//!
//! Architecture invariant: no IO, no clock, no async. Time is an argument.

pub mod command;
pub mod report;

pub use command::{CommandId, CommandKind, CommandReport, CommandSource, GridCommand};
