//! The notification actor on the in-memory store with a manual clock: exactly-once by
//! event id, preferences, retries after temporary failures, permanent failures, the admin
//! stock alert, and the log bound.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use emporium_runtime::events::{Envelope, Event, EventSource};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{ManualClock, Runtime};

use super::*;
use crate::user::{NewAccount, PasswordHash, Role, UserName};

const START_MS: u64 = 1_765_000_000_000;
const USER: &str = "u-1";
const USER_EMAIL: &str = "ada@example.com";

/// A channel that records what it is given and fails as told.
#[derive(Default)]
struct Scripted {
    sent: Mutex<Vec<OutgoingMessage>>,
    /// Failures to answer before accepting, in order.
    failures: Mutex<Vec<ChannelError>>,
    attempts: Mutex<usize>,
}

impl Scripted {
    fn fail_next(&self, error: ChannelError) {
        self.lock(&self.failures).push(error);
    }

    fn sent(&self) -> Vec<OutgoingMessage> {
        self.lock(&self.sent).clone()
    }

    fn attempts(&self) -> usize {
        *self.lock(&self.attempts)
    }

    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl NotificationChannel for Scripted {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), ChannelError> {
        *self.lock(&self.attempts) += 1;
        let failure = {
            let mut failures = self.lock(&self.failures);
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        if let Some(error) = failure {
            return Err(error);
        }
        self.lock(&self.sent).push(message.clone());
        Ok(())
    }
}

struct Shop {
    runtime: Runtime,
    notifications: Notifications,
    email: Arc<Scripted>,
    sms: Arc<Scripted>,
    clock: Arc<ManualClock>,
}

async fn shop() -> Shop {
    let email = Arc::new(Scripted::default());
    let sms = Arc::new(Scripted::default());
    let router = ChannelRouter::new(Arc::new(DevSink::new(10)))
        .with(ChannelKind::Email, email.clone())
        .with(ChannelKind::Sms, sms.clone());
    let admins = vec![
        Email::parse("ops@example.com").unwrap(),
        Email::parse("boss@example.com").unwrap(),
    ];
    let clock = Arc::new(ManualClock::new(START_MS));
    let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
        .clock(clock.clone())
        .register(UserActor)
        .register(NotificationActor::new(router, admins))
        .build()
        .await
        .expect("runtime starts");
    create_user(&runtime, USER, USER_EMAIL).await;
    Shop {
        notifications: Notifications::new(runtime.clone()),
        runtime,
        email,
        sms,
        clock,
    }
}

async fn create_user(runtime: &Runtime, user_id: &str, email: &str) {
    let account = NewAccount {
        user_id: user_id.to_owned(),
        email: Email::parse(email).unwrap(),
        name: UserName::parse("Ada").unwrap(),
        password_hash: serde_json::from_value::<PasswordHash>("not-a-real-hash".into()).unwrap(),
        roles: vec![Role::Customer],
    };
    let reply = runtime
        .actor::<UserActor>(user_id)
        .ask(UserCommand::Create(account))
        .await
        .unwrap();
    assert!(matches!(reply, UserReply::Created { created: true, .. }));
}

/// The envelope the order actor would have raised as its `version`-th change.
fn envelope(event: DomainEvent, version: u64) -> DomainEnvelope {
    let source = event.subject().rsplit('.').nth(1).unwrap_or("x").to_owned();
    Envelope {
        id: format!("{source}:k:{version}:0"),
        source: EventSource {
            kind: source,
            key: "k".to_owned(),
        },
        version,
        time: START_MS,
        schema: DomainEvent::SCHEMA,
        event,
    }
}

fn shipped(version: u64) -> DomainEnvelope {
    envelope(
        DomainEvent::OrderShipped {
            order_id: "o-1".to_owned(),
            user_id: USER.to_owned(),
        },
        version,
    )
}

fn stock_low() -> DomainEnvelope {
    envelope(
        DomainEvent::StockLow {
            sku: "MUG".to_owned(),
            available: 2,
            threshold: 5,
        },
        7,
    )
}

impl Shop {
    async fn deliver(&self, envelope: DomainEnvelope) -> Option<Delivery> {
        self.notifications.deliver(envelope).await.unwrap()
    }

