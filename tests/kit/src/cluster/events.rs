//! A JetStream stream of its own for each test, test cluster or bench run: its name, its
//! subject namespace on the shared NATS server, the node settings that use it, a reader, and
//! its deletion when it is dropped. Cluster mode needs NATS, so every [`super::Cluster`] has
//! one.

use std::time::Duration;

use bytes::Bytes;
use emporium_events_nats::{JetStreamBus, JetStreamSettings};
use emporium_runtime::events::{EventBus, EventEnvelope};
use emporium_runtime::store::conformance::{service_unavailable, unique_suffix};
use serde_json::Value;

use super::process::NodeSpec;

/// A fresh stream on the test server (`EMPORIUM_TEST_NATS`).
pub struct TestStream {
    /// The NATS URL the nodes use (a proxy's, when the test cuts NATS).
    pub url: String,
    settings: JetStreamSettings,
    bus: JetStreamBus,
}

/// One message read back from the stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub envelope: Value,
}

impl TestStream {
    /// The server's URL, or `None` (skipped) without one.
    pub fn server_url() -> Option<String> {
        match std::env::var("EMPORIUM_TEST_NATS") {
            Ok(url) => Some(url),
            Err(_) => service_unavailable("EMPORIUM_TEST_NATS not set"),
        }
    }

    /// A stream of its own on the test server, or `None` (skipped).
    pub async fn create() -> Option<TestStream> {
        let url = Self::server_url()?;
        Some(Self::create_at(&url, &url).await)
    }

    /// A stream on `server` (created now), used by nodes through `nodes_url`.
    pub async fn create_at(server: &str, nodes_url: &str) -> TestStream {
        let suffix = unique_suffix();
        let settings = JetStreamSettings {
            stream: format!("EMPORIUM_TEST_{suffix}"),
            subject_prefix: format!("t{suffix}"),
            max_age: Duration::from_secs(3600),
            ..JetStreamSettings::new(server)
        };
        let bus = JetStreamBus::start(settings.clone())
            .await
            .expect("create the test stream");
        TestStream {
            url: nodes_url.to_owned(),
            settings,
            bus,
        }
    }

    /// `spec` with its events on this stream.
    pub fn node_env(&self, spec: NodeSpec) -> NodeSpec {
        spec.env("EMPORIUM_EVENTS", &self.url)
            .env("EMPORIUM_NATS_STREAM", &self.settings.stream)
            .env(
                "EMPORIUM_NATS_SUBJECT_PREFIX",
                &self.settings.subject_prefix,
            )
    }

    /// The first `count` messages on `filter` (e.g. `emporium.order.>`), in stream order,
    /// through a fresh durable consumer; fails after `within`.
    pub async fn read(&self, filter: &str, count: usize, within: Duration) -> Vec<Stored> {
        let reader = format!("reader-{}", unique_suffix());
        let mut subscription = self
            .bus
            .subscribe(&reader, filter)
            .await
            .expect("subscribe");
        let mut stored = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::now() + within;
        while stored.len() < count {
            let delivery = tokio::time::timeout_at(deadline, subscription.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} of {count} messages on {filter} arrived",
                        stored.len()
                    )
                })
                .expect("a delivery");
            let envelope = serde_json::from_slice(&delivery.payload).unwrap_or(Value::Null);
            stored.push(Stored {
                subject: delivery.subject.clone(),
                envelope,
            });
            delivery.ack().await.expect("ack");
        }
        stored
    }

    /// Publish a message as it is (a poison message, a duplicate of a stored event).
    pub async fn publish(&self, id: &str, subject: &str, payload: Vec<u8>) {
        let envelope = EventEnvelope {
            id: id.to_owned(),
            subject: subject.to_owned(),
            payload: Bytes::from(payload),
        };
        let results = self.bus.publish(&[envelope]).await;
        assert_eq!(results, vec![Ok(())], "publish {id}");
    }
}

impl Drop for TestStream {
    /// Delete the stream; on a thread of its own, since a drop cannot await.
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                JetStreamBus::start(settings)
                    .await
                    .ok()?
                    .delete_stream()
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(()))) {
            eprintln!("could not delete a test stream");
        }
    }
}
