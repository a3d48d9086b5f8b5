//! Grid load-control commands (policy clause 八) and what was delivered against them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Identifies a command within one server (assigned by the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(pub i64);

/// What the grid company asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandKind {
    /// The community's charging load (all its chargers together) stays at or below `kw`.
    Limit { kw: f64 },
    /// The charging load is `kw` below the baseline (what the community would have drawn
    /// without the command).
    Reduce { kw: f64 },
}

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum CommandSource {
    /// `POST /api/v1/communities/{id}/grid-commands`, by the named API token/user.
    Api { actor: String },
    /// An OpenADR 2.0b event from a VTN.
    #[serde(rename = "openadr")]
    OpenAdr {
        vtn_id: String,
        event_id: String,
        modification_number: i64,
    },
}

/// One command, as the controller sees it. Valid input: `start < end`, `kw >= 0` and finite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridCommand {
    pub id: CommandId,
    pub kind: CommandKind,
    pub start: Timestamp,
    pub end: Timestamp,
    /// When the command was received (notice = `start - received`).
    pub received: Timestamp,
    pub source: CommandSource,
}

/// What happened during a command's window, slot by slot and in total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    pub command: CommandId,
    /// Slot length the figures below use (minutes).
    pub slot_minutes: u32,
    /// Start of the first slot reported.
    pub from: Timestamp,
    /// Per slot: the charging load the community would have drawn without the command (kW),
    /// from the plan made just before the command took effect.
    pub baseline_kw: Vec<f64>,
    /// Per slot: the charging load measured from meter values (kW, average over the slot);
    /// `None` for slots not yet measured.
    pub drawn_kw: Vec<Option<f64>>,
    /// Average of `baseline - drawn` over the measured slots (kW).
    pub delivered_reduction_kw: f64,
    /// Whether every measured slot met the command (limit: drawn <= kw + tolerance; reduce:
    /// baseline - drawn >= kw - tolerance). `None` until at least one slot is measured.
    pub complied: Option<bool>,
    /// True once the window has ended and every slot is measured.
    pub complete: bool,
}
