//! Connection settings of the scylla adapter, and their URL form.
//!
//! `scylla://[user[:password]@]host1:9042,host2:9042/keyspace[?rf=3&dc=dc1&timeout_ms=2000]`
//! (`cassandra://` is accepted as a synonym). The port defaults to 9042. Query parameters:
//! `rf` (replication factor), `dc` (local datacenter), `timeout_ms` (per-request timeout),
//! `create_schema` (`true`/`false`), `tablets` (`true`/`false`, ScyllaDB only),
//! `consistency` (`quorum`, `local_quorum`, `each_quorum`, `all`) and `serial_consistency`
//! (`serial`, `local_serial`); see [`ConsistencyLevel`] and [`SerialLevel`].
//!
//! Invariants: the keyspace name is a plain CQL identifier (it is spliced into statements,
//! so it is validated here, once); the password never appears in `Debug` output.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};

use emporium_runtime::StoreError;

/// Default replication factor: `1` suits a single test node. Production clusters use `3`
/// (one replica per rack), so that `LOCAL_QUORUM` survives the loss of one node.
pub const DEFAULT_REPLICATION_FACTOR: u32 = 1;

/// Default per-request timeout, applied by the driver to every statement.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Default bound on one save (state + outbox entries): well under the server's mutation
/// limit (half a commit log segment: 16 MiB on Cassandra and ScyllaDB defaults), since a
/// lightweight transaction also writes its proposal to the Paxos table.
pub const DEFAULT_MAX_WRITE_BYTES: usize = 8 << 20;

/// The consistency level of every non-serial read and write, and of the commit of every
/// lightweight transaction.
///
/// Only levels whose reads and writes always overlap (so a read sees every acknowledged
/// write) are offered. The `LOCAL_*` level is the default and is linearizable only within
/// one datacenter: a keyspace replicated to several datacenters needs [`Self::Quorum`] or
/// [`Self::EachQuorum`] (with [`SerialLevel::Serial`]); `connect` refuses the combination
/// otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConsistencyLevel {
    /// A majority of all replicas, across datacenters.
    Quorum,
    /// A majority of the replicas of the local datacenter (the default).
    #[default]
    LocalQuorum,
    /// Writes: a majority in every datacenter. Reads use `QUORUM` (ScyllaDB accepts
    /// `EACH_QUORUM` for writes only), which overlaps every `EACH_QUORUM` write.
    EachQuorum,
    /// Every replica: one replica down stops reads and writes.
    All,
}

impl ConsistencyLevel {
    /// Every accepted level, in the spelling of the configuration.
    pub const ACCEPTED: &'static str = "quorum, local_quorum, each_quorum or all";

    /// Whether the level counts only the local datacenter's replicas.
    pub fn is_local(self) -> bool {
        matches!(self, Self::LocalQuorum)
    }

    /// The CQL name (`LOCAL_QUORUM`).
    pub fn as_cql(self) -> &'static str {
        match self {
            Self::Quorum => "QUORUM",
            Self::LocalQuorum => "LOCAL_QUORUM",
            Self::EachQuorum => "EACH_QUORUM",
            Self::All => "ALL",
        }
    }

    /// The level of writes and of lightweight-transaction commits.
    pub(crate) fn write(self) -> Consistency {
        match self {
            Self::Quorum => Consistency::Quorum,
            Self::LocalQuorum => Consistency::LocalQuorum,
            Self::EachQuorum => Consistency::EachQuorum,
            Self::All => Consistency::All,
        }
    }

    /// The level of non-serial reads.
    pub(crate) fn read(self) -> Consistency {
        match self {
            Self::EachQuorum => Consistency::Quorum,
            other => other.write(),
        }
    }
}

impl FromStr for ConsistencyLevel {
    type Err = StoreError;

    /// `quorum`, `local_quorum`, `each_quorum`, `all`, in any case.
    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(Self::Quorum),
            "local_quorum" => Ok(Self::LocalQuorum),
            "each_quorum" => Ok(Self::EachQuorum),
            "all" => Ok(Self::All),
            _ => Err(invalid(&format!(
                "consistency {text:?} is not one of {} (levels below a quorum would let a \
                 read miss an acknowledged write)",
                Self::ACCEPTED
            ))),
        }
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_cql())
    }
}

