//! A store adapter opened on scratch space for one figure of the `runtime` and `stores`
//! sections, and removed afterwards: the in-memory twin, the embedded store in a temporary
//! directory, PostgreSQL in a scratch database, the CQL store in a scratch keyspace.

use std::sync::Arc;

use emporium_runtime::StateStore;
use emporium_runtime::store::MemoryStore;
use emporium_store_embedded::EmbeddedStore;
use emporium_store_postgres::{PostgresOptions, PostgresStore};
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};

use super::services::{self, ScratchDatabase, Services};

/// The adapters, as the rows name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    Memory,
    Embedded,
    Postgres,
    Cql,
}

impl Adapter {
    pub const ALL: [Adapter; 4] = [Self::Memory, Self::Embedded, Self::Postgres, Self::Cql];

    pub fn label(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Embedded => "embedded",
            Self::Postgres => "postgres",
            Self::Cql => "cql",
        }
    }
}

/// An open store and what to remove once the figure is done.
pub struct ScratchStore {
    pub store: Arc<dyn StateStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    /// Removed when dropped.
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Postgres(Arc<PostgresStore>, ScratchDatabase),
    Cql(Arc<ScyllaStore>),
}

impl ScratchStore {
    /// Open `adapter` on fresh scratch space named after `tag`; `Err` says why it cannot be
    /// (a service that is not up).
    pub async fn open(services: &Services, adapter: Adapter, tag: &str) -> Result<Self, String> {
        match adapter {
            Adapter::Memory => Ok(Self {
                store: Arc::new(MemoryStore::new()),
                cleanup: Cleanup::Nothing,
            }),
            Adapter::Embedded => {
                let dir = tempfile::tempdir().map_err(|error| format!("no temp dir: {error}"))?;
                let store = EmbeddedStore::open(&dir.path().join("bench.redb"))
                    .map_err(|error| format!("cannot open the embedded store: {error}"))?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::Directory(dir),
                })
            }
            Adapter::Postgres => {
                let url = services.postgres.as_deref().ok_or("no PostgreSQL URL")?;
                let database = ScratchDatabase::create(url, tag).await?;
                match PostgresStore::connect(&database.url, PostgresOptions::default()).await {
                    Ok(store) => {
                        let store = Arc::new(store);
                        Ok(Self {
                            store: store.clone(),
                            cleanup: Cleanup::Postgres(store, database),
                        })
                    }
                    Err(error) => {
                        database.drop_now().await;
                        Err(format!("cannot open the PostgreSQL store: {error}"))
                    }
                }
            }
            Adapter::Cql => {
                let nodes = services.scylla_nodes()?.to_vec();
                let config = ScyllaConfig::new(nodes, services::scratch_name(tag))
                    .map_err(|error| error.to_string())?;
                let store = ScyllaStore::connect(config)
                    .await
                    .map_err(|error| format!("cannot open the CQL store: {error}"))?;
                let store = Arc::new(store);
                Ok(Self {
                    store: store.clone(),
                    cleanup: Cleanup::Cql(store),
                })
            }
        }
    }

    /// Remove the scratch space (failures are printed, not fatal).
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::Nothing | Cleanup::Directory(_) => {}
            Cleanup::Postgres(store, database) => {
                store.close();
                database.drop_now().await;
            }
            Cleanup::Cql(store) => {
                if let Err(error) = store.drop_keyspace().await {
                    eprintln!(
                        "bench: could not drop keyspace {}: {error}",
                        store.keyspace()
                    );
                }
            }
        }
    }
}
