//! A node in a cluster (feature `cluster`): membership, shard leases and the transport put
//! together behind the runtime's [`Placement`] port.
//!
//! [`Cluster::start`] starts a runtime that routes every ask to the owner of the actor's
//! shard, serves the calls other nodes forward to it, and follows its own leases:
//! - a shard **gained** gets its stored reminders armed here (and once more a few seconds
//!   later, for reminders the previous owner committed before it noticed the move);
//! - a shard **lost** gets its idle activations passivated at once (busy ones retire when
//!   the message they are running is done; see `activation`).
//!
//! **Invariants**
//! - A forwarded call runs only on a node that serves the shard *when the call arrives*, and
//!   only locally: forwarding is one hop, never a loop.
//! - Every node of a cluster proves the same secret: the transport refuses a peer with
//!   another cookie, and a node whose secret's fingerprint differs from the one recorded in
//!   the store refuses to start (so a misconfigured node never claims shards it could not
//!   be reached for).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::error::{ErrorClass, RuntimeError};
use crate::identity::ActorId;
use crate::leases::{LeaseConfig, Leases};
use crate::lock;
use crate::membership::{Liveness, LocalMember, Membership, MembershipConfig};
use crate::placement::{SHARD_COUNT, Shard, shard_of};
use crate::routing::{Location, OutgoingCall, Placement};
use crate::runtime::{ForwardedCallError, Runtime, RuntimeBuilder, WeakRuntime};
use crate::status::{ClusterStatus, NodeStatus};
use crate::store::{MemberStatus, StateStore, StateWrite, StoreError};
use crate::transport::{
    Answer, Envelope, EnvelopeHandler, MaintenanceHandle, Refusal, Transport, TransportConfig,
    TransportError,
};

/// The envelope kind a node answers with its own counts (for the admin view).
const STATUS_KIND: &str = "$status";
/// The envelope kind that asks a node to let go of shards another node has claimed from it
/// (payload: the shards, JSON); it answers once it no longer serves them.
const REVOKE_KIND: &str = "$revoke";
/// How long a claimer waits for the previous holder's answer before it stops asking (its
/// claim is then served after the lease's hold-back expires).
const REVOKE_TIMEOUT_MS: u64 = 2_000;
/// Where the fingerprint of the cluster secret is kept (a record no actor kind can name).
const SECRET_RECORD: (&str, &str) = ("$cluster", "secret");
/// Reminders of a gained shard are armed again after this, for late commits of the
/// previous owner.
const REARM_AFTER: Duration = Duration::from_secs(3);
/// How long the admin view waits for a peer's counts.
const STATUS_TIMEOUT_MS: u64 = 1_000;

/// How this node joins its cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub node_id: String,
    /// The transport's listen address, also what peers dial.
    pub cluster_addr: SocketAddr,
    /// Where clients reach this node (shown to operators).
    pub http_addr: String,
    /// Cluster addresses dialled first; membership itself lives in the shared store.
    pub seeds: Vec<String>,
    pub secret: String,
    pub membership: MembershipConfig,
    /// How long a member whose cluster port refused a connection must stay silent in the
    /// store to be judged crashed; `None`: [`MembershipConfig::default_crash_confirm`].
    pub crash_confirm: Option<Duration>,
    pub leases: LeaseConfig,
}

impl ClusterOptions {
    pub fn new(
        node_id: impl Into<String>,
        cluster_addr: SocketAddr,
        http_addr: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            cluster_addr,
            http_addr: http_addr.into(),
            seeds: Vec::new(),
            secret: secret.into(),
            membership: MembershipConfig::default(),
            crash_confirm: None,
            leases: LeaseConfig::default(),
        }
    }
}

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the cluster secret differs from the one the cluster in this store was started with; every node needs the same EMPORIUM_CLUSTER_SECRET"
    )]
    SecretMismatch,
    #[error("the shared store failed while joining: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Timings(#[from] crate::membership::InvalidTimings),
    #[error("{0}")]
    Transport(#[from] TransportError),
}

/// This node's part in the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    membership: Membership,
    leases: Leases,
    transport: Transport,
    maintenance: Mutex<Option<MaintenanceHandle>>,
    runtime: WeakRuntime,
}

