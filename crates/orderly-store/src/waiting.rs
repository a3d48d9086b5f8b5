//! The waiting list for a community's public chargers (migration 0009, issue 5 clause 十二).
//!
//! A resident joins a community's list with one of their own id tags. Whenever a connector of a
//! public, active charger of the community is `Available` and not held by an offer, the first
//! waiting entry gets an offer for it (state `offered`, expiring after the community's hold
//! time) and a `waiting_list.offer` notification, enqueued in the same commit. A start on a public
//! charger of the community with one of the user's tags serves the entry; someone else starting
//! on the connector held for an entry sends that entry back to waiting (its place kept, told so);
//! an offer not taken in time expires and the connector, if still free, goes to the next entry.
//!
//! Every change runs [`match_offers`] for its community before it commits, so after each commit
//! no free connector is left unoffered while someone waits (as far as the stored connector status
//! knows): joining when a connector is free offers it at once, withdrawing an offer passes it on.
//! The sweep ([`Store::sweep_waiting_list`]) does the same for offers that ran out, at a time the
//! caller gives (the server's protocol clock).

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::dynop::{
    boxed, check, corrupt, dyn_op, found, invalid, load_one, require_community, string_enum,
};
use crate::notifications::{NewNotification, enqueue};
use crate::ops::{Applied, take_ids};
use crate::rows::{get, ms, opt_int32, opt_ts, ts};
use crate::{Result, Store, StoreError};

/// How long an offer holds a connector when the community has not set its own.
pub const DEFAULT_HOLD_MINUTES: u32 = 15;
/// The longest hold a community may set (a day): a longer one would park a public charger.
pub const MAX_HOLD_MINUTES: u32 = 24 * 60;

string_enum!(
    /// Where an entry is.
    WaitingState, "state" {
        Waiting = "waiting",
        Offered = "offered",
        Served = "served",
        Expired = "expired",
        Left = "left",
    }
);

impl WaitingState {
    /// Still in the queue (waiting or holding an offer).
    pub fn is_live(self) -> bool {
        matches!(self, WaitingState::Waiting | WaitingState::Offered)
    }
}

/// A connector held for an entry until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingOffer {
    pub charger_id: String,
    pub connector_id: i32,
    pub offered_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Whether a charger has a live connection now. The gateway knows it; the store does not (a
/// charger's stored connector status is its last report, kept after it went offline).
pub trait ChargerPresence: Send + Sync + 'static {
    fn is_connected(&self, charger_id: &str) -> bool;
}

/// The store's view of [`ChargerPresence`]: without one (the default, as in tools and the
/// store's own tests) every charger counts as connected and stored statuses are trusted.
#[derive(Clone, Default)]
pub(crate) struct Presence(Option<std::sync::Arc<dyn ChargerPresence>>);

