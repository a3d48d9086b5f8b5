//! Server configuration: built-in defaults, then a TOML file, then `ORDERLY_*` environment
//! variables, then command-line flags (each layer overrides the one before).
//!
//! The config file's default location depends on the data directory, which may itself come from
//! the environment or a flag, so loading happens in two passes: first the data directory is
//! resolved without the file, then the file (if any) is merged under env and flags.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the gateway does with a charge point id it has never registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownChargers {
    /// Answer the WebSocket handshake with HTTP 404.
    #[default]
    Refuse,
    /// Accept the connection, answer BootNotification with `Pending` and list the charger as
    /// pending until an operator registers it.
    Pending,
    /// Accept the connection and answer BootNotification with `Rejected`.
    Reject,
}

/// The fully resolved configuration of `orderly serve` (and of the storage CLI commands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket listener binds (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where the embedded database and the default config file live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; when absent, `sqlite://DATA_DIR/orderly.db`.
    pub database_url: Option<String>,
    /// Operator token; when absent, one is created (and printed) at first start.
    pub admin_token: Option<String>,
    /// Admission policy for unregistered charge point ids.
    pub unknown_chargers: UnknownChargers,
    /// Heartbeat interval given to chargers in BootNotification.conf, in seconds.
    pub heartbeat_interval: u32,
    /// Default time an operator call waits for the charger's answer, in seconds.
    pub call_timeout: u64,
    /// Protocol seconds per real second. 1 in production; the demo and the end-to-end tests run
    /// faster so a day passes in minutes.
    pub clock_speed: f64,
    /// Where an accelerated clock starts (RFC 3339); default: now.
    pub clock_start: Option<jiff::Timestamp>,
    /// `[control]`: controller tunables.
    pub control: crate::control::ControlSettings,
    /// `[[communities]]`: communities applied at start-up.
    pub communities: Vec<crate::control::CommunityConfig>,
    /// `[openadr]`: the VEN, when the community takes events from an OpenADR 2.0b VTN.
    pub openadr: Option<crate::grid::openadr::OpenAdrConfig>,
    /// `[reminders]`: waiting-list sweep and insurance-alert periods (protocol seconds).
    pub reminders: crate::reminders::RemindersSettings,
    /// `[parking]`: occupancy reports over MQTT, the rules' tick.
    pub parking: crate::parking::ParkingConfig,
    /// `[notifications]`: where notifications go (log, webhook).
    pub notifications: crate::notify::NotificationSettings,
    /// `[sharing]`: the no-show sweep of shared private chargers.
    pub sharing: crate::sharing::SharingSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8180)),
            data_dir: PathBuf::from("orderly-data"),
            database_url: None,
            admin_token: None,
            unknown_chargers: UnknownChargers::Refuse,
            heartbeat_interval: 300,
            call_timeout: 30,
            clock_speed: 1.0,
            clock_start: None,
            control: crate::control::ControlSettings::default(),
            communities: Vec::new(),
            openadr: None,
            reminders: crate::reminders::RemindersSettings::default(),
            parking: crate::parking::ParkingConfig::default(),
            notifications: crate::notify::NotificationSettings::default(),
            sharing: crate::sharing::SharingSettings::default(),
        }
    }
}

/// Values given on the command line; `None` means "not given, keep the lower layers".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--config FILE`: the TOML file to read (must exist when given).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("{field} must be at least 1 second")]
    ZeroDuration { field: &'static str },
    #[error("clock_speed must be a positive number, not {0}")]
    ClockSpeed(f64),
    #[error("{0}")]
    Parking(String),
}

/// The keys read from `ORDERLY_*` variables; anything else with that prefix (for example
/// `ORDERLY_TEST_POSTGRES_URL`, used by the test suite) is not configuration.
const ENV_KEYS: [&str; 9] = [
    "listen",
    "database_url",
    "data_dir",
    "admin_token",
    "unknown_chargers",
    "heartbeat_interval",
    "call_timeout",
    "clock_speed",
    "clock_start",
];

