//! The orderly-charging engine.
//!
//! Architecture invariant: no IO, no async, no clock. Time is a slot index passed in.

pub mod error;
mod flow;
mod minpower;
pub mod model;
mod offline;
pub mod online;
mod transport;
mod v2g;

pub use error::ScheduleError;
pub use model::*;
pub use offline::solve_offline;
pub use online::{
    Calendar, DayType, DaysObserved, Forecast, GhostArrival, HistoricSession, OnlineConfig,
    OnlinePlanner,
};
