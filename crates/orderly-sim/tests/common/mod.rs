//! Shared helpers for the integration tests: small hand-made datasets in a temp dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use orderly_sim::{Policy, SimulateArgs};
use tempfile::TempDir;

pub const SESSIONS_HEADER: &str = "\"location\";\"user_id\";\"session_id\";\"plugin_time\";\"plugout_time\";\"connection_time\";\"energy_session\"";
pub const USERS_HEADER: &str = "\"user_id\";\"charging_power\";\"battery_capacity\"";

/// One sessions row of location `L` in the dataset's format (`NA` passes through).
pub fn session(user: &str, id: &str, plugin: &str, plugout: &str, energy: &str) -> String {
    session_at("L", user, id, plugin, plugout, energy)
}

pub fn session_at(
    location: &str,
    user: &str,
    id: &str,
    plugin: &str,
    plugout: &str,
    energy: &str,
) -> String {
    format!("\"{location}\";\"{user}\";\"{id}\";{plugin};{plugout};NA;{energy}")
}

/// A temp dir holding `sessions.csv` and `users.csv`.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new(sessions: &[String], users: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = vec![SESSIONS_HEADER.to_owned()];
        s.extend(sessions.iter().cloned());
        std::fs::write(dir.path().join("sessions.csv"), s.join("\n") + "\n").unwrap();
        let mut u = vec![USERS_HEADER.to_owned()];
        u.extend(users.iter().map(|l| (*l).to_owned()));
        std::fs::write(dir.path().join("users.csv"), u.join("\n") + "\n").unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Arguments for location `L` from `from`, `days` days, using the repo's tariff.
    pub fn args(&self, from: &str, days: u32, slot_minutes: u32, fraction: f64) -> SimulateArgs {
        SimulateArgs {
            sessions: Some(self.path("sessions.csv")),
            users: Some(self.path("users.csv")),
            soc: Some(self.path("sessions_soc.csv")),
            location: "L".into(),
            from: from.parse().unwrap(),
            days,
            slot_minutes,
            capacity_fraction: fraction,
            tariff: Some(repo_file("tariffs/beijing-ev-tou-2016.json")),
            v2g_share: 0.0,
            policy: Policy::Edf,
            plan_out: None,
        }
    }
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel)
}

/// Arguments for the real dataset.
pub fn real_args(location: &str, from: &str, days: u32, fraction: f64) -> SimulateArgs {
    SimulateArgs {
        sessions: Some(repo_file("norway-residential/sessions.csv")),
        users: Some(repo_file("norway-residential/users.csv")),
        soc: Some(repo_file("norway-residential/sessions_soc.csv")),
        location: location.into(),
        from: from.parse().unwrap(),
        days,
        slot_minutes: 5,
        capacity_fraction: fraction,
        tariff: Some(repo_file("tariffs/beijing-ev-tou-2016.json")),
        v2g_share: 0.0,
        policy: Policy::OfflineOptimal,
        plan_out: None,
    }
}
