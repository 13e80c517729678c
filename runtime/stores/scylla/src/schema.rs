//! The keyspace layout and every statement of the adapter, prepared once at connect.
//!
//! # Tables
//! - `actors ((kind, key), section, name)`: **one partition per actor**. The static columns
//!   `version`, `state`, `writer` are the record; clustering rows hold the actor's outbox
//!   entries (`section = 0`, `name` = event id, ordered by `(seq, pos)` = the committing
//!   version and the entry's position in its write) and reminders (`section = 1`,
//!   `name` = reminder name). A save is therefore one *single-partition* conditional batch
//!   (`… IF version = ?`), which Cassandra and ScyllaDB apply atomically and in isolation.
//! - `actor_keys ((kind, bucket), key)`: which keys a kind has, for `list_keys`. Spread over
//!   [`KEY_BUCKETS`] partitions per kind (merged on read) so that one big kind is not one
//!   hot, unbounded partition.
//! - `outbox_actors (bucket, kind, key)`: the actors that may have pending outbox entries,
//!   spread over [`OUTBOX_BUCKETS`] partitions, so `outbox_pending` never scans `actors`.
//! - `outbox_shards (shard, kind, key)`: the actors of a shard that may have pending outbox
//!   entries, so `outbox_pending_in` reads one partition of marks, never the other shards'.
//!   Written with the `outbox_actors` mark, by the same protocol.
//! - `reminder_actors (shard, kind, key)`: the actors of a shard that may have reminders.
//! - `schema_migrations (name)`: data migrations done on the keyspace, one row each, written
//!   once the migration completed (see [`OUTBOX_SHARDS_BACKFILL`]).
//! - `members (node_id)`, `leases (shard)`: cluster rows; leases change only through
//!   lightweight transactions (`IF NOT EXISTS` / `IF epoch = ?`), and a member row is
//!   removed only by one (`IF incarnation = ?`).
//!
//! Every index row carries a `live` column only so that `WRITETIME(live)` can be read: a
//! stale index row is removed `USING TIMESTAMP` of the write that was read, which cannot
//! shadow a newer re-insert of the same row (see the crate docs for the full protocol).
//!
//! Invariant: `KEY_BUCKETS`, `OUTBOX_BUCKETS` and the bucket function are persisted
//! implicitly; changing them is a data migration.
//!
//! # Replication and consistency levels
//! At connect the keyspace's replication is read from `system_schema.keyspaces` and checked
//! against the configured levels ([`check_levels`]): a keyspace replicated to several
//! datacenters is refused with any `LOCAL_*` level, since those are linearizable only within
//! one datacenter.

use std::collections::HashMap;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use emporium_runtime::{StoreError, shard_of};

use crate::config::{ConsistencyLevel, SerialLevel};
use crate::error::{classify_execution, classify_prepare, corrupt};

/// Partitions per kind of the `actor_keys` index.
///
/// A partition should stay well under ~100 MB / a few million rows; 16 buckets keep a
/// kind of tens of millions of keys within that, at the price of 16 small queries (run
/// concurrently) per `list_keys` page.
pub const KEY_BUCKETS: u16 = 16;

/// Partitions of the `outbox_actors` index. It only lists actors with pending entries,
/// which the relay drains continuously, so a few partitions suffice; more buckets spread
/// the write load of a busy cluster over more replicas.
pub const OUTBOX_BUCKETS: u16 = 16;

/// The `schema_migrations` row of the copy of every `outbox_actors` mark into
/// `outbox_shards`, done once on a keyspace created before `outbox_shards` existed (its
/// pending entries have no shard mark yet). Written only after the copy finished, so a
/// node that crashed half-way leaves the copy to the next one that connects; copying twice
/// is harmless (a mark is an idempotent upsert).
pub const OUTBOX_SHARDS_BACKFILL: &str = "outbox_shards_backfill";

/// The index bucket of an actor: derived from its shard, which is stable by contract.
pub fn bucket_of(kind: &str, key: &str, buckets: u16) -> i32 {
    i32::from(shard_of(kind, key) % buckets)
}

