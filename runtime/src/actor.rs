//! The contract between the runtime and the domain: [`VirtualActor`] and its [`Turn`].
//!
//! A virtual actor is a kind of entity (cart, SKU, order…) whose instances always exist by
//! identity. The domain implements [`VirtualActor::handle`]; the runtime activates an
//! instance on its first message, loads its state, runs one message at a time (a *turn*),
//! and commits the state at the end of each turn that changed it.
//!
//! # A turn
//! - Read with [`Turn::state`], change with [`Turn::state_mut`]. Raise events with
//!   [`Turn::emit`] and set reminders with [`Turn::set_reminder`].
//! - When the handler returns `Ok`, the runtime commits whatever changed (state, events,
//!   reminders) in one compare-and-set write, and only then sends the reply: **a reply is
//!   never sent for a change that is not durable**.
//! - A handler may commit mid-turn with [`Turn::commit`] (a saga checkpointing a step).
//! - If the handler fails, panics, or a commit fails, the activation is discarded after the
//!   turn and the next message reloads the last committed state: in-memory state never
//!   drifts from the store.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::events::{Envelope, Event, EventSource, event_id};
use crate::identity::ActorId;
use crate::runtime::Runtime;
use crate::store::{OutboxEntry, ReminderChange, StateWrite, Versioned};

/// A kind of virtual actor. One value of the implementing type serves every instance of the
/// kind (it holds configuration and ports, never per-instance state).
pub trait VirtualActor: Send + Sync + Sized + 'static {
    /// The kind's name in identities, storage rows and metrics, e.g. `"cart"`.
    const KIND: &'static str;
    /// The persisted state of one instance; `Default` is the state of a never-saved actor.
    type State: Serialize + DeserializeOwned + Default + Send + Sync + 'static;
    /// What callers send. Encodable, because in a cluster it may travel to the owner node;
    /// `Clone`, because a command that was not applied (its shard moved, or a stale
    /// activation was fenced off) is sent again.
    type Command: Serialize + DeserializeOwned + Clone + Send + 'static;
    /// What callers get back. Domain rejections belong in here, not in the error.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Whether `command` only reads: it changes nothing, so asking it again is always safe,
    /// and an ask of it from another actor's turn is no effect of that turn. The default,
    /// `false`, is always correct; saying `true` of a command that writes is a bug.
    fn is_read(command: &Self::Command) -> bool {
        let _ = command;
        false
    }

    /// Handle one command. Runs alone: no other turn of this instance runs meanwhile.
    fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: Self::Command,
    ) -> impl Future<Output = Result<Self::Reply, RuntimeError>> + Send;

    /// A durable reminder set with [`Turn::set_reminder`] is due. It has already been
    /// removed from the actor's reminders; set it again to repeat it.
    fn on_reminder(
        &self,
        turn: &mut Turn<Self>,
        name: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let _ = (turn, name);
        async { Ok(()) }
    }
}

/// The persisted form of an actor: its state and its reminders, versioned as a whole.
/// Reminders live here (the source of truth) and in the store's reminder index (so they
/// fire while the actor is inactive); both change in one atomic write.
#[derive(Deserialize)]
struct StoredRecord<S> {
    state: S,
    #[serde(default)]
    reminders: BTreeMap<String, u64>,
    /// The shard lease epoch of the node that last activated this actor (0 outside a
    /// cluster). See [`Turn::fence`].
    #[serde(default)]
    fence: u64,
}

#[derive(Serialize)]
struct StoredRecordRef<'a, S> {
    state: &'a S,
    reminders: &'a BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    fence: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One instance's loaded state and the changes of the current turn.
pub struct Turn<A: VirtualActor> {
    id: ActorId,
    runtime: Runtime,
    state: A::State,
    version: u64,
    reminders: BTreeMap<String, u64>,
    dirty: bool,
    outbox: Vec<OutboxEntry>,
    reminder_changes: Vec<ReminderChange>,
    /// The lease epoch this activation was fenced under (see [`Turn::fence`]).
    pub(crate) fence: u64,
    /// Set when the in-memory state can no longer be trusted (failed commit or handler).
    pub(crate) discard: bool,
    /// A commit succeeded during the current command (reset before each command).
    pub(crate) committed: bool,
}

