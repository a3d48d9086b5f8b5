//! Parking and charging together (migration 0008): occupancy reports per bay, each bay's current
//! state, idle episodes with their fees, and each community's rule. The rules themselves live in
//! `orderly-parking`; this module stores what they decided. One writer operation,
//! [`Store::apply_parking`], records a report, the bay's new state, the episode changes and
//! their notifications in one commit, so a fee is never charged without its notice (or the
//! other way round).

use std::pin::Pin;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::notifications::{NewNotification, enqueue};
use crate::ops::{Applied, DynOp, Outcome, take_ids};
use crate::registry::emit;
use crate::rows::{get, ms, opt_ms, opt_ts, ts};
use crate::{Result, Store, StoreError};

pub const VEHICLES: [&str; 3] = ["ev", "fuel", "unknown"];
pub const SOURCES: [&str; 3] = ["sensor", "ground_lock", "camera"];
pub const EPISODE_KINDS: [&str; 2] = ["not_charging", "overstay"];
/// Longest plate accepted (Chinese plates have 7 or 8 characters; room for foreign ones).
pub const MAX_PLATE_CHARS: usize = 16;

/// A community's rule for idle cars in EV-only bays, in minutes and fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NewParkingRule {
    pub not_charging_minutes: i64,
    pub grace_minutes: i64,
    pub fee_per_interval_fen: i64,
    pub interval_minutes: i64,
    pub cap_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkingRuleRecord {
    pub community_id: String,
    #[serde(flatten)]
    pub rule: NewParkingRule,
    pub updated_by: String,
    pub updated_at: Timestamp,
}

/// An occupancy report to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOccupancyEvent {
    pub occupied: bool,
    /// ev, fuel or unknown.
    pub vehicle: String,
    pub plate: Option<String>,
    /// sensor, ground_lock or camera.
    pub source: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OccupancyEvent {
    pub id: i64,
    pub bay_id: i64,
    #[serde(flatten)]
    pub event: NewOccupancyEvent,
    pub received_at: Timestamp,
}

/// A bay's state to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewBayState {
    pub occupied: bool,
    pub vehicle: Option<String>,
    pub plate: Option<String>,
    /// When the car arrived.
    pub since: Option<Timestamp>,
    /// The last status of the bay's charger connector, as OCPP names it.
    pub connector_status: Option<String>,
    /// The rules' own state (opaque here).
    pub rules_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BayParkingState {
    pub bay_id: i64,
    #[serde(flatten)]
    pub state: NewBayState,
    pub updated_at: Timestamp,
}

/// An idle episode to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewIdleEpisode {
    /// not_charging or overstay.
    pub kind: String,
    pub vehicle: String,
    pub plate: Option<String>,
    pub charger_id: Option<String>,
    /// The user who pays, when known.
    pub payer: Option<String>,
    /// When the condition began (arrival, or charging finished).
    pub since: Timestamp,
    /// When it crossed the rule's threshold (the fee runs from here).
    pub opened_at: Timestamp,
    pub fee_fen: i64,
    pub cap_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdleEpisode {
    pub id: i64,
    pub bay_id: i64,
    pub community_id: String,
    #[serde(flatten)]
    pub episode: NewIdleEpisode,
    pub ended_at: Option<Timestamp>,
    /// open or settled.
    pub state: String,
    pub notification_id: Option<i64>,
}

/// What happens to a bay's episode.
#[derive(Debug, Clone, PartialEq)]
pub enum EpisodeChange {
    /// Open one (there must be none open) and enqueue its notification (its `data` gets the
    /// episode id).
    Open {
        episode: Box<NewIdleEpisode>,
        notification: Box<NewNotification>,
    },
    /// The open episode's fee rose.
    Accrue { fee_fen: i64 },
    /// The open episode ended at `at` with its final fee.
    Settle { at: Timestamp, fee_fen: i64 },
}

/// One change of a bay, applied whole or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkingChange {
    pub bay_id: i64,
    /// The report that caused it (None: a connector status or time passing).
    pub event: Option<NewOccupancyEvent>,
    pub state: NewBayState,
    pub episodes: Vec<EpisodeChange>,
    pub now: Timestamp,
}

/// What [`Store::apply_parking`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParkingApplied {
    pub event_id: Option<i64>,
    /// The episodes opened, accrued or settled, as stored afterwards.
    pub episodes: Vec<IdleEpisode>,
}