/// The tables, in creation order. `{ks}` is replaced by the keyspace name.
const TABLES: &[(&str, &str)] = &[
    (
        "actors",
        "CREATE TABLE IF NOT EXISTS {ks}.actors (
            kind text, key text, section int, name text,
            version bigint static, state blob static, writer uuid static,
            seq bigint, pos int, topic text, payload blob,
            due_at_ms bigint,
            PRIMARY KEY ((kind, key), section, name))",
    ),
    (
        "actor_keys",
        "CREATE TABLE IF NOT EXISTS {ks}.actor_keys (
            kind text, bucket int, key text, live boolean,
            PRIMARY KEY ((kind, bucket), key))",
    ),
    (
        "outbox_actors",
        "CREATE TABLE IF NOT EXISTS {ks}.outbox_actors (
            bucket int, kind text, key text, live boolean,
            PRIMARY KEY (bucket, kind, key))",
    ),
    (
        "outbox_shards",
        "CREATE TABLE IF NOT EXISTS {ks}.outbox_shards (
            shard int, kind text, key text, live boolean,
            PRIMARY KEY (shard, kind, key))",
    ),
    (
        "schema_migrations",
        "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
            name text PRIMARY KEY, applied_at_ms bigint)",
    ),
    (
        "reminder_actors",
        "CREATE TABLE IF NOT EXISTS {ks}.reminder_actors (
            shard int, kind text, key text, live boolean,
            PRIMARY KEY (shard, kind, key))",
    ),
    (
        "members",
        "CREATE TABLE IF NOT EXISTS {ks}.members (
            node_id text PRIMARY KEY, incarnation bigint, cluster_addr text,
            http_addr text, status text, heartbeat_ms bigint)",
    ),
    (
        "leases",
        "CREATE TABLE IF NOT EXISTS {ks}.leases (
            shard int PRIMARY KEY, owner text, epoch bigint)",
    ),
];

/// Create the keyspace and the tables that are missing. Idempotent; DDL is skipped
/// entirely when the driver's metadata already shows every table.
pub(crate) async fn ensure_schema(
    session: &Session,
    keyspace: &str,
    datacenter: &str,
    replication_factor: u32,
    tablets: Option<bool>,
) -> Result<(), StoreError> {
    let missing: Vec<&(&str, &str)> = {
        let state = session.get_cluster_state();
        let existing = state.get_keyspace(keyspace);
        TABLES
            .iter()
            .filter(|(table, _)| existing.is_none_or(|ks| !ks.tables.contains_key(*table)))
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    // One creator at a time per process (several stores may connect at once, e.g. tests);
    // then look again, since another may just have created everything.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _creating = CREATING.lock().await;
    if session.refresh_metadata().await.is_ok() {
        let state = session.get_cluster_state();
        if state.get_keyspace(keyspace).is_some_and(|ks| {
            TABLES
                .iter()
                .all(|(table, _)| ks.tables.contains_key(*table))
        }) {
            return Ok(());
        }
    }
    let tablets = match tablets {
        Some(enabled) => format!(" AND tablets = {{'enabled': {enabled}}}"),
        None => String::new(),
    };
    let create_keyspace = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}{tablets}"
    );
    ddl(session, &create_keyspace).await?;
    for (_, statement) in missing {
        ddl(session, &statement.replace("{ks}", keyspace)).await?;
    }
    Ok(())
}

/// A keyspace's replication, as `system_schema.keyspaces` stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Replication {
    /// The strategy class, e.g. `org.apache.cassandra.locator.NetworkTopologyStrategy`.
    pub(crate) class: String,
    /// `NetworkTopologyStrategy`: the datacenters holding at least one replica, sorted.
    /// Empty for every other strategy.
    pub(crate) datacenters: Vec<String>,
}

