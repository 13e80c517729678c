//! async-nats errors mapped to the port's typed errors.

use std::error::Error as _;
use std::fmt::Display;

use async_nats::jetstream::context::{PublishError as NatsPublishError, PublishErrorKind};
use emporium_runtime::events::{EventBusError, PublishError};

/// Why the adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot create or update stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

/// A publish that failed before the message left the client: surely not stored.
pub(crate) fn not_stored(id: &str, error: &NatsPublishError) -> PublishError {
    PublishError::NotStored {
        id: id.to_owned(),
        reason: error.to_string(),
    }
}

/// A publish whose acknowledgement failed: not stored only when the server said so.
pub(crate) fn ack_failed(id: &str, error: &NatsPublishError) -> PublishError {
    let id = id.to_owned();
    let reason = error.to_string();
    if server_refused(error) {
        PublishError::NotStored { id, reason }
    } else {
        // A timeout or a connection lost while waiting: the server may have stored it.
        PublishError::Unknown { id, reason }
    }
}

fn server_refused(error: &NatsPublishError) -> bool {
    match error.kind() {
        // No stream listens on the subject ("no responders"), or the server checked and
        // rejected the message: nothing was stored.
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::MaxAckPending => true,
        // `Other` after the send is either a JetStream error answer (refused) or an answer
        // the client could not read (unknown).
        PublishErrorKind::Other => error
            .source()
            .is_some_and(|source| source.is::<async_nats::jetstream::Error>()),
        _ => false,
    }
}

/// Any other failure of the bus: reported as unavailable, since callers retry later.
pub(crate) fn bus_error(error: impl Display) -> EventBusError {
    EventBusError::Unavailable(error.to_string())
}
