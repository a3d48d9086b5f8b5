//! Notifications (migration 0006): an outbox of what the service tells people. A change that
//! causes one (a no-show, an idle car, a charger freed for the waiting list) enqueues it with
//! [`enqueue`] inside its own writer operation, so the two commit together; the server's
//! dispatcher reads [`Store::pending_notifications`], hands each to the notifiers and records the
//! outcome with [`Store::mark_notification`]. A `dedupe_key` turns "tell once" rules into
//! idempotent inserts: a second notification with the same key is dropped.

use std::pin::Pin;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::ops::{Applied, DynOp, Outcome, take_ids};
use crate::rows::{get, ms, opt_ts, ts};
use crate::{Result, Store, StoreError};

/// A notification to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewNotification {
    /// What happened, dotted: `parking.idle`, `waiting_list.offer`, `insurance.expiring`, ...
    pub kind: String,
    /// The user it is for; None: the community's staff.
    pub recipient: Option<String>,
    pub community_id: Option<String>,
    pub charger_id: Option<String>,
    pub bay_id: Option<i64>,
    /// One line a person can read.
    pub message: String,
    /// The details, for machines (webhook receivers).
    pub data: Value,
    /// Tell once: a notification whose key is already stored is dropped.
    pub dedupe_key: Option<String>,
}

impl NewNotification {
    /// A notification of `kind` with `message`, no recipient, scope or details yet.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            recipient: None,
            community_id: None,
            charger_id: None,
            bay_id: None,
            message: message.into(),
            data: Value::Null,
            dedupe_key: None,
        }
    }
}

/// A stored notification and its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: i64,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub notification: NewNotification,
    pub delivered_at: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Which notifications to list.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub recipient: Option<String>,
    pub community_id: Option<String>,
    /// Only ids above this (paging, newest last).
    pub after: i64,
    pub limit: u32,
}

const COLUMNS: &str = "id, created_at_ms, kind, recipient, community_id, charger_id, bay_id, \
    message, data, dedupe_key, delivered_at_ms, attempts, last_error";

fn notification(row: &AnyRow) -> Result<Notification> {
    let data: String = get(row, "data")?;
    Ok(Notification {
        id: get(row, "id")?,
        created_at: ts(row, "created_at_ms")?,
        notification: NewNotification {
            kind: get(row, "kind")?,
            recipient: get(row, "recipient")?,
            community_id: get(row, "community_id")?,
            charger_id: get(row, "charger_id")?,
            bay_id: get(row, "bay_id")?,
            message: get(row, "message")?,
            data: serde_json::from_str(&data)
                .map_err(|e| StoreError::Corrupt(format!("notifications.data: {e}")))?,
            dedupe_key: get(row, "dedupe_key")?,
        },
        delivered_at: opt_ts(row, "delivered_at_ms")?,
        attempts: get(row, "attempts")?,
        last_error: get(row, "last_error")?,
    })
}

