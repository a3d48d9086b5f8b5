//! The charging profiles the controller sends, as shapes it can compare, and their OCPP 1.6
//! request bodies (layout: see the contract in the crate docs).
//!
//! Times are whole seconds since the Unix epoch; limits are in the charger's unit (A per phase
//! or W). A shape is compared with what the charger holds as a function of time, so the
//! controller knows whether a change lowers a charger's limit everywhere (a *decrease*, safe to
//! send at once), raises it (an *increase*, sent only once the decreases are in), or both (first
//! the pointwise minimum, then the rest).

use crate::community::{ChargerSpec, RateUnit};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use orderly_ocpp::v16;

/// chargingProfileId of the ChargePointMaxProfile.
pub const MAX_PROFILE_ID: i64 = 1;
/// chargingProfileId of the stack-level-0 TxDefaultProfile (the fallback).
pub const DEFAULT_PROFILE_ID: i64 = 2;

/// chargingProfileId of a command's TxDefaultProfile.
pub fn command_profile_id(command: i64) -> i64 {
    100 + command.rem_euclid(1000)
}

/// chargingProfileId of the guard (connector TxDefaultProfile) on `connector`.
pub fn guard_profile_id(connector: i32) -> i64 {
    20 + i64::from(connector)
}

/// Stack level of the guard: above the base fallback (0) and every command's (1 to
/// [`MAX_COMMAND_STACK_LEVEL`]).
pub const GUARD_STACK_LEVEL: i64 = 9;

/// Commands not yet ended get stack levels 1, 2, … up to this: a charge point replaces a
/// profile of the same stack level and purpose on the same connector, so two pending commands
/// on one level would erase each other.
pub const MAX_COMMAND_STACK_LEVEL: i64 = 8;

/// chargingProfileId of the TxProfile on `connector`.
pub fn tx_profile_id(connector: i32) -> i64 {
    10 + i64::from(connector)
}

pub(crate) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Local clock arithmetic of a community (whole seconds).
#[derive(Debug, Clone)]
pub(crate) struct LocalClock {
    pub tz: TimeZone,
}

impl LocalClock {
    fn offset(&self, t: i64) -> i64 {
        i64::from(self.tz.to_offset(ts(t)).seconds())
    }
    /// Local clock hour (0–23) at `t`.
    pub fn hour(&self, t: i64) -> usize {
        ((t + self.offset(t)).rem_euclid(86_400) / 3600) as usize
    }
    /// Start of the local period of `len` seconds (dividing a day) containing `t`.
    pub fn floor(&self, t: i64, len: i64) -> i64 {
        t - (t + self.offset(t)).rem_euclid(len)
    }
    /// Local midnight at or before `t`.
    pub fn midnight(&self, t: i64) -> i64 {
        self.floor(t, 86_400)
    }
    /// The next local hour boundary after `t`.
    pub fn next_hour(&self, t: i64) -> i64 {
        self.floor(t, 3600) + 3600
    }
}

/// What a profile of one kind says, comparably.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// ChargePointMaxProfile: one limit.
    Max(f64),
    /// Stack-0 TxDefaultProfile: a limit per local hour.
    Default([f64; 24]),
    /// A command's TxDefaultProfile (stack level `level`, 1 unless windows overlap): a limit
    /// per local hour in `[from, to)`.
    Command {
        from: i64,
        to: i64,
        level: i64,
        hourly: [f64; 24],
    },
    /// A TxProfile: `periods` (absolute start, limit) from `start` until `valid_to`.
    Tx(TxShape),
    /// An idle guard (see [`idle_guard_body`]): the connector's TxDefaultProfile at the guard's
    /// id and stack level, limit 0 until `valid_to`.
    Idle { valid_to: i64 },
    /// ClearChargingProfile of a command's profile.
    Clear,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TxShape {
    pub transaction_id: i64,
    pub start: i64,
    pub periods: Vec<(i64, f64)>,
    pub valid_to: i64,
}

