//! Calls between nodes: what a forwarded call's transport outcome means to its caller, how
//! a node serves the envelopes other nodes send it (forwarded calls, `$status`, `$revoke`),
//! and the hand-over requests it sends for shards it just claimed.
//!
//! **Invariant:** a forwarded call runs only on a node that serves the shard *when the call
//! arrives*, and only locally: forwarding is one hop, never a loop.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use super::life::{Life, Lives};
use super::operations::{DRAIN_KIND, REBALANCE_KIND};
use super::status::StatusReply;
use crate::error::{ErrorClass, RuntimeError};
use crate::identity::ActorId;
use crate::leases::{LeaseHolder, Leases};
use crate::placement::{Shard, shard_of};
use crate::runtime::{ForwardedCallError, Runtime, WeakRuntime};
use crate::transport::{Answer, Envelope, EnvelopeHandler, Refusal, Transport, TransportError};

/// The envelope kind a node answers with its own counts (for the admin view).
pub(super) const STATUS_KIND: &str = "$status";
/// The envelope kind that asks a node to let go of shards another node has claimed from it
/// (payload: the shards, JSON); it answers once it no longer serves them.
const REVOKE_KIND: &str = "$revoke";
/// How long a claimer waits for one answer of the previous holder before it asks again
/// (see [`request_handovers`]).
const REVOKE_TIMEOUT_MS: u64 = 2_000;

/// What the transport hands envelopes to; it learns the node's lives once the first one
/// has begun (the transport must listen before the node can join).
pub(super) struct Handler {
    pub(super) runtime: WeakRuntime,
    pub(super) lives: OnceLock<Arc<Lives>>,
}

#[async_trait]
impl EnvelopeHandler for Handler {
    async fn handle(&self, envelope: Envelope) -> Answer {
        let Some(runtime) = self.runtime.upgrade() else {
            return Answer::refused(Refusal::NotOwner, "this node is stopping");
        };
        if envelope.kind == STATUS_KIND {
            return Answer::Reply(status_reply(&runtime));
        }
        let Some(life) = self.lives.get().map(|lives| lives.current()) else {
            return Answer::refused(Refusal::NotOwner, "this node is still joining");
        };
        match envelope.kind.as_str() {
            REVOKE_KIND => return let_go(&runtime, &life.leases, &envelope.payload).await,
            DRAIN_KIND => return drain_here(&runtime).await,
            REBALANCE_KIND => {
                life.leases.refresh().await;
                return Answer::Reply(b"null".to_vec());
            }
            _ => {}
        }
        let shard = shard_of(&envelope.kind, &envelope.key);
        if !life.leases.serves(shard) {
            return Answer::refused(
                Refusal::NotOwner,
                format!("shard {shard} is not served by {}", runtime.node_id()),
            );
        }
        drop(life);
        let budget_ms = envelope
            .deadline_ms
            .saturating_sub(runtime.clock().now_ms());
        let budget = Duration::from_millis(budget_ms);
        let span = serve_span(&runtime, &envelope, shard);
        match runtime
            .serve_forwarded(&envelope.kind, &envelope.key, &envelope.payload, budget)
            .instrument(span)
            .await
        {
            Ok(reply) => Answer::Reply(reply),
            Err(error @ ForwardedCallError::UnknownKind(_)) => {
                Answer::refused(Refusal::UnknownKind, error.to_string())
            }
            Err(error @ ForwardedCallError::Malformed(_)) => {
                Answer::refused(Refusal::Malformed, error.to_string())
            }
        }
    }
}

