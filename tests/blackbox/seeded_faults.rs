//! A seeded randomized fault test (issue 11): three nodes on one store, clients reading and
//! writing carts through random nodes while a schedule drawn from a seed kills (`kill -9`),
//! freezes (`SIGSTOP` for 1–3 s) and restarts nodes, cuts the store away from every node
//! (1–7 s), and has a fourth node join and leave;
//! then every cart line's history is checked for linearizability
//! (`emporium_testkit::linearizability`).
//!
//! - **Registers.** Each cart gets one line of each of [`SKUS_PER_CART`] products, at
//!   quantity one, before the load; each (cart, SKU) line is one register. Writes set a
//!   line's quantity to a value never written to that line before (2 to 99, so a read names
//!   its write); reads of the cart read every line of it.
//! - **Outcomes.** 200: applied (`Ok`). 503: not applied (`Failed`, left out of the
//!   history: a later read of its value is a violation). A connection refused: nothing was
//!   sent (`Failed` too). 504, a timeout or a connection lost after sending: `Unknown` (may
//!   take effect any time after its invocation, or never). Any other answer fails the test.
//! - **Faults.** One at a time, so at most one of the three nodes is ever down: a `kill -9`
//!   then a restart with the same id after 0.5–2 s (the balancer stops sending to it
//!   meanwhile); a `SIGSTOP` for 1–3 s then `SIGCONT` (clients keep sending to it: their
//!   requests wait in its kernel; a woken node that fenced itself rejoins as a new life);
//!   the store cut (every node reaches it through one proxy) for 1–7 s, long enough for the
//!   nodes to fence themselves and rejoin, or not; a fourth node joining, serving for 1–3 s,
//!   then leaving with `SIGTERM`. No node may exit by itself (it would be restarted, and
//!   fail the test after the check).
//!   After each fault the cluster is waited for until whole again. A restart the node
//!   refuses (it exits before serving) is retried, and fails the test after the check.
//! - **End.** Everything healed, the clients stopped, every cart read through every node
//!   (those reads are part of the history), then the checker runs over all lines.
//!
//! `EMPORIUM_FAULT_SEED` replays a schedule (the seed is always printed; the clients' choices
//! come from it too, the timing of a real cluster does not); `EMPORIUM_FAULT_SECS` sets the
//! length of the fault phase (20 s by default, for CI). On PostgreSQL and on the CQL store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emporium_testkit::linearizability::{self, Event, Op, Outcome};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use emporium_testkit::TcpProxy;

use crate::cluster_kit::{Cluster, Placement, lines_of, sku};
use crate::stores::TestStore;
use crate::support::NodeProcess;

/// Product lines per cart: each one a register.
const SKUS_PER_CART: usize = 8;
/// The quantity every line starts with; writes use 2..=[`MAX_VALUE`], each once per line.
const INITIAL: u32 = 1;
const MAX_VALUE: u32 = 99;
/// Concurrent clients.
const CLIENTS: usize = 6;
/// A client's pause between two requests, in milliseconds (drawn uniformly).
const PACE_MS: (u64, u64) = (15, 45);
/// Requests one client sends at most, whatever the duration.
const MAX_OPS_PER_CLIENT: usize = 50_000;
/// Faults one run applies at most, whatever the duration.
const MAX_FAULTS: usize = 500;
/// Longer than a node's request deadline (10 s): a request the node gives up on is answered
/// by the node (504), and once a client's request returns the node has finished with it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(11);
/// A final read retried this long at most (a shard may still settle after the last fault).
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
/// The fault phase by default, when `EMPORIUM_FAULT_SECS` is not set.
const DEFAULT_SECS: u64 = 20;

mod on {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::seeded_faults_checked_for_linearizability(crate::stores::TestStore::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cql() {
        super::seeded_faults_checked_for_linearizability(crate::stores::TestStore::Scylla).await;
    }
}

/// The seed: `EMPORIUM_FAULT_SEED`, or one derived from the clock.
fn seed() -> u64 {
    match std::env::var("EMPORIUM_FAULT_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("EMPORIUM_FAULT_SEED={text:?} is not a u64")),
        Err(_) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("the clock is after 1970");
            now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
        }
    }
}

