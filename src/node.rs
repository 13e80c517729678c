//! `Node::build(config)`: assemble one Emporium node from its configuration: open the store,
//! start the runtime with every domain kind, rebuild the catalog index, seed demo data, and
//! bind the HTTP edge. `main` and the tests build nodes the same way.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emporium_actors::Catalog;
use emporium_actors::catalog::{SearchIndex, search_consumer};
use emporium_admin::{AuthError, Authorizer, ServerTls};
use emporium_config::{AdminApiConfig, NodeConfig, Secret, StoreConfig};
use emporium_events_nats::{JetStreamBus, JetStreamSettings};
use emporium_http_edge::auth::{AdminTokenError, RevocationList, TokenKeys};
use emporium_http_edge::cache::{CATALOG, DEFAULT_PAGE_TTL, ReadCache};
use emporium_http_edge::limits::{LoginThrottle, Rate, RateLimiter};
use emporium_http_edge::{AppState, EdgeLimits};
use emporium_runtime::cluster::MembershipConfig;
use emporium_runtime::cluster::{Cluster, ClusterOptions};
use emporium_runtime::events::consume::spawn_consumer;
use emporium_runtime::events::{EventBus, MemoryEventBus, RelaySettings};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, RuntimeBuilder, RuntimeConfig, StateStore};

use crate::telemetry::W3cTraceContext;
use emporium_search_meili::{MeiliIndex, parse_meili_url};
use emporium_search_tantivy::TantivyIndex;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// How long a stopping node waits for in-flight actor turns.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How long a stopping cluster node waits for the others to take its shards over.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(20);

/// How often `/readyz` follows whether a cluster node is fenced.
const READINESS_INTERVAL: Duration = Duration::from_millis(250);

/// How long a starting cluster node may take to become `Up`.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);

/// Lifetime of an access token.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Where a node keeps its generated token secret when none is configured.
const JWT_SECRET_FILE: &str = "jwt-secret";

/// A node, built and bound, not yet serving.
pub struct Node {
    listener: TcpListener,
    http_addr: SocketAddr,
    state: AppState,
    limits: EdgeLimits,
    /// `Some` in cluster mode.
    cluster: Option<Cluster>,
    /// `Some` when `admin_addr` is set.
    admin: Option<AdminApi>,
}

/// The admin gRPC API, bound and not yet serving.
struct AdminApi {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<ServerTls>,
    authorizer: Arc<AdminTokens>,
}

/// Who may use the admin gRPC API: the configured static token (`admin_token`), or an
/// access token of an admin user signed with the edge's keys and not logged out — the
/// edge's own revocation list, so a logout counts here as on the HTTP admin routes.
struct AdminTokens {
    token: Option<Secret>,
    keys: TokenKeys,
    revocations: Arc<dyn RevocationList>,
}

#[emporium_admin::async_trait]
impl Authorizer for AdminTokens {
    async fn check(&self, bearer: &str) -> Result<(), AuthError> {
        // `Secret`'s equality takes the same time wherever the first difference is.
        if self.token.as_ref() == Some(&Secret::new(bearer)) {
            return Ok(());
        }
        match self.keys.verify_admin(bearer) {
            Ok(claims) if self.revocations.is_revoked(&claims.jti).await => Err(
                AuthError::Unauthenticated("this access token was logged out".to_owned()),
            ),
            Ok(_) => Ok(()),
            Err(AdminTokenError::NotAdmin) => Err(AuthError::PermissionDenied(
                "this token is not an admin's".to_owned(),
            )),
            Err(AdminTokenError::Invalid) => Err(AuthError::Unauthenticated(
                "the token is not the admin token nor a valid access token".to_owned(),
            )),
        }
    }
}

impl AdminApi {
    /// Bind the admin API's port and read its certificate now, so that a taken port or a
    /// bad certificate stops the node at start.
    async fn bind(
        config: &AdminApiConfig,
        keys: TokenKeys,
        revocations: Arc<dyn RevocationList>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {} (admin_addr)", config.addr))?;
        let tls = match &config.tls {
            Some(files) => Some(
                ServerTls::from_files(&files.cert, &files.key)
                    .context("invalid admin API certificate (admin_tls_cert, admin_tls_key)")?,
            ),
            None => None,
        };
        Ok(Self {
            addr: listener.local_addr()?,
            listener,
            tls,
            authorizer: Arc::new(AdminTokens {
                token: config.token.clone(),
                keys,
                revocations,
            }),
        })
    }

