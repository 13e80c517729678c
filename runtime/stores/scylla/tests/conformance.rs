//! The `StateStore` conformance suite against a live ScyllaDB or Cassandra cluster.
//!
//! The cluster is named by `SCYLLA_NODES` (`host:port[,host:port…]`, e.g. `127.0.0.1:9042`;
//! `scripts/test.sh` exports it when `scripts/cassandra.sh` is up). Without it every case
//! is skipped loudly, or fails when `EMPORIUM_REQUIRE_SERVICES=1`.
//!
//! One keyspace per test process, see `common/mod.rs`.

use std::sync::Arc;

use emporium_runtime::StateStore;

mod common;

async fn open_store() -> Option<Arc<dyn StateStore>> {
    let store: Arc<dyn StateStore> = Arc::new(common::open_scylla().await?);
    Some(store)
}

emporium_runtime::state_store_conformance!(open_store);
