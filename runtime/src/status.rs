//! What operators see of the cluster: the nodes, their shards, and where an actor lives.
//! Plain data, serialisable, the same shape on a single node and in a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::placement::Shard;

/// The cluster as one node sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    /// `single` or `cluster`.
    pub mode: &'static str,
    /// The node that answered.
    pub node_id: String,
    pub shard_count: u16,
    /// Shards with no live lease holder right now (a failover in progress).
    pub unowned_shards: usize,
    /// Sorted by node id.
    pub nodes: Vec<NodeStatus>,
}

/// One member of the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub node_id: String,
    pub cluster_addr: Option<String>,
    pub http_addr: Option<String>,
    /// What the node reports of itself: `joining`, `up`, `leaving`, `down`.
    pub status: String,
    /// What the answering node concludes: `alive`, `suspect`, `dead`.
    pub liveness: String,
    pub incarnation: Option<u64>,
    pub shards_owned: usize,
    /// `None` when the node could not be asked.
    pub active_actors: Option<u64>,
    /// Active actors per kind, and the node's request and event rates; `None` when the node
    /// could not be asked (or runs a version that reports only its total).
    pub load: Option<NodeLoad>,
    /// How long the answering node has not seen this node's heartbeat change.
    pub last_heartbeat_ms_ago: Option<u64>,
}

/// Where one actor lives.
#[derive(Clone, Debug, Serialize)]
pub struct ActorLocation {
    pub kind: String,
    pub key: String,
    pub shard: Shard,
    /// The node holding the shard's lease; `None` while nobody does.
    pub owner: Option<String>,
    pub lease_epoch: Option<u64>,
    /// Whether it is active on its owner; `None` when the owner could not be asked.
    pub active: Option<bool>,
    /// The stored version (0: never saved).
    pub version: u64,
}

/// What a node reports of its own work (asked of each peer for the admin view).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Active actors on the node, per kind (kinds with none are left out).
    pub active_by_kind: BTreeMap<String, u64>,
    /// Mean per second over the last [`RATE_WINDOW_SECONDS`] seconds.
    pub requests_per_second: f64,
    /// Requests answered with a server error (5xx), per second.
    pub errors_per_second: f64,
    /// Domain events stored on the bus by this node's relay, per second.
    pub events_per_second: f64,
}

/// The window the rates of [`NodeLoad`] are averaged over.
pub const RATE_WINDOW_SECONDS: u64 = 10;

/// What an operator's drain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainOutcome {
    pub node_id: String,
    /// Shards the node held when the drain began.
    pub shards_at_start: usize,
    /// Shards it still held when the drain ended (0: every shard moved).
    pub shards_left: usize,
}

/// What an operator's passivation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassivateOutcome {
    pub kind: String,
    pub key: String,
    /// The node that holds the actor's shard.
    pub node_id: String,
    /// `passivated`: it was active and is now passivated; `inactive`: it was not active;
    /// `busy`: it is running a message (it was left alone; retry).
    pub result: String,
}

/// Something that happened to the cluster, as the node reporting it saw it. Kept in a
/// bounded history on every node and streamed live to operators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// Increasing per reporting node (a gap means a slow reader missed events).
    pub seq: u64,
    /// Wall clock, Unix ms.
    pub at_ms: u64,
    /// The node that saw it.
    pub observer: String,
    #[serde(flatten)]
    pub change: ClusterChange,
}

/// The kinds of [`ClusterEvent`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterChange {
    /// A node (a new life of a node id) appeared in the member table.
    Joined { node_id: String, incarnation: u64 },
    /// A node reports `Leaving` (draining) or `Down` (left).
    Left {
        node_id: String,
        incarnation: u64,
        status: String,
    },
    /// The observer stopped hearing a node (`suspect`), heard it again (`alive`) or judged
    /// it dead (`dead`).
    Liveness {
        node_id: String,
        incarnation: u64,
        liveness: String,
    },
    /// Shards moved from one node to another (`from: None`: they had no holder).
    Ownership {
        from: Option<String>,
        to: String,
        shards: usize,
    },
    /// A dead node's shards were taken over: `seconds` from its last heartbeat to the new
    /// holder's lease, as this observer saw the table.
    Failover {
        dead: String,
        to: String,
        shards: usize,
        seconds: f64,
    },
}
