//! What a grid command delivered: pure evaluation of baseline against measured draw.
//!
//! The controller keeps, per slot of a command's window, the baseline (the charging load the plan
//! without the command expected, fixed when the command starts) and the measured charging load
//! (the time average over the slot of the sum of the chargers' latest power readings). This
//! module turns them into a [`CommandReport`].
//!
//! # Compliance rule
//!
//! A measured slot complies when
//! - `Limit { kw }`: `drawn ≤ kw + tol(kw)`,
//! - `Reduce { kw }`: `baseline − drawn ≥ kw − tol(kw)`,
//!
//! where `tol(kw) = max(tolerance.kw, tolerance.ratio × kw)`. The default tolerance
//! ([`Tolerance::default`]: 1 kW or 5 % of the commanded kW, whichever is larger) absorbs what
//! the loop cannot control: meter resolution, a charger's reaction delay to a new profile, and
//! cars ramping. A command complies when every measured slot does; `None` until one slot is
//! measured.
//!
//! The delivered reduction is the average of `baseline − drawn` over the measured slots (it can
//! be negative when the community drew more than the baseline).

use crate::command::{CommandKind, CommandReport, GridCommand};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Slack allowed when judging compliance (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Absolute slack (kW).
    pub kw: f64,
    /// Relative slack, as a fraction of the commanded kW.
    pub ratio: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            kw: 1.0,
            ratio: 0.05,
        }
    }
}

impl Tolerance {
    /// The slack for a command of `kw`.
    pub fn of(&self, kw: f64) -> f64 {
        self.kw.max(self.ratio * kw.abs())
    }
}

/// Whether one measured slot met `kind`.
pub fn slot_complies(kind: CommandKind, baseline_kw: f64, drawn_kw: f64, tol: Tolerance) -> bool {
    match kind {
        CommandKind::Limit { kw } => drawn_kw <= kw + tol.of(kw),
        CommandKind::Reduce { kw } => baseline_kw - drawn_kw >= kw - tol.of(kw),
    }
}

/// The report of `command` from its per-slot figures.
///
/// `from` is the start of the first slot, `baseline_kw` and `drawn_kw` have one entry per slot of
/// the window (`drawn_kw[i]` is `None` while slot `i` is not measured yet), `window_ended` says the
/// window is over. Slots without a baseline value (shorter vector) count with a baseline of 0.
pub fn evaluate(
    command: &GridCommand,
    slot_minutes: u32,
    from: Timestamp,
    baseline_kw: &[f64],
    drawn_kw: &[Option<f64>],
    window_ended: bool,
    tol: Tolerance,
) -> CommandReport {
    let mut measured = 0usize;
    let mut reduction = 0.0;
    let mut complied = true;
    for (i, d) in drawn_kw.iter().enumerate() {
        let Some(d) = *d else { continue };
        let b = baseline_kw.get(i).copied().unwrap_or(0.0);
        measured += 1;
        reduction += b - d;
        complied &= slot_complies(command.kind, b, d, tol);
    }
    CommandReport {
        command: command.id,
        slot_minutes,
        from,
        baseline_kw: baseline_kw.to_vec(),
        drawn_kw: drawn_kw.to_vec(),
        delivered_reduction_kw: if measured > 0 {
            reduction / measured as f64
        } else {
            0.0
        },
        complied: (measured > 0).then_some(complied),
        complete: window_ended && drawn_kw.iter().all(Option::is_some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandId, CommandSource};

    fn cmd(kind: CommandKind) -> GridCommand {
        let t: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        GridCommand {
            id: CommandId(7),
            kind,
            start: t,
            end: t + jiff::SignedDuration::from_hours(1),
            received: t,
            source: CommandSource::Api { actor: "t".into() },
        }
    }

    #[test]
    fn limit_compliance_and_reduction() {
        let c = cmd(CommandKind::Limit { kw: 50.0 });
        let r = evaluate(
            &c,
            15,
            c.start,
            &[80.0, 80.0, 80.0, 80.0],
            &[Some(50.0), Some(52.4), None, None],
            false,
            Tolerance::default(),
        );
        // 52.4 ≤ 50 + max(1, 2.5)
        assert_eq!(r.complied, Some(true));
        assert!((r.delivered_reduction_kw - (30.0 + 27.6) / 2.0).abs() < 1e-9);
        assert!(!r.complete);
        let r = evaluate(
            &c,
            15,
            c.start,
            &[80.0; 2],
            &[Some(50.0), Some(53.0)],
            true,
            Tolerance::default(),
        );
        assert_eq!(r.complied, Some(false));
        assert!(r.complete);
    }

    #[test]
    fn reduce_compliance() {
        let c = cmd(CommandKind::Reduce { kw: 20.0 });
        let tol = Tolerance::default();
        let r = evaluate(&c, 15, c.start, &[100.0], &[Some(81.0)], true, tol);
        assert_eq!(r.complied, Some(true));
        let r = evaluate(&c, 15, c.start, &[100.0], &[Some(82.0)], true, tol);
        assert_eq!(r.complied, Some(false));
        let r = evaluate(&c, 15, c.start, &[100.0], &[None], false, tol);
        assert_eq!(r.complied, None);
        assert_eq!(r.delivered_reduction_kw, 0.0);
    }
}
