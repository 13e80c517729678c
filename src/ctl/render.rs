//! The human output of `emporium ctl`: aligned tables, one line per event. Pure functions
//! of the answers, so that they are tested without a node.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use emporium_admin::WatchItem;
use emporium_runtime::{
    ActorLocation, ClusterChange, ClusterEvent, ClusterStatus, DrainOutcome, PassivateOutcome,
};

/// Left-aligned columns, two spaces apart, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![line(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn rate(value: f64) -> String {
    format!("{value:.1}")
}

/// The nodes, then the active actors per kind and node.
pub fn cluster(status: &ClusterStatus) -> String {
    let mut out = format!(
        "{} mode, answered by {}: {} shards, {} unowned\n\n",
        status.mode, status.node_id, status.shard_count, status.unowned_shards
    );
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|node| {
            let load = node.load.as_ref();
            vec![
                node.node_id.clone(),
                node.status.clone(),
                node.liveness.clone(),
                or_dash(node.incarnation),
                node.shards_owned.to_string(),
                or_dash(node.active_actors),
                or_dash(load.map(|load| rate(load.requests_per_second))),
                or_dash(load.map(|load| rate(load.errors_per_second))),
                or_dash(load.map(|load| rate(load.events_per_second))),
                or_dash(
                    node.last_heartbeat_ms_ago
                        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0)),
                ),
            ]
        })
        .collect();
    let headers = [
        "NODE",
        "STATUS",
        "LIVENESS",
        "INCARNATION",
        "SHARDS",
        "ACTIVE",
        "REQ/S",
        "ERR/S",
        "EV/S",
        "HEARTBEAT",
    ];
    out.push_str(&table(&headers, &rows));
    out.push_str("\n\n");
    out.push_str(&active_per_kind(status));
    out
}

/// Kinds down, nodes across.
fn active_per_kind(status: &ClusterStatus) -> String {
    let kinds: BTreeSet<&str> = status
        .nodes
        .iter()
        .filter_map(|node| node.load.as_ref())
        .flat_map(|load| load.active_by_kind.keys().map(String::as_str))
        .collect();
    if kinds.is_empty() {
        return "no active actors".to_owned();
    }
    let mut headers = vec!["KIND"];
    headers.extend(status.nodes.iter().map(|node| node.node_id.as_str()));
    let rows: Vec<Vec<String>> = kinds
        .iter()
        .map(|kind| {
            let mut row = vec![(*kind).to_owned()];
            row.extend(status.nodes.iter().map(|node| {
                or_dash(
                    node.load
                        .as_ref()
                        .map(|load| load.active_by_kind.get(*kind).copied().unwrap_or(0)),
                )
            }));
            row
        })
        .collect();
    table(&headers, &rows)
}

