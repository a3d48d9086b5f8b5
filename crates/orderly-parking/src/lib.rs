//! Parking and charging managed together (Beijing's policy for residential charging, clause
//! 十二), as a sans-IO core: what a bay's sensor, ground lock or plate camera reports and what its
//! charger's connector reports come in with `now`; idle episodes (a car that does not charge in an
//! EV-only bay, an EV left after charging finished) and their fees come out.
//!
//! The caller keeps one [`BayState`] per bay (serializable, so it can be stored between events),
//! feeds every [`Input`] to [`step`] in order, and carries out the [`Action`]s: record an
//! episode, tell someone, settle a fee. Nothing here reads a clock or does IO, so every rule is
//! testable with made-up instants.
//!
//! The rules, for a bay marked EV-only in a community that has a [`Rule`]:
//! - **Not charging**: a fuel car, or a car that has not charged during its stay, counts from its
//!   arrival; after [`Rule::not_charging_after`] an episode opens.
//! - **Overstay**: an EV whose charging finished (the connector went to `Finishing` or
//!   `Available` after charging) counts from that moment; after [`Rule::grace`] an episode opens.
//! - A car at a connector that is `Faulted` or `Unavailable` and has not charged yet is not
//!   counted: it cannot charge through no fault of its own.
//! - The fee accrues per started [`Rule::interval`] from the moment the episode opens and stops
//!   at [`Rule::cap`]; it is settled when the car leaves or starts charging again.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// An amount of money in fen (0.01 CNY): integer, so fees add up exactly.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

impl Fen {
    /// CNY as a decimal number (for people and JSON).
    pub fn as_cny(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// Whole fen from CNY; None unless finite, at least 0 and a multiple of 0.01.
    pub fn from_cny(cny: f64) -> Option<Self> {
        if !cny.is_finite() || !(0.0..=1e12).contains(&cny) {
            return None;
        }
        let fen = (cny * 100.0).round();
        ((cny * 100.0 - fen).abs() < 1e-6).then_some(Fen(fen as i64))
    }
}

/// A community's rule for idle cars in EV-only bays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// How long a car that is not charging may stay before it counts.
    pub not_charging_after: SignedDuration,
    /// How long an EV may stay after its charging finished.
    pub grace: SignedDuration,
    /// Charged for every started interval once an episode is open.
    pub fee_per_interval: Fen,
    pub interval: SignedDuration,
    /// Most charged for one episode.
    pub cap: Fen,
}

/// Why a [`Rule`] was refused; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{field}: must be between {min} and {max} minutes")]
    Minutes {
        field: &'static str,
        min: i64,
        max: i64,
    },
    #[error("{0}: must not be negative")]
    Negative(&'static str),
}

/// A week: no rule needs longer waits or intervals.
const MAX_MINUTES: i64 = 7 * 24 * 60;

impl Rule {
    /// A rule from minutes and fen, validated: waits 0 to a week, the interval 1 minute to a
    /// week, amounts not negative.
    pub fn from_minutes(
        not_charging_minutes: i64,
        grace_minutes: i64,
        fee_per_interval: Fen,
        interval_minutes: i64,
        cap: Fen,
    ) -> Result<Self, RuleError> {
        let minutes = |field, v: i64, min| {
            if (min..=MAX_MINUTES).contains(&v) {
                Ok(SignedDuration::from_mins(v))
            } else {
                Err(RuleError::Minutes {
                    field,
                    min,
                    max: MAX_MINUTES,
                })
            }
        };
        if fee_per_interval.0 < 0 {
            return Err(RuleError::Negative("fee_per_interval"));
        }
        if cap.0 < 0 {
            return Err(RuleError::Negative("cap"));
        }
        Ok(Self {
            not_charging_after: minutes("not_charging_minutes", not_charging_minutes, 0)?,
            grace: minutes("grace_minutes", grace_minutes, 0)?,
            fee_per_interval,
            interval: minutes("interval_minutes", interval_minutes, 1)?,
            cap,
        })
    }

    /// How long a condition of `kind` may last before an episode opens.
    pub fn threshold(&self, kind: EpisodeKind) -> SignedDuration {
        match kind {
            EpisodeKind::NotCharging => self.not_charging_after,
            EpisodeKind::Overstay => self.grace,
        }
    }

    /// The fee at `at` of an episode open since `opened`: zero before it opened, then one
    /// `fee_per_interval` per started interval, never above `cap`.
    pub fn fee(&self, opened: Timestamp, at: Timestamp) -> Fen {
        if at < opened {
            return Fen(0);
        }
        let elapsed = at.duration_since(opened).as_millis();
        let interval = self.interval.as_millis().max(1);
        let started = elapsed / interval + 1;
        let fee = i128::from(self.fee_per_interval.0).saturating_mul(started);
        Fen(fee.min(i128::from(self.cap.0)) as i64)
    }
}

