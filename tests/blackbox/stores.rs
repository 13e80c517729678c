//! Which store a black-box test runs on, provisioned fresh for that test (the scratch stores
//! themselves are `emporium_testkit::cluster::store`).
//!
//! `on_every_store!(scenario)` expands to one test per store (embedded, PostgreSQL, the CQL
//! store), so the storefront runs end to end on each. PostgreSQL gets a fresh database per
//! test, the CQL store a fresh keyspace; both are dropped at the end (and leftovers of dead
//! test processes are dropped at the next start). A store whose server is not configured
//! reports the test skipped — or fails it under `EMPORIUM_REQUIRE_SERVICES=1`.

use std::future::Future;

pub use emporium_testkit::cluster::{Provisioned, TestStore};

use crate::support::NodeSpec;

/// Run `scenario` on a fresh store of `store`'s kind, then drop the store.
pub async fn run_on<F, Fut>(store: TestStore, scenario: F)
where
    F: FnOnce(NodeSpec) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let Some((spec, provisioned)) = store.provision(dir.path()).await else {
        return;
    };
    scenario(spec).await;
    provisioned.drop_store().await;
}

/// One test per store for `scenario: async fn(NodeSpec)`.
macro_rules! on_every_store {
    ($scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn embedded() {
            $crate::stores::run_on($crate::stores::TestStore::Embedded, $scenario).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres() {
            $crate::stores::run_on($crate::stores::TestStore::Postgres, $scenario).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn scylla() {
            $crate::stores::run_on($crate::stores::TestStore::Scylla, $scenario).await;
        }
    };
}
pub(crate) use on_every_store;
