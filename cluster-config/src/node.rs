//! [`NodeConfig`]: every setting of one node, typed and validated.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Cli;
use crate::error::ConfigError;
use crate::fields;
use crate::file;
use crate::layers::{self, Layer, Resolved};
use crate::secret::Secret;
use crate::store::StoreConfig;
use crate::values;

/// The environment variable naming the TOML file (`--config` wins over it).
pub const CONFIG_ENV: &str = "EMPORIUM_CONFIG";

/// Largest accepted `max_body_bytes`: 16 MiB.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Shortest accepted `jwt_secret`, in bytes.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

/// Shortest accepted `admin_token`, in bytes.
pub const ADMIN_TOKEN_MIN_BYTES: usize = 32;

/// The configuration of one node. Build it with [`NodeConfig::load`].
///
/// `Debug` never shows secrets (nor URL passwords); `Display` is the
/// one-line start-up summary.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Where the HTTP API listens (`http_addr`).
    pub http_addr: SocketAddr,
    /// Local state directory (`data_dir`).
    pub data_dir: PathBuf,
    /// The state store (`store` plus `[postgres]` / `[scylla]`).
    pub store: StoreConfig,
    /// Passivate actors idle this long (`idle_timeout`, > 0).
    pub idle_timeout: Duration,
    /// Most actors in memory at once (`max_active_actors`, > 0).
    pub max_active_actors: usize,
    /// MiB of pages the embedded store may cache (`store_cache_mb`, 1..=65536).
    pub store_cache_mb: usize,
    /// This node's name (`node_id`).
    pub node_id: String,
    /// Seed demo data into an empty store (`demo`).
    pub demo: bool,
    /// HTTP request deadline (`request_timeout`, > 0).
    pub request_timeout: Duration,
    /// Largest HTTP request body (`max_body_bytes`, 1..=16 MiB).
    pub max_body_bytes: usize,
    /// tracing env-filter directives (`log`), already checked to parse.
    pub log: String,
    /// Where spans are exported over OTLP/HTTP (`otlp_endpoint`): the collector's base
    /// URL, `http://` only (`/v1/traces` is appended); `None`: no export.
    pub otlp_endpoint: Option<String>,
    /// Token signing key (`jwt_secret`), at least 32 bytes when set.
    pub jwt_secret: Option<Secret>,
    /// Admin account to create at start-up (`admin_email` + `admin_password`).
    pub admin: Option<AdminCredentials>,
    /// `redis://` or `rediss://` URL (`redis_url`).
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`redis_prefix`).
    pub redis_prefix: String,
    /// Per-client and per-user request limit (`rate_limit` + `rate_burst`); `None` is off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Take the client address from `X-Forwarded-For` (`trust_forwarded_for`).
    pub trust_forwarded_for: bool,
    /// The Meilisearch address (`search`), or `None` for the in-process tantivy index.
    pub search_url: Option<String>,
    /// Where domain events go (`events`): the NATS JetStream URL, or `None` for the
    /// in-process bus (`memory`, single node only).
    pub nats_url: Option<String>,
    /// Events pending on one node before commits that raise events are refused
    /// (`outbox_limit`).
    pub outbox_limit: usize,
    /// The JetStream stream of the events (`nats_stream`, `nats_max_age`, `nats_replicas`,
    /// `nats_duplicate_window`); used only when `nats_url` is set.
    pub nats_stream: NatsStreamConfig,
    /// Cluster mode: `Some` exactly when `cluster_addr` is set.
    pub cluster: Option<ClusterConfig>,
    /// Stock reservation lifetime (`reservation_ttl`, > 0).
    pub reservation_ttl: Duration,
    /// Payment gateway call deadline (`payment_timeout`, > 0).
    pub payment_timeout: Duration,
    /// Shipping rate table (`shipping_rates`): country code, or `*` for the default, to
    /// cents.
    pub shipping_rates: BTreeMap<String, u64>,
    /// Inactivity after which a cart with items raises `CartAbandoned`
    /// (`cart_abandon_after`, > 0).
    pub cart_abandon_after: Duration,
    /// Notification channels (`smtp_url`, `sms_webhook`, `push_webhook`); an unset one goes
    /// to the development sink.
    pub smtp_url: Option<String>,
    pub sms_webhook: Option<String>,
    pub push_webhook: Option<String>,
    /// A/B experiments as written (`experiments`); parsed by the domain, which owns the
    /// syntax, when the node starts.
    pub experiments: String,
    /// The admin gRPC API: `Some` exactly when `admin_addr` is set.
    pub admin_api: Option<AdminApiConfig>,
}

