//! The contracts of the edge's shared-state ports (`TokenBuckets`, `AttemptCounters`,
//! `RevocationList`, `PageStore`), each run against the in-process twin (one instance stands
//! for both nodes) and against the Redis adapter on a real Redis (`EMPORIUM_TEST_REDIS`, e.g.
//! `redis://127.0.0.1:6379`; two connections stand for two nodes); then the Redis connection's
//! behaviour when the server is absent, cut or hung. Without the variable a Redis test prints
//! `skipped: …`, or fails when `EMPORIUM_REQUIRE_SERVICES=1`.
//!
//! Every Redis test uses its own key prefix and deletes its keys at the end.

use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_http_edge::auth::{LocalRevocations, RevocationList};
use emporium_http_edge::cache::{LocalPages, Lookup, PageStore};
use emporium_http_edge::limits::{
    Admission, AttemptCounters, LocalAttempts, LocalBuckets, Rate, TokenBuckets, Unavailable,
};
use emporium_redis::{
    Redis, RedisAttempts, RedisBuckets, RedisOptions, RedisPages, RedisRevocations,
};
use emporium_runtime::store::conformance::service_unavailable;
use emporium_testkit::TcpProxy;

fn redis_url() -> Option<String> {
    match std::env::var("EMPORIUM_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => service_unavailable("EMPORIUM_TEST_REDIS is not set (scripts/test.sh sets it)"),
    }
}

fn unique_prefix(test: &str) -> String {
    format!("emporium-test:{test}:{}", uuid::Uuid::new_v4().simple())
}

async fn connect(url: &str, prefix: &str) -> Redis {
    let redis = Redis::connect(url, prefix, RedisOptions::default())
        .await
        .expect("a usable URL");
    assert!(redis.is_connected(), "redis at {url} answers");
    redis
}

/// Delete every key under `prefix` with redis-cli-free commands: SCAN + DEL via a script.
async fn cleanup(url: &str, prefix: &str) {
    use fred::prelude::{ClientLike, Config, LuaInterface};
    let client = fred::clients::Client::new(Config::from_url(url).unwrap(), None, None, None);
    client.init().await.expect("connect for cleanup");
    let _: i64 = client
        .eval(
            "local n = 0 \
             local cursor = '0' \
             repeat \
               local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) \
               cursor = reply[1] \
               for _, key in ipairs(reply[2]) do redis.call('DEL', key) n = n + 1 end \
             until cursor == '0' \
             return n",
            Vec::<String>::new(),
            vec![format!("{prefix}:*")],
        )
        .await
        .expect("cleanup script");
    let _ = client.quit().await;
}

fn rate(requests: u32, burst: u32) -> Rate {
    Rate {
        requests,
        per: Duration::from_secs(1),
        burst,
    }
}

/// The contract of every port, run against the in-process twin (one instance stands for
/// both "nodes") and against Redis (two connections).
macro_rules! contract {
    ($contract:ident, $local:ident, $redis:ident, $twin:ty, $adapter:ident) => {
        #[tokio::test]
        async fn $local() {
            let twin = <$twin>::default();
            $contract(&twin, &twin).await;
        }

        #[tokio::test]
        async fn $redis() {
            let Some(url) = redis_url() else { return };
            let prefix = unique_prefix(stringify!($contract));
            let a = $adapter::new(connect(&url, &prefix).await);
            let b = $adapter::new(connect(&url, &prefix).await);
            $contract(&a, &b).await;
            cleanup(&url, &prefix).await;
        }
    };
}

contract!(
    a_burst_spent_on_two_nodes_is_one_burst,
    local_burst,
    redis_burst,
    LocalBuckets,
    RedisBuckets
);
contract!(
    buckets_refill_and_take_all_or_nothing,
    local_refill,
    redis_refill,
    LocalBuckets,
    RedisBuckets
);
contract!(
    login_windows_are_shared_and_forgiven,
    local_attempts,
    redis_attempts,
    LocalAttempts,
    RedisAttempts
);
contract!(
    a_revocation_on_one_node_holds_on_the_other,
    local_revocations,
    redis_revocations,
    LocalRevocations,
    RedisRevocations
);
contract!(
    pages_live_in_a_generation,
    local_pages,
    redis_pages,
    LocalPages,
    RedisPages
);

async fn a_burst_spent_on_two_nodes_is_one_burst(a: &dyn TokenBuckets, b: &dyn TokenBuckets) {
    // Slow refill, so the test's own duration adds no token.
    let rate = Rate {
        requests: 1,
        per: Duration::from_secs(60),
        burst: 10,
    };
    let keys = vec!["ip:192.0.2.1".to_owned()];
    for node in [a, b, a, b, a, b, a, b, a, b] {
        assert_eq!(node.take(&keys, &rate).await, Ok(Admission::Allowed));
    }
    for node in [a, b] {
        let Ok(Admission::Limited {
            bucket,
            retry_after,
        }) = node.take(&keys, &rate).await
        else {
            panic!("the 11th request is limited on either node");
        };
        assert_eq!(bucket, 0);
        assert!(
            retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60),
            "{retry_after:?}"
        );
    }
}