impl TxShape {
    /// The limit at `t`, if the profile is in force then.
    pub fn at(&self, t: i64) -> Option<f64> {
        if t < self.start || t >= self.valid_to {
            return None;
        }
        let i = self.periods.partition_point(|p| p.0 <= t);
        (i > 0).then(|| self.periods[i - 1].1)
    }
    pub fn max(&self) -> f64 {
        self.periods.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

/// How a new shape relates to the one held, as functions of time from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Equal,
    Decrease,
    Increase,
    Mixed,
}

pub(crate) fn classify_values(pairs: impl Iterator<Item = (f64, f64)>) -> Change {
    let (mut lower, mut higher) = (false, false);
    for (new, old) in pairs {
        if new < old - 1e-9 {
            lower = true;
        } else if new > old + 1e-9 {
            higher = true;
        }
    }
    match (lower, higher) {
        (false, false) => Change::Equal,
        (true, false) => Change::Decrease,
        (false, true) => Change::Increase,
        (true, true) => Change::Mixed,
    }
}

/// Limit conversion for one charger.
pub(crate) fn kw_to_unit(spec: &ChargerSpec, kw: f64) -> f64 {
    if kw <= 0.0 {
        return 0.0;
    }
    match spec.rate_unit {
        RateUnit::Amperes => {
            let a = crate::fallback::floor_tenth(
                (kw * 1000.0 / (spec.voltage_v * f64::from(spec.phases))).min(spec.max_current_a),
            );
            if a + 1e-9 < spec.min_current_a {
                0.0
            } else {
                a
            }
        }
        RateUnit::Watts => {
            let w = (kw.min(spec.max_kw()) * 1000.0 + 1e-6).floor();
            if w + 1e-6 < spec.min_kw() * 1000.0 {
                0.0
            } else {
                w
            }
        }
    }
}

pub(crate) fn unit_to_kw(spec: &ChargerSpec, v: f64) -> f64 {
    match spec.rate_unit {
        RateUnit::Amperes => spec.kw_at(v),
        RateUnit::Watts => v / 1000.0,
    }
}

/// A fallback (A per hour) in the charger's unit.
pub(crate) fn amps_to_unit(spec: &ChargerSpec, amps: f64) -> f64 {
    match spec.rate_unit {
        RateUnit::Amperes => amps,
        RateUnit::Watts => (spec.kw_at(amps) * 1000.0 + 1e-6).floor(),
    }
}

fn unit(spec: &ChargerSpec) -> v16::ChargingRateUnit {
    match spec.rate_unit {
        RateUnit::Amperes => v16::ChargingRateUnit::A,
        RateUnit::Watts => v16::ChargingRateUnit::W,
    }
}

fn period(spec: &ChargerSpec, start: i64, limit: f64) -> v16::ChargingSchedulePeriod {
    v16::ChargingSchedulePeriod {
        start_period: start,
        limit,
        number_phases: Some(i64::from(spec.phases)),
    }
}

fn merged(
    spec: &ChargerSpec,
    periods: impl Iterator<Item = (i64, f64)>,
) -> Vec<v16::ChargingSchedulePeriod> {
    let mut out: Vec<v16::ChargingSchedulePeriod> = Vec::new();
    for (s, l) in periods {
        if out.last().is_some_and(|p| p.limit == l) {
            continue;
        }
        out.push(period(spec, s, l));
    }
    out
}

fn ocpp_ts(secs: i64) -> orderly_ocpp::Timestamp {
    orderly_ocpp::Timestamp(ts(secs))
}

/// The SetChargingProfile body for `shape` (not `Clear`) on `connector` (TxProfile only).
pub(crate) fn request(
    spec: &ChargerSpec,
    clock: &LocalClock,
    shape: &Shape,
    connector: i32,
    command: i64,
    now: i64,
) -> v16::SetChargingProfileRequest {
    use v16::{ChargingProfileKind as Kind, ChargingProfilePurpose as Purpose};
    let schedule = |start: i64, duration: Option<i64>, periods| v16::ChargingSchedule {
        duration,
        start_schedule: Some(ocpp_ts(start)),
        charging_rate_unit: unit(spec),
        charging_schedule_period: periods,
        min_charging_rate: None,
    };
    let (connector_id, profile) = match shape {
        Shape::Max(limit) => (
            0,
            v16::ChargingProfile {
                charging_profile_id: MAX_PROFILE_ID,
                transaction_id: None,
                stack_level: 0,
                charging_profile_purpose: Purpose::ChargePointMaxProfile,
                charging_profile_kind: Kind::Absolute,
                recurrency_kind: None,
                valid_from: None,
                valid_to: None,
                charging_schedule: schedule(
                    now - IDLE_GUARD_LEAD_SECS,
                    None,
                    vec![period(spec, 0, *limit)],
                ),
            },
        ),
        Shape::Default(hourly) => {
            let midnight = clock.midnight(now);
            (
                0,
                v16::ChargingProfile {
                    charging_profile_id: DEFAULT_PROFILE_ID,
                    transaction_id: None,
                    stack_level: 0,
                    charging_profile_purpose: Purpose::TxDefaultProfile,
                    charging_profile_kind: Kind::Recurring,
                    recurrency_kind: Some(v16::RecurrencyKind::Daily),
                    valid_from: None,
                    valid_to: None,
                    charging_schedule: schedule(
                        midnight,
                        Some(86_400),
                        merged(spec, (0..24).map(|h| (h as i64 * 3600, hourly[h]))),
                    ),
                },
            )
        }
        Shape::Command {
            from,
            to,
            level,
            hourly,
        } => {
            let mut pts = Vec::new();
            let mut t = *from;
            while t < *to {
                pts.push((t - from, hourly[clock.hour(t)]));
                t = clock.next_hour(t);
            }
            (
                0,
                v16::ChargingProfile {
                    charging_profile_id: command_profile_id(command),
                    transaction_id: None,
                    stack_level: *level,
                    charging_profile_purpose: Purpose::TxDefaultProfile,
                    charging_profile_kind: Kind::Absolute,
                    recurrency_kind: None,
                    valid_from: Some(ocpp_ts(*from)),
                    valid_to: Some(ocpp_ts(*to)),
                    charging_schedule: schedule(
                        *from,
                        Some(to - from),
                        merged(spec, pts.into_iter()),
                    ),
                },
            )
        }
        Shape::Tx(tx) => (
            i64::from(connector),
            v16::ChargingProfile {
                charging_profile_id: tx_profile_id(connector),
                transaction_id: Some(tx.transaction_id),
                stack_level: 0,
                charging_profile_purpose: Purpose::TxProfile,
                charging_profile_kind: Kind::Absolute,
                recurrency_kind: None,
                valid_from: None,
                valid_to: Some(ocpp_ts(tx.valid_to)),
                charging_schedule: {
                    let (start, periods) = led_periods(spec, tx);
                    schedule(start, Some(tx.valid_to - start), periods)
                },
            },
        ),
        Shape::Idle { valid_to } => (
            i64::from(connector),
            idle_guard_body(spec, connector, *valid_to, now),
        ),
        Shape::Clear => unreachable!("Clear is sent as ClearChargingProfile"),
    };
    v16::SetChargingProfileRequest {
        connector_id,
        cs_charging_profiles: profile,
    }
}

/// How long before `now` the schedules the controller renews start (idle guards, live plans and
/// their guards, ChargePointMaxProfile): the part before `now` changes nothing the platform
/// relies on, but keeps the new profile in force on a charge point whose clock is behind the
/// platform's (a renewal starting at the platform's `now` would leave such a charger on its
/// connector-0 fallback for the skew).
pub const IDLE_GUARD_LEAD_SECS: i64 = 600;

/// The *idle guard* of `connector`: a TxDefaultProfile with the guard's chargingProfileId and
/// stack level ([`guard_profile_id`], [`GUARD_STACK_LEVEL`]), Absolute, one period of limit 0
/// (OCPP 1.6: 0 pauses charging), validTo = the plan's `valid_to`. It replaces the guard left
/// by the connector's last transaction and is replaced by the next transaction's guard. While it
/// is valid a car plugged in with the platform unreachable gets nothing, so the plan needs no
/// room for that charger's fallback; after `valid_to` the connector-0 fallback applies again.
pub(crate) fn idle_guard_body(
    spec: &ChargerSpec,
    connector: i32,
    valid_to: i64,
    now: i64,
) -> v16::ChargingProfile {
    let start = (now - IDLE_GUARD_LEAD_SECS).min(valid_to - 1);
    v16::ChargingProfile {
        charging_profile_id: guard_profile_id(connector),
        transaction_id: None,
        stack_level: GUARD_STACK_LEVEL,
        charging_profile_purpose: v16::ChargingProfilePurpose::TxDefaultProfile,
        charging_profile_kind: v16::ChargingProfileKind::Absolute,
        recurrency_kind: None,
        valid_from: None,
        valid_to: Some(ocpp_ts(valid_to)),
        charging_schedule: v16::ChargingSchedule {
            duration: Some(valid_to - start),
            start_schedule: Some(ocpp_ts(start)),
            charging_rate_unit: unit(spec),
            charging_schedule_period: vec![period(spec, 0, 0.0)],
            min_charging_rate: None,
        },
    }
}

/// A live plan's schedule start and periods, led [`IDLE_GUARD_LEAD_SECS`] into the past with
/// its first limit. A renewal replaces the held profile (same id) the moment it arrives; a
/// charge point whose clock is behind the platform's would otherwise see the new schedule start
/// in its future and fall to its connector-0 fallback until then — all renewed chargers at
/// once (found by the interop test with lagging clocks: 132 % of capacity). The part before
/// the platform's `now` is past for the platform and changes nothing it relies on.
fn led_periods(spec: &ChargerSpec, tx: &TxShape) -> (i64, Vec<v16::ChargingSchedulePeriod>) {
    let start = tx.start - IDLE_GUARD_LEAD_SECS;
    let first = tx.periods.first().map_or(0.0, |p| p.1);
    let periods = merged(
        spec,
        std::iter::once((0, first)).chain(tx.periods.iter().map(|&(s, l)| (s - start, l))),
    );
    (start, periods)
}

/// The guard that goes with a TxProfile: a TxDefaultProfile on the transaction's connector,
/// stack level [`GUARD_STACK_LEVEL`], with the TxProfile's periods and validTo. While the live plan is valid, a car
/// that replaced the planned one on that connector (the resident left, another plugged in,
/// with the platform unreachable) gets no more than the plan reserved for the connector; after
/// validTo both expire together and the connector-0 fallback applies.
pub(crate) fn guard_request(
    spec: &ChargerSpec,
    tx: &TxShape,
    connector: i32,
) -> v16::SetChargingProfileRequest {
    v16::SetChargingProfileRequest {
        connector_id: i64::from(connector),
        cs_charging_profiles: v16::ChargingProfile {
            charging_profile_id: guard_profile_id(connector),
            transaction_id: None,
            stack_level: GUARD_STACK_LEVEL,
            charging_profile_purpose: v16::ChargingProfilePurpose::TxDefaultProfile,
            charging_profile_kind: v16::ChargingProfileKind::Absolute,
            recurrency_kind: None,
            valid_from: None,
            valid_to: Some(ocpp_ts(tx.valid_to)),
            charging_schedule: {
                let (start, periods) = led_periods(spec, tx);
                v16::ChargingSchedule {
                    duration: Some(tx.valid_to - start),
                    start_schedule: Some(ocpp_ts(start)),
                    charging_rate_unit: unit(spec),
                    charging_schedule_period: periods,
                    min_charging_rate: None,
                }
            },
        },
    }
}
