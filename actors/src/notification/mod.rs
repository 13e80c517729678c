//! Notifications: one actor per recipient turns domain events into messages on the
//! recipient's channels, exactly once per event.
//!
//! The [`NotificationActor`] (`notification`, keyed by the user id, or [`ADMINS`] for stock
//! alerts) is asked [`NotificationCommand::Deliver`] by the event dispatcher for each event
//! [`recipient`] names. One turn:
//!
//! 1. an event id it already applied → [`Delivery::Duplicate`] (nothing sent);
//! 2. no template ([`templates`]), another recipient's event, a topic the recipient opted
//!    out of, or no enabled channel with an address → [`Delivery::Skipped`] (nothing
//!    recorded: a redelivery is judged again);
//! 3. otherwise the message goes to each enabled channel: e-mail to the account's address
//!    (asked of the [`UserActor`], which never asks back) or to every admin address, SMS and
//!    push to the number and token in the [`NotificationPreferences`];
//! 4. a [`ChannelError::Temporary`] on any channel → [`Delivery::Retry`]: nothing is
//!    recorded and the dispatcher leaves the event to be redelivered. Channels that had
//!    already accepted it get it again then, with the same message id (Message-ID,
//!    `Idempotency-Key`) for the receiver to recognise;
//! 5. otherwise the event id is recorded as applied, every send is logged (a permanent
//!    failure as failed), and the answer is [`Delivery::Applied`].
//!
//! Bounds: the last [`APPLIED_IDS`] applied event ids per recipient are remembered (a
//! redelivery older than that many newer notifications of the same recipient would be sent
//! again; JetStream redelivers within its ack wait, far sooner), and the last [`LOG_LEN`]
//! sends are kept for [`NotificationCommand::Recent`].
//!
//! Sends run inside the turn: channel adapters must time out well within the runtime's turn
//! budget. A send whose turn then fails to commit is sent again on redelivery (at least
//! once on the wire, exactly once in the recipient's record).

pub mod channel;
pub mod preferences;
pub mod templates;

use std::collections::VecDeque;

