//! Request rate limits and login throttling.
//!
//! **Rate limits.** Every request except `/healthz`, `/readyz` and `/metrics` takes one token
//! from the bucket of its client address and, when it carries a validly signed bearer token,
//! from the bucket of that user (`sub`) too: all or none. A bucket holds up to `burst`
//! tokens and refills at the configured rate; an empty one answers `429` with
//! `Retry-After` set to the seconds until a token is back (at least 1).
//!
//! **Login throttling.** Each login attempt is counted against the normalized e-mail and the
//! client address *before* the password is checked, so parallel guesses cannot slip past the
//! limit; a successful login takes its attempt back (the e-mail's count is cleared, the
//! address's decremented). Over the limit, a login answers `429` until the window of the
//! first counted attempt ends, even with the right password.
//!
//! **Ports.** [`TokenBuckets`] and [`AttemptCounters`] are where the counts live: shared by
//! every node (the Redis adapters of `emporium-redis`) or in this process ([`LocalBuckets`],
//! [`LocalAttempts`]). A shared backend that cannot answer returns [`Unavailable`]; the
//! facades here ([`RateLimiter`], [`LoginThrottle`]) then answer from the in-process twin,
//! so a request is never failed because the shared backend is down (the limit is then per
//! node). Time is tokio's clock, so tests can pause it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::problem::ApiError;
use crate::state::AppState;

/// Paths that are never limited: probes and scrapes must work while clients are throttled.
const UNLIMITED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// In-process maps are split in this many shards, each under its own lock.
const SHARDS: usize = 16;
/// Most keys one in-process shard keeps; past it, idle entries are dropped (and, if that is
/// not enough, the whole shard: forgetting a count only ever lets a client through).
const MAX_KEYS_PER_SHARD: usize = 8192;

/// The shared backend did not answer (down, timed out, or not connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable;

/// A token bucket's shape: `burst` tokens, refilled at `requests` per `per`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Rate {
    /// Tokens added per millisecond.
    pub fn tokens_per_ms(&self) -> f64 {
        f64::from(self.requests) / (self.per.as_secs_f64() * 1000.0).max(1.0)
    }

    /// How long until a bucket holding `tokens` has one whole token again.
    pub fn wait_for_token(&self, tokens: f64) -> Duration {
        let missing = (1.0 - tokens).max(0.0);
        Duration::from_secs_f64(missing / self.tokens_per_ms() / 1000.0)
    }
}

/// What a bucket check decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The bucket at index `bucket` of the keys asked for is empty; nothing was taken.
    Limited {
        bucket: usize,
        retry_after: Duration,
    },
}

/// Token buckets keyed by string, created full on first use.
///
/// Contract: [`take`](Self::take) is atomic over all its keys: either one token is taken from
/// every bucket, or none is and the answer names an empty bucket. Buckets not used for a
/// while may be forgotten (a forgotten bucket comes back full).
#[async_trait::async_trait]
pub trait TokenBuckets: Send + Sync + 'static {
    async fn take(&self, keys: &[String], rate: &Rate) -> Result<Admission, Unavailable>;
}

/// A window of counted login attempts under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Attempts counted in the window, this one included.
    pub attempts: u64,
    /// Until the window ends and the count starts again from zero.
    pub remaining: Duration,
}

/// Counters of login attempts in fixed windows that start at a key's first attempt.
///
/// Contract: [`count`](Self::count) increments every key atomically and returns each key's
/// window in order; a key's window is `window` long from the attempt that created it and is
/// never extended. [`forgive`](Self::forgive) deletes `clear` and decrements `decrement`
/// (never below zero).
#[async_trait::async_trait]
pub trait AttemptCounters: Send + Sync + 'static {
    async fn count(&self, keys: &[String], window: Duration) -> Result<Vec<Window>, Unavailable>;
    async fn forgive(&self, clear: &str, decrement: Option<&str>) -> Result<(), Unavailable>;
}

fn shard_of(key: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    // The remainder is below SHARDS, so it fits in usize.
    (hasher.finish() % SHARDS as u64) as usize
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refilled(self, rate: &Rate, now: Instant) -> f64 {
        let elapsed_ms = now.saturating_duration_since(self.updated).as_secs_f64() * 1000.0;
        (self.tokens + elapsed_ms * rate.tokens_per_ms()).min(f64::from(rate.burst))
    }
}

