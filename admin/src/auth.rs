//! Who may call the admin API: every RPC carries `authorization: Bearer <token>`, and an
//! injected [`Authorizer`] decides. The crate knows no tokens itself: the node plugs in its
//! static admin token and its user tokens (`src/node.rs`), tests plug in what they need.

use tonic::Status;
use tonic::metadata::MetadataMap;

/// Decides whether a bearer token may use the admin API.
#[tonic::async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// `Ok` to let the call through. Called once per RPC (a stream is checked when it opens);
    /// asynchronous, so that it may ask a shared revocation list.
    async fn check(&self, bearer: &str) -> Result<(), AuthError>;
}

/// Why a call was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one that is not valid (unknown, badly signed, expired): `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token of someone who is not an admin: `PERMISSION_DENIED`.
    #[error("{0}")]
    PermissionDenied(String),
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated(message) => Status::unauthenticated(message),
            AuthError::PermissionDenied(message) => Status::permission_denied(message),
        }
    }
}

/// The token of `authorization: Bearer <token>`.
pub(crate) fn bearer(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        AuthError::Unauthenticated("the admin API needs 'authorization: Bearer <token>'".into())
    })?;
    value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            AuthError::Unauthenticated("the authorization header must be 'Bearer <token>'".into())
        })
}

/// Check `metadata`'s bearer token with `authorizer`.
pub(crate) async fn authorize(
    authorizer: &dyn Authorizer,
    metadata: &MetadataMap,
) -> Result<(), Status> {
    let token = bearer(metadata)?;
    authorizer.check(token).await.map_err(Status::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        assert_eq!(bearer(&with("Bearer abc ")).unwrap(), "abc");
        assert!(bearer(&MetadataMap::new()).is_err());
        assert!(bearer(&with("Basic abc")).is_err());
        assert!(bearer(&with("Bearer   ")).is_err());
    }
}
