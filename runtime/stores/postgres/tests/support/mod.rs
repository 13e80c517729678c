//! Shared helpers of the adapter's integration tests: where PostgreSQL is, fresh schemas
//! that drop themselves, and the conformance factory (a store that owns its schema).
//!
//! Every test works in a schema of its own, `emp_test_<pid>_<n>`, dropped (`CASCADE`) when
//! its [`SchemaGuard`] goes out of scope, even when the test panics. Schemas left behind by
//! a killed test process are dropped by the next run: the first fresh schema of a process
//! removes every `emp_test_<pid>_…` whose process no longer exists.

#![allow(dead_code)] // each test target uses its own subset

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use emporium_runtime::StateStore;
use emporium_runtime::store::conformance::{Guarded, service_unavailable};
use emporium_store_postgres::{PostgresOptions, PostgresStore};
use tokio::sync::OnceCell;

/// The server the tests use.
pub fn url() -> String {
    std::env::var("EMPORIUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A plain connection for setup and checks, or `None` (after [`service_unavailable`])
/// when the server cannot be reached.
pub async fn admin() -> Option<tokio_postgres::Client> {
    match connect_plain(&url()).await {
        Ok(client) => Some(client),
        Err(error) => service_unavailable(&format!("postgres at {}: {error}", url())),
    }
}

async fn connect_plain(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(3));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A schema name no other test (of this or any other process) uses.
pub fn fresh_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "emp_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops its schema when dropped.
pub struct SchemaGuard {
    pub schema: String,
}

impl SchemaGuard {
    /// A fresh schema name, guarded (the schema itself is created by the store).
    pub async fn fresh() -> Self {
        static SWEPT: OnceCell<()> = OnceCell::const_new();
        SWEPT.get_or_init(drop_stale_schemas).await;
        Self {
            schema: fresh_schema_name(),
        }
    }

    pub fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: self.schema.clone(),
            pool_size: 8,
            ..PostgresOptions::default()
        }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        // Drop runs inside or outside a runtime; a thread of its own with its own runtime
        // works in both.
        let schema = self.schema.clone();
        let url = url();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let client = connect_plain(&url).await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("cleanup: could not drop schema {}: {error}", self.schema);
        }
    }
}

/// Drop `emp_test_<pid>_…` schemas whose process is gone (a killed earlier run).
async fn drop_stale_schemas() {
    let Ok(client) = connect_plain(&url()).await else {
        return;
    };
    let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'emp\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name
            .trim_start_matches("emp_test_")
            .split('_')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

/// The conformance factory: a store in a fresh schema, `None` when PostgreSQL is down. The
/// store guards its schema: the pool (and its connections) drops first, then the schema.
pub async fn open_store() -> Option<Arc<dyn StateStore>> {
    let guard = SchemaGuard::fresh().await;
    match PostgresStore::connect(&url(), guard.options()).await {
        Ok(store) => Some(Arc::new(Guarded::new(Arc::new(store), guard))),
        Err(error) if error.is_unavailable() => {
            service_unavailable(&format!("postgres at {}: {error}", url()))
        }
        Err(error) => panic!("cannot open the postgres store: {error}"),
    }
}
