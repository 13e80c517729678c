//! Cluster benchmark: what forwarding costs. Two `emporium` processes (the release binary)
//! form a cluster on a fresh PostgreSQL database; each cart lives on one of them (the holder
//! of its shard's lease, asked through `GET /v1/admin/actors/cart/{id}`), and each request is
//! sent either to that owner (served locally) or to the other node (which forwards the ask to
//! the owner over the cluster transport and relays the answer).
//!
//! Scenarios, each a fixed number of requests per client with [`CLIENTS`] concurrent
//! clients (and a time cap), on [`CARTS`] carts of one line each; each client has its own
//! carts, so no two clients write the same cart:
//! - `hello-world`: GET on a bare hyper 1 server in this process, with the same client (the
//!   baseline every HTTP figure is a ratio against), measured first and last;
//! - `read, owner` / `read, forwarded`: GET /v1/carts/{id} through the owner / the other node;
//! - `write, owner` / `write, forwarded`: PUT /v1/carts/{id}/items/SKU-MUG (a new quantity
//!   each time: one durable write) through the owner / the other node.
//!
//! For each: requests/s, p50 and p99 latency, and the cart asks the nodes forwarded per
//! request (`emporium_forwarded_requests_total`): 0 when served by the owner; 1 for a
//! forwarded read or write (the cart checks its caller in the same turn as the command).
//! The owners are looked up again at the end: a cart that moved
//! would blur the two cases.
//!
//! The server is `EMPORIUM_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`;
//! `scripts/services.sh up` starts one); when it cannot be reached the bench says `skipped`.
//! The database `emp_bench_cluster_<pid>` is dropped at the end (and leftovers of dead runs at
//! the next start). Node logs (warnings, and the cluster's events such as shard ownership
//! changes) go to a temporary directory; what they logged during the measurements is printed.
//! Measuring starts once the shards per node have not changed for [`SETTLED_AFTER`].
//!
//! Run: `cargo bench -p emporium --bench cluster`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Child;

use cluster_kit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, NodeSpec, ScratchDatabase, free_port, node_command, wait_complete,
    wait_for_url, wait_ready, wait_settled,
};

#[path = "support/cluster.rs"]
mod cluster_kit;

/// Nodes in the cluster.
const NODES: usize = 2;
/// Concurrent clients (connections).
const CLIENTS: usize = 20;
/// Requests each client sends per scenario ...
const REQUESTS_PER_CLIENT: usize = 2_000;
/// ... unless the scenario has run this long.
const TIME_CAP: Duration = Duration::from_secs(20);
/// Carts, split evenly between the clients (a multiple of `CLIENTS`).
const CARTS: usize = 200;
/// How long a node may take to stop after SIGTERM (it first waits up to 20 s for another
/// node to take its shards over, which nobody does when both stop).
const STOP_DEADLINE: Duration = Duration::from_secs(40);
/// Shards per node unchanged this long: the cluster has settled.
const SETTLED_AFTER: Duration = Duration::from_secs(3);

