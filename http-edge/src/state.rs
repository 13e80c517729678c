//! What every handler can reach: the runtime, the catalog, the experiments and the metrics
//! handle.
//!
//! **One `Arc`**: axum clones the state for every middleware layer and every `State`
//! extractor of every request (about eight times per request). With the fields held
//! directly, each clone was some twenty reference-count increments (and each drop as many
//! decrements) on counters shared by both cores: a profile of the warm cart read showed
//! `AppState::clone` and its drop at about a fifth of the node's CPU. Behind one `Arc`, a
//! clone is one increment. Fields read through `Deref`; the `with_*` setters run while the
//! node is wired, before any clone exists (else they copy the fields once).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use emporium_actors::Catalog;
use emporium_actors::experiments::Experiments;
use emporium_actors::notification::{DevSink, Notifications};
use emporium_actors::payment::PaymentProvider;
use emporium_runtime::Runtime;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{LocalRevocations, RevocationList, TokenKeys};
use crate::cache::ReadCache;
use crate::limits::{LoginThrottle, RateLimiter};
use crate::observe::RequestMetricHandles;

/// Shared, cheap to clone (one reference count; see the module doc).
#[derive(Clone)]
pub struct AppState(Arc<Fields>);

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct Fields {
    pub runtime: Runtime,
    pub catalog: Catalog,
    /// Signs and verifies bearer tokens.
    pub tokens: TokenKeys,
    /// Tokens revoked by logout.
    pub revocations: Arc<dyn RevocationList>,
    /// Request limits per client and per user (off unless set).
    pub rate_limiter: RateLimiter,
    /// Failed-login counts per e-mail and per client.
    pub login_throttle: LoginThrottle,
    /// Cached catalog pages (off unless set).
    pub cache: ReadCache,
    /// `None` when no recorder is installed (in-process tests).
    pub metrics: Option<PrometheusHandle>,
    /// The payment gateway (the built-in test gateway unless set).
    pub payments: PaymentProvider,
    /// The A/B experiments (none unless set); the node passes the ones the domain uses.
    pub experiments: Experiments,
    /// The notification actors (preferences, recipients' logs).
    pub notifications: Notifications,
    /// The development sink of unconfigured notification channels (the node passes the
    /// one its channel router uses).
    pub notification_sink: Arc<DevSink>,
    ready: Arc<AtomicBool>,
    /// The recorder's handles of the request metrics.
    pub(crate) request_metrics: Arc<RequestMetricHandles>,
    /// The node fenced itself (cluster mode: it lost the store or was paused) and refuses
    /// every call until it has rejoined.
    fenced: Arc<AtomicBool>,
}

impl Deref for AppState {
    type Target = Fields;

    fn deref(&self) -> &Fields {
        &self.0
    }
}

impl AppState {
    pub fn new(runtime: Runtime, catalog: Catalog, tokens: TokenKeys) -> Self {
        Self(Arc::new(Fields {
            notifications: Notifications::new(runtime.clone()),
            runtime,
            catalog,
            tokens,
            revocations: Arc::new(LocalRevocations::default()),
            rate_limiter: RateLimiter::off(),
            login_throttle: LoginThrottle::default(),
            cache: ReadCache::off(),
            metrics: None,
            payments: PaymentProvider::default(),
            experiments: Experiments::default(),
            notification_sink: Arc::new(DevSink::default()),
            ready: Arc::new(AtomicBool::new(false)),
            request_metrics: Arc::default(),
            fenced: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// The fields to set while wiring (copied once if the state was already cloned).
    fn fields_mut(&mut self) -> &mut Fields {
        Arc::make_mut(&mut self.0)
    }

    /// The gateway the domain was wired to (the node passes the same one to the actors).
    pub fn with_payments(mut self, payments: PaymentProvider) -> Self {
        self.fields_mut().payments = payments;
        self
    }

    /// The experiments the domain was wired to, so that an assignment the edge answers is
    /// the one the funnel events carry.
    pub fn with_experiments(mut self, experiments: Experiments) -> Self {
        self.fields_mut().experiments = experiments;
        self
    }

    /// The development sink the domain's channel router sends to.
    pub fn with_notification_sink(mut self, sink: Arc<DevSink>) -> Self {
        self.fields_mut().notification_sink = sink;
        self
    }

    pub fn with_metrics(mut self, metrics: PrometheusHandle) -> Self {
        self.fields_mut().metrics = Some(metrics);
        self
    }

    pub fn with_revocations(mut self, revocations: Arc<dyn RevocationList>) -> Self {
        self.fields_mut().revocations = revocations;
        self
    }

    pub fn with_rate_limiter(mut self, rate_limiter: RateLimiter) -> Self {
        self.fields_mut().rate_limiter = rate_limiter;
        self
    }

    pub fn with_login_throttle(mut self, login_throttle: LoginThrottle) -> Self {
        self.fields_mut().login_throttle = login_throttle;
        self
    }

    pub fn with_cache(mut self, cache: ReadCache) -> Self {
        self.fields_mut().cache = cache;
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

    /// Fenced (or serving again): `/readyz` answers 503 while fenced.
    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.fenced.load(Ordering::Acquire)
    }
}
