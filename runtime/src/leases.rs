//! Shard ownership: one lease per shard, with an epoch, held in the store.
//!
//! Every node runs the same loop over its [`MembershipView`]: it computes the rendezvous
//! owner ([`crate::placement::Rendezvous`]) of every shard among the placement candidates
//! (alive members that are `Up` or just joining, see [`crate::membership`]), and **claims the
//! shards it should own** with
//! [`StateStore::claim_lease`], a compare-and-set on the shard's epoch. Between rounds it
//! keeps a local [`LeaseTable`] (`shard → holder, epoch`) read from
//! [`StateStore::list_leases`], so it can tell who owns any shard.
//!
//! # Who holds a lease
//! A lease names a [`LeaseHolder`]: a node id *and its incarnation*, written
//! `node_id@incarnation`. A restarted node is a new life and claims its shards again under
//! new epochs instead of inheriting its former life's leases silently.
//!
//! # When a node claims a shard
//! Only when it is `Up`, healthy (see [`Membership::is_healthy`]), the shard's rendezvous owner
//! in its own view, and the current holder *yields*:
//! - nobody holds it, or the lease names no holder this runtime wrote;
//! - the holder is `Dead`, or reports itself `Leaving` or `Down` (graceful handover);
//! - the holder is a placement candidate but not the rendezvous owner (a member joined:
//!   rebalancing moves about `1/N` of the shards to it);
//! - the holder's life is over (a newer incarnation of its node id is in the view) and the
//!   new life is itself dead, leaving, down, or not the shard's owner (a new life that is
//!   still joining gets its shards back itself a moment later: taking them meanwhile would
//!   move them twice);
//! - the holder is not in the view at all, for `dead_after`: a lease written by a node whose
//!   row this node never saw, or whose row was removed long after it died or went down
//!   (see "Forgetting" in [`crate::membership`]). It is then taken like a dead holder's,
//!   with no hand-over hold-back; the wait only avoids taking from a holder merely newer
//!   than the view, which shows up at the next refresh.
//!
//! A `Suspect` holder keeps its shards: suspicion (a slow heartbeat, a failed probe) stops
//! new placements on a node, only death or leaving moves what it holds. A claim that loses
//! the compare-and-set means someone moved first: the node re-reads and decides again.
//!
//! The loop runs a round at every membership publication, so a new `Dead` verdict (from
//! silence or from a confirmed crash) is acted on at once, not at the next periodic tick;
//! a dead holder gets no hand-over hold-back (it serves nothing). A node whose table still
//! names a dead holder after that (another survivor is the claimer) re-reads it on demand
//! ([`Leases::nudge`], from routing) instead of at its next periodic refresh.
//!
//! # Invariants
//! - **At most one holder per shard per epoch.** An epoch is only ever created by a
//!   successful compare-and-set from the epoch before it, so two claims can never both
//!   produce the same epoch.
//! - **Epochs only grow.** Each claim adds one; nothing resets them (a lease is never
//!   deleted).
//! - **A node serves a shard only while it holds its lease** ([`Leases::serves`]): the lease
//!   names this life, the node is `Up` or `Leaving` and healthy, and its table was refreshed
//!   less than `fence_after` ago.
//! - **Leases are not what keeps data safe.** Two nodes may both believe, for a moment, that
//!   they own a shard (the old holder learns of a newer epoch only at its next refresh, a
//!   paused node wakes up with an old table). That is harmless for state: every actor
//!   write is a compare-and-set on the version the writer loaded (`crate::actor::Turn::commit`),
//!   so two activations on two nodes can never both commit the same actor version; the
//!   stale one gets `Conflict` and is discarded. Leases decide *where* actors should run, not
//!   whether a write is correct.
//!
//! # Graceful leave
//! [`Leases::drain`]: the node reports `Leaving` (it is no longer a placement candidate, and
//! a leaving holder yields), keeps serving the shards it still holds while their new
//! rendezvous owners claim them, and reports `Down` once it holds none (or at the deadline).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::duration_ms;
use crate::lock;
use crate::membership::{Liveness, Membership, MembershipView};
use crate::placement::{Rendezvous, SHARD_COUNT, Shard};
use crate::store::{Lease, MemberStatus, StateStore, StoreError};

