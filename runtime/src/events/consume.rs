//! Durable consumers: deliveries from the [`EventBus`] handed to a handler in batches,
//! acknowledged only after the handler applied them, retried a bounded number of times,
//! and dead-lettered when they cannot be applied.
//!
//! # Contract for handlers
//! - Deliveries are at least once: a handler must apply each event id at most once (the
//!   domain's consumer actors keep the ids they applied).
//! - [`Handled::Done`] acknowledges. [`Handled::Retry`] leaves the delivery unacknowledged:
//!   the bus delivers it again after its ack wait, up to [`ConsumerSpec::max_deliveries`]
//!   times, then it is dead-lettered. [`Handled::Poison`] dead-letters it at once (it can
//!   never be applied: it does not decode, it names nothing that exists).
//! - A dead letter is published on `emporium.deadletter.<consumer>` (for watchers) and kept
//!   by the consumer's [`DeadLetterActor`] (the last [`DEAD_LETTERS_KEPT`]), where an operator
//!   lists it and re-drives it ([`redrive`]) once the cause is fixed.
//!
//! Every node runs the same consumers under the same durable names, so the bus spreads the
//! deliveries over the nodes; a consumer's handler routes each event to the actor that
//! applies it, wherever that actor lives.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Delivery, EventBus, EventEnvelope};
use crate::actor::{Turn, VirtualActor};
use crate::error::RuntimeError;
use crate::lock;
use crate::runtime::{Runtime, WeakRuntime};

/// Dead letters kept per consumer; the oldest go first.
pub const DEAD_LETTERS_KEPT: usize = 1000;

/// The subject family of dead letters; consumers never receive it (unless they ask for it).
pub const DEAD_LETTER_SUBJECTS: &str = "emporium.deadletter";

/// One event as a handler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub id: String,
    pub subject: String,
    /// The envelope's JSON (kept as text in dead letters; a payload that is not UTF-8
    /// cannot be an envelope and is kept with its invalid bytes replaced).
    #[serde(with = "payload_text")]
    pub payload: Bytes,
    /// 1 on the first delivery.
    pub delivery_count: u64,
}

/// A payload as JSON text.
mod payload_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(payload: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&String::from_utf8_lossy(payload))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        String::deserialize(deserializer).map(Bytes::from)
    }
}

/// What a handler made of one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Applied (or a duplicate of one applied before): acknowledge.
    Done,
    /// Not applied now, may be later (a store or a channel is down): deliver again.
    Retry(String),
    /// Can never be applied as it is: dead-letter it now.
    Poison(String),
}

/// The domain side of a consumer.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Apply a batch; one answer per event, in order.
    async fn handle(&self, batch: &[Incoming]) -> Vec<Handled>;
}

/// A durable consumer's name, filter and limits.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// The durable name, shared by every node (or per node, for node-local projections).
    pub name: String,
    /// Subject filter, e.g. `emporium.>`.
    pub filter: String,
    /// Deliveries of one event before it is dead-lettered.
    pub max_deliveries: u64,
    /// Most events handed to the handler at once.
    pub batch: usize,
}

impl ConsumerSpec {
    /// 5 deliveries, batches of up to 64.
    pub fn new(name: impl Into<String>, filter: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filter: filter.into(),
            max_deliveries: 5,
            batch: 64,
        }
    }
}

/// The consumers this node runs, by name: re-driving a dead letter needs its handler.
#[derive(Default)]
pub(crate) struct Consumers {
    handlers: std::sync::Mutex<BTreeMap<String, Arc<dyn EventHandler>>>,
}

impl Consumers {
    fn insert(&self, name: &str, handler: Arc<dyn EventHandler>) {
        lock(&self.handlers).insert(name.to_owned(), handler);
    }

    fn get(&self, name: &str) -> Option<Arc<dyn EventHandler>> {
        lock(&self.handlers).get(name).cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.handlers).keys().cloned().collect()
    }
}

/// Run the consumer `spec` with `handler` on this node until the runtime stops. Does
/// nothing (and says so) when the runtime has no event bus.
pub fn spawn_consumer(runtime: &Runtime, spec: ConsumerSpec, handler: Arc<dyn EventHandler>) {
    let Some(bus) = runtime.event_bus().cloned() else {
        tracing::warn!(consumer = %spec.name, "events: no event bus configured; consumer not started");
        return;
    };
    runtime.consumers().insert(&spec.name, Arc::clone(&handler));
    tokio::spawn(consume(runtime.downgrade(), bus, spec, handler));
}

/// How long the loop waits for more deliveries to fill a batch once it has one.
const FILL_WAIT: Duration = Duration::from_millis(2);
/// Pause before subscribing again after the bus failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

