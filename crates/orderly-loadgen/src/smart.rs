//! OCPP 1.6 smart charging as a charge point applies it: which installed charging profile limits
//! a connector at instant `t`, and when that limit can next change.
//!
//! Pure: profiles, the running transaction and `t` in, a limit out. No clock, no IO, so the
//! virtual charge point can integrate energy exactly between the instants this module names, and
//! the evaluator can move to `orderly_ocpp::smart` unchanged.
//!
//! Rules (OCPP 1.6 §3.13 "Smart Charging"):
//! - Within one purpose, the valid profile with the highest `stackLevel` that has a period in
//!   force at `t` prevails (`validFrom ≤ t < validTo`, `t` inside the schedule's `duration`).
//!   A TxDefaultProfile on the connector itself beats one on connector 0 at the same stack level.
//! - A TxProfile applies only while a transaction runs on its connector and, when it names a
//!   `transactionId`, only to that transaction; it then overrides the TxDefaultProfile.
//! - The ChargePointMaxProfile (connector 0) caps whatever the Tx/TxDefault profile allows.
//! - No profile in force: the hardware maximum.
//! - Kinds: Absolute (from `startSchedule`; absent → `validFrom`, else the instant the profile was
//!   received), Relative (from the start of the transaction; without one, from `t`), Recurring
//!   Daily/Weekly (from `startSchedule` repeated every 24 h / 7 d, in both directions).
//! - Amperes → watts: `limit × voltage × phases`. `numberPhases` defaults to 3 in the
//!   specification; a charger wired for one phase cannot draw on three, so an absent
//!   `numberPhases` means the charger's own phase count, and a larger one is capped to it.
//!
//! Time is handled in whole milliseconds so that the instant [`next_change`] returns evaluates
//! exactly to the new period (floating-point seconds would land a hair before the boundary).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `ChargingProfilePurposeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    ChargePointMaxProfile,
    TxDefaultProfile,
    TxProfile,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ChargePointMaxProfile => "ChargePointMaxProfile",
            Purpose::TxDefaultProfile => "TxDefaultProfile",
            Purpose::TxProfile => "TxProfile",
        }
    }
}

/// `ChargingProfileKindType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Absolute,
    Recurring,
    Relative,
}

/// `RecurrencyKindType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recurrency {
    Daily,
    Weekly,
}

/// `ChargingRateUnitType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateUnit {
    A,
    W,
}

/// `ChargingSchedulePeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Seconds from the start of the schedule.
    pub start_period: i64,
    pub limit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_phases: Option<u8>,
}

/// `ChargingSchedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Seconds; absent = the last period lasts forever (or until the next recurrence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_schedule: Option<Timestamp>,
    pub charging_rate_unit: RateUnit,
    pub charging_schedule_period: Vec<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<f64>,
}

/// `csChargingProfiles` of SetChargingProfile.req.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingProfile {
    pub charging_profile_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    pub stack_level: i64,
    pub charging_profile_purpose: Purpose,
    pub charging_profile_kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrency_kind: Option<Recurrency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Timestamp>,
    pub charging_schedule: Schedule,
}

/// Why a charging profile cannot be installed (the charge point answers `Rejected`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("chargingSchedulePeriod is empty")]
    NoPeriods,
    #[error("the first chargingSchedulePeriod must start at 0")]
    FirstPeriodNotZero,
    #[error("chargingSchedulePeriod startPeriod values must increase")]
    PeriodsNotIncreasing,
    #[error("a limit is negative or not a number")]
    BadLimit,
    #[error("numberPhases must be 1, 2 or 3")]
    BadPhases,
    #[error("duration must be positive")]
    BadDuration,
    #[error("a Recurring profile needs recurrencyKind and startSchedule")]
    RecurringIncomplete,
    #[error("validTo is not after validFrom")]
    EmptyValidity,
    #[error("ChargePointMaxProfile is only allowed on connector 0")]
    MaxProfileOnConnector,
    #[error("TxProfile needs a connector > 0")]
    TxProfileOnConnectorZero,
    #[error("connector {0} does not exist")]
    NoSuchConnector(i64),
    #[error("TxProfile without a transaction running on the connector")]
    NoTransaction,
    #[error("TxProfile for transaction {0}, not the running one")]
    OtherTransaction(i64),
}

