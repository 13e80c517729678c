//! The conformance suite of the [`EventBus`] port: the contract written in
//! [`crate::events`], executable, run by every adapter's own tests (feature `conformance`).
//!
//! ```ignore
//! async fn open_bus() -> Option<emporium_runtime::events::conformance::BusFixture> { … }
//! emporium_runtime::event_bus_conformance!(open_bus);
//! ```
//!
//! The macro expands to a module with one `#[tokio::test]` per case. A factory that cannot
//! reach its service returns [`crate::store::conformance::service_unavailable`] (skipped
//! loudly, or a failure under `EMPORIUM_REQUIRE_SERVICES=1`).
//!
//! Every case publishes only under the fixture's `prefix` and uses consumer names of its
//! own, so cases may share one bus. Waits are bounded by the fixture's ack wait: a case
//! fails on a message that never comes, never on one that comes late.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Delivery, EventBus, EventEnvelope, Subscription};
use crate::store::conformance::unique_suffix;

/// What an adapter's factory hands to each case.
pub struct BusFixture {
    pub bus: Arc<dyn EventBus>,
    /// Every subject of the case starts with `{prefix}.`; the bus must accept them all.
    pub prefix: String,
    /// The bus's ack wait: how long the suite may wait for a redelivery.
    pub ack_wait: Duration,
    /// Run after the case (deleting a stream, …).
    pub cleanup: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl BusFixture {
    /// Run the cleanup, if any.
    pub async fn finish(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.await;
        }
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    /// Long enough for a redelivery plus a slow server, bounded so a hang fails the case.
    fn patience(&self) -> Duration {
        self.ack_wait * 4 + Duration::from_secs(10)
    }
}

/// A consumer name owned by one case (letters, digits, `_` and `-` only: valid on NATS).
fn consumer_name(case: &str) -> String {
    format!("conf-{case}-{}", unique_suffix())
}

fn envelope(id: &str, subject: &str, payload: &str) -> EventEnvelope {
    EventEnvelope {
        id: id.to_owned(),
        subject: subject.to_owned(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

async fn publish_ok(bus: &dyn EventBus, batch: &[EventEnvelope]) {
    let results = bus.publish(batch).await;
    assert_eq!(results.len(), batch.len(), "one result per envelope");
    for result in results {
        if let Err(error) = result {
            panic!("publish failed: {error}");
        }
    }
}

async fn subscribe_ok(fixture: &BusFixture, consumer: &str, filter: &str) -> Box<dyn Subscription> {
    match fixture.bus.subscribe(consumer, filter).await {
        Ok(subscription) => subscription,
        Err(error) => panic!("subscribe {consumer} to {filter} failed: {error}"),
    }
}

async fn receive(fixture: &BusFixture, subscription: &mut dyn Subscription) -> Delivery {
    match tokio::time::timeout(fixture.patience(), subscription.next()).await {
        Ok(Ok(delivery)) => delivery,
        Ok(Err(error)) => panic!("receive failed: {error}"),
        Err(_) => panic!("no delivery within {:?}", fixture.patience()),
    }
}

/// Receive the next delivery whose id is not in `acked` (a late redelivery of an already
/// acknowledged message is allowed by at-least-once), and acknowledge it.
async fn receive_new(
    fixture: &BusFixture,
    subscription: &mut dyn Subscription,
    acked: &mut Vec<String>,
) -> Delivery {
    loop {
        let delivery = receive(fixture, subscription).await;
        if acked.contains(&delivery.id) {
            ack_ok(delivery).await;
            continue;
        }
        acked.push(delivery.id.clone());
        return delivery;
    }
}

async fn ack_ok(delivery: Delivery) {
    if let Err(error) = delivery.ack().await {
        panic!("ack failed: {error}");
    }
}

async fn receive_ids(
    fixture: &BusFixture,
    subscription: &mut dyn Subscription,
    n: usize,
) -> Vec<String> {
    let mut acked = Vec::new();
    for _ in 0..n {
        let delivery = receive_new(fixture, subscription, &mut acked).await;
        ack_ok(delivery).await;
    }
    acked
}

/// Published envelopes arrive with their subject and payload, first delivery count 1.
pub async fn publish_then_receive_and_ack(fixture: &BusFixture) {
    let subject = fixture.subject("basic.created");
    let id = format!("basic-{}", unique_suffix());
    publish_ok(&*fixture.bus, &[envelope(&id, &subject, "{\"n\":1}")]).await;

    let mut subscription = subscribe_ok(fixture, &consumer_name("basic"), &subject).await;
    let delivery = receive(fixture, &mut *subscription).await;
    assert_eq!(delivery.id, id);
    assert_eq!(delivery.subject, subject);
    assert_eq!(delivery.payload, Bytes::from_static(b"{\"n\":1}"));
    assert_eq!(delivery.delivery_count, 1);
    ack_ok(delivery).await;
}

/// An id published twice (separately, even with another payload) is stored once.
pub async fn republished_id_is_stored_once(fixture: &BusFixture) {
    let subject = fixture.subject("dedup.event");
    let id = format!("dup-{}", unique_suffix());
    let marker = format!("marker-{}", unique_suffix());
    publish_ok(&*fixture.bus, &[envelope(&id, &subject, "first")]).await;
    publish_ok(&*fixture.bus, &[envelope(&id, &subject, "second")]).await;
    // The marker, published after, must be the very next message: nothing in between.
    publish_ok(&*fixture.bus, &[envelope(&marker, &subject, "marker")]).await;

    let mut subscription = subscribe_ok(fixture, &consumer_name("dedup"), &subject).await;
    let ids = receive_ids(fixture, &mut *subscription, 2).await;
    assert_eq!(ids, vec![id, marker]);
}

/// First deliveries on one subject follow publish order, within and across batches.
pub async fn order_within_a_subject_is_publish_order(fixture: &BusFixture) {
    let subject = fixture.subject("order.line");
    let suffix = unique_suffix();
    let ids: Vec<String> = (0..30).map(|n| format!("ord-{suffix}-{n:02}")).collect();
    let batch: Vec<EventEnvelope> = ids.iter().map(|id| envelope(id, &subject, id)).collect();
    publish_ok(&*fixture.bus, &batch[..20]).await;
    publish_ok(&*fixture.bus, &batch[20..]).await;

    let mut subscription = subscribe_ok(fixture, &consumer_name("order"), &subject).await;
    let received = receive_ids(fixture, &mut *subscription, ids.len()).await;
    assert_eq!(received, ids);
}

/// A durable consumer subscribed again continues after its last acknowledgement.
pub async fn durable_consumer_resumes_after_resubscribe(fixture: &BusFixture) {
    let subject = fixture.subject("resume.step");
    let suffix = unique_suffix();
    let ids: Vec<String> = (0..3).map(|n| format!("res-{suffix}-{n}")).collect();
    let batch: Vec<EventEnvelope> = ids.iter().map(|id| envelope(id, &subject, id)).collect();
    publish_ok(&*fixture.bus, &batch).await;

    let consumer = consumer_name("resume");
    let mut first = subscribe_ok(fixture, &consumer, &subject).await;
    let mut acked = receive_ids(fixture, &mut *first, 2).await;
    assert_eq!(acked, ids[..2]);
    drop(first);

    let mut second = subscribe_ok(fixture, &consumer, &subject).await;
    let next = receive_new(fixture, &mut *second, &mut acked).await;
    assert_eq!(
        next.id, ids[2],
        "resumes where its acknowledgements left off"
    );
    ack_ok(next).await;
}

/// An unacknowledged message comes back after the ack wait, its delivery count growing.
pub async fn unacked_message_is_redelivered_with_growing_count(fixture: &BusFixture) {
    let subject = fixture.subject("redeliver.one");
    let id = format!("redo-{}", unique_suffix());
    publish_ok(&*fixture.bus, &[envelope(&id, &subject, "again")]).await;

    let mut subscription = subscribe_ok(fixture, &consumer_name("redeliver"), &subject).await;
    for expected in 1..=3 {
        let delivery = receive(fixture, &mut *subscription).await;
        assert_eq!(delivery.id, id);
        assert_eq!(delivery.delivery_count, expected);
        if expected == 3 {
            ack_ok(delivery).await;
        }
    }
    // Acknowledged: the next message is a new one, not a fourth delivery.
    let marker = format!("after-{}", unique_suffix());
    publish_ok(&*fixture.bus, &[envelope(&marker, &subject, "next")]).await;
    let next = receive(fixture, &mut *subscription).await;
    assert_eq!(next.id, marker);
    ack_ok(next).await;
}

/// Filters select subjects with `*` (one token) and `>` (the rest).
pub async fn filters_select_subjects(fixture: &BusFixture) {
    let suffix = unique_suffix();
    let published = [
        ("a.x", format!("f-{suffix}-ax")),
        ("b.x", format!("f-{suffix}-bx")),
        ("a.y.z", format!("f-{suffix}-ayz")),
    ];
    let batch: Vec<EventEnvelope> = published
        .iter()
        .map(|(rest, id)| envelope(id, &fixture.subject(&format!("filter.{rest}")), id))
        .collect();
    publish_ok(&*fixture.bus, &batch).await;

    let under_a = fixture.subject("filter.a.>");
    let mut tail = subscribe_ok(fixture, &consumer_name("tail"), &under_a).await;
    let ids = receive_ids(fixture, &mut *tail, 2).await;
    assert_eq!(ids, vec![published[0].1.clone(), published[2].1.clone()]);

    let any_x = fixture.subject("filter.*.x");
    let mut one = subscribe_ok(fixture, &consumer_name("one"), &any_x).await;
    let ids = receive_ids(fixture, &mut *one, 2).await;
    assert_eq!(ids, vec![published[0].1.clone(), published[1].1.clone()]);
}

/// Runs the whole [`EventBus`] conformance suite against the buses `$factory` opens (an
/// `async fn() -> Option<BusFixture>`). Expands to `mod event_bus_conformance` with one
/// multi-threaded `#[tokio::test]` per case.
#[macro_export]
macro_rules! event_bus_conformance {
    ($factory:path) => {
        mod event_bus_conformance {
            #[allow(unused_imports)]
            use super::*;

            $crate::__event_bus_conformance_cases! {
                $factory;
                publish_then_receive_and_ack,
                republished_id_is_stored_once,
                order_within_a_subject_is_publish_order,
                durable_consumer_resumes_after_resubscribe,
                unacked_message_is_redelivered_with_growing_count,
                filters_select_subjects
            }
        }
    };
}

/// The body of [`event_bus_conformance!`]: one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __event_bus_conformance_cases {
    ($factory:path; $($case:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture): ::std::option::Option<
                    $crate::events::conformance::BusFixture,
                > = $factory().await
                else {
                    return;
                };
                $crate::events::conformance::$case(&fixture).await;
                fixture.finish().await;
            }
        )+
    };
}
