//! The one event envelope every domain event travels in, and the [`Event`] trait the domain
//! implements to be carried in it.
//!
//! On the wire (JSON, the payload of an [`super::EventEnvelope`]):
//!
//! ```json
//! {"id":"order:o-1:3:0","source":{"kind":"order","key":"o-1"},"version":3,
//!  "time":1765000000000,"schema":1,"type":"OrderPlaced","data":{…}}
//! ```
//!
//! - `id` is `kind:key:version:index`: unique (one actor commits each version once) and
//!   ordered within one actor (versions grow), so consumers deduplicate and order by it.
//! - `type` and `data` come from the domain's event enum (adjacently tagged); the runtime
//!   never looks inside them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A domain event: serialises to `{"type": …, "data": …}` and knows its subject.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The version of the event schema; bumped on incompatible payload changes.
    const SCHEMA: u32;
    /// Where it is published, `emporium.<kind>.<event>`.
    fn subject(&self) -> &'static str;
}

/// The actor that raised an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    pub kind: String,
    pub key: String,
}

/// One event with its metadata, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<E> {
    pub id: String,
    pub source: EventSource,
    /// The actor version the event committed with.
    pub version: u64,
    /// When it was raised, Unix milliseconds (the runtime's clock).
    pub time: u64,
    pub schema: u32,
    #[serde(flatten)]
    pub event: E,
}

impl<E: Event> Envelope<E> {
    /// Decode an envelope from a delivered payload.
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// The part of an envelope the relay reads (for its lag), whatever the event type.
#[derive(Deserialize)]
pub(crate) struct EnvelopeTime {
    pub time: u64,
}

/// The event id of the `index`-th event raised by `kind:key` committing `version`.
pub(crate) fn event_id(kind: &str, key: &str, version: u64, index: usize) -> String {
    format!("{kind}:{key}:{version}:{index}")
}
