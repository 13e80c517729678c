//! Redis shared by the nodes of one shop (`EMPORIUM_REDIS_URL`): rate limits, login
//! throttling, logout and the catalog read cache hold across two real node processes, and a
//! node whose Redis is gone keeps answering from its own in-process twins.
//!
//! The Redis is `EMPORIUM_TEST_REDIS` (scripts/test.sh: `redis://127.0.0.1:6379`); without it
//! each test prints `skipped: …`, or fails when `EMPORIUM_REQUIRE_SERVICES=1`. Every test
//! uses its own key prefix and deletes its keys at the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use emporium_http_edge::auth::TokenKeys;
use emporium_runtime::store::conformance::service_unavailable;
use emporium_testkit::TcpProxy;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster_kit::Cluster;
use crate::stores::TestStore;
use crate::support::{Answer, Api, NodeProcess, NodeSpec, metric_sum, wait_until};

const JWT_SECRET: &str = "redis-blackbox-secret-0123456789abcdef";
const ADMIN_EMAIL: &str = "admin@redis.test";
const ADMIN_PASSWORD: &str = "redis-admin-password-1";

fn redis_url() -> Option<String> {
    match std::env::var("EMPORIUM_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => service_unavailable("EMPORIUM_TEST_REDIS is not set (scripts/test.sh sets it)"),
    }
}

fn redis_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|host| host.rsplit('@').next())
        .and_then(|host| host.parse().ok())
        .expect("EMPORIUM_TEST_REDIS is redis://IP:PORT")
}

/// A key prefix of this test alone; [`Keys::delete`] removes its keys.
struct Keys {
    prefix: String,
    redis: SocketAddr,
}

impl Keys {
    fn new(test: &str, url: &str) -> Self {
        Self {
            prefix: format!("emporium-test:{test}:{}", uuid::Uuid::new_v4().simple()),
            redis: redis_addr(url),
        }
    }

    /// How many keys the prefix holds, after deleting them when `delete`.
    async fn scan(&self, delete: bool) -> i64 {
        let script = "local n = 0 local cursor = '0' repeat \
             local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) \
             cursor = reply[1] \
             for _, key in ipairs(reply[2]) do \
               n = n + 1 if ARGV[2] == '1' then redis.call('DEL', key) end \
             end until cursor == '0' return n";
        let pattern = format!("{}:*", self.prefix);
        let flag = if delete { "1" } else { "0" };
        let command = ["EVAL", script, "0", &pattern, flag];
        // RESP by hand: one array of bulk strings, one integer reply.
        let mut request = format!("*{}\r\n", command.len());
        for part in command {
            request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        let mut stream = tokio::net::TcpStream::connect(self.redis)
            .await
            .expect("connect to redis");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n") {
            let mut chunk = [0u8; 64];
            let read = stream.read(&mut chunk).await.expect("read reply");
            assert!(read > 0, "redis closed the connection");
            reply.extend_from_slice(&chunk[..read]);
        }
        let reply = String::from_utf8_lossy(&reply);
        reply
            .trim()
            .strip_prefix(':')
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {reply}"))
    }

    /// Delete the test's keys. The nodes still run: a node's search projection may start a
    /// new catalog generation (one key) a moment after the test's last product write, when
    /// its `ProductChanged` comes back; so delete until the prefix stays empty.
    async fn delete(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            self.scan(true).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let left = self.scan(false).await;
            if left == 0 || tokio::time::Instant::now() >= deadline {
                assert_eq!(left, 0, "keys of {} left", self.prefix);
                return;
            }
        }
    }
}

