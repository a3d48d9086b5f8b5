//! OpenADR 2.0b VEN driver: registers with a VTN, polls for events, opts in, reports.

use serde::{Deserialize, Serialize};

/// `[openadr]` in orderly.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAdrConfig {
    /// e.g. `http://127.0.0.1:8080/OpenADR2/Simple/2.0b`
    pub vtn_url: String,
    pub ven_name: String,
    /// The community whose load the events control.
    pub community: String,
}