/// The admin gRPC API (`admin_addr`, `admin_token`, `admin_tls_cert` + `admin_tls_key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminApiConfig {
    /// Where it listens (`admin_addr`).
    pub addr: SocketAddr,
    /// A static bearer token (`admin_token`, at least [`ADMIN_TOKEN_MIN_BYTES`]); admin users'
    /// access tokens are accepted whether or not it is set.
    pub token: Option<Secret>,
    /// Serve TLS with these PEM files; `None`: plain HTTP/2.
    pub tls: Option<AdminTls>,
}

/// The admin API's certificate chain and private key, PEM files (both or neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTls {
    /// `admin_tls_cert`.
    pub cert: PathBuf,
    /// `admin_tls_key`.
    pub key: PathBuf,
}

/// The JetStream stream the events go to, created or updated at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsStreamConfig {
    /// Stream name (`nats_stream`).
    pub name: String,
    /// Events older than this are dropped (`nats_max_age`, > 0).
    pub max_age: Duration,
    /// Copies in the NATS cluster (`nats_replicas`, 1..=5).
    pub replicas: usize,
    /// How long an event id is remembered for deduplication (`nats_duplicate_window`,
    /// > 0 and at most `nats_max_age`, as JetStream requires).
    pub duplicate_window: Duration,
    /// Namespace of the subjects on the server (`nats_subject_prefix`; empty: none).
    pub subject_prefix: String,
}

impl NatsStreamConfig {
    /// JetStream allows at most this many replicas.
    pub const MAX_REPLICAS: usize = 5;
}

impl Default for NatsStreamConfig {
    fn default() -> Self {
        NatsStreamConfig {
            name: "EMPORIUM".to_owned(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            subject_prefix: String::new(),
        }
    }
}

/// A token bucket: `requests` per `per` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `rate_limit`, the count (`50` of `50/s`).
    pub requests: u32,
    /// `rate_limit`, the unit (`1s` of `50/s`).
    pub per: Duration,
    /// `rate_burst`.
    pub burst: u32,
}

/// The admin account: both halves or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCredentials {
    /// `admin_email`.
    pub email: String,
    /// `admin_password`.
    pub password: Secret,
}

/// Cluster mode. Only valid with a shared store (postgres or scylla).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Address for node-to-node traffic (`cluster_addr`).
    pub addr: SocketAddr,
    /// Other nodes to join through, `host:port` (`seeds`); empty for the
    /// first node.
    pub seeds: Vec<String>,
    /// The secret the nodes authenticate each other with (`cluster_secret`).
    pub secret: Secret,
    /// Failure detection (`heartbeat_interval`, `suspect_after`, `dead_after`,
    /// `crash_confirm`) and forgetting (`forget_after`); every node of a cluster must use
    /// the same values.
    pub timings: MembershipTimings,
}

/// The membership timings of a cluster node, checked against each other at load (the
/// runtime checks the same relations again when it joins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipTimings {
    /// How often a node writes its member row and reads everyone's (`heartbeat_interval`).
    pub heartbeat_interval: Duration,
    /// Silence after which a member is suspect (`suspect_after`).
    pub suspect_after: Duration,
    /// Silence after which a member is dead and its shards move (`dead_after`).
    pub dead_after: Duration,
    /// How long a member whose cluster port refuses connections must stay silent in the
    /// store to be judged crashed (`crash_confirm`; default `heartbeat_interval + 100ms`).
    pub crash_confirm: Duration,
    /// How long a member must have been down, or judged dead, before its row is removed
    /// from the store and forgotten (`forget_after`; default 1 h).
    pub forget_after: Duration,
}

