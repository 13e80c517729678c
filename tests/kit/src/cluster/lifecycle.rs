//! A cluster's lifecycle: several real `emporium` nodes sharing one fresh store and one
//! JetStream stream, started with the running ones as seeds, waited for until every node
//! agrees that all are up and all 1024 shards are owned, restarted, killed, and torn down
//! with their store.
//!
//! Cluster runs are one at a time per process ([`CLUSTER_SLOT`]): failure detection is
//! timing-based (a node is suspect after 2 s without a heartbeat), and several clusters with
//! their loads on a small machine would starve each other's heartbeats and measure the
//! machine, not the node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::balancer::{Balancer, Endpoints, http_client};
use super::events::TestStream;
use super::http::{Answer, Api, metric_sum};
use super::load::lines_of;
use super::members::{Member, Placement};
use super::process::{NodeProcess, NodeSpec};
use super::store::{Provisioned, StoreServers, TestStore};
use super::waits::{view_is_complete, wait_until};
use crate::TcpProxy;

pub const ADMIN_EMAIL: &str = "admin@cluster.test";
pub const ADMIN_PASSWORD: &str = "admin-password-cluster";
/// The same signing key on every node, so a token from one is accepted by all.
pub const JWT_SECRET: &str = "cluster-tests-jwt-secret-0123456789abcdef";
pub const CLUSTER_SECRET: &str = "cluster-tests-shared-secret-1";
/// Longer than the node's request deadline (`EMPORIUM_REQUEST_TIMEOUT`, 10 s by default): a
/// request the node gives up on is answered by the node, not cut by the client.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// From start to every node agreeing the cluster is complete.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Products `SKU-CL-00`… made at start; a cart holds at most 50 lines.
pub const PRODUCTS: usize = 46;

/// One cluster test at a time in this process (see the module documentation).
static CLUSTER_SLOT: Semaphore = Semaphore::const_new(1);

/// The SKU of product `index` (made by [`Cluster::create_products`]).
pub fn sku(index: usize) -> String {
    format!("SKU-CL-{index:02}")
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
    /// Every member serves the admin gRPC API on its `admin_addr`.
    admin_api: bool,
    shared: NodeSpec,
    store: Option<Provisioned>,
    /// Where each member's log (stderr) goes, `<dir>/<node id>.log`; `None`: this
    /// process's stderr.
    logs: Option<PathBuf>,
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

    /// A fresh store on `servers` and no nodes yet, with its events on `events`; `None` when
    /// the store is not available (skipped). For benches, which name their own servers.
    pub async fn provision_on(
        store: TestStore,
        servers: &StoreServers,
        events: Arc<TestStream>,
    ) -> Option<Cluster> {
        let slot = CLUSTER_SLOT
            .acquire()
            .await
            .expect("the cluster slot is never closed");
        let dir = tempfile::tempdir().expect("temp dir");
        let (spec, provisioned) = store.provision_on(servers, dir.path()).await?;
        Some(Cluster {
            members: Vec::new(),
            http: http_client(CLIENT_TIMEOUT),
            admin: None,
            admin_api: false,
            shared: events.node_env(shared_settings(spec, store)),
            _events: events,
            store: Some(provisioned),
            logs: None,
            dir,
            last_start: Instant::now(),
            _slot: slot,
        })
    }

    /// Like [`Cluster::provision`], with its events on `events` (a stream the test reads,
    /// maybe behind a proxy it cuts).
    pub async fn provision_with_events(
        store: TestStore,
        events: Arc<TestStream>,
    ) -> Option<Cluster> {
        Self::provision_on(store, &StoreServers::from_env(), events).await
    }

    /// `nodes` nodes on loopback addresses, ready, with the admin logged in and the test
    /// products made.
    pub async fn start(store: TestStore, nodes: usize) -> Option<Cluster> {
        let mut cluster = Self::provision(store).await?;
        cluster.start_loopback_members(nodes).await;
        Some(cluster)
    }

    /// Start `nodes` members on loopback addresses, wait until ready, make the products.
    pub async fn start_loopback_members(&mut self, nodes: usize) {
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

    /// Like [`Cluster::start`], with the admin gRPC API on every member (on its placement's
    /// `admin_addr`), accepting `token`.
    pub async fn start_with_admin_api(
        store: TestStore,
        nodes: usize,
        token: &str,
    ) -> Option<Cluster> {
        let mut cluster = Self::provision(store).await?;
        cluster.shared = cluster.shared.clone().env("EMPORIUM_ADMIN_TOKEN", token);
        cluster.admin_api = true;
        cluster.start_loopback_members(nodes).await;
        Some(cluster)
    }

    /// The cluster's HTTP client, for requests a test builds itself (its own headers).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Member `index`'s admin gRPC API (on only with [`Cluster::start_with_admin_api`]).
    pub fn admin_addr(&self, index: usize) -> SocketAddr {
        assert!(
            self.admin_api,
            "the cluster was started without the admin API"
        );
        self.members[index].placement.admin_addr
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

    /// Set `key` on every member started from now on (a later setting of a key wins).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.shared = self.shared.clone().env(key, value);
    }

    /// Send each member's log (stderr) to `<dir>/<node id>.log` from its next start on,
    /// appending across restarts (for benches, which summarise the logs instead of showing
    /// them).
    pub fn log_to(&mut self, dir: PathBuf) {
        self.logs = Some(dir);
    }

    /// Member `index`'s log file, when the cluster logs to files ([`Cluster::log_to`]).
    pub fn log_of(&self, index: usize) -> Option<PathBuf> {
        let dir = self.logs.as_ref()?;
        Some(dir.join(format!("{}.log", self.members[index].id)))
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
        spec.log = self
            .logs
            .as_ref()
            .map(|dir| dir.join(format!("{}.log", member.id)));
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
        if self.admin_api {
            spec = spec.env(
                "EMPORIUM_ADMIN_ADDR",
                &member.placement.admin_addr.to_string(),
            );
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

    /// The cart's lines through member `index`, retried while the node answers 503 (a shard
    /// may still be settling right after a fault).
    pub async fn cart_lines(&self, index: usize, cart: &str) -> BTreeMap<String, u64> {
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

/// `GET path` on `api`'s node, through the cluster's client.
fn get_request(api: &Api, path: &str) -> reqwest::RequestBuilder {
    api.client().get(format!("{}{path}", api.base))
}