async fn buckets_refill_and_take_all_or_nothing(buckets: &dyn TokenBuckets, _: &dyn TokenBuckets) {
    let rate = rate(20, 2); // a token every 50 ms
    let user = vec!["user:u-1".to_owned()];
    let both = vec!["ip:192.0.2.2".to_owned(), "user:u-1".to_owned()];
    assert_eq!(buckets.take(&user, &rate).await, Ok(Admission::Allowed));
    assert_eq!(buckets.take(&user, &rate).await, Ok(Admission::Allowed));
    let Ok(Admission::Limited {
        bucket,
        retry_after,
    }) = buckets.take(&both, &rate).await
    else {
        panic!("the user's bucket is empty");
    };
    assert_eq!(bucket, 1, "the user's bucket, second of the keys");
    assert!(retry_after <= Duration::from_millis(50), "{retry_after:?}");
    // The address's bucket lost nothing to the refused request: its whole burst is there.
    let ip = vec!["ip:192.0.2.2".to_owned()];
    assert_eq!(buckets.take(&ip, &rate).await, Ok(Admission::Allowed));
    assert_eq!(buckets.take(&ip, &rate).await, Ok(Admission::Allowed));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(buckets.take(&both, &rate).await, Ok(Admission::Allowed));
}

async fn login_windows_are_shared_and_forgiven(a: &dyn AttemptCounters, b: &dyn AttemptCounters) {
    let window = Duration::from_secs(900);
    let keys = vec![
        "login:email:a@example.com".to_owned(),
        "login:ip:192.0.2.3".to_owned(),
    ];
    let first = a.count(&keys, window).await.expect("counted");
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].attempts, first[1].attempts), (1, 1));
    assert!(first[0].remaining > Duration::from_secs(890));
    let second = b.count(&keys, window).await.expect("counted");
    assert_eq!((second[0].attempts, second[1].attempts), (2, 2));
    b.forgive(&keys[0], Some(&keys[1])).await.expect("forgiven");
    let third = a.count(&keys, window).await.expect("counted");
    assert_eq!((third[0].attempts, third[1].attempts), (1, 2));
}

async fn a_revocation_on_one_node_holds_on_the_other(
    a: &dyn RevocationList,
    b: &dyn RevocationList,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(!b.is_revoked("jti-1").await);
    a.revoke("jti-1", now + 60).await.expect("revoked");
    assert!(b.is_revoked("jti-1").await);
    assert!(!b.is_revoked("jti-2").await);
}

async fn pages_live_in_a_generation(a: &dyn PageStore, b: &dyn PageStore) {
    let ttl = Duration::from_secs(30);
    let empty = a.lookup("catalog", "q=mug").await.expect("looked up");
    assert_eq!(
        empty,
        Lookup {
            generation: 0,
            body: None
        }
    );
    a.store("catalog", 0, "q=mug", Bytes::from_static(b"{\"v\":1}"), ttl)
        .await
        .expect("stored");
    let hit = b.lookup("catalog", "q=mug").await.expect("looked up");
    assert_eq!(
        hit.body.as_deref(),
        Some(&b"{\"v\":1}"[..]),
        "B reads A's page"
    );
    assert_eq!(b.bump("catalog").await, Ok(1));
    let after = a.lookup("catalog", "q=mug").await.expect("looked up");
    assert_eq!(
        after,
        Lookup {
            generation: 1,
            body: None
        },
        "A's page is gone for everyone"
    );
    a.store(
        "catalog",
        1,
        "q=mug",
        Bytes::new(),
        Duration::from_millis(50),
    )
    .await
    .expect("stored");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        a.lookup("catalog", "q=mug").await.expect("looked up").body,
        None
    );
}