async fn consume(
    runtime: WeakRuntime,
    bus: Arc<dyn EventBus>,
    spec: ConsumerSpec,
    handler: Arc<dyn EventHandler>,
) {
    let Some(mut stopping) = runtime.upgrade().map(|runtime| runtime.stopping()) else {
        return;
    };
    loop {
        let subscribed = tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => return,
            subscribed = bus.subscribe(&spec.name, &spec.filter) => subscribed,
        };
        let mut subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "events: cannot subscribe; retrying");
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                continue;
            }
        };
        loop {
            let first = tokio::select! {
                _ = stopping.wait_for(|stopping| *stopping) => return,
                next = subscription.next() => next,
            };
            let mut batch = match first {
                Ok(delivery) => vec![delivery],
                Err(error) => {
                    tracing::warn!(consumer = %spec.name, %error, "events: subscription failed; subscribing again");
                    tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                    break;
                }
            };
            while batch.len() < spec.batch {
                match tokio::time::timeout(FILL_WAIT, subscription.next()).await {
                    Ok(Ok(delivery)) => batch.push(delivery),
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            let Some(node) = runtime.upgrade() else {
                return;
            };
            settle(&node, bus.as_ref(), &spec, handler.as_ref(), batch).await;
        }
    }
}

/// Hand a batch to the handler and act on each answer.
async fn settle(
    runtime: &Runtime,
    bus: &dyn EventBus,
    spec: &ConsumerSpec,
    handler: &dyn EventHandler,
    batch: Vec<Delivery>,
) {
    let dead_letters_filtered = !spec.filter.starts_with(DEAD_LETTER_SUBJECTS);
    let dead_letter_prefix = format!("{DEAD_LETTER_SUBJECTS}.");
    let (skipped, batch): (Vec<Delivery>, Vec<Delivery>) = batch
        .into_iter()
        .partition(|d| dead_letters_filtered && d.subject.starts_with(&dead_letter_prefix));
    for delivery in skipped {
        ack(spec, delivery).await;
    }
    if batch.is_empty() {
        return;
    }
    let incoming: Vec<Incoming> = batch
        .iter()
        .map(|delivery| Incoming {
            id: delivery.id.clone(),
            subject: delivery.subject.clone(),
            payload: delivery.payload.clone(),
            delivery_count: delivery.delivery_count,
        })
        .collect();
    let answers = handler.handle(&incoming).await;
    for ((delivery, event), answer) in batch.into_iter().zip(incoming).zip(answers) {
        let reason = match answer {
            Handled::Done => {
                ack(spec, delivery).await;
                continue;
            }
            Handled::Retry(reason) if delivery.delivery_count < spec.max_deliveries => {
                metrics::counter!("emporium_consumer_retries_total", "consumer" => spec.name.clone()).increment(1);
                tracing::debug!(consumer = %spec.name, id = %event.id, %reason, "events: will be delivered again");
                continue;
            }
            Handled::Retry(reason) => format!(
                "still failing after {} deliveries: {reason}",
                delivery.delivery_count
            ),
            Handled::Poison(reason) => reason,
        };
        // Kept first, acknowledged after: a crash in between delivers it again, and the
        // dead-letter list keeps one copy per event id.
        match dead_letter(runtime, bus, &spec.name, event, reason).await {
            Ok(()) => ack(spec, delivery).await,
            Err(error) => {
                tracing::warn!(consumer = %spec.name, %error, "events: cannot keep a dead letter; it will be delivered again");
            }
        }
    }
}

async fn ack(spec: &ConsumerSpec, delivery: Delivery) {
    if let Err(error) = delivery.ack().await {
        // Not acknowledged: delivered again, and the handler's dedup absorbs it.
        tracing::debug!(consumer = %spec.name, %error, "events: ack failed");
    }
}

/// One event a consumer gave up on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub consumer: String,
    pub event: Incoming,
    pub reason: String,
    /// When it was dead-lettered, Unix ms.
    pub at_ms: u64,
}

async fn dead_letter(
    runtime: &Runtime,
    bus: &dyn EventBus,
    consumer: &str,
    event: Incoming,
    reason: String,
) -> Result<(), RuntimeError> {
    metrics::counter!("emporium_dead_letters_total", "consumer" => consumer.to_owned())
        .increment(1);
    tracing::warn!(consumer, id = %event.id, subject = %event.subject, %reason, "events: dead-lettered");
    let letter = DeadLetter {
        consumer: consumer.to_owned(),
        event,
        reason,
        at_ms: runtime.clock().now_ms(),
    };
    if let Ok(payload) = serde_json::to_vec(&letter) {
        let envelope = EventEnvelope {
            id: format!("deadletter:{consumer}:{}", letter.event.id),
            subject: format!("{DEAD_LETTER_SUBJECTS}.{consumer}"),
            payload: Bytes::from(payload),
        };
        // For watchers only; the list below is what operators act on.
        if let Some(Err(error)) = bus.publish(&[envelope]).await.pop() {
            tracing::debug!(consumer, %error, "events: dead letter not published");
        }
    }
    runtime
        .actor::<DeadLetterActor>(consumer)
        .ask(DeadLetterCommand::Keep(Box::new(letter)))
        .await
        .map(|_| ())
}

