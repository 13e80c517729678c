//! The catalogue of settings: one [`Field`] per setting, naming it in each
//! layer (TOML key, environment variable, flag) with its built-in default.
//!
//! Every other module goes through this table, so a setting's names are
//! spelled exactly once, and the error messages, `--help` and README cannot
//! drift apart.

/// How much of a value may be shown in an error message or a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Shown as is.
    Plain,
    /// A URL that may carry a password: shown with its credentials masked.
    Url,
    /// Never shown.
    Secret,
}

/// One setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The TOML key; dotted for the keys of a table (`scylla.user`).
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The command-line flag, for the settings that have one (secrets have
    /// none: a flag shows up in `ps`).
    pub flag: Option<&'static str>,
    /// The built-in default, as text parsed like any other layer's value;
    /// `None` when the setting is optional or computed (`node_id`).
    pub default: Option<&'static str>,
    pub shown: Shown,
    /// One line for `--help`.
    pub help: &'static str,
}

impl Field {
    /// The `--help` text of the flag: meaning, env var, default.
    pub(crate) fn flag_help(&self) -> String {
        let default = match self.default {
            Some(d) => format!(" [default: {d}]"),
            None => String::new(),
        };
        format!("{} [env: {}]{default}", self.help, self.env)
    }
}

const fn field(
    key: &'static str,
    env: &'static str,
    flag: Option<&'static str>,
    default: Option<&'static str>,
    shown: Shown,
    help: &'static str,
) -> Field {
    Field {
        key,
        env,
        flag,
        default,
        shown,
        help,
    }
}

use Shown::{Plain, Secret, Url};

