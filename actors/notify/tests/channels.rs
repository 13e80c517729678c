//! The adapters against real servers from the test kit: an SMTP sink and a webhook sink on
//! loopback (always available, so nothing here is skipped), then the notification actor
//! delivering through a router built from settings.

use std::sync::Arc;
use std::time::Duration;

use emporium_actors::events::{DomainEnvelope, DomainEvent};
use emporium_actors::notification::{
    ChannelError, ChannelKind, Delivery, DevSink, NotificationActor, NotificationChannel,
    Notifications, OutgoingMessage,
};
use emporium_notify::{
    NotifyConfigError, NotifySettings, SmtpChannel, WebhookChannel, router_from_settings,
};
use emporium_runtime::Runtime;
use emporium_runtime::events::{Envelope, Event, EventSource};
use emporium_runtime::store::MemoryStore;
use emporium_testkit::smtp_sink::SmtpSink;
use emporium_testkit::webhook_sink::WebhookSink;

const WAIT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(3);

fn message(channel: ChannelKind, to: &str) -> OutgoingMessage {
    OutgoingMessage {
        id: "order:o-1:3:0".to_owned(),
        channel,
        to: to.to_owned(),
        subject: "Your order o-1 has shipped".to_owned(),
        body: "Good news: order o-1 is on its way.".to_owned(),
    }
}

fn smtp(sink: &SmtpSink) -> SmtpChannel {
    SmtpChannel::from_url(&format!("{}?from=shop@emporium.test", sink.url()), TIMEOUT).unwrap()
}

#[tokio::test]
async fn an_email_arrives_with_its_recipient_subject_body_and_message_id() {
    let sink = SmtpSink::start().await.unwrap();
    smtp(&sink)
        .send(&message(ChannelKind::Email, "ada@example.com"))
        .await
        .unwrap();
    let messages = sink.wait_for(1, WAIT).await.expect("the e-mail arrives");
    let mail = &messages[0];
    assert_eq!(mail.from, "shop@emporium.test");
    assert_eq!(mail.recipients, ["ada@example.com"]);
    assert_eq!(mail.subject.as_deref(), Some("Your order o-1 has shipped"));
    assert_eq!(mail.header("To").as_deref(), Some("ada@example.com"));
    assert!(
        mail.body().contains("Good news: order o-1 is on its way."),
        "{}",
        mail.data
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<order=3Ao-1=3A3=3A0@emporium.test>")
    );
}

#[tokio::test]
async fn smtp_4xx_is_temporary_and_5xx_permanent() {
    let sink = SmtpSink::start().await.unwrap();
    let channel = smtp(&sink);
    let email = message(ChannelKind::Email, "ada@example.com");
    sink.reject_next(1, "451 4.3.0 try again later");
    let error = channel.send(&email).await.unwrap_err();
    assert!(matches!(error, ChannelError::Temporary(_)), "{error:?}");
    sink.reject_next(1, "550 5.7.1 refused");
    let error = channel.send(&email).await.unwrap_err();
    assert!(matches!(error, ChannelError::Permanent(_)), "{error:?}");
    channel.send(&email).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_smtp_server_that_is_not_there_is_temporary() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: connections are refused
    let url = format!("smtp://127.0.0.1:{port}?from=shop@emporium.test");
    let channel = SmtpChannel::from_url(&url, TIMEOUT).unwrap();
    let error = channel
        .send(&message(ChannelKind::Email, "ada@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(error, ChannelError::Temporary(_)), "{error:?}");
}

#[tokio::test]
async fn a_webhook_call_arrives_as_json_with_the_idempotency_key() {
    let sink = WebhookSink::start().await.unwrap();
    let channel = WebhookChannel::new("sms_webhook", &sink.url("/sms"), TIMEOUT).unwrap();
    channel
        .send(&message(ChannelKind::Sms, "+4915112345678"))
        .await
        .unwrap();
    let calls = sink.wait_for(1, WAIT).await.expect("the call arrives");
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.path, "/sms");
    assert_eq!(call.header("Idempotency-Key"), Some("order:o-1:3:0"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "id": "order:o-1:3:0",
            "channel": "sms",
            "to": "+4915112345678",
            "subject": "Your order o-1 has shipped",
            "body": "Good news: order o-1 is on its way.",
        })
    );
}

