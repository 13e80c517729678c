//! `NodeConfig::load` end to end: layers, precedence, every field's error
//! message, stores, cluster rules, and the shipped example files.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emporium_config::{
    AdminApiConfig, AdminCredentials, AdminTls, ClusterConfig, ConfigError, NatsStreamConfig,
    NodeConfig, Origin, ScyllaConsistency, ScyllaSerialConsistency, Secret, StoreConfig,
};

const JWT: &str = "0123456789abcdef0123456789abcdef";

/// Loads with these flags and variables (`HOSTNAME=testhost` unless given).
fn load(flags: &[&str], env: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
    let mut vars: HashMap<String, String> = [("HOSTNAME".to_owned(), "testhost".to_owned())].into();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let args = std::iter::once("emporium")
        .chain(flags.iter().copied())
        .map(OsString::from);
    NodeConfig::load(args, &|k| vars.get(k).cloned())
}

fn ok(flags: &[&str], env: &[(&str, &str)]) -> NodeConfig {
    load(flags, env).unwrap_or_else(|e| panic!("{flags:?} {env:?}: {e}"))
}

fn err(flags: &[&str], env: &[(&str, &str)]) -> String {
    match load(flags, env) {
        Ok(c) => panic!("{flags:?} {env:?} loaded: {c}"),
        Err(e) => e.to_string(),
    }
}

