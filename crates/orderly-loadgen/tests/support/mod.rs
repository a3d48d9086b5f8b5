//! The real `orderly serve` process for the virtual charge point tests: a fresh data directory,
//! an accelerated protocol clock, the API reached with the crate's own minimal HTTP client.
//!
//! The binary is `$ORDERLY_BIN`, else `${CARGO_TARGET_DIR:-target}/debug/orderly` of this
//! workspace (build it first: `cargo build -p orderly-server`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use orderly_loadgen::http;
use orderly_loadgen::virtual_cp::SharedClock;

/// Upper bound on any single wait: a safety net against hanging, never a measurement.
pub const WAIT: Duration = Duration::from_secs(60);
pub const TOKEN: &str = "vcp-test-token";

pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ORDERLY_BIN") {
        return bin.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let bin = target.join("debug/orderly");
    assert!(
        bin.is_file(),
        "no orderly binary at {} (run `cargo build -p orderly-server` first, or set ORDERLY_BIN)",
        bin.display()
    );
    bin
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("orderly-vcp-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `orderly serve` process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

pub struct ServerSpec<'a> {
    pub data_dir: &'a std::path::Path,
    /// `127.0.0.1:0` or a fixed address (a restart keeps the chargers' URL).
    pub listen: SocketAddr,
    pub clock_start: Timestamp,
    pub speed: f64,
    /// orderly.toml contents, if any.
    pub config: Option<String>,
}

impl Server {
    pub fn start(spec: &ServerSpec<'_>) -> Server {
        let log = spec
            .data_dir
            .join(format!("server-{}.log", Timestamp::now().as_nanosecond()));
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(spec.listen.to_string())
            .arg("--data-dir")
            .arg(spec.data_dir);
        if let Some(config) = &spec.config {
            let path = spec.data_dir.join("test-orderly.toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("ORDERLY_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ORDERLY_ADMIN_TOKEN", TOKEN)
            .env("ORDERLY_CLOCK_SPEED", spec.speed.to_string())
            .env("ORDERLY_CLOCK_START", spec.clock_start.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start orderly serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Drain stdout for the whole life of the process so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not listen:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Server { child, addr, log }
    }

    pub fn ws_url(&self, id: &str) -> String {
        format!("ws://{}/ocpp/{id}", self.addr)
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> http::Response {
        http::request(
            self.addr,
            method,
            &format!("/api/v1{path}"),
            Some(TOKEN),
            body.as_ref(),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn register(&self, charger: &str, tag: &str) {
        let r = self
            .api("POST", "/chargers", Some(json!({"id": charger})))
            .await;
        assert!(
            r.status == 201 || r.status == 409,
            "register charger: {r:?}"
        );
        let r = self
            .api(
                "POST",
                "/id-tags",
                Some(json!({"id_tag": tag, "status": "Accepted"})),
            )
            .await;
        assert!(r.status == 201 || r.status == 409, "register id tag: {r:?}");
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL: the server is gone at once, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released) for a server that must come back on it.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Protocol time starting at `start` now and running `speed` times faster than real time.
pub fn accelerated_clock(start: Timestamp, speed: f64) -> SharedClock {
    let origin = Instant::now();
    Arc::new(move || {
        let elapsed = origin.elapsed().as_secs_f64() * speed;
        start
            .checked_add(SignedDuration::from_secs_f64(elapsed))
            .unwrap_or(start)
    })
}