    /// Serve until `stop` fires (or is dropped).
    fn spawn(
        self,
        runtime: Runtime,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> tokio::task::JoinHandle<()> {
        let service = emporium_admin::AdminService::new(runtime, self.authorizer);
        tokio::spawn(async move {
            let stopped = async {
                let _ = stop.await;
            };
            if let Err(error) =
                emporium_admin::serve(service, self.listener, self.tls, stopped).await
            {
                tracing::error!(%error, "the admin API stopped");
            }
        })
    }
}

impl Node {
    pub async fn build(
        config: &NodeConfig,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Self> {
        Self::build_with_store_layer(config, metrics, |store| store).await
    }

    /// [`Node::build`] with `layer` wrapped around the store once it is open: the benchmark
    /// harness counts the durable writes a request makes through it, whatever the adapter.
    pub async fn build_with_store_layer(
        config: &NodeConfig,
        metrics: Option<PrometheusHandle>,
        layer: impl FnOnce(Arc<dyn StateStore>) -> Arc<dyn StateStore>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let http_addr = listener.local_addr()?;
        let store =
            layer(open_store(&config.store, &config.data_dir, config.store_cache_mb).await?);
        tracing::info!(adapter = store.adapter(), "state store open");
        let ports = domain_ports(config)?;
        let bus = event_bus(config).await?;
        let relay = RelaySettings {
            outbox_limit: config.outbox_limit,
            ..RelaySettings::default()
        };
        let mut builder = emporium_actors::register_with(Runtime::builder(store), &ports)
            .events(bus, relay)
            .node_id(config.node_id.clone())
            // Passivated actors' memory goes back to the OS, not only to malloc.
            .on_passivation(crate::memory::trim_after_passivations())
            // The runtime's verdict (applied / not applied / unknown) always comes before
            // the edge's request timeout would answer without knowing.
            .config(RuntimeConfig {
                idle_timeout: config.idle_timeout,
                max_active_actors: config.max_active_actors,
                ..RuntimeConfig::within(config.request_timeout)
            });
        if config.otlp_endpoint.is_some() {
            // Forwarded calls continue the sender's trace on the owner.
            builder = builder.trace_context(Arc::new(W3cTraceContext));
        }
        let (runtime, cluster) = start_runtime(builder, config, http_addr).await?;
        let catalog = Catalog::new(runtime.clone(), search_index(config).await?);
        let indexed = catalog
            .rebuild_index()
            .await
            .context("cannot rebuild the catalog index")?;
        tracing::info!(products = indexed, "catalog index rebuilt");
        if config.demo {
            let seeded = catalog
                .seed_demo_if_empty()
                .await
                .context("cannot seed the demo catalog")?;
            if seeded > 0 {
                tracing::info!(products = seeded, "demo catalog seeded");
            }
        }
        let account = config.admin.as_ref();
        let account = account.map(|admin| (admin.email.as_str(), admin.password.expose()));
        let accounts = emporium_actors::Users::new(runtime.clone())
            .bootstrap(account, config.demo)
            .await
            .context("cannot set up the admin and demo accounts")?;
        for line in accounts {
            // May hold a generated password: shown to the operator once, never logged.
            println!("{line}");
        }
        let secret = jwt_secret(config)?;
        let tokens = TokenKeys::new(secret.as_bytes(), TOKEN_TTL);
        let state = with_edge_services(
            with_metrics(
                AppState::new(runtime, catalog, tokens)
                    .with_payments(ports.payments)
                    .with_experiments(ports.experiments)
                    .with_notification_sink(Arc::clone(ports.notifications.dev_sink())),
                metrics,
            ),
            config,
        )
        .await?;
        let admin = match &config.admin_api {
            Some(api) => {
                let revocations = Arc::clone(&state.revocations);
                Some(AdminApi::bind(api, state.tokens.clone(), revocations).await?)
            }
            None => None,
        };
        start_consumers(&state, config);
        Ok(Self {
            listener,
            http_addr,
            state,
            limits: EdgeLimits {
                max_body_bytes: config.max_body_bytes,
                request_timeout: config.request_timeout,
            },
            cluster,
            admin,
        })
    }

    /// Where the admin gRPC API listens, when it is on (useful with port 0).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|admin| admin.addr)
    }

    /// Whether the admin gRPC API serves TLS.
    pub fn admin_tls(&self) -> bool {
        self.admin.as_ref().is_some_and(|admin| admin.tls.is_some())
    }

    /// The node's runtime (for in-process benches and tests).
    pub fn runtime(&self) -> &Runtime {
        &self.state.runtime
    }

