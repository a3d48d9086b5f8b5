//! Persistence for Orderly: one code path (sqlx `Any`) over SQLite (default, a file) and
//! PostgreSQL (`postgres://` URLs), one set of migrations (`migrations/`, embedded, run by
//! [`Store::open`]).
//!
//! Layout:
//! - [`Store`] (this file): opening, and every public operation. Reads go straight to the pool;
//!   writes are queued to the group-commit writer and return once committed.
//! - [`types`]: the records taken and returned (chargers, connectors, id tags, transactions,
//!   meter values, audit entries).
//! - `writer`: the group-commit writer task (many writes, one transaction, one fsync).
//! - `ops`: each write operation and its SQL (idempotent StartTransaction, unknown stops…).
//! - `rows`: row decoding and the id-tag authorization query shared by reads and writes.
//! - `secrets`: argon2 charger passwords, SHA-256 API tokens.
//! - [`users`], [`registry`], [`upkeep`]: people, roles and sessions; the registry, lifecycle and
//!   `registry_events` outbox; insurance, faults and inspections (writes as `ops::Op::Dyn`).
//! - [`notifications`]: the notification outbox the server's dispatcher delivers.
//! - [`waiting`]: the waiting list for public chargers (offers, expiry, served entries).
//! - `dynop`: helpers shared by the modules whose writes are `ops::Op::Dyn`.
//! - [`parking`]: bay occupancy reports, bay states, idle episodes and fees, parking rules.
//! - `credentials`: bounded, cached charger password checks (reconnect storms).
//! - [`error`]: the error type, [`StoreError`].
//!
//! Usage (the server opens one store and clones it into every handler):
//!
//! ```no_run
//! # async fn demo() -> Result<(), orderly_store::StoreError> {
//! use orderly_core::{ChargePointId, IdTag};
//! use orderly_store::{StartTransaction, Store, sqlite_url};
//!
//! let store = Store::open(&sqlite_url("orderly-data/orderly.db".as_ref())).await?;
//! let now = jiff::Timestamp::now();
//! let started = store
//!     .start_transaction(
//!         StartTransaction {
//!             charger_id: ChargePointId::parse("CP1").unwrap(),
//!             connector_id: 1,
//!             id_tag: IdTag::parse("04A2B3C4").unwrap(),
//!             meter_start_wh: 1200,
//!             timestamp: now,
//!             reservation_id: None,
//!         },
//!         now,
//!     )
//!     .await?; // committed: safe to answer StartTransaction.conf now
//! println!("transactionId {}", started.transaction_id);
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! Every charger message recorded here (status, meter values, start, stop, firmware and
//! diagnostics status, boot, heartbeat) also moves the charger's `last_seen_at` forward, in the
//! same commit; there is no need to call [`Store::record_seen`] besides them.
//!
//! Conventions: times are UTC instants ([`jiff::Timestamp`]) stored as BIGINT milliseconds; OCPP
//! enumerations the store need not interpret are kept as the strings received.
//!
//! Durability: every write method returns only after its database transaction has committed.
//! SQLite runs in WAL mode with `synchronous = FULL` (the WAL is fsynced at every commit, so an
//! acknowledged message survives power loss, not only a process crash); the group commit is what
//! makes that affordable. WAL checkpoints run in a background task every second rather than
//! inside a commit, so no write waits for one. Foreign keys are on; writer transactions begin
//! IMMEDIATE and a busy timeout of 5 s covers other processes (the CLI) writing the same file.
//!
//! Ids (transactions, audit entries, status history) come from the `id_sequences` table inside
//! the writing transaction, because the two backends share no auto-increment syntax.

pub mod closed_loop;
mod credentials;
mod dynop;
pub mod error;
pub mod notifications;
mod ops;
pub mod parking;
pub mod registry;
mod rows;
mod secrets;
pub mod sharing;
pub mod types;
pub mod upkeep;
pub mod users;
pub mod waiting;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use orderly_core::{ChargePointId, IdTag};
use sqlx::AnyPool;
use sqlx::pool::PoolOptions;
use sqlx::{Any, AssertSqlSafe, Executor};

pub use closed_loop::{
    ChargerElectrical, CommunityRecord, CompletedTransaction, ComplianceEvent, FinishedSession,
    GridCommandKind, GridCommandRecord, HistoricTransaction, NewGridCommand, WishDefaults,
    WishRecord,
};
pub use error::{Result, StoreError};
pub use notifications::{NewNotification, Notification, NotificationFilter};
pub use parking::{
    BayParkingState, EpisodeChange, EpisodeFilter, IdleEpisode, NewBayState, NewIdleEpisode,
    NewOccupancyEvent, NewParkingRule, OccupancyEvent, ParkingApplied, ParkingChange,
    ParkingRuleRecord,
};
pub use registry::{
    Bay, BayCharger, BayInput, ChargerFacts, ChargerKind, ChargerRegistration, CommunityFacts,
    CommunityRegistry, ConstructionFigures, District, Lifecycle, RegistrationFilter,
    RegistryConnector, RegistryEvent, Tenure, Transfer, TransferDecision, TransferState,
};
pub use sharing::{
    Agreement, Booking, BookingFilter, BookingState, Figures, NewBooking, Offer, Settlement,
    SettlementKind, Terms, Window,
};
pub use types::*;
pub use upkeep::{
    Cover, FaultReport, Finding, Inspection, NewFinding, NewPolicy, Policy, PolicyKind,
};
pub use users::{NewSession, NewUser, Role, Scope, UserRecord, UserUpdate};
pub use waiting::{ChargerPresence, WaitingEntry, WaitingOffer, WaitingState};

use ops::{Op, Outcome};
use rows::ms;
use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Tuning knobs; [`StoreOptions::default`] suits the server.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most write operations committed in one database transaction.
    pub max_batch: usize,
    /// Writes that may wait in the queue before submitters are made to wait (back-pressure).
    pub queue_capacity: usize,
    /// Pool size for reads (plus the writer's connection). `None`: 8 for SQLite, 16 for PostgreSQL.
    pub max_connections: Option<u32>,
    /// SQLite only: fsync the WAL at every commit (`synchronous = FULL`, the default: an
    /// acknowledged write survives power loss) or only at checkpoints (`NORMAL`: survives a
    /// process crash, not an OS crash). Exposed so benchmarks can show what FULL costs.
    pub sqlite_synchronous_full: bool,
    /// Run the group-commit writer on its own OS thread (with its own single-threaded runtime
    /// and connections) instead of as a task on the caller's runtime, so a busy gateway runtime
    /// cannot delay the wake-ups between a batch's statements (default: true; with 40 busy
    /// tasks on the benchmark's runtime it cut SQLite's mean commit from 3.2 to 2.3 ms and p50
    /// latency from 8.1 to 4.8 ms).
    pub writer_thread: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue_capacity: 65_536,
            max_connections: None,
            sqlite_synchronous_full: true,
            writer_thread: true,
        }
    }
}

