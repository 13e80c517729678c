//! A node in a cluster (feature `cluster`): membership, shard leases and the transport put
//! together behind the runtime's [`Placement`] port.
//!
//! [`Cluster::start`] starts a runtime that routes every ask to the owner of the actor's
//! shard, serves the calls other nodes forward to it, and follows its own leases.
//!
//! Code map:
//! - `life`: one incarnation (membership + leases + transport upkeep), and the supervisor
//!   that begins a new one after the node fenced itself — a node survives a store outage
//!   or a pause without a restart;
//! - `following`: what a life does when its leases change (passivate, arm reminders, time
//!   failovers, request hand-overs);
//! - `forwarding`: serving and interpreting calls between nodes, `$revoke` hand-overs;
//! - `status`: the admin view of the cluster;
//! - `secret`: the cluster secret's fingerprint in the store.
//!
//! **Invariants**
//! - A forwarded call runs only on a node that serves the shard *when the call arrives*, and
//!   only locally: forwarding is one hop, never a loop.
//! - A node serves only under a healthy life: a fenced node refuses every call (503) until a
//!   new life has joined and claimed shards again.
//! - Every node of a cluster proves the same secret: the transport refuses a peer with
//!   another cookie, and a node whose secret's fingerprint differs from the one recorded in
//!   the store refuses to start (so a misconfigured node never claims shards it could not
//!   be reached for).

mod following;
mod forwarding;
mod journal;
mod life;
mod operations;
mod secret;
mod status;

// The parts a cluster is assembled from, for the in-process tests that assemble one by hand
// (a node uses only `Cluster` and `ClusterOptions`).
pub use crate::leases::{DrainReport, LeaseConfig, LeaseHolder, LeaseStats, LeaseTable, Leases};
pub use crate::membership::{
    DeathCause, Expulsion, InvalidTimings, Liveness, LocalMember, MAX_CLOCK_SKEW, MemberState,
    Membership, MembershipConfig, MembershipView,
};
pub use crate::transport::{
    Answer, DecodeError, Envelope, EnvelopeHandler, MaintenanceHandle, Peer, PeerSource, Refusal,
    Transport, TransportConfig, TransportError,
};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::error::RuntimeError;
use crate::operations::OperationError;
use crate::placement::Shard;
use crate::routing::{Location, OutgoingCall, Placement};
use crate::runtime::{Runtime, RuntimeBuilder, WeakRuntime};
use crate::status::{ClusterStatus, DrainOutcome};
use crate::store::{MemberStatus, StoreError};

use forwarding::{Handler, answer_to_result};
use life::{Life, LifeRecipe, Lives};

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
    /// How long a drain (an operator's, or a leave on SIGTERM) waits for the other nodes to
    /// take this node's shards.
    pub handover_deadline: Duration,
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
            handover_deadline: Duration::from_secs(20),
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
    recipe: LifeRecipe,
    lives: Arc<Lives>,
    runtime: WeakRuntime,
    /// Set by `drain` and `stop`: a life that ends afterwards is not followed by another.
    stopping: AtomicBool,
    /// Why this node was expelled for good (superseded, clock skew), once it was.
    expelled: watch::Sender<Option<String>>,
}

