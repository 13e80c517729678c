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
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};

use crate::activation::ActivationMsg;
use crate::actor::VirtualActor;
use crate::clock::{SharedClock, SystemClock};
use crate::directory::{IdleEntry, KindHost};
use crate::error::RuntimeError;
use crate::identity::ActorId;
use crate::lifecycle::{DeactivationReason, KindSnapshot, Lifecycle};
use crate::reminders::ReminderScheduler;
use crate::store::{StateStore, StoreError};
use crate::{passivation, reminders};

/// Tunables of one runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// An actor with no message for this long is passivated.
    pub idle_timeout: Duration,
    /// Above this many active actors, the least recently used idle ones are passivated.
    pub max_active_actors: usize,
    /// Default deadline of [`ActorHandle::ask`].
    pub ask_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            max_active_actors: 100_000,
            ask_timeout: Duration::from_secs(10),
        }
    }
}

/// What the runtime needs to know of a kind without knowing its type.
pub(crate) trait ErasedHost: Send + Sync {
    fn idle_entries(&self, idle_before_ms: u64) -> Vec<IdleEntry>;
    fn passivate(&self, candidate: &IdleEntry, reason: DeactivationReason) -> bool;
    fn deliver_reminder(&self, runtime: &Runtime, key: &str, name: String);
}

impl<A: VirtualActor> ErasedHost for Arc<KindHost<A>> {
    fn idle_entries(&self, idle_before_ms: u64) -> Vec<IdleEntry> {
        KindHost::idle_entries(self, idle_before_ms)
    }

    fn passivate(&self, candidate: &IdleEntry, reason: DeactivationReason) -> bool {
        KindHost::passivate(self, candidate, reason)
    }

    fn deliver_reminder(&self, runtime: &Runtime, key: &str, name: String) {
        self.dispatch(runtime, key, ActivationMsg::Reminder { name });
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
}

impl RuntimeBuilder {
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

    /// Start the runtime: its passivation sweeper and its reminder scheduler, which re-arms
    /// every stored reminder (this node owns every shard until clustering says otherwise).
    pub async fn build(self) -> Result<Runtime, StoreError> {
        let (stopping, _) = watch::channel(false);
        let (reminders, reminder_queue) = ReminderScheduler::new();
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
            }),
        };
        let stored = reminders::load_all(runtime.store().as_ref()).await?;
        for reminder in stored {
            runtime.arm_reminder(&reminder.actor, reminder.name, reminder.due_at_ms);
        }
        tokio::spawn(reminders::run(runtime.downgrade(), reminder_queue));
        tokio::spawn(passivation::run(runtime.downgrade()));
        Ok(runtime)
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

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    pub(crate) fn lifecycle_handle(&self) -> Arc<Lifecycle> {
        Arc::clone(&self.inner.lifecycle)
    }

    pub(crate) fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
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

    /// Send `command` and wait for the reply, at most `deadline`. On a timeout the command
    /// may still run later; commands should be safe to retry (idempotent) where it matters.
    pub async fn ask_within(
        &self,
        command: A::Command,
        deadline: Duration,
    ) -> Result<A::Reply, RuntimeError> {
        if *self.runtime.inner.stopping.borrow() {
            return Err(RuntimeError::ShuttingDown);
        }
        let host = self.runtime.host::<A>()?;
        let (reply, answer) = oneshot::channel();
        host.dispatch(
            &self.runtime,
            &self.key,
            ActivationMsg::Command {
                command,
                reply: Some(reply),
                hops: 0,
            },
        );
        self.runtime.note_activation();
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_closed)) => Err(RuntimeError::Unreachable {
                actor: ActorId::new(A::KIND, self.key.clone()),
                reason: "activation stopped before answering".to_owned(),
            }),
            Err(_elapsed) => Err(RuntimeError::Timeout {
                actor: ActorId::new(A::KIND, self.key.clone()),
                deadline,
            }),
        }
    }

    /// Send `command` without waiting for a reply.
    pub fn tell(&self, command: A::Command) -> Result<(), RuntimeError> {
        let host = self.runtime.host::<A>()?;
        host.dispatch(
            &self.runtime,
            &self.key,
            ActivationMsg::Command {
                command,
                reply: None,
                hops: 0,
            },
        );
        self.runtime.note_activation();
        Ok(())
    }
}
