//! A fresh stream per test on the server named by `EMPORIUM_TEST_NATS`.

use std::sync::Arc;
use std::time::Duration;

use emporium_events_nats::{JetStreamBus, JetStreamSettings};
use emporium_runtime::events::conformance::BusFixture;
use emporium_runtime::store::conformance::{service_unavailable, unique_suffix};

/// Short, so redelivery cases finish in seconds.
pub const ACK_WAIT: Duration = Duration::from_secs(1);

/// A bus on its own stream `EMPORIUM_TEST_<suffix>` holding only `conf.<suffix>.>`, or
/// `None` (skipped) without a server.
pub async fn fresh_bus() -> Option<(JetStreamBus, String)> {
    let url = test_nats_url()?;
    fresh_bus_at(&url, Duration::from_secs(5)).await
}

/// `EMPORIUM_TEST_NATS`, or `None` (skipped).
pub fn test_nats_url() -> Option<String> {
    match std::env::var("EMPORIUM_TEST_NATS") {
        Ok(url) => Some(url),
        Err(_) => service_unavailable("EMPORIUM_TEST_NATS not set"),
    }
}

/// Like [`fresh_bus`], connecting to `url` with JetStream answers awaited `request_timeout`.
pub async fn fresh_bus_at(url: &str, request_timeout: Duration) -> Option<(JetStreamBus, String)> {
    let suffix = unique_suffix();
    let prefix = format!("conf.{suffix}");
    let settings = JetStreamSettings {
        stream: format!("EMPORIUM_TEST_{suffix}"),
        subjects: vec![format!("{prefix}.>")],
        max_age: Duration::from_secs(3600),
        ack_wait: ACK_WAIT,
        request_timeout,
        ..JetStreamSettings::new(url)
    };
    match JetStreamBus::start(settings).await {
        Ok(bus) => Some((bus, prefix)),
        Err(error) => service_unavailable(&error.to_string()),
    }
}

/// The conformance fixture: the case's stream is deleted after it.
// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
pub async fn open_bus() -> Option<BusFixture> {
    let (bus, prefix) = fresh_bus().await?;
    let cleanup_bus = bus.clone();
    Some(BusFixture {
        bus: Arc::new(bus),
        prefix,
        ack_wait: ACK_WAIT,
        cleanup: Some(Box::pin(async move {
            if let Err(error) = cleanup_bus.delete_stream().await {
                eprintln!("could not delete test stream: {error}");
            }
        })),
    })
}
