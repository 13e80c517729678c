//! The cluster as the admin view shows it: every member with its liveness, incarnation,
//! shards owned by its current life and active actors (asked of each node with `$status`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cluster;
use super::forwarding::STATUS_KIND;
use crate::leases::LeaseTable;
use crate::membership::{Liveness, MemberState};
use crate::placement::SHARD_COUNT;
use crate::status::{ClusterStatus, NodeLoad, NodeStatus};
use crate::store::MemberStatus;

/// A node's answer to `$status`. Nodes of earlier versions answer a bare count.
#[derive(Serialize, Deserialize)]
pub(super) struct StatusReply {
    pub(super) active_actors: u64,
    #[serde(flatten)]
    pub(super) load: NodeLoad,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyStatusReply {
    Current(StatusReply),
    TotalOnly(u64),
}

/// How long the admin view waits for a peer's counts.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) async fn cluster_status(cluster: &Cluster) -> ClusterStatus {
    let life = cluster.life();
    let view = life.membership.view();
    let table = life.leases.table();
    drop(life);
    let live_holders: BTreeSet<String> = view
        .members
        .iter()
        .filter(|member| member.liveness != Liveness::Dead && member.status != MemberStatus::Down)
        .map(|member| format!("{}@{}", member.node_id, member.incarnation))
        .collect();
    let unowned_shards = (0..SHARD_COUNT)
        .filter(|shard| {
            table
                .lease(*shard)
                .is_none_or(|lease| !live_holders.contains(&lease.owner))
        })
        .count();
    let owned = owned_by_current_lives(&table, &view.members);
    let actives = futures::future::join_all(
        view.members
            .iter()
            .map(|member| peer_counts(cluster, &member.node_id)),
    )
    .await;
    let nodes = view
        .members
        .iter()
        .zip(actives)
        .map(|(member, reply)| NodeStatus {
            node_id: member.node_id.clone(),
            cluster_addr: Some(member.cluster_addr.clone()),
            http_addr: Some(member.http_addr.clone()),
            status: member.status.as_str().to_owned(),
            liveness: member.liveness.as_str().to_owned(),
            incarnation: Some(member.incarnation),
            shards_owned: owned.get(&member.node_id).copied().unwrap_or(0),
            active_actors: reply.as_ref().map(|reply| reply.active_actors),
            load: reply.and_then(|reply| reply.load),
            last_heartbeat_ms_ago: Some(member.silent_for_ms),
        })
        .collect();
    ClusterStatus {
        mode: "cluster",
        node_id: cluster.node_id().to_owned(),
        shard_count: SHARD_COUNT,
        unowned_shards,
        nodes,
    }
}

/// Shards per node id, counting only leases held by the member's current life.
fn owned_by_current_lives(table: &LeaseTable, members: &[MemberState]) -> BTreeMap<String, usize> {
    let mut owned = BTreeMap::new();
    for shard in 0..SHARD_COUNT {
        let Some(holder) = table.lease(shard).and_then(|lease| lease.holder.as_ref()) else {
            continue;
        };
        let current = members.iter().any(|member| {
            member.node_id == holder.node_id && member.incarnation == holder.incarnation
        });
        if current {
            *owned.entry(holder.node_id.clone()).or_insert(0) += 1;
        }
    }
    owned
}

/// A node's counts; `load` is `None` for a peer of an earlier version.
struct PeerCounts {
    active_actors: u64,
    load: Option<NodeLoad>,
}

async fn peer_counts(cluster: &Cluster, node: &str) -> Option<PeerCounts> {
    let inner = &cluster.inner;
    if node == cluster.node_id() {
        return inner.runtime.upgrade().map(|runtime| PeerCounts {
            active_actors: runtime.active_actors(),
            load: Some(runtime.node_load()),
        });
    }
    let bytes = cluster
        .ask_peer(node, STATUS_KIND, STATUS_TIMEOUT)
        .await
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        AnyStatusReply::Current(reply) => Some(PeerCounts {
            active_actors: reply.active_actors,
            load: Some(reply.load),
        }),
        AnyStatusReply::TotalOnly(active_actors) => Some(PeerCounts {
            active_actors,
            load: None,
        }),
    }
}
