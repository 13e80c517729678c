//! Opening the test cluster for the integration tests of the scylla adapter.
//!
//! The cluster is named by `SCYLLA_NODES` (`host:port[,host:port…]`); without it
//! [`open_scylla`] skips loudly through `service_unavailable` (which panics instead when
//! `EMPORIUM_REQUIRE_SERVICES=1`).
//!
//! One keyspace per test process (`emp_test_<pid>`): creating a keyspace per case costs
//! seconds on Cassandra, and the suites tolerate a shared store. The harness has no
//! end-of-run hook, so a process cannot drop its own keyspace; instead the first store a
//! process opens drops the `emp_test_<pid>` keyspaces of processes that no longer run on
//! this machine (the test cluster is assumed local to the machine that runs the tests).

use emporium_runtime::store::conformance::service_unavailable;
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};
use tokio::sync::Mutex;

const PREFIX: &str = "emp_test_";

/// The contact points from `SCYLLA_NODES`, or `None` after saying why.
pub fn nodes() -> Option<Vec<String>> {
    let Ok(nodes) = std::env::var("SCYLLA_NODES") else {
        return service_unavailable("SCYLLA_NODES not set");
    };
    Some(
        nodes
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// The configuration of this process's test keyspace.
#[allow(dead_code)]
pub fn config() -> Option<ScyllaConfig> {
    let keyspace = format!("{PREFIX}{}", std::process::id());
    Some(ScyllaConfig::new(nodes()?, keyspace).expect("a valid test config"))
}

/// The configuration of a keyspace of one case, `emp_test_<pid>_<case>` (swept like the
/// process's keyspace when the process is gone; the case drops it when done).
#[allow(dead_code)]
pub fn config_of_case(case: &str) -> Option<ScyllaConfig> {
    let keyspace = format!("{PREFIX}{}_{case}", std::process::id());
    Some(ScyllaConfig::new(nodes()?, keyspace).expect("a valid test config"))
}

/// A store on this process's test keyspace, `None` when the cluster is not configured.
#[allow(dead_code)]
pub async fn open_scylla() -> Option<ScyllaStore> {
    open_with(config()?).await
}

/// A store with a custom configuration, `None` when the cluster is unreachable.
pub async fn open_with(config: ScyllaConfig) -> Option<ScyllaStore> {
    let nodes = config.nodes.clone();
    let store = match ScyllaStore::connect(config).await {
        Ok(store) => store,
        Err(error) if error.is_unavailable() => {
            return service_unavailable(&format!("scylla at {nodes:?} unreachable: {error}"));
        }
        Err(error) => panic!("connect to scylla at {nodes:?}: {error}"),
    };
    drop_leftover_keyspaces(&store).await;
    Some(store)
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
            // `emp_test_<pid>` or `emp_test_<pid>_<case>` (a case's own keyspace).
            name.strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
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
