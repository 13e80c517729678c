//! The runtime facade: build it with the store and the actor kinds, then address actors by
//! identity through cheap [`ActorHandle`]s.
//!
//! ```ignore
//! let runtime = Runtime::builder(store).register(CartActor::new(..)).build().await?;
//! let reply = runtime.actor::<CartActor>("c-1").ask(CartCommand::Get).await?;
//! ```
//!
//! **API boundary**: `Runtime`, `ActorHandle`, `VirtualActor`, `Turn`, the store port and
//! `RuntimeError` are what the domain and the edge see; everything else is private.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use tokio::sync::{Notify, oneshot, watch};

use crate::activation::ActivationMsg;
use crate::actor::VirtualActor;
use crate::clock::{SharedClock, SystemClock};
use crate::directory::{IdleEntry, KindHost, PassivateResult};
use crate::error::RuntimeError;
use crate::events::EventBus;
use crate::events::consume::{Consumers, DeadLetterActor};
use crate::events::relay::{self, OutboxFull, Relay, RelaySettings};
use crate::identity::ActorId;
use crate::journal::Journal;
use crate::lifecycle::{DeactivationReason, KindSnapshot, Lifecycle};
use crate::outcome::{self, AbandonOnDrop, Ticket};
use crate::placement::{SHARD_COUNT, Shard, shard_of};
use crate::rates::NodeRates;
use crate::reminders::ReminderScheduler;
use crate::routing::{self, Call, Location, Placement};
use crate::status::{ActorLocation, ClusterStatus, NodeStatus};
use crate::store::{StateStore, StoreError};
use crate::trace::{NoTrace, TraceContext};
use crate::{passivation, reminders};

/// Tunables of one runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// An actor with no message for this long is passivated.
    pub idle_timeout: Duration,
    /// Above this many active actors, the least recently used idle ones are passivated.
    pub max_active_actors: usize,
    /// Default deadline of [`ActorHandle::ask`] for the command to *start*: a command still
    /// queued then is dropped unapplied, and the caller is told so.
    pub ask_timeout: Duration,
    /// How long a caller waits for the verdict of a command that has started. Past it the
    /// outcome is unknown (a turn stuck on a slow store or a slow nested ask).
    pub turn_timeout: Duration,
    /// Time a forwarded call's verdict may take on the wire, on top of the owner's budget.
    pub forward_margin: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::within(Duration::from_secs(10))
    }
}

impl RuntimeConfig {
    /// Deadlines whose verdict always comes before `outer` (an HTTP request timeout) fires:
    /// up to 500 ms (a fifth of `outer` at most) for forwarding, then 45% of the rest to
    /// start and 45% to finish, so [`RuntimeConfig::verdict_within`] `< outer`.
    pub fn within(outer: Duration) -> Self {
        let forward_margin = Duration::from_millis(500).min(outer / 5);
        let rest = outer.saturating_sub(forward_margin);
        Self {
            idle_timeout: Duration::from_secs(300),
            max_active_actors: 100_000,
            ask_timeout: rest * 9 / 20,
            turn_timeout: rest * 9 / 20,
            forward_margin,
        }
    }

    /// The longest a caller of [`ActorHandle::ask`] waits for the runtime's verdict, a
    /// forwarded call included. An outer timeout must be longer, or it would answer first
    /// without knowing what happened.
    pub fn verdict_within(&self) -> Duration {
        self.ask_timeout + self.turn_timeout + self.forward_margin
    }
}

/// Told how many actors a passivation sweep just passivated (see
/// [`RuntimeBuilder::on_passivation`]). Runs on the sweeper's task: it must be quick.
pub type PassivationHook = Arc<dyn Fn(usize) + Send + Sync>;

/// What the runtime needs to know of a kind without knowing its type.
pub(crate) trait ErasedHost: Send + Sync {
    fn idle_entries(&self, idle_before_ms: u64) -> Vec<IdleEntry>;
    fn passivate(&self, candidate: &IdleEntry, reason: DeactivationReason) -> bool;
    fn deliver_reminder(&self, runtime: &Runtime, key: &str, name: String);
    /// Run a call forwarded by another node (see [`routing::serve_call`]).
    fn serve_call<'a>(
        &'a self,
        runtime: &'a Runtime,
        key: &'a str,
        payload: &'a [u8],
        budget: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;
    /// Passivate the idle activations whose shard is in `shards`; returns how many.
    fn passivate_shards(&self, shards: &BTreeSet<Shard>) -> usize;
    fn is_active(&self, key: &str) -> bool;
    fn passivate_key(&self, key: &str) -> PassivateResult;
}

