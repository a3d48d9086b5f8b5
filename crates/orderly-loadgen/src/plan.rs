//! The validated run configuration. [`Settings`] is what the operator asks for; [`Plan::new`]
//! checks it once (loopback only, patterns parse, enough ephemeral ports per source address) so
//! the connection tasks never meet a configuration error.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use thiserror::Error;

use crate::pattern::{IdPattern, PatternError};

/// Connections placed on one source address when the operator does not choose: well under the
/// ~28k ephemeral ports Linux offers per source address by default, so a run never runs dry
/// even with sockets of a previous run still in TIME_WAIT.
pub const DEFAULT_CONNECTIONS_PER_SOURCE: usize = 10_000;

/// What the operator asks for (the CLI maps onto this one to one).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ws://HOST:PORT/PATH/`; the charge point id is appended.
    pub url: String,
    pub connections: usize,
    pub id_pattern: String,
    /// Index given to the first connection's pattern (`LG%05d` with 1 → `LG00001`).
    pub first_id: u64,
    /// HTTP Basic password pattern (may contain one `%d`, rendered with the same index as the id).
    pub password: Option<String>,
    /// New connections per second during the ramp.
    pub rate: f64,
    /// Time between two messages of one connection after its boot.
    pub interval: Duration,
    /// Pause after the ramp before the steady window opens (connections keep sending meanwhile).
    pub warmup: Duration,
    /// Length of the steady window that the figures are measured over.
    pub duration: Duration,
    /// Longest wait for every connection to finish booting; `None` = ramp time + 60 s.
    pub ramp_timeout: Option<Duration>,
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
    /// Number of source addresses, round-robin from `source_base`; `None` = one per 10,000.
    pub source_addrs: Option<usize>,
    pub source_base: Ipv4Addr,
    /// Seed of the per-connection schedule offsets (same seed, same schedule).
    pub seed: u64,
    pub server_pid: Option<u32>,
    /// WebSocket read buffer per connection (tungstenite allocates it eagerly: 128 KiB by default).
    pub read_buffer: usize,
}

impl Settings {
    /// Defaults of the CLI, for `url` and `connections`.
    pub fn new(url: impl Into<String>, connections: usize) -> Self {
        Self {
            url: url.into(),
            connections,
            id_pattern: "LG%05d".into(),
            first_id: 1,
            password: None,
            rate: 500.0,
            interval: Duration::from_secs(10),
            warmup: Duration::from_secs(10),
            duration: Duration::from_secs(60),
            ramp_timeout: None,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            source_addrs: None,
            source_base: Ipv4Addr::new(127, 0, 0, 1),
            seed: 1,
            server_pid: None,
            read_buffer: 4096,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error(
        "target URL {0:?} must look like ws://127.0.0.1:PORT/ocpp/ (plain ws, IPv4 literal or localhost, explicit port)"
    )]
    BadUrl(String),
    #[error("target {0} is not a loopback address: this generator only loads the local machine")]
    NotLoopback(Ipv4Addr),
    #[error("source address range starting at {base} with {count} addresses leaves 127.0.0.0/8")]
    SourcesNotLoopback { base: Ipv4Addr, count: usize },
    #[error(
        "{per_source} connections per source address exceed the {ports} ephemeral ports; use more --source-addrs"
    )]
    NotEnoughPorts { per_source: usize, ports: usize },
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Settings,
    pub target: SocketAddrV4,
    /// The URL up to and including the last `/`.
    pub url_base: String,
    pub ids: IdPattern,
    pub password: Option<IdPattern>,
    pub sources: Vec<Ipv4Addr>,
    pub ramp_timeout: Duration,
}

impl Plan {
    /// Checks `settings`; `ephemeral_ports` is the size of the local port range (see
    /// [`crate::sys::ephemeral_port_count`]).
    pub fn new(settings: Settings, ephemeral_ports: usize) -> Result<Self, PlanError> {
        if settings.connections == 0 {
            return Err(PlanError::NotPositive("connections"));
        }
        if !(settings.rate > 0.0 && settings.rate.is_finite()) {
            return Err(PlanError::NotPositive("rate"));
        }
        if settings.interval.is_zero() {
            return Err(PlanError::NotPositive("interval"));
        }
        let (target, url_base) = parse_target(&settings.url)?;
        let ids = IdPattern::parse(&settings.id_pattern)?;
        let password = settings
            .password
            .as_deref()
            .map(IdPattern::parse)
            .transpose()?;
        let count = settings.source_addrs.unwrap_or_else(|| {
            settings
                .connections
                .div_ceil(DEFAULT_CONNECTIONS_PER_SOURCE)
        });
        if count == 0 {
            return Err(PlanError::NotPositive("source-addrs"));
        }
        let sources = source_range(settings.source_base, count)?;
        let per_source = settings.connections.div_ceil(count);
        if per_source > ephemeral_ports {
            return Err(PlanError::NotEnoughPorts {
                per_source,
                ports: ephemeral_ports,
            });
        }
        let ramp = Duration::from_secs_f64(settings.connections as f64 / settings.rate);
        let ramp_timeout = settings
            .ramp_timeout
            .unwrap_or(ramp + Duration::from_secs(60));
        Ok(Self {
            settings,
            target,
            url_base,
            ids,
            password,
            sources,
            ramp_timeout,
        })
    }

    /// Source address of connection `index` (round-robin, so every address carries the same share).
    pub fn source_for(&self, index: usize) -> Ipv4Addr {
        self.sources[index % self.sources.len()]
    }

    /// Charge point id of connection `index`.
    pub fn id_for(&self, index: usize) -> String {
        self.ids.format(self.settings.first_id + index as u64)
    }