/// Timing and concurrency of the lease loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How often the table is re-read when nothing else wakes the loop (every membership
    /// refresh also wakes it).
    pub refresh_interval: Duration,
    /// Claims in flight at once (a cold start claims about `1024 / N` shards).
    pub max_concurrent_claims: usize,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_millis(500),
            max_concurrent_claims: 16,
        }
    }
}

/// One life of one node, as named in a lease: `node_id@incarnation`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseHolder {
    pub node_id: String,
    pub incarnation: u64,
}

impl LeaseHolder {
    /// Read an owner string written by [`fmt::Display`]; `None` for anything else.
    pub fn parse(owner: &str) -> Option<Self> {
        let (node_id, incarnation) = owner.rsplit_once('@')?;
        Some(Self {
            node_id: node_id.to_owned(),
            incarnation: incarnation.parse().ok()?,
        })
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_id, self.incarnation)
    }
}

/// A shard's lease as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLease {
    pub epoch: u64,
    /// The owner string as stored.
    pub owner: String,
    /// The owner parsed; `None` if it is not `node_id@incarnation`.
    pub holder: Option<LeaseHolder>,
}

/// Who holds every shard, as this node last read it (plus its own claims since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTable {
    shards: Vec<Option<ShardLease>>,
    local: LeaseHolder,
    /// Monotonic ms of the last successful listing; `None` before the first.
    pub refreshed_at_ms: Option<u64>,
}

impl LeaseTable {
    fn empty(local: LeaseHolder) -> Self {
        Self {
            shards: vec![None; usize::from(SHARD_COUNT)],
            local,
            refreshed_at_ms: None,
        }
    }

    fn set(&mut self, lease: Lease) {
        if let Some(slot) = self.shards.get_mut(usize::from(lease.shard)) {
            *slot = Some(ShardLease {
                epoch: lease.epoch,
                holder: LeaseHolder::parse(&lease.owner),
                owner: lease.owner,
            });
        }
    }

    /// The lease of `shard`, `None` if it was never leased.
    pub fn lease(&self, shard: Shard) -> Option<&ShardLease> {
        self.shards.get(usize::from(shard))?.as_ref()
    }

    /// The node holding `shard`, if any.
    pub fn owner_node(&self, shard: Shard) -> Option<&str> {
        self.lease(shard)?
            .holder
            .as_ref()
            .map(|holder| holder.node_id.as_str())
    }

    /// Whether this node's current life holds `shard`.
    pub fn is_held_locally(&self, shard: Shard) -> bool {
        self.lease(shard)
            .is_some_and(|lease| lease.holder.as_ref() == Some(&self.local))
    }

    /// The shards this node's current life holds.
    pub fn held_locally(&self) -> Vec<Shard> {
        (0..SHARD_COUNT)
            .filter(|shard| self.is_held_locally(*shard))
            .collect()
    }

    /// How many shards each node id holds (every incarnation counted together).
    pub fn count_by_node(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for lease in self.shards.iter().flatten() {
            let node = lease
                .holder
                .as_ref()
                .map_or(lease.owner.as_str(), |holder| holder.node_id.as_str());
            *counts.entry(node.to_owned()).or_insert(0) += 1;
        }
        counts
    }

    /// Shards never leased.
    pub fn unleased(&self) -> usize {
        self.shards.iter().filter(|lease| lease.is_none()).count()
    }
}

/// Counts of this node's claims, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    pub claims_won: u64,
    pub claims_lost: u64,
    pub rounds: u64,
}

/// What a graceful leave achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Shards held when the drain began.
    pub held_at_start: usize,
    /// Shards still held at the deadline (taken over by nobody: no other candidate).
    pub still_held: Vec<Shard>,
}

struct Shared {
    membership: Membership,
    store: Arc<dyn StateStore>,
    config: LeaseConfig,
    local: LeaseHolder,
    table: watch::Sender<Arc<LeaseTable>>,
    /// Lease owner strings not found in the view, and since when (monotonic ms).
    unknown_since: Mutex<HashMap<String, u64>>,
    /// One round at a time (the loop and `drain` both run rounds).
    rounds: tokio::sync::Mutex<()>,
    /// Shards taken from a live holder and not served here until it confirms it stopped
    /// serving them (or until the entry expires; see [`Leases::serves`]).
    handovers: Mutex<HashMap<Shard, Handover>>,
    claims_won: AtomicU64,
    claims_lost: AtomicU64,
    round_count: AtomicU64,
    /// Monotonic ms of the last [`Leases::nudge`] that woke the loop.
    last_nudge_ms: AtomicU64,
    wake: Arc<Notify>,
}

