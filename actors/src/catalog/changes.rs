//! Cross-node catalog consistency: the change log and the follower of each node's index.
//!
//! Every node keeps its own search index (see [`super::SearchIndex`]). A product write
//! through one node reaches the other nodes' indexes through a **change log**: one virtual
//! actor ([`CatalogLogActor`], kind `catalog-log`, key [`LOG_KEY`]) holding the SKUs of the
//! last [`DEFAULT_WINDOW`] product writes, numbered by a sequence that only grows.
//! [`super::Catalog::upsert`] appends the SKU once the product actor committed.
//!
//! Each node runs a [`CatalogFollower`]: every interval (1 s on a node) it asks the log for
//! the changes since its cursor, reads those products from their actors, writes them to its
//! own index in one batch, and moves its cursor on. A follower whose cursor fell out of the
//! window (or that never learned one) rebuilds its index from the store instead. So a write
//! through any node shows in every node's listings within about one interval.
//!
//! The log holds SKUs, not products: a follower always indexes the product as the store has
//! it *now*, so changes applied out of order or twice still end at the latest version. A
//! failed append does not fail the write (the product committed, and the writing node's
//! index has it): the writing node remembers the SKU and its follower appends it again
//! before each read of the log until that succeeds. Only if the writing node stops before
//! then do the other nodes miss the change until their next rebuild (a restart, or a cursor
//! that fell out of the window) or the SKU's next change.
//!
//! No cycles in asks: the catalog facade and the follower ask the log actor and product
//! actors; the log actor asks nobody.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{Catalog, CatalogError};
use crate::values::Sku;

/// The key of the one change-log instance.
pub const LOG_KEY: &str = "all";

/// How many changes the log keeps by default. A reader more than this many changes behind
/// rebuilds its index from the store.
pub const DEFAULT_WINDOW: usize = 10_000;

/// Most changes one `ChangesSince` reply carries; a reader further behind asks again.
pub const MAX_CHANGES_PER_REPLY: usize = 1_000;

/// How often a node's follower reads the log by default.
pub const DEFAULT_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait for the log (at most the runtime's ask deadline): while the log's shard
/// fails over, product writes wait this long for their append at most (then the append is
/// retried by the follower), and a follower step this long per read.
const LOG_ASK_DEADLINE: Duration = Duration::from_secs(2);

/// The log's state: the SKUs of changes `first`, `first + 1`, … in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLog {
    /// The sequence number of the oldest kept change (of `skus[0]`).
    pub first: u64,
    pub skus: VecDeque<Sku>,
}

impl ChangeLog {
    /// The sequence number the next change gets: a reader at `head` has seen everything.
    pub fn head(&self) -> u64 {
        self.first + self.skus.len() as u64
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeLogCommand {
    /// Record a change of this product (it committed already).
    Append(Sku),
    /// The changes numbered `cursor` and later, at most [`MAX_CHANGES_PER_REPLY`].
    ChangesSince(u64),
    /// The current head, without changes: where a reader starts before rebuilding.
    Head,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeLogReply {
    /// The change got this sequence number.
    Appended {
        seq: u64,
    },
    /// The SKUs of the changes `cursor .. next`, in order (a SKU may repeat). Ask again from
    /// `next`; `more` says whether further changes are already there.
    Changes {
        skus: Vec<Sku>,
        next: u64,
        more: bool,
    },
    /// Changes after the cursor are no longer kept (or the cursor is beyond the head: the
    /// log was reset): rebuild from the store, then read from `head`.
    TooOld {
        head: u64,
    },
    Head(u64),
}

/// The change-log actor kind: keeps the last `window` changes.
pub struct CatalogLogActor {
    window: usize,
}

impl CatalogLogActor {
    /// A log keeping the last `window` changes (at least one).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
        }
    }
}

impl Default for CatalogLogActor {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl VirtualActor for CatalogLogActor {
    const KIND: &'static str = "catalog-log";
    type State = ChangeLog;
    type Command = ChangeLogCommand;
    type Reply = ChangeLogReply;

