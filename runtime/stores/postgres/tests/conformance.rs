//! The port's conformance suite against PostgreSQL, one fresh schema per case.
//!
//! Needs a server at `EMPORIUM_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); without one every case prints
//! `skipped: …`, or fails when `EMPORIUM_REQUIRE_SERVICES=1`.

mod support;

use support::open_store;

emporium_runtime::state_store_conformance!(open_store);
