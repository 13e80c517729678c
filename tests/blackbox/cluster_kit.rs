//! The cluster test kit: several real `emporium` nodes sharing one fresh store, a load client
//! that spreads requests over them like a load balancer, and the final check every fault test
//! ends with ("the carts hold exactly the acknowledged writes").
//!
//! - [`Cluster`]: members on their own `127.0.0.k` addresses (or wherever a [`Placement`]
//!   says, e.g. inside a network namespace), started with the others as seeds, and waited for
//!   through `GET /v1/admin/cluster` until every node agrees that all are up and all 1024
//!   shards are owned.
//! - [`Balancer`]: sends each request to the next node in rotation. A connection refused
//!   before anything was sent moves on to the next node (as a load balancer with health
//!   checks would); once a request was sent, whatever happens is its outcome.
//! - [`Load`]: workers that each own some carts and add one distinct SKU per write (quantity
//!   1), optionally reading the cart back after each write. Bounded by count (one write per
//!   SKU per cart, [`MAX_ROUNDS`]) and by time.
//! - [`Cluster::assert_carts_hold_exactly_the_acknowledged_writes`]: reads every cart through
//!   every given node: acknowledged lines present once, refused ones absent.
//!
//! Cluster tests run one at a time ([`CLUSTER_SLOT`]): failure detection is timing-based (a
//! node is suspect after 2 s without a heartbeat), and several clusters with their loads on a
//! small machine would starve each other's heartbeats and measure the machine, not the node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use emporium_testkit::TcpProxy;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checkout::Shop;
use crate::event_kit::TestStream;
use crate::stores::{Provisioned, TestStore};
use crate::support::{Answer, Api, NodeProcess, NodeSpec, metric_sum, wait_until};

/// Shards of the placement function (fixed by the runtime).
pub const SHARD_COUNT: u64 = 1024;
pub const ADMIN_EMAIL: &str = "admin@cluster.test";
pub const ADMIN_PASSWORD: &str = "admin-password-cluster";
/// The same signing key on every node, so a token from one is accepted by all.
pub(crate) const JWT_SECRET: &str = "cluster-tests-jwt-secret-0123456789abcdef";
pub(crate) const CLUSTER_SECRET: &str = "cluster-tests-shared-secret-1";
/// Longer than the node's request deadline (`EMPORIUM_REQUEST_TIMEOUT`, 10 s by default): a
/// request the node gives up on is answered by the node, not cut by the client.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// A node that does not accept a connection within this is treated as down by the balancer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// From start to every node agreeing the cluster is complete.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Products `SKU-CL-00`… made at start; a cart holds at most 50 lines.
pub const PRODUCTS: usize = 46;
/// Rounds a load worker runs at most, whatever its time limit.
pub const MAX_ROUNDS: usize = 20_000;

/// One cluster test at a time in this process (see the module documentation).
static CLUSTER_SLOT: Semaphore = Semaphore::const_new(1);

/// The SKU of product `index` (made by [`Cluster::create_products`]).
pub fn sku(index: usize) -> String {
    format!("SKU-CL-{index:02}")
}

/// A fresh `127.0.0.k` (k in 11..=250), so that clusters never share an address.
pub fn next_loopback_host() -> IpAddr {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let host = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11 + host % 240))
}

/// A port nothing listens on right now at `ip` (the OS picks it; the listener is dropped).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|error| panic!("no free port on {ip}: {error}"))
        .port()
}

/// Where a node binds, how it is launched and which store URL it uses.
#[derive(Clone, Debug)]
pub struct Placement {
    pub http_ip: IpAddr,
    pub cluster_addr: SocketAddr,
    /// Run under this command (e.g. `ip netns exec NS`); empty: directly.
    pub launcher: Vec<String>,
    /// Overrides the cluster's store URL (e.g. through a proxy).
    pub store_url: Option<String>,
    /// Overrides the cluster's NATS URL (e.g. through a proxy into a network namespace).
    pub events_url: Option<String>,
}

impl Placement {
    /// HTTP and cluster listener on a fresh `127.0.0.k`.
    pub fn loopback() -> Self {
        let host = next_loopback_host();
        Self::http_and_cluster(host, host)
    }

    /// HTTP on `http_ip` (port chosen by the node), the cluster listener on a free port of
    /// `cluster_ip`.
    pub fn http_and_cluster(http_ip: IpAddr, cluster_ip: IpAddr) -> Self {
        Self {
            http_ip,
            cluster_addr: SocketAddr::new(cluster_ip, free_port(cluster_ip)),
            launcher: Vec::new(),
            store_url: None,
            events_url: None,
        }
    }
}

/// One node of the cluster: its settings, and its process while it runs.
pub struct Member {
    pub id: String,
    pub placement: Placement,
    pub process: Option<NodeProcess>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Whether the started process is still alive (it did not exit by itself).
    pub fn is_alive(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| !process.has_exited())
    }

    /// The node's HTTP base URL (it must be running).
    pub fn base(&self) -> &str {
        &self.running().base
    }

    pub fn running(&self) -> &NodeProcess {
        self.process
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.id))
    }

    /// The process, no longer part of the cluster (to kill, stop or watch it).
    pub fn take(&mut self) -> NodeProcess {
        self.process
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.id))
    }
}