/// Which episodes to list.
#[derive(Debug, Clone, Default)]
pub struct EpisodeFilter {
    pub community_id: Option<String>,
    pub payer: Option<String>,
    pub bay_id: Option<i64>,
    pub limit: u32,
}

#[derive(Debug)]
enum ParkingOp {
    PutRule {
        community_id: String,
        rule: NewParkingRule,
        by: String,
        now: Timestamp,
    },
    Apply(ParkingChange),
}

impl DynOp for ParkingOp {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(self.run(conn))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn boxed<T: Send + 'static>(v: T) -> Applied {
    Ok(Ok(Outcome::Boxed(Box::new(v))))
}

const RULE_COLUMNS: &str = "community_id, not_charging_minutes, grace_minutes, \
    fee_per_interval_fen, interval_minutes, cap_fen, updated_by, updated_at_ms";

fn rule(row: &AnyRow) -> Result<ParkingRuleRecord> {
    Ok(ParkingRuleRecord {
        community_id: get(row, "community_id")?,
        rule: NewParkingRule {
            not_charging_minutes: get(row, "not_charging_minutes")?,
            grace_minutes: get(row, "grace_minutes")?,
            fee_per_interval_fen: get(row, "fee_per_interval_fen")?,
            interval_minutes: get(row, "interval_minutes")?,
            cap_fen: get(row, "cap_fen")?,
        },
        updated_by: get(row, "updated_by")?,
        updated_at: ts(row, "updated_at_ms")?,
    })
}

const EVENT_COLUMNS: &str = "id, bay_id, occupied, vehicle, plate, source, at_ms, received_at_ms";

fn event(row: &AnyRow) -> Result<OccupancyEvent> {
    Ok(OccupancyEvent {
        id: get(row, "id")?,
        bay_id: get(row, "bay_id")?,
        event: NewOccupancyEvent {
            occupied: get::<i64>(row, "occupied")? != 0,
            vehicle: get(row, "vehicle")?,
            plate: get(row, "plate")?,
            source: get(row, "source")?,
            at: ts(row, "at_ms")?,
        },
        received_at: ts(row, "received_at_ms")?,
    })
}

const STATE_COLUMNS: &str = "bay_id, occupied, vehicle, plate, since_ms, connector_status, \
    rules_state, updated_at_ms";

fn bay_state(row: &AnyRow) -> Result<BayParkingState> {
    Ok(BayParkingState {
        bay_id: get(row, "bay_id")?,
        state: NewBayState {
            occupied: get::<i64>(row, "occupied")? != 0,
            vehicle: get(row, "vehicle")?,
            plate: get(row, "plate")?,
            since: opt_ts(row, "since_ms")?,
            connector_status: get(row, "connector_status")?,
            rules_state: get(row, "rules_state")?,
        },
        updated_at: ts(row, "updated_at_ms")?,
    })
}

const EPISODE_COLUMNS: &str = "id, bay_id, community_id, kind, vehicle, plate, charger_id, payer, \
    since_ms, opened_at_ms, ended_at_ms, state, fee_fen, cap_fen, notification_id";

fn episode(row: &AnyRow) -> Result<IdleEpisode> {
    Ok(IdleEpisode {
        id: get(row, "id")?,
        bay_id: get(row, "bay_id")?,
        community_id: get(row, "community_id")?,
        episode: NewIdleEpisode {
            kind: get(row, "kind")?,
            vehicle: get(row, "vehicle")?,
            plate: get(row, "plate")?,
            charger_id: get(row, "charger_id")?,
            payer: get(row, "payer")?,
            since: ts(row, "since_ms")?,
            opened_at: ts(row, "opened_at_ms")?,
            fee_fen: get(row, "fee_fen")?,
            cap_fen: get(row, "cap_fen")?,
        },
        ended_at: opt_ts(row, "ended_at_ms")?,
        state: get(row, "state")?,
        notification_id: get(row, "notification_id")?,
    })
}

fn check_rule(r: &NewParkingRule) -> Result<()> {
    const WEEK: i64 = 7 * 24 * 60;
    for (field, v, min) in [
        ("not_charging_minutes", r.not_charging_minutes, 0),
        ("grace_minutes", r.grace_minutes, 0),
        ("interval_minutes", r.interval_minutes, 1),
    ] {
        if !(min..=WEEK).contains(&v) {
            return Err(invalid(field, format!("must be between {min} and {WEEK}")));
        }
    }
    if r.fee_per_interval_fen < 0 {
        return Err(invalid("fee_per_interval", "must not be negative"));
    }
    if r.cap_fen < 0 {
        return Err(invalid("cap", "must not be negative"));
    }
    Ok(())
}