impl<A: VirtualActor> ErasedHost for Arc<KindHost<A>> {
    fn idle_entries(&self, idle_before_ms: u64) -> Vec<IdleEntry> {
        KindHost::idle_entries(self, idle_before_ms)
    }

    fn passivate(&self, candidate: &IdleEntry, reason: DeactivationReason) -> bool {
        KindHost::passivate(self, candidate, reason)
    }

    fn deliver_reminder(&self, runtime: &Runtime, key: &str, name: String) {
        runtime.route_reminder::<A>(key, name);
    }

    fn serve_call<'a>(
        &'a self,
        runtime: &'a Runtime,
        key: &'a str,
        payload: &'a [u8],
        budget: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        routing::serve_call::<A>(runtime, key, payload, budget)
    }

    fn passivate_shards(&self, shards: &BTreeSet<Shard>) -> usize {
        KindHost::idle_entries(self, u64::MAX)
            .into_iter()
            .filter(|entry| shards.contains(&shard_of(A::KIND, &entry.key)))
            .filter(|entry| KindHost::passivate(self, entry, DeactivationReason::ShardMoved))
            .count()
    }

    fn is_active(&self, key: &str) -> bool {
        KindHost::is_active(self, key)
    }

    fn passivate_key(&self, key: &str) -> PassivateResult {
        KindHost::passivate_key(self, key)
    }
}

struct Registered {
    host: Box<dyn ErasedHost>,
    /// The same host, typed, for [`Runtime::actor`].
    typed: Arc<dyn Any + Send + Sync>,
}

pub(crate) struct RuntimeInner {
    node_id: String,
    store: Arc<dyn StateStore>,
    clock: SharedClock,
    config: RuntimeConfig,
    kinds: BTreeMap<&'static str, Registered>,
    by_type: HashMap<TypeId, &'static str>,
    lifecycle: Arc<Lifecycle>,
    reminders: ReminderScheduler,
    capacity: Notify,
    stopping: watch::Sender<bool>,
    /// Set once when the node runs in a cluster; absent on a single node (all local).
    placement: OnceLock<Arc<dyn Placement>>,
    /// The outbox relay, when an event bus is configured ([`RuntimeBuilder::events`]).
    relay: Option<Arc<Relay>>,
    /// The durable consumers running on this node.
    consumers: Consumers,
    /// Request, error and event rates, for operators.
    pub(crate) rates: NodeRates,
    /// What happened to the cluster, as this node saw it.
    journal: Journal,
    /// Writes and reads the trace context of forwarded calls ([`NoTrace`] by default).
    trace: Arc<dyn TraceContext>,
    /// Told of each sweep's passivations (the node gives freed memory back with it).
    on_passivation: Option<PassivationHook>,
}

/// A cheap, cloneable handle on the node's runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

/// Collects the store, the clock, the configuration and the kinds before start.
pub struct RuntimeBuilder {
    node_id: String,
    store: Arc<dyn StateStore>,
    clock: SharedClock,
    config: RuntimeConfig,
    kinds: BTreeMap<&'static str, Registered>,
    by_type: HashMap<TypeId, &'static str>,
    lifecycle: Arc<Lifecycle>,
    relay: Option<Arc<Relay>>,
    trace: Arc<dyn TraceContext>,
    on_passivation: Option<PassivationHook>,
}

impl RuntimeBuilder {
    /// Call `hook` with the number of actors each passivation sweep passivated (when it
    /// passivated any). The runtime frees their memory; what the allocator does with it is
    /// the process's business (the node trims glibc's arenas after a burst).
    pub fn on_passivation(mut self, hook: PassivationHook) -> Self {
        self.on_passivation = Some(hook);
        self
    }

    /// Publish the actors' outbox entries to `bus` with an outbox relay (see
    /// [`crate::events::relay`]). Without it, events stay in the outbox.
    pub fn events(mut self, bus: Arc<dyn EventBus>, settings: RelaySettings) -> Self {
        self.relay = Some(Arc::new(Relay::new(bus, settings)));
        self.register(DeadLetterActor)
    }