fn fault_phase() -> Duration {
    let secs = std::env::var("EMPORIUM_FAULT_SECS")
        .ok()
        .map(|text| {
            text.trim()
                .parse()
                .unwrap_or_else(|_| panic!("EMPORIUM_FAULT_SECS={text:?} is not a number"))
        })
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs(secs)
}

/// The nodes clients may send to: member index → (id, HTTP base), `None` while out of
/// rotation.
#[derive(Default)]
struct Targets(Mutex<Vec<Option<(String, String)>>>);

impl Targets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<(String, String)>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, cluster: &Cluster, index: usize) {
        let mut targets = self.lock();
        if targets.len() <= index {
            targets.resize(index + 1, None);
        }
        let member = &cluster.members[index];
        targets[index] = Some((member.id.clone(), member.base().to_owned()));
    }

    fn clear(&self, index: usize) {
        if let Some(target) = self.lock().get_mut(index) {
            *target = None;
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Option<(String, String)> {
        let targets = self.lock();
        let live: Vec<&(String, String)> = targets.iter().flatten().collect();
        live.choose(rng).map(|&target| target.clone())
    }
}

/// What the clients share: where to send, and the next fresh value of each line.
struct Shared {
    carts: Vec<String>,
    skus: Vec<String>,
    targets: Targets,
    /// (cart index, SKU index) → the next value to write.
    next_value: Mutex<BTreeMap<(usize, usize), u32>>,
    http: reqwest::Client,
    origin: Instant,
}

impl Shared {
    fn fresh_value(&self, cart: usize, sku: usize) -> Option<u32> {
        let mut next = self
            .next_value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let value = next.entry((cart, sku)).or_insert(INITIAL + 1);
        if *value > MAX_VALUE {
            return None;
        }
        *value += 1;
        Some(*value - 1)
    }

    fn nanos(&self, at: Instant) -> u128 {
        at.duration_since(self.origin).as_nanos()
    }
}

/// How a request came out, as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// 200.
    Ok,
    /// 503: not applied.
    NotApplied,
    /// The connection was refused: nothing sent.
    NotSent,
    /// 504 outcome-unknown.
    Unknown504,
    /// A timeout or a connection lost after sending.
    Lost,
    /// Any other answer: fails the test.
    Unexpected,
}

impl Class {
    fn outcome(self) -> Outcome {
        match self {
            Self::Ok => Outcome::Ok,
            Self::NotApplied | Self::NotSent | Self::Unexpected => Outcome::Failed,
            Self::Unknown504 | Self::Lost => Outcome::Unknown,
        }
    }
}

/// One request of the history.
#[derive(Debug)]
struct Record {
    who: String,
    node: String,
    cart: usize,
    /// (SKU index, value) for a write; `None` for a read.
    write: Option<(usize, u32)>,
    invoke: Instant,
    complete: Instant,
    class: Class,
    /// The answer, for messages (status and body, or the error).
    detail: String,
    /// A read's lines (SKU → quantity).
    lines: Option<BTreeMap<String, u64>>,
}

impl Record {
    fn note(&self) -> String {
        format!("by {} via {}: {}", self.who, self.node, self.detail)
    }
}

/// Send one request to `base` and classify the result.
async fn exchange(
    shared: &Shared,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (Instant, Instant, Class, String, Option<Value>) {
    let mut request = shared.http.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        request = request.json(body);
    }
    let invoke = Instant::now();
    let result = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            response.text().await.map(|text| (status, text))
        }
        Err(error) => Err(error),
    };
    let complete = Instant::now();
    let (class, detail, body) = match result {
        Ok((status, text)) => {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let class = match status {
                200 => Class::Ok,
                503 => Class::NotApplied,
                504 => Class::Unknown504,
                _ => Class::Unexpected,
            };
            let detail = if class == Class::Ok {
                status.to_string()
            } else {
                format!("{status} {body}")
            };
            (class, detail, Some(body))
        }
        Err(error) if error.is_connect() => (Class::NotSent, format!("not sent: {error}"), None),
        Err(error) => (Class::Lost, format!("lost: {error:?}"), None),
    };
    (invoke, complete, class, detail, body)
}