/// The schedule-level checks every purpose shares (no knowledge of the charge point needed).
pub fn validate(profile: &ChargingProfile) -> Result<(), ProfileError> {
    let s = &profile.charging_schedule;
    let first = s
        .charging_schedule_period
        .first()
        .ok_or(ProfileError::NoPeriods)?;
    if first.start_period != 0 {
        return Err(ProfileError::FirstPeriodNotZero);
    }
    if s.charging_schedule_period
        .windows(2)
        .any(|w| w[1].start_period <= w[0].start_period)
    {
        return Err(ProfileError::PeriodsNotIncreasing);
    }
    for p in &s.charging_schedule_period {
        if !(p.limit.is_finite() && p.limit >= 0.0) {
            return Err(ProfileError::BadLimit);
        }
        if p.number_phases.is_some_and(|n| !(1..=3).contains(&n)) {
            return Err(ProfileError::BadPhases);
        }
    }
    if s.duration.is_some_and(|d| d <= 0) {
        return Err(ProfileError::BadDuration);
    }
    if profile.charging_profile_kind == Kind::Recurring
        && (profile.recurrency_kind.is_none() || s.start_schedule.is_none())
    {
        return Err(ProfileError::RecurringIncomplete);
    }
    if let (Some(from), Some(to)) = (profile.valid_from, profile.valid_to)
        && to <= from
    {
        return Err(ProfileError::EmptyValidity);
    }
    Ok(())
}

/// A profile held by the charge point: where it was installed and when it arrived (the start of
/// an Absolute schedule that gives neither `startSchedule` nor `validFrom`).
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub connector_id: u32,
    pub profile: ChargingProfile,
    pub received: Timestamp,
}

/// The charger's wiring: what a limit in amperes means in watts, and the hardware maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Electrical {
    pub phases: u8,
    pub voltage_v: f64,
    pub max_current_a: f64,
}

impl Electrical {
    pub fn hardware_max_w(&self) -> f64 {
        self.max_current_a * self.voltage_v * f64::from(self.phases)
    }

    /// Watts for `limit` in `unit` on `number_phases` (absent: the charger's phases).
    pub fn to_watts(&self, limit: f64, unit: RateUnit, number_phases: Option<u8>) -> f64 {
        match unit {
            RateUnit::W => limit,
            RateUnit::A => {
                let phases = number_phases.unwrap_or(self.phases).min(self.phases);
                limit * self.voltage_v * f64::from(phases)
            }
        }
    }

    /// `watts` expressed in `unit` on all of the charger's phases.
    pub fn from_watts(&self, watts: f64, unit: RateUnit) -> f64 {
        match unit {
            RateUnit::W => watts,
            RateUnit::A => watts / (self.voltage_v * f64::from(self.phases)),
        }
    }
}

/// The transaction running on the connector being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningTx {
    /// `None` until the central system has answered StartTransaction.
    pub id: Option<i64>,
    pub start: Timestamp,
}

/// A period in force: its limit as written and in watts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InForce {
    pub profile_id: i64,
    pub purpose: Purpose,
    pub limit: f64,
    pub unit: RateUnit,
    pub number_phases: Option<u8>,
    pub watts: f64,
}

/// What limits a connector at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Composite {
    /// min(hardware, ChargePointMaxProfile, TxProfile or else TxDefaultProfile), in watts.
    pub watts: f64,
    pub max_profile: Option<InForce>,
    /// The TxProfile, or the TxDefaultProfile when no TxProfile is in force.
    pub tx_profile: Option<InForce>,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

const DAY_MS: i64 = 86_400_000;