    /// Basic-auth password of connection `index`, if any.
    pub fn password_for(&self, index: usize) -> Option<String> {
        self.password
            .as_ref()
            .map(|p| p.format(self.settings.first_id + index as u64))
    }

    /// Delay between a connection's boot and its first scheduled message, in `[0, interval)`.
    /// Deterministic (seeded), so two runs spread their load the same way and connections booted
    /// in the same millisecond do not fire in lockstep.
    pub fn offset_for(&self, index: usize) -> Duration {
        let interval_us = self.settings.interval.as_micros().max(1) as u64;
        let r = splitmix64(self.settings.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Duration::from_micros(r % interval_us)
    }
}

/// SplitMix64 finaliser: a fixed, well-mixed function of the input (only used to spread offsets).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn parse_target(url: &str) -> Result<(SocketAddrV4, String), PlanError> {
    let bad = || PlanError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("ws://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>().map_err(|_| bad())?
    };
    if !ip.is_loopback() {
        return Err(PlanError::NotLoopback(ip));
    }
    let mut url_base = format!("ws://{authority}{path}");
    if !url_base.ends_with('/') {
        url_base.push('/');
    }
    Ok((SocketAddrV4::new(ip, port), url_base))
}

fn source_range(base: Ipv4Addr, count: usize) -> Result<Vec<Ipv4Addr>, PlanError> {
    let first = u32::from(base);
    (0..count)
        .map(|k| {
            u32::try_from(k)
                .ok()
                .and_then(|k| first.checked_add(k))
                .map(Ipv4Addr::from)
                .filter(|ip| ip.is_loopback() && *ip != Ipv4Addr::new(127, 255, 255, 255))
                .ok_or(PlanError::SourcesNotLoopback { base, count })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(settings: Settings) -> Plan {
        Plan::new(settings, 28_000).unwrap()
    }

    #[test]
    fn url_gets_trailing_slash_and_loopback_target() {
        let p = plan(Settings::new("ws://127.0.0.1:8180/ocpp", 10));
        assert_eq!(p.url_base, "ws://127.0.0.1:8180/ocpp/");
        assert_eq!(p.target, "127.0.0.1:8180".parse().unwrap());
        let p = plan(Settings::new("ws://localhost:9000/", 10));
        assert_eq!(p.target, "127.0.0.1:9000".parse().unwrap());
    }

    #[test]
    fn refuses_non_loopback_and_malformed_targets() {
        assert!(matches!(
            Plan::new(Settings::new("ws://10.0.0.1:80/ocpp/", 1), 28_000),
            Err(PlanError::NotLoopback(_))
        ));
        for url in [
            "http://127.0.0.1:80/",
            "ws://127.0.0.1/ocpp/",
            "ws://example.org:80/",
            "wss://127.0.0.1:443/",
        ] {
            assert!(
                matches!(
                    Plan::new(Settings::new(url, 1), 28_000),
                    Err(PlanError::BadUrl(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn default_sources_one_per_ten_thousand_round_robin() {
        let p = plan(Settings::new("ws://127.0.0.1:1/", 19_000));
        assert_eq!(
            p.sources,
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)]
        );
        assert_eq!(p.source_for(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(p.source_for(1), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(p.source_for(18_999), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            plan(Settings::new("ws://127.0.0.1:1/", 10)).sources.len(),
            1
        );
    }

    #[test]
    fn refuses_too_many_connections_per_source() {
        let mut s = Settings::new("ws://127.0.0.1:1/", 19_000);
        s.source_addrs = Some(1);
        assert!(matches!(
            Plan::new(s, 10_000),
            Err(PlanError::NotEnoughPorts {
                per_source: 19_000,
                ports: 10_000
            })
        ));
    }

    #[test]
    fn refuses_sources_leaving_loopback() {
        let mut s = Settings::new("ws://127.0.0.1:1/", 10);
        s.source_base = Ipv4Addr::new(127, 255, 255, 250);
        s.source_addrs = Some(10);
        assert!(matches!(
            Plan::new(s, 28_000),
            Err(PlanError::SourcesNotLoopback { .. })
        ));
    }

    #[test]
    fn ids_and_passwords_follow_the_patterns() {
        let mut s = Settings::new("ws://127.0.0.1:1/", 10);
        s.password = Some("pw-%d".into());
        let p = plan(s);
        assert_eq!(p.id_for(0), "LG00001");
        assert_eq!(p.id_for(9), "LG00010");
        assert_eq!(p.password_for(9).as_deref(), Some("pw-10"));
    }

    #[test]
    fn offsets_are_deterministic_within_the_interval_and_spread() {
        let p = plan(Settings::new("ws://127.0.0.1:1/", 1000));
        let q = plan(Settings::new("ws://127.0.0.1:1/", 1000));
        let offsets: Vec<_> = (0..1000).map(|i| p.offset_for(i)).collect();
        assert_eq!(
            offsets,
            (0..1000).map(|i| q.offset_for(i)).collect::<Vec<_>>()
        );
        assert!(offsets.iter().all(|o| *o < Duration::from_secs(10)));
        // Ten one-second buckets each get a fair share (expected 100; a broken mix gives 0 or 1000).
        let mut buckets = [0u32; 10];
        for o in &offsets {
            buckets[o.as_secs() as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (50..=150).contains(b)),
            "{buckets:?}"
        );
        let mut other = Settings::new("ws://127.0.0.1:1/", 1000);
        other.seed = 2;
        let r = plan(other);
        assert_ne!(
            offsets,
            (0..1000).map(|i| r.offset_for(i)).collect::<Vec<_>>()
        );
    }
}