/// One client: random carts, random nodes, half writes of fresh values and half reads.
async fn client(
    index: usize,
    seed: u64,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    hard_deadline: Instant,
) -> Vec<Record> {
    let mut rng =
        StdRng::seed_from_u64(seed ^ 0xA076_1D64_78BD_642F_u64.wrapping_mul(index as u64 + 1));
    let who = format!("client {index}");
    let mut records = Vec::new();
    for _ in 0..MAX_OPS_PER_CLIENT {
        if *stop.borrow() || Instant::now() >= hard_deadline {
            break;
        }
        let Some((node, base)) = shared.targets.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let cart = rng.random_range(0..shared.carts.len());
        let cart_id = &shared.carts[cart];
        let write = if rng.random_bool(0.5) {
            let line = rng.random_range(0..shared.skus.len());
            shared.fresh_value(cart, line).map(|value| (line, value))
        } else {
            None
        };
        let record = match write {
            Some((line, value)) => {
                let path = format!("/v1/carts/{cart_id}/items/{}", shared.skus[line]);
                let body = json!({ "quantity": value });
                let (invoke, complete, class, detail, _) =
                    exchange(&shared, &base, reqwest::Method::PUT, &path, Some(&body)).await;
                Record {
                    who: who.clone(),
                    node,
                    cart,
                    write: Some((line, value)),
                    invoke,
                    complete,
                    class,
                    detail,
                    lines: None,
                }
            }
            None => read(&shared, &who, &node, &base, cart).await,
        };
        let pause = if record.class == Class::NotSent {
            50
        } else {
            rng.random_range(PACE_MS.0..=PACE_MS.1)
        };
        records.push(record);
        let mut stop = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(pause)) => {}
            _ = stop.changed() => {}
        }
    }
    records
}

async fn read(shared: &Shared, who: &str, node: &str, base: &str, cart: usize) -> Record {
    let path = format!("/v1/carts/{}", shared.carts[cart]);
    let (invoke, complete, class, detail, body) =
        exchange(shared, base, reqwest::Method::GET, &path, None).await;
    let lines = match (class, &body) {
        (Class::Ok, Some(body)) => Some(lines_of(body)),
        _ => None,
    };
    Record {
        who: who.to_owned(),
        node: node.to_owned(),
        cart,
        write: None,
        invoke,
        complete,
        class,
        detail,
        lines,
    }
}

/// What the fault schedule did.
#[derive(Default, Debug)]
struct Faults {
    kills: usize,
    freezes: usize,
    /// Store cuts (the proxy every node reaches the store through refused everything).
    store_cuts: usize,
    /// Nodes that exited by themselves (then restarted): none should.
    exited: usize,
    joins_and_leaves: usize,
    /// Starts where the node exited before serving (each retried), with when and which.
    refused_starts: Vec<String>,
    log: Vec<String>,
}

impl Faults {
    fn note(&mut self, origin: Instant, what: String) {
        let line = format!("{:>7.2?} {what}", origin.elapsed());
        eprintln!("seeded faults: {line}");
        self.log.push(line);
    }
}

/// Restart every member of the three that exited by itself (a node expelled for good
/// itself); returns how many.
async fn restart_exited(
    cluster: &mut Cluster,
    targets: &Targets,
    refused: &mut Vec<String>,
) -> usize {
    let mut restarted = 0;
    for index in 0..3 {
        let Some(process) = cluster.members[index].process.as_mut() else {
            continue;
        };
        if let Some(status) = process.wait_exit(Duration::from_millis(10)).await {
            eprintln!(
                "seeded faults: {} exited by itself ({status}); restarting it",
                cluster.members[index].id
            );
            targets.clear(index);
            cluster.members[index].process = None;
            start(cluster, index, refused).await;
            targets.set(cluster, index);
            restarted += 1;
        }
    }
    restarted
}

