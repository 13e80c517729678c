//! What operators ask of the cluster (see `crate::operations` for the runtime's facade):
//! drain a node, rebalance now. Asked of another node with an envelope (`$drain`,
//! `$rebalance`) that it serves like `$status`.
//!
//! - **Drain** hands every shard of the node over (it reports `Leaving`; the others claim
//!   its shards, each after a `$revoke` round trip) and leaves it running as a pure edge:
//!   it holds no shard, forwards every call, answers `/readyz` 503 (so a load balancer
//!   stops sending to it) and never claims again. Stop it (SIGTERM: it leaves at once, it
//!   holds nothing) or restart it (a new life joins and takes its share). The only node
//!   that could take the shards may not be drained.
//! - **Rebalance** runs a lease round on every member now instead of at its next refresh:
//!   each claims what it should own (rendezvous) and hands over what it should not.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Cluster;
use crate::membership::Liveness;
use crate::operations::OperationError;
use crate::status::DrainOutcome;
use crate::store::MemberStatus;
use crate::transport::{Answer, Envelope};

/// The envelope kind that asks a node to drain itself (answered with its `DrainOutcome`).
pub(super) const DRAIN_KIND: &str = "$drain";
/// The envelope kind that asks a node to run a lease round now.
pub(super) const REBALANCE_KIND: &str = "$rebalance";

/// How long a rebalance waits for each member's round.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// Drain `node` (this one or a peer); answers once its shards moved or the hand-over
    /// deadline passed.
    pub(super) async fn drain_node(&self, node: &str) -> Result<DrainOutcome, OperationError> {
        let view = self.life().membership.view();
        let Some(member) = view.member(node) else {
            return Err(OperationError::UnknownNode(node.to_owned()));
        };
        if member.status == MemberStatus::Down || member.liveness == Liveness::Dead {
            return Err(OperationError::Refused(format!(
                "node {node} is {} and {}: it holds no shard to hand over",
                member.status.as_str(),
                member.liveness.as_str()
            )));
        }
        if !view.has_successor_of(node) {
            return Err(OperationError::Refused(format!(
                "no other node could take the shards of {node}: start another node first"
            )));
        }
        drop(view);
        if node == self.node_id() {
            return Ok(self.drain_here().await);
        }
        let deadline = self.inner.recipe.handover_deadline + REBALANCE_TIMEOUT;
        let reply = self.ask_peer(node, DRAIN_KIND, deadline).await?;
        let outcome =
            serde_json::from_slice(&reply).map_err(|error| OperationError::Unreachable {
                node: node.to_owned(),
                reason: format!("its drain answer cannot be read: {error}"),
            })?;
        // The drained node read its shards' new holders from the store; read them here too,
        // so this node's cluster view agrees with the answer the operator just got (it would
        // otherwise show the shards on the drained node until its next lease round).
        self.life().leases.refresh().await;
        Ok(outcome)
    }

    /// Hand this node's shards over and stay up as an edge that holds nothing.
    pub(super) async fn drain_here(&self) -> DrainOutcome {
        self.inner.stopping.store(true, Ordering::Release);
        let report = self
            .life()
            .leases
            .hand_over(self.inner.recipe.handover_deadline)
            .await;
        tracing::info!(
            held_at_start = report.held_at_start,
            still_held = report.still_held.len(),
            "cluster: drained on an operator's request; holding no shard, serving as an edge"
        );
        DrainOutcome {
            node_id: self.node_id().to_owned(),
            shards_at_start: report.held_at_start,
            shards_left: report.still_held.len(),
        }
    }

    /// Run a lease round on every live member now; answers the members that ran one.
    pub(super) async fn rebalance(&self) -> Result<Vec<String>, OperationError> {
        self.life().leases.refresh().await;
        let view = self.life().membership.view();
        let peers: Vec<String> = view
            .members
            .iter()
            .filter(|member| member.node_id != self.node_id())
            .filter(|member| member.liveness != Liveness::Dead)
            .filter(|member| member.status != MemberStatus::Down)
            .map(|member| member.node_id.clone())
            .collect();
        drop(view);
        let asked = futures::future::join_all(peers.iter().map(|peer| {
            let peer = peer.clone();
            async move {
                match self
                    .ask_peer(&peer, REBALANCE_KIND, REBALANCE_TIMEOUT)
                    .await
                {
                    Ok(_) => Some(peer),
                    Err(error) => {
                        tracing::warn!(%peer, %error, "rebalance: a member did not run its round");
                        None
                    }
                }
            }
        }))
        .await;
        let mut rounds = vec![self.node_id().to_owned()];
        rounds.extend(asked.into_iter().flatten());
        Ok(rounds)
    }

    /// Send `node` an envelope of `kind` (no payload) and wait at most `within` for its reply.
    pub(super) async fn ask_peer(
        &self,
        node: &str,
        kind: &str,
        within: Duration,
    ) -> Result<Vec<u8>, OperationError> {
        let deadline_ms = self.inner.recipe.clock.now_ms() + within.as_millis() as u64;
        let envelope = Envelope::new(kind, "", Vec::new(), deadline_ms);
        let unreachable = |reason: String| OperationError::Unreachable {
            node: node.to_owned(),
            reason,
        };
        match self.inner.recipe.transport.send(node, envelope).await {
            Ok(Answer::Reply(bytes)) => Ok(bytes),
            Ok(Answer::Refused { reason, detail }) => {
                Err(unreachable(format!("refused ({reason:?}): {detail}")))
            }
            Err(error) => Err(unreachable(error.to_string())),
        }
    }
}