    pub fn node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self
    }

    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Carry the trace context of forwarded calls with `trace` (see [`TraceContext`]);
    /// without it, nothing is carried and each node's spans start their own traces.
    pub fn trace_context(mut self, trace: Arc<dyn TraceContext>) -> Self {
        self.trace = trace;
        self
    }

    /// Register a kind. Registering the same kind twice replaces the first.
    pub fn register<A: VirtualActor>(mut self, actor: A) -> Self {
        let host = Arc::new(KindHost::new(actor));
        self.lifecycle.register(A::KIND);
        self.kinds.insert(
            A::KIND,
            Registered {
                host: Box::new(Arc::clone(&host)),
                typed: host,
            },
        );
        self.by_type.insert(TypeId::of::<A>(), A::KIND);
        self
    }

    /// Start the runtime of a single node: its passivation sweeper and its reminder
    /// scheduler, which re-arms every stored reminder (a single node owns every shard).
    pub async fn build(self) -> Result<Runtime, StoreError> {
        let runtime = self.start();
        let stored = reminders::load_all(runtime.store().as_ref()).await?;
        for reminder in stored {
            runtime.arm_reminder(&reminder.actor, reminder.name, reminder.due_at_ms);
        }
        runtime.relay_shards(0..SHARD_COUNT);
        Ok(runtime)
    }

    /// Start the background loops without arming any stored reminder: in a cluster, the
    /// reminders of a shard are armed when this node gains the shard.
    pub(crate) fn start(self) -> Runtime {
        let (stopping, _) = watch::channel(false);
        let (reminders, reminder_queue) = ReminderScheduler::new();
        let rates = NodeRates::new(Arc::clone(&self.clock));
        let journal = Journal::new(self.node_id.clone(), Arc::clone(&self.clock));
        let runtime = Runtime {
            inner: Arc::new(RuntimeInner {
                node_id: self.node_id,
                store: self.store,
                clock: self.clock,
                config: self.config,
                kinds: self.kinds,
                by_type: self.by_type,
                lifecycle: self.lifecycle,
                reminders,
                capacity: Notify::new(),
                stopping,
                placement: OnceLock::new(),
                relay: self.relay,
                consumers: Consumers::default(),
                rates,
                journal,
                trace: self.trace,
                on_passivation: self.on_passivation,
            }),
        };
        if let Some(relay) = &runtime.inner.relay {
            tokio::spawn(relay::run(runtime.downgrade(), Arc::clone(relay)));
        }
        tokio::spawn(reminders::run(runtime.downgrade(), reminder_queue));
        tokio::spawn(passivation::run(runtime.downgrade()));
        runtime
    }
}

/// A weak handle for background tasks, so they never keep a dropped runtime alive.
#[derive(Clone)]
pub(crate) struct WeakRuntime(std::sync::Weak<RuntimeInner>);

impl WeakRuntime {
    pub(crate) fn upgrade(&self) -> Option<Runtime> {
        self.0.upgrade().map(|inner| Runtime { inner })
    }
}

impl Runtime {
    pub fn builder(store: Arc<dyn StateStore>) -> RuntimeBuilder {
        RuntimeBuilder {
            node_id: "node-1".to_owned(),
            store,
            clock: Arc::new(SystemClock::new()),
            config: RuntimeConfig::default(),
            kinds: BTreeMap::new(),
            by_type: HashMap::new(),
            lifecycle: Arc::new(Lifecycle::default()),
            relay: None,
            trace: Arc::new(NoTrace),
            on_passivation: None,
        }
    }

    /// A handle on the actor `key` of kind `A`. Creating it costs a map lookup; it does not
    /// activate anything.
    pub fn actor<A: VirtualActor>(&self, key: impl Into<String>) -> ActorHandle<A> {
        ActorHandle {
            runtime: self.clone(),
            key: key.into(),
            kind: PhantomData,
        }
    }