impl MembershipTimings {
    /// `crash_confirm`'s margin over `heartbeat_interval` when it is not set.
    pub const CRASH_CONFIRM_MARGIN: Duration = Duration::from_millis(100);
    /// `forget_after` is at least this many times `dead_after` (the runtime's rule).
    pub const FORGET_AFTER_DEAD_AFTERS: u32 = 3;
}

impl Default for MembershipTimings {
    fn default() -> Self {
        let heartbeat_interval = Duration::from_millis(500);
        MembershipTimings {
            heartbeat_interval,
            suspect_after: Duration::from_secs(2),
            dead_after: Duration::from_secs(5),
            crash_confirm: heartbeat_interval + Self::CRASH_CONFIRM_MARGIN,
            forget_after: Duration::from_secs(3600),
        }
    }
}

impl NodeConfig {
    /// Loads the configuration: built-in defaults, then the TOML file
    /// (`--config FILE`, else `EMPORIUM_CONFIG`), then the environment, then
    /// the flags; the highest layer that sets a field wins.
    ///
    /// `args` includes the program name, as `std::env::args_os()` does. `env`
    /// looks up an environment variable (`|k| std::env::var(k).ok()` in the
    /// binary, a map in tests); the process environment is never read
    /// directly. The only other input is `/etc/hostname`, for the default
    /// `node_id` when `HOSTNAME` is not set.
    ///
    /// `--help` and `--version` come back as [`ConfigError::Cli`]: call
    /// [`ConfigError::exit`] to print them and exit 0.
    pub fn load(
        args: impl IntoIterator<Item = OsString>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let cli = Cli::parse(args)?;
        let file = match config_path(&cli, env) {
            Some((path, named_by)) => file::read(&path, named_by)?,
            None => Layer::new(),
        };
        let resolved = layers::resolve(
            layers::defaults(env, &layers::read_etc_hostname),
            file,
            layers::from_env(env),
            cli.layer(),
        );
        NodeConfig::from_resolved(&resolved)
    }