/// What the transport hands envelopes to; it learns the leases once they exist.
struct Handler {
    runtime: WeakRuntime,
    leases: OnceLock<Leases>,
}

impl Cluster {
    /// Build the runtime of `builder` as a member of the cluster described by `options`.
    pub async fn start(
        builder: RuntimeBuilder,
        options: ClusterOptions,
    ) -> Result<(Runtime, Cluster), ClusterError> {
        let crash_confirm = options
            .crash_confirm
            .unwrap_or_else(|| options.membership.default_crash_confirm());
        options
            .membership
            .validate_with_crash_confirm(crash_confirm)?;
        let runtime = builder.start();
        let store = Arc::clone(runtime.store());
        check_secret(store.as_ref(), &options.secret).await?;
        let handler = Arc::new(Handler {
            runtime: runtime.downgrade(),
            leases: OnceLock::new(),
        });
        let mut transport_config = TransportConfig::new(
            options.node_id.clone(),
            options.cluster_addr,
            options.secret.clone(),
        );
        transport_config.maintain_interval = options.membership.heartbeat_interval;
        let transport = Transport::start(
            transport_config,
            Arc::clone(runtime.clock()),
            Arc::clone(&handler) as Arc<dyn EnvelopeHandler>,
        )
        .await?;
        for seed in &options.seeds {
            if let Err(error) = transport.connect(seed).await {
                tracing::warn!(%seed, %error, "cluster: seed not reachable; joining through the store");
            }
        }
        let local = LocalMember {
            node_id: options.node_id.clone(),
            cluster_addr: options.cluster_addr.to_string(),
            http_addr: options.http_addr.clone(),
        };
        let membership = Membership::join_with_crash_confirm(
            local,
            options.membership.clone(),
            crash_confirm,
            Arc::clone(&store),
            Arc::clone(runtime.clock()),
        )
        .await?;
        let leases = Leases::start(membership.clone(), store, options.leases.clone());
        let _ = handler.leases.set(leases.clone());
        let maintenance = transport.maintain(Arc::new(membership.clone()));
        let cluster = Cluster {
            inner: Arc::new(Inner {
                membership,
                leases,
                transport,
                maintenance: Mutex::new(Some(maintenance)),
                runtime: runtime.downgrade(),
            }),
        };
        runtime.install_placement(Arc::new(cluster.clone()));
        tokio::spawn(follow_leases(cluster.clone()));
        tracing::info!(
            node = %options.node_id,
            incarnation = cluster.inner.membership.incarnation(),
            cluster_addr = %options.cluster_addr,
            "cluster: joined"
        );
        Ok((runtime, cluster))
    }

    pub fn membership(&self) -> &Membership {
        &self.inner.membership
    }

    pub fn leases(&self) -> &Leases {
        &self.inner.leases
    }

    /// Whether this node is `Up` and healthy: it may be sent traffic.
    pub fn is_serving(&self) -> bool {
        let membership = &self.inner.membership;
        membership.is_healthy() && membership.status() == MemberStatus::Up
    }

