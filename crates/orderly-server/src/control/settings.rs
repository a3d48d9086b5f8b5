//! Configuration of the closed loop: `[control]` tunables and `[[communities]]` in orderly.toml.

use serde::{Deserialize, Serialize};

/// `[control]`: controller tunables (see `orderly_control::ControllerConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlSettings {
    pub slot_minutes: u32,
    pub replan_interval_secs: u64,
    pub profile_validity_secs: u64,
    pub retry_after_secs: u64,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            slot_minutes: 15,
            replan_interval_secs: 60,
            profile_validity_secs: 300,
            retry_after_secs: 30,
        }
    }
}

/// `[[communities]]`: a community applied (created or updated) at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityConfig {
    pub id: String,
}
