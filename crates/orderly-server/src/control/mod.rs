//! The closed loop in the server: one controller task per community driving
//! `orderly_control::Controller`, fed by the gateway and the API, sending profiles through the
//! registry.
//!
//! - [`settings`]: `[control]`, `[[communities]]`, and the community/charger settings the API
//!   takes.
//! - [`spec`]: validation of those settings, store records ⇄ `orderly_control::CommunitySpec`.
//! - [`wish`]: resolving a session's wish (explicit → id-tag defaults → history → community).
//! - [`task`]: the controller task of one community.
//! - [`forecast`]: the community's expected arrivals, learned from its completed transactions
//!   (`[control] forecast_days`) and handed to its controller.
//! - [`rate_unit`]: a charger's rate unit (A or W), asked at boot before its profiles go out.
//! - [`release`]: clearing the profiles of a charger that left its community.
//! - [`Controllers`] (here): the running tasks, which community each charger belongs to, and
//!   the functions the API and the gateway call (start, reload, post, query).
//!
//! The gateway never waits for a controller: inputs go over an unbounded channel, and a
//! controller that is slow or gone costs the charger's answer nothing.

pub mod forecast;
pub mod rate_unit;
pub mod release;
pub mod settings;
pub mod spec;
pub mod task;
pub mod wish;

pub use settings::{CommunityConfig, ControlSettings};

use crate::state::AppState;
use orderly_control::{Input, PlanView, SessionView};
use orderly_core::{ChargePointId, IdTag};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// What a controller task is asked to do.
#[derive(Debug)]
pub enum Msg {
    /// Hand an input to the controller as is.
    Input(Input),
    /// A transaction started: the task resolves its wish (store reads) and then hands
    /// `Input::TransactionStarted` to the controller, in order with the other inputs.
    Started {
        transaction_id: i64,
        charger: ChargePointId,
        connector_id: i32,
        id_tag: Option<IdTag>,
        meter_start_wh: i64,
        at: jiff::Timestamp,
    },
    /// The stored wish of a transaction changed: resolve it, re-plan now, and answer with the
    /// session as planned (None if the controller does not know the transaction).
    Rewish {
        transaction_id: i64,
        reply: oneshot::Sender<Option<SessionView>>,
    },
    /// The plan now.
    Plan { reply: oneshot::Sender<PlanView> },
    /// The community, its chargers or its grid commands changed in the store: re-read and
    /// send `Input::Community`, `ChargerConnected` for connected chargers newly attached, and
    /// the grid commands that are new, changed or cancelled.
    Reload,
}

#[derive(Debug)]
struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
}

#[derive(Debug, Default)]
struct Inner {
    communities: HashMap<String, Handle>,
    charger_community: HashMap<ChargePointId, String>,
    /// Community meters: the charger id whose readings measure a whole community.
    meters: HashMap<ChargePointId, String>,
}

/// The running controllers, by community (and which community each charger belongs to).
#[derive(Debug, Default)]
pub struct Controllers {
    inner: Mutex<Inner>,
}

/// Why a query to a controller got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("community {0} has no running controller")]
    NotRunning(String),
}

