//! Which store a black-box test runs on, provisioned fresh for that test.
//!
//! `on_every_store!(scenario)` expands to one test per store (embedded, PostgreSQL, the CQL
//! store), so the storefront runs end to end on each. PostgreSQL gets a fresh database per
//! test, the CQL store a fresh keyspace; both are dropped at the end (and leftovers of dead
//! test processes are dropped at the next start). A store whose server is not configured
//! reports the test skipped — or fails it under `EMPORIUM_REQUIRE_SERVICES=1`.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use emporium_runtime::store::conformance::service_unavailable;
use emporium_testkit::scratch_postgres::{drop_stale_databases, with_database};

use crate::support::NodeSpec;

#[derive(Clone, Copy, Debug)]
pub enum TestStore {
    Embedded,
    Postgres,
    Scylla,
}

/// A provisioned store: where nodes point, and how to drop it afterwards.
pub enum Provisioned {
    Embedded,
    Postgres {
        admin_url: String,
        database: String,
    },
    Scylla {
        nodes: Vec<String>,
        keyspace: String,
    },
}

fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestStore {
    /// A node spec on a fresh store of this kind, or `None` when it is skipped.
    pub async fn provision(self, dir: &Path) -> Option<(NodeSpec, Provisioned)> {
        let spec = NodeSpec::embedded(dir);
        match self {
            Self::Embedded => Some((spec, Provisioned::Embedded)),
            Self::Postgres => {
                let Ok(admin_url) = std::env::var("EMPORIUM_TEST_POSTGRES") else {
                    return service_unavailable("EMPORIUM_TEST_POSTGRES not set");
                };
                let database = unique_name("emp_bb");
                let Ok(client) = postgres_client(&admin_url).await else {
                    return service_unavailable(&format!("postgres at {admin_url} unreachable"));
                };
                drop_stale_databases(&client, "emp_bb_").await;
                client
                    .batch_execute(&format!("CREATE DATABASE {database}"))
                    .await
                    .expect("create test database");
                let url = with_database(&admin_url, &database);
                Some((
                    spec.env("EMPORIUM_STORE", &url),
                    Provisioned::Postgres {
                        admin_url,
                        database,
                    },
                ))
            }
            Self::Scylla => {
                let Ok(nodes) = std::env::var("SCYLLA_NODES") else {
                    return service_unavailable("SCYLLA_NODES not set");
                };
                let nodes: Vec<String> = nodes.split(',').map(str::to_owned).collect();
                let keyspace = unique_name("emp_bb");
                let url = format!("scylla://{}/{keyspace}", nodes.join(","));
                Some((
                    spec.env("EMPORIUM_STORE", &url),
                    Provisioned::Scylla { nodes, keyspace },
                ))
            }
        }
    }
}

impl Provisioned {
    /// Drop the database or keyspace. Nodes using it must be stopped first.
    pub async fn drop_store(self) {
        match self {
            Self::Embedded => {}
            Self::Postgres {
                admin_url,
                database,
            } => {
                if let Ok(client) = postgres_client(&admin_url).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .await;
                }
            }
            Self::Scylla { nodes, keyspace } => {
                if let Ok(session) = scylla::client::session_builder::SessionBuilder::new()
                    .known_nodes(&nodes)
                    .build()
                    .await
                {
                    let _ = session
                        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                        .await;
                }
            }
        }
    }
}

impl Provisioned {
    /// The TCP address of the store's server (the first CQL node), for a proxy in front of
    /// it; `None` for the embedded store.
    pub fn server(&self) -> Option<SocketAddr> {
        let (host, port) = match self {
            Self::Embedded => return None,
            Self::Postgres { admin_url, .. } => {
                let config: tokio_postgres::Config = admin_url.parse().ok()?;
                let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first()
                else {
                    return None;
                };
                let port = config.get_ports().first().copied().unwrap_or(5432);
                (host.clone(), port)
            }
            Self::Scylla { nodes, .. } => {
                let (host, port) = nodes.first()?.rsplit_once(':')?;
                (host.to_owned(), port.parse().ok()?)
            }
        };
        (host.as_str(), port)
            .to_socket_addrs()
            .ok()?
            .find(SocketAddr::is_ipv4)
    }

    /// The node URL of this test's database (keyspace) reached at `via` (a proxy).
    pub fn url_via(&self, via: SocketAddr) -> Option<String> {
        match self {
            Self::Embedded => None,
            Self::Postgres {
                admin_url,
                database,
            } => {
                let user = admin_url
                    .split("://")
                    .nth(1)
                    .and_then(|rest| rest.split_once('@'))
                    .map_or("postgres", |(user, _)| user);
                Some(format!("postgres://{user}@{via}/{database}"))
            }
            Self::Scylla { keyspace, .. } => Some(format!("scylla://{via}/{keyspace}")),
        }
    }
}

async fn postgres_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

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
