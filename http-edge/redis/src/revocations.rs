//! Token revocations shared by every node: `SET <prefix>:revoked:<jti> 1 EXAT <exp>` on
//! logout, one `EXISTS` per authenticated request.
//!
//! This node's own revocations are also kept locally (and checked first, for free), so a
//! logout refused by a down Redis still holds on the node that took it; while Redis is down,
//! a check answers from that local list alone and the request goes on.

use std::time::{SystemTime, UNIX_EPOCH};

use emporium_http_edge::ApiError;
use emporium_http_edge::auth::{LocalRevocations, RevocationList};
use fred::prelude::{Expiration, KeysInterface};

use crate::connection::Redis;

/// [`RevocationList`] on Redis, with this node's revocations as the fallback.
pub struct RedisRevocations {
    redis: Redis,
    local: LocalRevocations,
}

impl RedisRevocations {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            local: LocalRevocations::default(),
        }
    }
}

#[async_trait::async_trait]
impl RevocationList for RedisRevocations {
    async fn revoke(&self, jti: &str, expires_at_secs: u64) -> Result<(), ApiError> {
        self.local.revoke(jti, expires_at_secs).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if expires_at_secs <= now {
            return Ok(()); // expired already: refused everywhere anyway
        }
        let key = self.redis.key(&format!("revoked:{jti}"));
        let expires_at = i64::try_from(expires_at_secs).unwrap_or(i64::MAX);
        // Down: the other nodes accept the token until it expires; this node refuses it.
        let _ = self
            .redis
            .call("revoke", |client| async move {
                client
                    .set::<(), _, _>(key, 1, Some(Expiration::EXAT(expires_at)), None, false)
                    .await
            })
            .await;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> bool {
        if self.local.is_revoked(jti).await {
            return true;
        }
        let key = self.redis.key(&format!("revoked:{jti}"));
        self.redis
            .call("revocation_check", |client| async move {
                client.exists::<i64, _>(key).await
            })
            .await
            .is_ok_and(|count| count > 0)
    }
}
