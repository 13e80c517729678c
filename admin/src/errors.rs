//! What the runtime's errors mean on the wire: the same meaning the HTTP admin routes give
//! them (`http-edge/src/problem.rs`), in gRPC codes.
//!
//! | runtime | HTTP | gRPC |
//! | --- | --- | --- |
//! | `UnknownNode`, `UnknownKind` | 404 | `NOT_FOUND` |
//! | `NotClustered`, `Refused` | 409 | `FAILED_PRECONDITION` |
//! | `Unreachable`, a transient runtime error | 503 | `UNAVAILABLE` |
//! | outcome unknown | 504 | `DEADLINE_EXCEEDED` |
//! | anything else | 500 | `INTERNAL` (the cause logged, never sent) |

use emporium_runtime::{OperationError, RuntimeError};
use tonic::Status;

pub(crate) fn operation_status(error: OperationError) -> Status {
    let message = error.to_string();
    match error {
        OperationError::UnknownNode(_) | OperationError::UnknownKind(_) => {
            Status::not_found(message)
        }
        OperationError::NotClustered | OperationError::Refused(_) => {
            Status::failed_precondition(message)
        }
        OperationError::Unreachable { .. } => Status::unavailable(message),
        OperationError::Runtime(error) => runtime_status(&error),
    }
}

pub(crate) fn runtime_status(error: &RuntimeError) -> Status {
    if let RuntimeError::UnknownKind { kind } = error {
        return Status::not_found(format!("there is no actor kind {kind:?}"));
    }
    if error.is_outcome_unknown() {
        tracing::warn!(%error, "admin API: outcome unknown");
        return Status::deadline_exceeded(
            "no answer came back in time; the change may or may not have been applied",
        );
    }
    if error.is_unavailable() {
        tracing::warn!(%error, "admin API: unavailable");
        return Status::unavailable(format!("{error}; retry later"));
    }
    tracing::error!(%error, "admin API: runtime error");
    Status::internal("the node failed to handle the request; its log has the cause")
}

/// An empty name is refused before the runtime sees it.
pub(crate) fn required<'a>(what: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!(
            "{what} must not be empty"
        )))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn operation_errors_keep_their_meaning() {
        let code = |error| operation_status(error).code();
        assert_eq!(
            code(OperationError::UnknownNode("x".into())),
            Code::NotFound
        );
        assert_eq!(
            code(OperationError::UnknownKind("x".into())),
            Code::NotFound
        );
        assert_eq!(code(OperationError::NotClustered), Code::FailedPrecondition);
        assert_eq!(
            code(OperationError::Refused("last node".into())),
            Code::FailedPrecondition
        );
        let unreachable = OperationError::Unreachable {
            node: "n".into(),
            reason: "down".into(),
        };
        assert_eq!(code(unreachable), Code::Unavailable);
        let unknown_kind = OperationError::Runtime(RuntimeError::UnknownKind { kind: "k".into() });
        assert_eq!(code(unknown_kind), Code::NotFound);
        assert_eq!(
            code(OperationError::Runtime(RuntimeError::ShuttingDown)),
            Code::Unavailable
        );
    }

    #[test]
    fn empty_names_are_invalid_arguments() {
        assert_eq!(
            required("kind", " ").unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(required("kind", "cart").unwrap(), "cart");
    }
}
