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
//! [`MembershipConfig::dead_after`], then [`Liveness::Dead`] ([`DeathCause::Silence`]). "Ago"
//! is measured on the observer's own monotonic clock from the refresh at which it last saw the
//! row change (every heartbeat changes `heartbeat_ms`, which the writer makes strictly
//! increasing) **up to the start of its last successful listing**, never up to "now": a node
//! that cannot read the member table (the store refuses it, a row breaks its listing) judges
//! nobody meanwhile — every silence stands still until a listing succeeds again, and a row
//! that changed during the outage counts as seen at that listing. Comparing
//! the writer's `heartbeat_ms` with the reader's wall clock instead would make liveness depend
//! on clock skew: a node whose clock runs 6 s behind would look dead to everyone while alive
//! to itself, and the cluster would fight over its shards for as long as the skew lasts. The
//! writer's wall clock is used only on *first sight* of a row (a node just started, or a new
//! incarnation): a row whose heartbeat is older than `dead_after` is then taken as dead
//! rather than waited for; a wrong guess is corrected by the next refresh.
//!
//! **Tolerated skew: [`MAX_CLOCK_SKEW`] (500 ms).** Beyond first sight, wall clocks only
//! set transport deadlines (a probe expires after 500 ms). Every listing bounds each live
//! member's clock offset (its new heartbeat value against the window in which it was
//! written); a *joining* node whose clock is surely further off than that from every live
//! member refuses to join ([`Expulsion::ClockSkew`]): fail safe, never a double owner. A
//! running node reports the offset (`emporium_cluster_clock_offset_ms`) and logs it.
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
//! # Crash evidence: the fast path for a crashed process
//! A crashed process (`kill -9`, an OOM kill, a panic that aborts) leaves a trace a paused or
//! cut-off one cannot: its kernel closes its cluster links and **refuses** connections to
//! its cluster port (ECONNREFUSED: nothing listens there). A paused process's kernel still
//! accepts connections into the listen backlog; a partitioned node's port times out or is
//! unreachable. The transport reports a refusal of a member's current life as
//! [`Membership::report_refused`] (and reconnects at once when a link closes, so the
//! evidence comes within milliseconds of a crash). The member is then `Suspect` here, and
//! the store is the arbiter:
//! 1. the first listing that *starts* after the report records the member's row as it is
//!    (the baseline), and a refresh is scheduled `crash_confirm` later;
//! 2. a listing that starts at least `crash_confirm` after both the report and the baseline,
//!    and still shows the baseline row, makes the member [`Liveness::Dead`] with
//!    [`DeathCause::Crash`] — published at once, and the lease loop acts on it at once;
//! 3. any change of the row (a heartbeat, a status, a new life) drops the evidence, and so
//!    does a successful connection ([`Membership::report_connected`], or a probe that
//!    answers): a refusal alone never kills.
//!
//! **Why it is safe.** A refusal means the listener is closed: the process is gone, or it
//! expelled itself and shut its transport — either way it serves nothing. The store check
//! guards against a refusal that does not mean that (a firewall that answers with resets, a
//! stale address): a live node writes its row every `heartbeat_interval`, and
//! `crash_confirm > heartbeat_interval` ([`MembershipConfig::validate_with_crash_confirm`]),
//! so an unchanged row over `crash_confirm` means it is not writing either. Pauses and
//! partitions produce no refusal and keep the time-based path above. (A setup that resets
//! connections to a live node's port *and* cuts that node off the store at once would be
//! judged crashed while it may still serve for up to `fence_after`: keep firewalls on the
//! cluster port dropping, not rejecting.)
//!
//! **The bound.** From a crash to every survivor seeing it `Dead`: the link closes and the
//! port refuses within milliseconds, one listing (the baseline) follows at once, and the
//! confirming listing `crash_confirm` after it — about `crash_confirm` plus two store reads
//! (**0.6–0.7 s** with the defaults, `crash_confirm = heartbeat_interval + 100 ms`); a crash
//! whose last heartbeat write lands after the baseline costs one more `refused_retry`
//! (200 ms) and `crash_confirm`. The shards are claimed at once (a dead holder needs no
//! hand-over), so a crashed owner's actors answer again about 1 s after the crash; the
//! time-based bound above still holds when no evidence comes (the crash of a whole host,
//! whose kernel refuses nothing).
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
//! # Forgetting: rows of long-gone members are removed
//! A member row is one per node id and is never rewritten once its node is gone, so without
//! clean-up the table (and every node's observations) would grow with every node id that
//! ever ran. So at each heartbeat, after a successful listing and after writing its own row,
//! a healthy node removes the rows of other members that have been `Down`, or judged
//! `Dead` by silence, for at least [`MembershipConfig::forget_after`] (1 h by default) —
//! counted on **its own monotonic clock**, from the later of the row's last change (plus
//! `dead_after` for a silent one) and the moment it first saw that life, never from the
//! writer's wall clock. It never removes its own row. Each removal is
//! [`StateStore::remove_member`], conditional on the incarnation judged gone, so a newer
//! life of the same node id is never removed; several nodes removing the same row is
//! harmless (one wins, the others find nothing). Removals run in the background, at most
//! 16 per pass and one pass at a time, so they never delay a heartbeat; each is counted
//! (`emporium_cluster_pruned_members_total`) and logged. A node id that a successful
//! listing no longer shows is dropped from the observations (and from the unreachable and
//! crash-evidence maps), whoever removed it.
//!
//! **Why it is safe.** `forget_after >= 3 × dead_after` (checked), so the member was dead
//! (or down) long enough for its shards to have moved and for every hand-over hold-back of
//! them to have expired; a process of that life that wakes up later fences itself before it
//! writes anything but `Down`. A lease still naming a forgotten holder is taken like one of
//! a dead holder, without hand-over, once its holder has been absent from the view for
//! `dead_after` (see [`crate::leases`]).
//!
//! # Direct probes (the seam)
//! The store only shows that a node can reach the store. [`Membership::report_unreachable`]
//! lets a direct probe over the cluster transport mark a peer `Suspect` at once (it is then
//! no placement candidate in this node's view), until [`Membership::report_reachable`] or a
//! new incarnation. A probe alone never makes a peer `Dead`: moving shards needs the verdict
//! every node reaches from the same rows (a refusal is evidence only once the store confirms
//! it, see "Crash evidence").

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::{SharedClock, duration_ms};
use crate::lock;
use crate::store::{MemberRecord, MemberStatus, StateStore, StoreError};