/// The dead letters of one consumer (the key is the consumer's name).
pub struct DeadLetterActor;

#[derive(Default, Serialize, Deserialize)]
pub struct DeadLetterState {
    letters: VecDeque<DeadLetter>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DeadLetterCommand {
    /// Keep a letter (once per event id).
    Keep(Box<DeadLetter>),
    List,
    /// Take the letter of an event id out, to re-drive it.
    Take(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DeadLetterReply {
    Kept,
    Letters(Vec<DeadLetter>),
    Taken(Option<Box<DeadLetter>>),
}

impl VirtualActor for DeadLetterActor {
    const KIND: &'static str = "deadletters";
    type State = DeadLetterState;
    type Command = DeadLetterCommand;
    type Reply = DeadLetterReply;

    fn is_read(command: &Self::Command) -> bool {
        matches!(command, DeadLetterCommand::List)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: Self::Command,
    ) -> Result<Self::Reply, RuntimeError> {
        Ok(match command {
            DeadLetterCommand::Keep(letter) => {
                let known = turn
                    .state()
                    .letters
                    .iter()
                    .any(|kept| kept.event.id == letter.event.id);
                if !known {
                    let letters = &mut turn.state_mut().letters;
                    letters.push_back(*letter);
                    while letters.len() > DEAD_LETTERS_KEPT {
                        letters.pop_front();
                    }
                }
                DeadLetterReply::Kept
            }
            DeadLetterCommand::List => {
                DeadLetterReply::Letters(turn.state().letters.iter().cloned().collect())
            }
            DeadLetterCommand::Take(id) => {
                let position = turn
                    .state()
                    .letters
                    .iter()
                    .position(|letter| letter.event.id == id);
                DeadLetterReply::Taken(
                    position.and_then(|position| {
                        turn.state_mut().letters.remove(position).map(Box::new)
                    }),
                )
            }
        })
    }
}

/// The dead letters of `consumer`, oldest first.
pub async fn dead_letters(
    runtime: &Runtime,
    consumer: &str,
) -> Result<Vec<DeadLetter>, RuntimeError> {
    match runtime
        .actor::<DeadLetterActor>(consumer)
        .ask(DeadLetterCommand::List)
        .await?
    {
        DeadLetterReply::Letters(letters) => Ok(letters),
        DeadLetterReply::Kept | DeadLetterReply::Taken(_) => Ok(Vec::new()),
    }
}

/// The consumers running on this node, by name.
pub fn consumer_names(runtime: &Runtime) -> Vec<String> {
    runtime.consumers().names()
}

/// What re-driving a dead letter did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redriven {
    /// The handler applied it; it left the dead letters.
    Applied,
    /// The handler still cannot apply it; it stays a dead letter with the new reason.
    StillFailing(String),
    /// No dead letter with that id.
    NotFound,
    /// No consumer of that name runs on this node.
    UnknownConsumer,
}

/// Hand dead letter `event_id` of `consumer` to its handler again; it leaves the dead
/// letters only once applied (a crash midway leaves it listed, and handlers are idempotent).
pub async fn redrive(
    runtime: &Runtime,
    consumer: &str,
    event_id: &str,
) -> Result<Redriven, RuntimeError> {
    let Some(handler) = runtime.consumers().get(consumer) else {
        return Ok(Redriven::UnknownConsumer);
    };
    let Some(letter) = dead_letters(runtime, consumer)
        .await?
        .into_iter()
        .find(|letter| letter.event.id == event_id)
    else {
        return Ok(Redriven::NotFound);
    };
    let answer = handler
        .handle(std::slice::from_ref(&letter.event))
        .await
        .pop();
    match answer {
        Some(Handled::Done) => {
            runtime
                .actor::<DeadLetterActor>(consumer)
                .ask(DeadLetterCommand::Take(event_id.to_owned()))
                .await?;
            Ok(Redriven::Applied)
        }
        Some(Handled::Retry(reason) | Handled::Poison(reason)) => {
            Ok(Redriven::StillFailing(reason))
        }
        None => Ok(Redriven::StillFailing(
            "the handler gave no answer".to_owned(),
        )),
    }
}
