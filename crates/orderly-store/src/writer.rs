//! The group-commit writer.
//!
//! Every write goes through one task. Callers queue an [`Op`] and wait; the task takes the first
//! queued op, then whatever else is already queued (up to `max_batch`), applies them all in ONE
//! database transaction, commits, and only then answers every waiter. So each write is durable
//! before its caller (and the charger behind it) gets an answer, while the commit's fsync is paid
//! once per batch. Under light load a batch is a single op and nothing waits for company; under
//! heavy load the queue fills while a commit is in flight and the next batch is larger.
//!
//! One writer also means SQLite never sees two writers from this process (no SQLITE_BUSY between
//! our own connections), and transaction ids are taken in a single order.
//!
//! If a batch fails as a whole (a database error in any op, or the commit), it is rolled back and
//! each op is retried alone, so one bad op cannot fail its neighbours.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::pool::PoolOptions;
use sqlx::{Any, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;
use crate::ops::{Op, OpResult, Outcome, Touches};
use crate::types::{Backend, WriterStats};

struct Job {
    op: Op,
    done: oneshot::Sender<OpResult>,
}

enum Msg {
    // Boxed: jobs are large and the channel slots are sized by the largest variant.
    Job(Box<Job>),
    /// Apply everything queued so far, then stop and answer.
    Close(oneshot::Sender<()>),
}

struct Db {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    operations: AtomicU64,
    fallbacks: AtomicU64,
    busy_micros: AtomicU64,
}

pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
}

impl Writer {
    pub(crate) fn spawn(
        pool: AnyPool,
        backend: Backend,
        max_batch: usize,
        queue_capacity: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(
            Db { pool, backend },
            rx,
            max_batch.max(1),
            stats.clone(),
        ));
        Self { tx, stats }
    }

    /// Like [`Writer::spawn`], but on a dedicated OS thread with its own current-thread runtime
    /// and its own pool (built from `pool_options` inside that runtime). Returns once the
    /// writer's pool is connected.
    pub(crate) async fn spawn_thread(
        url: String,
        pool_options: PoolOptions<Any>,
        backend: Backend,
        max_batch: usize,
        queue_capacity: usize,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let stats = Arc::new(Stats::default());
        let (ready, connected) = oneshot::channel();
        let thread_stats = stats.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        std::thread::Builder::new()
            .name("orderly-store-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let pool = match pool_options.connect(&url).await {
                        Ok(pool) => pool,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let db = Db {
                        pool: pool.clone(),
                        backend,
                    };
                    run(db, rx, max_batch.max(1), thread_stats).await;
                    pool.close().await;
                });
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        connected.await.map_err(|_| StoreError::WriterClosed)??;
        Ok(Self { tx, stats })
    }

    /// Queues `op` and waits until it is committed (or has failed).
    pub(crate) async fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(Job { op, done })))
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        wait.await.map_err(|_| StoreError::WriterClosed)?
    }

    pub(crate) async fn close(&self) {
        let (ack, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            operations: self.stats.operations.load(Ordering::Relaxed),
            fallbacks: self.stats.fallbacks.load(Ordering::Relaxed),
            busy_micros: self.stats.busy_micros.load(Ordering::Relaxed),
        }
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Msg>, max_batch: usize, stats: Arc<Stats>) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut closing = None;
    loop {
        match rx.recv().await {
            None => break,
            Some(Msg::Job(job)) => batch.push(*job),
            Some(Msg::Close(ack)) => closing = Some(ack),
        }
        while closing.is_none() && batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => batch.push(*job),
                Ok(Msg::Close(ack)) => closing = Some(ack),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            apply(&db, &mut batch, &stats).await;
        }
        if let Some(ack) = closing.take() {
            // Refuse new work, finish what was queued before the close, then report.
            rx.close();
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Job(job) => {
                        batch.push(*job);
                        if batch.len() == max_batch {
                            apply(&db, &mut batch, &stats).await;
                        }
                    }
                    Msg::Close(other) => {
                        let _ = other.send(());
                    }
                }
            }
            if !batch.is_empty() {
                apply(&db, &mut batch, &stats).await;
            }
            let _ = ack.send(());
            break;
        }
    }
}

/// Applies and answers every job in `batch` (leaving it empty).
async fn apply(db: &Db, batch: &mut Vec<Job>, stats: &Stats) {
    let started = std::time::Instant::now();
    apply_untimed(db, batch, stats).await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.busy_micros.fetch_add(micros, Ordering::Relaxed);
}

async fn apply_untimed(db: &Db, batch: &mut Vec<Job>, stats: &Stats) {
    let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
    match in_transaction(db, &ops).await {
        Ok(results) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats
                .operations
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (job, result) in batch.drain(..).zip(results) {
                let _ = job.done.send(result);
            }
        }
        Err(batch_err) => {
            tracing::warn!(error = %batch_err, ops = batch.len(), "batch failed; retrying ops one by one");
            stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            for job in batch.drain(..) {
                let result = match in_transaction(db, &[&job.op]).await {
                    Ok(mut r) => {
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                        stats.operations.fetch_add(1, Ordering::Relaxed);
                        r.pop().unwrap_or(Err(StoreError::WriterClosed))
                    }
                    Err(e) => Err(StoreError::Database(e)),
                };
                let _ = job.done.send(result);
            }
        }
    }
}

async fn in_transaction(db: &Db, ops: &[&Op]) -> Result<Vec<OpResult>, sqlx::Error> {
    let mut conn = db.pool.acquire().await?;
    // SQLite: take the write lock up front. A deferred transaction that reads first and then
    // writes fails at once (SQLITE_BUSY_SNAPSHOT, no busy wait) if another process (the CLI)
    // committed in between; IMMEDIATE waits out the busy timeout instead.
    let begin = match db.backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    let mut tx = conn.begin_with(begin).await?;
    let mut results = Vec::with_capacity(ops.len());
    let mut touches = Touches::default();
    for op in ops {
        results.push(op.apply(&mut tx, &mut touches).await?);
    }
    if !touches.is_empty() {
        let existing = touches.flush(&mut tx).await?;
        for (op, result) in ops.iter().zip(results.iter_mut()) {
            if result.is_ok()
                && let Some(err) = op.unseen_charger(&existing)
            {
                *result = Err(err);
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}