/// Timing of the heartbeat and of the liveness verdicts. Every node of a cluster must use the
/// same values: the failure-detection bound assumes it. The crash path's confirmation delay
/// (`crash_confirm`) is given to [`Membership::join_with_crash_confirm`] beside it and
/// defaults to [`MembershipConfig::default_crash_confirm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a node writes its row and reads everyone's.
    pub heartbeat_interval: Duration,
    /// Silence after which a member is `Suspect` (no longer a placement candidate).
    pub suspect_after: Duration,
    /// Silence after which a member is `Dead` (its shards move).
    pub dead_after: Duration,
    /// How long a member must have been `Down`, or judged `Dead`, on this node's own clock
    /// before its row is removed from the store and forgotten (see "Forgetting").
    pub forget_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            suspect_after: Duration::from_secs(2),
            dead_after: Duration::from_secs(5),
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// A membership timing that breaks a relation the detector relies on; names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid membership timing {field}: {reason}")]
pub struct InvalidTimings {
    /// `heartbeat_interval`, `suspect_after`, `dead_after`, `crash_confirm` or
    /// `forget_after`.
    pub field: &'static str,
    pub reason: String,
}

impl InvalidTimings {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl MembershipConfig {
    /// How much longer than a heartbeat interval the crash path watches a refusing member's
    /// row by default: one write of a live node must have had time to land.
    pub const CRASH_CONFIRM_MARGIN: Duration = Duration::from_millis(100);

    /// `forget_after` is at least this many times `dead_after`.
    pub const FORGET_AFTER_DEAD_AFTERS: u32 = 3;

    /// `heartbeat_interval + 100 ms`.
    pub fn default_crash_confirm(&self) -> Duration {
        self.heartbeat_interval + Self::CRASH_CONFIRM_MARGIN
    }

    /// Check the relations the detector relies on, with the default `crash_confirm`.
    pub fn validate(&self) -> Result<(), InvalidTimings> {
        self.validate_with_crash_confirm(self.default_crash_confirm())
    }

    /// Check the relations the detector relies on; the error names the offending field:
    /// - `heartbeat_interval > 0`;
    /// - `suspect_after > heartbeat_interval` (one late write is not suspicious);
    /// - `dead_after > suspect_after` and `dead_after >= 3 × heartbeat_interval` (a live node
    ///   is never declared dead, and fences itself at `dead_after - heartbeat_interval`
    ///   before the others can see it dead);
    /// - `heartbeat_interval < crash_confirm < dead_after`: a live node writes at least once
    ///   within `crash_confirm`, so an unchanged row over it is silence, and the crash path
    ///   is never slower than the time-based one;
    /// - `forget_after >= 3 × dead_after`: a dead member stays known well past the moment
    ///   its shards moved and every hand-over hold-back of them (`fence_after`) expired.
    pub fn validate_with_crash_confirm(
        &self,
        crash_confirm: Duration,
    ) -> Result<(), InvalidTimings> {
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        if self.heartbeat_interval.is_zero() {
            return Err(InvalidTimings::new(
                "heartbeat_interval",
                "must be positive",
            ));
        }
        if self.suspect_after <= self.heartbeat_interval {
            return Err(InvalidTimings::new(
                "suspect_after",
                format!(
                    "{} must be longer than heartbeat_interval ({})",
                    ms(self.suspect_after),
                    ms(self.heartbeat_interval)
                ),
            ));
        }
        if self.dead_after <= self.suspect_after {
            return Err(InvalidTimings::new(
                "dead_after",
                format!(
                    "{} must be longer than suspect_after ({})",
                    ms(self.dead_after),
                    ms(self.suspect_after)
                ),
            ));
        }
        if self.dead_after < self.heartbeat_interval * 3 {
            return Err(InvalidTimings::new(
                "dead_after",
                format!(
                    "{} must be at least three heartbeat intervals ({})",
                    ms(self.dead_after),
                    ms(self.heartbeat_interval * 3)
                ),
            ));
        }
        if crash_confirm <= self.heartbeat_interval {
            return Err(InvalidTimings::new(
                "crash_confirm",
                format!(
                    "{} must be longer than heartbeat_interval ({}): a live node must have written within it",
                    ms(crash_confirm),
                    ms(self.heartbeat_interval)
                ),
            ));
        }
        if crash_confirm >= self.dead_after {
            return Err(InvalidTimings::new(
                "crash_confirm",
                format!(
                    "{} must be shorter than dead_after ({})",
                    ms(crash_confirm),
                    ms(self.dead_after)
                ),
            ));
        }
        self.validate_forget_after()
    }

    fn validate_forget_after(&self) -> Result<(), InvalidTimings> {
        let least = self.dead_after * Self::FORGET_AFTER_DEAD_AFTERS;
        if self.forget_after < least {
            return Err(InvalidTimings::new(
                "forget_after",
                format!(
                    "{} ms must be at least {} × dead_after ({} ms): a dead member must stay \
                     known until its shards have moved and their hand-overs expired",
                    self.forget_after.as_millis(),
                    Self::FORGET_AFTER_DEAD_AFTERS,
                    least.as_millis()
                ),
            ));
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
    /// Silent for `dead_after`, or proved crashed (see [`DeathCause`]): its shards move to
    /// their new owners.
    Dead,
}

/// Why a member is [`Liveness::Dead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeathCause {
    /// Its row did not change for `dead_after`.
    Silence,
    /// Its cluster port refused a connection (only a closed listener does that), and its row
    /// then stayed unchanged for `crash_confirm`: the process is gone.
    Crash,
}

impl DeathCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silence => "silence",
            Self::Crash => "crash",
        }
    }
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
    /// Why it is `Dead`; `None` unless it is.
    pub death: Option<DeathCause>,
    /// Its cluster port refused a connection and the store has not yet confirmed the crash
    /// (it is `Suspect` meanwhile).
    pub refused: bool,
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

    /// Whether a member other than `node_id` could take its shards over now (a placement
    /// candidate).
    pub fn has_successor_of(&self, node_id: &str) -> bool {
        self.members
            .iter()
            .any(|member| member.node_id != node_id && member.is_placement_candidate())
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
    /// While joining, its wall clock was found off from every live member's by more than
    /// [`MAX_CLOCK_SKEW`] (`off_by_ms` at least, signed: positive when this node is behind).
    ClockSkew { off_by_ms: i64 },
    /// Its probes reached only `reached` of the `of` live peers (not a majority, see
    /// `majority`) for `dead_after`: the peers that reach each other take its shards.
    Isolated { reached: usize, of: usize },
}