impl Inner {
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn expelled_for_good(&self, why: String) {
        self.expelled.send_replace(Some(why));
    }
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
        secret::check_secret(store.as_ref(), &options.secret).await?;
        let handler = Arc::new(Handler {
            runtime: runtime.downgrade(),
            lives: OnceLock::new(),
        });
        let transport = start_transport(&options, &runtime, &handler).await?;
        let recipe = LifeRecipe {
            local: LocalMember {
                node_id: options.node_id.clone(),
                cluster_addr: options.cluster_addr.to_string(),
                http_addr: options.http_addr.clone(),
            },
            membership: options.membership.clone(),
            crash_confirm,
            leases: options.leases.clone(),
            store,
            clock: Arc::clone(runtime.clock()),
            transport,
            handover_deadline: options.handover_deadline,
        };
        let first = Arc::new(recipe.begin().await?);
        let lives = Arc::new(Lives::new(Arc::clone(&first)));
        let _ = handler.lives.set(Arc::clone(&lives));
        let cluster = Cluster {
            inner: Arc::new(Inner {
                recipe,
                lives,
                runtime: runtime.downgrade(),
                stopping: AtomicBool::new(false),
                expelled: watch::channel(None).0,
            }),
        };
        runtime.install_placement(Arc::new(cluster.clone()));
        tokio::spawn(following::follow_leases(
            runtime.downgrade(),
            cluster.inner.recipe.transport.clone(),
            Arc::clone(&first),
        ));
        tokio::spawn(life::supervise(Arc::downgrade(&cluster.inner)));
        tracing::info!(
            node = %options.node_id,
            incarnation = first.membership.incarnation(),
            cluster_addr = %options.cluster_addr,
            "cluster: joined"
        );
        Ok((runtime, cluster))
    }

    /// The current life's membership (a new one after each rejoin).
    pub fn membership(&self) -> Membership {
        self.life().membership.clone()
    }

    /// The current life's leases (new ones after each rejoin).
    pub fn leases(&self) -> Leases {
        self.life().leases.clone()
    }

    /// Whether this node is `Up` and healthy: it may be sent traffic. False while it is
    /// fenced and until its next life is `Up`.
    pub fn is_serving(&self) -> bool {
        let life = self.life();
        life.membership.is_healthy() && life.membership.status() == MemberStatus::Up
    }

    /// Resolves when this node is expelled for good (another process took its node id, or
    /// its clock is too far off): it must stop. A node that only fenced itself (a pause, a
    /// store outage) rejoins by itself and never resolves this.
    pub async fn expelled(&self) -> String {
        let mut expelled = self.inner.expelled.subscribe();
        let why = match expelled.wait_for(Option::is_some).await {
            Ok(why) => why.clone(),
            // The sender lives in `Inner`, which `self` keeps alive.
            Err(_) => None,
        };
        match why {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Graceful leave, first part: report `Leaving` and wait (at most `deadline`) while the
    /// other nodes take every shard over; this node keeps serving what it still holds.
    pub async fn drain(&self, deadline: Duration) {
        self.inner.stopping.store(true, Ordering::Release);
        let report = self.life().leases.drain(deadline).await;
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
        self.inner.stopping.store(true, Ordering::Release);
        let life = self.life();
        if let Err(error) = life.membership.stop().await {
            tracing::warn!(%error, "cluster: could not report Down");
        }
        tokio::time::sleep(life.membership.config().heartbeat_interval * 2).await;
        life.stop_upkeep();
        self.inner.recipe.transport.shutdown().await;
    }

    fn life(&self) -> Arc<Life> {
        self.inner.lives.current()
    }

    fn node_id(&self) -> &str {
        &self.inner.recipe.local.node_id
    }
}

async fn start_transport(
    options: &ClusterOptions,
    runtime: &Runtime,
    handler: &Arc<Handler>,
) -> Result<Transport, ClusterError> {
    let mut transport_config = TransportConfig::new(
        options.node_id.clone(),
        options.cluster_addr,
        options.secret.clone(),
    );
    transport_config.maintain_interval = options.membership.heartbeat_interval;
    let transport = Transport::start(
        transport_config,
        Arc::clone(runtime.clock()),
        Arc::clone(handler) as Arc<dyn EnvelopeHandler>,
    )
    .await?;
    for seed in &options.seeds {
        if let Err(error) = transport.connect(seed).await {
            tracing::warn!(%seed, %error, "cluster: seed not reachable; joining through the store");
        }
    }
    Ok(transport)
}

impl Placement for Cluster {
    fn locate(&self, shard: Shard) -> Location {
        let life = self.life();
        // The common case first: serving implies healthy and not down.
        let leases = &life.leases;
        if leases.serves(shard) {
            return Location::Local;
        }
        let membership = &life.membership;
        if let Some(expulsion) = membership.expelled() {
            return Location::Refused {
                reason: format!(
                    "this node fenced itself ({expulsion:?}); it serves again once it has rejoined"
                ),
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
        self.life().leases.serving_epoch(shard)
    }

    fn forward(
        &self,
        node: String,
        call: OutgoingCall,
    ) -> BoxFuture<'static, Result<Vec<u8>, RuntimeError>> {
        let transport = self.inner.recipe.transport.clone();
        Box::pin(async move {
            let envelope = Envelope::new(
                call.actor.kind,
                call.actor.key.clone(),
                call.payload,
                call.deadline_ms,
            )
            .with_trace(call.trace);
            let sent = transport.send(&node, envelope).await;
            answer_to_result(&call.actor, &node, sent)
        })
    }

    fn shard_owner(&self, shard: Shard) -> (Option<String>, Option<u64>) {
        let table = self.life().leases.table();
        match table.lease(shard) {
            Some(lease) => (
                lease.holder.as_ref().map(|holder| holder.node_id.clone()),
                Some(lease.epoch),
            ),
            None => (None, None),
        }
    }

    fn shard_owners(&self) -> Vec<Option<String>> {
        let table = self.life().leases.table();
        (0..crate::placement::SHARD_COUNT)
            .map(|shard| table.owner_node(shard).map(str::to_owned))
            .collect()
    }

    fn status(&self) -> BoxFuture<'_, ClusterStatus> {
        Box::pin(status::cluster_status(self))
    }

    fn drain_node<'a>(
        &'a self,
        node: &'a str,
    ) -> BoxFuture<'a, Result<DrainOutcome, OperationError>> {
        Box::pin(Cluster::drain_node(self, node))
    }

    fn rebalance(&self) -> BoxFuture<'_, Result<Vec<String>, OperationError>> {
        Box::pin(Cluster::rebalance(self))
    }
}
