//! `orderly simulate`: replays recorded residential charging sessions (the Norway dataset in
//! `data/norway-residential`) through a charging policy under a shared capacity and a
//! time-of-use tariff, and measures the outcome.
//!
//! Module layout:
//! - [`data`]: typed readers for the dataset's CSV files (errors name file, line and field);
//! - [`tariff`]: time-of-use bands (`data/tariffs/*.json`) → price per slot;
//! - [`window`]: the window and slot rules of issue 3 → a [`window::Scenario`];
//! - [`v2g`]: which cars get V2G parameters under `--v2g-share`, and the assumptions;
//! - [`plant`]: the simulated cars, clipping requests to what each car can take;
//! - [`baseline`]: the `uncontrolled`, `edf` and `llf` policies;
//! - [`engine`]: the `offline-optimal` and `online` policies, driving `orderly-schedule`;
//! - [`metrics`]: the JSON metrics;
//! - this file: the command-line arguments ([`SimulateArgs`]) and [`run`].

pub mod baseline;
pub mod data;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod plant;
pub mod tariff;
pub mod v2g;
pub mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

pub use error::{DataError, SimError};
pub use metrics::Metrics;
use plant::Plant;
pub use window::{Scenario, WindowSpec};

/// Policies `orderly simulate` can replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Full rate from arrival until done, ignoring the capacity.
    Uncontrolled,
    /// Earliest deadline first within the capacity (acnportal's EDF).
    Edf,
    /// Least laxity first within the capacity (acnportal's LLF).
    Llf,
    /// The engine's online planner, re-planning at every slot with a car plugged in (as the
    /// server's controller does), with a forecast from history.
    Online,
    /// The engine's offline optimum with every session known in advance (the yardstick).
    OfflineOptimal,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Uncontrolled,
        Policy::Edf,
        Policy::Llf,
        Policy::Online,
        Policy::OfflineOptimal,
    ];

    /// The name used on the command line and in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Uncontrolled => "uncontrolled",
            Policy::Edf => "edf",
            Policy::Llf => "llf",
            Policy::Online => "online",
            Policy::OfflineOptimal => "offline-optimal",
        }
    }
}

/// Arguments of `orderly simulate`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimulateArgs {
    /// Sessions CSV (Dataset 1 format) [default: data/norway-residential/sessions.csv]
    #[arg(long)]
    pub sessions: Option<PathBuf>,
    /// Users CSV (Dataset 2 format) [default: data/norway-residential/users.csv]
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Per-session state of charge CSV (Dataset 3), read for V2G cars
    /// [default: data/norway-residential/sessions_soc.csv]
    #[arg(long)]
    pub soc: Option<PathBuf>,
    /// Location (community) to replay.
    #[arg(long, default_value = "OSL_S")]
    pub location: String,
    /// First day of the window (YYYY-MM-DD, local time).
    #[arg(long, default_value = "2019-11-04")]
    pub from: Date,
    /// Length of the window in days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Slot length in minutes (5 or 15).
    #[arg(long, default_value_t = 5, value_parser = parse_slot_minutes)]
    pub slot_minutes: u32,
    /// Capacity as a fraction of the sum of the ratings of the users with a session in the
    /// window.
    #[arg(long, default_value_t = 0.25)]
    pub capacity_fraction: f64,
    /// Tariff JSON [default: data/tariffs/beijing-ev-tou-2016.json]
    #[arg(long)]
    pub tariff: Option<PathBuf>,
    /// Share of cars (0–1) given V2G parameters.
    #[arg(long, default_value_t = 0.0)]
    pub v2g_share: f64,
    /// Policy to replay.
    #[arg(long, value_enum, default_value = "online")]
    pub policy: Policy,
    /// Write the delivered power per session and slot as CSV (`session_id,slot_start,kw`).
    #[arg(long)]
    pub plan_out: Option<PathBuf>,
}

fn parse_slot_minutes(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(m @ (5 | 15)) => Ok(m),
        _ => Err(format!("{text:?} is not 5 or 15")),
    }
}

/// A default data file: `data/REL` under the current directory if it is there, else under
/// the repository this crate was built from.
pub fn default_data_file(rel: &str) -> PathBuf {
    let local = Path::new("data").join(rel);
    if local.exists() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data")
            .join(rel)
    }
}

/// Parsed inputs, reusable across policies and capacity fractions.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub sessions_file: PathBuf,
    pub sessions: Vec<data::SessionRow>,
    pub users: HashMap<String, data::UserRow>,
    pub tariff: tariff::Tariff,
    pub soc_file: PathBuf,
}

