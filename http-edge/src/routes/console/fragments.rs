//! The dashboard's fragments, rendered from the runtime's status types: the nodes table,
//! the shard map, active actors per kind, history lines, and the answers of actions. Pure
//! functions of their input (unit-tested below); every value is escaped.
//!
//! Stable hooks for tests and scripts: node rows `tr[data-node]` with `td[data-shards]`,
//! drain buttons `button[data-drain]`, shard cells `#shardmap .shardmap i` classed `o{n}`
//! by owner (legend entries `li[data-node][data-class][data-cells]`) or `none`, history
//! lines `li[data-change]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use emporium_runtime::{
    ActorLocation, ClusterChange, ClusterEvent, ClusterStatus, DrainOutcome, NodeStatus,
    PassivateOutcome,
};

use super::html::{escape, path_segment};

/// Owner colours of the stylesheet (`.o0` … `.o11`); more owners reuse them.
const PALETTE: usize = 12;

/// The nodes: health, status, incarnation, shards, active actors, rates, drain button.
pub fn nodes_table(status: &ClusterStatus) -> String {
    let mut html = String::from(
        r#"<table id="nodes-table"><thead><tr><th>node</th><th>health</th><th>status</th><th class="num">incarnation</th><th class="num">shards</th><th class="num">active</th><th class="num">req/s</th><th class="num">err/s</th><th class="num">events/s</th><th class="num">heartbeat</th><th></th></tr></thead><tbody>"#,
    );
    for node in &status.nodes {
        node_row(&mut html, node, node.node_id == status.node_id);
    }
    let _ = write!(
        html,
        r#"</tbody></table><p class="muted">{mode} · {shards} shards · <span data-unowned="{unowned}">{unowned} without owner</span> · seen from {this}</p>"#,
        mode = escape(status.mode),
        shards = status.shard_count,
        unowned = status.unowned_shards,
        this = escape(&status.node_id),
    );
    html
}

fn node_row(html: &mut String, node: &NodeStatus, this_node: bool) {
    let id = escape(&node.node_id);
    let rate = |pick: fn(&emporium_runtime::NodeLoad) -> f64| {
        node.load
            .as_ref()
            .map_or_else(|| "–".to_owned(), |load| format!("{:.1}", pick(load)))
    };
    let optional = |value: Option<u64>| value.map_or_else(|| "–".to_owned(), |v| v.to_string());
    let _ = write!(
        html,
        r#"<tr data-node="{id}"><td>{id}{this}</td><td><span class="badge {liveness}">{liveness}</span></td><td><span class="badge {status}">{status}</span></td><td class="num">{incarnation}</td><td class="num" data-shards="{shards}">{shards}</td><td class="num">{active}</td><td class="num">{requests}</td><td class="num">{errors}</td><td class="num">{events}</td><td class="num">{heartbeat}</td><td>{drain}</td></tr>"#,
        this = if this_node {
            r#" <span class="muted">(this node)</span>"#
        } else {
            ""
        },
        liveness = escape(&node.liveness),
        status = escape(&node.status),
        incarnation = optional(node.incarnation),
        shards = node.shards_owned,
        active = optional(node.active_actors),
        requests = rate(|load| load.requests_per_second),
        errors = rate(|load| load.errors_per_second),
        events = rate(|load| load.events_per_second),
        heartbeat = node.last_heartbeat_ms_ago.map_or_else(
            || "–".to_owned(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0)
        ),
        drain = drain_button(node),
    );
}

fn drain_button(node: &NodeStatus) -> String {
    let disabled = if node.shards_owned == 0 {
        " disabled"
    } else {
        ""
    };
    format!(
        r##"<button class="danger" data-drain="{id}" hx-post="/console/nodes/{segment}/drain" hx-target="#action-result" hx-disabled-elt="this"{disabled}>Drain</button>"##,
        id = escape(&node.node_id),
        segment = escape(&path_segment(&node.node_id)),
    )
}

