//! This node's lives in the cluster, and the supervisor that begins a new one after the node
//! fenced itself.
//!
//! A **life** is one membership incarnation with its leases and the transport's upkeep of
//! its peers. It ends when the node expels itself:
//! - **silent**: a pause, or the store (or every path to it) gone for `fence_after`. From that
//!   moment the life serves nothing that needs ownership (its leases serve only while its
//!   membership is healthy) and every call is refused with 503. The supervisor lets go of
//!   every activation, waits until the old life's `Down` is durably written (its last write
//!   could otherwise clobber the new row: the member upsert is unconditional), then joins
//!   again as a **new incarnation**, retrying while the store is away. No restart.
//! - **isolated**: the store answers, but this node's probes reach no majority of the live
//!   members (see `majority`). Its `Down` lets the others take its shards at once; the next
//!   life begins as for a silent end, once the old life's probes (its upkeep goes on) reach
//!   a majority again.
//! - **superseded** (another process runs with this node id) or **clock skew** (this node's
//!   clock is off by more than the cluster tolerates): final. [`super::Cluster::expelled`]
//!   resolves and the node stops.
//!
//! A new life claims shards like any joining node: the leases of its former life are held
//! back for `fence_after` (see `leases`), so nothing is served twice across the change.

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::Inner;
use super::following::follow_leases;
use crate::clock::SharedClock;
use crate::clock::duration_ms;
use crate::leases::{LeaseConfig, Leases};
use crate::lock;
use crate::majority::{Reach, cut_off_among};
use crate::membership::{Expulsion, LocalMember, MAX_CLOCK_SKEW, Membership, MembershipConfig};
use crate::store::{MemberStatus, StateStore, StoreError};
use crate::transport::{MaintenanceHandle, Transport};

/// One incarnation of this node: its membership, its leases and the transport's upkeep.
pub(super) struct Life {
    pub(super) membership: Membership,
    pub(super) leases: Leases,
    /// Dialling and probing this life's peers; stops when taken or when the life is dropped.
    maintenance: Mutex<Option<MaintenanceHandle>>,
    /// Turns `true` when the life ended (the node fenced itself).
    ended: watch::Sender<bool>,
}

impl Life {
    /// Resolves (`true`) once the life has ended.
    pub(super) fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// Stop dialling and probing peers (the node is leaving).
    pub(super) fn stop_upkeep(&self) {
        drop(lock(&self.maintenance).take());
    }
}

/// What every life of this node is made of.
pub(super) struct LifeRecipe {
    pub(super) local: LocalMember,
    pub(super) membership: MembershipConfig,
    pub(super) crash_confirm: Duration,
    pub(super) leases: LeaseConfig,
    pub(super) store: Arc<dyn StateStore>,
    pub(super) clock: SharedClock,
    pub(super) transport: Transport,
    /// How long a drain waits for the other nodes to take this node's shards.
    pub(super) handover_deadline: Duration,
}

impl LifeRecipe {
    /// Whether this node reaches a majority of the live members now (see `majority`): the
    /// rows in the store that are not `Down` and whose heartbeat is recent on the writer's
    /// clock (a liveness hint only: safety never depends on when a node rejoins), each
    /// probed directly. `Ok(None)` when it does.
    async fn reach_now(&self) -> Result<Option<Reach>, StoreError> {
        let rows = self.store.list_members().await?;
        let now_ms = self.clock.now_ms();
        let stale_ms = duration_ms(self.membership.dead_after + MAX_CLOCK_SKEW);
        let peers: Vec<_> = rows
            .iter()
            .filter(|row| {
                row.node_id != self.local.node_id
                    && row.status != MemberStatus::Down
                    && now_ms.saturating_sub(row.heartbeat_ms) < stale_ms
            })
            .collect();
        let probes = peers.iter().map(|row| async move {
            if !self.transport.is_connected(&row.node_id).await {
                let _ = self.transport.connect(&row.cluster_addr).await;
            }
            self.transport.probe(&row.node_id).await.is_ok()
        });
        let reached = futures::future::join_all(probes).await;
        let votes: Vec<(&str, bool)> = peers
            .iter()
            .zip(reached)
            .map(|(row, reached)| (row.node_id.as_str(), reached))
            .collect();
        Ok(cut_off_among(&self.local.node_id, &votes))
    }

