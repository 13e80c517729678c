//! Routing an ask to the node that owns the actor's shard.
//!
//! On a single node there is no [`Placement`] and every ask is local. In a cluster the
//! placement (the `cluster` module) says where a shard is served: here, on a named peer, or
//! nowhere yet (its owner died and no survivor has claimed it). [`ask_routed`] loops until it
//! gets an answer or its deadline passes:
//!
//! - **here**: the local activation runs it (it checks the lease epoch itself);
//! - **a peer**: the command travels as a [`Call`] in a transport envelope; the peer runs it
//!   *locally only* or refuses it, so a request crosses at most one hop per attempt and
//!   forwarding can never loop;
//! - **nowhere**: wait a little and look again.
//!
//! An attempt is repeated only when nothing of the command was applied: the shard was not
//! served where it went ([`ErrorClass::Moved`]), or a stale activation lost its
//! compare-and-set ([`ErrorClass::Conflict`]: the failed turn wrote nothing). When an answer
//! is lost after the command was handed over (a deadline, a dropped link), the outcome is
//! unknown and the error says so instead of trying again, which could apply it twice.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use crate::actor::VirtualActor;
use crate::clock::duration_ms;
use crate::error::{ErrorClass, RuntimeError};
use crate::identity::ActorId;
use crate::operations::OperationError;
use crate::placement::{Shard, shard_of};
use crate::runtime::Runtime;
use crate::status::{ClusterStatus, DrainOutcome};
use crate::trace::TraceHeaders;

/// Pause before looking again for a shard's owner; doubles up to [`MAX_BACKOFF`]. Looking
/// is a read of this node's own tables (no I/O), so the cap is low: a request waiting out
/// a failover is served within 100 ms of the new owner's claim, not half a second later.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Where a shard is served, as this node sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local,
    Remote {
        node: String,
    },
    /// No live owner yet (a failover or a hand-over in progress): look again shortly.
    Unplaced {
        reason: String,
    },
    /// This node serves nothing and will not (it left or was expelled): fail now.
    Refused {
        reason: String,
    },
}

/// The cluster as routing sees it. The contract:
/// - `locate` is cheap (no I/O) and may be stale by a lease refresh interval; a stale answer
///   costs a retry, never a wrong result, because the receiving node checks again and actor
///   writes are compare-and-set;
/// - `serving_epoch` is `Some(epoch)` only while this node may serve the shard, under lease
///   epoch `epoch`;
/// - `forward` hands a call to `node`'s shard host and returns the encoded reply, or an
///   error whose class says whether the call may have run.
/// - `shard_owner` and `status` describe the cluster for operators.
pub trait Placement: Send + Sync + 'static {
    fn locate(&self, shard: Shard) -> Location;
    fn serving_epoch(&self, shard: Shard) -> Option<u64>;
    fn forward(
        &self,
        node: String,
        call: OutgoingCall,
    ) -> BoxFuture<'static, Result<Vec<u8>, RuntimeError>>;
    /// The node holding `shard`'s lease and the lease epoch, as last read.
    fn shard_owner(&self, shard: Shard) -> (Option<String>, Option<u64>);
    /// Every shard's lease holder as last read, indexed by shard (`None`: no holder), from
    /// one read of the lease table (the console's shard map).
    fn shard_owners(&self) -> Vec<Option<String>>;
    fn status(&self) -> BoxFuture<'_, ClusterStatus>;
    /// Hand every shard of `node` over (see `cluster::operations`).
    fn drain_node<'a>(
        &'a self,
        node: &'a str,
    ) -> BoxFuture<'a, Result<DrainOutcome, OperationError>>;
    /// A lease round on every member now; answers the members that ran one.
    fn rebalance(&self) -> BoxFuture<'_, Result<Vec<String>, OperationError>>;
}

/// One call on its way to another node.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    pub actor: ActorId,
    pub payload: Vec<u8>,
    /// Wall clock, Unix ms.
    pub deadline_ms: u64,
    /// The sender's trace context, for the receiver's span to continue its trace.
    pub trace: Option<TraceHeaders>,
}

/// What a forwarded envelope asks of an actor (its JSON is the envelope's payload).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Call<C> {
    /// Run `command` if it can start within `start_within_ms` of arrival; otherwise drop it
    /// and answer "not applied" (the sender is still waiting for that verdict: the
    /// envelope's deadline leaves room for the turn and the way back).
    Command { command: C, start_within_ms: u64 },
    /// A durable reminder fired on a node that no longer owns the actor.
    Reminder(String),
    /// Is the actor active on the owner?
    Inspect,
    /// An operator asks the owner to passivate the actor.
    Passivate,
}

/// An error as it crosses the wire: what callers decide on, and the message for logs.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireError {
    class: ErrorClass,
    message: String,
}

type WireResult<T> = Result<T, WireError>;

pub(crate) fn encode_result<T: Serialize>(result: Result<T, RuntimeError>) -> Vec<u8> {
    let wire: WireResult<T> = result.map_err(|error| WireError {
        class: error.class(),
        message: error.to_string(),
    });
    serde_json::to_vec(&wire).unwrap_or_else(|error| {
        let failed: WireResult<()> = Err(WireError {
            class: ErrorClass::Failed,
            message: format!("reply cannot be encoded: {error}"),
        });
        serde_json::to_vec(&failed).unwrap_or_default()
    })
}

fn decode_result<T: serde::de::DeserializeOwned>(
    actor: &ActorId,
    node: &str,
    bytes: &[u8],
) -> Result<T, RuntimeError> {
    match serde_json::from_slice::<WireResult<T>>(bytes) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(RuntimeError::Remote {
            actor: actor.clone(),
            node: node.to_owned(),
            class: error.class,
            message: error.message,
        }),
        Err(error) => Err(RuntimeError::Remote {
            actor: actor.clone(),
            node: node.to_owned(),
            class: ErrorClass::OutcomeUnknown,
            message: format!("unreadable reply: {error}"),
        }),
    }
}

