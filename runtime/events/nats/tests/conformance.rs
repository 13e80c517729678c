//! The `EventBus` conformance suite against NATS JetStream at `EMPORIUM_TEST_NATS`, one
//! stream per case; without it every case prints `skipped: …` (a failure when
//! `EMPORIUM_REQUIRE_SERVICES=1`).

mod support;

use support::open_bus;

emporium_runtime::event_bus_conformance!(open_bus);
