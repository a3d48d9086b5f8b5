//! Command-line interface of the `orderly` binary (clap derive).
//!
//! Every subcommand that touches storage takes the same [`StorageArgs`], so `orderly charger add`
//! works on exactly the database `orderly serve` uses with the same flags/env/config file.

use crate::config::Overrides;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Orderly: an OCPP 1.6J central system for orderly EV charging in residential communities.
///
/// Configuration is read from a TOML file (`--config`, or DATA_DIR/orderly.toml when present),
/// overridden by ORDERLY_* environment variables (ORDERLY_LISTEN, ORDERLY_DATABASE_URL,
/// ORDERLY_DATA_DIR, ORDERLY_ADMIN_TOKEN, ORDERLY_UNKNOWN_CHARGERS, ORDERLY_HEARTBEAT_INTERVAL,
/// ORDERLY_CALL_TIMEOUT), overridden by command-line flags.
#[derive(Debug, Parser)]
#[command(name = "orderly", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the OCPP 1.6J gateway (ws://HOST:PORT/ocpp/{id}), the HTTP API (/api/v1) and /metrics.
    ///
    /// On stdout it prints `admin token: TOKEN` when it created the bootstrap operator token
    /// (first start without `admin_token` set; only a hash is stored), then `listening on ADDR`
    /// once it is ready. Logs go to stderr (RUST_LOG filters them, default `info`).
    ///
    /// Config file keys (and ORDERLY_* variables): listen, data_dir, database_url, admin_token,
    /// unknown_chargers = "refuse" (default: unknown ids get HTTP 404) | "pending" (connect,
    /// BootNotification answered Pending, listed for an operator to register) | "reject"
    /// (connect, BootNotification answered Rejected), heartbeat_interval (seconds, default 300),
    /// call_timeout (seconds an operator call waits for the charger, default 30).
    Serve(ServeArgs),
    /// Register, list and remove chargers (charge points) in the database.
    #[command(subcommand)]
    Charger(ChargerCommand),
    /// Manage the id tags (RFID cards, app tokens) chargers may authorize.
    #[command(subcommand, name = "id-tag")]
    IdTag(IdTagCommand),
    /// Replay recorded charging sessions through a charging policy and print metrics as JSON.
    Simulate(orderly_sim::SimulateArgs),
    /// Run the server with a simulated community of virtual chargers replaying real sessions at
    /// accelerated time, and print a live summary. Ctrl-C stops it.
    Demo(crate::demo::DemoArgs),
    /// Fill an empty database with a realistic district: 2 districts, 3 communities, parking
    /// bays, chargers, and users of every role. Prints each user's and charger's password once.
    Seed(crate::seed::SeedArgs),
}

/// Where the configuration and the database are; shared by every storage subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// TOML configuration file [default: DATA_DIR/orderly.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the embedded SQLite database [default: ./orderly-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, `sqlite://PATH` or `postgres://…` [default: sqlite://DATA_DIR/orderly.db].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

impl StorageArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            listen: None,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8180; port 0 picks a free port [default: 127.0.0.1:8180].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            ..self.storage.overrides()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ChargerCommand {
    /// Register a charger so it may connect (and set its HTTP Basic password).
    Add {
        /// Charge point id: the last segment of the charger's OCPP URL.
        id: String,
        /// Password the charger sends with HTTP Basic auth (security profile 1); without it the
        /// charger connects without credentials.
        #[arg(long)]
        password: Option<String>,
        /// Free text shown to operators.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Register many chargers at once, ids from a pattern (e.g. for a load test).
    AddBulk {
        /// Id pattern with one printf-style number: %d, %Nd or %0Nd (e.g. LG%05d).
        #[arg(long)]
        pattern: String,
        /// Number rendered into the first id.
        #[arg(long, default_value_t = 1)]
        first: u64,
        /// How many chargers.
        #[arg(long)]
        count: u64,
        /// HTTP Basic password for every charger; may contain the same number directive.
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List registered and pending chargers as JSON lines.
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Remove a charger (it can no longer connect).
    Remove {
        /// Charge point id.
        id: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// OCPP 1.6 authorization status of an id tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum TagStatus {
    Accepted,
    Blocked,
    Expired,
    Invalid,
}

#[derive(Debug, Subcommand)]
pub enum IdTagCommand {
    /// Add or update an id tag.
    Add {
        /// The id tag (1 to 20 printable ASCII characters).
        tag: String,
        /// Authorization status returned to chargers.
        #[arg(long, value_enum, default_value = "Accepted")]
        status: TagStatus,
        /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z); past expiry answers Expired.
        #[arg(long, value_name = "RFC3339")]
        expiry: Option<jiff::Timestamp>,
        /// Parent id tag (group), reported to chargers in idTagInfo.
        #[arg(long, value_name = "TAG")]
        parent: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List id tags as JSON lines.
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "orderly",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let o = args.overrides();
        assert_eq!(o.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(o.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn id_tag_add_parses_status_and_expiry() {
        let cli = Cli::try_parse_from([
            "orderly",
            "id-tag",
            "add",
            "TAG1",
            "--status",
            "Blocked",
            "--expiry",
            "2027-01-01T00:00:00Z",
        ])
        .unwrap();
        let Command::IdTag(IdTagCommand::Add { status, expiry, .. }) = cli.command else {
            panic!("not id-tag add")
        };
        assert_eq!(status, TagStatus::Blocked);
        assert!(expiry.is_some());
        assert!(
            Cli::try_parse_from(["orderly", "id-tag", "add", "T", "--status", "Maybe"]).is_err()
        );
    }
}
