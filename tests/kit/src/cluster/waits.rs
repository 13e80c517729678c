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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view(second: (&str, &str), shards: [u64; 2], unowned: u64) -> Value {
        json!({
            "nodes": [
                {"node_id": "node-1", "status": "up", "liveness": "alive", "shards_owned": shards[0]},
                {"node_id": "node-2", "status": second.0, "liveness": second.1, "shards_owned": shards[1]},
            ],
            "unowned_shards": unowned,
        })
    }

    #[test]
    fn a_view_is_complete_only_with_every_node_up_and_every_shard_owned() {
        let ids = ["node-1".to_owned(), "node-2".to_owned()];
        assert!(view_is_complete(
            &view(("up", "alive"), [512, 512], 0),
            &ids
        ));
        assert!(!view_is_complete(
            &view(("joining", "alive"), [512, 512], 0),
            &ids
        ));
        assert!(!view_is_complete(
            &view(("up", "suspect"), [512, 512], 0),
            &ids
        ));
        assert!(!view_is_complete(
            &view(("up", "alive"), [512, 500], 12),
            &ids
        ));
        assert!(!view_is_complete(
            &view(("up", "alive"), [512, 500], 0),
            &ids
        ));
        let three = [ids[0].clone(), ids[1].clone(), "node-3".to_owned()];
        assert!(!view_is_complete(
            &view(("up", "alive"), [512, 512], 0),
            &three
        ));
    }

    #[test]
    fn shards_per_node_are_read_from_the_view() {
        let view = view(("up", "alive"), [600, 424], 0);
        assert_eq!(shards_line(&view), "node-1=600 node-2=424");
        assert_eq!(shards_by_node(&view)["node-2"], 424);
    }

    #[tokio::test(start_paused = true)]
    async fn settled_means_unchanged_for_the_whole_interval() {
        let views = std::cell::RefCell::new(vec![
            view(("up", "alive"), [1024, 0], 0),
            view(("up", "alive"), [600, 424], 0),
        ]);
        let next = || {
            let mut views = views.borrow_mut();
            let view = if views.len() > 1 {
                views.remove(0)
            } else {
                views[0].clone()
            };
            async move { view }
        };
        let started = Instant::now();
        let since = wait_settled(Duration::from_secs(1), Duration::from_secs(10), next)
            .await
            .expect("settles");
        assert!(
            since > started,
            "the last change is the second view, not the first"
        );
        let never = wait_settled(Duration::from_secs(20), Duration::from_secs(2), || async {
            Value::Null
        })
        .await;
        assert_eq!(never, None, "not settled within the deadline");
    }
}