/// The SQLite URL for a database file at `path` (created if missing).
///
/// Characters that would end the path part of the URL are percent-encoded.
pub fn sqlite_url(path: &Path) -> String {
    let mut out = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("?mode=rwc");
    out
}

/// Handle to the database. Cheap to clone; all clones share one pool and one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    writer: Writer,
    verifier: credentials::Verifier,
    /// Which chargers are connected, once the gateway has said how to tell
    /// ([`Store::set_presence`]); until then every charger counts as connected.
    presence: std::sync::RwLock<waiting::Presence>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH?mode=rwc`, `sqlite:PATH`, or `postgres://…`) with default
    /// options, applies pending migrations and starts the writer. Must run inside a tokio runtime.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit options.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let max = options.max_connections.unwrap_or(match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        });
        let pool = pool_options(backend, &options, max).connect(url).await?;
        MIGRATOR.run(&pool).await?;
        let writer = if options.writer_thread {
            // The writer's own connections belong to the writer's runtime (a PostgreSQL socket
            // is registered with the runtime that opened it).
            Writer::spawn_thread(
                url.to_owned(),
                pool_options(backend, &options, 2),
                backend,
                options.max_batch,
                options.queue_capacity,
            )
            .await?
        } else {
            Writer::spawn(
                pool.clone(),
                backend,
                options.max_batch,
                options.queue_capacity,
            )
        };
        let inner = Arc::new(Inner {
            pool,
            backend,
            writer,
            verifier: credentials::Verifier::new(),
            presence: std::sync::RwLock::default(),
        });
        if backend == Backend::Sqlite {
            tokio::spawn(checkpointer(Arc::downgrade(&inner)));
        }
        Ok(Store { inner })
    }

    /// Finishes queued writes, then closes the pool. Writes submitted afterwards (through any
    /// clone) fail with [`StoreError::WriterClosed`].
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.pool.close().await;
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Group-commit counters (batches, operations) since open.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// argon2 is deliberately slow: hash on the blocking pool, before the op reaches the writer.
    async fn hash_optional(&self, password: Option<String>) -> Result<Option<String>> {
        match password {
            None => Ok(None),
            Some(p) => self.inner.verifier.hash(p).await.map(Some),
        }
    }

    pub(crate) async fn write(&self, op: Op) -> Result<Outcome> {
        self.inner.writer.submit(op).await
    }

    // ----- chargers -------------------------------------------------------------------------

    /// Registers a charger (operator action). A charger known only as `pending` is promoted;
    /// an already registered one is a [`StoreError::Conflict`]. The password is argon2-hashed.
    pub async fn register_charger(&self, new: NewCharger, now: Timestamp) -> Result<Registration> {
        let password_hash = self.hash_optional(new.password).await?;
        match self
            .write(Op::RegisterCharger {
                id: new.id,
                password_hash,
                description: new.description,
                now,
            })
            .await?
        {
            Outcome::Registration(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Records an unknown charger that connected under the `pending` admission policy, unless it
    /// is already stored. Returns its status (a registered charger stays registered).
    pub async fn ensure_pending_charger(
        &self,
        id: &ChargePointId,
        now: Timestamp,
    ) -> Result<ChargerStatus> {
        match self
            .write(Op::EnsurePendingCharger {
                id: id.clone(),
                now,
            })
            .await?
        {
            Outcome::ChargerStatus(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Removes a charger with its connectors and status history (transactions and meter values
    /// are accounting records and stay). Returns whether it existed.
    pub async fn remove_charger(&self, id: &ChargePointId) -> Result<bool> {
        flag(self.write(Op::RemoveCharger { id: id.clone() }).await?)
    }

    /// Sets (Some) or clears (None) a charger's Basic-auth password. NotFound if unknown.
    pub async fn set_charger_password(
        &self,
        id: &ChargePointId,
        password: Option<String>,
    ) -> Result<()> {
        let password_hash = self.hash_optional(password).await?;
        done(
            self.write(Op::SetChargerPassword {
                id: id.clone(),
                password_hash,
            })
            .await?,
        )
    }

    pub async fn get_charger(&self, id: &ChargePointId) -> Result<Option<Charger>> {
        let sql = format!(
            "SELECT {} FROM chargers WHERE id = $1",
            rows::CHARGER_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::charger).transpose()
    }

    /// All chargers, ordered by id.
    pub async fn list_chargers(&self) -> Result<Vec<Charger>> {
        let sql = format!("SELECT {} FROM chargers ORDER BY id", rows::CHARGER_COLUMNS);
        let rows_ = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows_.iter().map(rows::charger).collect()
    }

    /// Checks HTTP Basic credentials. argon2 runs on the blocking pool, at most one per CPU at a
    /// time; a password already verified against the current hash is accepted from a
    /// process-local cache (see `credentials`), so reconnects are cheap.
    pub async fn verify_charger_password(
        &self,
        id: &ChargePointId,
        password: &str,
    ) -> Result<PasswordCheck> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT password_hash FROM chargers WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?;
        let Some((hash,)) = row else {
            return Ok(PasswordCheck::UnknownCharger);
        };
        let Some(hash) = hash else {
            return Ok(PasswordCheck::NoPasswordSet);
        };
        if hash == registry::REVOKED_PASSWORD {
            // Decommissioned: no password opens it again.
            return Ok(PasswordCheck::Invalid);
        }
        let ok = self
            .inner
            .verifier
            .verify(id.as_str(), password, hash)
            .await?;
        Ok(if ok {
            PasswordCheck::Valid
        } else {
            PasswordCheck::Invalid
        })
    }

    /// Stores a BootNotification's details and the boot time (also counts as "seen").
    /// NotFound if the charger is not stored (call [`Store::ensure_pending_charger`] first for
    /// the pending policy).
    pub async fn record_boot(
        &self,
        id: &ChargePointId,
        info: BootInfo,
        at: Timestamp,
    ) -> Result<()> {
        done(
            self.write(Op::RecordBoot {
                id: id.clone(),
                info,
                at,
            })
            .await?,
        )
    }

    /// Updates last-seen (e.g. on Heartbeat); never moves it backwards. NotFound if unknown.
    pub async fn record_seen(&self, id: &ChargePointId, at: Timestamp) -> Result<()> {
        done(self.write(Op::RecordSeen { id: id.clone(), at }).await?)
    }

    /// Stores a FirmwareStatusNotification status. NotFound if the charger is unknown.
    pub async fn record_firmware_status(
        &self,
        id: &ChargePointId,
        status: &str,
        at: Timestamp,
    ) -> Result<()> {
        done(
            self.write(Op::RecordFirmwareStatus {
                id: id.clone(),
                status: status.to_owned(),
                at,
            })
            .await?,
        )
    }

    /// Stores a DiagnosticsStatusNotification status. NotFound if the charger is unknown.
    pub async fn record_diagnostics_status(
        &self,
        id: &ChargePointId,
        status: &str,
        at: Timestamp,
    ) -> Result<()> {
        done(
            self.write(Op::RecordDiagnosticsStatus {
                id: id.clone(),
                status: status.to_owned(),
                at,
            })
            .await?,
        )
    }

    // ----- connectors -----------------------------------------------------------------------

    /// Stores a StatusNotification: appended to the history, and the connector's current state
    /// updated unless a newer one is already stored. NotFound if the charger is unknown.
    pub async fn record_status(
        &self,
        id: &ChargePointId,
        report: StatusReport,
        received_at: Timestamp,
    ) -> Result<()> {
        done(
            self.write(Op::RecordStatus {
                id: id.clone(),
                report,
                received_at,
            })
            .await?,
        )
    }

    /// Current state of each connector of a charger (connector 0 = the charger), by connector id.
    pub async fn connectors(&self, id: &ChargePointId) -> Result<Vec<Connector>> {
        let sql = format!(
            "SELECT {} FROM connectors WHERE charger_id = $1 ORDER BY connector_id",
            rows::CONNECTOR_COLUMNS
        );
        let rows_ = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_all(self.pool())
            .await?;
        rows_.iter().map(rows::connector).collect()
    }

    /// Connectors of every charger, ordered by charger then connector (one query for listings).
    pub async fn all_connectors(&self) -> Result<Vec<Connector>> {
        let sql = format!(
            "SELECT {} FROM connectors ORDER BY charger_id, connector_id",
            rows::CONNECTOR_COLUMNS
        );
        let rows_ = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows_.iter().map(rows::connector).collect()
    }

    /// Status history of a charger, newest first, at most `limit` entries.
    pub async fn status_history(
        &self,
        id: &ChargePointId,
        limit: u32,
    ) -> Result<Vec<StatusRecord>> {
        let rows_ = sqlx::query(
            "SELECT connector_id, status, error_code, info, vendor_id, vendor_error_code, \
             timestamp_ms, received_at_ms FROM status_history WHERE charger_id = $1 \
             ORDER BY timestamp_ms DESC, id DESC LIMIT $2",
        )
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows_.iter().map(rows::status_record).collect()
    }

    // ----- id tags --------------------------------------------------------------------------

    /// Adds an id tag; [`StoreError::Conflict`] if it exists.
    pub async fn add_id_tag(&self, record: IdTagRecord, now: Timestamp) -> Result<()> {
        done(self.write(Op::AddIdTag { record, now }).await?)
    }

    /// Creates or replaces an id tag. Returns true if it was created.
    pub async fn put_id_tag(&self, record: IdTagRecord, now: Timestamp) -> Result<bool> {
        flag(self.write(Op::PutIdTag { record, now }).await?)
    }

    /// Removes an id tag; returns whether it existed.
    pub async fn remove_id_tag(&self, tag: &IdTag) -> Result<bool> {
        flag(self.write(Op::RemoveIdTag { tag: tag.clone() }).await?)
    }

    pub async fn get_id_tag(&self, tag: &IdTag) -> Result<Option<IdTagRecord>> {
        let row =
            sqlx::query("SELECT tag, status, expiry_ms, parent_tag FROM id_tags WHERE tag = $1")
                .bind(tag.as_str())
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(rows::id_tag_record).transpose()
    }

    /// All id tags, ordered by tag.
    pub async fn list_id_tags(&self) -> Result<Vec<IdTagRecord>> {
        let rows_ =
            sqlx::query("SELECT tag, status, expiry_ms, parent_tag FROM id_tags ORDER BY tag")
                .fetch_all(self.pool())
                .await?;
        rows_.iter().map(rows::id_tag_record).collect()
    }

    /// The idTagInfo to answer an Authorize with: unknown tag → Invalid, Blocked → Blocked,
    /// expiry at or before `now` → Expired, else the stored status.
    pub async fn authorize(&self, tag: &IdTag, now: Timestamp) -> Result<IdTagInfo> {
        let mut conn = self.pool().acquire().await?;
        rows::authorize(&mut conn, tag, now).await?
    }

    // ----- transactions ---------------------------------------------------------------------

    /// Records a StartTransaction and returns its transactionId. The tag is authorized at `now`
    /// and recorded whatever its status (an Invalid start still gets an id, per OCPP). A replay
    /// (same charger, connector, id tag, meterStart and timestamp) returns the first id, in the
    /// same database transaction as the lookup, so a replay can never create a second row.
    pub async fn start_transaction(
        &self,
        start: StartTransaction,
        now: Timestamp,
    ) -> Result<StartOutcome> {
        match self.write(Op::StartTransaction { start, now }).await? {
            Outcome::Start(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Records a StopTransaction and its transactionData. A transaction never seen is created
    /// from the stop; a repeated stop keeps the first stop's values (and stores no sample twice).
    /// If the id belongs to another charger's transaction, the stop is still recorded, under a
    /// fresh id ([`StopOutcome::recorded_as`], [`Transaction::reported_id`]): the charger gets
    /// its answer and stops replaying, and nothing is lost.
    pub async fn stop_transaction(
        &self,
        stop: StopTransaction,
        now: Timestamp,
    ) -> Result<StopOutcome> {
        match self.write(Op::StopTransaction { stop, now }).await? {
            Outcome::Stop(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_transaction(&self, id: TransactionId) -> Result<Option<Transaction>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE id = $1",
            rows::TRANSACTION_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::from(id.0))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::transaction).transpose()
    }

    /// Transactions matching `filter`, newest (highest id) first.
    pub async fn list_transactions(&self, filter: &TransactionFilter) -> Result<Vec<Transaction>> {
        let mut sql = format!(
            "SELECT {} FROM transactions WHERE 1 = 1",
            rows::TRANSACTION_COLUMNS
        );
        if filter.charger_id.is_some() {
            sql.push_str(" AND charger_id = $1");
        }
        match filter.active {
            Some(true) => sql.push_str(" AND stopped_at_ms IS NULL"),
            Some(false) => sql.push_str(" AND stopped_at_ms IS NOT NULL"),
            None => {}
        }
        let limit = i64::from(filter.limit.unwrap_or(1000));
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            if filter.charger_id.is_some() {
                "$2"
            } else {
                "$1"
            }
        ));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(c) = &filter.charger_id {
            q = q.bind(c.as_str());
        }
        let rows_ = q.bind(limit).fetch_all(self.pool()).await?;
        rows_.iter().map(rows::transaction).collect()
    }

    /// The running transaction on a connector, if any (the most recent one if several).
    pub async fn active_transaction(
        &self,
        charger: &ChargePointId,
        connector_id: i32,
    ) -> Result<Option<Transaction>> {
        let sql = format!(
            "SELECT {} FROM transactions WHERE charger_id = $1 AND connector_id = $2 \
             AND stopped_at_ms IS NULL ORDER BY id DESC LIMIT 1",
            rows::TRANSACTION_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(charger.as_str())
            .bind(i64::from(connector_id))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::transaction).transpose()
    }

    // ----- meter values ---------------------------------------------------------------------

    /// Stores a MeterValues.req. Samples already stored (a replay) are counted, not duplicated.
    pub async fn record_meter_values(
        &self,
        report: MeterValuesReport,
        received_at: Timestamp,
    ) -> Result<MeterValuesOutcome> {
        match self
            .write(Op::MeterValues {
                report,
                received_at,
            })
            .await?
        {
            Outcome::Meter(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    /// Samples of a transaction in time order (then measurand, phase), whatever order they
    /// arrived in.
    pub async fn transaction_meter_values(&self, id: TransactionId) -> Result<Vec<StoredSample>> {
        let sql = format!(
            "SELECT {} FROM meter_values WHERE transaction_id = $1 \
             ORDER BY timestamp_ms, measurand, phase, location",
            rows::SAMPLE_COLUMNS
        );
        let rows_ = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::from(id.0))
            .fetch_all(self.pool())
            .await?;
        rows_.iter().map(rows::sample).collect()
    }

    /// Samples of one connector with `from <= timestamp < to`, in time order.
    pub async fn connector_meter_values(
        &self,
        charger: &ChargePointId,
        connector_id: i32,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredSample>> {
        let sql = format!(
            "SELECT {} FROM meter_values WHERE charger_id = $1 AND connector_id = $2 \
             AND timestamp_ms >= $3 AND timestamp_ms < $4 \
             ORDER BY timestamp_ms, measurand, phase, location",
            rows::SAMPLE_COLUMNS
        );
        let rows_ = sqlx::query(AssertSqlSafe(sql))
            .bind(charger.as_str())
            .bind(i64::from(connector_id))
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(self.pool())
            .await?;
        rows_.iter().map(rows::sample).collect()
    }

    // ----- audit log ------------------------------------------------------------------------

    /// Appends an operator command to the audit log; returns its id.
    pub async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        match self.write(Op::AppendAudit(entry)).await? {
            Outcome::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows_ = sqlx::query(
            "SELECT id, at_ms, actor, action, target, request, outcome FROM audit_log \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows_.iter().map(rows::audit_entry).collect()
    }

    // ----- API tokens -----------------------------------------------------------------------

    /// Start-up token handling. With a configured token: store it (as name "configured",
    /// replacing an earlier configured one) and return None. Without: if no token exists yet,
    /// create one named "bootstrap" and return it (print it once: only its hash is stored).
    pub async fn ensure_admin_token(
        &self,
        configured: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<String>> {
        if let Some(token) = configured {
            done(
                self.write(Op::PutAdminToken {
                    name: "configured".into(),
                    token_hash: secrets::token_hash(token),
                    now,
                })
                .await?,
            )?;
            return Ok(None);
        }
        let token = secrets::new_token();
        let created = flag(
            self.write(Op::InsertBootstrapToken {
                name: "bootstrap".into(),
                token_hash: secrets::token_hash(&token),
                now,
            })
            .await?,
        )?;
        Ok(created.then_some(token))
    }

    /// Creates a new token under `name` (replacing a token of that name) and returns it.
    pub async fn create_admin_token(&self, name: &str, now: Timestamp) -> Result<String> {
        let token = secrets::new_token();
        done(
            self.write(Op::PutAdminToken {
                name: name.to_owned(),
                token_hash: secrets::token_hash(&token),
                now,
            })
            .await?,
        )?;
        Ok(token)
    }

    /// The token's metadata if `token` is valid, else None. One indexed lookup.
    pub async fn verify_admin_token(&self, token: &str) -> Result<Option<AdminToken>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT name, created_at_ms FROM admin_tokens WHERE token_hash = $1")
                .bind(secrets::token_hash(token))
                .fetch_optional(self.pool())
                .await?;
        row.map(|(name, at)| {
            Ok(AdminToken {
                name,
                created_at: Timestamp::from_millisecond(at)
                    .map_err(|e| StoreError::Corrupt(format!("created_at_ms: {e}")))?,
            })
        })
        .transpose()
    }

    /// Token names and creation times, by name.
    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        let rows_: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, created_at_ms FROM admin_tokens ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows_
            .into_iter()
            .map(|(name, at)| {
                Ok(AdminToken {
                    name,
                    created_at: Timestamp::from_millisecond(at)
                        .map_err(|e| StoreError::Corrupt(format!("created_at_ms: {e}")))?,
                })
            })
            .collect()
    }

    /// Revokes the token called `name`; returns whether it existed.
    pub async fn revoke_admin_token(&self, name: &str) -> Result<bool> {
        flag(
            self.write(Op::RevokeAdminToken {
                name: name.to_owned(),
            })
            .await?,
        )
    }
}

/// Pool settings shared by the read pool and the writer's own pool.
fn pool_options(backend: Backend, options: &StoreOptions, max: u32) -> PoolOptions<Any> {
    let mut pool_options = PoolOptions::<Any>::new()
        .max_connections(max.max(2))
        .min_connections(0)
        // No ping before every acquire: it would add a round trip to each group commit. A
        // dead connection fails its query instead; the writer then retries op by op on
        // fresh connections, and readers get the error.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(30));
    if backend == Backend::Sqlite {
        let synchronous = if options.sqlite_synchronous_full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        pool_options = pool_options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                // journal_mode is persistent (a no-op once the file is in WAL); the others are
                // per connection, so set them on every one rather than trust URL defaults.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute(synchronous).await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                // Checkpoints run in `checkpointer`, off the commit path: an automatic one
                // would run inside whichever commit crossed the threshold and stall it and
                // every write queued behind it.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                Ok(())
            })
        });
    }
    pool_options
}

/// Copies the SQLite WAL back into the database file every second, without blocking writers
/// (PASSIVE) and on its own connection, until the store is dropped or closed.
async fn checkpointer(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.pool.is_closed() {
            return;
        }
        if let Err(e) = inner.pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

pub(crate) fn unexpected(o: Outcome) -> StoreError {
    StoreError::Corrupt(format!("writer answered with an unexpected outcome: {o:?}"))
}

pub(crate) fn done(o: Outcome) -> Result<()> {
    match o {
        Outcome::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn flag(o: Outcome) -> Result<bool> {
    match o {
        Outcome::Flag(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}