impl Config {
    /// Resolve the configuration from defaults, file, environment and `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(overrides, Env::prefixed("ORDERLY_").only(&ENV_KEYS))
    }

    fn load_with_env(overrides: &Overrides, env: Env) -> Result<Self, ConfigError> {
        let layered = |file: Option<&Path>| {
            let mut fig = Figment::from(Serialized::defaults(Config::default()));
            if let Some(file) = file {
                fig = fig.merge(Toml::file_exact(file));
            }
            fig.merge(env.clone())
                .merge(Serialized::defaults(overrides))
        };
        let file = match &overrides.config_file {
            Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.clone())),
            Some(path) => Some(path.clone()),
            None => {
                let data_dir: PathBuf = layered(None)
                    .extract_inner("data_dir")
                    .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
                let candidate = data_dir.join("orderly.toml");
                candidate.is_file().then_some(candidate)
            }
        };
        let config: Config = layered(file.as_deref())
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        if config.heartbeat_interval == 0 {
            return Err(ConfigError::ZeroDuration {
                field: "heartbeat_interval",
            });
        }
        if config.call_timeout == 0 {
            return Err(ConfigError::ZeroDuration {
                field: "call_timeout",
            });
        }
        if !(config.clock_speed.is_finite() && config.clock_speed > 0.0) {
            return Err(ConfigError::ClockSpeed(config.clock_speed));
        }
        crate::parking::mqtt::check_config(&config.parking).map_err(ConfigError::Parking)?;
        Ok(config)
    }

    /// The protocol clock this configuration asks for.
    pub fn clock(&self) -> crate::clock::Clock {
        match (self.clock_start, self.clock_speed) {
            (None, 1.0) => crate::clock::Clock::real(),
            (start, speed) => {
                crate::clock::Clock::accelerated(start.unwrap_or_else(jiff::Timestamp::now), speed)
            }
        }
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("orderly.db").display()
            ),
        }
    }

    /// True when the database lives in the data directory (so the directory must exist).
    pub fn uses_embedded_database(&self) -> bool {
        self.database_url.is_none()
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.heartbeat_interval))
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout)
    }
}