/// Nodes on one shared, freshly provisioned store.
pub struct Cluster {
    /// Declared first so that it drops first: the processes die before the store goes.
    pub members: Vec<Member>,
    /// The cluster's own JetStream stream (cluster mode needs NATS); deleted after the
    /// processes are gone.
    _events: Arc<TestStream>,
    http: reqwest::Client,
    admin: Option<String>,
    shared: NodeSpec,
    store: Option<Provisioned>,
    dir: tempfile::TempDir,
    /// When a member was last started, for the readiness figure.
    last_start: Instant,
    _slot: SemaphorePermit<'static>,
}

impl Cluster {
    /// A fresh store and no nodes yet, or `None` when the store is not available (skipped).
    pub async fn provision(store: TestStore) -> Option<Cluster> {
        let events = Arc::new(TestStream::create().await?);
        Self::provision_with_events(store, events).await
    }

    /// Like [`Cluster::provision`], with its events on `events` (a stream the test reads,
    /// maybe behind a proxy it cuts).
    pub async fn provision_with_events(
        store: TestStore,
        events: Arc<TestStream>,
    ) -> Option<Cluster> {
        let slot = CLUSTER_SLOT
            .acquire()
            .await
            .expect("the cluster slot is never closed");
        let dir = tempfile::tempdir().expect("temp dir");
        let (spec, provisioned) = store.provision(dir.path()).await?;
        Some(Cluster {
            members: Vec::new(),
            http: http_client(CLIENT_TIMEOUT),
            admin: None,
            shared: events.node_env(shared_settings(spec, store)),
            _events: events,
            store: Some(provisioned),
            dir,
            last_start: Instant::now(),
            _slot: slot,
        })
    }

    /// `nodes` nodes on loopback addresses, ready, with the admin logged in and the test
    /// products made.
    pub async fn start(store: TestStore, nodes: usize) -> Option<Cluster> {
        let mut cluster = Self::provision(store).await?;
        cluster.start_loopback_members(nodes).await;
        Some(cluster)
    }

    /// Start `nodes` members on loopback addresses, wait until ready, make the products.
    async fn start_loopback_members(&mut self, nodes: usize) {
        for _ in 0..nodes {
            let index = self.add_member(Placement::loopback());
            self.start_member(index).await;
        }
        self.wait_ready().await;
        self.create_products().await;
    }

    /// Like [`Cluster::start`], with its events on `events`; rate limiting off (the tests
    /// send from one address).
    pub async fn start_with_events(
        store: TestStore,
        nodes: usize,
        events: Arc<TestStream>,
    ) -> Option<Cluster> {
        let mut cluster = Self::provision_with_events(store, events).await?;
        cluster.shared = cluster.shared.clone().env("EMPORIUM_RATE_LIMIT", "off");
        cluster.start_loopback_members(nodes).await;
        Some(cluster)
    }

    /// Like [`Cluster::start`], with `env` set on every node (those started later too).
    pub async fn start_with_env(
        store: TestStore,
        nodes: usize,
        env: &[(&str, &str)],
    ) -> Option<Cluster> {
        let mut cluster = Self::provision(store).await?;
        for (key, value) in env {
            cluster.shared = cluster.shared.clone().env(key, value);
        }
        cluster.start_loopback_members(nodes).await;
        Some(cluster)
    }

    /// The cluster's HTTP client, for requests a test builds itself (its own headers).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// A [`Shop`] on each running member, signed in as the cluster's admin.
    pub async fn shops(&self) -> Vec<Shop> {
        let mut shops = Vec::new();
        for member in self.members.iter().filter(|member| member.is_running()) {
            shops.push(Shop::with_admin(member.running(), ADMIN_EMAIL, ADMIN_PASSWORD).await);
        }
        shops
    }

    /// Like [`Cluster::start`], but every node (those started later too) reaches the store
    /// through one [`TcpProxy`] the test controls: cut it for a store outage. `None` when
    /// the store is not available, or is the embedded one (no server to proxy).
    pub async fn start_behind_proxy(
        store: TestStore,
        nodes: usize,
    ) -> Option<(Cluster, Arc<TcpProxy>)> {
        let mut cluster = Self::provision(store).await?;
        let server = cluster.store().server()?;
        let proxy = TcpProxy::start(server).await;
        let url = cluster.store().url_via(proxy.addr)?;
        cluster.shared = cluster.shared.clone().env("EMPORIUM_STORE", &url);
        for _ in 0..nodes {
            let index = cluster.add_member(Placement::loopback());
            cluster.start_member(index).await;
        }
        cluster.wait_ready().await;
        cluster.create_products().await;
        Some((cluster, proxy))
    }

    /// The value of `key` in the settings every member shares (store, events), if set.
    pub fn shared_env(&self, key: &str) -> Option<String> {
        self.shared
            .env
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }

    /// The provisioned store (for proxies in front of it).
    pub fn store(&self) -> &Provisioned {
        self.store
            .as_ref()
            .expect("the store lives as long as the cluster")
    }

    /// A new member `node-N` (not started); returns its index.
    pub fn add_member(&mut self, placement: Placement) -> usize {
        let id = format!("node-{}", self.members.len() + 1);
        self.members.push(Member {
            id,
            placement,
            process: None,
        });
        self.members.len() - 1
    }

