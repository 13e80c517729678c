//! One activation: the loaded instance of a [`VirtualActor`] on this node, with its mailbox.
//!
//! An activation is a small cell in the directory: the actor's identity, its loaded turn and
//! a queue. It owns **no task while idle**: the first message queued on an empty mailbox
//! spawns a tokio task (the *runner*) that handles the queue one message at a time and ends
//! when the queue is empty, parking the loaded turn back in the cell. Turn-based execution
//! holds by construction: at most one runner per activation exists, because "a runner is
//! running" is decided under the mailbox lock together with the queue's state. So an idle
//! active actor costs its state and a few hundred bytes, not a task and a mailbox's channels
//! (issue 14; each activation was a ractor actor until then, about 9 KiB while idle).
//!
//! On top of that loop this module adds what a virtual actor needs:
//! - **lazy load**: the stored state is loaded by the first message, not at activation, so
//!   a store outage answers that message with a typed error instead of losing it;
//! - **commit before reply** (see [`crate::actor`]);
//! - **panic isolation**: a panicking handler is caught here, its caller gets
//!   [`RuntimeError::Panicked`], and the activation retires so the next message starts from
//!   the last committed state;
//! - **retirement**: a retired activation is out of the directory; messages that were already
//!   queued for it are re-dispatched to the fresh activation (bounded by [`MAX_HOPS`]), and
//!   it ends when its queue is empty.
//!
//! **Invariants**
//! - Every message counted in [`Activation::inflight`] is answered (or re-dispatched)
//!   exactly once, and the count drops only after that.
//! - A message is queued only under its directory stripe lock, so once an activation is out
//!   of the directory nothing is queued on it any more: its runner drains what is there.
//! - The activation's end is counted ([`crate::lifecycle`]'s `stopped`) when its cell is
//!   dropped: out of the directory and no runner left.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::actor::{Turn, VirtualActor};
use crate::directory::KindHost;
use crate::error::{ErrorClass, RuntimeError};
use crate::identity::ActorId;
use crate::lifecycle::DeactivationReason;
use crate::outcome::{Ticket, TurnScope};
use crate::placement::shard_of;
use crate::runtime::Runtime;

/// How many times a message may be re-dispatched between activations before it fails.
pub(crate) const MAX_HOPS: u8 = 4;

pub(crate) type ReplySender<A> = oneshot::Sender<Result<<A as VirtualActor>::Reply, RuntimeError>>;

/// What an activation's mailbox carries.
pub(crate) enum ActivationMsg<A: VirtualActor> {
    Command {
        command: A::Command,
        reply: Option<ReplySender<A>>,
        /// `None` for a `tell`, which nobody waits for.
        ticket: Option<Arc<Ticket>>,
        hops: u8,
        /// The sender's span: the turn's span is its child, across the mailbox.
        span: tracing::Span,
    },
    Reminder {
        name: String,
    },
}

/// One activation: shared by its directory entry and, while messages are queued, its runner.
pub(crate) struct Activation<A: VirtualActor> {
    pub(crate) id: ActorId,
    host: Arc<KindHost<A>>,
    runtime: Runtime,
    /// Tells this activation apart from earlier and later ones of the same actor.
    pub(crate) generation: u64,
    /// Messages queued on this activation and not yet answered.
    pub(crate) inflight: AtomicU32,
    /// Monotonic ms of the last message sent to it: drives idle passivation and LRU.
    pub(crate) last_used_ms: AtomicU64,
    mailbox: Mutex<Mailbox<A>>,
}

/// The queue and the loaded turn, under one lock.
struct Mailbox<A: VirtualActor> {
    queue: VecDeque<ActivationMsg<A>>,
    /// A runner task is handling the queue (and holds the state meanwhile).
    running: bool,
    /// The runner ended abnormally: nothing is queued here any more.
    closed: bool,
    /// The state between runs; `None` while a runner holds it.
    parked: Option<ActivationState<A>>,
}

/// The activation's state, owned by its runner while it runs.
struct ActivationState<A: VirtualActor> {
    /// `None` until the first message loads it.
    turn: Option<Turn<A>>,
    /// Out of the directory: queued messages go to the next activation.
    retired: bool,
}

