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