const SKU: &str = "SKU-MUG";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    emporium::install_crypto_provider();
    let Some(database) = ScratchDatabase::create("cluster", "emp_bench_cluster_").await else {
        return;
    };

    let hello = emporium_testkit::hello_world::start()
        .await
        .expect("hello-world server");
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let cluster = Cluster::start(&database.url, dir.path(), &client).await;
    let carts = Arc::new(cluster.prepare_carts().await);
    let owners = carts.iter().filter(|cart| cart.owner == 0).count();
    println!(
        "cluster: {} carts, {owners} owned by {}, {} by {}; {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests per scenario",
        carts.len(),
        cluster.nodes[0].id,
        carts.len() - owners,
        cluster.nodes[1].id,
    );

    let bases: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.base.clone()).collect());
    cluster
        .warm_up(&client, &format!("http://{hello}/"), &carts)
        .await;
    let marks = cluster.log_marks();
    let hello_url = format!("http://{hello}/");
    let mut results = Vec::new();
    results.push(
        cluster
            .measure("hello-world (first)", &client, move |_, _| {
                (Method::GET, hello_url.clone(), None)
            })
            .await,
    );
    for (name, forwarded, write) in [
        ("read, owner", false, false),
        ("read, forwarded", true, false),
        ("write, owner", false, true),
        ("write, forwarded", true, true),
    ] {
        let (carts, bases) = (Arc::clone(&carts), Arc::clone(&bases));
        let target = move |client: usize, n: usize| {
            // Client `client` owns carts client, client + CLIENTS, client + 2 CLIENTS, ...
            let cart = &carts[client + CLIENTS * (n % (CARTS / CLIENTS))];
            let node = if forwarded {
                1 - cart.owner
            } else {
                cart.owner
            };
            let base = &bases[node];
            if write {
                (
                    Method::PUT,
                    format!("{base}/v1/carts/{}/items/{SKU}", cart.id),
                    Some(format!(r#"{{"quantity":{}}}"#, n % 98 + 1)),
                )
            } else {
                (Method::GET, format!("{base}/v1/carts/{}", cart.id), None)
            }
        };
        results.push(cluster.measure(name, &client, target).await);
    }
    let hello_url = format!("http://{hello}/");
    results.push(
        cluster
            .measure("hello-world (last)", &client, move |_, _| {
                (Method::GET, hello_url.clone(), None)
            })
            .await,
    );

    let moved = cluster.owners_moved(&carts).await;
    report(&results, moved, carts.len());
    let logged = cluster.log_since(&marks);
    if !logged.is_empty() {
        println!("cluster: the nodes logged during the measurements:");
        for line in logged.iter().take(40) {
            println!("  {line}");
        }
        if logged.len() > 40 {
            println!("  … {} more lines", logged.len() - 40);
        }
    }

    cluster.stop().await;
    let _ = database.remove().await;
}

/// One scenario's figures.
struct Outcome {
    name: &'static str,
    done: usize,
    failed: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Cart asks the nodes forwarded meanwhile (`None`: not a cluster scenario).
    forwarded: Option<u64>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.done as f64 / self.secs
    }
}

fn report(results: &[Outcome], moved: usize, carts: usize) {
    let hello = results
        .iter()
        .filter(|outcome| outcome.name.starts_with("hello-world"))
        .map(Outcome::rps)
        .fold(0.0, f64::max);
    println!();
    println!(
        "cluster: {NODES} nodes on PostgreSQL, {CLIENTS} clients; ratios against the faster hello-world run ({hello:.0} req/s)"
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>10} {:>14} {:>7}",
        "scenario", "req/s", "p50 ms", "p99 ms", "vs hello", "forwards/req", "failed"
    );
    for outcome in results {
        println!(
            "{:<20} {:>9.0} {:>9.2} {:>9.2} {:>9.3}x {:>14} {:>7}",
            outcome.name,
            outcome.rps(),
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.rps() / hello,
            outcome.forwarded.map_or_else(
                || "-".to_owned(),
                |count| format!("{:.2}", count as f64 / outcome.done.max(1) as f64)
            ),
            outcome.failed,
        );
    }
    let rps = |name: &str| {
        results
            .iter()
            .find(|outcome| outcome.name == name)
            .map_or(f64::NAN, Outcome::rps)
    };
    let p50 = |name: &str| {
        results
            .iter()
            .find(|outcome| outcome.name == name)
            .map_or(f64::NAN, |outcome| outcome.p50_ms)
    };
    for kind in ["read", "write"] {
        let (owner, forwarded) = (format!("{kind}, owner"), format!("{kind}, forwarded"));
        println!(
            "cluster: {kind}: forwarded/owner throughput {:.2}, p50 {:+.2} ms",
            rps(&forwarded) / rps(&owner),
            p50(&forwarded) - p50(&owner),
        );
    }
    println!("cluster: carts whose owner changed during the run: {moved} of {carts}");
}

struct Cart {
    id: String,
    /// Index of the owning node.
    owner: usize,
}

struct NodeProcess {
    id: String,
    base: String,
    child: Child,
    log: PathBuf,
}

struct Cluster {
    nodes: Vec<NodeProcess>,
    client: reqwest::Client,
    admin: String,
}