#[tokio::test]
async fn a_webhook_500_is_temporary_and_the_retry_carries_the_same_key() {
    let sink = WebhookSink::start().await.unwrap();
    let channel = WebhookChannel::new("push_webhook", &sink.url("/push"), TIMEOUT).unwrap();
    let push = message(ChannelKind::Push, "device-token");
    sink.fail_next(1);
    let error = channel.send(&push).await.unwrap_err();
    assert!(matches!(error, ChannelError::Temporary(_)), "{error:?}");
    channel.send(&push).await.unwrap();
    let calls = sink.wait_for(2, WAIT).await.unwrap();
    assert_eq!(calls[0].status, 500);
    assert_eq!(calls[1].status, 200);
    assert_eq!(
        calls[0].header("idempotency-key"),
        calls[1].header("idempotency-key")
    );
}

#[test]
fn unset_settings_leave_the_dev_sink_and_bad_ones_name_the_setting() {
    let dev = Arc::new(DevSink::new(10));
    assert!(router_from_settings(&NotifySettings::default(), dev.clone()).is_ok());
    let blank = NotifySettings {
        smtp_url: Some("  ".to_owned()),
        ..NotifySettings::default()
    };
    assert!(router_from_settings(&blank, dev.clone()).is_ok());
    let bad_push = NotifySettings {
        push_webhook: Some("https://push.example/send".to_owned()),
        ..NotifySettings::default()
    };
    let error = router_from_settings(&bad_push, dev.clone()).err().unwrap();
    assert!(
        matches!(
            error,
            NotifyConfigError::Scheme {
                setting: "push_webhook",
                ..
            }
        ),
        "{error:?}"
    );
    let no_from = NotifySettings {
        smtp_url: Some("smtp://127.0.0.1:25".to_owned()),
        ..NotifySettings::default()
    };
    assert_eq!(
        router_from_settings(&no_from, dev).err(),
        Some(NotifyConfigError::MissingFrom)
    );
}

fn welcome(user_id: &str, email: &str) -> DomainEnvelope {
    Envelope {
        id: format!("user:{user_id}:1:0"),
        source: EventSource {
            kind: "user".to_owned(),
            key: user_id.to_owned(),
        },
        version: 1,
        time: 1_765_000_000_000,
        schema: DomainEvent::SCHEMA,
        event: DomainEvent::UserRegistered {
            user_id: user_id.to_owned(),
            email: email.to_owned(),
            name: "Ada".to_owned(),
        },
    }
}

#[tokio::test]
async fn the_notification_actor_mails_through_smtp_and_keeps_sms_on_the_dev_sink() {
    let smtp_sink = SmtpSink::start().await.unwrap();
    let dev = Arc::new(DevSink::new(10));
    let settings = NotifySettings {
        smtp_url: Some(format!("{}?from=shop@emporium.test", smtp_sink.url())),
        ..NotifySettings::default()
    };
    let router = router_from_settings(&settings, dev.clone()).unwrap();
    let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
        .register(emporium_actors::UserActor)
        .register(NotificationActor::new(router, Vec::new()))
        .build()
        .await
        .unwrap();
    let notifications = Notifications::new(runtime);
    let mut preferences = notifications.preferences("u-1").await.unwrap();
    preferences.sms = true;
    preferences.sms_number = Some("+4915112345678".to_owned());
    assert!(
        notifications
            .set_preferences("u-1", preferences)
            .await
            .unwrap()
            .is_ok()
    );

    let delivered = notifications
        .deliver(welcome("u-1", "ada@example.com"))
        .await;
    assert_eq!(delivered.unwrap(), Some(Delivery::Applied));
    let again = notifications
        .deliver(welcome("u-1", "ada@example.com"))
        .await;
    assert_eq!(again.unwrap(), Some(Delivery::Duplicate));

    let mails = smtp_sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject.as_deref(), Some("Welcome to Emporium"));
    assert_eq!(mails[0].recipients, ["ada@example.com"]);
    let kept = dev.recent(10);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message.channel, ChannelKind::Sms);
    assert_eq!(kept[0].message.to, "+4915112345678");
}
