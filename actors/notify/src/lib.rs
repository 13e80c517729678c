//! Notification channel adapters behind the domain's
//! [`NotificationChannel`](emporium_actors::notification::NotificationChannel) port:
//! [`SmtpChannel`] (e-mail, lettre) and [`WebhookChannel`] (SMS and push providers, one JSON
//! POST per message).
//!
//! [`router_from_settings`] builds the node's
//! [`ChannelRouter`](emporium_actors::notification::ChannelRouter) from three optional
//! settings; a kind left unset goes to the [`DevSink`](emporium_actors::notification::DevSink),
//! so a node without any setting keeps its notifications in memory. A setting that is set
//! but wrong stops the start with a [`NotifyConfigError`] naming it.
//!
//! Every send has one deadline ([`NotifySettings::timeout`]): sends run inside the
//! notification actor's turn, so keep it well below the runtime's turn budget.

mod smtp;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use emporium_actors::notification::{ChannelKind, ChannelRouter, DevSink};

pub use smtp::{SmtpChannel, message_id};
pub use webhook::{WebhookChannel, classify_status};

/// Where notifications go; `None` (or an empty string) leaves a kind on the dev sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    /// `smtp://[user:pass@]host:port?from=addr` (also `smtps://`, `?tls=required`).
    pub smtp_url: Option<String>,
    /// `http://…` endpoint receiving SMS messages.
    pub sms_webhook: Option<String>,
    /// `http://…` endpoint receiving push messages.
    pub push_webhook: Option<String>,
    /// Deadline of each send.
    pub timeout: Duration,
}

impl Default for NotifySettings {
    /// Nothing configured; 3 s per send.
    fn default() -> Self {
        Self {
            smtp_url: None,
            sms_webhook: None,
            push_webhook: None,
            timeout: Duration::from_secs(3),
        }
    }
}

/// A notification setting that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("{setting}: not a valid URL: {reason}")]
    InvalidUrl {
        setting: &'static str,
        reason: String,
    },
    #[error("{setting}: scheme {scheme:?} is not supported (expected {expected})")]
    Scheme {
        setting: &'static str,
        scheme: String,
        expected: &'static str,
    },
    #[error("smtp_url: no sender address (add ?from=shop@example.com)")]
    MissingFrom,
    #[error("smtp_url: invalid sender address {address:?}: {reason}")]
    InvalidFrom { address: String, reason: String },
    #[error("{setting}: the client could not be built: {reason}")]
    Client {
        setting: &'static str,
        reason: String,
    },
}

/// The router for `settings`: SMTP for e-mail, webhooks for SMS and push, `dev` for every
/// kind not configured.
pub fn router_from_settings(
    settings: &NotifySettings,
    dev: Arc<DevSink>,
) -> Result<ChannelRouter, NotifyConfigError> {
    let mut router = ChannelRouter::new(dev);
    if let Some(url) = configured(&settings.smtp_url) {
        let channel = SmtpChannel::from_url(url, settings.timeout)?;
        router = router.with(ChannelKind::Email, Arc::new(channel));
    }
    for (kind, setting, url) in [
        (ChannelKind::Sms, "sms_webhook", &settings.sms_webhook),
        (ChannelKind::Push, "push_webhook", &settings.push_webhook),
    ] {
        if let Some(url) = configured(url) {
            let channel = WebhookChannel::new(setting, url, settings.timeout)?;
            router = router.with(kind, Arc::new(channel));
        }
    }
    Ok(router)
}

fn configured(setting: &Option<String>) -> Option<&str> {
    setting
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}