    async fn deliver_to(&self, recipient: &str, envelope: DomainEnvelope) -> Delivery {
        let command = NotificationCommand::Deliver(Box::new(envelope));
        match self
            .runtime
            .actor::<NotificationActor>(recipient)
            .ask(command)
            .await
            .unwrap()
        {
            NotificationReply::Delivery(delivery) => delivery,
            other => panic!("unexpected reply {other:?}"),
        }
    }

    async fn set(&self, change: impl FnOnce(&mut NotificationPreferences)) {
        let mut preferences = self.notifications.preferences(USER).await.unwrap();
        change(&mut preferences);
        let stored = self
            .notifications
            .set_preferences(USER, preferences.clone())
            .await
            .unwrap();
        assert_eq!(stored, Ok(preferences));
    }
}

#[tokio::test]
async fn an_event_is_sent_once_whatever_the_redeliveries() {
    let shop = shop().await;
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Applied));
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Duplicate));
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Duplicate));
    let sent = shop.email.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "order:k:3:0");
    assert_eq!(sent[0].to, USER_EMAIL);
    assert_eq!(sent[0].subject, "Your order o-1 has shipped");
    // Another event of the same order is another notification.
    assert_eq!(shop.deliver(shipped(4)).await, Some(Delivery::Applied));
    assert_eq!(shop.email.sent().len(), 2);
}

#[tokio::test]
async fn the_log_keeps_each_send_with_its_time_newest_first() {
    let shop = shop().await;
    shop.deliver(shipped(3)).await;
    shop.clock.advance_ms(1_000);
    shop.deliver(shipped(4)).await;
    let recent = shop.notifications.recent(USER).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].event_id, "order:k:4:0");
    assert_eq!(recent[0].at_ms, START_MS + 1_000);
    assert_eq!(recent[0].kind, TemplateKind::Shipping);
    assert_eq!(recent[0].channel, ChannelKind::Email);
    assert_eq!(recent[0].status, SendStatus::Sent);
    assert_eq!(recent[1].at_ms, START_MS);
}

#[tokio::test]
async fn opting_out_of_order_updates_stops_order_mail_but_not_the_rest() {
    let shop = shop().await;
    shop.set(|p| p.order_updates = false).await;
    let skipped = shop.deliver(shipped(3)).await;
    assert!(matches!(skipped, Some(Delivery::Skipped(_))), "{skipped:?}");
    let abandoned = envelope(
        DomainEvent::CartAbandoned {
            cart_id: "c-1".to_owned(),
            user_id: Some(USER.to_owned()),
            lines: Vec::new(),
            subtotal_cents: 0,
            currency: "USD".to_owned(),
            variants: Default::default(),
        },
        2,
    );
    assert_eq!(shop.deliver(abandoned).await, Some(Delivery::Applied));
    let subjects: Vec<_> = shop.email.sent().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects, ["You left something in your cart"]);
}

#[tokio::test]
async fn enabled_channels_get_it_and_disabled_ones_do_not() {
    let shop = shop().await;
    shop.set(|p| {
        p.email = false;
        p.sms = true;
        p.sms_number = Some("+4915112345678".to_owned());
    })
    .await;
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Applied));
    assert!(shop.email.sent().is_empty());
    let sms = shop.sms.sent();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].to, "+4915112345678");
    assert_eq!(sms[0].channel, ChannelKind::Sms);
}

#[tokio::test]
async fn invalid_preferences_are_refused_naming_the_field_and_change_nothing() {
    let shop = shop().await;
    let preferences = NotificationPreferences {
        sms: true,
        sms_number: Some("call me".to_owned()),
        ..Default::default()
    };
    let refused = shop
        .notifications
        .set_preferences(USER, preferences)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.field(), "sms_number");
    assert_eq!(
        shop.notifications.preferences(USER).await.unwrap(),
        NotificationPreferences::default()
    );
}

