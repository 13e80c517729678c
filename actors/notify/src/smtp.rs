//! E-mail over SMTP with lettre.
//!
//! Configured by one URL: `smtp://[user:pass@]host:port?from=shop@example.com` (plain, for
//! a relay on the same host or a test sink), `smtp://…?tls=required` (STARTTLS) or
//! `smtps://…` (implicit TLS). One connection per message (no pool: notifications are few,
//! and a pooled connection broken by the server would fail the next send).
//!
//! The Message-ID is derived from the message id (the event id), so a resend after a
//! retried delivery carries the same Message-ID and the receiving side can recognise it.
//! Errors: 4xx replies, timeouts, connection, network and TLS failures are
//! [`ChannelError::Temporary`]; 5xx replies and messages that cannot be built (a bad
//! recipient address) are [`ChannelError::Permanent`].

use std::time::Duration;

use async_trait::async_trait;
use emporium_actors::notification::{ChannelError, NotificationChannel, OutgoingMessage};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::NotifyConfigError;

const SETTING: &str = "smtp_url";

/// Sends [`OutgoingMessage`]s as plain-text e-mails.
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The whole send's deadline (lettre's own applies to each network operation).
    timeout: Duration,
}

impl std::fmt::Debug for SmtpChannel {
    /// Without the transport: it holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpChannel {
    /// A channel for `url` (see the module docs); each send gives up after `timeout`.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Self, NotifyConfigError> {
        let parsed = url::Url::parse(url).map_err(|error| NotifyConfigError::InvalidUrl {
            setting: SETTING,
            reason: error.to_string(),
        })?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(NotifyConfigError::Scheme {
                setting: SETTING,
                scheme: parsed.scheme().to_owned(),
                expected: "smtp or smtps",
            });
        }
        let from = sender(&parsed)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| NotifyConfigError::InvalidUrl {
                setting: SETTING,
                reason: error.to_string(),
            })?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            from,
            timeout,
        })
    }

    fn email(&self, message: &OutgoingMessage) -> Result<Message, ChannelError> {
        let to: Mailbox = message.to.parse().map_err(|error| {
            ChannelError::Permanent(format!("invalid recipient {:?}: {error}", message.to))
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(message_id(&message.id, self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|error| ChannelError::Permanent(format!("unbuildable e-mail: {error}")))
    }
}

#[async_trait]
impl NotificationChannel for SmtpChannel {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError> {
        let email = self.email(message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_) => Err(ChannelError::Temporary(format!(
                "no answer from the SMTP server within {:?}",
                self.timeout
            ))),
        }
    }
}

/// The `from` query parameter as a mailbox.
fn sender(url: &url::Url) -> Result<Mailbox, NotifyConfigError> {
    let address = url
        .query_pairs()
        .find(|(key, _)| key == "from")
        .map(|(_, value)| value.into_owned())
        .ok_or(NotifyConfigError::MissingFrom)?;
    address.parse().map_err(
        |error: lettre::address::AddressError| NotifyConfigError::InvalidFrom {
            address,
            reason: error.to_string(),
        },
    )
}

/// `<escaped-id@domain>`: letters, digits, `-` and `_` are kept, every other byte becomes
/// `=XX`, so distinct ids give distinct Message-IDs and every one is a valid dot-atom.
pub fn message_id(id: &str, domain: &str) -> String {
    let mut local = String::with_capacity(id.len() + 16);
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            local.push(char::from(byte));
        } else {
            local.push_str(&format!("={byte:02X}"));
        }
    }
    format!("<{local}@{domain}>")
}

/// Whether trying again later may help.
fn classify(error: &SmtpError) -> ChannelError {
    let text = error.to_string();
    if error.is_permanent() || error.is_client() {
        ChannelError::Permanent(text)
    } else {
        // 4xx, timeouts, connection, network, TLS, unparsable replies, shutdown.
        ChannelError::Temporary(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_derived_from_the_id_and_stay_distinct() {
        assert_eq!(
            message_id("order:o-1:3:0", "shop.example"),
            "<order=3Ao-1=3A3=3A0@shop.example>"
        );
        assert_ne!(message_id("a:b", "d"), message_id("a_b", "d"));
        assert_ne!(message_id("a:b", "d"), message_id("a=3Ab", "d"));
    }

    #[test]
    fn bad_urls_are_refused_naming_what_is_wrong() {
        let timeout = Duration::from_secs(1);
        assert!(matches!(
            SmtpChannel::from_url("not a url", timeout),
            Err(NotifyConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            SmtpChannel::from_url("http://host:25?from=a@b.c", timeout),
            Err(NotifyConfigError::Scheme { .. })
        ));
        assert!(matches!(
            SmtpChannel::from_url("smtp://host:25", timeout),
            Err(NotifyConfigError::MissingFrom)
        ));
        assert!(matches!(
            SmtpChannel::from_url("smtp://host:25?from=nobody", timeout),
            Err(NotifyConfigError::InvalidFrom { .. })
        ));
        assert!(
            SmtpChannel::from_url("smtp://u:p@host:2525?from=shop@example.com", timeout).is_ok()
        );
    }
}
