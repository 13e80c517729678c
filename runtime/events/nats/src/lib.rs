//! The NATS JetStream adapter of Emporium's [`EventBus`] port.
//!
//! One stream, created or updated at start from [`JetStreamSettings`] (limits retention,
//! file storage). Publishing sets `Nats-Msg-Id` to the envelope id, so the stream's
//! duplicate window makes re-publishing safe; the acknowledgements of a batch are awaited
//! together after every message was sent. Subscriptions are durable pull consumers with
//! explicit, confirmed acks.
//!
//! TLS: async-nats always links rustls; this crate turns on its `aws-lc-rs` feature only,
//! the provider already used by the rest of the build, so exactly one provider is compiled
//! in and rustls picks it without an explicit installation.

mod errors;

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_trait::async_trait;
use emporium_runtime::events::{
    Acknowledge, Delivery, EventBus, EventBusError, EventEnvelope, PublishError, Subscription,
};
use futures::StreamExt;
use futures::future::join_all;

pub use errors::StartError;
use errors::{ack_failed, bus_error, not_stored};

/// The stream and consumer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSettings {
    /// `nats://host:port`.
    pub url: String,
    /// Stream name (no `.`, `*`, `>` or whitespace).
    pub stream: String,
    /// Subjects the stream stores, e.g. `emporium.>`.
    pub subjects: Vec<String>,
    /// Messages older than this are dropped (limits retention); zero keeps them forever.
    pub max_age: Duration,
    /// Copies of the stream in a NATS cluster (1 on a single server).
    pub replicas: usize,
    /// How long a `Nats-Msg-Id` is remembered for deduplication.
    pub duplicate_window: Duration,
    /// How long a delivery may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
    /// How long to wait for any JetStream answer: past it, a publish is `Unknown`.
    pub request_timeout: Duration,
    /// A namespace on the server: when set, every subject is published as
    /// `<prefix>.<subject>` (and filters and deliveries are mapped the same way), so several
    /// deployments or test clusters share one NATS server without their streams' subjects
    /// overlapping. Empty: subjects as they are.
    pub subject_prefix: String,
}

impl JetStreamSettings {
    /// The defaults for `url`: stream `EMPORIUM` on `emporium.>`, 7 days, 1 replica, a 2 min
    /// duplicate window, a 30 s ack wait and a 5 s request timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "EMPORIUM".to_owned(),
            subjects: vec!["emporium.>".to_owned()],
            max_age: Duration::from_secs(7 * 24 * 3600),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            subject_prefix: String::new(),
        }
    }

    /// `subject` as published on the server.
    fn on_server(&self, subject: &str) -> String {
        if self.subject_prefix.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.subject_prefix)
        }
    }

    /// A subject delivered by the server, as the application knows it.
    fn as_known<'a>(&self, subject: &'a str) -> &'a str {
        if self.subject_prefix.is_empty() {
            return subject;
        }
        subject
            .strip_prefix(self.subject_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(subject)
    }

    fn stream_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: self
                .subjects
                .iter()
                .map(|subject| self.on_server(subject))
                .collect(),
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: self.max_age,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// The JetStream [`EventBus`].
#[derive(Clone)]
pub struct JetStreamBus {
    context: Context,
    settings: JetStreamSettings,
}

impl JetStreamBus {
    /// Connect and create or update the stream. A refused connection fails here, at once:
    /// the client does not retry an initial connection.
    pub async fn start(settings: JetStreamSettings) -> Result<Self, StartError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(settings.url.as_str())
            .await
            .map_err(|error| StartError::Connect {
                url: settings.url.clone(),
                reason: error.to_string(),
            })?;
        let context = ContextBuilder::new()
            .timeout(settings.request_timeout)
            .build(client);
        context
            .create_or_update_stream(settings.stream_config())
            .await
            .map_err(|error| StartError::Stream {
                stream: settings.stream.clone(),
                reason: error.to_string(),
            })?;
        Ok(Self { context, settings })
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &JetStreamSettings {
        &self.settings
    }