pub(crate) const HTTP_ADDR: Field = field(
    "http_addr",
    "EMPORIUM_HTTP_ADDR",
    Some("--http-addr"),
    Some("127.0.0.1:8080"),
    Plain,
    "Address the HTTP API listens on (port 0 picks a free port)",
);
pub(crate) const DATA_DIR: Field = field(
    "data_dir",
    "EMPORIUM_DATA_DIR",
    Some("--data-dir"),
    Some("./data"),
    Plain,
    "Directory for local state (the embedded store lives here)",
);
pub(crate) const STORE: Field = field(
    "store",
    "EMPORIUM_STORE",
    Some("--store"),
    Some("embedded"),
    Url,
    "State store: embedded[:PATH], memory, postgres://..., scylla://HOST:PORT,.../KEYSPACE",
);
pub(crate) const IDLE_TIMEOUT: Field = field(
    "idle_timeout",
    "EMPORIUM_IDLE_TIMEOUT",
    Some("--idle-timeout"),
    Some("5m"),
    Plain,
    "Passivate an actor after this long without messages",
);
pub(crate) const MAX_ACTIVE_ACTORS: Field = field(
    "max_active_actors",
    "EMPORIUM_MAX_ACTIVE_ACTORS",
    Some("--max-active-actors"),
    Some("100000"),
    Plain,
    "Most actors kept in memory at once on this node",
);
pub(crate) const STORE_CACHE_MB: Field = field(
    "store_cache_mb",
    "EMPORIUM_STORE_CACHE_MB",
    None,
    Some("64"),
    Plain,
    "MiB of pages the embedded store caches in memory (other stores ignore it)",
);
pub(crate) const NODE_ID: Field = field(
    "node_id",
    "EMPORIUM_NODE_ID",
    Some("--node-id"),
    None,
    Plain,
    "This node's name [default: node-<hostname>]",
);
pub(crate) const DEMO: Field = field(
    "demo",
    "EMPORIUM_DEMO",
    Some("--demo"),
    Some("true"),
    Plain,
    "Seed demo data when the store is empty (--no-demo to turn off)",
);
pub(crate) const REQUEST_TIMEOUT: Field = field(
    "request_timeout",
    "EMPORIUM_REQUEST_TIMEOUT",
    Some("--request-timeout"),
    Some("10s"),
    Plain,
    "Fail an HTTP request that takes longer than this",
);
pub(crate) const MAX_BODY_BYTES: Field = field(
    "max_body_bytes",
    "EMPORIUM_MAX_BODY_BYTES",
    Some("--max-body-bytes"),
    Some("65536"),
    Plain,
    "Largest accepted HTTP request body, in bytes (1..=16777216)",
);
pub(crate) const LOG: Field = field(
    "log",
    "EMPORIUM_LOG",
    Some("--log"),
    Some("info"),
    Plain,
    "Log filter, tracing env-filter syntax (e.g. info,emporium=debug)",
);
pub(crate) const OTLP_ENDPOINT: Field = field(
    "otlp_endpoint",
    "EMPORIUM_OTLP_ENDPOINT",
    None,
    None,
    Url,
    "Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318 (optional; off when unset)",
);
pub(crate) const JWT_SECRET: Field = field(
    "jwt_secret",
    "EMPORIUM_JWT_SECRET",
    None,
    None,
    Secret,
    "Key that signs session tokens (at least 32 bytes)",
);
pub(crate) const ADMIN_EMAIL: Field = field(
    "admin_email",
    "EMPORIUM_ADMIN_EMAIL",
    None,
    None,
    Plain,
    "E-mail of the admin account to create at start-up (with admin_password)",
);
pub(crate) const ADMIN_PASSWORD: Field = field(
    "admin_password",
    "EMPORIUM_ADMIN_PASSWORD",
    None,
    None,
    Secret,
    "Password of that admin account (with admin_email)",
);
pub(crate) const REDIS_URL: Field = field(
    "redis_url",
    "EMPORIUM_REDIS_URL",
    None,
    None,
    Url,
    "Redis for rate limits, login throttling, revocations and the read cache, redis://... (optional)",
);
pub(crate) const REDIS_PREFIX: Field = field(
    "redis_prefix",
    "EMPORIUM_REDIS_PREFIX",
    None,
    Some("emporium"),
    Plain,
    "Prefix of every Redis key this node writes (nodes of one shop share it)",
);
pub(crate) const RATE_LIMIT: Field = field(
    "rate_limit",
    "EMPORIUM_RATE_LIMIT",
    None,
    Some("50/s"),
    Plain,
    "Requests per client and per user, e.g. 50/s, 600/m; off turns limiting off",
);
pub(crate) const RATE_BURST: Field = field(
    "rate_burst",
    "EMPORIUM_RATE_BURST",
    None,
    Some("100"),
    Plain,
    "Requests a client may send at once above the rate (1..=1000000)",
);
pub(crate) const TRUST_FORWARDED_FOR: Field = field(
    "trust_forwarded_for",
    "EMPORIUM_TRUST_FORWARDED_FOR",
    None,
    Some("false"),
    Plain,
    "Take the client address from X-Forwarded-For (only behind a proxy that sets it)",
);
pub(crate) const EVENTS: Field = field(
    "events",
    "EMPORIUM_EVENTS",
    None,
    Some("memory"),
    Url,
    "Where domain events go: memory (in-process, one node) or nats://host:port (JetStream; required in cluster mode)",
);
pub(crate) const SEARCH: Field = field(
    "search",
    "EMPORIUM_SEARCH",
    None,
    Some("tantivy"),
    Url,
    "The catalog search index: tantivy (in-process, per node) or meili://host:7700?key=...&index=... (Meilisearch; meilis:// for https)",
);
pub(crate) const NATS_SUBJECT_PREFIX: Field = field(
    "nats_subject_prefix",
    "EMPORIUM_NATS_SUBJECT_PREFIX",
    None,
    Some(""),
    Plain,
    "Namespace on the NATS server: subjects become <prefix>.emporium.>, so deployments can share one server",
);
pub(crate) const OUTBOX_LIMIT: Field = field(
    "outbox_limit",
    "EMPORIUM_OUTBOX_LIMIT",
    None,
    Some("100000"),
    Plain,
    "Events waiting for the bus on one node before commits that raise events are refused (503)",
);
pub(crate) const NATS_STREAM: Field = field(
    "nats_stream",
    "EMPORIUM_NATS_STREAM",
    None,
    Some("EMPORIUM"),
    Plain,
    "JetStream stream holding the events (created or updated at start)",
);
pub(crate) const NATS_MAX_AGE: Field = field(
    "nats_max_age",
    "EMPORIUM_NATS_MAX_AGE",
    None,
    Some("7d"),
    Plain,
    "Events older than this are dropped from the stream",
);
pub(crate) const NATS_REPLICAS: Field = field(
    "nats_replicas",
    "EMPORIUM_NATS_REPLICAS",
    None,
    Some("1"),
    Plain,
    "Copies of the stream in the NATS cluster (1..=5)",
);
pub(crate) const NATS_DUPLICATE_WINDOW: Field = field(
    "nats_duplicate_window",
    "EMPORIUM_NATS_DUPLICATE_WINDOW",
    None,
    Some("2m"),
    Plain,
    "How long the stream remembers an event id to drop a re-published copy",
);
pub(crate) const CLUSTER_ADDR: Field = field(
    "cluster_addr",
    "EMPORIUM_CLUSTER_ADDR",
    Some("--cluster-addr"),
    None,
    Plain,
    "Address for node-to-node traffic; setting it turns cluster mode on",
);
pub(crate) const SEEDS: Field = field(
    "seeds",
    "EMPORIUM_SEEDS",
    Some("--seeds"),
    None,
    Plain,
    "Other nodes to join through, comma-separated HOST:PORT list",
);
pub(crate) const CLUSTER_SECRET: Field = field(
    "cluster_secret",
    "EMPORIUM_CLUSTER_SECRET",
    None,
    None,
    Secret,
    "Shared secret the nodes of a cluster authenticate each other with",
);
pub(crate) const HEARTBEAT_INTERVAL: Field = field(
    "heartbeat_interval",
    "EMPORIUM_HEARTBEAT_INTERVAL",
    None,
    Some("500ms"),
    Plain,
    "Cluster: how often a node writes its member row and reads everyone's",
);
pub(crate) const SUSPECT_AFTER: Field = field(
    "suspect_after",
    "EMPORIUM_SUSPECT_AFTER",
    None,
    Some("2s"),
    Plain,
    "Cluster: a member silent this long gets no new shards (suspect)",
);
pub(crate) const DEAD_AFTER: Field = field(
    "dead_after",
    "EMPORIUM_DEAD_AFTER",
    None,
    Some("5s"),
    Plain,
    "Cluster: a member silent this long is dead and its shards move",
);
pub(crate) const CRASH_CONFIRM: Field = field(
    "crash_confirm",
    "EMPORIUM_CRASH_CONFIRM",
    None,
    None,
    Plain,
    "Cluster: a member whose port refuses connections is dead once its row stays unchanged this long [default: heartbeat_interval + 100ms]",
);
pub(crate) const FORGET_AFTER: Field = field(
    "forget_after",
    "EMPORIUM_FORGET_AFTER",
    None,
    Some("1h"),
    Plain,
    "Cluster: the row of a member down or dead this long is removed from the store",
);
pub(crate) const SCYLLA_USER: Field = field(
    "scylla.user",
    "EMPORIUM_SCYLLA_USER",
    None,
    None,
    Plain,
    "Scylla user name (with scylla.password)",
);
pub(crate) const SCYLLA_PASSWORD: Field = field(
    "scylla.password",
    "EMPORIUM_SCYLLA_PASSWORD",
    None,
    None,
    Secret,
    "Scylla password (with scylla.user)",
);
pub(crate) const SCYLLA_REPLICATION_FACTOR: Field = field(
    "scylla.replication_factor",
    "EMPORIUM_SCYLLA_REPLICATION_FACTOR",
    None,
    Some("1"),
    Plain,
    "Replication factor of the keyspace when it is created (1..=255)",
);
pub(crate) const SCYLLA_DATACENTER: Field = field(
    "scylla.datacenter",
    "EMPORIUM_SCYLLA_DATACENTER",
    None,
    None,
    Plain,
    "Local datacenter: prefer its nodes, replicate with NetworkTopologyStrategy",
);
pub(crate) const SCYLLA_CONSISTENCY: Field = field(
    "scylla.consistency",
    "EMPORIUM_SCYLLA_CONSISTENCY",
    None,
    Some("local_quorum"),
    Plain,
    "Level of reads, writes and commits: quorum, local_quorum, each_quorum or all",
);
pub(crate) const SCYLLA_SERIAL_CONSISTENCY: Field = field(
    "scylla.serial_consistency",
    "EMPORIUM_SCYLLA_SERIAL_CONSISTENCY",
    None,
    Some("local_serial"),
    Plain,
    "Level of compare-and-set (Paxos): serial or local_serial; serial for multi-DC keyspaces",
);
pub(crate) const POSTGRES_POOL_SIZE: Field = field(
    "postgres.pool_size",
    "EMPORIUM_POSTGRES_POOL_SIZE",
    None,
    None,
    Plain,
    "Most connections in the postgres pool [default: the adapter's]",
);
pub(crate) const RESERVATION_TTL: Field = field(
    "reservation_ttl",
    "EMPORIUM_RESERVATION_TTL",
    None,
    Some("15m"),
    Plain,
    "A checkout's stock reservation is released if not committed within this",
);
pub(crate) const PAYMENT_TIMEOUT: Field = field(
    "payment_timeout",
    "EMPORIUM_PAYMENT_TIMEOUT",
    None,
    Some("5s"),
    Plain,
    "Deadline of each payment gateway call; past it the outcome is unknown and voided",
);
pub(crate) const SHIPPING_RATES: Field = field(
    "shipping_rates",
    "EMPORIUM_SHIPPING_RATES",
    None,
    Some("US=500,DE=900,*=1500"),
    Plain,
    "Shipping cost by destination country in cents, '*' for the rest: US=500,*=1500",
);
pub(crate) const CART_ABANDON_AFTER: Field = field(
    "cart_abandon_after",
    "EMPORIUM_CART_ABANDON_AFTER",
    None,
    Some("1h"),
    Plain,
    "A cart with items left unchanged this long raises CartAbandoned (once per change)",
);
pub(crate) const SMTP_URL: Field = field(
    "smtp_url",
    "EMPORIUM_SMTP_URL",
    None,
    None,
    Url,
    "E-mail notifications over SMTP: smtp://[user:pass@]host:port?from=shop@example.com (unset: the development sink)",
);
pub(crate) const SMS_WEBHOOK: Field = field(
    "sms_webhook",
    "EMPORIUM_SMS_WEBHOOK",
    None,
    None,
    Url,
    "SMS notifications: POSTed as JSON to this http:// URL (unset: the development sink)",
);
pub(crate) const PUSH_WEBHOOK: Field = field(
    "push_webhook",
    "EMPORIUM_PUSH_WEBHOOK",
    None,
    None,
    Url,
    "Push notifications: POSTed as JSON to this http:// URL (unset: the development sink)",
);
pub(crate) const ADMIN_ADDR: Field = field(
    "admin_addr",
    "EMPORIUM_ADMIN_ADDR",
    Some("--admin-addr"),
    None,
    Plain,
    "Address the admin gRPC API listens on (unset: no admin API; `emporium ctl` talks to it)",
);
pub(crate) const ADMIN_TOKEN: Field = field(
    "admin_token",
    "EMPORIUM_ADMIN_TOKEN",
    None,
    None,
    Secret,
    "Static bearer token of the admin API (at least 32 bytes; an admin user's access token works too)",
);
pub(crate) const ADMIN_TLS_CERT: Field = field(
    "admin_tls_cert",
    "EMPORIUM_ADMIN_TLS_CERT",
    Some("--admin-tls-cert"),
    None,
    Plain,
    "PEM certificate chain the admin API serves TLS with (with admin_tls_key)",
);
pub(crate) const ADMIN_TLS_KEY: Field = field(
    "admin_tls_key",
    "EMPORIUM_ADMIN_TLS_KEY",
    Some("--admin-tls-key"),
    None,
    Plain,
    "PEM private key of admin_tls_cert",
);
pub(crate) const EXPERIMENTS: Field = field(
    "experiments",
    "EMPORIUM_EXPERIMENTS",
    None,
    Some(""),
    Plain,
    "A/B experiments: name=variant[:weight],variant[:weight];name=... (empty: none)",
);

