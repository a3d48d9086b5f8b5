//! Delivering notifications. Changes that should tell someone (an idle car, a waiting-list offer,
//! insurance ending, a booking cancelled) enqueue a row in the store's outbox
//! ([`orderly_store::notifications`]) in their own transaction; the [`run`] task here reads the
//! undelivered ones and hands each to every configured [`Notifier`]. Delivery is at least once:
//! a notification stays pending until every notifier took it, and a failing notifier is retried
//! with back-off, so a webhook receiver that is down loses nothing.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use orderly_store::{Notification, Store};
use serde::{Deserialize, Serialize};

/// `[notifications]` in orderly.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Log every notification (target `orderly::notify`, level info). Default true.
    pub log: bool,
    /// POST every notification as JSON to this `http://` URL; a 2xx answer means delivered.
    pub webhook_url: Option<String>,
    /// How often the outbox is read, in milliseconds. Default 1000.
    pub poll_interval_ms: u64,
    /// HTTP timeout of one webhook delivery, in seconds. Default 10.
    pub webhook_timeout_secs: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            log: true,
            webhook_url: None,
            poll_interval_ms: 1000,
            webhook_timeout_secs: 10,
        }
    }
}

/// Where notifications go. Implementations must be idempotent enough for at-least-once
/// delivery (a webhook receiver can dedupe on `id`).
pub trait Notifier: Send + Sync {
    /// Short name for logs and the stored error (`log`, `webhook`).
    fn name(&self) -> &str;
    /// Delivers one notification; `Err` is a reason that is stored and retried later.
    fn deliver<'a>(
        &'a self,
        n: &'a Notification,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Writes each notification to the log.
#[derive(Debug, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn name(&self) -> &str {
        "log"
    }

    fn deliver<'a>(
        &'a self,
        n: &'a Notification,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            tracing::info!(
                target: "orderly::notify",
                id = n.id,
                kind = %n.notification.kind,
                recipient = n.notification.recipient.as_deref().unwrap_or("-"),
                community = n.notification.community_id.as_deref().unwrap_or("-"),
                "{}",
                n.notification.message
            );
            Ok(())
        })
    }
}

/// POSTs each notification as JSON (the stored record: id, kind, recipient, community, charger,
/// bay, message, data, created_at) to a URL.
pub struct WebhookNotifier {
    url: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl WebhookNotifier {
    /// A notifier for `url` (`http://` only: the client has no TLS).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        if !url.starts_with("http://") {
            return Err(format!(
                "notifications.webhook_url: only http:// URLs are supported, not {url:?}"
            ));
        }
        url.parse::<axum::http::Uri>()
            .map_err(|e| format!("notifications.webhook_url: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }

    fn deliver<'a>(
        &'a self,
        n: &'a Notification,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
            let request = Request::post(&self.url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let exchange = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                // Read the body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            };
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| "timed out".to_owned())?
        })
    }
}

/// The notifiers `settings` ask for (an invalid webhook URL is an error at start-up).
pub fn notifiers(settings: &NotificationSettings) -> Result<Vec<Box<dyn Notifier>>, String> {
    let mut out: Vec<Box<dyn Notifier>> = Vec::new();
    if settings.log {
        out.push(Box::new(LogNotifier));
    }
    if let Some(url) = &settings.webhook_url {
        out.push(Box::new(WebhookNotifier::new(
            url,
            Duration::from_secs(settings.webhook_timeout_secs.max(1)),
        )?));
    }
    Ok(out)
}