/// Start member `index` (again), retried when the node exits before serving (a start the
/// node refuses is recorded in `refused`, and fails the test at the end, after the check).
async fn start(cluster: &mut Cluster, index: usize, refused: &mut Vec<String>) {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let spec = cluster.spec_for(index);
        std::fs::create_dir_all(&spec.data_dir).expect("node data dir");
        // `NodeProcess::start` panics when the node exits before serving: in a task of its
        // own, that panic is an error here.
        match tokio::spawn(NodeProcess::start(spec)).await {
            Ok(process) => {
                cluster.members[index].process = Some(process);
                return;
            }
            Err(error) => {
                let id = &cluster.members[index].id;
                let what = format!(
                    "{id} refused to start (attempt {attempt}): {error} (its reason is on stderr above)"
                );
                eprintln!("seeded faults: {what}");
                refused.push(what);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    panic!(
        "{} refused to start {ATTEMPTS} times",
        cluster.members[index].id
    );
}

async fn pause(rng: &mut StdRng, from_ms: u64, to_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(from_ms..=to_ms))).await;
}

/// Apply faults drawn from `rng`, one at a time, until `phase` has passed; each one healed
/// (the cluster whole again) before the next.
async fn run_faults(
    cluster: &mut Cluster,
    store: &Arc<TcpProxy>,
    targets: &Targets,
    rng: &mut StdRng,
    phase: Duration,
) -> Faults {
    let origin = Instant::now();
    let mut faults = Faults::default();
    for _ in 0..MAX_FAULTS {
        pause(rng, 1000, 3000).await;
        if origin.elapsed() >= phase {
            break;
        }
        let victim = rng.random_range(0..3);
        let id = cluster.members[victim].id.clone();
        match rng.random_range(0..4) {
            0 => {
                targets.clear(victim);
                cluster.members[victim].take().kill9().await;
                faults.kills += 1;
                faults.note(origin, format!("kill -9 {id}"));
                pause(rng, 500, 2000).await;
                start(cluster, victim, &mut faults.refused_starts).await;
                targets.set(cluster, victim);
                faults.note(origin, format!("{id} restarted"));
            }
            1 => {
                let frozen_for = Duration::from_millis(rng.random_range(1000..=3000));
                cluster.members[victim].running().freeze();
                faults.freezes += 1;
                faults.note(origin, format!("SIGSTOP {id} for {frozen_for:.2?}"));
                tokio::time::sleep(frozen_for).await;
                cluster.members[victim].running().thaw();
                faults.note(origin, format!("SIGCONT {id}"));
            }
            2 => {
                let cut_for = Duration::from_millis(rng.random_range(1000..=7000));
                store.cut();
                faults.store_cuts += 1;
                faults.note(origin, format!("store cut for {cut_for:.2?}"));
                tokio::time::sleep(cut_for).await;
                store.restore().await;
                faults.note(origin, "store back".to_owned());
            }
            _ => {
                let fourth = if cluster.members.len() > 3 {
                    3
                } else {
                    cluster.add_member(Placement::loopback())
                };
                let id = cluster.members[fourth].id.clone();
                start(cluster, fourth, &mut faults.refused_starts).await;
                faults.note(origin, format!("{id} joining"));
                faults.exited += restart_exited(cluster, targets, &mut faults.refused_starts).await;
                cluster.wait_ready().await;
                targets.set(cluster, fourth);
                faults.note(origin, format!("{id} up, in rotation"));
                pause(rng, 1000, 3000).await;
                faults.joins_and_leaves += 1;
                faults.note(origin, format!("SIGTERM {id} (leaving)"));
                // Clients keep sending to it while it drains; refused once it is gone.
                let status = cluster.members[fourth].take().terminate().await;
                targets.clear(fourth);
                faults.note(origin, format!("{id} left ({status})"));
                assert!(status.success(), "{id} exits 0 after SIGTERM: {status}");
            }
        }
        faults.exited += restart_exited(cluster, targets, &mut faults.refused_starts).await;
        cluster.wait_ready().await;
        faults.note(origin, "cluster whole again".to_owned());
    }
    faults
}