impl Controllers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The community `charger` belongs to, if any.
    pub fn community_of(&self, charger: &ChargePointId) -> Option<String> {
        self.lock().charger_community.get(charger).cloned()
    }

    /// The community whose meter `charger` is, if any.
    pub fn metered_community(&self, charger: &ChargePointId) -> Option<String> {
        self.lock().meters.get(charger).cloned()
    }

    /// Post to the controller of `charger`'s community (dropped if it has none).
    pub fn post(&self, charger: &ChargePointId, msg: Msg) {
        let inner = self.lock();
        if let Some(community) = inner.charger_community.get(charger)
            && let Some(handle) = inner.communities.get(community)
        {
            let _ = handle.tx.send(msg);
        }
    }

    /// Post an input to the controller of `charger`'s community.
    pub fn input(&self, charger: &ChargePointId, input: Input) {
        self.post(charger, Msg::Input(input));
    }

    /// Post to a community's controller; false if it has none running.
    pub fn post_community(&self, community: &str, msg: Msg) -> bool {
        self.lock()
            .communities
            .get(community)
            .is_some_and(|h| h.tx.send(msg).is_ok())
    }

    /// Ask a community's controller something and wait for the answer.
    pub async fn query<T>(
        &self,
        community: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Msg,
    ) -> Result<T, QueryError> {
        let (reply, answer) = oneshot::channel();
        if !self.post_community(community, make(reply)) {
            return Err(QueryError::NotRunning(community.to_owned()));
        }
        answer
            .await
            .map_err(|_| QueryError::NotRunning(community.to_owned()))
    }

    pub fn is_running(&self, community: &str) -> bool {
        self.lock()
            .communities
            .get(community)
            .is_some_and(|h| !h.tx.is_closed())
    }

    /// Set which chargers belong to `community` (replacing its earlier list), and its meter.
    fn set_members(
        &self,
        community: &str,
        chargers: impl IntoIterator<Item = ChargePointId>,
        meter: Option<ChargePointId>,
    ) {
        let mut inner = self.lock();
        inner.charger_community.retain(|_, c| c != community);
        inner.meters.retain(|_, c| c != community);
        if let Some(meter) = meter {
            inner.meters.insert(meter, community.to_owned());
        }
        for charger in chargers {
            inner
                .charger_community
                .insert(charger, community.to_owned());
        }
    }

    /// Stop a community's controller and forget its chargers.
    pub fn stop(&self, community: &str) {
        let mut inner = self.lock();
        inner.communities.remove(community);
        inner.charger_community.retain(|_, c| c != community);
        inner.meters.retain(|_, c| c != community);
    }

    /// Stop every controller (server shutdown): their channels close and the tasks end.
    pub fn stop_all(&self) {
        let mut inner = self.lock();
        inner.communities.clear();
        inner.charger_community.clear();
        inner.meters.clear();
    }
}

/// Start (or, if running, reload) the controller of `community` from the store.
pub async fn start_or_reload(
    state: &AppState,
    community: &str,
) -> Result<(), orderly_store::StoreError> {
    let store = state.store();
    let Some(record) = store.get_community(community).await? else {
        state.controllers().stop(community);
        return Ok(());
    };
    let chargers = store.community_chargers(community).await?;
    let controllers = state.controllers();
    controllers.set_members(
        community,
        chargers.iter().map(|c| c.charger_id.clone()),
        record.community_meter.clone(),
    );
    if controllers.is_running(community) {
        controllers.post_community(community, Msg::Reload);
        return Ok(());
    }
    let spec = spec::community_spec(&record, &chargers);
    let (tx, rx) = mpsc::unbounded_channel();
    let weak = tx.downgrade();
    controllers
        .lock()
        .communities
        .insert(community.to_owned(), Handle { tx });
    tokio::spawn(task::run(
        state.clone(),
        community.to_owned(),
        spec,
        rx,
        weak,
    ));
    Ok(())
}

/// Start the controller of every stored community (server start).
pub async fn start_all(state: &AppState) -> Result<(), orderly_store::StoreError> {
    for community in state.store().list_communities().await? {
        start_or_reload(state, &community.id).await?;
    }
    Ok(())
}

/// Errors of applying the config file's `[[communities]]`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("[[communities]] {community}: {message}")]
    Invalid { community: String, message: String },
    #[error(transparent)]
    Store(#[from] orderly_store::StoreError),
}

/// Apply `[[communities]]` (create or update each community, register missing chargers
/// without a password, attach them with their electrical facts).
pub async fn apply_config(
    store: &orderly_store::Store,
    communities: &[CommunityConfig],
    now: jiff::Timestamp,
) -> Result<(), ApplyError> {
    for c in communities {
        let invalid = |message: String| ApplyError::Invalid {
            community: c.id.clone(),
            message,
        };
        let record = spec::community_record(&c.id, &c.settings(), now).map_err(invalid)?;
        let mut attach = Vec::with_capacity(c.chargers.len());
        for charger in &c.chargers {
            let id = ChargePointId::parse(charger.id.clone())
                .map_err(|e| invalid(format!("chargers: id {:?}: {e}", charger.id)))?;
            let attrs = spec::charger_record(&id, &c.id, &charger.electrical())
                .map_err(|e| invalid(format!("chargers: {}: {e}", charger.id)))?;
            attach.push(attrs);
        }
        store.put_community(record, now).await?;
        for attrs in attach {
            match store
                .register_charger(
                    orderly_store::NewCharger {
                        id: attrs.charger_id.clone(),
                        password: None,
                        description: Some(format!("community {}", c.id)),
                    },
                    now,
                )
                .await
            {
                Ok(_) | Err(orderly_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            store.attach_charger(attrs, now).await?;
        }
    }
    Ok(())
}