/// A config file in a temporary directory.
struct File {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl File {
    fn new(toml: &str) -> File {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emporium.toml");
        std::fs::write(&path, toml).expect("write");
        File { _dir: dir, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

#[test]
fn built_in_defaults() {
    assert_eq!(
        ok(&[], &[]),
        NodeConfig {
            node_id: "node-testhost".into(),
            ..NodeConfig::default()
        }
    );
    let c = NodeConfig::default();
    assert_eq!(c.http_addr, addr("127.0.0.1:8080"));
    assert_eq!(c.data_dir, Path::new("./data"));
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: "./data/store.redb".into()
        }
    );
    assert_eq!(c.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.max_active_actors, 100_000);
    assert!(c.demo);
    assert_eq!(c.request_timeout, Duration::from_secs(10));
    assert_eq!(c.max_body_bytes, 64 * 1024);
    assert_eq!(c.log, "info");
    assert_eq!(c.jwt_secret, None);
    assert_eq!(c.admin, None);
    assert_eq!(c.cluster, None);
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let file = File::new("idle_timeout = \"1m\"");
    let with_file = ["--config", file.arg()];
    let env = [("EMPORIUM_IDLE_TIMEOUT", "2m")];
    let flag = ["--idle-timeout", "3m"];
    let idle = |flags: &[&str], env: &[(&str, &str)]| ok(flags, env).idle_timeout.as_secs();

    assert_eq!(idle(&[&with_file[..], &flag[..]].concat(), &env), 180);
    assert_eq!(idle(&with_file, &env), 120);
    assert_eq!(idle(&with_file, &[]), 60);
    assert_eq!(idle(&[], &[]), 300);
    // Each layer also wins over the ones below it when those are absent.
    assert_eq!(idle(&flag, &[]), 180);
    assert_eq!(idle(&flag, &env), 180);
    assert_eq!(idle(&[], &env), 120);
}

#[test]
fn precedence_holds_for_every_flag() {
    // (key, env var, flag, [file, env, flag] values, how to show the result)
    type Show = fn(&NodeConfig) -> String;
    let cases: &[(&str, &str, &str, [&str; 3], Show)] = &[
        (
            "http_addr",
            "EMPORIUM_HTTP_ADDR",
            "--http-addr",
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
            |c| c.http_addr.to_string(),
        ),
        (
            "data_dir",
            "EMPORIUM_DATA_DIR",
            "--data-dir",
            ["/f", "/e", "/c"],
            |c| c.data_dir.display().to_string(),
        ),
        (
            "store",
            "EMPORIUM_STORE",
            "--store",
            ["embedded:f", "embedded:e", "embedded:c"],
            |c| match &c.store {
                StoreConfig::Embedded { path } => {
                    format!(
                        "embedded:{}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    )
                }
                other => other.to_string(),
            },
        ),
        (
            "max_active_actors",
            "EMPORIUM_MAX_ACTIVE_ACTORS",
            "--max-active-actors",
            ["1", "2", "3"],
            |c| c.max_active_actors.to_string(),
        ),
        (
            "node_id",
            "EMPORIUM_NODE_ID",
            "--node-id",
            ["f", "e", "c"],
            |c| c.node_id.clone(),
        ),
        (
            "request_timeout",
            "EMPORIUM_REQUEST_TIMEOUT",
            "--request-timeout",
            ["1s", "2s", "3s"],
            |c| format!("{}s", c.request_timeout.as_secs()),
        ),
        (
            "max_body_bytes",
            "EMPORIUM_MAX_BODY_BYTES",
            "--max-body-bytes",
            ["1", "2", "3"],
            |c| c.max_body_bytes.to_string(),
        ),
        (
            "log",
            "EMPORIUM_LOG",
            "--log",
            ["warn", "debug", "trace"],
            |c| c.log.clone(),
        ),
    ];
    for (key, var, flag, [f, e, c], show) in cases {
        let file = File::new(&format!("{key} = \"{f}\""));
        let cfg = ["--config", file.arg()];
        let all = ok(&[&cfg[..], &[*flag, *c][..]].concat(), &[(*var, *e)]);
        let no_flag = ok(&cfg, &[(*var, *e)]);
        let file_only = ok(&cfg, &[]);
        assert!(
            show(&all).contains(c),
            "{key}: flag should win: {}",
            show(&all)
        );
        assert!(
            show(&no_flag).contains(e),
            "{key}: env should win: {}",
            show(&no_flag)
        );
        assert!(
            show(&file_only).contains(f),
            "{key}: file should win: {}",
            show(&file_only)
        );
    }
}

#[test]
fn demo_flags_env_and_file() {
    let file = File::new("demo = false");
    assert!(!ok(&["--config", file.arg()], &[]).demo);
    assert!(ok(&["--config", file.arg()], &[("EMPORIUM_DEMO", "yes")]).demo);
    assert!(
        !ok(
            &["--config", file.arg(), "--no-demo"],
            &[("EMPORIUM_DEMO", "on")]
        )
        .demo
    );
    assert!(
        ok(
            &["--config", file.arg(), "--demo"],
            &[("EMPORIUM_DEMO", "0")]
        )
        .demo
    );
    assert!(!ok(&["--demo", "--no-demo"], &[]).demo);
}

#[test]
fn config_flag_beats_config_env() {
    let a = File::new("node_id = \"from-flag\"");
    let b = File::new("node_id = \"from-env\"");
    let env = [("EMPORIUM_CONFIG", b.arg())];
    assert_eq!(ok(&["--config", a.arg()], &env).node_id, "from-flag");
    assert_eq!(ok(&[], &env).node_id, "from-env");
    assert_eq!(ok(&[], &[("EMPORIUM_CONFIG", "")]).node_id, "node-testhost");
}

#[test]
fn a_missing_config_file_is_named() {
    let msg = err(&["--config", "/nonexistent/emporium.toml"], &[]);
    assert!(
        msg.starts_with("cannot read config file /nonexistent/emporium.toml (from --config): "),
        "{msg}"
    );
    let msg = err(&[], &[("EMPORIUM_CONFIG", "/nonexistent/e.toml")]);
    assert!(
        msg.starts_with("cannot read config file /nonexistent/e.toml (from EMPORIUM_CONFIG): "),
        "{msg}"
    );
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let file = File::new("http_addr = \"127.0.0.1:1\"\nmax_active_actor = 5\n");
    let msg = err(&["--config", file.arg()], &[]);
    assert!(
        msg.starts_with(&format!(
            "unknown key `max_active_actor` in config file {}",
            file.arg()
        )),
        "{msg}"
    );
    assert!(msg.contains("did you mean `max_active_actors`?"), "{msg}");
}

#[test]
fn every_field_names_itself_in_its_error() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "EMPORIUM_HTTP_ADDR",
            "localhost:8080",
            r#"invalid EMPORIUM_HTTP_ADDR (http_addr) = "localhost:8080": expected a socket address like 127.0.0.1:8080 or [::1]:8080 (an IP address, not a host name)"#,
        ),
        (
            "EMPORIUM_DATA_DIR",
            "",
            r#"invalid EMPORIUM_DATA_DIR (data_dir) = "": expected a directory path"#,
        ),
        (
            "EMPORIUM_STORE",
            "redb",
            r#"invalid EMPORIUM_STORE (store) = "redb": expected one of: embedded (the file <data_dir>/store.redb), embedded:PATH (relative to data_dir unless absolute), memory (nothing persists), postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://...), scylla://HOST:PORT,HOST:PORT/KEYSPACE"#,
        ),
        (
            "EMPORIUM_IDLE_TIMEOUT",
            "5 minutes please",
            r#"invalid EMPORIUM_IDLE_TIMEOUT (idle_timeout) = "5 minutes please": expected a duration like 30s, 5m or 250ms"#,
        ),
        (
            "EMPORIUM_IDLE_TIMEOUT",
            "0s",
            r#"invalid EMPORIUM_IDLE_TIMEOUT (idle_timeout) = "0s": expected a duration like 30s, 5m or 250ms, greater than zero"#,
        ),
        (
            "EMPORIUM_MAX_ACTIVE_ACTORS",
            "0",
            r#"invalid EMPORIUM_MAX_ACTIVE_ACTORS (max_active_actors) = "0": expected a whole number from 1 to "#,
        ),
        (
            "EMPORIUM_MAX_ACTIVE_ACTORS",
            "lots",
            r#"invalid EMPORIUM_MAX_ACTIVE_ACTORS (max_active_actors) = "lots": expected a whole number"#,
        ),
        (
            "EMPORIUM_NODE_ID",
            "-node",
            r#"invalid EMPORIUM_NODE_ID (node_id) = "-node": expected 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit"#,
        ),
        (
            "EMPORIUM_DEMO",
            "sometimes",
            r#"invalid EMPORIUM_DEMO (demo) = "sometimes": expected a boolean: true/false, 1/0, yes/no or on/off"#,
        ),
        (
            "EMPORIUM_REQUEST_TIMEOUT",
            "10",
            r#"invalid EMPORIUM_REQUEST_TIMEOUT (request_timeout) = "10": expected a duration like 30s, 5m or 250ms"#,
        ),
        (
            "EMPORIUM_MAX_BODY_BYTES",
            "16777217",
            r#"invalid EMPORIUM_MAX_BODY_BYTES (max_body_bytes) = "16777217": expected a whole number from 1 to 16777216"#,
        ),
        (
            "EMPORIUM_MAX_BODY_BYTES",
            "64KiB",
            r#"invalid EMPORIUM_MAX_BODY_BYTES (max_body_bytes) = "64KiB": expected a whole number from 1 to 16777216"#,
        ),
        (
            "EMPORIUM_LOG",
            "emporium=loud",
            r#"invalid EMPORIUM_LOG (log) = "emporium=loud": expected a tracing filter like info, debug or warn,emporium=debug"#,
        ),
        (
            "EMPORIUM_ADMIN_EMAIL",
            "admin",
            r#"invalid EMPORIUM_ADMIN_EMAIL (admin_email) = "admin": expected an e-mail address like admin@example.com"#,
        ),
        (
            "EMPORIUM_REDIS_URL",
            "cache:6379",
            r#"invalid EMPORIUM_REDIS_URL (redis_url) = "cache:6379": expected a URL like redis://... or rediss://..."#,
        ),
        (
            "EMPORIUM_OTLP_ENDPOINT",
            "127.0.0.1:4318",
            r#"invalid EMPORIUM_OTLP_ENDPOINT (otlp_endpoint) = "127.0.0.1:4318": expected a URL like http://..."#,
        ),
        (
            "EMPORIUM_OTLP_ENDPOINT",
            "https://collector:4318",
            r#"invalid EMPORIUM_OTLP_ENDPOINT (otlp_endpoint) = "https://collector:4318": expected a URL like http://..."#,
        ),
        (
            "EMPORIUM_EVENTS",
            "http://bus",
            r#"invalid EMPORIUM_EVENTS (events) = "http://bus": expected memory, or a URL like nats://host:4222"#,
        ),
        (
            "EMPORIUM_NATS_STREAM",
            "emporium.events",
            r#"invalid EMPORIUM_NATS_STREAM (nats_stream) = "emporium.events": expected a stream name of 1 to 64 letters, digits, _ or -"#,
        ),
        (
            "EMPORIUM_NATS_MAX_AGE",
            "0s",
            r#"invalid EMPORIUM_NATS_MAX_AGE (nats_max_age) = "0s": expected a duration like 30s, 5m or 250ms, greater than zero"#,
        ),
        (
            "EMPORIUM_NATS_REPLICAS",
            "6",
            r#"invalid EMPORIUM_NATS_REPLICAS (nats_replicas) = "6": expected a whole number from 1 to 5"#,
        ),
        (
            "EMPORIUM_NATS_DUPLICATE_WINDOW",
            "soon",
            r#"invalid EMPORIUM_NATS_DUPLICATE_WINDOW (nats_duplicate_window) = "soon": expected a duration like 30s, 5m or 250ms"#,
        ),
        (
            "EMPORIUM_CLUSTER_ADDR",
            "node1:7101",
            r#"invalid EMPORIUM_CLUSTER_ADDR (cluster_addr) = "node1:7101": expected a socket address"#,
        ),
        (
            "EMPORIUM_SEEDS",
            "node2",
            r#"invalid EMPORIUM_SEEDS (seeds) = "node2": expected a comma-separated list of HOST:PORT like 10.0.0.2:7101,node3.internal:7101"#,
        ),
        (
            "EMPORIUM_SCYLLA_REPLICATION_FACTOR",
            "0",
            r#"invalid EMPORIUM_SCYLLA_REPLICATION_FACTOR (scylla.replication_factor) = "0": expected a whole number from 1 to 255"#,
        ),
        (
            "EMPORIUM_SCYLLA_DATACENTER",
            "eu west",
            r#"invalid EMPORIUM_SCYLLA_DATACENTER (scylla.datacenter) = "eu west": expected a non-empty name without spaces"#,
        ),
        (
            "EMPORIUM_SCYLLA_CONSISTENCY",
            "one",
            r#"invalid EMPORIUM_SCYLLA_CONSISTENCY (scylla.consistency) = "one": expected one of quorum, local_quorum, each_quorum or all"#,
        ),
        (
            "EMPORIUM_SCYLLA_SERIAL_CONSISTENCY",
            "quorum",
            r#"invalid EMPORIUM_SCYLLA_SERIAL_CONSISTENCY (scylla.serial_consistency) = "quorum": expected one of serial or local_serial"#,
        ),
        (
            "EMPORIUM_SCYLLA_USER",
            "a b",
            r#"invalid EMPORIUM_SCYLLA_USER (scylla.user) = "a b": expected a non-empty name without spaces"#,
        ),
        (
            "EMPORIUM_POSTGRES_POOL_SIZE",
            "0",
            r#"invalid EMPORIUM_POSTGRES_POOL_SIZE (postgres.pool_size) = "0": expected a whole number from 1 to 10000"#,
        ),
    ];
    for (var, value, expected) in cases {
        // The store options are only read for their store.
        let store = if var.contains("SCYLLA") {
            "scylla://db/shop"
        } else if var.contains("POSTGRES") {
            "postgres://db/shop"
        } else {
            "memory"
        };
        let mut env = vec![(*var, *value)];
        if *var != "EMPORIUM_STORE" {
            env.push(("EMPORIUM_STORE", store));
        }
        let msg = err(&[], &env);
        assert!(
            msg.starts_with(expected),
            "{var}={value:?}\n got: {msg}\nwant: {expected}"
        );
    }
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    let msg = err(&[], &[("EMPORIUM_JWT_SECRET", "tooshort")]);
    assert_eq!(
        msg,
        "invalid EMPORIUM_JWT_SECRET (jwt_secret): expected at least 32 bytes (it has 8); e.g. 64 hex digits from `openssl rand -hex 32`"
    );
    let msg = err(
        &[],
        &[("EMPORIUM_STORE", "postgress://app:hunter2@db/shop")],
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(
        msg.starts_with(r#"invalid EMPORIUM_STORE (store) = "postgress://app:***@db/shop""#),
        "{msg}"
    );
    let msg = err(&[], &[("EMPORIUM_REDIS_URL", "redis:/:hunter2@cache")]);
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn errors_say_where_a_bad_value_came_from() {
    let msg = err(&["--idle-timeout", "soon"], &[]);
    assert!(msg.ends_with(" (set by --idle-timeout)"), "{msg}");
    let file = File::new("idle_timeout = \"soon\"");
    let msg = err(&["--config", file.arg()], &[]);
    assert!(msg.ends_with(&format!(" (set in {})", file.arg())), "{msg}");
    match load(&["--config", file.arg()], &[]) {
        Err(ConfigError::Invalid {
            key,
            env,
            value,
            origin,
            ..
        }) => {
            assert_eq!(
                (key, env, value.as_deref()),
                ("idle_timeout", "EMPORIUM_IDLE_TIMEOUT", Some("soon"))
            );
            assert_eq!(origin, Origin::File(file.path.clone()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_values_unset_optional_fields() {
    let file = File::new(&format!(
        "jwt_secret = \"{JWT}\"\nredis_url = \"redis://cache\"\notlp_endpoint = \"http://collector:4318\""
    ));
    let c = ok(&["--config", file.arg()], &[]);
    assert_eq!(c.jwt_secret, Some(Secret::new(JWT)));
    assert_eq!(c.redis_url.as_deref(), Some("redis://cache"));
    assert_eq!(c.otlp_endpoint.as_deref(), Some("http://collector:4318"));
    let c = ok(
        &["--config", file.arg()],
        &[
            ("EMPORIUM_JWT_SECRET", ""),
            ("EMPORIUM_REDIS_URL", ""),
            ("EMPORIUM_OTLP_ENDPOINT", ""),
        ],
    );
    assert_eq!((c.jwt_secret, c.redis_url), (None, None));
    assert_eq!(c.otlp_endpoint, None, "an empty value turns the export off");
}

#[test]
fn optional_fields_when_set() {
    let c = ok(
        &[],
        &[
            ("EMPORIUM_JWT_SECRET", JWT),
            ("EMPORIUM_ADMIN_EMAIL", "admin@example.com"),
            ("EMPORIUM_ADMIN_PASSWORD", "correct horse"),
            ("EMPORIUM_REDIS_URL", "rediss://:pw@cache:6380"),
            ("EMPORIUM_EVENTS", "nats://bus:4222"),
            ("EMPORIUM_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ],
    );
    assert_eq!(c.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert_eq!(c.jwt_secret.as_ref().map(Secret::expose), Some(JWT));
    assert_eq!(
        c.admin,
        Some(AdminCredentials {
            email: "admin@example.com".into(),
            password: Secret::new("correct horse"),
        })
    );
    assert_eq!(c.redis_url.as_deref(), Some("rediss://:pw@cache:6380"));
    assert_eq!(c.nats_url.as_deref(), Some("nats://bus:4222"));
}

#[test]
fn nats_stream_settings() {
    assert_eq!(
        ok(&[], &[]).nats_stream,
        NatsStreamConfig {
            name: "EMPORIUM".into(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            subject_prefix: String::new(),
        }
    );
    let set = ok(
        &[],
        &[
            ("EMPORIUM_NATS_STREAM", "SHOP_EVENTS"),
            ("EMPORIUM_NATS_MAX_AGE", "30d"),
            ("EMPORIUM_NATS_REPLICAS", "3"),
            ("EMPORIUM_NATS_DUPLICATE_WINDOW", "10m"),
            ("EMPORIUM_NATS_SUBJECT_PREFIX", "staging.eu-1"),
        ],
    );
    assert_eq!(
        set.nats_stream,
        NatsStreamConfig {
            name: "SHOP_EVENTS".into(),
            max_age: Duration::from_secs(30 * 24 * 3600),
            replicas: 3,
            duplicate_window: Duration::from_secs(600),
            subject_prefix: "staging.eu-1".into(),
        }
    );
    // JetStream refuses a duplicate window longer than the stream keeps messages.
    let msg = err(
        &[],
        &[
            ("EMPORIUM_NATS_MAX_AGE", "1m"),
            ("EMPORIUM_NATS_DUPLICATE_WINDOW", "2m"),
        ],
    );
    assert_eq!(
        msg,
        "EMPORIUM_NATS_DUPLICATE_WINDOW (nats_duplicate_window) = 2m must not be longer than EMPORIUM_NATS_MAX_AGE (nats_max_age) = 1m"
    );
}

#[test]
fn admin_email_and_password_go_together() {
    let msg = err(&[], &[("EMPORIUM_ADMIN_EMAIL", "admin@example.com")]);
    assert_eq!(
        msg,
        "EMPORIUM_ADMIN_EMAIL (admin_email) and EMPORIUM_ADMIN_PASSWORD (admin_password) go together, \
         set both or neither: EMPORIUM_ADMIN_EMAIL (admin_email) is set but EMPORIUM_ADMIN_PASSWORD is not"
    );
    let msg = err(&[], &[("EMPORIUM_ADMIN_PASSWORD", "secret-password")]);
    assert!(
        msg.ends_with(
            "EMPORIUM_ADMIN_PASSWORD (admin_password) is set but EMPORIUM_ADMIN_EMAIL is not"
        ),
        "{msg}"
    );
    assert!(!msg.contains("secret-password"));
}

#[test]
fn node_id_defaults_to_the_host_name() {
    assert_eq!(
        ok(&[], &[("HOSTNAME", "web-7.eu")]).node_id,
        "node-web-7.eu"
    );
    assert_eq!(
        ok(&[], &[("HOSTNAME", "web-7"), ("EMPORIUM_NODE_ID", "n1")]).node_id,
        "n1"
    );
}

#[test]
fn stores() {
    let c = ok(&["--data-dir", "/srv/e"], &[]);
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: "/srv/e/store.redb".into()
        }
    );
    // The store string and data_dir come from different layers.
    let file = File::new("store = \"embedded:db/shop.redb\"");
    let c = ok(
        &["--config", file.arg()],
        &[("EMPORIUM_DATA_DIR", "/srv/e")],
    );
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: "/srv/e/db/shop.redb".into()
        }
    );
    let c = ok(&["--store", "embedded:/abs/x.redb"], &[]);
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: "/abs/x.redb".into()
        }
    );
    assert_eq!(ok(&["--store", "memory"], &[]).store, StoreConfig::Memory);

    let file = File::new("store = \"postgresql://app@db/shop\"\n[postgres]\npool_size = 16\n");
    assert_eq!(
        ok(&["--config", file.arg()], &[]).store,
        StoreConfig::Postgres {
            url: "postgresql://app@db/shop".into(),
            pool_size: Some(16)
        }
    );

    let file = File::new(
        "store = \"scylla://s1:9042,s2/shop\"\n[scylla]\nuser = \"app\"\nreplication_factor = 3\ndatacenter = \"dc1\"\nconsistency = \"each_quorum\"\n",
    );
    assert_eq!(
        ok(
            &["--config", file.arg()],
            &[
                ("EMPORIUM_SCYLLA_PASSWORD", "pw"),
                ("EMPORIUM_SCYLLA_SERIAL_CONSISTENCY", "serial")
            ]
        )
        .store,
        StoreConfig::Scylla {
            nodes: vec!["s1:9042".into(), "s2:9042".into()],
            keyspace: "shop".into(),
            user: Some("app".into()),
            password: Some(Secret::new("pw")),
            replication_factor: 3,
            datacenter: Some("dc1".into()),
            consistency: ScyllaConsistency::EachQuorum,
            serial_consistency: ScyllaSerialConsistency::Serial,
        }
    );
    let msg = err(&["--config", file.arg()], &[]);
    assert!(msg.contains("EMPORIUM_SCYLLA_USER (scylla.user) and EMPORIUM_SCYLLA_PASSWORD (scylla.password) go together"), "{msg}");
    // Options of another store are ignored: a production file runs on memory.
    assert_eq!(
        ok(&["--config", file.arg(), "--store", "memory"], &[]).store,
        StoreConfig::Memory
    );

    let msg = err(&["--store", "scylla://db/Shop"], &[]);
    assert!(msg.starts_with(r#"invalid EMPORIUM_STORE (store) = "scylla://db/Shop": expected a keyspace that is a CQL identifier"#), "{msg}");
    assert!(msg.contains("(set by --store)"), "{msg}");
}

#[test]
fn cluster_mode() {
    let pg = ("EMPORIUM_STORE", "postgres://db/shop");
    let secret = ("EMPORIUM_CLUSTER_SECRET", "s3cret");
    let nats = ("EMPORIUM_EVENTS", "nats://bus:4222");
    let c = ok(
        &[
            "--cluster-addr",
            "127.0.0.1:7101",
            "--seeds",
            "127.0.0.1:7102,127.0.0.1:7103",
        ],
        &[pg, secret, nats],
    );
    assert_eq!(
        c.cluster,
        Some(ClusterConfig {
            addr: addr("127.0.0.1:7101"),
            seeds: vec!["127.0.0.1:7102".into(), "127.0.0.1:7103".into()],
            secret: Secret::new("s3cret"),
            timings: emporium_config::MembershipTimings::default(),
        })
    );
    // The first node has no seeds.
    let c = ok(
        &[],
        &[
            pg,
            secret,
            nats,
            ("EMPORIUM_CLUSTER_ADDR", "127.0.0.1:7101"),
        ],
    );
    assert_eq!(c.cluster.map(|c| c.seeds), Some(vec![]));
    // Without NATS, cluster mode is refused: the in-process bus serves one node.
    let msg = err(
        &[],
        &[pg, secret, ("EMPORIUM_CLUSTER_ADDR", "127.0.0.1:7101")],
    );
    assert!(
        msg.contains("cluster mode needs events on NATS JetStream"),
        "{msg}"
    );
}

#[test]
fn membership_timings_are_read_and_checked_against_each_other() {
    use emporium_config::MembershipTimings;
    let cluster = [
        ("EMPORIUM_STORE", "postgres://db/shop"),
        ("EMPORIUM_CLUSTER_SECRET", "s3cret"),
        ("EMPORIUM_CLUSTER_ADDR", "127.0.0.1:7101"),
        ("EMPORIUM_EVENTS", "nats://bus:4222"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = cluster.to_vec();
        env.extend_from_slice(extra);
        env
    };
    let timings = |c: NodeConfig| c.cluster.expect("cluster mode").timings;
    assert_eq!(timings(ok(&[], &cluster)), MembershipTimings::default());
    assert_eq!(
        MembershipTimings::default().crash_confirm,
        Duration::from_millis(600)
    );
    // Faster detection for a test cluster; crash_confirm follows the heartbeat by default.
    let fast = timings(ok(
        &[],
        &with(&[
            ("EMPORIUM_HEARTBEAT_INTERVAL", "100ms"),
            ("EMPORIUM_SUSPECT_AFTER", "400ms"),
            ("EMPORIUM_DEAD_AFTER", "1s"),
        ]),
    ));
    assert_eq!(
        fast,
        MembershipTimings {
            heartbeat_interval: Duration::from_millis(100),
            suspect_after: Duration::from_millis(400),
            dead_after: Duration::from_secs(1),
            crash_confirm: Duration::from_millis(200),
            forget_after: Duration::from_secs(3600),
        }
    );
    let set = timings(ok(&[], &with(&[("EMPORIUM_CRASH_CONFIRM", "1500ms")])));
    assert_eq!(set.crash_confirm, Duration::from_millis(1500));
    let set = timings(ok(&[], &with(&[("EMPORIUM_FORGET_AFTER", "15s")])));
    assert_eq!(set.forget_after, Duration::from_secs(15));
    let msg = err(&[], &with(&[("EMPORIUM_FORGET_AFTER", "0s")]));
    assert!(
        msg.starts_with(r#"invalid EMPORIUM_FORGET_AFTER (forget_after) = "0s""#),
        "{msg}"
    );

    // A bad value names its field.
    let msg = err(&[], &with(&[("EMPORIUM_DEAD_AFTER", "soon")]));
    assert!(
        msg.starts_with(
            r#"invalid EMPORIUM_DEAD_AFTER (dead_after) = "soon": expected a duration"#
        ),
        "{msg}"
    );
    // Each broken relation names the fields involved, and the node does not start.
    for (extra, names) in [
        (
            &[("EMPORIUM_CRASH_CONFIRM", "500ms")][..],
            [
                "EMPORIUM_CRASH_CONFIRM (crash_confirm",
                "EMPORIUM_HEARTBEAT_INTERVAL (heartbeat_interval",
            ],
        ),
        (
            &[("EMPORIUM_CRASH_CONFIRM", "5s")][..],
            [
                "EMPORIUM_CRASH_CONFIRM (crash_confirm",
                "EMPORIUM_DEAD_AFTER (dead_after",
            ],
        ),
        (
            &[
                ("EMPORIUM_HEARTBEAT_INTERVAL", "2s"),
                ("EMPORIUM_SUSPECT_AFTER", "3s"),
            ][..],
            [
                "EMPORIUM_DEAD_AFTER (dead_after",
                "EMPORIUM_HEARTBEAT_INTERVAL (heartbeat_interval",
            ],
        ),
        (
            &[("EMPORIUM_SUSPECT_AFTER", "400ms")][..],
            [
                "EMPORIUM_SUSPECT_AFTER (suspect_after",
                "EMPORIUM_HEARTBEAT_INTERVAL (heartbeat_interval",
            ],
        ),
        (
            &[("EMPORIUM_DEAD_AFTER", "2s")][..],
            [
                "EMPORIUM_DEAD_AFTER (dead_after",
                "EMPORIUM_SUSPECT_AFTER (suspect_after",
            ],
        ),
        (
            &[("EMPORIUM_FORGET_AFTER", "14s")][..],
            [
                "EMPORIUM_FORGET_AFTER (forget_after",
                "EMPORIUM_DEAD_AFTER (dead_after",
            ],
        ),
        (
            &[
                ("EMPORIUM_DEAD_AFTER", "30s"),
                ("EMPORIUM_FORGET_AFTER", "1m"),
            ][..],
            [
                "EMPORIUM_FORGET_AFTER (forget_after",
                "at least 3 × EMPORIUM_DEAD_AFTER (dead_after",
            ],
        ),
    ] {
        let msg = err(&[], &with(extra));
        for name in names {
            assert!(msg.contains(name), "{extra:?}: {msg}");
        }
    }
    // In a file too, with the origin named.
    let file = File::new("heartbeat_interval = \"1s\"\ncrash_confirm = \"800ms\"\n");
    let msg = err(&["--config", file.arg()], &cluster);
    assert!(
        msg.contains("EMPORIUM_CRASH_CONFIRM (crash_confirm, set in ")
            && msg.contains(
                "must be longer than EMPORIUM_HEARTBEAT_INTERVAL (heartbeat_interval, set in "
            ),
        "{msg}"
    );
}

#[test]
fn cluster_mode_needs_a_shared_store() {
    let msg = err(
        &["--cluster-addr", "127.0.0.1:7101"],
        &[("EMPORIUM_CLUSTER_SECRET", "s")],
    );
    assert_eq!(
        msg,
        "cluster mode needs a shared store (postgres:// or scylla://); the embedded store is single-node: \
         EMPORIUM_CLUSTER_ADDR (cluster_addr, set by --cluster-addr) is set, but \
         EMPORIUM_STORE (store, built-in default) = \"embedded\""
    );
    let msg = err(
        &[],
        &[
            ("EMPORIUM_CLUSTER_ADDR", "127.0.0.1:7101"),
            ("EMPORIUM_CLUSTER_SECRET", "s"),
            ("EMPORIUM_STORE", "memory"),
        ],
    );
    assert!(msg.starts_with("cluster mode needs a shared store (postgres:// or scylla://); the memory store is single-node"), "{msg}");
}

#[test]
fn cluster_mode_needs_a_secret() {
    let msg = err(
        &["--cluster-addr", "127.0.0.1:7101"],
        &[("EMPORIUM_STORE", "postgres://db/shop")],
    );
    assert_eq!(
        msg,
        "cluster mode needs a shared secret: EMPORIUM_CLUSTER_ADDR (cluster_addr, set by --cluster-addr) \
         is set, but EMPORIUM_CLUSTER_SECRET (cluster_secret) is not"
    );
}

#[test]
fn seeds_need_cluster_mode() {
    let msg = err(&["--seeds", "127.0.0.1:7102"], &[]);
    assert_eq!(
        msg,
        "EMPORIUM_SEEDS (seeds, set by --seeds) lists nodes to join, but cluster mode is off: \
         set EMPORIUM_CLUSTER_ADDR (cluster_addr) too"
    );
}

#[test]
fn cluster_and_http_need_different_ports() {
    let msg = err(
        &["--cluster-addr", "127.0.0.1:8080"],
        &[
            ("EMPORIUM_STORE", "postgres://db/shop"),
            ("EMPORIUM_CLUSTER_SECRET", "s"),
        ],
    );
    assert!(msg.contains("are both 127.0.0.1:8080"), "{msg}");
    // Port 0 twice is fine: the OS picks two ports.
    ok(
        &[
            "--cluster-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[
            ("EMPORIUM_STORE", "postgres://db/shop"),
            ("EMPORIUM_CLUSTER_SECRET", "s"),
            ("EMPORIUM_EVENTS", "nats://bus:4222"),
        ],
    );
}

const ADMIN_TOKEN: &str = "admin-token-7-admin-token-7-admin-token-7";

#[test]
fn the_admin_api_is_off_unless_its_address_is_set() {
    assert_eq!(ok(&[], &[]).admin_api, None);
    let c = ok(
        &["--admin-addr", "127.0.0.1:9091"],
        &[
            ("EMPORIUM_ADMIN_ADDR", "127.0.0.1:9090"),
            ("EMPORIUM_ADMIN_TOKEN", ADMIN_TOKEN),
            ("EMPORIUM_ADMIN_TLS_CERT", "/etc/emporium/admin.crt"),
            ("EMPORIUM_ADMIN_TLS_KEY", "/etc/emporium/admin.key"),
        ],
    );
    assert_eq!(
        c.admin_api,
        Some(AdminApiConfig {
            addr: addr("127.0.0.1:9091"),
            token: Some(Secret::new(ADMIN_TOKEN)),
            tls: Some(AdminTls {
                cert: PathBuf::from("/etc/emporium/admin.crt"),
                key: PathBuf::from("/etc/emporium/admin.key"),
            }),
        })
    );
    let summary = c.to_string();
    assert!(
        summary.contains("admin_api=127.0.0.1:9091 admin_token=set admin_tls=on cluster=off"),
        "{summary}"
    );
    assert!(!summary.contains(ADMIN_TOKEN), "{summary}");
    assert!(!format!("{c:?}").contains(ADMIN_TOKEN));

    // Without a token or TLS: admin users' tokens, plain HTTP/2.
    let file = File::new("admin_addr = \"127.0.0.1:0\"");
    let c = ok(&["--config", file.arg()], &[]);
    let api = c.admin_api.expect("on");
    assert_eq!((api.token, api.tls), (None, None));
}

#[test]
fn admin_api_settings_are_checked() {
    let on = ("EMPORIUM_ADMIN_ADDR", "127.0.0.1:9090");
    let msg = err(&[], &[on, ("EMPORIUM_ADMIN_TOKEN", "short-admin-token")]);
    assert_eq!(
        msg,
        "invalid EMPORIUM_ADMIN_TOKEN (admin_token): expected at least 32 bytes (it has 17); e.g. 64 hex digits from `openssl rand -hex 32`"
    );
    let msg = err(&[], &[on, ("EMPORIUM_ADMIN_TLS_CERT", "/c.pem")]);
    assert_eq!(
        msg,
        "EMPORIUM_ADMIN_TLS_CERT (admin_tls_cert) and EMPORIUM_ADMIN_TLS_KEY (admin_tls_key) go together, \
         set both or neither: EMPORIUM_ADMIN_TLS_CERT (admin_tls_cert) is set but EMPORIUM_ADMIN_TLS_KEY is not"
    );
    let msg = err(&["--admin-tls-key", "/k.pem"], &[on]);
    assert!(
        msg.ends_with(
            "EMPORIUM_ADMIN_TLS_KEY (admin_tls_key, set by --admin-tls-key) is set but EMPORIUM_ADMIN_TLS_CERT is not"
        ),
        "{msg}"
    );
    let msg = err(&[], &[("EMPORIUM_ADMIN_TOKEN", ADMIN_TOKEN)]);
    assert_eq!(
        msg,
        "EMPORIUM_ADMIN_TOKEN (admin_token) is set, but the admin API is off: set EMPORIUM_ADMIN_ADDR (admin_addr) too"
    );
    assert!(!msg.contains(ADMIN_TOKEN));
    let msg = err(
        &[],
        &[
            ("EMPORIUM_ADMIN_TLS_CERT", "/c.pem"),
            ("EMPORIUM_ADMIN_TLS_KEY", "/k.pem"),
        ],
    );
    assert!(msg.contains("the admin API is off"), "{msg}");
    let msg = err(&["--http-addr", "127.0.0.1:9090"], &[on]);
    assert!(
        msg.contains("the admin API and the HTTP API need different ports"),
        "{msg}"
    );
    let msg = err(&["--admin-addr", "localhost:9090"], &[]);
    assert!(
        msg.starts_with(r#"invalid EMPORIUM_ADMIN_ADDR (admin_addr) = "localhost:9090""#)
            && msg.ends_with("(set by --admin-addr)"),
        "{msg}"
    );
}

#[test]
fn summary_and_debug_never_show_secrets() {
    let c = ok(
        &[
            "--cluster-addr",
            "127.0.0.1:7101",
            "--seeds",
            "127.0.0.1:7102",
        ],
        &[
            ("EMPORIUM_STORE", "postgres://app:pg-pass-1@db/shop"),
            ("EMPORIUM_CLUSTER_SECRET", "cluster-secret-2"),
            (
                "EMPORIUM_JWT_SECRET",
                "jwt-secret-3-jwt-secret-3-jwt-secret-3",
            ),
            ("EMPORIUM_ADMIN_EMAIL", "admin@example.com"),
            ("EMPORIUM_ADMIN_PASSWORD", "admin-pass-4"),
            ("EMPORIUM_REDIS_URL", "redis://:redis-pass-5@cache"),
            ("EMPORIUM_EVENTS", "nats://nats-token-6@bus"),
            ("EMPORIUM_OTLP_ENDPOINT", "http://collector:4318"),
        ],
    );
    let summary = c.to_string();
    let debug = format!("{c:?}");
    for secret in [
        "pg-pass-1",
        "cluster-secret-2",
        "jwt-secret-3",
        "admin-pass-4",
        "redis-pass-5",
        "nats-token-6",
    ] {
        assert!(
            !summary.contains(secret),
            "summary shows {secret}: {summary}"
        );
        assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
    }
    assert_eq!(
        summary,
        "node_id=node-testhost http_addr=127.0.0.1:8080 store=postgres://app:***@db/shop data_dir=./data \
         idle_timeout=5m max_active_actors=100000 store_cache_mb=64 demo=true request_timeout=10s max_body_bytes=65536 \
         log=\"info\" jwt_secret=set admin=admin@example.com redis_url=redis://:***@cache \
         events=nats://***@bus otlp=http://collector:4318 admin_api=off cluster=127.0.0.1:7101 seeds=[127.0.0.1:7102] cluster_secret=set \
         heartbeat_interval=500ms suspect_after=2s dead_after=5s crash_confirm=600ms \
         forget_after=1h"
    );
}

#[test]
fn help_and_version_are_not_failures() {
    for flag in ["--help", "--version"] {
        let e = load(&[flag], &[]).expect_err(flag);
        assert!(e.is_help_or_version(), "{flag}: {e:?}");
    }
    assert!(load(&["-h"], &[]).expect_err("-h").is_help_or_version());
    let version = load(&["--version"], &[]).expect_err("version").to_string();
    assert!(version.starts_with("emporium "), "{version}");

    let e = load(&["--http-adr", "x"], &[]).expect_err("unknown flag");
    assert!(
        matches!(e, ConfigError::Cli(_)) && !e.is_help_or_version(),
        "{e:?}"
    );
    // No positional arguments, and secrets have no flags.
    assert!(load(&["serve"], &[]).is_err());
    assert!(load(&["--jwt-secret", JWT], &[]).is_err());
}

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn example_single_node() {
    let c = ok(&["--config", &example("single-node.toml")], &[]);
    assert_eq!(c.http_addr, addr("0.0.0.0:8080"));
    assert_eq!(
        c.store,
        StoreConfig::Embedded {
            path: "/var/lib/emporium/store.redb".into()
        }
    );
    assert_eq!(c.node_id, "shop-1");
    assert_eq!(c.cluster, None);
}

#[test]
fn example_local_cluster_node1() {
    let c = ok(&["--config", &example("local-cluster-node1.toml")], &[]);
    assert!(
        matches!(
            c.store,
            StoreConfig::Postgres {
                pool_size: Some(8),
                ..
            }
        ),
        "{:?}",
        c.store
    );
    let cluster = c.cluster.expect("cluster mode");
    assert_eq!(cluster.addr, addr("127.0.0.1:7101"));
    assert_eq!(cluster.seeds, ["127.0.0.1:7102", "127.0.0.1:7103"]);
    // Node 2 runs from the same file, as its header says.
    let c = ok(
        &[
            "--config",
            &example("local-cluster-node1.toml"),
            "--node-id",
            "node2",
            "--http-addr",
            "127.0.0.1:8082",
            "--cluster-addr",
            "127.0.0.1:7102",
            "--seeds",
            "127.0.0.1:7101",
            "--data-dir",
            "./data/node2",
        ],
        &[],
    );
    assert_eq!(
        c.cluster.map(|c| c.seeds),
        Some(vec!["127.0.0.1:7101".to_owned()])
    );
}

#[test]
fn example_production() {
    let path = example("production.toml");
    let secrets = [
        ("EMPORIUM_CLUSTER_SECRET", "prod-cluster-secret"),
        ("EMPORIUM_JWT_SECRET", JWT),
        ("EMPORIUM_SCYLLA_PASSWORD", "scylla-pass"),
    ];
    let c = ok(&["--config", &path], &secrets);
    match &c.store {
        StoreConfig::Scylla {
            nodes,
            keyspace,
            replication_factor,
            datacenter,
            user,
            ..
        } => {
            assert_eq!(nodes.len(), 3);
            assert_eq!(keyspace, "emporium");
            assert_eq!(*replication_factor, 3);
            assert_eq!(datacenter.as_deref(), Some("eu-west-1"));
            assert_eq!(user.as_deref(), Some("emporium"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.demo);
    assert_eq!(c.node_id, "node-testhost");
    assert!(c.cluster.is_some());
    // Without its secrets from the environment it does not start.
    let msg = err(&["--config", &path], &[]);
    assert!(msg.contains("EMPORIUM_SCYLLA_PASSWORD"), "{msg}");
}
