//! Cluster membership: who is in the cluster, in which state, and whether they are alive.
//!
//! Every node writes its own row in the store (a *heartbeat*: [`StateStore::upsert_member`])
//! every [`MembershipConfig::heartbeat_interval`], and in the same loop reads every row
//! ([`StateStore::list_members`]) to compute its [`MembershipView`]. There is no gossip and no
//! coordinator: the store is the meeting point, and every node judges liveness for itself.
//!
//! # A node's own lifecycle
//! - **Joining** when it starts. Its *incarnation* is its start time in wall-clock ms (raised
//!   above the incarnation already in its row, so a restarted node is always a newer life).
//! - **Up** after its second refresh: by then every row it judged on first sight (from the
//!   writer's wall clock) has been observed again (from its own clock, see below).
//! - **Leaving** on [`Membership::leave`]: still alive, no longer a placement candidate, so
//!   the other nodes take its shards over while it keeps serving those it still holds.
//! - **Down** on [`Membership::stop`] (graceful exit), or when it *expels itself* (below).
//!
//! # Liveness, judged by observation, not by comparing clocks
//! A member is [`Liveness::Alive`] while its row was seen to change less than
//! [`MembershipConfig::suspect_after`] ago, [`Liveness::Suspect`] until
//! [`MembershipConfig::dead_after`], then [`Liveness::Dead`]. "Ago" is measured on the
//! observer's own monotonic clock from the refresh at which it last saw the row change (every
//! heartbeat changes `heartbeat_ms`, which the writer makes strictly increasing). Comparing
//! the writer's `heartbeat_ms` with the reader's wall clock instead would make liveness depend
//! on clock skew: a node whose clock runs 6 s behind would look dead to everyone while alive
//! to itself, and the cluster would fight over its shards for as long as the skew lasts. The
//! writer's wall clock is used only on *first sight* of a row (a node just started, or a new
//! incarnation): a row whose heartbeat is older than `dead_after` is then taken as dead
//! rather than waited for; a wrong guess is corrected by the next refresh.
//!
//! A newer incarnation of a node id replaces the older one (a restarted node is a new life);
//! a row that shows an *older* incarnation than one already seen is a stale write of a
//! former life and is ignored.
//!
//! # Placement candidates
//! Shards are placed among the members that are `Alive` and `Up`, **or `Joining` for less
//! than `dead_after`** ([`MembershipView::placement_candidates`]). Counting a joining member
//! keeps its future shards where they are for the second it takes to come `Up`, instead of
//! placing them elsewhere and moving them again: a cold-started cluster leases each shard
//! once, and a restarted node gets its shards straight back. (Only an `Up` node claims, so
//! nothing is served by a node still joining; the time limit keeps a node stuck in `Joining`
//! from holding shards hostage.) `Leaving`, `Down`, `Suspect` and `Dead` members are never
//! candidates.
//!
//! # The failure-detection bound
//! With `D = dead_after`, `R = heartbeat_interval` (also the refresh interval) and every node
//! on the same configuration: a node that dies was last seen to change at a refresh less than
//! `R` after its last write, and a survivor declares it dead at the first refresh at least `D`
//! after that. So **from a node's death to every survivor seeing it `Dead` takes more than
//! `D - R` and less than `D + 2R`** (4.5 s to 6 s with the defaults). The extra `R` over a
//! clock-comparing detector is the price of skew immunity. A survivor never declares a node
//! dead while it writes a heartbeat at least every `D`: a dead verdict needs a read that shows
//! no change over `D`, which only a longer silence can produce.
//!
//! # Self-fencing: a node that may have been declared dead expels itself
//! A node that could not heartbeat for [`MembershipConfig::fence_after`]
//! (`dead_after - heartbeat_interval`) — a long GC or VM pause, a store outage, a process
//! frozen by a debugger — cannot know whether others declared it dead and took its shards.
//! It must not come back as the same life: it **expels itself** ([`Membership::expelled`]),
//! writes itself `Down`, stops heartbeating, and never claims a shard again. Coming back
//! takes a restart, which is a new incarnation that joins like any new node. It expels
//! itself too when its row shows a newer incarnation of its own node id (another process
//! took its identity). The check runs before every heartbeat, after every heartbeat (the
//! write itself may have been slow), and live in [`Membership::is_healthy`], so a process
//! that just woke up knows it is stale before its loops run.
//!
//! # Direct probes (the seam)
//! The store only shows that a node can reach the store. [`Membership::report_unreachable`]
//! lets a direct probe over the cluster transport mark a peer `Suspect` at once (it is then
//! no placement candidate in this node's view), until [`Membership::report_reachable`] or a
//! new incarnation. A probe alone never makes a peer `Dead`: moving shards needs the verdict
//! every node reaches from the same rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::{SharedClock, duration_ms};
use crate::lock;
use crate::store::{MemberRecord, MemberStatus, StateStore, StoreError};