/// What is parked, as the sensor or camera tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vehicle {
    Ev,
    Fuel,
    Unknown,
}

impl Vehicle {
    pub const ALL: [Vehicle; 3] = [Vehicle::Ev, Vehicle::Fuel, Vehicle::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Vehicle::Ev => "ev",
            Vehicle::Fuel => "fuel",
            Vehicle::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The bay's charger connector, as far as parking cares (from OCPP 1.6 StatusNotification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connector {
    /// `Charging`, `SuspendedEV`, `SuspendedEVSE`: a transaction is delivering (or may).
    Charging,
    /// `Finishing`: the transaction ended, the cable is still in.
    Finishing,
    /// `Available`.
    Available,
    /// `Preparing`, `Reserved`: plugged or held, not charging yet.
    Idle,
    /// `Faulted`, `Unavailable`: the car cannot charge here.
    Out,
}

impl Connector {
    /// From an OCPP 1.6 ChargePointStatus; None for a status this does not know.
    pub fn from_ocpp(status: &str) -> Option<Self> {
        Some(match status {
            "Charging" | "SuspendedEV" | "SuspendedEVSE" => Connector::Charging,
            "Finishing" => Connector::Finishing,
            "Available" => Connector::Available,
            "Preparing" | "Reserved" => Connector::Idle,
            "Faulted" | "Unavailable" => Connector::Out,
            _ => return None,
        })
    }
}

/// Which rule an episode is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    /// A fuel car, or a car not charging, in an EV-only bay.
    NotCharging,
    /// An EV left after its charging finished.
    Overstay,
}

impl EpisodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeKind::NotCharging => "not_charging",
            EpisodeKind::Overstay => "overstay",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [EpisodeKind::NotCharging, EpisodeKind::Overstay]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The car in the bay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stay {
    pub since: Timestamp,
    pub vehicle: Vehicle,
    pub plate: Option<String>,
    /// The connector reported charging during this stay.
    pub charged: bool,
    /// When charging finished (the connector left charging for `Finishing` / `Available`).
    pub finished_at: Option<Timestamp>,
}

/// An idle episode in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub kind: EpisodeKind,
    /// When the condition began (arrival, or charging finished).
    pub since: Timestamp,
    /// When it crossed the rule's threshold: the fee runs from here.
    pub opened: Timestamp,
    /// The rule in force when it opened (a later change of rule does not alter it).
    pub rule: Rule,
    /// Fee accrued so far (reported with [`Action::Accrued`]).
    pub fee: Fen,
}

/// Everything the core remembers about one bay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BayState {
    pub stay: Option<Stay>,
    /// Last status of the bay's charger connector; None: no charger, or none reported yet.
    pub connector: Option<Connector>,
    pub episode: Option<Episode>,
    /// The time of the last occupancy report (reports must come in order).
    pub last_report: Option<Timestamp>,
}

/// What a bay is, for the rules: only EV-only bays of communities with a rule are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BayContext {
    pub ev_only: bool,
    pub rule: Option<Rule>,
}

/// An occupancy report from a sensor, ground lock or plate camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub occupied: bool,
    pub vehicle: Vehicle,
    pub plate: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Occupancy(Occupancy),
    /// The bay's charger connector reported a status at `at`.
    Connector {
        status: Connector,
        at: Timestamp,
    },
    /// Time passed (grace and thresholds expire, fees accrue).
    Tick,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An episode opened: record it and tell the driver (or the community's staff).
    Opened(Episode),
    /// The open episode's fee rose to this.
    Accrued(Fen),
    /// The open episode ended at `at` (the car left or started charging) with this final fee
    /// (which may be below the last [`Action::Accrued`] when a departure is reported late).
    Settled { at: Timestamp, fee: Fen },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("at: {at} is before the bay's last report ({last})")]
    OutOfOrder { at: Timestamp, last: Timestamp },
}

