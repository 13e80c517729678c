//! Scratch stores: a fresh PostgreSQL database or CQL keyspace per test (or bench run), the
//! node settings that point at it, reaching it through a proxy, and dropping it afterwards.
//!
//! Names are `<prefix>_<pid>_<n>`; the PostgreSQL databases of dead processes with the same
//! prefix are dropped when the next one is made. A server that is not configured or not
//! reachable makes [`TestStore::provision`] answer `None` after printing `skipped: …` (or
//! panic under `EMPORIUM_REQUIRE_SERVICES=1`, see `service_unavailable`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use emporium_runtime::store::conformance::service_unavailable;

use super::process::NodeSpec;
use crate::scratch_postgres::{drop_stale_databases, with_database};

#[derive(Clone, Copy, Debug)]
pub enum TestStore {
    Embedded,
    Postgres,
    Scylla,
}

/// Where scratch stores are made, and how they are named.
#[derive(Clone, Debug)]
pub struct StoreServers {
    /// An admin URL of the PostgreSQL server (`None`: PostgreSQL is skipped).
    pub postgres: Option<String>,
    /// CQL contact points `host:port` (`None`: the CQL store is skipped).
    pub scylla: Option<Vec<String>>,
    /// Databases and keyspaces are named `<prefix>_<pid>_<n>`.
    pub prefix: String,
}

impl StoreServers {
    /// The test services: `EMPORIUM_TEST_POSTGRES` and `SCYLLA_NODES`, names `emp_bb_…`.
    pub fn from_env() -> Self {
        Self {
            postgres: std::env::var("EMPORIUM_TEST_POSTGRES").ok(),
            scylla: std::env::var("SCYLLA_NODES")
                .ok()
                .map(|nodes| nodes.split(',').map(str::to_owned).collect()),
            prefix: "emp_bb".to_owned(),
        }
    }
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
    /// A node spec on a fresh store of this kind on the test services, or `None` when it is
    /// skipped.
    pub async fn provision(self, dir: &Path) -> Option<(NodeSpec, Provisioned)> {
        self.provision_on(&StoreServers::from_env(), dir).await
    }

    /// A node spec on a fresh store of this kind on `servers`, or `None` when it is skipped.
    pub async fn provision_on(
        self,
        servers: &StoreServers,
        dir: &Path,
    ) -> Option<(NodeSpec, Provisioned)> {
        let spec = NodeSpec::embedded(dir);
        match self {
            Self::Embedded => Some((spec, Provisioned::Embedded)),
            Self::Postgres => {
                let Some(admin_url) = servers.postgres.clone() else {
                    return service_unavailable("EMPORIUM_TEST_POSTGRES not set");
                };
                let database = unique_name(&servers.prefix);
                let Ok(client) = postgres_client(&admin_url).await else {
                    return service_unavailable(&format!("postgres at {admin_url} unreachable"));
                };
                drop_stale_databases(&client, &format!("{}_", servers.prefix)).await;
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
                let Some(nodes) = servers.scylla.clone() else {
                    return service_unavailable("SCYLLA_NODES not set");
                };
                let keyspace = unique_name(&servers.prefix);
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