    /// Keys of kind `A` that have stored state, in byte order, paged by `after`.
    pub async fn list_keys<A: VirtualActor>(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, RuntimeError> {
        self.inner
            .store
            .list_keys(A::KIND, after, limit)
            .await
            .map_err(|source| RuntimeError::store(&ActorId::new(A::KIND, "*"), source))
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The store's adapter name, e.g. `embedded`.
    pub fn store_adapter(&self) -> &'static str {
        self.inner.store.adapter()
    }

    /// Active actors and lifecycle counts per registered kind.
    pub fn snapshot(&self) -> BTreeMap<&'static str, KindSnapshot> {
        self.inner.lifecycle.snapshot()
    }

    /// Whether `key` of kind `A` is active on this node.
    pub fn is_active<A: VirtualActor>(&self, key: &str) -> bool {
        self.host::<A>().is_ok_and(|host| host.is_active(key))
    }

    pub(crate) fn passivate_locally<A: VirtualActor>(&self, key: &str) -> PassivateResult {
        self.host::<A>()
            .map_or(PassivateResult::Inactive, |host| host.passivate_key(key))
    }

    pub(crate) fn inner(&self) -> &RuntimeInner {
        &self.inner
    }

    pub(crate) fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// Passivate every actor and stop background work. Messages still in flight finish
    /// first, within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.stopping.send_replace(true);
        let started = tokio::time::Instant::now();
        loop {
            for registered in self.inner.kinds.values() {
                for candidate in registered.host.idle_entries(u64::MAX) {
                    registered
                        .host
                        .passivate(&candidate, DeactivationReason::Shutdown);
                }
            }
            if self.inner.lifecycle.total_active() <= 0 || started.elapsed() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// What carries the trace context of forwarded calls.
    pub(crate) fn trace_context(&self) -> &dyn TraceContext {
        self.inner.trace.as_ref()
    }

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    pub(crate) fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    pub(crate) fn passivation_hook(&self) -> Option<&PassivationHook> {
        self.inner.on_passivation.as_ref()
    }

    pub(crate) fn capacity_notify(&self) -> &Notify {
        &self.inner.capacity
    }

    pub(crate) fn hosts(&self) -> impl Iterator<Item = &dyn ErasedHost> {
        self.inner
            .kinds
            .values()
            .map(|registered| registered.host.as_ref())
    }

    pub(crate) fn erased_host(&self, kind: &str) -> Option<&dyn ErasedHost> {
        self.inner
            .kinds
            .get(kind)
            .map(|registered| registered.host.as_ref())
    }

    pub(crate) fn arm_reminder(&self, actor: &ActorId, name: String, due_at_ms: u64) {
        self.inner.reminders.arm(actor.clone(), name, due_at_ms);
    }

    /// Fire `name` again shortly: its last attempt could not complete.
    pub(crate) fn retry_reminder(&self, actor: &ActorId, name: String) {
        let retry_at_ms = self.clock().now_ms() + reminders::RETRY_DELAY_MS;
        self.arm_reminder(actor, name, retry_at_ms);
    }

    fn host<A: VirtualActor>(&self) -> Result<Arc<KindHost<A>>, RuntimeError> {
        let unknown = || RuntimeError::UnknownKind {
            kind: A::KIND.to_owned(),
        };
        let kind = self
            .inner
            .by_type
            .get(&TypeId::of::<A>())
            .ok_or_else(unknown)?;
        let registered = self.inner.kinds.get(kind).ok_or_else(unknown)?;
        Arc::clone(&registered.typed)
            .downcast::<KindHost<A>>()
            .map_err(|_| unknown())
    }

    /// After an activation, check the cap on active actors.
    pub(crate) fn note_activation(&self) {
        if self.inner.lifecycle.total_active() > self.inner.config.max_active_actors as i64 {
            self.inner.capacity.notify_one();
        }
    }

    /// Join a cluster: from now on asks are routed by `placement`. Set once.
    pub(crate) fn install_placement(&self, placement: Arc<dyn Placement>) {
        if self.inner.placement.set(placement).is_err() {
            tracing::error!("a placement was installed twice; keeping the first");
        }
    }

    pub(crate) fn placement(&self) -> Option<&Arc<dyn Placement>> {
        self.inner.placement.get()
    }

    /// The lease epoch under which this node may serve `actor` now: `Ok(None)` on a single
    /// node, `Err(Moved)` when its shard is not served here.
    pub(crate) fn serving_epoch(&self, actor: &ActorId) -> Result<Option<u64>, RuntimeError> {
        let Some(placement) = self.placement() else {
            return Ok(None);
        };
        let shard = shard_of(actor.kind, &actor.key);
        match placement.serving_epoch(shard) {
            Some(epoch) => Ok(Some(epoch)),
            None => Err(RuntimeError::Moved {
                actor: actor.clone(),
                reason: format!("shard {shard} is not served by {}", self.node_id()),
            }),
        }
    }

    /// Run `command` on the local activation of `key`, whatever the placement says. It must
    /// start within `deadline`, or it is dropped and the error says it was not applied; once
    /// started, its verdict is awaited for [`RuntimeConfig::turn_timeout`] more.
    pub(crate) async fn ask_local<A: VirtualActor>(
        &self,
        key: &str,
        command: A::Command,
        deadline: Duration,
    ) -> Result<A::Reply, RuntimeError> {
        let host = self.host::<A>()?;
        let ticket = Ticket::new();
        let _abandon_if_dropped = AbandonOnDrop(Arc::clone(&ticket));
        let (reply, mut answer) = oneshot::channel();
        host.dispatch(
            self,
            key,
            ActivationMsg::Command {
                command,
                reply: Some(reply),
                ticket: Some(Arc::clone(&ticket)),
                hops: 0,
                span: tracing::Span::current(),
            },
        );
        self.note_activation();
        let actor = || ActorId::new(A::KIND, key);
        let answered = match tokio::time::timeout(deadline, &mut answer).await {
            Ok(answered) => answered,
            Err(_elapsed) if ticket.abandon() => {
                return Err(RuntimeError::Expired {
                    actor: actor(),
                    deadline,
                });
            }
            // Started before the deadline: its verdict is on its way.
            Err(_elapsed) => {
                let turn_timeout = self.config().turn_timeout;
                match tokio::time::timeout(turn_timeout, answer).await {
                    Ok(answered) => answered,
                    Err(_elapsed) => {
                        return Err(RuntimeError::Timeout {
                            actor: actor(),
                            deadline: deadline + turn_timeout,
                        });
                    }
                }
            }
        };
        answered.unwrap_or_else(|_closed| {
            let stopped = RuntimeError::Unreachable {
                actor: actor(),
                reason: "activation stopped before answering".to_owned(),
            };
            if ticket.abandon() {
                // It never started, and now never will.
                Err(RuntimeError::NotApplied {
                    actor: actor(),
                    source: Box::new(stopped),
                })
            } else {
                Err(stopped)
            }
        })
    }

    pub(crate) fn deliver_reminder_locally<A: VirtualActor>(&self, key: &str, name: String) {
        if let Ok(host) = self.host::<A>() {
            host.dispatch(self, key, ActivationMsg::Reminder { name });
        }
    }

    /// A reminder is due: run it here if this node serves its actor, hand it to the owner
    /// otherwise, and try again later when there is no owner yet.
    pub(crate) fn route_reminder<A: VirtualActor>(&self, key: &str, name: String) {
        let Some(placement) = self.placement() else {
            return self.deliver_reminder_locally::<A>(key, name);
        };
        let actor = ActorId::new(A::KIND, key);
        match placement.locate(shard_of(A::KIND, key)) {
            Location::Local => self.deliver_reminder_locally::<A>(key, name),
            Location::Remote { node } => {
                let runtime = self.clone();
                let placement = Arc::clone(placement);
                tokio::spawn(async move {
                    let forwarded = routing::forward_reminder(
                        &runtime,
                        placement.as_ref(),
                        node,
                        actor.clone(),
                        name.clone(),
                    )
                    .await;
                    if let Err(error) = forwarded {
                        tracing::debug!(%actor, %error, "reminder not handed over; retrying");
                        runtime.retry_reminder(&actor, name);
                    }
                });
            }
            Location::Unplaced { .. } => self.retry_reminder(&actor, name),
            // This node left the cluster: the shard's next owner arms it from the index.
            Location::Refused { .. } => {}
        }
    }

    /// Run a call that another node forwarded here: `Err` names a malformed call.
    pub async fn serve_forwarded(
        &self,
        kind: &str,
        key: &str,
        payload: &[u8],
        budget: Duration,
    ) -> Result<Vec<u8>, ForwardedCallError> {
        let host = self
            .erased_host(kind)
            .ok_or_else(|| ForwardedCallError::UnknownKind(kind.to_owned()))?;
        host.serve_call(self, key, payload, budget)
            .await
            .map_err(ForwardedCallError::Malformed)
    }

    /// This node no longer serves `shards`: passivate their idle local actors and forget
    /// their reminder timers (the new owner arms them). Returns how many were passivated.
    pub(crate) fn release_shards(&self, shards: &BTreeSet<Shard>) -> usize {
        self.inner.reminders.forget(shards.clone());
        if let Some(relay) = &self.inner.relay {
            relay.forget(shards);
        }
        self.hosts().map(|host| host.passivate_shards(shards)).sum()
    }

    /// Arm every stored reminder of `shard` (this node just gained it).
    pub(crate) async fn arm_shard_reminders(&self, shard: Shard) -> Result<usize, StoreError> {
        let stored = self.store().list_reminders(shard).await?;
        let count = stored.len();
        for reminder in stored {
            self.arm_reminder(&reminder.actor, reminder.name, reminder.due_at_ms);
        }
        Ok(count)
    }

    /// Whether this node serves `shard` now (always outside a cluster).
    pub(crate) fn serves_shard(&self, shard: Shard) -> bool {
        self.placement()
            .is_none_or(|placement| placement.serving_epoch(shard).is_some())
    }

    /// Have the relay look at `shards`' outboxes (this node gained them).
    pub(crate) fn relay_shards(&self, shards: impl IntoIterator<Item = Shard>) {
        if let Some(relay) = &self.inner.relay {
            relay.mark(shards);
        }
    }

    /// Before a commit that raises events: refused while the outbox is full.
    pub(crate) fn admit_events(&self) -> Result<(), OutboxFull> {
        self.inner
            .relay
            .as_ref()
            .map_or(Ok(()), |relay| relay.admit())
    }

    /// A commit of `actor` is about to write the outbox entries `ids`.
    pub(crate) fn events_committing(&self, actor: &ActorId, ids: &[String]) {
        if let Some(relay) = &self.inner.relay {
            relay.committing(actor, ids);
        }
    }

    /// That commit ended: `written` or not.
    pub(crate) fn events_settled(&self, actor: &ActorId, ids: &[String], written: bool) {
        if let Some(relay) = &self.inner.relay {
            relay.settled(actor, ids, written);
        }
    }

    /// The event bus the relay publishes to, when one is configured: consumers subscribe
    /// to it.
    pub fn event_bus(&self) -> Option<&Arc<dyn EventBus>> {
        self.inner.relay.as_ref().map(|relay| relay.bus())
    }

    pub(crate) fn consumers(&self) -> &Consumers {
        &self.inner.consumers
    }

    /// Outbox entries known to be pending on this node (0 without a relay).
    pub fn outbox_pending(&self) -> usize {
        self.inner.relay.as_ref().map_or(0, |relay| relay.pending())
    }

    /// Active actors on this node, all kinds.
    pub fn active_actors(&self) -> u64 {
        u64::try_from(self.lifecycle().total_active()).unwrap_or(0)
    }

    /// The nodes and their shards: one node owning everything outside a cluster.
    pub async fn cluster_status(&self) -> ClusterStatus {
        match self.placement() {
            Some(placement) => placement.status().await,
            None => ClusterStatus {
                mode: "single",
                node_id: self.node_id().to_owned(),
                shard_count: crate::placement::SHARD_COUNT,
                unowned_shards: 0,
                nodes: vec![NodeStatus {
                    node_id: self.node_id().to_owned(),
                    cluster_addr: None,
                    http_addr: None,
                    status: "up".to_owned(),
                    liveness: "alive".to_owned(),
                    incarnation: None,
                    shards_owned: usize::from(crate::placement::SHARD_COUNT),
                    active_actors: Some(self.active_actors()),
                    load: Some(self.node_load()),
                    last_heartbeat_ms_ago: None,
                }],
            },
        }
    }

    /// Where the actor `kind`/`key` lives, whether it is active there, and its stored
    /// version. `UnknownKind` for a kind that is not registered.
    pub async fn locate_actor(&self, kind: &str, key: &str) -> Result<ActorLocation, RuntimeError> {
        let host = self
            .erased_host(kind)
            .ok_or_else(|| RuntimeError::UnknownKind {
                kind: kind.to_owned(),
            })?;
        let actor = ActorId::new(crate::identity::intern_kind(kind), key);
        let version = self
            .store()
            .load(&actor)
            .await
            .map_err(|source| RuntimeError::store(&actor, source))?
            .map_or(0, |stored| stored.version);
        let shard = shard_of(kind, key);
        let mut location = ActorLocation {
            kind: kind.to_owned(),
            key: key.to_owned(),
            shard,
            owner: Some(self.node_id().to_owned()),
            lease_epoch: None,
            active: Some(host.is_active(key)),
            version,
        };
        let Some(placement) = self.placement() else {
            return Ok(location);
        };
        let (owner, epoch) = placement.shard_owner(shard);
        location.lease_epoch = epoch;
        location.owner = owner.clone();
        location.active = match placement.locate(shard) {
            Location::Local => Some(host.is_active(key)),
            Location::Remote { node } => {
                routing::query_owner(self, placement.as_ref(), node, actor, &Call::Inspect)
                    .await
                    .ok()
            }
            Location::Unplaced { .. } | Location::Refused { .. } => None,
        };
        Ok(location)
    }
}

/// Why a forwarded call could not even be started.
#[derive(Debug, thiserror::Error)]
pub enum ForwardedCallError {
    #[error("actor kind {0} is not registered on this node")]
    UnknownKind(String),
    #[error("{0}")]
    Malformed(String),
}

/// A cheap handle on one virtual actor. Holding it keeps nothing active.
pub struct ActorHandle<A: VirtualActor> {
    runtime: Runtime,
    key: String,
    kind: PhantomData<fn() -> A>,
}

impl<A: VirtualActor> ActorHandle<A> {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Send `command` and wait for the reply, within the runtime's default deadline.
    pub async fn ask(&self, command: A::Command) -> Result<A::Reply, RuntimeError> {
        self.ask_within(command, self.runtime.config().ask_timeout)
            .await
    }

