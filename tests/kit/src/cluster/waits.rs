//! Waiting on a cluster: polling under a deadline instead of sleeping, and the two shapes of
//! a cluster view (`GET /v1/admin/cluster`) that mean "ready": *complete* (every node up
//! and alive, all 1024 shards owned) and *settled* (the shards per node stopped moving:
//! complete is not settled, the first node may still hold shards whose rendezvous owner
//! joined after it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// Shards of the placement function (fixed by the runtime).
pub const SHARD_COUNT: u64 = 1024;

/// Poll `check` until it holds or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node of `ids` up and alive, no shard unowned, and the owned shards adding up.
pub fn view_is_complete(view: &Value, ids: &[String]) -> bool {
    let Some(nodes) = view["nodes"].as_array() else {
        return false;
    };
    let healthy = |id: &String| {
        nodes.iter().any(|node| {
            node["node_id"] == id.as_str() && node["status"] == "up" && node["liveness"] == "alive"
        })
    };
    let owned: u64 = nodes
        .iter()
        .filter_map(|node| node["shards_owned"].as_u64())
        .sum();
    ids.iter().all(healthy) && view["unowned_shards"] == 0 && owned == SHARD_COUNT
}

/// Shards owned per node id in a cluster view.
pub fn shards_by_node(view: &Value) -> BTreeMap<String, u64> {
    view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            (
                node["node_id"].as_str().expect("node_id").to_owned(),
                node["shards_owned"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// `node=shards …` of a cluster view, for a log line.
pub fn shards_line(view: &Value) -> String {
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

/// Until the shards per node (of the views `view` fetches) have not changed for
/// `settled_after`, at most `deadline`; returns when they last changed, `None` if they did
/// not settle in time.
pub async fn wait_settled<F, Fut>(
    settled_after: Duration,
    deadline: Duration,
    mut view: F,
) -> Option<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let started = Instant::now();
    let mut last = String::new();
    let mut since = Instant::now();
    loop {
        let owned = shards_line(&view().await);
        if owned != last {
            (last, since) = (owned, Instant::now());
        } else if since.elapsed() >= settled_after {
            return Some(since);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
