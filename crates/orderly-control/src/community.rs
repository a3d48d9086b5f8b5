//! A community's electrical facts, as configured (API or config file) and learned.

use orderly_core::ChargePointId;
use serde::{Deserialize, Serialize};

/// The unit a charger takes charging-profile limits in
/// (`ChargingScheduleAllowedChargingRateUnit`: "Current", "Power" or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Amperes per phase (what AC chargers in China take).
    #[default]
    Amperes,
    Watts,
}

/// One charger of a community.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargerSpec {
    pub id: ChargePointId,
    /// 1 or 3.
    pub phases: u8,
    /// Phase-to-neutral voltage (V), e.g. 220.
    pub voltage_v: f64,
    /// Hardware limit per phase (A): sent as ChargePointMaxProfile.
    pub max_current_a: f64,
    /// Below this (A per phase) an AC car pauses: a limit is 0 or at least this (6 A in IEC 61851).
    pub min_current_a: f64,
    pub rate_unit: RateUnit,
}

impl ChargerSpec {
    /// kW at `amps` per phase.
    pub fn kw_at(&self, amps: f64) -> f64 {
        amps * self.voltage_v * f64::from(self.phases) / 1000.0
    }
    pub fn max_kw(&self) -> f64 {
        self.kw_at(self.max_current_a)
    }
    pub fn min_kw(&self) -> f64 {
        self.kw_at(self.min_current_a)
    }
}

/// Price bands per clock hour of the community's local day (CNY/kWh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourlyTariff {
    /// 24 values, index = local clock hour.
    pub cny_per_kwh: Vec<f64>,
}

/// A community: one transformer (or feeder) and the chargers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommunitySpec {
    pub id: String,
    /// Transformer/feeder rating (kVA).
    pub rating_kva: f64,
    /// Power factor in (0, 1]: usable kW = rating × power factor.
    pub power_factor: f64,
    /// Household base-load forecast per local clock hour (kW), 24 values. Learned from the
    /// community meter when one reports, else as configured.
    pub base_load_kw: Vec<f64>,
    /// IANA time zone of the local day (tariff hours, base-load hours), e.g. "Asia/Shanghai".
    pub timezone: String,
    pub tariff: HourlyTariff,
    /// Price of emergency fast charging (CNY/kWh), charged instead of the tariff.
    pub emergency_price_cny_per_kwh: f64,
    /// At most this many emergency sessions at once (`None`: no cap). Later requests wait as
    /// normal sessions until one ends.
    pub max_emergencies: Option<u32>,
    /// Defaults when a resident said nothing and has no history.
    pub default_stay_hours: f64,
    pub default_energy_kwh: f64,
    pub chargers: Vec<ChargerSpec>,
}

impl CommunitySpec {
    /// Capacity left for charging at local clock hour `hour` (kW): rating × pf − base load.
    pub fn charging_capacity_kw(&self, hour: usize) -> f64 {
        (self.rating_kva * self.power_factor - self.base_load_kw[hour % 24]).max(0.0)
    }
}
