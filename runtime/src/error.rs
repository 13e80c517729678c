//! The runtime's one error type.
//!
//! A domain rejection (out of stock, cart full) is never a `RuntimeError`: it is part of the
//! actor's reply. A `RuntimeError` means the runtime could not get an answer: the store is
//! down, the actor timed out or panicked, its state cannot be decoded. Callers decide with
//! the predicates ([`RuntimeError::is_unavailable`], …) so that new variants do not break them.

use std::time::Duration;

use crate::identity::ActorId;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("store error for {actor}: {source}")]
    Store {
        actor: ActorId,
        #[source]
        source: StoreError,
    },
    #[error("{actor} did not answer within {deadline:?}")]
    Timeout { actor: ActorId, deadline: Duration },
    #[error("{actor} panicked while handling a message; it restarts from its last committed state")]
    Panicked { actor: ActorId },
    #[error("state of {actor} cannot be decoded: {reason}")]
    CorruptState { actor: ActorId, reason: String },
    #[error("state of {actor} cannot be encoded: {reason}")]
    Encode { actor: ActorId, reason: String },
    #[error("actor kind {kind} is not registered")]
    UnknownKind { kind: String },
    #[error("{actor} could not be reached: {reason}")]
    Unreachable { actor: ActorId, reason: String },
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

impl RuntimeError {
    /// Transient: worth retrying after a pause (store down or slow, actor busy, node
    /// draining). The edge answers these with `503` and `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Store { source, .. } => source.is_unavailable() || source.is_conflict(),
            Self::Timeout { .. } | Self::Unreachable { .. } | Self::ShuttingDown => true,
            Self::Panicked { .. }
            | Self::CorruptState { .. }
            | Self::Encode { .. }
            | Self::UnknownKind { .. } => false,
        }
    }

    /// A compare-and-set lost: another activation wrote first, so this one was stale
    /// (fenced) and has been discarded.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Store { source, .. } if source.is_conflict())
    }

    pub(crate) fn store(actor: &ActorId, source: StoreError) -> Self {
        Self::Store {
            actor: actor.clone(),
            source,
        }
    }
}