/// Timing of the heartbeat and of the liveness verdicts. Every node of a cluster must use the
/// same values: the failure-detection bound assumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a node writes its row and reads everyone's.
    pub heartbeat_interval: Duration,
    /// Silence after which a member is `Suspect` (no longer a placement candidate).
    pub suspect_after: Duration,
    /// Silence after which a member is `Dead` (its shards move).
    pub dead_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            suspect_after: Duration::from_secs(2),
            dead_after: Duration::from_secs(5),
        }
    }
}

impl MembershipConfig {
    /// Check the ordering the detector relies on; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval.is_zero() {
            return Err("heartbeat_interval must be positive".to_owned());
        }
        if self.suspect_after <= self.heartbeat_interval {
            return Err("suspect_after must be longer than heartbeat_interval".to_owned());
        }
        if self.dead_after <= self.suspect_after {
            return Err("dead_after must be longer than suspect_after".to_owned());
        }
        if self.dead_after < self.heartbeat_interval * 3 {
            return Err("dead_after must be at least three heartbeat intervals".to_owned());
        }
        Ok(())
    }

    /// A node silent for this long expels itself: others may already see it dead.
    pub fn fence_after(&self) -> Duration {
        self.dead_after - self.heartbeat_interval
    }
}

/// How this node presents itself to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMember {
    pub node_id: String,
    /// Where peers reach it (cluster transport).
    pub cluster_addr: String,
    /// Where clients reach it (HTTP edge).
    pub http_addr: String,
}

/// This node's verdict on a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    Alive,
    /// Silent for a while, or reported unreachable by a probe: not a placement candidate,
    /// but its shards stay where they are.
    Suspect,
    /// Silent for `dead_after`: its shards move to their new owners.
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Dead => "dead",
        }
    }
}

/// One member as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberState {
    pub node_id: String,
    pub incarnation: u64,
    pub cluster_addr: String,
    pub http_addr: String,
    /// What the member last reported about itself.
    pub status: MemberStatus,
    /// What this node concludes from the member's silence (and probes).
    pub liveness: Liveness,
    /// The member's own wall clock at its last heartbeat (for display; never compared).
    pub last_heartbeat_ms: u64,
    /// For how long this node has not seen the member's row change.
    pub silent_for_ms: u64,
    /// A direct probe reported it unreachable.
    pub unreachable: bool,
    /// May be given shards: `Alive`, and `Up` or `Joining` for less than `dead_after`.
    pub candidate: bool,
}

impl MemberState {
    /// May be given shards (see the module doc).
    pub fn is_placement_candidate(&self) -> bool {
        self.candidate
    }
}

/// A cheap snapshot of the membership as this node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// Sorted by node id; this node included.
    pub members: Vec<MemberState>,
    pub local_node_id: String,
    pub local_incarnation: u64,
    /// This node's monotonic ms when the view was computed.
    pub as_of_ms: u64,
    /// How many member listings this view has seen (1 right after joining).
    pub refreshes: u64,
}

impl MembershipView {
    pub fn member(&self, node_id: &str) -> Option<&MemberState> {
        self.members
            .binary_search_by(|member| member.node_id.as_str().cmp(node_id))
            .ok()
            .map(|index| &self.members[index])
    }

    /// This node's own entry.
    pub fn local(&self) -> Option<&MemberState> {
        self.member(&self.local_node_id)
    }

    /// The node ids that may own shards, sorted.
    pub fn placement_candidates(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|member| member.is_placement_candidate())
            .map(|member| member.node_id.as_str())
            .collect()
    }
}

/// Why a node expelled itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expulsion {
    /// No successful heartbeat for `silent_ms` (at least `fence_after`): the others may have
    /// declared it dead and taken its shards.
    Silent { silent_ms: u64 },
    /// Its row shows a newer incarnation of its node id.
    Superseded { by_incarnation: u64 },
}

