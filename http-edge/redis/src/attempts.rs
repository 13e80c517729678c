//! Login attempt counters shared by every node: fixed windows that start at a key's first
//! attempt (`INCR`, then `PEXPIRE` when the key is new), all keys in one script.

use std::time::Duration;

use emporium_http_edge::limits::{AttemptCounters, Unavailable, Window};
use fred::prelude::Value;

use crate::connection::{Redis, Script};

/// KEYS: the counters. ARGV: the window in ms. Returns `{count1, ttl1_ms, count2, ...}`.
const COUNT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[#out + 1] = count
  out[#out + 1] = ttl
end
return out
";

/// KEYS[1]: deleted; KEYS[2] (optional): decremented, deleted at zero.
const FORGIVE: &str = r"
redis.call('DEL', KEYS[1])
if KEYS[2] then
  local count = tonumber(redis.call('GET', KEYS[2]) or '0')
  if count <= 1 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('DECR', KEYS[2])
  end
end
return 0
";

static COUNT_SCRIPT: Script = Script::new(COUNT);
static FORGIVE_SCRIPT: Script = Script::new(FORGIVE);

/// [`AttemptCounters`] on Redis: `<prefix>:<key>` (keys come as `login:...`).
pub struct RedisAttempts {
    redis: Redis,
}

impl RedisAttempts {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait::async_trait]
impl AttemptCounters for RedisAttempts {
    async fn count(&self, keys: &[String], window: Duration) -> Result<Vec<Window>, Unavailable> {
        let keys = keys.iter().map(|key| self.redis.key(key)).collect();
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let counts: Vec<i64> = self
            .redis
            .eval(
                "login_throttle",
                &COUNT_SCRIPT,
                keys,
                vec![Value::from(window_ms)],
            )
            .await?;
        Ok(counts
            .chunks_exact(2)
            .map(|pair| Window {
                attempts: u64::try_from(pair[0]).unwrap_or(0),
                remaining: Duration::from_millis(u64::try_from(pair[1]).unwrap_or(0)),
            })
            .collect())
    }

    async fn forgive(&self, clear: &str, decrement: Option<&str>) -> Result<(), Unavailable> {
        let keys = std::iter::once(clear)
            .chain(decrement)
            .map(|key| self.redis.key(key))
            .collect();
        let _: i64 = self
            .redis
            .eval("login_throttle", &FORGIVE_SCRIPT, keys, Vec::new())
            .await?;
        Ok(())
    }
}