    /// Resolves when this node expels itself (a pause or a partition made the others see it
    /// dead): it must stop, and rejoins only as a new life (a restart).
    pub async fn expelled(&self) -> String {
        let mut views = self.inner.membership.subscribe();
        loop {
            if let Some(expulsion) = self.inner.membership.expelled() {
                return format!("{expulsion:?}");
            }
            // The silence check is live, so look at least once per heartbeat interval.
            let interval = self.inner.membership.config().heartbeat_interval;
            tokio::select! {
                changed = views.changed() => if changed.is_err() {
                    tokio::time::sleep(interval).await;
                },
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Graceful leave, first part: report `Leaving` and wait (at most `deadline`) while the
    /// other nodes take every shard over; this node keeps serving what it still holds.
    pub async fn drain(&self, deadline: Duration) {
        let report = self.inner.leases.drain(deadline).await;
        tracing::info!(
            held_at_start = report.held_at_start,
            still_held = report.still_held.len(),
            "cluster: drained"
        );
    }

    /// Leave for good: report `Down` (if not yet), keep the links open for two heartbeat
    /// intervals, then close them. Peers whose lease table still names this node go on
    /// forwarding to it until their next refresh; meanwhile it refuses (`NotOwner`, which
    /// they retry elsewhere). Closing at once would drop such a call mid-flight, and its
    /// sender could only answer "outcome unknown".
    pub async fn stop(&self) {
        if let Err(error) = self.inner.membership.stop().await {
            tracing::warn!(%error, "cluster: could not report Down");
        }
        tokio::time::sleep(self.inner.membership.config().heartbeat_interval * 2).await;
        let maintenance = lock(&self.inner.maintenance).take();
        drop(maintenance);
        self.inner.transport.shutdown().await;
    }

    fn local_node(&self) -> &str {
        self.inner.membership.node_id()
    }

    async fn peer_active_actors(&self, node: &str) -> Option<u64> {
        if node == self.local_node() {
            return self
                .inner
                .runtime
                .upgrade()
                .map(|runtime| runtime.active_actors());
        }
        let deadline_ms = self.inner.membership.clock().now_ms() + STATUS_TIMEOUT_MS;
        let envelope = Envelope::new(STATUS_KIND, "", Vec::new(), deadline_ms);
        match self.inner.transport.send(node, envelope).await {
            Ok(Answer::Reply(bytes)) => serde_json::from_slice(&bytes).ok(),
            _ => None,
        }
    }
}

impl Placement for Cluster {
    fn locate(&self, shard: Shard) -> Location {
        // The common case first: serving implies healthy and not down.
        let leases = &self.inner.leases;
        if leases.serves(shard) {
            return Location::Local;
        }
        let membership = &self.inner.membership;
        if let Some(expulsion) = membership.expelled() {
            return Location::Refused {
                reason: format!("this node was expelled from the cluster ({expulsion:?})"),
            };
        }
        if membership.status() == MemberStatus::Down {
            return Location::Refused {
                reason: "this node has left the cluster".to_owned(),
            };
        }
        let table = leases.table();
        let Some(holder) = table.lease(shard).and_then(|lease| lease.holder.clone()) else {
            return Location::Unplaced {
                reason: format!("shard {shard} has no owner yet"),
            };
        };
        if holder == *leases.local() {
            return Location::Unplaced {
                reason: format!("shard {shard} is held here, but this node is not serving yet"),
            };
        }
        let view = membership.view();
        match view.member(&holder.node_id) {
            Some(member)
                if member.incarnation == holder.incarnation
                    && member.liveness == Liveness::Alive
                    && member.status != MemberStatus::Down =>
            {
                Location::Remote {
                    node: holder.node_id,
                }
            }
            Some(member) => {
                if member.incarnation != holder.incarnation
                    || member.liveness == Liveness::Dead
                    || member.status == MemberStatus::Down
                {
                    // Its shards are being claimed by a survivor: look for the claim now
                    // rather than at the next periodic refresh.
                    leases.nudge();
                }
                Location::Unplaced {
                    reason: format!(
                        "owner {holder} of shard {shard} is {} and {}; waiting for its shards to move",
                        member.liveness.as_str(),
                        member.status.as_str()
                    ),
                }
            }
            None => Location::Unplaced {
                reason: format!("owner {holder} of shard {shard} is not a known member"),
            },
        }
    }

    fn serving_epoch(&self, shard: Shard) -> Option<u64> {
        self.inner.leases.serving_epoch(shard)
    }

    fn forward(
        &self,
        node: String,
        call: OutgoingCall,
    ) -> BoxFuture<'static, Result<Vec<u8>, RuntimeError>> {
        let transport = self.inner.transport.clone();
        Box::pin(async move {
            let envelope = Envelope::new(
                call.actor.kind,
                call.actor.key.clone(),
                call.payload,
                call.deadline_ms,
            );
            let sent = transport.send(&node, envelope).await;
            answer_to_result(&call.actor, &node, sent)
        })
    }

    fn shard_owner(&self, shard: Shard) -> (Option<String>, Option<u64>) {
        let table = self.inner.leases.table();
        match table.lease(shard) {
            Some(lease) => (
                lease.holder.as_ref().map(|holder| holder.node_id.clone()),
                Some(lease.epoch),
            ),
            None => (None, None),
        }
    }

    fn status(&self) -> BoxFuture<'_, ClusterStatus> {
        Box::pin(async move {
            let view = self.inner.membership.view();
            let table = self.inner.leases.table();
            let live_holders: BTreeSet<String> = view
                .members
                .iter()
                .filter(|member| {
                    member.liveness != Liveness::Dead && member.status != MemberStatus::Down
                })
                .map(|member| format!("{}@{}", member.node_id, member.incarnation))
                .collect();
            let unowned_shards = (0..SHARD_COUNT)
                .filter(|shard| {
                    table
                        .lease(*shard)
                        .is_none_or(|lease| !live_holders.contains(&lease.owner))
                })
                .count();
            let owned = owned_by_current_lives(&table, &view.members);
            let actives = futures::future::join_all(
                view.members
                    .iter()
                    .map(|member| self.peer_active_actors(&member.node_id)),
            )
            .await;
            let nodes = view
                .members
                .iter()
                .zip(actives)
                .map(|(member, active_actors)| NodeStatus {
                    node_id: member.node_id.clone(),
                    cluster_addr: Some(member.cluster_addr.clone()),
                    http_addr: Some(member.http_addr.clone()),
                    status: member.status.as_str().to_owned(),
                    liveness: member.liveness.as_str().to_owned(),
                    incarnation: Some(member.incarnation),
                    shards_owned: owned.get(&member.node_id).copied().unwrap_or(0),
                    active_actors,
                    last_heartbeat_ms_ago: Some(member.silent_for_ms),
                })
                .collect();
            ClusterStatus {
                mode: "cluster",
                node_id: self.local_node().to_owned(),
                shard_count: SHARD_COUNT,
                unowned_shards,
                nodes,
            }
        })
    }
}

/// Shards per node id, counting only leases held by the member's current life.
fn owned_by_current_lives(
    table: &crate::leases::LeaseTable,
    members: &[crate::membership::MemberState],
) -> BTreeMap<String, usize> {
    let mut owned = BTreeMap::new();
    for shard in 0..SHARD_COUNT {
        let Some(holder) = table.lease(shard).and_then(|lease| lease.holder.as_ref()) else {
            continue;
        };
        let current = members.iter().any(|member| {
            member.node_id == holder.node_id && member.incarnation == holder.incarnation
        });
        if current {
            *owned.entry(holder.node_id.clone()).or_insert(0) += 1;
        }
    }
    owned
}

/// What a forwarded call's transport outcome means to the caller.
fn answer_to_result(
    actor: &ActorId,
    node: &str,
    sent: Result<Answer, TransportError>,
) -> Result<Vec<u8>, RuntimeError> {
    let remote = |class, message: String| RuntimeError::Remote {
        actor: actor.clone(),
        node: node.to_owned(),
        class,
        message,
    };
    match sent {
        Ok(Answer::Reply(bytes)) => Ok(bytes),
        Ok(Answer::Refused { reason, detail }) => Err(match reason {
            Refusal::NotOwner => RuntimeError::Moved {
                actor: actor.clone(),
                reason: format!("{node} refused: {detail}"),
            },
            Refusal::Overloaded => remote(ErrorClass::Unavailable, format!("overloaded: {detail}")),
            // Late on arrival, or while running: the latter may have applied it.
            Refusal::Expired => remote(ErrorClass::OutcomeUnknown, format!("expired: {detail}")),
            Refusal::UnknownKind
            | Refusal::Malformed
            | Refusal::UnsupportedVersion
            | Refusal::Failed => remote(ErrorClass::Failed, format!("{reason:?}: {detail}")),
        }),
        // Never sent: safe to route again.
        Err(
            error @ (TransportError::NotConnected { .. }
            | TransportError::Connect { .. }
            | TransportError::Refused { .. }
            | TransportError::Expired),
        ) => Err(RuntimeError::Moved {
            actor: actor.clone(),
            reason: error.to_string(),
        }),
        Err(error @ (TransportError::Timeout { .. } | TransportError::Dropped { .. })) => {
            Err(remote(ErrorClass::OutcomeUnknown, error.to_string()))
        }
        Err(error @ TransportError::Decode { .. }) => {
            Err(remote(ErrorClass::OutcomeUnknown, error.to_string()))
        }
        Err(error @ TransportError::Start(_)) => Err(remote(ErrorClass::Failed, error.to_string())),
    }
}

#[async_trait]
impl EnvelopeHandler for Handler {
    async fn handle(&self, envelope: Envelope) -> Answer {
        let Some(runtime) = self.runtime.upgrade() else {
            return Answer::refused(Refusal::NotOwner, "this node is stopping");
        };
        if envelope.kind == STATUS_KIND {
            let active = serde_json::to_vec(&runtime.active_actors()).unwrap_or_default();
            return Answer::Reply(active);
        }
        let Some(leases) = self.leases.get() else {
            return Answer::refused(Refusal::NotOwner, "this node is still joining");
        };
        if envelope.kind == REVOKE_KIND {
            return let_go(&runtime, leases, &envelope.payload).await;
        }
        let shard = shard_of(&envelope.kind, &envelope.key);
        if !leases.serves(shard) {
            return Answer::refused(
                Refusal::NotOwner,
                format!("shard {shard} is not served by {}", runtime.node_id()),
            );
        }
        let budget_ms = envelope
            .deadline_ms
            .saturating_sub(runtime.clock().now_ms());
        let budget = Duration::from_millis(budget_ms);
        match runtime
            .serve_forwarded(&envelope.kind, &envelope.key, &envelope.payload, budget)
            .await
        {
            Ok(reply) => Answer::Reply(reply),
            Err(error @ ForwardedCallError::UnknownKind(_)) => {
                Answer::refused(Refusal::UnknownKind, error.to_string())
            }
            Err(error @ ForwardedCallError::Malformed(_)) => {
                Answer::refused(Refusal::Malformed, error.to_string())
            }
        }
    }
}

/// Another node claimed `payload`'s shards from this one: re-read the leases (so that
/// nothing routes here or runs here for them any more), passivate their idle activations
/// (busy ones retire after their message), and confirm.
async fn let_go(runtime: &Runtime, leases: &Leases, payload: &[u8]) -> Answer {
    let Ok(shards) = serde_json::from_slice::<Vec<Shard>>(payload) else {
        return Answer::refused(Refusal::Malformed, "a revoke names a JSON list of shards");
    };
    let table = leases.refresh().await;
    if let Some(shard) = shards.iter().find(|shard| table.is_held_locally(**shard)) {
        return Answer::refused(
            Refusal::Failed,
            format!("shard {shard} is still leased to this node"),
        );
    }
    let passivated = runtime.release_shards(&shards.iter().copied().collect());
    tracing::debug!(
        shards = shards.len(),
        passivated,
        "cluster: let go of shards"
    );
    Answer::Reply(Vec::new())
}

/// Ask the previous holders of shards this node just claimed from them to let go; each
/// answer lets this node serve those shards (see `Leases::serves`).
fn request_handovers(cluster: &Cluster) {
    for (holder, shards) in cluster.inner.leases.handovers_to_request() {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let deadline_ms = cluster.inner.membership.clock().now_ms() + REVOKE_TIMEOUT_MS;
            let payload = serde_json::to_vec(&shards).unwrap_or_default();
            let envelope = Envelope::new(REVOKE_KIND, "", payload, deadline_ms);
            match cluster
                .inner
                .transport
                .send(&holder.node_id, envelope)
                .await
            {
                Ok(Answer::Reply(_)) => cluster.inner.leases.complete_handover(&shards),
                Ok(Answer::Refused { reason, detail }) => {
                    tracing::warn!(%holder, ?reason, %detail, "cluster: hand-over refused; waiting for it to expire");
                }
                Err(error) => {
                    tracing::debug!(%holder, %error, "cluster: hand-over unanswered; waiting for it to expire");
                }
            }
        });
    }
}