pub fn actor(location: &ActorLocation) -> String {
    let active = match location.active {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown (the owner could not be asked)",
    };
    let rows = vec![
        vec!["shard".to_owned(), location.shard.to_string()],
        vec![
            "owner".to_owned(),
            location
                .owner
                .clone()
                .unwrap_or_else(|| "none (no live lease holder)".to_owned()),
        ],
        vec!["lease epoch".to_owned(), or_dash(location.lease_epoch)],
        vec!["active".to_owned(), active.to_owned()],
        vec!["version".to_owned(), location.version.to_string()],
    ];
    format!(
        "{}/{}\n{}",
        location.kind,
        location.key,
        table(&["", ""], &rows)
            .lines()
            .skip(1)
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

pub fn drain(outcome: &DrainOutcome) -> String {
    if outcome.shards_left == 0 {
        format!(
            "{}: drained, {} shards handed over; it holds none and stays up as an edge",
            outcome.node_id, outcome.shards_at_start
        )
    } else {
        format!(
            "{}: still holds {} of its {} shards (the hand-over did not finish in time)",
            outcome.node_id, outcome.shards_left, outcome.shards_at_start
        )
    }
}

pub fn passivate(outcome: &PassivateOutcome) -> String {
    let what = match outcome.result.as_str() {
        "passivated" => "passivated",
        "inactive" => "was not active",
        "busy" => "is running a message, left alone (retry)",
        other => other,
    };
    format!(
        "{}/{} on {}: {what}",
        outcome.kind, outcome.key, outcome.node_id
    )
}

pub fn rebalance(nodes: &[String]) -> String {
    format!("lease round run on {}", nodes.join(", "))
}

/// `2026-12-06T23:40:23.123Z`.
fn time(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

fn change(change: &ClusterChange) -> String {
    match change {
        ClusterChange::Joined {
            node_id,
            incarnation,
        } => format!("joined    {node_id} (incarnation {incarnation})"),
        ClusterChange::Left {
            node_id,
            incarnation,
            status,
        } => format!("left      {node_id} (incarnation {incarnation}) is {status}"),
        ClusterChange::Liveness {
            node_id,
            incarnation,
            liveness,
        } => format!("liveness  {node_id} (incarnation {incarnation}) is {liveness}"),
        ClusterChange::Ownership { from, to, shards } => format!(
            "ownership {shards} shards {} -> {to}",
            from.as_deref().unwrap_or("(none)")
        ),
        ClusterChange::Failover {
            dead,
            to,
            shards,
            seconds,
        } => format!("failover  {shards} shards of dead {dead} -> {to} in {seconds:.2}s"),
    }
}

pub fn event(event: &ClusterEvent) -> String {
    format!(
        "{}  {}  #{:<5} {}",
        time(event.at_ms),
        event.observer,
        event.seq,
        change(&event.change)
    )
}

pub fn watch_item(item: &WatchItem) -> String {
    match item {
        WatchItem::Event(event) => self::event(event),
        WatchItem::CaughtUp => "--- live ---".to_owned(),
        WatchItem::Lagged(missed) => format!("--- missed {missed} events (too slow) ---"),
    }
}

/// One JSON object per line: an event as the HTTP event stream sends it, or a marker.
pub fn watch_item_json(item: &WatchItem) -> String {
    let value = match item {
        WatchItem::Event(event) => serde_json::to_value(event).unwrap_or_default(),
        WatchItem::CaughtUp => serde_json::json!({ "type": "caught_up" }),
        WatchItem::Lagged(missed) => serde_json::json!({ "type": "lagged", "missed": missed }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_runtime::{NodeLoad, NodeStatus};

    fn node(id: &str, kinds: &[(&str, u64)]) -> NodeStatus {
        NodeStatus {
            node_id: id.to_owned(),
            cluster_addr: None,
            http_addr: None,
            status: "up".to_owned(),
            liveness: "alive".to_owned(),
            incarnation: Some(2),
            shards_owned: 512,
            active_actors: Some(kinds.iter().map(|(_, n)| n).sum()),
            load: Some(NodeLoad {
                active_by_kind: kinds.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
                requests_per_second: 12.34,
                errors_per_second: 0.0,
                events_per_second: 1.5,
            }),
            last_heartbeat_ms_ago: Some(250),
        }
    }

    #[test]
    fn tables_are_aligned() {
        let text = table(
            &["A", "LONG HEADER"],
            &[vec!["wide cell".into(), "x".into()]],
        );
        assert_eq!(text, "A          LONG HEADER\nwide cell  x");
    }

    #[test]
    fn the_cluster_shows_nodes_then_kinds() {
        let status = ClusterStatus {
            mode: "cluster",
            node_id: "node-1".into(),
            shard_count: 1024,
            unowned_shards: 0,
            nodes: vec![
                node("node-1", &[("cart", 3)]),
                node("node-2", &[("user", 1)]),
            ],
        };
        let text = cluster(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "cluster mode, answered by node-1: 1024 shards, 0 unowned"
        );
        assert!(lines[2].starts_with("NODE    STATUS  LIVENESS"), "{text}");
        assert!(
            lines[3].starts_with("node-1  up      alive     2            512     3       12.3"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("0.2s") || lines[3].ends_with("0.3s"),
            "{text}"
        );
        assert_eq!(lines[6], "KIND  node-1  node-2");
        assert_eq!(lines[7], "cart  3       0");
        assert_eq!(lines[8], "user  0       1");
    }

    #[test]
    fn events_are_one_line_each_with_their_time() {
        let event = ClusterEvent {
            seq: 7,
            at_ms: 1_700_000_000_123,
            observer: "node-1".into(),
            change: ClusterChange::Ownership {
                from: Some("node-3".into()),
                to: "node-2".into(),
                shards: 12,
            },
        };
        assert_eq!(
            self::event(&event),
            "2023-11-14T22:13:20.123Z  node-1  #7     ownership 12 shards node-3 -> node-2"
        );
        let json: serde_json::Value =
            serde_json::from_str(&watch_item_json(&WatchItem::Event(event))).unwrap();
        assert_eq!(json["type"], "ownership");
        assert_eq!(json["from"], "node-3");
        assert_eq!(json["seq"], 7);
        assert_eq!(
            watch_item_json(&WatchItem::Lagged(3)),
            r#"{"missed":3,"type":"lagged"}"#
        );
    }
}