/// Every setting, in the order of the README table.
pub(crate) const ALL: &[Field] = &[
    HTTP_ADDR,
    DATA_DIR,
    STORE,
    IDLE_TIMEOUT,
    MAX_ACTIVE_ACTORS,
    STORE_CACHE_MB,
    NODE_ID,
    DEMO,
    REQUEST_TIMEOUT,
    MAX_BODY_BYTES,
    LOG,
    OTLP_ENDPOINT,
    JWT_SECRET,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    REDIS_URL,
    REDIS_PREFIX,
    RATE_LIMIT,
    RATE_BURST,
    TRUST_FORWARDED_FOR,
    SEARCH,
    EVENTS,
    NATS_SUBJECT_PREFIX,
    OUTBOX_LIMIT,
    NATS_STREAM,
    NATS_MAX_AGE,
    NATS_REPLICAS,
    NATS_DUPLICATE_WINDOW,
    CLUSTER_ADDR,
    SEEDS,
    CLUSTER_SECRET,
    HEARTBEAT_INTERVAL,
    SUSPECT_AFTER,
    DEAD_AFTER,
    CRASH_CONFIRM,
    FORGET_AFTER,
    SCYLLA_USER,
    SCYLLA_PASSWORD,
    SCYLLA_REPLICATION_FACTOR,
    SCYLLA_DATACENTER,
    SCYLLA_CONSISTENCY,
    SCYLLA_SERIAL_CONSISTENCY,
    POSTGRES_POOL_SIZE,
    RESERVATION_TTL,
    PAYMENT_TIMEOUT,
    SHIPPING_RATES,
    CART_ABANDON_AFTER,
    EXPERIMENTS,
    SMTP_URL,
    SMS_WEBHOOK,
    PUSH_WEBHOOK,
    ADMIN_ADDR,
    ADMIN_TOKEN,
    ADMIN_TLS_CERT,
    ADMIN_TLS_KEY,
];

/// The TOML tables that hold settings (`[scylla]`, `[postgres]`).
pub(crate) const TABLES: &[&str] = &["scylla", "postgres"];

/// The field with this TOML key.
pub(crate) fn by_key(key: &str) -> Option<&'static Field> {
    ALL.iter().find(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_consistent() {
        for f in ALL {
            let expected_env = format!("EMPORIUM_{}", f.key.replace('.', "_").to_uppercase());
            assert_eq!(f.env, expected_env, "{}", f.key);
            if let Some(flag) = f.flag {
                assert_eq!(flag, format!("--{}", f.key.replace('_', "-")), "{}", f.key);
                assert_ne!(f.shown, Shown::Secret, "secrets get no flag: {}", f.key);
            }
            let table = f.key.split_once('.').map(|(t, _)| t);
            assert!(table.is_none_or(|t| TABLES.contains(&t)), "{}", f.key);
        }
    }

    #[test]
    fn readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for f in ALL {
            for name in [f.key, f.env].into_iter().chain(f.flag) {
                assert!(
                    readme.contains(&format!("`{name}`")),
                    "README.md lacks `{name}`"
                );
            }
        }
    }
}
