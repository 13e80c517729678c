//! What the cluster benches (`cluster`, `failover`) share: a scratch PostgreSQL database per
//! run, `emporium` node processes started from the release binary, and reading a cluster
//! view. Included by path (`#[path = "support/cluster.rs"] mod cluster_kit;`) only from
//! those two bench binaries, so that the in-process benches do not build it.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use emporium_testkit::scratch_postgres::{drop_stale_databases, with_database};
use serde_json::Value;
use tokio::process::{Child, Command};

/// How long a node may take to serve, to be ready, or a cluster to be whole and settled.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
pub const SHARD_COUNT: u64 = 1024;
pub const ADMIN_EMAIL: &str = "bench-admin@example.com";
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// A database `<prefix><pid>` made for this run on the server `EMPORIUM_TEST_POSTGRES`
/// (default `postgres://postgres@127.0.0.1:5432/postgres`).
pub struct ScratchDatabase {
    admin: tokio_postgres::Client,
    pub name: String,
    /// The store URL of the new database.
    pub url: String,
}

impl ScratchDatabase {
    /// Drops the databases `<prefix><pid>` whose process is gone, then makes this run's.
    /// `None` (after printing `<bench>: skipped: …`) when the server cannot be reached.
    pub async fn create(bench: &str, prefix: &str) -> Option<Self> {
        let admin_url = std::env::var("EMPORIUM_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = match postgres_client(&admin_url).await {
            Ok(client) => client,
            Err(error) => {
                println!("{bench}: skipped: postgres at {admin_url} unreachable: {error}");
                return None;
            }
        };
        drop_stale_databases(&admin, prefix).await;
        let name = format!("{prefix}{}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the bench database");
        let url = with_database(&admin_url, &name);
        Some(Self { admin, name, url })
    }

    /// Drop the database (terminating what is still connected to it).
    pub async fn remove(self) -> Result<(), tokio_postgres::Error> {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
    }
}

async fn postgres_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// What one node process is started with.
pub struct NodeSpec<'a> {
    pub id: &'a str,
    pub cluster_addr: &'a str,
    pub secret: &'a str,
    pub jwt: &'a str,
    pub store_url: &'a str,
    /// The node's data directory (made if missing).
    pub data: &'a Path,
    /// Where its stdout and stderr go.
    pub log: &'a Path,
    /// Cluster addresses of running nodes (none for the first).
    pub seeds: &'a [String],
}

/// The `emporium` release binary for `spec`, not yet spawned: warnings and the cluster's
/// events logged to `spec.log`, no rate limit (every request comes from one address), the
/// bench admin, killed on drop. Callers add what differs (demo data, pool size).
pub fn node_command(spec: &NodeSpec<'_>) -> Command {
    std::fs::create_dir_all(spec.data).expect("node data dir");
    let out = std::fs::File::create(spec.log).expect("node log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_emporium"));
    command
        .env("EMPORIUM_NODE_ID", spec.id)
        .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
        .env("EMPORIUM_CLUSTER_ADDR", spec.cluster_addr)
        .env("EMPORIUM_CLUSTER_SECRET", spec.secret)
        .env("EMPORIUM_JWT_SECRET", spec.jwt)
        .env("EMPORIUM_STORE", spec.store_url)
        .env("EMPORIUM_DATA_DIR", spec.data)
        .env("EMPORIUM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("EMPORIUM_RATE_LIMIT", "off")
        // Cluster mode needs NATS: the test services' server, a stream per bench run.
        .env(
            "EMPORIUM_EVENTS",
            std::env::var("EMPORIUM_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        )
        .env(
            "EMPORIUM_NATS_STREAM",
            format!("BENCH_{}", std::process::id()),
        )
        .env(
            "EMPORIUM_NATS_SUBJECT_PREFIX",
            format!("bench{}", std::process::id()),
        )
        .env("EMPORIUM_LOG", "warn,emporium_runtime::cluster=info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log fd"))
        .stderr(out)
        .kill_on_drop(true);
    if !spec.seeds.is_empty() {
        command.env("EMPORIUM_SEEDS", spec.seeds.join(","));
    }
    command
}

/// The base URL node `id` prints to `log` once it serves (it listens on a port the OS picks),
/// looking every `poll`.
pub async fn wait_for_url(id: &str, log: &Path, child: &mut Child, poll: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find_map(|line| line.split_once(" serving on ").map(|(_, url)| url.trim()))
        {
            return url.to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{id} exited during start-up ({status}):\n{text}");
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "{id} did not serve within {READY_DEADLINE:?}:\n{text}"
        );
        tokio::time::sleep(poll).await;
    }
}

/// Until node `id` at `base` answers `/readyz` with a success.
pub async fn wait_ready(client: &reqwest::Client, id: &str, base: &str) {
    let ready_url = format!("{base}/readyz");
    let started = Instant::now();
    loop {
        let ready = client
            .get(&ready_url)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return;
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "{id} not ready within {READY_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until each of `nodes` (indexes into `ids`) sees every node in `ids` up and alive with
/// every shard owned in the view `view(node)` fetches, looking every `poll`. Panics once
/// `started` is [`READY_DEADLINE`] ago.
pub async fn wait_complete<F, Fut>(
    started: Instant,
    ids: &[&str],
    nodes: &[usize],
    poll: Duration,
    mut view: F,
) where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Value>,
{
    for &node in nodes {
        loop {
            let view = view(node).await;
            if view_is_complete(&view, ids) {
                break;
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "{} never saw {ids:?} up with every shard owned; last view: {view:#}",
                ids[node]
            );
            tokio::time::sleep(poll).await;
        }
    }
}

/// Until the shards per node (of the views `view` fetches) have not changed for
/// `settled_after`; returns them and when they last changed. Panics once `started` is
/// [`READY_DEADLINE`] ago.
pub async fn wait_settled<F, Fut>(
    started: Instant,
    settled_after: Duration,
    mut view: F,
) -> (String, Instant)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Value>,
{
    let mut last = String::new();
    let mut since = Instant::now();
    loop {
        let view = view().await;
        let owned = shards_by_node(&view);
        if owned != last {
            (last, since) = (owned, Instant::now());
        } else if since.elapsed() >= settled_after {
            return (last, since);
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "shard ownership never settled; last view: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `node=shards` for each node of a cluster view.
pub fn shards_by_node(view: &Value) -> String {
    view["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|node| {
                    format!(
                        "{}={}",
                        node["node_id"].as_str().unwrap_or("?"),
                        node["shards_owned"]
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every node in `ids` up and alive, no shard unowned, the owned shards adding up.
fn view_is_complete(view: &Value, ids: &[&str]) -> bool {
    let Some(nodes) = view["nodes"].as_array() else {
        return false;
    };
    let healthy = |id: &&str| {
        nodes.iter().any(|node| {
            node["node_id"] == *id && node["status"] == "up" && node["liveness"] == "alive"
        })
    };
    let owned: u64 = nodes
        .iter()
        .filter_map(|node| node["shards_owned"].as_u64())
        .sum();
    ids.iter().all(healthy) && view["unowned_shards"] == 0 && owned == SHARD_COUNT
}

/// A port nothing listens on right now on 127.0.0.1 (the OS picks it; the listener is
/// dropped before the node binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