    /// Delete the stream and everything in it (tests clean up with this).
    pub async fn delete_stream(&self) -> Result<(), EventBusError> {
        self.context
            .delete_stream(&self.settings.stream)
            .await
            .map(|_| ())
            .map_err(bus_error)
    }

    async fn consumer(&self, name: &str, filter: &str) -> Result<PullConsumer, EventBusError> {
        let stream = self
            .context
            .get_stream(&self.settings.stream)
            .await
            .map_err(bus_error)?;
        let filter = self.settings.on_server(filter);
        let config = pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: filter.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(name, config)
            .await
            .map_err(bus_error)?;
        // An existing durable keeps its own filter: refuse instead of silently reading other
        // subjects, as the in-process twin does.
        let bound = &consumer.cached_info().config.filter_subject;
        if *bound != filter {
            return Err(EventBusError::Refused(format!(
                "consumer {name} is bound to filter {bound}, not {filter}"
            )));
        }
        Ok(consumer)
    }
}

#[async_trait]
impl EventBus for JetStreamBus {
    async fn publish(&self, batch: &[EventEnvelope]) -> Vec<Result<(), PublishError>> {
        // Send everything first, then await the acknowledgements together: one round trip
        // for the batch instead of one per envelope.
        let mut sent = Vec::with_capacity(batch.len());
        for envelope in batch {
            let message = PublishMessage::build()
                .payload(envelope.payload.clone())
                .message_id(&envelope.id);
            let ack = self
                .context
                .send_publish(self.settings.on_server(&envelope.subject), message)
                .await
                .map_err(|error| not_stored(&envelope.id, &error));
            sent.push(ack);
        }
        let acks = sent
            .into_iter()
            .zip(batch)
            .map(|(ack, envelope)| async move {
                match ack {
                    Ok(future) => future
                        .await
                        .map(|_| ())
                        .map_err(|error| ack_failed(&envelope.id, &error)),
                    Err(error) => Err(error),
                }
            });
        join_all(acks).await
    }

    async fn subscribe(
        &self,
        consumer: &str,
        filter: &str,
    ) -> Result<Box<dyn Subscription>, EventBusError> {
        let consumer = self.consumer(consumer, filter).await?;
        let messages = consumer.messages().await.map_err(bus_error)?;
        Ok(Box::new(JetStreamSubscription {
            messages,
            settings: self.settings.clone(),
        }))
    }
}

struct JetStreamSubscription {
    messages: pull::Stream,
    settings: JetStreamSettings,
}

#[async_trait]
impl Subscription for JetStreamSubscription {
    async fn next(&mut self) -> Result<Delivery, EventBusError> {
        let message = match self.messages.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(bus_error(error)),
            None => return Err(EventBusError::Unavailable("subscription ended".to_owned())),
        };
        let info = message.info().map_err(|error| bus_error(&*error))?;
        let delivery_count = u64::try_from(info.delivered).unwrap_or(1);
        // Every envelope is published with an id; a message without one (published by
        // another client) is named by its stream sequence so it can still be acked.
        let id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
            .map_or_else(
                || format!("seq-{}", info.stream_sequence),
                |id| id.to_string(),
            );
        let envelope = EventEnvelope {
            id,
            subject: self.settings.as_known(&message.subject).to_owned(),
            payload: message.payload.clone(),
        };
        Ok(Delivery::new(
            envelope,
            delivery_count,
            Box::new(JetStreamAck { message }),
        ))
    }
}

struct JetStreamAck {
    message: jetstream::Message,
}

#[async_trait]
impl Acknowledge for JetStreamAck {
    async fn ack(self: Box<Self>) -> Result<(), EventBusError> {
        // Confirmed ack: once this returns the server recorded it, so a consumer that
        // subscribes again does not get the message back.
        self.message
            .double_ack()
            .await
            .map_err(|error| bus_error(&*error))
    }
}