/// In-process token buckets: this node's own counts.
pub struct LocalBuckets {
    shards: Box<[Mutex<HashMap<String, Bucket>>]>,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl LocalBuckets {
    /// [`TokenBuckets::take`] without the async wrapper; never unavailable.
    pub fn take_now(&self, keys: &[String], rate: &Rate) -> Admission {
        let now = Instant::now();
        // First pass: refill and check each bucket; second: take the tokens. Buckets live in
        // different shards, so two requests may interleave between the passes: locally that
        // can let one request too many through, never refuse one too many.
        let mut levels = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let shard = lock(&self.shards[shard_of(key)]);
            let tokens = shard
                .get(key)
                .map_or(f64::from(rate.burst), |bucket| bucket.refilled(rate, now));
            if tokens < 1.0 {
                return Admission::Limited {
                    bucket: index,
                    retry_after: rate.wait_for_token(tokens),
                };
            }
            levels.push(tokens);
        }
        for (key, tokens) in keys.iter().zip(levels) {
            let mut shard = lock(&self.shards[shard_of(key)]);
            if shard.len() >= MAX_KEYS_PER_SHARD && !shard.contains_key(key) {
                shard.retain(|_, bucket| bucket.refilled(rate, now) < f64::from(rate.burst));
                if shard.len() >= MAX_KEYS_PER_SHARD {
                    shard.clear();
                }
            }
            shard.insert(
                key.clone(),
                Bucket {
                    tokens: tokens - 1.0,
                    updated: now,
                },
            );
        }
        Admission::Allowed
    }
}

#[async_trait::async_trait]
impl TokenBuckets for LocalBuckets {
    async fn take(&self, keys: &[String], rate: &Rate) -> Result<Admission, Unavailable> {
        Ok(self.take_now(keys, rate))
    }
}

#[derive(Clone, Copy, Debug)]
struct Counted {
    attempts: u64,
    ends: Instant,
}

/// In-process attempt counters: this node's own counts.
pub struct LocalAttempts {
    shards: Box<[Mutex<HashMap<String, Counted>>]>,
}

impl Default for LocalAttempts {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl LocalAttempts {
    pub fn count_now(&self, keys: &[String], window: Duration) -> Vec<Window> {
        let now = Instant::now();
        keys.iter()
            .map(|key| {
                let mut shard = lock(&self.shards[shard_of(key)]);
                if shard.len() >= MAX_KEYS_PER_SHARD && !shard.contains_key(key) {
                    shard.retain(|_, counted| counted.ends > now);
                    if shard.len() >= MAX_KEYS_PER_SHARD {
                        shard.clear();
                    }
                }
                let counted = shard.entry(key.clone()).or_insert(Counted {
                    attempts: 0,
                    ends: now + window,
                });
                if counted.ends <= now {
                    *counted = Counted {
                        attempts: 0,
                        ends: now + window,
                    };
                }
                counted.attempts += 1;
                Window {
                    attempts: counted.attempts,
                    remaining: counted.ends - now,
                }
            })
            .collect()
    }

    pub fn forgive_now(&self, clear: &str, decrement: Option<&str>) {
        lock(&self.shards[shard_of(clear)]).remove(clear);
        if let Some(key) = decrement {
            let mut shard = lock(&self.shards[shard_of(key)]);
            if let Some(counted) = shard.get_mut(key) {
                counted.attempts = counted.attempts.saturating_sub(1);
                if counted.attempts == 0 {
                    shard.remove(key);
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl AttemptCounters for LocalAttempts {
    async fn count(&self, keys: &[String], window: Duration) -> Result<Vec<Window>, Unavailable> {
        Ok(self.count_now(keys, window))
    }

    async fn forgive(&self, clear: &str, decrement: Option<&str>) -> Result<(), Unavailable> {
        self.forgive_now(clear, decrement);
        Ok(())
    }
}

/// Seconds for `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

fn too_many(detail: &str, wait: Duration) -> ApiError {
    ApiError::TooManyRequests {
        detail: detail.to_owned(),
        retry_after_secs: retry_after_secs(wait),
    }
}

/// Where a request came from: the peer address, or the last `X-Forwarded-For` entry (the one
/// the proxy in front of the node added) when that is trusted.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|peer| peer.ip())
}

/// The bucket key of a client address. An IPv6 client usually owns a whole /64, so that is
/// the unit; an IPv4-mapped address counts as its IPv4 address.
pub fn client_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let segments = v6.segments();
            let net = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("ip:{net}/64")
        }
        None => "ip:unknown".to_owned(),
    }
}

/// The client address, for handlers (login throttling).
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Ok(Self(client_ip(
            &parts.headers,
            peer,
            state.rate_limiter.trust_forwarded_for(),
        )))
    }
}

