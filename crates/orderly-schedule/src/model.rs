//! The problem and plan types: the contract between the engine and its callers
//! (the simulator, the server's controller). Add fields freely; do not rename.

use serde::{Deserialize, Serialize};

/// Priority of a session: emergency fast charging is served first, at full rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    Emergency,
}

/// Vehicle-to-grid parameters of a car that opted in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct V2g {
    /// Usable battery capacity (kWh).
    pub battery_kwh: f64,
    /// Energy in the battery now (kWh).
    pub soc_kwh: f64,
    /// The battery never goes below this (kWh).
    pub floor_kwh: f64,
    /// Maximum discharge power (kW, positive).
    pub max_discharge_kw: f64,
    /// Grid-to-battery efficiency in (0, 1].
    pub charge_efficiency: f64,
    /// Battery-to-grid efficiency in (0, 1].
    pub discharge_efficiency: f64,
    /// Battery wear cost per kWh cycled through the battery (CNY/kWh).
    pub wear_cny_per_kwh: f64,
}

/// One plugged-in (or, offline, expected) car.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Caller's identifier, echoed in the plan.
    pub id: u64,
    /// First slot the car may charge in (inclusive).
    pub arrival_slot: usize,
    /// Slot at which the car leaves (exclusive): it may charge in `arrival_slot..departure_slot`.
    pub departure_slot: usize,
    /// Energy still wanted (kWh, from the grid side).
    pub energy_kwh: f64,
    /// Maximum charging power (kW): the smaller of car and charger.
    pub max_kw: f64,
    /// Minimum power while charging (kW); a planned power is 0 or in `[min_kw, max_kw]`.
    pub min_kw: f64,
    pub priority: Priority,
    pub v2g: Option<V2g>,
}

/// The instance: slots, capacity and prices per slot, sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Slot length in minutes (5 or 15).
    pub slot_minutes: u32,
    /// Capacity left for charging in each slot (kW).
    pub capacity_kw: Vec<f64>,
    /// Energy price in each slot (CNY/kWh). Same length as `capacity_kw`.
    pub price: Vec<f64>,
    pub sessions: Vec<Session>,
}

/// What the plan expects for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPlan {
    pub id: u64,
    /// Power per slot (kW) over the whole horizon; negative is V2G discharge.
    pub power_kw: Vec<f64>,
    /// Net energy delivered to the car by departure (kWh).
    pub energy_kwh: f64,
    /// Slot in which the car's target is reached (exclusive end), if it is.
    pub finish_slot: Option<usize>,
    /// Cost of the session's energy at slot prices, minus V2G revenue, plus wear (CNY).
    pub cost_cny: f64,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub sessions: Vec<SessionPlan>,
}
