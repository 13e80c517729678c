//! What operators can ask of a node: the one implementation behind the HTTP admin routes,
//! the gRPC admin service and the console.
//!
//! Reads: [`Runtime::cluster_status`] and [`Runtime::locate_actor`] (in `runtime.rs`),
//! [`Runtime::node_load`], [`Runtime::shard_owners`], [`Runtime::cluster_events`]. Actions: [`Runtime::drain_node`],
//! [`Runtime::passivate_actor`], [`Runtime::rebalance`]. A cluster action on a single node is
//! [`OperationError::NotClustered`].

use crate::directory::PassivateResult;
use crate::error::RuntimeError;
use crate::identity::{ActorId, intern_kind};
use crate::journal::ClusterEventFeed;
use crate::placement::{SHARD_COUNT, shard_of};
use crate::rates::NodeRates;
use crate::routing::{self, Location};
use crate::runtime::Runtime;
use crate::status::{DrainOutcome, NodeLoad, PassivateOutcome};

/// Why an operator's request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("this node does not run in a cluster")]
    NotClustered,
    #[error("there is no node {0:?} in the cluster")]
    UnknownNode(String),
    #[error("there is no actor kind {0:?}")]
    UnknownKind(String),
    /// The request makes no sense in the cluster's state (draining the last node).
    #[error("{0}")]
    Refused(String),
    #[error("node {node} could not be asked: {reason}")]
    Unreachable { node: String, reason: String },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl Runtime {
    /// The node's request, error and event counters (the edge records requests).
    pub fn rates(&self) -> &NodeRates {
        &self.inner().rates
    }

    /// What this node reports of its own work: active actors per kind and its rates.
    pub fn node_load(&self) -> NodeLoad {
        let rates = self.rates().rates();
        NodeLoad {
            active_by_kind: self
                .snapshot()
                .into_iter()
                .filter(|(_, kind)| kind.active > 0)
                .map(|(name, kind)| (name.to_owned(), u64::try_from(kind.active).unwrap_or(0)))
                .collect(),
            requests_per_second: rates.requests,
            errors_per_second: rates.errors,
            events_per_second: rates.events,
        }
    }

    /// Every shard's owner, indexed by shard (`SHARD_COUNT` entries; `None`: no holder, a
    /// failover in progress), as this node last read the lease table: no I/O. A single node
    /// owns every shard.
    pub fn shard_owners(&self) -> Vec<Option<String>> {
        match self.placement() {
            Some(placement) => placement.shard_owners(),
            None => vec![Some(self.node_id().to_owned()); usize::from(SHARD_COUNT)],
        }
    }

    /// The cluster's recent history as this node saw it, then its live changes (empty and
    /// quiet on a single node).
    pub fn cluster_events(&self) -> ClusterEventFeed {
        self.journal().feed()
    }

    /// Hand every shard of `node` over to the others and keep it running as an edge that
    /// holds nothing (see `cluster::operations`). Answers once the shards moved.
    pub async fn drain_node(&self, node: &str) -> Result<DrainOutcome, OperationError> {
        let placement = self.placement().ok_or(OperationError::NotClustered)?;
        placement.drain_node(node).await
    }

    /// Run a lease round on every member now; answers the node ids that ran one.
    pub async fn rebalance(&self) -> Result<Vec<String>, OperationError> {
        let placement = self.placement().ok_or(OperationError::NotClustered)?;
        placement.rebalance().await
    }

    /// Passivate the actor `kind`/`key` on the node that holds its shard, unless it is
    /// running a message (`busy`).
    pub async fn passivate_actor(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<PassivateOutcome, OperationError> {
        let host = self
            .erased_host(kind)
            .ok_or_else(|| OperationError::UnknownKind(kind.to_owned()))?;
        let outcome = |node_id: String, result: PassivateResult| PassivateOutcome {
            kind: kind.to_owned(),
            key: key.to_owned(),
            node_id,
            result: result.as_str().to_owned(),
        };
        let Some(placement) = self.placement() else {
            return Ok(outcome(self.node_id().to_owned(), host.passivate_key(key)));
        };
        match placement.locate(shard_of(kind, key)) {
            Location::Local => Ok(outcome(self.node_id().to_owned(), host.passivate_key(key))),
            Location::Remote { node } => {
                let actor = ActorId::new(intern_kind(kind), key);
                let query = routing::Call::<()>::Passivate;
                let result: PassivateResult =
                    routing::query_owner(self, placement.as_ref(), node.clone(), actor, &query)
                        .await?;
                Ok(outcome(node, result))
            }
            Location::Unplaced { reason } | Location::Refused { reason } => {
                Err(OperationError::Refused(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_single_node_owns_every_shard_of_the_map() {
        let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
            .node_id("solo")
            .build()
            .await
            .unwrap();
        let owners = runtime.shard_owners();
        assert_eq!(owners.len(), usize::from(SHARD_COUNT));
        assert!(owners.iter().all(|owner| owner.as_deref() == Some("solo")));
    }
}