/// What one node saw of another member's row.
struct Observation {
    record: MemberRecord,
    /// Monotonic ms at which the row was last seen to change. Signed: a first sight may
    /// back-date it past the clock's origin.
    seen_ms: i64,
    /// Monotonic ms at which this incarnation was first seen.
    first_seen_ms: u64,
}

/// The node's own lifecycle, changed by the loop, `leave`, `stop` and expulsion.
struct Local {
    status: MemberStatus,
    expelled: Option<Expulsion>,
    /// Set once `Down` is durably written (or the loop gave up): the loop is over.
    finished: bool,
    /// The last heartbeat value written; the next one is strictly greater.
    last_heartbeat_ms: u64,
    /// Monotonic ms at which the last *successful* heartbeat write started.
    last_beat_started_ms: u64,
}

struct Observed {
    members: HashMap<String, Observation>,
    /// Node id to the incarnation a probe found unreachable.
    unreachable: HashMap<String, u64>,
    refreshes: u64,
}

struct Shared {
    local: LocalMember,
    incarnation: u64,
    config: MembershipConfig,
    store: Arc<dyn StateStore>,
    clock: SharedClock,
    state: Mutex<Local>,
    observed: Mutex<Observed>,
    /// Serialises writes of this node's own row, so a `Down` can never be overtaken by a
    /// heartbeat that was already in flight.
    writing: tokio::sync::Mutex<()>,
    view: watch::Sender<Arc<MembershipView>>,
    wake: Arc<Notify>,
}

/// A node's membership: its heartbeat loop and its view of the others. Cheap to clone; the
/// loop stops when the last handle is dropped (without writing anything: that is how tests
/// simulate a crash) or after [`Membership::stop`].
#[derive(Clone)]
pub struct Membership {
    shared: Arc<Shared>,
}

impl Membership {
    /// Join: pick an incarnation, read every row, write this node's row as `Joining`, and
    /// start the heartbeat loop. Fails only if the store cannot be read or written.
    pub async fn join(
        local: LocalMember,
        config: MembershipConfig,
        store: Arc<dyn StateStore>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        config.validate().map_err(StoreError::Other)?;
        let rows = store.list_members().await?;
        let previous = rows
            .iter()
            .filter(|row| row.node_id == local.node_id)
            .map(|row| row.incarnation)
            .max();
        let now_ms = clock.now_ms();
        // A wall clock that stepped back must not make the new life look older than the last.
        let incarnation = previous.map_or(now_ms, |previous| now_ms.max(previous + 1));
        let (view, _) = watch::channel(Arc::new(MembershipView::default()));
        let shared = Arc::new(Shared {
            local,
            incarnation,
            config,
            store,
            clock,
            state: Mutex::new(Local {
                status: MemberStatus::Joining,
                expelled: None,
                finished: false,
                last_heartbeat_ms: 0,
                last_beat_started_ms: 0,
            }),
            observed: Mutex::new(Observed {
                members: HashMap::new(),
                unreachable: HashMap::new(),
                refreshes: 0,
            }),
            writing: tokio::sync::Mutex::new(()),
            view,
            wake: Arc::new(Notify::new()),
        });
        shared.observe(rows);
        shared.write_own_row().await?;
        shared.publish();
        tokio::spawn(run(Arc::downgrade(&shared), Arc::clone(&shared.wake)));
        Ok(Self { shared })
    }

    pub fn node_id(&self) -> &str {
        &self.shared.local.node_id
    }