    fn is_read(command: &ChangeLogCommand) -> bool {
        matches!(
            command,
            ChangeLogCommand::ChangesSince(_) | ChangeLogCommand::Head
        )
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: ChangeLogCommand,
    ) -> Result<ChangeLogReply, RuntimeError> {
        Ok(match command {
            ChangeLogCommand::Append(sku) => {
                let log = turn.state_mut();
                let seq = log.head();
                log.skus.push_back(sku);
                while log.skus.len() > self.window {
                    log.skus.pop_front();
                    log.first += 1;
                }
                ChangeLogReply::Appended { seq }
            }
            ChangeLogCommand::ChangesSince(cursor) => changes_since(turn.state(), cursor),
            ChangeLogCommand::Head => ChangeLogReply::Head(turn.state().head()),
        })
    }
}

fn changes_since(log: &ChangeLog, cursor: u64) -> ChangeLogReply {
    let head = log.head();
    if cursor < log.first || cursor > head {
        return ChangeLogReply::TooOld { head };
    }
    // Below `skus.len()`, which is a usize.
    let skip = (cursor - log.first) as usize;
    let skus: Vec<Sku> = log
        .skus
        .iter()
        .skip(skip)
        .take(MAX_CHANGES_PER_REPLY)
        .cloned()
        .collect();
    let next = cursor + skus.len() as u64;
    ChangeLogReply::Changes {
        skus,
        next,
        more: next < head,
    }
}

/// What one [`CatalogFollower::step`] did to the node's index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// Products (re)indexed from the log's changes.
    pub applied: usize,
    /// The index was rebuilt from the store (cursor unknown or out of the window).
    pub rebuilt: bool,
}

impl Followed {
    /// Did the index change (so cached listings are stale)?
    pub fn changed(&self) -> bool {
        self.applied > 0 || self.rebuilt
    }
}

/// Keeps one node's index in step with the change log.
pub struct CatalogFollower {
    catalog: Catalog,
    /// The sequence number of the next change to read; `None` until known (the next step
    /// rebuilds the index).
    cursor: Option<u64>,
}

impl CatalogFollower {
    /// A follower positioned at the log's current head. Create it **before** the index is
    /// built from the store, so that every change stored after that read is replayed. If the
    /// log cannot be read, the first step rebuilds the index instead.
    pub async fn at_head(catalog: Catalog) -> Self {
        let cursor = match catalog.log_head().await {
            Ok(head) => Some(head),
            Err(error) => {
                tracing::warn!(%error, "catalog change log unavailable: the follower will rebuild the index");
                None
            }
        };
        Self { catalog, cursor }
    }

    /// The next change this follower reads, `None` when it will rebuild first.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Read the log from the cursor to its head and index the changed products (or rebuild
    /// the index when the cursor is unknown or too old). On an error the cursor stays where
    /// the index is known to be, and the next step tries again.
    pub async fn step(&mut self) -> Result<Followed, CatalogError> {
        self.catalog.record_unlogged().await;
        let Some(mut cursor) = self.cursor else {
            return self.rebuild().await;
        };
        let mut followed = Followed::default();
        loop {
            let reply = match self
                .catalog
                .ask_log(ChangeLogCommand::ChangesSince(cursor))
                .await
            {
                Ok(reply) => reply,
                Err(error) => return progress_or(followed, error.into()),
            };
            match reply {
                ChangeLogReply::Changes { skus, next, more } => {
                    followed.applied += match self.catalog.reindex(skus).await {
                        Ok(applied) => applied,
                        Err(error) => return progress_or(followed, error),
                    };
                    cursor = next;
                    self.cursor = Some(cursor);
                    if !more {
                        return Ok(followed);
                    }
                }
                ChangeLogReply::TooOld { head } => {
                    tracing::info!(
                        cursor,
                        head,
                        "catalog changes no longer in the log: rebuilding the index"
                    );
                    self.cursor = None;
                    return match self.rebuild().await {
                        Ok(rebuilt) => Ok(Followed {
                            applied: followed.applied,
                            rebuilt: rebuilt.rebuilt,
                        }),
                        Err(error) => progress_or(followed, error),
                    };
                }
                ChangeLogReply::Appended { .. } | ChangeLogReply::Head(_) => {
                    return progress_or(followed, CatalogError::Runtime(unexpected_reply()));
                }
            }
        }
    }

    /// Read the head, rebuild the index, then follow from that head.
    async fn rebuild(&mut self) -> Result<Followed, CatalogError> {
        let head = self.catalog.log_head().await?;
        let indexed = self.catalog.rebuild_index().await?;
        tracing::info!(
            products = indexed,
            head,
            "catalog index rebuilt by the follower"
        );
        self.cursor = Some(head);
        Ok(Followed {
            applied: 0,
            rebuilt: true,
        })
    }

    /// Step every `interval` (the first step at once) until the runtime shuts down or the
    /// returned handle is stopped or dropped. `on_change` runs after each step that changed
    /// the index (to drop cached listings). Failed steps are logged and retried.
    pub fn spawn<F, Fut>(mut self, interval: Duration, on_change: F) -> Following
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticks.tick().await;
                match self.step().await {
                    Ok(followed) => {
                        if failing {
                            tracing::info!("catalog follower reading the change log again");
                            failing = false;
                        }
                        if followed.changed() {
                            tracing::debug!(
                                applied = followed.applied,
                                rebuilt = followed.rebuilt,
                                "catalog changes indexed"
                            );
                            on_change().await;
                        }
                    }
                    Err(CatalogError::Runtime(RuntimeError::ShuttingDown)) => return,
                    Err(error) if !failing => {
                        tracing::warn!(%error, "catalog follower step failed; retrying");
                        failing = true;
                    }
                    Err(error) => tracing::debug!(%error, "catalog follower step failed again"),
                }
            }
        });
        Following { task: Some(task) }
    }
}