impl Replication {
    /// From the `replication` map: `class` plus one `datacenter: factor` entry per
    /// datacenter for `NetworkTopologyStrategy`. A factor of `0` holds no replica; one that
    /// does not parse (a future format) counts as a replica, so the check errs on the safe
    /// side. Cassandra's transient replication writes `3/1`: the part before `/` counts.
    pub(crate) fn from_options(options: &HashMap<String, String>) -> Self {
        let class = options.get("class").cloned().unwrap_or_default();
        let mut datacenters: Vec<String> = if is_network_topology(&class) {
            options
                .iter()
                .filter(|(name, _)| name.as_str() != "class")
                .filter(|(_, factor)| {
                    let replicas = factor.split('/').next().unwrap_or("").trim();
                    replicas.parse::<u32>().map_or(true, |n| n > 0)
                })
                .map(|(name, _)| name.clone())
                .collect()
        } else {
            Vec::new()
        };
        datacenters.sort();
        Self { class, datacenters }
    }

    fn is_network_topology(&self) -> bool {
        is_network_topology(&self.class)
    }

    /// The class without its package (`NetworkTopologyStrategy`).
    fn short_class(&self) -> &str {
        self.class.rsplit('.').next().unwrap_or(&self.class)
    }
}

fn is_network_topology(class: &str) -> bool {
    class.rsplit('.').next() == Some("NetworkTopologyStrategy")
}