impl Inputs {
    /// Reads the sessions, users and tariff named by the arguments (or the defaults).
    pub fn read(args: &SimulateArgs) -> Result<Self, SimError> {
        let sessions_file = args
            .sessions
            .clone()
            .unwrap_or_else(|| default_data_file("norway-residential/sessions.csv"));
        let users_file = args
            .users
            .clone()
            .unwrap_or_else(|| default_data_file("norway-residential/users.csv"));
        let tariff_file = args
            .tariff
            .clone()
            .unwrap_or_else(|| default_data_file("tariffs/beijing-ev-tou-2016.json"));
        let soc_file = args
            .soc
            .clone()
            .unwrap_or_else(|| default_data_file("norway-residential/sessions_soc.csv"));
        Ok(Self {
            sessions: data::read_sessions(&sessions_file)?,
            users: data::read_users(&users_file)?,
            tariff: tariff::Tariff::read(&tariff_file)?,
            sessions_file,
            soc_file,
        })
    }

    /// Applies the window rules.
    pub fn scenario(&self, spec: WindowSpec) -> Result<Scenario, SimError> {
        Scenario::build(
            spec,
            &self.sessions_file,
            &self.sessions,
            &self.users,
            &self.tariff,
        )
    }

    /// V2G parameters for `share` of the scenario's cars (reads the SoC file only if needed).
    pub fn v2g(
        &self,
        scenario: &Scenario,
        share: f64,
    ) -> Result<Vec<Option<orderly_schedule::V2g>>, SimError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(SimError::Argument {
                arg: "v2g-share",
                reason: format!("{share} is not in [0, 1]"),
            });
        }
        let soc = if share > 0.0 {
            data::read_soc_start(&self.soc_file)?
        } else {
            HashMap::new()
        };
        Ok(v2g::assign(scenario, share, &soc))
    }
}

impl SimulateArgs {
    /// The window these arguments describe.
    pub fn window(&self) -> WindowSpec {
        WindowSpec {
            location: self.location.clone(),
            from: self.from,
            days: self.days,
            slot_minutes: self.slot_minutes,
            capacity_fraction: self.capacity_fraction,
        }
    }
}

/// Replays one policy on a scenario; returns the metrics and the plant (what was delivered).
pub fn simulate<'a>(
    scenario: &'a Scenario,
    v2g: Vec<Option<orderly_schedule::V2g>>,
    policy: Policy,
) -> Result<(Metrics, Plant<'a>), SimError> {
    let mut plant = Plant::new(scenario, v2g);
    let replan_ms = match policy {
        Policy::Uncontrolled => baseline::uncontrolled(&mut plant),
        Policy::Edf => baseline::sorted(&mut plant, baseline::Order::EarliestDeadline),
        Policy::Llf => baseline::sorted(&mut plant, baseline::Order::LeastLaxity),
        Policy::Online => engine::online(&mut plant)?,
        Policy::OfflineOptimal => engine::offline(&mut plant)?,
    };
    Ok((Metrics::measure(policy.name(), &plant, &replan_ms), plant))
}

/// `orderly simulate`: reads the inputs, replays the policy, writes `--plan-out` if asked.
pub fn run(args: &SimulateArgs) -> Result<Metrics, SimError> {
    let inputs = Inputs::read(args)?;
    let scenario = inputs.scenario(args.window())?;
    let v2g = inputs.v2g(&scenario, args.v2g_share)?;
    let (metrics, plant) = simulate(&scenario, v2g, args.policy)?;
    if let Some(file) = &args.plan_out {
        write_plan(file, &plant).map_err(|source| SimError::PlanOut {
            file: file.clone(),
            source,
        })?;
    }
    Ok(metrics)
}

/// Writes the delivered power of every session in every slot of its stay.
pub fn write_plan(file: &Path, plant: &Plant<'_>) -> std::io::Result<()> {
    let mut out = csv::Writer::from_path(file)?;
    out.write_record(["session_id", "slot_start", "kw"])?;
    for (session, powers) in plant.scenario.sessions.iter().zip(&plant.delivered_kw) {
        for (k, kw) in powers.iter().enumerate() {
            let start = plant.scenario.slot_start(session.arrival_slot + k);
            out.write_record([
                session.session_id.as_str(),
                &start.to_string(),
                &format!("{kw:.6}"),
            ])?;
        }
    }
    out.flush()
}
