//! [`StoreConfig`]: which state store the node persists actors in.
//!
//! One string picks the store (`store` / `EMPORIUM_STORE` / `--store`):
//!
//! | value | store |
//! | --- | --- |
//! | `embedded` | redb file `<data_dir>/store.redb` (the default; single node) |
//! | `embedded:PATH` | redb file at `PATH`, relative to `data_dir` unless absolute |
//! | `memory` | in memory, nothing persists (tests) |
//! | `postgres://...`, `postgresql://...` | PostgreSQL, the URL as libpq takes it |
//! | `scylla://HOST:PORT,HOST:PORT/KEYSPACE` | ScyllaDB; port defaults to 9042 |
//!
//! The `[postgres]` and `[scylla]` tables (or their `EMPORIUM_POSTGRES_*` /
//! `EMPORIUM_SCYLLA_*` variables) add what does not fit in the URL. They are
//! ignored when another store is chosen, so `--store memory` works on a
//! production config file.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::fields;
use crate::layers::Resolved;
use crate::secret::Secret;
use crate::values::{self, Expected};

/// The scylla port used when a node in the URL has none.
pub const SCYLLA_DEFAULT_PORT: u16 = 9042;

/// Which state store to use, with everything needed to open it.
///
/// `Debug` and `Display` mask the credentials in a postgres URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded redb store: one file, one node.
    Embedded {
        /// The database file (`<data_dir>/store.redb` by default).
        path: PathBuf,
    },
    /// In memory: nothing persists. For tests.
    Memory,
    /// PostgreSQL.
    Postgres {
        /// `postgres://...` or `postgresql://...`, as given (it may carry a
        /// password: do not log it; `Display` masks it).
        url: String,
        /// `postgres.pool_size`; `None` leaves it to the adapter.
        pool_size: Option<usize>,
    },
    /// ScyllaDB (or Cassandra).
    Scylla {
        /// Contact points, `host:port`.
        nodes: Vec<String>,
        /// The keyspace, a CQL identifier `[a-z][a-z0-9_]{0,47}`.
        keyspace: String,
        /// `scylla.user`; set together with `password`.
        user: Option<String>,
        /// `scylla.password`.
        password: Option<Secret>,
        /// `scylla.replication_factor` for creating the keyspace (default 1).
        replication_factor: u8,
        /// `scylla.datacenter`: the local datacenter, if any.
        datacenter: Option<String>,
        /// `scylla.consistency`: level of reads, writes and commits (`local_quorum`).
        consistency: ScyllaConsistency,
        /// `scylla.serial_consistency`: level of compare-and-set (`local_serial`).
        serial_consistency: ScyllaSerialConsistency,
    },
}

/// `scylla.consistency`: the CQL consistency level of reads, writes and the commit of
/// every compare-and-set. Only levels whose reads see every acknowledged write are offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScyllaConsistency {
    /// `quorum`: a majority of all replicas, across datacenters.
    Quorum,
    /// `local_quorum` (the default): a majority in the local datacenter; linearizable only
    /// for a keyspace in one datacenter.
    #[default]
    LocalQuorum,
    /// `each_quorum`: writes need a majority in every datacenter.
    EachQuorum,
    /// `all`: every replica.
    All,
}

impl ScyllaConsistency {
    /// The configuration spelling (`local_quorum`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::LocalQuorum => "local_quorum",
            Self::EachQuorum => "each_quorum",
            Self::All => "all",
        }
    }

    fn parse(text: &str) -> Result<Self, Expected> {
        match text.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(Self::Quorum),
            "local_quorum" => Ok(Self::LocalQuorum),
            "each_quorum" => Ok(Self::EachQuorum),
            "all" => Ok(Self::All),
            _ => Err("one of quorum, local_quorum, each_quorum or all".to_owned()),
        }
    }
}

/// `scylla.serial_consistency`: the CQL serial consistency of compare-and-set (Paxos).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScyllaSerialConsistency {
    /// `serial`: Paxos across every datacenter; what a multi-datacenter keyspace needs.
    Serial,
    /// `local_serial` (the default): Paxos in the local datacenter only.
    #[default]
    LocalSerial,
}

impl ScyllaSerialConsistency {
    /// The configuration spelling (`local_serial`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::LocalSerial => "local_serial",
        }
    }

    fn parse(text: &str) -> Result<Self, Expected> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serial" => Ok(Self::Serial),
            "local_serial" => Ok(Self::LocalSerial),
            _ => Err("one of serial or local_serial".to_owned()),
        }
    }
}