impl<A: VirtualActor> Activation<A> {
    /// A fresh activation (its state loads with the first message). Counted active from now.
    pub(crate) fn new(
        id: ActorId,
        host: Arc<KindHost<A>>,
        runtime: Runtime,
        generation: u64,
        now_ms: u64,
    ) -> Self {
        runtime.lifecycle().activated(A::KIND);
        Self {
            id,
            host,
            runtime,
            generation,
            inflight: AtomicU32::new(0),
            last_used_ms: AtomicU64::new(now_ms),
            mailbox: Mutex::new(Mailbox {
                queue: VecDeque::new(),
                running: false,
                closed: false,
                parked: Some(ActivationState {
                    turn: None,
                    retired: false,
                }),
            }),
        }
    }

    fn mailbox(&self) -> MutexGuard<'_, Mailbox<A>> {
        // Critical sections never panic midway, so a poisoned mailbox is still consistent.
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `message` (the caller holds the directory stripe lock and counted it in
    /// `inflight`), starting a runner if none runs. `Err` gives it back when this
    /// activation has ended abnormally.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        message: ActivationMsg<A>,
    ) -> Result<(), ActivationMsg<A>> {
        let mut mailbox = self.mailbox();
        if mailbox.closed {
            return Err(message);
        }
        mailbox.queue.push_back(message);
        if !mailbox.running {
            mailbox.running = true;
            drop(mailbox);
            tokio::spawn(Arc::clone(self).run());
        }
        Ok(())
    }

    /// The activation left the directory for `reason`: it ends once its runner (if any)
    /// is done, when the last reference to it goes.
    pub(crate) fn deactivated(&self, reason: DeactivationReason) {
        self.runtime.lifecycle().deactivated(A::KIND, reason);
    }

    /// The runner: handle queued messages one at a time until the queue is empty.
    async fn run(self: Arc<Self>) {
        let Some(mut state) = self.mailbox().parked.take() else {
            return; // unreachable: `running` is set by whoever spawns, once
        };
        let guard = RunnerGuard(&self);
        loop {
            let message = {
                let mut mailbox = self.mailbox();
                match mailbox.queue.pop_front() {
                    Some(message) => message,
                    None => {
                        mailbox.parked = Some(state);
                        mailbox.running = false;
                        std::mem::forget(guard);
                        return;
                    }
                }
            };
            self.handle(message, &mut state).await;
        }
    }

    async fn handle(&self, message: ActivationMsg<A>, state: &mut ActivationState<A>) {
        match message {
            ActivationMsg::Command {
                command,
                reply,
                ticket,
                hops,
                span,
            } => {
                if state.retired {
                    self.redispatch(command, reply, ticket, hops, span);
                } else if ticket.as_ref().is_some_and(|ticket| !ticket.start()) {
                    // The caller gave up while the command was queued and has answered
                    // "not applied": running it now would make that answer a lie.
                    self.runtime.lifecycle().expired(A::KIND);
                } else {
                    let turn = self.turn_span(&span);
                    let result = self
                        .run_command(state, command)
                        .instrument(turn.clone())
                        .await;
                    turn.record("outcome", ErrorClass::outcome_of(&result));
                    if let Some(reply) = reply {
                        // The caller may have given up (deadline): nothing to do then.
                        let _ = reply.send(result);
                    }
                }
            }
            ActivationMsg::Reminder { name } => {
                if !state.retired {
                    let turn = self.turn_span(&tracing::Span::none());
                    turn.record("reminder", name.as_str());
                    self.run_reminder(state, &name).instrument(turn).await;
                }
            }
        }
        self.finish_message(state);
    }
}

impl<A: VirtualActor> Drop for Activation<A> {
    fn drop(&mut self) {
        self.runtime.lifecycle().stopped(A::KIND);
    }
}

/// Armed while a runner runs: should it unwind (a bug outside the handler's own panic
/// isolation), the activation closes, leaves the directory and drops its queue (closing the
/// callers' reply channels: they see it as unreachable) instead of staying "running" forever.
struct RunnerGuard<'a, A: VirtualActor>(&'a Arc<Activation<A>>);

