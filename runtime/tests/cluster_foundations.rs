//! The cluster's foundations, in process: several nodes' membership and lease loops over one
//! in-memory store, on tokio's paused clock (virtual time: no test waits in real time).
//!
//! A node here is a `Membership` plus its `Leases`, with its own clock and its own view of
//! the store. A crash drops the node (its loops stop without writing anything); a pause
//! blocks every store call the node makes (its loops freeze mid-flight, as a stopped process
//! would) until it is resumed.
//!
//! Measured figures are printed (`cargo test --test cluster_foundations -- --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::cluster::{
    DeathCause, Expulsion, Liveness, LocalMember, Membership, MembershipConfig,
};
use emporium_runtime::cluster::{LeaseConfig, LeaseHolder, Leases};
use emporium_runtime::store::{Lease, MemberStatus, MemoryStore};
use emporium_runtime::{Clock, Rendezvous, SHARD_COUNT, Shard, StateStore};
use tokio::time::Instant;

#[path = "support/pausable_store.rs"]
mod pausable_store;
use pausable_store::{PausableStore, PauseScope};

/// Wall time follows tokio's paused clock (all nodes agree); monotonic time starts with the
/// node, as a process's would.
struct NodeClock {
    started: Instant,
}

impl Clock for NodeClock {
    fn now_ms(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        let since = Instant::now().into_std().saturating_duration_since(origin);
        1_700_000_000_000 + since.as_millis() as u64
    }

    fn monotonic_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

struct Node {
    id: String,
    membership: Membership,
    leases: Leases,
    store: Arc<PausableStore>,
}

impl Node {
    async fn start(shared: &Arc<MemoryStore>, id: &str) -> Node {
        Self::start_with(
            shared,
            id,
            MembershipConfig::default(),
            PauseScope::Everything,
        )
        .await
    }

    /// A node with its own membership timings, whose store pauses hold up `scope`.
    async fn start_with(
        shared: &Arc<MemoryStore>,
        id: &str,
        config: MembershipConfig,
        scope: PauseScope,
    ) -> Node {
        let store = Arc::new(PausableStore::new(Arc::clone(shared), scope));
        let clock = Arc::new(NodeClock {
            started: Instant::now(),
        });
        let membership = Membership::join(
            LocalMember {
                node_id: id.to_owned(),
                cluster_addr: format!("{id}.cluster:7000"),
                http_addr: format!("{id}.http:8080"),
            },
            config,
            store.clone(),
            clock,
        )
        .await
        .expect("joins");
        let leases = Leases::start(membership.clone(), store.clone(), LeaseConfig::default());
        Node {
            id: id.to_owned(),
            membership,
            leases,
            store,
        }
    }

    fn holder(&self) -> LeaseHolder {
        self.leases.local().clone()
    }

    fn pause(&self) {
        self.store.pause();
    }

    fn resume(&self) {
        self.store.resume();
    }

    /// Which shards this node serves right now.
    fn served(&self) -> Vec<Shard> {
        (0..SHARD_COUNT)
            .filter(|shard| self.leases.serves(*shard))
            .collect()
    }
}

const HEARTBEAT_MS: u64 = 500;
const DEAD_AFTER_MS: u64 = 5_000;

async fn leases(store: &MemoryStore) -> BTreeMap<Shard, Lease> {
    let mut by_shard = BTreeMap::new();
    for lease in store.list_leases().await.unwrap() {
        let previous = by_shard.insert(lease.shard, lease);
        assert!(previous.is_none(), "a shard has two lease rows");
    }
    by_shard
}

/// Every shard is leased to its rendezvous owner among `nodes`, every node's table agrees
/// with the store, and exactly one node serves each shard.
async fn converged(store: &MemoryStore, nodes: &[&Node]) -> bool {
    let stored = leases(store).await;
    if stored.len() != usize::from(SHARD_COUNT) {
        return false;
    }
    let ids: Vec<&str> = nodes.iter().map(|node| node.id.as_str()).collect();
    let rendezvous = Rendezvous::new(&ids);
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|node| (node.id.as_str(), *node)).collect();
    let tables: Vec<_> = nodes.iter().map(|node| node.leases.table()).collect();
    let served: Vec<Vec<Shard>> = nodes.iter().map(|node| node.served()).collect();
    for (shard, lease) in &stored {
        let owner = by_id[rendezvous.owner(*shard).unwrap()];
        if LeaseHolder::parse(&lease.owner) != Some(owner.holder()) {
            return false;
        }
        if tables
            .iter()
            .any(|table| table.lease(*shard).map(|seen| seen.epoch) != Some(lease.epoch))
        {
            return false;
        }
        let servers = served.iter().filter(|s| s.contains(shard)).count();
        if servers != 1 {
            return false;
        }
    }
    true
}