    /// Types and checks each field, then the rules between fields.
    fn from_resolved(r: &Resolved) -> Result<NodeConfig, ConfigError> {
        let data_dir = r.required(&fields::DATA_DIR, |t| {
            if t.trim().is_empty() {
                Err("a directory path".to_owned())
            } else {
                Ok(PathBuf::from(t))
            }
        })?;
        let store = StoreConfig::from_resolved(r, &data_dir)?;
        let http_addr = r.required(&fields::HTTP_ADDR, values::socket_addr)?;
        let admin_email = r.optional(&fields::ADMIN_EMAIL, values::email)?;
        let admin_password = r.optional(&fields::ADMIN_PASSWORD, |t| Ok(Secret::new(t)))?;
        let admin = match (admin_email, admin_password) {
            (Some(email), Some(password)) => Some(AdminCredentials { email, password }),
            (None, None) => None,
            _ => {
                return Err(r.both_or_neither(&fields::ADMIN_EMAIL, &fields::ADMIN_PASSWORD));
            }
        };
        let config = NodeConfig {
            http_addr,
            store,
            idle_timeout: r.required(&fields::IDLE_TIMEOUT, values::positive_duration)?,
            max_active_actors: r.required(&fields::MAX_ACTIVE_ACTORS, |t| {
                values::integer_in(t, 1, usize::MAX)
            })?,
            store_cache_mb: r.required(&fields::STORE_CACHE_MB, |t| {
                values::integer_in(t, 1, 65_536)
            })?,
            node_id: r.required(&fields::NODE_ID, values::node_id)?,
            demo: r.required(&fields::DEMO, values::boolean)?,
            request_timeout: r.required(&fields::REQUEST_TIMEOUT, values::positive_duration)?,
            max_body_bytes: r.required(&fields::MAX_BODY_BYTES, |t| {
                values::integer_in(t, 1, MAX_BODY_BYTES_LIMIT)
            })?,
            log: r.required(&fields::LOG, values::log_filter)?,
            otlp_endpoint: r.optional(&fields::OTLP_ENDPOINT, |t| {
                values::url_with_scheme(t, &["http"])
            })?,
            jwt_secret: r.optional(&fields::JWT_SECRET, |t| {
                if t.len() >= JWT_SECRET_MIN_BYTES {
                    Ok(Secret::new(t))
                } else {
                    Err(format!(
                        "at least {JWT_SECRET_MIN_BYTES} bytes (it has {}); e.g. 64 hex digits from `openssl rand -hex 32`",
                        t.len()
                    ))
                }
            })?,
            admin,
            redis_url: r.optional(&fields::REDIS_URL, |t| {
                values::url_with_scheme(t, &["redis", "rediss"])
            })?,
            redis_prefix: r.required(&fields::REDIS_PREFIX, values::key_prefix)?,
            rate_limit: rate_limit(r)?,
            trust_forwarded_for: r.required(&fields::TRUST_FORWARDED_FOR, values::boolean)?,
            search_url: r.required(&fields::SEARCH, values::search)?,
            nats_url: r.required(&fields::EVENTS, values::events)?,
            outbox_limit: r.required(&fields::OUTBOX_LIMIT, |t| {
                values::integer_in(t, 1, 100_000_000)
            })?,
            nats_stream: nats_stream(r)?,
            cluster: cluster(r, http_addr)?,
            reservation_ttl: r.required(&fields::RESERVATION_TTL, values::positive_duration)?,
            payment_timeout: r.required(&fields::PAYMENT_TIMEOUT, values::positive_duration)?,
            shipping_rates: r.required(&fields::SHIPPING_RATES, values::shipping_rates)?,
            cart_abandon_after: r
                .required(&fields::CART_ABANDON_AFTER, values::positive_duration)?,
            experiments: r.required(&fields::EXPERIMENTS, |t| Ok(t.trim().to_owned()))?,
            smtp_url: r.optional(&fields::SMTP_URL, |t| {
                values::url_with_scheme(t, &["smtp", "smtps"])
            })?,
            sms_webhook: r.optional(&fields::SMS_WEBHOOK, |t| values::url_with_scheme(t, &["http"]))?,
            push_webhook: r.optional(&fields::PUSH_WEBHOOK, |t| {
                values::url_with_scheme(t, &["http"])
            })?,
            admin_api: admin_api(r, http_addr)?,
            data_dir,
        };
        config.check_cluster_store(r)?;
        config.check_cluster_events(r)?;
        Ok(config)
    }

    /// Cluster mode needs events every node sees: each node's search index follows every
    /// product change, and an event must outlive the node that relayed it.
    fn check_cluster_events(&self, r: &Resolved) -> Result<(), ConfigError> {
        if self.cluster.is_some() && self.nats_url.is_none() {
            return Err(ConfigError::Conflict {
                message: format!(
                    "cluster mode needs events on NATS JetStream ({} = nats://host:port); the in-process bus is single-node: {} is set",
                    r.describe(&fields::EVENTS),
                    r.describe(&fields::CLUSTER_ADDR),
                ),
            });
        }
        Ok(())
    }

    /// Cluster mode needs a store every node can reach.
    fn check_cluster_store(&self, r: &Resolved) -> Result<(), ConfigError> {
        if self.cluster.is_some() && !self.store.is_shared() {
            return Err(ConfigError::Conflict {
                message: format!(
                    "cluster mode needs a shared store (postgres:// or scylla://); the {} store is single-node: {} is set, but {} = {:?}",
                    self.store.kind(),
                    r.describe(&fields::CLUSTER_ADDR),
                    r.describe(&fields::STORE),
                    self.store.kind(),
                ),
            });
        }
        Ok(())
    }
}

