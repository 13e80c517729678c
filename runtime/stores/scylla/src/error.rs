//! Mapping driver failures onto [`StoreError`].
//!
//! The port's callers act on the *class* of a failure, so the class must be right:
//! - **Unavailable**: the cluster could not be reached or did not answer in time: no
//!   connection, a client-side request timeout, a broken connection, and the server's own
//!   `Unavailable`, `ReadTimeout`, `WriteTimeout` (including a CAS write timeout), `Overloaded`
//!   and `IsBootstrapping`. The operation may or may not have applied.
//! - **Other**: everything else (bad CQL, schema mismatch, authentication, undecodable rows).
//!
//! A lost compare-and-set is not an error of the driver at all: a lightweight transaction
//! that did not apply answers `[applied] = false`, which the adapter turns into
//! [`StoreError::Conflict`] itself.
//!
//! For a lightweight transaction the adapter also needs to know whether a failure is
//! *ambiguous* (the proposal may have been accepted, see [`Failure::outcome_unknown`]): those are
//! resolved with a `LOCAL_SERIAL` read instead of being reported at once.

use emporium_runtime::StoreError;
use scylla::errors::{
    DbError, ExecutionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError,
};

/// A classified driver failure.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The request never reached a replica, or a replica did not answer in time.
    pub(crate) unavailable: bool,
    /// The request may have been applied (it was sent, and no definite answer came back).
    pub(crate) outcome_unknown: bool,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn into_store_error(self, op: &str) -> StoreError {
        if self.unavailable {
            StoreError::Unavailable(format!("{op}: {}", self.message))
        } else {
            StoreError::Other(format!("{op}: {}", self.message))
        }
    }
}

fn failure(unavailable: bool, outcome_unknown: bool, message: String) -> Failure {
    Failure {
        unavailable,
        outcome_unknown,
        message: message.to_lowercase(),
    }
}

fn classify_db(db: &DbError, message: String) -> Failure {
    match db {
        // Rejected by the coordinator before any replica was asked: nothing applied.
        DbError::Unavailable { .. } | DbError::Overloaded | DbError::IsBootstrapping => {
            failure(true, false, message)
        }
        DbError::ReadTimeout { .. }
        | DbError::WriteTimeout { .. }
        | DbError::ReadFailure { .. }
        | DbError::WriteFailure { .. } => failure(true, true, message),
        _ => failure(false, false, message),
    }
}

fn classify_attempt(error: &RequestAttemptError) -> Failure {
    let message = error.to_string();
    match error {
        RequestAttemptError::DbError(db, _) => classify_db(db, message),
        RequestAttemptError::BrokenConnectionError(_) => failure(true, true, message),
        RequestAttemptError::UnableToAllocStreamId => failure(true, false, message),
        _ => failure(false, false, message),
    }
}

pub(crate) fn classify_execution(error: &ExecutionError) -> Failure {
    let message = error.to_string();
    match error {
        ExecutionError::LastAttemptError(attempt) => classify_attempt(attempt),
        ExecutionError::RequestTimeout(_) => failure(true, true, message),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => {
            failure(true, false, message)
        }
        ExecutionError::PrepareError(prepare) => classify_prepare(prepare),
        _ => failure(false, false, message),
    }
}

pub(crate) fn classify_prepare(error: &PrepareError) -> Failure {
    let message = error.to_string();
    match error {
        PrepareError::ConnectionPoolError(_) => failure(true, false, message),
        PrepareError::AllAttemptsFailed { first_attempt } => {
            let mut classified = classify_attempt(first_attempt);
            classified.outcome_unknown = false;
            classified.message = message.to_lowercase();
            classified
        }
        _ => failure(false, false, message),
    }
}

fn classify_request(error: &RequestError) -> Failure {
    let message = error.to_string();
    match error {
        RequestError::LastAttemptError(attempt) => classify_attempt(attempt),
        RequestError::RequestTimeout(_) => failure(true, true, message),
        RequestError::EmptyPlan | RequestError::ConnectionPoolError(_) => {
            failure(true, false, message)
        }
        _ => failure(false, false, message),
    }
}

pub(crate) fn classify_pager(error: &PagerExecutionError) -> Failure {
    match error {
        PagerExecutionError::PrepareError(prepare) => classify_prepare(prepare),
        PagerExecutionError::NextPageError(next) => classify_next_page(next),
        other => failure(false, false, other.to_string()),
    }
}

fn classify_next_page(error: &NextPageError) -> Failure {
    match error {
        NextPageError::RequestFailure(request) => classify_request(request),
        other => failure(false, false, other.to_string()),
    }
}

pub(crate) fn classify_next_row(error: &NextRowError) -> Failure {
    match error {
        NextRowError::NextPageError(next) => classify_next_page(next),
        other => failure(false, false, other.to_string()),
    }
}

/// A row or result that does not have the expected shape: a schema mismatch.
pub(crate) fn corrupt(op: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!(
        "{op}: unexpected result: {}",
        error.to_string().to_lowercase()
    ))
}