/// Start (ms) of the schedule cycle that contains `t` (ms), if the schedule can start at all.
fn cycle_start(inst: &Installed, tx: Option<&RunningTx>, t: i64) -> i64 {
    let p = &inst.profile;
    let s = &p.charging_schedule;
    match p.charging_profile_kind {
        Kind::Absolute => ms(s.start_schedule.or(p.valid_from).unwrap_or(inst.received)),
        Kind::Relative => tx.map_or(t, |tx| ms(tx.start)),
        Kind::Recurring => {
            let period = match p.recurrency_kind {
                Some(Recurrency::Weekly) => 7 * DAY_MS,
                _ => DAY_MS,
            };
            // validate() guarantees startSchedule for Recurring; fall back to Absolute-like.
            let anchor = ms(s.start_schedule.unwrap_or(inst.received));
            anchor + (t - anchor).div_euclid(period) * period
        }
    }
}

fn recurrence_ms(p: &ChargingProfile) -> Option<i64> {
    match (p.charging_profile_kind, p.recurrency_kind) {
        (Kind::Recurring, Some(Recurrency::Weekly)) => Some(7 * DAY_MS),
        (Kind::Recurring, _) => Some(DAY_MS),
        _ => None,
    }
}

/// Does the profile apply to `connector` at all (ignoring time)?
fn applies(inst: &Installed, connector: u32, tx: Option<&RunningTx>) -> bool {
    let p = &inst.profile;
    match p.charging_profile_purpose {
        Purpose::ChargePointMaxProfile => inst.connector_id == 0,
        Purpose::TxDefaultProfile => inst.connector_id == 0 || inst.connector_id == connector,
        Purpose::TxProfile => {
            inst.connector_id == connector
                && tx.is_some_and(|tx| match (p.transaction_id, tx.id) {
                    (None, _) => true,
                    (Some(want), Some(have)) => want == have,
                    // The charger does not know its transaction id yet: the profile cannot
                    // have been meant for anything else on this connector.
                    (Some(_), None) => true,
                })
        }
    }
}

/// The period of `inst` in force at `t`, if any.
pub fn period_at<'a>(
    inst: &'a Installed,
    tx: Option<&RunningTx>,
    t: Timestamp,
) -> Option<&'a Period> {
    let p = &inst.profile;
    let t = ms(t);
    if p.valid_from.is_some_and(|f| t < ms(f)) || p.valid_to.is_some_and(|to| t >= ms(to)) {
        return None;
    }
    let start = cycle_start(inst, tx, t);
    let offset = t - start;
    if offset < 0 {
        return None;
    }
    if let Some(d) = p.charging_schedule.duration
        && offset >= d.saturating_mul(1000)
    {
        return None;
    }
    p.charging_schedule
        .charging_schedule_period
        .iter()
        .take_while(|period| period.start_period.saturating_mul(1000) <= offset)
        .last()
}

/// The prevailing profile of `purpose` for `connector` at `t`.
fn prevailing(
    profiles: &[Installed],
    purpose: Purpose,
    connector: u32,
    tx: Option<&RunningTx>,
    t: Timestamp,
    elec: &Electrical,
) -> Option<InForce> {
    profiles
        .iter()
        .filter(|i| i.profile.charging_profile_purpose == purpose && applies(i, connector, tx))
        .filter_map(|i| period_at(i, tx, t).map(|period| (i, period)))
        .max_by_key(|(i, _)| (i.profile.stack_level, i.connector_id != 0))
        .map(|(i, period)| {
            let unit = i.profile.charging_schedule.charging_rate_unit;
            InForce {
                profile_id: i.profile.charging_profile_id,
                purpose,
                limit: period.limit,
                unit,
                number_phases: period.number_phases,
                watts: elec.to_watts(period.limit, unit, period.number_phases),
            }
        })
}