/// `rate_limit` and `rate_burst`; the burst is checked even when limiting is off.
fn rate_limit(r: &Resolved) -> Result<Option<RateLimitConfig>, ConfigError> {
    let rate = r.required(&fields::RATE_LIMIT, values::rate)?;
    let burst = r.required(&fields::RATE_BURST, |t| {
        values::integer_in(t, 1u32, 1_000_000)
    })?;
    Ok(rate.map(|(requests, per)| RateLimitConfig {
        requests,
        per,
        burst,
    }))
}

/// The stream settings, checked even without `nats_url` so a bad file fails at once.
fn nats_stream(r: &Resolved) -> Result<NatsStreamConfig, ConfigError> {
    let name = r.required(&fields::NATS_STREAM, values::stream_name)?;
    let max_age = r.required(&fields::NATS_MAX_AGE, values::positive_duration)?;
    let replicas = r.required(&fields::NATS_REPLICAS, |t| {
        values::integer_in(t, 1, NatsStreamConfig::MAX_REPLICAS)
    })?;
    let duplicate_window = r.required(&fields::NATS_DUPLICATE_WINDOW, values::positive_duration)?;
    if duplicate_window > max_age {
        // JetStream refuses such a stream; say so now rather than at the first publish.
        return Err(ConfigError::Conflict {
            message: format!(
                "{} = {} must not be longer than {} = {}",
                r.describe(&fields::NATS_DUPLICATE_WINDOW),
                humantime::format_duration(duplicate_window),
                r.describe(&fields::NATS_MAX_AGE),
                humantime::format_duration(max_age),
            ),
        });
    }
    let subject_prefix = r.required(&fields::NATS_SUBJECT_PREFIX, values::subject_prefix)?;
    Ok(NatsStreamConfig {
        name,
        max_age,
        replicas,
        duplicate_window,
        subject_prefix,
    })
}

/// The cluster fields: all or nothing, keyed on `cluster_addr`.
fn cluster(r: &Resolved, http_addr: SocketAddr) -> Result<Option<ClusterConfig>, ConfigError> {
    let addr = r.optional(&fields::CLUSTER_ADDR, values::socket_addr)?;
    let seeds = r
        .optional(&fields::SEEDS, values::seeds)?
        .unwrap_or_default();
    let secret = r.optional(&fields::CLUSTER_SECRET, |t| Ok(Secret::new(t)))?;
    let Some(addr) = addr else {
        if !seeds.is_empty() {
            return Err(ConfigError::Conflict {
                message: format!(
                    "{} lists nodes to join, but cluster mode is off: set {} too",
                    r.describe(&fields::SEEDS),
                    r.describe(&fields::CLUSTER_ADDR),
                ),
            });
        }
        return Ok(None);
    };
    if addr.port() != 0 && addr == http_addr {
        return Err(ConfigError::Conflict {
            message: format!(
                "{} and {} are both {addr}: the cluster and the HTTP API need different ports",
                r.describe(&fields::CLUSTER_ADDR),
                r.describe(&fields::HTTP_ADDR),
            ),
        });
    }
    let Some(secret) = secret else {
        return Err(ConfigError::Conflict {
            message: format!(
                "cluster mode needs a shared secret: {} is set, but {} is not",
                r.describe(&fields::CLUSTER_ADDR),
                r.describe(&fields::CLUSTER_SECRET),
            ),
        });
    };
    Ok(Some(ClusterConfig {
        addr,
        seeds,
        secret,
        timings: timings(r)?,
    }))
}