    /// The spec member `index` starts with: the running members are its seeds.
    pub fn spec_for(&self, index: usize) -> NodeSpec {
        let member = &self.members[index];
        let seeds: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .filter(|(other, peer)| *other != index && peer.is_running())
            .map(|(_, peer)| peer.placement.cluster_addr.to_string())
            .collect();
        let mut spec = self.shared.clone();
        spec.data_dir = self.dir.path().join(&member.id);
        spec.launcher = member.placement.launcher.clone();
        let mut spec = spec
            .env("EMPORIUM_NODE_ID", &member.id)
            .env(
                "EMPORIUM_HTTP_ADDR",
                &format!("{}:0", member.placement.http_ip),
            )
            .env(
                "EMPORIUM_CLUSTER_ADDR",
                &member.placement.cluster_addr.to_string(),
            );
        if !seeds.is_empty() {
            spec = spec.env("EMPORIUM_SEEDS", &seeds.join(","));
        }
        if let Some(url) = &member.placement.store_url {
            spec = spec.env("EMPORIUM_STORE", url);
        }
        if let Some(url) = &member.placement.events_url {
            spec = spec.env("EMPORIUM_EVENTS", url);
        }
        spec
    }

    /// Start member `index` (again, after a stop) and wait until it serves HTTP.
    pub async fn start_member(&mut self, index: usize) {
        let spec = self.spec_for(index);
        std::fs::create_dir_all(&spec.data_dir).expect("node data dir");
        self.last_start = Instant::now();
        let process = NodeProcess::start(spec).await;
        self.members[index].process = Some(process);
    }

