//! Cached pages shared by every node: `<prefix>:<space>:gen` holds the space's generation,
//! `<prefix>:<space>:page:<gen>:<query>` a page; a lookup reads both in one script.

use std::time::Duration;

use bytes::Bytes;
use emporium_http_edge::cache::{Lookup, PageStore};
use emporium_http_edge::limits::Unavailable;
use fred::prelude::{Expiration, KeysInterface, Value};

use crate::connection::{Redis, Script};

/// KEYS[1]: the generation. ARGV[1]: the page key up to the generation, ARGV[2]: the query
/// key. Returns `{generation, page or nil}`.
const LOOKUP: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
";

static LOOKUP_SCRIPT: Script = Script::new(LOOKUP);

/// [`PageStore`] on Redis.
pub struct RedisPages {
    redis: Redis,
}

impl RedisPages {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait::async_trait]
impl PageStore for RedisPages {
    async fn lookup(&self, space: &str, key: &str) -> Result<Lookup, Unavailable> {
        let generation_key = self.redis.key(&format!("{space}:gen"));
        let pages = self.redis.key(&format!("{space}:page:"));
        let reply: Vec<Value> = self
            .redis
            .eval(
                "cache_get",
                &LOOKUP_SCRIPT,
                vec![generation_key],
                vec![Value::from(pages), Value::from(key)],
            )
            .await?;
        let mut reply = reply.into_iter();
        let generation = reply.next().and_then(|value| value.as_u64()).unwrap_or(0);
        let body = reply.next().and_then(Value::into_bytes);
        Ok(Lookup { generation, body })
    }

    async fn store(
        &self,
        space: &str,
        generation: u64,
        key: &str,
        body: Bytes,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let page = self.redis.key(&format!("{space}:page:{generation}:{key}"));
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.redis
            .call("cache_put", |client| async move {
                client
                    .set::<(), _, _>(page, body, Some(Expiration::PX(ttl_ms)), None, false)
                    .await
            })
            .await
    }

    async fn bump(&self, space: &str) -> Result<u64, Unavailable> {
        let generation_key = self.redis.key(&format!("{space}:gen"));
        self.redis
            .call("cache_bump", |client| async move {
                client.incr::<u64, _>(generation_key).await
            })
            .await
    }
}
