//! Failover benchmark: how long a `kill -9` keeps a dead owner's carts from answering, over
//! repeated kills (a test measures one), and what a rolling restart costs, in the same run.
//!
//! Three `emporium` processes (the release binary) form a cluster on a fresh PostgreSQL
//! database; [`CARTS`] guest carts are made, and products `SKU-FO-00`… to write into them.
//!
//! - **Failover rounds** (`FAILOVER_ROUNDS`, default [`DEFAULT_ROUNDS`]): the victim is node
//!   `round % 3`. Its carts are found through `GET /v1/admin/actors/cart/{id}` (`owner`); a
//!   load of reads and writes on them runs through the two survivors; the victim gets
//!   `SIGKILL`; one probe per cart reads it through the survivors (a 2 s client timeout, again
//!   [`PROBE_EVERY`] after each failure) and the time from the signal to its first successful
//!   answer is the cart's failover time. Per round: the median and the worst over the victim's
//!   carts, the survivors' `emporium_failover_seconds` observations made during the round
//!   (count and mean: each survivor records one per dead holder it takes shards from), the
//!   first acknowledged write to one of the carts sent after the kill, and the load's
//!   outcomes. Then the victim is started again with the same node id (a new incarnation) and
//!   the round ends once every node sees all three up and alive with every shard owned
//!   (`rejoin`) and the shards per node have not changed for [`SETTLED_AFTER`] (`settled`).
//! - **Rolling restart**: a load on every cart through the nodes in rotation; each node in
//!   turn is taken out of rotation, gets `SIGTERM` (it hands its shards over and exits 0),
//!   is started again, and is put back once the cluster is whole. Every request the load
//!   sends that is not answered 2xx is a failure (the target is none); the duration runs
//!   from the first `SIGTERM` to the last node back in rotation.
//! - **Acknowledged writes**: each write adds one line of a SKU never written to that cart
//!   before (quantity 1), and every write's outcome is kept. At the end every cart is read
//!   through every node: the acknowledged lines must all be there (missing ones are counted;
//!   the figure must be 0), once each; a write answered 504 or lost after it was sent may or
//!   may not have been applied (counted); a refused one must not have been.
//!
//! Bounded: at most [`MAX_ROUNDS`] rounds, [`WRITES_PER_ROUND`] writes per cart per round and
//! [`ROLLING_WRITES`] per cart in the rolling restart (and never more than [`PRODUCTS`] per
//! cart in all: a cart holds at most 50 lines), every load stops by itself after a time cap,
//! every wait has a deadline.
//!
//! The server is `EMPORIUM_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`;
//! `scripts/services.sh up` starts one); when it cannot be reached the bench says `skipped`.
//! The database `emp_bench_failover_<pid>` is dropped at the end (and leftovers of dead runs at
//! the next start). Node logs go to a temporary directory; their warnings are summed up at the
//! end. The process exits 1 if an acknowledged write went missing.
//!
//! Run: `cargo bench -p emporium --bench failover` (`FAILOVER_ROUNDS=10` for more kills).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use cluster_kit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, NodeSpec, READY_DEADLINE, ScratchDatabase, free_port,
    node_command, shards_by_node, wait_complete, wait_for_url, wait_ready, wait_settled,
};

#[path = "support/cluster.rs"]
mod cluster_kit;

/// Nodes in the cluster.
const NODES: usize = 3;
/// Guest carts made at the start (each node owns about a third of them).
const CARTS: usize = 60;
/// Kills when `FAILOVER_ROUNDS` is not set ...
const DEFAULT_ROUNDS: usize = 5;
/// ... and at most, whatever it says.
const MAX_ROUNDS: usize = 30;
/// Products `SKU-FO-00`…: the SKUs written to each cart, in order, one write each (a cart
/// holds at most 50 lines).
const PRODUCTS: usize = 48;
/// Writes per victim cart per failover round, at most ...
const WRITES_PER_ROUND: usize = 8;
/// ... one every this long.
const ROUND_WRITE_EVERY: Duration = Duration::from_millis(1500);
/// Writes per cart during the rolling restart, at most ...
const ROLLING_WRITES: usize = 14;
/// ... one every this long.
const ROLLING_WRITE_EVERY: Duration = Duration::from_secs(3);
/// Load workers (each one request at a time, over its own carts) in a failover round ...
const ROUND_WORKERS: usize = 4;
/// ... and in the rolling restart.
const ROLLING_WORKERS: usize = 6;
/// A load worker's pause between two turns (a read, and a write when one is due).
const PACE: Duration = Duration::from_millis(100);
/// Turns a load worker takes at most, whatever its time cap.
const MAX_TURNS: usize = 20_000;
/// The load of a failover round runs this long before the kill ...
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(2);
/// ... and this long after the last probe is served.
const LOAD_AFTER_SERVED: Duration = Duration::from_secs(2);
/// A load stops by itself after this, whatever happens.
const LOAD_CAP: Duration = Duration::from_secs(240);
/// A probe gives up on a read after this (a read abandoned changes nothing) ...
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// ... reads again this long after a failure ...
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// ... and gives up on the cart this long after the kill.
const PROBE_LIMIT: Duration = Duration::from_secs(30);
/// Longer than the node's request deadline (10 s): a request the node gives up on is
/// answered by the node, not cut by the client.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// A node that does not take a connection within this is treated as down by the balancer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a node may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(40);
/// Shards per node unchanged this long: the cluster has settled.
const SETTLED_AFTER: Duration = Duration::from_secs(3);
/// How long the final check retries a cart that does not read 200.
const READ_BACK_DEADLINE: Duration = Duration::from_secs(30);
/// PostgreSQL connections per node (the default 16 times three would crowd a server shared
/// with test runs).
const POOL_SIZE: &str = "8";