/// One cell per shard, coloured by owner, and a legend with each owner's count.
pub fn shard_map(status: &ClusterStatus, owners: &[Option<String>]) -> String {
    // Colours follow the nodes table's order, so a node keeps its colour while it holds
    // nothing; owners the view does not list (forgotten nodes) come after.
    let mut order: Vec<&str> = status.nodes.iter().map(|n| n.node_id.as_str()).collect();
    let listed: BTreeSet<&str> = order.iter().copied().collect();
    let unlisted: BTreeSet<&str> = owners
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|owner| !listed.contains(owner))
        .collect();
    order.extend(unlisted);
    let class_of: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(index, node)| (*node, index % PALETTE))
        .collect();
    let mut cells: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unowned = 0;
    let mut html = String::with_capacity(owners.len() * 20 + 512);
    html.push_str(r#"<div class="shardmap" role="img" aria-label="shard owners">"#);
    for owner in owners {
        match owner.as_deref().and_then(|o| Some((o, class_of.get(o)?))) {
            Some((node, class)) => {
                *cells.entry(node).or_default() += 1;
                let _ = write!(html, r#"<i class="o{class}"></i>"#);
            }
            None => {
                unowned += 1;
                html.push_str(r#"<i class="none"></i>"#);
            }
        }
    }
    html.push_str(r#"</div><ul class="legend">"#);
    for node in &order {
        let count = cells.get(node).copied().unwrap_or(0);
        let _ = write!(
            html,
            r#"<li data-node="{id}" data-class="o{class}" data-cells="{count}"><i class="o{class}"></i>{id} ({count})</li>"#,
            id = escape(node),
            class = class_of.get(node).copied().unwrap_or(0),
        );
    }
    let _ = write!(
        html,
        r#"<li data-node="" data-class="none" data-cells="{unowned}"><i class="none"></i>no owner ({unowned})</li></ul>"#
    );
    html
}

/// Active actors per kind: one column per node and the total.
pub fn active_kinds(status: &ClusterStatus) -> String {
    let mut kinds: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (column, node) in status.nodes.iter().enumerate() {
        let Some(load) = &node.load else { continue };
        for (kind, active) in &load.active_by_kind {
            kinds
                .entry(kind)
                .or_insert_with(|| vec![0; status.nodes.len()])[column] = *active;
        }
    }
    if kinds.is_empty() {
        return r#"<p class="muted">No active actors.</p>"#.to_owned();
    }
    let mut html = String::from("<table><thead><tr><th>kind</th>");
    for node in &status.nodes {
        let _ = write!(html, r#"<th class="num">{}</th>"#, escape(&node.node_id));
    }
    html.push_str(r#"<th class="num">total</th></tr></thead><tbody>"#);
    for (kind, counts) in kinds {
        let _ = write!(html, r#"<tr data-kind="{0}"><td>{0}</td>"#, escape(kind));
        for count in &counts {
            let _ = write!(html, r#"<td class="num">{count}</td>"#);
        }
        let total: u64 = counts.iter().sum();
        let _ = write!(html, r#"<td class="num">{total}</td></tr>"#);
    }
    html.push_str("</tbody></table>");
    html
}

/// One line of the history, newest lines first in the list.
pub fn history_line(event: &ClusterEvent) -> String {
    let (kind, text) = describe(&event.change);
    format!(
        r#"<li class="{kind}" data-change="{kind}" data-seq="{seq}"><time>{time}</time> {text}</li>"#,
        seq = event.seq,
        time = clock_time(event.at_ms),
    )
}

/// A note in the history (this page missed events).
pub fn history_note(text: &str) -> String {
    format!(
        r#"<li class="note" data-change="note">{}</li>"#,
        escape(text)
    )
}

fn describe(change: &ClusterChange) -> (&'static str, String) {
    match change {
        ClusterChange::Joined {
            node_id,
            incarnation,
        } => (
            "joined",
            format!("{} joined (incarnation {incarnation})", escape(node_id)),
        ),
        ClusterChange::Left {
            node_id, status, ..
        } => ("left", format!("{} is {}", escape(node_id), escape(status))),
        ClusterChange::Liveness {
            node_id, liveness, ..
        } => (
            "liveness",
            format!("{} is {}", escape(node_id), escape(liveness)),
        ),
        ClusterChange::Ownership { from, to, shards } => (
            "ownership",
            format!(
                "{shards} shards {} → {}",
                from.as_deref()
                    .map_or_else(|| "(no owner)".to_owned(), escape),
                escape(to)
            ),
        ),
        ClusterChange::Failover {
            dead,
            to,
            shards,
            seconds,
        } => (
            "failover",
            format!(
                r#"failover: {shards} shards of dead {} taken by {} in <span class="duration">{seconds:.2} s</span>"#,
                escape(dead),
                escape(to)
            ),
        ),
    }
}

/// `HH:MM:SS` (UTC) of a Unix time in ms.
fn clock_time(at_ms: u64) -> String {
    let seconds = (at_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

pub fn drained(outcome: &DrainOutcome) -> String {
    format!(
        r#"<div class="result" role="status">Drained {}: {} shards at start, {} left. It stays up as an edge holding nothing until stopped.</div>"#,
        escape(&outcome.node_id),
        outcome.shards_at_start,
        outcome.shards_left
    )
}

pub fn passivated(outcome: &PassivateOutcome) -> String {
    format!(
        r#"<div class="result" role="status">{}/{} on {}: {}</div>"#,
        escape(&outcome.kind),
        escape(&outcome.key),
        escape(&outcome.node_id),
        escape(&outcome.result)
    )
}

pub fn location(location: &ActorLocation) -> String {
    let active = match location.active {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown (its owner could not be asked)",
    };
    format!(
        r#"<div class="result" role="status"><table><tr><th>actor</th><td>{kind}/{key}</td></tr><tr><th>shard</th><td>{shard}</td></tr><tr><th>owner</th><td data-owner>{owner}</td></tr><tr><th>lease epoch</th><td>{epoch}</td></tr><tr><th>active</th><td>{active}</td></tr><tr><th>stored version</th><td>{version}</td></tr></table></div>"#,
        kind = escape(&location.kind),
        key = escape(&location.key),
        shard = location.shard,
        owner = location
            .owner
            .as_deref()
            .map_or_else(|| "none (a failover in progress)".to_owned(), escape),
        epoch = location
            .lease_epoch
            .map_or_else(|| "–".to_owned(), |epoch| epoch.to_string()),
        version = location.version,
    )
}

#[cfg(test)]
mod tests {
    use emporium_runtime::NodeLoad;

    use super::*;

    fn node(id: &str, shards: usize) -> NodeStatus {
        NodeStatus {
            node_id: id.to_owned(),
            cluster_addr: None,
            http_addr: None,
            status: "up".to_owned(),
            liveness: "alive".to_owned(),
            incarnation: Some(7),
            shards_owned: shards,
            active_actors: Some(3),
            load: Some(NodeLoad {
                active_by_kind: [("cart".to_owned(), 2), ("user".to_owned(), 1)].into(),
                requests_per_second: 1.5,
                errors_per_second: 0.0,
                events_per_second: 0.5,
            }),
            last_heartbeat_ms_ago: Some(250),
        }
    }

    fn status(nodes: Vec<NodeStatus>) -> ClusterStatus {
        ClusterStatus {
            mode: "cluster",
            node_id: "n1".to_owned(),
            shard_count: 1024,
            unowned_shards: 0,
            nodes,
        }
    }

    #[test]
    fn the_nodes_table_has_a_row_and_a_drain_button_per_node() {
        let html = nodes_table(&status(vec![node("n1", 600), node("n/2", 0)]));
        assert!(html.contains(r#"<tr data-node="n1"><td>n1 <span class="muted">(this node)"#));
        assert!(html.contains(r#"data-shards="600">600<"#));
        assert!(html.contains(r#"hx-post="/console/nodes/n1/drain""#));
        // An id is escaped and percent-encoded in the URL; a node holding nothing cannot
        // be drained.
        assert!(html.contains(r#"hx-post="/console/nodes/n%2F2/drain""#));
        assert!(html.contains(r#"data-drain="n/2" "#));
        assert!(html.contains("disabled>Drain"));
        assert!(html.contains(r#"<td class="num">1.5</td>"#));
        assert!(html.contains(r#"<span class="badge alive">alive</span>"#));
    }

    #[test]
    fn node_ids_are_escaped_everywhere() {
        let evil = node("<script>x</script>", 1);
        let status = status(vec![evil]);
        let owners = vec![Some("<script>x</script>".to_owned())];
        for html in [
            nodes_table(&status),
            shard_map(&status, &owners),
            active_kinds(&status),
        ] {
            assert!(!html.contains("<script>"), "{html}");
        }
    }

    #[test]
    fn the_shard_map_colours_each_cell_by_its_owner_and_counts_them() {
        let status = status(vec![node("n1", 2), node("n2", 0), node("n3", 1)]);
        let owners = vec![
            Some("n1".to_owned()),
            None,
            Some("n3".to_owned()),
            Some("n1".to_owned()),
            Some("gone".to_owned()),
        ];
        let html = shard_map(&status, &owners);
        assert_eq!(html.matches("<i class=\"o0\"></i>").count(), 1 + 2);
        assert_eq!(html.matches("<i class=\"o2\"></i>").count(), 1 + 1);
        // A node that owns nothing keeps its colour in the legend, with no cell.
        assert!(html.contains(r#"<li data-node="n2" data-class="o1" data-cells="0">"#));
        assert!(html.contains(r#"<li data-node="n3" data-class="o2" data-cells="1">"#));
        // An owner the view does not list gets a colour after the listed nodes.
        assert!(html.contains(r#"<li data-node="gone" data-class="o3" data-cells="1">"#));
        assert!(html.contains(r#"data-class="none" data-cells="1">"#));
    }

    #[test]
    fn active_actors_are_counted_per_kind_and_node() {
        let html = active_kinds(&status(vec![node("n1", 1), node("n2", 1)]));
        assert!(html.contains(
            r#"<tr data-kind="cart"><td>cart</td><td class="num">2</td><td class="num">2</td><td class="num">4</td></tr>"#
        ));
        let idle = status(vec![NodeStatus {
            load: None,
            ..node("n1", 1)
        }]);
        assert!(active_kinds(&idle).contains("No active actors"));
    }

    #[test]
    fn history_lines_say_what_moved_and_highlight_failovers() {
        let event = |change| ClusterEvent {
            seq: 4,
            at_ms: 3_723_000,
            observer: "n1".to_owned(),
            change,
        };
        let moved = history_line(&event(ClusterChange::Ownership {
            from: Some("n3".to_owned()),
            to: "n1".to_owned(),
            shards: 12,
        }));
        assert_eq!(
            moved,
            r#"<li class="ownership" data-change="ownership" data-seq="4"><time>01:02:03</time> 12 shards n3 → n1</li>"#
        );
        let failover = history_line(&event(ClusterChange::Failover {
            dead: "n2".to_owned(),
            to: "n1".to_owned(),
            shards: 300,
            seconds: 0.731,
        }));
        assert!(failover.contains(r#"class="failover""#));
        assert!(failover.contains(r#"<span class="duration">0.73 s</span>"#));
    }
}
