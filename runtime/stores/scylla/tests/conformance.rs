//! The `StateStore` conformance suite against a live ScyllaDB or Cassandra cluster.
//!
//! The cluster is named by `SCYLLA_NODES` (`host:port[,host:port…]`, e.g. `127.0.0.1:9042`;
//! `scripts/test.sh` exports it when `scripts/cassandra.sh` is up). Without it every case
//! is skipped loudly, or fails when `EMPORIUM_REQUIRE_SERVICES=1`.
//!
//! One keyspace per test process (`emp_test_<pid>`): creating a keyspace per case costs
//! seconds on Cassandra, and the suite tolerates a shared store. The harness has no
//! end-of-run hook, so a process cannot drop its own keyspace; instead the first case of
//! each run drops the `emp_test_<pid>` keyspaces of processes that no longer run on this
//! machine (the test cluster is assumed local to the machine that runs the tests).

use std::sync::Arc;

use emporium_runtime::StateStore;
use emporium_runtime::store::conformance::service_unavailable;
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};
use tokio::sync::Mutex;

const PREFIX: &str = "emp_test_";

async fn open_store() -> Option<Arc<dyn StateStore>> {
    let Ok(nodes) = std::env::var("SCYLLA_NODES") else {
        return service_unavailable("SCYLLA_NODES not set");
    };
    let nodes: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    let keyspace = format!("{PREFIX}{}", std::process::id());
    let config = ScyllaConfig::new(nodes.clone(), keyspace).expect("a valid test config");
    let store = match ScyllaStore::connect(config).await {
        Ok(store) => store,
        Err(error) if error.is_unavailable() => {
            return service_unavailable(&format!("scylla at {nodes:?} unreachable: {error}"));
        }
        Err(error) => panic!("connect to scylla at {nodes:?}: {error}"),
    };
    drop_leftover_keyspaces(&store).await;
    Some(Arc::new(store))
}

/// Once per process: drop the test keyspaces of test processes that are gone.
async fn drop_leftover_keyspaces(store: &ScyllaStore) {
    static DONE: Mutex<bool> = Mutex::const_new(false);
    let mut done = DONE.lock().await;
    if *done {
        return;
    }
    *done = true;
    let Ok(result) = store
        .session()
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[])
        .await
    else {
        return;
    };
    let Ok(rows) = result.into_rows_result() else {
        return;
    };
    let Ok(names) = rows.rows::<(String,)>() else {
        return;
    };
    let stale: Vec<String> = names
        .filter_map(Result::ok)
        .map(|(name,)| name)
        .filter(|name| {
            name.strip_prefix(PREFIX)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                })
        })
        .collect();
    for name in stale {
        let statement = format!("DROP KEYSPACE IF EXISTS {name}");
        if let Err(error) = store.session().query_unpaged(statement, &[]).await {
            eprintln!("note: could not drop leftover keyspace {name}: {error}");
        }
    }
}

emporium_runtime::state_store_conformance!(open_store);
