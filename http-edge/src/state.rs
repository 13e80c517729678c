//! What every handler can reach: the runtime, the catalog and the metrics handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use emporium_actors::Catalog;
use emporium_runtime::Runtime;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub catalog: Catalog,
    /// `None` when no recorder is installed (in-process tests).
    pub metrics: Option<PrometheusHandle>,
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(runtime: Runtime, catalog: Catalog, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            runtime,
            catalog,
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        }
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