impl Presence {
    fn is_connected(&self, charger_id: &str) -> bool {
        self.0.as_ref().is_none_or(|p| p.is_connected(charger_id))
    }
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Presence(gateway)"
        } else {
            "Presence(everyone)"
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingEntry {
    pub id: i64,
    pub community_id: String,
    pub user_id: String,
    pub id_tag: String,
    pub state: WaitingState,
    pub joined_at: Timestamp,
    /// The offer made (kept after it expired or was taken).
    pub offer: Option<WaitingOffer>,
    pub closed_at: Option<Timestamp>,
    /// The transaction that served it.
    pub transaction_id: Option<i64>,
    /// Who ended it (`left`: the user or staff; `served`/`expired`: the service).
    pub closed_by: Option<String>,
    /// 1-based place among the community's live entries (None once ended).
    pub position: Option<u32>,
}

#[derive(Debug)]
enum WaitingOp {
    Join {
        community_id: String,
        user_id: String,
        id_tag: String,
        now: Timestamp,
    },
    Leave {
        id: i64,
        by: String,
        now: Timestamp,
    },
    SetHold {
        community_id: String,
        minutes: u32,
        now: Timestamp,
    },
    /// A connector reported `Available`: offer it if its charger is public.
    ConnectorAvailable {
        charger_id: String,
        now: Timestamp,
    },
    Started {
        charger_id: String,
        connector_id: i32,
        id_tag: String,
        transaction_id: i64,
        now: Timestamp,
    },
    Sweep {
        now: Timestamp,
    },
}

/// A waiting-list write with the gateway's view of which chargers are connected, so that every
/// change offers only connectors of chargers that are there.
#[derive(Debug)]
struct WaitingWrite {
    op: WaitingOp,
    presence: Presence,
}

dyn_op!(WaitingWrite);

const COLUMNS: &str = "id, community_id, user_id, id_tag, state, joined_at_ms, \
    offer_charger_id, offer_connector_id, offered_at_ms, offer_expires_at_ms, closed_at_ms, \
    transaction_id, closed_by";

fn entry(row: &AnyRow) -> Result<WaitingEntry> {
    let offer = match (
        get::<Option<String>>(row, "offer_charger_id")?,
        opt_int32(row, "offer_connector_id")?,
        opt_ts(row, "offered_at_ms")?,
        opt_ts(row, "offer_expires_at_ms")?,
    ) {
        (Some(charger_id), Some(connector_id), Some(offered_at), Some(expires_at)) => {
            Some(WaitingOffer {
                charger_id,
                connector_id,
                offered_at,
                expires_at,
            })
        }
        _ => None,
    };
    Ok(WaitingEntry {
        id: get(row, "id")?,
        community_id: get(row, "community_id")?,
        user_id: get(row, "user_id")?,
        id_tag: get(row, "id_tag")?,
        state: get::<String>(row, "state")?.parse().map_err(corrupt)?,
        joined_at: ts(row, "joined_at_ms")?,
        offer,
        closed_at: opt_ts(row, "closed_at_ms")?,
        transaction_id: get(row, "transaction_id")?,
        closed_by: get(row, "closed_by")?,
        position: None,
    })
}

fn by_id_sql() -> String {
    format!("SELECT {COLUMNS} FROM waiting_list WHERE id = $1")
}

/// The community's hold time.
async fn hold(conn: &mut AnyConnection, community_id: &str) -> Result<SignedDuration, sqlx::Error> {
    let minutes: Option<i64> = sqlx::query_scalar(
        "SELECT hold_minutes FROM waiting_list_settings WHERE community_id = $1",
    )
    .bind(community_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(SignedDuration::from_mins(
        minutes.unwrap_or(i64::from(DEFAULT_HOLD_MINUTES)),
    ))
}

/// Connectors of the community's public, active chargers that report `Available`, run no
/// transaction, are not held by an offer and whose charger is connected (per `presence`), in a
/// stable order. (A charger may start a transaction before it reports the connector busy: the
/// open transaction is what counts. A charger that went offline keeps its last status, which
/// says nothing about whether a car can charge there now.)
async fn free_connectors(
    conn: &mut AnyConnection,
    community_id: &str,
    presence: &Presence,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut free: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.charger_id, c.connector_id FROM connectors c \
         JOIN charger_registry r ON r.charger_id = c.charger_id \
         WHERE r.community_id = $1 AND r.kind = 'public' AND r.lifecycle = 'active' \
         AND c.connector_id > 0 AND c.status = 'Available' \
         AND NOT EXISTS (SELECT 1 FROM waiting_list w WHERE w.state = 'offered' \
             AND w.offer_charger_id = c.charger_id AND w.offer_connector_id = c.connector_id) \
         AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.charger_id = c.charger_id \
             AND t.connector_id = c.connector_id AND t.stopped_at_ms IS NULL) \
         ORDER BY c.charger_id, c.connector_id",
    )
    .bind(community_id)
    .fetch_all(&mut *conn)
    .await?;
    free.retain(|(charger, _)| presence.is_connected(charger));
    Ok(free)
}

