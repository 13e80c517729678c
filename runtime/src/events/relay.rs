//! The outbox relay: publishes the events committed by the actors of the shards this node
//! owns, in each actor's commit order, and removes them from the outbox once the bus has
//! stored them.
//!
//! # How it works
//! - A commit with events marks its shard *dirty* ([`Relay::committed`]); so does gaining a
//!   shard ([`Relay::shards_gained`], the previous owner may have left events behind), the
//!   start of a single node (every shard), and a slow sweep of every owned shard (a safety
//!   net for commits another node made just before handing a shard over).
//! - For a dirty shard it owns, the relay reads up to `batch` pending entries
//!   ([`StateStore::outbox_pending_in`]), groups them by actor in commit order and publishes
//!   in *waves*: the first entry of every actor, then the second of every actor whose first
//!   was stored, and so on. Entries of many actors are pipelined in one publish call, yet an
//!   actor's event is never published before its predecessor was stored: **per-actor order
//!   holds in the stream**, also across failover (the new owner starts from the oldest
//!   entry still in the outbox; re-publishing one the old owner already published is
//!   deduplicated by the bus on the event id).
//! - Stored entries are acknowledged in the outbox once per read (up to `batch`), and up to
//!   16 shards are drained at once. An entry whose publish
//!   failed stops its actor for this round; the shard stays dirty and is retried after a
//!   back-off. Nothing is ever dropped.
//!
//! # Bounded
//! The relay counts the entries it knows to be pending on this node. Past
//! [`RelaySettings::outbox_limit`], commits that raise events are refused before they write
//! (a transient `503`, nothing applied) and an error is logged once per episode: the outbox
//! cannot grow without bound while the bus is down, and the storefront keeps serving reads
//! and event-free writes.
//!
//! Metrics: `emporium_outbox_pending` (gauge), `emporium_relay_lag_seconds` (gauge: age of
//! the oldest event in the last read, 0 when drained), `emporium_events_published_total`,
//! `emporium_relay_publish_failures_total`, `emporium_outbox_full_total` (refused commits).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

use super::{EnvelopeTime, EventBus, EventEnvelope};
use crate::identity::ActorId;
use crate::lock;
use crate::placement::{SHARD_COUNT, Shard, shard_of_id};
use crate::runtime::{Runtime, WeakRuntime};
use crate::store::{PendingEvent, StoreError};

/// Settings of the outbox relay.
#[derive(Clone, Copy, Debug)]
pub struct RelaySettings {
    /// Entries read from one shard's outbox per round.
    pub batch: usize,
    /// Most entries pending on this node before commits that raise events are refused.
    pub outbox_limit: usize,
    /// Every owned shard is looked at this often even without a commit.
    pub sweep_every: Duration,
    /// First pause after a failed round; doubles up to [`MAX_BACKOFF`].
    pub retry_after: Duration,
}

impl Default for RelaySettings {
    /// 256 per read, 100 000 pending, a sweep every 30 s, retries from 200 ms.
    fn default() -> Self {
        Self {
            batch: 256,
            outbox_limit: 100_000,
            sweep_every: Duration::from_secs(30),
            retry_after: Duration::from_millis(200),
        }
    }
}

/// Shards drained concurrently by one relay.
const SHARDS_AT_ONCE: usize = 16;

/// Longest pause between retries while the bus is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The relay of one node.
pub(crate) struct Relay {
    settings: RelaySettings,
    bus: Arc<dyn EventBus>,
    state: std::sync::Mutex<Known>,
    wake: Notify,
    /// Set while the limit is reached, so the error is logged once per episode.
    full: AtomicBool,
}

/// What the relay knows is pending: ids by shard (a set, so that an entry seen both at its
/// commit and in a read counts once) and the shards to look at.
#[derive(Default)]
struct Known {
    pending: HashMap<Shard, HashSet<String>>,
    total: usize,
    dirty: BTreeSet<Shard>,
}

impl Known {
    fn add(&mut self, shard: Shard, id: &str) {
        if self.pending.entry(shard).or_default().insert(id.to_owned()) {
            self.total += 1;
        }
    }

    fn remove(&mut self, shard: Shard, id: &str) {
        if let Some(ids) = self.pending.get_mut(&shard)
            && ids.remove(id)
        {
            self.total -= 1;
            if ids.is_empty() {
                self.pending.remove(&shard);
            }
        }
    }
}

/// Why a commit was refused: the outbox is at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboxFull {
    pub pending: usize,
    pub limit: usize,
}

