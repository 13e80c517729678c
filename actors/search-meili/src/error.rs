//! What can go wrong talking to Meilisearch, and how it reaches the port.
//!
//! [`MeiliError`] is the adapter's own error, returned by [`crate::MeiliIndex::connect`]. The
//! port's methods answer [`SearchError`], a message: every `MeiliError` becomes one naming
//! the step that failed (`From<MeiliError> for SearchError`).

use std::time::Duration;

use emporium_actors::catalog::SearchError;
use meilisearch_sdk::errors::Error as SdkError;

use crate::config::MeiliUrlError;

/// Why connecting to, writing to or reading from Meilisearch failed.
#[derive(Debug, thiserror::Error)]
pub enum MeiliError {
    /// The server URL is not an `http://` or `https://` URL.
    #[error("server URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The index name is not a valid Meilisearch index uid.
    #[error(transparent)]
    IndexName(MeiliUrlError),
    /// The API key cannot be sent in an HTTP header.
    #[error("the API key holds characters an HTTP header cannot carry")]
    ApiKey,
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// A request failed: unreachable server, an error status, or an unreadable answer.
    #[error("{during}: {source}")]
    Request {
        during: &'static str,
        #[source]
        source: SdkError,
    },
    /// Meilisearch processed the task and reports that it failed.
    #[error("{during}: task {task} failed: {message}")]
    TaskFailed {
        during: &'static str,
        task: u32,
        message: String,
    },
    /// The task was still enqueued or processing when the adapter gave up waiting; it may
    /// still be applied later.
    #[error("{during}: task {task} not processed within {waited:?}")]
    TaskTimeout {
        during: &'static str,
        task: u32,
        waited: Duration,
    },
    /// The index exists with another primary key than the adapter's.
    #[error("index {index:?} has the primary key {found:?}, expected {expected:?}")]
    PrimaryKey {
        index: String,
        found: String,
        expected: &'static str,
    },
    /// A search answer lacks a field the adapter asked for.
    #[error("{during}: the answer has no {field}")]
    Answer {
        during: &'static str,
        field: &'static str,
    },
}

impl MeiliError {
    /// A failed request during `during`.
    pub(crate) fn request(during: &'static str) -> impl FnOnce(SdkError) -> Self {
        move |source| Self::Request { during, source }
    }
}

impl From<MeiliError> for SearchError {
    fn from(error: MeiliError) -> Self {
        SearchError(format!("meilisearch: {error}"))
    }
}
