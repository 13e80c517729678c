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
//! - `reminder_actors (shard, kind, key)`: the actors of a shard that may have reminders.
//! - `members (node_id)`, `leases (shard)`: cluster rows; leases change only through
//!   lightweight transactions (`IF NOT EXISTS` / `IF epoch = ?`).
//!
//! Every index row carries a `live` column only so that `WRITETIME(live)` can be read: a
//! stale index row is removed `USING TIMESTAMP` of the write that was read, which cannot
//! shadow a newer re-insert of the same row (see the crate docs for the full protocol).
//!
//! Invariant: `KEY_BUCKETS`, `OUTBOX_BUCKETS` and the bucket function are persisted
//! implicitly; changing them is a data migration.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use emporium_runtime::{StoreError, shard_of};

use crate::error::{classify_execution, classify_prepare};

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

    pub(crate) mark_reminders: PreparedStatement,
    pub(crate) reminder_marks: PreparedStatement,
    pub(crate) unmark_reminders: PreparedStatement,

    pub(crate) upsert_member: PreparedStatement,
    pub(crate) list_members: PreparedStatement,

    pub(crate) create_lease: PreparedStatement,
    pub(crate) move_lease: PreparedStatement,
    pub(crate) load_lease_serial: PreparedStatement,
    pub(crate) list_leases: PreparedStatement,
}

/// How a statement is executed.
#[derive(Clone, Copy)]
enum Kind {
    /// A read at `LOCAL_QUORUM`; safe to retry.
    Read,
    /// A linearizable read at `LOCAL_SERIAL` (completes in-flight Paxos rounds).
    SerialRead,
    /// An unconditional write at `LOCAL_QUORUM`; idempotent, safe to retry.
    Write,
    /// A lightweight transaction: `LOCAL_QUORUM` commit, `LOCAL_SERIAL` Paxos; never
    /// retried by the driver (the adapter resolves ambiguous outcomes itself).
    Lwt,
}

struct Preparer<'a> {
    session: &'a Session,
    keyspace: &'a str,
    profile: &'a ExecutionProfileHandle,
    timeout: Duration,
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
                statement.set_consistency(Consistency::LocalQuorum);
                statement.set_is_idempotent(true);
            }
            Kind::SerialRead => {
                statement.set_consistency(Consistency::LocalSerial);
                statement.set_is_idempotent(true);
            }
            Kind::Write => {
                statement.set_consistency(Consistency::LocalQuorum);
                statement.set_is_idempotent(true);
            }
            Kind::Lwt => {
                statement.set_consistency(Consistency::LocalQuorum);
                statement.set_serial_consistency(Some(SerialConsistency::LocalSerial));
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
    ) -> Result<Self, StoreError> {
        let p = Preparer {
            session,
            keyspace,
            profile,
            timeout,
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