    /// Send `command` and wait for the verdict. The command must start within `deadline`
    /// (shortened to what is left of the enclosing turn, when asked from a handler); a
    /// command that did not start is dropped and the error says it was not applied. Once
    /// started, the caller waits [`RuntimeConfig::turn_timeout`] more for its verdict; only
    /// then is the outcome unknown ([`RuntimeError::is_outcome_unknown`]).
    pub async fn ask_within(
        &self,
        command: A::Command,
        deadline: Duration,
    ) -> Result<A::Reply, RuntimeError> {
        let read_only = A::is_read(&command);
        let result = self
            .ask_unscoped(command, outcome::bounded_by_turn(deadline))
            .await;
        outcome::note_ask(read_only, &result);
        result
    }

    async fn ask_unscoped(
        &self,
        command: A::Command,
        deadline: Duration,
    ) -> Result<A::Reply, RuntimeError> {
        if *self.runtime.inner.stopping.borrow() {
            return Err(RuntimeError::ShuttingDown);
        }
        match self.runtime.placement() {
            None => {
                self.runtime
                    .ask_local::<A>(&self.key, command, deadline)
                    .await
            }
            Some(placement) => {
                routing::ask_routed::<A>(
                    &self.runtime,
                    placement.as_ref(),
                    &self.key,
                    command,
                    deadline,
                )
                .await
            }
        }
    }

    /// Send `command` without waiting for a reply.
    pub fn tell(&self, command: A::Command) -> Result<(), RuntimeError> {
        if !A::is_read(&command) {
            outcome::note_effect();
        }
        if self.runtime.placement().is_some() {
            // In a cluster the owner may be elsewhere: route it like an ask, in the background.
            let handle = self.runtime.actor::<A>(self.key.clone());
            tokio::spawn(async move {
                if let Err(error) = handle.ask(command).await {
                    tracing::debug!(kind = A::KIND, key = handle.key(), %error, "tell failed");
                }
            });
            return Ok(());
        }
        let host = self.runtime.host::<A>()?;
        host.dispatch(
            &self.runtime,
            &self.key,
            ActivationMsg::Command {
                command,
                reply: None,
                ticket: None,
                hops: 0,
                span: tracing::Span::current(),
            },
        );
        self.runtime.note_activation();
        Ok(())
    }
}
