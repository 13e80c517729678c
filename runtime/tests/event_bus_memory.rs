//! The `EventBus` conformance suite on the in-process twin (feature `conformance`).
#![cfg(feature = "conformance")]

use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::events::conformance::BusFixture;
use emporium_runtime::events::{MemoryEventBus, MemoryEventBusConfig};

/// A fresh bus per case, with a short ack wait so redelivery cases finish quickly.
async fn fresh_bus() -> Option<BusFixture> {
    let ack_wait = Duration::from_millis(200);
    let bus = MemoryEventBus::new(MemoryEventBusConfig {
        ack_wait,
        ..MemoryEventBusConfig::default()
    });
    Some(BusFixture {
        bus: Arc::new(bus),
        prefix: "emporium.test".to_owned(),
        ack_wait,
        cleanup: None,
    })
}

emporium_runtime::event_bus_conformance!(fresh_bus);