/// [`Leases::nudge`] wakes the loop at most this often.
const NUDGE_EVERY_MS: u64 = 50;

/// A shard claimed from a holder that may still be serving it.
#[derive(Clone, Debug)]
struct Handover {
    previous: LeaseHolder,
    /// Monotonic ms after which the shard is served without the previous holder's word: by
    /// then it has re-read the leases or fenced itself.
    until_ms: u64,
    /// The previous holder has been asked (by the cluster layer) to let go.
    asked: bool,
}

/// This node's shard leases: the claim loop and the table. Cheap to clone; the loop stops
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Leases {
    shared: Arc<Shared>,
}

impl Leases {
    /// Start the lease loop of the node behind `membership`.
    pub fn start(membership: Membership, store: Arc<dyn StateStore>, config: LeaseConfig) -> Self {
        let local = LeaseHolder {
            node_id: membership.node_id().to_owned(),
            incarnation: membership.incarnation(),
        };
        let (table, _) = watch::channel(Arc::new(LeaseTable::empty(local.clone())));
        let views = membership.subscribe();
        let shared = Arc::new(Shared {
            membership,
            store,
            config,
            local,
            table,
            unknown_since: Mutex::new(HashMap::new()),
            handovers: Mutex::new(HashMap::new()),
            rounds: tokio::sync::Mutex::new(()),
            claims_won: AtomicU64::new(0),
            claims_lost: AtomicU64::new(0),
            round_count: AtomicU64::new(0),
            last_nudge_ms: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(run(
            Arc::downgrade(&shared),
            views,
            Arc::clone(&shared.wake),
        ));
        Self { shared }
    }

    /// This node's current life, as its leases name it.
    pub fn local(&self) -> &LeaseHolder {
        &self.shared.local
    }

    pub fn membership(&self) -> &Membership {
        &self.shared.membership
    }

    /// The latest table (an `Arc` clone).
    pub fn table(&self) -> Arc<LeaseTable> {
        self.shared.table.borrow().clone()
    }

    /// Notified whenever the table is re-read or a claim lands.
    pub fn subscribe(&self) -> watch::Receiver<Arc<LeaseTable>> {
        self.shared.table.subscribe()
    }

    pub fn stats(&self) -> LeaseStats {
        LeaseStats {
            claims_won: self.shared.claims_won.load(Ordering::Relaxed),
            claims_lost: self.shared.claims_lost.load(Ordering::Relaxed),
            rounds: self.shared.round_count.load(Ordering::Relaxed),
        }
    }

    /// Whether this node may serve `shard` right now: it holds the lease under its current
    /// life, it is `Up` or `Leaving` and healthy, its table is fresh, and no hand-over of the
    /// shard is pending.
    pub fn serves(&self, shard: Shard) -> bool {
        self.serving_epoch(shard).is_some()
    }

    /// Whether this node serves every shard it holds (no hand-over still pending).
    pub fn serves_all_held(&self) -> bool {
        self.table()
            .held_locally()
            .into_iter()
            .all(|shard| self.serves(shard))
    }

    /// The epoch of this node's lease on `shard` while it [`serves`](Self::serves) it.
    pub fn serving_epoch(&self, shard: Shard) -> Option<u64> {
        let membership = &self.shared.membership;
        if !membership.is_healthy()
            || !matches!(
                membership.status(),
                MemberStatus::Up | MemberStatus::Leaving
            )
        {
            return None;
        }
        let table = self.shared.table.borrow();
        let fence_after_ms = duration_ms(membership.config().fence_after());
        let now_ms = membership.clock().monotonic_ms();
        let fresh = table
            .refreshed_at_ms
            .is_some_and(|at_ms| now_ms.saturating_sub(at_ms) < fence_after_ms);
        if !fresh || !table.is_held_locally(shard) || self.is_handing_over(shard, now_ms) {
            return None;
        }
        table.lease(shard).map(|lease| lease.epoch)
    }

    fn is_handing_over(&self, shard: Shard, now_ms: u64) -> bool {
        let handovers = lock(&self.shared.handovers);
        handovers
            .get(&shard)
            .is_some_and(|handover| now_ms < handover.until_ms)
    }

    /// Shards taken from a live holder whose holder has not been asked to let go yet, by
    /// previous holder; marks them asked. The cluster layer asks each holder, and calls
    /// [`Leases::complete_handover`] when it answers.
    pub fn handovers_to_request(&self) -> BTreeMap<LeaseHolder, Vec<Shard>> {
        let mut handovers = lock(&self.shared.handovers);
        let now_ms = self.shared.membership.clock().monotonic_ms();
        handovers.retain(|_, handover| now_ms < handover.until_ms);
        let mut requests: BTreeMap<LeaseHolder, Vec<Shard>> = BTreeMap::new();
        for (shard, handover) in handovers.iter_mut().filter(|(_, handover)| !handover.asked) {
            handover.asked = true;
            requests
                .entry(handover.previous.clone())
                .or_default()
                .push(*shard);
        }
        requests
    }

    /// Of `shards`, those still held back until `previous` lets go: no answer completed
    /// their hand-over and it has not expired.
    pub fn awaiting_handover(&self, previous: &LeaseHolder, shards: &[Shard]) -> Vec<Shard> {
        let handovers = lock(&self.shared.handovers);
        let now_ms = self.shared.membership.clock().monotonic_ms();
        shards
            .iter()
            .copied()
            .filter(|shard| {
                handovers.get(shard).is_some_and(|handover| {
                    handover.previous == *previous && now_ms < handover.until_ms
                })
            })
            .collect()
    }

    /// The previous holder of `shards` confirmed it no longer serves them: serve them here.
    pub fn complete_handover(&self, shards: &[Shard]) {
        let mut handovers = lock(&self.shared.handovers);
        for shard in shards {
            handovers.remove(shard);
        }
    }

    /// Ask for a round soon: this node's table names a holder that is dead or gone, so a
    /// survivor is claiming (or has claimed) the shard, and the table should show it before
    /// the next periodic refresh. At most one wake-up every 50 ms, however many callers.
    pub fn nudge(&self) {
        let now_ms = self.shared.membership.clock().monotonic_ms().max(1);
        let last_ms = self.shared.last_nudge_ms.load(Ordering::Relaxed);
        if last_ms != 0 && now_ms.saturating_sub(last_ms) < NUDGE_EVERY_MS {
            return;
        }
        let won = self
            .shared
            .last_nudge_ms
            .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if won {
            self.shared.wake.notify_one();
        }
    }

    /// Run one round now (read the table, claim what this node should own) and return the
    /// table it left.
    pub async fn refresh(&self) -> Arc<LeaseTable> {
        self.shared.round().await;
        self.table()
    }

    /// Graceful leave: report `Leaving`, keep refreshing while the other nodes take the
    /// shards over, then report `Down` once nothing is held here, at `deadline`, or as soon
    /// as no other node could take them (the last node, or all nodes stopping together).
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        let report = self.hand_over(deadline).await;
        if let Err(error) = self.shared.membership.stop().await {
            tracing::warn!(%error, "leases: could not report Down");
        }
        report
    }

    /// A drain that stays: report `Leaving` and keep refreshing while the other nodes take
    /// the shards over, until nothing is held here, `deadline`, or no other node could take
    /// them. The node stays a `Leaving` member (it never claims again) until it stops.
    pub async fn hand_over(&self, deadline: Duration) -> DrainReport {
        let membership = &self.shared.membership;
        if let Err(error) = membership.leave().await {
            tracing::warn!(%error, "leases: could not report Leaving; draining anyway");
        }
        let started = tokio::time::Instant::now();
        let held_at_start = self.refresh().await.held_locally().len();
        let mut still_held;
        loop {
            still_held = self.table().held_locally();
            if still_held.is_empty() || started.elapsed() >= deadline || !self.has_successor() {
                break;
            }
            tokio::time::sleep(self.shared.config.refresh_interval).await;
            self.refresh().await;
        }
        DrainReport {
            held_at_start,
            still_held,
        }
    }
}

impl Shared {
    /// The planned shards whose current holder is alive and not down: it may be serving
    /// them right now (a rebalance, or a node leaving).
    fn live_previous_holders(
        &self,
        table: &LeaseTable,
        plan: &[(Shard, u64)],
    ) -> HashMap<Shard, (LeaseHolder, bool)> {
        let view = self.membership.view();
        plan.iter()
            .filter_map(|(shard, _)| {
                let holder = table.lease(*shard)?.holder.clone()?;
                let member = view.member(&holder.node_id)?;
                // A former life replaced by a newer one is not proved gone: it may be a
                // paused process that still serves until it reads its row. It is held back
                // like a live holder (and only time releases it: see `hold_back`).
                let former_life = member.incarnation > holder.incarnation;
                let live = former_life
                    || (member.incarnation == holder.incarnation
                        && member.liveness != Liveness::Dead
                        && member.status != MemberStatus::Down);
                // A former life is not asked to let go: its node id now reaches the new
                // life, whose answer says nothing of the old one.
                live.then_some((*shard, (holder, !former_life)))
            })
            .collect()
    }