/// The replication of `keyspace`, `None` when it does not exist.
pub(crate) async fn read_replication(
    session: &Session,
    keyspace: &str,
) -> Result<Option<Replication>, StoreError> {
    const OP: &str = "read keyspace replication";
    let result = session
        .query_unpaged(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(|error| classify_execution(&error).into_store_error(OP))?;
    let rows = result
        .into_rows_result()
        .map_err(|error| corrupt(OP, error))?;
    let row = rows
        .maybe_first_row::<(HashMap<String, String>,)>()
        .map_err(|error| corrupt(OP, error))?;
    Ok(row.map(|(options,)| Replication::from_options(&options)))
}

/// Whether the configured levels are safe for the keyspace's replication.
///
/// `LOCAL_QUORUM` and `LOCAL_SERIAL` count only the local datacenter's replicas, so they are
/// linearizable only when every replica is in one datacenter: with replicas in two, each
/// datacenter could win the same compare-and-set (and a `LOCAL_QUORUM` read in one could miss
/// a commit acknowledged in the other). Refused when the keyspace is `NetworkTopologyStrategy`
/// over several datacenters, or any other strategy (which places replicas regardless of
/// datacenters) on a cluster that `cluster_datacenters` shows to span several.
/// `EACH_QUORUM` also needs `NetworkTopologyStrategy` (the server refuses it otherwise).
pub(crate) fn check_levels(
    keyspace: &str,
    replication: &Replication,
    cluster_datacenters: &[String],
    consistency: ConsistencyLevel,
    serial: SerialLevel,
) -> Result<(), StoreError> {
    if consistency == ConsistencyLevel::EachQuorum && !replication.is_network_topology() {
        return Err(StoreError::Other(format!(
            "connect: keyspace {keyspace} uses {}, but consistency = each_quorum needs \
             NetworkTopologyStrategy; use consistency = quorum",
            replication.short_class()
        )));
    }
    if !consistency.is_local() && !serial.is_local() {
        return Ok(());
    }
    let (datacenters, placement) = if replication.is_network_topology() {
        (&replication.datacenters[..], "replicated to")
    } else {
        (cluster_datacenters, "on a cluster spanning")
    };
    if datacenters.len() <= 1 {
        return Ok(());
    }
    let local: Vec<String> = [consistency
        .is_local()
        .then(|| format!("consistency = {consistency}"))]
    .into_iter()
    .chain([serial
        .is_local()
        .then(|| format!("serial_consistency = {serial}"))])
    .flatten()
    .collect();
    Err(StoreError::Other(format!(
        "connect: keyspace {keyspace} ({}) is {placement} several datacenters ({}), but \
         {} is configured: LOCAL_* levels are linearizable only within one datacenter, so two \
         datacenters could each win the same compare-and-set. Configure serial_consistency = \
         serial (SERIAL) and consistency = quorum or each_quorum (QUORUM / EACH_QUORUM), e.g. \
         ?serial_consistency=serial&consistency=quorum",
        replication.short_class(),
        datacenters.join(", "),
        local.join(" and "),
    )))
}

async fn ddl(session: &Session, statement: &str) -> Result<(), StoreError> {
    session
        .query_unpaged(statement, &[])
        .await
        .map(|_| ())
        .map_err(|error| classify_execution(&error).into_store_error("create schema"))
}

/// Every statement the adapter runs, prepared at connect.
pub(crate) struct Statements {
    pub(crate) load: PreparedStatement,
    pub(crate) load_version: PreparedStatement,
    pub(crate) load_version_serial: PreparedStatement,
    pub(crate) save_state: PreparedStatement,
    pub(crate) insert_outbox: PreparedStatement,
    pub(crate) set_reminder: PreparedStatement,
    pub(crate) cancel_reminder: PreparedStatement,
    pub(crate) delete_record: PreparedStatement,
    pub(crate) delete_partition: PreparedStatement,
    pub(crate) actor_outbox: PreparedStatement,
    pub(crate) actor_outbox_writetimes: PreparedStatement,
    pub(crate) ack_outbox: PreparedStatement,
    pub(crate) actor_reminders: PreparedStatement,

    pub(crate) insert_key: PreparedStatement,
    pub(crate) keys_first: PreparedStatement,
    pub(crate) keys_after: PreparedStatement,
    pub(crate) delete_key: PreparedStatement,

    pub(crate) mark_outbox: PreparedStatement,
    pub(crate) outbox_marks: PreparedStatement,
    pub(crate) unmark_outbox: PreparedStatement,
    pub(crate) mark_outbox_shard: PreparedStatement,
    pub(crate) outbox_shard_marks: PreparedStatement,
    pub(crate) unmark_outbox_shard: PreparedStatement,

    pub(crate) migration_done: PreparedStatement,
    pub(crate) record_migration: PreparedStatement,

    pub(crate) mark_reminders: PreparedStatement,
    pub(crate) reminder_marks: PreparedStatement,
    pub(crate) unmark_reminders: PreparedStatement,

    pub(crate) upsert_member: PreparedStatement,
    pub(crate) list_members: PreparedStatement,
    pub(crate) remove_member: PreparedStatement,

    pub(crate) create_lease: PreparedStatement,
    pub(crate) move_lease: PreparedStatement,
    pub(crate) load_lease_serial: PreparedStatement,
    pub(crate) list_leases: PreparedStatement,
}

/// How a statement is executed, at the configured levels (defaults: `LOCAL_QUORUM`
/// consistency, `LOCAL_SERIAL` serial consistency).
#[derive(Clone, Copy)]
enum Kind {
    /// A read at the consistency level; safe to retry.
    Read,
    /// A linearizable read at the serial level (completes in-flight Paxos rounds).
    SerialRead,
    /// An unconditional write at the consistency level; idempotent, safe to retry.
    Write,
    /// A lightweight transaction: commit at the consistency level, Paxos at the serial
    /// level; never retried by the driver (the adapter resolves ambiguous outcomes itself).
    Lwt,
}

struct Preparer<'a> {
    session: &'a Session,
    keyspace: &'a str,
    profile: &'a ExecutionProfileHandle,
    timeout: Duration,
    consistency: ConsistencyLevel,
    serial: SerialLevel,
}

impl Preparer<'_> {
    async fn prepare(&self, kind: Kind, text: &str) -> Result<PreparedStatement, StoreError> {
        let text = text.replace("{ks}", self.keyspace);
        let mut statement = self.session.prepare(text.as_str()).await.map_err(|error| {
            classify_prepare(&error).into_store_error(&format!("prepare {text:?}"))
        })?;
        statement.set_execution_profile_handle(Some(self.profile.clone()));
        statement.set_request_timeout(Some(self.timeout));
        statement.set_page_size(PAGE_SIZE);
        match kind {
            Kind::Read => {
                statement.set_consistency(self.consistency.read());
                statement.set_is_idempotent(true);
            }
            Kind::SerialRead => {
                statement.set_consistency(self.serial.read());
                statement.set_is_idempotent(true);
            }
            Kind::Write => {
                statement.set_consistency(self.consistency.write());
                statement.set_is_idempotent(true);
            }
            Kind::Lwt => {
                statement.set_consistency(self.consistency.write());
                statement.set_serial_consistency(Some(self.serial.paxos()));
                statement.set_is_idempotent(false);
            }
        }
        Ok(statement)
    }
}

