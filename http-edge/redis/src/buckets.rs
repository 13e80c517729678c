//! Token buckets shared by every node: one Lua script refills and takes from all the buckets
//! of a request atomically, on the Redis server's clock (so the nodes' clocks do not matter).

use std::time::Duration;

use emporium_http_edge::limits::{Admission, Rate, TokenBuckets, Unavailable};
use fred::prelude::Value;

use crate::connection::{Redis, Script};

/// KEYS: the buckets. ARGV: tokens per ms, burst, key TTL in ms.
/// Returns `{0, 0}` when a token was taken from every bucket, else `{i, wait_ms}` for the
/// first empty bucket (1-based) and nothing is taken.
const TAKE: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local levels = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then
    tokens = burst
    at = now
  end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / rate)}
  end
  levels[i] = tokens
end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'tokens', tostring(levels[i] - 1), 'at', now)
  redis.call('PEXPIRE', key, ttl)
end
return {0, 0}
";

static TAKE_SCRIPT: Script = Script::new(TAKE);

/// [`TokenBuckets`] on Redis: `<prefix>:rl:<key>`.
pub struct RedisBuckets {
    redis: Redis,
}

impl RedisBuckets {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait::async_trait]
impl TokenBuckets for RedisBuckets {
    async fn take(&self, keys: &[String], rate: &Rate) -> Result<Admission, Unavailable> {
        let per_ms = rate.tokens_per_ms();
        // A bucket untouched this long is full again: forgetting it changes nothing.
        let refill_ms = (f64::from(rate.burst) / per_ms).ceil() as i64 + 1000;
        let keys = keys
            .iter()
            .map(|key| self.redis.key(&format!("rl:{key}")))
            .collect();
        let args = vec![
            Value::from(format!("{per_ms:.12}")),
            Value::from(i64::from(rate.burst)),
            Value::from(refill_ms),
        ];
        let (bucket, wait_ms): (i64, i64) = self
            .redis
            .eval("rate_limit", &TAKE_SCRIPT, keys, args)
            .await?;
        Ok(match usize::try_from(bucket) {
            Ok(0) | Err(_) => Admission::Allowed,
            Ok(index) => Admission::Limited {
                bucket: index - 1,
                retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1)),
            },
        })
    }
}