/// The admin API's fields: keyed on `admin_addr`; the token and the TLS files mean nothing
/// without it, and the TLS files go together.
fn admin_api(r: &Resolved, http_addr: SocketAddr) -> Result<Option<AdminApiConfig>, ConfigError> {
    let addr = r.optional(&fields::ADMIN_ADDR, values::socket_addr)?;
    let token = r.optional(&fields::ADMIN_TOKEN, |t| {
        if t.len() >= ADMIN_TOKEN_MIN_BYTES {
            Ok(Secret::new(t))
        } else {
            Err(format!(
                "at least {ADMIN_TOKEN_MIN_BYTES} bytes (it has {}); e.g. 64 hex digits from `openssl rand -hex 32`",
                t.len()
            ))
        }
    })?;
    let path = |t: &str| {
        if t.trim().is_empty() {
            Err("a file path".to_owned())
        } else {
            Ok(PathBuf::from(t))
        }
    };
    let cert = r.optional(&fields::ADMIN_TLS_CERT, path)?;
    let key = r.optional(&fields::ADMIN_TLS_KEY, path)?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(AdminTls { cert, key }),
        (None, None) => None,
        _ => {
            return Err(r.both_or_neither(&fields::ADMIN_TLS_CERT, &fields::ADMIN_TLS_KEY));
        }
    };
    let Some(addr) = addr else {
        let orphan = [&fields::ADMIN_TOKEN, &fields::ADMIN_TLS_CERT]
            .into_iter()
            .find(|field| r.is_set(field));
        return match orphan {
            Some(field) => Err(ConfigError::Conflict {
                message: format!(
                    "{} is set, but the admin API is off: set {} too",
                    r.describe(field),
                    r.describe(&fields::ADMIN_ADDR),
                ),
            }),
            None => Ok(None),
        };
    };
    if addr.port() != 0 && addr == http_addr {
        return Err(ConfigError::Conflict {
            message: format!(
                "{} and {} are both {addr}: the admin API and the HTTP API need different ports",
                r.describe(&fields::ADMIN_ADDR),
                r.describe(&fields::HTTP_ADDR),
            ),
        });
    }
    Ok(Some(AdminApiConfig { addr, token, tls }))
}

/// The membership timings, each a positive duration, and the relations between them:
/// `suspect_after > heartbeat_interval`, `dead_after > suspect_after`,
/// `dead_after >= 3 × heartbeat_interval`, `heartbeat_interval < crash_confirm < dead_after`,
/// `forget_after >= 3 × dead_after`.
fn timings(r: &Resolved) -> Result<MembershipTimings, ConfigError> {
    let heartbeat_interval = r.required(&fields::HEARTBEAT_INTERVAL, values::positive_duration)?;
    let suspect_after = r.required(&fields::SUSPECT_AFTER, values::positive_duration)?;
    let dead_after = r.required(&fields::DEAD_AFTER, values::positive_duration)?;
    let forget_after = r.required(&fields::FORGET_AFTER, values::positive_duration)?;
    let crash_confirm = r
        .optional(&fields::CRASH_CONFIRM, values::positive_duration)?
        .unwrap_or(heartbeat_interval + MembershipTimings::CRASH_CONFIRM_MARGIN);
    let d = |d: Duration| humantime::format_duration(d).to_string();
    let conflict = |message: String| Err(ConfigError::Conflict { message });
    if suspect_after <= heartbeat_interval {
        return conflict(format!(
            "{} = {} must be longer than {} = {}: one late heartbeat is not suspicious",
            r.describe(&fields::SUSPECT_AFTER),
            d(suspect_after),
            r.describe(&fields::HEARTBEAT_INTERVAL),
            d(heartbeat_interval),
        ));
    }
    if dead_after <= suspect_after {
        return conflict(format!(
            "{} = {} must be longer than {} = {}",
            r.describe(&fields::DEAD_AFTER),
            d(dead_after),
            r.describe(&fields::SUSPECT_AFTER),
            d(suspect_after),
        ));
    }
    if dead_after < heartbeat_interval * 3 {
        return conflict(format!(
            "{} = {} must be at least three times {} = {}: a live node must never look dead, and must fence itself before the others can see it dead",
            r.describe(&fields::DEAD_AFTER),
            d(dead_after),
            r.describe(&fields::HEARTBEAT_INTERVAL),
            d(heartbeat_interval),
        ));
    }
    if crash_confirm <= heartbeat_interval {
        return conflict(format!(
            "{} = {} must be longer than {} = {}: a live node must have written its row within it",
            r.describe(&fields::CRASH_CONFIRM),
            d(crash_confirm),
            r.describe(&fields::HEARTBEAT_INTERVAL),
            d(heartbeat_interval),
        ));
    }
    if crash_confirm >= dead_after {
        return conflict(format!(
            "{} = {} must be shorter than {} = {}",
            r.describe(&fields::CRASH_CONFIRM),
            d(crash_confirm),
            r.describe(&fields::DEAD_AFTER),
            d(dead_after),
        ));
    }
    if forget_after < dead_after * MembershipTimings::FORGET_AFTER_DEAD_AFTERS {
        return conflict(format!(
            "{} = {} must be at least {} × {} = {}: a dead member must stay known until its shards have moved and their hand-overs expired",
            r.describe(&fields::FORGET_AFTER),
            d(forget_after),
            MembershipTimings::FORGET_AFTER_DEAD_AFTERS,
            r.describe(&fields::DEAD_AFTER),
            d(dead_after),
        ));
    }
    Ok(MembershipTimings {
        heartbeat_interval,
        suspect_after,
        dead_after,
        crash_confirm,
        forget_after,
    })
}

