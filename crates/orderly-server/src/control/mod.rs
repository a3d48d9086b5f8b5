//! The closed loop in the server: one controller task per community driving
//! `orderly_control::Controller`, fed by the gateway and the API, sending profiles through the
//! registry. (Filled in by the closed-loop work; the types below are the seams other modules use.)

pub mod settings;

pub use settings::{CommunityConfig, ControlSettings};

/// The running controllers, by community (and which community each charger belongs to).
#[derive(Debug, Default)]
pub struct Controllers {}