/// `followed` when the step indexed something before `error` (so the caller still drops
/// cached listings; the next step goes on from the cursor), `error` otherwise.
fn progress_or(followed: Followed, error: CatalogError) -> Result<Followed, CatalogError> {
    if followed.changed() {
        tracing::warn!(%error, applied = followed.applied, "catalog follower step cut short");
        Ok(followed)
    } else {
        Err(error)
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unexpected_reply() -> RuntimeError {
    RuntimeError::Unreachable {
        actor: emporium_runtime::ActorId::new(CatalogLogActor::KIND, LOG_KEY),
        reason: "the change log answered with an unexpected reply".to_owned(),
    }
}

/// A running follower: stopped by [`Following::stop`] or when dropped.
pub struct Following {
    task: Option<JoinHandle<()>>,
}

impl Following {
    /// Stop following and wait for the task to end. A step in progress is cut short; that
    /// is safe, index writes being idempotent.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Catalog {
    /// Record a committed change of `sku` in the change log. A failure is logged and the
    /// SKU kept for the follower to append again, not returned: the write itself succeeded
    /// (see the module documentation).
    pub(super) async fn record_change(&self, sku: &Sku) {
        if let Err(error) = self.append(sku).await {
            tracing::warn!(
                %sku,
                %error,
                "product written but not yet recorded in the catalog change log; retried by the follower"
            );
            lock(&self.unlogged).insert(sku.clone());
        }
    }

    /// Append the changes whose first append failed; those failing again stay for later.
    async fn record_unlogged(&self) {
        let unlogged = std::mem::take(&mut *lock(&self.unlogged));
        let mut failed = Vec::new();
        for sku in unlogged {
            if !failed.is_empty() {
                failed.push(sku);
            } else if let Err(error) = self.append(&sku).await {
                tracing::debug!(%sku, %error, "catalog change still not recorded");
                failed.push(sku);
            } else {
                tracing::info!(%sku, "catalog change recorded after a failed append");
            }
        }
        lock(&self.unlogged).extend(failed);
    }

    /// Ask the log, within [`LOG_ASK_DEADLINE`].
    async fn ask_log(&self, command: ChangeLogCommand) -> Result<ChangeLogReply, RuntimeError> {
        let deadline = LOG_ASK_DEADLINE.min(self.runtime.config().ask_timeout);
        self.runtime
            .actor::<CatalogLogActor>(LOG_KEY)
            .ask_within(command, deadline)
            .await
    }

    /// Append a change. A timed-out append may still happen later: then the SKU is in the
    /// log twice, which costs a follower one more read of that product.
    async fn append(&self, sku: &Sku) -> Result<u64, CatalogError> {
        match self.ask_log(ChangeLogCommand::Append(sku.clone())).await? {
            ChangeLogReply::Appended { seq } => Ok(seq),
            _ => Err(CatalogError::Runtime(unexpected_reply())),
        }
    }

    /// Index the products of `skus` as stored now, in one batch. The upsert stripes of those
    /// SKUs are held meanwhile (taken in stripe order, so two of these cannot deadlock), so a
    /// product read here cannot reach the index after a newer version written through this
    /// node. Returns how many products were indexed.
    async fn reindex(&self, skus: Vec<Sku>) -> Result<usize, CatalogError> {
        let skus: BTreeSet<Sku> = skus.into_iter().collect();
        if skus.is_empty() {
            return Ok(0);
        }
        let stripes: BTreeSet<usize> = skus.iter().map(|sku| self.stripe_of(sku)).collect();
        let mut held = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            held.push(self.upserts[stripe].lock().await);
        }
        let mut products = Vec::with_capacity(skus.len());
        for sku in &skus {
            if let Some(product) = self.get(sku).await? {
                products.push(product);
            }
        }
        self.index.upsert_many(&products).await?;
        drop(held);
        Ok(products.len())
    }

    /// The change log's head.
    pub(super) async fn log_head(&self) -> Result<u64, CatalogError> {
        match self.ask_log(ChangeLogCommand::Head).await? {
            ChangeLogReply::Head(head) => Ok(head),
            _ => Err(CatalogError::Runtime(unexpected_reply())),
        }
    }
}

#[cfg(test)]
mod tests;