/// The consistency level of the Paxos phase of lightweight transactions and of the
/// linearizable reads that resolve ambiguous outcomes.
///
/// [`Self::LocalSerial`] (the default) is linearizable only within one datacenter: with a
/// keyspace replicated to several, two datacenters could each win the same compare-and-set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SerialLevel {
    /// Paxos over the replicas of every datacenter.
    Serial,
    /// Paxos over the replicas of the local datacenter (the default).
    #[default]
    LocalSerial,
}

impl SerialLevel {
    /// Every accepted level, in the spelling of the configuration.
    pub const ACCEPTED: &'static str = "serial or local_serial";

    /// Whether the level counts only the local datacenter's replicas.
    pub fn is_local(self) -> bool {
        matches!(self, Self::LocalSerial)
    }

    /// The CQL name (`LOCAL_SERIAL`).
    pub fn as_cql(self) -> &'static str {
        match self {
            Self::Serial => "SERIAL",
            Self::LocalSerial => "LOCAL_SERIAL",
        }
    }

    /// The serial consistency of lightweight transactions.
    pub(crate) fn paxos(self) -> SerialConsistency {
        match self {
            Self::Serial => SerialConsistency::Serial,
            Self::LocalSerial => SerialConsistency::LocalSerial,
        }
    }

    /// The consistency of a linearizable read.
    pub(crate) fn read(self) -> Consistency {
        match self {
            Self::Serial => Consistency::Serial,
            Self::LocalSerial => Consistency::LocalSerial,
        }
    }
}

impl FromStr for SerialLevel {
    type Err = StoreError;

    /// `serial`, `local_serial`, in any case.
    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serial" => Ok(Self::Serial),
            "local_serial" => Ok(Self::LocalSerial),
            _ => Err(invalid(&format!(
                "serial_consistency {text:?} is not one of {}",
                Self::ACCEPTED
            ))),
        }
    }
}

impl fmt::Display for SerialLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_cql())
    }
}

/// How to reach the cluster and how to lay out the keyspace.
#[derive(Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`. The driver discovers the rest of the cluster.
    pub nodes: Vec<String>,
    /// Keyspace holding every table of the adapter.
    pub keyspace: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Replicas per datacenter when the keyspace is created (ignored when it exists).
    pub replication_factor: u32,
    /// The local datacenter: used for `NetworkTopologyStrategy` and the DC-aware load
    /// balancing policy. `None`: discovered from the cluster metadata at connect.
    pub datacenter: Option<String>,
    /// Client-side timeout of every request.
    pub request_timeout: Duration,
    /// Timeout of the initial connection to a node.
    pub connect_timeout: Duration,
    /// Create the keyspace and tables when absent (`true` by default). In production the
    /// schema is best created once, from one node, before the fleet starts.
    pub create_schema: bool,
    /// Largest accepted save (state plus outbox payloads), else `StoreError::TooLarge`.
    pub max_write_bytes: usize,
    /// ScyllaDB only: `Some(false)` creates the keyspace with `tablets = {'enabled': false}`
    /// (vnodes), for ScyllaDB versions that do not support lightweight transactions on
    /// tablet keyspaces; `Some(true)` asks for tablets. `None` (the default) leaves the
    /// server's default and adds nothing, which is what Cassandra requires.
    pub tablets: Option<bool>,
    /// Level of reads, writes and lightweight-transaction commits (`LOCAL_QUORUM` by
    /// default). See [`ConsistencyLevel`].
    pub consistency: ConsistencyLevel,
    /// Level of the Paxos phase and of serial reads (`LOCAL_SERIAL` by default). See
    /// [`SerialLevel`].
    pub serial_consistency: SerialLevel,
}

impl fmt::Debug for ScyllaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("nodes", &self.nodes)
            .field("keyspace", &self.keyspace)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("replication_factor", &self.replication_factor)
            .field("datacenter", &self.datacenter)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("create_schema", &self.create_schema)
            .field("max_write_bytes", &self.max_write_bytes)
            .field("tablets", &self.tablets)
            .field("consistency", &self.consistency)
            .field("serial_consistency", &self.serial_consistency)
            .finish()
    }
}

