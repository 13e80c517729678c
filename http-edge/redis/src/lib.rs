//! # emporium-redis: the edge's shared state on Redis
//!
//! Redis adapters, on the `fred` client, of the ports the HTTP edge keeps in process when no
//! Redis is configured:
//!
//! | port (`emporium-http-edge`) | adapter | keys |
//! | --- | --- | --- |
//! | `limits::TokenBuckets` | [`RedisBuckets`]: one Lua script takes a token from every bucket of a request, or from none | `<prefix>:rl:ip:<addr>`, `<prefix>:rl:user:<sub>` (hash, TTL = time to refill) |
//! | `limits::AttemptCounters` | [`RedisAttempts`]: `INCR` + `PEXPIRE` on the first attempt, in one script | `<prefix>:login:email:<email>`, `<prefix>:login:ip:<addr>` (TTL = window) |
//! | `auth::RevocationList` | [`RedisRevocations`]: `SET … EXAT <exp>`, `EXISTS` | `<prefix>:revoked:<jti>` |
//! | `cache::PageStore` | [`RedisPages`]: generation and page read in one script; `INCR` starts a generation | `<prefix>:<space>:gen`, `<prefix>:<space>:page:<gen>:<query>` (TTL = page TTL) |
//!
//! **Redis down.** Every command has a short timeout ([`RedisOptions::command_timeout`]) and
//! fails fast while the connection is down; after a failure, Redis is not asked again for
//! [`RedisOptions::pause_after_error`], so a hung server costs one timeout per pause, not one
//! per request. The adapters then answer `Unavailable` (limits, throttling and the cache fall
//! back to the edge's in-process twins or are bypassed) or use their local twin (revocations).
//! fred reconnects by itself; state changes are logged once each way. Each operation that
//! Redis did not serve counts in `emporium_redis_errors_total{op}`.
//!
//! **Deployment.** A single Redis (or a primary with replicas), version 5 or later: the
//! scripts read the server clock and touch keys they compute, which Redis Cluster forbids.

mod attempts;
mod buckets;
mod connection;
mod pages;
mod revocations;

pub use attempts::RedisAttempts;
pub use buckets::RedisBuckets;
pub use connection::{Redis, RedisOptions};
pub use pages::RedisPages;
pub use revocations::RedisRevocations;