/// Run virtual time until `nodes` converge; return how long it took (ms).
async fn until_converged(store: &MemoryStore, nodes: &[&Node], limit_ms: u64) -> u64 {
    let started = Instant::now();
    loop {
        if converged(store, nodes).await {
            return started.elapsed().as_millis() as u64;
        }
        assert!(
            started.elapsed().as_millis() as u64 <= limit_ms,
            "no convergence within {limit_ms} ms: {:?}",
            leases_per_node(store).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn leases_per_node(store: &MemoryStore) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for lease in leases(store).await.values() {
        let node = LeaseHolder::parse(&lease.owner).map_or(lease.owner.clone(), |h| h.node_id);
        *counts.entry(node).or_insert(0) += 1;
    }
    counts
}

async fn start_cluster(store: &Arc<MemoryStore>, ids: &[&str]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(Node::start(store, id).await);
    }
    nodes
}

fn total_claims(nodes: &[&Node]) -> u64 {
    nodes
        .iter()
        .map(|node| node.leases.stats().claims_won)
        .sum()
}

#[tokio::test(start_paused = true)]
async fn three_nodes_converge_on_an_even_split() {
    let store = Arc::new(MemoryStore::new());
    let nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let took = until_converged(&store, &all, 5_000).await;
    let counts = leases_per_node(&store).await;
    eprintln!(
        "3 nodes: converged after {took} ms (virtual), split {counts:?}, {} claims in all",
        total_claims(&all)
    );
    for node in &nodes {
        let held = counts[&node.id];
        assert!((256..=427).contains(&held), "{} holds {held}", node.id);
        assert_eq!(node.served().len(), held);
        assert_eq!(node.leases.table().held_locally().len(), held);
    }
    // Stable: nothing moves once converged.
    let before = leases(&store).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        leases(&store).await,
        before,
        "leases moved in a stable cluster"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fourth_node_takes_about_a_quarter() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let before = leases(&store).await;
    nodes.push(Node::start(&store, "node-4").await);
    let all: Vec<&Node> = nodes.iter().collect();
    let took = until_converged(&store, &all, 5_000).await;
    let after = leases(&store).await;
    let newcomer = nodes[3].holder().to_string();
    let mut moved = 0;
    for (shard, old) in &before {
        let new = &after[shard];
        if new.owner == old.owner {
            assert_eq!(new.epoch, old.epoch, "shard {shard} was re-leased in place");
        } else {
            assert_eq!(
                new.owner, newcomer,
                "shard {shard} moved between old members"
            );
            assert!(new.epoch > old.epoch);
            moved += 1;
        }
    }
    eprintln!(
        "join: node-4 took {moved} shards in {took} ms (virtual); split {:?}",
        leases_per_node(&store).await
    );
    assert!((192..=320).contains(&moved), "{moved} shards moved");
}

#[tokio::test(start_paused = true)]
async fn a_crashed_nodes_shards_are_re_leased_within_the_detection_bound() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    // Let a few heartbeats pass so that the crash falls at an arbitrary phase.
    tokio::time::sleep(Duration::from_millis(1_730)).await;
    let before = leases(&store).await;
    let crashed = nodes.pop().unwrap();
    let crashed_holder = crashed.holder().to_string();
    let orphaned: Vec<Shard> = before
        .iter()
        .filter(|(_, lease)| lease.owner == crashed_holder)
        .map(|(shard, _)| *shard)
        .collect();
    drop(crashed); // death: no more heartbeats, no Down row
    let died = Instant::now();

    let survivors: Vec<&Node> = nodes.iter().collect();
    let mut dead_seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut claimed_after = None;
    let agreed_after = loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let elapsed = died.elapsed().as_millis() as u64;
        for node in &survivors {
            let view = node.membership.view();
            if view.member("node-3").map(|m| m.liveness) == Some(Liveness::Dead) {
                dead_seen.entry(node.id.clone()).or_insert(elapsed);
            }
        }
        if claimed_after.is_none() {
            let now = leases(&store).await;
            if orphaned
                .iter()
                .all(|shard| now[shard].owner != crashed_holder)
            {
                claimed_after = Some(elapsed);
            }
        }
        if converged(&store, &survivors).await {
            break elapsed;
        }
        assert!(elapsed < 20_000, "no failover");
    };
    let detected_after = *dead_seen.values().max().unwrap();
    let re_leased_after = claimed_after.unwrap();
    eprintln!(
        "crash: survivors saw node-3 dead after {dead_seen:?} ms; its {} shards re-leased after \
         {re_leased_after} ms, every table agreeing after {agreed_after} ms (virtual); split {:?}",
        orphaned.len(),
        leases_per_node(&store).await
    );
    // The bound documented in `membership`: more than D - R, less than D + 2R.
    assert_eq!(dead_seen.len(), 2);
    assert!(
        detected_after > DEAD_AFTER_MS - HEARTBEAT_MS
            && detected_after < DEAD_AFTER_MS + 2 * HEARTBEAT_MS,
        "detected after {detected_after} ms"
    );
    // Failover follows detection at once (the lease loop wakes on the verdict); the other
    // survivor's table catches up at its next refresh.
    assert!(
        re_leased_after <= detected_after + 50,
        "re-leased {re_leased_after} ms after the crash"
    );
    assert!(agreed_after <= re_leased_after + HEARTBEAT_MS + 50);
    // Only the dead node's shards moved.
    let after = leases(&store).await;
    for (shard, old) in &before {
        if orphaned.contains(shard) {
            assert_eq!(after[shard].epoch, old.epoch + 1);
        } else {
            assert_eq!(&after[shard], old, "a survivor's shard moved");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_reported_by_a_refused_port_fails_over_within_crash_confirm() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    tokio::time::sleep(Duration::from_millis(1_730)).await;
    let crashed = nodes.pop().unwrap();
    let crashed_holder = crashed.holder();
    let orphaned: Vec<Shard> = leases(&store)
        .await
        .iter()
        .filter(|(_, lease)| lease.owner == crashed_holder.to_string())
        .map(|(shard, _)| *shard)
        .collect();
    drop(crashed);
    let died = Instant::now();
    // What the transport reports when the crashed node's port refuses a connection.
    for node in &nodes {
        node.membership
            .report_refused("node-3", crashed_holder.incarnation);
    }
    let survivors: Vec<&Node> = nodes.iter().collect();
    let mut claimed_after = None;
    let agreed_after = loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let elapsed = died.elapsed().as_millis() as u64;
        if claimed_after.is_none() {
            let now = leases(&store).await;
            if orphaned
                .iter()
                .all(|shard| now[shard].owner != crashed_holder.to_string())
            {
                claimed_after = Some(elapsed);
            }
        }
        if converged(&store, &survivors).await {
            break elapsed;
        }
        assert!(elapsed < 20_000, "no failover");
    };
    let claimed_after = claimed_after.unwrap();
    eprintln!(
        "crash with evidence: node-3's {} shards re-leased after {claimed_after} ms, every \
         table agreeing after {agreed_after} ms (virtual)",
        orphaned.len()
    );
    for node in &nodes {
        let seen = node.membership.view().member("node-3").cloned().unwrap();
        assert_eq!(
            (seen.liveness, seen.death),
            (Liveness::Dead, Some(DeathCause::Crash))
        );
    }
    // crash_confirm (600 ms) after the first listing that followed the report, no more:
    // the survivors claim at once and need no hand-over from a dead holder.
    let confirm_ms = nodes[0].membership.crash_confirm().as_millis() as u64;
    assert!(
        claimed_after >= confirm_ms && claimed_after <= confirm_ms + 60,
        "re-leased {claimed_after} ms after the crash"
    );
    // The other survivor's table shows a claim it did not make at its next refresh (a
    // request for such a shard re-reads at once: `Leases::nudge`).
    assert!(
        agreed_after <= claimed_after + HEARTBEAT_MS + 60,
        "agreed {agreed_after} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_port_of_a_paused_node_is_no_crash_while_its_row_moves() {
    let store = Arc::new(MemoryStore::new());
    let nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let before = leases(&store).await;
    // A false refusal of a live node (say, a firewall answering with resets): its row keeps
    // changing, so the store never confirms it.
    let incarnation = nodes[2].holder().incarnation;
    for _ in 0..10 {
        nodes[0].membership.report_refused("node-3", incarnation);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_ne!(
            nodes[0]
                .membership
                .view()
                .member("node-3")
                .unwrap()
                .liveness,
            Liveness::Dead
        );
    }
    assert_eq!(leases(&store).await, before, "nothing moved");
    // A paused node is silent in the store but its port does not refuse: no report, so
    // only the time-based path moves its shards (after dead_after, not before).
    nodes[2].pause();
    let paused = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let moved = leases(&store)
            .await
            .values()
            .any(|lease| LeaseHolder::parse(&lease.owner) == Some(nodes[2].holder()))
            .then_some(())
            .is_none();
        let elapsed = paused.elapsed().as_millis() as u64;
        if moved {
            assert!(
                elapsed > DEAD_AFTER_MS - HEARTBEAT_MS,
                "a paused node's shards moved after {elapsed} ms"
            );
            break;
        }
        assert!(elapsed < 20_000, "no failover");
    }
    nodes[2].resume();
}