/// Rows per page of every paged read.
pub(crate) const PAGE_SIZE: i32 = 1000;

impl Statements {
    pub(crate) async fn prepare(
        session: &Session,
        keyspace: &str,
        profile: &ExecutionProfileHandle,
        timeout: Duration,
        (consistency, serial): (ConsistencyLevel, SerialLevel),
    ) -> Result<Self, StoreError> {
        let p = Preparer {
            session,
            keyspace,
            profile,
            timeout,
            consistency,
            serial,
        };
        use Kind::{Lwt, Read, SerialRead, Write};
        Ok(Self {
            load: p
                .prepare(Read, "SELECT version, state FROM {ks}.actors WHERE kind = ? AND key = ? LIMIT 1")
                .await?,
            load_version: p
                .prepare(Read, "SELECT version FROM {ks}.actors WHERE kind = ? AND key = ? LIMIT 1")
                .await?,
            load_version_serial: p
                .prepare(
                    SerialRead,
                    "SELECT version, writer FROM {ks}.actors WHERE kind = ? AND key = ? LIMIT 1",
                )
                .await?,
            save_state: p
                .prepare(
                    Lwt,
                    "UPDATE {ks}.actors SET version = ?, state = ?, writer = ? \
                     WHERE kind = ? AND key = ? IF version = ?",
                )
                .await?,
            insert_outbox: p
                .prepare(
                    Lwt,
                    "INSERT INTO {ks}.actors (kind, key, section, name, seq, pos, topic, payload) \
                     VALUES (?, ?, 0, ?, ?, ?, ?, ?)",
                )
                .await?,
            set_reminder: p
                .prepare(
                    Lwt,
                    "INSERT INTO {ks}.actors (kind, key, section, name, due_at_ms) VALUES (?, ?, 1, ?, ?)",
                )
                .await?,
            cancel_reminder: p
                .prepare(
                    Lwt,
                    "DELETE FROM {ks}.actors WHERE kind = ? AND key = ? AND section = 1 AND name = ?",
                )
                .await?,
            // A conditional delete may only touch static columns; the partition itself goes
            // in the same conditional batch (`delete_partition`).
            delete_record: p
                .prepare(
                    Lwt,
                    "DELETE version, state, writer FROM {ks}.actors \
                     WHERE kind = ? AND key = ? IF version = ?",
                )
                .await?,
            delete_partition: p
                .prepare(Lwt, "DELETE FROM {ks}.actors WHERE kind = ? AND key = ?")
                .await?,
            actor_outbox: p
                .prepare(
                    Read,
                    "SELECT name, seq, pos, topic, payload FROM {ks}.actors \
                     WHERE kind = ? AND key = ? AND section = 0",
                )
                .await?,
            actor_outbox_writetimes: p
                .prepare(
                    Read,
                    "SELECT name, WRITETIME(topic) FROM {ks}.actors \
                     WHERE kind = ? AND key = ? AND section = 0",
                )
                .await?,
            ack_outbox: p
                .prepare(
                    Write,
                    "DELETE FROM {ks}.actors USING TIMESTAMP ? \
                     WHERE kind = ? AND key = ? AND section = 0 AND name = ?",
                )
                .await?,
            actor_reminders: p
                .prepare(
                    Read,
                    "SELECT name, due_at_ms FROM {ks}.actors WHERE kind = ? AND key = ? AND section = 1",
                )
                .await?,

            insert_key: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.actor_keys (kind, bucket, key, live) VALUES (?, ?, ?, true)",
                )
                .await?,
            keys_first: p
                .prepare(
                    Read,
                    "SELECT key, WRITETIME(live) FROM {ks}.actor_keys \
                     WHERE kind = ? AND bucket = ? LIMIT ?",
                )
                .await?,
            keys_after: p
                .prepare(
                    Read,
                    "SELECT key, WRITETIME(live) FROM {ks}.actor_keys \
                     WHERE kind = ? AND bucket = ? AND key > ? LIMIT ?",
                )
                .await?,
            delete_key: p
                .prepare(
                    Write,
                    "DELETE FROM {ks}.actor_keys USING TIMESTAMP ? \
                     WHERE kind = ? AND bucket = ? AND key = ?",
                )
                .await?,

            mark_outbox: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.outbox_actors (bucket, kind, key, live) VALUES (?, ?, ?, true)",
                )
                .await?,
            outbox_marks: p
                .prepare(
                    Read,
                    "SELECT kind, key, WRITETIME(live) FROM {ks}.outbox_actors WHERE bucket = ?",
                )
                .await?,
            unmark_outbox: p
                .prepare(
                    Write,
                    "DELETE FROM {ks}.outbox_actors USING TIMESTAMP ? \
                     WHERE bucket = ? AND kind = ? AND key = ?",
                )
                .await?,

            mark_outbox_shard: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.outbox_shards (shard, kind, key, live) VALUES (?, ?, ?, true)",
                )
                .await?,
            outbox_shard_marks: p
                .prepare(
                    Read,
                    "SELECT kind, key, WRITETIME(live) FROM {ks}.outbox_shards WHERE shard = ?",
                )
                .await?,
            unmark_outbox_shard: p
                .prepare(
                    Write,
                    "DELETE FROM {ks}.outbox_shards USING TIMESTAMP ? \
                     WHERE shard = ? AND kind = ? AND key = ?",
                )
                .await?,