fn check_plate(plate: &Option<String>) -> Result<()> {
    if let Some(p) = plate
        && (p.trim().is_empty()
            || p.chars().count() > MAX_PLATE_CHARS
            || p.chars().any(char::is_control))
    {
        return Err(invalid(
            "plate",
            format!("1 to {MAX_PLATE_CHARS} printable characters"),
        ));
    }
    Ok(())
}

fn check_change(c: &ParkingChange) -> Result<()> {
    if let Some(e) = &c.event {
        if !VEHICLES.contains(&e.vehicle.as_str()) {
            return Err(invalid("vehicle", format!("one of {VEHICLES:?}")));
        }
        if !SOURCES.contains(&e.source.as_str()) {
            return Err(invalid("source", format!("one of {SOURCES:?}")));
        }
        check_plate(&e.plate)?;
    }
    check_plate(&c.state.plate)?;
    for change in &c.episodes {
        match change {
            EpisodeChange::Open { episode: e, .. } => {
                if !EPISODE_KINDS.contains(&e.kind.as_str()) {
                    return Err(invalid("kind", format!("one of {EPISODE_KINDS:?}")));
                }
                if e.fee_fen < 0 || e.cap_fen < 0 || e.fee_fen > e.cap_fen {
                    return Err(invalid("fee", "between 0 and the cap"));
                }
            }
            EpisodeChange::Accrue { fee_fen } | EpisodeChange::Settle { fee_fen, .. } => {
                if *fee_fen < 0 {
                    return Err(invalid("fee", "must not be negative"));
                }
            }
        }
    }
    Ok(())
}

async fn open_episode_id(
    conn: &mut AnyConnection,
    bay_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT id FROM idle_episodes WHERE bay_id = $1 AND state = 'open' ORDER BY id DESC",
    )
    .bind(bay_id)
    .fetch_optional(&mut *conn)
    .await
}

async fn load_episode(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Result<IdleEpisode>, sqlx::Error> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {EPISODE_COLUMNS} FROM idle_episodes WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(episode(&row))
}

