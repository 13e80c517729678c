//! The `EventBus` port: where domain events leave the node, and where consumers read them.
//!
//! Domain-free: an event is an opaque payload under a subject with a stable id. Adapters
//! (JetStream in `runtime/events/nats`, the in-process [`MemoryEventBus`]) honour the
//! contract written on [`EventBus`] and pass the one conformance suite in [`conformance`]
//! (feature `conformance`).
//!
//! # Contract
//! - **Publish is durable and deduplicated.** [`EventBus::publish`] returns only after the
//!   bus acknowledged every envelope of the batch as stored (all are sent first, then all
//!   acknowledgements awaited). An envelope whose `id` the bus already stored within its
//!   *duplicate window* is acknowledged and stored once: re-publishing after an unknown
//!   outcome is always safe.
//! - **Failures are per envelope and say what is known.** [`PublishError::NotStored`]: the
//!   bus surely did not store it (retry freely). [`PublishError::Unknown`]: it may or may not
//!   be stored (an acknowledgement that never came back); retry with the same id, which
//!   dedup makes safe within the window.
//! - **Subscriptions are durable, at least once, in order.** [`EventBus::subscribe`] with a
//!   durable consumer name resumes where that consumer's acknowledgements left off, across
//!   subscriptions and restarts. Messages matching the filter are first delivered in the
//!   order they were published on each subject; a message not acknowledged within the bus's
//!   *ack wait* is delivered again, with a [`Delivery::delivery_count`] one higher (so a
//!   redelivery may come after later messages). Consumers must be idempotent by `id`.
//! - **Subjects** are dot-separated tokens; filters use `*` (one token) and `>` (one or more
//!   trailing tokens), as NATS does.

pub mod consume;
mod envelope;
mod memory;
pub mod relay;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use bytes::Bytes;

pub use envelope::{Envelope, Event, EventSource};
pub(crate) use envelope::{EnvelopeTime, event_id};
pub use memory::{MemoryEventBus, MemoryEventBusConfig};
pub use relay::RelaySettings;

/// One event as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    /// Unique and stable: the deduplication id (`Nats-Msg-Id` on JetStream).
    pub id: String,
    /// Where it is published, e.g. `emporium.order.placed`.
    pub subject: String,
    /// Opaque to the bus.
    pub payload: Bytes,
}

/// Why one envelope of a batch was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The bus surely did not store it (refused connection, no stream for the subject,
    /// payload too large): safe to retry, nothing to reconcile.
    #[error("event {id} not stored: {reason}")]
    NotStored { id: String, reason: String },
    /// It may or may not be stored (sent, but no acknowledgement came back): retry with the
    /// same id, which the duplicate window makes safe.
    #[error("event {id} outcome unknown: {reason}")]
    Unknown { id: String, reason: String },
}

impl PublishError {
    /// True when the bus surely did not store the envelope.
    pub fn is_not_stored(&self) -> bool {
        matches!(self, Self::NotStored { .. })
    }

    /// The id of the envelope this error is about.
    pub fn id(&self) -> &str {
        match self {
            Self::NotStored { id, .. } | Self::Unknown { id, .. } => id,
        }
    }
}

/// Failures of subscribing, receiving or acknowledging.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventBusError {
    /// The bus cannot be reached now; retry later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (a bad filter, a consumer name bound to another filter).
    #[error("event bus refused: {0}")]
    Refused(String),
}

/// The port. See the module documentation for the contract.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Store every envelope of `batch`; one result per envelope, in batch order.
    async fn publish(&self, batch: &[EventEnvelope]) -> Vec<Result<(), PublishError>>;

    /// Attach to the durable consumer `consumer`, created on first use with `filter`.
    async fn subscribe(
        &self,
        consumer: &str,
        filter: &str,
    ) -> Result<Box<dyn Subscription>, EventBusError>;
}

/// A stream of deliveries from one durable consumer.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, waiting until one is available. An error ends nothing durable:
    /// the consumer keeps its position, and subscribing again resumes from it.
    async fn next(&mut self) -> Result<Delivery, EventBusError>;
}

/// How an adapter acknowledges one delivery.
#[async_trait]
pub trait Acknowledge: Send {
    /// Mark the delivery processed; returns once the bus recorded it.
    async fn ack(self: Box<Self>) -> Result<(), EventBusError>;
}

/// One delivered message; unacknowledged, it is delivered again after the ack wait.
pub struct Delivery {
    /// The envelope's id.
    pub id: String,
    pub subject: String,
    pub payload: Bytes,
    /// 1 on the first delivery, then one more on each redelivery (for dead-lettering).
    pub delivery_count: u64,
    acker: Box<dyn Acknowledge>,
}

impl Delivery {
    /// For adapters: a delivery acknowledged through `acker`.
    pub fn new(envelope: EventEnvelope, delivery_count: u64, acker: Box<dyn Acknowledge>) -> Self {
        Self {
            id: envelope.id,
            subject: envelope.subject,
            payload: envelope.payload,
            delivery_count,
            acker,
        }
    }

    /// Acknowledge: the consumer will not see this message again.
    pub async fn ack(self) -> Result<(), EventBusError> {
        self.acker.ack().await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("delivery_count", &self.delivery_count)
            .finish_non_exhaustive()
    }
}

/// Whether `subject` matches the NATS-style `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (want, Some(got)) if want == got => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn filters_match_like_nats() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(subject_matches("a.*.c", "a.x.c"));
        assert!(!subject_matches("a.*", "a.x.c"));
        assert!(subject_matches("a.>", "a.x.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b.c", "a.b"));
    }
}