/// Follow this node's leases: passivate what moved away, arm reminders of what arrived,
/// count both, and time failovers.
async fn follow_leases(cluster: Cluster) {
    let mut tables = cluster.inner.leases.subscribe();
    let mut held: BTreeMap<Shard, u64> = BTreeMap::new();
    let mut previous = tables.borrow().clone();
    loop {
        let table = tables.borrow_and_update().clone();
        let Some(runtime) = cluster.inner.runtime.upgrade() else {
            return;
        };
        let now: BTreeMap<Shard, u64> = table
            .held_locally()
            .into_iter()
            .filter_map(|shard| table.lease(shard).map(|lease| (shard, lease.epoch)))
            .collect();
        let lost: BTreeSet<Shard> = held
            .iter()
            .filter(|(shard, epoch)| now.get(shard) != Some(epoch))
            .map(|(shard, _)| *shard)
            .collect();
        let gained: Vec<Shard> = now
            .iter()
            .filter(|(shard, epoch)| held.get(shard) != Some(epoch))
            .map(|(shard, _)| *shard)
            .collect();
        if !lost.is_empty() || !gained.is_empty() {
            let passivated = runtime.release_shards(&lost);
            runtime.lifecycle().shards_changed(gained.len(), lost.len());
            tracing::info!(
                gained = gained.len(),
                lost = lost.len(),
                passivated,
                held = now.len(),
                "cluster: shard ownership changed"
            );
            record_failovers(&cluster, &runtime, &previous, &gained);
            tokio::spawn(arm_gained(runtime.clone(), gained));
        }
        request_handovers(&cluster);
        held = now;
        previous = table;
        drop(runtime);
        if tables.changed().await.is_err() {
            return;
        }
    }
}