    /// Do not serve `shard` until `previous` lets go (when `ask`), at most `fence_after`: by
    /// then a holder that could not be reached has fenced itself.
    fn hold_back(&self, shard: Shard, previous: LeaseHolder, ask: bool) {
        let until_ms = self.membership.clock().monotonic_ms()
            + duration_ms(self.membership.config().fence_after());
        lock(&self.handovers).insert(
            shard,
            Handover {
                previous,
                until_ms,
                asked: !ask,
            },
        );
    }
}

impl Leases {
    /// Whether another member could take shards over now (a placement candidate).
    fn has_successor(&self) -> bool {
        let membership = &self.shared.membership;
        membership.view().has_successor_of(membership.node_id())
    }
}

async fn run(
    shared: Weak<Shared>,
    mut views: watch::Receiver<Arc<MembershipView>>,
    wake: Arc<Notify>,
) {
    let Some(first) = shared.upgrade() else {
        return;
    };
    let mut ticks = tokio::time::interval(first.config.refresh_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drop(first);
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.round().await;
        drop(shared);
        ticks.reset();
        tokio::select! {
            _ = ticks.tick() => {}
            changed = views.changed() => {
                if changed.is_err() {
                    return; // the membership is gone
                }
            }
            () = wake.notified() => {}
        }
    }
}

impl Shared {
    /// Read the table; claim what this node should own; on a lost claim, read and decide
    /// again (a few times, then wait for the next round).
    async fn round(&self) {
        let _one_at_a_time = self.rounds.lock().await;
        self.round_count.fetch_add(1, Ordering::Relaxed);
        for _attempt in 0..3 {
            // The table is as fresh as the moment its read *started*: a read that took long
            // may show leases that changed while it was on its way.
            let read_started_ms = self.membership.clock().monotonic_ms();
            let listed = match self.store.list_leases().await {
                Ok(listed) => listed,
                Err(error) => {
                    tracing::warn!(%error, "leases: cannot list leases");
                    return;
                }
            };
            let now_ms = self.membership.clock().monotonic_ms();
            let mut table = LeaseTable::empty(self.local.clone());
            for lease in listed {
                table.set(lease);
            }
            table.refreshed_at_ms = Some(read_started_ms);
            let may_claim =
                self.membership.is_healthy() && self.membership.status() == MemberStatus::Up;
            let plan = if may_claim {
                self.plan(&table, &self.membership.view(), now_ms)
            } else {
                Vec::new()
            };
            if plan.is_empty() {
                self.publish(table);
                return;
            }
            let lost = self.claim(&mut table, plan).await;
            self.publish(table);
            if lost == 0 {
                return;
            }
        }
    }