impl Relay {
    pub(crate) fn new(bus: Arc<dyn EventBus>, settings: RelaySettings) -> Self {
        Self {
            settings,
            bus,
            state: std::sync::Mutex::new(Known::default()),
            wake: Notify::new(),
            full: AtomicBool::new(false),
        }
    }

    pub(crate) fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// Entries known to be pending on this node.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.state).total
    }

    /// Before a commit that raises events: refuse it while the outbox is full.
    pub(crate) fn admit(&self) -> Result<(), OutboxFull> {
        let pending = self.pending();
        let limit = self.settings.outbox_limit;
        if pending < limit {
            return Ok(());
        }
        metrics::counter!("emporium_outbox_full_total").increment(1);
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                pending,
                limit,
                "events: the outbox is full (is the event bus down?); commits that raise events are refused until the relay catches up"
            );
        }
        Err(OutboxFull { pending, limit })
    }

    /// A commit of `actor` is about to write outbox entries `ids`. Counted before the
    /// write, so that the relay (which may read, publish and acknowledge them the moment
    /// the write lands) never removes them before they were added.
    pub(crate) fn committing(&self, actor: &ActorId, ids: &[String]) {
        let shard = shard_of_id(actor);
        let mut known = lock(&self.state);
        for id in ids {
            known.add(shard, id);
        }
        metrics::gauge!("emporium_outbox_pending").set(known.total as f64);
    }

    /// The commit announced with [`Relay::committing`] ended: written (publish soon), or
    /// not (forget the ids; if an unknown outcome did write them, a read finds them).
    pub(crate) fn settled(&self, actor: &ActorId, ids: &[String], written: bool) {
        let shard = shard_of_id(actor);
        if written {
            lock(&self.state).dirty.insert(shard);
            self.wake.notify_one();
            return;
        }
        let mut known = lock(&self.state);
        for id in ids {
            known.remove(shard, id);
        }
        metrics::gauge!("emporium_outbox_pending").set(known.total as f64);
    }

    /// Look at `shards` soon (gained, or swept).
    pub(crate) fn mark(&self, shards: impl IntoIterator<Item = Shard>) {
        lock(&self.state).dirty.extend(shards);
        self.wake.notify_one();
    }

    /// This node no longer owns `shards`: their entries are the new owner's to publish.
    pub(crate) fn forget(&self, shards: &BTreeSet<Shard>) {
        let mut known = lock(&self.state);
        for shard in shards {
            if let Some(ids) = known.pending.remove(shard) {
                known.total -= ids.len();
            }
            known.dirty.remove(shard);
        }
        metrics::gauge!("emporium_outbox_pending").set(known.total as f64);
    }

    fn take_dirty(&self) -> BTreeSet<Shard> {
        std::mem::take(&mut lock(&self.state).dirty)
    }

    fn note_read(&self, shard: Shard, entries: &[PendingEvent]) {
        let mut known = lock(&self.state);
        for entry in entries {
            known.add(shard, &entry.entry.event_id);
        }
        metrics::gauge!("emporium_outbox_pending").set(known.total as f64);
    }

    fn note_acked(&self, shard: Shard, entries: &[PendingEvent]) {
        let mut known = lock(&self.state);
        for entry in entries {
            known.remove(shard, &entry.entry.event_id);
        }
        metrics::gauge!("emporium_outbox_pending").set(known.total as f64);
        if known.total < self.settings.outbox_limit && self.full.swap(false, Ordering::Relaxed) {
            tracing::info!(
                pending = known.total,
                "events: the outbox is below its limit again"
            );
        }
    }
}

/// The relay's loop, until the runtime stops or is dropped.
pub(crate) async fn run(runtime: WeakRuntime, relay: Arc<Relay>) {
    let Some(mut stopping) = runtime.upgrade().map(|runtime| runtime.stopping()) else {
        return;
    };
    let mut backoff = relay.settings.retry_after;
    let mut sweep = tokio::time::interval(relay.settings.sweep_every);
    loop {
        let Some(node) = runtime.upgrade() else {
            return;
        };
        // Shards are independent: drain several at once, so one busy actor's chain (one
        // event per round trip) does not hold the others back.
        let owned: Vec<Shard> = relay
            .take_dirty()
            .into_iter()
            .filter(|shard| node.serves_shard(*shard))
            .collect();
        let failed: BTreeSet<Shard> = futures::stream::iter(owned)
            .map(|shard| {
                let (node, relay) = (&node, &relay);
                async move {
                    let result = drain_shard(node, relay, shard).await;
                    if let Err(error) = &result {
                        tracing::debug!(shard, %error, "events: relay round failed; retrying");
                    }
                    result.err().map(|_| shard)
                }
            })
            .buffer_unordered(SHARDS_AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await;
        drop(node);
        let pause = if failed.is_empty() {
            backoff = relay.settings.retry_after;
            None
        } else {
            relay.mark(failed.iter().copied());
            let pause = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            Some(pause)
        };
        tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => return,
            _ = relay.wake.notified(), if pause.is_none() => {}
            _ = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
            _ = sweep.tick() => relay.mark(0..SHARD_COUNT),
        }
    }
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("outbox: {0}")]
    Store(#[from] StoreError),
    #[error("{failed} event(s) not published: {first}")]
    Publish { failed: usize, first: String },
}