    /// This life's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation
    }

    pub fn config(&self) -> &MembershipConfig {
        &self.shared.config
    }

    /// The clock this membership judges time with.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The latest view (an `Arc` clone).
    pub fn view(&self) -> Arc<MembershipView> {
        self.shared.view.borrow().clone()
    }

    /// Notified at every refresh and every local change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.shared.view.subscribe()
    }

    /// This node's own status as it reports it.
    pub fn status(&self) -> MemberStatus {
        lock(&self.shared.state).status
    }

    /// Why this node expelled itself, if it did. Expulsion is final for this life.
    pub fn expelled(&self) -> Option<Expulsion> {
        self.shared.check_silence();
        lock(&self.shared.state).expelled.clone()
    }

    /// Whether this node may act as a member right now: not expelled, not down, and its last
    /// successful heartbeat started less than `fence_after` ago on its own clock. Checked
    /// live, so it turns false the moment a paused process wakes up.
    pub fn is_healthy(&self) -> bool {
        self.shared.check_silence();
        let state = lock(&self.shared.state);
        state.expelled.is_none() && state.status != MemberStatus::Down
    }

    /// Graceful leave, first step: report `Leaving` now. The node stays alive (and keeps
    /// serving what it still holds) while the others take its shards over; finish with
    /// [`Membership::stop`].
    pub async fn leave(&self) -> Result<(), StoreError> {
        {
            let mut state = lock(&self.shared.state);
            if state.expelled.is_some() || state.status == MemberStatus::Down {
                return Ok(());
            }
            state.status = MemberStatus::Leaving;
        }
        self.shared.write_own_row().await?;
        self.shared.publish();
        Ok(())
    }

    /// Graceful exit: write `Down` and stop the heartbeat loop. Idempotent.
    pub async fn stop(&self) -> Result<(), StoreError> {
        lock(&self.shared.state).status = MemberStatus::Down;
        let result = self.shared.write_own_row().await;
        if result.is_ok() {
            lock(&self.shared.state).finished = true;
        }
        self.shared.publish();
        self.shared.wake.notify_one();
        result
    }

    /// A direct probe could not reach `node_id`: count it `Suspect` in this node's view
    /// until [`Membership::report_reachable`] or its next incarnation.
    pub fn report_unreachable(&self, node_id: &str) {
        let known = {
            let mut observed = lock(&self.shared.observed);
            let incarnation = observed
                .members
                .get(node_id)
                .map(|observation| observation.record.incarnation);
            if let Some(incarnation) = incarnation {
                observed.unreachable.insert(node_id.to_owned(), incarnation);
            }
            incarnation.is_some()
        };
        if known {
            self.shared.publish();
        }
    }

    /// A direct probe reached `node_id` again.
    pub fn report_reachable(&self, node_id: &str) {
        let removed = lock(&self.shared.observed)
            .unreachable
            .remove(node_id)
            .is_some();
        if removed {
            self.shared.publish();
        }
    }
}

enum Flow {
    Continue,
    Stop,
}

async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    let Some(first) = shared.upgrade() else {
        return;
    };
    let mut ticks = tokio::time::interval(first.config.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drop(first);
    ticks.tick().await; // the first tick is immediate; `join` just wrote and read
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = wake.notified() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return; // every handle dropped: the process is gone (or a test crashed it)
        };
        if let Flow::Stop = shared.tick().await {
            return;
        }
    }
}