    /// Indexes of the running members.
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&index| self.members[index].is_running())
            .collect()
    }

    pub fn api(&self, index: usize) -> Api {
        Api::with_client(self.http.clone(), self.members[index].base())
    }

    pub fn admin_token(&self) -> &str {
        self.admin.as_deref().expect("admin logged in (wait_ready)")
    }

    /// A balancer over the running members.
    pub fn balancer(&self) -> Balancer {
        let balancer = Balancer::new(self.http.clone());
        for index in self.running() {
            balancer.add(&self.members[index].id, self.members[index].base());
        }
        balancer
    }

    /// A balancer with member `index` alone in rotation, on connections of its own (none
    /// pooled from earlier requests).
    pub fn balancer_to(&self, index: usize) -> Balancer {
        let balancer = Balancer::new(http_client(CLIENT_TIMEOUT));
        balancer.add(&self.members[index].id, self.members[index].base());
        balancer
    }

    /// `GET path` on member `index` with the admin token.
    pub async fn admin_get(&self, index: usize, path: &str) -> Answer {
        let api = self.api(index);
        let request = self
            .http
            .get(format!("{}{path}", api.base))
            .bearer_auth(self.admin_token());
        api.send(request).await
    }

    /// A request to member `index`, with a bearer token and a JSON body when given.
    pub async fn request(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.endpoints()
            .request(index, method, path, token, body)
            .await
    }

    /// The running members' HTTP addresses, to move into tasks.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            http: self.http.clone(),
            bases: self
                .members
                .iter()
                .map(|member| {
                    member
                        .process
                        .as_ref()
                        .map(|process| process.base.clone())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// `GET /v1/admin/cluster` as member `index` sees it.
    pub async fn view(&self, index: usize) -> Value {
        let answer = self.admin_get(index, "/v1/admin/cluster").await;
        assert_eq!(answer.status, 200, "cluster view: {answer:?}");
        answer.body
    }

    /// Whether member `index` answers `/readyz` with 200 now.
    pub async fn is_ready(&self, index: usize) -> bool {
        let api = self.api(index);
        api.try_send(get_request(&api, "/readyz"))
            .await
            .is_ok_and(|answer| answer.status == 200)
    }

    /// Member `index`'s incarnation, as its own cluster view shows it (`None` while it
    /// cannot answer).
    pub async fn incarnation(&self, index: usize) -> Option<u64> {
        let answer = self.admin_get(index, "/v1/admin/cluster").await;
        let id = &self.members[index].id;
        answer.body["nodes"]
            .as_array()?
            .iter()
            .find(|node| node["node_id"] == id.as_str())?["incarnation"]
            .as_u64()
    }

    /// Wait (at most `deadline`) until member `index`, still the same process, is ready
    /// again under an incarnation newer than `before`: it fenced itself and rejoined as a new
    /// life. Returns how long that took, `None` if it did not.
    pub async fn wait_rejoined(
        &self,
        index: usize,
        before: u64,
        deadline: Duration,
    ) -> Option<Duration> {
        let started = Instant::now();
        let rejoined = wait_until(deadline, || async move {
            self.is_ready(index).await && self.incarnation(index).await > Some(before)
        })
        .await;
        rejoined.then(|| started.elapsed())
    }

    /// Wait until every running member answers `/readyz`, log the admin in, then wait until
    /// every running member's view shows all of them up and alive and all shards owned.
    /// Returns the first running member's view.
    pub async fn wait_ready(&mut self) -> Value {
        let running = self.running();
        for &index in &running {
            let api = &self.api(index);
            let ready = wait_until(READY_DEADLINE, || async move {
                api.try_send(get_request(api, "/readyz"))
                    .await
                    .is_ok_and(|answer| answer.status == 200)
            })
            .await;
            assert!(ready, "{} never became ready", self.members[index].id);
        }
        if self.admin.is_none() {
            self.admin = Some(self.login_admin().await);
        }
        let ids: Vec<String> = running
            .iter()
            .map(|&index| self.members[index].id.clone())
            .collect();
        for &index in &running {
            self.wait_until_view_complete(index, &ids).await;
        }
        eprintln!(
            "cluster: {} node(s) up with every shard owned, {:.2?} after the last start",
            ids.len(),
            self.last_start.elapsed()
        );
        self.view(running[0]).await
    }

    pub async fn wait_until_view_complete(&self, index: usize, ids: &[String]) {
        let last = &Mutex::new(Value::Null);
        let cluster = self;
        let complete = wait_until(READY_DEADLINE, || async move {
            let answer = cluster.admin_get(index, "/v1/admin/cluster").await;
            let complete = answer.status == 200 && view_is_complete(&answer.body, ids);
            *last.lock().unwrap_or_else(PoisonError::into_inner) = answer.body;
            complete
        })
        .await;
        let last = last.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            complete,
            "{} never saw {ids:?} up with every shard owned; last view: {last:#}",
            self.members[index].id
        );
    }

    /// The admin's token, logging in through the running members in turn until one answers.
    async fn login_admin(&self) -> String {
        let body = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
        let running = self.running();
        let deadline = Instant::now() + READY_DEADLINE;
        for attempt in 0.. {
            let api = self.api(running[attempt % running.len()]);
            let request = self
                .http
                .post(format!("{}/v1/auth/login", api.base))
                .json(&body);
            let answer = api.try_send(request).await;
            if let Ok(answer) = &answer
                && answer.status == 200
            {
                return answer.body["access_token"]
                    .as_str()
                    .expect("access_token")
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the admin cannot log in: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        unreachable!("the loop returns or panics")
    }

    /// Products `SKU-CL-00`… (see [`sku`]), made through the running members in turn.
    pub async fn create_products(&self) {
        let running = self.running();
        for index in 0..PRODUCTS {
            let api = self.api(running[index % running.len()]);
            let request = self
                .http
                .put(format!("{}/v1/admin/products/{}", api.base, sku(index)))
                .bearer_auth(self.admin_token())
                .json(&json!({
                    "name": format!("Cluster test product {index}"),
                    "description": "A product of the cluster tests",
                    "price_cents": 100 + index as i64,
                    "currency": "USD",
                    "category": "cluster",
                }));
            let answer = api.send(request).await;
            assert!(
                matches!(answer.status, 200 | 201),
                "product {}: {answer:?}",
                sku(index)
            );
        }
    }

    /// The node that owns actor `kind/key`, as member `via` sees it.
    pub async fn owner_of(&self, via: usize, kind: &str, key: &str) -> Option<String> {
        let answer = self
            .admin_get(via, &format!("/v1/admin/actors/{kind}/{key}"))
            .await;
        assert_eq!(answer.status, 200, "actor {kind}/{key}: {answer:?}");
        answer.body["owner"].as_str().map(str::to_owned)
    }

    /// Guest carts made through the running members in turn until `owned` of them are owned
    /// by `owner` and `others` by someone else. Returns (owned by `owner`, the others).
    pub async fn carts_split_by_owner(
        &self,
        owner: &str,
        owned: usize,
        others: usize,
    ) -> (Vec<String>, Vec<String>) {
        let running = self.running();
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        // Each cart lands on `owner` with probability about 1/N: 40 per wanted cart is plenty.
        for attempt in 0..40 * (owned + others) {
            if mine.len() >= owned && theirs.len() >= others {
                break;
            }
            let via = running[attempt % running.len()];
            let cart = self.api(via).new_cart().await;
            match self.owner_of(via, "cart", &cart).await {
                Some(found) if found == owner && mine.len() < owned => mine.push(cart),
                Some(found) if found != owner && theirs.len() < others => theirs.push(cart),
                _ => {}
            }
        }
        assert!(
            mine.len() == owned && theirs.len() == others,
            "carts: {} owned by {owner}, {} by others",
            mine.len(),
            theirs.len()
        );
        (mine, theirs)
    }

    /// Guest carts made through the running members in turn.
    pub async fn carts(&self, count: usize) -> Vec<String> {
        let running = self.running();
        let mut carts = Vec::new();
        for index in 0..count {
            carts.push(self.api(running[index % running.len()]).new_cart().await);
        }
        carts
    }

    /// Every cart of `report` (and of `extra`) read through each of `via`: the same lines
    /// through every node; every acknowledged write present, once; every write refused with a
    /// definite answer absent. A write whose outcome is unknown (the node answered 504, or the
    /// connection was lost after the request was sent) may have been applied or not: a client
    /// cannot tell either, so both are allowed, but never twice.
    pub async fn assert_carts_hold_exactly_the_acknowledged_writes(
        &self,
        report: &LoadReport,
        extra: &[Op],
        via: &[usize],
    ) -> FinalState {
        let mut state = FinalState::default();
        let writes: Vec<&Op> = report
            .ops
            .iter()
            .chain(extra)
            .filter(|op| op.write.is_some())
            .collect();
        let carts: BTreeSet<&str> = report
            .carts
            .iter()
            .map(String::as_str)
            .chain(writes.iter().map(|op| op.cart.as_str()))
            .collect();
        for cart in carts {
            let lines = self.cart_lines_through_all(cart, via).await;
            let cart_writes: Vec<&Op> = writes
                .iter()
                .copied()
                .filter(|op| op.cart == cart)
                .collect();
            state.tally.check_cart(cart, &lines, &cart_writes);
            state.carts.insert(cart.to_owned(), lines);
        }
        eprintln!("final state: {}", state.tally);
        state
    }

    /// The cart's lines (SKU → quantity), identical through every node of `via`.
    async fn cart_lines_through_all(&self, cart: &str, via: &[usize]) -> BTreeMap<String, u64> {
        let mut seen: Option<(String, BTreeMap<String, u64>)> = None;
        for &index in via {
            let lines = self.cart_lines(index, cart).await;
            let id = &self.members[index].id;
            match &seen {
                None => seen = Some((id.clone(), lines)),
                Some((first, expected)) => assert_eq!(
                    &lines, expected,
                    "cart {cart} read through {id} differs from {first}"
                ),
            }
        }
        seen.expect("at least one node to read through").1
    }

    /// The cart's lines through member `index`, retried while the node answers 503 (a shard
    /// may still be settling right after a fault).
    async fn cart_lines(&self, index: usize, cart: &str) -> BTreeMap<String, u64> {
        let api = self.api(index);
        let mut last = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match api
                .try_send(get_request(&api, &format!("/v1/carts/{cart}")))
                .await
            {
                Ok(answer) if answer.status == 200 => return lines_of(&answer.body),
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "cart {cart} unreadable through {}: {last:?}",
            self.members[index].id
        );
    }

    /// Cluster metrics of every running member, printed.
    pub async fn print_cluster_metrics(&self) {
        for index in self.running() {
            let api = self.api(index);
            let Ok(answer) = api.try_send(get_request(&api, "/metrics")).await else {
                continue;
            };
            let text = answer.body.as_str().unwrap_or_default().to_owned();
            // `+ 0.0`: an empty sum of floats is -0.
            let failovers = metric_sum(&text, "emporium_failover_seconds_count", "") + 0.0;
            let failover_sum = metric_sum(&text, "emporium_failover_seconds_sum", "");
            eprintln!(
                "metrics {}: forwarded {} ownership changes {} failovers {} (mean {:.2} s)",
                self.members[index].id,
                metric_sum(&text, "emporium_forwarded_requests_total", ""),
                metric_sum(&text, "emporium_shard_ownership_changes_total", ""),
                failovers,
                if failovers > 0.0 {
                    failover_sum / failovers
                } else {
                    0.0
                },
            );
        }
    }

    /// Kill every node and drop the store.
    pub async fn finish(mut self) {
        for member in &mut self.members {
            if let Some(process) = member.process.take() {
                process.kill9().await;
            }
        }
        if let Some(store) = self.store.take() {
            store.drop_store().await;
        }
    }
}

/// The members' HTTP side, cheap to clone into spawned tasks (indexes as in the cluster).
#[derive(Clone)]
pub struct Endpoints {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl Endpoints {
    /// A request to member `index`, with a bearer token and a JSON body when given.
    pub async fn request(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.send(index, method, path, token, body, &[]).await
    }

    /// A request with `headers` too.
    pub async fn send(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let base = &self.bases[index];
        assert!(!base.is_empty(), "member {index} is not running");
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Api::with_client(self.http.clone(), base)
            .send(request)
            .await
    }
}

/// The settings every node of a cluster shares.
fn shared_settings(spec: NodeSpec, store: TestStore) -> NodeSpec {
    let spec = match store {
        // The PostgreSQL server takes 100 connections for every test running at once; the
        // default pool (16 per node) would let two clusters exhaust it.
        TestStore::Postgres => spec.env("EMPORIUM_POSTGRES_POOL_SIZE", "6"),
        TestStore::Embedded | TestStore::Scylla => spec,
    };
    let spec = spec
        .env("EMPORIUM_JWT_SECRET", JWT_SECRET)
        .env("EMPORIUM_CLUSTER_SECRET", CLUSTER_SECRET)
        .env("EMPORIUM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        // The tests make their own products; no demo seeding racing between nodes.
        .env("EMPORIUM_DEMO", "false");
    // EMPORIUM_TEST_NODE_LOG=info,emporium_runtime=debug shows the nodes' logs (on stderr).
    match std::env::var("EMPORIUM_TEST_NODE_LOG") {
        Ok(filter) => spec.env("EMPORIUM_LOG", &filter),
        Err(_) => spec,
    }
}

fn http_client(timeout: Duration) -> reqwest::Client {
    emporium::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("http client")
}

/// `GET path` on `api`'s node, through the cluster's client.
fn get_request(api: &Api, path: &str) -> reqwest::RequestBuilder {
    api.client().get(format!("{}{path}", api.base))
}

/// Every node of `ids` up and alive, no shard unowned, and the owned shards adding up.
fn view_is_complete(view: &Value, ids: &[String]) -> bool {
    let Some(nodes) = view["nodes"].as_array() else {
        return false;
    };
    let healthy = |id: &String| {
        nodes.iter().any(|node| {
            node["node_id"] == id.as_str() && node["status"] == "up" && node["liveness"] == "alive"
        })
    };
    let owned: u64 = nodes
        .iter()
        .filter_map(|node| node["shards_owned"].as_u64())
        .sum();
    ids.iter().all(healthy) && view["unowned_shards"] == 0 && owned == SHARD_COUNT
}

/// Shards owned per node id in a cluster view.
pub fn shards_by_node(view: &Value) -> BTreeMap<String, u64> {
    view["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| {
            (
                node["node_id"].as_str().expect("node_id").to_owned(),
                node["shards_owned"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A cart body's lines: SKU → quantity.
pub fn lines_of(cart: &Value) -> BTreeMap<String, u64> {
    cart["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|line| {
                    (
                        line["sku"].as_str().unwrap_or_default().to_owned(),
                        line["quantity"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One request and what came of it.
#[derive(Debug)]
pub struct Exchange {
    pub node: String,
    pub sent_at: Instant,
    pub done_at: Instant,
    pub reply: Reply,
}

#[derive(Debug)]
pub enum Reply {
    Answer(Answer),
    /// Sent, but no answer came back (client timeout, connection reset).
    Lost(String),
    /// No node took the connection: nothing was sent.
    NotSent(String),
}

/// What a client may conclude about a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: applied, and must stay applied.
    Acked,
    /// A definite refusal (any other status but 504, or never sent): must not be applied.
    Refused,
    /// 504 or no answer: may or may not have been applied.
    Unknown,
}

impl Exchange {
    pub fn outcome(&self) -> Outcome {
        match &self.reply {
            Reply::Answer(answer) if (200..300).contains(&answer.status) => Outcome::Acked,
            Reply::Answer(answer) if answer.status == 504 => Outcome::Unknown,
            Reply::Answer(_) | Reply::NotSent(_) => Outcome::Refused,
            Reply::Lost(_) => Outcome::Unknown,
        }
    }

    pub fn took(&self) -> Duration {
        self.done_at - self.sent_at
    }
}

/// The load balancer of the tests: round robin over the nodes in rotation.
#[derive(Clone)]
pub struct Balancer {
    http: reqwest::Client,
    targets: Arc<Mutex<Vec<(String, String)>>>,
    next: Arc<AtomicUsize>,
}

impl Balancer {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            targets: Arc::default(),
            next: Arc::default(),
        }
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put node `id` (at `base`) in rotation, replacing an earlier address of it.
    pub fn add(&self, id: &str, base: &str) {
        let mut targets = self.targets();
        targets.retain(|(node, _)| node != id);
        targets.push((id.to_owned(), base.to_owned()));
    }

    /// Take node `id` out of rotation (it is about to be stopped, or is cut off).
    pub fn remove(&self, id: &str) {
        self.targets().retain(|(node, _)| node != id);
    }

    fn pick(&self) -> Option<(String, String)> {
        let targets = self.targets();
        if targets.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(targets[turn % targets.len()].clone())
    }

    /// Send to the next node in rotation; a connection refused (nothing sent) moves on to
    /// the next one, a few rounds at most.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Exchange {
        let sent_at = Instant::now();
        let mut refused = String::from("no node in rotation");
        for _ in 0..9 {
            let Some((node, base)) = self.pick() else {
                break;
            };
            let mut request = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(body) = body {
                request = request.json(body);
            }
            let api = Api::with_client(self.http.clone(), &base);
            let reply = match api.try_send(request).await {
                Ok(answer) => Reply::Answer(answer),
                Err(error) if error.is_connect() => {
                    refused = format!("{node}: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => Reply::Lost(format!("{error:?}")),
            };
            return Exchange {
                node,
                sent_at,
                done_at: Instant::now(),
                reply,
            };
        }
        Exchange {
            node: String::new(),
            sent_at,
            done_at: Instant::now(),
            reply: Reply::NotSent(refused),
        }
    }

    /// The same rotation through a client that gives up after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Balancer {
        Balancer {
            http: http_client(timeout),
            targets: Arc::clone(&self.targets),
            next: Arc::clone(&self.next),
        }
    }

    /// How long after `since` a read of `cart` first succeeds, reading again at once after
    /// every failure; `None` if none does within `limit`. Reads time out after 2 s (a read
    /// abandoned changes nothing), so the figure is what a client that retries would see,
    /// whether or not the node retries by itself.
    pub async fn time_until_served(
        &self,
        cart: &str,
        since: Instant,
        limit: Duration,
    ) -> Option<Duration> {
        let probe = self.with_timeout(Duration::from_secs(2));
        for _ in 0..MAX_ROUNDS {
            if since.elapsed() > limit {
                return None;
            }
            let op = probe.read_cart(cart).await;
            if op.exchange.outcome() == Outcome::Acked {
                return Some(op.exchange.done_at - since);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Add `sku` (quantity 1) to `cart`.
    pub async fn add_line(&self, cart: &str, sku: &str) -> Op {
        let body = json!({"sku": sku, "quantity": 1});
        let exchange = self
            .send(
                Method::POST,
                &format!("/v1/carts/{cart}/items"),
                Some(&body),
            )
            .await;
        Op {
            cart: cart.to_owned(),
            write: Some(sku.to_owned()),
            exchange,
        }
    }

    /// Read `cart`.
    pub async fn read_cart(&self, cart: &str) -> Op {
        let exchange = self
            .send(Method::GET, &format!("/v1/carts/{cart}"), None)
            .await;
        Op {
            cart: cart.to_owned(),
            write: None,
            exchange,
        }
    }
}

/// One operation of a load: a write of one SKU line, or a read.
#[derive(Debug)]
pub struct Op {
    pub cart: String,
    /// The SKU added, for a write; `None` for a read.
    pub write: Option<String>,
    pub exchange: Exchange,
}

/// What a load does.
#[derive(Clone)]
pub struct LoadPlan {
    pub carts: Vec<String>,
    pub workers: usize,
    /// Pause between two rounds of a worker.
    pub pace: Duration,
    /// Read the cart back after each write (and keep reading once every line is written).
    pub reads: bool,
    /// Written to each cart, in order, one write each.
    pub skus: Vec<String>,
    /// The load stops by itself after this.
    pub max_time: Duration,
}

impl LoadPlan {
    /// Writes of the first `lines` test products to `carts`, with reads, for at most `max_time`.
    pub fn new(carts: Vec<String>, lines: usize, max_time: Duration) -> Self {
        Self {
            workers: carts.len().clamp(1, 8),
            carts,
            pace: Duration::from_millis(100),
            reads: true,
            skus: (0..lines).map(sku).collect(),
            max_time,
        }
    }
}

/// A running load; [`Load::stop`] ends it and returns every operation.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<WorkerLog>>,
    carts: Vec<String>,
    started: Instant,
}

#[derive(Default)]
struct WorkerLog {
    ops: Vec<Op>,
    stale_reads: Vec<StaleRead>,
}

impl Load {
    pub fn start(balancer: &Balancer, plan: LoadPlan) -> Load {
        let (stop, stopped) = watch::channel(false);
        let deadline = Instant::now() + plan.max_time;
        let plan = Arc::new(plan);
        let workers = (0..plan.workers)
            .map(|worker| {
                let carts: Vec<String> = plan
                    .carts
                    .iter()
                    .skip(worker)
                    .step_by(plan.workers)
                    .cloned()
                    .collect();
                let worker = Worker {
                    balancer: balancer.clone(),
                    plan: Arc::clone(&plan),
                    stopped: stopped.clone(),
                    deadline,
                };
                tokio::spawn(worker.run(carts))
            })
            .collect();
        Load {
            stop,
            workers,
            carts: plan.carts.clone(),
            started: Instant::now(),
        }
    }

    /// Stop (requests in flight finish) and collect what happened.
    pub async fn stop(self) -> LoadReport {
        self.stop.send_replace(true);
        let mut report = LoadReport {
            ops: Vec::new(),
            stale_reads: Vec::new(),
            carts: self.carts,
            duration: self.started.elapsed(),
        };
        for worker in self.workers {
            let log = worker.await.expect("load worker panicked");
            report.ops.extend(log.ops);
            report.stale_reads.extend(log.stale_reads);
        }
        report.ops.sort_by_key(|op| op.exchange.sent_at);
        report
    }
}

struct Worker {
    balancer: Balancer,
    plan: Arc<LoadPlan>,
    stopped: watch::Receiver<bool>,
    deadline: Instant,
}

impl Worker {
    /// Round robin over `carts`: the next SKU of the cart (while any is left), then a read of
    /// it (when the plan reads). One request at a time, so each cart's writes are in order.
    async fn run(mut self, carts: Vec<String>) -> WorkerLog {
        let mut log = WorkerLog::default();
        let mut written = vec![0usize; carts.len()];
        let mut acked: Vec<BTreeMap<String, Instant>> = vec![BTreeMap::new(); carts.len()];
        for round in 0..MAX_ROUNDS {
            if *self.stopped.borrow() || Instant::now() >= self.deadline || carts.is_empty() {
                break;
            }
            let turn = round % carts.len();
            let cart = &carts[turn];
            if let Some(sku) = self.plan.skus.get(written[turn]) {
                written[turn] += 1;
                let op = self.balancer.add_line(cart, sku).await;
                if op.exchange.outcome() == Outcome::Acked {
                    acked[turn].insert(sku.clone(), op.exchange.done_at);
                }
                log.ops.push(op);
            } else if !self.plan.reads && written.iter().all(|&n| n >= self.plan.skus.len()) {
                break;
            }
            if self.plan.reads {
                let op = self.balancer.read_cart(cart).await;
                if let Some(stale) = stale_read(&op, &acked[turn]) {
                    log.stale_reads.push(stale);
                }
                log.ops.push(op);
            }
            tokio::select! {
                () = tokio::time::sleep(self.plan.pace) => {}
                _ = self.stopped.changed() => {}
            }
        }
        log
    }
}

/// A successful read that misses a line whose write was acknowledged before it was sent.
fn stale_read(op: &Op, acked: &BTreeMap<String, Instant>) -> Option<StaleRead> {
    let Reply::Answer(answer) = &op.exchange.reply else {
        return None;
    };
    if answer.status != 200 {
        return None;
    }
    let lines = lines_of(&answer.body);
    let missed: Vec<(&String, Duration)> = acked
        .iter()
        .filter(|(sku, _)| !lines.contains_key(*sku))
        .map(|(sku, acked_at)| {
            (
                sku,
                op.exchange.sent_at.saturating_duration_since(*acked_at),
            )
        })
        .collect();
    if missed.is_empty() {
        return None;
    }
    let missed: Vec<String> = missed
        .iter()
        .map(|(sku, before)| format!("{sku} (acknowledged {before:.2?} before the read was sent)"))
        .collect();
    Some(StaleRead {
        description: format!(
            "cart {} read through {} (answered in {:.2?}) misses {}",
            op.cart,
            op.exchange.node,
            op.exchange.took(),
            missed.join(", ")
        ),
    })
}

/// A successful read that missed acknowledged writes.
#[derive(Debug)]
pub struct StaleRead {
    /// The cart, the node that answered, and each missed write with how long before the
    /// read was sent it was acknowledged.
    pub description: String,
}

/// Everything a load did.
pub struct LoadReport {
    pub ops: Vec<Op>,
    /// Reads that missed an acknowledged line (see [`stale_read`]).
    pub stale_reads: Vec<StaleRead>,
    pub carts: Vec<String>,
    pub duration: Duration,
}

impl LoadReport {
    pub fn writes(&self) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(|op| op.write.is_some())
    }

    pub fn reads(&self) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(|op| op.write.is_none())
    }

    /// Operations that were not acknowledged.
    pub fn failures(&self) -> Vec<&Op> {
        self.ops
            .iter()
            .filter(|op| op.exchange.outcome() != Outcome::Acked)
            .collect()
    }

    /// Print counts: requests, writes by outcome, reads, stale reads.
    pub fn print(&self, label: &str) {
        let count = |outcome| {
            self.writes()
                .filter(|op| op.exchange.outcome() == outcome)
                .count()
        };
        let reads_ok = self
            .reads()
            .filter(|op| op.exchange.outcome() == Outcome::Acked)
            .count();
        eprintln!(
            "{label}: {} requests in {:.1?}: writes {} (acked {}, refused {}, unknown {}), reads {} ({} ok), stale reads {}",
            self.ops.len(),
            self.duration,
            self.writes().count(),
            count(Outcome::Acked),
            count(Outcome::Refused),
            count(Outcome::Unknown),
            self.reads().count(),
            reads_ok,
            self.stale_reads.len(),
        );
        for stale in self.stale_reads.iter().take(5) {
            eprintln!("{label}: stale read: {}", stale.description);
        }
        for failure in self.failures().iter().take(5) {
            eprintln!("{label}: not acknowledged: {}", describe(failure));
        }
    }

    /// No successful read misses a write acknowledged before the read was sent: a node
    /// serves a shard taken from a live holder only once that holder has let go of it (or
    /// can no longer serve anything), so two nodes never answer for one actor at once
    /// (ARCHITECTURE.md, cluster invariants).
    pub fn assert_no_stale_reads(&self, label: &str) {
        eprintln!("{label}: {} stale reads", self.stale_reads.len());
        let stale: Vec<&str> = self
            .stale_reads
            .iter()
            .map(|stale| stale.description.as_str())
            .collect();
        assert!(
            stale.is_empty(),
            "{label}: stale reads:\n{}",
            stale.join("\n")
        );
    }

    /// Every request answered 2xx (the "zero failed requests" of a graceful change).
    pub fn assert_no_failures(&self, label: &str) {
        let failures = self.failures();
        let shown: Vec<String> = failures.iter().take(10).map(|&op| describe(op)).collect();
        assert!(
            failures.is_empty(),
            "{label}: {} of {} requests failed; first ones:\n{}",
            failures.len(),
            self.ops.len(),
            shown.join("\n")
        );
    }
}

/// One line about an operation, for failure messages.
pub fn describe(op: &Op) -> String {
    let what = match &op.write {
        Some(sku) => format!("add {sku} to"),
        None => "read".to_owned(),
    };
    let reply = match &op.exchange.reply {
        Reply::Answer(answer) => format!("{} {}", answer.status, answer.body),
        Reply::Lost(error) => format!("lost: {error}"),
        Reply::NotSent(error) => format!("not sent: {error}"),
    };
    format!(
        "{what} cart {} via {} after {:.2?}: {reply}",
        op.cart,
        op.exchange.node,
        op.exchange.took()
    )
}

/// The carts at the end, and how the writes came out.
#[derive(Default)]
pub struct FinalState {
    pub carts: BTreeMap<String, BTreeMap<String, u64>>,
    pub tally: Tally,
}

#[derive(Default, Debug)]
pub struct Tally {
    pub acked: usize,
    pub refused: usize,
    pub unknown: usize,
    /// Unknown-outcome writes that turned out applied.
    pub unknown_applied: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged writes all present once, {} refused all absent, {} of unknown outcome ({} applied)",
            self.acked, self.refused, self.unknown, self.unknown_applied
        )
    }
}

impl Tally {
    /// Check one cart's final `lines` against the writes sent to it.
    fn check_cart(&mut self, cart: &str, lines: &BTreeMap<String, u64>, writes: &[&Op]) {
        for op in writes {
            let sku = op.write.as_deref().expect("a write");
            let quantity = lines.get(sku).copied();
            let why = describe(op);
            assert!(
                quantity.is_none_or(|quantity| quantity == 1),
                "cart {cart}: {sku} applied {quantity:?} times; {why}"
            );
            match op.exchange.outcome() {
                Outcome::Acked => {
                    self.acked += 1;
                    assert!(
                        quantity.is_some(),
                        "cart {cart}: acknowledged write lost; {why}"
                    );
                }
                Outcome::Refused => {
                    self.refused += 1;
                    assert!(
                        quantity.is_none(),
                        "cart {cart}: refused write applied; {why}"
                    );
                }
                Outcome::Unknown => {
                    self.unknown += 1;
                    self.unknown_applied += usize::from(quantity.is_some());
                }
            }
        }
        let written: BTreeSet<&str> = writes.iter().filter_map(|op| op.write.as_deref()).collect();
        let phantoms: Vec<&String> = lines
            .keys()
            .filter(|sku| !written.contains(sku.as_str()))
            .collect();
        assert!(
            phantoms.is_empty(),
            "cart {cart} holds lines nobody wrote: {phantoms:?}"
        );
    }
}
