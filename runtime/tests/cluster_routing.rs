//! Cluster mode end to end, in one process: two or three `Cluster` runtimes share one
//! `MemoryStore`, each with its own node server on 127.0.0.1, and a small test kind (a
//! ledger of appended tokens, plus a durable reminder) shows what routing, fencing, drain
//! and reminder hand-over do with real traffic:
//!
//! - an ask through A for a key owned by B is answered by B, which holds the activation;
//! - concurrent writes through every node land exactly once each;
//! - an owner with a stale lease view cannot commit over the new owner's fence: its turn
//!   fails, nothing of it is written, and routing applies the command on the new owner;
//! - a drained node hands every shard over while asks keep flowing, without one failure,
//!   and passivates its actors (also one that was busy when its shard moved away);
//! - a durable reminder of a drained node's actor fires on the new owner;
//! - a node with another secret is refused at start;
//! - a forwarded call carries the sender's trace context to the owner, and only then.
//!
//! Membership needs real time, so every wait polls a condition with a bound. Timings are
//! shortened (heartbeat 100 ms, dead after 1 s). Figures are printed
//! (`cargo test --release --features cluster --test cluster_routing -- --nocapture`).
#![cfg(feature = "cluster")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use emporium_runtime::cluster::LeaseConfig;
use emporium_runtime::cluster::MembershipConfig;
use emporium_runtime::cluster::{Cluster, ClusterError, ClusterOptions};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{
    NoTrace, Rendezvous, Runtime, RuntimeError, SHARD_COUNT, StateStore, TraceContext,
    TraceHeaders, Turn, VirtualActor, shard_of,
};
use serde::{Deserialize, Serialize};

#[path = "support/pausable_store.rs"]
mod pausable_store;
use pausable_store::{PausableStore, PauseScope};

const SECRET: &str = "cluster-routing-test-secret";

// ---------------------------------------------------------------------------------------
// The test kind: a ledger of tokens, and the reminders that fired on it.

struct Ledger;