/// The wall-clock difference between nodes the cluster tolerates. Wall clocks are used only
/// where a few hundred milliseconds cannot matter for safety: a row's age on first sight
/// (capped at `dead_after`) and the deadlines of transport envelopes (probes expire after
/// 500 ms). A node whose clock is surely further off refuses to join (fail safe), and a
/// running node reports the offsets it sees (`emporium_cluster_clock_offset_ms`).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_millis(500);

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
    /// Monotonic ms since which this node has been cut off from a majority of the live
    /// members (see `majority`); `None` while it reaches one.
    cut_off_since_ms: Option<u64>,
}

struct Observed {
    members: HashMap<String, Observation>,
    /// Node id to the incarnation a probe found unreachable.
    unreachable: HashMap<String, u64>,
    /// Node id to the crash evidence against its current incarnation.
    refused: HashMap<String, Evidence>,
    refreshes: u64,
    /// Monotonic ms at which the last *successful* listing started: silence is counted up
    /// to it, never up to "now", so a node that cannot read the table judges nobody meanwhile.
    last_read_started_ms: Option<u64>,
    /// Monotonic ms since which listings fail; `None` while they succeed.
    reads_failing_since_ms: Option<u64>,
    /// Wall ms at which the last successful listing started (bounds the clock offsets).
    last_read_started_wall_ms: Option<u64>,
}

/// A member's cluster port refused a connection: the crash path's evidence.
struct Evidence {
    incarnation: u64,
    /// Monotonic ms of the (first) report.
    reported_ms: u64,
    /// The row as the first listing that started after the report showed it.
    baseline: Option<Baseline>,
    /// A listing at least `crash_confirm` after the baseline showed the same row.
    confirmed: bool,
}

struct Baseline {
    heartbeat_ms: u64,
    status: MemberStatus,
    /// Monotonic ms at which that listing returned.
    read_ended_ms: u64,
}

struct Shared {
    local: LocalMember,
    incarnation: u64,
    config: MembershipConfig,
    /// How long a refusing member's row must stay unchanged to be judged crashed.
    crash_confirm: Duration,
    store: Arc<dyn StateStore>,
    clock: SharedClock,
    state: Mutex<Local>,
    observed: Mutex<Observed>,
    /// Serialises writes of this node's own row, so a `Down` can never be overtaken by a
    /// heartbeat that was already in flight.
    writing: tokio::sync::Mutex<()>,
    view: watch::Sender<Arc<MembershipView>>,
    wake: Arc<Notify>,
    /// A pass removing long-gone members' rows is running (at most one at a time).
    pruning: Arc<AtomicBool>,
}

/// Rows removed per pass at most: a backlog (say, after an upgrade) drains over a few
/// heartbeats instead of one long burst of writes.
const MAX_PRUNES_PER_PASS: usize = 16;

/// A node's membership: its heartbeat loop and its view of the others. Cheap to clone; the
/// loop stops when the last handle is dropped (without writing anything: that is how tests
/// simulate a crash) or after [`Membership::stop`].
#[derive(Clone)]
pub struct Membership {
    shared: Arc<Shared>,
}

impl Membership {
    /// Join: pick an incarnation, read every row, write this node's row as `Joining`, and
    /// start the heartbeat loop. Fails only if the timings are invalid or the store cannot
    /// be read or written. Uses the default `crash_confirm`.
    pub async fn join(
        local: LocalMember,
        config: MembershipConfig,
        store: Arc<dyn StateStore>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let crash_confirm = config.default_crash_confirm();
        Self::join_with_crash_confirm(local, config, crash_confirm, store, clock).await
    }

