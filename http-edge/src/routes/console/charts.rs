//! The rate charts: a bounded ring of per-second samples per node (requests, server errors
//! and events per second, as each node reports them in the cluster view), drawn as SVG
//! sparklines. One ring set per console stream: it starts empty when the page opens and
//! holds at most [`WINDOW`] samples per node; nodes that left the view are dropped.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use emporium_runtime::ClusterStatus;

use super::html::escape;

/// Samples kept per node: two minutes at one a second.
pub const WINDOW: usize = 120;
/// Sparkline height in SVG units (the width is [`WINDOW`] units).
const HEIGHT: f64 = 28.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    requests: f64,
    errors: f64,
    events: f64,
}

/// Which rate of a sample a chart shows.
type Pick = fn(&Sample) -> f64;

/// The last [`WINDOW`] samples of every node in view.
#[derive(Default)]
pub struct RateHistory {
    nodes: BTreeMap<String, VecDeque<Sample>>,
}

impl RateHistory {
    /// Add one sample per node of `status` (a node that could not be asked counts 0).
    pub fn record(&mut self, status: &ClusterStatus) {
        self.nodes
            .retain(|id, _| status.nodes.iter().any(|node| &node.node_id == id));
        for node in &status.nodes {
            let sample = node
                .load
                .as_ref()
                .map_or_else(Sample::default, |load| Sample {
                    requests: load.requests_per_second,
                    errors: load.errors_per_second,
                    events: load.events_per_second,
                });
            let ring = self.nodes.entry(node.node_id.clone()).or_default();
            if ring.len() == WINDOW {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }

    /// Samples held for `node`.
    #[cfg(test)]
    pub fn len(&self, node: &str) -> usize {
        self.nodes.get(node).map_or(0, VecDeque::len)
    }

    /// One row per node: a sparkline and the latest value of each rate.
    pub fn render(&self) -> String {
        let mut html = String::from(
            r#"<table class="charts"><thead><tr><th>node</th><th>requests/s</th><th>errors/s</th><th>events/s</th></tr></thead><tbody>"#,
        );
        for (node, ring) in &self.nodes {
            let _ = write!(html, r#"<tr data-node="{0}"><td>{0}</td>"#, escape(node));
            let rates: [(&str, Pick); 3] = [
                ("requests", |sample| sample.requests),
                ("errors", |sample| sample.errors),
                ("events", |sample| sample.events),
            ];
            for (class, rate) in rates {
                let values: Vec<f64> = ring.iter().map(rate).collect();
                let _ = write!(html, "<td>{}</td>", sparkline(class, &values));
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
        html
    }
}

/// An SVG polyline of `values` (oldest first, right-aligned in a [`WINDOW`]-wide box,
/// scaled to the largest), with the latest and the largest value in its title and beside it.
pub fn sparkline(class: &str, values: &[f64]) -> String {
    let latest = values.last().copied().unwrap_or(0.0);
    let top = values.iter().copied().fold(0.0_f64, f64::max);
    let scale = if top > 0.0 { top } else { 1.0 };
    let offset = WINDOW.saturating_sub(values.len());
    let mut points = String::new();
    for (index, value) in values.iter().enumerate() {
        let x = offset + index;
        let y = HEIGHT - 1.0 - (value.max(0.0) / scale) * (HEIGHT - 2.0);
        let _ = write!(points, "{x},{y:.1} ");
    }
    format!(
        r#"<svg class="spark {class}" viewBox="0 0 {width} {HEIGHT}" preserveAspectRatio="none" role="img"><title>{class}: now {latest:.1}/s, max {top:.1}/s over the last {seconds} s</title><polyline vector-effect="non-scaling-stroke" points="{points}"/></svg><span class="muted">{latest:.1}</span>"#,
        width = WINDOW - 1,
        points = points.trim_end(),
        seconds = values.len(),
    )
}

#[cfg(test)]
mod tests {
    use emporium_runtime::{NodeLoad, NodeStatus};

    use super::*;

    fn status(nodes: &[(&str, f64)]) -> ClusterStatus {
        ClusterStatus {
            mode: "cluster",
            node_id: "n1".to_owned(),
            shard_count: 1024,
            unowned_shards: 0,
            nodes: nodes
                .iter()
                .map(|(id, requests)| NodeStatus {
                    node_id: (*id).to_owned(),
                    cluster_addr: None,
                    http_addr: None,
                    status: "up".to_owned(),
                    liveness: "alive".to_owned(),
                    incarnation: Some(1),
                    shards_owned: 0,
                    active_actors: Some(0),
                    load: Some(NodeLoad {
                        requests_per_second: *requests,
                        ..NodeLoad::default()
                    }),
                    last_heartbeat_ms_ago: Some(0),
                })
                .collect(),
        }
    }

    #[test]
    fn the_ring_is_bounded_and_forgets_nodes_that_left() {
        let mut history = RateHistory::default();
        for _ in 0..WINDOW + 30 {
            history.record(&status(&[("n1", 1.0), ("n2", 2.0)]));
        }
        assert_eq!(history.len("n1"), WINDOW);
        history.record(&status(&[("n1", 1.0)]));
        assert_eq!(history.len("n2"), 0);
        assert!(!history.render().contains("n2"));
    }

    #[test]
    fn a_sparkline_is_scaled_to_its_largest_value_and_right_aligned() {
        let svg = sparkline("requests", &[0.0, 5.0, 10.0]);
        // Three points at the right edge: the largest at the top, zero at the bottom.
        assert!(
            svg.contains(r#"points="117,27.0 118,14.0 119,1.0""#),
            "{svg}"
        );
        assert!(svg.contains("now 10.0/s, max 10.0/s"), "{svg}");
        // Nothing yet, or only zeros: no division by zero.
        assert!(sparkline("errors", &[]).contains(r#"points="""#));
        assert!(sparkline("errors", &[0.0, 0.0]).contains("118,27.0 119,27.0"));
    }
}