/// This node's counts for a peer's admin view (`$status`).
fn status_reply(runtime: &Runtime) -> Vec<u8> {
    let reply = StatusReply {
        active_actors: runtime.active_actors(),
        load: runtime.node_load(),
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

/// An operator's drain, asked by a peer: this node drains itself and answers the outcome.
async fn drain_here(runtime: &Runtime) -> Answer {
    match runtime.drain_node(runtime.node_id()).await {
        Ok(outcome) => Answer::Reply(serde_json::to_vec(&outcome).unwrap_or_default()),
        Err(error) => Answer::refused(Refusal::Failed, error.to_string()),
    }
}

/// The span of serving one forwarded call: a child of the sender's forward span when the
/// envelope carries its trace context (one trace across both nodes), else a root. At
/// DEBUG, like turns.
fn serve_span(runtime: &Runtime, envelope: &Envelope, shard: Shard) -> tracing::Span {
    let span = tracing::debug_span!(
        "cluster.serve",
        otel.kind = "server",
        actor.kind = %envelope.kind,
        actor.key = %envelope.key,
        actor.shard = shard,
    );
    if let Some(parent) = &envelope.trace {
        runtime.trace_context().adopt(&span, parent);
    }
    span
}

/// What a forwarded call's transport outcome means to the caller.
pub(super) fn answer_to_result(
    actor: &ActorId,
    node: &str,
    sent: Result<Answer, TransportError>,
) -> Result<Vec<u8>, RuntimeError> {
    let remote = |class, message: String| RuntimeError::Remote {
        actor: actor.clone(),
        node: node.to_owned(),
        class,
        message,
    };
    match sent {
        Ok(Answer::Reply(bytes)) => Ok(bytes),
        Ok(Answer::Refused { reason, detail }) => Err(match reason {
            Refusal::NotOwner => RuntimeError::Moved {
                actor: actor.clone(),
                reason: format!("{node} refused: {detail}"),
            },
            Refusal::Overloaded => remote(ErrorClass::Unavailable, format!("overloaded: {detail}")),
            // Late on arrival: never started, so surely not applied.
            Refusal::Expired => remote(ErrorClass::Unavailable, format!("expired: {detail}")),
            // Late while running: it may have applied.
            Refusal::TimedOut => remote(ErrorClass::OutcomeUnknown, format!("timed out: {detail}")),
            Refusal::UnknownKind
            | Refusal::Malformed
            | Refusal::UnsupportedVersion
            | Refusal::Failed => remote(ErrorClass::Failed, format!("{reason:?}: {detail}")),
        }),
        // Never sent: safe to route again.
        Err(
            error @ (TransportError::NotConnected { .. }
            | TransportError::Connect { .. }
            | TransportError::Refused { .. }
            | TransportError::Expired),
        ) => Err(RuntimeError::Moved {
            actor: actor.clone(),
            reason: error.to_string(),
        }),
        Err(error @ (TransportError::Timeout { .. } | TransportError::Dropped { .. })) => {
            Err(remote(ErrorClass::OutcomeUnknown, error.to_string()))
        }
        Err(error @ TransportError::Decode { .. }) => {
            Err(remote(ErrorClass::OutcomeUnknown, error.to_string()))
        }
        Err(error @ TransportError::Start(_)) => Err(remote(ErrorClass::Failed, error.to_string())),
    }
}

/// Another node claimed `payload`'s shards from this one: re-read the leases (so that
/// nothing routes here or runs here for them any more), passivate their idle activations
/// (busy ones retire after their message), and confirm.
async fn let_go(runtime: &Runtime, leases: &Leases, payload: &[u8]) -> Answer {
    let Ok(shards) = serde_json::from_slice::<Vec<Shard>>(payload) else {
        return Answer::refused(Refusal::Malformed, "a revoke names a JSON list of shards");
    };
    let table = leases.refresh().await;
    if let Some(shard) = shards.iter().find(|shard| table.is_held_locally(**shard)) {
        return Answer::refused(
            Refusal::Failed,
            format!("shard {shard} is still leased to this node"),
        );
    }
    let passivated = runtime.release_shards(&shards.iter().copied().collect());
    tracing::debug!(
        shards = shards.len(),
        passivated,
        "cluster: let go of shards"
    );
    Answer::Reply(Vec::new())
}

/// Ask the previous holders of shards this life just claimed from them to let go; each
/// answer lets this node serve those shards (see `Leases::serves`).
///
/// A request that is refused or goes unanswered is sent again (after 100 ms, doubling up to
/// 1 s) for as long as the shards are still held back: a node that has just joined often
/// claims before its link to the holder is up, and waiting out the hold-back instead
/// (`fence_after`, 4.5 s by default) would leave those shards unserved for longer than a
/// request waits for them.
pub(super) fn request_handovers(transport: &Transport, life: &Arc<Life>) {
    for (holder, shards) in life.leases.handovers_to_request() {
        let (transport, life) = (transport.clone(), Arc::clone(life));
        tokio::spawn(async move {
            let mut pending = shards;
            let mut pause = FIRST_REVOKE_RETRY;
            for attempt in 1.. {
                if ask_to_let_go(&transport, &life, &holder, &pending, attempt).await {
                    life.leases.complete_handover(&pending);
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_REVOKE_RETRY);
                pending = life.leases.awaiting_handover(&holder, &pending);
                if pending.is_empty() || *life.ended().borrow() {
                    return;
                }
            }
        });
    }
}

/// First pause before asking a previous holder again; doubles up to [`MAX_REVOKE_RETRY`].
const FIRST_REVOKE_RETRY: Duration = Duration::from_millis(100);
const MAX_REVOKE_RETRY: Duration = Duration::from_secs(1);

/// One request to `holder` to let go of `shards`: whether it confirmed.
async fn ask_to_let_go(
    transport: &Transport,
    life: &Life,
    holder: &LeaseHolder,
    shards: &[Shard],
    attempt: u32,
) -> bool {
    let deadline_ms = life.membership.clock().now_ms() + REVOKE_TIMEOUT_MS;
    let payload = serde_json::to_vec(shards).unwrap_or_default();
    let envelope = Envelope::new(REVOKE_KIND, "", payload, deadline_ms);
    match transport.send(&holder.node_id, envelope).await {
        Ok(Answer::Reply(_)) => return true,
        Ok(Answer::Refused { reason, detail }) => {
            tracing::debug!(%holder, attempt, ?reason, %detail, "cluster: hand-over refused; asking again");
        }
        Err(error) => {
            tracing::debug!(%holder, attempt, %error, "cluster: hand-over unanswered; asking again");
        }
    }
    false
}
