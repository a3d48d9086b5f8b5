//! Errors of the engine: the problem was malformed, or the V2G linear program failed.

use thiserror::Error;

/// Why a problem could not be planned.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error("slot length must be positive, got {0} minutes")]
    InvalidSlotMinutes(u32),
    #[error("capacity has {capacity} slots but price has {price}")]
    LengthMismatch { capacity: usize, price: usize },
    #[error("{what} of slot {slot} is not a finite number")]
    NonFiniteSlot { what: &'static str, slot: usize },
    #[error("session {id}: {reason}")]
    InvalidSession { id: u64, reason: String },
    #[error("the V2G linear program failed: {0}")]
    V2gSolver(String),
    #[error("planning time {now} is outside the horizon of {slots} slots")]
    NowOutOfHorizon { now: usize, slots: usize },
}
