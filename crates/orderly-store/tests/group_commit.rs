//! The group-commit writer under concurrency: everything persisted, nothing duplicated.

mod common;

use std::collections::HashSet;

use common::{cp, each_backend, t, tag};
use orderly_store::*;

const NOW: &str = "2026-11-26T12:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_all_persisted_none_duplicated() {
    // Default: the writer on its own thread.
    each_backend(|url| concurrent_writers(url, StoreOptions::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_writers_with_the_writer_as_a_task() {
    let options = || StoreOptions {
        writer_thread: false,
        ..StoreOptions::default()
    };
    each_backend(|url| concurrent_writers(url, options())).await;
}

async fn concurrent_writers(url: String, options: StoreOptions) {
    {
        let store = Store::open_with(&url, options).await.unwrap();
        let now = t(NOW);
        const CHARGERS: usize = 20;
        const SESSIONS: usize = 25;
        for c in 0..CHARGERS {
            store
                .register_charger(
                    NewCharger {
                        id: cp(&format!("CP{c}")),
                        password: None,
                        description: None,
                    },
                    now,
                )
                .await
                .unwrap();
        }
        let before = store.writer_stats();

        // Every session is started twice at the same time (a replay racing the original), then
        // gets meter values (also sent twice) and is stopped.
        let mut tasks = Vec::new();
        for c in 0..CHARGERS {
            for s in 0..SESSIONS {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let charger = cp(&format!("CP{c}"));
                    let started = t(NOW) - jiff::SignedDuration::from_hours(1)
                        + jiff::SignedDuration::from_secs(s as i64);
                    let req = StartTransaction {
                        charger_id: charger.clone(),
                        connector_id: 1,
                        id_tag: tag(&format!("TAG{s}")),
                        meter_start_wh: (s * 1000) as i64,
                        timestamp: started,
                        reservation_id: None,
                    };
                    let (a, b) = tokio::join!(
                        store.start_transaction(req.clone(), now),
                        store.start_transaction(req, now)
                    );
                    let (a, b) = (a.unwrap(), b.unwrap());
                    assert_eq!(a.transaction_id, b.transaction_id);
                    assert!(
                        a.replayed != b.replayed,
                        "exactly one of the two is the replay"
                    );
                    let values = MeterValuesReport {
                        charger_id: charger.clone(),
                        connector_id: 1,
                        transaction_id: Some(a.transaction_id),
                        meter_values: vec![MeterValue {
                            timestamp: started + jiff::SignedDuration::from_mins(1),
                            sampled_values: vec![SampledValue {
                                value: format!("{}", s * 1000 + 500),
                                ..SampledValue::default()
                            }],
                        }],
                    };
                    let (m1, m2) = tokio::join!(
                        store.record_meter_values(values.clone(), now),
                        store.record_meter_values(values, now)
                    );
                    assert_eq!(m1.unwrap().stored + m2.unwrap().stored, 1);
                    let stop = store
                        .stop_transaction(
                            StopTransaction {
                                charger_id: charger,
                                transaction_id: a.transaction_id,
                                id_tag: None,
                                meter_stop_wh: (s * 1000 + 700) as i64,
                                timestamp: started + jiff::SignedDuration::from_mins(2),
                                reason: None,
                                transaction_data: vec![],
                            },
                            now,
                        )
                        .await
                        .unwrap();
                    assert_eq!(stop.energy_wh, Some(700));
                    a.transaction_id
                }));
            }
        }
        let mut ids = HashSet::new();
        for task in tasks {
            assert!(ids.insert(task.await.unwrap()), "two sessions got one id");
        }
        assert_eq!(ids.len(), CHARGERS * SESSIONS);

        let all = store
            .list_transactions(&TransactionFilter {
                limit: Some(10_000),
                ..TransactionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), CHARGERS * SESSIONS, "no duplicate rows");
        assert!(all.iter().all(|tx| tx.energy_wh() == Some(700)));
        for id in ids.iter().take(10) {
            assert_eq!(store.transaction_meter_values(*id).await.unwrap().len(), 1);
        }
        let stats = store.writer_stats();
        let ops = stats.operations - before.operations;
        assert_eq!(
            ops,
            (CHARGERS * SESSIONS * 5) as u64,
            "every write went through the writer"
        );
        store.close().await;
        // After close, writes fail cleanly whichever way the writer runs.
        let err = store.record_seen(&cp("CP0"), now).await.unwrap_err();
        assert!(matches!(err, StoreError::WriterClosed), "{err}");
    }
}

/// With the writer as a task on a single-threaded runtime, every submitter queues its write
/// before the writer runs again, so batching is deterministic here: 201 writes cannot need 201
/// commits.
#[tokio::test(flavor = "current_thread")]
async fn queued_writes_share_commits() {
    each_backend(|url| async move {
        let options = StoreOptions {
            writer_thread: false,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&url, options).await.unwrap();
        let id = cp("CP1");
        store
            .register_charger(
                NewCharger {
                    id: id.clone(),
                    password: None,
                    description: None,
                },
                t(NOW),
            )
            .await
            .unwrap();
        let before = store.writer_stats();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    store
                        .record_seen(&id, t(NOW) + jiff::SignedDuration::from_secs(i))
                        .await
                })
            })
            .collect();
        // A heartbeat from a charger that is not stored, queued among them: only it fails.
        let ghost = {
            let store = store.clone();
            tokio::spawn(async move { store.record_seen(&cp("GHOST"), t(NOW)).await })
        };
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let err = ghost.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err}");
        let after = store.writer_stats();
        assert_eq!(after.operations - before.operations, 201);
        assert!(
            after.batches - before.batches < 201,
            "expected shared commits, got {:?} -> {:?}",
            before,
            after
        );
        let seen = store.get_charger(&id).await.unwrap().unwrap().last_seen_at;
        assert_eq!(seen, Some(t(NOW) + jiff::SignedDuration::from_secs(199)));
        store.close().await;
    })
    .await;
}

/// Two stores on one database (the server and an `orderly charger add` from the shell) write at
/// the same time; both writers' work all lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_both_commit() {
    each_backend(|url| async move {
        let server = Store::open(&url).await.unwrap();
        let cli = Store::open(&url).await.unwrap();
        let now = t(NOW);
        let a = {
            let server = server.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    server
                        .start_transaction(
                            StartTransaction {
                                charger_id: cp("CP1"),
                                connector_id: 1,
                                id_tag: tag("TAG"),
                                meter_start_wh: i,
                                timestamp: t(NOW),
                                reservation_id: None,
                            },
                            now,
                        )
                        .await
                        .unwrap();
                }
            })
        };
        let b = {
            let cli = cli.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    cli.register_charger(
                        NewCharger {
                            id: cp(&format!("CLI{i}")),
                            password: None,
                            description: None,
                        },
                        now,
                    )
                    .await
                    .unwrap();
                }
            })
        };
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(server.list_chargers().await.unwrap().len(), 100);
        let txs = cli
            .list_transactions(&TransactionFilter::default())
            .await
            .unwrap();
        assert_eq!(txs.len(), 100);
        cli.close().await;
        server.close().await;
    })
    .await;
}
