//! Which chargers are connected now, and how to reach each one's driver task.
//!
//! One entry per charge point id. A newer connection for the same id replaces the older one:
//! dropping the old entry drops the only long-lived sender of its command channel, so the old
//! driver sees its channel close and ends that WebSocket (chargers that lost a connection
//! silently reconnect before the server notices, and the newest socket is the live one).

use orderly_core::ChargePointId;
use orderly_ocpp::Action;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands the API sends to a connection's driver task.
///
/// Boxed so the channel's preallocated slots stay pointer-sized: every connected charger owns
/// one channel, and the benchmark holds 19,000 of them.
#[derive(Debug)]
pub enum Command {
    Call(Box<OperatorCall>),
}

/// An operator call to forward to the charger.
#[derive(Debug)]
pub struct OperatorCall {
    pub action: Action,
    pub payload: Value,
    /// How long to wait for the charger's answer.
    pub timeout: Duration,
    pub reply: oneshot::Sender<CallReply>,
}

/// How an operator call ended: the charger's answer, or why it was not sent.
pub type CallReply = Result<orderly_ocpp::CallOutcome, orderly_ocpp::SendError>;

/// Commands waiting in the channel before API senders must wait. The driver moves them into the
/// connection's own call queue (OCPP allows one outstanding CALL per direction) as they arrive.
const COMMAND_QUEUE: usize = 4;

/// Identifies one WebSocket connection (ids are reused across reconnects, these are not).
pub type ConnectionSerial = u64;

#[derive(Debug)]
struct Entry {
    serial: ConnectionSerial,
    sender: mpsc::Sender<Command>,
}

/// The connected chargers of one server.
#[derive(Debug, Default)]
pub struct Registry {
    entries: Mutex<HashMap<ChargePointId, Entry>>,
    next_serial: AtomicU64,
    /// Driver tasks still running, including replaced ones not yet finished.
    live: AtomicUsize,
    /// Signalled whenever a driver unregisters (for shutdown to wait on).
    unregistered: tokio::sync::Notify,
}

/// What a driver task gets when it registers.
#[derive(Debug)]
pub struct Registration {
    pub serial: ConnectionSerial,
    pub commands: mpsc::Receiver<Command>,
    /// True when an older connection of the same charger was replaced.
    pub replaced: bool,
}

impl Registry {
    /// Register a new connection for `id`, replacing (and thereby closing) any older one.
    pub fn register(&self, id: ChargePointId) -> Registration {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::SeqCst);
        let (sender, commands) = mpsc::channel(COMMAND_QUEUE);
        let old = self.lock().insert(id, Entry { serial, sender });
        Registration {
            serial,
            commands,
            replaced: old.is_some(),
        }
    }

    /// A driver ends: remove `id` if it is still registered by connection `serial` (a replaced
    /// connection must not remove its successor). Call exactly once per [`Registry::register`].
    /// Returns whether this connection was still the charger's registered one.
    pub fn unregister(&self, id: &ChargePointId, serial: ConnectionSerial) -> bool {
        let removed = {
            let mut entries = self.lock();
            let current = entries.get(id).is_some_and(|e| e.serial == serial);
            if current {
                entries.remove(id);
            }
            current
        };
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.unregistered.notify_waiters();
        removed
    }

    /// Close every connection (server shutdown).
    pub fn disconnect_all(&self) {
        self.lock().clear();
    }

    /// Wait until every driver task has ended, or `limit` has passed; returns whether all did.
    /// Drivers unregister after their last answer, so this lets in-flight answers finish.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.unregistered.notified();
                tokio::pin!(notified);
                // Register interest before checking, so a notification in between is not lost.
                notified.as_mut().enable();
                if self.live.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Close the connection of `id`, if any (e.g. its charger was removed): its driver sees the
    /// command channel close and ends the WebSocket. Returns whether it was connected.
    pub fn disconnect(&self, id: &ChargePointId) -> bool {
        self.lock().remove(id).is_some()
    }

    /// The command sender of a connected charger.
    pub fn sender(&self, id: &ChargePointId) -> Option<mpsc::Sender<Command>> {
        self.lock().get(id).map(|e| e.sender.clone())
    }

    pub fn is_connected(&self, id: &ChargePointId) -> bool {
        self.lock().contains_key(id)
    }

    /// Number of connected chargers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChargePointId, Entry>> {
        // The map stays consistent even if a holder panicked (every operation is one call).
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ChargePointId {
        ChargePointId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn newer_connection_replaces_older() {
        let registry = Registry::default();
        let mut first = registry.register(id("CP1"));
        assert!(!first.replaced);
        let second = registry.register(id("CP1"));
        assert!(second.replaced);
        // The old driver's channel closes: it learns it was replaced.
        assert!(first.commands.recv().await.is_none());
        // The old connection ending must not unregister the new one.
        registry.unregister(&id("CP1"), first.serial);
        assert!(registry.is_connected(&id("CP1")));
        registry.unregister(&id("CP1"), second.serial);
        assert!(!registry.is_connected(&id("CP1")));
        assert!(registry.is_empty());
        assert!(registry.wait_idle(Duration::ZERO).await);
    }

    #[tokio::test]
    async fn shutdown_waits_for_running_drivers() {
        let registry = std::sync::Arc::new(Registry::default());
        let mut driver = registry.register(id("CP1"));
        registry.disconnect_all();
        assert!(registry.is_empty());
        // The driver is still running (it has not unregistered): not idle yet.
        assert!(!registry.wait_idle(Duration::ZERO).await);
        let waiter = tokio::spawn({
            let registry = registry.clone();
            async move { registry.wait_idle(Duration::from_secs(60)).await }
        });
        assert!(driver.commands.recv().await.is_none());
        registry.unregister(&id("CP1"), driver.serial);
        assert!(waiter.await.unwrap());
    }
}