/// Which file to read: `--config`, else `EMPORIUM_CONFIG`, else none (an
/// empty value means none too).
fn config_path(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Option<(PathBuf, &'static str)> {
    match &cli.config {
        Some(path) => Some((path.clone(), "--config")),
        None => env(CONFIG_ENV)
            .filter(|p| !p.trim().is_empty())
            .map(|p| (PathBuf::from(p), CONFIG_ENV)),
    }
    .filter(|(path, _)| !path.as_os_str().is_empty())
}

impl Default for NodeConfig {
    /// The built-in defaults, as [`NodeConfig::load`] returns them with no
    /// file, variables or flags, except that `node_id` is `node-1` (no
    /// host-name lookup). Handy in tests with struct update syntax.
    fn default() -> Self {
        let data_dir = PathBuf::from("./data");
        NodeConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: StoreConfig::Embedded {
                path: data_dir.join("store.redb"),
            },
            data_dir,
            idle_timeout: Duration::from_secs(5 * 60),
            max_active_actors: 100_000,
            store_cache_mb: 64,
            node_id: "node-1".to_owned(),
            demo: true,
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            log: "info".to_owned(),
            otlp_endpoint: None,
            jwt_secret: None,
            admin: None,
            redis_url: None,
            redis_prefix: "emporium".to_owned(),
            rate_limit: Some(RateLimitConfig {
                requests: 50,
                per: Duration::from_secs(1),
                burst: 100,
            }),
            trust_forwarded_for: false,
            search_url: None,
            nats_url: None,
            outbox_limit: 100_000,
            nats_stream: NatsStreamConfig::default(),
            cluster: None,
            reservation_ttl: Duration::from_secs(15 * 60),
            payment_timeout: Duration::from_secs(5),
            shipping_rates: [("US", 500), ("DE", 900), ("*", 1500)]
                .into_iter()
                .map(|(country, cents)| (country.to_owned(), cents))
                .collect(),
            cart_abandon_after: Duration::from_secs(60 * 60),
            experiments: String::new(),
            smtp_url: None,
            sms_webhook: None,
            push_webhook: None,
            admin_api: None,
        }
    }
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let NodeConfig {
            http_addr,
            data_dir,
            store,
            idle_timeout,
            max_active_actors,
            store_cache_mb,
            node_id,
            demo,
            request_timeout,
            max_body_bytes,
            log,
            otlp_endpoint,
            jwt_secret,
            admin,
            redis_url,
            redis_prefix,
            rate_limit,
            trust_forwarded_for,
            search_url,
            nats_url,
            outbox_limit,
            nats_stream,
            cluster,
            reservation_ttl,
            payment_timeout,
            shipping_rates,
            cart_abandon_after,
            experiments,
            smtp_url,
            sms_webhook,
            push_webhook,
            admin_api,
        } = self;
        let masked = |u: &Option<String>| u.as_deref().map(values::mask_url);
        f.debug_struct("NodeConfig")
            .field("http_addr", http_addr)
            .field("data_dir", data_dir)
            .field("store", store)
            .field("idle_timeout", idle_timeout)
            .field("max_active_actors", max_active_actors)
            .field("store_cache_mb", store_cache_mb)
            .field("node_id", node_id)
            .field("demo", demo)
            .field("request_timeout", request_timeout)
            .field("max_body_bytes", max_body_bytes)
            .field("log", log)
            .field("otlp_endpoint", &masked(otlp_endpoint))
            .field("jwt_secret", jwt_secret)
            .field("admin", admin)
            .field("redis_url", &masked(redis_url))
            .field("redis_prefix", redis_prefix)
            .field("rate_limit", rate_limit)
            .field("trust_forwarded_for", trust_forwarded_for)
            .field("search_url", &masked(search_url))
            .field("nats_url", &masked(nats_url))
            .field("outbox_limit", outbox_limit)
            .field("nats_stream", nats_stream)
            .field("cluster", cluster)
            .field("reservation_ttl", reservation_ttl)
            .field("payment_timeout", payment_timeout)
            .field("shipping_rates", shipping_rates)
            .field("cart_abandon_after", cart_abandon_after)
            .field("experiments", experiments)
            .field("smtp_url", &masked(smtp_url))
            .field("sms_webhook", &masked(sms_webhook))
            .field("push_webhook", &masked(push_webhook))
            .field("admin_api", admin_api)
            .finish()
    }
}