/// The edge's rate limiter: shared buckets when configured, this node's own otherwise or
/// while the shared ones are unavailable.
#[derive(Clone)]
pub struct RateLimiter {
    rate: Option<Rate>,
    trust_forwarded_for: bool,
    shared: Option<Arc<dyn TokenBuckets>>,
    local: Arc<LocalBuckets>,
}

impl RateLimiter {
    /// `None` turns limiting off.
    pub fn new(rate: Option<Rate>, trust_forwarded_for: bool) -> Self {
        Self {
            rate,
            trust_forwarded_for,
            shared: None,
            local: Arc::new(LocalBuckets::default()),
        }
    }

    /// No limits (the in-process tests' default).
    pub fn off() -> Self {
        Self::new(None, false)
    }

    pub fn with_shared(mut self, shared: Arc<dyn TokenBuckets>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    pub fn trust_forwarded_for(&self) -> bool {
        self.trust_forwarded_for
    }

    /// Take a token from each of `keys` (shared buckets first, this node's if they fail).
    pub async fn admit(&self, keys: &[String]) -> Admission {
        let Some(rate) = self.rate else {
            return Admission::Allowed;
        };
        if let Some(shared) = &self.shared
            && let Ok(admission) = shared.take(keys, &rate).await
        {
            return admission;
        }
        self.local.take_now(keys, &rate)
    }
}

/// The buckets `request` takes a token from: its client address and, with a valid token,
/// its user; none when requests are not limited or its path never is.
pub fn limit_keys(state: &AppState, request: &Request) -> Vec<String> {
    let limiter = &state.rate_limiter;
    if limiter.rate().is_none() || UNLIMITED_PATHS.contains(&request.uri().path()) {
        return Vec::new();
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let ip = client_ip(request.headers(), peer, limiter.trust_forwarded_for());
    let mut keys = vec![client_key(ip)];
    // Only the signature and expiry are checked here (no revocation round trip): a revoked
    // token still counts against its user, which is what a limit should do anyway.
    let user = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| state.tokens.verify(token.trim()));
    if let Some(claims) = user {
        keys.push(format!("user:{}", claims.sub));
    }
    keys
}

/// Take a token from each of `keys` ([`limit_keys`]): `Err` is the 429 answer of a request
/// over its limit.
pub async fn admit(state: &AppState, keys: &[String]) -> Result<(), Response> {
    if keys.is_empty() {
        return Ok(());
    }
    match state.rate_limiter.admit(keys).await {
        Admission::Allowed => Ok(()),
        Admission::Limited {
            bucket,
            retry_after,
        } => {
            let scope = if bucket == 0 { "client" } else { "user" };
            metrics::counter!("emporium_rate_limited_total", "scope" => scope).increment(1);
            Err(too_many(
                &format!(
                    "too many requests from this {scope}; retry after the delay in Retry-After"
                ),
                retry_after,
            )
            .into_response())
        }
    }
}

/// How many attempts a login may make in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failed logins allowed per e-mail address per window.
    pub per_email: u64,
    /// Failed logins allowed per client address per window, across addresses.
    pub per_client: u64,
    pub window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            per_email: 5,
            per_client: 50,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Longest e-mail text kept in a key; longer input is cut (it cannot be an address anyway).
const MAX_EMAIL_KEY_CHARS: usize = 320;

/// Login throttling: shared counters when configured, this node's own otherwise or while the
/// shared ones are unavailable.
#[derive(Clone)]
pub struct LoginThrottle {
    policy: LoginPolicy,
    shared: Option<Arc<dyn AttemptCounters>>,
    local: Arc<LocalAttempts>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(LoginPolicy::default())
    }
}