impl<A: VirtualActor> Drop for RunnerGuard<'_, A> {
    fn drop(&mut self) {
        let activation = self.0;
        let dropped = {
            let mut mailbox = activation.mailbox();
            mailbox.closed = true;
            std::mem::take(&mut mailbox.queue)
        };
        if activation
            .host
            .remove_entry(&activation.id.key, activation.generation)
        {
            activation.deactivated(DeactivationReason::Discarded);
        }
        drop(dropped);
    }
}

impl<A: VirtualActor> Activation<A> {
    /// The span of one turn, a child of the sender's `parent` (none: a root). At DEBUG, so
    /// that a node that neither logs nor exports it pays one callsite check per turn.
    fn turn_span(&self, parent: &tracing::Span) -> tracing::Span {
        tracing::debug_span!(
            parent: parent,
            "actor.turn",
            actor.kind = A::KIND,
            actor.key = %self.id.key,
            actor.shard = shard_of(A::KIND, &self.id.key),
            reminder = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }

    /// Load on first use, run the handler under panic isolation, commit, and decide whether
    /// the in-memory state is still trustworthy. A failure after the turn had an effect
    /// (a checkpoint commit, an ask that may have changed another actor) is reported as
    /// such, so that nobody retries the command as if nothing had happened.
    async fn run_command(
        &self,
        state: &mut ActivationState<A>,
        command: A::Command,
    ) -> Result<A::Reply, RuntimeError> {
        let turn = self.loaded_turn(state).await.map_err(|error| {
            // The command has not run: whatever the take-over did, the answer is "not
            // applied" (an unknown fence write is not the command's effect).
            if error.is_outcome_unknown() {
                RuntimeError::NotApplied {
                    actor: self.id.clone(),
                    source: Box::new(error),
                }
            } else {
                error
            }
        })?;
        turn.committed = false;
        let budget = self.runtime.config().turn_timeout;
        let (handled, asked_with_effect) = TurnScope::run(
            budget,
            AssertUnwindSafe(self.host.actor.handle(turn, command)).catch_unwind(),
        )
        .await;
        let result = match handled {
            Ok(Ok(reply)) => {
                // `committed` still tells of checkpoints when this last commit fails.
                let committed = turn.commit().await;
                let effects = asked_with_effect || turn.committed;
                committed
                    .map(|()| reply)
                    .map_err(|error| error.after_effects(&self.id, effects))
            }
            Ok(Err(error)) => {
                if turn.is_dirty() {
                    turn.discard = true;
                }
                Err(error.after_effects(&self.id, asked_with_effect || turn.committed))
            }
            Err(_panic) => {
                turn.discard = true;
                self.runtime.lifecycle().panicked(A::KIND);
                tracing::error!(actor = %self.id, "actor panicked; restarting from last committed state");
                Err(RuntimeError::Panicked {
                    actor: self.id.clone(),
                })
            }
        };
        if turn.discard {
            self.retire(state, DeactivationReason::Discarded);
        }
        result
    }

    async fn run_reminder(&self, state: &mut ActivationState<A>, name: &str) {
        let now_ms = self.runtime.clock().now_ms();
        let Ok(turn) = self.loaded_turn(state).await else {
            // The store is unreachable: the reminder stays in the index and fires again
            // when the scheduler retries.
            self.runtime.retry_reminder(&self.id, name.to_owned());
            return;
        };
        if !turn.take_due_reminder(name, now_ms) {
            return; // moved or cancelled since it was armed
        }
        let handled = AssertUnwindSafe(self.host.actor.on_reminder(turn, name))
            .catch_unwind()
            .await;
        let outcome = match handled {
            Ok(Ok(())) => turn.commit().await,
            Ok(Err(error)) => Err(error),
            Err(_panic) => {
                self.runtime.lifecycle().panicked(A::KIND);
                Err(RuntimeError::Panicked {
                    actor: self.id.clone(),
                })
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(actor = %self.id, reminder = name, %error, "reminder failed; will retry");
            turn.discard = true;
            self.runtime.retry_reminder(&self.id, name.to_owned());
        }
        if turn.discard {
            self.retire(state, DeactivationReason::Discarded);
        }
    }

    /// The turn to run a message on: loaded on first use, and in a cluster checked against
    /// this node's lease on the actor's shard before every message. An activation whose
    /// shard moved (or came back under a new epoch) is stale: it retires and the message
    /// fails as `Moved`, so routing sends it where the shard is served now.
    async fn loaded_turn<'s>(
        &self,
        state: &'s mut ActivationState<A>,
    ) -> Result<&'s mut Turn<A>, RuntimeError> {
        let epoch = match self.runtime.serving_epoch(&self.id) {
            Ok(epoch) => epoch,
            Err(moved) => {
                self.retire(state, DeactivationReason::ShardMoved);
                return Err(moved);
            }
        };
        // In a cluster an actor with no record is not kept in memory between messages: a
        // first write still in flight from the shard's previous owner (its turn started
        // before the hand-over, expecting version 0) may commit after this node answered
        // "absent", and the next message must see it. Actors with a record are fenced by a
        // write instead (`Turn::fence`); absent ones are not written, so that reading a
        // random key never creates a row.
        if epoch.is_some() && state.turn.as_ref().is_some_and(|turn| turn.version() == 0) {
            state.turn = None;
        }
        let stale_fence = match (&state.turn, epoch) {
            (Some(turn), Some(epoch)) if turn.fence != epoch => Some(turn.fence),
            _ => None,
        };
        if let (Some(fence), Some(epoch)) = (stale_fence, epoch) {
            self.retire(state, DeactivationReason::ShardMoved);
            return Err(RuntimeError::Moved {
                actor: self.id.clone(),
                reason: format!("lease epoch changed from {fence} to {epoch}"),
            });
        }
        if state.turn.is_none() {
            let stored = self
                .runtime
                .store()
                .load(&self.id)
                .await
                .map_err(|source| RuntimeError::store(&self.id, source))?;
            let mut turn = Turn::load(self.id.clone(), self.runtime.clone(), stored)?;
            if let Some(epoch) = epoch
                && let Err(error) = turn.fence(epoch).await
            {
                self.retire(state, DeactivationReason::Discarded);
                return Err(error);
            }
            state.turn = Some(turn);
        }
        state
            .turn
            .as_mut()
            .ok_or_else(|| RuntimeError::Unreachable {
                actor: self.id.clone(),
                reason: "activation lost its state".to_owned(),
            })
    }