impl ParkingOp {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        match self {
            ParkingOp::PutRule {
                community_id,
                rule: r,
                by,
                now,
            } => {
                if let Err(e) = check_rule(r) {
                    return Ok(Err(e));
                }
                let known = sqlx::query("SELECT 1 AS one FROM communities WHERE id = $1")
                    .bind(community_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?
                    .is_some();
                if !known {
                    return Ok(Err(StoreError::NotFound(format!(
                        "community {community_id}"
                    ))));
                }
                sqlx::query("DELETE FROM parking_rules WHERE community_id = $1")
                    .bind(community_id.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO parking_rules (community_id, not_charging_minutes, grace_minutes, \
                     fee_per_interval_fen, interval_minutes, cap_fen, updated_by, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(community_id.as_str())
                .bind(r.not_charging_minutes)
                .bind(r.grace_minutes)
                .bind(r.fee_per_interval_fen)
                .bind(r.interval_minutes)
                .bind(r.cap_fen)
                .bind(by.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                let stored = ParkingRuleRecord {
                    community_id: community_id.clone(),
                    rule: *r,
                    updated_by: by.clone(),
                    updated_at: *now,
                };
                emit(
                    conn,
                    *now,
                    "community.parking_rule_set",
                    None,
                    Some(community_id),
                    json!(stored),
                )
                .await?;
                boxed(stored)
            }
            ParkingOp::Apply(c) => {
                // Everything is checked before the first write, so a refusal changes nothing.
                if let Err(e) = check_change(c) {
                    return Ok(Err(e));
                }
                let Some(community_id) = sqlx::query_scalar::<_, String>(
                    "SELECT community_id FROM parking_bays WHERE id = $1",
                )
                .bind(c.bay_id)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(Err(StoreError::NotFound(format!("bay {}", c.bay_id))));
                };
                if let Some(e) = &c.event {
                    let last = sqlx::query_scalar::<_, Option<i64>>(
                        "SELECT MAX(at_ms) FROM occupancy_events WHERE bay_id = $1",
                    )
                    .bind(c.bay_id)
                    .fetch_one(&mut *conn)
                    .await?;
                    if last.is_some_and(|l| ms(e.at) < l) {
                        return Ok(Err(invalid("at", "before the bay's last report")));
                    }
                }
                let mut open = open_episode_id(conn, c.bay_id).await?;
                {
                    // Replay the episode changes against what is open, before writing any.
                    let mut is_open = open.is_some();
                    for change in &c.episodes {
                        match change {
                            EpisodeChange::Open { .. } if is_open => {
                                return Ok(Err(StoreError::Conflict(format!(
                                    "an open idle episode of bay {}",
                                    c.bay_id
                                ))));
                            }
                            EpisodeChange::Open { .. } => is_open = true,
                            _ if !is_open => {
                                return Ok(Err(StoreError::NotFound(format!(
                                    "open idle episode of bay {}",
                                    c.bay_id
                                ))));
                            }
                            EpisodeChange::Settle { .. } => is_open = false,
                            EpisodeChange::Accrue { .. } => {}
                        }
                    }
                }
                let mut applied = ParkingApplied::default();
                if let Some(e) = &c.event {
                    let id = take_ids(conn, "occupancy_events", 1).await?;
                    sqlx::query(
                        "INSERT INTO occupancy_events (id, bay_id, occupied, vehicle, plate, \
                         source, at_ms, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(id)
                    .bind(c.bay_id)
                    .bind(i64::from(e.occupied))
                    .bind(e.vehicle.as_str())
                    .bind(e.plate.as_deref())
                    .bind(e.source.as_str())
                    .bind(ms(e.at))
                    .bind(ms(c.now))
                    .execute(&mut *conn)
                    .await?;
                    applied.event_id = Some(id);
                }
                sqlx::query("DELETE FROM bay_parking_state WHERE bay_id = $1")
                    .bind(c.bay_id)
                    .execute(&mut *conn)
                    .await?;
                let s = &c.state;
                sqlx::query(
                    "INSERT INTO bay_parking_state (bay_id, occupied, vehicle, plate, since_ms, \
                     connector_status, rules_state, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.bay_id)
                .bind(i64::from(s.occupied))
                .bind(s.vehicle.as_deref())
                .bind(s.plate.as_deref())
                .bind(opt_ms(s.since))
                .bind(s.connector_status.as_deref())
                .bind(s.rules_state.as_str())
                .bind(ms(c.now))
                .execute(&mut *conn)
                .await?;
                let mut touched = Vec::new();
                for change in &c.episodes {
                    match change {
                        EpisodeChange::Open {
                            episode: e,
                            notification,
                        } => {
                            let id = take_ids(conn, "idle_episodes", 1).await?;
                            let mut n = (**notification).clone();
                            n.bay_id = Some(c.bay_id);
                            n.community_id = Some(community_id.clone());
                            if let serde_json::Value::Object(map) = &mut n.data {
                                map.insert("episode_id".into(), json!(id));
                            } else {
                                n.data = json!({ "episode_id": id, "details": n.data });
                            }
                            let notification_id = enqueue(conn, &n, c.now).await?;
                            sqlx::query(
                                "INSERT INTO idle_episodes (id, bay_id, community_id, kind, \
                                 vehicle, plate, charger_id, payer, since_ms, opened_at_ms, \
                                 state, fee_fen, cap_fen, notification_id) VALUES \
                                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, $13)",
                            )
                            .bind(id)
                            .bind(c.bay_id)
                            .bind(community_id.as_str())
                            .bind(e.kind.as_str())
                            .bind(e.vehicle.as_str())
                            .bind(e.plate.as_deref())
                            .bind(e.charger_id.as_deref())
                            .bind(e.payer.as_deref())
                            .bind(ms(e.since))
                            .bind(ms(e.opened_at))
                            .bind(e.fee_fen)
                            .bind(e.cap_fen)
                            .bind(notification_id)
                            .execute(&mut *conn)
                            .await?;
                            open = Some(id);
                            touched.push(id);
                        }
                        EpisodeChange::Accrue { fee_fen } => {
                            let id = open.expect("checked above");
                            sqlx::query(
                                "UPDATE idle_episodes SET fee_fen = \
                                 CASE WHEN $1 > cap_fen THEN cap_fen ELSE $1 END WHERE id = $2",
                            )
                            .bind(*fee_fen)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                            touched.push(id);
                        }
                        EpisodeChange::Settle { at, fee_fen } => {
                            let id = open.take().expect("checked above");
                            sqlx::query(
                                "UPDATE idle_episodes SET state = 'settled', ended_at_ms = $1, \
                                 fee_fen = CASE WHEN $2 > cap_fen THEN cap_fen ELSE $2 END \
                                 WHERE id = $3",
                            )
                            .bind(ms(*at))
                            .bind(*fee_fen)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                            touched.push(id);
                        }
                    }
                }
                touched.dedup();
                for id in touched {
                    match load_episode(conn, id).await? {
                        Ok(e) => applied.episodes.push(e),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                boxed(applied)
            }
        }
    }
}

impl Store {
    /// Sets a community's parking rule (replacing any). NotFound (community), Invalid (field).
    pub async fn put_parking_rule(
        &self,
        community_id: &str,
        rule: NewParkingRule,
        by: &str,
        now: Timestamp,
    ) -> Result<ParkingRuleRecord> {
        self.write_boxed(ParkingOp::PutRule {
            community_id: community_id.to_owned(),
            rule,
            by: by.to_owned(),
            now,
        })
        .await
    }

    pub async fn parking_rule(&self, community_id: &str) -> Result<Option<ParkingRuleRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM parking_rules WHERE community_id = $1"
        )))
        .bind(community_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(rule).transpose()
    }

    /// Records a bay's change (report, state, episodes, notifications) in one commit.
    /// NotFound (bay), Invalid (a field; `at` before the bay's last report), Conflict (an
    /// episode opened while one is open).
    pub async fn apply_parking(&self, change: ParkingChange) -> Result<ParkingApplied> {
        self.write_boxed(ParkingOp::Apply(change)).await
    }

    pub async fn bay_parking_state(&self, bay_id: i64) -> Result<Option<BayParkingState>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM bay_parking_state WHERE bay_id = $1"
        )))
        .bind(bay_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(bay_state).transpose()
    }

