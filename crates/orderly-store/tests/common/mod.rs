//! Test harness: runs a test body against a fresh SQLite file and, when
//! `ORDERLY_TEST_POSTGRES_URL` is set, against a freshly created PostgreSQL database that is
//! dropped afterwards (also when the body panics).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::future::Future;
use std::io::Write;
use std::sync::Once;

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use sqlx::{Connection, Executor};

pub const PG_ENV: &str = "ORDERLY_TEST_POSTGRES_URL";

/// Runs `body(url)` once per available backend, each with an empty database.
pub async fn each_backend<F, Fut>(body: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    body(orderly_store::sqlite_url(&dir.path().join("orderly.db"))).await;
    match std::env::var(PG_ENV) {
        Ok(admin) if !admin.trim().is_empty() => {
            let db = PgDatabase::create(&admin).await;
            body(db.url.clone()).await;
            db.drop_now().await;
        }
        _ => {
            static SKIP: Once = Once::new();
            SKIP.call_once(|| {
                // Written to the real stderr (not through eprintln!, which the test harness
                // captures) so the skip is visible in every `cargo test` run.
                let _ = writeln!(
                    std::io::stderr(),
                    "orderly-store: PostgreSQL variants skipped ({PG_ENV} is not set)"
                );
            });
        }
    }
}

/// A throw-away PostgreSQL database.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
    dropped: bool,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        sqlx::any::install_default_drivers();
        let name = format!("orderly_test_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::AnyConnection::connect(admin_url)
            .await
            .expect("connect to ORDERLY_TEST_POSTGRES_URL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        conn.close().await.ok();
        Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
            dropped: false,
        }
    }

    pub async fn drop_now(mut self) {
        drop_database(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Reached only when the test body panicked: clean up on a private runtime, since Drop
        // cannot await and the test's runtime is unwinding.
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(drop_database(&admin, &name));
        })
        .join();
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = sqlx::AnyConnection::connect(admin_url).await {
        // FORCE ends connections a failed test left open.
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        conn.close().await.ok();
    }
}

/// `admin_url` with its database path replaced by `name` (query string kept).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| i + host_start);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

pub fn t(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

pub fn cp(s: &str) -> ChargePointId {
    ChargePointId::parse(s).expect("test charger id")
}

pub fn tag(s: &str) -> IdTag {
    IdTag::parse(s).expect("test id tag")
}

#[test]
fn database_url_rewriting() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h:1?sslmode=disable", "x"),
        "postgres://u:p@h:1/x?sslmode=disable"
    );
}