/// What limits `connector` at `t`.
pub fn composite_at(
    profiles: &[Installed],
    connector: u32,
    tx: Option<&RunningTx>,
    t: Timestamp,
    elec: &Electrical,
) -> Composite {
    let max_profile = prevailing(
        profiles,
        Purpose::ChargePointMaxProfile,
        connector,
        tx,
        t,
        elec,
    );
    let tx_profile = tx
        .and_then(|_| prevailing(profiles, Purpose::TxProfile, connector, tx, t, elec))
        .or_else(|| prevailing(profiles, Purpose::TxDefaultProfile, connector, tx, t, elec));
    let mut watts = elec.hardware_max_w();
    for f in [max_profile, tx_profile].into_iter().flatten() {
        watts = watts.min(f.watts);
    }
    Composite {
        watts: watts.max(0.0),
        max_profile,
        tx_profile,
    }
}

/// The composite limit in watts (see [`composite_at`]).
pub fn limit_w(
    profiles: &[Installed],
    connector: u32,
    tx: Option<&RunningTx>,
    t: Timestamp,
    elec: &Electrical,
) -> f64 {
    composite_at(profiles, connector, tx, t, elec).watts
}

/// The first instant after `t` at which the composite limit of `connector` may change (a
/// period boundary, a schedule's end, a validity bound, a recurrence); `None` if it never does.
/// May name an instant where nothing changes after all; never skips one where something does.
pub fn next_change(
    profiles: &[Installed],
    connector: u32,
    tx: Option<&RunningTx>,
    t: Timestamp,
) -> Option<Timestamp> {
    let now = ms(t);
    let mut best: Option<i64> = None;
    let mut consider = |c: i64| {
        if c > now && best.is_none_or(|b| c < b) {
            best = Some(c);
        }
    };
    for inst in profiles.iter().filter(|i| applies(i, connector, tx)) {
        let p = &inst.profile;
        if let Some(f) = p.valid_from {
            consider(ms(f));
        }
        if let Some(to) = p.valid_to {
            consider(ms(to));
        }
        // A Relative schedule without a transaction starts "now" at every instant: constant.
        if p.charging_profile_kind == Kind::Relative && tx.is_none() {
            continue;
        }
        // Before validFrom the schedule is judged from validFrom on (its boundaries after it).
        let from = p.valid_from.map_or(now, |f| now.max(ms(f)));
        let start = cycle_start(inst, tx, from);
        let mut starts = vec![start];
        if let Some(r) = recurrence_ms(p) {
            starts.push(start + r);
        }
        for s in starts {
            consider(s);
            for period in &p.charging_schedule.charging_schedule_period {
                consider(s + period.start_period.saturating_mul(1000));
            }
            if let Some(d) = p.charging_schedule.duration {
                consider(s + d.saturating_mul(1000));
            }
        }
    }
    best.map(ts)
}