/// Publish everything pending in `shard`'s outbox, batch after batch, until it is empty.
async fn drain_shard(runtime: &Runtime, relay: &Relay, shard: Shard) -> Result<(), RoundError> {
    loop {
        let entries = runtime
            .store()
            .outbox_pending_in(shard, relay.settings.batch)
            .await?;
        if entries.is_empty() {
            metrics::gauge!("emporium_relay_lag_seconds").set(0.0);
            return Ok(());
        }
        relay.note_read(shard, &entries);
        record_lag(runtime, &entries);
        let full_batch = entries.len() >= relay.settings.batch;
        publish_in_waves(runtime, relay, shard, entries).await?;
        if !full_batch {
            return Ok(());
        }
    }
}

/// The age of the oldest entry read, as the relay's lag.
fn record_lag(runtime: &Runtime, entries: &[PendingEvent]) {
    let oldest = entries
        .iter()
        .filter_map(|entry| serde_json::from_slice::<EnvelopeTime>(&entry.entry.payload).ok())
        .map(|envelope| envelope.time)
        .min();
    if let Some(oldest) = oldest {
        let age_ms = runtime.clock().now_ms().saturating_sub(oldest);
        metrics::gauge!("emporium_relay_lag_seconds").set(age_ms as f64 / 1000.0);
    }
}

/// Publish `entries` (one shard's, commit order within each actor) wave by wave: each wave
/// holds the oldest unpublished entry of every actor still going.
async fn publish_in_waves(
    runtime: &Runtime,
    relay: &Relay,
    shard: Shard,
    entries: Vec<PendingEvent>,
) -> Result<(), RoundError> {
    let mut chains = by_actor(entries);
    let mut failure: Option<RoundError> = None;
    // Acknowledged in the outbox once per read, not per wave: one store write for up to
    // `batch` events. A crash before it re-publishes them; the bus drops the copies.
    let mut published = Vec::new();
    while !chains.is_empty() {
        let wave: Vec<PendingEvent> = chains.iter_mut().filter_map(VecDeque::pop_front).collect();
        let envelopes: Vec<EventEnvelope> = wave
            .iter()
            .map(|pending| EventEnvelope {
                id: pending.entry.event_id.clone(),
                subject: pending.entry.topic.clone(),
                payload: pending.entry.payload.clone(),
            })
            .collect();
        let results = relay.bus.publish(&envelopes).await;
        let mut stored = Vec::with_capacity(wave.len());
        let mut keep = Vec::with_capacity(chains.len());
        let mut failed = 0;
        let mut first_error = None;
        for ((pending, result), chain) in wave.into_iter().zip(results).zip(chains) {
            match result {
                Ok(()) => {
                    stored.push(pending);
                    if !chain.is_empty() {
                        keep.push(chain);
                    }
                }
                // The actor stops here this round: its later entries must wait.
                Err(error) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| error.to_string());
                }
            }
        }
        chains = keep;
        metrics::counter!("emporium_events_published_total").increment(stored.len() as u64);
        runtime.rates().record_events(stored.len() as u64);
        published.extend(stored);
        if let Some(first) = first_error {
            metrics::counter!("emporium_relay_publish_failures_total").increment(failed as u64);
            failure.get_or_insert(RoundError::Publish { failed, first });
        }
    }
    if !published.is_empty() {
        runtime.store().outbox_ack(&published).await?;
        relay.note_acked(shard, &published);
    }
    failure.map_or(Ok(()), Err)
}

/// Entries grouped by actor, each group in the order read (commit order).
fn by_actor(entries: Vec<PendingEvent>) -> Vec<VecDeque<PendingEvent>> {
    let mut index: HashMap<ActorId, usize> = HashMap::new();
    let mut chains: Vec<VecDeque<PendingEvent>> = Vec::new();
    for entry in entries {
        let slot = *index.entry(entry.actor.clone()).or_insert_with(|| {
            chains.push(VecDeque::new());
            chains.len() - 1
        });
        chains[slot].push_back(entry);
    }
    chains
}