    /// The address the edge actually listens on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Serve until `shutdown` resolves; then stop taking requests, finish those in flight,
    /// and passivate every actor. A cluster node first hands its shards over (serving and
    /// forwarding meanwhile) and leaves afterwards. A cluster node that fences itself (paused,
    /// or cut off from the store, long enough for the others to take its shards) stays up,
    /// answers 503 and `/readyz` 503 meanwhile, and rejoins by itself as a new life. Only a
    /// node expelled for good (another process took its node id, or its clock is too far
    /// off) stops the same way and returns an error.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        // The admin API serves until the edge has stopped (operators watch a drain through it).
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel();
        let admin = self
            .admin
            .take()
            .map(|admin| admin.spawn(state.runtime.clone(), admin_stopped));
        let router = emporium_http_edge::router(self.state.clone(), &self.limits);
        state.mark_ready();
        let fencing = self.cluster.clone().map(|cluster| {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    state.set_fenced(!cluster.is_serving());
                    tokio::time::sleep(READINESS_INTERVAL).await;
                }
            })
        });
        let draining = state.clone();
        let cluster = self.cluster.clone();
        let (expelled_tx, expelled_rx) = tokio::sync::oneshot::channel();
        emporium_http_edge::serve(self.listener, router, async move {
            let expelled = match &cluster {
                Some(cluster) => tokio::select! {
                    () = shutdown => None,
                    why = cluster.expelled() => Some(why),
                },
                None => {
                    shutdown.await;
                    None
                }
            };
            draining.mark_draining();
            match (&cluster, expelled) {
                (Some(cluster), None) => {
                    tracing::info!("draining: handing shards over");
                    cluster.drain(HANDOVER_DEADLINE).await;
                }
                (_, Some(why)) => {
                    tracing::error!(%why, "expelled from the cluster for good: stopping");
                    let _ = expelled_tx.send(why);
                }
                (None, None) => {}
            }
            tracing::info!("draining: finishing in-flight requests");
        })
        .await
        .context("http edge failed")?;
        if let Some(fencing) = fencing {
            fencing.abort();
        }
        let _ = stop_admin.send(());
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        state.runtime.shutdown(DRAIN_DEADLINE).await;
        if let Some(cluster) = &self.cluster {
            cluster.stop().await;
        }
        if let Ok(why) = expelled_rx.await {
            anyhow::bail!("expelled from the cluster for good ({why})");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// A single node's runtime, or a cluster member's once it is `Up`.
async fn start_runtime(
    builder: RuntimeBuilder,
    config: &NodeConfig,
    http_addr: SocketAddr,
) -> anyhow::Result<(Runtime, Option<Cluster>)> {
    let Some(cluster_config) = &config.cluster else {
        let runtime = builder
            .build()
            .await
            .context("cannot start the actor runtime")?;
        return Ok((runtime, None));
    };
    let mut options = ClusterOptions::new(
        config.node_id.clone(),
        cluster_config.addr,
        http_addr.to_string(),
        cluster_config.secret.expose(),
    );
    options.seeds = cluster_config.seeds.clone();
    options.handover_deadline = HANDOVER_DEADLINE;
    let timings = &cluster_config.timings;
    options.membership = MembershipConfig {
        heartbeat_interval: timings.heartbeat_interval,
        suspect_after: timings.suspect_after,
        dead_after: timings.dead_after,
        forget_after: timings.forget_after,
    };
    options.crash_confirm = Some(timings.crash_confirm);
    // Checked at load already; checked again here so that no other caller can skip it.
    options
        .membership
        .validate_with_crash_confirm(timings.crash_confirm)
        .context("invalid cluster membership timings")?;
    let (runtime, cluster) = Cluster::start(builder, options)
        .await
        .context("cannot join the cluster")?;
    if !poll_until(JOIN_DEADLINE, || cluster.is_serving()).await {
        anyhow::bail!("did not become a serving cluster member within {JOIN_DEADLINE:?}");
    }
    // Shards claimed from a former life of this node id (a restart right after a crash)
    // are served only once that life can no longer serve: let the start-up steps (catalog
    // rebuild, accounts) wait for that rather than fail. Two lease rounds begun since the
    // node is `Up` mean one has finished: its claims are in the table (an empty table
    // would pass the check before anything was claimed).
    let fence_after = cluster.membership().config().fence_after();
    let settle_deadline = fence_after + Duration::from_secs(2);
    let rounds_when_up = cluster.leases().stats().rounds;
    let settled = || {
        let leases = cluster.leases();
        leases.stats().rounds >= rounds_when_up + 2 && leases.serves_all_held()
    };
    if !poll_until(settle_deadline, settled).await {
        tracing::warn!("some claimed shards are still handed over; starting anyway");
    }
    tracing::info!(cluster_addr = %cluster_config.addr, "cluster member up");
    Ok((runtime, Some(cluster)))
}

/// Look at `done` every 50 ms until it holds (`true`) or `deadline` passes (`false`).
async fn poll_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(deadline, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

async fn open_store(
    config: &StoreConfig,
    data_dir: &Path,
    cache_mb: usize,
) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(match config {
        StoreConfig::Embedded { path } => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
            let options = emporium_store_embedded::EmbeddedOptions {
                cache_bytes: cache_mb.saturating_mul(1024 * 1024),
            };
            let store = emporium_store_embedded::EmbeddedStore::open_with(path, options)
                .with_context(|| format!("cannot open the embedded store at {}", path.display()))?;
            Arc::new(store)
        }
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
        StoreConfig::Postgres { url, pool_size } => {
            let mut options = emporium_store_postgres::PostgresOptions::default();
            if let Some(pool_size) = pool_size {
                options.pool_size = *pool_size;
            }
            let store = emporium_store_postgres::PostgresStore::connect(url, options)
                .await
                .context("cannot open the PostgreSQL store")?;
            Arc::new(store)
        }
        StoreConfig::Scylla {
            nodes,
            keyspace,
            user,
            password,
            replication_factor,
            datacenter,
            consistency,
            serial_consistency,
        } => {
            use emporium_config::{ScyllaConsistency, ScyllaSerialConsistency};
            use emporium_store_scylla::{ConsistencyLevel, SerialLevel};
            let mut options = emporium_store_scylla::ScyllaConfig::new(nodes.clone(), keyspace)
                .context("invalid ScyllaDB settings")?;
            options.user = user.clone();
            options.password = password.as_ref().map(|secret| secret.expose().to_owned());
            options.replication_factor = u32::from(*replication_factor);
            options.datacenter = datacenter.clone();
            options.consistency = match consistency {
                ScyllaConsistency::Quorum => ConsistencyLevel::Quorum,
                ScyllaConsistency::LocalQuorum => ConsistencyLevel::LocalQuorum,
                ScyllaConsistency::EachQuorum => ConsistencyLevel::EachQuorum,
                ScyllaConsistency::All => ConsistencyLevel::All,
            };
            options.serial_consistency = match serial_consistency {
                ScyllaSerialConsistency::Serial => SerialLevel::Serial,
                ScyllaSerialConsistency::LocalSerial => SerialLevel::LocalSerial,
            };
            let store = emporium_store_scylla::ScyllaStore::connect(options)
                .await
                .context("cannot open the ScyllaDB store")?;
            Arc::new(store)
        }
    })
}

