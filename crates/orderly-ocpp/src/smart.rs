//! OCPP 1.6 smart charging as a charge point applies it (§3.13, §5.16): which profiles a charge
//! point holds after SetChargingProfile / ClearChargingProfile, and the limit they give at an
//! instant.
//!
//! The central system needs this to know what a charger *would* draw if the platform went away
//! (the safe-fallback guarantee is a statement about held profiles), and the virtual charge points
//! need it to behave like real ones. Pure: profiles and `t` in, a limit out.
//!
//! Rules applied, from the 1.6 specification:
//! - A new profile replaces a held one with the same `chargingProfileId`, or with the same
//!   `stackLevel` and purpose on the same connector.
//! - Within a purpose, the valid profile (`validFrom <= t < validTo`) with the highest
//!   `stackLevel` whose schedule has a period at `t` prevails.
//! - For a running transaction a TxProfile (for that transaction, or for no particular one)
//!   overrides TxDefaultProfile; a TxDefaultProfile on the connector overrides one on connector 0.
//!   Without a transaction, the TxDefaultProfile is what the next transaction would get.
//! - ChargePointMaxProfile (connector 0) caps the result.
//! - Schedules: Absolute from `startSchedule`; Relative from the transaction's start; Recurring
//!   Daily/Weekly from `startSchedule` repeated every day/week. A schedule is active from its
//!   start for `duration` seconds (for ever when absent), the last period lasting to its end.
//! - Limits in A are converted with `numberPhases` (3 when absent, as the specification says)
//!   and the charger's phase voltage; the charger's own phase count caps `numberPhases`.

use crate::v16::{
    ChargingProfile, ChargingProfileKind, ChargingProfilePurpose, ChargingRateUnit,
    ClearChargingProfileRequest, RecurrencyKind,
};
use jiff::{SignedDuration, Timestamp};

/// A profile as held by a charge point, with the connector it was set on.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldProfile {
    pub connector_id: i64,
    pub profile: ChargingProfile,
}

/// What converts an ampere limit into watts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Electrical {
    /// Phase-to-neutral voltage (V).
    pub voltage_v: f64,
    /// Phases the charger has (1 or 3).
    pub phases: u8,
}

/// The running transaction on a connector, as far as profiles care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningTransaction {
    pub transaction_id: i64,
    pub started: Timestamp,
}

/// The profiles one charge point holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSet {
    held: Vec<HeldProfile>,
}

impl ProfileSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn profiles(&self) -> &[HeldProfile] {
        &self.held
    }

    /// Apply a SetChargingProfile the charge point accepted.
    pub fn set(&mut self, connector_id: i64, profile: ChargingProfile) {
        self.held.retain(|h| {
            let same_id = h.profile.charging_profile_id == profile.charging_profile_id;
            let same_slot = h.connector_id == connector_id
                && h.profile.stack_level == profile.stack_level
                && h.profile.charging_profile_purpose == profile.charging_profile_purpose;
            !(same_id || same_slot)
        });
        self.held.push(HeldProfile {
            connector_id,
            profile,
        });
    }

    /// Apply a ClearChargingProfile; returns whether anything was removed (`Accepted`) or not
    /// (`Unknown`). With an `id`, the other criteria are ignored (§6.9).
    pub fn clear(&mut self, request: &ClearChargingProfileRequest) -> bool {
        let before = self.held.len();
        self.held.retain(|h| {
            let matches = match request.id {
                Some(id) => h.profile.charging_profile_id == id,
                None => {
                    request.connector_id.is_none_or(|c| c == h.connector_id)
                        && request
                            .charging_profile_purpose
                            .is_none_or(|p| p == h.profile.charging_profile_purpose)
                        && request
                            .stack_level
                            .is_none_or(|s| s == h.profile.stack_level)
                }
            };
            !matches
        });
        self.held.len() != before
    }

    /// A transaction ended: its TxProfiles are discarded (§3.13.3).
    pub fn end_transaction(&mut self, connector_id: i64) {
        self.held.retain(|h| {
            !(h.connector_id == connector_id
                && h.profile.charging_profile_purpose == ChargingProfilePurpose::TxProfile)
        });
    }

    /// The limit (W) on `connector_id` at `t`: for its running transaction when `transaction` is
    /// given, else what a transaction starting then would get. `None`: no profile limits it.
    pub fn limit_w(
        &self,
        connector_id: i64,
        transaction: Option<RunningTransaction>,
        t: Timestamp,
        electrical: Electrical,
    ) -> Option<f64> {
        let best = |purpose: ChargingProfilePurpose, connector: i64| {
            self.held
                .iter()
                .filter(|h| h.connector_id == connector)
                .filter(|h| h.profile.charging_profile_purpose == purpose)
                .filter(|h| match (purpose, transaction) {
                    (ChargingProfilePurpose::TxProfile, Some(tx)) => h
                        .profile
                        .transaction_id
                        .is_none_or(|id| id == tx.transaction_id),
                    (ChargingProfilePurpose::TxProfile, None) => false,
                    _ => true,
                })
                .filter_map(|h| {
                    profile_limit_w(&h.profile, transaction.map(|x| x.started), t, electrical)
                        .map(|w| (h.profile.stack_level, w))
                })
                .max_by_key(|(level, _)| *level)
                .map(|(_, w)| w)
        };
        let session = best(ChargingProfilePurpose::TxProfile, connector_id)
            .or_else(|| best(ChargingProfilePurpose::TxDefaultProfile, connector_id))
            .or_else(|| best(ChargingProfilePurpose::TxDefaultProfile, 0));
        let cap = best(ChargingProfilePurpose::ChargePointMaxProfile, 0);
        match (session, cap) {
            (Some(s), Some(c)) => Some(s.min(c)),
            (s, c) => s.or(c),
        }
    }
}

