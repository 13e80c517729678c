//! What only the JetStream adapter can show: how its failures map to the port's errors.

mod support;

use std::time::Duration;

use bytes::Bytes;
use emporium_events_nats::{JetStreamBus, JetStreamSettings, StartError};
use emporium_runtime::events::{EventBus, EventEnvelope, PublishError};

#[tokio::test]
async fn refused_connection_fails_start() {
    // Port 1 on loopback: nothing listens, the kernel refuses at once.
    let result = JetStreamBus::start(JetStreamSettings::new("nats://127.0.0.1:1")).await;
    assert!(
        matches!(result, Err(StartError::Connect { .. })),
        "expected a connect error"
    );
}

#[tokio::test]
async fn subject_outside_the_stream_is_not_stored() {
    let Some((bus, prefix)) = support::fresh_bus().await else {
        return;
    };
    let batch = [
        EventEnvelope {
            id: "inside".to_owned(),
            subject: format!("{prefix}.in"),
            payload: Bytes::from_static(b"1"),
        },
        EventEnvelope {
            id: "outside".to_owned(),
            subject: format!("nowhere.{prefix}"),
            payload: Bytes::from_static(b"2"),
        },
    ];
    let results = tokio::time::timeout(Duration::from_secs(30), bus.publish(&batch))
        .await
        .expect("publish answers");
    assert_eq!(results[0], Ok(()));
    match &results[1] {
        Err(error @ PublishError::NotStored { .. }) => assert_eq!(error.id(), "outside"),
        other => panic!("expected NotStored for a subject no stream holds, got {other:?}"),
    }
    bus.delete_stream().await.expect("delete test stream");
}

/// An acknowledgement that never comes back is `Unknown`, and re-publishing the same id
/// afterwards stores it once (the duplicate window at work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acknowledgement_is_unknown_and_republishing_stores_once() {
    let Some(url) = support::test_nats_url() else {
        return;
    };
    let upstream = emporium_testkit::nats_addr(&url).await;
    let proxy = emporium_testkit::TcpProxy::start(upstream).await;
    let via_proxy = format!("nats://{}", proxy.addr);
    let Some((bus, prefix)) = support::fresh_bus_at(&via_proxy, Duration::from_secs(1)).await
    else {
        return;
    };
    let envelope = EventEnvelope {
        id: format!("lost-{prefix}"),
        subject: format!("{prefix}.lost"),
        payload: Bytes::from_static(b"once"),
    };

    // The server stores the message; its acknowledgement arrives after the 1 s timeout.
    proxy.delay_replies(3_000);
    let results = bus.publish(std::slice::from_ref(&envelope)).await;
    assert!(
        matches!(&results[0], Err(PublishError::Unknown { .. })),
        "expected Unknown, got {results:?}"
    );
    proxy.delay_replies(0);
    // Let the held answers drain before the next request.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let marker = EventEnvelope {
        id: format!("marker-{prefix}"),
        ..envelope.clone()
    };
    let results = bus.publish(&[envelope.clone(), marker.clone()]).await;
    assert_eq!(results, vec![Ok(()), Ok(())]);

    let mut subscription = bus
        .subscribe("lost-reader", &envelope.subject)
        .await
        .expect("subscribe");
    for expected in [&envelope.id, &marker.id] {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("a delivery in time")
            .expect("a delivery");
        assert_eq!(&delivery.id, expected, "the re-published id is stored once");
        delivery.ack().await.expect("ack");
    }
    bus.delete_stream().await.expect("delete test stream");
}

/// With a subject prefix, the application's subjects live under it on the server and come
/// back without it: two deployments with different prefixes share one server.
#[tokio::test]
async fn a_subject_prefix_namespaces_the_stream() {
    let Some(url) = support::test_nats_url() else {
        return;
    };
    let suffix = emporium_runtime::store::conformance::unique_suffix();
    let settings = JetStreamSettings {
        stream: format!("EMPORIUM_TEST_{suffix}"),
        subject_prefix: format!("ns{suffix}"),
        ack_wait: support::ACK_WAIT,
        ..JetStreamSettings::new(&url)
    };
    let bus = JetStreamBus::start(settings).await.expect("start");
    let envelope = EventEnvelope {
        id: format!("prefixed-{suffix}"),
        subject: "emporium.order.placed".to_owned(),
        payload: Bytes::from_static(b"{}"),
    };
    assert_eq!(
        bus.publish(std::slice::from_ref(&envelope)).await,
        vec![Ok(())]
    );
    let mut subscription = bus
        .subscribe("prefixed-reader", "emporium.order.>")
        .await
        .expect("subscribe");
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a delivery in time")
        .expect("a delivery");
    assert_eq!(delivery.subject, "emporium.order.placed");
    assert_eq!(delivery.id, envelope.id);
    delivery.ack().await.expect("ack");
    bus.delete_stream().await.expect("delete test stream");
}
