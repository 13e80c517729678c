//! SMS and push through a provider's webhook: one JSON POST per message.
//!
//! Body: `{"id", "channel", "to", "subject", "body"}`; header `Idempotency-Key: <id>` (the
//! event id), so a provider that honours it drops a resend. Redirects are not followed (a
//! redirected POST would be replayed as something else).
//!
//! Errors: no answer in time, a refused or broken connection, `5xx`, `408` and `429` are
//! [`ChannelError::Temporary`]; other `4xx` and any other non-`2xx` answer are
//! [`ChannelError::Permanent`].
//!
//! Only `http://` URLs: the workspace's reqwest is built without TLS, and enabling reqwest's
//! rustls without a provider would make every other reqwest client in the build panic at
//! construction unless a process-wide provider were installed. An HTTPS provider is reached
//! through a local forwarding proxy until then.

use std::time::Duration;

use async_trait::async_trait;
use emporium_actors::notification::{ChannelError, NotificationChannel, OutgoingMessage};
use reqwest::StatusCode;
use serde::Serialize;

use crate::NotifyConfigError;

/// Posts [`OutgoingMessage`]s to one URL.
#[derive(Clone, Debug)]
pub struct WebhookChannel {
    client: reqwest::Client,
    url: url::Url,
}

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    channel: &'a str,
    to: &'a str,
    subject: &'a str,
    body: &'a str,
}

impl WebhookChannel {
    /// A channel posting to `url`; `setting` names it in errors (`sms_webhook`, …).
    pub fn new(
        setting: &'static str,
        url: &str,
        timeout: Duration,
    ) -> Result<Self, NotifyConfigError> {
        let url = url::Url::parse(url).map_err(|error| NotifyConfigError::InvalidUrl {
            setting,
            reason: error.to_string(),
        })?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(NotifyConfigError::Scheme {
                setting,
                scheme: url.scheme().to_owned(),
                expected: "http with a host (https is not supported, see the crate docs)",
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Webhooks are http:// only; the TLS settings are explicit anyway so the client
            // never looks for a process-wide crypto provider (the build's reqwest has none
            // of its own, and a library must not depend on one being installed).
            .use_preconfigured_tls(unused_tls().map_err(|error| NotifyConfigError::Client {
                setting,
                reason: format!("TLS: {error}"),
            })?)
            .build()
            .map_err(|error| NotifyConfigError::Client {
                setting,
                reason: error.to_string(),
            })?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl NotificationChannel for WebhookChannel {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError> {
        let payload = Payload {
            id: &message.id,
            channel: message.channel.as_str(),
            to: &message.to,
            subject: &message.subject,
            body: &message.body,
        };
        let response = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", &message.id)
            .json(&payload)
            .send()
            .await
            .map_err(|error| classify_error(&error))?;
        classify_status(response.status())
    }
}

/// What an answer's status means for the message.
pub fn classify_status(status: StatusCode) -> Result<(), ChannelError> {
    if status.is_success() {
        return Ok(());
    }
    let text = format!("the webhook answered {status}");
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(ChannelError::Temporary(text))
    } else {
        Err(ChannelError::Permanent(text))
    }
}

fn classify_error(error: &reqwest::Error) -> ChannelError {
    if error.is_builder() {
        ChannelError::Permanent(format!("the webhook request could not be built: {error}"))
    } else {
        // Timeouts, refused or reset connections, a body cut short.
        ChannelError::Temporary(format!("the webhook call failed: {error}"))
    }
}

/// A TLS configuration on the build's one provider (aws-lc-rs) with no roots: never used
/// (webhooks are http://), it only spares the client a provider lookup.
fn unused_tls() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_temporary_other_refusals_permanent() {
        assert_eq!(classify_status(StatusCode::OK), Ok(()));
        assert_eq!(classify_status(StatusCode::ACCEPTED), Ok(()));
        for temporary in [500, 502, 503, 408, 429] {
            let status = StatusCode::from_u16(temporary).unwrap();
            assert!(matches!(
                classify_status(status),
                Err(ChannelError::Temporary(_))
            ));
        }
        for permanent in [400, 401, 404, 422, 302] {
            let status = StatusCode::from_u16(permanent).unwrap();
            assert!(matches!(
                classify_status(status),
                Err(ChannelError::Permanent(_))
            ));
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        let timeout = Duration::from_secs(1);
        assert!(WebhookChannel::new("sms_webhook", "http://127.0.0.1:9/sms", timeout).is_ok());
        for bad in ["https://sms.example/send", "ftp://x/y", "nonsense"] {
            let error = WebhookChannel::new("sms_webhook", bad, timeout).unwrap_err();
            assert!(error.to_string().starts_with("sms_webhook"), "{error}");
        }
    }
}