impl Cluster {
    /// Node 1 alone first (it migrates the schema and seeds the demo catalog), then node 2
    /// with node 1 as its seed; returns once both see both up with every shard owned.
    async fn start(store_url: &str, dir: &Path, client: &reqwest::Client) -> Self {
        let secret = format!("bench-cluster-{}", uuid::Uuid::new_v4().simple());
        let jwt = format!("bench-jwt-{}", uuid::Uuid::new_v4().simple());
        let cluster_addrs: Vec<String> = (0..NODES)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut nodes = Vec::new();
        for index in 0..NODES {
            let id = format!("bench-{}", index + 1);
            let log = dir.join(format!("{id}.log"));
            let mut command = node_command(&NodeSpec {
                id: &id,
                cluster_addr: &cluster_addrs[index],
                secret: &secret,
                jwt: &jwt,
                store_url,
                data: &dir.join(&id),
                log: &log,
                seeds: &cluster_addrs[..index],
            });
            command.env("EMPORIUM_DEMO", "true");
            let mut child = command.spawn().expect("start emporium");
            let base = wait_for_url(&id, &log, &mut child, Duration::from_millis(100)).await;
            wait_ready(client, &id, &base).await;
            nodes.push(NodeProcess {
                id,
                base,
                child,
                log,
            });
        }
        let admin = login(client, &nodes[0]).await;
        let cluster = Self {
            nodes,
            client: client.clone(),
            admin,
        };
        cluster.wait_complete().await;
        cluster
    }

    async fn admin_get(&self, node: usize, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.nodes[node].base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("admin request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("admin json")
    }

    async fn wait_complete(&self) {
        let started = Instant::now();
        let ids: Vec<&str> = self.nodes.iter().map(|node| node.id.as_str()).collect();
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        wait_complete(started, &ids, &all, Duration::from_millis(200), |node| {
            self.admin_get(node, "/v1/admin/cluster")
        })
        .await;
        // Complete is not settled: the first node may still hold shards whose rendezvous
        // owner is the second, which claims them over the next rounds.
        let (last, _) = wait_settled(started, SETTLED_AFTER, || {
            self.admin_get(0, "/v1/admin/cluster")
        })
        .await;
        println!(
            "cluster: {} nodes ready in {:.1} s, shards per node unchanged for {SETTLED_AFTER:?}: {last}",
            self.nodes.len(),
            started.elapsed().as_secs_f64(),
        );
    }

    /// The end of each node's log so far (see [`Cluster::log_since`]).
    fn log_marks(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|node| std::fs::read(&node.log).map_or(0, |log| log.len()))
            .collect()
    }