            migration_done: p
                .prepare(Read, "SELECT name FROM {ks}.schema_migrations WHERE name = ?")
                .await?,
            record_migration: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.schema_migrations (name, applied_at_ms) VALUES (?, ?)",
                )
                .await?,

            mark_reminders: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.reminder_actors (shard, kind, key, live) VALUES (?, ?, ?, true)",
                )
                .await?,
            reminder_marks: p
                .prepare(
                    Read,
                    "SELECT kind, key, WRITETIME(live) FROM {ks}.reminder_actors WHERE shard = ?",
                )
                .await?,
            unmark_reminders: p
                .prepare(
                    Write,
                    "DELETE FROM {ks}.reminder_actors USING TIMESTAMP ? \
                     WHERE shard = ? AND kind = ? AND key = ?",
                )
                .await?,

            upsert_member: p
                .prepare(
                    Write,
                    "INSERT INTO {ks}.members \
                     (node_id, incarnation, cluster_addr, http_addr, status, heartbeat_ms) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .await?,
            list_members: p
                .prepare(
                    Read,
                    "SELECT node_id, incarnation, cluster_addr, http_addr, status, heartbeat_ms \
                     FROM {ks}.members",
                )
                .await?,
            // A lightweight transaction, so the condition is checked linearizably against a
            // newer life's heartbeat (at the configured serial level, like every LWT here).
            remove_member: p
                .prepare(Lwt, "DELETE FROM {ks}.members WHERE node_id = ? IF incarnation = ?")
                .await?,

            create_lease: p
                .prepare(
                    Lwt,
                    "INSERT INTO {ks}.leases (shard, owner, epoch) VALUES (?, ?, 1) IF NOT EXISTS",
                )
                .await?,
            move_lease: p
                .prepare(Lwt, "UPDATE {ks}.leases SET owner = ?, epoch = ? WHERE shard = ? IF epoch = ?")
                .await?,
            load_lease_serial: p
                .prepare(SerialRead, "SELECT owner, epoch FROM {ks}.leases WHERE shard = ?")
                .await?,
            list_leases: p
                .prepare(Read, "SELECT shard, owner, epoch FROM {ks}.leases")
                .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTS: &str = "org.apache.cassandra.locator.NetworkTopologyStrategy";

    fn replication(entries: &[(&str, &str)]) -> Replication {
        Replication::from_options(
            &entries
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    fn dcs(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    use ConsistencyLevel::{All, EachQuorum, LocalQuorum, Quorum};
    use SerialLevel::{LocalSerial, Serial};

    #[test]
    fn parses_replication_maps() {
        let two = replication(&[("class", NTS), ("dc2", "1"), ("datacenter1", "1")]);
        assert!(two.is_network_topology());
        assert_eq!(two.datacenters, dcs(&["datacenter1", "dc2"]));
        assert_eq!(two.short_class(), "NetworkTopologyStrategy");
        // A datacenter with factor 0 holds no replica; transient `3/1` counts; junk counts.
        let one = replication(&[("class", "NetworkTopologyStrategy"), ("a", "3"), ("b", "0")]);
        assert_eq!(one.datacenters, dcs(&["a"]));
        let odd = replication(&[("class", NTS), ("a", "3/1"), ("b", "x")]);
        assert_eq!(odd.datacenters, dcs(&["a", "b"]));
        let simple = replication(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "3"),
        ]);
        assert!(!simple.is_network_topology());
        assert!(simple.datacenters.is_empty());
        assert_eq!(simple.short_class(), "SimpleStrategy");
    }

    #[test]
    fn single_datacenter_keyspaces_accept_every_level() {
        let one = replication(&[("class", NTS), ("datacenter1", "3")]);
        let cluster = dcs(&["datacenter1"]);
        for consistency in [Quorum, LocalQuorum, EachQuorum, All] {
            for serial in [Serial, LocalSerial] {
                assert!(check_levels("ks", &one, &cluster, consistency, serial).is_ok());
            }
        }
        // A keyspace in one datacenter of a multi-datacenter cluster is still local.
        let cluster = dcs(&["datacenter1", "dc2"]);
        assert!(check_levels("ks", &one, &cluster, LocalQuorum, LocalSerial).is_ok());
    }

    #[test]
    fn multi_datacenter_keyspaces_refuse_local_levels() {
        let two = replication(&[("class", NTS), ("datacenter1", "1"), ("dc2", "1")]);
        let cluster = dcs(&["datacenter1"]);
        for (consistency, serial, named) in [
            (
                LocalQuorum,
                LocalSerial,
                "consistency = LOCAL_QUORUM and serial_consistency = LOCAL_SERIAL",
            ),
            (
                LocalQuorum,
                Serial,
                "consistency = LOCAL_QUORUM is configured",
            ),
            (
                Quorum,
                LocalSerial,
                "serial_consistency = LOCAL_SERIAL is configured",
            ),
            (
                EachQuorum,
                LocalSerial,
                "serial_consistency = LOCAL_SERIAL is configured",
            ),
        ] {
            let Err(StoreError::Other(message)) =
                check_levels("shop", &two, &cluster, consistency, serial)
            else {
                panic!("{consistency}/{serial} was accepted");
            };
            for part in [
                "keyspace shop (NetworkTopologyStrategy)",
                "replicated to several datacenters (datacenter1, dc2)",
                named,
                "serial_consistency = serial",
                "consistency = quorum or each_quorum",
            ] {
                assert!(message.contains(part), "{part:?} not in {message}");
            }
        }
        for consistency in [Quorum, EachQuorum, All] {
            assert!(check_levels("shop", &two, &cluster, consistency, Serial).is_ok());
        }
    }

    #[test]
    fn other_strategies_follow_the_cluster_datacenters() {
        let simple = replication(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "3"),
        ]);
        let one = dcs(&["datacenter1"]);
        let two = dcs(&["datacenter1", "dc2"]);
        assert!(check_levels("ks", &simple, &one, LocalQuorum, LocalSerial).is_ok());
        let Err(StoreError::Other(message)) =
            check_levels("ks", &simple, &two, LocalQuorum, LocalSerial)
        else {
            panic!("accepted");
        };
        assert!(
            message.contains(
                "(SimpleStrategy) is on a cluster spanning several datacenters (datacenter1, dc2)"
            ),
            "{message}"
        );
        assert!(check_levels("ks", &simple, &two, Quorum, Serial).is_ok());
        let Err(StoreError::Other(message)) = check_levels("ks", &simple, &one, EachQuorum, Serial)
        else {
            panic!("accepted");
        };
        assert!(
            message.contains("each_quorum needs NetworkTopologyStrategy"),
            "{message}"
        );
    }

    /// Against the live cluster (`SCYLLA_NODES`): the replication maps the server really
    /// stores parse as expected, a missing keyspace reads as `None`, and what was read
    /// decides as the unit cases above. (A keyspace replicated to a datacenter without
    /// nodes cannot be created on Cassandra 4+, so the second datacenter is added to the
    /// map read back, not to the server's.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_the_replication_the_server_stores() {
        use emporium_runtime::store::conformance::service_unavailable;
        use scylla::client::session_builder::SessionBuilder;

        let Ok(nodes) = std::env::var("SCYLLA_NODES") else {
            service_unavailable::<()>("SCYLLA_NODES not set");
            return;
        };
        let nodes: Vec<&str> = nodes.split(',').map(str::trim).collect();
        let session = match SessionBuilder::new().known_nodes(&nodes).build().await {
            Ok(session) => session,
            Err(error) => {
                service_unavailable::<()>(&format!("scylla at {nodes:?} unreachable: {error}"));
                return;
            }
        };
        let rows = session
            .query_unpaged("SELECT data_center FROM system.local", &[])
            .await
            .expect("system.local")
            .into_rows_result()
            .expect("rows");
        let (local,) = rows.first_row::<(String,)>().expect("one row");
        let pid = std::process::id();
        let (nts, simple) = (
            format!("emp_repl_nts_{pid}"),
            format!("emp_repl_simple_{pid}"),
        );
        for (keyspace, replication) in [
            (
                &nts,
                format!("'class': 'NetworkTopologyStrategy', '{local}': 1"),
            ),
            (
                &simple,
                "'class': 'SimpleStrategy', 'replication_factor': 1".to_owned(),
            ),
        ] {
            let create = format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{replication}}}"
            );
            session
                .query_unpaged(create, &[])
                .await
                .expect("create keyspace");
        }
        let read_nts = read_replication(&session, &nts).await;
        let read_simple = read_replication(&session, &simple).await;
        let missing = read_replication(&session, &format!("emp_repl_none_{pid}")).await;
        for keyspace in [&nts, &simple] {
            let drop = format!("DROP KEYSPACE IF EXISTS {keyspace}");
            session
                .query_unpaged(drop, &[])
                .await
                .expect("drop keyspace");
        }

        let read_nts = read_nts.expect("read").expect("the keyspace exists");
        assert!(read_nts.is_network_topology(), "{read_nts:?}");
        let cluster = [local.clone()];
        assert_eq!(read_nts.datacenters, cluster);
        assert!(check_levels(&nts, &read_nts, &cluster, LocalQuorum, LocalSerial).is_ok());
        let mut two = read_nts.clone();
        two.datacenters.push("zz_remote".to_owned());
        let refused = check_levels(&nts, &two, &cluster, LocalQuorum, LocalSerial);
        assert!(
            matches!(&refused, Err(StoreError::Other(message))
                if message.contains(&format!("({local}, zz_remote)"))),
            "{refused:?}"
        );
        assert!(check_levels(&nts, &two, &cluster, Quorum, Serial).is_ok());

        let read_simple = read_simple.expect("read").expect("the keyspace exists");
        assert_eq!(read_simple.short_class(), "SimpleStrategy");
        assert!(read_simple.datacenters.is_empty());
        assert!(check_levels(&simple, &read_simple, &cluster, LocalQuorum, LocalSerial).is_ok());

        assert_eq!(missing.expect("read"), None);
    }
}