fn encode_call<C: Serialize>(actor: &ActorId, call: &Call<C>) -> Result<Vec<u8>, RuntimeError> {
    serde_json::to_vec(call).map_err(|error| RuntimeError::Encode {
        actor: actor.clone(),
        reason: format!("command cannot be encoded: {error}"),
    })
}

/// Ask `key` of kind `A` wherever it is served, within `deadline`.
pub(crate) async fn ask_routed<A: VirtualActor>(
    runtime: &Runtime,
    placement: &dyn Placement,
    key: &str,
    command: A::Command,
    deadline: Duration,
) -> Result<A::Reply, RuntimeError> {
    let actor = ActorId::new(A::KIND, key);
    let shard = shard_of(A::KIND, key);
    let give_up_at = Instant::now() + deadline;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let remaining = give_up_at.saturating_duration_since(Instant::now());
        let attempt = match placement.locate(shard) {
            Location::Local => {
                runtime
                    .ask_local::<A>(key, command.clone(), remaining)
                    .await
            }
            Location::Remote { node } => {
                let call = Call::Command {
                    command: command.clone(),
                    start_within_ms: duration_ms(remaining),
                };
                let config = runtime.config();
                let reply_within = remaining + config.turn_timeout + config.forward_margin;
                let span = forward_span(&actor, shard, &node);
                let call = OutgoingCall {
                    actor: actor.clone(),
                    payload: encode_call(&actor, &call)?,
                    deadline_ms: runtime.clock().now_ms() + duration_ms(reply_within),
                    trace: span.in_scope(|| runtime.trace_context().inject()),
                };
                runtime.lifecycle().forwarded(A::KIND);
                let forwarded = placement
                    .forward(node.clone(), call)
                    .instrument(span.clone())
                    .await
                    .and_then(|bytes| decode_result::<A::Reply>(&actor, &node, &bytes));
                span.record("outcome", ErrorClass::outcome_of(&forwarded));
                forwarded
            }
            Location::Unplaced { reason } => Err(RuntimeError::Moved {
                actor: actor.clone(),
                reason,
            }),
            Location::Refused { reason } => {
                return Err(RuntimeError::Moved { actor, reason });
            }
        };
        match attempt {
            Err(error) if error.is_retryable_elsewhere() => {
                let left = give_up_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(error);
                }
                tracing::debug!(%error, "routing: not applied; looking for the owner again");
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// The sender's span of one forwarded call (one attempt). At DEBUG, like turns.
fn forward_span(actor: &ActorId, shard: Shard, node: &str) -> tracing::Span {
    tracing::debug_span!(
        "cluster.forward",
        otel.kind = "client",
        actor.kind = actor.kind,
        actor.key = %actor.key,
        actor.shard = shard,
        peer.node = node,
        outcome = tracing::field::Empty,
    )
}

/// Run a call that arrived from another node, here only (never forwarded again).
pub(crate) fn serve_call<'a, A: VirtualActor>(
    runtime: &'a Runtime,
    key: &'a str,
    payload: &'a [u8],
    budget: Duration,
) -> BoxFuture<'a, Result<Vec<u8>, String>> {
    Box::pin(async move {
        let call: Call<A::Command> = serde_json::from_slice(payload)
            .map_err(|error| format!("call for {} cannot be decoded: {error}", A::KIND))?;
        Ok(match call {
            Call::Command {
                command,
                start_within_ms,
            } => {
                let start_within = Duration::from_millis(start_within_ms).min(budget);
                encode_result(runtime.ask_local::<A>(key, command, start_within).await)
            }
            Call::Reminder(name) => {
                runtime.deliver_reminder_locally::<A>(key, name);
                encode_result(Ok(()))
            }
            Call::Inspect => encode_result(Ok(runtime.is_active::<A>(key))),
            Call::Passivate => encode_result(Ok(runtime.passivate_locally::<A>(key))),
        })
    })
}

/// Hand a reminder that fired here to the owner of its actor.
pub(crate) async fn forward_reminder(
    runtime: &Runtime,
    placement: &dyn Placement,
    node: String,
    actor: ActorId,
    name: String,
) -> Result<(), RuntimeError> {
    let deadline = runtime.config().ask_timeout;
    call_remote(
        runtime,
        placement,
        node,
        actor,
        &Call::<()>::Reminder(name),
        deadline,
    )
    .await
}

/// Ask the owner `node` of `actor` about it (is it active, passivate it): an operator's
/// question, answered within 2 s.
pub(crate) async fn query_owner<T: serde::de::DeserializeOwned>(
    runtime: &Runtime,
    placement: &dyn Placement,
    node: String,
    actor: ActorId,
    query: &Call<()>,
) -> Result<T, RuntimeError> {
    let deadline = Duration::from_secs(2);
    call_remote(runtime, placement, node, actor, query, deadline).await
}

/// One call to `actor` on `node`, answered within `deadline`.
async fn call_remote<T: serde::de::DeserializeOwned>(
    runtime: &Runtime,
    placement: &dyn Placement,
    node: String,
    actor: ActorId,
    call: &Call<()>,
    deadline: Duration,
) -> Result<T, RuntimeError> {
    let call = OutgoingCall {
        payload: encode_call(&actor, call)?,
        actor: actor.clone(),
        deadline_ms: runtime.clock().now_ms() + duration_ms(deadline),
        trace: runtime.trace_context().inject(),
    };
    let bytes = placement.forward(node.clone(), call).await?;
    decode_result::<T>(&actor, &node, &bytes)
}
