//! What the VEN does with an event: opt in or out, and the grid commands it becomes.
//!
//! Signals acted on (everything else is unsupported; an event with no supported signal is
//! opted out of, since the community cannot deliver it):
//! - `LOAD_DISPATCH` / `setpoint`: the community's charging load stays at or below the value
//!   → [`CommandKind::Limit`]. Values are kW unless the signal's `itemBase` says otherwise
//!   (`powerReal` with `siScaleCode` `none` = W, `k` = kW, `M` = MW).
//! - `LOAD_DISPATCH` / `delta`: a negative value `-x` → [`CommandKind::Reduce`] by x kW; a
//!   non-negative delta (consume more) is not acted on.
//! - `LOAD_CONTROL` / `x-loadControlCapacity`: a fraction 0..1 of the community's capacity →
//!   `Limit { capacity_kw * value }`.
//! - `LOAD_CONTROL` / `x-loadControlSetpoint`: like a LOAD_DISPATCH setpoint → `Limit`.
//!   (The percent and level offsets are relative to a baseline the VTN and VEN would have to
//!   agree on; they are not acted on.)
//! - `SIMPLE` / `level`: level 1, 2, 3 → `Reduce { capacity_kw * simple_reduce_fraction[level-1] }`
//!   (defaults 10 %, 25 %, 50 %); level 0 = normal operation, no command.
//!
//! Each interval with an action becomes one command; consecutive intervals with the same action
//! are merged. Test events (`testEvent` true) are opted in and produce no command. An interval
//! without a duration lasts until the end of the event's active period, or 24 h when that is
//! open-ended too (the VTN modifies or cancels the event before then).

use jiff::{SignedDuration, Timestamp};

use super::message::{Event, EventSignal, OptType};
use crate::command::{CommandId, CommandKind, CommandSource, GridCommand};

/// Community figures the relative signals are scaled by.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPolicy {
    /// The community's charging capacity in kW (rating × power factor; the server passes it).
    pub capacity_kw: f64,
    /// SIMPLE levels 1, 2, 3 → reduce by this fraction of `capacity_kw`.
    pub simple_reduce_fraction: [f64; 3],
}

impl Default for CommandPolicy {
    fn default() -> Self {
        Self {
            capacity_kw: 0.0,
            simple_reduce_fraction: [0.10, 0.25, 0.50],
        }
    }
}

/// A command to be created for an event (the store assigns its id).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCommand {
    pub kind: CommandKind,
    pub start: Timestamp,
    pub end: Timestamp,
    pub received: Timestamp,
    pub source: CommandSource,
}

impl PlannedCommand {
    pub fn into_grid_command(self, id: CommandId) -> GridCommand {
        GridCommand {
            id,
            kind: self.kind,
            start: self.start,
            end: self.end,
            received: self.received,
            source: self.source,
        }
    }
}

/// The VEN's answer to one event version.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub opt: OptType,
    pub commands: Vec<PlannedCommand>,
    /// Signals not acted on, as `NAME/type`, for the log.
    pub unsupported: Vec<String>,
}

const OPEN_ENDED: SignedDuration = SignedDuration::from_hours(24);

fn scale_to_kw(signal: &EventSignal) -> f64 {
    match &signal.item_base {
        Some(base) => match base.scale.as_deref() {
            Some("none") => 0.001,
            Some("M") => 1000.0,
            Some("G") => 1_000_000.0,
            _ => 1.0,
        },
        None => 1.0,
    }
}

fn action(signal: &EventSignal, value: f64, policy: &CommandPolicy) -> Option<Option<CommandKind>> {
    let kind = match (signal.name.as_str(), signal.signal_type.as_str()) {
        ("LOAD_DISPATCH", "setpoint") => Some(CommandKind::Limit {
            kw: (value * scale_to_kw(signal)).max(0.0),
        }),
        ("LOAD_DISPATCH", "delta") => (value < 0.0).then(|| CommandKind::Reduce {
            kw: -value * scale_to_kw(signal),
        }),
        ("LOAD_CONTROL", "x-loadControlSetpoint") => Some(CommandKind::Limit {
            kw: (value * scale_to_kw(signal)).max(0.0),
        }),
        ("LOAD_CONTROL", "x-loadControlCapacity") => Some(CommandKind::Limit {
            kw: policy.capacity_kw * value.clamp(0.0, 1.0),
        }),
        ("SIMPLE" | "simple", "level") => {
            let level = value.round() as i64;
            (1..=3).contains(&level).then(|| CommandKind::Reduce {
                kw: policy.capacity_kw * policy.simple_reduce_fraction[(level - 1) as usize],
            })
        }
        _ => return None,
    };
    Some(kind)
}

/// Decides one event version received at `now` from `vtn_id`.
pub fn decide(event: &Event, vtn_id: &str, policy: &CommandPolicy, now: Timestamp) -> Decision {
    let event_end = (!event.duration.is_zero())
        .then(|| event.start.checked_add(event.duration).ok())
        .flatten();
    let mut commands: Vec<PlannedCommand> = Vec::new();
    let mut supported = false;
    let mut unsupported = Vec::new();
    for signal in &event.signals {
        let mut any = false;
        for interval in &signal.intervals {
            let Some(kind) = action(signal, interval.value, policy) else {
                break;
            };
            any = true;
            let Some(kind) = kind else { continue };
            let end = if interval.duration.is_positive() {
                interval.start.checked_add(interval.duration).ok()
            } else {
                event_end.or_else(|| interval.start.checked_add(OPEN_ENDED).ok())
            };
            let Some(end) = end else { continue };
            if end <= interval.start || end <= now || event.test_event {
                continue;
            }
            let source = CommandSource::OpenAdr {
                vtn_id: vtn_id.to_owned(),
                event_id: event.event_id.clone(),
                modification_number: event.modification_number,
            };
            match commands.last_mut() {
                Some(last) if last.kind == kind && last.end == interval.start => last.end = end,
                _ => commands.push(PlannedCommand {
                    kind,
                    start: interval.start,
                    end,
                    received: now,
                    source,
                }),
            }
        }
        if any || signal.intervals.is_empty() && action(signal, 0.0, policy).is_some() {
            supported = true;
        } else {
            unsupported.push(format!("{}/{}", signal.name, signal.signal_type));
        }
    }
    Decision {
        opt: if supported {
            OptType::OptIn
        } else {
            OptType::OptOut
        },
        commands,
        unsupported,
    }
}
