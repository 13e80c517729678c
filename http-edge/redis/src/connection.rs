//! The connection: one multiplexed fred client, its health as this node sees it, and the Lua
//! scripts the adapters run.
//!
//! Health is two things: fred's connection state (`is_connected`) and a short pause after any
//! failed command. While either says no, [`Redis::call`] does not send anything and reports
//! the operation as not served at once, so requests keep their normal latency while Redis is
//! down or hung. The first failure after a healthy period logs a warning, the first success
//! (or fred's reconnect event) after a failure logs the recovery: once each way.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use emporium_http_edge::limits::Unavailable;
use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, LuaInterface, Options, ReconnectPolicy, Value,
};
use fred::types::config::UnresponsiveConfig;
use fred::types::{FromValue, MultipleKeys};
use tokio::time::Instant;

/// Timeouts and pauses of the connection.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Every command's deadline; a request waits at most this long per Redis call.
    pub command_timeout: Duration,
    /// After a failed command, skip Redis for this long.
    pub pause_after_error: Duration,
    /// How long [`Redis::connect`] waits for the first connection before going on without.
    pub connect_wait: Duration,
    /// Deadline of one TCP connect attempt.
    pub connect_timeout: Duration,
    /// Reconnect delays grow from `reconnect_min` to `reconnect_max` (forever).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_millis(200),
            pause_after_error: Duration::from_secs(1),
            connect_wait: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// This node's view of Redis.
struct Health {
    /// What was last logged: `true` until the first failure.
    up: AtomicBool,
    /// Skip Redis until this many ms after `epoch`.
    paused_until_ms: AtomicU64,
    epoch: Instant,
    pause: Duration,
}

impl Health {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn paused(&self) -> bool {
        self.now_ms() < self.paused_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, op: &'static str, error: &dyn std::fmt::Display) {
        let until = self.now_ms() + u64::try_from(self.pause.as_millis()).unwrap_or(u64::MAX / 2);
        self.paused_until_ms.store(until, Ordering::Relaxed);
        self.down(op, error);
    }

    fn down(&self, op: &'static str, error: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                op,
                %error,
                "redis unavailable: rate limits and login throttling are per node, revocations local, the read cache bypassed, until it is back"
            );
        }
    }

    fn recovered(&self) {
        // A load first: the common case (up, staying up) writes nothing shared.
        if !self.up.load(Ordering::Acquire) && !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(
                "redis available again: limits, throttling, revocations and the read cache are shared"
            );
        }
    }
}

/// A Lua script run by `EVALSHA`, loaded on first use and again after Redis forgot it.
pub(crate) struct Script {
    source: &'static str,
    sha: RwLock<Option<String>>,
}

impl Script {
    pub(crate) const fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: RwLock::new(None),
        }
    }
}

struct Inner {
    client: fred::clients::Client,
    options: Options,
    prefix: String,
    health: Health,
}

/// A shared Redis connection with a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

impl Redis {
    /// Connect to `url` (`redis://[:password@]host:port[/db]`) and wait up to
    /// `connect_wait` for the first connection. A server that is down is not an error: the
    /// node starts, serves from its local twins, and the client keeps reconnecting. Only a
    /// URL fred cannot use is, and so is `rediss://`: this build has no TLS (reach a TLS-only
    /// Redis through a local TLS tunnel).
    pub async fn connect(
        url: &str,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, fred::error::Error> {
        if url.trim_start().starts_with("rediss://") {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::Config,
                "rediss:// (TLS) is not built in; use redis:// (through a TLS tunnel if needed)",
            ));
        }
        let mut config = Config::from_url(url)?;
        // Go on without Redis when it is down at start; the reconnect policy brings it in.
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|performance| {
                performance.default_command_timeout = options.command_timeout;
            })
            .with_connection_config(|connection| {
                connection.connection_timeout = options.connect_timeout;
                connection.internal_command_timeout = options.connect_timeout;
                // A command is never resent: a retried token-bucket update would count twice.
                connection.max_command_attempts = 1;
                // Bound the queue of commands waiting for a connection.
                connection.max_command_buffer_len = 10_000;
                // A server that stops answering (hung, paused) is treated as gone.
                connection.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(options.command_timeout * 10),
                    interval: Duration::from_millis(500),
                };
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                millis_u32(options.reconnect_min),
                millis_u32(options.reconnect_max),
                2,
            ));
        let client = builder.build()?;
        let redis = Self {
            inner: Arc::new(Inner {
                options: Options {
                    timeout: Some(options.command_timeout),
                    fail_fast: true,
                    max_attempts: Some(1),
                    ..Options::default()
                },
                prefix: prefix.to_owned(),
                health: Health {
                    up: AtomicBool::new(true),
                    paused_until_ms: AtomicU64::new(0),
                    epoch: Instant::now(),
                    pause: options.pause_after_error,
                },
                client,
            }),
        };
        redis.watch_events();
        let _connection_task = redis.inner.client.connect();
        let deadline = Instant::now() + options.connect_wait;
        while !redis.inner.client.is_connected() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if redis.is_connected() {
            tracing::info!(prefix, "redis connected");
        } else {
            redis.inner.health.down(
                "connect",
                &"no connection yet; reconnecting in the background",
            );
        }
        Ok(redis)
    }

    /// Log connection losses and recoveries (once each way, see [`Health`]).
    fn watch_events(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.client.on_reconnect(move |_server| {
            if let Some(inner) = weak.upgrade() {
                inner.health.paused_until_ms.store(0, Ordering::Relaxed);
                inner.health.recovered();
            }
            async { Ok(()) }
        });
        let weak = Arc::downgrade(&self.inner);
        self.inner.client.on_error(move |(error, _server)| {
            if let Some(inner) = weak.upgrade() {
                inner.health.down("connection", &error);
            }
            async { Ok(()) }
        });
    }

    /// Is the connection up (as fred sees it)?
    pub fn is_connected(&self) -> bool {
        self.inner.client.is_connected()
    }

    /// `<prefix>:<rest>`.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.inner.prefix)
    }

    /// Run `command` unless Redis is known to be unavailable; count and log failures.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        command: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(fred::clients::WithOptions<fred::clients::Client>) -> Fut,
        Fut: Future<Output = Result<T, fred::error::Error>>,
    {
        let inner = &self.inner;
        if !inner.client.is_connected() || inner.health.paused() {
            metrics::counter!("emporium_redis_errors_total", "op" => op).increment(1);
            return Err(Unavailable);
        }
        match command(inner.client.with_options(&inner.options)).await {
            Ok(value) => {
                inner.health.recovered();
                Ok(value)
            }
            Err(error) => {
                metrics::counter!("emporium_redis_errors_total", "op" => op).increment(1);
                inner.health.failed(op, &error);
                Err(Unavailable)
            }
        }
    }

    /// Run `script` with `keys` and `args` (see [`call`](Self::call)).
    pub(crate) async fn eval<R: FromValue>(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R, Unavailable> {
        self.call(op, |client| async move {
            let known = script
                .sha
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let sha = match known {
                Some(sha) => sha,
                None => {
                    let sha: String = client.script_load(script.source).await?;
                    *script
                        .sha
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sha.clone());
                    sha
                }
            };
            let keys: MultipleKeys = keys.into();
            match client.evalsha(sha, keys.clone(), args.clone()).await {
                // Redis restarted (or SCRIPT FLUSH): EVAL runs it and caches it again.
                Err(error) if error.details().starts_with("NOSCRIPT") => {
                    client.eval(script.source, keys, args).await
                }
                result => result,
            }
        })
        .await
    }
}
