//! The controller of one community: live state in, charging profiles out.

use crate::community::{ChargerSpec, CommunitySpec};
use crate::fallback;
use crate::profile::{self, Change, LocalClock, Shape, TxShape, classify_values};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use orderly_core::ChargePointId;
use orderly_grid::{CommandId, CommandKind, CommandReport, GridCommand};
use orderly_ocpp::v16;
use orderly_schedule::{
    Calendar, DayType, Forecast, OnlineConfig, OnlinePlanner, Priority, Problem, Session,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Correlates an [`Action::SetProfile`]/[`Action::ClearProfile`] with its [`Input::ProfileResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// Tunables; `ControllerConfig::default()` is what the server uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerConfig {
    /// Plan slot length (minutes): 5 or 15.
    pub slot_minutes: u32,
    /// Plan horizon (slots).
    pub horizon_slots: usize,
    /// Re-plan at least this often even without events.
    pub replan_interval: SignedDuration,
    /// A TxProfile is valid until `sent + profile_validity`; after that the charger falls back to
    /// its TxDefaultProfile. Longer than `replan_interval` so a live plan never lapses.
    pub profile_validity: SignedDuration,
    /// A rejected or unanswered profile is sent again after this.
    pub retry_after: SignedDuration,
    /// A charger drawing more than `limit × (1 + ratio) + watts` in `samples` consecutive meter
    /// readings is non-compliant.
    pub compliance_tolerance_ratio: f64,
    pub compliance_tolerance_w: f64,
    pub compliance_samples: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            slot_minutes: 15,
            horizon_slots: 96,
            replan_interval: SignedDuration::from_secs(60),
            profile_validity: SignedDuration::from_secs(300),
            retry_after: SignedDuration::from_secs(30),
            compliance_tolerance_ratio: 0.1,
            compliance_tolerance_w: 500.0,
            compliance_samples: 2,
        }
    }
}

/// Where a session's wish came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WishSource {
    /// The resident said so for this transaction.
    Explicit,
    /// The id tag's stored defaults.
    IdTagDefault,
    /// Learned from the id tag's past sessions.
    History,
    /// The community's defaults.
    Community,
}

/// A wish with every default applied (the server resolves defaults from the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedWish {
    pub departure: Timestamp,
    /// Energy still wanted at plug-in (kWh, grid side).
    pub energy_kwh: f64,
    pub emergency: bool,
    pub source: WishSource,
}

/// How a charger answered a profile request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOutcome {
    Accepted,
    Rejected,
    NotSupported,
    /// No answer in time, or the charger is not connected.
    Failed,
}

/// Something that happened, reported by the server's driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// The charger connected and its BootNotification was accepted: (re)send its
    /// ChargePointMaxProfile and TxDefaultProfile.
    ChargerConnected {
        charger: ChargePointId,
    },
    ChargerDisconnected {
        charger: ChargePointId,
    },
    TransactionStarted {
        transaction_id: i64,
        charger: ChargePointId,
        connector_id: i32,
        meter_start_wh: i64,
        at: Timestamp,
        wish: ResolvedWish,
    },
    TransactionStopped {
        transaction_id: i64,
        at: Timestamp,
    },
    /// One meter reading, already converted to W / Wh / % at the edge.
    Meter {
        charger: ChargePointId,
        connector_id: i32,
        transaction_id: Option<i64>,
        at: Timestamp,
        /// Active import power (W), if sampled.
        power_w: Option<f64>,
        /// Active import energy register (Wh), if sampled.
        energy_wh: Option<f64>,
        soc_percent: Option<f64>,
    },
    /// The community meter (whole community, chargers included) — used to learn base load.
    CommunityMeter {
        at: Timestamp,
        power_w: f64,
    },
    /// A resident changed their wish for a running transaction.
    Wish {
        transaction_id: i64,
        wish: ResolvedWish,
    },
    GridCommand(GridCommand),
    GridCommandCancelled {
        id: CommandId,
    },
    ProfileResult {
        charger: ChargePointId,
        request: RequestId,
        outcome: ProfileOutcome,
    },
    /// The community's configuration changed (chargers added/removed, rating, tariff…).
    Community(CommunitySpec),
    /// Expected arrivals learned from the community's history (the server learns it with
    /// `orderly_schedule::Forecast::learn` from its completed transactions). Every later re-plan
    /// adds the forecast's ghost sessions (see "Forecast" in the crate docs); a forecast with no
    /// arrivals (`Forecast::none`) turns that off again. Ignored, with [`Controller::last_error`]
    /// set, if its slot length is not the controller's.
    Forecast(Forecast),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Send SetChargingProfile; answer with [`Input::ProfileResult`] carrying `request`.
    SetProfile {
        request: RequestId,
        charger: ChargePointId,
        request_body: v16::SetChargingProfileRequest,
    },
    /// Send ClearChargingProfile; answer with [`Input::ProfileResult`].
    ClearProfile {
        request: RequestId,
        charger: ChargePointId,
        request_body: v16::ClearChargingProfileRequest,
    },
    /// A charger's compliance changed (persist/log it; the plan already accounts for it).
    Compliance {
        charger: ChargePointId,
        compliant: bool,
        at: Timestamp,
        detail: String,
    },
    /// A command's report changed (baseline fixed at start, slots measured, window ended).
    CommandReport(CommandReport),
}

/// One session as the plan sees it (returned by the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub transaction_id: i64,
    pub charger: ChargePointId,
    pub connector_id: i32,
    pub wish: ResolvedWish,
    /// Emergency requested but waiting because the community's cap is reached.
    pub emergency_waiting: bool,
    pub delivered_kwh: f64,
    pub expected_energy_by_departure_kwh: f64,
    pub expected_finish: Option<Timestamp>,
    pub expected_cost_cny: f64,
    /// The limit in force now (kW), as last accepted by the charger.
    pub current_limit_kw: Option<f64>,
    pub compliant: bool,
}

/// The community's plan now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    pub planned_at: Option<Timestamp>,
    /// Start of slot 0 below.
    pub slot_start: Timestamp,
    pub slot_minutes: u32,
    /// Charging capacity per slot (kW) after base load and grid commands.
    pub capacity_kw: Vec<f64>,
    /// Planned charging load per slot (kW).
    pub planned_kw: Vec<f64>,
    /// Charging load measured now (sum of the latest readings, kW).
    pub measured_kw: f64,
    pub sessions: Vec<SessionView>,
    /// Chargers whose profiles are not (yet) accepted.
    pub unconfirmed_chargers: Vec<ChargePointId>,
    pub non_compliant_chargers: Vec<ChargePointId>,
    /// The forecast the re-plans use (None: none given, or one that expects nobody).
    pub forecast: Option<ForecastView>,
    /// Ghost sessions (expected arrivals) the last re-plan planned with the real ones. They hold
    /// capacity back; they are not sessions and never get a profile.
    pub ghost_sessions: usize,
}

/// What the controller's forecast expects (returned with the plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastView {
    /// Ghost arrivals per weekday / per weekend day.
    pub weekday_ghosts: usize,
    pub weekend_ghosts: usize,
    /// Expected energy of the arrivals of a weekday / weekend day (kWh).
    pub weekday_kwh: f64,
    pub weekend_kwh: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid community: {0}")]
    InvalidCommunity(String),
    #[error("engine: {0}")]
    Engine(#[from] orderly_schedule::ScheduleError),
}

/// The kinds of profile a charger holds, one tracked request at a time each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Max,
    Default,
    Command(CommandId),
    Tx(i32),
}

#[derive(Clone, Debug)]
struct Pending {
    request: RequestId,
    /// A TxProfile goes with its guard (see [`profile::guard_request`]): both must be accepted.
    guard: Option<RequestId>,
    /// How many of the requests were accepted so far.
    accepted: u8,
    shape: Shape,
    sent: i64,
    decrease: bool,
    /// The plan changed since: this is no longer what is desired.
    obsolete: bool,
}

/// What the controller wants a charger to hold for one [`Key`], what it is known to hold, and
/// what is in flight.
#[derive(Clone, Debug, Default)]
struct Track {
    desired: Option<Shape>,
    accepted: Option<Shape>,
    pending: Option<Pending>,
    /// A shape whose request failed: the charger may or may not hold it, so it counts as held
    /// (for the worst case) until the next accepted request of this kind.
    suspect: Option<Shape>,
    /// Not sent before this (retry back-off).
    next_try: i64,
    /// What it holds is what is desired: nothing to compare until `desired` changes.
    settled: bool,
}

impl Track {
    fn set_desired(&mut self, shape: Shape) {
        if self.desired.as_ref() == Some(&shape) {
            return;
        }
        if let Some(p) = &mut self.pending {
            p.obsolete |= p.shape != shape;
        }
        self.settled = false;
        self.desired = Some(shape);
    }
}

#[derive(Clone, Debug)]
struct ChargerState {
    spec: ChargerSpec,
    connected: bool,
    tracks: BTreeMap<Key, Track>,
    /// A profile was rejected or failed: until then the charger is planned around (its held
    /// profiles or measured draw as fixed load) instead of planned.
    failed_until: Option<i64>,
    power_w: BTreeMap<i32, f64>,
    /// Guards (connector TxDefaultProfiles) left from ended transactions, until their validTo.
    stale_guards: BTreeMap<i32, Vec<TxShape>>,
    /// The connector that gets the idle guard while no transaction runs: the last
    /// transaction's (one connector per charger is assumed), 1 before any.
    idle_connector: i32,
    /// Its last idle guard was rejected or not answered: until one is accepted, the plan keeps
    /// room for its fallback as if it had none (see the crate docs, "Idle guards").
    idle_refused: bool,
    compliant: bool,
    over: u32,
    within: u32,
}

impl ChargerState {
    fn new(spec: ChargerSpec) -> Self {
        let mut tracks = BTreeMap::new();
        tracks.insert(
            Key::Max,
            Track {
                desired: Some(Shape::Max(max_limit(&spec))),
                ..Track::default()
            },
        );
        Self {
            spec,
            connected: false,
            tracks,
            failed_until: None,
            power_w: BTreeMap::new(),
            stale_guards: BTreeMap::new(),
            idle_connector: 1,
            idle_refused: false,
            compliant: true,
            over: 0,
            within: 0,
        }
    }
    fn power_kw(&self) -> f64 {
        self.power_w.values().sum::<f64>() / 1000.0
    }
    /// Whether the plan may count on this charger holding the idle guard it is sent (while it
    /// has no transaction, or after its car's departure): it is connected and has not refused
    /// one. The increases that count on it wait for the guard's acceptance (it is a decrease).
    fn idle_guard_usable(&self) -> bool {
        self.connected && !self.idle_refused
    }
    fn shapes(&self, key: Key) -> impl Iterator<Item = &Shape> {
        self.tracks.get(&key).into_iter().flat_map(|t| {
            t.accepted
                .iter()
                .chain(t.pending.as_ref().map(|p| &p.shape))
                .chain(t.suspect.iter())
        })
    }
    /// The most a stale guard allows on `connector` at `t`.
    fn stale_at(&self, connector: i32, t: i64) -> Option<f64> {
        self.stale_guards
            .get(&connector)?
            .iter()
            .filter_map(|g| g.at(t))
            .reduce(f64::max)
    }
    /// The most any stale guard of the charger allows in `[a, b)`.
    fn stale_max(&self, a: i64, b: i64) -> f64 {
        let mut v: f64 = 0.0;
        for g in self.stale_guards.values().flatten() {
            if g.valid_to > a && g.start < b {
                for (i, p) in g.periods.iter().enumerate() {
                    let end = g.periods.get(i + 1).map_or(g.valid_to, |q| q.0);
                    if p.0 < b && end > a {
                        v = v.max(p.1);
                    }
                }
            }
        }
        v
    }
    fn accepted_default(&self) -> Option<&[f64; 24]> {
        match self
            .tracks
            .get(&Key::Default)
            .and_then(|t| t.accepted.as_ref())
        {
            Some(Shape::Default(h)) => Some(h),
            _ => None,
        }
    }
    /// The fallback this charger may fall to at local hour `h` (kW): the larger of what it holds
    /// (or has in flight) and what it should hold.
    fn fallback_kw(&self, h: usize) -> f64 {
        let mut v: f64 = 0.0;
        if let Some(t) = self.tracks.get(&Key::Default) {
            for s in t
                .accepted
                .iter()
                .chain(t.desired.iter())
                .chain(t.pending.as_ref().map(|p| &p.shape))
            {
                if let Shape::Default(x) = s {
                    v = v.max(x[h]);
                }
            }
        }
        profile::unit_to_kw(&self.spec, v)
    }
    /// As `fallback_kw`, for the slot `[a, b)` at local hour `h`: also a command's fallback
    /// (held, in flight or wanted) whose window overlaps it, since a command's rotation may give
    /// this charger more than the base fallback does.
    fn fallback_kw_in(&self, h: usize, a: i64, b: i64) -> f64 {
        let mut v = self.fallback_kw(h);
        for (k, t) in self.tracks.range(Key::Command(CommandId(i64::MIN))..) {
            if !matches!(k, Key::Command(_)) {
                break;
            }
            for s in t
                .accepted
                .iter()
                .chain(t.desired.iter())
                .chain(t.pending.as_ref().map(|p| &p.shape))
                .chain(t.suspect.iter())
            {
                if let Shape::Command {
                    from, to, hourly, ..
                } = s
                    && *from < b
                    && *to > a
                {
                    v = v.max(profile::unit_to_kw(&self.spec, hourly[h]));
                }
            }
        }
        v
    }
}

/// Whether `o` and `n` set the same limits from `now` on (until their expiry).
fn same_from(o: &TxShape, n: &TxShape, now: i64) -> bool {
    let Some(first) = o.at(now) else {
        return false;
    };
    let tail = std::iter::once((now, first)).chain(o.periods.iter().copied().filter(|p| p.0 > now));
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(o.periods.len() + 1);
    for p in tail {
        if merged.last().is_some_and(|m| m.1 == p.1) {
            continue;
        }
        merged.push(p);
    }
    let mut new = n.periods.iter().copied().filter(|p| p.0 >= now).peekable();
    // `n` starts at `now` (or its first period is the one in force then).
    let first_new = n.at(now);
    if first_new != Some(first) {
        return false;
    }
    let new_tail: Vec<(i64, f64)> = std::iter::once((now, first))
        .chain(new.by_ref().filter(|p| p.0 > now))
        .collect();
    let mut new_merged: Vec<(i64, f64)> = Vec::with_capacity(new_tail.len());
    for p in new_tail {
        if new_merged.last().is_some_and(|m| m.1 == p.1) {
            continue;
        }
        new_merged.push(p);
    }
    merged == new_merged
}

fn key_connector(key: Key) -> i32 {
    match key {
        Key::Tx(c) => c,
        _ => 0,
    }
}

fn max_limit(spec: &ChargerSpec) -> f64 {
    match spec.rate_unit {
        crate::community::RateUnit::Amperes => spec.max_current_a,
        crate::community::RateUnit::Watts => (spec.max_kw() * 1000.0).floor(),
    }
}

#[derive(Clone, Debug)]
struct SessionState {
    charger: ChargePointId,
    connector: i32,
    meter_start_wh: i64,
    started: i64,
    wish: ResolvedWish,
    delivered_kwh: f64,
    cost_so_far: f64,
    /// The most the car was seen to draw when it drew clearly less than its limit (kW): the
    /// car's own maximum, below the charger's. Planning it at the charger's maximum would
    /// put its energy into too few slots (the cheapest, the last before departure) and leave
    /// it short. Never lowered: a tapering car needs little anyway.
    car_max_kw: Option<f64>,
    /// Consecutive readings below the limit (one alone may be a car still ramping up).
    below_limit: u32,
}

#[derive(Clone, Debug)]
struct CommandState {
    command: GridCommand,
    start: i64,
    end: i64,
    /// Start of the first report slot (slot-aligned at or before `start`).
    from: i64,
    slots: usize,
    baseline: Vec<f64>,
    baseline_fixed: bool,
    /// Per slot: ∫ measured kW dt (kW·s) and the seconds covered.
    energy: Vec<f64>,
    covered: Vec<f64>,
    reported: usize,
    done: bool,
    cancelled: bool,
    /// Stack level of its TxDefaultProfile: the lowest not taken by a command not yet ended.
    stack_level: i64,
}

impl CommandState {
    fn active(&self) -> bool {
        !self.done && !self.cancelled
    }
    /// The charging capacity the command allows in the slot starting at `t` (kW).
    fn cap_at(&self, t: i64, slot_len: i64) -> f64 {
        match self.command.kind {
            CommandKind::Limit { kw } => kw,
            CommandKind::Reduce { kw } => {
                let j = ((t - self.from).max(0) / slot_len) as usize;
                let b = self
                    .baseline
                    .get(j)
                    .or(self.baseline.last())
                    .copied()
                    .unwrap_or(0.0);
                (b - kw).max(0.0)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct SessionPlanInfo {
    /// Delivered when planned (kWh).
    delivered_kwh: f64,
    energy_kwh: f64,
    finish: Option<i64>,
    cost_cny: f64,
    emergency: bool,
    emergency_waiting: bool,
}

#[derive(Debug, Clone)]
struct PlanState {
    planned_at: i64,
    slot0: i64,
    /// Per session: planned power of slots 0 and 1 (kW).
    first_powers: BTreeMap<i64, [f64; 2]>,
    capacity: Vec<f64>,
    planned: Vec<f64>,
    sessions: BTreeMap<i64, SessionPlanInfo>,
}

/// A re-plan's result before it is applied.
struct Solved {
    problem: Problem,
    /// The planner that solved it (its calendar starts at `slot0`).
    planner: OnlinePlanner,
    /// Ghost sessions it planned with the real ones.
    ghosts: usize,
    slot0: i64,
    valid_to: i64,
    capacity: Vec<f64>,
    planned: Vec<f64>,
    /// (transaction, power per slot, info)
    sessions: Vec<(i64, Vec<f64>, SessionPlanInfo)>,
}

/// Exponential smoothing factor of the base-load learning (per community-meter reading).
const BASE_ALPHA: f64 = 0.1;

/// One community's controller. Drive it like `orderly_ocpp::Connection`: feed [`Input`]s with
/// [`Controller::handle`], call [`Controller::handle_timeout`] at [`Controller::poll_timeout`],
/// and drain [`Controller::poll_action`] after each.
#[derive(Debug, Clone)]
pub struct Controller {
    community: CommunitySpec,
    config: ControllerConfig,
    clock: LocalClock,
    /// Expected arrivals (`Forecast::none` until [`Input::Forecast`] gives one).
    forecast: Forecast,
    online: OnlineConfig,
    /// The planner of the last re-plan (its calendar starts at that re-plan's slot 0).
    planner: OnlinePlanner,
    /// Ghost sessions of the last re-plan.
    ghosts: usize,
    chargers: BTreeMap<ChargePointId, ChargerState>,
    sessions: BTreeMap<i64, SessionState>,
    commands: BTreeMap<CommandId, CommandState>,
    learned_base: [f64; 24],
    applied_base: [f64; 24],
    fallback_dirty: bool,
    dirty: bool,
    next_replan: i64,
    now: i64,
    actions: VecDeque<Action>,
    next_request: u64,
    requests: HashMap<RequestId, (ChargePointId, Key)>,
    plan: Option<PlanState>,
    measured_since: i64,
    last_error: Option<String>,
    /// The engine's input at the last re-plan (for the benchmark and for diagnosis).
    last_problem: Option<Problem>,
}

/// The forecast's kind of a local date ([`DayType::of_iso_weekday`]), for both learning a
/// forecast (the server) and placing it (the re-plans).
pub fn day_type(date: jiff::civil::Date) -> DayType {
    DayType::of_iso_weekday(date.weekday().to_monday_one_offset())
}

fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

/// `t` in whole seconds, rounded up.
fn secs_ceil(t: Timestamp) -> i64 {
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

fn validate(
    community: &CommunitySpec,
    config: &ControllerConfig,
) -> Result<LocalClock, ControlError> {
    let bad = |s: String| Err(ControlError::InvalidCommunity(s));
    if !(community.rating_kva.is_finite() && community.rating_kva > 0.0) {
        return bad(format!(
            "rating_kva must be > 0, got {}",
            community.rating_kva
        ));
    }
    if !(community.power_factor > 0.0 && community.power_factor <= 1.0) {
        return bad(format!(
            "power_factor must be in (0, 1], got {}",
            community.power_factor
        ));
    }
    if community.base_load_kw.len() != 24 || community.base_load_kw.iter().any(|x| !x.is_finite()) {
        return bad("base_load_kw must be 24 finite values".into());
    }
    if community.tariff.cny_per_kwh.len() != 24
        || community.tariff.cny_per_kwh.iter().any(|x| !x.is_finite())
    {
        return bad("tariff must be 24 finite values".into());
    }
    if config.slot_minutes == 0 || 1440 % config.slot_minutes != 0 || config.horizon_slots == 0 {
        return bad(format!(
            "slot_minutes must divide a day and horizon_slots be > 0 (got {} / {})",
            config.slot_minutes, config.horizon_slots
        ));
    }
    for c in &community.chargers {
        let ok = (c.phases == 1 || c.phases == 3)
            && c.voltage_v > 0.0
            && c.voltage_v.is_finite()
            && c.min_current_a >= 0.0
            && c.max_current_a >= c.min_current_a
            && c.max_current_a.is_finite();
        if !ok {
            return bad(format!(
                "charger {}: phases 1 or 3, voltage > 0, 0 ≤ min_current_a ≤ max_current_a",
                c.id.as_str()
            ));
        }
    }
    let tz = TimeZone::get(&community.timezone).map_err(|e| {
        ControlError::InvalidCommunity(format!("timezone {:?}: {e}", community.timezone))
    })?;
    Ok(LocalClock { tz })
}

impl Controller {
    pub fn new(
        community: CommunitySpec,
        config: ControllerConfig,
        now: Timestamp,
    ) -> Result<Self, ControlError> {
        let clock = validate(&community, &config)?;
        // Until a forecast is given (Forecast::none) the controller plans the cars plugged in;
        // with no ghosts the online planner solves the same exact lexicographic problem as
        // `solve_offline`, but only up to the last departure and filling the earlier slots of a
        // price level first (energy banked early cannot be crowded out by an arrival the
        // controller cannot foresee), and skips the flattening pass. That makes it both exact for
        // the known sessions and the faster of the two.
        // With a forecast (`Input::Forecast`) the planner adds its ghosts; the calendar that
        // places them is built at every re-plan from that re-plan's slot 0 (`planner_at`).
        let forecast = Forecast::none(config.slot_minutes)?;
        let online = OnlineConfig::for_slot_minutes(config.slot_minutes);
        let planner = OnlinePlanner::new(
            forecast.clone(),
            Calendar {
                slot_of_day_at_zero: 0,
                day_types: vec![DayType::Weekday],
            },
            online.clone(),
        );
        let base: [f64; 24] = std::array::from_fn(|h| community.base_load_kw[h]);
        let now = secs(now);
        let chargers = community
            .chargers
            .iter()
            .map(|s| (s.id.clone(), ChargerState::new(s.clone())))
            .collect();
        Ok(Self {
            community,
            config,
            clock,
            forecast,
            online,
            planner,
            ghosts: 0,
            chargers,
            sessions: BTreeMap::new(),
            commands: BTreeMap::new(),
            learned_base: base,
            applied_base: base,
            fallback_dirty: true,
            dirty: true,
            next_replan: now,
            now,
            actions: VecDeque::new(),
            next_request: 1,
            requests: HashMap::new(),
            plan: None,
            measured_since: now,
            last_error: None,
            last_problem: None,
        })
    }

    fn slot_len(&self) -> i64 {
        i64::from(self.config.slot_minutes) * 60
    }

    /// Take one input. Events that change the plan mark it for a re-plan at the next
    /// `handle_timeout` (which `poll_timeout` then reports as due now).
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        let now = secs(now).max(self.now);
        self.integrate(now);
        self.now = now;
        match input {
            Input::ChargerConnected { charger } => {
                if let Some(ch) = self.chargers.get_mut(&charger) {
                    ch.connected = true;
                    ch.failed_until = None;
                    // It may have rebooted and lost its profiles: everything is sent again.
                    for t in ch.tracks.values_mut() {
                        t.accepted = None;
                        t.pending = None;
                        t.next_try = now;
                        t.settled = false;
                    }
                    self.dirty = true;
                    self.sync(now);
                }
            }
            Input::ChargerDisconnected { charger } => {
                if let Some(ch) = self.chargers.get_mut(&charger) {
                    ch.connected = false;
                    // Nothing in flight will be answered; the charger keeps what it accepted.
                    for t in ch.tracks.values_mut() {
                        t.pending = None;
                    }
                    ch.power_w.clear();
                    self.dirty = true;
                    self.sync(now);
                }
            }
            Input::TransactionStarted {
                transaction_id,
                charger,
                connector_id,
                meter_start_wh,
                at,
                wish,
            } => {
                if !self.chargers.contains_key(&charger) {
                    return;
                }
                // A transaction missed its stop: the connector has one transaction at a time.
                self.sessions
                    .retain(|_, s| !(s.charger == charger && s.connector == connector_id));
                if let Some(ch) = self.chargers.get_mut(&charger) {
                    ch.idle_connector = connector_id;
                    // Its pair replaces the idle guard at the next re-plan; a back-off left by
                    // an idle guard the charger refused must not hold the car's pair back.
                    if let Some(t) = ch.tracks.get_mut(&Key::Tx(connector_id))
                        && t.pending.is_none()
                    {
                        t.next_try = now;
                    }
                }
                self.sessions.insert(
                    transaction_id,
                    SessionState {
                        charger,
                        connector: connector_id,
                        meter_start_wh,
                        started: secs(at),
                        wish,
                        delivered_kwh: 0.0,
                        cost_so_far: 0.0,
                        car_max_kw: None,
                        below_limit: 0,
                    },
                );
                self.dirty = true;
            }
            Input::TransactionStopped { transaction_id, .. } => {
                if let Some(s) = self.sessions.remove(&transaction_id) {
                    if let Some(ch) = self.chargers.get_mut(&s.charger) {
                        // The charger drops a TxProfile with its transaction; its guard stays
                        // until its validTo (a stale guard) or until the idle guard (same
                        // chargingProfileId) the next re-plan sends replaces it. An idle guard
                        // held or in flight stays what it is (a TxDefaultProfile outlives the
                        // transaction).
                        ch.idle_connector = s.connector;
                        if let Some(t) = ch.tracks.get_mut(&Key::Tx(s.connector)) {
                            let g = ch.stale_guards.entry(s.connector).or_default();
                            let pending_tx = t
                                .pending
                                .as_ref()
                                .is_some_and(|p| matches!(p.shape, Shape::Tx(_)));
                            let pending = if pending_tx { t.pending.take() } else { None };
                            let accepted_tx = matches!(t.accepted, Some(Shape::Tx(_)));
                            let accepted = if accepted_tx { t.accepted.take() } else { None };
                            for sh in accepted
                                .into_iter()
                                .chain(pending.map(|p| p.shape))
                                .chain(t.suspect.take())
                            {
                                if let Shape::Tx(x) = sh {
                                    g.push(x);
                                }
                            }
                            if matches!(t.desired, Some(Shape::Tx(_))) {
                                t.desired = None;
                            }
                            t.settled = false;
                            t.next_try = now;
                            if g.is_empty() {
                                ch.stale_guards.remove(&s.connector);
                            }
                        }
                        ch.power_w.remove(&s.connector);
                    }
                    self.dirty = true;
                    self.sync(now);
                }
            }
            Input::Meter {
                charger,
                connector_id,
                transaction_id,
                at,
                power_w,
                energy_wh,
                ..
            } => self.meter(
                &charger,
                connector_id,
                transaction_id,
                secs(at),
                power_w,
                energy_wh,
            ),
            Input::CommunityMeter { at, power_w } => {
                let at = secs(at);
                let h = self.clock.hour(at);
                let chargers_kw: f64 = self.chargers.values().map(|c| c.power_kw()).sum();
                let sample = (power_w / 1000.0 - chargers_kw).max(0.0);
                if sample.is_finite() {
                    self.learned_base[h] += BASE_ALPHA * (sample - self.learned_base[h]);
                    // Hysteresis: every change of the applied base load re-sends every charger's
                    // fallback, so only a change worth it is applied.
                    let rated = self.community.rating_kva * self.community.power_factor;
                    if (self.learned_base[h] - self.applied_base[h]).abs() > (0.01 * rated).max(1.0)
                    {
                        self.applied_base[h] = self.learned_base[h];
                        self.fallback_dirty = true;
                        self.dirty = true;
                    }
                }
            }
            Input::Wish {
                transaction_id,
                wish,
            } => {
                if let Some(s) = self.sessions.get_mut(&transaction_id) {
                    s.wish = wish;
                    self.dirty = true;
                }
            }
            Input::GridCommand(command) => self.add_command(command, now),
            Input::GridCommandCancelled { id } => {
                if let Some(c) = self.commands.get_mut(&id) {
                    if c.active() {
                        c.cancelled = true;
                        let report = self.report(id, now);
                        self.actions.extend(report.map(Action::CommandReport));
                    }
                    for ch in self.chargers.values_mut() {
                        if let Some(t) = ch.tracks.get_mut(&Key::Command(id)) {
                            t.set_desired(Shape::Clear);
                        }
                    }
                    self.fallback_dirty = true;
                    self.dirty = true;
                }
            }
            Input::ProfileResult {
                charger,
                request,
                outcome,
            } => self.profile_result(&charger, request, outcome, now),
            Input::Community(spec) => self.set_community(spec, now),
            Input::Forecast(forecast) => {
                if forecast.slot_minutes != self.config.slot_minutes
                    || forecast.slots_per_day * forecast.slot_minutes as usize != 1440
                {
                    self.last_error = Some(format!(
                        "forecast of {}-minute slots ignored: the controller plans {}-minute slots",
                        forecast.slot_minutes, self.config.slot_minutes
                    ));
                    return;
                }
                self.forecast = forecast;
                self.dirty = true;
            }
        }
    }

    fn set_community(&mut self, spec: CommunitySpec, now: i64) {
        let clock = match validate(&spec, &self.config) {
            Ok(c) => c,
            Err(e) => {
                self.last_error = Some(e.to_string());
                return;
            }
        };
        self.clock = clock;
        let ids: std::collections::BTreeSet<_> =
            spec.chargers.iter().map(|c| c.id.clone()).collect();
        self.chargers.retain(|id, _| ids.contains(id));
        for s in &spec.chargers {
            match self.chargers.get_mut(&s.id) {
                Some(ch) => {
                    if ch.spec != *s {
                        ch.spec = s.clone();
                        if let Some(t) = ch.tracks.get_mut(&Key::Max) {
                            t.set_desired(Shape::Max(max_limit(s)));
                        }
                    }
                }
                None => {
                    self.chargers
                        .insert(s.id.clone(), ChargerState::new(s.clone()));
                }
            }
        }
        self.sessions.retain(|_, s| ids.contains(&s.charger));
        if spec.base_load_kw != self.community.base_load_kw {
            self.learned_base = std::array::from_fn(|h| spec.base_load_kw[h]);
            self.applied_base = self.learned_base;
        }
        self.community = spec;
        self.fallback_dirty = true;
        self.dirty = true;
        self.sync(now);
    }

    fn add_command(&mut self, command: GridCommand, now: i64) {
        let kw = match command.kind {
            CommandKind::Limit { kw } | CommandKind::Reduce { kw } => kw,
        };
        // Whole seconds, outward: the command is enforced (and its fallback held) over at least
        // its whole window, never ending a fraction of a second early.
        let (start, end) = (secs(command.start), secs_ceil(command.end));
        if start >= end || !kw.is_finite() || kw < 0.0 {
            self.last_error = Some(format!(
                "grid command {}: invalid window or kW",
                command.id.0
            ));
            return;
        }
        let slot_len = self.slot_len();
        let from = self.clock.floor(start, slot_len);
        let slots = ((end - from + slot_len - 1) / slot_len) as usize;
        let id = command.id;
        let taken: Vec<i64> = self
            .commands
            .values()
            // Not only overlapping windows: a charge point replaces a held profile of the same
            // stack level and purpose, so a later command on the same level would erase an
            // earlier one still to come or in force.
            .filter(|c| c.command.id != id && c.active() && c.end > now)
            .map(|c| c.stack_level)
            .collect();
        let stack_level = (1..=profile::MAX_COMMAND_STACK_LEVEL)
            .find(|l| !taken.contains(l))
            .unwrap_or(profile::MAX_COMMAND_STACK_LEVEL);
        self.commands.insert(
            id,
            CommandState {
                command,
                start,
                end,
                from,
                slots,
                baseline: vec![0.0; slots],
                baseline_fixed: false,
                energy: vec![0.0; slots],
                covered: vec![0.0; slots],
                reported: 0,
                done: false,
                cancelled: false,
                stack_level,
            },
        );
        self.fix_baseline(id, now);
        if start <= now
            && let Some(c) = self.commands.get_mut(&id)
        {
            c.baseline_fixed = true;
        }
        let report = self.report(id, now);
        self.actions.extend(report.map(Action::CommandReport));
        self.fallback_dirty = true;
        self.dirty = true;
    }

    /// The baseline of command `id`: the charging load the plan without it expects, per slot.
    fn fix_baseline(&mut self, id: CommandId, now: i64) {
        let slot_len = self.slot_len();
        let solved = self.solve(now, Some(id));
        let rated = self.community.rating_kva * self.community.power_factor;
        let Some(c) = self.commands.get(&id) else {
            return;
        };
        let (from, slots) = (c.from, c.slots);
        let baseline: Vec<f64> = (0..slots)
            .map(|j| {
                let t = from + j as i64 * slot_len;
                match &solved {
                    Ok(s)
                        if t >= s.slot0 && ((t - s.slot0) / slot_len) < s.planned.len() as i64 =>
                    {
                        s.planned[((t - s.slot0) / slot_len) as usize]
                    }
                    // Beyond the horizon the plan says nothing: the capacity is what the
                    // community could draw.
                    _ => (rated - self.applied_base[self.clock.hour(t)]).max(0.0),
                }
            })
            .collect();
        if let Err(e) = &solved {
            self.last_error = Some(e.to_string());
        }
        if let Some(c) = self.commands.get_mut(&id) {
            c.baseline = baseline;
        }
    }

    fn meter(
        &mut self,
        charger: &ChargePointId,
        connector: i32,
        transaction: Option<i64>,
        at: i64,
        power_w: Option<f64>,
        energy_wh: Option<f64>,
    ) {
        let Some(ch) = self.chargers.get_mut(charger) else {
            return;
        };
        let tx = transaction.or_else(|| {
            self.sessions
                .iter()
                .find(|(_, s)| &s.charger == charger && s.connector == connector)
                .map(|(&id, _)| id)
        });
        if let (Some(e), Some(tx)) = (energy_wh, tx)
            && let Some(s) = self.sessions.get_mut(&tx)
        {
            let delivered = ((e - s.meter_start_wh as f64) / 1000.0).max(0.0);
            let delta = delivered - s.delivered_kwh;
            if delta > 0.0 {
                let emergency = self
                    .plan
                    .as_ref()
                    .and_then(|p| p.sessions.get(&tx))
                    .is_some_and(|i| i.emergency);
                let price = if emergency {
                    self.community.emergency_price_cny_per_kwh
                } else {
                    self.community.tariff.cny_per_kwh[self.clock.hour(at)]
                };
                s.cost_so_far += delta * price;
                s.delivered_kwh = delivered;
            }
        }
        let Some(p) = power_w.filter(|p| p.is_finite()) else {
            return;
        };
        ch.power_w.insert(connector, p.max(0.0));
        // Compliance: the limit in force at `at` from what the charger holds or has in flight.
        let limit_kw = Self::limit_kw_at(&self.clock, ch, connector, tx, at);
        if let Some(s) = tx.and_then(|tx| self.sessions.get_mut(&tx)) {
            let kw = p / 1000.0;
            let min_kw = ch.spec.min_kw().max(0.5);
            if let Some(m) = &mut s.car_max_kw {
                *m = m.max(kw);
            }
            // Charging (at least the minimum), not finished, and well below its limit.
            if kw >= min_kw && kw < limit_kw * 0.9 - 0.2 && s.delivered_kwh < s.wish.energy_kwh {
                s.below_limit += 1;
                if s.below_limit >= self.config.compliance_samples.max(2) {
                    s.car_max_kw = Some(s.car_max_kw.map_or(kw, |m| m.max(kw)));
                }
            } else {
                s.below_limit = 0;
            }
        }
        let allowed_w = limit_kw * 1000.0 * (1.0 + self.config.compliance_tolerance_ratio)
            + self.config.compliance_tolerance_w;
        if p > allowed_w {
            ch.over += 1;
            ch.within = 0;
        } else {
            ch.within += 1;
            ch.over = 0;
        }
        let n = self.config.compliance_samples.max(1);
        let change = if ch.compliant && ch.over >= n {
            Some(false)
        } else if !ch.compliant && ch.within >= n {
            Some(true)
        } else {
            None
        };
        if let Some(compliant) = change {
            ch.compliant = compliant;
            self.actions.push_back(Action::Compliance {
                charger: charger.clone(),
                compliant,
                at: profile::ts(at),
                detail: format!(
                    "{n} consecutive readings {} the limit: {:.0} W against {:.0} W allowed ({:.0} W limit)",
                    if compliant { "within" } else { "above" },
                    p,
                    allowed_w,
                    limit_kw * 1000.0
                ),
            });
            self.dirty = true;
        }
    }

    /// The most a charger may draw on `connector` at `t` under what it holds or has in flight
    /// (kW): its TxProfile for `tx` if one is in force, else the command or base fallback,
    /// capped by the hardware limit.
    fn limit_kw_at(
        clock: &LocalClock,
        ch: &ChargerState,
        connector: i32,
        tx: Option<i64>,
        t: i64,
    ) -> f64 {
        let h = clock.hour(t);
        let mut tx_limit: Option<f64> = None;
        for s in ch.shapes(Key::Tx(connector)) {
            if let Shape::Tx(s) = s
                && Some(s.transaction_id) == tx
                && let Some(v) = s.at(t)
            {
                tx_limit = Some(tx_limit.map_or(v, |x: f64| x.max(v)));
            }
        }
        let limit = tx_limit.or_else(|| {
            let mut cmd: Option<f64> = None;
            for (k, _) in ch.tracks.iter() {
                if let Key::Command(_) = k {
                    for s in ch.shapes(*k) {
                        if let Shape::Command {
                            from, to, hourly, ..
                        } = s
                            && *from <= t
                            && t < *to
                        {
                            cmd = Some(cmd.map_or(hourly[h], |x: f64| x.max(hourly[h])));
                        }
                    }
                }
            }
            cmd.or_else(|| {
                ch.shapes(Key::Default)
                    .filter_map(|s| match s {
                        Shape::Default(x) => Some(x[h]),
                        _ => None,
                    })
                    .reduce(f64::max)
            })
        });
        let hw = ch.spec.max_kw();
        let max = ch
            .shapes(Key::Max)
            .filter_map(|s| match s {
                Shape::Max(v) => Some(profile::unit_to_kw(&ch.spec, *v)),
                _ => None,
            })
            .reduce(f64::max)
            .unwrap_or(hw);
        limit.map_or(max, |l| profile::unit_to_kw(&ch.spec, l).min(max))
    }

    fn profile_result(
        &mut self,
        charger: &ChargePointId,
        request: RequestId,
        outcome: ProfileOutcome,
        now: i64,
    ) {
        let Some((id, key)) = self.requests.remove(&request) else {
            return;
        };
        if &id != charger {
            return;
        }
        let retry = self.config.retry_after.as_secs().max(1);
        let Some(ch) = self.chargers.get_mut(charger) else {
            return;
        };
        let Some(t) = ch.tracks.get_mut(&key) else {
            return;
        };
        if !t
            .pending
            .as_ref()
            .is_some_and(|p| p.request == request || p.guard == Some(request))
        {
            return;
        }
        match outcome {
            ProfileOutcome::Accepted => {
                let p = t.pending.as_mut().expect("checked");
                p.accepted += 1;
                if p.guard.is_some() && p.accepted < 2 {
                    return;
                }
                let p = t.pending.take().expect("checked");
                t.suspect = None;
                t.settled = t.desired.as_ref() == Some(&p.shape);
                if let Key::Tx(c) = key {
                    // The pair or idle guard replaced the connector's guard (same
                    // chargingProfileId).
                    ch.stale_guards.remove(&c);
                }
                if matches!(p.shape, Shape::Idle { .. }) && ch.idle_refused {
                    // The plan may count on its idle guards again.
                    ch.idle_refused = false;
                    self.dirty = true;
                }
                if p.shape == Shape::Clear {
                    ch.tracks.remove(&key);
                } else {
                    t.accepted = Some(p.shape);
                }
                // Planned again only once nothing else of it awaits a retry: a request of
                // another kind that failed (its pair, say) is still not held.
                let still_failing = ch.tracks.iter().any(|(k, t)| {
                    *k != key
                        && *k != Key::Max
                        && t.pending.is_none()
                        && !t.settled
                        && t.next_try > now
                        && t.desired
                            .as_ref()
                            .is_some_and(|d| !matches!(d, Shape::Idle { .. }))
                });
                if !still_failing && ch.failed_until.take().is_some() {
                    self.dirty = true;
                }
            }
            ProfileOutcome::Rejected | ProfileOutcome::NotSupported | ProfileOutcome::Failed => {
                let p = t.pending.take().expect("checked");
                if let Some(g) = p.guard {
                    self.requests.remove(&g);
                    self.requests.remove(&p.request);
                }
                let idle = matches!(p.shape, Shape::Idle { .. });
                if !p.decrease {
                    t.suspect = Some(p.shape);
                }
                t.next_try = now + retry;
                if idle {
                    // The plan must not count on it: its fallback is reserved again (re-plan
                    // before any increase, see `sync`); retried after `retry_after`. Its
                    // transactions (none now) are not planned around for this.
                    ch.idle_refused = true;
                    self.dirty = true;
                } else if key != Key::Max {
                    // Plan around it until the retry: what it holds stays in force.
                    ch.failed_until = Some(now + retry);
                    self.dirty = true;
                }
            }
        }
        // What an answer can let through is the increases (a mixed change's second half is one
        // too): they wait for the last blocking request, so one pass then is enough; anything
        // else (retries, the re-plan after a failure) runs at the next timeout.
        if !self.any_blocking() {
            self.sync(now);
        }
    }

    /// Whether a decrease, or a request the plan no longer wants, is in flight.
    fn any_blocking(&self) -> bool {
        self.chargers.values().filter(|c| c.connected).any(|c| {
            c.tracks
                .values()
                .any(|t| t.pending.as_ref().is_some_and(|p| p.decrease || p.obsolete))
        })
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = if self.dirty {
            self.now
        } else {
            self.next_replan
        };
        let retry = self.config.retry_after.as_secs().max(1);
        for ch in self.chargers.values() {
            if let Some(f) = ch.failed_until {
                t = t.min(f);
            }
            if !ch.connected {
                continue;
            }
            for tr in ch.tracks.values() {
                if let Some(p) = &tr.pending {
                    t = t.min(p.sent + 2 * retry);
                } else if tr.desired.is_some() && tr.next_try > self.now {
                    t = t.min(tr.next_try);
                }
            }
        }
        let slot_len = self.slot_len();
        for c in self.commands.values().filter(|c| c.active()) {
            if !c.baseline_fixed {
                t = t.min(c.start);
            }
            let next_slot_end = (c.from + (c.reported as i64 + 1) * slot_len).min(c.end);
            t = t.min(next_slot_end);
        }
        Some(profile::ts(t.max(self.now)))
    }

    /// Re-plan if due, retry unanswered profiles, update command reports.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = secs(now).max(self.now);
        self.integrate(now);
        self.now = now;
        let retry = self.config.retry_after.as_secs().max(1);
        // Requests nobody answered count as failed.
        let mut expired = Vec::new();
        for (id, ch) in &mut self.chargers {
            for g in ch.stale_guards.values_mut() {
                g.retain(|x| x.valid_to > now);
            }
            ch.stale_guards.retain(|_, g| !g.is_empty());
            if ch.failed_until.is_some_and(|f| f <= now) {
                ch.failed_until = None;
                self.dirty = true;
            }
            for (k, tr) in &ch.tracks {
                if let Some(p) = &tr.pending
                    && p.sent + 2 * retry <= now
                {
                    expired.push((id.clone(), *k, p.request));
                }
            }
        }
        for (id, _, req) in expired {
            self.profile_result(&id, req, ProfileOutcome::Failed, now);
        }
        // Commands: baseline fixed at start, slot reports, end.
        let ids: Vec<CommandId> = self.commands.keys().copied().collect();
        let slot_len = self.slot_len();
        for id in ids {
            let c = &self.commands[&id];
            if !c.active() {
                continue;
            }
            let mut changed = false;
            if !c.baseline_fixed && c.start <= now {
                self.fix_baseline(id, now);
                self.commands.get_mut(&id).expect("present").baseline_fixed = true;
                self.fallback_dirty = true;
                self.dirty = true;
                changed = true;
            }
            let c = self.commands.get_mut(&id).expect("present");
            while c.reported < c.slots
                && (c.from + (c.reported as i64 + 1) * slot_len).min(c.end) <= now
            {
                c.reported += 1;
                changed = true;
            }
            if c.end <= now {
                c.done = true;
                self.dirty = true;
                changed = true;
            }
            if changed {
                let r = self.report(id, now);
                self.actions.extend(r.map(Action::CommandReport));
            }
        }
        if self.dirty || now >= self.next_replan {
            self.replan(now);
        }
        self.sync(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The learned base load per local hour (kW) the plan and the fallback use.
    pub fn base_load_kw(&self) -> [f64; 24] {
        self.applied_base
    }

    /// The last planning error, if the last re-plan failed (the previous plan stays in force).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The engine's input at the last re-plan: what `orderly_schedule::OnlinePlanner::plan`
    /// was given at slot 0 (the benchmark times the engine's share with it).
    pub fn last_problem(&self) -> Option<&Problem> {
        self.last_problem.as_ref()
    }

    /// The planner of the last re-plan (same forecast, configuration and calendar), for the
    /// benchmark: `planner().plan(0, last_problem())` is what that re-plan solved.
    pub fn planner(&self) -> &OnlinePlanner {
        &self.planner
    }

    /// The forecast the re-plans use.
    pub fn forecast(&self) -> &Forecast {
        &self.forecast
    }

    /// The online planner for a problem whose slot 0 starts at `slot0`: the forecast placed by
    /// a calendar from `slot0`'s local slot of the day, with the type (weekday or weekend) of
    /// every local day the horizon touches.
    fn planner_at(&self, slot0: i64) -> OnlinePlanner {
        let slot_len = self.slot_len();
        let midnight = self.clock.midnight(slot0);
        let slot_of_day = ((slot0 - midnight) / slot_len).max(0) as usize;
        let spd = self.forecast.slots_per_day.max(1);
        let days = (slot_of_day + self.config.horizon_slots)
            .div_ceil(spd)
            .max(1);
        let first = profile::ts(slot0)
            .to_zoned_datetime(self.clock.tz.clone())
            .date();
        let day_types = (0..days)
            .map(|d| {
                let date = first
                    .checked_add(jiff::Span::new().days(d as i64))
                    .unwrap_or(first);
                day_type(date)
            })
            .collect();
        OnlinePlanner::new(
            self.forecast.clone(),
            Calendar {
                slot_of_day_at_zero: slot_of_day.min(spd - 1),
                day_types,
            },
            self.online.clone(),
        )
    }

    /// Accumulate the measured charging load into the open command windows.
    fn integrate(&mut self, now: i64) {
        let from = self.measured_since;
        if now <= from {
            return;
        }
        self.measured_since = now;
        if !self.commands.values().any(|c| c.active()) {
            return;
        }
        let kw: f64 = self.chargers.values().map(|c| c.power_kw()).sum();
        let slot_len = self.slot_len();
        for c in self.commands.values_mut().filter(|c| c.active()) {
            let (a, b) = (from.max(c.start), now.min(c.end));
            let mut t = a;
            while t < b {
                let j = ((t - c.from) / slot_len) as usize;
                let slot_end = (c.from + (j as i64 + 1) * slot_len).min(b);
                if j < c.slots {
                    c.energy[j] += kw * (slot_end - t) as f64;
                    c.covered[j] += (slot_end - t) as f64;
                }
                t = slot_end;
            }
        }
    }

    fn report(&self, id: CommandId, _now: i64) -> Option<CommandReport> {
        let c = self.commands.get(&id)?;
        let drawn: Vec<Option<f64>> = (0..c.slots)
            .map(|j| (j < c.reported && c.covered[j] > 0.0).then(|| c.energy[j] / c.covered[j]))
            .collect();
        Some(orderly_grid::report::evaluate(
            &c.command,
            self.config.slot_minutes,
            profile::ts(c.from),
            &c.baseline,
            &drawn,
            c.done || c.cancelled,
            orderly_grid::report::Tolerance::default(),
        ))
    }

    /// The command fallbacks and base fallback each charger should hold.
    fn refresh_fallbacks(&mut self) {
        let mut spec = self.community.clone();
        spec.base_load_kw = self.applied_base.to_vec();
        for f in fallback::fallback_limits(&spec, None) {
            if let Some(ch) = self.chargers.get_mut(&f.charger) {
                let hourly: [f64; 24] =
                    std::array::from_fn(|h| profile::amps_to_unit(&ch.spec, f.amps_by_hour[h]));
                ch.tracks
                    .entry(Key::Default)
                    .or_default()
                    .set_desired(Shape::Default(hourly));
            }
        }
        let slot_len = self.slot_len();
        let now = self.now;
        for (id, c) in &self.commands {
            if !c.active() || c.end <= now {
                continue;
            }
            // The commanded charging capacity per local hour: the lowest over the window's slots
            // falling in that hour, under every command in force then (where windows overlap,
            // whichever command's profile prevails on a charger allows no more than all of
            // them); hours outside the window are not capped.
            let mut cap = [f64::INFINITY; 24];
            let mut t = c.from;
            while t < c.end {
                let h = self.clock.hour(t);
                for o in self.commands.values().filter(|o| o.active()) {
                    if t < o.end && t + slot_len > o.start {
                        cap[h] = cap[h].min(o.cap_at(t, slot_len));
                    }
                }
                t += slot_len;
            }
            for f in fallback::fallback_limits(&spec, Some(&cap)) {
                if let Some(ch) = self.chargers.get_mut(&f.charger) {
                    let hourly: [f64; 24] =
                        std::array::from_fn(|h| profile::amps_to_unit(&ch.spec, f.amps_by_hour[h]));
                    ch.tracks
                        .entry(Key::Command(*id))
                        .or_default()
                        .set_desired(Shape::Command {
                            from: c.start,
                            to: c.end,
                            level: c.stack_level,
                            hourly,
                        });
                }
            }
        }
        // Commands that ended: their profiles expired by validTo, nothing to send.
        let ended: Vec<CommandId> = self
            .commands
            .iter()
            .filter(|(_, c)| c.end <= now)
            .map(|(id, _)| *id)
            .collect();
        for ch in self.chargers.values_mut() {
            for id in &ended {
                if ch
                    .tracks
                    .get(&Key::Command(*id))
                    .is_some_and(|t| t.pending.is_none())
                {
                    ch.tracks.remove(&Key::Command(*id));
                }
            }
        }
        self.commands
            .retain(|_, c| !(c.end <= now && (c.done || c.cancelled) && now - c.end > 86_400));
    }

    fn replan(&mut self, now: i64) {
        if self.fallback_dirty {
            self.refresh_fallbacks();
            self.fallback_dirty = false;
        }
        self.dirty = false;
        self.next_replan = now + self.config.replan_interval.as_secs().max(1);
        let solved = match self.solve(now, None) {
            Ok(s) => s,
            Err(e) => {
                self.last_error = Some(e.to_string());
                return;
            }
        };
        self.last_error = None;
        let slot_len = self.slot_len();
        for (tx, power, _) in &solved.sessions {
            let s = &self.sessions[tx];
            let Some(ch) = self.chargers.get_mut(&s.charger) else {
                continue;
            };
            let mut periods = Vec::new();
            for (k, p) in power.iter().enumerate() {
                let start = solved.slot0 + k as i64 * slot_len;
                if start >= solved.valid_to {
                    break;
                }
                let limit = profile::kw_to_unit(&ch.spec, *p);
                if periods.last().is_some_and(|&(_, l)| l == limit) {
                    continue;
                }
                periods.push((start.max(now), limit));
            }
            ch.tracks
                .entry(Key::Tx(s.connector))
                .or_default()
                .set_desired(Shape::Tx(TxShape {
                    transaction_id: *tx,
                    start: now,
                    periods,
                    valid_to: solved.valid_to,
                }));
        }
        // Idle guards: every charger without a transaction holds limit 0 on its connector until
        // the plan's expiry (renewed with it), which is what lets the plan give the cars the
        // room its fallback would take. Identical ones (same expiry) are not sent again.
        let running: std::collections::BTreeSet<&ChargePointId> =
            self.sessions.values().map(|s| &s.charger).collect();
        for (id, ch) in self.chargers.iter_mut() {
            if running.contains(id) {
                continue;
            }
            ch.tracks
                .entry(Key::Tx(ch.idle_connector))
                .or_default()
                .set_desired(Shape::Idle {
                    valid_to: solved.valid_to,
                });
        }
        let first_powers = solved
            .sessions
            .iter()
            .map(|(tx, p, _)| {
                (
                    *tx,
                    [
                        p.first().copied().unwrap_or(0.0),
                        p.get(1).copied().unwrap_or(0.0),
                    ],
                )
            })
            .collect();
        self.last_problem = Some(solved.problem);
        self.planner = solved.planner;
        self.ghosts = solved.ghosts;
        self.plan = Some(PlanState {
            planned_at: now,
            slot0: solved.slot0,
            first_powers,
            capacity: solved.capacity,
            planned: solved.planned,
            sessions: solved
                .sessions
                .into_iter()
                .map(|(tx, _, i)| (tx, i))
                .collect(),
        });
    }

    /// The plan at `now`, without the command `exclude` (for its baseline). Pure.
    fn solve(&self, now: i64, exclude: Option<CommandId>) -> Result<Solved, ControlError> {
        let slot_len = self.slot_len();
        let n = self.config.horizon_slots;
        let slot0 = self.clock.floor(now, slot_len);
        let starts: Vec<i64> = (0..n).map(|k| slot0 + k as i64 * slot_len).collect();
        let hours: Vec<usize> = starts.iter().map(|&t| self.clock.hour(t)).collect();
        let rated = self.community.rating_kva * self.community.power_factor;
        let mut cap: Vec<f64> = hours
            .iter()
            .map(|&h| (rated - self.applied_base[h]).max(0.0))
            .collect();
        for (id, c) in &self.commands {
            if !c.active() || Some(*id) == exclude {
                continue;
            }
            for (k, &t) in starts.iter().enumerate() {
                if t < c.end && t + slot_len > c.start {
                    cap[k] = cap[k].min(c.cap_at(t, slot_len));
                }
            }
        }
        // Every TxProfile (and guard) of this plan expires at the same instant, on a grid of
        // `validity − 2 × interval` (at least the interval): consecutive re-plans within one
        // grid step produce identical profiles when nothing changed, and those are not sent
        // again; the expiry stays at least two re-plan intervals ahead, so a profile is renewed
        // before it lapses even if one re-plan is late; and no charger's plan outlives another's.
        let validity = self.config.profile_validity.as_secs().max(1);
        let interval = self.config.replan_interval.as_secs().max(1);
        let valid_to = if validity >= 2 * interval {
            let grid = interval.max(validity - 2 * interval);
            let v = now + validity;
            v - v.rem_euclid(grid)
        } else {
            now + validity
        };
        // `fixed`: load the plan cannot change (chargers planned around); `reserve`: room kept
        // for fallbacks and guards, which is not load.
        let mut fixed = vec![0.0; n];
        let mut reserve = vec![0.0; n];
        let mut running: BTreeMap<&ChargePointId, Vec<i64>> = BTreeMap::new();
        for (tx, s) in &self.sessions {
            running.entry(&s.charger).or_default().push(*tx);
        }
        let mut planned_tx: Vec<i64> = Vec::new();
        for (id, ch) in &self.chargers {
            let measured = if ch.compliant { 0.0 } else { ch.power_kw() };
            match running.get(id) {
                Some(txs) => {
                    let excluded = !ch.connected || ch.failed_until.is_some() || !ch.compliant;
                    if excluded {
                        // Planned around: what it holds (TxProfile until its validTo, then its
                        // fallback), or what it draws if more.
                        for tx in txs {
                            let conn = self.sessions[tx].connector;
                            let held_tx = ch
                                .shapes(Key::Tx(conn))
                                .filter_map(|s| match s {
                                    Shape::Tx(t) if t.transaction_id == *tx => Some(t),
                                    _ => None,
                                })
                                .fold((0.0f64, 0i64), |a, t| {
                                    (a.0.max(t.max()), a.1.max(t.valid_to))
                                });
                            for (k, &t) in starts.iter().enumerate() {
                                let mut v = ch.fallback_kw_in(hours[k], t, t + slot_len);
                                if t < held_tx.1 {
                                    v = v.max(profile::unit_to_kw(&ch.spec, held_tx.0));
                                }
                                fixed[k] += v.max(measured);
                            }
                        }
                    } else {
                        planned_tx.extend(txs);
                        // After the car's departure the charger is idle. Until `valid_to` its
                        // guard holds the plan's limits for it (nothing after the departure);
                        // later re-plans send it an idle guard. Only if it refuses those is its
                        // fallback reserved from the departure on, so energy planned for the
                        // cars staying does not count on room that will be taken.
                        if !ch.idle_guard_usable() {
                            let dep = txs
                                .iter()
                                .map(|tx| secs(self.sessions[tx].wish.departure))
                                .max()
                                .unwrap_or(now);
                            for (k, &t) in starts.iter().enumerate() {
                                if t + slot_len > dep {
                                    reserve[k] += ch.fallback_kw_in(hours[k], t, t + slot_len);
                                }
                            }
                        }
                    }
                }
                None => {
                    // Idle. With idle guards (see the crate docs): until `valid_to` it holds
                    // limit 0 before any increase of this plan goes out (its idle guard is a
                    // decrease; a refusal re-plans before any increase), after `valid_to` every
                    // profile of the plan has expired and the fallbacks alone fit; later
                    // re-plans renew the idle guard. So only a guard left by the last
                    // transaction (until the idle guard replaces it) is reserved.
                    // Without (disconnected, or it refused its idle guard): its fallback is
                    // reserved (a car may plug in and draw it while this plan's TxProfiles are
                    // valid: Invariant S). Invariant S needs that only until `valid_to`, but
                    // every later re-plan reserves it again while the charger is idle;
                    // reserving it over the whole horizon makes the plan what will happen (a
                    // plan that counted on its share later would promise cars energy every
                    // re-plan then postpones, and miss departures).
                    let usable = ch.idle_guard_usable();
                    for (k, &t) in starts.iter().enumerate() {
                        let mut v = if usable {
                            0.0
                        } else {
                            ch.fallback_kw_in(hours[k], t, t + slot_len)
                        };
                        let g = ch.stale_max(t, t + slot_len);
                        if g > 0.0 {
                            v = v.max(profile::unit_to_kw(&ch.spec, g));
                        }
                        fixed[k] += measured;
                        reserve[k] += (v - measured).max(0.0);
                    }
                }
            }
        }
        let past_h = (now - slot0) as f64 / 3600.0;
        let left_h = (slot0 + slot_len - now) as f64 / 3600.0;
        let slot_h = slot_len as f64 / 3600.0;
        // Emergencies within the cap, earliest first.
        let mut emergencies: Vec<(i64, i64)> = planned_tx
            .iter()
            .filter(|tx| self.sessions[tx].wish.emergency)
            .map(|tx| (self.sessions[tx].started, *tx))
            .collect();
        emergencies.sort();
        let cap_e = self
            .community
            .max_emergencies
            .map_or(usize::MAX, |m| m as usize);
        let served: std::collections::BTreeSet<i64> =
            emergencies.iter().take(cap_e).map(|e| e.1).collect();
        let sessions: Vec<Session> = planned_tx
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                let s = &self.sessions[tx];
                let spec = &self.chargers[&s.charger].spec;
                let dep = (secs(s.wish.departure) - slot0).div_euclid(slot_len);
                // The engine counts slot 0 as a whole slot, but part of it is past: what the
                // session will not get in that part is asked for on top (estimated with the
                // previous plan's power for this slot), so a car is not left short by
                // re-planning mid-slot.
                let p0 = self.previous_power(*tx, slot0);
                // A car seen drawing less than allowed is planned at what it drew (a little
                // more, so a car that can draw more shows it).
                let max_kw = s
                    .car_max_kw
                    .map_or(spec.max_kw(), |m| (m * 1.05).min(spec.max_kw()));
                let missed = p0 * past_h;
                Session {
                    id: i as u64,
                    arrival_slot: 0,
                    departure_slot: (dep.max(1) as usize).min(n),
                    energy_kwh: {
                        let rem = (s.wish.energy_kwh - s.delivered_kwh).max(0.0);
                        // Less than one slot at the minimum power cannot be planned exactly
                        // (the engine then plans nothing): ask for one slot at the minimum; the
                        // car stops by itself when full.
                        if rem > 1e-6 {
                            (rem + missed).max(spec.min_kw() * slot_h)
                        } else {
                            0.0
                        }
                    },
                    max_kw,
                    min_kw: spec.min_kw().min(max_kw),
                    priority: if served.contains(tx) {
                        Priority::Emergency
                    } else {
                        Priority::Normal
                    },
                    v2g: None,
                }
            })
            .collect();
        let price: Vec<f64> = hours
            .iter()
            .map(|&h| self.community.tariff.cny_per_kwh[h])
            .collect();
        let problem = Problem {
            slot_minutes: self.config.slot_minutes,
            capacity_kw: (0..n)
                .map(|k| (cap[k] - fixed[k] - reserve[k]).max(0.0))
                .collect(),
            price,
            sessions,
        };
        // Without a forecast there are no ghosts and the calendar changes nothing.
        let planner = self.planner_at(slot0);
        let ghosts = if self.forecast.expects_arrivals() && !problem.sessions.is_empty() {
            planner.ghosts(0, n).len()
        } else {
            0
        };
        let plan = if problem.sessions.is_empty() {
            orderly_schedule::Plan {
                sessions: Vec::new(),
            }
        } else {
            planner.plan(0, &problem)?
        };
        // Planned load: excluded/non-compliant chargers' held or measured draw plus the engine's
        // plan; the idle chargers' reserve is not load.
        let mut planned_load = fixed.clone();
        let mut out = Vec::with_capacity(plan.sessions.len());
        for sp in plan.sessions {
            let tx = planned_tx[sp.id as usize];
            let s = &self.sessions[&tx];
            for (k, p) in sp.power_kw.iter().enumerate() {
                planned_load[k] += p;
            }
            let emergency = served.contains(&tx);
            // What the plan delivers from now (slot 0 only for its remaining part), at most
            // what is wanted.
            let remaining = (s.wish.energy_kwh - s.delivered_kwh).max(0.0);
            let mut energy = 0.0;
            let mut cost = 0.0;
            for (k, p) in sp.power_kw.iter().enumerate() {
                let e = p * if k == 0 { left_h } else { slot_h };
                let e = e.min(remaining - energy).max(0.0);
                energy += e;
                cost += e * if emergency {
                    self.community.emergency_price_cny_per_kwh
                } else {
                    self.community.tariff.cny_per_kwh[hours[k]]
                };
            }
            let finish = if s.wish.energy_kwh - s.delivered_kwh <= 1e-9 {
                None
            } else {
                sp.finish_slot.map(|f| slot0 + f as i64 * slot_len)
            };
            out.push((
                tx,
                sp.power_kw,
                SessionPlanInfo {
                    delivered_kwh: s.delivered_kwh,
                    energy_kwh: energy,
                    finish,
                    cost_cny: cost,
                    emergency,
                    emergency_waiting: s.wish.emergency && !emergency,
                },
            ));
        }
        Ok(Solved {
            problem,
            planner,
            ghosts,
            slot0,
            valid_to,
            capacity: cap,
            planned: planned_load,
            sessions: out,
        })
    }

    /// The connector-0 TxDefaultProfile limit the charger holds at `t`: a command's (stack
    /// level 1) in its window, else the base fallback; infinite if it holds none.
    fn held_default(&self, ch: &ChargerState, t: i64) -> f64 {
        let h = self.clock.hour(t);
        let mut cmd: Option<f64> = None;
        for (k, tr) in &ch.tracks {
            if let (
                Key::Command(_),
                Some(Shape::Command {
                    from, to, hourly, ..
                }),
            ) = (k, &tr.accepted)
                && *from <= t
                && t < *to
            {
                cmd = Some(cmd.map_or(hourly[h], |x: f64| x.max(hourly[h])));
            }
        }
        cmd.or_else(|| ch.accepted_default().map(|d| d[h]))
            .unwrap_or(f64::INFINITY)
    }

    /// The power the previous plan gave `tx` in the slot starting at `slot` (kW).
    fn previous_power(&self, tx: i64, slot: i64) -> f64 {
        let Some(p) = &self.plan else { return 0.0 };
        let Some(f) = p.first_powers.get(&tx) else {
            return 0.0;
        };
        match (slot - p.slot0) / self.slot_len() {
            0 => f[0],
            1 => f[1],
            _ => 0.0,
        }
    }

    /// How `new` relates to what the charger holds for `key` (`old`).
    fn change(
        &self,
        ch: &ChargerState,
        n_connector: i32,
        new: &Shape,
        old: Option<&Shape>,
        now: i64,
    ) -> (Change, Option<Shape>) {
        const INF: f64 = f64::INFINITY;
        let def = ch.accepted_default().copied().unwrap_or([INF; 24]);
        match new {
            Shape::Max(_) => (
                if old == Some(new) {
                    Change::Equal
                } else {
                    Change::Decrease
                },
                None,
            ),
            Shape::Default(n) => {
                let o = match old {
                    Some(Shape::Default(o)) => *o,
                    _ => [INF; 24],
                };
                let c = classify_values(n.iter().copied().zip(o));
                let min: [f64; 24] = std::array::from_fn(|h| n[h].min(o[h]));
                (c, (c == Change::Mixed).then_some(Shape::Default(min)))
            }
            Shape::Command {
                from,
                to,
                level,
                hourly,
            } => {
                let o = match old {
                    Some(Shape::Command {
                        hourly: o,
                        from: f,
                        to: t,
                        level: l,
                    }) if f == from && t == to && l == level => *o,
                    Some(Shape::Command { hourly: o, .. }) => {
                        std::array::from_fn(|h| o[h].max(def[h]))
                    }
                    _ => def,
                };
                let c = classify_values(hourly.iter().copied().zip(o));
                let min: [f64; 24] = std::array::from_fn(|h| hourly[h].min(o[h]));
                (
                    c,
                    (c == Change::Mixed).then_some(Shape::Command {
                        from: *from,
                        to: *to,
                        level: *level,
                        hourly: min,
                    }),
                )
            }
            Shape::Clear => (
                if old.is_none() {
                    Change::Equal
                } else {
                    Change::Increase
                },
                None,
            ),
            // Limit 0 until `valid_to`, then what the charger held anyway (its fallback): never
            // above what it holds now, since every expiry held (an earlier idle guard, a pair's
            // or a stale guard) comes from an earlier plan and the plan's expiry never moves back.
            Shape::Idle { .. } => (
                if old == Some(new) {
                    Change::Equal
                } else {
                    Change::Decrease
                },
                None,
            ),
            Shape::Tx(n) => {
                let o = match old {
                    Some(Shape::Tx(o)) if o.transaction_id == n.transaction_id => Some(o),
                    _ => None,
                };
                // The idle guard the connector holds (a car plugged into an idle charger).
                let idle_to = match old {
                    Some(Shape::Idle { valid_to }) => Some(*valid_to),
                    _ => None,
                };
                // Fast path: the same periods from now on and the same expiry (the common case
                // of a re-plan that changed nothing for this car).
                if let Some(o) = o.filter(|o| o.valid_to == n.valid_to)
                    && same_from(o, n, now)
                {
                    return (Change::Equal, None);
                }
                let end = n
                    .valid_to
                    .max(o.map_or(0, |o| o.valid_to))
                    .max(idle_to.unwrap_or(0));
                let mut bps: Vec<i64> = vec![now];
                bps.extend(n.periods.iter().map(|p| p.0));
                bps.push(n.valid_to);
                if let Some(o) = o {
                    bps.extend(o.periods.iter().map(|p| p.0));
                    bps.push(o.valid_to);
                }
                bps.extend(idle_to);
                for g in ch.stale_guards.get(&n_connector).into_iter().flatten() {
                    bps.extend(g.periods.iter().map(|p| p.0));
                    bps.push(g.valid_to);
                }
                let mut t = self.clock.next_hour(now);
                while t < end {
                    bps.push(t);
                    t += 3600;
                }
                bps.retain(|&t| t >= now && t < end);
                bps.sort_unstable();
                bps.dedup();
                let f_new = |t: i64| n.at(t).unwrap_or_else(|| self.held_default(ch, t));
                let conn = n_connector;
                let f_old = |t: i64| {
                    o.and_then(|o| o.at(t))
                        .or_else(|| idle_to.filter(|&v| t < v).map(|_| 0.0))
                        .or_else(|| ch.stale_at(conn, t))
                        .unwrap_or_else(|| self.held_default(ch, t))
                };
                let mut c = classify_values(bps.iter().map(|&t| (f_new(t), f_old(t))));
                if c == Change::Equal && o.is_none_or(|o| o.valid_to < n.valid_to) {
                    // Equal to what the charger falls back to, but not held: the fallback may
                    // change (a command's rotation, a new base load) while the plan counts on
                    // this pair. Sending it changes nothing now, so it goes as a decrease.
                    c = Change::Decrease;
                }
                let min = (c == Change::Mixed).then(|| {
                    let mut periods: Vec<(i64, f64)> = Vec::new();
                    for &t in bps.iter().filter(|&&t| t < n.valid_to) {
                        let v = f_new(t).min(f_old(t));
                        if periods.last().is_some_and(|p| p.1 == v) {
                            continue;
                        }
                        periods.push((t, v));
                    }
                    Shape::Tx(TxShape {
                        transaction_id: n.transaction_id,
                        start: now,
                        periods,
                        valid_to: n.valid_to,
                    })
                });
                (c, min)
            }
        }
    }

    /// Send what differs from what chargers hold: decreases (and the decreasing half of mixed
    /// changes) at once; increases only when no decrease, and nothing the latest plan no longer
    /// wants, is in flight anywhere in the community.
    fn sync(&mut self, now: i64) {
        let mut sends: Vec<(ChargePointId, Key, Shape, bool)> = Vec::new();
        let mut increases: Vec<(ChargePointId, Key, Shape)> = Vec::new();
        let mut settled: Vec<(ChargePointId, Key)> = Vec::new();
        let mut blocked = false;
        for (id, ch) in &self.chargers {
            if !ch.connected {
                continue;
            }
            for (key, tr) in &ch.tracks {
                if let Some(p) = &tr.pending {
                    blocked |= p.decrease || p.obsolete;
                    continue;
                }
                if tr.settled || now < tr.next_try {
                    continue;
                }
                let Some(desired) = &tr.desired else { continue };
                let (c, min) =
                    self.change(ch, key_connector(*key), desired, tr.accepted.as_ref(), now);
                match c {
                    Change::Equal => settled.push((id.clone(), *key)),
                    Change::Decrease => sends.push((id.clone(), *key, desired.clone(), true)),
                    Change::Mixed => {
                        sends.push((id.clone(), *key, min.expect("mixed has a min"), true))
                    }
                    Change::Increase => increases.push((id.clone(), *key, desired.clone())),
                }
            }
        }
        for (id, key) in settled {
            if let Some(t) = self
                .chargers
                .get_mut(&id)
                .and_then(|c| c.tracks.get_mut(&key))
            {
                t.settled = true;
            }
        }
        // Increases also wait while a re-plan is due: they were computed by a plan whose
        // assumptions an event may have broken (an idle guard refused: that charger's fallback
        // must be reserved again before anyone gets more).
        if sends.is_empty() && !blocked && !self.dirty {
            sends.extend(increases.into_iter().map(|(a, b, c)| (a, b, c, false)));
        }
        for (id, key, shape, decrease) in sends {
            self.send(&id, key, shape, decrease, now);
        }
    }

    fn send(&mut self, id: &ChargePointId, key: Key, shape: Shape, decrease: bool, now: i64) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let Some(ch) = self.chargers.get_mut(id) else {
            return;
        };
        let command = match key {
            Key::Command(c) => c.0,
            _ => 0,
        };
        let connector = match key {
            Key::Tx(c) => c,
            _ => 0,
        };
        let action = match &shape {
            Shape::Clear => Action::ClearProfile {
                request,
                charger: id.clone(),
                request_body: v16::ClearChargingProfileRequest {
                    id: Some(profile::command_profile_id(command)),
                    ..Default::default()
                },
            },
            s => Action::SetProfile {
                request,
                charger: id.clone(),
                request_body: profile::request(&ch.spec, &self.clock, s, connector, command, now),
            },
        };
        self.actions.push_back(action);
        let guard = match &shape {
            Shape::Tx(tx) => {
                let g = RequestId(self.next_request);
                self.next_request += 1;
                self.actions.push_back(Action::SetProfile {
                    request: g,
                    charger: id.clone(),
                    request_body: profile::guard_request(&ch.spec, tx, connector),
                });
                self.requests.insert(g, (id.clone(), key));
                // The new pair replaces the stale guard of that connector.
                Some(g)
            }
            _ => None,
        };
        if let Some(t) = ch.tracks.get_mut(&key) {
            t.pending = Some(Pending {
                request,
                guard,
                accepted: 0,
                shape,
                sent: now,
                decrease,
                obsolete: false,
            });
        }
        self.requests.insert(request, (id.clone(), key));
    }

    pub fn plan_view(&self) -> PlanView {
        let slot_len = self.slot_len();
        let (planned_at, slot0, capacity, planned) = match &self.plan {
            Some(p) => (
                Some(profile::ts(p.planned_at)),
                p.slot0,
                p.capacity.clone(),
                p.planned.clone(),
            ),
            None => (
                None,
                self.clock.floor(self.now, slot_len),
                Vec::new(),
                Vec::new(),
            ),
        };
        let sessions = self
            .sessions
            .iter()
            .map(|(tx, s)| {
                let info = self.plan.as_ref().and_then(|p| p.sessions.get(tx));
                let ch = &self.chargers[&s.charger];
                let current = ch
                    .tracks
                    .get(&Key::Tx(s.connector))
                    .and_then(|t| t.accepted.as_ref())
                    .and_then(|sh| match sh {
                        Shape::Tx(t) if t.transaction_id == *tx => t.at(self.now),
                        _ => None,
                    })
                    .or_else(|| ch.accepted_default().map(|d| d[self.clock.hour(self.now)]))
                    .map(|v| profile::unit_to_kw(&ch.spec, v));
                SessionView {
                    transaction_id: *tx,
                    charger: s.charger.clone(),
                    connector_id: s.connector,
                    wish: s.wish.clone(),
                    emergency_waiting: info.is_some_and(|i| i.emergency_waiting),
                    delivered_kwh: s.delivered_kwh,
                    expected_energy_by_departure_kwh: info
                        .map_or(s.delivered_kwh, |i| i.delivered_kwh + i.energy_kwh)
                        .max(s.delivered_kwh),
                    expected_finish: info.and_then(|i| i.finish).map(profile::ts),
                    expected_cost_cny: s.cost_so_far + info.map_or(0.0, |i| i.cost_cny),
                    current_limit_kw: current,
                    compliant: ch.compliant,
                }
            })
            .collect();
        let unconfirmed = self
            .chargers
            .iter()
            .filter(|(_, ch)| {
                ch.failed_until.is_some()
                    || ch.tracks.values().any(|t| {
                        t.pending.is_some() || (t.desired.is_some() && t.accepted.is_none())
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        PlanView {
            planned_at,
            slot_start: profile::ts(slot0),
            slot_minutes: self.config.slot_minutes,
            capacity_kw: capacity,
            planned_kw: planned,
            measured_kw: self.chargers.values().map(|c| c.power_kw()).sum(),
            sessions,
            unconfirmed_chargers: unconfirmed,
            non_compliant_chargers: self
                .chargers
                .iter()
                .filter(|(_, c)| !c.compliant)
                .map(|(id, _)| id.clone())
                .collect(),
            forecast: self.forecast.expects_arrivals().then(|| ForecastView {
                weekday_ghosts: self.forecast.ghosts_of(DayType::Weekday).len(),
                weekend_ghosts: self.forecast.ghosts_of(DayType::Weekend).len(),
                weekday_kwh: self.forecast.daily_kwh(DayType::Weekday),
                weekend_kwh: self.forecast.daily_kwh(DayType::Weekend),
            }),
            ghost_sessions: self.ghosts,
        }
    }
}