/// The composite schedule of `connector` from `from` for `duration_s` seconds in `unit`, as
/// (startPeriod seconds, limit) pairs, merged where equal.
pub fn composite_schedule(
    profiles: &[Installed],
    connector: u32,
    tx: Option<&RunningTx>,
    from: Timestamp,
    duration_s: i64,
    unit: RateUnit,
    elec: &Electrical,
) -> Vec<(i64, f64)> {
    let end = ms(from) + duration_s.max(0) * 1000;
    let mut out: Vec<(i64, f64)> = Vec::new();
    let mut t = from;
    loop {
        let w = limit_w(profiles, connector, tx, t, elec);
        let limit = (elec.from_watts(w, unit) * 10.0).floor() / 10.0;
        let offset = (ms(t) - ms(from)) / 1000;
        if out.last().is_none_or(|&(_, l)| l != limit) {
            out.push((offset, limit));
        }
        match next_change(profiles, connector, tx, t) {
            Some(next) if ms(next) < end => t = next,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ELEC: Electrical = Electrical {
        phases: 1,
        voltage_v: 230.0,
        max_current_a: 32.0,
    };

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn inst(connector: u32, value: serde_json::Value) -> Installed {
        let profile: ChargingProfile = serde_json::from_value(value).unwrap();
        validate(&profile).unwrap();
        Installed {
            connector_id: connector,
            profile,
            received: t("2026-11-26T00:00:00Z"),
        }
    }

    fn absolute(
        id: i64,
        purpose: &str,
        stack: i64,
        start: &str,
        periods: serde_json::Value,
    ) -> serde_json::Value {
        json!({
            "chargingProfileId": id, "stackLevel": stack, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"startSchedule": start, "chargingRateUnit": "A",
                "chargingSchedulePeriod": periods}
        })
    }

    #[test]
    fn no_profile_is_hardware_max() {
        assert_eq!(
            limit_w(&[], 1, None, t("2026-11-26T10:00:00Z"), &ELEC),
            32.0 * 230.0
        );
    }

    #[test]
    fn tx_profile_overrides_default_and_max_caps_both() {
        let tx = RunningTx {
            id: Some(7),
            start: t("2026-11-26T10:00:00Z"),
        };
        let max = inst(
            0,
            absolute(
                1,
                "ChargePointMaxProfile",
                0,
                "2026-11-26T00:00:00Z",
                json!([{"startPeriod": 0, "limit": 20.0}]),
            ),
        );
        let default = inst(
            0,
            absolute(
                2,
                "TxDefaultProfile",
                0,
                "2026-11-26T00:00:00Z",
                json!([{"startPeriod": 0, "limit": 8.0}]),
            ),
        );
        let mut txp = absolute(
            11,
            "TxProfile",
            0,
            "2026-11-26T10:00:00Z",
            json!([{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 600, "limit": 30.0}]),
        );
        txp["transactionId"] = json!(7);
        let txp = inst(1, txp);
        let all = [max, default, txp];
        let at = |s| limit_w(&all, 1, Some(&tx), t(s), &ELEC);
        assert_eq!(at("2026-11-26T10:05:00Z"), 16.0 * 230.0);
        // 30 A from the TxProfile, capped to 20 A by the ChargePointMaxProfile.
        assert_eq!(at("2026-11-26T10:10:00Z"), 20.0 * 230.0);
        // Without a transaction the TxProfile does not apply: the default does.
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-26T10:05:00Z"), &ELEC),
            8.0 * 230.0
        );
        // A TxProfile for another transaction does not apply either.
        let other = RunningTx { id: Some(8), ..tx };
        assert_eq!(
            limit_w(&all, 1, Some(&other), t("2026-11-26T10:05:00Z"), &ELEC),
            8.0 * 230.0
        );
    }

    #[test]
    fn higher_stack_level_wins_within_its_validity_then_falls_back() {
        let base = inst(
            0,
            absolute(
                2,
                "TxDefaultProfile",
                0,
                "2026-11-26T00:00:00Z",
                json!([{"startPeriod": 0, "limit": 10.0}]),
            ),
        );
        let mut cmd = absolute(
            105,
            "TxDefaultProfile",
            1,
            "2026-11-26T12:00:00Z",
            json!([{"startPeriod": 0, "limit": 6.0}]),
        );
        cmd["validFrom"] = json!("2026-11-26T12:00:00Z");
        cmd["validTo"] = json!("2026-11-26T13:00:00Z");
        let all = [base, inst(0, cmd)];
        let at = |s| limit_w(&all, 1, None, t(s), &ELEC);
        assert_eq!(at("2026-11-26T11:59:59Z"), 2300.0);
        assert_eq!(at("2026-11-26T12:00:00Z"), 6.0 * 230.0);
        assert_eq!(at("2026-11-26T12:59:59Z"), 6.0 * 230.0);
        assert_eq!(at("2026-11-26T13:00:00Z"), 2300.0);
        assert_eq!(
            next_change(&all, 1, None, t("2026-11-26T11:00:00Z")),
            Some(t("2026-11-26T12:00:00Z"))
        );
        assert_eq!(
            next_change(&all, 1, None, t("2026-11-26T12:30:00Z")),
            Some(t("2026-11-26T13:00:00Z"))
        );
    }

    #[test]
    fn connector_specific_default_beats_connector_zero_at_equal_stack() {
        let all = [
            inst(
                0,
                absolute(
                    2,
                    "TxDefaultProfile",
                    0,
                    "2026-11-26T00:00:00Z",
                    json!([{"startPeriod": 0, "limit": 10.0}]),
                ),
            ),
            inst(
                1,
                absolute(
                    3,
                    "TxDefaultProfile",
                    0,
                    "2026-11-26T00:00:00Z",
                    json!([{"startPeriod": 0, "limit": 12.0}]),
                ),
            ),
        ];
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-26T01:00:00Z"), &ELEC),
            12.0 * 230.0
        );
    }

    #[test]
    fn duration_ends_a_schedule_and_the_lower_stack_level_takes_over() {
        let low = inst(
            0,
            absolute(
                2,
                "TxDefaultProfile",
                0,
                "2026-11-26T00:00:00Z",
                json!([{"startPeriod": 0, "limit": 10.0}]),
            ),
        );
        let mut high = absolute(
            4,
            "TxDefaultProfile",
            3,
            "2026-11-26T01:00:00Z",
            json!([{"startPeriod": 0, "limit": 0.0}]),
        );
        high["chargingSchedule"]["duration"] = json!(1800);
        let all = [low, inst(0, high)];
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-26T00:59:00Z"), &ELEC),
            2300.0
        );
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-26T01:10:00Z"), &ELEC),
            0.0
        );
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-26T01:30:00Z"), &ELEC),
            2300.0
        );
        assert_eq!(
            next_change(&all, 1, None, t("2026-11-26T01:10:00Z")),
            Some(t("2026-11-26T01:30:00Z"))
        );
    }

    #[test]
    fn recurring_daily_repeats_in_both_directions() {
        let p = inst(
            0,
            json!({
                "chargingProfileId": 2, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Recurring", "recurrencyKind": "Daily",
                "chargingSchedule": {"startSchedule": "2026-11-25T16:00:00Z", "duration": 86400,
                    "chargingRateUnit": "W", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 1000.0}, {"startPeriod": 3600, "limit": 2000.0}]}
            }),
        );
        let all = [p];
        let at = |s| limit_w(&all, 1, None, t(s), &ELEC);
        assert_eq!(at("2026-11-26T16:30:00Z"), 1000.0);
        assert_eq!(at("2026-11-26T17:30:00Z"), 2000.0);
        assert_eq!(at("2026-11-26T15:59:59Z"), 2000.0);
        assert_eq!(at("2026-11-20T16:00:00Z"), 1000.0);
        assert_eq!(
            next_change(&all, 1, None, t("2026-11-26T17:30:00Z")),
            Some(t("2026-11-27T16:00:00Z"))
        );
    }

    #[test]
    fn recurring_weekly() {
        let p = inst(
            0,
            json!({
                "chargingProfileId": 2, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Recurring", "recurrencyKind": "Weekly",
                "chargingSchedule": {"startSchedule": "2026-11-23T00:00:00Z",
                    "chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 6.0}, {"startPeriod": 86400, "limit": 16.0}]}
            }),
        );
        let all = [p];
        assert_eq!(
            limit_w(&all, 1, None, t("2026-11-30T12:00:00Z"), &ELEC),
            6.0 * 230.0
        );
        assert_eq!(
            limit_w(&all, 1, None, t("2026-12-01T12:00:00Z"), &ELEC),
            16.0 * 230.0
        );
    }

    #[test]
    fn relative_counts_from_the_transaction_start() {
        let p = inst(
            1,
            json!({
                "chargingProfileId": 11, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 6.0}, {"startPeriod": 900, "limit": 16.0}]}
            }),
        );
        let tx = RunningTx {
            id: Some(1),
            start: t("2026-11-26T10:00:00Z"),
        };
        let all = [p];
        assert_eq!(
            limit_w(&all, 1, Some(&tx), t("2026-11-26T10:14:59Z"), &ELEC),
            6.0 * 230.0
        );
        assert_eq!(
            limit_w(&all, 1, Some(&tx), t("2026-11-26T10:15:00Z"), &ELEC),
            16.0 * 230.0
        );
        assert_eq!(
            next_change(&all, 1, Some(&tx), t("2026-11-26T10:01:00Z")),
            Some(t("2026-11-26T10:15:00Z"))
        );
    }

    #[test]
    fn amperes_to_watts_uses_the_chargers_phases_unless_fewer_are_named() {
        let three = Electrical {
            phases: 3,
            voltage_v: 230.0,
            max_current_a: 32.0,
        };
        assert_eq!(three.to_watts(10.0, RateUnit::A, None), 6900.0);
        assert_eq!(three.to_watts(10.0, RateUnit::A, Some(1)), 2300.0);
        assert_eq!(ELEC.to_watts(10.0, RateUnit::A, Some(3)), 2300.0);
        assert_eq!(ELEC.to_watts(7000.0, RateUnit::W, None), 7000.0);
    }

    #[test]
    fn validation_refuses_malformed_schedules() {
        let good = absolute(
            1,
            "TxDefaultProfile",
            0,
            "2026-11-26T00:00:00Z",
            json!([{"startPeriod": 0, "limit": 6.0}]),
        );
        let check = |mutate: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            mutate(&mut v);
            validate(&serde_json::from_value(v).unwrap())
        };
        assert_eq!(check(&|_| {}), Ok(()));
        assert_eq!(
            check(&|v| v["chargingSchedule"]["chargingSchedulePeriod"] = json!([])),
            Err(ProfileError::NoPeriods)
        );
        assert_eq!(
            check(&|v| v["chargingSchedule"]["chargingSchedulePeriod"] =
                json!([{"startPeriod": 5, "limit": 1.0}])),
            Err(ProfileError::FirstPeriodNotZero)
        );
        assert_eq!(
            check(&|v| v["chargingSchedule"]["chargingSchedulePeriod"] =
                json!([{"startPeriod": 0, "limit": 1.0}, {"startPeriod": 0, "limit": 2.0}])),
            Err(ProfileError::PeriodsNotIncreasing)
        );
        assert_eq!(
            check(&|v| v["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = json!(-1.0)),
            Err(ProfileError::BadLimit)
        );
        assert_eq!(
            check(&|v| v["chargingProfileKind"] = json!("Recurring")),
            Err(ProfileError::RecurringIncomplete)
        );
        assert_eq!(
            check(&|v| {
                v["validFrom"] = json!("2026-11-26T02:00:00Z");
                v["validTo"] = json!("2026-11-26T01:00:00Z");
            }),
            Err(ProfileError::EmptyValidity)
        );
    }

    #[test]
    fn composite_schedule_merges_and_converts() {
        let tx = RunningTx {
            id: Some(7),
            start: t("2026-11-26T10:00:00Z"),
        };
        let all = [
            inst(
                0,
                absolute(
                    2,
                    "TxDefaultProfile",
                    0,
                    "2026-11-26T00:00:00Z",
                    json!([{"startPeriod": 0, "limit": 8.0}]),
                ),
            ),
            inst(1, {
                let mut p = absolute(
                    11,
                    "TxProfile",
                    0,
                    "2026-11-26T10:00:00Z",
                    json!([{"startPeriod": 0, "limit": 16.0}, {"startPeriod": 600, "limit": 16.0}, {"startPeriod": 1200, "limit": 10.0}]),
                );
                p["validTo"] = json!("2026-11-26T10:30:00Z");
                p
            }),
        ];
        let s = composite_schedule(
            &all,
            1,
            Some(&tx),
            t("2026-11-26T10:05:00Z"),
            3600,
            RateUnit::A,
            &ELEC,
        );
        assert_eq!(s, vec![(0, 16.0), (900, 10.0), (1500, 8.0)]);
        let w = composite_schedule(
            &all,
            1,
            Some(&tx),
            t("2026-11-26T10:05:00Z"),
            600,
            RateUnit::W,
            &ELEC,
        );
        assert_eq!(w, vec![(0, 3680.0)]);
    }
}
