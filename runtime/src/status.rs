//! What operators see of the cluster: the nodes, their shards, and where an actor lives.
//! Plain data, serialisable, the same shape on a single node and in a cluster.

use serde::Serialize;

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
