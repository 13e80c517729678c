//! The backing services a run may use, and their scratch spaces: a PostgreSQL database or a
//! CQL keyspace per figure, named `emp_harness_<pid>_<tag>`, dropped when the figure is done
//! (and, for PostgreSQL, those of dead runs at the next start).
//!
//! A service that is not configured or not reachable is not an error: the sections that need
//! it say `skipped` and why.

use std::time::Duration;

use emporium_testkit::scratch_postgres;

/// Prefix of every scratch database and keyspace of the harness.
pub const PREFIX: &str = "emp_harness_";

/// PostgreSQL's default URL (`scripts/services.sh` starts one there).
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the services are, from the environment.
#[derive(Clone, Debug, Default)]
pub struct Services {
    /// `EMPORIUM_TEST_POSTGRES`, or the default local server.
    pub postgres: Option<String>,
    /// `SCYLLA_NODES`, comma-separated contact points; `None` when unset.
    pub scylla: Option<Vec<String>>,
}

impl Services {
    /// Read `EMPORIUM_TEST_POSTGRES` and `SCYLLA_NODES` through `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let postgres =
            Some(env("EMPORIUM_TEST_POSTGRES").unwrap_or_else(|| DEFAULT_POSTGRES.to_owned()));
        let scylla = env("SCYLLA_NODES")
            .map(|nodes| {
                nodes
                    .split(',')
                    .map(str::trim)
                    .filter(|node| !node.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|nodes| !nodes.is_empty());
        Self { postgres, scylla }
    }

    /// The CQL contact points, or why there are none.
    pub fn scylla_nodes(&self) -> Result<&[String], String> {
        self.scylla
            .as_deref()
            .ok_or_else(|| "SCYLLA_NODES not set".to_owned())
    }
}

/// The scratch name of `tag` in this process (`emp_harness_<pid>_<tag>`).
pub fn scratch_name(tag: &str) -> String {
    format!("{PREFIX}{}_{tag}", std::process::id())
}

/// A fresh PostgreSQL database, dropped by [`ScratchDatabase::drop_now`].
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl ScratchDatabase {
    /// Create `emp_harness_<pid>_<tag>` on the server of `url` (after dropping those of dead
    /// runs). `Err` says why (the server is down, refused, …).
    pub async fn create(url: &str, tag: &str) -> Result<Self, String> {
        let client = connect(url).await?;
        scratch_postgres::drop_stale_databases(&client, PREFIX).await;
        let name = scratch_name(tag);
        // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client
                .batch_execute(&statement)
                .await
                .map_err(|error| format!("cannot create database {name}: {}", pg_error(&error)))?;
        }
        Ok(Self {
            admin_url: url.to_owned(),
            url: scratch_postgres::with_database(url, &name),
            name,
        })
    }

    /// Drop the database (its connections included); failures are printed, not fatal.
    pub async fn drop_now(self) {
        let outcome = match connect(&self.admin_url).await {
            Ok(client) => client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await
                .map_err(|error| pg_error(&error)),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            eprintln!("bench: could not drop database {}: {error}", self.name);
        }
    }
}

/// The server's own message when there is one (tokio-postgres displays only "db error").
fn pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// A client of the server at `url`, its connection driven in the background; bounded by
/// 5 s so that a black-holed server does not stall the run.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|error| format!("bad PostgreSQL URL: {error}"))?;
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "PostgreSQL did not answer within 5 s".to_owned())?
        .map_err(|error| format!("PostgreSQL unreachable: {error}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A CQL session on `nodes` (no keyspace), bounded by 10 s.
pub async fn cql_session(nodes: &[String]) -> Result<scylla::client::session::Session, String> {
    let mut builder = scylla::client::session_builder::SessionBuilder::new();
    builder = builder
        .known_nodes(nodes)
        .connection_timeout(Duration::from_secs(5));
    tokio::time::timeout(Duration::from_secs(10), builder.build())
        .await
        .map_err(|_| "the CQL node did not answer within 10 s".to_owned())?
        .map_err(|error| format!("CQL node unreachable: {error}"))
}

/// Drop `keyspace` through a session of its own; failures are printed, not fatal.
pub async fn drop_keyspace(nodes: &[String], keyspace: &str) {
    let outcome = match cql_session(nodes).await {
        Ok(session) => session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        eprintln!("bench: could not drop keyspace {keyspace}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_come_from_the_environment() {
        let services = Services::from_env(|key| match key {
            "SCYLLA_NODES" => Some(" 10.0.0.1:9042, ,10.0.0.2:9042".to_owned()),
            _ => None,
        });
        assert_eq!(services.postgres.as_deref(), Some(DEFAULT_POSTGRES));
        assert_eq!(
            services.scylla_nodes().unwrap(),
            ["10.0.0.1:9042", "10.0.0.2:9042"]
        );
        let none = Services::from_env(|_| None);
        assert_eq!(none.scylla_nodes(), Err("SCYLLA_NODES not set".to_owned()));
    }

    #[test]
    fn scratch_names_carry_the_pid_for_the_stale_sweep() {
        let name = scratch_name("node");
        assert_eq!(name, format!("emp_harness_{}_node", std::process::id()));
    }
}
