//! Configuration of the closed loop: `[control]` tunables and `[[communities]]` in orderly.toml,
//! and the community/charger settings shared by the config file and the HTTP API.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// `[control]`: controller tunables (see `orderly_control::ControllerConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlSettings {
    pub slot_minutes: u32,
    pub replan_interval_secs: u64,
    pub profile_validity_secs: u64,
    pub retry_after_secs: u64,
    /// Learn the community's expected arrivals from its completed transactions of this many
    /// days before today (at start, when its chargers change, and once a day), so that the
    /// plan keeps room for the cars still to come (see `control::forecast`). 0: no forecast;
    /// the plan sees only the cars plugged in.
    pub forecast_days: u32,
}

impl Default for ControlSettings {
    fn default() -> Self {
        Self {
            slot_minutes: 15,
            replan_interval_secs: 60,
            profile_validity_secs: 300,
            retry_after_secs: 30,
            forecast_days: 28,
        }
    }
}

impl ControlSettings {
    /// The controller configuration these settings give (the rest at its defaults).
    pub fn controller_config(&self) -> orderly_control::ControllerConfig {
        let secs = |s: u64| SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
        let defaults = orderly_control::ControllerConfig::default();
        let slot_minutes = self.slot_minutes.max(1);
        orderly_control::ControllerConfig {
            slot_minutes,
            // Keep a one-day horizon whatever the slot length.
            horizon_slots: (24 * 60 / slot_minutes as usize).max(1),
            replan_interval: secs(self.replan_interval_secs.max(1)),
            profile_validity: secs(self.profile_validity_secs.max(1)),
            retry_after: secs(self.retry_after_secs.max(1)),
            ..defaults
        }
    }
}

/// A base-load forecast: one flat value or 24 hourly values (kW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BaseLoad {
    Flat(f64),
    Hourly(Vec<f64>),
}

/// A community's settings, as the API's `PUT /communities/{id}` body and the config file's
/// `[[communities]]` entries give them. Absent optional fields take the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunitySettings {
    pub name: Option<String>,
    /// Transformer/feeder rating (kVA), > 0.
    pub rating_kva: f64,
    /// In (0, 1].
    pub power_factor: f64,
    /// Household base load (kW): one number, or 24 values by local clock hour.
    #[schema(value_type = Object)]
    pub base_load_kw: BaseLoad,
    /// IANA time zone (default "Asia/Shanghai").
    pub timezone: Option<String>,
    /// 24 prices (CNY/kWh) by local clock hour (default: Beijing EV time-of-use, 2016).
    pub tariff_cny_per_kwh: Option<Vec<f64>>,
    /// Default 1.5.
    pub emergency_price_cny_per_kwh: Option<f64>,
    /// At most this many emergency sessions at once (absent: no cap).
    pub max_emergencies: Option<u32>,
    /// Default 10.
    pub default_stay_hours: Option<f64>,
    /// Default 10.
    pub default_energy_kwh: Option<f64>,
    /// A charger id whose meter measures the whole community (base-load learning).
    pub community_meter: Option<String>,
}

/// "amperes" or "watts".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateUnitSetting {
    #[default]
    Amperes,
    Watts,
}

impl RateUnitSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amperes => "amperes",
            Self::Watts => "watts",
        }
    }
}

fn one() -> u8 {
    1
}
fn v220() -> f64 {
    220.0
}
fn a32() -> f64 {
    32.0
}
fn a6() -> f64 {
    6.0
}

/// A charger's electrical facts (`PUT /chargers/{id}/community` without the community, and
/// the config file's `chargers = [...]` entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargerElectricalSettings {
    /// 1 or 3 (default 1).
    #[serde(default = "one")]
    pub phases: u8,
    /// Phase-to-neutral voltage (default 220 V).
    #[serde(default = "v220")]
    pub voltage_v: f64,
    /// Hardware limit per phase (default 32 A).
    #[serde(default = "a32")]
    pub max_current_a: f64,
    /// Lowest non-zero current (default 6 A).
    #[serde(default = "a6")]
    pub min_current_a: f64,
    #[serde(default)]
    pub rate_unit: RateUnitSetting,
}

/// One charger of a `[[communities]]` entry; registered (without a password) if missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerConfig {
    pub id: String,
    #[serde(default = "one")]
    pub phases: u8,
    #[serde(default = "v220")]
    pub voltage_v: f64,
    #[serde(default = "a32")]
    pub max_current_a: f64,
    #[serde(default = "a6")]
    pub min_current_a: f64,
    #[serde(default)]
    pub rate_unit: RateUnitSetting,
}

impl ChargerConfig {
    pub fn electrical(&self) -> ChargerElectricalSettings {
        ChargerElectricalSettings {
            phases: self.phases,
            voltage_v: self.voltage_v,
            max_current_a: self.max_current_a,
            min_current_a: self.min_current_a,
            rate_unit: self.rate_unit,
        }
    }
}

/// `[[communities]]`: a community applied (created or updated) at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityConfig {
    pub id: String,
    pub name: Option<String>,
    pub rating_kva: f64,
    pub power_factor: f64,
    pub base_load_kw: BaseLoad,
    pub timezone: Option<String>,
    pub tariff_cny_per_kwh: Option<Vec<f64>>,
    pub emergency_price_cny_per_kwh: Option<f64>,
    pub max_emergencies: Option<u32>,
    pub default_stay_hours: Option<f64>,
    pub default_energy_kwh: Option<f64>,
    pub community_meter: Option<String>,
    #[serde(default)]
    pub chargers: Vec<ChargerConfig>,
}

impl CommunityConfig {
    pub fn settings(&self) -> CommunitySettings {
        CommunitySettings {
            name: self.name.clone(),
            rating_kva: self.rating_kva,
            power_factor: self.power_factor,
            base_load_kw: self.base_load_kw.clone(),
            timezone: self.timezone.clone(),
            tariff_cny_per_kwh: self.tariff_cny_per_kwh.clone(),
            emergency_price_cny_per_kwh: self.emergency_price_cny_per_kwh,
            max_emergencies: self.max_emergencies,
            default_stay_hours: self.default_stay_hours,
            default_energy_kwh: self.default_energy_kwh,
            community_meter: self.community_meter.clone(),
        }
    }
}