impl Shared {
    /// One heartbeat: fence check, read every row, move Joining to Up, write our row.
    async fn tick(&self) -> Flow {
        if lock(&self.state).finished {
            return Flow::Stop;
        }
        self.check_silence();
        match self.store.list_members().await {
            Ok(rows) => {
                self.observe(rows);
                let mut state = lock(&self.state);
                let refreshes = lock(&self.observed).refreshes;
                if state.status == MemberStatus::Joining && refreshes >= 2 {
                    state.status = MemberStatus::Up;
                }
            }
            Err(error) => tracing::warn!(%error, "membership: cannot list members"),
        }
        match self.write_own_row().await {
            Ok(()) => {
                let mut state = lock(&self.state);
                if state.status == MemberStatus::Down {
                    state.finished = true;
                }
            }
            Err(error) => tracing::warn!(%error, "membership: heartbeat failed"),
        }
        self.publish();
        if lock(&self.state).finished {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// Expel this node if its last successful heartbeat started `fence_after` ago or more.
    fn check_silence(&self) {
        self.fence_if_silent(&mut lock(&self.state));
    }

    fn fence_if_silent(&self, state: &mut Local) {
        let now_ms = self.clock.monotonic_ms();
        let fence_after_ms = duration_ms(self.config.fence_after());
        let silent_ms = now_ms.saturating_sub(state.last_beat_started_ms);
        let active = state.expelled.is_none()
            && state.status != MemberStatus::Down
            && state.last_heartbeat_ms > 0;
        if active && silent_ms >= fence_after_ms {
            expel(state, Expulsion::Silent { silent_ms });
        }
    }

    /// Write this node's row with its current status. Serialised; a successful write that
    /// took so long that the node may have been declared dead meanwhile expels it.
    async fn write_own_row(&self) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        let (record, previous_start_ms) = {
            let mut state = lock(&self.state);
            if let Some(Expulsion::Superseded { .. }) = state.expelled {
                // The row belongs to a newer life now: writing would clobber it (the port's
                // upsert is unconditional). Leave without a word.
                return Ok(());
            }
            // A process that just woke up must not write `Up` first and notice later.
            self.fence_if_silent(&mut state);
            let heartbeat_ms = self.clock.now_ms().max(state.last_heartbeat_ms + 1);
            state.last_heartbeat_ms = heartbeat_ms;
            let record = MemberRecord {
                node_id: self.local.node_id.clone(),
                incarnation: self.incarnation,
                cluster_addr: self.local.cluster_addr.clone(),
                http_addr: self.local.http_addr.clone(),
                status: state.status,
                heartbeat_ms,
            };
            (record, state.last_beat_started_ms)
        };
        let started_ms = self.clock.monotonic_ms();
        self.store.upsert_member(&record).await?;
        let finished_ms = self.clock.monotonic_ms();
        let fence_after_ms = duration_ms(self.config.fence_after());
        let mut state = lock(&self.state);
        let first = previous_start_ms == 0 && record.status == MemberStatus::Joining;
        let silent_ms = finished_ms.saturating_sub(previous_start_ms);
        if !first && record.status != MemberStatus::Down && silent_ms >= fence_after_ms {
            expel(&mut state, Expulsion::Silent { silent_ms });
            drop(state);
            // Make the next loop turn write `Down` at once.
            self.wake.notify_one();
        } else if state.expelled.is_none() {
            state.last_beat_started_ms = started_ms.max(1);
        }
        Ok(())
    }

    /// Fold a listing of every row into the observations.
    fn observe(&self, rows: Vec<MemberRecord>) {
        let now_ms = self.clock.monotonic_ms() as i64;
        let now_wall_ms = self.clock.now_ms();
        let dead_after_ms = duration_ms(self.config.dead_after);
        let first_sight = |record: &MemberRecord| {
            // Trust the writer's clock once, and never for more than `dead_after`.
            let age_ms = now_wall_ms
                .saturating_sub(record.heartbeat_ms)
                .min(dead_after_ms);
            now_ms - age_ms as i64
        };
        let mut superseded = None;
        {
            let mut observed = lock(&self.observed);
            let observed = &mut *observed;
            for record in rows {
                if record.node_id == self.local.node_id && record.incarnation > self.incarnation {
                    superseded = Some(record.incarnation);
                }
                match observed.members.get_mut(&record.node_id) {
                    None => {
                        let seen_ms = first_sight(&record);
                        observed.members.insert(
                            record.node_id.clone(),
                            Observation {
                                record,
                                seen_ms,
                                first_seen_ms: now_ms.max(0) as u64,
                            },
                        );
                    }
                    Some(known) if record.incarnation < known.record.incarnation => {
                        // A former life's late write: ignore it.
                    }
                    Some(known) if record.incarnation > known.record.incarnation => {
                        observed.unreachable.remove(&record.node_id);
                        known.seen_ms = first_sight(&record);
                        known.first_seen_ms = now_ms.max(0) as u64;
                        known.record = record;
                    }
                    Some(known) => {
                        if record.heartbeat_ms != known.record.heartbeat_ms
                            || record.status != known.record.status
                        {
                            known.seen_ms = now_ms;
                        }
                        known.record = record;
                    }
                }
            }
            observed.refreshes += 1;
        }
        if let Some(by_incarnation) = superseded {
            let mut state = lock(&self.state);
            if state.expelled.is_none() {
                expel(&mut state, Expulsion::Superseded { by_incarnation });
            }
        }
    }

    /// Compute the view from the observations and this node's own state, and publish it.
    fn publish(&self) {
        let now_ms = self.clock.monotonic_ms();
        let suspect_after_ms = duration_ms(self.config.suspect_after);
        let dead_after_ms = duration_ms(self.config.dead_after);
        let (own_status, own_heartbeat_ms, own_alive) = {
            let state = lock(&self.state);
            let alive = state.expelled.is_none() && state.status != MemberStatus::Down;
            (state.status, state.last_heartbeat_ms, alive)
        };
        let observed = lock(&self.observed);
        let mut members: Vec<MemberState> = observed
            .members
            .values()
            .filter(|observation| observation.record.node_id != self.local.node_id)
            .map(|observation| {
                let record = &observation.record;
                let silent_for_ms = (now_ms as i64 - observation.seen_ms).max(0) as u64;
                let unreachable =
                    observed.unreachable.get(&record.node_id) == Some(&record.incarnation);
                let liveness = if silent_for_ms >= dead_after_ms {
                    Liveness::Dead
                } else if silent_for_ms >= suspect_after_ms || unreachable {
                    Liveness::Suspect
                } else {
                    Liveness::Alive
                };
                let joining_for_ms = now_ms.saturating_sub(observation.first_seen_ms);
                let candidate = liveness == Liveness::Alive
                    && match record.status {
                        MemberStatus::Up => true,
                        MemberStatus::Joining => joining_for_ms < dead_after_ms,
                        MemberStatus::Leaving | MemberStatus::Down => false,
                    };
                MemberState {
                    node_id: record.node_id.clone(),
                    incarnation: record.incarnation,
                    cluster_addr: record.cluster_addr.clone(),
                    http_addr: record.http_addr.clone(),
                    status: record.status,
                    liveness,
                    last_heartbeat_ms: record.heartbeat_ms,
                    silent_for_ms,
                    unreachable,
                    candidate,
                }
            })
            .collect();
        let refreshes = observed.refreshes;
        drop(observed);
        // This node as it knows itself, not as it last read its own row.
        let silent_ms = now_ms.saturating_sub(lock(&self.state).last_beat_started_ms);
        members.push(MemberState {
            node_id: self.local.node_id.clone(),
            incarnation: self.incarnation,
            cluster_addr: self.local.cluster_addr.clone(),
            http_addr: self.local.http_addr.clone(),
            status: own_status,
            liveness: if own_alive {
                Liveness::Alive
            } else {
                Liveness::Dead
            },
            last_heartbeat_ms: own_heartbeat_ms,
            silent_for_ms: silent_ms,
            unreachable: false,
            candidate: own_alive && matches!(own_status, MemberStatus::Up | MemberStatus::Joining),
        });
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        self.view.send_replace(Arc::new(MembershipView {
            members,
            local_node_id: self.local.node_id.clone(),
            local_incarnation: self.incarnation,
            as_of_ms: now_ms,
            refreshes,
        }));
    }
}

fn expel(state: &mut Local, why: Expulsion) {
    tracing::error!(
        ?why,
        "membership: this node expelled itself; it must restart to rejoin"
    );
    metrics::counter!("emporium_cluster_self_expulsions_total").increment(1);
    state.expelled = Some(why);
    state.status = MemberStatus::Down;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::store::MemoryStore;

    /// Wall time that follows tokio's (paused) clock, plus a skew; monotonic time from the
    /// node's own start. Every clock of one test agrees on wall time (but for the skew).
    struct TokioClock {
        skew_ms: i64,
        started: tokio::time::Instant,
    }

    impl Clock for TokioClock {
        fn now_ms(&self) -> u64 {
            static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            let origin = *ORIGIN.get_or_init(std::time::Instant::now);
            let since = tokio::time::Instant::now()
                .into_std()
                .saturating_duration_since(origin);
            (1_700_000_000_000 + self.skew_ms + since.as_millis() as i64) as u64
        }
        fn monotonic_ms(&self) -> u64 {
            self.started.elapsed().as_millis() as u64
        }
    }

    fn clock(skew_ms: i64) -> SharedClock {
        Arc::new(TokioClock {
            skew_ms,
            started: tokio::time::Instant::now(),
        })
    }

    fn local(node_id: &str) -> LocalMember {
        LocalMember {
            node_id: node_id.to_owned(),
            cluster_addr: format!("{node_id}:7000"),
            http_addr: format!("{node_id}:8080"),
        }
    }

    async fn join(store: &Arc<MemoryStore>, node_id: &str, skew_ms: i64) -> Membership {
        Membership::join(
            local(node_id),
            MembershipConfig::default(),
            store.clone(),
            clock(skew_ms),
        )
        .await
        .expect("joins")
    }

    async fn run_for(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn liveness(membership: &Membership, node_id: &str) -> Option<Liveness> {
        membership.view().member(node_id).map(|m| m.liveness)
    }

    #[test]
    fn config_is_validated() {
        assert!(MembershipConfig::default().validate().is_ok());
        let bad = MembershipConfig {
            dead_after: Duration::from_secs(1),
            ..MembershipConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("dead_after"));
    }

    #[tokio::test(start_paused = true)]
    async fn joining_then_up_and_everyone_sees_everyone() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        assert_eq!(a.status(), MemberStatus::Joining);
        assert_eq!(a.view().placement_candidates(), vec!["a"]);
        let b = join(&store, "b", 0).await;
        run_for(1_200).await;
        assert_eq!(a.status(), MemberStatus::Up);
        assert_eq!(b.status(), MemberStatus::Up);
        for node in [&a, &b] {
            assert_eq!(node.view().placement_candidates(), vec!["a", "b"]);
        }
        let row = store.list_members().await.unwrap();
        assert!(row.iter().all(|r| r.status == MemberStatus::Up));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_makes_suspect_then_dead() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        run_for(1_500).await;
        drop(b); // crash: no Down row
        let mut suspect_at = None;
        let mut dead_at = None;
        let started = tokio::time::Instant::now();
        while dead_at.is_none() {
            run_for(50).await;
            let elapsed = started.elapsed().as_millis() as u64;
            match liveness(&a, "b") {
                Some(Liveness::Suspect) if suspect_at.is_none() => suspect_at = Some(elapsed),
                Some(Liveness::Dead) => dead_at = Some(elapsed),
                _ => {}
            }
            assert!(elapsed < 10_000);
        }
        let (suspect_at, dead_at) = (suspect_at.unwrap(), dead_at.unwrap());
        assert!(
            (1_500..=3_000).contains(&suspect_at),
            "suspect at {suspect_at}"
        );
        assert!((4_500..=6_000).contains(&dead_at), "dead at {dead_at}");
        assert!(a.view().placement_candidates() == vec!["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_skew_does_not_make_a_live_node_dead() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        // b's wall clock runs a minute behind: its heartbeats look a minute old to a.
        let b = join(&store, "b", -60_000).await;
        run_for(10_000).await;
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        assert_eq!(liveness(&b, "a"), Some(Liveness::Alive));
        assert_eq!(a.view().placement_candidates(), vec!["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_dead_row_is_dead_on_first_sight() {
        let store = Arc::new(MemoryStore::new());
        store
            .upsert_member(&MemberRecord {
                node_id: "ghost".to_owned(),
                incarnation: 1,
                cluster_addr: String::new(),
                http_addr: String::new(),
                status: MemberStatus::Up,
                heartbeat_ms: 1_000,
            })
            .await
            .unwrap();
        let a = join(&store, "a", 0).await;
        assert_eq!(liveness(&a, "ghost"), Some(Liveness::Dead));
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_and_down_are_not_candidates() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        run_for(1_500).await;
        b.leave().await.unwrap();
        assert_eq!(b.status(), MemberStatus::Leaving);
        assert!(b.is_healthy(), "a leaving node is still alive");
        run_for(600).await;
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(
            (seen.status, seen.liveness),
            (MemberStatus::Leaving, Liveness::Alive)
        );
        assert_eq!(a.view().placement_candidates(), vec!["a"]);
        b.stop().await.unwrap();
        run_for(600).await;
        assert_eq!(a.view().member("b").unwrap().status, MemberStatus::Down);
        assert!(!b.is_healthy());
        // b's loop is over: its row no longer changes.
        let before = store.list_members().await.unwrap();
        run_for(2_000).await;
        let after = store.list_members().await.unwrap();
        let row = |rows: &[MemberRecord]| rows.iter().find(|r| r.node_id == "b").cloned();
        assert_eq!(row(&before), row(&after));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_a_new_incarnation_that_replaces_the_old() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        run_for(1_500).await;
        let old = b.incarnation();
        drop(b);
        // Restarted with a wall clock that stepped back: still a newer life.
        let b = join(&store, "b", -3_600_000).await;
        assert!(b.incarnation() > old);
        run_for(1_500).await;
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(seen.incarnation, b.incarnation());
        assert_eq!(seen.liveness, Liveness::Alive);
        // A late write of the former life is ignored.
        let mut stale = store
            .list_members()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.node_id == "b")
            .unwrap();
        stale.incarnation = old;
        stale.status = MemberStatus::Leaving;
        store.upsert_member(&stale).await.unwrap();
        run_for(300).await;
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(
            (seen.incarnation, seen.status),
            (b.incarnation(), MemberStatus::Up)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_whose_identity_is_taken_expels_itself() {
        let store = Arc::new(MemoryStore::new());
        let first = join(&store, "a", 0).await;
        run_for(1_000).await;
        let second = join(&store, "a", 0).await;
        run_for(1_000).await;
        assert!(matches!(
            first.expelled(),
            Some(Expulsion::Superseded { by_incarnation }) if by_incarnation == second.incarnation()
        ));
        assert!(!first.is_healthy());
        assert!(second.is_healthy());
    }

    /// A store whose heartbeat writes can be made to fail (a store outage seen by one node).
    struct Outage {
        inner: MemoryStore,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl StateStore for Outage {
        fn adapter(&self) -> &'static str {
            "outage"
        }
        async fn load(
            &self,
            id: &crate::ActorId,
        ) -> Result<Option<crate::store::Versioned>, StoreError> {
            self.inner.load(id).await
        }
        async fn save(
            &self,
            id: &crate::ActorId,
            write: crate::store::StateWrite,
        ) -> Result<u64, StoreError> {
            self.inner.save(id, write).await
        }
        async fn delete(&self, id: &crate::ActorId, expected: u64) -> Result<(), StoreError> {
            self.inner.delete(id, expected).await
        }
        async fn list_keys(
            &self,
            kind: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<String>, StoreError> {
            self.inner.list_keys(kind, after, limit).await
        }
        async fn outbox_pending(
            &self,
            limit: usize,
        ) -> Result<Vec<crate::store::PendingEvent>, StoreError> {
            self.inner.outbox_pending(limit).await
        }
        async fn outbox_ack(
            &self,
            events: &[crate::store::PendingEvent],
        ) -> Result<(), StoreError> {
            self.inner.outbox_ack(events).await
        }
        async fn list_reminders(
            &self,
            shard: crate::Shard,
        ) -> Result<Vec<crate::store::Reminder>, StoreError> {
            self.inner.list_reminders(shard).await
        }
        async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("outage".to_owned()));
            }
            self.inner.upsert_member(member).await
        }
        async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
            self.inner.list_members().await
        }
        async fn claim_lease(
            &self,
            shard: crate::Shard,
            owner: &str,
            expected_epoch: u64,
        ) -> Result<crate::store::Lease, StoreError> {
            self.inner.claim_lease(shard, owner, expected_epoch).await
        }
        async fn list_leases(&self) -> Result<Vec<crate::store::Lease>, StoreError> {
            self.inner.list_leases().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_heartbeat_expels_itself_before_others_see_it_dead() {
        let outage = Arc::new(Outage {
            inner: MemoryStore::new(),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let observer = Membership::join(
            local("a"),
            MembershipConfig::default(),
            outage.clone(),
            clock(0),
        )
        .await
        .unwrap();
        let b = Membership::join(
            local("b"),
            MembershipConfig::default(),
            outage.clone(),
            clock(0),
        )
        .await
        .unwrap();
        run_for(1_500).await;
        assert!(b.is_healthy());
        // From now on no heartbeat lands (for either node; only b's verdict matters here).
        outage.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        while b.expelled().is_none() {
            run_for(10).await;
            // While b believes itself healthy, its observer must not see it dead.
            if b.is_healthy() {
                assert_ne!(
                    observer.view().member("b").unwrap().liveness,
                    Liveness::Dead
                );
            }
        }
        let expelled_after = started.elapsed().as_millis() as u64;
        // fence_after = 4.5 s after the last successful write, which was < 0.5 s before.
        assert!(
            (4_000..=4_500).contains(&expelled_after),
            "{expelled_after}"
        );
        assert!(matches!(b.expelled(), Some(Expulsion::Silent { .. })));
        assert!(!b.is_healthy());
        // The store comes back: b writes Down once, and never Up again.
        outage
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        run_for(3_000).await;
        let rows = outage.list_members().await.unwrap();
        let row = rows.iter().find(|r| r.node_id == "b").unwrap();
        assert_eq!(row.status, MemberStatus::Down);
        assert_eq!(b.status(), MemberStatus::Down);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_makes_a_peer_suspect_until_it_answers_again() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let _b = join(&store, "b", 0).await;
        run_for(1_500).await;
        a.report_unreachable("b");
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!((seen.liveness, seen.unreachable), (Liveness::Suspect, true));
        assert_eq!(a.view().placement_candidates(), vec!["a"]);
        run_for(10_000).await;
        assert_eq!(
            liveness(&a, "b"),
            Some(Liveness::Suspect),
            "a probe alone never kills"
        );
        a.report_reachable("b");
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        a.report_unreachable("nobody"); // unknown ids are ignored
    }
}
