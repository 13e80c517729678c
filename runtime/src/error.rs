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
    /// The actor's shard is not served here (it moved, has no live owner yet, or this node
    /// left the cluster). Nothing ran: routing may try again.
    #[error("{actor} is not served here: {reason}")]
    Moved { actor: ActorId, reason: String },
    /// The command was still queued when its caller's deadline passed (or the caller went
    /// away): it was dropped without running. Nothing was applied.
    #[error("{actor} did not start within {deadline:?}; the command was dropped unapplied")]
    Expired { actor: ActorId, deadline: Duration },
    /// The command failed after some of its effects were applied (a checkpoint commit, an
    /// ask of another actor that changed it): what it did is only partly known.
    #[error("{actor} failed after some of its effects were applied: {source}")]
    AfterEffects {
        actor: ActorId,
        #[source]
        source: Box<RuntimeError>,
    },
    /// The command did not run: taking over the actor failed before its turn began.
    #[error("{actor} did not run: {source}")]
    NotApplied {
        actor: ActorId,
        #[source]
        source: Box<RuntimeError>,
    },
    /// The turn raised events while this node's outbox is at its limit (the event bus has
    /// been unreachable for a while): nothing was written. Transient.
    #[error(
        "{actor} not changed: the event outbox is full ({pending} pending, limit {limit}); retry later"
    )]
    OutboxFull {
        actor: ActorId,
        pending: usize,
        limit: usize,
    },
    /// The owner node answered with an error; `class` keeps what the callers decide on.
    #[error("{actor} on {node}: {message}")]
    Remote {
        actor: ActorId,
        node: String,
        class: ErrorClass,
        message: String,
    },
}

/// What a caller may conclude from an error, kept when the error crosses the cluster wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient, and the command did not run (or ran and wrote nothing).
    Unavailable,
    /// A stale activation lost a compare-and-set; nothing of the failed turn was written.
    Conflict,
    /// Not served where it was sent; nothing ran.
    Moved,
    /// The command may or may not have run (a deadline passed after it was sent).
    OutcomeUnknown,
    /// A permanent failure (corrupt state, a panic, an unknown kind).
    Failed,
}

impl ErrorClass {
    /// The class's wire name (`outcome_unknown`), as traces and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Conflict => "conflict",
            Self::Moved => "moved",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Failed => "failed",
        }
    }

    /// The outcome of `result` as a span records it: `ok`, or the error's class.
    pub fn outcome_of<T>(result: &Result<T, RuntimeError>) -> &'static str {
        result
            .as_ref()
            .map_or_else(|error| error.class().as_str(), |_| "ok")
    }
}

impl RuntimeError {
    /// Transient: worth retrying after a pause (store down or slow, actor busy, node
    /// draining). The edge answers these with `503` and `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Store { source, .. } => source.is_unavailable() || source.is_conflict(),
            Self::Timeout { .. }
            | Self::Unreachable { .. }
            | Self::ShuttingDown
            | Self::Moved { .. }
            | Self::Expired { .. }
            | Self::OutboxFull { .. }
            | Self::NotApplied { .. } => true,
            Self::AfterEffects { source, .. } => source.is_unavailable(),
            Self::Remote { class, .. } => *class != ErrorClass::Failed,
            Self::Panicked { .. }
            | Self::CorruptState { .. }
            | Self::Encode { .. }
            | Self::UnknownKind { .. } => false,
        }
    }

    /// A compare-and-set lost: another activation wrote first, so this one was stale
    /// (fenced) and has been discarded.
    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    /// The command may have run although no answer came back: a deadline passed after it
    /// was handed to the actor. Retrying a command that is not idempotent may apply it twice.
    pub fn is_outcome_unknown(&self) -> bool {
        self.class() == ErrorClass::OutcomeUnknown
    }

    /// The error's class, as it travels between nodes.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Store { source, .. } if source.is_conflict() => ErrorClass::Conflict,
            Self::Store { source, .. } if source.is_outcome_unknown() => ErrorClass::OutcomeUnknown,
            Self::Store { source, .. } if source.is_unavailable() => ErrorClass::Unavailable,
            Self::Timeout { .. } | Self::Unreachable { .. } => ErrorClass::OutcomeUnknown,
            Self::ShuttingDown
            | Self::Expired { .. }
            | Self::OutboxFull { .. }
            | Self::NotApplied { .. } => ErrorClass::Unavailable,
            Self::AfterEffects { .. } => ErrorClass::OutcomeUnknown,
            Self::Moved { .. } => ErrorClass::Moved,
            Self::Remote { class, .. } => *class,
            Self::Store { .. }
            | Self::Panicked { .. }
            | Self::CorruptState { .. }
            | Self::Encode { .. }
            | Self::UnknownKind { .. } => ErrorClass::Failed,
        }
    }

    /// Worth sending again right away, maybe elsewhere: nothing of the command was applied
    /// (it was not served where it went, or a stale activation was fenced off).
    pub(crate) fn is_retryable_elsewhere(&self) -> bool {
        matches!(self.class(), ErrorClass::Moved | ErrorClass::Conflict)
    }

    /// Whether an error says nothing of the command was applied, so that an answer of
    /// "not applied, retry" is true. Only [`ErrorClass::OutcomeUnknown`] and
    /// [`ErrorClass::Failed`] (a panic midway) may hide applied effects.
    pub fn is_not_applied(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Unavailable | ErrorClass::Moved | ErrorClass::Conflict
        )
    }

    /// This error, as the outcome of a command that already had effects (`applied`): a
    /// transient failure then no longer means "nothing happened".
    pub(crate) fn after_effects(self, actor: &ActorId, applied: bool) -> Self {
        if applied && self.is_not_applied() {
            Self::AfterEffects {
                actor: actor.clone(),
                source: Box::new(self),
            }
        } else {
            self
        }
    }

    pub(crate) fn store(actor: &ActorId, source: StoreError) -> Self {
        Self::Store {
            actor: actor.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_the_wire_names() {
        for class in [
            ErrorClass::Unavailable,
            ErrorClass::Conflict,
            ErrorClass::Moved,
            ErrorClass::OutcomeUnknown,
            ErrorClass::Failed,
        ] {
            let wire = serde_json::to_string(&class).unwrap();
            assert_eq!(wire, format!("\"{}\"", class.as_str()));
        }
        let moved: Result<(), RuntimeError> = Err(RuntimeError::ShuttingDown);
        assert_eq!(ErrorClass::outcome_of(&moved), "unavailable");
        assert_eq!(ErrorClass::outcome_of(&Ok::<_, RuntimeError>(1)), "ok");
    }
}