impl<A: VirtualActor> Turn<A> {
    /// Build the context of a freshly activated instance from its stored record.
    pub(crate) fn load(
        id: ActorId,
        runtime: Runtime,
        stored: Option<Versioned>,
    ) -> Result<Self, RuntimeError> {
        let (record, version) = match stored {
            None => (
                StoredRecord {
                    state: A::State::default(),
                    reminders: BTreeMap::new(),
                    fence: 0,
                },
                0,
            ),
            Some(stored) => {
                let record = serde_json::from_slice::<StoredRecord<A::State>>(&stored.state)
                    .map_err(|error| RuntimeError::CorruptState {
                        actor: id.clone(),
                        reason: error.to_string(),
                    })?;
                (record, stored.version)
            }
        };
        Ok(Self {
            id,
            runtime,
            state: record.state,
            version,
            reminders: record.reminders,
            dirty: false,
            outbox: Vec::new(),
            reminder_changes: Vec::new(),
            fence: record.fence,
            discard: false,
            committed: false,
        })
    }

    /// Claim this actor for the shard lease `epoch` before serving it: a compare-and-set
    /// that writes the same state with the new epoch, so a write still in flight from the
    /// previous owner (paused or partitioned, loaded at the old version) is rejected. A
    /// never-saved actor is not written (that would make it exist, and any read of a
    /// random key would create a row): its first real commit is fenced by the version 0 it
    /// expects, and its activation reloads before every message while it has no record
    /// (`activation::loaded_turn`), so a late first write of the previous owner is seen. Skipped when the stored epoch already is
    /// `epoch`: this life wrote it, and the version has moved past any stale write since.
    pub(crate) async fn fence(&mut self, epoch: u64) -> Result<(), RuntimeError> {
        if self.fence > epoch {
            self.discard = true;
            return Err(RuntimeError::Moved {
                actor: self.id.clone(),
                reason: format!(
                    "written under lease epoch {} since this node's epoch {epoch}",
                    self.fence
                ),
            });
        }
        if self.fence == epoch {
            return Ok(());
        }
        self.fence = epoch;
        if self.version == 0 {
            return Ok(());
        }
        self.dirty = true;
        self.commit().await
    }

    /// This instance's identity.
    pub fn id(&self) -> &ActorId {
        &self.id
    }

    /// This instance's key.
    pub fn key(&self) -> &str {
        &self.id.key
    }

    /// The runtime, to ask other actors. Never ask an actor that may ask you back within
    /// the same turn: both would wait for each other until the deadline.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Wall-clock now, Unix milliseconds, from the runtime's clock.
    pub fn now_ms(&self) -> u64 {
        self.runtime.clock().now_ms()
    }

    /// The version of the last committed state; `0` when the actor was never saved.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether a state was ever committed for this instance.
    pub fn exists(&self) -> bool {
        self.version > 0 || self.dirty
    }

    pub fn state(&self) -> &A::State {
        &self.state
    }

    /// Mutable access marks the state changed: it is committed at the end of the turn.
    pub fn state_mut(&mut self) -> &mut A::State {
        self.dirty = true;
        &mut self.state
    }

    /// Raise a domain event, committed atomically with this turn's state and published
    /// later by the outbox relay in its [`Envelope`]. Its id is derived from the actor and the
    /// version it commits with, so a retried publication is recognisable as the same event.
    pub fn emit<E: Event>(&mut self, event: E) -> Result<(), RuntimeError> {
        let version = self.version + 1;
        let envelope = Envelope {
            id: event_id(self.id.kind, &self.id.key, version, self.outbox.len()),
            source: EventSource {
                kind: self.id.kind.to_string(),
                key: self.id.key.clone(),
            },
            version,
            time: self.now_ms(),
            schema: E::SCHEMA,
            event,
        };
        let payload = serde_json::to_vec(&envelope).map_err(|error| RuntimeError::Encode {
            actor: self.id.clone(),
            reason: error.to_string(),
        })?;
        self.outbox.push(OutboxEntry {
            event_id: envelope.id,
            topic: envelope.event.subject().to_owned(),
            payload: Bytes::from(payload),
        });
        Ok(())
    }