/// Enqueues `n` inside the caller's writer transaction; returns its id, or None when its
/// `dedupe_key` was already used (nothing is written then).
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    n: &NewNotification,
    now: Timestamp,
) -> Result<Option<i64>, sqlx::Error> {
    if let Some(key) = &n.dedupe_key {
        let seen = sqlx::query("SELECT 1 AS one FROM notifications WHERE dedupe_key = $1")
            .bind(key.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        if seen {
            return Ok(None);
        }
    }
    let id = take_ids(conn, "notifications", 1).await?;
    sqlx::query(
        "INSERT INTO notifications (id, created_at_ms, kind, recipient, community_id, charger_id, \
         bay_id, message, data, dedupe_key, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)",
    )
    .bind(id)
    .bind(ms(now))
    .bind(n.kind.as_str())
    .bind(n.recipient.as_deref())
    .bind(n.community_id.as_deref())
    .bind(n.charger_id.as_deref())
    .bind(n.bay_id)
    .bind(n.message.as_str())
    .bind(n.data.to_string())
    .bind(n.dedupe_key.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(Some(id))
}

#[derive(Debug)]
enum NotificationOp {
    Enqueue {
        n: NewNotification,
        now: Timestamp,
    },
    Mark {
        id: i64,
        error: Option<String>,
        now: Timestamp,
    },
}

impl DynOp for NotificationOp {
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = Applied> + Send + 'c>> {
        Box::pin(async move {
            match self {
                NotificationOp::Enqueue { n, now } => {
                    let id = enqueue(conn, n, *now).await?;
                    Ok(Ok(Outcome::Boxed(Box::new(id))))
                }
                NotificationOp::Mark { id, error, now } => {
                    let done = match error {
                        None => sqlx::query(
                            "UPDATE notifications SET delivered_at_ms = $1, \
                             attempts = attempts + 1, last_error = NULL \
                             WHERE id = $2 AND delivered_at_ms IS NULL",
                        )
                        .bind(ms(*now))
                        .bind(*id),
                        Some(e) => sqlx::query(
                            "UPDATE notifications SET attempts = attempts + 1, last_error = $1 \
                             WHERE id = $2 AND delivered_at_ms IS NULL",
                        )
                        .bind(e.as_str())
                        .bind(*id),
                    }
                    .execute(&mut *conn)
                    .await?;
                    Ok(Ok(Outcome::Boxed(Box::new(done.rows_affected() > 0))))
                }
            }
        })
    }
}

impl Store {
    /// Enqueues a notification on its own (changes that cause one enqueue it in their own
    /// transaction instead). None: its `dedupe_key` was used before and nothing was written.
    pub async fn notify(&self, n: NewNotification, now: Timestamp) -> Result<Option<i64>> {
        self.write_boxed(NotificationOp::Enqueue { n, now }).await
    }

    /// Records a delivery attempt: `error` None means delivered. False if the notification is
    /// unknown or was delivered already.
    pub async fn mark_notification(
        &self,
        id: i64,
        error: Option<String>,
        now: Timestamp,
    ) -> Result<bool> {
        self.write_boxed(NotificationOp::Mark { id, error, now })
            .await
    }

    /// Undelivered notifications, oldest first.
    pub async fn pending_notifications(&self, limit: u32) -> Result<Vec<Notification>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM notifications WHERE delivered_at_ms IS NULL \
             ORDER BY id LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(notification).collect()
    }

    /// Notifications matching `filter`, oldest first.
    pub async fn list_notifications(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<Notification>> {
        let mut sql = format!("SELECT {COLUMNS} FROM notifications WHERE id > $1");
        let mut n = 1;
        if filter.recipient.is_some() {
            n += 1;
            sql.push_str(&format!(" AND recipient = ${n}"));
        }
        if filter.community_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND community_id = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(filter.after);
        if let Some(r) = &filter.recipient {
            q = q.bind(r.as_str());
        }
        if let Some(c) = &filter.community_id {
            q = q.bind(c.as_str());
        }
        let rows = q
            .bind(i64::from(filter.limit.clamp(1, 1000)))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(notification).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedupe_key_makes_enqueue_idempotent_and_marks_record_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::sqlite_url(&dir.path().join("n.db")))
            .await
            .unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut n = NewNotification::new("insurance.expiring", "policy P1 ends in 30 days");
        n.recipient = Some("alice".into());
        n.dedupe_key = Some("insurance:1:30".into());
        n.data = serde_json::json!({ "policy": 1 });
        let first = store.notify(n.clone(), now).await.unwrap();
        assert!(first.is_some());
        assert_eq!(store.notify(n.clone(), now).await.unwrap(), None);
        let pending = store.pending_notifications(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].notification, n);
        let id = pending[0].id;
        assert!(
            store
                .mark_notification(id, Some("webhook: 503".into()), now)
                .await
                .unwrap()
        );
        let after_failure = store.pending_notifications(10).await.unwrap();
        assert_eq!(after_failure[0].attempts, 1);
        assert_eq!(after_failure[0].last_error.as_deref(), Some("webhook: 503"));
        assert!(store.mark_notification(id, None, now).await.unwrap());
        assert!(store.pending_notifications(10).await.unwrap().is_empty());
        assert!(!store.mark_notification(id, None, now).await.unwrap());
        let mine = store
            .list_notifications(&NotificationFilter {
                recipient: Some("alice".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].delivered_at, Some(now));
        let bobs = store
            .list_notifications(&NotificationFilter {
                recipient: Some("bob".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(bobs.is_empty());
        store.close().await;
    }
}