impl ScyllaConfig {
    /// A configuration for `nodes` and `keyspace` with every default.
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> Result<Self, StoreError> {
        let keyspace = keyspace.into();
        validate_keyspace(&keyspace)?;
        if nodes.is_empty() {
            return Err(invalid("no contact node given"));
        }
        Ok(Self {
            nodes,
            keyspace,
            user: None,
            password: None,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            datacenter: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            create_schema: true,
            max_write_bytes: DEFAULT_MAX_WRITE_BYTES,
            tablets: None,
            consistency: ConsistencyLevel::default(),
            serial_consistency: SerialLevel::default(),
        })
    }

    /// Parse `scylla://[user[:password]@]host[:port][,host[:port]…]/keyspace[?params]`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("scylla://")
            .or_else(|| url.strip_prefix("cassandra://"))
            .ok_or_else(|| invalid("url must start with scylla:// or cassandra://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, keyspace) = rest
            .split_once('/')
            .ok_or_else(|| invalid("url has no /keyspace"))?;
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, authority),
        };
        let nodes = hosts
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| {
                if host.starts_with('[') || host.rsplit_once(':').is_some() {
                    host.to_owned()
                } else {
                    format!("{host}:9042")
                }
            })
            .collect();
        let mut config = Self::new(nodes, keyspace)?;
        if let Some(credentials) = credentials {
            let (user, password) = match credentials.split_once(':') {
                Some((user, password)) => (user, Some(password.to_owned())),
                None => (credentials, None),
            };
            config.user = Some(user.to_owned());
            config.password = password;
        }
        for pair in query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "rf" | "replication_factor" => {
                    config.replication_factor = value
                        .parse()
                        .ok()
                        .filter(|rf| *rf >= 1)
                        .ok_or_else(|| invalid("rf must be a positive integer"))?;
                }
                "dc" | "datacenter" => config.datacenter = Some(value.to_owned()),
                "timeout_ms" => {
                    let millis: u64 = value
                        .parse()
                        .ok()
                        .filter(|ms| *ms >= 1)
                        .ok_or_else(|| invalid("timeout_ms must be a positive integer"))?;
                    config.request_timeout = Duration::from_millis(millis);
                }
                "create_schema" => {
                    config.create_schema = value
                        .parse()
                        .map_err(|_| invalid("create_schema must be true or false"))?;
                }
                "tablets" => {
                    config.tablets = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("tablets must be true or false"))?,
                    );
                }
                "consistency" => config.consistency = value.parse()?,
                "serial_consistency" => config.serial_consistency = value.parse()?,
                other => return Err(invalid(&format!("unknown url parameter {other:?}"))),
            }
        }
        Ok(config)
    }

    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    pub fn with_replication_factor(mut self, replication_factor: u32) -> Self {
        self.replication_factor = replication_factor.max(1);
        self
    }

    pub fn with_datacenter(mut self, datacenter: impl Into<String>) -> Self {
        self.datacenter = Some(datacenter.into());
        self
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_create_schema(mut self, create_schema: bool) -> Self {
        self.create_schema = create_schema;
        self
    }

    /// The consistency levels: `consistency` for reads, writes and commits, `serial` for
    /// Paxos and serial reads.
    pub fn with_consistency(mut self, consistency: ConsistencyLevel, serial: SerialLevel) -> Self {
        self.consistency = consistency;
        self.serial_consistency = serial;
        self
    }
}

/// A keyspace name is spliced into CQL text, so only unquoted identifiers are accepted.
fn validate_keyspace(keyspace: &str) -> Result<(), StoreError> {
    let valid = !keyspace.is_empty()
        && keyspace.len() <= 48
        && keyspace.starts_with(|c: char| c.is_ascii_alphabetic())
        && keyspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(invalid(&format!(
            "keyspace {keyspace:?} must be 1-48 ascii letters, digits or '_', starting with a letter"
        )))
    }
}

/// Datacenter names are spliced into the replication map of `CREATE KEYSPACE`.
pub(crate) fn validate_datacenter(datacenter: &str) -> Result<(), StoreError> {
    if !datacenter.is_empty()
        && datacenter
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(())
    } else {
        Err(invalid(&format!(
            "datacenter name {datacenter:?} is not supported"
        )))
    }
}