    /// [`Membership::join`] with an explicit `crash_confirm` (see the module doc).
    pub async fn join_with_crash_confirm(
        local: LocalMember,
        config: MembershipConfig,
        crash_confirm: Duration,
        store: Arc<dyn StateStore>,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        config
            .validate_with_crash_confirm(crash_confirm)
            .map_err(|error| StoreError::Other(error.to_string()))?;
        let read_started_ms = clock.monotonic_ms();
        let read_started_wall_ms = clock.now_ms();
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
            crash_confirm,
            store,
            clock,
            state: Mutex::new(Local {
                status: MemberStatus::Joining,
                expelled: None,
                finished: false,
                last_heartbeat_ms: 0,
                last_beat_started_ms: 0,
                cut_off_since_ms: None,
            }),
            observed: Mutex::new(Observed {
                members: HashMap::new(),
                unreachable: HashMap::new(),
                refused: HashMap::new(),
                refreshes: 0,
                last_read_started_ms: None,
                reads_failing_since_ms: None,
                last_read_started_wall_ms: None,
            }),
            writing: tokio::sync::Mutex::new(()),
            view,
            wake: Arc::new(Notify::new()),
            pruning: Arc::new(AtomicBool::new(false)),
        });
        shared.observe(rows, read_started_ms, read_started_wall_ms);
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

    /// How long a refusing member's row must stay unchanged to be judged crashed.
    pub fn crash_confirm(&self) -> Duration {
        self.shared.crash_confirm
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

    /// Whether this life is over: its `Down` is durably written (or its row belongs to a
    /// newer life), and its loop writes nothing more. A new life of the same node id may
    /// join only then, or this one's last write could clobber the new row.
    pub fn has_finished(&self) -> bool {
        lock(&self.shared.state).finished
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

    /// A direct probe reached `node_id` again (which also clears any crash evidence).
    pub fn report_reachable(&self, node_id: &str) {
        let removed = {
            let mut observed = lock(&self.shared.observed);
            let unreachable = observed.unreachable.remove(node_id).is_some();
            let refused = observed.refused.remove(node_id).is_some();
            unreachable || refused
        };
        if removed {
            self.shared.publish();
        }
    }

    /// Crash evidence: a connection to the cluster address of `node_id`'s life
    /// `incarnation` was refused (ECONNREFUSED: nothing listens there, so that life is gone
    /// or expelled). Counts it `Suspect` at once and refreshes now; the store then decides
    /// (see the module doc). Ignored unless `incarnation` is the member's current life.
    pub fn report_refused(&self, node_id: &str, incarnation: u64) {
        if node_id == self.shared.local.node_id {
            return;
        }
        let now_ms = self.shared.clock.monotonic_ms();
        let new = {
            let mut observed = lock(&self.shared.observed);
            let current = observed
                .members
                .get(node_id)
                .map(|observation| observation.record.incarnation);
            if current != Some(incarnation) {
                return;
            }
            let known = observed
                .refused
                .get(node_id)
                .is_some_and(|evidence| evidence.incarnation == incarnation);
            if !known {
                observed.refused.insert(
                    node_id.to_owned(),
                    Evidence {
                        incarnation,
                        reported_ms: now_ms,
                        baseline: None,
                        confirmed: false,
                    },
                );
            }
            !known
        };
        if new {
            tracing::info!(
                peer = %node_id,
                incarnation,
                "membership: cluster port refused a connection; confirming the crash with the store"
            );
            metrics::counter!("emporium_cluster_crash_evidence_total").increment(1);
            self.shared.publish();
            self.shared.wake.notify_one();
        }
    }

    /// A connection to `node_id` succeeded: whatever refused before, something listens now.
    /// Clears its crash evidence.
    pub fn report_connected(&self, node_id: &str) {
        let removed = lock(&self.shared.observed)
            .refused
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
        let read_started_ms = self.clock.monotonic_ms();
        let read_started_wall_ms = self.clock.now_ms();
        let listed = self.store.list_members().await;
        let read_ok = listed.is_ok();
        match listed {
            Ok(rows) => {
                let crashed = self.observe(rows, read_started_ms, read_started_wall_ms);
                {
                    let mut state = lock(&self.state);
                    let refreshes = lock(&self.observed).refreshes;
                    if state.status == MemberStatus::Joining && refreshes >= 2 {
                        state.status = MemberStatus::Up;
                    }
                }
                if crashed {
                    // A crash verdict moves shards: publish before our own write.
                    self.publish();
                }
                self.check_reach();
            }
            Err(error) => {
                // Judge nobody from a view this old: silence is counted only up to the last
                // listing that succeeded (see `publish`), so it stands still meanwhile.
                let mut observed = lock(&self.observed);
                let since = *observed
                    .reads_failing_since_ms
                    .get_or_insert(read_started_ms);
                drop(observed);
                metrics::counter!("emporium_cluster_member_list_failures_total").increment(1);
                tracing::warn!(
                    %error,
                    failing_for_ms = read_started_ms.saturating_sub(since),
                    "membership: cannot list members; liveness verdicts frozen until a listing succeeds"
                );
            }
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
        if read_ok {
            // After our own write: removing rows must never delay a heartbeat.
            self.prune();
        }
        if lock(&self.state).finished {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// The majority rule (see `majority`): expel this node once it has been cut off from a
    /// majority of the live members for `dead_after`. Judged only after a listing that
    /// succeeded, so that the members counted are alive in the store.
    fn check_reach(&self) {
        let cut_off = crate::majority::cut_off(&self.view.borrow());
        let now_ms = self.clock.monotonic_ms();
        let mut state = lock(&self.state);
        let Some(reach) = cut_off else {
            state.cut_off_since_ms = None;
            return;
        };
        let since = *state.cut_off_since_ms.get_or_insert(now_ms);
        let active = state.expelled.is_none() && state.status != MemberStatus::Down;
        if active && now_ms.saturating_sub(since) >= duration_ms(self.config.dead_after) {
            expel(
                &mut state,
                Expulsion::Isolated {
                    reached: reach.reached,
                    of: reach.of,
                },
            );
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

    /// Remove, in the background, the rows of members gone for `forget_after` (see
    /// "Forgetting"): one pass at a time, only while this node is a healthy member, and
    /// judged from its last successful listing.
    fn prune(&self) {
        if !self.is_alive_member() {
            return;
        }
        let rows = {
            let observed = lock(&self.observed);
            let Some(judged_at_ms) = observed.last_read_started_ms else {
                return;
            };
            forgettable(
                &observed.members,
                &self.local.node_id,
                judged_at_ms,
                &self.config,
            )
        };
        if rows.is_empty() || self.pruning.swap(true, Ordering::AcqRel) {
            return;
        }
        let pass = PrunePass {
            store: Arc::clone(&self.store),
            running: Arc::clone(&self.pruning),
            forget_after: self.config.forget_after,
        };
        tokio::spawn(pass.run(rows));
    }

    fn is_alive_member(&self) -> bool {
        let state = lock(&self.state);
        state.expelled.is_none() && state.status != MemberStatus::Down
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

    /// Fold a listing of every row (started at `read_started_ms`) into the observations,
    /// and weigh the crash evidence against it. Returns whether a crash was newly confirmed.
    fn observe(
        &self,
        rows: Vec<MemberRecord>,
        read_started_ms: u64,
        read_started_wall_ms: u64,
    ) -> bool {
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
        let crashed;
        // Per member whose row changed since the previous listing, the range its clock's
        // offset from ours must lie in: the write happened between that listing's start and
        // the end of this one (`observed - ours`, ms).
        let mut offsets: Vec<(i64, i64)> = Vec::new();
        let listed: HashSet<String> = rows.iter().map(|row| row.node_id.clone()).collect();
        {
            let mut observed = lock(&self.observed);
            let observed = &mut *observed;
            let previous_read_wall_ms = observed.last_read_started_wall_ms;
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
                            if let Some(previous_ms) = previous_read_wall_ms
                                && record.node_id != self.local.node_id
                            {
                                let written_ms = record.heartbeat_ms as i64;
                                offsets.push((
                                    written_ms - now_wall_ms as i64,
                                    written_ms - previous_ms as i64,
                                ));
                            }
                        }
                        known.record = record;
                    }
                }
            }
            forget_unlisted(observed, &listed);
            observed.refreshes += 1;
            observed.last_read_started_ms = Some(read_started_ms);
            observed.last_read_started_wall_ms = Some(read_started_wall_ms);
            if let Some(since) = observed.reads_failing_since_ms.take() {
                tracing::info!(
                    failed_for_ms = read_started_ms.saturating_sub(since),
                    "membership: member listing works again"
                );
            }
            crashed = self.weigh_evidence(observed, read_started_ms, now_ms.max(0) as u64);
        }
        if let Some(by_incarnation) = superseded {
            let mut state = lock(&self.state);
            if state.expelled.is_none() {
                expel(&mut state, Expulsion::Superseded { by_incarnation });
            }
        }
        self.check_clock(&offsets);
        crashed
    }

    /// Fail safe on clock skew: a joining node whose clock is surely off from every live
    /// member's by more than [`MAX_CLOCK_SKEW`] refuses to join; a running one reports.
    fn check_clock(&self, offsets: &[(i64, i64)]) {
        let Some(off_by_ms) = surely_off_by(offsets, duration_ms(MAX_CLOCK_SKEW) as i64) else {
            return;
        };
        metrics::gauge!("emporium_cluster_clock_offset_ms").set(off_by_ms as f64);
        if off_by_ms == 0 {
            return;
        }
        let mut state = lock(&self.state);
        if state.status == MemberStatus::Joining && state.expelled.is_none() {
            tracing::error!(
                off_by_ms,
                max_ms = duration_ms(MAX_CLOCK_SKEW),
                "membership: this node's wall clock is off from every member's; fix its time \
                 synchronisation (NTP) before it joins"
            );
            expel(&mut state, Expulsion::ClockSkew { off_by_ms });
        } else {
            tracing::warn!(
                off_by_ms,
                "membership: wall clocks differ beyond the tolerated skew"
            );
        }
    }

    /// The store as arbiter of the crash evidence, after a listing that started at
    /// `read_started_ms` and returned at `read_ended_ms`:
    /// - evidence against a life that is no longer the member's current one is dropped;
    /// - the first listing that started after the report sets the baseline (the row as it
    ///   was then), and a wake-up is scheduled `crash_confirm` later;
    /// - any change of the row since the baseline drops the evidence (a live node writes
    ///   every heartbeat interval);
    /// - a listing that started `crash_confirm` or more after both the report and the
    ///   baseline, and still shows the baseline row, confirms the crash.
    ///
    /// Returns whether a crash was newly confirmed.
    fn weigh_evidence(
        &self,
        observed: &mut Observed,
        read_started_ms: u64,
        read_ended_ms: u64,
    ) -> bool {
        let confirm_ms = duration_ms(self.crash_confirm);
        let members = &observed.members;
        let mut newly_confirmed = false;
        let mut schedule = false;
        observed.refused.retain(|node_id, evidence| {
            let Some(observation) = members.get(node_id) else {
                return false;
            };
            let record = &observation.record;
            if record.incarnation != evidence.incarnation {
                return false;
            }
            match &evidence.baseline {
                None => {
                    if read_started_ms >= evidence.reported_ms {
                        evidence.baseline = Some(Baseline {
                            heartbeat_ms: record.heartbeat_ms,
                            status: record.status,
                            read_ended_ms,
                        });
                        schedule = true;
                    }
                    true
                }
                Some(baseline) => {
                    if baseline.heartbeat_ms != record.heartbeat_ms
                        || baseline.status != record.status
                    {
                        tracing::info!(
                            peer = %node_id,
                            "membership: a refusing member's row changed; not a crash"
                        );
                        return false;
                    }
                    let waited = read_started_ms >= baseline.read_ended_ms + confirm_ms
                        && read_started_ms >= evidence.reported_ms + confirm_ms;
                    if waited && !evidence.confirmed {
                        evidence.confirmed = true;
                        newly_confirmed = true;
                        metrics::counter!("emporium_cluster_crashes_confirmed_total").increment(1);
                        tracing::warn!(
                            peer = %node_id,
                            incarnation = evidence.incarnation,
                            after_ms = read_started_ms.saturating_sub(evidence.reported_ms),
                            "membership: crash confirmed by the store; the member is dead"
                        );
                    }
                    true
                }
            }
        });
        if schedule {
            // The next listing that can confirm: `crash_confirm` after this one returned.
            let wake = Arc::clone(&self.wake);
            let after = self.crash_confirm + Duration::from_millis(1);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                wake.notify_one();
            });
        }
        newly_confirmed
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
        // Silence is counted up to the last listing that succeeded, not up to now: a node
        // that cannot read the table must not judge anyone from a view that old.
        let judged_at_ms = observed.last_read_started_ms.unwrap_or(now_ms);
        let mut members: Vec<MemberState> = observed
            .members
            .values()
            .filter(|observation| observation.record.node_id != self.local.node_id)
            .map(|observation| {
                let record = &observation.record;
                let silent_for_ms = (judged_at_ms as i64 - observation.seen_ms).max(0) as u64;
                let unreachable =
                    observed.unreachable.get(&record.node_id) == Some(&record.incarnation);
                let evidence = observed
                    .refused
                    .get(&record.node_id)
                    .filter(|evidence| evidence.incarnation == record.incarnation);
                let crashed = evidence.is_some_and(|evidence| evidence.confirmed);
                let refused = evidence.is_some_and(|evidence| !evidence.confirmed);
                let (liveness, death) = if silent_for_ms >= dead_after_ms {
                    (Liveness::Dead, Some(DeathCause::Silence))
                } else if crashed {
                    (Liveness::Dead, Some(DeathCause::Crash))
                } else if silent_for_ms >= suspect_after_ms || unreachable || refused {
                    (Liveness::Suspect, None)
                } else {
                    (Liveness::Alive, None)
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
                    death,
                    refused,
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
            death: (!own_alive).then_some(DeathCause::Silence),
            refused: false,
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

/// Drop everything known about node ids a successful listing no longer shows: their rows
/// were removed (see "Forgetting"), so nothing about them may grow without bound here.
fn forget_unlisted(observed: &mut Observed, listed: &HashSet<String>) {
    for node_id in observed.members.keys() {
        if !listed.contains(node_id) {
            tracing::info!(peer = %node_id, "membership: member row gone from the store; forgotten");
        }
    }
    observed
        .members
        .retain(|node_id, _| listed.contains(node_id));
    observed
        .unreachable
        .retain(|node_id, _| listed.contains(node_id));
    observed
        .refused
        .retain(|node_id, _| listed.contains(node_id));
}

/// The rows `(node id, incarnation)` of other members that have been `Down`, or judged
/// `Dead` by silence, for at least `forget_after` at `judged_at_ms` (the start of the last
/// successful listing), at most [`MAX_PRUNES_PER_PASS`] of them.
///
/// Time is counted on this node's monotonic clock only: from the later of the row's last
/// change (plus `dead_after` when not `Down`) and the moment this node first saw that life,
/// so a first sight back-dated from the writer's wall clock never shortens the wait.
fn forgettable(
    members: &HashMap<String, Observation>,
    local_node_id: &str,
    judged_at_ms: u64,
    config: &MembershipConfig,
) -> Vec<(String, u64)> {
    let dead_after_ms = duration_ms(config.dead_after) as i64;
    let forget_after_ms = duration_ms(config.forget_after) as i64;
    members
        .values()
        .filter(|observation| observation.record.node_id != local_node_id)
        .filter(|observation| {
            let gone_since_ms = if observation.record.status == MemberStatus::Down {
                observation.seen_ms
            } else {
                observation.seen_ms + dead_after_ms
            };
            let gone_since_ms = gone_since_ms.max(observation.first_seen_ms as i64);
            judged_at_ms as i64 - gone_since_ms >= forget_after_ms
        })
        .map(|observation| {
            let record = &observation.record;
            (record.node_id.clone(), record.incarnation)
        })
        .take(MAX_PRUNES_PER_PASS)
        .collect()
}

/// One background pass removing forgettable rows, each only under the incarnation that was
/// judged gone (a newer life's row is never removed).
struct PrunePass {
    store: Arc<dyn StateStore>,
    running: Arc<AtomicBool>,
    forget_after: Duration,
}

impl PrunePass {
    async fn run(self, rows: Vec<(String, u64)>) {
        for (node_id, incarnation) in rows {
            match self.store.remove_member(&node_id, incarnation).await {
                Ok(true) => {
                    metrics::counter!("emporium_cluster_pruned_members_total").increment(1);
                    tracing::info!(
                        peer = %node_id,
                        incarnation,
                        forget_after_ms = duration_ms(self.forget_after),
                        "membership: removed the row of a member gone for forget_after"
                    );
                }
                // Another node removed it first, or a new life of the id wrote its row.
                Ok(false) => {}
                Err(error) => {
                    // The next heartbeat's listing shows what is left; try again from there.
                    tracing::warn!(%error, peer = %node_id, "membership: cannot remove a gone member's row");
                    break;
                }
            }
        }
    }
}

impl Drop for PrunePass {
    /// Also when the task is cancelled (the runtime shuts down mid-pass).
    fn drop(&mut self) {
        self.running.store(false, Ordering::Release);
    }
}

/// From per-member offset ranges `(low, high)` (`theirs - ours`, ms): `Some(0)` when some
/// member may be within `max_ms` of this node, `Some(off)` when every one surely differs by
/// more (the offset nearest to zero, positive when this node is behind), `None` without data.
fn surely_off_by(offsets: &[(i64, i64)], max_ms: i64) -> Option<i64> {
    offsets
        .iter()
        .map(|&(low, high)| {
            if low > max_ms {
                low
            } else if high < -max_ms {
                high
            } else {
                0
            }
        })
        .min_by_key(|off| off.unsigned_abs())
}

fn expel(state: &mut Local, why: Expulsion) {
    tracing::error!(
        ?why,
        "membership: this node expelled itself; this life is over"
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
        assert_eq!(bad.validate().unwrap_err().field, "dead_after");
        let config = MembershipConfig::default();
        assert_eq!(config.default_crash_confirm(), Duration::from_millis(600));
        for (crash_confirm, ok) in [(500, false), (501, true), (4_999, true), (5_000, false)] {
            let checked = config.validate_with_crash_confirm(Duration::from_millis(crash_confirm));
            assert_eq!(checked.is_ok(), ok, "{crash_confirm}: {checked:?}");
            if let Err(error) = checked {
                assert_eq!(error.field, "crash_confirm");
                assert!(error.to_string().contains("crash_confirm"), "{error}");
            }
        }
        let slow_beat = MembershipConfig {
            heartbeat_interval: Duration::from_secs(2),
            suspect_after: Duration::from_secs(3),
            dead_after: Duration::from_secs(5),
            forget_after: Duration::from_secs(3600),
        };
        assert_eq!(slow_beat.validate().unwrap_err().field, "dead_after");
        let quick_suspect = MembershipConfig {
            suspect_after: Duration::from_millis(500),
            ..MembershipConfig::default()
        };
        assert_eq!(quick_suspect.validate().unwrap_err().field, "suspect_after");
    }

    #[test]
    fn forget_after_must_leave_a_dead_member_known_for_three_dead_afters() {
        let config = |forget_after_ms: u64| MembershipConfig {
            forget_after: Duration::from_millis(forget_after_ms),
            ..MembershipConfig::default()
        };
        assert_eq!(
            MembershipConfig::default().forget_after,
            Duration::from_secs(3600)
        );
        assert!(config(15_000).validate().is_ok());
        for too_short in [0, 5_000, 14_999] {
            let error = config(too_short).validate().unwrap_err();
            assert_eq!(error.field, "forget_after");
            assert!(
                error.to_string().contains("3 × dead_after (15000 ms)"),
                "{error}"
            );
        }
    }

    fn observation(
        node_id: &str,
        status: MemberStatus,
        seen_ms: i64,
        first_seen_ms: u64,
    ) -> Observation {
        Observation {
            record: MemberRecord {
                node_id: node_id.to_owned(),
                incarnation: 7,
                cluster_addr: String::new(),
                http_addr: String::new(),
                status,
                heartbeat_ms: 1,
            },
            seen_ms,
            first_seen_ms,
        }
    }

    /// With `dead_after` 5 s and `forget_after` 15 s: a `Down` row goes 15 s after it was
    /// seen down, a silent one 20 s after its last change; a back-dated first sight counts
    /// from when this node first saw it; this node's own row never goes.
    #[test]
    fn forgettable_rows_are_judged_on_the_observers_clock() {
        let config = MembershipConfig {
            forget_after: Duration::from_secs(15),
            ..MembershipConfig::default()
        };
        let members: HashMap<String, Observation> = [
            observation("down", MemberStatus::Down, 1_000, 1_000),
            observation("silent", MemberStatus::Up, 1_000, 1_000),
            // First seen at 10 s, back-dated to look dead already (writer's clock).
            observation("ghost", MemberStatus::Up, 5_000, 10_000),
            observation("ghost-down", MemberStatus::Down, 5_000, 10_000),
            observation("me", MemberStatus::Down, 0, 0),
        ]
        .into_iter()
        .map(|observation| (observation.record.node_id.clone(), observation))
        .collect();
        let at = |judged_at_ms: u64| {
            let mut ids: Vec<String> = forgettable(&members, "me", judged_at_ms, &config)
                .into_iter()
                .map(|(node_id, incarnation)| {
                    assert_eq!(incarnation, 7);
                    node_id
                })
                .collect();
            ids.sort();
            ids
        };
        assert!(at(15_999).is_empty());
        assert_eq!(at(16_000), ["down"]);
        assert_eq!(at(20_999), ["down"]);
        assert_eq!(at(21_000), ["down", "silent"]);
        assert_eq!(at(24_999), ["down", "silent"]);
        assert_eq!(at(25_000), ["down", "ghost", "ghost-down", "silent"]);
        assert_eq!(at(1_000_000).len(), 4, "never this node's own row");
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
    async fn a_tolerated_clock_skew_does_not_make_a_live_node_dead() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        // b's wall clock runs 400 ms behind (within MAX_CLOCK_SKEW): liveness is judged on
        // each observer's own clock, so nothing changes.
        let b = join(&store, "b", -400).await;
        run_for(10_000).await;
        assert!(b.expelled().is_none());
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        assert_eq!(liveness(&b, "a"), Some(Liveness::Alive));
        assert_eq!(a.view().placement_candidates(), vec!["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_whose_clock_is_surely_off_refuses_to_join() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        run_for(1_000).await;
        // b's wall clock runs a minute behind: it fails safe instead of joining.
        let b = join(&store, "b", -60_000).await;
        run_for(3_000).await;
        match b.expelled() {
            Some(Expulsion::ClockSkew { off_by_ms }) => assert!(off_by_ms > 59_000, "{off_by_ms}"),
            other => panic!("b joined with a clock a minute off: {other:?}"),
        }
        assert_eq!(a.view().placement_candidates(), vec!["a"]);
        // A clock a minute ahead is refused too, and the running node is untouched.
        let c = join(&store, "c", 60_000).await;
        run_for(3_000).await;
        assert!(
            matches!(c.expelled(), Some(Expulsion::ClockSkew { off_by_ms }) if off_by_ms < -59_000)
        );
        assert!(a.expelled().is_none());
    }

    #[test]
    fn an_offset_is_sure_only_when_every_member_is_out_of_range() {
        assert_eq!(surely_off_by(&[], 500), None);
        assert_eq!(surely_off_by(&[(-100, 400)], 500), Some(0));
        assert_eq!(surely_off_by(&[(900, 1_400)], 500), Some(900));
        assert_eq!(surely_off_by(&[(-2_000, -900)], 500), Some(-900));
        assert_eq!(surely_off_by(&[(900, 1_400), (0, 400)], 500), Some(0));
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
        let old = b.incarnation();
        drop(b);
        // Restarted at once with a wall clock that stepped back (within the tolerated
        // skew): its start time is below the old life's, yet it is a newer life.
        let b = join(&store, "b", -400).await;
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

    /// A store whose heartbeat writes (`down`) or member listings (`failing`) can be made to
    /// fail: a store outage, or an unreadable member table, seen by one node. `racing` is a
    /// row written just before the next member removal: a restart landing in that moment.
    struct Outage {
        inner: Arc<MemoryStore>,
        down: std::sync::atomic::AtomicBool,
        failing: std::sync::atomic::AtomicBool,
        racing: Mutex<Option<MemberRecord>>,
    }

    impl Outage {
        fn over(inner: Arc<MemoryStore>) -> Self {
            Self {
                inner,
                down: std::sync::atomic::AtomicBool::new(false),
                failing: std::sync::atomic::AtomicBool::new(false),
                racing: Mutex::new(None),
            }
        }
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
        async fn outbox_pending_in(
            &self,
            shard: crate::Shard,
            limit: usize,
        ) -> Result<Vec<crate::store::PendingEvent>, StoreError> {
            self.inner.outbox_pending_in(shard, limit).await
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
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("cannot decode".to_owned()));
            }
            self.inner.list_members().await
        }
        async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("outage".to_owned()));
            }
            let racing = lock(&self.racing).take();
            if let Some(row) = racing {
                self.inner.upsert_member(&row).await?;
            }
            self.inner.remove_member(node_id, incarnation).await
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
        let outage = Arc::new(Outage::over(Arc::new(MemoryStore::new())));
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

    /// Whoever removed a row, a node forgets everything about its node id at the next
    /// successful listing: the observation, a probe's verdict, crash evidence.
    #[tokio::test(start_paused = true)]
    async fn a_member_whose_row_is_gone_is_forgotten_entirely() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        let c = join(&store, "c", 0).await;
        run_for(1_500).await;
        let (b_life, c_life) = (b.incarnation(), c.incarnation());
        drop(b);
        drop(c);
        for (node_id, life) in [("b", b_life), ("c", c_life)] {
            a.report_unreachable(node_id);
            a.report_refused(node_id, life);
        }
        {
            let observed = lock(&a.shared.observed);
            assert!(observed.members.contains_key("b"));
            assert!(observed.unreachable.contains_key("b"));
            assert!(observed.refused.contains_key("b"));
        }
        // Another node removed b's row (its life is over); c's row stays.
        assert!(store.remove_member("b", b_life).await.unwrap());
        run_for(600).await;
        let observed = lock(&a.shared.observed);
        assert!(!observed.members.contains_key("b"));
        assert!(!observed.unreachable.contains_key("b"));
        assert!(!observed.refused.contains_key("b"));
        assert!(observed.members.contains_key("c"));
        assert!(observed.unreachable.contains_key("c"));
        drop(observed);
        assert!(a.view().member("b").is_none());
        assert!(a.view().member("c").is_some());
    }

    /// The removal is decided from one listing and applied a moment later: a new life of
    /// the node id whose first row lands in between keeps it.
    #[tokio::test(start_paused = true)]
    async fn a_new_life_racing_the_removal_of_its_former_row_keeps_its_row() {
        let shared = Arc::new(MemoryStore::new());
        let racy = Arc::new(Outage::over(Arc::clone(&shared)));
        let config = MembershipConfig {
            forget_after: Duration::from_secs(15),
            ..MembershipConfig::default()
        };
        let a = Membership::join(local("a"), config, racy.clone(), clock(0))
            .await
            .unwrap();
        let b = join(&shared, "b", 0).await;
        run_for(1_500).await;
        b.stop().await.unwrap();
        let mut new_life = shared
            .list_members()
            .await
            .unwrap()
            .into_iter()
            .find(|row| row.node_id == "b")
            .unwrap();
        new_life.incarnation += 1_000;
        new_life.status = MemberStatus::Joining;
        *lock(&racy.racing) = Some(new_life.clone());
        run_for(17_000).await;
        assert!(lock(&racy.racing).is_none(), "a removal was attempted");
        let rows = shared.list_members().await.unwrap();
        let row = rows.iter().find(|row| row.node_id == "b");
        assert_eq!(row, Some(&new_life), "the new life's row was removed");
        assert!(a.is_healthy());
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

    /// Drop `b` (a crash: no `Down` row) and report its port refused to `a`.
    async fn crashed_pair() -> (Arc<MemoryStore>, Membership, u64) {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        run_for(1_500).await;
        let incarnation = b.incarnation();
        drop(b);
        (store, a, incarnation)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_port_and_a_still_row_make_a_crash_verdict_within_crash_confirm() {
        let (_store, a, incarnation) = crashed_pair().await;
        let started = tokio::time::Instant::now();
        a.report_refused("b", incarnation);
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!((seen.liveness, seen.refused), (Liveness::Suspect, true));
        let mut dead_at = None;
        while dead_at.is_none() {
            run_for(10).await;
            if liveness(&a, "b") == Some(Liveness::Dead) {
                dead_at = Some(started.elapsed().as_millis() as u64);
            }
            assert!(started.elapsed() < Duration::from_secs(3));
        }
        let dead_at = dead_at.unwrap();
        // Baseline at once, confirmation crash_confirm (600 ms) later.
        assert!((600..=700).contains(&dead_at), "dead at {dead_at}");
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(seen.death, Some(DeathCause::Crash));
        assert!(!seen.candidate);
        assert_eq!(a.view().placement_candidates(), vec!["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_port_of_a_node_that_still_writes_is_no_crash() {
        let store = Arc::new(MemoryStore::new());
        let a = join(&store, "a", 0).await;
        let b = join(&store, "b", 0).await;
        run_for(1_500).await;
        // E.g. a firewall answering with resets: b's row keeps changing.
        for _ in 0..20 {
            a.report_refused("b", b.incarnation());
            run_for(250).await;
            assert_ne!(liveness(&a, "b"), Some(Liveness::Dead));
        }
        run_for(1_000).await;
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        assert!(!a.view().member("b").unwrap().refused);
    }

    #[tokio::test(start_paused = true)]
    async fn crash_evidence_against_another_life_or_cleared_by_a_connection_does_not_kill() {
        let (_store, a, incarnation) = crashed_pair().await;
        a.report_refused("b", incarnation + 1);
        a.report_refused("nobody", 1);
        a.report_refused("a", a.incarnation());
        run_for(1_000).await;
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive), "not its life");
        a.report_refused("b", incarnation);
        run_for(300).await;
        a.report_connected("b");
        assert!(!a.view().member("b").unwrap().refused);
        run_for(1_000).await;
        // Only the time-based path is left: dead 5 s after the crash, not before.
        assert_ne!(liveness(&a, "b"), Some(Liveness::Dead));
        run_for(3_500).await;
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(
            (seen.liveness, seen.death),
            (Liveness::Dead, Some(DeathCause::Silence))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_life_clears_the_crash_evidence_of_the_old_one() {
        let (store, a, incarnation) = crashed_pair().await;
        a.report_refused("b", incarnation);
        // Restarted before the store could confirm: its new row replaces the evidence.
        let b = join(&store, "b", 0).await;
        run_for(2_000).await;
        let seen = a.view().member("b").cloned().unwrap();
        assert_eq!(
            (seen.incarnation, seen.liveness, seen.refused),
            (b.incarnation(), Liveness::Alive, false)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_read_the_member_table_judges_nobody_dead_meanwhile() {
        let shared = Arc::new(MemoryStore::new());
        let blind = Arc::new(Outage::over(Arc::clone(&shared)));
        let a = Membership::join(
            local("a"),
            MembershipConfig::default(),
            blind.clone(),
            clock(0),
        )
        .await
        .unwrap();
        let b = join(&shared, "b", 0).await;
        let mut c = Some(join(&shared, "c", 0).await);
        run_for(1_500).await;
        assert_eq!(a.view().placement_candidates(), vec!["a", "b", "c"]);
        blind
            .failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Longer than dead_after: a still writes its own row (it stays healthy), but cannot
        // see anyone's; c crashes meanwhile.
        for step in 0..120 {
            run_for(100).await;
            if step == 10 {
                drop(c.take()); // a crash: its row stops changing
            }
            let view = a.view();
            for member in view.members.iter().filter(|member| member.node_id != "a") {
                assert_ne!(
                    member.liveness,
                    Liveness::Dead,
                    "{} judged dead from a view {} ms old",
                    member.node_id,
                    step * 100
                );
            }
            assert!(a.is_healthy());
        }
        assert!(c.is_none());
        blind
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        run_for(600).await;
        // A fresh listing: b wrote all along. c's row changed since a last saw it (c wrote
        // for a while during the outage), so a only knows that c was alive at some point
        // of it: c's silence is counted from this listing, and c is dead `dead_after` later.
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        assert_ne!(liveness(&a, "c"), Some(Liveness::Dead));
        run_for(4_000).await;
        assert_ne!(liveness(&a, "c"), Some(Liveness::Dead));
        run_for(1_500).await;
        assert_eq!(liveness(&a, "c"), Some(Liveness::Dead));
        assert_eq!(liveness(&a, "b"), Some(Liveness::Alive));
        assert!(b.is_healthy());
    }
}
