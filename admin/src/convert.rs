//! Between the runtime's status types and the wire messages, both ways: the server sends
//! what the runtime answers, the client gives back the runtime's types, so that `ctl --json`
//! prints the same JSON as the HTTP admin routes.
//!
//! Lossless except for `mode` (an unknown mode reads back as `cluster`) and counts beyond
//! the platform's `usize` (saturated).

use emporium_runtime::{
    ActorLocation, ClusterChange, ClusterEvent, ClusterStatus, DrainOutcome, NodeLoad, NodeStatus,
    PassivateOutcome,
};

use crate::proto;
use crate::proto::cluster_event::Change;

/// A reply the client cannot read: a message without a required part (a newer server?).
#[derive(Debug, thiserror::Error)]
#[error("malformed reply from the server: {0}")]
pub struct MalformedReply(pub &'static str);

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub(crate) fn cluster_view(status: ClusterStatus) -> proto::ClusterView {
    proto::ClusterView {
        mode: status.mode.to_owned(),
        node_id: status.node_id,
        shard_count: u32::from(status.shard_count),
        unowned_shards: count(status.unowned_shards),
        nodes: status.nodes.into_iter().map(node_view).collect(),
    }
}

fn node_view(node: NodeStatus) -> proto::NodeView {
    proto::NodeView {
        node_id: node.node_id,
        cluster_addr: node.cluster_addr,
        http_addr: node.http_addr,
        status: node.status,
        liveness: node.liveness,
        incarnation: node.incarnation,
        shards_owned: count(node.shards_owned),
        active_actors: node.active_actors,
        load: node.load.map(|load| proto::NodeLoad {
            active_by_kind: load.active_by_kind.into_iter().collect(),
            requests_per_second: load.requests_per_second,
            errors_per_second: load.errors_per_second,
            events_per_second: load.events_per_second,
        }),
        last_heartbeat_ms_ago: node.last_heartbeat_ms_ago,
    }
}

pub(crate) fn cluster_status(view: proto::ClusterView) -> ClusterStatus {
    ClusterStatus {
        mode: if view.mode == "single" {
            "single"
        } else {
            "cluster"
        },
        node_id: view.node_id,
        shard_count: u16::try_from(view.shard_count).unwrap_or(u16::MAX),
        unowned_shards: size(view.unowned_shards),
        nodes: view.nodes.into_iter().map(node_status).collect(),
    }
}

fn node_status(node: proto::NodeView) -> NodeStatus {
    NodeStatus {
        node_id: node.node_id,
        cluster_addr: node.cluster_addr,
        http_addr: node.http_addr,
        status: node.status,
        liveness: node.liveness,
        incarnation: node.incarnation,
        shards_owned: size(node.shards_owned),
        active_actors: node.active_actors,
        load: node.load.map(|load| NodeLoad {
            active_by_kind: load.active_by_kind.into_iter().collect(),
            requests_per_second: load.requests_per_second,
            errors_per_second: load.errors_per_second,
            events_per_second: load.events_per_second,
        }),
        last_heartbeat_ms_ago: node.last_heartbeat_ms_ago,
    }
}

pub(crate) fn actor_location(location: ActorLocation) -> proto::ActorLocation {
    proto::ActorLocation {
        kind: location.kind,
        key: location.key,
        shard: u32::from(location.shard),
        owner: location.owner,
        lease_epoch: location.lease_epoch,
        active: location.active,
        version: location.version,
    }
}

pub(crate) fn location_of(location: proto::ActorLocation) -> ActorLocation {
    ActorLocation {
        kind: location.kind,
        key: location.key,
        shard: u16::try_from(location.shard).unwrap_or(u16::MAX),
        owner: location.owner,
        lease_epoch: location.lease_epoch,
        active: location.active,
        version: location.version,
    }
}

pub(crate) fn drain_outcome(outcome: DrainOutcome) -> proto::DrainOutcome {
    proto::DrainOutcome {
        node_id: outcome.node_id,
        shards_at_start: count(outcome.shards_at_start),
        shards_left: count(outcome.shards_left),
    }
}

pub(crate) fn drained(outcome: proto::DrainOutcome) -> DrainOutcome {
    DrainOutcome {
        node_id: outcome.node_id,
        shards_at_start: size(outcome.shards_at_start),
        shards_left: size(outcome.shards_left),
    }
}

pub(crate) fn passivate_outcome(outcome: PassivateOutcome) -> proto::PassivateOutcome {
    proto::PassivateOutcome {
        kind: outcome.kind,
        key: outcome.key,
        node_id: outcome.node_id,
        result: outcome.result,
    }
}

pub(crate) fn passivated(outcome: proto::PassivateOutcome) -> PassivateOutcome {
    PassivateOutcome {
        kind: outcome.kind,
        key: outcome.key,
        node_id: outcome.node_id,
        result: outcome.result,
    }
}

pub(crate) fn cluster_event(event: ClusterEvent) -> proto::ClusterEvent {
    let change = match event.change {
        ClusterChange::Joined {
            node_id,
            incarnation,
        } => Change::Joined(proto::Joined {
            node_id,
            incarnation,
        }),
        ClusterChange::Left {
            node_id,
            incarnation,
            status,
        } => Change::Left(proto::Left {
            node_id,
            incarnation,
            status,
        }),
        ClusterChange::Liveness {
            node_id,
            incarnation,
            liveness,
        } => Change::Liveness(proto::Liveness {
            node_id,
            incarnation,
            liveness,
        }),
        ClusterChange::Ownership { from, to, shards } => Change::Ownership(proto::Ownership {
            from,
            to,
            shards: count(shards),
        }),
        ClusterChange::Failover {
            dead,
            to,
            shards,
            seconds,
        } => Change::Failover(proto::Failover {
            dead,
            to,
            shards: count(shards),
            seconds,
        }),
    };
    proto::ClusterEvent {
        seq: event.seq,
        at_ms: event.at_ms,
        observer: event.observer,
        change: Some(change),
    }
}

pub(crate) fn event_of(event: proto::ClusterEvent) -> Result<ClusterEvent, MalformedReply> {
    let change = match event
        .change
        .ok_or(MalformedReply("a cluster event without its change"))?
    {
        Change::Joined(joined) => ClusterChange::Joined {
            node_id: joined.node_id,
            incarnation: joined.incarnation,
        },
        Change::Left(left) => ClusterChange::Left {
            node_id: left.node_id,
            incarnation: left.incarnation,
            status: left.status,
        },
        Change::Liveness(liveness) => ClusterChange::Liveness {
            node_id: liveness.node_id,
            incarnation: liveness.incarnation,
            liveness: liveness.liveness,
        },
        Change::Ownership(ownership) => ClusterChange::Ownership {
            from: ownership.from,
            to: ownership.to,
            shards: size(ownership.shards),
        },
        Change::Failover(failover) => ClusterChange::Failover {
            dead: failover.dead,
            to: failover.to,
            shards: size(failover.shards),
            seconds: failover.seconds,
        },
    };
    Ok(ClusterEvent {
        seq: event.seq,
        at_ms: event.at_ms,
        observer: event.observer,
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_change() -> Vec<ClusterChange> {
        vec![
            ClusterChange::Joined {
                node_id: "a".into(),
                incarnation: 3,
            },
            ClusterChange::Left {
                node_id: "a".into(),
                incarnation: 3,
                status: "leaving".into(),
            },
            ClusterChange::Liveness {
                node_id: "b".into(),
                incarnation: 1,
                liveness: "suspect".into(),
            },
            ClusterChange::Ownership {
                from: None,
                to: "a".into(),
                shards: 1024,
            },
            ClusterChange::Ownership {
                from: Some("a".into()),
                to: "b".into(),
                shards: 7,
            },
            ClusterChange::Failover {
                dead: "c".into(),
                to: "a".into(),
                shards: 300,
                seconds: 5.25,
            },
        ]
    }

    #[test]
    fn every_cluster_event_round_trips() {
        for (seq, change) in every_change().into_iter().enumerate() {
            let event = ClusterEvent {
                seq: seq as u64 + 1,
                at_ms: 1_700_000_000_000,
                observer: "node-1".into(),
                change,
            };
            let back = event_of(cluster_event(event.clone())).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn an_event_without_its_change_is_malformed() {
        let event = proto::ClusterEvent {
            seq: 1,
            at_ms: 2,
            observer: "x".into(),
            change: None,
        };
        assert!(event_of(event).is_err());
    }

    #[test]
    fn the_cluster_view_round_trips() {
        let status = ClusterStatus {
            mode: "cluster",
            node_id: "node-1".into(),
            shard_count: 1024,
            unowned_shards: 2,
            nodes: vec![NodeStatus {
                node_id: "node-1".into(),
                cluster_addr: Some("127.0.0.1:7000".into()),
                http_addr: None,
                status: "up".into(),
                liveness: "alive".into(),
                incarnation: Some(4),
                shards_owned: 1022,
                active_actors: Some(5),
                load: Some(NodeLoad {
                    active_by_kind: [("cart".to_owned(), 5)].into_iter().collect(),
                    requests_per_second: 1.5,
                    errors_per_second: 0.0,
                    events_per_second: 0.25,
                }),
                last_heartbeat_ms_ago: Some(120),
            }],
        };
        let back = cluster_status(cluster_view(status.clone()));
        // ClusterStatus is not PartialEq: compare what the HTTP routes would serve.
        assert_eq!(format!("{back:?}"), format!("{status:?}"));
    }
}