    fn retire(&self, state: &mut ActivationState<A>, reason: DeactivationReason) {
        if !state.retired {
            state.retired = true;
            self.host.remove_entry(&self.id.key, self.generation);
            self.runtime.lifecycle().deactivated(A::KIND, reason);
        }
    }

    fn redispatch(
        &self,
        command: A::Command,
        reply: Option<ReplySender<A>>,
        ticket: Option<Arc<Ticket>>,
        hops: u8,
        span: tracing::Span,
    ) {
        if hops >= MAX_HOPS {
            // Never started, and now never will be: the caller may be told so.
            if let Some(ticket) = &ticket {
                ticket.abandon();
            }
            if let Some(reply) = reply {
                let _ = reply.send(Err(RuntimeError::NotApplied {
                    actor: self.id.clone(),
                    source: Box::new(RuntimeError::Unreachable {
                        actor: self.id.clone(),
                        reason: format!("re-dispatched {MAX_HOPS} times"),
                    }),
                }));
            }
            return;
        }
        self.host.dispatch(
            &self.runtime,
            &self.id.key,
            ActivationMsg::Command {
                command,
                reply,
                ticket,
                hops: hops + 1,
                span,
            },
        );
    }

    /// Count the message done. One whose shard moved away while it ran retires now: the
    /// shard's lost-shard pass skipped it as busy, and nothing routes here any more to make
    /// it notice later.
    fn finish_message(&self, state: &mut ActivationState<A>) {
        if !state.retired && self.runtime.serving_epoch(&self.id).is_err() {
            self.retire(state, DeactivationReason::ShardMoved);
        }
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}