const DATABASE_PREFIX: &str = "emp_bench_failover_";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    emporium::install_crypto_provider();
    let rounds = match std::env::var("FAILOVER_ROUNDS") {
        Err(_) => DEFAULT_ROUNDS,
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(rounds) if (1..=MAX_ROUNDS).contains(&rounds) => rounds,
            _ => panic!("FAILOVER_ROUNDS={value}: expected a whole number from 1 to {MAX_ROUNDS}"),
        },
    };
    let Some(database) = ScratchDatabase::create("failover", DATABASE_PREFIX).await else {
        return;
    };

    // In a task of its own, so that the database is dropped even when the run panics (the
    // node processes are killed when their handles drop).
    let outcome = tokio::spawn(run(database.url.clone(), rounds)).await;
    let name = database.name.clone();
    match database.remove().await {
        Ok(()) => println!("failover: database {name} dropped"),
        Err(error) => println!("failover: dropping database {name}: {error}"),
    }
    match outcome {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the run was cancelled: {error}"),
    }
}

/// The whole measurement; `false` when an acknowledged write went missing.
async fn run(store_url: String, rounds: usize) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut cluster = Cluster::start(&store_url, dir.path()).await;
    cluster.create_products().await;
    let ledger: Arc<Ledger> = Arc::new(
        cluster
            .create_carts()
            .await
            .into_iter()
            .map(|id| {
                Mutex::new(CartState {
                    id,
                    next_sku: 0,
                    writes: Vec::new(),
                })
            })
            .collect(),
    );
    println!(
        "failover: {NODES} nodes on PostgreSQL, {CARTS} carts, {rounds} kill -9 rounds, then a rolling restart"
    );

    let mut results = Vec::new();
    for round in 0..rounds {
        let result = cluster.failover_round(round, &ledger).await;
        result.print_line();
        results.push(result);
    }
    let rolling = cluster.rolling_restart(&ledger).await;
    let check = cluster.check_carts(&ledger).await;

    println!();
    report_rounds(&results);
    println!();
    rolling.print();
    println!();
    check.print();
    cluster.print_warnings();
    cluster.kill_all().await;
    println!(
        "failover: whole run {:.0} s; load average now: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    let stale: usize = results
        .iter()
        .map(|round| round.load.stale_reads)
        .sum::<usize>()
        + rolling.load.stale_reads;
    check.missing.is_empty() && stale == 0
}

// ---------------------------------------------------------------------------------------
// The carts and what was written to them.

/// One cart: the SKUs written so far and how each write came out.
struct CartState {
    id: String,
    /// The next SKU to write (an index into the products).
    next_sku: usize,
    writes: Vec<Write>,
}

type Ledger = Vec<Mutex<CartState>>;

struct Write {
    sku: String,
    outcome: Outcome,
    /// "round 3", "rolling restart".
    phase: String,
    node: String,
    sent_at: Instant,
    done_at: Instant,
    reply: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sku(index: usize) -> String {
    format!("SKU-FO-{index:02}")
}

// ---------------------------------------------------------------------------------------
// The load balancer and the load.

/// What a client may conclude about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 2xx.
    Acked,
    /// A definite refusal: any other status but 504, or never sent.
    Refused,
    /// 504 or no answer after it was sent: a write may or may not have been applied.
    Unknown,
}

enum Reply {
    Answer {
        status: u16,
        body: String,
    },
    /// Sent, but no answer came back (client timeout, connection reset).
    Lost(String),
    /// No node took the connection: nothing was sent.
    NotSent(String),
}

struct Exchange {
    node: String,
    sent_at: Instant,
    done_at: Instant,
    reply: Reply,
}

impl Exchange {
    fn outcome(&self) -> Outcome {
        match &self.reply {
            Reply::Answer { status, .. } if (200..300).contains(status) => Outcome::Acked,
            Reply::Answer { status: 504, .. } | Reply::Lost(_) => Outcome::Unknown,
            Reply::Answer { .. } | Reply::NotSent(_) => Outcome::Refused,
        }
    }

    /// The node, when it was sent (seconds after `since`), how long it took, the answer.
    fn describe(&self, since: Instant) -> String {
        let reply = match &self.reply {
            Reply::Answer { status, body } => {
                format!("{status} {}", body.chars().take(400).collect::<String>())
            }
            Reply::Lost(error) => format!("lost: {error}"),
            Reply::NotSent(error) => format!("not sent: {error}"),
        };
        format!(
            "via {} sent at +{:.2} s, after {:.2} s: {reply}",
            self.node,
            self.sent_at.saturating_duration_since(since).as_secs_f64(),
            (self.done_at - self.sent_at).as_secs_f64()
        )
    }
}

/// Round robin over the nodes in rotation; a connection refused (nothing sent) moves on to
/// the next node, a few times at most. Once a request was sent, whatever happens is its
/// outcome.
#[derive(Clone)]
struct Balancer {
    http: reqwest::Client,
    targets: Arc<Mutex<Vec<(String, String)>>>,
    next: Arc<AtomicUsize>,
}

impl Balancer {
    fn new(http: reqwest::Client, targets: Vec<(String, String)>) -> Self {
        Self {
            http,
            targets: Arc::new(Mutex::new(targets)),
            next: Arc::default(),
        }
    }

    /// The same rotation through another client.
    fn with_client(&self, http: reqwest::Client) -> Self {
        Self {
            http,
            targets: Arc::clone(&self.targets),
            next: Arc::clone(&self.next),
        }
    }

    fn add(&self, id: &str, base: &str) {
        let mut targets = lock(&self.targets);
        targets.retain(|(node, _)| node != id);
        targets.push((id.to_owned(), base.to_owned()));
    }

    fn remove(&self, id: &str) {
        lock(&self.targets).retain(|(node, _)| node != id);
    }