impl fmt::Display for NodeConfig {
    /// One line for the start-up log; secrets show as `set`, URL passwords
    /// as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<Secret>| if s.is_some() { "set" } else { "unset" };
        let url = |u: &Option<String>| u.as_deref().map_or("off".to_owned(), values::mask_url);
        write!(
            f,
            "node_id={} http_addr={} store={} data_dir={} idle_timeout={} max_active_actors={} \
             store_cache_mb={} demo={} request_timeout={} max_body_bytes={} log={:?} jwt_secret={} admin={} \
             redis_url={} events={} otlp={} admin_api={} cluster=",
            self.node_id,
            self.http_addr,
            self.store,
            self.data_dir.display(),
            humantime::format_duration(self.idle_timeout),
            self.max_active_actors,
            self.store_cache_mb,
            self.demo,
            humantime::format_duration(self.request_timeout),
            self.max_body_bytes,
            self.log,
            set(&self.jwt_secret),
            self.admin.as_ref().map_or("off", |a| a.email.as_str()),
            url(&self.redis_url),
            self.nats_url
                .as_deref()
                .map_or("memory".to_owned(), values::mask_url),
            url(&self.otlp_endpoint),
            self.admin_api
                .as_ref()
                .map_or("off".to_owned(), |api| format!(
                    "{} admin_token={} admin_tls={}",
                    api.addr,
                    set(&api.token),
                    if api.tls.is_some() { "on" } else { "off" },
                )),
        )?;
        match &self.cluster {
            None => f.write_str("off"),
            Some(c) => write!(
                f,
                "{} seeds=[{}] cluster_secret=set heartbeat_interval={} suspect_after={} \
                 dead_after={} crash_confirm={} forget_after={}",
                c.addr,
                c.seeds.join(","),
                humantime::format_duration(c.timings.heartbeat_interval),
                humantime::format_duration(c.timings.suspect_after),
                humantime::format_duration(c.timings.dead_after),
                humantime::format_duration(c.timings.crash_confirm),
                humantime::format_duration(c.timings.forget_after),
            ),
        }
    }
}