#[tokio::test(start_paused = true)]
async fn a_graceful_leave_hands_over_before_exit() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let leaving = nodes.remove(1);
    let held = leaving.leases.table().held_locally().len();
    let started = Instant::now();
    let drain = {
        let leases = leaving.leases.clone();
        tokio::spawn(async move { leases.drain(Duration::from_secs(10)).await })
    };
    // While it drains, no shard stays unserved: a claimer serves a shard taken from the
    // leaving node once that node has let go (what the cluster layer's revoke does, done
    // here by hand), so a shard may be unserved in one snapshot, never in two in a row.
    let mut worst_gap = 0;
    let mut unserved_before = BTreeSet::new();
    while !drain.is_finished() {
        let mut served = vec![false; usize::from(SHARD_COUNT)];
        for node in nodes.iter().chain([&leaving]) {
            for shard in node.served() {
                served[usize::from(shard)] = true;
            }
        }
        let unserved: BTreeSet<usize> = (0..served.len()).filter(|i| !served[*i]).collect();
        worst_gap = worst_gap.max(unserved.intersection(&unserved_before).count());
        unserved_before = unserved;
        for node in nodes.iter().chain([&leaving]) {
            for (holder, shards) in node.leases.handovers_to_request() {
                let previous = nodes
                    .iter()
                    .chain([&leaving])
                    .find(|other| *other.leases.local() == holder);
                if let Some(previous) = previous {
                    previous.leases.refresh().await;
                }
                node.leases.complete_handover(&shards);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = drain.await.unwrap();
    let took = started.elapsed().as_millis() as u64;
    eprintln!(
        "leave: node-2 handed over {} shards in {took} ms (virtual); split {:?}",
        report.held_at_start,
        leases_per_node(&store).await
    );
    assert_eq!(report.held_at_start, held);
    assert!(report.still_held.is_empty(), "{report:?}");
    assert_eq!(
        worst_gap, 0,
        "some shards were served by nobody during the drain"
    );
    assert!(took <= 3 * HEARTBEAT_MS, "drain took {took} ms");
    // Before exit: the row says Down, the others own everything, nobody waited for a verdict.
    let rows = store.list_members().await.unwrap();
    let row = rows.iter().find(|row| row.node_id == "node-2").unwrap();
    assert_eq!(row.status, MemberStatus::Down);
    assert!(leaving.served().is_empty());
    let survivors: Vec<&Node> = nodes.iter().collect();
    until_converged(&store, &survivors, HEARTBEAT_MS).await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_node_wakes_up_fenced_and_does_not_claim_back() {
    let store = Arc::new(MemoryStore::new());
    let nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let paused = &nodes[2];
    let held_before = paused.served().len();
    let paused_holder = paused.holder().to_string();
    paused.pause();
    let froze = Instant::now();
    let survivors: Vec<&Node> = nodes[..2].iter().collect();
    // The frozen node stops serving (its own clock says it may be declared dead) strictly
    // before anybody else claims one of its shards.
    let mut fenced_after = None;
    let mut first_claim_after = None;
    while first_claim_after.is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let elapsed = froze.elapsed().as_millis() as u64;
        if fenced_after.is_none() && paused.served().is_empty() {
            fenced_after = Some(elapsed);
        }
        let stolen = leases(&store)
            .await
            .values()
            .filter(|lease| lease.owner != paused_holder)
            .count();
        if stolen > usize::from(SHARD_COUNT) - held_before {
            first_claim_after = Some(elapsed);
        }
        assert!(elapsed < 20_000);
    }
    let (fenced_after, first_claim_after) = (fenced_after.unwrap(), first_claim_after.unwrap());
    assert!(
        fenced_after < first_claim_after,
        "fenced after {fenced_after} ms, first claim after {first_claim_after} ms"
    );
    let took = first_claim_after + until_converged(&store, &survivors, 10_000).await;
    // Frozen a while longer, then wakes up with its old lease table in memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_wake = leases(&store).await;
    paused.resume();
    tokio::time::sleep(Duration::from_secs(10)).await;

    eprintln!(
        "pause: node-3 stopped serving {fenced_after} ms after it froze, the survivors took its \
         {held_before} shards at {first_claim_after} ms and agreed at {took} ms (virtual); on \
         waking it expelled itself: {:?}",
        paused.membership.expelled()
    );
    assert!(matches!(
        paused.membership.expelled(),
        Some(Expulsion::Silent { .. })
    ));
    assert!(paused.served().is_empty(), "a fenced node serves nothing");
    assert_eq!(paused.leases.stats().claims_lost, 0, "it did not even try");
    assert_eq!(
        leases(&store).await,
        before_wake,
        "nothing moved after it woke up"
    );
    let rows = store.list_members().await.unwrap();
    let row = rows.iter().find(|row| row.node_id == "node-3").unwrap();
    assert_eq!(row.status, MemberStatus::Down);
    for node in &survivors {
        let seen = node.membership.view().member("node-3").cloned().unwrap();
        assert_eq!(seen.status, MemberStatus::Down);
        assert!(!seen.is_placement_candidate());
    }
    assert!(converged(&store, &survivors).await);
}

/// A restarted node is a new life: it claims its shards back at once, but serves them only
/// once its former life can no longer serve (`fence_after`): the former life is not proved
/// gone (it may be a paused process that still answers until it reads its row).
#[tokio::test(start_paused = true)]
async fn a_restarted_node_reclaims_its_shards_at_once_and_serves_them_when_its_old_life_is_fenced()
{
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let before = leases(&store).await;
    let old = nodes.pop().unwrap();
    let old_holder = old.holder().to_string();
    drop(old);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.push(Node::start(&store, "node-3").await);
    let new_holder = nodes[2].holder().to_string();
    let started = Instant::now();
    loop {
        let now = leases(&store).await;
        if before
            .iter()
            .filter(|(_, lease)| lease.owner == old_holder)
            .all(|(shard, _)| now[shard].owner == new_holder)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "not reclaimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let claimed = started.elapsed().as_millis() as u64;
    let took = claimed + until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 6_000).await;
    eprintln!("restart: claimed after {claimed} ms, served after {took} ms (virtual)");
    let fence_after_ms = DEAD_AFTER_MS - HEARTBEAT_MS;
    assert!(claimed < 2 * HEARTBEAT_MS + 100, "{claimed} ms");
    assert!(
        took + 300 >= fence_after_ms,
        "served before the old life fenced: {took} ms"
    );
    assert!(took < DEAD_AFTER_MS + 2 * HEARTBEAT_MS, "{took} ms");
    let after = leases(&store).await;
    for (shard, old) in &before {
        if old.owner == old_holder {
            assert_eq!(after[shard].owner, new_holder);
            assert_eq!(after[shard].epoch, old.epoch + 1, "a new life, a new epoch");
        } else {
            assert_eq!(&after[shard], old);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_suspect_keeps_its_shards() {
    let store = Arc::new(MemoryStore::new());
    let nodes = start_cluster(&store, &["node-1", "node-2", "node-3"]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    until_converged(&store, &all, 5_000).await;
    let before = leases(&store).await;
    // A probe from node-1 cannot reach node-3, which still heartbeats through the store.
    nodes[0].membership.report_unreachable("node-3");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let seen = nodes[0]
        .membership
        .view()
        .member("node-3")
        .cloned()
        .unwrap();
    assert_eq!(seen.liveness, Liveness::Suspect);
    assert!(!seen.is_placement_candidate());
    assert_eq!(leases(&store).await, before, "suspicion alone moved shards");
    nodes[0].membership.report_reachable("node-3");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(converged(&store, &all).await);
    assert_eq!(leases(&store).await, before);
}

// Forgetting long-gone members (`membership`, "Forgetting").

/// `forget_after` as short as allowed with the default `dead_after` (3 × 5 s) plus a margin,
/// so a test needs seconds of virtual time, not an hour.
const FORGET_AFTER_MS: u64 = 20_000;

fn forgetful() -> MembershipConfig {
    MembershipConfig {
        forget_after: Duration::from_millis(FORGET_AFTER_MS),
        ..MembershipConfig::default()
    }
}

async fn start_forgetful(store: &Arc<MemoryStore>, ids: &[&str], scope: PauseScope) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(Node::start_with(store, id, forgetful(), scope).await);
    }
    nodes
}

/// The incarnation of `node_id`'s row in the store, if it has one.
async fn row_of(store: &MemoryStore, node_id: &str) -> Option<u64> {
    store
        .list_members()
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.node_id == node_id)
        .map(|row| row.incarnation)
}

/// Run virtual time until `node_id`'s row is gone from the store; return when (ms since
/// `since`). Fails past `limit_ms`.
async fn until_row_gone(store: &MemoryStore, node_id: &str, since: Instant, limit_ms: u64) -> u64 {
    loop {
        let elapsed = since.elapsed().as_millis() as u64;
        if row_of(store, node_id).await.is_none() {
            return elapsed;
        }
        assert!(
            elapsed <= limit_ms,
            "{node_id}'s row still there after {elapsed} ms"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every survivor's view lacks `node_id` (within one heartbeat of its row going).
async fn forgotten_by_all(survivors: &[&Node], node_id: &str) {
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS + 50)).await;
    for node in survivors {
        assert!(
            node.membership.view().member(node_id).is_none(),
            "{} still sees {node_id}",
            node.id
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_node_is_forgotten_forget_after_after_it_went_down_and_not_before() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_forgetful(
        &store,
        &["node-1", "node-2", "node-3"],
        PauseScope::Everything,
    )
    .await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let leaving = nodes.pop().unwrap();
    let report = leaving.leases.drain(Duration::from_secs(10)).await;
    assert!(report.still_held.is_empty(), "{report:?}");
    let down_at = Instant::now();
    assert!(leaving.membership.has_finished(), "its Down is written");
    let gone_after = until_row_gone(&store, "node-3", down_at, 30_000).await;
    eprintln!("stop: node-3's row removed {gone_after} ms after it went down (virtual)");
    // Seen down at the survivors' next listing (< 1 heartbeat), removed at the first
    // listing forget_after after that (< 1 more).
    assert!(
        (FORGET_AFTER_MS..=FORGET_AFTER_MS + 2 * HEARTBEAT_MS + 50).contains(&gone_after),
        "removed {gone_after} ms after going down"
    );
    let survivors: Vec<&Node> = nodes.iter().collect();
    forgotten_by_all(&survivors, "node-3").await;
    until_converged(&store, &survivors, HEARTBEAT_MS).await;
    // Nothing else was touched.
    for node in &survivors {
        assert!(row_of(&store, &node.id).await.is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_crashed_node_is_forgotten_dead_after_plus_forget_after_after_its_last_heartbeat() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes = start_forgetful(
        &store,
        &["node-1", "node-2", "node-3"],
        PauseScope::Everything,
    )
    .await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    tokio::time::sleep(Duration::from_millis(1_730)).await;
    drop(nodes.pop()); // a crash: no Down row
    let died = Instant::now();
    let gone_after = until_row_gone(&store, "node-3", died, 40_000).await;
    eprintln!("crash: node-3's row removed {gone_after} ms after the crash (virtual)");
    // Its last change was seen within a heartbeat either side of the crash; dead
    // `dead_after` after that, forgotten `forget_after` later, at a listing.
    let least = DEAD_AFTER_MS + FORGET_AFTER_MS - HEARTBEAT_MS;
    assert!(
        (least..=least + 3 * HEARTBEAT_MS + 50).contains(&gone_after),
        "removed {gone_after} ms after the crash"
    );
    let survivors: Vec<&Node> = nodes.iter().collect();
    forgotten_by_all(&survivors, "node-3").await;
    until_converged(&store, &survivors, HEARTBEAT_MS).await;
}

/// A new life of a node id is never removed, whether it starts before its former life's
/// row is due, around the moment it is removed, or long after.
#[tokio::test(start_paused = true)]
async fn a_new_life_of_a_forgotten_node_id_is_never_removed() {
    let due_ms = DEAD_AFTER_MS + FORGET_AFTER_MS;
    for restart_after_ms in [
        10_000,
        due_ms - HEARTBEAT_MS,
        due_ms - 100,
        due_ms + 100,
        due_ms + HEARTBEAT_MS,
        2 * due_ms,
    ] {
        let store = Arc::new(MemoryStore::new());
        let mut nodes = start_forgetful(
            &store,
            &["node-1", "node-2", "node-3"],
            PauseScope::Everything,
        )
        .await;
        until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
        let old_life = nodes.pop().unwrap();
        let old_incarnation = old_life.holder().incarnation;
        drop(old_life);
        tokio::time::sleep(Duration::from_millis(restart_after_ms)).await;
        nodes.push(Node::start_with(&store, "node-3", forgetful(), PauseScope::Everything).await);
        let new_incarnation = nodes[2].holder().incarnation;
        assert!(new_incarnation > old_incarnation);
        // Long enough for any row of it to be due twice over, were it gone.
        tokio::time::sleep(Duration::from_millis(2 * due_ms)).await;
        assert_eq!(
            row_of(&store, "node-3").await,
            Some(new_incarnation),
            "restarted {restart_after_ms} ms after the crash"
        );
        for node in &nodes[..2] {
            let seen = node.membership.view().member("node-3").cloned().unwrap();
            assert_eq!(
                (seen.incarnation, seen.liveness),
                (new_incarnation, Liveness::Alive),
                "restarted {restart_after_ms} ms after the crash"
            );
        }
        until_converged(&store, &nodes.iter().collect::<Vec<_>>(), HEARTBEAT_MS).await;
    }
}

/// Shards still leased to a holder whose row is gone (the survivors' lease loops were stuck
/// while it was dead and forgotten) are claimed by the survivors once the loops run again:
/// like a dead holder's, without a hand-over, once the holder has been absent from their
/// view for `dead_after` (a holder merely newer than the view would show up before that).
#[tokio::test(start_paused = true)]
async fn shards_of_a_forgotten_holder_are_claimed_by_the_survivors() {
    let store = Arc::new(MemoryStore::new());
    let mut nodes =
        start_forgetful(&store, &["node-1", "node-2", "node-3"], PauseScope::Leases).await;
    until_converged(&store, &nodes.iter().collect::<Vec<_>>(), 5_000).await;
    let before = leases(&store).await;
    let crashed = nodes.pop().unwrap();
    let crashed_holder = crashed.holder().to_string();
    let orphaned: Vec<Shard> = before
        .iter()
        .filter(|(_, lease)| lease.owner == crashed_holder)
        .map(|(shard, _)| *shard)
        .collect();
    assert!(!orphaned.is_empty());
    for node in &nodes {
        node.pause(); // lease listings and claims only: the heartbeats go on
    }
    drop(crashed);
    let died = Instant::now();
    until_row_gone(&store, "node-3", died, 40_000).await;
    let survivors: Vec<&Node> = nodes.iter().collect();
    forgotten_by_all(&survivors, "node-3").await;
    assert_eq!(leases(&store).await, before, "nobody could claim meanwhile");

    for node in &nodes {
        node.resume();
    }
    let resumed = Instant::now();
    let took = until_converged(&store, &survivors, 3 * DEAD_AFTER_MS).await;
    eprintln!(
        "forgotten holder: its {} shards claimed and served {took} ms after the lease loops \
         resumed (virtual); split {:?}",
        orphaned.len(),
        leases_per_node(&store).await
    );
    // dead_after from the first round that found the holder unknown, the next round
    // claims, the other survivor's table catches up at its next refresh.
    assert!(
        took <= DEAD_AFTER_MS + 3 * HEARTBEAT_MS,
        "claimed {took} ms after resuming"
    );
    assert!(resumed.elapsed().as_millis() as u64 >= took);
    let after = leases(&store).await;
    for (shard, old) in &before {
        if orphaned.contains(shard) {
            assert_eq!(after[shard].epoch, old.epoch + 1, "shard {shard}");
            assert_ne!(after[shard].owner, crashed_holder);
        } else {
            assert_eq!(&after[shard], old, "a survivor's shard moved");
        }
    }
}