#[cfg(test)]
// figment's `Jail` closures must return `figment::Error`, which is large; not our choice.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    /// An environment layer no real variable reaches, so this test ignores the developer's
    /// `ORDERLY_*` variables (the other tests set theirs inside a `figment::Jail`).
    fn empty_env() -> Env {
        Env::prefixed("ORDERLY_UNIT_TEST_NEVER_SET_").only(&ENV_KEYS)
    }

    #[test]
    fn zero_config_defaults() {
        let config = Config::load_with_env(&Overrides::default(), empty_env()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8180".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("orderly-data"));
        assert_eq!(
            config.database_url(),
            "sqlite://orderly-data/orderly.db?mode=rwc"
        );
        assert_eq!(config.unknown_chargers, UnknownChargers::Refuse);
        assert_eq!(config.heartbeat_interval, 300);
        assert_eq!(config.call_timeout, 30);
    }

    #[test]
    fn file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "orderly.toml",
                r#"
                listen = "127.0.0.1:9000"
                unknown_chargers = "pending"
                heartbeat_interval = 60
                database_url = "sqlite://from-file.db"
                "#,
            )?;
            jail.set_env("ORDERLY_HEARTBEAT_INTERVAL", "30");
            jail.set_env("ORDERLY_LISTEN", "127.0.0.1:9001");
            let overrides = Overrides {
                config_file: Some("orderly.toml".into()),
                listen: Some("127.0.0.1:9002".parse().unwrap()),
                ..Overrides::default()
            };
            let config =
                Config::load_with_env(&overrides, Env::prefixed("ORDERLY_").only(&ENV_KEYS))
                    .unwrap();
            assert_eq!(config.listen, "127.0.0.1:9002".parse().unwrap());
            assert_eq!(config.heartbeat_interval, 30);
            assert_eq!(config.unknown_chargers, UnknownChargers::Pending);
            assert_eq!(config.database_url(), "sqlite://from-file.db");
            Ok(())
        });
    }

    #[test]
    fn default_file_is_found_in_the_data_dir() {
        figment::Jail::expect_with(|jail| {
            jail.create_dir("data")?;
            jail.create_file("data/orderly.toml", "unknown_chargers = \"reject\"")?;
            jail.set_env("ORDERLY_DATA_DIR", "data");
            let config = Config::load_with_env(
                &Overrides::default(),
                Env::prefixed("ORDERLY_").only(&ENV_KEYS),
            )
            .unwrap();
            assert_eq!(config.unknown_chargers, UnknownChargers::Reject);
            assert_eq!(config.database_url(), "sqlite://data/orderly.db?mode=rwc");
            Ok(())
        });
    }

    #[test]
    fn control_and_communities_are_read_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "orderly.toml",
                r#"
                clock_speed = 60.0
                clock_start = "2026-11-26T16:00:00Z"
                [control]
                slot_minutes = 5
                replan_interval_secs = 30
                [[communities]]
                id = "demo"
                rating_kva = 250.0
                power_factor = 0.9
                base_load_kw = 120.0
                chargers = [ { id = "CP001", phases = 1, voltage_v = 220.0, max_current_a = 32.0 },
                             { id = "CP002", phases = 3, rate_unit = "watts" } ]
                [[communities]]
                id = "hourly"
                rating_kva = 100.0
                power_factor = 1.0
                base_load_kw = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
                                13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0]
                max_emergencies = 2
                "#,
            )?;
            let overrides = Overrides {
                config_file: Some("orderly.toml".into()),
                ..Overrides::default()
            };
            let config = Config::load_with_env(&overrides, empty_env()).unwrap();
            assert_eq!(config.clock_speed, 60.0);
            assert_eq!(config.control.slot_minutes, 5);
            assert_eq!(config.control.replan_interval_secs, 30);
            // Unset tunables keep their defaults.
            assert_eq!(config.control.profile_validity_secs, 300);
            let controller = config.control.controller_config();
            assert_eq!(controller.horizon_slots, 288);
            assert_eq!(
                controller.replan_interval,
                jiff::SignedDuration::from_secs(30)
            );
            let [demo, hourly] = &config.communities[..] else {
                panic!("two communities: {:?}", config.communities)
            };
            assert_eq!(
                demo.base_load_kw,
                crate::control::settings::BaseLoad::Flat(120.0)
            );
            assert_eq!(demo.chargers.len(), 2);
            assert_eq!(demo.chargers[1].phases, 3);
            assert_eq!(demo.chargers[1].voltage_v, 220.0);
            assert_eq!(demo.chargers[1].max_current_a, 32.0);
            assert_eq!(
                demo.chargers[1].rate_unit,
                crate::control::settings::RateUnitSetting::Watts
            );
            let crate::control::settings::BaseLoad::Hourly(values) = &hourly.base_load_kw else {
                panic!("hourly base load: {:?}", hourly.base_load_kw)
            };
            assert_eq!(values.len(), 24);
            assert_eq!(hourly.max_emergencies, Some(2));
            // And they validate into store records.
            let record = crate::control::spec::community_record(
                &demo.id,
                &demo.settings(),
                jiff::Timestamp::UNIX_EPOCH,
            )
            .unwrap();
            assert_eq!(record.base_load_kw, vec![120.0; 24]);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERLY_UNKNOWN_CHARGERS", "maybe");
            let err = Config::load_with_env(
                &Overrides::default(),
                Env::prefixed("ORDERLY_").only(&ENV_KEYS),
            )
            .unwrap_err();
            assert!(
                err.to_string().to_lowercase().contains("unknown_chargers"),
                "{err}"
            );
            Ok(())
        });
        let missing = Overrides {
            config_file: Some("/nonexistent/x.toml".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(&missing),
            Err(ConfigError::MissingFile(_))
        ));
    }
}
