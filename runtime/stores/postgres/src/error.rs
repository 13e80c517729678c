//! Mapping PostgreSQL and pool failures onto [`StoreError`].
//!
//! The port's callers decide on the *class* of a failure, so the class must be right:
//! - **Unavailable**: the server could not be reached or did not answer in time (connection
//!   refused or reset, pool wait/create timeout, the per-operation deadline, a server shutting
//!   down, a statement cancelled by `statement_timeout`). The edge turns it into a 503 and the
//!   caller reloads before retrying, since the write may or may not have applied.
//! - **Race**: the server aborted a transaction because of a concurrent one (serialization
//!   failure, deadlock, a unique violation on a compare-and-set key). In a compare-and-set
//!   the adapter turns it into [`StoreError::Conflict`] after reading the current version;
//!   anywhere else nothing was applied and a retry may succeed, so it is `Unavailable`.
//! - **Other**: everything else (bad SQL, schema mismatch, authentication, bad data).
//!
//! tokio-postgres does not expose the kind of a non-database error, so connection-level
//! failures are recognised by `is_closed()`, by an `io::Error` in the source chain, or by
//! the two fixed messages of its connect and timeout kinds.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use emporium_runtime::StoreError;
use tokio_postgres::error::SqlState;

/// What an adapter operation failed with before classification.
#[derive(Debug)]
pub(crate) enum OpError {
    /// Already a port error (a conflict, a value too large, a corrupt row).
    Store(StoreError),
    /// A driver error, classified by [`classify`].
    Pg(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Pg(error)
    }
}

impl From<StoreError> for OpError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Whether a driver error means "a concurrent transaction won": the caller's CAS lost.
///
/// Only unique violations on the two compare-and-set keys count; a duplicate outbox
/// `event_id` is a caller bug, not a race, and stays [`StoreError::Other`].
pub(crate) fn is_race(error: &tokio_postgres::Error) -> bool {
    let Some(db) = error.as_db_error() else {
        return false;
    };
    let code = db.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return true;
    }
    *code == SqlState::UNIQUE_VIOLATION
        && matches!(
            db.constraint(),
            Some("emporium_actor_state_pkey" | "emporium_leases_pkey")
        )
}

/// Classify a driver error (races are handled by the caller before this).
pub(crate) fn classify(error: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        // 08: connection exception; 57: operator intervention (query_canceled by
        // statement_timeout, admin/crash shutdown, cannot connect now); 53: insufficient
        // resources (too many connections, out of memory or disk); 25P03: idle in
        // transaction timeout.
        let unavailable = code.starts_with("08")
            || code.starts_with("57")
            || code.starts_with("53")
            || code == "25P03";
        let message = format!("postgres {}: {}", code, db.message());
        // A race outside a compare-and-set (two relays acking overlapping batches deadlock,
        // say) applied nothing and is worth retrying: that is what Unavailable tells.
        return if unavailable || is_race(error) {
            StoreError::Unavailable(message)
        } else {
            StoreError::Other(message)
        };
    }
    if is_connection_failure(error) {
        StoreError::Unavailable(format!("postgres connection failed: {}", chain(error)))
    } else {
        StoreError::Other(format!("postgres: {}", chain(error)))
    }
}

/// Classify a failure to obtain a pooled connection.
pub(crate) fn classify_pool(error: &PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => classify(error),
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "postgres pool timed out ({})",
            format!("{kind:?}").to_lowercase()
        )),
        PoolError::Closed => StoreError::Unavailable("postgres pool is closed".to_owned()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Other("postgres pool has no runtime for its timeouts".to_owned())
        }
        PoolError::PostCreateHook(error) => {
            StoreError::Other(format!("postgres post-create hook failed: {error}"))
        }
    }
}

fn is_connection_failure(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    let text = error.to_string();
    text.starts_with("error connecting to server")
        || text.starts_with("timeout waiting for server")
        || text.starts_with("error communicating with the server")
}

/// The error and its causes on one line, lowercase as the driver writes them.
fn chain(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