    /// Join as a new incarnation and start its leases and upkeep.
    pub(super) async fn begin(&self) -> Result<Life, StoreError> {
        let membership = Membership::join_with_crash_confirm(
            self.local.clone(),
            self.membership.clone(),
            self.crash_confirm,
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
        )
        .await?;
        let leases = Leases::start(
            membership.clone(),
            Arc::clone(&self.store),
            self.leases.clone(),
        );
        let maintenance = self.transport.maintain(Arc::new(membership.clone()));
        Ok(Life {
            membership,
            leases,
            maintenance: Mutex::new(Some(maintenance)),
            ended: watch::channel(false).0,
        })
    }
}

/// The current life, shared by the cluster facade and the envelope handler.
pub(super) struct Lives {
    current: RwLock<Arc<Life>>,
}

impl Lives {
    pub(super) fn new(first: Arc<Life>) -> Self {
        Self {
            current: RwLock::new(first),
        }
    }

    pub(super) fn current(&self) -> Arc<Life> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&current)
    }

    fn replace(&self, next: Arc<Life>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    }
}

/// Watch the current life; when it ends silently, begin the next one. Returns when the
/// cluster is gone or stopping, or after a final expulsion (reported through `Inner`).
pub(super) async fn supervise(inner: Weak<Inner>) {
    loop {
        let Some((life, expulsion)) = wait_for_expulsion(&inner).await else {
            return;
        };
        life.ended.send_replace(true);
        if !matches!(
            expulsion,
            Expulsion::Silent { .. } | Expulsion::Isolated { .. }
        ) {
            if let Some(inner) = inner.upgrade() {
                inner.expelled_for_good(format!("{expulsion:?}"));
            }
            return;
        }
        metrics::counter!("emporium_cluster_fenced_total").increment(1);
        tracing::warn!(
            ?expulsion,
            incarnation = life.membership.incarnation(),
            "cluster: fenced; refusing every call until a new life has joined"
        );
        let Some(next) = begin_next_life(&inner, &life, &expulsion).await else {
            return;
        };
        drop(life);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let next = Arc::new(next);
        inner.lives.replace(Arc::clone(&next));
        tokio::spawn(follow_leases(
            inner.runtime.clone(),
            inner.recipe.transport.clone(),
            Arc::clone(&next),
        ));
        metrics::counter!("emporium_cluster_rejoins_total").increment(1);
        tracing::info!(
            incarnation = next.membership.incarnation(),
            "cluster: rejoined as a new incarnation"
        );
    }
}

/// The current life and why it ended, once it has; `None` when the cluster is gone or
/// stopping.
async fn wait_for_expulsion(inner: &Weak<Inner>) -> Option<(Arc<Life>, Expulsion)> {
    loop {
        let (life, mut views) = {
            let inner = running(inner)?;
            let life = inner.lives.current();
            if let Some(expulsion) = life.membership.expelled() {
                return Some((life, expulsion));
            }
            let views = life.membership.subscribe();
            (life, views)
        };
        // Silence is judged live, so look at least once per heartbeat interval.
        let interval = life.membership.config().heartbeat_interval;
        drop(life);
        tokio::select! {
            changed = views.changed() => if changed.is_err() {
                tokio::time::sleep(interval).await;
            },
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The cluster, while it exists and is not stopping.
fn running(inner: &Weak<Inner>) -> Option<Arc<Inner>> {
    inner.upgrade().filter(|inner| !inner.is_stopping())
}

/// Wait for `ended`'s last write (and, after an isolation, until its probes reach a
/// majority again), then join again, retrying every heartbeat interval while the store is
/// away. `None` when the cluster is gone or stopping meanwhile.
async fn begin_next_life(inner: &Weak<Inner>, ended: &Life, expulsion: &Expulsion) -> Option<Life> {
    let interval = ended.membership.config().heartbeat_interval;
    while !ended.membership.has_finished() {
        tokio::time::sleep(interval).await;
        running(inner)?;
    }
    if matches!(expulsion, Expulsion::Isolated { .. }) {
        loop {
            let reach = {
                let inner = running(inner)?;
                inner.recipe.reach_now().await
            };
            match reach {
                Ok(None) => break,
                Ok(Some(reach)) => {
                    tracing::debug!(?reach, "cluster: still cut off from a majority")
                }
                Err(error) => {
                    tracing::debug!(%error, "cluster: cannot list members to judge reach")
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
    loop {
        let begun = {
            let inner = running(inner)?;
            inner.recipe.begin().await
        };
        match begun {
            Ok(life) => return Some(life),
            Err(error) => {
                tracing::warn!(%error, "cluster: cannot rejoin yet; trying again");
                tokio::time::sleep(interval).await;
            }
        }
    }
}