/// Rate limits, login throttling, token revocations and the read cache: on Redis, shared by
/// every node, when `redis_url` is set; in this process otherwise.
async fn with_edge_services(state: AppState, config: &NodeConfig) -> anyhow::Result<AppState> {
    let rate = config.rate_limit.map(|limit| Rate {
        requests: limit.requests,
        per: limit.per,
        burst: limit.burst,
    });
    let limiter = RateLimiter::new(rate, config.trust_forwarded_for);
    let throttle = LoginThrottle::default();
    let Some(url) = &config.redis_url else {
        return Ok(state
            .with_rate_limiter(limiter)
            .with_login_throttle(throttle)
            .with_cache(ReadCache::local(DEFAULT_PAGE_TTL)));
    };
    let redis = emporium_redis::Redis::connect(
        url,
        &config.redis_prefix,
        emporium_redis::RedisOptions::default(),
    )
    .await
    .context("cannot use the redis URL")?;
    Ok(state
        .with_rate_limiter(
            limiter.with_shared(Arc::new(emporium_redis::RedisBuckets::new(redis.clone()))),
        )
        .with_login_throttle(
            throttle.with_shared(Arc::new(emporium_redis::RedisAttempts::new(redis.clone()))),
        )
        .with_revocations(Arc::new(emporium_redis::RedisRevocations::new(
            redis.clone(),
        )))
        .with_cache(ReadCache::new(
            Arc::new(emporium_redis::RedisPages::new(redis)),
            DEFAULT_PAGE_TTL,
        )))
}

fn with_metrics(state: AppState, metrics: Option<PrometheusHandle>) -> AppState {
    match metrics {
        Some(metrics) => state.with_metrics(metrics),
        None => state,
    }
}

