//! The orderly-charging engine.
//!
//! Architecture invariant: no IO, no async, no clock. Time is a slot index passed in.

pub mod model;

pub use model::*;
