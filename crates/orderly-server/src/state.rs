//! State shared by the gateway and the API: configuration, store, connected-charger registry.

use crate::config::Config;
use crate::gateway::registry::Registry;
use orderly_store::Store;
use std::sync::Arc;

/// Cheap to clone (one `Arc`); axum hands a clone to every request.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    registry: Registry,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                registry: Registry::default(),
            }),
        }
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
}