async fn seeded_faults_checked_for_linearizability(store: TestStore) {
    let seed = seed();
    let phase = fault_phase();
    let label = format!("seeded faults on {store:?}");
    eprintln!(
        "{label}: seed {seed}, fault phase {phase:.0?} (rerun: EMPORIUM_FAULT_SEED={seed} EMPORIUM_FAULT_SECS={})",
        phase.as_secs()
    );
    let Some((mut cluster, store_proxy)) = Cluster::start_behind_proxy(store, 3).await else {
        return;
    };
    let started = Instant::now();

    // The carts, each with one line per SKU at the initial quantity.
    // Enough lines that the fresh values last the whole run at the clients' pace (about 75
    // writes a second, 98 values a line).
    let cart_count = ((phase.as_secs() + 15) / 8).clamp(4, 50) as usize;
    let carts = cluster.carts(cart_count).await;
    let skus: Vec<String> = (0..SKUS_PER_CART).map(sku).collect();
    for (index, cart) in carts.iter().enumerate() {
        let api = cluster.api(index % 3);
        for sku in &skus {
            let answer = api
                .post(
                    &format!("/v1/carts/{cart}/items"),
                    &json!({"sku": sku, "quantity": INITIAL}),
                )
                .await;
            assert_eq!(answer.status, 200, "prepare {cart} {sku}: {answer:?}");
        }
    }

    let shared = Arc::new(Shared {
        carts: carts.clone(),
        skus: skus.clone(),
        targets: Targets::default(),
        next_value: Mutex::default(),
        http: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client"),
        origin: Instant::now(),
    });
    for index in 0..3 {
        shared.targets.set(&cluster, index);
    }
    let (stop, stopped) = watch::channel(false);
    // Whatever happens, the clients stop by this (the fault phase, plus room to heal).
    let hard_deadline = Instant::now() + phase + Duration::from_secs(120);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            tokio::spawn(client(
                index,
                seed,
                Arc::clone(&shared),
                stopped.clone(),
                hard_deadline,
            ))
        })
        .collect();

    let mut rng = StdRng::seed_from_u64(seed);
    let faults = run_faults(&mut cluster, &store_proxy, &shared.targets, &mut rng, phase).await;

    // Heal: every node of the three running, the cluster whole; then stop the clients.
    let mut faults = faults;
    faults.exited +=
        restart_exited(&mut cluster, &shared.targets, &mut faults.refused_starts).await;
    cluster.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send_replace(true);
    let mut records = Vec::new();
    for client in clients {
        records.extend(client.await.expect("a client panicked"));
    }
    let load_ops = records.len();

    // Final reads of every cart through every node (part of the history).
    for index in cluster.running() {
        let id = cluster.members[index].id.clone();
        let base = cluster.members[index].base().to_owned();
        for (cart, cart_id) in carts.iter().enumerate() {
            let deadline = Instant::now() + FINAL_READ_DEADLINE;
            loop {
                let record = read(&shared, "final read", &id, &base, cart).await;
                let class = record.class;
                let detail = record.detail.clone();
                records.push(record);
                if class == Class::Ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{label}: cart {cart_id} unreadable through {id}: {detail} (seed {seed})"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    let summary = summarize(&records, load_ops, &faults, seed, &label, started);
    eprintln!("{summary}");
    let unexpected: Vec<String> = records
        .iter()
        .filter(|record| record.class == Class::Unexpected)
        .take(10)
        .map(|record| format!("{record:?}"))
        .collect();

    let histories = histories(&records, &carts, &skus, &shared);
    let checked = Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        linearizability::check_keys(&histories, linearizability::DEFAULT_BUDGET)
    })
    .await
    .expect("the checker panicked");
    eprintln!(
        "{label}: checker: {} keys, {} operations, {} problem(s), in {:.2?}",
        report.keys,
        report.operations,
        report.problems.len(),
        checked.elapsed()
    );
    cluster.finish().await;
    let acked = |write: bool| {
        records
            .iter()
            .filter(|record| record.write.is_some() == write && record.class == Class::Ok)
            .count()
    };
    assert!(
        acked(true) > 0 && acked(false) > 0,
        "{label}: no write or no read was answered (seed {seed})"
    );
    let applied = faults.kills + faults.freezes + faults.store_cuts + faults.joins_and_leaves;
    assert!(
        applied > 0 || phase < Duration::from_secs(4),
        "{label}: no fault applied in {phase:.0?} (seed {seed})"
    );
    assert!(
        unexpected.is_empty(),
        "{label}: answers other than 200/503/504 (seed {seed}):\n{}",
        unexpected.join("\n")
    );
    assert!(
        report.is_linearizable(),
        "{label}: the history is not linearizable (seed {seed}; rerun with EMPORIUM_FAULT_SEED={seed} EMPORIUM_FAULT_SECS={}):\n{report}\nfaults:\n{}",
        phase.as_secs(),
        faults.log.join("\n")
    );
    assert_eq!(
        faults.exited,
        0,
        "{label}: nodes exited by themselves (seed {seed}; the check passed):\n{}",
        faults.log.join("\n")
    );
    assert!(
        faults.refused_starts.is_empty(),
        "{label}: restarted nodes exited before serving (seed {seed}; the check passed):\n{}",
        faults.refused_starts.join("\n")
    );
}