/// The catalog's search index: in-process tantivy, or Meilisearch when `search` names one.
async fn search_index(config: &NodeConfig) -> anyhow::Result<Arc<dyn SearchIndex>> {
    let Some(address) = &config.search_url else {
        let index = TantivyIndex::new().context("cannot create the catalog search index")?;
        return Ok(Arc::new(index));
    };
    let settings = parse_meili_url(address).context("invalid EMPORIUM_SEARCH (search)")?;
    let index = MeiliIndex::from_settings(&settings)
        .await
        .context("cannot open the Meilisearch index (EMPORIUM_SEARCH)")?;
    tracing::info!(index = %settings.index, "search: Meilisearch");
    Ok(Arc::new(index))
}

/// The event bus: NATS JetStream when `events` names a server (the stream is created or
/// updated now), else the in-process bus (one node).
async fn event_bus(config: &NodeConfig) -> anyhow::Result<Arc<dyn EventBus>> {
    let Some(url) = &config.nats_url else {
        tracing::info!("events: in-process bus");
        return Ok(Arc::new(MemoryEventBus::default()));
    };
    let stream = &config.nats_stream;
    let settings = JetStreamSettings {
        stream: stream.name.clone(),
        max_age: stream.max_age,
        replicas: stream.replicas,
        duplicate_window: stream.duplicate_window,
        subject_prefix: stream.subject_prefix.clone(),
        ..JetStreamSettings::new(url.as_str())
    };
    let bus = JetStreamBus::start(settings)
        .await
        .context("cannot start the NATS JetStream event bus (EMPORIUM_EVENTS)")?;
    tracing::info!(stream = %stream.name, "events: NATS JetStream");
    Ok(Arc::new(bus))
}

/// The node's durable consumers: its own search projection (every product change, from
/// whichever node), then the domain's shared consumers.
fn start_consumers(state: &AppState, config: &NodeConfig) {
    let cache = state.cache.clone();
    let projection = state.catalog.projection(Arc::new(move || {
        let cache = cache.clone();
        Box::pin(async move { cache.invalidate(CATALOG).await })
    }));
    spawn_consumer(
        &state.runtime,
        search_consumer(&config.node_id),
        Arc::new(projection),
    );
    emporium_actors::consumers::start(&state.runtime);
}

/// Where notifications go: the configured SMTP server and webhooks, every other channel to
/// `sink` (the development sink the admin route reads).
fn notification_router(
    config: &NodeConfig,
    sink: Arc<emporium_actors::notification::DevSink>,
) -> anyhow::Result<emporium_actors::notification::ChannelRouter> {
    let settings = emporium_notify::NotifySettings {
        smtp_url: config.smtp_url.clone(),
        sms_webhook: config.sms_webhook.clone(),
        push_webhook: config.push_webhook.clone(),
        ..emporium_notify::NotifySettings::default()
    };
    emporium_notify::router_from_settings(&settings, sink)
        .context("invalid notification channel settings")
}

/// The domain's ports and settings: the built-in test payment gateway (the only one so
/// far), the shipping rate table, reservation TTL and payment deadline.
fn domain_ports(config: &NodeConfig) -> anyhow::Result<emporium_actors::DomainPorts> {
    let shipping = emporium_actors::shipping::ShippingRates::from_table(
        config
            .shipping_rates
            .iter()
            .map(|(country, cents)| (country.as_str(), *cents)),
    )
    .context("invalid EMPORIUM_SHIPPING_RATES (shipping_rates)")?;
    Ok(emporium_actors::DomainPorts {
        payments: emporium_actors::payment::PaymentProvider::Test,
        shipping,
        reservation_ttl: config.reservation_ttl,
        payment_timeout: config.payment_timeout,
        cart_abandon_after: config.cart_abandon_after,
        experiments: emporium_actors::experiments::Experiments::parse(&config.experiments)
            .context("invalid EMPORIUM_EXPERIMENTS (experiments)")?,
        notifications: notification_router(config, Arc::default())?,
        notification_admins: config
            .admin
            .iter()
            .filter_map(|admin| emporium_actors::Email::parse(&admin.email).ok())
            .collect(),
    })
}

/// The configured secret, or one generated on first start and kept in the data dir, so
/// tokens stay valid across restarts. (A cluster must configure one shared secret.)
fn jwt_secret(config: &NodeConfig) -> anyhow::Result<String> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.expose().to_owned());
    }
    let path = config.data_dir.join(JWT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} holds a secret shorter than 32 bytes", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a token secret for this data dir");
    Ok(secret)
}

/// Write a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
