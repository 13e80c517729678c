//! Bearer tokens: signed JWTs (HS256) carrying the user id and roles, and the extractors that
//! guard routes.
//!
//! - [`Caller`]: anyone; `Some(claims)` when a valid token was presented.
//! - [`Authenticated`]: a valid token is required, else `401`.
//! - [`Admin`]: a valid token with the `admin` role, else `401` (no token) or `403`.
//!
//! A token that is malformed, badly signed, expired or revoked counts as no token for
//! [`Caller`] only when absent; a *presented* bad token is always `401`, so a client with a
//! stale token learns it at once instead of being silently treated as a guest.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;
use crate::state::AppState;

/// The role every signed-up user has.
pub const ROLE_CUSTOMER: &str = "customer";
/// The role that opens `/v1/admin/*`.
pub const ROLE_ADMIN: &str = "admin";

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub email: String,
    pub roles: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Token id, for revocation.
    pub jti: String,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ROLE_ADMIN)
    }

    /// May this caller act on a resource owned by `owner`?
    pub fn may_access(&self, owner: &str) -> bool {
        self.sub == owner || self.is_admin()
    }
}

/// Signs and verifies tokens with one shared secret (every node of a cluster uses the same).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    validation: Arc<Validation>,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            validation: Arc::new(validation),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Sign a token for `user_id` with `roles`, issued at `now_secs`.
    pub fn issue(
        &self,
        user_id: &str,
        email: &str,
        roles: &[String],
        now_secs: u64,
    ) -> Result<(String, Claims), ApiError> {
        let claims = Claims {
            sub: user_id.to_owned(),
            email: email.to_owned(),
            roles: roles.to_vec(),
            iat: now_secs,
            exp: now_secs + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| ApiError::Internal(format!("cannot sign token: {error}")))?;
        Ok((token, claims))
    }

    /// Check signature and expiry; `None` for any bad token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Check signature and expiry, and that the token is an admin's (for the admin gRPC
    /// API, which has no request parts to run the [`Admin`] extractor on). Revocation is
    /// not checked here: the revocation list is asynchronous and per deployment.
    pub fn verify_admin(&self, token: &str) -> Result<Claims, AdminTokenError> {
        let claims = self.verify(token).ok_or(AdminTokenError::Invalid)?;
        if claims.is_admin() {
            Ok(claims)
        } else {
            Err(AdminTokenError::NotAdmin)
        }
    }
}

/// Why [`TokenKeys::verify_admin`] refused a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    #[error("the token is invalid or expired")]
    Invalid,
    #[error("the token is not an admin's")]
    NotAdmin,
}

/// Tokens revoked before their expiry (logout). The in-process default is per node; a
/// shared implementation makes a logout count on every node.
#[async_trait::async_trait]
pub trait RevocationList: Send + Sync + 'static {
    /// Remember `jti` as revoked until `expires_at_secs`.
    async fn revoke(&self, jti: &str, expires_at_secs: u64) -> Result<(), ApiError>;
    async fn is_revoked(&self, jti: &str) -> bool;
}

/// Per-node revocations, forgotten once the token would have expired anyway.
#[derive(Default)]
pub struct LocalRevocations {
    revoked: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

#[async_trait::async_trait]
impl RevocationList for LocalRevocations {
    async fn revoke(&self, jti: &str, expires_at_secs: u64) -> Result<(), ApiError> {
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.insert(jti.to_owned(), expires_at_secs);
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(jti)
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
    Ok(Some(token))
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::Unauthorized(detail.to_owned())
}

async fn claims_from(parts: &Parts, state: &AppState) -> Result<Option<Claims>, ApiError> {
    let Some(token) = bearer(parts)? else {
        return Ok(None);
    };
    let claims = state
        .tokens
        .verify(token)
        .ok_or_else(|| unauthorized("the token is invalid or expired"))?;
    if state.revocations.is_revoked(&claims.jti).await {
        return Err(unauthorized("the token has been revoked"));
    }
    Ok(Some(claims))
}

/// Anyone; the claims when a valid token was presented.
pub struct Caller(pub Option<Claims>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(claims_from(parts, state).await?))
    }
}

/// A valid token is required.
pub struct Authenticated(pub Claims);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        claims_from(parts, state)
            .await?
            .map(Self)
            .ok_or_else(|| unauthorized("this route needs a bearer token"))
    }
}

/// A valid token with the admin role is required.
pub struct Admin(pub Claims);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(claims) = Authenticated::from_request_parts(parts, state).await?;
        if claims.is_admin() {
            Ok(Self(claims))
        } else {
            Err(ApiError::Forbidden("this route is for admins".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (token, claims) = keys
            .issue("u-1", "a@example.com", &[ROLE_CUSTOMER.to_owned()], now)
            .unwrap();
        assert_eq!(keys.verify(&token), Some(claims));
        let other = TokenKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert_eq!(other.verify(&token), None, "wrong key");
        let (expired, _) = keys.issue("u-1", "a@example.com", &[], now - 120).unwrap();
        assert_eq!(keys.verify(&expired), None, "expired");
        assert_eq!(keys.verify("not.a.token"), None);
    }

    #[test]
    fn only_admins_pass_verify_admin() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (admin, _) = keys
            .issue("u-1", "a@example.com", &[ROLE_ADMIN.to_owned()], now)
            .unwrap();
        let (customer, _) = keys
            .issue("u-2", "c@example.com", &[ROLE_CUSTOMER.to_owned()], now)
            .unwrap();
        assert_eq!(keys.verify_admin(&admin).unwrap().sub, "u-1");
        assert_eq!(keys.verify_admin(&customer), Err(AdminTokenError::NotAdmin));
        assert_eq!(keys.verify_admin("forged"), Err(AdminTokenError::Invalid));
    }
}