/// Longest wait before retrying a notification that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delivers pending notifications to `notifiers` until `shutdown` resolves. With no notifiers
/// the outbox is only kept (read through the API).
pub async fn run(
    store: Store,
    notifiers: Vec<Box<dyn Notifier>>,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) {
    if notifiers.is_empty() {
        return;
    }
    tokio::pin!(shutdown);
    // Per failing notification: when to try again. In memory only: after a restart every
    // pending notification is tried at once, which is what a restart should do.
    let mut retry_at: HashMap<i64, tokio::time::Instant> = HashMap::new();
    loop {
        match store.pending_notifications(200).await {
            Ok(pending) => {
                let now = tokio::time::Instant::now();
                for n in pending {
                    if retry_at.get(&n.id).is_some_and(|at| *at > now) {
                        continue;
                    }
                    let mut failures = Vec::new();
                    for notifier in &notifiers {
                        if let Err(e) = notifier.deliver(&n).await {
                            failures.push(format!("{}: {e}", notifier.name()));
                        }
                    }
                    let error = (!failures.is_empty()).then(|| failures.join("; "));
                    if let Some(e) = &error {
                        let backoff = poll
                            .saturating_mul(1 << n.attempts.clamp(0, 10) as u32)
                            .min(MAX_BACKOFF);
                        retry_at.insert(n.id, now + backoff);
                        tracing::warn!(
                            id = n.id,
                            attempts = n.attempts + 1,
                            "notification not delivered: {e}"
                        );
                    } else {
                        retry_at.remove(&n.id);
                    }
                    if let Err(e) = store.mark_notification(n.id, error, Timestamp::now()).await {
                        tracing::error!(%e, id = n.id, "could not record a notification delivery");
                    }
                }
            }
            Err(e) => tracing::error!(%e, "could not read pending notifications"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use orderly_store::NewNotification;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::mpsc;

    #[derive(Clone)]
    struct Receiver {
        up: Arc<AtomicBool>,
        got: mpsc::UnboundedSender<serde_json::Value>,
    }

    async fn receive(
        State(r): State<Receiver>,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> StatusCode {
        if !r.up.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let _ = r.got.send(body);
        StatusCode::NO_CONTENT
    }

    async fn until<T>(mut f: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A real HTTP receiver that is down at first: the notification is retried and delivered
    /// once it is up, with the failure recorded in between.
    #[tokio::test]
    async fn webhook_delivery_is_retried_until_the_receiver_takes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&orderly_store::sqlite_url(&dir.path().join("n.db")))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let receiver = Receiver {
            up: up.clone(),
            got: tx,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let settings = NotificationSettings {
            log: true,
            webhook_url: Some(format!("http://{addr}/hook")),
            poll_interval_ms: 20,
            webhook_timeout_secs: 5,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(
            store.clone(),
            notifiers(&settings).unwrap(),
            Duration::from_millis(settings.poll_interval_ms),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut n = NewNotification::new("parking.overstay", "car in bay 12 after charging");
        n.recipient = Some("alice".into());
        n.data = serde_json::json!({ "bay": 12 });
        let id = store.notify(n, Timestamp::now()).await.unwrap().unwrap();

        // Down: the attempt fails and is recorded, nothing is delivered.
        let failed = until(async || {
            let p = store.pending_notifications(10).await.unwrap();
            p.into_iter().find(|p| p.id == id && p.attempts >= 1)
        })
        .await;
        assert!(
            failed
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("webhook: HTTP 503")),
            "{failed:?}"
        );
        assert!(rx.try_recv().is_err());

        up.store(true, Ordering::SeqCst);
        let body = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("delivered after the receiver came up")
            .unwrap();
        assert_eq!(body["id"], id);
        assert_eq!(body["kind"], "parking.overstay");
        assert_eq!(body["recipient"], "alice");
        assert_eq!(body["data"]["bay"], 12);
        until(async || {
            store
                .pending_notifications(10)
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        })
        .await;
        let _ = stop.send(());
        task.await.unwrap();
        store.close().await;
    }

    #[test]
    fn only_http_webhooks_are_accepted() {
        let settings = NotificationSettings {
            webhook_url: Some("https://example.invalid/hook".into()),
            ..Default::default()
        };
        let error = notifiers(&settings).err().unwrap();
        assert!(error.contains("webhook_url"), "{error}");
    }
}