/// For gained shards whose previous holder is dead: the time from its last heartbeat (its
/// own clock; a kill happens within one heartbeat interval after it) to now.
fn record_failovers(
    cluster: &Cluster,
    runtime: &Runtime,
    previous: &crate::leases::LeaseTable,
    gained: &[Shard],
) {
    let view = cluster.inner.membership.view();
    let dead_holders: BTreeSet<&crate::leases::LeaseHolder> = gained
        .iter()
        .filter_map(|shard| previous.lease(*shard)?.holder.as_ref())
        .filter(|holder| {
            view.member(&holder.node_id).is_some_and(|member| {
                member.incarnation == holder.incarnation && member.liveness == Liveness::Dead
            })
        })
        .collect();
    let now_ms = runtime.clock().now_ms();
    for holder in dead_holders {
        let Some(member) = view.member(&holder.node_id) else {
            continue;
        };
        let seconds = now_ms.saturating_sub(member.last_heartbeat_ms) as f64 / 1000.0;
        runtime.lifecycle().failover(seconds);
        tracing::info!(dead = %holder, seconds, "cluster: took over shards of a dead node");
    }
}

/// Arm the stored reminders of `shards` now and once more after [`REARM_AFTER`] (a timer
/// armed twice fires twice; the second finds the reminder gone and does nothing).
async fn arm_gained(runtime: Runtime, shards: Vec<Shard>) {
    for pass in 0..2 {
        if pass == 1 {
            tokio::time::sleep(REARM_AFTER).await;
        }
        for shard in &shards {
            if let Err(error) = runtime.arm_shard_reminders(*shard).await {
                tracing::warn!(shard, %error, "cluster: cannot arm the reminders of a gained shard");
            }
        }
    }
}

/// Record this cluster's secret fingerprint on first start; refuse a different one later.
async fn check_secret(store: &dyn StateStore, secret: &str) -> Result<(), ClusterError> {
    let record = ActorId::new(SECRET_RECORD.0, SECRET_RECORD.1);
    let fingerprint = secret_fingerprint(secret);
    for _attempt in 0..3 {
        match store.load(&record).await? {
            Some(stored) if stored.state.as_ref() == fingerprint.as_bytes() => return Ok(()),
            Some(_) => return Err(ClusterError::SecretMismatch),
            None => {
                let write = StateWrite {
                    expected_version: 0,
                    state: Bytes::from(fingerprint.clone().into_bytes()),
                    outbox: Vec::new(),
                    reminders: Vec::new(),
                };
                match store.save(&record, write).await {
                    Ok(_) => return Ok(()),
                    // Another node recorded one first: compare with it.
                    Err(error) if error.is_conflict() => continue,
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Err(ClusterError::Store(StoreError::Other(
        "the cluster secret record keeps changing".to_owned(),
    )))
}

/// A salted hash: the store never holds the secret itself.
fn secret_fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(format!("emporium-cluster-secret/v1:{secret}").as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{{\"sha256\":\"{hex}\"}}")
}