#[tokio::test]
async fn nothing_waits_on_a_redis_that_is_not_there() {
    // Port 1 on loopback: connection refused at once.
    let started = Instant::now();
    let options = RedisOptions {
        connect_wait: Duration::from_millis(300),
        ..RedisOptions::default()
    };
    let redis = Redis::connect("redis://127.0.0.1:1", "emporium-test:down", options)
        .await
        .expect("a usable URL is enough");
    assert!(!redis.is_connected());
    let buckets = RedisBuckets::new(redis.clone());
    let revocations = RedisRevocations::new(redis.clone());
    let pages = RedisPages::new(redis);
    let keys = vec!["ip:192.0.2.9".to_owned()];
    let calls = Instant::now();
    for _ in 0..100 {
        assert_eq!(buckets.take(&keys, &rate(1, 1)).await, Err(Unavailable));
        assert!(!revocations.is_revoked("jti").await);
        assert_eq!(pages.lookup("catalog", "").await, Err(Unavailable));
    }
    // One timeout would be 200 ms: 300 calls in less waited on nothing.
    assert!(
        calls.elapsed() < Duration::from_millis(200),
        "300 calls took {:?}",
        calls.elapsed()
    );
    let tls = Redis::connect("rediss://127.0.0.1:1", "x", RedisOptions::default()).await;
    assert!(tls.is_err(), "no TLS in this build: refused up front");
    // This node's own revocations hold while Redis is down.
    revocations.revoke("jti-local", u64::MAX / 2).await.unwrap();
    assert!(revocations.is_revoked("jti-local").await);
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn upstream(url: &str) -> std::net::SocketAddr {
    let host_port = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap();
    host_port
        .parse()
        .expect("EMPORIUM_TEST_REDIS names an IP:port")
}

/// Call `take` until `want` holds for `count` calls in a row or `limit` passes; returns the
/// slowest call.
async fn calls_until(
    buckets: &RedisBuckets,
    want: Result<Admission, Unavailable>,
    count: usize,
    limit: Duration,
) -> Option<Duration> {
    let keys = vec!["ip:192.0.2.4".to_owned()];
    let deadline = Instant::now() + limit;
    let (mut in_a_row, mut slowest) = (0, Duration::ZERO);
    while Instant::now() < deadline {
        let call = Instant::now();
        let got = buckets.take(&keys, &rate(1000, 1000)).await;
        slowest = slowest.max(call.elapsed());
        in_a_row = if got == want { in_a_row + 1 } else { 0 };
        if in_a_row == count {
            return Some(slowest);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn a_cut_connection_falls_back_fast_and_recovers_by_itself() {
    let Some(url) = redis_url() else { return };
    let proxy = TcpProxy::start(upstream(&url)).await;
    let prefix = unique_prefix("cut");
    let redis = connect(&format!("redis://{}", proxy.addr), &prefix).await;
    let buckets = RedisBuckets::new(redis);
    let allowed = calls_until(&buckets, Ok(Admission::Allowed), 1, Duration::from_secs(1)).await;
    assert!(allowed.is_some(), "served through the proxy");

    proxy.cut();
    // A call caught in flight waits for its timeout at most; then every call answers at once.
    let slowest = calls_until(&buckets, Err(Unavailable), 50, Duration::from_secs(5)).await;
    let slowest = slowest.expect("reported unavailable once cut");
    assert!(
        // Not the reconnect delays (seconds): the 200 ms timeout at most, plus scheduling.
        slowest <= Duration::from_secs(1),
        "slowest call {slowest:?}"
    );

    proxy.restore().await;
    let back = calls_until(&buckets, Ok(Admission::Allowed), 3, Duration::from_secs(15)).await;
    assert!(
        back.is_some(),
        "the client reconnected by itself within 15 s"
    );
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn a_hung_redis_costs_one_timeout_per_pause_not_one_per_request() {
    let Some(url) = redis_url() else { return };
    let proxy = TcpProxy::start(upstream(&url)).await;
    let prefix = unique_prefix("hung");
    let redis = connect(&format!("redis://{}", proxy.addr), &prefix).await;
    let buckets = RedisBuckets::new(redis);
    assert!(
        calls_until(&buckets, Ok(Admission::Allowed), 1, Duration::from_secs(1))
            .await
            .is_some()
    );

    // Connected, but nothing comes back for 3 s: a paused or overloaded server.
    proxy.delay(3_000);
    let started = Instant::now();
    let mut slow_calls = 0;
    for _ in 0..50 {
        let call = Instant::now();
        let got = buckets
            .take(&["ip:192.0.2.5".to_owned()], &rate(1000, 1000))
            .await;
        assert_eq!(got, Err(Unavailable));
        if call.elapsed() >= Duration::from_millis(150) {
            slow_calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 50 calls over ~0.7 s: the first waits for the 200 ms timeout, the rest skip Redis for
    // the 1 s pause (one more timeout if a slow machine outlasts the pause).
    assert!(
        slow_calls <= 3,
        "{slow_calls} slow calls in {:?}",
        started.elapsed()
    );

    proxy.restore().await;
    let back = calls_until(&buckets, Ok(Admission::Allowed), 3, Duration::from_secs(20)).await;
    assert!(back.is_some(), "served again once the server answers");
    cleanup(&url, &prefix).await;
}