/// Gives each free connector of `community_id` to the next waiting entry, with its
/// notification. Returns the entries offered.
async fn match_offers(
    conn: &mut AnyConnection,
    community_id: &str,
    now: Timestamp,
    presence: &Presence,
) -> Result<Result<Vec<WaitingEntry>>, sqlx::Error> {
    let free = free_connectors(conn, community_id, presence).await?;
    if free.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let waiting: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM waiting_list WHERE community_id = $1 AND state = 'waiting' \
         ORDER BY id LIMIT $2",
    )
    .bind(community_id)
    .bind(i64::try_from(free.len()).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    if waiting.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let expires = match now.checked_add(hold(conn, community_id).await?) {
        Ok(t) => t,
        Err(e) => return Ok(Err(invalid("hold_minutes", e.to_string()))),
    };
    let mut offered = Vec::with_capacity(waiting.len());
    for (id, (charger_id, connector_id)) in waiting.into_iter().zip(free) {
        sqlx::query(
            "UPDATE waiting_list SET state = 'offered', offer_charger_id = $1, \
             offer_connector_id = $2, offered_at_ms = $3, offer_expires_at_ms = $4 WHERE id = $5",
        )
        .bind(charger_id.as_str())
        .bind(connector_id)
        .bind(ms(now))
        .bind(ms(expires))
        .bind(id)
        .execute(&mut *conn)
        .await?;
        let e = match load_one(conn, by_id_sql(), id, entry).await? {
            Ok(Some(e)) => e,
            Ok(None) => {
                return Ok(Err(StoreError::NotFound(format!(
                    "waiting-list entry {id}"
                ))));
            }
            Err(e) => return Ok(Err(e)),
        };
        let mut n = NewNotification::new(
            "waiting_list.offer",
            format!(
                "Connector {connector_id} of public charger {charger_id} is free for you until \
                 {expires}: start charging with tag {} before then.",
                e.id_tag
            ),
        );
        n.recipient = Some(e.user_id.clone());
        n.community_id = Some(community_id.to_owned());
        n.charger_id = Some(charger_id.clone());
        n.data = json!({
            "entry": id, "charger": charger_id, "connector": connector_id,
            "expires_at": expires.to_string(), "id_tag": e.id_tag,
        });
        // One notification per offer: an entry displaced back to waiting is offered again.
        n.dedupe_key = Some(format!("waiting_list.offer:{id}:{}", ms(now)));
        enqueue(conn, &n, now).await?;
        offered.push(e);
    }
    Ok(Ok(offered))
}

/// The live entry of a user in a community, if any.
async fn live_entry(
    conn: &mut AnyConnection,
    community_id: &str,
    user_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM waiting_list WHERE community_id = $1 AND user_id = $2 \
         AND state IN ('waiting', 'offered')",
    )
    .bind(community_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
}

/// The community of a public, active charger (None for any other charger).
async fn public_community(
    conn: &mut AnyConnection,
    charger_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT community_id FROM charger_registry WHERE charger_id = $1 AND kind = 'public' \
         AND lifecycle = 'active'",
    )
    .bind(charger_id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten())
}

async fn with_position(
    conn: &mut AnyConnection,
    mut e: WaitingEntry,
) -> Result<WaitingEntry, sqlx::Error> {
    if e.state.is_live() {
        let ahead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM waiting_list WHERE community_id = $1 \
             AND state IN ('waiting', 'offered') AND id < $2",
        )
        .bind(e.community_id.as_str())
        .bind(e.id)
        .fetch_one(&mut *conn)
        .await?;
        e.position = u32::try_from(ahead + 1).ok();
    }
    Ok(e)
}