    /// Set (or move) the durable reminder `name` to fire at `due_at_ms` (Unix ms). It
    /// survives restarts and fires even if the actor is passivated meanwhile.
    pub fn set_reminder(&mut self, name: &str, due_at_ms: u64) {
        self.reminders.insert(name.to_owned(), due_at_ms);
        self.reminder_changes.push(ReminderChange::Set {
            name: name.to_owned(),
            due_at_ms,
        });
    }

    /// Cancel the reminder `name`; cancelling an absent reminder does nothing.
    pub fn cancel_reminder(&mut self, name: &str) {
        if self.reminders.remove(name).is_some() {
            self.reminder_changes.push(ReminderChange::Cancel {
                name: name.to_owned(),
            });
        }
    }

    /// The due time of reminder `name`, if set.
    pub fn reminder(&self, name: &str) -> Option<u64> {
        self.reminders.get(name).copied()
    }

    /// Whether this turn has something to commit.
    fn has_changes(&self) -> bool {
        self.dirty || !self.outbox.is_empty() || !self.reminder_changes.is_empty()
    }

    /// Commit state, events and reminder changes in one compare-and-set write. Does nothing
    /// when nothing changed. On failure the activation is discarded after this turn.
    pub async fn commit(&mut self) -> Result<(), RuntimeError> {
        if !self.has_changes() {
            return Ok(());
        }
        let record = StoredRecordRef {
            state: &self.state,
            reminders: &self.reminders,
            fence: self.fence,
        };
        let encoded = match serde_json::to_vec(&record) {
            Ok(encoded) => encoded,
            Err(error) => {
                self.discard = true;
                return Err(RuntimeError::Encode {
                    actor: self.id.clone(),
                    reason: error.to_string(),
                });
            }
        };
        if !self.outbox.is_empty()
            && let Err(full) = self.runtime.admit_events()
        {
            self.discard = true;
            return Err(RuntimeError::OutboxFull {
                actor: self.id.clone(),
                pending: full.pending,
                limit: full.limit,
            });
        }
        let write = StateWrite {
            expected_version: self.version,
            state: Bytes::from(encoded),
            outbox: std::mem::take(&mut self.outbox),
            reminders: std::mem::take(&mut self.reminder_changes),
        };
        let armed: Vec<(String, u64)> = write
            .reminders
            .iter()
            .filter_map(|change| match change {
                ReminderChange::Set { name, due_at_ms } => Some((name.clone(), *due_at_ms)),
                ReminderChange::Cancel { .. } => None,
            })
            .collect();
        let event_ids: Vec<String> = write
            .outbox
            .iter()
            .map(|entry| entry.event_id.clone())
            .collect();
        if !event_ids.is_empty() {
            self.runtime.events_committing(&self.id, &event_ids);
        }
        let saved = self.runtime.store().save(&self.id, write).await;
        if !event_ids.is_empty() {
            self.runtime
                .events_settled(&self.id, &event_ids, saved.is_ok());
        }
        match saved {
            Ok(version) => {
                self.version = version;
                self.dirty = false;
                self.committed = true;
                for (name, due_at_ms) in armed {
                    self.runtime.arm_reminder(&self.id, name, due_at_ms);
                }
                Ok(())
            }
            Err(source) => {
                self.discard = true;
                Err(RuntimeError::store(&self.id, source))
            }
        }
    }

    /// Take the reminder `name` out if it is due: `true` when the caller should run it.
    pub(crate) fn take_due_reminder(&mut self, name: &str, now_ms: u64) -> bool {
        match self.reminders.get(name) {
            Some(due_at_ms) if *due_at_ms <= now_ms => {
                self.reminders.remove(name);
                self.reminder_changes.push(ReminderChange::Cancel {
                    name: name.to_owned(),
                });
                true
            }
            _ => false,
        }
    }

    /// Whether the turn left changes that were not committed (only after a failed handler).
    pub(crate) fn is_dirty(&self) -> bool {
        self.has_changes()
    }
}