    /// The shards to claim, with the epoch each claim expects.
    fn plan(&self, table: &LeaseTable, view: &MembershipView, now_ms: u64) -> Vec<(Shard, u64)> {
        let candidates = view.placement_candidates();
        // The node's own reported status first: a node that just reported `Leaving` may
        // still be a candidate in a view listed before its report (it would claim a dead
        // holder's shards only to hand them over again).
        let leaving = matches!(
            self.membership.status(),
            MemberStatus::Leaving | MemberStatus::Down
        );
        if leaving || !candidates.contains(&self.local.node_id.as_str()) {
            return Vec::new();
        }
        let rendezvous = Rendezvous::new(&candidates);
        let dead_after_ms = duration_ms(self.membership.config().dead_after);
        let mut unknown_since = lock(&self.unknown_since);
        let mut still_unknown = HashMap::new();
        let mut plan = Vec::new();
        for shard in 0..SHARD_COUNT {
            if rendezvous.owner(shard) != Some(self.local.node_id.as_str()) {
                continue;
            }
            let lease = table.lease(shard);
            let take = match lease {
                None => true,
                Some(lease) => match &lease.holder {
                    None => true,
                    Some(holder) if *holder == self.local => false,
                    Some(holder) => match view.member(&holder.node_id) {
                        None => {
                            let since = *unknown_since.get(&lease.owner).unwrap_or(&now_ms);
                            still_unknown.insert(lease.owner.clone(), since);
                            now_ms.saturating_sub(since) >= dead_after_ms
                        }
                        // The holder is newer than this view: wait for the next refresh.
                        Some(member) if member.incarnation < holder.incarnation => false,
                        // The same life, or a newer life of the holder's node id (which is
                        // judged in its place).
                        Some(member) => {
                            member.liveness == Liveness::Dead
                                || matches!(
                                    member.status,
                                    MemberStatus::Leaving | MemberStatus::Down
                                )
                                || member.is_placement_candidate()
                        }
                    },
                },
            };
            if take {
                plan.push((shard, lease.map_or(0, |lease| lease.epoch)));
            }
        }
        *unknown_since = still_unknown;
        plan
    }