    /// The states of occupied bays (the ones time can change), by bay.
    pub async fn occupied_bay_states(&self) -> Result<Vec<BayParkingState>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM bay_parking_state WHERE occupied = 1 ORDER BY bay_id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(bay_state).collect()
    }

    /// A bay's latest occupancy reports, newest first.
    pub async fn occupancy_events(&self, bay_id: i64, limit: u32) -> Result<Vec<OccupancyEvent>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM occupancy_events WHERE bay_id = $1 \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(bay_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event).collect()
    }

    /// Idle episodes matching `filter`, newest first.
    pub async fn idle_episodes(&self, filter: &EpisodeFilter) -> Result<Vec<IdleEpisode>> {
        let mut columns = Vec::new();
        if filter.community_id.is_some() {
            columns.push("community_id");
        }
        if filter.payer.is_some() {
            columns.push("payer");
        }
        if filter.bay_id.is_some() {
            columns.push("bay_id");
        }
        let mut sql = format!("SELECT {EPISODE_COLUMNS} FROM idle_episodes WHERE 1 = 1");
        for (i, column) in columns.iter().enumerate() {
            sql.push_str(&format!(" AND {column} = ${}", i + 1));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", columns.len() + 1));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(c) = &filter.community_id {
            q = q.bind(c.as_str());
        }
        if let Some(p) = &filter.payer {
            q = q.bind(p.as_str());
        }
        if let Some(b) = filter.bay_id {
            q = q.bind(b);
        }
        let rows = q
            .bind(i64::from(filter.limit.clamp(1, 1000)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(episode).collect()
    }

    /// The bay a charger is built on (its registry facts' `bay_id`).
    pub async fn bay_of_charger(&self, charger_id: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(
            "SELECT bay_id FROM charger_registry WHERE charger_id = $1",
        )
        .bind(charger_id)
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }

    /// The charger built on a bay, if any (the first by id if several claim it).
    pub async fn charger_of_bay(&self, bay_id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT charger_id FROM charger_registry WHERE bay_id = $1 ORDER BY charger_id",
        )
        .bind(bay_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// A bay's id from its community and number.
    pub async fn bay_id_by_number(&self, community_id: &str, number: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT id FROM parking_bays WHERE community_id = $1 AND number = $2",
        )
        .bind(community_id)
        .bind(number)
        .fetch_optional(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BayCharger, BayInput, CommunityRecord, Tenure};

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    fn state(occupied: bool) -> NewBayState {
        NewBayState {
            occupied,
            vehicle: occupied.then(|| "fuel".to_owned()),
            plate: None,
            since: occupied.then(|| t(0)),
            connector_status: None,
            rules_state: "{}".to_owned(),
        }
    }

    fn report(occupied: bool, at: Timestamp) -> NewOccupancyEvent {
        NewOccupancyEvent {
            occupied,
            vehicle: "fuel".into(),
            plate: Some("京A1".into()),
            source: "camera".into(),
            at,
        }
    }

    fn open() -> EpisodeChange {
        EpisodeChange::Open {
            episode: Box::new(NewIdleEpisode {
                kind: "not_charging".into(),
                vehicle: "fuel".into(),
                plate: Some("京A1".into()),
                charger_id: None,
                payer: None,
                since: t(0),
                opened_at: t(30),
                fee_fen: 200,
                cap_fen: 1000,
            }),
            notification: Box::new(NewNotification::new("parking.not_charging", "idle")),
        }
    }

    /// A change is written whole (report, state, episode, notification) or, when refused, not
    /// at all.
    #[tokio::test]
    async fn a_change_commits_whole_and_a_refused_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::sqlite_url(&dir.path().join("p.db")))
            .await
            .unwrap();
        let community = CommunityRecord {
            id: "A".into(),
            name: None,
            rating_kva: 400.0,
            power_factor: 0.9,
            base_load_kw: vec![50.0; 24],
            timezone: "Asia/Shanghai".into(),
            tariff_cny_per_kwh: vec![0.5; 24],
            emergency_price_cny_per_kwh: 1.0,
            max_emergencies: None,
            default_stay_hours: 10.0,
            default_energy_kwh: 20.0,
            community_meter: None,
            created_at: t(0),
            updated_at: t(0),
        };
        store.put_community(community, t(0)).await.unwrap();
        let bay = store
            .create_bay(
                "A",
                BayInput {
                    number: "1".into(),
                    tenure: Tenure::Public,
                    lease_end: None,
                    holder: None,
                    ev_only: true,
                    charger: BayCharger::Built,
                },
                t(0),
            )
            .await
            .unwrap();
        let change = |event, episodes, occupied| ParkingChange {
            bay_id: bay.id,
            event,
            state: state(occupied),
            episodes,
            now: t(31),
        };
        let applied = store
            .apply_parking(change(Some(report(true, t(0))), vec![open()], true))
            .await
            .unwrap();
        assert!(applied.event_id.is_some());
        let [ep] = &applied.episodes[..] else {
            panic!("{applied:?}")
        };
        assert_eq!((ep.state.as_str(), ep.episode.fee_fen), ("open", 200));
        let n = store.pending_notifications(10).await.unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(Some(n[0].id), ep.notification_id);
        assert_eq!(n[0].notification.bay_id, Some(bay.id));
        assert_eq!(n[0].notification.community_id.as_deref(), Some("A"));
        assert_eq!(n[0].notification.data["episode_id"], ep.id);

        // Refusals: a second open episode, a report out of order, a bad field, an unknown bay.
        let refusals = [
            change(Some(report(true, t(5))), vec![open()], true),
            change(Some(report(false, t(-1))), vec![], false),
            change(
                Some(NewOccupancyEvent {
                    vehicle: "bus".into(),
                    ..report(false, t(6))
                }),
                vec![],
                false,
            ),
            ParkingChange {
                bay_id: 999,
                ..change(Some(report(false, t(6))), vec![], false)
            },
        ];
        for refused in refusals {
            assert!(store.apply_parking(refused).await.is_err());
        }
        assert_eq!(store.occupancy_events(bay.id, 10).await.unwrap().len(), 1);
        assert!(
            store
                .bay_parking_state(bay.id)
                .await
                .unwrap()
                .unwrap()
                .state
                .occupied
        );
        assert_eq!(store.pending_notifications(10).await.unwrap().len(), 1);

        // Accrue, then settle when the car leaves; the stored fee never passes the cap.
        store
            .apply_parking(change(
                None,
                vec![EpisodeChange::Accrue { fee_fen: 5000 }],
                true,
            ))
            .await
            .unwrap();
        let settled = store
            .apply_parking(change(
                Some(report(false, t(40))),
                vec![EpisodeChange::Settle {
                    at: t(40),
                    fee_fen: 400,
                }],
                false,
            ))
            .await
            .unwrap();
        assert_eq!(settled.episodes[0].state, "settled");
        assert_eq!(settled.episodes[0].episode.fee_fen, 400);
        assert_eq!(settled.episodes[0].ended_at, Some(t(40)));
        let again = change(
            None,
            vec![EpisodeChange::Settle {
                at: t(41),
                fee_fen: 0,
            }],
            false,
        );
        assert!(matches!(
            store.apply_parking(again).await,
            Err(StoreError::NotFound(_))
        ));
        let listed = store
            .idle_episodes(&EpisodeFilter {
                community_id: Some("A".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(store.occupied_bay_states().await.unwrap().is_empty());
        store.close().await;
    }
}