    /// What the nodes logged after `marks` (warnings, and the cluster module's events such as
    /// shard ownership changes), prefixed with the node id.
    fn log_since(&self, marks: &[usize]) -> Vec<String> {
        let mut lines = Vec::new();
        for (node, mark) in self.nodes.iter().zip(marks) {
            let log = std::fs::read(&node.log).unwrap_or_default();
            let tail = String::from_utf8_lossy(log.get(*mark..).unwrap_or_default());
            lines.extend(
                tail.lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| format!("{}: {line}", node.id)),
            );
        }
        lines
    }

    /// `CARTS` carts with one line each, made through the nodes in turn, and their owners.
    async fn prepare_carts(&self) -> Vec<Cart> {
        let mut carts = Vec::new();
        for index in 0..CARTS {
            let base = &self.nodes[index % self.nodes.len()].base;
            let created: Value = self
                .client
                .post(format!("{base}/v1/carts"))
                .send()
                .await
                .expect("create cart")
                .json()
                .await
                .expect("cart json");
            let id = created["id"].as_str().expect("cart id").to_owned();
            let added = self
                .client
                .post(format!("{base}/v1/carts/{id}/items"))
                .json(&json!({"sku": SKU, "quantity": 1}))
                .send()
                .await
                .expect("add item");
            assert!(added.status().is_success(), "add item: {}", added.status());
            let owner = self.owner_of(&id).await;
            carts.push(Cart { id, owner });
        }
        carts
    }

    /// Index of the node holding the lease of `cart`'s shard.
    async fn owner_of(&self, cart: &str) -> usize {
        let location = self
            .admin_get(0, &format!("/v1/admin/actors/cart/{cart}"))
            .await;
        assert!(
            location["version"].as_u64().is_some_and(|v| v > 0),
            "cart {cart} not stored: {location}"
        );
        let owner = location["owner"].as_str().expect("an owner");
        self.nodes
            .iter()
            .position(|node| node.id == owner)
            .unwrap_or_else(|| panic!("unknown owner {owner}"))
    }

    async fn owners_moved(&self, carts: &[Cart]) -> usize {
        let mut moved = 0;
        for cart in carts {
            if self.owner_of(&cart.id).await != cart.owner {
                moved += 1;
            }
        }
        moved
    }

    /// Not measured: every client opens its connections to the hello-world server and to
    /// both nodes, and reads each of its carts through both nodes once.
    async fn warm_up(&self, client: &reqwest::Client, hello_url: &str, carts: &Arc<Vec<Cart>>) {
        let bases: Vec<String> = self.nodes.iter().map(|node| node.base.clone()).collect();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|index| {
                let (client, hello_url, bases) =
                    (client.clone(), hello_url.to_owned(), bases.clone());
                let carts = Arc::clone(carts);
                tokio::spawn(async move {
                    for n in 0..CARTS / CLIENTS {
                        let cart = &carts[index + CLIENTS * n];
                        let urls = bases
                            .iter()
                            .map(|base| format!("{base}/v1/carts/{}", cart.id))
                            .chain([hello_url.clone()]);
                        for url in urls {
                            if let Ok(response) = client.get(url).send().await {
                                let _ = response.bytes().await;
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Cart asks forwarded so far, summed over the nodes.
    async fn forwarded_total(&self) -> u64 {
        let mut total = 0.0;
        for node in &self.nodes {
            let text = self
                .client
                .get(format!("{}/metrics", node.base))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            total += text
                .lines()
                .filter(|line| {
                    line.starts_with("emporium_forwarded_requests_total{")
                        && line.contains(r#"kind="cart""#)
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total as u64
    }

    /// `REQUESTS_PER_CLIENT` requests from each of `CLIENTS` clients (request `n` of client
    /// `c` is `target(c, n)`), at most `TIME_CAP`.
    async fn measure(
        &self,
        name: &'static str,
        client: &reqwest::Client,
        target: impl Fn(usize, usize) -> (Method, String, Option<String>) + Send + Sync + 'static,
    ) -> Outcome {
        let cluster_scenario = !name.starts_with("hello-world");
        let forwarded_before = if cluster_scenario {
            Some(self.forwarded_total().await)
        } else {
            None
        };
        let target = Arc::new(target);
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|index| {
                let (client, target) = (client.clone(), Arc::clone(&target));
                tokio::spawn(async move {
                    let mut latencies_us = Vec::with_capacity(REQUESTS_PER_CLIENT);
                    let mut failed = 0usize;
                    for n in 0..REQUESTS_PER_CLIENT {
                        if started.elapsed() >= TIME_CAP {
                            break;
                        }
                        let (method, url, body) = target(index, n);
                        let mut request = client.request(method, url);
                        if let Some(body) = body {
                            request = request
                                .header("content-type", "application/json")
                                .body(body);
                        }
                        let sent = Instant::now();
                        let ok = match request.send().await {
                            Ok(response) => {
                                let ok = response.status().is_success();
                                ok & response.bytes().await.is_ok()
                            }
                            Err(_) => false,
                        };
                        let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                        if ok {
                            latencies_us.push(took);
                        } else {
                            failed += 1;
                        }
                    }
                    (latencies_us, failed)
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(CLIENTS * REQUESTS_PER_CLIENT);
        let mut failed = 0;
        for task in tasks {
            let (mine, failures) = task.await.expect("client task");
            latencies.extend(mine);
            failed += failures;
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
            f64::from(latencies[rank - 1]) / 1000.0
        };
        let forwarded = match forwarded_before {
            Some(before) => Some(self.forwarded_total().await.saturating_sub(before)),
            None => None,
        };
        let outcome = Outcome {
            name,
            done: latencies.len(),
            failed,
            secs,
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            forwarded,
        };
        let capped = if started.elapsed() >= TIME_CAP {
            " (time cap reached)"
        } else {
            ""
        };
        println!(
            "cluster: {name}: {} requests in {secs:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, failed {failed}{capped}",
            outcome.done,
            outcome.rps(),
            outcome.p50_ms,
            outcome.p99_ms,
        );
        outcome
    }

    /// SIGTERM every node at once and wait for them (bounded); SIGKILL what is left.
    async fn stop(mut self) {
        let started = Instant::now();
        for node in &self.nodes {
            if let Some(pid) = node.child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) on our own child's pid; no memory is involved.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        for node in &mut self.nodes {
            match tokio::time::timeout(STOP_DEADLINE, node.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(status) => println!("cluster: {} exited: {status:?}", node.id),
                Err(_) => {
                    println!(
                        "cluster: {} still running {STOP_DEADLINE:?} after SIGTERM: killed",
                        node.id
                    );
                    let _ = node.child.kill().await;
                }
            }
        }
        println!(
            "cluster: nodes stopped in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

async fn login(client: &reqwest::Client, node: &NodeProcess) -> String {
    let answer: Value = client
        .post(format!("{}/v1/auth/login", node.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("admin login: {answer}"))
        .to_owned()
}