impl LoginThrottle {
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            shared: None,
            local: Arc::new(LocalAttempts::default()),
        }
    }

    pub fn with_shared(mut self, shared: Arc<dyn AttemptCounters>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn policy(&self) -> LoginPolicy {
        self.policy
    }

    fn keys(email: &str, ip: Option<IpAddr>) -> (String, Option<String>) {
        let email: String = email
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_EMAIL_KEY_CHARS)
            .collect();
        let client = ip.map(|ip| format!("login:{}", client_key(Some(ip))));
        (format!("login:email:{email}"), client)
    }

    /// Count this attempt (as a failure until [`succeeded`](Self::succeeded) says otherwise);
    /// `429` when the e-mail or the client is over its limit.
    pub async fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let (email_key, client_key) = Self::keys(email, ip);
        let keys: Vec<String> = std::iter::once(email_key).chain(client_key).collect();
        let windows = match &self.shared {
            Some(shared) => match shared.count(&keys, self.policy.window).await {
                Ok(windows) => windows,
                Err(Unavailable) => self.local.count_now(&keys, self.policy.window),
            },
            None => self.local.count_now(&keys, self.policy.window),
        };
        let limits = [
            (self.policy.per_email, "login_email"),
            (self.policy.per_client, "login_client"),
        ];
        for (window, (limit, scope)) in windows.iter().zip(limits) {
            if window.attempts > limit {
                metrics::counter!("emporium_rate_limited_total", "scope" => scope).increment(1);
                return Err(too_many(
                    "too many failed logins; retry after the delay in Retry-After",
                    window.remaining,
                ));
            }
        }
        Ok(())
    }

    /// The attempt succeeded: clear the e-mail's count and take the attempt back from the
    /// client's.
    pub async fn succeeded(&self, email: &str, ip: Option<IpAddr>) {
        let (email_key, client_key) = Self::keys(email, ip);
        if let Some(shared) = &self.shared
            && shared
                .forgive(&email_key, client_key.as_deref())
                .await
                .is_ok()
        {
            return;
        }
        self.local.forgive_now(&email_key, client_key.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, burst: u32) -> Rate {
        Rate {
            requests,
            per: Duration::from_secs(1),
            burst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let buckets = LocalBuckets::default();
        let keys = vec!["ip:1.2.3.4".to_owned()];
        let rate = rate(10, 20);
        for _ in 0..20 {
            assert_eq!(buckets.take_now(&keys, &rate), Admission::Allowed);
        }
        let Admission::Limited {
            bucket,
            retry_after,
        } = buckets.take_now(&keys, &rate)
        else {
            panic!("the 21st request is limited");
        };
        assert_eq!(bucket, 0);
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(buckets.take_now(&keys, &rate), Admission::Allowed);
        assert!(matches!(
            buckets.take_now(&keys, &rate),
            Admission::Limited { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn all_buckets_or_none() {
        let buckets = LocalBuckets::default();
        let rate = rate(1, 2);
        let user = vec!["user:u".to_owned()];
        let both = vec!["ip:a".to_owned(), "user:u".to_owned()];
        assert_eq!(buckets.take_now(&user, &rate), Admission::Allowed);
        assert_eq!(buckets.take_now(&user, &rate), Admission::Allowed);
        assert!(matches!(
            buckets.take_now(&both, &rate),
            Admission::Limited { bucket: 1, .. }
        ));
        // The client's bucket gave nothing for the refused request.
        let ip = vec!["ip:a".to_owned()];
        assert_eq!(buckets.take_now(&ip, &rate), Admission::Allowed);
        assert_eq!(buckets.take_now(&ip, &rate), Admission::Allowed);
        assert!(matches!(
            buckets.take_now(&ip, &rate),
            Admission::Limited { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn login_attempts_lock_until_the_window_ends_and_success_clears() {
        let throttle = LoginThrottle::new(LoginPolicy {
            per_email: 2,
            per_client: 100,
            window: Duration::from_secs(60),
        });
        let ip = Some("10.0.0.1".parse().unwrap());
        assert!(throttle.check("A@x.io", ip).await.is_ok());
        assert!(throttle.check(" a@X.io ", ip).await.is_ok());
        let Err(ApiError::TooManyRequests {
            retry_after_secs, ..
        }) = throttle.check("a@x.io", ip).await
        else {
            panic!("the third attempt is throttled");
        };
        assert_eq!(retry_after_secs, 60);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(throttle.check("a@x.io", ip).await.is_ok());
        throttle.succeeded("a@x.io", ip).await;
        assert!(throttle.check("a@x.io", ip).await.is_ok());
        assert!(throttle.check("a@x.io", ip).await.is_ok());
    }

    #[test]
    fn client_addresses() {
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        assert_eq!(
            client_ip(&headers, Some(peer), false),
            Some(peer.ip()),
            "not trusted: the peer"
        );
        assert_eq!(
            client_ip(&headers, Some(peer), true),
            Some("198.51.100.4".parse().unwrap()),
            "trusted: the entry the proxy added"
        );
        assert_eq!(
            client_key(Some("::ffff:1.2.3.4".parse().unwrap())),
            "ip:1.2.3.4"
        );
        assert_eq!(
            client_key(Some("2001:db8:1:2:3:4:5:6".parse().unwrap())),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
