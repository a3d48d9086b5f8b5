//! The controller of one community: live state in, charging profiles out.

use crate::community::CommunitySpec;
use jiff::{SignedDuration, Timestamp};
use orderly_core::ChargePointId;
use orderly_grid::{CommandId, CommandReport, GridCommand};
use orderly_ocpp::v16;
use serde::{Deserialize, Serialize};

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
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid community: {0}")]
    InvalidCommunity(String),
    #[error("engine: {0}")]
    Engine(#[from] orderly_schedule::ScheduleError),
}

/// One community's controller. Drive it like `orderly_ocpp::Connection`: feed [`Input`]s with
/// [`Controller::handle`], call [`Controller::handle_timeout`] at [`Controller::poll_timeout`],
/// and drain [`Controller::poll_action`] after each.
#[derive(Debug)]
pub struct Controller {
    _private: (),
}

impl Controller {
    pub fn new(
        community: CommunitySpec,
        config: ControllerConfig,
        now: Timestamp,
    ) -> Result<Self, ControlError> {
        let _ = (community, config, now);
        todo!("orderly-control helper")
    }

    /// Take one input. Events that change the plan mark it for a re-plan at the next
    /// `handle_timeout` (which `poll_timeout` then reports as due now).
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        let _ = (input, now);
        todo!("orderly-control helper")
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        todo!("orderly-control helper")
    }

    /// Re-plan if due, retry unanswered profiles, update command reports.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let _ = now;
        todo!("orderly-control helper")
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        todo!("orderly-control helper")
    }

    pub fn plan_view(&self) -> PlanView {
        todo!("orderly-control helper")
    }
}