/// Feeds one input to a bay's state at protocol time `now`; returns the actions to carry out.
/// On error the state is unchanged.
pub fn step(
    state: &mut BayState,
    bay: BayContext,
    input: Input,
    now: Timestamp,
) -> Result<Vec<Action>, StepError> {
    let mut actions = Vec::new();
    match input {
        Input::Occupancy(report) => {
            if let Some(last) = state.last_report
                && report.at < last
            {
                return Err(StepError::OutOfOrder {
                    at: report.at,
                    last,
                });
            }
            state.last_report = Some(report.at);
            let another_car = state
                .stay
                .as_ref()
                .is_some_and(|s| matches!((&s.plate, &report.plate), (Some(a), Some(b)) if a != b));
            if !report.occupied || another_car {
                // The car left: whatever it owed is settled at the moment it left.
                settle(state, report.at, &mut actions);
                state.stay = None;
            }
            if report.occupied {
                let connector = state.connector;
                match &mut state.stay {
                    Some(stay) => {
                        // A repeated report refines what is known, never the arrival time.
                        if report.vehicle != Vehicle::Unknown {
                            stay.vehicle = report.vehicle;
                        }
                        if report.plate.is_some() {
                            stay.plate = report.plate;
                        }
                    }
                    None => {
                        state.stay = Some(Stay {
                            since: report.at,
                            vehicle: report.vehicle,
                            plate: report.plate,
                            // Sensors can lag the charger: a car found charging has charged.
                            charged: connector == Some(Connector::Charging),
                            finished_at: None,
                        })
                    }
                }
            }
        }
        Input::Connector { status, at } => {
            let was = state.connector.replace(status);
            if let Some(stay) = &mut state.stay {
                match status {
                    Connector::Charging => {
                        stay.charged = true;
                        stay.finished_at = None;
                    }
                    // The first end of charging counts, not a later Available (cable out).
                    Connector::Finishing | Connector::Available
                        if stay.charged
                            && (stay.finished_at.is_none() || was == Some(Connector::Charging)) =>
                    {
                        stay.finished_at = Some(at);
                    }
                    _ => {}
                }
            }
        }
        Input::Tick => {}
    }
    evaluate(state, bay, now, &mut actions);
    Ok(actions)
}

/// The condition the bay is in now, and since when; None: nothing to count.
pub fn condition(state: &BayState, bay: BayContext) -> Option<(EpisodeKind, Timestamp)> {
    if !bay.ev_only || bay.rule.is_none() {
        return None;
    }
    let stay = state.stay.as_ref()?;
    if stay.vehicle == Vehicle::Fuel {
        return Some((EpisodeKind::NotCharging, stay.since));
    }
    match state.connector {
        Some(Connector::Charging) => None,
        Some(Connector::Out) if !stay.charged => None,
        _ if stay.charged => stay.finished_at.map(|f| (EpisodeKind::Overstay, f)),
        _ => Some((EpisodeKind::NotCharging, stay.since)),
    }
}

fn settle(state: &mut BayState, at: Timestamp, actions: &mut Vec<Action>) {
    if let Some(ep) = state.episode.take() {
        // At the time the car left, even when the report comes late and ticks meanwhile
        // accrued more: the driver pays for the time they stayed.
        let fee = ep.rule.fee(ep.opened, at);
        actions.push(Action::Settled { at, fee });
    }
}

fn evaluate(state: &mut BayState, bay: BayContext, now: Timestamp, actions: &mut Vec<Action>) {
    let current = condition(state, bay);
    if let Some(ep) = &state.episode
        && current != Some((ep.kind, ep.since))
    {
        // The car started charging (or the rule no longer applies): settled as of now.
        let at = now.max(ep.opened);
        settle(state, at, actions);
    }
    if state.episode.is_none()
        && let (Some((kind, since)), Some(rule)) = (current, bay.rule)
    {
        let opened = since
            .checked_add(rule.threshold(kind))
            .unwrap_or(Timestamp::MAX);
        if now >= opened {
            let episode = Episode {
                kind,
                since,
                opened,
                rule,
                fee: rule.fee(opened, now),
            };
            state.episode = Some(episode.clone());
            actions.push(Action::Opened(episode));
            return;
        }
    }
    if let Some(ep) = &mut state.episode {
        let fee = ep.rule.fee(ep.opened, now);
        if fee > ep.fee {
            ep.fee = fee;
            actions.push(Action::Accrued(fee));
        }
    }
}

/// When the bay's state next changes by time alone (an episode opens or its fee rises); None:
/// only an input can change it. Lets a driver sleep instead of polling.
pub fn next_deadline(state: &BayState, bay: BayContext) -> Option<Timestamp> {
    if let Some(ep) = &state.episode {
        if ep.fee >= ep.rule.cap || ep.rule.fee_per_interval.0 == 0 {
            return None;
        }
        let started = ep.fee.0 / ep.rule.fee_per_interval.0.max(1);
        let next = ep.rule.interval.checked_mul(i32::try_from(started).ok()?)?;
        return ep.opened.checked_add(next).ok();
    }
    let (kind, since) = condition(state, bay)?;
    since.checked_add(bay.rule?.threshold(kind)).ok()
}

#[cfg(test)]
mod tests;
