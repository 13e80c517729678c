//! The channel port: how a rendered notification leaves the shop (e-mail, SMS, push).
//!
//! The domain only knows [`NotificationChannel`]; adapters (SMTP, webhooks) live in the
//! `emporium-notify` crate. [`ChannelRouter`] picks the channel of each [`ChannelKind`] and
//! sends every kind to one [`DevSink`] until an adapter is configured for it, so a node
//! without any notification settings still "sends" (into memory, readable for demos and
//! tests) instead of failing.
//!
//! Contract of [`NotificationChannel::send`]:
//! - `Ok` means the provider accepted the message.
//! - [`ChannelError::Temporary`]: it may work later (network, timeout, 4xx SMTP, 5xx HTTP);
//!   the caller retries the whole delivery later with the same [`OutgoingMessage::id`].
//! - [`ChannelError::Permanent`] / [`ChannelError::NotConfigured`]: retrying will not help.
//! - Sends are at least once: a message may be sent again with the same id (a redelivered
//!   event), so adapters pass the id on (Message-ID, `Idempotency-Key`) for the receiver
//!   to recognise it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use emporium_runtime::{SharedClock, SystemClock};
use serde::{Deserialize, Serialize};

/// How a notification reaches its recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Email,
    Sms,
    Push,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [ChannelKind::Email, ChannelKind::Sms, ChannelKind::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message for one recipient on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The id of the event it notifies about: the same on every resend, so receivers can
    /// drop repeats.
    pub id: String,
    pub channel: ChannelKind,
    /// An e-mail address, a phone number or a push token, depending on `channel`.
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why a send failed, by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// May succeed later: retry the delivery.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will not succeed: give up on this message.
    #[error("permanent failure: {0}")]
    Permanent(String),
    #[error("no {0} channel is configured")]
    NotConfigured(ChannelKind),
}

/// Something that delivers messages of one kind.
#[async_trait]
pub trait NotificationChannel: Send + Sync {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError>;
}

/// A message the [`DevSink`] kept, with when it was "sent" (Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub at_ms: u64,
    pub message: OutgoingMessage,
}

/// The default channel: keeps the last `capacity` messages in memory and logs them. What a
/// node without mail or webhook settings "sends"; readable with [`DevSink::recent`].
pub struct DevSink {
    capacity: usize,
    clock: SharedClock,
    sent: Mutex<VecDeque<SentMessage>>,
}

impl DevSink {
    /// The default number of messages kept.
    pub const DEFAULT_CAPACITY: usize = 200;

    /// A sink keeping the last `capacity` messages, timed by the system clock.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Arc::new(SystemClock::new()))
    }

    /// A sink timed by `clock` (the runtime's, or a test's).
    pub fn with_clock(capacity: usize, clock: SharedClock) -> Self {
        Self {
            capacity,
            clock,
            sent: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    /// Up to `limit` kept messages, newest first.
    pub fn recent(&self, limit: usize) -> Vec<SentMessage> {
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.iter().rev().take(limit).cloned().collect()
    }

    fn keep(&self, message: SentMessage) {
        if self.capacity == 0 {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        while sent.len() >= self.capacity {
            sent.pop_front();
        }
        sent.push_back(message);
    }
}

impl Default for DevSink {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl NotificationChannel for DevSink {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError> {
        tracing::info!(
            id = %message.id,
            channel = %message.channel,
            to = %message.to,
            subject = %message.subject,
            "notification kept by the dev sink"
        );
        self.keep(SentMessage {
            at_ms: self.clock.now_ms(),
            message: message.clone(),
        });
        Ok(())
    }
}

/// The channel of each kind. Cheap to clone (shared channels).
#[derive(Clone)]
pub struct ChannelRouter {
    email: Arc<dyn NotificationChannel>,
    sms: Arc<dyn NotificationChannel>,
    push: Arc<dyn NotificationChannel>,
    dev: Arc<DevSink>,
}

impl ChannelRouter {
    /// Every kind goes to `dev` until [`ChannelRouter::with`] says otherwise.
    pub fn new(dev: Arc<DevSink>) -> Self {
        let shared: Arc<dyn NotificationChannel> = dev.clone();
        Self {
            email: shared.clone(),
            sms: shared.clone(),
            push: shared,
            dev,
        }
    }

    /// Send `kind` through `channel` instead.
    pub fn with(mut self, kind: ChannelKind, channel: Arc<dyn NotificationChannel>) -> Self {
        *self.slot(kind) = channel;
        self
    }

    /// The channel messages of `kind` go to.
    pub fn channel(&self, kind: ChannelKind) -> &Arc<dyn NotificationChannel> {
        match kind {
            ChannelKind::Email => &self.email,
            ChannelKind::Sms => &self.sms,
            ChannelKind::Push => &self.push,
        }
    }

    /// The sink unconfigured kinds go to.
    pub fn dev_sink(&self) -> &Arc<DevSink> {
        &self.dev
    }

    /// Send `message` through the channel of its kind.
    pub async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError> {
        self.channel(message.channel).send(message).await
    }

    fn slot(&mut self, kind: ChannelKind) -> &mut Arc<dyn NotificationChannel> {
        match kind {
            ChannelKind::Email => &mut self.email,
            ChannelKind::Sms => &mut self.sms,
            ChannelKind::Push => &mut self.push,
        }
    }
}

impl Default for ChannelRouter {
    /// Every kind into one [`DevSink`] of the default capacity.
    fn default() -> Self {
        Self::new(Arc::new(DevSink::default()))
    }
}

#[cfg(test)]
mod tests {
    use emporium_runtime::ManualClock;

    use super::*;

    fn message(id: &str, channel: ChannelKind) -> OutgoingMessage {
        OutgoingMessage {
            id: id.to_owned(),
            channel,
            to: "a@example.com".to_owned(),
            subject: "s".to_owned(),
            body: "b".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_dev_sink_keeps_the_last_messages_newest_first_with_their_time() {
        let clock = Arc::new(ManualClock::new(1_000));
        let sink = DevSink::with_clock(2, clock.clone());
        for id in ["1", "2", "3"] {
            sink.send(&message(id, ChannelKind::Email)).await.unwrap();
            clock.advance_ms(10);
        }
        let recent = sink.recent(10);
        let ids: Vec<_> = recent.iter().map(|sent| sent.message.id.as_str()).collect();
        assert_eq!(ids, ["3", "2"]);
        assert_eq!(recent[0].at_ms, 1_020);
        assert_eq!(sink.recent(1).len(), 1);
    }

    struct Refusing;

    #[async_trait]
    impl NotificationChannel for Refusing {
        async fn send(&self, _: &OutgoingMessage) -> Result<(), ChannelError> {
            Err(ChannelError::Permanent("no".to_owned()))
        }
    }

    #[tokio::test]
    async fn the_router_sends_unconfigured_kinds_to_the_dev_sink() {
        let dev = Arc::new(DevSink::new(10));
        let router = ChannelRouter::new(dev.clone()).with(ChannelKind::Sms, Arc::new(Refusing));
        router
            .send(&message("e", ChannelKind::Email))
            .await
            .unwrap();
        router.send(&message("p", ChannelKind::Push)).await.unwrap();
        assert!(router.send(&message("s", ChannelKind::Sms)).await.is_err());
        let ids: Vec<_> = dev
            .recent(10)
            .into_iter()
            .map(|sent| sent.message.id)
            .collect();
        assert_eq!(ids, ["p", "e"]);
    }
}