/// (cart id, SKU) → (initial quantity, the line's operations).
type Histories = BTreeMap<(String, String), (Option<u32>, Vec<Event<u32>>)>;

/// Every line's history: its writes, and what every successful read of its cart saw.
fn histories(records: &[Record], carts: &[String], skus: &[String], shared: &Shared) -> Histories {
    let mut histories = BTreeMap::new();
    for cart in carts {
        for sku in skus {
            histories.insert((cart.clone(), sku.clone()), (Some(INITIAL), Vec::new()));
        }
    }
    for record in records {
        let invoke = shared.nanos(record.invoke);
        let complete = shared.nanos(record.complete);
        let cart = &carts[record.cart];
        match (record.write, &record.lines) {
            (Some((line, value)), _) => {
                let event = Event::new(Op::Write(value), invoke, complete, record.class.outcome())
                    .with_note(record.note());
                let key = (cart.clone(), skus[line].clone());
                histories.get_mut(&key).expect("a known line").1.push(event);
            }
            (None, Some(lines)) => {
                for sku in skus {
                    let seen = lines
                        .get(sku)
                        .map(|&quantity| u32::try_from(quantity).expect("a quantity fits a u32"));
                    let event = Event::new(Op::Read(seen), invoke, complete, Outcome::Ok)
                        .with_note(record.note());
                    let key = (cart.clone(), sku.clone());
                    histories.get_mut(&key).expect("a known line").1.push(event);
                }
            }
            // A read without an answer observed nothing.
            (None, None) => {}
        }
    }
    histories
}

fn summarize(
    records: &[Record],
    load_ops: usize,
    faults: &Faults,
    seed: u64,
    label: &str,
    started: Instant,
) -> String {
    let mut writes: BTreeMap<Class, usize> = BTreeMap::new();
    let mut reads: BTreeMap<Class, usize> = BTreeMap::new();
    for record in records {
        let tally = if record.write.is_some() {
            &mut writes
        } else {
            &mut reads
        };
        *tally.entry(record.class).or_default() += 1;
    }
    // Writes of unknown outcome that a later read shows applied.
    let unknown_applied = records
        .iter()
        .filter(|record| record.class.outcome() == Outcome::Unknown)
        .filter_map(|record| Some((record.cart, record.write?)))
        .filter(|&(cart, (line, value))| {
            records.iter().any(|read| {
                read.cart == cart
                    && read
                        .lines
                        .as_ref()
                        .is_some_and(|lines| lines.get(&sku(line)) == Some(&u64::from(value)))
            })
        })
        .count();
    let mut nodes: BTreeMap<&str, usize> = BTreeMap::new();
    for record in records {
        *nodes.entry(record.node.as_str()).or_default() += 1;
    }
    format!(
        "{label}: seed {seed}; {} requests in {:.1?} ({load_ops} by the clients, {} final reads); \
         writes {writes:?} ({unknown_applied} of unknown outcome seen applied); reads {reads:?}; per node {nodes:?}; faults: {} kill -9, {} SIGSTOP, \
         {} store cut(s), {} join+leave, {} exited by itself, {} refused start(s)",
        records.len(),
        started.elapsed(),
        records.len() - load_ops,
        faults.kills,
        faults.freezes,
        faults.store_cuts,
        faults.joins_and_leaves,
        faults.exited,
        faults.refused_starts.len(),
    )
}