fn invalid(why: &str) -> StoreError {
    StoreError::Other(format!("invalid scylla config: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_url() {
        let config = ScyllaConfig::from_url(
            "scylla://app:s3cret@h1:9042,h2,[::1]:19042/shop?rf=3&dc=eu-west&timeout_ms=500&tablets=false&consistency=each_quorum&serial_consistency=SERIAL",
        )
        .unwrap();
        assert_eq!(config.nodes, vec!["h1:9042", "h2:9042", "[::1]:19042"]);
        assert_eq!(config.keyspace, "shop");
        assert_eq!(config.user.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("s3cret"));
        assert_eq!(config.replication_factor, 3);
        assert_eq!(config.datacenter.as_deref(), Some("eu-west"));
        assert_eq!(config.request_timeout, Duration::from_millis(500));
        assert_eq!(config.tablets, Some(false));
        assert_eq!(config.consistency, ConsistencyLevel::EachQuorum);
        assert_eq!(config.serial_consistency, SerialLevel::Serial);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn defaults_and_rejections() {
        let config = ScyllaConfig::from_url("cassandra://127.0.0.1:9042/emp").unwrap();
        assert_eq!(config.replication_factor, 1);
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(config.datacenter.is_none() && config.user.is_none());
        assert_eq!(config.consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(config.serial_consistency, SerialLevel::LocalSerial);
        for bad in [
            "http://h/ks",
            "scylla://h",
            "scylla://h/",
            "scylla://h/1ks",
            "scylla://h/ks;drop",
            "scylla:///ks",
            "scylla://h/ks?rf=0",
            "scylla://h/ks?nope=1",
            "scylla://h/ks?consistency=one",
            "scylla://h/ks?consistency=local_one",
            "scylla://h/ks?consistency=serial",
            "scylla://h/ks?consistency=",
            "scylla://h/ks?serial_consistency=quorum",
            "scylla://h/ks?serial_consistency",
        ] {
            assert!(ScyllaConfig::from_url(bad).is_err(), "{bad} was accepted");
        }
        assert!(validate_datacenter("dc1").is_ok());
        assert!(validate_datacenter("dc'1").is_err());
    }

    #[test]
    fn consistency_levels() {
        for (text, level, local, read, write) in [
            (
                "quorum",
                ConsistencyLevel::Quorum,
                false,
                Consistency::Quorum,
                Consistency::Quorum,
            ),
            (
                "LOCAL_QUORUM",
                ConsistencyLevel::LocalQuorum,
                true,
                Consistency::LocalQuorum,
                Consistency::LocalQuorum,
            ),
            (
                " Each_Quorum ",
                ConsistencyLevel::EachQuorum,
                false,
                Consistency::Quorum,
                Consistency::EachQuorum,
            ),
            (
                "all",
                ConsistencyLevel::All,
                false,
                Consistency::All,
                Consistency::All,
            ),
        ] {
            let parsed: ConsistencyLevel = text.parse().unwrap();
            assert_eq!(parsed, level, "{text}");
            assert_eq!(parsed.is_local(), local, "{text}");
            assert_eq!(parsed.read(), read, "{text}");
            assert_eq!(parsed.write(), write, "{text}");
            assert_eq!(
                parsed.to_string().parse::<ConsistencyLevel>().unwrap(),
                parsed
            );
        }
        for (text, level, local, paxos, read) in [
            (
                "serial",
                SerialLevel::Serial,
                false,
                SerialConsistency::Serial,
                Consistency::Serial,
            ),
            (
                "Local_Serial",
                SerialLevel::LocalSerial,
                true,
                SerialConsistency::LocalSerial,
                Consistency::LocalSerial,
            ),
        ] {
            let parsed: SerialLevel = text.parse().unwrap();
            assert_eq!(parsed, level, "{text}");
            assert_eq!(parsed.is_local(), local, "{text}");
            assert_eq!(parsed.paxos(), paxos, "{text}");
            assert_eq!(parsed.read(), read, "{text}");
            assert_eq!(parsed.to_string().parse::<SerialLevel>().unwrap(), parsed);
        }
        let error = "one".parse::<ConsistencyLevel>().unwrap_err().to_string();
        assert!(
            error.contains("quorum, local_quorum, each_quorum or all"),
            "{error}"
        );
        let error = "quorum".parse::<SerialLevel>().unwrap_err().to_string();
        assert!(error.contains("serial or local_serial"), "{error}");
        let config = ScyllaConfig::new(vec!["h:9042".into()], "ks")
            .unwrap()
            .with_consistency(ConsistencyLevel::Quorum, SerialLevel::Serial);
        assert_eq!(
            (config.consistency, config.serial_consistency),
            (ConsistencyLevel::Quorum, SerialLevel::Serial)
        );
    }
}