    fn pick(&self) -> Option<(String, String)> {
        let targets = lock(&self.targets);
        if targets.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(targets[turn % targets.len()].clone())
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Exchange {
        let sent_at = Instant::now();
        let mut refused = String::from("no node in rotation");
        for _ in 0..6 {
            let Some((node, base)) = self.pick() else {
                break;
            };
            let mut request = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(body) = body {
                request = request.json(body);
            }
            let reply = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text().await {
                        Ok(body) => Reply::Answer { status, body },
                        Err(error) => Reply::Lost(format!("{status}, body lost: {error}")),
                    }
                }
                Err(error) if error.is_connect() => {
                    refused = format!("{node}: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => Reply::Lost(error.to_string()),
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
}

/// What a load does: over `carts` (indexes into the ledger), each worker one request at a
/// time over its own carts: a read of the next cart at every turn, and before it a write
/// (the cart's next SKU) when one is due.
struct LoadPlan {
    carts: Vec<usize>,
    workers: usize,
    write_every: Duration,
    writes_per_cart: usize,
    phase: String,
}

/// Counts of a load.
#[derive(Default)]
struct LoadStats {
    reads: usize,
    reads_failed: usize,
    /// Successful reads that missed an acknowledged write (must stay 0).
    stale_reads: usize,
    writes_acked: usize,
    writes_refused: usize,
    writes_unknown: usize,
    /// Writes due when the cart had no SKU left (it holds [`PRODUCTS`] lines).
    writes_skipped: usize,
    /// The first few requests that failed.
    failures: Vec<String>,
}

impl LoadStats {
    fn requests(&self) -> usize {
        self.reads + self.writes_acked + self.writes_refused + self.writes_unknown
    }

    fn failed(&self) -> usize {
        self.reads_failed + self.stale_reads + self.writes_refused + self.writes_unknown
    }

    fn merge(&mut self, other: LoadStats) {
        self.reads += other.reads;
        self.reads_failed += other.reads_failed;
        self.stale_reads += other.stale_reads;
        self.writes_acked += other.writes_acked;
        self.writes_refused += other.writes_refused;
        self.writes_unknown += other.writes_unknown;
        self.writes_skipped += other.writes_skipped;
        for failure in other.failures {
            if self.failures.len() < 8 {
                self.failures.push(failure);
            }
        }
    }

    fn note_failure(&mut self, what: String) {
        if self.failures.len() < 8 {
            self.failures.push(what);
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} requests: writes {} acked, {} refused, {} unknown{}; reads {} ({} failed, {} stale)",
            self.requests(),
            self.writes_acked,
            self.writes_refused,
            self.writes_unknown,
            if self.writes_skipped > 0 {
                format!(" ({} due but the cart was full)", self.writes_skipped)
            } else {
                String::new()
            },
            self.reads,
            self.reads_failed,
            self.stale_reads,
        )
    }
}

struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<LoadStats>>,
    /// When it started: the failures' times are given from here.
    started: Instant,
}

impl Load {
    fn start(balancer: &Balancer, ledger: &Arc<Ledger>, plan: LoadPlan) -> Load {
        let (stop, stopped) = watch::channel(false);
        let started = Instant::now();
        let deadline = started + LOAD_CAP;
        let plan = Arc::new(plan);
        let workers = (0..plan.workers.max(1))
            .map(|worker| {
                let mine: Vec<usize> = plan
                    .carts
                    .iter()
                    .skip(worker)
                    .step_by(plan.workers.max(1))
                    .copied()
                    .collect();
                tokio::spawn(load_worker(
                    balancer.clone(),
                    Arc::clone(ledger),
                    Arc::clone(&plan),
                    mine,
                    stopped.clone(),
                    started,
                    deadline,
                ))
            })
            .collect();
        Load {
            stop,
            workers,
            started,
        }
    }

    /// Stop (requests in flight finish) and add up what happened.
    async fn stop(self) -> LoadStats {
        self.stop.send_replace(true);
        let mut stats = LoadStats::default();
        for worker in self.workers {
            stats.merge(worker.await.expect("load worker"));
        }
        stats
    }
}

async fn load_worker(
    balancer: Balancer,
    ledger: Arc<Ledger>,
    plan: Arc<LoadPlan>,
    mine: Vec<usize>,
    mut stopped: watch::Receiver<bool>,
    since: Instant,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    if mine.is_empty() {
        return stats;
    }
    let start = Instant::now();
    let mut written = vec![0usize; mine.len()];
    // Spread the first writes over one interval.
    let mut next_write: Vec<Instant> = (0..mine.len())
        .map(|k| start + plan.write_every.mul_f64(k as f64 / mine.len() as f64))
        .collect();
    for turn in 0..MAX_TURNS {
        if *stopped.borrow() || Instant::now() >= deadline {
            break;
        }
        let k = turn % mine.len();
        let cart = &ledger[mine[k]];
        if Instant::now() >= next_write[k] && written[k] < plan.writes_per_cart {
            written[k] += 1;
            next_write[k] = Instant::now() + plan.write_every;
            let (id, sku) = {
                let mut state = lock(cart);
                let sku = (state.next_sku < PRODUCTS).then(|| sku(state.next_sku));
                state.next_sku += usize::from(sku.is_some());
                (state.id.clone(), sku)
            };
            if let Some(sku) = sku {
                let body = json!({"sku": sku, "quantity": 1});
                let exchange = balancer
                    .send(Method::POST, &format!("/v1/carts/{id}/items"), Some(&body))
                    .await;
                let outcome = exchange.outcome();
                match outcome {
                    Outcome::Acked => stats.writes_acked += 1,
                    Outcome::Refused => stats.writes_refused += 1,
                    Outcome::Unknown => stats.writes_unknown += 1,
                }
                if outcome != Outcome::Acked {
                    stats.note_failure(format!("add {sku} to {id} {}", exchange.describe(since)));
                }
                lock(cart).writes.push(Write {
                    sku,
                    outcome,
                    phase: plan.phase.clone(),
                    reply: exchange.describe(since),
                    node: exchange.node,
                    sent_at: exchange.sent_at,
                    done_at: exchange.done_at,
                });
            } else {
                stats.writes_skipped += 1;
            }
        }
        let id = lock(cart).id.clone();
        let exchange = balancer
            .send(Method::GET, &format!("/v1/carts/{id}"), None)
            .await;
        stats.reads += 1;
        if exchange.outcome() != Outcome::Acked {
            stats.reads_failed += 1;
            stats.note_failure(format!("read {id} {}", exchange.describe(since)));
        } else if let Some(missed) = stale_read(&lock(cart), &exchange) {
            stats.stale_reads += 1;
            stats.note_failure(format!(
                "stale read of {id}: misses {missed} {}",
                exchange.describe(since)
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(PACE) => {}
            _ = stopped.changed() => {}
        }
    }
    stats
}

/// A successful read that misses a line whose write was acknowledged before the read was
/// sent: the SKUs it misses, comma-separated.
fn stale_read(cart: &CartState, read: &Exchange) -> Option<String> {
    let Reply::Answer { status: 200, body } = &read.reply else {
        return None;
    };
    let lines = lines_of(&serde_json::from_str(body).ok()?);
    let missed: Vec<&str> = cart
        .writes
        .iter()
        .filter(|write| write.outcome == Outcome::Acked && write.done_at < read.sent_at)
        .filter(|write| !lines.contains_key(&write.sku))
        .map(|write| write.sku.as_str())
        .collect();
    (!missed.is_empty()).then(|| missed.join(", "))
}

/// For each cart, how long after `since` a read of it through `probe` first succeeded
/// (probed concurrently); `None` if none did within [`PROBE_LIMIT`].
async fn times_until_served(
    probe: &Balancer,
    carts: &[String],
    since: Instant,
) -> Vec<Option<Duration>> {
    let probes: Vec<_> = carts
        .iter()
        .map(|cart| {
            let (probe, path) = (probe.clone(), format!("/v1/carts/{cart}"));
            tokio::spawn(async move {
                loop {
                    if since.elapsed() > PROBE_LIMIT {
                        return None;
                    }
                    let exchange = probe.send(Method::GET, &path, None).await;
                    if exchange.outcome() == Outcome::Acked {
                        return Some(exchange.done_at - since);
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            })
        })
        .collect();
    let mut served = Vec::new();
    for probe in probes {
        served.push(probe.await.expect("probe task"));
    }
    served
}

// ---------------------------------------------------------------------------------------
// The cluster.

struct Node {
    id: String,
    cluster_addr: String,
    base: String,
    child: Option<Child>,
    /// Starts so far (each start is a new incarnation with its own log file).
    starts: usize,
    logs: Vec<PathBuf>,
}

struct Cluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
    admin: Mutex<String>,
    store_url: String,
    dir: PathBuf,
    secret: String,
    jwt: String,
}

/// Survivors' `emporium_failover_seconds` (count, sum) per node.
type FailoverMetric = Vec<(f64, f64)>;

impl Cluster {
    /// Node 1 alone first (it migrates the schema), then the others with the running ones as
    /// seeds; returns once the cluster is whole and settled.
    async fn start(store_url: &str, dir: &Path) -> Self {
        let mut cluster = Self {
            nodes: (0..NODES)
                .map(|index| Node {
                    id: format!("bench-{}", index + 1),
                    cluster_addr: format!("127.0.0.1:{}", free_port()),
                    base: String::new(),
                    child: None,
                    starts: 0,
                    logs: Vec::new(),
                })
                .collect(),
            http: http_client(CLIENT_TIMEOUT),
            admin: Mutex::new(String::new()),
            store_url: store_url.to_owned(),
            dir: dir.to_owned(),
            secret: format!("bench-failover-{}", uuid::Uuid::new_v4().simple()),
            jwt: format!("bench-jwt-{}-0123456789", uuid::Uuid::new_v4().simple()),
        };
        let started = Instant::now();
        for index in 0..NODES {
            cluster.start_node(index).await;
        }
        *lock(&cluster.admin) = cluster.login().await;
        let (whole, settled) = cluster.wait_whole(true).await;
        println!(
            "failover: {NODES} nodes started in {:.1} s (whole {:.1} s after the last start, settled {:.1} s later): {}",
            started.elapsed().as_secs_f64(),
            whole.as_secs_f64(),
            settled.as_secs_f64(),
            cluster.shards_by_node().await,
        );
        cluster
    }

    fn running(&self) -> Vec<usize> {
        (0..NODES)
            .filter(|&index| self.nodes[index].child.is_some())
            .collect()
    }

    /// Start node `index` (again) with the running nodes as seeds; returns once it answers
    /// `/readyz`.
    async fn start_node(&mut self, index: usize) {
        let seeds: Vec<String> = self
            .running()
            .into_iter()
            .filter(|&other| other != index)
            .map(|other| self.nodes[other].cluster_addr.clone())
            .collect();
        let node = &mut self.nodes[index];
        assert!(node.child.is_none(), "{} is running", node.id);
        node.starts += 1;
        let log = self.dir.join(format!("{}-{}.log", node.id, node.starts));
        let mut command = node_command(&NodeSpec {
            id: &node.id,
            cluster_addr: &node.cluster_addr,
            secret: &self.secret,
            jwt: &self.jwt,
            store_url: &self.store_url,
            data: &self.dir.join(&node.id),
            log: &log,
            seeds: &seeds,
        });
        command
            .env("EMPORIUM_POSTGRES_POOL_SIZE", POOL_SIZE)
            // The bench makes its own products; no demo seeding racing between nodes.
            .env("EMPORIUM_DEMO", "false");
        let mut child = command.spawn().expect("start emporium");
        node.base = wait_for_url(&node.id, &log, &mut child, Duration::from_millis(50)).await;
        node.child = Some(child);
        node.logs.push(log);
        wait_ready(&self.http, &node.id, &node.base).await;
    }

    /// `SIGKILL` node `index` and reap it; returns the instant just before the signal.
    async fn kill9(&mut self, index: usize) -> Instant {
        let mut child = self.nodes[index].child.take().expect("a running node");
        let pid = child.id().and_then(|pid| i32::try_from(pid).ok());
        let killed_at = Instant::now();
        if let Some(pid) = pid {
            // SAFETY: kill(2) on our own child's pid, not reaped yet; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = child.wait().await;
        killed_at
    }

    /// `SIGTERM` node `index` and wait for it to exit (`SIGKILL` after [`STOP_DEADLINE`]);
    /// returns how it ended.
    async fn terminate(&mut self, index: usize) -> String {
        let mut child = self.nodes[index].child.take().expect("a running node");
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) on our own child's pid, not reaped yet; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(STOP_DEADLINE, child.wait()).await {
            Ok(Ok(status)) if status.success() => "exit 0".to_owned(),
            Ok(status) => format!("{status:?}"),
            Err(_) => {
                let _ = child.kill().await;
                format!("still running {STOP_DEADLINE:?} after SIGTERM: killed")
            }
        }
    }

    async fn kill_all(&mut self) {
        for index in self.running() {
            self.kill9(index).await;
        }
    }

    async fn login(&self) -> String {
        let started = Instant::now();
        loop {
            for index in self.running() {
                let answer = self
                    .http
                    .post(format!("{}/v1/auth/login", self.nodes[index].base))
                    .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                    .send()
                    .await;
                if let Ok(response) = answer
                    && response.status().is_success()
                    && let Ok(body) = response.json::<Value>().await
                    && let Some(token) = body["access_token"].as_str()
                {
                    return token.to_owned();
                }
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "the admin cannot log in"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET path` with the admin token on node `index` (logging in again once on a 401).
    async fn admin_get(&self, index: usize, path: &str) -> Value {
        for attempt in 0..2 {
            let token = lock(&self.admin).clone();
            let response = self
                .http
                .get(format!("{}{path}", self.nodes[index].base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap_or_else(|error| panic!("{path} on {}: {error}", self.nodes[index].id));
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                let token = self.login().await;
                *lock(&self.admin) = token;
                continue;
            }
            assert!(status.is_success(), "{path}: {status}");
            return response.json().await.expect("admin json");
        }
        unreachable!("the second attempt returns or panics")
    }

    /// The owner of `cart` as node `via` sees it.
    async fn owner_of(&self, via: usize, cart: &str) -> Option<String> {
        let location = self
            .admin_get(via, &format!("/v1/admin/actors/cart/{cart}"))
            .await;
        location["owner"].as_str().map(str::to_owned)
    }

    async fn shards_by_node(&self) -> String {
        let via = self.running()[0];
        shards_by_node(&self.admin_get(via, "/v1/admin/cluster").await)
    }

    /// Wait until every running node sees every node up and alive with every shard owned
    /// (returns how long that took), then, when `settle`, until the shards per node have not
    /// changed for [`SETTLED_AFTER`] (returns how much longer that took).
    async fn wait_whole(&self, settle: bool) -> (Duration, Duration) {
        let started = Instant::now();
        let ids: Vec<&str> = self.nodes.iter().map(|node| node.id.as_str()).collect();
        let running = self.running();
        wait_complete(
            started,
            &ids,
            &running,
            Duration::from_millis(100),
            |index| self.admin_get(index, "/v1/admin/cluster"),
        )
        .await;
        let whole = started.elapsed();
        if !settle {
            return (whole, Duration::ZERO);
        }
        let (_, since) = wait_settled(started, SETTLED_AFTER, || {
            self.admin_get(running[0], "/v1/admin/cluster")
        })
        .await;
        // The settled time is when the shards last moved, not when that was confirmed.
        let settled = since
            .saturating_duration_since(started)
            .saturating_sub(whole);
        (whole, settled)
    }

    /// Products `SKU-FO-00`…, made through the nodes in turn.
    async fn create_products(&self) {
        let token = lock(&self.admin).clone();
        for index in 0..PRODUCTS {
            let base = &self.nodes[index % NODES].base;
            let response = self
                .http
                .put(format!("{base}/v1/admin/products/{}", sku(index)))
                .bearer_auth(&token)
                .json(&json!({
                    "name": format!("Failover bench product {index}"),
                    "description": "A product of the failover bench",
                    "price_cents": 100 + index as i64,
                    "currency": "USD",
                    "category": "bench",
                }))
                .send()
                .await
                .expect("create product");
            assert!(
                response.status().is_success(),
                "product {}: {}",
                sku(index),
                response.status()
            );
        }
    }

    /// [`CARTS`] guest carts, made through the nodes in turn.
    async fn create_carts(&self) -> Vec<String> {
        let mut carts = Vec::new();
        for index in 0..CARTS {
            let base = &self.nodes[index % NODES].base;
            let response = self
                .http
                .post(format!("{base}/v1/carts"))
                .send()
                .await
                .expect("create cart");
            assert!(
                response.status().is_success(),
                "create cart: {}",
                response.status()
            );
            let created: Value = response.json().await.expect("cart json");
            carts.push(created["id"].as_str().expect("cart id").to_owned());
        }
        carts
    }

    /// `emporium_failover_seconds` (count, sum) of each of `nodes`.
    async fn failover_metric(&self, nodes: &[usize]) -> FailoverMetric {
        let mut values = Vec::new();
        for &index in nodes {
            let text = self
                .http
                .get(format!("{}/metrics", self.nodes[index].base))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            values.push((
                metric_sum(&text, "emporium_failover_seconds_count"),
                metric_sum(&text, "emporium_failover_seconds_sum"),
            ));
        }
        values
    }

    /// One kill: see the module documentation.
    async fn failover_round(&mut self, round: usize, ledger: &Arc<Ledger>) -> Round {
        let victim = round % NODES;
        let victim_id = self.nodes[victim].id.clone();
        let survivors: Vec<usize> = (0..NODES).filter(|&index| index != victim).collect();
        let mut carts = Vec::new();
        for (index, cart) in ledger.iter().enumerate() {
            let id = lock(cart).id.clone();
            if self.owner_of(survivors[0], &id).await.as_deref() == Some(victim_id.as_str()) {
                carts.push(index);
            }
        }
        let ids: Vec<String> = carts
            .iter()
            .map(|&index| lock(&ledger[index]).id.clone())
            .collect();
        let phase = format!("round {}", round + 1);
        let balancer = Balancer::new(
            self.http.clone(),
            survivors
                .iter()
                .map(|&index| (self.nodes[index].id.clone(), self.nodes[index].base.clone()))
                .collect(),
        );
        let metric_before = self.failover_metric(&survivors).await;
        let load = Load::start(
            &balancer,
            ledger,
            LoadPlan {
                workers: ROUND_WORKERS.min(carts.len()),
                carts: carts.clone(),
                write_every: ROUND_WRITE_EVERY,
                writes_per_cart: WRITES_PER_ROUND,
                phase: phase.clone(),
            },
        );
        tokio::time::sleep(LOAD_BEFORE_KILL).await;

        let killed_at = self.kill9(victim).await;
        let probe = balancer.with_client(http_client(PROBE_TIMEOUT));
        let served = times_until_served(&probe, &ids, killed_at).await;
        tokio::time::sleep(LOAD_AFTER_SERVED).await;
        let load = load.stop().await;
        let metric_after = self.failover_metric(&survivors).await;
        let mut left_on_victim = 0;
        for id in &ids {
            if self.owner_of(survivors[0], id).await.as_deref() == Some(victim_id.as_str()) {
                left_on_victim += 1;
            }
        }
        let first_write = carts
            .iter()
            .flat_map(|&index| {
                lock(&ledger[index])
                    .writes
                    .iter()
                    .filter(|write| {
                        write.phase == phase
                            && write.sent_at >= killed_at
                            && write.outcome == Outcome::Acked
                    })
                    .map(|write| write.done_at - killed_at)
                    .min()
            })
            .min();

        let restarting = Instant::now();
        self.start_node(victim).await;
        let serving = restarting.elapsed();
        let (whole, settled) = self.wait_whole(true).await;
        Round {
            number: round + 1,
            victim: victim_id,
            served,
            metric: metric_before
                .iter()
                .zip(&metric_after)
                .map(|(before, after)| (after.0 - before.0, after.1 - before.1))
                .collect(),
            first_write,
            left_on_victim,
            load,
            rejoin: serving + whole,
            settled,
            shards: self.shards_by_node().await,
        }
    }

    /// `SIGTERM` and restart each node in turn under a load through the others.
    async fn rolling_restart(&mut self, ledger: &Arc<Ledger>) -> Rolling {
        let balancer = Balancer::new(
            self.http.clone(),
            self.nodes
                .iter()
                .map(|node| (node.id.clone(), node.base.clone()))
                .collect(),
        );
        let load = Load::start(
            &balancer,
            ledger,
            LoadPlan {
                carts: (0..ledger.len()).collect(),
                workers: ROLLING_WORKERS,
                write_every: ROLLING_WRITE_EVERY,
                writes_per_cart: ROLLING_WRITES,
                phase: "rolling restart".to_owned(),
            },
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let mut steps = Vec::new();
        for index in 0..NODES {
            let id = self.nodes[index].id.clone();
            // The balancer stops sending to a node before it is stopped.
            balancer.remove(&id);
            let stopping = Instant::now();
            let sigterm_at = stopping - load.started;
            let exit = self.terminate(index).await;
            let drained = stopping.elapsed();
            let restarting = Instant::now();
            self.start_node(index).await;
            self.wait_whole(false).await;
            balancer.add(&id, &self.nodes[index].base);
            let back = restarting.elapsed();
            println!(
                "failover: rolling restart: {id} SIGTERM at +{:.2} s, stopped in {:.2} s ({exit}), back and the cluster whole in {:.2} s",
                sigterm_at.as_secs_f64(),
                drained.as_secs_f64(),
                back.as_secs_f64()
            );
            steps.push(Step {
                id,
                sigterm_at,
                exit,
                drained,
                back,
            });
            if index + 1 < NODES {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let duration = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let load = load.stop().await;
        // A settled cluster for the read-back.
        self.wait_whole(true).await;
        Rolling {
            steps,
            duration,
            load,
        }
    }

    /// Every cart read through every node and checked against its writes.
    async fn check_carts(&self, ledger: &Arc<Ledger>) -> Check {
        let mut check = Check::default();
        for cart in ledger.iter() {
            let id = lock(cart).id.clone();
            let mut seen: Option<(usize, BTreeMap<String, u64>)> = None;
            for index in 0..NODES {
                let lines = self.cart_lines(index, &id).await;
                match &seen {
                    None => seen = Some((index, lines)),
                    Some((first, expected)) if *expected != lines => check.differing.push(format!(
                        "cart {id} reads {lines:?} through {} but {expected:?} through {}",
                        self.nodes[index].id, self.nodes[*first].id
                    )),
                    Some(_) => {}
                }
            }
            let lines = seen.expect("three nodes").1;
            let state = lock(cart);
            for write in &state.writes {
                let quantity = lines.get(&write.sku).copied();
                if quantity.is_some_and(|quantity| quantity != 1) {
                    check.twice.push(format!(
                        "cart {}: {} has quantity {quantity:?}",
                        state.id, write.sku
                    ));
                }
                let describe = || {
                    format!(
                        "cart {}: {} ({}, via {}) {}",
                        state.id, write.sku, write.phase, write.node, write.reply
                    )
                };
                match write.outcome {
                    Outcome::Acked => {
                        check.acked += 1;
                        if quantity.is_none() {
                            check.missing.push(describe());
                        }
                    }
                    Outcome::Refused => {
                        check.refused += 1;
                        if quantity.is_some() {
                            check.refused_applied.push(describe());
                        }
                    }
                    Outcome::Unknown => {
                        check.unknown += 1;
                        check.unknown_applied += usize::from(quantity.is_some());
                    }
                }
            }
            for line in lines.keys() {
                if !state.writes.iter().any(|write| &write.sku == line) {
                    check
                        .phantoms
                        .push(format!("cart {}: {line} nobody wrote", state.id));
                }
            }
        }
        check
    }

    /// The cart's lines (SKU → quantity) through node `index`, retried while it does not
    /// answer 200.
    async fn cart_lines(&self, index: usize, cart: &str) -> BTreeMap<String, u64> {
        let url = format!("{}/v1/carts/{cart}", self.nodes[index].base);
        let started = Instant::now();
        loop {
            let last = match self.http.get(&url).send().await {
                Ok(response) if response.status().is_success() => {
                    let body: Value = response.json().await.expect("cart json");
                    return lines_of(&body);
                }
                Ok(response) => response.status().to_string(),
                Err(error) => error.to_string(),
            };
            assert!(
                started.elapsed() < READ_BACK_DEADLINE,
                "cart {cart} unreadable through {}: {last}",
                self.nodes[index].id
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Warnings and errors the nodes logged, counted, and the first few.
    fn print_warnings(&self) {
        let mut lines = Vec::new();
        for node in &self.nodes {
            for (start, log) in node.logs.iter().enumerate() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
                        .map(|line| format!("{} (start {}): {line}", node.id, start + 1)),
                );
            }
        }
        // "LEVEL target:" of each line, counted.
        let mut by_target: BTreeMap<String, usize> = BTreeMap::new();
        for line in &lines {
            let key = line
                .split_whitespace()
                .skip_while(|word| *word != "WARN" && *word != "ERROR")
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            *by_target.entry(key).or_default() += 1;
        }
        let counts: Vec<String> = by_target
            .iter()
            .map(|(target, count)| format!("{count} {target}"))
            .collect();
        println!(
            "failover: the nodes logged {} warnings and errors: {}",
            lines.len(),
            counts.join(", ")
        );
        // Links closing and peers unreachable are what a kill or a stop looks like.
        let unexpected: Vec<&String> = lines
            .iter()
            .filter(|line| {
                !line.contains("tcp_session_closed")
                    && !line.contains("duplicate_connection")
                    && !line.contains("peer unreachable")
            })
            .collect();
        for line in unexpected.iter().take(12) {
            println!("  {}", line.chars().take(300).collect::<String>());
        }
        if unexpected.len() > 12 {
            println!("  … {} more", unexpected.len() - 12);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Figures.

struct Round {
    number: usize,
    victim: String,
    /// Kill → first successful read, per victim cart.
    served: Vec<Option<Duration>>,
    /// Per survivor: `emporium_failover_seconds` observations (count, sum) during the round.
    metric: FailoverMetric,
    /// Kill → the first acknowledged write (sent after the kill) to one of the carts.
    first_write: Option<Duration>,
    /// Victim carts whose owner was still the victim after the load.
    left_on_victim: usize,
    load: LoadStats,
    /// Restart → every node sees the cluster whole.
    rejoin: Duration,
    /// Whole → shards per node stopped moving.
    settled: Duration,
    shards: String,
}

impl Round {
    fn times(&self) -> Vec<Duration> {
        let mut times: Vec<Duration> = self.served.iter().flatten().copied().collect();
        times.sort();
        times
    }

    fn never(&self) -> usize {
        self.served.iter().filter(|served| served.is_none()).count()
    }

    fn metric_count(&self) -> f64 {
        self.metric.iter().map(|(count, _)| count).sum::<f64>()
    }

    fn metric_mean(&self) -> Option<f64> {
        let count = self.metric_count();
        (count > 0.0).then(|| self.metric.iter().map(|(_, sum)| sum).sum::<f64>() / count)
    }

    /// The largest per-survivor mean (exact when each survivor observed once).
    fn metric_max(&self) -> Option<f64> {
        self.metric
            .iter()
            .filter(|(count, _)| *count > 0.0)
            .map(|(count, sum)| sum / count)
            .reduce(f64::max)
    }

    fn print_line(&self) {
        let times = self.times();
        println!(
            "failover: round {}: kill -9 {}: {} carts served again after median {}, worst {}, never {}; \
             metric {} obs, mean {}; first acked write {}; left on victim {}; {}; rejoined in {:.1} s, settled {:.1} s later ({})",
            self.number,
            self.victim,
            self.served.len(),
            secs(median(&times)),
            secs(times.last().copied()),
            self.never(),
            self.metric_count(),
            secs_f(self.metric_mean()),
            secs(self.first_write),
            self.left_on_victim,
            self.load.summary(),
            self.rejoin.as_secs_f64(),
            self.settled.as_secs_f64(),
            self.shards,
        );
        for failure in self.load.failures.iter().take(3) {
            println!(
                "  not acknowledged (times from the start of the load, {:.0} s before the kill): {failure}",
                LOAD_BEFORE_KILL.as_secs_f64()
            );
        }
    }
}

fn median(sorted: &[Duration]) -> Option<Duration> {
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

fn secs(duration: Option<Duration>) -> String {
    secs_f(duration.map(|duration| duration.as_secs_f64()))
}

fn secs_f(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.2}"))
}

fn report_rounds(rounds: &[Round]) {
    println!(
        "failover: kill -9 → first successful answer per cart of the victim, through the survivors (seconds)"
    );
    println!(
        "{:>5} {:<9} {:>5} {:>7} {:>7} {:>5} | {:>9} {:>8} {:>8} | {:>11} {:>17} {:>9} | {:>7} {:>7}",
        "round",
        "victim",
        "carts",
        "median",
        "worst",
        "never",
        "metric n",
        "mean",
        "max",
        "1st write",
        "writes ok/ref/unk",
        "reads bad",
        "rejoin",
        "settle"
    );
    for round in rounds {
        let times = round.times();
        println!(
            "{:>5} {:<9} {:>5} {:>7} {:>7} {:>5} | {:>9} {:>8} {:>8} | {:>11} {:>17} {:>9} | {:>7.2} {:>7.2}",
            round.number,
            round.victim,
            round.served.len(),
            secs(median(&times)),
            secs(times.last().copied()),
            round.never(),
            round.metric_count(),
            secs_f(round.metric_mean()),
            secs_f(round.metric_max()),
            secs(round.first_write),
            format!(
                "{}/{}/{}",
                round.load.writes_acked, round.load.writes_refused, round.load.writes_unknown
            ),
            format!("{}/{}", round.load.reads_failed, round.load.reads),
            round.rejoin.as_secs_f64(),
            round.settled.as_secs_f64(),
        );
    }
    let mut all: Vec<Duration> = rounds.iter().flat_map(Round::times).collect();
    all.sort();
    let mut medians: Vec<Duration> = rounds
        .iter()
        .filter_map(|round| median(&round.times()))
        .collect();
    medians.sort();
    let metric_means: Vec<f64> = rounds.iter().filter_map(Round::metric_mean).collect();
    let never: usize = rounds.iter().map(Round::never).sum();
    println!(
        "failover: over {} rounds ({} cart failovers): median {} s, worst {} s, never served {never}; \
         per-round medians from {} to {} s (median of them {} s); emporium_failover_seconds mean {} s over {} observations",
        rounds.len(),
        all.len(),
        secs(median(&all)),
        secs(all.last().copied()),
        secs(medians.first().copied()),
        secs(medians.last().copied()),
        secs(median(&medians)),
        secs_f(
            (!metric_means.is_empty())
                .then(|| metric_means.iter().sum::<f64>() / metric_means.len() as f64)
        ),
        rounds.iter().map(Round::metric_count).sum::<f64>(),
    );
    let stale: usize = rounds.iter().map(|round| round.load.stale_reads).sum();
    println!(
        "failover: stale reads over the {} rounds: {stale} (must be 0)",
        rounds.len()
    );
    let rejoins: Vec<f64> = rounds
        .iter()
        .map(|round| round.rejoin.as_secs_f64())
        .collect();
    if !rejoins.is_empty() {
        println!(
            "failover: victim restart → cluster whole: mean {:.2} s, worst {:.2} s",
            rejoins.iter().sum::<f64>() / rejoins.len() as f64,
            rejoins.iter().copied().fold(0.0, f64::max)
        );
    }
}

struct Step {
    id: String,
    /// From the start of the load.
    sigterm_at: Duration,
    exit: String,
    drained: Duration,
    back: Duration,
}

struct Rolling {
    steps: Vec<Step>,
    duration: Duration,
    load: LoadStats,
}

impl Rolling {
    fn print(&self) {
        println!(
            "failover: rolling restart (SIGTERM + restart of each node in turn, load through the others, {ROLLING_WORKERS} clients over all {CARTS} carts)"
        );
        println!(
            "{:<9} {:>12} {:>10} {:>10}  exit",
            "node", "SIGTERM at", "stop s", "back s"
        );
        for step in &self.steps {
            println!(
                "{:<9} {:>11.2}s {:>10.2} {:>10.2}  {}",
                step.id,
                step.sigterm_at.as_secs_f64(),
                step.drained.as_secs_f64(),
                step.back.as_secs_f64(),
                step.exit
            );
        }
        println!(
            "failover: rolling restart took {:.1} s (first SIGTERM → last node back in rotation); {}; failed requests: {} (target 0)",
            self.duration.as_secs_f64(),
            self.load.summary(),
            self.load.failed(),
        );
        for failure in self.load.failures.iter().take(5) {
            println!("  failed (times from the start of the load): {failure}");
        }
    }
}

#[derive(Default)]
struct Check {
    acked: usize,
    refused: usize,
    unknown: usize,
    unknown_applied: usize,
    missing: Vec<String>,
    refused_applied: Vec<String>,
    twice: Vec<String>,
    phantoms: Vec<String>,
    differing: Vec<String>,
}

impl Check {
    fn print(&self) {
        println!(
            "failover: read back {CARTS} carts through all {NODES} nodes: {} acknowledged writes, MISSING {} (must be 0); \
             {} of unknown outcome ({} applied); {} refused, applied anyway {}; lines applied twice {}; lines nobody wrote {}; carts reading differently through different nodes {}",
            self.acked,
            self.missing.len(),
            self.unknown,
            self.unknown_applied,
            self.refused,
            self.refused_applied.len(),
            self.twice.len(),
            self.phantoms.len(),
            self.differing.len(),
        );
        let problems = self
            .missing
            .iter()
            .map(|line| format!("missing: {line}"))
            .chain(
                self.refused_applied
                    .iter()
                    .map(|l| format!("refused but applied: {l}")),
            )
            .chain(self.twice.iter().map(|line| format!("twice: {line}")))
            .chain(self.phantoms.iter().map(|line| format!("phantom: {line}")))
            .chain(self.differing.iter().map(|line| format!("differs: {line}")));
        for line in problems.take(20) {
            println!("  {line}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("http client")
}

/// `name` summed over the lines of a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A cart body's lines: SKU → quantity.
fn lines_of(cart: &Value) -> BTreeMap<String, u64> {
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".to_owned())
}