use emporium_runtime::{Runtime, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

pub use channel::{
    ChannelError, ChannelKind, ChannelRouter, DevSink, NotificationChannel, OutgoingMessage,
    SentMessage,
};
pub use preferences::{NotificationPreferences, PreferencesRejection};
pub use templates::{Rendered, TemplateKind, Topic};

use crate::events::{DomainEnvelope, DomainEvent};
use crate::user::{Email, UserActor, UserCommand, UserReply};

/// The key of the recipient of stock alerts: every admin address.
pub const ADMINS: &str = "admins";
/// Applied event ids remembered per recipient (oldest forgotten first).
pub const APPLIED_IDS: usize = 512;
/// Sends kept in each recipient's log.
pub const LOG_LEN: usize = 50;

/// The recipient (actor key) that `event` is notified to, if any: the user it is about,
/// or [`ADMINS`] for stock alerts. `None` for events without a notification.
pub fn recipient(event: &DomainEvent) -> Option<&str> {
    templates::render(event)?;
    match event {
        DomainEvent::StockLow { .. } => Some(ADMINS),
        _ => event.user(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationCommand {
    /// Notify the recipient of this event (once per event id).
    Deliver(Box<DomainEnvelope>),
    GetPreferences,
    /// Replace the preferences, after validation.
    SetPreferences(NotificationPreferences),
    /// The log of recent sends, newest first.
    Recent,
}

/// What became of a delivered event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// Sent (or permanently failed, see the log) and recorded: acknowledge the event.
    Applied,
    /// Already applied earlier: acknowledge the event.
    Duplicate,
    /// Nothing to send, for the reason given: acknowledge the event.
    Skipped(String),
    /// A channel failed for now; nothing recorded: let the event be redelivered.
    Retry(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationReply {
    Delivery(Delivery),
    /// `GetPreferences`.
    Preferences(NotificationPreferences),
    /// `SetPreferences`: the stored preferences, or why they were refused (nothing changed).
    PreferencesSet(Result<NotificationPreferences, PreferencesRejection>),
    Recent(Vec<NotificationRecord>),
}

/// How one send ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    Sent,
    /// Refused for good (or no channel configured); not retried.
    Failed(String),
}

/// One send in a recipient's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub at_ms: u64,
    pub event_id: String,
    pub kind: TemplateKind,
    pub channel: ChannelKind,
    pub to: String,
    pub subject: String,
    pub status: SendStatus,
}

/// One recipient's stored state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationState {
    #[serde(default)]
    pub preferences: NotificationPreferences,
    /// Applied event ids, oldest first, at most [`APPLIED_IDS`].
    #[serde(default)]
    pub applied: VecDeque<String>,
    /// Recent sends, oldest first, at most [`LOG_LEN`].
    #[serde(default)]
    pub log: VecDeque<NotificationRecord>,
}

/// The notification actor kind: the channels and the admin addresses, shared by every
/// recipient.
pub struct NotificationActor {
    router: ChannelRouter,
    admins: Vec<Email>,
}

impl NotificationActor {
    pub fn new(router: ChannelRouter, admins: Vec<Email>) -> Self {
        Self { router, admins }
    }
}

impl VirtualActor for NotificationActor {
    const KIND: &'static str = "notification";
    type State = NotificationState;
    type Command = NotificationCommand;
    type Reply = NotificationReply;

    fn is_read(command: &NotificationCommand) -> bool {
        matches!(
            command,
            NotificationCommand::GetPreferences | NotificationCommand::Recent
        )
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: NotificationCommand,
    ) -> Result<NotificationReply, RuntimeError> {
        Ok(match command {
            NotificationCommand::Deliver(envelope) => {
                NotificationReply::Delivery(self.deliver(turn, &envelope).await)
            }
            NotificationCommand::GetPreferences => {
                NotificationReply::Preferences(turn.state().preferences.clone())
            }
            NotificationCommand::SetPreferences(preferences) => {
                NotificationReply::PreferencesSet(set_preferences(turn, preferences))
            }
            NotificationCommand::Recent => {
                NotificationReply::Recent(turn.state().log.iter().rev().cloned().collect())
            }
        })
    }
}

fn set_preferences(
    turn: &mut Turn<NotificationActor>,
    preferences: NotificationPreferences,
) -> Result<NotificationPreferences, PreferencesRejection> {
    preferences.validate()?;
    if turn.state().preferences != preferences {
        turn.state_mut().preferences = preferences.clone();
    }
    Ok(preferences)
}

impl NotificationActor {
    async fn deliver(&self, turn: &mut Turn<Self>, envelope: &DomainEnvelope) -> Delivery {
        if turn.state().applied.contains(&envelope.id) {
            return Delivery::Duplicate;
        }
        let Some(rendered) = templates::render(&envelope.event) else {
            return Delivery::Skipped("no notification for this event".to_owned());
        };
        if recipient(&envelope.event) != Some(turn.key()) {
            return Delivery::Skipped("the event is about another recipient".to_owned());
        }
        let preferences = turn.state().preferences.clone();
        if !preferences.wants(rendered.topic) {
            return Delivery::Skipped(format!("opted out of {:?} messages", rendered.topic));
        }
        let targets = match self.targets(turn, &envelope.event, &preferences).await {
            Ok(targets) => targets,
            Err(reason) => return Delivery::Retry(reason),
        };
        if targets.is_empty() {
            return Delivery::Skipped("no enabled channel with an address".to_owned());
        }
        let mut records = Vec::with_capacity(targets.len());
        for (channel, to) in targets {
            let message = OutgoingMessage {
                id: envelope.id.clone(),
                channel,
                to,
                subject: rendered.subject.clone(),
                body: rendered.body.clone(),
            };
            let status = match self.router.send(&message).await {
                Ok(()) => SendStatus::Sent,
                Err(ChannelError::Temporary(reason)) => {
                    return Delivery::Retry(format!("{channel} to {}: {reason}", message.to));
                }
                Err(error) => SendStatus::Failed(error.to_string()),
            };
            records.push(NotificationRecord {
                at_ms: turn.now_ms(),
                event_id: envelope.id.clone(),
                kind: rendered.kind,
                channel,
                to: message.to,
                subject: message.subject,
                status,
            });
        }
        record(turn, &envelope.id, records);
        Delivery::Applied
    }

    /// Every (channel, address) the message goes to. `Err` when the account could not be
    /// read (retry later).
    async fn targets(
        &self,
        turn: &Turn<Self>,
        event: &DomainEvent,
        preferences: &NotificationPreferences,
    ) -> Result<Vec<(ChannelKind, String)>, String> {
        let mut targets = Vec::new();
        if preferences.email {
            for address in self.email_addresses(turn, event).await? {
                targets.push((ChannelKind::Email, address));
            }
        }
        targets.extend(preferences.device_targets());
        Ok(targets)
    }

    async fn email_addresses(
        &self,
        turn: &Turn<Self>,
        event: &DomainEvent,
    ) -> Result<Vec<String>, String> {
        match event {
            DomainEvent::StockLow { .. } => Ok(self
                .admins
                .iter()
                .map(|email| email.as_str().to_owned())
                .collect()),
            // The account may not be readable yet when the welcome is delivered.
            DomainEvent::UserRegistered { email, .. } => Ok(vec![email.clone()]),
            _ => account_email(turn.runtime(), turn.key())
                .await
                .map(|found| found.into_iter().collect()),
        }
    }
}

/// The account's e-mail address; `None` for an unknown user.
async fn account_email(runtime: &Runtime, user_id: &str) -> Result<Option<String>, String> {
    let reply = runtime
        .actor::<UserActor>(user_id)
        .ask(UserCommand::Get)
        .await
        .map_err(|error| format!("reading the account: {error}"))?;
    match reply {
        UserReply::Found(user) => Ok(user.map(|user| user.email.as_str().to_owned())),
        other => Err(format!("the user actor answered Get with {other:?}")),
    }
}

/// Remember `event_id` as applied and log its sends, within the bounds.
fn record(turn: &mut Turn<NotificationActor>, event_id: &str, records: Vec<NotificationRecord>) {
    let state = turn.state_mut();
    push_bounded(&mut state.applied, event_id.to_owned(), APPLIED_IDS);
    for record in records {
        push_bounded(&mut state.log, record, LOG_LEN);
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, bound: usize) {
    while queue.len() >= bound {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// Why a [`Notifications`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A bug: the actor answered with the reply of another command.
    #[error("the notification actor {recipient} answered {command} with {reply}")]
    Internal {
        recipient: String,
        command: &'static str,
        reply: String,
    },
}

/// The facade the dispatcher and the edge use over the notification actors.
#[derive(Clone)]
pub struct Notifications {
    runtime: Runtime,
}

impl Notifications {
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }

    /// Deliver `envelope` to its [`recipient`]; `None` when the event notifies nobody.
    pub async fn deliver(
        &self,
        envelope: DomainEnvelope,
    ) -> Result<Option<Delivery>, NotificationError> {
        let Some(key) = recipient(&envelope.event).map(str::to_owned) else {
            return Ok(None);
        };
        let command = NotificationCommand::Deliver(Box::new(envelope));
        match self.ask(&key, command).await? {
            NotificationReply::Delivery(delivery) => Ok(Some(delivery)),
            other => Err(unexpected(&key, "Deliver", &other)),
        }
    }

    pub async fn preferences(
        &self,
        recipient: &str,
    ) -> Result<NotificationPreferences, NotificationError> {
        match self
            .ask(recipient, NotificationCommand::GetPreferences)
            .await?
        {
            NotificationReply::Preferences(preferences) => Ok(preferences),
            other => Err(unexpected(recipient, "GetPreferences", &other)),
        }
    }

    pub async fn set_preferences(
        &self,
        recipient: &str,
        preferences: NotificationPreferences,
    ) -> Result<Result<NotificationPreferences, PreferencesRejection>, NotificationError> {
        let command = NotificationCommand::SetPreferences(preferences);
        match self.ask(recipient, command).await? {
            NotificationReply::PreferencesSet(result) => Ok(result),
            other => Err(unexpected(recipient, "SetPreferences", &other)),
        }
    }

    /// The recipient's recent sends, newest first.
    pub async fn recent(
        &self,
        recipient: &str,
    ) -> Result<Vec<NotificationRecord>, NotificationError> {
        match self.ask(recipient, NotificationCommand::Recent).await? {
            NotificationReply::Recent(records) => Ok(records),
            other => Err(unexpected(recipient, "Recent", &other)),
        }
    }

    async fn ask(
        &self,
        recipient: &str,
        command: NotificationCommand,
    ) -> Result<NotificationReply, RuntimeError> {
        self.runtime
            .actor::<NotificationActor>(recipient)
            .ask(command)
            .await
    }
}

fn unexpected(
    recipient: &str,
    command: &'static str,
    reply: &NotificationReply,
) -> NotificationError {
    NotificationError::Internal {
        recipient: recipient.to_owned(),
        command,
        reply: format!("{reply:?}"),
    }
}

#[cfg(test)]
mod tests;