#[tokio::test]
async fn a_temporary_failure_asks_for_a_retry_and_the_redelivery_sends_it() {
    let shop = shop().await;
    shop.email
        .fail_next(ChannelError::Temporary("421 try later".to_owned()));
    let retry = shop.deliver(shipped(3)).await;
    assert!(matches!(retry, Some(Delivery::Retry(_))), "{retry:?}");
    assert!(shop.notifications.recent(USER).await.unwrap().is_empty());
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Applied));
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Duplicate));
    assert_eq!(shop.email.attempts(), 2);
    assert_eq!(shop.email.sent().len(), 1);
}

#[tokio::test]
async fn a_permanent_failure_is_logged_as_failed_and_applied() {
    let shop = shop().await;
    shop.email
        .fail_next(ChannelError::Permanent("550 no such mailbox".to_owned()));
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Applied));
    assert_eq!(shop.deliver(shipped(3)).await, Some(Delivery::Duplicate));
    let recent = shop.notifications.recent(USER).await.unwrap();
    assert!(
        matches!(&recent[0].status, SendStatus::Failed(reason) if reason.contains("550")),
        "{recent:?}"
    );
    assert_eq!(shop.email.attempts(), 1);
}

#[tokio::test]
async fn a_low_stock_alert_goes_to_every_admin() {
    let shop = shop().await;
    assert_eq!(recipient(&stock_low().event), Some(ADMINS));
    assert_eq!(shop.deliver(stock_low()).await, Some(Delivery::Applied));
    let sent = shop.email.sent();
    let to: Vec<_> = sent.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, ["ops@example.com", "boss@example.com"]);
    assert!(sent.iter().all(|m| m.subject == "Low stock: MUG"));
    assert_eq!(shop.deliver(stock_low()).await, Some(Delivery::Duplicate));
    // Delivered to a user by mistake, it is not theirs to get.
    let misrouted = shop.deliver_to(USER, stock_low()).await;
    assert!(matches!(misrouted, Delivery::Skipped(_)), "{misrouted:?}");
}

#[tokio::test]
async fn the_welcome_uses_the_address_in_the_event() {
    let shop = shop().await;
    let registered = envelope(
        DomainEvent::UserRegistered {
            user_id: "u-2".to_owned(),
            email: "grace@example.com".to_owned(),
            name: "Grace".to_owned(),
        },
        1,
    );
    assert_eq!(shop.deliver(registered).await, Some(Delivery::Applied));
    let sent = shop.email.sent();
    assert_eq!(sent[0].to, "grace@example.com");
    assert!(sent[0].body.starts_with("Hello Grace"));
}

#[tokio::test]
async fn events_without_a_notification_or_an_account_send_nothing() {
    let shop = shop().await;
    let logged_in = envelope(
        DomainEvent::UserLoggedIn {
            user_id: USER.to_owned(),
        },
        2,
    );
    assert_eq!(shop.deliver(logged_in.clone()).await, None);
    let skipped = shop.deliver_to(USER, logged_in).await;
    assert!(matches!(skipped, Delivery::Skipped(_)));
    let unknown_user = envelope(
        DomainEvent::OrderShipped {
            order_id: "o-9".to_owned(),
            user_id: "nobody".to_owned(),
        },
        2,
    );
    let skipped = shop.deliver(unknown_user).await;
    assert!(matches!(skipped, Some(Delivery::Skipped(_))), "{skipped:?}");
    assert!(shop.email.sent().is_empty());
}

#[tokio::test]
async fn the_log_is_bounded() {
    let shop = shop().await;
    for version in 1..=(LOG_LEN as u64 + 5) {
        assert_eq!(
            shop.deliver(shipped(version)).await,
            Some(Delivery::Applied)
        );
    }
    let recent = shop.notifications.recent(USER).await.unwrap();
    assert_eq!(recent.len(), LOG_LEN);
    assert_eq!(recent[0].event_id, format!("order:k:{}:0", LOG_LEN + 5));
}

#[test]
fn bounded_queues_forget_the_oldest_first() {
    let mut queue = VecDeque::new();
    for item in 0..5 {
        push_bounded(&mut queue, item, 3);
    }
    assert_eq!(queue, [2, 3, 4]);
}