/// The limit (W) one profile sets at `t`, or `None` when it is not in force then.
pub fn profile_limit_w(
    profile: &ChargingProfile,
    transaction_start: Option<Timestamp>,
    t: Timestamp,
    electrical: Electrical,
) -> Option<f64> {
    if profile.valid_from.is_some_and(|from| t < from.as_jiff())
        || profile.valid_to.is_some_and(|to| t >= to.as_jiff())
    {
        return None;
    }
    let schedule = &profile.charging_schedule;
    let declared_start = schedule.start_schedule.map(|s| s.as_jiff());
    let start = match profile.charging_profile_kind {
        ChargingProfileKind::Absolute => declared_start.or(transaction_start)?,
        ChargingProfileKind::Relative => transaction_start?,
        ChargingProfileKind::Recurring => {
            let first = declared_start?;
            let period = match profile.recurrency_kind? {
                RecurrencyKind::Daily => SignedDuration::from_hours(24),
                RecurrencyKind::Weekly => SignedDuration::from_hours(24 * 7),
            };
            let since = t.duration_since(first);
            if since.is_negative() {
                return None;
            }
            let cycles = since.as_secs() / period.as_secs();
            first
                .checked_add(period * i32::try_from(cycles).ok()?)
                .ok()?
        }
    };
    let offset = t.duration_since(start).as_secs();
    if offset < 0 || schedule.duration.is_some_and(|d| offset >= d) {
        return None;
    }
    let period = schedule
        .charging_schedule_period
        .iter()
        .filter(|p| p.start_period <= offset)
        .max_by_key(|p| p.start_period)?;
    Some(match schedule.charging_rate_unit {
        ChargingRateUnit::W => period.limit,
        ChargingRateUnit::A => {
            let phases = period
                .number_phases
                .unwrap_or(3)
                .min(i64::from(electrical.phases))
                .max(1);
            period.limit * electrical.voltage_v * phases as f64
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v16::{ChargingSchedule, ChargingSchedulePeriod};

    const EL: Electrical = Electrical {
        voltage_v: 220.0,
        phases: 1,
    };

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn profile(
        id: i64,
        purpose: ChargingProfilePurpose,
        level: i64,
        kind: ChargingProfileKind,
        start: Option<&str>,
        periods: &[(i64, f64)],
    ) -> ChargingProfile {
        ChargingProfile {
            charging_profile_id: id,
            transaction_id: None,
            stack_level: level,
            charging_profile_purpose: purpose,
            charging_profile_kind: kind,
            recurrency_kind: None,
            valid_from: None,
            valid_to: None,
            charging_schedule: ChargingSchedule {
                duration: None,
                start_schedule: start.map(|s| ts(s).into()),
                charging_rate_unit: ChargingRateUnit::A,
                charging_schedule_period: periods
                    .iter()
                    .map(|&(start_period, limit)| ChargingSchedulePeriod {
                        start_period,
                        limit,
                        number_phases: None,
                    })
                    .collect(),
                min_charging_rate: None,
            },
        }
    }

    #[test]
    fn tx_profile_overrides_default_and_max_caps() {
        let mut set = ProfileSet::new();
        set.set(
            0,
            profile(
                1,
                ChargingProfilePurpose::ChargePointMaxProfile,
                0,
                ChargingProfileKind::Absolute,
                Some("2026-01-01T00:00:00Z"),
                &[(0, 30.0)],
            ),
        );
        let mut default = profile(
            2,
            ChargingProfilePurpose::TxDefaultProfile,
            0,
            ChargingProfileKind::Recurring,
            Some("2026-01-01T00:00:00Z"),
            &[(0, 10.0), (18 * 3600, 6.0)],
        );
        default.recurrency_kind = Some(RecurrencyKind::Daily);
        default.charging_schedule.duration = Some(86_400);
        set.set(0, default);
        let tx = RunningTransaction {
            transaction_id: 7,
            started: ts("2026-03-05T17:00:00Z"),
        };
        // Idle connector, any day: the daily default, 10 A before 18:00 and 6 A after.
        assert_eq!(
            set.limit_w(1, None, ts("2026-03-05T12:00:00Z"), EL),
            Some(2200.0)
        );
        assert_eq!(
            set.limit_w(1, None, ts("2026-03-05T19:00:00Z"), EL),
            Some(1320.0)
        );
        let mut live = profile(
            11,
            ChargingProfilePurpose::TxProfile,
            0,
            ChargingProfileKind::Absolute,
            Some("2026-03-05T17:00:00Z"),
            &[(0, 32.0), (3600, 16.0)],
        );
        live.transaction_id = Some(7);
        live.valid_to = Some(ts("2026-03-05T19:00:00Z").into());
        set.set(1, live);
        // The TxProfile wins, capped at 30 A by ChargePointMax.
        assert_eq!(
            set.limit_w(1, Some(tx), ts("2026-03-05T17:30:00Z"), EL),
            Some(6600.0)
        );
        assert_eq!(
            set.limit_w(1, Some(tx), ts("2026-03-05T18:30:00Z"), EL),
            Some(3520.0)
        );
        // After validTo the default takes over again.
        assert_eq!(
            set.limit_w(1, Some(tx), ts("2026-03-05T19:00:00Z"), EL),
            Some(1320.0)
        );
        // Another transaction's TxProfile does not apply.
        let other = RunningTransaction {
            transaction_id: 8,
            ..tx
        };
        assert_eq!(
            set.limit_w(1, Some(other), ts("2026-03-05T17:30:00Z"), EL),
            Some(2200.0)
        );
        set.end_transaction(1);
        assert_eq!(set.profiles().len(), 2);
    }

    #[test]
    fn replace_by_id_or_level_and_clear() {
        let mut set = ProfileSet::new();
        let p = |id, level, amps| {
            profile(
                id,
                ChargingProfilePurpose::TxDefaultProfile,
                level,
                ChargingProfileKind::Absolute,
                Some("2026-01-01T00:00:00Z"),
                &[(0, amps)],
            )
        };
        set.set(0, p(2, 0, 10.0));
        set.set(0, p(3, 0, 8.0)); // same level and purpose: replaces
        assert_eq!(set.profiles().len(), 1);
        set.set(0, p(3, 1, 6.0)); // same id: replaces
        assert_eq!(set.profiles().len(), 1);
        set.set(0, p(4, 2, 12.0));
        // Highest stack level in force wins.
        assert_eq!(
            set.limit_w(1, None, ts("2026-02-01T00:00:00Z"), EL),
            Some(2640.0)
        );
        assert!(set.clear(&ClearChargingProfileRequest {
            id: Some(4),
            ..Default::default()
        }));
        assert!(!set.clear(&ClearChargingProfileRequest {
            id: Some(4),
            ..Default::default()
        }));
        assert_eq!(
            set.limit_w(1, None, ts("2026-02-01T00:00:00Z"), EL),
            Some(1320.0)
        );
    }

    #[test]
    fn relative_and_duration_and_phases() {
        let mut p = profile(
            5,
            ChargingProfilePurpose::TxProfile,
            0,
            ChargingProfileKind::Relative,
            None,
            &[(0, 16.0)],
        );
        p.charging_schedule.duration = Some(600);
        p.charging_schedule.charging_schedule_period[0].number_phases = Some(3);
        let three = Electrical {
            voltage_v: 230.0,
            phases: 3,
        };
        let start = ts("2026-01-01T10:00:00Z");
        assert_eq!(
            profile_limit_w(&p, Some(start), ts("2026-01-01T10:05:00Z"), three),
            Some(16.0 * 230.0 * 3.0)
        );
        // A single-phase charger cannot use three phases.
        assert_eq!(
            profile_limit_w(&p, Some(start), ts("2026-01-01T10:05:00Z"), EL),
            Some(16.0 * 220.0)
        );
        assert_eq!(
            profile_limit_w(&p, Some(start), ts("2026-01-01T10:10:00Z"), three),
            None
        );
        assert_eq!(
            profile_limit_w(&p, None, ts("2026-01-01T10:05:00Z"), three),
            None
        );
    }
}
