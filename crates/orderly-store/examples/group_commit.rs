//! Group-commit throughput and latency, on SQLite and (if a URL is given) PostgreSQL.
//!
//!     cargo run --release -p orderly-store --example group_commit [-- CHARGERS SECONDS [sqlite|postgres]]
//!
//! Set ORDERLY_TEST_POSTGRES_URL (an admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres)
//! to also run on a fresh PostgreSQL database, dropped afterwards.
//!
//! Two loads:
//! - open loop, the gateway benchmark's shape: CHARGERS (default 19,000) chargers each write one
//!   message every 10 s (alternately a Heartbeat → last-seen update, and a MeterValues with two
//!   samples), phases spread evenly, for SECONDS (default 20); each write is committed before
//!   its latency is taken.
//! - closed loop: 256 writers submitting MeterValues back to back, to find the ceiling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use orderly_core::ChargePointId;
use orderly_store::*;
use sqlx::{Connection, Executor};
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chargers: usize = args.first().map_or(Ok(19_000), |a| a.parse())?;
    let seconds: u64 = args.get(1).map_or(Ok(20), |a| a.parse())?;
    let only = args.get(2).map(String::as_str);

    let busy_tasks: usize = std::env::var("ORDERLY_BENCH_BUSY_TASKS")
        .ok()
        .map_or(Ok(0), |v| v.parse())?;
    let busy: Vec<_> = (0..busy_tasks)
        .map(|_| {
            tokio::spawn(async {
                loop {
                    let t0 = Instant::now();
                    while t0.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    if busy_tasks > 0 {
        println!("({busy_tasks} busy tasks on the runtime)");
    }
    let task = StoreOptions {
        writer_thread: false,
        ..StoreOptions::default()
    };

    let dir = tempfile::tempdir()?;
    if only != Some("postgres") {
        let url = sqlite_url(&dir.path().join("bench.db"));
        println!("== SQLite (WAL, synchronous=FULL, writer thread: the defaults) ==");
        run(&url, StoreOptions::default(), chargers, seconds).await?;
        let url = sqlite_url(&dir.path().join("bench-task.db"));
        println!("== SQLite (synchronous=FULL, writer as a task on the caller's runtime) ==");
        run(&url, task.clone(), chargers, seconds).await?;
        let url = sqlite_url(&dir.path().join("bench-normal.db"));
        println!("== SQLite (WAL, synchronous=NORMAL: not power-loss safe, for comparison) ==");
        let normal = StoreOptions {
            sqlite_synchronous_full: false,
            ..StoreOptions::default()
        };
        run(&url, normal, chargers, seconds).await?;
    }

    match std::env::var("ORDERLY_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.trim().is_empty() && only != Some("sqlite") => {
            sqlx::any::install_default_drivers();
            let name = format!("orderly_bench_{:08x}", rand::random::<u32>());
            let mut conn = sqlx::AnyConnection::connect(&admin).await?;
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await?;
            let base = admin.split('?').next().unwrap_or(&admin);
            let host_end = base[base.find("://").map_or(0, |i| i + 3)..]
                .find('/')
                .map_or(base.len(), |i| i + base.find("://").map_or(0, |i| i + 3));
            let url = format!("{}/{name}", &base[..host_end]);
            println!("== PostgreSQL (writer thread: the default) ==");
            let mut result = run(&url, StoreOptions::default(), chargers, seconds).await;
            if result.is_ok() {
                // Same database again: chargers exist, so re-register under fresh names.
                let mut conn2 = sqlx::AnyConnection::connect(&url).await?;
                conn2.execute("DELETE FROM meter_values").await?;
                conn2.execute("DELETE FROM chargers").await?;
                conn2.close().await?;
                println!("== PostgreSQL (writer as a task on the caller's runtime) ==");
                result = run(&url, task.clone(), chargers, seconds).await;
            }
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await?;
            result?;
        }
        _ => println!("(PostgreSQL skipped: ORDERLY_TEST_POSTGRES_URL is not set)"),
    }
    for b in busy {
        b.abort();
    }
    Ok(())
}

async fn run(
    url: &str,
    options: StoreOptions,
    chargers: usize,
    seconds: u64,
) -> Result<(), StoreError> {
    let store = Store::open_with(url, options).await?;
    let ids: Vec<ChargePointId> = (0..chargers)
        .map(|i| ChargePointId::parse(format!("CP{i:05}")).expect("valid id"))
        .collect();

    // Registration, concurrently: also a first taste of batching.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for id in &ids {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            store
                .register_charger(
                    NewCharger {
                        id,
                        password: None,
                        description: None,
                    },
                    Timestamp::now(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    println!(
        "registered {chargers} chargers in {:.2} s",
        t0.elapsed().as_secs_f64()
    );

    // Open loop.
    let before = store.writer_stats();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        chargers * seconds as usize / 10,
    )));
    let period = Duration::from_secs(10);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (store, id, latencies) = (store.clone(), id.clone(), latencies.clone());
        let offset = period.mul_f64(i as f64 / chargers as f64);
        tasks.push(tokio::spawn(async move {
            let mut next = start + offset;
            let mut n: u64 = 0;
            while next < end {
                tokio::time::sleep_until(next).await;
                let sent = Instant::now();
                write_message(&store, &id, n).await?;
                let took = sent.elapsed();
                latencies.lock().await.push(took);
                n += 1;
                next += period;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    let elapsed = (tokio::time::Instant::now() - start).as_secs_f64();
    let after = store.writer_stats();
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    report(
        &format!("open loop, {chargers} chargers x 1 msg/10 s"),
        &mut lat,
        elapsed,
        before,
        after,
    );

    // Closed loop.
    let before = store.writer_stats();
    let writers = 256;
    let per_writer = 200;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(writers * per_writer)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, id, latencies) = (store.clone(), ids[w % ids.len()].clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..per_writer {
                let sent = Instant::now();
                // Odd n: MeterValues (even ones would be heartbeats in write_message).
                write_message(&store, &id, 1_000_000 + 2 * n as u64 + 1).await?;
                latencies.lock().await.push(sent.elapsed());
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = store.writer_stats();
    let mut lat = std::mem::take(&mut *latencies.lock().await);
    report(
        &format!("closed loop, {writers} writers back to back (MeterValues)"),
        &mut lat,
        elapsed,
        before,
        after,
    );
    store.close().await;
    Ok(())
}

/// Message `n` of a charger: even → Heartbeat (last seen), odd → MeterValues with two samples.
async fn write_message(store: &Store, id: &ChargePointId, n: u64) -> Result<(), StoreError> {
    let now = Timestamp::now();
    if n.is_multiple_of(2) {
        return store.record_seen(id, now).await;
    }
    // Distinct timestamps per message so no sample is a duplicate.
    let at = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(1_700_000_000 + n as i64);
    store
        .record_meter_values(
            MeterValuesReport {
                charger_id: id.clone(),
                connector_id: 1,
                transaction_id: None,
                meter_values: vec![MeterValue {
                    timestamp: at,
                    sampled_values: vec![
                        SampledValue {
                            value: format!("{}", n * 10),
                            ..SampledValue::default()
                        },
                        SampledValue {
                            value: "7400".into(),
                            measurand: Some("Power.Active.Import".into()),
                            unit: Some("W".into()),
                            ..SampledValue::default()
                        },
                    ],
                }],
            },
            now,
        )
        .await
        .map(|_| ())
}

fn report(label: &str, lat: &mut [Duration], secs: f64, before: WriterStats, after: WriterStats) {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let ops = after.operations - before.operations;
    let batches = (after.batches - before.batches).max(1);
    let busy = (after.busy_micros - before.busy_micros) as f64;
    println!(
        "{label}: {} writes in {secs:.1} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         {batches} commits, {:.1} writes/commit, mean commit {:.2} ms, writer busy {:.0}%, {} fallbacks",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        ops as f64 / batches as f64,
        busy / 1e3 / batches as f64,
        busy / 1e4 / secs,
        after.fallbacks - before.fallbacks,
    );
}