    /// Claim every planned shard (a bounded number at a time); record the wins in `table`.
    /// Returns how many claims lost their compare-and-set.
    async fn claim(&self, table: &mut LeaseTable, plan: Vec<(Shard, u64)>) -> usize {
        let owner = self.local.to_string();
        let live_holders = self.live_previous_holders(table, &plan);
        let hold_back_from = |shard: Shard| {
            if let Some((previous, ask)) = live_holders.get(&shard) {
                self.hold_back(shard, previous.clone(), *ask);
            }
        };
        let mut lost = 0;
        for batch in plan.chunks(self.config.max_concurrent_claims.max(1)) {
            let claims = batch
                .iter()
                .map(|(shard, epoch)| self.store.claim_lease(*shard, &owner, *epoch));
            let results = futures::future::join_all(claims).await;
            for ((shard, _), result) in batch.iter().zip(results) {
                match result {
                    Ok(lease) => {
                        hold_back_from(lease.shard);
                        self.claims_won.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("emporium_cluster_lease_claims_total", "outcome" => "won")
                            .increment(1);
                        table.set(lease);
                    }
                    Err(StoreError::Conflict { .. }) => {
                        lost += 1;
                        self.claims_lost.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("emporium_cluster_lease_claims_total", "outcome" => "lost")
                            .increment(1);
                    }
                    Err(error) => {
                        metrics::counter!("emporium_cluster_lease_claims_total", "outcome" => "error")
                            .increment(1);
                        tracing::warn!(%error, shard, "leases: claim failed");
                        // It may have applied without an answer: should the next read show
                        // this node holding the shard, it is held back like any other claim.
                        if error.is_unavailable() {
                            hold_back_from(*shard);
                        }
                    }
                }
            }
        }
        lost
    }

    fn publish(&self, table: LeaseTable) {
        metrics::gauge!("emporium_cluster_shards_held").set(table.held_locally().len() as f64);
        self.table.send_replace(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_through_the_owner_string() {
        let holder = LeaseHolder {
            node_id: "node@rack-2".to_owned(),
            incarnation: 1_700_000_000_123,
        };
        assert_eq!(holder.to_string(), "node@rack-2@1700000000123");
        assert_eq!(LeaseHolder::parse(&holder.to_string()), Some(holder));
        assert_eq!(LeaseHolder::parse("node-1"), None);
        assert_eq!(LeaseHolder::parse("node-1@x"), None);
    }

    #[test]
    fn the_table_answers_who_holds_what() {
        let local = LeaseHolder {
            node_id: "a".to_owned(),
            incarnation: 7,
        };
        let mut table = LeaseTable::empty(local);
        assert_eq!(table.unleased(), usize::from(SHARD_COUNT));
        for (shard, owner) in [(0, "a@7"), (1, "a@6"), (2, "b@1"), (3, "junk")] {
            table.set(Lease {
                shard,
                owner: owner.to_owned(),
                epoch: 3,
            });
        }
        assert!(table.is_held_locally(0));
        assert!(!table.is_held_locally(1), "a former life holds nothing");
        assert_eq!(table.held_locally(), vec![0]);
        assert_eq!(table.owner_node(2), Some("b"));
        assert_eq!(table.owner_node(3), None);
        let counts = table.count_by_node();
        assert_eq!(counts["a"], 2);
        assert_eq!(counts["b"], 1);
        assert_eq!(counts["junk"], 1);
    }
}