#[derive(Default, Serialize, Deserialize)]
struct LedgerState {
    entries: Vec<String>,
    /// `name@node` for every reminder that ran.
    reminded: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum LedgerCommand {
    Append(String),
    Get,
    /// Set the durable reminder `name` to fire `delay_ms` from now.
    RemindIn {
        name: String,
        delay_ms: u64,
    },
    /// Append `token` after `ms` of work (the activation is busy meanwhile).
    SlowAppend {
        token: String,
        ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerReply {
    /// The node whose activation ran the command.
    node: String,
    entries: Vec<String>,
    reminded: Vec<String>,
}

impl VirtualActor for Ledger {
    const KIND: &'static str = "ledger";
    type State = LedgerState;
    type Command = LedgerCommand;
    type Reply = LedgerReply;

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: LedgerCommand,
    ) -> Result<LedgerReply, RuntimeError> {
        match command {
            LedgerCommand::Append(token) => turn.state_mut().entries.push(token),
            LedgerCommand::Get => {}
            LedgerCommand::SlowAppend { token, ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                turn.state_mut().entries.push(token);
            }
            LedgerCommand::RemindIn { name, delay_ms } => {
                let due_at_ms = turn.now_ms() + delay_ms;
                turn.set_reminder(&name, due_at_ms);
            }
        }
        Ok(LedgerReply {
            node: turn.runtime().node_id().to_owned(),
            entries: turn.state().entries.clone(),
            reminded: turn.state().reminded.clone(),
        })
    }

    async fn on_reminder(&self, turn: &mut Turn<Self>, name: &str) -> Result<(), RuntimeError> {
        let fired = format!("{name}@{}", turn.runtime().node_id());
        turn.state_mut().reminded.push(fired);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Nodes.

struct Node {
    id: String,
    runtime: Runtime,
    cluster: Cluster,
}

impl Node {
    async fn ask(&self, key: &str, command: LedgerCommand) -> Result<LedgerReply, RuntimeError> {
        self.runtime
            .actor::<Ledger>(key)
            .ask_within(command, Duration::from_secs(10))
            .await
    }

    fn holds(&self) -> usize {
        self.cluster.leases().table().held_locally().len()
    }
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Heartbeat 100 ms, suspect after 400 ms, dead after 1 s (fence after 900 ms).
fn fast_membership() -> MembershipConfig {
    MembershipConfig {
        heartbeat_interval: Duration::from_millis(100),
        suspect_after: Duration::from_millis(400),
        dead_after: Duration::from_secs(1),
        forget_after: Duration::from_secs(3600),
    }
}

async fn try_start(
    store: Arc<dyn StateStore>,
    id: &str,
    secret: &str,
    membership: MembershipConfig,
) -> Result<Node, ClusterError> {
    try_start_traced(store, id, secret, membership, Arc::new(NoTrace)).await
}

async fn try_start_traced(
    store: Arc<dyn StateStore>,
    id: &str,
    secret: &str,
    membership: MembershipConfig,
    trace: Arc<dyn TraceContext>,
) -> Result<Node, ClusterError> {
    membership.validate().expect("a valid membership config");
    let mut options = ClusterOptions::new(id, free_addr(), format!("{id}.http:8080"), secret);
    options.leases = LeaseConfig {
        refresh_interval: membership.heartbeat_interval,
        max_concurrent_claims: 64,
    };
    options.membership = membership;
    let builder = Runtime::builder(store)
        .node_id(id)
        .trace_context(trace)
        .register(Ledger);
    let (runtime, cluster) = Cluster::start(builder, options).await?;
    Ok(Node {
        id: id.to_owned(),
        runtime,
        cluster,
    })
}

async fn start(store: &Arc<MemoryStore>, id: &str) -> Node {
    let store: Arc<dyn StateStore> = store.clone();
    match try_start(store, id, SECRET, fast_membership()).await {
        Ok(node) => node,
        Err(error) => panic!("{id} cannot start: {error}"),
    }
}

/// Start `ids` on `store` and wait until their leases converge.
async fn start_cluster(store: &Arc<MemoryStore>, ids: &[&str]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(start(store, id).await);
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let took = until(Duration::from_secs(10), "the leases converge", || {
        converged(&all)
    })
    .await;
    println!("{ids:?}: leases converged {took:?} after the last start");
    nodes
}

/// Every shard is held by its rendezvous owner among `nodes` in every node's table, and
/// exactly one node serves it.
fn converged(nodes: &[&Node]) -> bool {
    let ids: Vec<&str> = nodes.iter().map(|node| node.id.as_str()).collect();
    let rendezvous = Rendezvous::new(&ids);
    let tables: Vec<_> = nodes
        .iter()
        .map(|node| node.cluster.leases().table())
        .collect();
    (0..SHARD_COUNT).all(|shard| {
        let Some(owner) = rendezvous
            .owner(shard)
            .and_then(|id| nodes.iter().find(|node| node.id == id))
        else {
            return false;
        };
        let expected = owner.cluster.leases().local().clone();
        let agreed = tables.iter().all(|table| {
            table
                .lease(shard)
                .and_then(|lease| lease.holder.as_ref())
                .is_some_and(|holder| *holder == expected)
        });
        let servers = nodes
            .iter()
            .filter(|node| node.cluster.leases().serves(shard))
            .count();
        agreed && servers == 1
    })
}

/// Poll `check` every 10 ms for at most `limit`; return how long it took to hold.
async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(started.elapsed() <= limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first `count` keys `ledger/<prefix>-<n>` whose shard `owner` should hold among `ids`.
fn keys_owned_by(prefix: &str, owner: &str, ids: &[&str], count: usize) -> Vec<String> {
    let rendezvous = Rendezvous::new(ids);
    (0..10_000)
        .map(|n| format!("{prefix}-{n}"))
        .filter(|key| rendezvous.owner(shard_of(Ledger::KIND, key)) == Some(owner))
        .take(count)
        .collect()
}

fn sorted(mut tokens: Vec<String>) -> Vec<String> {
    tokens.sort();
    tokens
}

/// Fail the test instead of hanging it.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(45), future)
        .await
        .expect("the test took longer than 45 s")
}

async fn stop_all(nodes: &[Node]) {
    for node in nodes {
        node.cluster.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// 1. Forwarding.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ask_through_a_non_owner_is_answered_by_the_owner() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let ids = ["fwd-a", "fwd-b"];
        let nodes = start_cluster(&store, &ids).await;
        let (a, b) = (&nodes[0], &nodes[1]);

        // A key owned by B, found through A's view of the lease table.
        let mut key = None;
        for n in 0..200 {
            let candidate = format!("fwd-{n}");
            let location = a
                .runtime
                .locate_actor(Ledger::KIND, &candidate)
                .await
                .unwrap();
            if location.owner.as_deref() == Some("fwd-b") {
                assert_eq!(location.active, Some(false), "nothing asked yet");
                assert_eq!(location.version, 0);
                key = Some(candidate);
                break;
            }
        }
        let key = key.expect("some key is owned by fwd-b");

        let reply = a
            .ask(&key, LedgerCommand::Append("one".into()))
            .await
            .unwrap();
        assert_eq!(reply.node, "fwd-b", "the owner ran it");
        assert_eq!(reply.entries, ["one"]);
        assert!(b.runtime.is_active::<Ledger>(&key), "B has the activation");
        assert!(!a.runtime.is_active::<Ledger>(&key), "A has none");

        // A sees where it lives: on B, active there, saved once.
        let location = a.runtime.locate_actor(Ledger::KIND, &key).await.unwrap();
        assert_eq!(location.owner.as_deref(), Some("fwd-b"));
        assert_eq!(location.active, Some(true));
        assert_eq!(location.version, 1);

        // The other way round, and a local ask on the owner sees the forwarded write.
        let reply = b.ask(&key, LedgerCommand::Get).await.unwrap();
        assert_eq!(reply.entries, ["one"]);
        let a_key = keys_owned_by("fwd-rev", "fwd-a", &ids, 1).remove(0);
        let reply = b
            .ask(&a_key, LedgerCommand::Append("two".into()))
            .await
            .unwrap();
        assert_eq!(reply.node, "fwd-a");
        assert!(a.runtime.is_active::<Ledger>(&a_key));
        assert!(!b.runtime.is_active::<Ledger>(&a_key));

        let status = a.runtime.cluster_status().await;
        assert_eq!(status.mode, "cluster");
        assert_eq!(status.unowned_shards, 0);
        let owned: usize = status.nodes.iter().map(|node| node.shards_owned).sum();
        assert_eq!(owned, usize::from(SHARD_COUNT));
        // The shard map agrees with the counts and with the owner of one actor's shard.
        let owners = a.runtime.shard_owners();
        assert_eq!(owners.len(), usize::from(SHARD_COUNT));
        for node in &status.nodes {
            let cells = owners
                .iter()
                .filter(|owner| owner.as_deref() == Some(node.node_id.as_str()))
                .count();
            assert_eq!(cells, node.shards_owned, "{}", node.node_id);
        }
        let shard = usize::from(shard_of(Ledger::KIND, &key));
        assert_eq!(owners[shard].as_deref(), Some("fwd-b"));
        stop_all(&nodes).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. Exactly once.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_every_node_land_exactly_once() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let nodes = Arc::new(start_cluster(&store, &["once-a", "once-b", "once-c"]).await);
        let keys: Vec<String> = (0..6).map(|n| format!("once-{n}")).collect();
        const WRITERS_PER_NODE: usize = 3;
        const WRITES_PER_WRITER: usize = 40;

        let mut writers = Vec::new();
        for node in 0..nodes.len() {
            for writer in 0..WRITERS_PER_NODE {
                let (nodes, keys) = (Arc::clone(&nodes), keys.clone());
                writers.push(tokio::spawn(async move {
                    let node = &nodes[node];
                    let mut acked = Vec::new();
                    for n in 0..WRITES_PER_WRITER {
                        let key = &keys[(n + writer) % keys.len()];
                        let token = format!("{}/{writer}/{n}", node.id);
                        match node.ask(key, LedgerCommand::Append(token.clone())).await {
                            Ok(_) => acked.push((key.clone(), token)),
                            Err(error) => panic!("{token} on {key} failed: {error}"),
                        }
                    }
                    acked
                }));
            }
        }
        let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for writer in writers {
            for (key, token) in writer.await.unwrap() {
                acked.entry(key).or_default().push(token);
            }
        }
        let total: usize = acked.values().map(Vec::len).sum();
        assert_eq!(total, nodes.len() * WRITERS_PER_NODE * WRITES_PER_WRITER);

        for key in &keys {
            let expected = sorted(acked.get(key).cloned().unwrap_or_default());
            for node in nodes.iter() {
                let reply = node.ask(key, LedgerCommand::Get).await.unwrap();
                assert_eq!(
                    sorted(reply.entries.clone()),
                    expected,
                    "{key} read through {}",
                    node.id
                );
                // One writer's tokens keep its order (each waited for its ack).
                for writer_prefix in reply.entries.iter().map(|t| t.rsplit_once('/').unwrap().0) {
                    let own: Vec<usize> = reply
                        .entries
                        .iter()
                        .filter_map(|t| t.rsplit_once('/'))
                        .filter(|(prefix, _)| *prefix == writer_prefix)
                        .map(|(_, n)| n.parse().unwrap())
                        .collect();
                    assert!(own.is_sorted(), "{writer_prefix} out of order on {key}");
                }
            }
            let location = nodes[0]
                .runtime
                .locate_actor(Ledger::KIND, key)
                .await
                .unwrap();
            let owner = location.owner.expect("an owner");
            for node in nodes.iter() {
                assert_eq!(
                    node.runtime.is_active::<Ledger>(key),
                    node.id == owner,
                    "{key} is active on its owner {owner} only"
                );
            }
        }
        println!("{total} acknowledged writes, each stored exactly once");
        stop_all(&nodes).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 3. Fencing a stale owner.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_owner_waits_until_a_stale_owner_can_no_longer_serve() {
    bounded(async {
        // Slower timings than the other tests: A's stale table must stay "fresh" (younger
        // than fence_after = 2.8 s) while B joins and takes the shard.
        let membership = MembershipConfig {
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_secs(1),
            dead_after: Duration::from_secs(3),
            forget_after: Duration::from_secs(3600),
        };
        let shared = Arc::new(MemoryStore::new());
        let a_store = Arc::new(PausableStore::new(Arc::clone(&shared), PauseScope::Leases));
        let a = try_start(a_store.clone(), "fence-a", SECRET, membership.clone())
            .await
            .unwrap_or_else(|error| panic!("fence-a: {error}"));
        until(Duration::from_secs(10), "A holds every shard", || {
            a.holds() == usize::from(SHARD_COUNT)
        })
        .await;

        // K will belong to B once B joins. A loads it and writes w1 (version 1, A's epoch).
        let key = keys_owned_by("fence", "fence-b", &["fence-a", "fence-b"], 1).remove(0);
        let shard = shard_of(Ledger::KIND, &key);
        let reply = a
            .ask(&key, LedgerCommand::Append("w1".into()))
            .await
            .unwrap();
        assert_eq!(reply.node, "fence-a");
        let a_epoch = a.cluster.leases().table().lease(shard).unwrap().epoch;

        // A stops reading the lease table, so its view stays "fresh" (and it keeps serving K)
        // for up to fence_after; B joins and claims K's shard from it. B must not serve the
        // shard while A may: A cannot answer B's request to let go (its lease reads hang),
        // so B waits until A's table is too old for A to serve anything.
        a_store.pause();
        let b = try_start(shared.clone(), "fence-b", SECRET, membership.clone())
            .await
            .unwrap_or_else(|error| panic!("fence-b: {error}"));
        let mut both_served = false;
        let took = until(Duration::from_secs(8), "B serves K's shard", || {
            let b_serves = b.cluster.leases().serves(shard);
            both_served |= b_serves && a.cluster.leases().serves(shard);
            b_serves
        })
        .await;
        println!("fence-b serves shard {shard} {took:?} after starting (A could not let go)");
        assert!(
            !both_served,
            "A and B served shard {shard} at the same time"
        );
        assert!(!a.cluster.leases().serves(shard));
        let b_epoch = b.cluster.leases().table().lease(shard).unwrap().epoch;
        assert!(b_epoch > a_epoch);

        // B activates K: its activation fences the record with B's epoch, then writes w2.
        let reply = b
            .ask(&key, LedgerCommand::Append("w2".into()))
            .await
            .unwrap();
        assert_eq!(reply.node, "fence-b");
        assert_eq!(reply.entries, ["w1", "w2"]);
        let location = b.runtime.locate_actor(Ledger::KIND, &key).await.unwrap();
        assert_eq!(location.version, 3, "w1, B's fence, w2");

        // A reads the table again: it sees B's lease, and a write through A goes to B.
        a_store.resume();
        until(Duration::from_secs(5), "A sees B's lease", || {
            a.cluster.leases().table().owner_node(shard) == Some("fence-b")
        })
        .await;
        let reply = a
            .ask(&key, LedgerCommand::Append("w3".into()))
            .await
            .expect("w3 is applied on the new owner");
        assert_eq!(reply.node, "fence-b");
        assert_eq!(reply.entries, ["w1", "w2", "w3"]);
        let location = a.runtime.locate_actor(Ledger::KIND, &key).await.unwrap();
        assert_eq!(location.owner.as_deref(), Some("fence-b"));
        assert_eq!(location.version, 4);
        assert!(!a.runtime.is_active::<Ledger>(&key));
        stop_all(&[a, b]).await;
    })
    .await;
}

/// A joining node often claims shards before the holder can answer its request to let go
/// (its link is not up yet, the holder is busy). It asks again, so the shards are served as
/// soon as the holder answers, not only once the hold-back runs out (`fence_after`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_owner_asks_again_when_its_first_request_to_let_go_goes_unanswered() {
    bounded(async {
        // fence_after = 5.8 s: far beyond the 3 s for which A cannot answer.
        let membership = MembershipConfig {
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_secs(1),
            dead_after: Duration::from_secs(6),
            forget_after: Duration::from_secs(3600),
        };
        let unanswered = Duration::from_secs(3);
        let shared = Arc::new(MemoryStore::new());
        let a_store = Arc::new(PausableStore::new(Arc::clone(&shared), PauseScope::Leases));
        let a = try_start(a_store.clone(), "reask-a", SECRET, membership.clone())
            .await
            .unwrap_or_else(|error| panic!("reask-a: {error}"));
        until(Duration::from_secs(10), "A holds every shard", || {
            a.holds() == usize::from(SHARD_COUNT)
        })
        .await;
        let key = keys_owned_by("reask", "reask-b", &["reask-a", "reask-b"], 1).remove(0);
        let shard = shard_of(Ledger::KIND, &key);

        // A's lease reads hang, so it cannot answer B's first request to let go (a request
        // waits 2 s for its answer); A answers again once its reads resume.
        a_store.pause();
        let started = Instant::now();
        let b = try_start(shared.clone(), "reask-b", SECRET, membership.clone())
            .await
            .unwrap_or_else(|error| panic!("reask-b: {error}"));
        let resume = tokio::spawn({
            let a_store = Arc::clone(&a_store);
            async move {
                tokio::time::sleep(unanswered).await;
                a_store.resume();
            }
        });
        let mut both_served = false;
        until(Duration::from_secs(10), "B serves K's shard", || {
            let b_serves = b.cluster.leases().serves(shard);
            both_served |= b_serves && a.cluster.leases().serves(shard);
            b_serves
        })
        .await;
        let took = started.elapsed();
        println!("reask-b serves shard {shard} {took:?} after starting (A silent for {unanswered:?})");
        assert!(!both_served, "A and B served shard {shard} at the same time");
        let fence_after = membership.fence_after();
        assert!(
            took < unanswered + (fence_after - unanswered) / 2,
            "B served {took:?} after starting: it waited out the hold-back ({fence_after:?}) instead of asking A again once A could answer ({unanswered:?})"
        );
        resume.await.expect("resume task");
        let reply = a
            .ask(&key, LedgerCommand::Append("w1".into()))
            .await
            .expect("a write through A lands on B");
        assert_eq!(reply.node, "reask-b");
        stop_all(&[a, b]).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 4. Graceful drain under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_hands_over_while_asks_keep_flowing() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let ids = ["drain-a", "drain-b", "drain-c"];
        let nodes = Arc::new(start_cluster(&store, &ids).await);
        let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
        let mut keys = keys_owned_by("drain", "drain-b", &ids, 8);
        keys.extend(keys_owned_by("drain", "drain-a", &ids, 2));
        keys.extend(keys_owned_by("drain", "drain-c", &ids, 2));
        for key in &keys {
            a.ask(key, LedgerCommand::Get).await.unwrap();
        }
        assert!(b.runtime.active_actors() >= 8, "B hosts its keys");

        // Two writers through A, two through C, until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (node, writer) in [(0, 0), (0, 1), (2, 2), (2, 3)] {
            let (nodes, keys, stop) = (Arc::clone(&nodes), keys.clone(), Arc::clone(&stop));
            writers.push(tokio::spawn(async move {
                let node = &nodes[node];
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                for n in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = &keys[(n + writer) % keys.len()];
                    let token = format!("w{writer}/{n}");
                    match node.ask(key, LedgerCommand::Append(token.clone())).await {
                        Ok(_) => acked.push((key.clone(), token)),
                        Err(error) => failed.push(format!("{token} on {key}: {error}")),
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (acked, failed)
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;

        let held_before = b.holds();
        let started = Instant::now();
        b.cluster.drain(Duration::from_secs(10)).await;
        let drained_in = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);

        let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut failed = Vec::new();
        for writer in writers {
            let (writer_acked, writer_failed) = writer.await.unwrap();
            for (key, token) in writer_acked {
                acked.entry(key).or_default().push(token);
            }
            failed.extend(writer_failed);
        }
        let total: usize = acked.values().map(Vec::len).sum();
        println!(
            "drain of {held_before} shards took {drained_in:?}; {total} asks acknowledged, {} failed",
            failed.len()
        );
        assert!(failed.is_empty(), "failed asks: {failed:#?}");
        assert!(total > 100, "the load kept flowing ({total} asks)");

        // B owns nothing, in its own table and in everyone's status.
        assert_eq!(b.holds(), 0);
        assert!(
            (0..SHARD_COUNT).all(|shard| !b.cluster.leases().serves(shard)),
            "B serves nothing"
        );
        for node in [a, c] {
            let status = node.runtime.cluster_status().await;
            assert_eq!(status.unowned_shards, 0, "seen from {}", node.id);
            let seen_b = status.nodes.iter().find(|n| n.node_id == "drain-b").unwrap();
            assert_eq!(seen_b.shards_owned, 0, "seen from {}", node.id);
            assert_eq!(seen_b.status, "down");
        }
        // Its activations were passivated when their shards moved away.
        let passivated = until(Duration::from_secs(3), "B has no active actor", || {
            b.runtime.active_actors() == 0
        })
        .await;
        println!("B's actors were all passivated {passivated:?} after the drain returned");
        for key in &keys {
            assert!(!b.runtime.is_active::<Ledger>(key));
        }

        // Every acknowledged write is stored, once.
        for key in &keys {
            let reply = c.ask(key, LedgerCommand::Get).await.unwrap();
            assert_ne!(reply.node, "drain-b");
            assert_eq!(
                sorted(reply.entries),
                sorted(acked.get(key).cloned().unwrap_or_default()),
                "{key}"
            );
        }
        stop_all(&nodes).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 5. A durable reminder follows its shard.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reminder_of_a_drained_nodes_actor_fires_on_the_new_owner() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let ids = ["rem-a", "rem-b", "rem-c"];
        let nodes = start_cluster(&store, &ids).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let key = keys_owned_by("rem", "rem-b", &ids, 1).remove(0);

        const DELAY_MS: u64 = 2_000;
        let set_at = Instant::now();
        let reply = a
            .ask(
                &key,
                LedgerCommand::RemindIn {
                    name: "wake".into(),
                    delay_ms: DELAY_MS,
                },
            )
            .await
            .unwrap();
        assert_eq!(reply.node, "rem-b", "set on the owner, through A");

        b.cluster.drain(Duration::from_secs(5)).await;
        b.cluster.stop().await;
        let handed_over = set_at.elapsed();
        assert!(
            handed_over < Duration::from_millis(DELAY_MS),
            "the drain ({handed_over:?}) must end before the reminder is due"
        );
        assert_eq!(b.holds(), 0);
        let new_owner = a
            .runtime
            .locate_actor(Ledger::KIND, &key)
            .await
            .unwrap()
            .owner
            .expect("the shard has a new owner");
        assert_ne!(new_owner, "rem-b");

        let mut fired = Vec::new();
        let limit = Duration::from_millis(DELAY_MS) + Duration::from_secs(8);
        while set_at.elapsed() < limit {
            fired = a.ask(&key, LedgerCommand::Get).await.unwrap().reminded;
            if !fired.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "B handed over after {handed_over:?}; the reminder due at {DELAY_MS} ms ran on {fired:?}, seen {:?} after it was set",
            set_at.elapsed()
        );
        assert_eq!(fired, [format!("wake@{new_owner}")]);
        stop_all(&nodes).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 6. The secret.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_another_secret_is_refused() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let first = start(&store, "sec-a").await;
        let shared: Arc<dyn StateStore> = store.clone();
        match try_start(shared.clone(), "sec-x", "another-secret", fast_membership()).await {
            Err(ClusterError::SecretMismatch) => {}
            Err(error) => panic!("expected SecretMismatch, got {error}"),
            Ok(_) => panic!("a node with another secret joined"),
        }
        // The right secret still joins, and the refused node never became a member.
        let second = start(&store, "sec-b").await;
        let members: Vec<String> = store
            .list_members()
            .await
            .unwrap()
            .into_iter()
            .map(|member| member.node_id)
            .collect();
        assert!(!members.contains(&"sec-x".to_owned()), "{members:?}");
        assert!(members.contains(&"sec-b".to_owned()));
        stop_all(&[first, second]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_activation_busy_when_its_shard_moves_away_is_passivated_too() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let ids = ["busy-a", "busy-b"];
        let nodes = Arc::new(start_cluster(&store, &ids).await);
        let (a, b) = (&nodes[0], &nodes[1]);
        let key = keys_owned_by("busy", "busy-b", &ids, 1).remove(0);
        a.ask(&key, LedgerCommand::Get).await.unwrap();
        assert!(b.runtime.is_active::<Ledger>(&key));

        // A turn that is still running when B's shards move away.
        let slow = {
            let nodes = Arc::clone(&nodes);
            let key = key.clone();
            tokio::spawn(async move {
                nodes[0]
                    .ask(
                        &key,
                        LedgerCommand::SlowAppend {
                            token: "slow".into(),
                            ms: 600,
                        },
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.cluster.drain(Duration::from_secs(5)).await;
        assert_eq!(b.holds(), 0);
        assert!(
            !slow.is_finished(),
            "precondition: the slow turn outlasts the drain"
        );
        let reply = slow.await.unwrap().expect("the slow write is answered");
        println!("slow write answered by {}: {:?}", reply.node, reply.entries);

        let passivated = until(
            Duration::from_secs(3),
            "B's busy activation is passivated",
            || b.runtime.active_actors() == 0,
        )
        .await;
        println!("B's busy activation passivated {passivated:?} after its turn ended");
        let reply = a.ask(&key, LedgerCommand::Get).await.unwrap();
        assert_eq!(reply.node, "busy-a");
        assert_eq!(reply.entries, ["slow"]);
        stop_all(&nodes).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 7. An actor never saved, written by its old owner while its shard moves.

/// A's turn on a key that has no record yet is busy (expecting version 0) when B joins and
/// takes the shard over; B answers a read ("absent") before A's turn commits. A's write is
/// then acknowledged, and must be visible through every node afterwards: B must not keep
/// serving the absent actor it loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_write_committed_by_the_old_owner_during_a_hand_over_is_seen() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let a = start(&store, "fresh-a").await;
        until(Duration::from_secs(10), "A holds every shard", || {
            a.holds() == usize::from(SHARD_COUNT)
        })
        .await;
        let key = keys_owned_by("fresh", "fresh-b", &["fresh-a", "fresh-b"], 1).remove(0);
        let shard = shard_of(Ledger::KIND, &key);

        let slow = {
            let runtime = a.runtime.clone();
            let key = key.clone();
            tokio::spawn(async move {
                runtime
                    .actor::<Ledger>(key)
                    .ask(LedgerCommand::SlowAppend {
                        token: "first".into(),
                        ms: 2_500,
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = start(&store, "fresh-b").await;
        until(Duration::from_secs(5), "B serves the key's shard", || {
            b.cluster.leases().serves(shard)
        })
        .await;
        let before = b.ask(&key, LedgerCommand::Get).await.expect("B reads");
        assert_eq!(before.node, "fresh-b");

        match slow.await.expect("task") {
            Ok(reply) => {
                assert_eq!(reply.node, "fresh-a");
                for node in [&a, &b] {
                    let read = node.ask(&key, LedgerCommand::Get).await.expect("read");
                    assert_eq!(
                        read.entries,
                        ["first"],
                        "an acknowledged write is seen through {}",
                        node.id
                    );
                }
            }
            Err(error) => {
                // Refused or fenced instead: then it must not be there.
                assert!(error.is_not_applied(), "{error}");
                let read = b.ask(&key, LedgerCommand::Get).await.expect("read");
                assert!(read.entries.is_empty(), "{:?}", read.entries);
            }
        }
        stop_all(&[a, b]).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 7. Trace context.

/// A trace context that hands out numbered parents and records what it adopted.
#[derive(Default)]
struct RecordingTrace {
    node: String,
    /// Whether this node has a context to carry at all.
    carries: AtomicBool,
    injected: Mutex<Vec<TraceHeaders>>,
    adopted: Mutex<Vec<TraceHeaders>>,
}

impl RecordingTrace {
    fn new(node: &str) -> Arc<Self> {
        Arc::new(Self {
            node: node.to_owned(),
            carries: AtomicBool::new(true),
            ..Self::default()
        })
    }

    fn injected(&self) -> Vec<TraceHeaders> {
        self.injected.lock().unwrap().clone()
    }

    fn adopted(&self) -> Vec<TraceHeaders> {
        self.adopted.lock().unwrap().clone()
    }
}

impl TraceContext for RecordingTrace {
    fn inject(&self) -> Option<TraceHeaders> {
        if !self.carries.load(Ordering::SeqCst) {
            return None;
        }
        let mut injected = self.injected.lock().unwrap();
        let headers = TraceHeaders {
            traceparent: format!("00-{}-{}", self.node, injected.len()),
            tracestate: Some(format!("from={}", self.node)),
        };
        injected.push(headers.clone());
        Some(headers)
    }

    fn adopt(&self, _span: &tracing::Span, parent: &TraceHeaders) {
        self.adopted.lock().unwrap().push(parent.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_call_carries_the_senders_trace_context_to_the_owner() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let ids = ["trace-a", "trace-b"];
        let traces = [RecordingTrace::new(ids[0]), RecordingTrace::new(ids[1])];
        let mut nodes = Vec::new();
        for (id, trace) in ids.iter().zip(&traces) {
            let store: Arc<dyn StateStore> = store.clone();
            let trace: Arc<dyn TraceContext> = trace.clone();
            nodes.push(
                try_start_traced(store, id, SECRET, fast_membership(), trace)
                    .await
                    .unwrap(),
            );
        }
        let all: Vec<&Node> = nodes.iter().collect();
        until(Duration::from_secs(10), "the leases converge", || {
            converged(&all)
        })
        .await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let (trace_a, trace_b) = (&traces[0], &traces[1]);
        let key = keys_owned_by("traced", "trace-b", &ids, 1).remove(0);

        // Through A: A writes one context, and B adopts exactly that one.
        let reply = a
            .ask(&key, LedgerCommand::Append("x".into()))
            .await
            .unwrap();
        assert_eq!(reply.node, "trace-b");
        let sent = trace_a.injected();
        assert_eq!(sent.len(), 1, "one forwarded attempt");
        assert_eq!(trace_b.adopted(), sent);

        // On the owner itself: nothing crosses nodes, nothing is written or adopted.
        b.ask(&key, LedgerCommand::Get).await.unwrap();
        assert_eq!(trace_b.injected(), []);
        assert_eq!(trace_a.adopted(), []);

        // A sender with no context to carry: the call is served all the same, and the
        // owner adopts nothing.
        trace_a.carries.store(false, Ordering::SeqCst);
        let reply = a
            .ask(&key, LedgerCommand::Append("y".into()))
            .await
            .unwrap();
        assert_eq!(reply.entries, ["x", "y"]);
        assert_eq!(trace_b.adopted(), sent, "nothing more adopted");
        stop_all(&nodes).await;
    })
    .await;
}