impl WaitingWrite {
    async fn run(&self, conn: &mut AnyConnection) -> Applied {
        let presence = &self.presence;
        match &self.op {
            WaitingOp::Join {
                community_id,
                user_id,
                id_tag,
                now,
            } => {
                check!(require_community(conn, community_id).await);
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
                        .bind(id_tag.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                if owner.as_deref() != Some(user_id.as_str()) {
                    return Ok(Err(invalid(
                        "id_tag",
                        format!("{id_tag:?} is not one of {user_id}'s id tags"),
                    )));
                }
                if live_entry(conn, community_id, user_id).await?.is_some() {
                    return Ok(Err(StoreError::Conflict(format!(
                        "a waiting-list entry of {user_id} in community {community_id}"
                    ))));
                }
                let id = take_ids(conn, "waiting_list", 1).await?;
                sqlx::query(
                    "INSERT INTO waiting_list (id, community_id, user_id, id_tag, state, \
                     joined_at_ms) VALUES ($1, $2, $3, $4, 'waiting', $5)",
                )
                .bind(id)
                .bind(community_id.as_str())
                .bind(user_id.as_str())
                .bind(id_tag.as_str())
                .bind(ms(*now))
                .execute(&mut *conn)
                .await?;
                // A connector free right now goes to the queue at once.
                if let Err(e) = match_offers(conn, community_id, *now, presence).await? {
                    return Ok(Err(e));
                }
                let stored = found!(
                    load_one(conn, by_id_sql(), id, entry).await,
                    format!("waiting-list entry {id}")
                );
                boxed(with_position(conn, stored).await?)
            }
            WaitingOp::Leave { id, by, now } => {
                let old = found!(
                    load_one(conn, by_id_sql(), *id, entry).await,
                    format!("waiting-list entry {id}")
                );
                if !old.state.is_live() {
                    return Ok(Err(StoreError::Conflict(format!(
                        "waiting-list entry {id} ended ({}); an ended entry",
                        old.state.as_str()
                    ))));
                }
                sqlx::query(
                    "UPDATE waiting_list SET state = 'left', closed_at_ms = $1, closed_by = $2 \
                     WHERE id = $3",
                )
                .bind(ms(*now))
                .bind(by.as_str())
                .bind(*id)
                .execute(&mut *conn)
                .await?;
                // A withdrawn offer's connector goes to the next in line.
                if let Err(e) = match_offers(conn, &old.community_id, *now, presence).await? {
                    return Ok(Err(e));
                }
                boxed(found!(
                    load_one(conn, by_id_sql(), *id, entry).await,
                    format!("waiting-list entry {id}")
                ))
            }
            WaitingOp::SetHold {
                community_id,
                minutes,
                now,
            } => {
                check!(require_community(conn, community_id).await);
                if !(1..=MAX_HOLD_MINUTES).contains(minutes) {
                    return Ok(Err(invalid(
                        "hold_minutes",
                        format!("{minutes}: must be 1 to {MAX_HOLD_MINUTES}"),
                    )));
                }
                let updated = sqlx::query(
                    "UPDATE waiting_list_settings SET hold_minutes = $1, updated_at_ms = $2 \
                     WHERE community_id = $3",
                )
                .bind(i64::from(*minutes))
                .bind(ms(*now))
                .bind(community_id.as_str())
                .execute(&mut *conn)
                .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query(
                        "INSERT INTO waiting_list_settings (community_id, hold_minutes, \
                         updated_at_ms) VALUES ($1, $2, $3)",
                    )
                    .bind(community_id.as_str())
                    .bind(i64::from(*minutes))
                    .bind(ms(*now))
                    .execute(&mut *conn)
                    .await?;
                }
                boxed(*minutes)
            }
            WaitingOp::ConnectorAvailable { charger_id, now } => {
                let Some(community) = public_community(conn, charger_id).await? else {
                    return boxed(Vec::<WaitingEntry>::new());
                };
                match match_offers(conn, &community, *now, presence).await? {
                    Ok(offered) => boxed(offered),
                    Err(e) => Ok(Err(e)),
                }
            }
            WaitingOp::Started {
                charger_id,
                connector_id,
                id_tag,
                transaction_id,
                now,
            } => {
                let Some(community) = public_community(conn, charger_id).await? else {
                    return boxed(None::<WaitingEntry>);
                };
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT user_id FROM user_id_tags WHERE tag = $1")
                        .bind(id_tag.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                let served = match &owner {
                    Some(owner) => live_entry(conn, &community, owner).await?,
                    None => None,
                };
                if let Some(id) = served {
                    sqlx::query(
                        "UPDATE waiting_list SET state = 'served', closed_at_ms = $1, \
                         transaction_id = $2, closed_by = 'service' WHERE id = $3",
                    )
                    .bind(ms(*now))
                    .bind(*transaction_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                }
                // Someone else took a connector held for an entry: the entry goes back to
                // waiting, keeping its place, and is told so; the next free connector is its.
                let displaced: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM waiting_list WHERE state = 'offered' \
                     AND offer_charger_id = $1 AND offer_connector_id = $2 ORDER BY id",
                )
                .bind(charger_id.as_str())
                .bind(i64::from(*connector_id))
                .fetch_all(&mut *conn)
                .await?;
                for id in displaced {
                    let e = found!(
                        load_one(conn, by_id_sql(), id, entry).await,
                        format!("waiting-list entry {id}")
                    );
                    sqlx::query(
                        "UPDATE waiting_list SET state = 'waiting', offer_charger_id = NULL, \
                         offer_connector_id = NULL, offered_at_ms = NULL, \
                         offer_expires_at_ms = NULL WHERE id = $1",
                    )
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    let offered_at = e.offer.as_ref().map_or(0, |o| ms(o.offered_at));
                    let mut n = NewNotification::new(
                        "waiting_list.offer_withdrawn",
                        format!(
                            "Connector {connector_id} of charger {charger_id} was taken by \
                             someone else: you keep your place and get the next free one."
                        ),
                    );
                    n.recipient = Some(e.user_id.clone());
                    n.community_id = Some(community.clone());
                    n.charger_id = Some(charger_id.clone());
                    n.data =
                        json!({ "entry": id, "charger": charger_id, "connector": connector_id });
                    n.dedupe_key = Some(format!("waiting_list.offer_withdrawn:{id}:{offered_at}"));
                    enqueue(conn, &n, *now).await?;
                }
                // Served on another connector than the one offered, or an entry displaced:
                // free connectors go to the next in line.
                if let Err(e) = match_offers(conn, &community, *now, presence).await? {
                    return Ok(Err(e));
                }
                match served {
                    Some(id) => boxed(Some(found!(
                        load_one(conn, by_id_sql(), id, entry).await,
                        format!("waiting-list entry {id}")
                    ))),
                    None => boxed(None::<WaitingEntry>),
                }
            }
            WaitingOp::Sweep { now } => {
                let expired: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, community_id FROM waiting_list WHERE state = 'offered' \
                     AND offer_expires_at_ms <= $1 ORDER BY id",
                )
                .bind(ms(*now))
                .fetch_all(&mut *conn)
                .await?;
                for (id, _) in &expired {
                    sqlx::query(
                        "UPDATE waiting_list SET state = 'expired', closed_at_ms = $1, \
                         closed_by = 'service' WHERE id = $2",
                    )
                    .bind(ms(*now))
                    .bind(*id)
                    .execute(&mut *conn)
                    .await?;
                }
                let communities: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT community_id FROM waiting_list WHERE state = 'waiting' \
                     ORDER BY community_id",
                )
                .fetch_all(&mut *conn)
                .await?;
                let mut offered = Vec::new();
                for c in communities {
                    match match_offers(conn, &c, *now, presence).await? {
                        Ok(o) => offered.extend(o),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                boxed(Sweep {
                    expired: expired.into_iter().map(|(id, _)| id).collect(),
                    offered,
                })
            }
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// Entries whose offer ran out.
    pub expired: Vec<i64>,
    /// Entries offered a connector (passed on, or freed without a status report).
    pub offered: Vec<WaitingEntry>,
}

impl Store {
    /// Tells the store which chargers are connected (the gateway's registry), so that the
    /// waiting list offers only connectors of chargers that are there. The latest call wins (a
    /// server restarted on the same store brings its own registry).
    pub fn set_presence(&self, presence: std::sync::Arc<dyn ChargerPresence>) {
        *self
            .inner
            .presence
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Presence(Some(presence));
    }

    fn presence(&self) -> Presence {
        self.inner
            .presence
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn write_waiting<T: 'static>(&self, op: WaitingOp) -> Result<T> {
        self.write_boxed(WaitingWrite {
            op,
            presence: self.presence(),
        })
        .await
    }

    /// Joins `user_id` to a community's waiting list with one of their id tags (offered a free
    /// connector at once if there is one). NotFound (community), Invalid (id_tag not theirs),
    /// Conflict (already waiting there).
    pub async fn join_waiting_list(
        &self,
        community_id: &str,
        user_id: &str,
        id_tag: &str,
        now: Timestamp,
    ) -> Result<WaitingEntry> {
        self.write_waiting(WaitingOp::Join {
            community_id: community_id.to_owned(),
            user_id: user_id.to_owned(),
            id_tag: id_tag.to_owned(),
            now,
        })
        .await
    }

    /// Ends a live entry as `left` (withdrawn by the user or removed by staff `by`); its offer,
    /// if any, passes on. NotFound, Conflict (already ended).
    pub async fn leave_waiting_list(
        &self,
        id: i64,
        by: &str,
        now: Timestamp,
    ) -> Result<WaitingEntry> {
        self.write_waiting(WaitingOp::Leave {
            id,
            by: by.to_owned(),
            now,
        })
        .await
    }

    /// Sets how long an offer holds a connector in a community (1 to [`MAX_HOLD_MINUTES`]).
    pub async fn set_waiting_hold(
        &self,
        community_id: &str,
        minutes: u32,
        now: Timestamp,
    ) -> Result<u32> {
        self.write_waiting(WaitingOp::SetHold {
            community_id: community_id.to_owned(),
            minutes,
            now,
        })
        .await
    }

    /// The community's hold time in minutes (its own or [`DEFAULT_HOLD_MINUTES`]).
    pub async fn waiting_hold_minutes(&self, community_id: &str) -> Result<u32> {
        let mut conn = self.pool().acquire().await?;
        let hold = hold(&mut conn, community_id).await?;
        Ok(u32::try_from(hold.as_mins()).unwrap_or(DEFAULT_HOLD_MINUTES))
    }

    /// A charger's connector reported `Available`: if the charger is public and active in a
    /// community, free connectors go to the waiting list. Returns the entries offered. A read
    /// first, so chargers that are not public cost no write.
    pub async fn connector_available(
        &self,
        charger_id: &str,
        now: Timestamp,
    ) -> Result<Vec<WaitingEntry>> {
        let mut conn = self.pool().acquire().await?;
        let Some(community) = public_community(&mut conn, charger_id).await? else {
            return Ok(Vec::new());
        };
        let waiting = sqlx::query(
            "SELECT 1 AS one FROM waiting_list WHERE community_id = $1 AND state = 'waiting'",
        )
        .bind(community.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        drop(conn);
        if !waiting {
            return Ok(Vec::new());
        }
        self.write_waiting(WaitingOp::ConnectorAvailable {
            charger_id: charger_id.to_owned(),
            now,
        })
        .await
    }

    /// A transaction started with `id_tag` on a connector of `charger_id`. If the charger is
    /// public in a community where the tag's user has a live entry, the entry is served
    /// (returned); an entry holding an offer for that connector goes back to waiting. A read
    /// first, so starts that concern no entry cost no write.
    pub async fn waiting_transaction_started(
        &self,
        charger_id: &str,
        connector_id: i32,
        id_tag: &str,
        transaction_id: i64,
        now: Timestamp,
    ) -> Result<Option<WaitingEntry>> {
        let mut conn = self.pool().acquire().await?;
        let live = sqlx::query(
            "SELECT 1 AS one FROM waiting_list w JOIN charger_registry r \
             ON r.community_id = w.community_id JOIN user_id_tags t ON t.user_id = w.user_id \
             WHERE r.charger_id = $1 AND r.kind = 'public' AND t.tag = $2 \
             AND w.state IN ('waiting', 'offered')",
        )
        .bind(charger_id)
        .bind(id_tag)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        let held = sqlx::query(
            "SELECT 1 AS one FROM waiting_list WHERE state = 'offered' \
             AND offer_charger_id = $1 AND offer_connector_id = $2",
        )
        .bind(charger_id)
        .bind(i64::from(connector_id))
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        drop(conn);
        if !live && !held {
            return Ok(None);
        }
        self.write_waiting(WaitingOp::Started {
            charger_id: charger_id.to_owned(),
            connector_id,
            id_tag: id_tag.to_owned(),
            transaction_id,
            now,
        })
        .await
    }

    /// Expires offers that ran out by `now` and offers free connectors to the next in line. A
    /// read first: nothing due costs no write.
    pub async fn sweep_waiting_list(&self, now: Timestamp) -> Result<Sweep> {
        let presence = self.presence();
        let mut conn = self.pool().acquire().await?;
        let due = sqlx::query(
            "SELECT 1 AS one FROM waiting_list WHERE state = 'offered' \
             AND offer_expires_at_ms <= $1",
        )
        .bind(ms(now))
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
        let mut unmatched = false;
        if !due {
            let communities: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT community_id FROM waiting_list WHERE state = 'waiting'",
            )
            .fetch_all(&mut *conn)
            .await?;
            for c in communities {
                if !free_connectors(&mut conn, &c, &presence).await?.is_empty() {
                    unmatched = true;
                    break;
                }
            }
        }
        drop(conn);
        if !due && !unmatched {
            return Ok(Sweep {
                expired: Vec::new(),
                offered: Vec::new(),
            });
        }
        self.write_waiting(WaitingOp::Sweep { now }).await
    }

    /// One entry (with its position while live).
    pub async fn waiting_entry(&self, id: i64) -> Result<Option<WaitingEntry>> {
        let mut conn = self.pool().acquire().await?;
        match load_one(&mut conn, by_id_sql(), id, entry).await?? {
            Some(e) => Ok(Some(with_position(&mut conn, e).await?)),
            None => Ok(None),
        }
    }

    /// A community's entries in queue order: the live ones with their positions, and with
    /// `include_ended` the ended ones after them (newest first).
    pub async fn list_waiting(
        &self,
        community_id: &str,
        include_ended: bool,
    ) -> Result<Vec<WaitingEntry>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM waiting_list WHERE community_id = $1 \
             AND state IN ('waiting', 'offered') ORDER BY id"
        )))
        .bind(community_id)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(entry).collect::<Result<Vec<_>>>()?;
        for (i, e) in out.iter_mut().enumerate() {
            e.position = u32::try_from(i + 1).ok();
        }
        if include_ended {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM waiting_list WHERE community_id = $1 \
                 AND state NOT IN ('waiting', 'offered') ORDER BY id DESC"
            )))
            .bind(community_id)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                out.push(entry(row)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ChargerFacts, ChargerKind, CommunityRecord, Lifecycle, NewCharger, NewUser,
        NotificationFilter, RegistryConnector, Role, StartTransaction, StatusReport,
    };
    use orderly_core::{ChargePointId, IdTag};

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + 60 * minutes).unwrap()
    }

    async fn status(store: &Store, connector_id: i32, status: &str, now: Timestamp) {
        let report = StatusReport {
            connector_id,
            status: status.into(),
            error_code: "NoError".into(),
            info: None,
            vendor_id: None,
            vendor_error_code: None,
            timestamp: None,
        };
        let cp = ChargePointId::parse("PUB").unwrap();
        store.record_status(&cp, report, now).await.unwrap();
    }

    fn states(list: &[WaitingEntry]) -> Vec<(&str, WaitingState, Option<i32>)> {
        list.iter()
            .map(|e| {
                (
                    e.user_id.as_str(),
                    e.state,
                    e.offer.as_ref().map(|o| o.connector_id),
                )
            })
            .collect()
    }

    /// Two connectors, three people: each free connector goes to the next in line; a start on
    /// another connector than the one offered serves the entry and passes its connector on;
    /// offers not taken expire at the sweep, each person told once.
    #[tokio::test]
    async fn free_connectors_go_in_order_and_a_start_elsewhere_passes_the_offer_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::sqlite_url(&dir.path().join("w.db")))
            .await
            .unwrap();
        let now = at(0);
        store
            .put_community(
                CommunityRecord {
                    id: "C".into(),
                    name: None,
                    rating_kva: 400.0,
                    power_factor: 0.9,
                    base_load_kw: vec![50.0; 24],
                    timezone: "Asia/Shanghai".into(),
                    tariff_cny_per_kwh: vec![0.5; 24],
                    emergency_price_cny_per_kwh: 2.0,
                    max_emergencies: None,
                    default_stay_hours: 10.0,
                    default_energy_kwh: 20.0,
                    community_meter: None,
                    created_at: now,
                    updated_at: now,
                },
                now,
            )
            .await
            .unwrap();
        let cp = ChargePointId::parse("PUB").unwrap();
        store
            .register_charger(
                NewCharger {
                    id: cp.clone(),
                    password: None,
                    description: None,
                },
                now,
            )
            .await
            .unwrap();
        let connectors = (1..=2)
            .map(|connector_id| RegistryConnector {
                connector_id,
                standard: "GB/T".into(),
                max_power_kw: Some(7.0),
            })
            .collect();
        let facts = ChargerFacts {
            community_id: Some("C".into()),
            bay_id: None,
            kind: ChargerKind::Public,
            owner: None,
            operator: None,
            model: None,
            rated_power_kw: Some(7.0),
            phases: Some(1),
            connectors,
            maintainer: None,
        };
        store.put_charger_facts("PUB", facts, now).await.unwrap();
        for to in [Lifecycle::Installed, Lifecycle::Active] {
            store.set_lifecycle("PUB", to, "test", now).await.unwrap();
        }
        for (user, tag) in [("u1", "T1"), ("u2", "T2"), ("u3", "T3")] {
            let new = NewUser {
                id: user.into(),
                name: user.into(),
                password: "a long password".into(),
                role: Role::Resident,
                scopes: vec![],
                id_tags: vec![tag.into()],
            };
            store.create_user(new, now).await.unwrap();
        }
        status(&store, 1, "Charging", now).await;
        status(&store, 2, "Charging", now).await;
        for (user, tag) in [("u1", "T1"), ("u2", "T2"), ("u3", "T3")] {
            let e = store.join_waiting_list("C", user, tag, now).await.unwrap();
            assert_eq!(e.state, WaitingState::Waiting);
        }
        // Someone else's tag, and a second live entry: refused.
        assert!(matches!(
            store.join_waiting_list("C", "u1", "T2", now).await,
            Err(StoreError::Invalid {
                field: "id_tag",
                ..
            })
        ));
        assert!(matches!(
            store.join_waiting_list("C", "u1", "T1", now).await,
            Err(StoreError::Conflict(_))
        ));

        status(&store, 1, "Available", at(1)).await;
        let offered = store.connector_available("PUB", at(1)).await.unwrap();
        assert_eq!(states(&offered), [("u1", WaitingState::Offered, Some(1))]);
        assert_eq!(offered[0].offer.as_ref().unwrap().expires_at, at(16));
        status(&store, 2, "Available", at(2)).await;
        let offered = store.connector_available("PUB", at(2)).await.unwrap();
        assert_eq!(states(&offered), [("u2", WaitingState::Offered, Some(2))]);

        // u2 starts on connector 1, held for u1: u2 is served; u1 goes back to waiting, keeps
        // the first place and gets connector 2, which u2 no longer needs; u3 still waits.
        let start = StartTransaction {
            charger_id: cp.clone(),
            connector_id: 1,
            id_tag: IdTag::parse("T2").unwrap(),
            meter_start_wh: 0,
            timestamp: at(3),
            reservation_id: None,
        };
        let tx = store.start_transaction(start, at(3)).await.unwrap();
        let served = store
            .waiting_transaction_started("PUB", 1, "T2", i64::from(tx.transaction_id.0), at(3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(served.state, WaitingState::Served);
        let live = store.list_waiting("C", false).await.unwrap();
        assert_eq!(
            states(&live),
            [
                ("u1", WaitingState::Offered, Some(2)),
                ("u3", WaitingState::Waiting, None),
            ]
        );
        assert_eq!(
            live.iter().map(|e| e.position).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );

        // Nothing is due before the offer ends (3 + 15 minutes); then it passes to u3, whose
        // offer expires in turn, and nobody is left.
        let early = store.sweep_waiting_list(at(10)).await.unwrap();
        assert!(early.expired.is_empty() && early.offered.is_empty());
        let late = store.sweep_waiting_list(at(20)).await.unwrap();
        assert_eq!(late.expired.len(), 1);
        assert_eq!(
            states(&late.offered),
            [("u3", WaitingState::Offered, Some(2))]
        );
        let last = store.sweep_waiting_list(at(40)).await.unwrap();
        assert_eq!(last.expired.len(), 1);
        assert!(store.list_waiting("C", false).await.unwrap().is_empty());
        let all = store.list_waiting("C", true).await.unwrap();
        assert_eq!(all.len(), 3);

        let told = store
            .list_notifications(&NotificationFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let told: Vec<(&str, &str)> = told
            .iter()
            .map(|n| {
                (
                    n.notification.kind.as_str(),
                    n.notification.recipient.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            told,
            [
                ("waiting_list.offer", "u1"),
                ("waiting_list.offer", "u2"),
                ("waiting_list.offer_withdrawn", "u1"),
                ("waiting_list.offer", "u1"),
                ("waiting_list.offer", "u3"),
            ]
        );
        store.close().await;
    }
}
