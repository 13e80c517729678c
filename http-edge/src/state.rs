//! What every handler can reach: the runtime, the catalog and the metrics handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use emporium_actors::Catalog;
use emporium_runtime::Runtime;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{LocalRevocations, RevocationList, TokenKeys};

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub catalog: Catalog,
    /// Signs and verifies bearer tokens.
    pub tokens: TokenKeys,
    /// Tokens revoked by logout.
    pub revocations: Arc<dyn RevocationList>,
    /// `None` when no recorder is installed (in-process tests).
    pub metrics: Option<PrometheusHandle>,
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(runtime: Runtime, catalog: Catalog, tokens: TokenKeys) -> Self {
        Self {
            runtime,
            catalog,
            tokens,
            revocations: Arc::new(LocalRevocations::default()),
            metrics: None,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn with_metrics(mut self, metrics: PrometheusHandle) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_revocations(mut self, revocations: Arc<dyn RevocationList>) -> Self {
        self.revocations = revocations;
        self
    }

    /// Serving: `/readyz` answers 200 from now on.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Draining: `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn mark_draining(&self) {
        self.ready.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