/// A node on its own embedded store, with the test's Redis settings.
fn spec(dir: &std::path::Path, redis_url: &str, prefix: &str) -> NodeSpec {
    NodeSpec::embedded(dir)
        .env("EMPORIUM_REDIS_URL", redis_url)
        .env("EMPORIUM_REDIS_PREFIX", prefix)
        .env("EMPORIUM_JWT_SECRET", JWT_SECRET)
        .env("EMPORIUM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
}

/// Two nodes (own stores) sharing one Redis prefix and one token secret.
async fn two_nodes(
    dirs: &[tempfile::TempDir; 2],
    url: &str,
    keys: &Keys,
    extra: &[(&str, &str)],
) -> (NodeProcess, NodeProcess) {
    let mut specs = dirs.iter().map(|dir| {
        extra
            .iter()
            .fold(spec(dir.path(), url, &keys.prefix), |spec, (k, v)| {
                spec.env(k, v)
            })
    });
    let a = NodeProcess::start(specs.next().unwrap()).await;
    let b = NodeProcess::start(specs.next().unwrap()).await;
    (a, b)
}

fn dirs() -> [tempfile::TempDir; 2] {
    [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()]
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token both nodes accept (they share the secret).
fn token(user: &str, roles: &[&str]) -> String {
    let keys = TokenKeys::new(JWT_SECRET.as_bytes(), Duration::from_secs(3600));
    let roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
    keys.issue(user, &format!("{user}@redis.test"), &roles, now_secs())
        .expect("sign")
        .0
}

async fn get_with(api: &Api, path: &str, bearer: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(format!("{}{path}", api.base));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    api.send(request).await
}

async fn upsert_mug(api: &Api, bearer: &str, name: &str) -> Answer {
    let body = json!({
        "name": name,
        "description": "A 350 ml stoneware mug, dishwasher safe.",
        "price_cents": 1299,
        "currency": "EUR",
        "category": "kitchen",
    });
    api.send(
        reqwest::Client::new()
            .put(format!("{}/v1/admin/products/SKU-MUG", api.base))
            .bearer_auth(bearer)
            .json(&body),
    )
    .await
}

fn cache_tag(answer: &Answer) -> &str {
    answer
        .headers
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
}

fn names(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn retry_after(answer: &Answer) -> u64 {
    answer
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_spent_on_two_nodes_is_one_burst() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("burst", &url);
    let dirs = dirs();
    // 20 at once, then one a minute: the test's own duration refills nothing.
    let limits = [
        ("EMPORIUM_RATE_LIMIT", "1/m"),
        ("EMPORIUM_RATE_BURST", "20"),
    ];
    let (a, b) = two_nodes(&dirs, &url, &keys, &limits).await;
    let (a, b) = (Api::new(&a), Api::new(&b));
    for round in 0..10 {
        for (name, node) in [("A", &a), ("B", &b)] {
            let answer = node.get("/v1/products/SKU-MUG").await;
            assert_eq!(answer.status, 200, "request {round} on {name}: {answer:?}");
        }
    }
    let limited = b.get("/v1/products/SKU-MUG").await;
    limited.expect_problem(429);
    let wait = retry_after(&limited);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    a.get("/v1/products/SKU-MUG").await.expect_problem(429);
    // Probes and scrapes are never limited.
    assert_eq!(b.get("/healthz").await.status, 200);
    assert_eq!(b.get("/readyz").await.status, 200);
    let metrics = b.metrics().await;
    assert!(metric_sum(&metrics, "emporium_rate_limited_total", "scope=\"client\"") >= 1.0);
    // A signed-in user has a bucket of their own too, shared as well.
    let user = token("u-burst", &["customer"]);
    let other = Keys::new("burst-user", &url);
    let more_dirs = self::dirs();
    let (c, d) = two_nodes(&more_dirs, &url, &other, &limits).await;
    let (c, d) = (Api::new(&c), Api::new(&d));
    for node in [&c, &d].repeat(10) {
        assert_eq!(
            get_with(node, "/v1/products", Some(&user)).await.status,
            200
        );
    }
    let limited = get_with(&d, "/v1/products", Some(&user)).await;
    limited.expect_problem(429);
    keys.delete().await;
    other.delete().await;
}

/// Wait (up to 5 s) until a page `api` computes itself (a fresh cache key, so a miss) lists
/// `name`: its own search index has the change.
async fn index_shows(api: &Api, name: &str) {
    for probe in 0..50 {
        let page = api.get(&format!("/v1/products?q=mug&probe={probe}")).await;
        assert_eq!(page.status, 200, "{page:?}");
        if cache_tag(&page) == "miss" && names(&page).contains(&name.to_owned()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not reach the index of {} within 5 s", api.base);
}

/// Within 5 s, the nodes agree: each serves the mug search from the shared cache, twice in a
/// row, with one body showing what `expected` wants. That body.
async fn settled_page(nodes: [&Api; 2], expected: impl Fn(&Answer) -> bool) -> Value {
    for _ in 0..50 {
        let mut pages = Vec::new();
        for node in [nodes, nodes].concat() {
            pages.push(node.get("/v1/products?q=mug").await);
        }
        let agreed = pages.iter().all(|page| {
            page.status == 200
                && cache_tag(page) == "hit"
                && expected(page)
                && page.body == pages[0].body
        });
        if agreed {
            return pages[0].body.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the nodes did not settle on one cached page within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_change_on_one_node_drops_every_node_s_cached_listing() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("cache", &url);
    // Nodes that share cached pages must show one catalog (the cache's premise): the members
    // of one cluster, whose search indexes follow every product change through the events.
    let env = [
        ("EMPORIUM_REDIS_URL", url.as_str()),
        ("EMPORIUM_REDIS_PREFIX", keys.prefix.as_str()),
    ];
    let Some(cluster) = Cluster::start_with_env(TestStore::Postgres, 2, &env).await else {
        return;
    };
    let (a, b) = (cluster.api(0), cluster.api(1));
    let admin = cluster.admin_token().to_owned();
    let shows = |name: &'static str| move |page: &Answer| names(page).contains(&name.to_owned());
    let made = upsert_mug(&a, &admin, "Ceramic Mug").await;
    assert_eq!(made.status, 201, "{made:?}");

    let first = b.get("/v1/products?q=mug").await;
    assert_eq!(
        (first.status, cache_tag(&first)),
        (200, "miss"),
        "{first:?}"
    );
    // A node's search projection starts a new generation once a product change reaches its
    // index. Until every node's index has it, a node may compute (and share) a page from
    // before the change; so the nodes settle on one page a moment after a write.
    let before = settled_page([&a, &b], shows("Ceramic Mug")).await;

    let changed = upsert_mug(&a, &admin, "Redis Mug").await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let after = a.get("/v1/products?q=mug").await;
    assert_eq!(
        cache_tag(&after),
        "miss",
        "A's write started a new generation before it was acknowledged: {after:?}"
    );
    for node in [&a, &b] {
        index_shows(node, "Redis Mug").await;
    }
    let settled = settled_page([&b, &a], shows("Redis Mug")).await;
    assert_ne!(settled, before);
    // With both indexes up to date, a page one node computes is the other's hit (tried on
    // fresh keys: the last projection may start its generation a moment after indexing).
    let mut shared = false;
    for query in ["Mug", "MUG", "mUg", "muG", "MUg", "mUG"] {
        let path = format!("/v1/products?q={query}");
        let computed = b.get(&path).await;
        let served = a.get(&path).await;
        assert!(
            shows("Redis Mug")(&served),
            "{served:?} after B's {computed:?}"
        );
        if (cache_tag(&computed), cache_tag(&served)) == ("miss", "hit") {
            shared = true;
            break;
        }
    }
    assert!(shared, "A never served a page B had computed");
    let metrics = b.metrics().await;
    assert!(metric_sum(&metrics, "emporium_cache_requests_total", "result=\"hit\"") >= 2.0);
    keys.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_is_refused_on_the_other() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("logout", &url);
    let dirs = dirs();
    let (a, b) = two_nodes(&dirs, &url, &keys, &[]).await;
    let (a, b) = (Api::new(&a), Api::new(&b));
    let admin = token("u-admin", &["admin"]);
    assert_eq!(upsert_mug(&b, &admin, "Ceramic Mug").await.status, 200);

    let logout = a.send(
        reqwest::Client::new()
            .post(format!("{}/v1/auth/logout", a.base))
            .bearer_auth(&admin),
    );
    let logout = logout.await;
    assert_eq!(logout.status, 204, "{logout:?}");
    for node in [&b, &a] {
        let refused = upsert_mug(node, &admin, "Ceramic Mug").await;
        let detail = refused.expect_problem(401);
        assert!(detail.contains("revoked"), "{detail}");
    }
    // Another token of the same user still works.
    let again = token("u-admin", &["admin"]);
    assert_eq!(upsert_mug(&b, &again, "Ceramic Mug").await.status, 200);
    keys.delete().await;
}

async fn login(api: &Api, password: &str) -> Answer {
    api.post(
        "/v1/auth/login",
        &json!({"email": ADMIN_EMAIL, "password": password}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_address_on_every_node() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("login", &url);
    let dirs = dirs();
    let (a, b) = two_nodes(&dirs, &url, &keys, &[]).await;
    let (a, b) = (Api::new(&a), Api::new(&b));
    assert_eq!(
        login(&b, ADMIN_PASSWORD).await.status,
        200,
        "the account works"
    );
    for node in [&a, &b, &a, &b, &a] {
        login(node, "wrong-password").await.expect_problem(401);
    }
    let sixth = login(&b, "wrong-password").await;
    sixth.expect_problem(429);
    let wait = retry_after(&sixth);
    assert!((800..=900).contains(&wait), "the 15 min window: {wait}");
    let right = login(&a, ADMIN_PASSWORD).await;
    right.expect_problem(429);
    // The e-mail is normalized: another spelling is the same address.
    let mut shouted = json!({"email": ADMIN_EMAIL.to_uppercase(), "password": ADMIN_PASSWORD});
    shouted["email"] = Value::String(format!("  {}  ", ADMIN_EMAIL.to_uppercase()));
    b.post("/v1/auth/login", &shouted).await.expect_problem(429);
    keys.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_resets_the_count() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("login-reset", &url);
    let dirs = dirs();
    let (a, b) = two_nodes(&dirs, &url, &keys, &[]).await;
    let (a, b) = (Api::new(&a), Api::new(&b));
    for node in [&a, &b, &a, &b] {
        login(node, "wrong-password").await.expect_problem(401);
    }
    assert_eq!(login(&a, ADMIN_PASSWORD).await.status, 200);
    for node in [&b, &a, &b, &a, &b] {
        login(node, "wrong-password").await.expect_problem(401);
    }
    login(&a, "wrong-password").await.expect_problem(429);
    keys.delete().await;
}

/// A request this slow waited on Redis (the command timeout is 200 ms); a node answers a
/// cached or small page in about a millisecond.
const WAITED: Duration = Duration::from_millis(200);

/// Send `count` GETs of `path`; the answers, and how many took [`WAITED`] or longer.
async fn timed(api: &Api, path: &str, count: usize) -> (Vec<Answer>, usize) {
    let mut answers = Vec::with_capacity(count);
    let mut slow = 0;
    for _ in 0..count {
        let started = Instant::now();
        answers.push(api.get(path).await);
        if started.elapsed() >= WAITED {
            slow += 1;
        }
    }
    (answers, slow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_node_limits_throttles_and_revokes_on_its_own() {
    // Port 1: nothing listens, connects are refused. No Redis needed for this test.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        spec(dir.path(), "redis://127.0.0.1:1", "emporium-test:down")
            .env("EMPORIUM_RATE_LIMIT", "1/m")
            .env("EMPORIUM_RATE_BURST", "30"),
    )
    .await;
    let api = Api::new(&node);
    let (answers, slow) = timed(&api, "/v1/products?q=mug", 30).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(cache_tag(answer), "bypass", "the cache is bypassed");
    }
    // Nothing waits on a refused connection; a stall of the machine may slow one request.
    assert!(slow <= 1, "{slow} of 30 requests took {WAITED:?} or more");
    // Limited per node: the local bucket is spent.
    let limited = api.get("/v1/products?q=mug").await;
    limited.expect_problem(429);
    assert!(retry_after(&limited) >= 1);
    assert_eq!(api.get("/healthz").await.status, 200);
    let metrics = api.metrics().await;
    assert!(metric_sum(&metrics, "emporium_redis_errors_total", "op=\"rate_limit\"") >= 30.0);
    assert!(
        metric_sum(
            &metrics,
            "emporium_cache_requests_total",
            "result=\"bypass\""
        ) >= 30.0
    );
    assert_eq!(
        metric_sum(&metrics, "emporium_http_requests_total", "status=\"5"),
        0.0,
        "no 5xx"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_logins_are_throttled_and_logouts_hold_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(spec(
        dir.path(),
        "redis://127.0.0.1:1",
        "emporium-test:down",
    ))
    .await;
    let api = Api::new(&node);
    for _ in 0..5 {
        login(&api, "wrong-password").await.expect_problem(401);
    }
    login(&api, ADMIN_PASSWORD).await.expect_problem(429);
    let admin = token("u-admin", &["admin"]);
    assert_eq!(upsert_mug(&api, &admin, "Ceramic Mug").await.status, 200);
    let logout = api
        .send(
            reqwest::Client::new()
                .post(format!("{}/v1/auth/logout", api.base))
                .bearer_auth(&admin),
        )
        .await;
    assert_eq!(logout.status, 204, "{logout:?}");
    upsert_mug(&api, &admin, "Ceramic Mug")
        .await
        .expect_problem(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rides_out_a_redis_outage_and_shares_again_after_it() {
    let Some(url) = redis_url() else { return };
    let keys = Keys::new("outage", &url);
    let proxy = TcpProxy::start(redis_addr(&url)).await;
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(spec(
        dir.path(),
        &format!("redis://{}", proxy.addr),
        &keys.prefix,
    ))
    .await;
    let api = Api::new(&node);
    let warm = api.get("/v1/products?q=mug").await;
    assert_eq!((warm.status, cache_tag(&warm)), (200, "miss"));

    proxy.cut();
    let (answers, slow) = timed(&api, "/v1/products?q=mug", 40).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(
        cache_tag(answers.last().unwrap()),
        "bypass",
        "the cache is bypassed while Redis is gone"
    );
    // A request caught with a command in flight waits out the 200 ms timeout; then Redis is
    // left alone, and the rest answer at once.
    assert!(slow <= 3, "{slow} of 40 requests took {WAITED:?} or more");

    proxy.restore().await;
    let shared_again = wait_until(Duration::from_secs(20), || async {
        cache_tag(&api.get("/v1/products?q=mug").await) == "hit"
    })
    .await;
    assert!(shared_again, "the node uses Redis again by itself");
    keys.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_limit_settings_stop_the_node_naming_the_field() {
    for (key, value) in [
        ("EMPORIUM_RATE_LIMIT", "fast"),
        ("EMPORIUM_RATE_BURST", "0"),
        ("EMPORIUM_REDIS_PREFIX", "has space"),
        ("EMPORIUM_TRUST_FORWARDED_FOR", "maybe"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
            .env("EMPORIUM_DATA_DIR", dir.path())
            .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
            .env(key, value)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("run emporium");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{key}={value} must stop the node");
        assert!(stderr.contains(key), "{key} named in: {stderr}");
    }
}
