//! Activation lifecycle bookkeeping: typed deactivation reasons, the counters behind
//! `/metrics`, and the cheap observable snapshot used by tests and the admin API.
//!
//! Metric names (Prometheus):
//! - `emporium_actors_active{kind}` (gauge)
//! - `emporium_actor_activations_total{kind}`
//! - `emporium_actor_passivations_total{kind,reason}`
//! - `emporium_actor_panics_total{kind}`
//! - `emporium_commands_expired_total{kind}`: commands dropped unapplied because their
//!   caller gave up (deadline passed, or went away) before they started
//! - `emporium_forwarded_requests_total{kind}`: asks sent to the owner on another node
//! - `emporium_shard_ownership_changes_total{change}`: shards gained or lost by this node
//! - `emporium_failover_seconds`: from a dead owner's last heartbeat to this node serving
//!   its shard (histogram)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why an activation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeactivationReason {
    /// No message for the idle timeout.
    Idle,
    /// Too many active actors: the least recently used went first.
    Capacity,
    /// Its state could not be trusted any more (failed commit, failed handler, panic,
    /// fenced by a newer writer): the next message reloads.
    Discarded,
    /// The node is shutting down.
    Shutdown,
    /// Its shard is no longer served by this node (it moved to another node).
    ShardMoved,
    /// An operator asked for it (admin API).
    Requested,
}

impl DeactivationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Capacity => "capacity",
            Self::Discarded => "discarded",
            Self::Shutdown => "shutdown",
            Self::ShardMoved => "shard_moved",
            Self::Requested => "requested",
        }
    }
}

/// Per-kind counts, as seen at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindSnapshot {
    pub active: i64,
    pub activations: u64,
    pub deactivations: u64,
    pub panics: u64,
    pub expired: u64,
}

#[derive(Default)]
struct KindCounters {
    active: AtomicI64,
    activations: AtomicU64,
    deactivations: AtomicU64,
    panics: AtomicU64,
    expired: AtomicU64,
}

/// Counts activations, deactivations and panics per kind, and mirrors them to `metrics`.
#[derive(Default)]
pub(crate) struct Lifecycle {
    kinds: Mutex<BTreeMap<&'static str, Arc<KindCounters>>>,
    /// Active actors of every kind: read on every ask (the cap check), so it is one atomic
    /// rather than a sum under the kinds lock.
    total_active: AtomicI64,
}

impl Lifecycle {
    fn counters(&self, kind: &'static str) -> Arc<KindCounters> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(kinds.entry(kind).or_default())
    }

    pub(crate) fn register(&self, kind: &'static str) {
        self.counters(kind);
        metrics::gauge!("emporium_actors_active", "kind" => kind).set(0.0);
    }

    pub(crate) fn activated(&self, kind: &'static str) {
        let counters = self.counters(kind);
        counters.active.fetch_add(1, Ordering::Relaxed);
        counters.activations.fetch_add(1, Ordering::Relaxed);
        self.total_active.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("emporium_actors_active", "kind" => kind).increment(1.0);
        metrics::counter!("emporium_actor_activations_total", "kind" => kind).increment(1);
    }

    /// The activation left the directory for `reason` (it stops right after).
    pub(crate) fn deactivated(&self, kind: &'static str, reason: DeactivationReason) {
        self.counters(kind)
            .deactivations
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_actor_passivations_total", "kind" => kind, "reason" => reason.as_str())
            .increment(1);
        tracing::debug!(kind, reason = reason.as_str(), "actor deactivated");
    }

    /// The activation's task ended.
    pub(crate) fn stopped(&self, kind: &'static str) {
        self.counters(kind).active.fetch_sub(1, Ordering::Relaxed);
        self.total_active.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("emporium_actors_active", "kind" => kind).decrement(1.0);
    }

    pub(crate) fn panicked(&self, kind: &'static str) {
        self.counters(kind).panics.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_actor_panics_total", "kind" => kind).increment(1);
    }

    pub(crate) fn expired(&self, kind: &'static str) {
        self.counters(kind).expired.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_commands_expired_total", "kind" => kind).increment(1);
    }

    pub(crate) fn forwarded(&self, kind: &'static str) {
        metrics::counter!("emporium_forwarded_requests_total", "kind" => kind).increment(1);
    }

    pub(crate) fn shards_changed(&self, gained: usize, lost: usize) {
        metrics::counter!("emporium_shard_ownership_changes_total", "change" => "gained")
            .increment(gained as u64);
        metrics::counter!("emporium_shard_ownership_changes_total", "change" => "lost")
            .increment(lost as u64);
    }

    pub(crate) fn failover(&self, seconds: f64) {
        metrics::histogram!("emporium_failover_seconds").record(seconds);
    }

    pub(crate) fn total_active(&self) -> i64 {
        self.total_active.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, KindSnapshot> {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds
            .iter()
            .map(|(kind, counters)| {
                (
                    *kind,
                    KindSnapshot {
                        active: counters.active.load(Ordering::Relaxed),
                        activations: counters.activations.load(Ordering::Relaxed),
                        deactivations: counters.deactivations.load(Ordering::Relaxed),
                        panics: counters.panics.load(Ordering::Relaxed),
                        expired: counters.expired.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }
}