impl StoreConfig {
    /// `"embedded"`, `"memory"`, `"postgres"` or `"scylla"`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Embedded { .. } => "embedded",
            StoreConfig::Memory => "memory",
            StoreConfig::Postgres { .. } => "postgres",
            StoreConfig::Scylla { .. } => "scylla",
        }
    }

    /// Whether several nodes can share it (what cluster mode needs).
    pub fn is_shared(&self) -> bool {
        matches!(
            self,
            StoreConfig::Postgres { .. } | StoreConfig::Scylla { .. }
        )
    }

    /// Resolves the `store` field and the options of the chosen store.
    pub(crate) fn from_resolved(r: &Resolved, data_dir: &Path) -> Result<Self, ConfigError> {
        let store = r.required(&fields::STORE, |text| parse(text, data_dir))?;
        Ok(match store {
            StoreConfig::Postgres { url, .. } => StoreConfig::Postgres {
                url,
                pool_size: r.optional(&fields::POSTGRES_POOL_SIZE, |t| {
                    values::integer_in(t, 1usize, 10_000)
                })?,
            },
            StoreConfig::Scylla {
                nodes, keyspace, ..
            } => {
                let user = r.optional(&fields::SCYLLA_USER, values::word)?;
                let password = r.optional(&fields::SCYLLA_PASSWORD, |t| Ok(Secret::new(t)))?;
                if user.is_some() != password.is_some() {
                    return Err(r.both_or_neither(&fields::SCYLLA_USER, &fields::SCYLLA_PASSWORD));
                }
                StoreConfig::Scylla {
                    nodes,
                    keyspace,
                    user,
                    password,
                    replication_factor: r.required(&fields::SCYLLA_REPLICATION_FACTOR, |t| {
                        values::integer_in(t, 1u8, u8::MAX)
                    })?,
                    datacenter: r.optional(&fields::SCYLLA_DATACENTER, values::word)?,
                    consistency: r
                        .required(&fields::SCYLLA_CONSISTENCY, ScyllaConsistency::parse)?,
                    serial_consistency: r.required(
                        &fields::SCYLLA_SERIAL_CONSISTENCY,
                        ScyllaSerialConsistency::parse,
                    )?,
                }
            }
            other => other,
        })
    }
}

const ACCEPTED: &str = "one of: embedded (the file <data_dir>/store.redb), \
    embedded:PATH (relative to data_dir unless absolute), memory (nothing persists), \
    postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgresql://...), \
    scylla://HOST:PORT,HOST:PORT/KEYSPACE";

/// Parses the store string; the options of postgres and scylla get their
/// defaults (see [`StoreConfig::from_resolved`]).
pub(crate) fn parse(text: &str, data_dir: &Path) -> Result<StoreConfig, Expected> {
    let text = text.trim();
    let problem = |what: &str| format!("{what}; the store is {ACCEPTED}");
    if text == "embedded" {
        return Ok(StoreConfig::Embedded {
            path: data_dir.join("store.redb"),
        });
    }
    if let Some(path) = text.strip_prefix("embedded:") {
        if path.is_empty() {
            return Err(problem("a path after embedded:"));
        }
        return Ok(StoreConfig::Embedded {
            path: data_dir.join(path),
        });
    }
    if text == "memory" {
        return Ok(StoreConfig::Memory);
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return values::url_with_scheme(text, &["postgres", "postgresql"])
            .map(|url| StoreConfig::Postgres {
                url,
                pool_size: None,
            })
            .map_err(|_| problem("a host after postgres://"));
    }
    if let Some(rest) = text.strip_prefix("scylla://") {
        return parse_scylla(rest).map_err(|what| problem(&what));
    }
    Err(ACCEPTED.to_owned())
}

