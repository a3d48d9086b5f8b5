//! State shared by the gateway and the API: configuration, store, connected-charger registry.

use crate::clock::Clock;
use crate::config::Config;
use crate::control::Controllers;
use crate::gateway::registry::Registry;
use crate::parking::Parking;
use orderly_core::ChargePointId;
use orderly_store::{ChargerPresence, Store};
use std::sync::{Arc, Weak};

/// Cheap to clone (one `Arc`); axum hands a clone to every request.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    registry: Registry,
    clock: Clock,
    controllers: Controllers,
    parking: Parking,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> Self {
        let inner = Arc::new(Inner {
            clock: config.clock(),
            config,
            store,
            registry: Registry::default(),
            controllers: Controllers::default(),
            parking: Parking::default(),
        });
        let presence = GatewayPresence(Arc::downgrade(&inner));
        inner.store.set_presence(Arc::new(presence));
        Self { inner }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Protocol time (see [`Clock`]): use this, not `Timestamp::now()`, for anything a charger or
    /// a plan sees.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The community controllers.
    pub fn controllers(&self) -> &Controllers {
        &self.inner.controllers
    }

    /// The parking task's handle (occupancy reports, connector statuses of bays' chargers).
    pub fn parking(&self) -> &Parking {
        &self.inner.parking
    }
}

/// The gateway's registry as the store's [`ChargerPresence`] (the waiting list offers only
/// connectors of connected chargers). Weak, because the store is part of the state: once the
/// state is gone, stored statuses are trusted again, as without a gateway.
struct GatewayPresence(Weak<Inner>);

impl ChargerPresence for GatewayPresence {
    fn is_connected(&self, charger_id: &str) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return true;
        };
        ChargePointId::parse(charger_id).is_ok_and(|id| inner.registry.is_connected(&id))
    }
}