fn parse_scylla(rest: &str) -> Result<StoreConfig, String> {
    let (hosts, keyspace) = rest
        .split_once('/')
        .ok_or("a keyspace after the nodes, as in scylla://HOST:PORT/KEYSPACE")?;
    if !is_cql_identifier(keyspace) {
        return Err(
            "a keyspace that is a CQL identifier: a lowercase letter, then up to 47 of a-z, 0-9 or _"
                .to_owned(),
        );
    }
    let nodes = hosts
        .split(',')
        .map(str::trim)
        .map(|node| {
            values::host_port(node)
                .or_else(|_| values::host_port(&format!("{node}:{SCYLLA_DEFAULT_PORT}")))
                .map(|(host, port)| format!("{host}:{port}"))
                .map_err(|_| format!("scylla nodes as HOST:PORT, got {node:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoreConfig::Scylla {
        nodes,
        keyspace: keyspace.to_owned(),
        user: None,
        password: None,
        replication_factor: 1,
        datacenter: None,
        consistency: ScyllaConsistency::default(),
        serial_consistency: ScyllaSerialConsistency::default(),
    })
}

/// `[a-z][a-z0-9_]{0,47}`.
fn is_cql_identifier(text: &str) -> bool {
    text.len() <= 48
        && text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl fmt::Display for StoreConfig {
    /// One line without secrets, e.g. `postgres://app:***@db/shop (pool 16)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Embedded { path } => write!(f, "embedded:{}", path.display()),
            StoreConfig::Memory => f.write_str("memory"),
            StoreConfig::Postgres { url, pool_size } => {
                f.write_str(&values::mask_url(url))?;
                match pool_size {
                    Some(n) => write!(f, " (pool {n})"),
                    None => Ok(()),
                }
            }
            StoreConfig::Scylla {
                nodes,
                keyspace,
                user,
                password: _,
                replication_factor,
                datacenter,
                consistency,
                serial_consistency,
            } => {
                write!(
                    f,
                    "scylla://{}/{keyspace} (rf {replication_factor}",
                    nodes.join(",")
                )?;
                if let Some(dc) = datacenter {
                    write!(f, ", dc {dc}")?;
                }
                if *consistency != ScyllaConsistency::default()
                    || *serial_consistency != ScyllaSerialConsistency::default()
                {
                    write!(
                        f,
                        ", {} / {}",
                        consistency.as_str(),
                        serial_consistency.as_str()
                    )?;
                }
                if let Some(user) = user {
                    write!(f, ", user {user}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Embedded { path } => {
                f.debug_struct("Embedded").field("path", path).finish()
            }
            StoreConfig::Memory => f.write_str("Memory"),
            StoreConfig::Postgres { url, pool_size } => f
                .debug_struct("Postgres")
                .field("url", &values::mask_url(url))
                .field("pool_size", pool_size)
                .finish(),
            StoreConfig::Scylla {
                nodes,
                keyspace,
                user,
                password,
                replication_factor,
                datacenter,
                consistency,
                serial_consistency,
            } => f
                .debug_struct("Scylla")
                .field("nodes", nodes)
                .field("keyspace", keyspace)
                .field("user", user)
                .field("password", password)
                .field("replication_factor", replication_factor)
                .field("datacenter", datacenter)
                .field("consistency", consistency)
                .field("serial_consistency", serial_consistency)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<StoreConfig, Expected> {
        parse(text, Path::new("/var/lib/emporium"))
    }

    #[test]
    fn embedded() {
        assert_eq!(
            p("embedded"),
            Ok(StoreConfig::Embedded {
                path: "/var/lib/emporium/store.redb".into()
            })
        );
        assert_eq!(
            p("embedded:/srv/shop.redb"),
            Ok(StoreConfig::Embedded {
                path: "/srv/shop.redb".into()
            })
        );
        assert_eq!(
            p("embedded:db/shop.redb"),
            Ok(StoreConfig::Embedded {
                path: "/var/lib/emporium/db/shop.redb".into()
            })
        );
        assert!(p("embedded:").is_err());
    }

    #[test]
    fn memory_and_postgres() {
        assert_eq!(p("memory"), Ok(StoreConfig::Memory));
        for url in ["postgres://app:pw@db:5432/shop", "postgresql://db/shop"] {
            assert_eq!(
                p(url),
                Ok(StoreConfig::Postgres {
                    url: url.to_owned(),
                    pool_size: None
                })
            );
        }
        assert!(p("postgres://").is_err());
    }

    #[test]
    fn scylla() {
        let Ok(StoreConfig::Scylla {
            nodes, keyspace, ..
        }) = p("scylla://10.0.0.1:9042,db2,[::1]:19042/emporium_1")
        else {
            panic!("did not parse");
        };
        assert_eq!(nodes, ["10.0.0.1:9042", "db2:9042", "[::1]:19042"]);
        assert_eq!(keyspace, "emporium_1");
    }

    #[test]
    fn scylla_errors() {
        for (bad, why) in [
            ("scylla://db:9042", "a keyspace after the nodes"),
            ("scylla://db:9042/", "CQL identifier"),
            ("scylla://db:9042/Emporium", "CQL identifier"),
            ("scylla://db:9042/1shop", "CQL identifier"),
            ("scylla://db:9042/shop-eu", "CQL identifier"),
            (&format!("scylla://db/{}", "k".repeat(49)), "CQL identifier"),
            ("scylla:///shop", "scylla nodes as HOST:PORT"),
            ("scylla://db:x/shop", "scylla nodes as HOST:PORT"),
            ("scylla://a,,b/shop", "scylla nodes as HOST:PORT"),
        ] {
            let err = p(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(ACCEPTED), "{bad}: {err}");
        }
        assert!(p(&format!("scylla://db/{}", "k".repeat(48))).is_ok());
    }

    #[test]
    fn anything_else_lists_the_forms() {
        for bad in [
            "",
            "redb",
            "Memory",
            "mysql://db",
            "embedded/x",
            "scylla:db/x",
        ] {
            assert_eq!(p(bad), Err(ACCEPTED.to_owned()), "{bad}");
        }
    }

    #[test]
    fn display_and_debug_mask_passwords() {
        let store = StoreConfig::Postgres {
            url: "postgres://app:hunter2@db/shop".into(),
            pool_size: Some(16),
        };
        assert_eq!(store.to_string(), "postgres://app:***@db/shop (pool 16)");
        assert!(!format!("{store:?}").contains("hunter2"));
        let store = StoreConfig::Scylla {
            nodes: vec!["a:9042".into(), "b:9042".into()],
            keyspace: "shop".into(),
            user: Some("app".into()),
            password: Some(Secret::new("hunter2")),
            replication_factor: 3,
            datacenter: Some("eu1".into()),
            consistency: ScyllaConsistency::default(),
            serial_consistency: ScyllaSerialConsistency::default(),
        };
        assert_eq!(
            store.to_string(),
            "scylla://a:9042,b:9042/shop (rf 3, dc eu1, user app)"
        );
        assert!(!format!("{store:?}").contains("hunter2"));
        let StoreConfig::Scylla {
            nodes,
            keyspace,
            replication_factor,
            ..
        } = store
        else {
            unreachable!("built as Scylla above");
        };
        let store = StoreConfig::Scylla {
            nodes,
            keyspace,
            user: None,
            password: None,
            replication_factor,
            datacenter: None,
            consistency: ScyllaConsistency::Quorum,
            serial_consistency: ScyllaSerialConsistency::Serial,
        };
        assert_eq!(
            store.to_string(),
            "scylla://a:9042,b:9042/shop (rf 3, quorum / serial)"
        );
    }

    #[test]
    fn scylla_consistency_levels() {
        for level in [
            ScyllaConsistency::Quorum,
            ScyllaConsistency::LocalQuorum,
            ScyllaConsistency::EachQuorum,
            ScyllaConsistency::All,
        ] {
            assert_eq!(ScyllaConsistency::parse(level.as_str()), Ok(level));
            let upper = level.as_str().to_ascii_uppercase();
            assert_eq!(ScyllaConsistency::parse(&format!(" {upper} ")), Ok(level));
        }
        for level in [
            ScyllaSerialConsistency::Serial,
            ScyllaSerialConsistency::LocalSerial,
        ] {
            assert_eq!(ScyllaSerialConsistency::parse(level.as_str()), Ok(level));
            let upper = level.as_str().to_ascii_uppercase();
            assert_eq!(ScyllaSerialConsistency::parse(&upper), Ok(level));
        }
        for bad in ["", "one", "local_one", "serial", "any", "quorum2"] {
            assert!(ScyllaConsistency::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "quorum", "local_quorum", "serializable"] {
            assert!(ScyllaSerialConsistency::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ScyllaConsistency::default().as_str(),
            fields::SCYLLA_CONSISTENCY.default.unwrap_or_default()
        );
        assert_eq!(
            ScyllaSerialConsistency::default().as_str(),
            fields::SCYLLA_SERIAL_CONSISTENCY
                .default
                .unwrap_or_default()
        );
    }
}
