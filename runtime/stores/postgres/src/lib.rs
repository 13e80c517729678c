//! The PostgreSQL adapter of Emporium's [`StateStore`] port.
//!
//! [`PostgresStore`] keeps actor records, outbox entries, reminders, members and leases in
//! five tables of one schema (see [`schema`](crate::schema) for the DDL and migrations),
//! reached through a `deadpool-postgres` pool of `tokio-postgres` connections (no TLS yet).
//!
//! # How the contract is met
//! - **Compare-and-set** is a conditional statement, never read-then-write: expected version
//!   `0` is `INSERT … ON CONFLICT DO NOTHING`, any other is
//!   `UPDATE … WHERE kind = $1 AND key = $2 AND version = $3`. Zero rows affected means the
//!   CAS lost; the current version is then read for the [`StoreError::Conflict`]. Under READ
//!   COMMITTED a concurrent writer of the same row waits for the first to commit and then
//!   re-checks the condition, so exactly one of two racing writers wins.
//! - **Atomicity**: every save is a single (atomic) statement in autocommit, one round trip.
//!   A save with outbox entries or reminder changes writes them in the same statement as
//!   the record, as data-modifying CTEs that join the record's conditional write (see
//!   `save_with_effects` in [`schema`](crate::schema)): when the CAS loses, nothing is
//!   written. Each mix of effects (no, one or several events; reminders set; reminders
//!   cancelled) has its own statement, so no part runs on empty arrays (`EffectsShape`:
//!   a save with one event went from about 0.7× to 0.83× of a bare save). Every delete
//!   runs in one transaction; dropping its future drops the transaction uncommitted, which
//!   rolls it back.
//!
//!   *What changed and why (issue 14):* a save with effects used to be `BEGIN`, the
//!   conditional write, the outbox insert, `COMMIT`: four round trips holding a pooled
//!   connection. One statement keeps the same guarantees in one round trip, and the commit
//!   point is that statement. (The round trips were not what made a save with one outbox
//!   entry about half as fast as a bare one: the server's work for the outbox row is; see
//!   ARCHITECTURE.md.)
//! - **Durability**: sessions force `synchronous_commit = on`, so `Ok` means flushed WAL.
//! - **Failing fast**: every operation has one deadline (`operation_timeout`, 2 s by
//!   default) covering the pool checkout and the statements; the pool's own wait, create
//!   and recycle timeouts and the server-side `statement_timeout` use the same bound. A
//!   connection refused, closed, reset or slow becomes [`StoreError::Unavailable`] within
//!   that bound, and the connection it happened on is removed from the pool, so the next
//!   operation opens a fresh one (which is also how the pool recovers when the server
//!   comes back).
//! - **Ambiguous saves**: a save that fails that way *after* its commit point was sent
//!   (the single `UPDATE`/`INSERT`, or `COMMIT`) may have been applied by the server; it
//!   is [`StoreError::OutcomeUnknown`], never `Unavailable` (which promises "not applied").
//! - **Prepared statements** are cached per connection (`prepare_cached`).
//!
//! # Costs of the outbox
//! `emporium_outbox` has one index, its primary key `(shard, kind, key, seq)`: a save costs
//! each of its events one heap row and one index entry. `outbox_pending(limit)` walks that
//! key for `limit` rows; `outbox_pending_in(shard, limit)` is one range scan of it, reading
//! `limit` rows of that shard (each actor's in seq order) and never the other shards' rows;
//! an acknowledgement or a delete is one key range per actor.
//!
//! *What changed and why (issue 14):* the table had four indexes (`seq`, a unique
//! `event_id`, `(kind, key)`, `(shard, seq)`), each updated by every outbox insert and
//! every acknowledgement; that index and WAL work, not the round trip, is what made a
//! save with one event far slower than a bare one (migration 3).

mod error;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use emporium_runtime::store::{
    Lease, MemberRecord, MemberStatus, OutboxEntry, PendingEvent, Reminder, ReminderChange,
    StateWrite, Versioned,
};
use emporium_runtime::{ActorId, Shard, StateStore, StoreError, intern_kind, shard_of_id};
use tokio::time::{Instant, error::Elapsed, timeout_at};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::error::OpError;
use crate::schema::{EffectsShape, OutboxShape, Sql};

/// The schema version this build migrates to (the newest row of
/// `emporium_schema_migrations` it writes).
pub const SCHEMA_VERSION: i32 = schema::LATEST_VERSION;

/// Longest accepted `operation_timeout`: keeps deadline arithmetic and the server's
/// `statement_timeout` (an int of milliseconds) far from overflow.
const MAX_OPERATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a starting node may wait for other nodes' migrations of the same schema.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Settings of a [`PostgresStore`]. `Default` gives the production defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Most connections the pool opens (default 16).
    pub pool_size: usize,
    /// Bound on one operation, pool checkout included (default 2 s). Past it the operation
    /// fails with [`StoreError::Unavailable`]; it also sets the server's `statement_timeout`.
    pub operation_timeout: Duration,
    /// The schema holding the tables (default `public`), created when absent. 1 to 63 of
    /// `[a-z0-9_]`, not starting with a digit.
    pub schema: String,
    /// Largest state or outbox payload accepted, in bytes (default 64 MiB); larger ones
    /// fail with [`StoreError::TooLarge`] before anything is sent.
    pub max_value_bytes: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            operation_timeout: Duration::from_secs(2),
            schema: "public".to_owned(),
            max_value_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The PostgreSQL [`StateStore`]. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PostgresStore {
    pool: Pool,
    sql: Sql,
    schema: String,
    operation_timeout: Duration,
    max_value_bytes: usize,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("operation_timeout", &self.operation_timeout)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// [`connect`](Self::connect) with [`PostgresOptions::default`].
    pub async fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, PostgresOptions::default()).await
    }

    /// Open a pool on `url` (`postgres://user[:password]@host:port/database`) and migrate
    /// the schema to the newest version. Fails with [`StoreError::Unavailable`] when the
    /// server cannot be reached, [`StoreError::Other`] on a bad URL or option.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if options.pool_size == 0 {
            return Err(StoreError::Other(
                "postgres pool size must be at least 1".into(),
            ));
        }
        if options.operation_timeout.is_zero() || options.operation_timeout > MAX_OPERATION_TIMEOUT
        {
            return Err(StoreError::Other(format!(
                "postgres operation timeout must be positive and at most {} s",
                MAX_OPERATION_TIMEOUT.as_secs()
            )));
        }
        let quoted = schema::quote_schema(&options.schema)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StoreError::Other(format!("invalid postgres url: {error}")))?;
        let timeout = options.operation_timeout;
        // Server-side guards: a statement never outlives the client's deadline, a
        // transaction abandoned by a vanished client does not hold row locks for long, and
        // commits are durable whatever the server's default.
        let session = format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} \
             -c synchronous_commit=on",
            timeout.as_millis(),
            (timeout * 3).as_millis()
        );
        let session = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {session}"),
            _ => session,
        };
        config.options(session);
        if config.get_application_name().is_none() {
            config.application_name("emporium");
        }
        config.connect_timeout(timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        // Unacknowledged data for this long (a peer that vanished) closes the socket.
        config.tcp_user_timeout(timeout * 3);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Only `is_closed()`: a broken-but-open connection is caught by the
                // operation deadline, which then removes it from the pool.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| StoreError::Other(format!("cannot build postgres pool: {error}")))?;
        let store = Self {
            pool,
            sql: Sql::new(&quoted),
            schema: options.schema,
            operation_timeout: timeout,
            max_value_bytes: options.max_value_bytes,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Close the pool: connections are closed as they come back, later operations fail
    /// with [`StoreError::Unavailable`].
    pub fn close(&self) {
        self.pool.close();
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + MIGRATION_LOCK_WAIT + self.operation_timeout;
        let mut client = self.checkout(deadline).await?;
        let outcome = timeout_at(
            deadline,
            schema::migrate(&mut client, &self.schema, MIGRATION_LOCK_WAIT),
        )
        .await;
        self.settle("migrate", client, outcome).map(drop)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.operation_timeout
    }

    async fn checkout(&self, deadline: Instant) -> Result<Object, StoreError> {
        match timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(error::classify_pool(&error)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no postgres connection within {} ms",
                self.operation_timeout.as_millis()
            ))),
        }
    }

    /// Turn an operation's outcome into the port's result. A connection that saw an
    /// `Unavailable` failure (dead, half-way through a statement, or just slow) leaves the
    /// pool, so no later operation queues behind it.
    fn settle<T>(
        &self,
        operation: &str,
        client: Object,
        outcome: Result<Result<T, OpError>, Elapsed>,
    ) -> Result<T, StoreError> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(OpError::Store(error))) => error,
            Ok(Err(OpError::Pg(error))) => error::classify(&error),
            Err(_) => StoreError::Unavailable(format!(
                "postgres {operation} timed out after {} ms",
                self.operation_timeout.as_millis()
            )),
        };
        if error.is_unavailable() {
            tracing::debug!(operation, %error, "discarding postgres connection");
            drop(Object::take(client));
        }
        Err(error)
    }

    fn check_size(&self, size: usize) -> Result<(), StoreError> {
        if size > self.max_value_bytes {
            Err(StoreError::TooLarge {
                size,
                limit: self.max_value_bytes,
            })
        } else {
            Ok(())
        }
    }
}

/// Run one operation under one deadline: check a connection out, run `$body` on it, settle.
///
/// `retry = true` marks an idempotent operation: when the pooled connection turns out to
/// have been closed already (the server restarted or dropped it since it was last used),
/// it runs once more on a fresh connection within the same deadline. Compare-and-set
/// writes never retry here: their outcome is unknown to them, the caller must reload.
macro_rules! run {
    ($store:expr, $operation:literal, retry = $retry:expr, |$client:ident| $body:expr) => {{
        let store = $store;
        let deadline = store.deadline();
        let mut first_attempt = true;
        loop {
            #[allow(unused_mut)]
            let mut $client = store.checkout(deadline).await?;
            let outcome = timeout_at(deadline, $body).await;
            let stale = matches!(&outcome, Ok(Err(OpError::Pg(error))) if error.is_closed());
            let result = store.settle($operation, $client, outcome);
            if $retry && stale && first_attempt && Instant::now() < deadline {
                first_attempt = false;
                continue;
            }
            break result;
        }
    }};
}

#[async_trait]
impl StateStore for PostgresStore {
    fn adapter(&self) -> &'static str {
        "postgres"
    }

    async fn load(&self, id: &ActorId) -> Result<Option<Versioned>, StoreError> {
        run!(self, "load", retry = true, |client| load_on(
            &self.sql, &client, id
        ))
    }

    async fn save(&self, id: &ActorId, write: StateWrite) -> Result<u64, StoreError> {
        self.check_size(write.state.len())?;
        for entry in &write.outbox {
            self.check_size(entry.payload.len())?;
        }
        let commit_sent = AtomicBool::new(false);
        let saved = run!(self, "save", retry = false, |client| save_on(
            &self.sql,
            &client,
            id,
            &write,
            &commit_sent
        ));
        saved.map_err(|error| unknown_once_committing(error, &commit_sent))
    }

    async fn delete(&self, id: &ActorId, expected_version: u64) -> Result<(), StoreError> {
        run!(self, "delete", retry = false, |client| delete_on(
            &self.sql,
            &mut client,
            id,
            expected_version
        ))
    }

    async fn list_keys(
        &self,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        run!(self, "list_keys", retry = true, |client| list_keys_on(
            &self.sql, &client, kind, after, limit
        ))
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<PendingEvent>, StoreError> {
        run!(self, "outbox_pending", retry = true, |client| {
            outbox_pending_on(&self.sql, &client, limit)
        })
    }

    async fn outbox_pending_in(
        &self,
        shard: Shard,
        limit: usize,
    ) -> Result<Vec<PendingEvent>, StoreError> {
        run!(self, "outbox_pending_in", retry = true, |client| {
            outbox_pending_in_on(&self.sql, &client, shard, limit)
        })
    }

    async fn outbox_ack(&self, events: &[PendingEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        run!(self, "outbox_ack", retry = true, |client| outbox_ack_on(
            &self.sql, &client, events
        ))
    }

    async fn list_reminders(&self, shard: Shard) -> Result<Vec<Reminder>, StoreError> {
        run!(self, "list_reminders", retry = true, |client| {
            list_reminders_on(&self.sql, &client, shard)
        })
    }

    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        run!(self, "upsert_member", retry = true, |client| {
            upsert_member_on(&self.sql, &client, member)
        })
    }

    async fn list_members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        run!(
            self,
            "list_members",
            retry = true,
            |client| list_members_on(&self.sql, &client)
        )
    }

    async fn remove_member(&self, node_id: &str, incarnation: u64) -> Result<bool, StoreError> {
        // Not retried here: a retry after a lost answer would report `false` for a row the
        // first attempt removed. The caller re-lists instead.
        let sent = AtomicBool::new(false);
        let removed = run!(self, "remove_member", retry = false, |client| {
            remove_member_on(&self.sql, &client, node_id, incarnation, &sent)
        });
        removed.map_err(|error| unknown_once_committing(error, &sent))
    }

    async fn claim_lease(
        &self,
        shard: Shard,
        owner: &str,
        expected_epoch: u64,
    ) -> Result<Lease, StoreError> {
        run!(self, "claim_lease", retry = false, |client| claim_lease_on(
            &self.sql,
            &client,
            shard,
            owner,
            expected_epoch
        ))
    }

    async fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        run!(self, "list_leases", retry = true, |client| list_leases_on(
            &self.sql, &client
        ))
    }
}

// The operations proper, each on one pooled connection. They return `OpError` so that
// `settle` classifies driver errors in one place.

async fn load_on(sql: &Sql, client: &Object, id: &ActorId) -> Result<Option<Versioned>, OpError> {
    let statement = client.prepare_cached(&sql.load).await?;
    let Some(row) = client.query_opt(&statement, &[&id.kind, &id.key]).await? else {
        return Ok(None);
    };
    Ok(Some(Versioned {
        version: to_u64(row.try_get(0)?, "version")?,
        state: Bytes::from(row.try_get::<_, Vec<u8>>(1)?),
    }))
}

async fn current_version(sql: &Sql, client: &Object, id: &ActorId) -> Result<u64, OpError> {
    let statement = client.prepare_cached(&sql.current_version).await?;
    match client.query_opt(&statement, &[&id.kind, &id.key]).await? {
        Some(row) => Ok(to_u64(row.try_get(0)?, "version")?),
        None => Ok(0),
    }
}

/// The CAS lost (or the server aborted it as a race): report what is stored now.
async fn actor_conflict(sql: &Sql, client: &Object, id: &ActorId, expected: u64) -> OpError {
    match current_version(sql, client, id).await {
        Ok(found) => OpError::Store(StoreError::Conflict {
            what: id.to_string(),
            expected,
            found,
        }),
        Err(error) => error,
    }
}

/// The conditional write of the record itself; `false` when the CAS condition failed.
/// `commit_sent` is raised just before the statement goes out (it is its own commit).
async fn write_state<C: GenericClient>(
    sql: &Sql,
    client: &C,
    id: &ActorId,
    expected: i64,
    state: &[u8],
    commit_sent: &AtomicBool,
) -> Result<bool, OpError> {
    let rows = if expected == 0 {
        let statement = client.prepare_cached(&sql.insert_state).await?;
        commit_sent.store(true, Ordering::Release);
        client
            .execute(&statement, &[&id.kind, &id.key, &state])
            .await?
    } else {
        let statement = client.prepare_cached(&sql.update_state).await?;
        commit_sent.store(true, Ordering::Release);
        client
            .execute(&statement, &[&id.kind, &id.key, &expected, &state])
            .await?
    };
    Ok(rows == 1)
}

/// A write (a save, a member removal) that failed for want of an answer after its commit
/// point was sent (the single statement, or `COMMIT`) may have been applied: the port's
/// contract says so.
fn unknown_once_committing(error: StoreError, commit_sent: &AtomicBool) -> StoreError {
    match error {
        StoreError::Unavailable(reason) if commit_sent.load(Ordering::Acquire) => {
            StoreError::OutcomeUnknown(format!("{reason} after the commit was sent"))
        }
        other => other,
    }
}

async fn save_on(
    sql: &Sql,
    client: &Object,
    id: &ActorId,
    write: &StateWrite,
    commit_sent: &AtomicBool,
) -> Result<u64, OpError> {
    let expected = write.expected_version;
    let next = expected
        .checked_add(1)
        .ok_or_else(|| StoreError::Other(format!("version of {id} would overflow")))?;
    // No stored version exceeds i64::MAX, so such an expectation simply loses the CAS.
    let Ok(expected_sql) = i64::try_from(expected) else {
        return Err(actor_conflict(sql, client, id, expected).await);
    };
    // Either way one statement, atomic by itself: no transaction block, one round trip.
    let applied = if write.outbox.is_empty() && write.reminders.is_empty() {
        write_state(sql, client, id, expected_sql, &write.state, commit_sent).await
    } else {
        write_state_with_effects(sql, client, id, expected_sql, write, commit_sent).await
    };
    match applied {
        Ok(true) => Ok(next),
        Ok(false) => Err(actor_conflict(sql, client, id, expected).await),
        Err(OpError::Pg(error)) if error::is_race(&error) => {
            Err(actor_conflict(sql, client, id, expected).await)
        }
        Err(error) => Err(error),
    }
}

/// The record's conditional write together with its outbox entries and reminder changes,
/// in the one statement of [`Sql::save_with_effects`] for the shape of `write`'s effects;
/// `false` when the CAS condition failed, and then nothing was written.
async fn write_state_with_effects<C: GenericClient>(
    sql: &Sql,
    client: &C,
    id: &ActorId,
    expected: i64,
    write: &StateWrite,
    commit_sent: &AtomicBool,
) -> Result<bool, OpError> {
    let shard = shard_sql(shard_of_id(id))?;
    let state: &[u8] = &write.state;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id.kind, &id.key];
    if expected != 0 {
        params.push(&expected);
    }
    params.push(&state);
    params.push(&shard);

    let event_ids: Vec<&str>;
    let topics: Vec<&str>;
    let payloads: Vec<&[u8]>;
    let payload: &[u8];
    let outbox = match write.outbox.as_slice() {
        [] => OutboxShape::None,
        [entry] => {
            payload = &entry.payload;
            params.extend([
                &entry.event_id as &(dyn ToSql + Sync),
                &entry.topic,
                &payload,
            ]);
            OutboxShape::One
        }
        entries => {
            event_ids = entries.iter().map(|e| e.event_id.as_str()).collect();
            topics = entries.iter().map(|e| e.topic.as_str()).collect();
            payloads = entries.iter().map(|e| &e.payload[..]).collect();
            params.extend([&event_ids as &(dyn ToSql + Sync), &topics, &payloads]);
            OutboxShape::Many
        }
    };
    let reminders = ReminderArrays::collapse(&write.reminders);
    let sets = !reminders.set_names.is_empty();
    if sets {
        params.extend([
            &reminders.set_names as &(dyn ToSql + Sync),
            &reminders.set_dues,
        ]);
    }
    let cancels = !reminders.cancel_names.is_empty();
    if cancels {
        params.push(&reminders.cancel_names);
    }
    let shape = EffectsShape {
        outbox,
        sets,
        cancels,
    };
    let statement = client
        .prepare_cached(sql.save_with_effects(expected == 0, shape))
        .await?;
    commit_sent.store(true, Ordering::Release);
    let row = client.query_one(&statement, &params).await?;
    Ok(row.try_get::<_, i64>(0)? == 1)
}

/// A write's reminder changes as the arrays of the one-statement save: the last change of
/// each name wins (changes apply in order), so no name is both set and cancelled and no row
/// is touched twice by the statement.
#[derive(Debug, Default, PartialEq, Eq)]
struct ReminderArrays<'a> {
    set_names: Vec<&'a str>,
    set_dues: Vec<i64>,
    cancel_names: Vec<&'a str>,
}

impl<'a> ReminderArrays<'a> {
    fn collapse(changes: &'a [ReminderChange]) -> Self {
        let mut last: BTreeMap<&'a str, Option<u64>> = BTreeMap::new();
        for change in changes {
            match change {
                ReminderChange::Set { name, due_at_ms } => {
                    last.insert(name.as_str(), Some(*due_at_ms))
                }
                ReminderChange::Cancel { name } => last.insert(name.as_str(), None),
            };
        }
        let mut arrays = Self::default();
        for (name, due_at_ms) in last {
            match due_at_ms {
                Some(due_at_ms) => {
                    arrays.set_names.push(name);
                    arrays.set_dues.push(u64_to_bits(due_at_ms));
                }
                None => arrays.cancel_names.push(name),
            }
        }
        arrays
    }
}

async fn delete_on(
    sql: &Sql,
    client: &mut Object,
    id: &ActorId,
    expected: u64,
) -> Result<(), OpError> {
    if expected == 0 {
        // No record means no outbox entries or reminders either (they are only ever
        // written with a record and deleted with it), so there is nothing to remove; and
        // deleting anything here could hit the rows of a save committing concurrently.
        let found = current_version(sql, client, id).await?;
        return if found == 0 {
            Ok(())
        } else {
            Err(OpError::Store(StoreError::Conflict {
                what: id.to_string(),
                expected,
                found,
            }))
        };
    }
    let Ok(expected_sql) = i64::try_from(expected) else {
        return Err(actor_conflict(sql, client, id, expected).await);
    };
    match delete_in_transaction(sql, client, id, expected_sql).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(actor_conflict(sql, client, id, expected).await),
        Err(OpError::Pg(error)) if error::is_race(&error) => {
            Err(actor_conflict(sql, client, id, expected).await)
        }
        Err(error) => Err(error),
    }
}

async fn delete_in_transaction(
    sql: &Sql,
    client: &mut Object,
    id: &ActorId,
    expected: i64,
) -> Result<bool, OpError> {
    let transaction = client.transaction().await?;
    let statement = transaction.prepare_cached(&sql.delete_state).await?;
    if transaction
        .execute(&statement, &[&id.kind, &id.key, &expected])
        .await?
        != 1
    {
        transaction.rollback().await?;
        return Ok(false);
    }
    let shard = shard_sql(shard_of_id(id))?;
    let statement = transaction.prepare_cached(&sql.delete_outbox_of).await?;
    transaction
        .execute(&statement, &[&shard, &id.kind, &id.key])
        .await?;
    let statement = transaction.prepare_cached(&sql.delete_reminders_of).await?;
    transaction
        .execute(&statement, &[&shard, &id.kind, &id.key])
        .await?;
    transaction.commit().await?;
    Ok(true)
}

async fn list_keys_on(
    sql: &Sql,
    client: &Object,
    kind: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, OpError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match after {
        None => {
            let statement = client.prepare_cached(&sql.list_keys_first).await?;
            client.query(&statement, &[&kind, &limit]).await?
        }
        Some(after) => {
            let statement = client.prepare_cached(&sql.list_keys_after).await?;
            client.query(&statement, &[&kind, &after, &limit]).await?
        }
    };
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

async fn outbox_pending_on(
    sql: &Sql,
    client: &Object,
    limit: usize,
) -> Result<Vec<PendingEvent>, OpError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client.prepare_cached(&sql.outbox_pending).await?;
    let rows = client.query(&statement, &[&limit]).await?;
    pending_events(rows)
}

/// Seq order is commit order within one actor (its saves are serialised by the lock on its
/// state row, and each takes its seqs after the previous one committed), so any prefix of a
/// shard's rows in primary-key order `(kind, key, seq)` holds each actor's older entries
/// before its newer ones.
async fn outbox_pending_in_on(
    sql: &Sql,
    client: &Object,
    shard: Shard,
    limit: usize,
) -> Result<Vec<PendingEvent>, OpError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = client.prepare_cached(&sql.outbox_pending_in).await?;
    let rows = client
        .query(&statement, &[&shard_sql(shard)?, &limit])
        .await?;
    pending_events(rows)
}

/// Rows of `(kind, key, event_id, topic, payload)` as pending events.
fn pending_events(rows: Vec<tokio_postgres::Row>) -> Result<Vec<PendingEvent>, OpError> {
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        pending.push(PendingEvent {
            actor: ActorId {
                kind: intern_kind(row.try_get(0)?),
                key: row.try_get(1)?,
            },
            entry: OutboxEntry {
                event_id: row.try_get(2)?,
                topic: row.try_get(3)?,
                payload: Bytes::from(row.try_get::<_, Vec<u8>>(4)?),
            },
        });
    }
    Ok(pending)
}

async fn outbox_ack_on(sql: &Sql, client: &Object, events: &[PendingEvent]) -> Result<(), OpError> {
    let shards = events
        .iter()
        .map(|event| shard_sql(shard_of_id(&event.actor)))
        .collect::<Result<Vec<i16>, _>>()?;
    let kinds: Vec<&str> = events.iter().map(|event| event.actor.kind).collect();
    let keys: Vec<&str> = events
        .iter()
        .map(|event| event.actor.key.as_str())
        .collect();
    let event_ids: Vec<&str> = events.iter().map(|e| e.entry.event_id.as_str()).collect();
    let statement = client.prepare_cached(&sql.outbox_ack).await?;
    client
        .execute(&statement, &[&shards, &kinds, &keys, &event_ids])
        .await?;
    Ok(())
}

async fn list_reminders_on(
    sql: &Sql,
    client: &Object,
    shard: Shard,
) -> Result<Vec<Reminder>, OpError> {
    let statement = client.prepare_cached(&sql.list_reminders).await?;
    let rows = client.query(&statement, &[&shard_sql(shard)?]).await?;
    let mut reminders = Vec::with_capacity(rows.len());
    for row in rows {
        reminders.push(Reminder {
            actor: ActorId {
                kind: intern_kind(row.try_get(0)?),
                key: row.try_get(1)?,
            },
            name: row.try_get(2)?,
            due_at_ms: bits_to_u64(row.try_get(3)?),
        });
    }
    Ok(reminders)
}

async fn upsert_member_on(
    sql: &Sql,
    client: &Object,
    member: &MemberRecord,
) -> Result<(), OpError> {
    let incarnation = u64_to_bits(member.incarnation);
    let heartbeat_ms = u64_to_bits(member.heartbeat_ms);
    let statement = client.prepare_cached(&sql.upsert_member).await?;
    client
        .execute(
            &statement,
            &[
                &member.node_id,
                &incarnation,
                &member.cluster_addr,
                &member.http_addr,
                &member.status.as_str(),
                &heartbeat_ms,
            ],
        )
        .await?;
    Ok(())
}

/// One statement, atomic by itself: the row goes only if it still holds `incarnation`.
async fn remove_member_on(
    sql: &Sql,
    client: &Object,
    node_id: &str,
    incarnation: u64,
    sent: &AtomicBool,
) -> Result<bool, OpError> {
    let incarnation = u64_to_bits(incarnation);
    let statement = client.prepare_cached(&sql.remove_member).await?;
    sent.store(true, Ordering::Release);
    let rows = client
        .execute(&statement, &[&node_id, &incarnation])
        .await?;
    Ok(rows == 1)
}

/// Every member row that can be read. A row that cannot (an unknown status, a negative
/// incarnation or heartbeat, a NULL where a value belongs, an empty node id) is skipped with
/// a warning: one bad row must not hide every member from every node.
async fn list_members_on(sql: &Sql, client: &Object) -> Result<Vec<MemberRecord>, OpError> {
    let statement = client.prepare_cached(&sql.list_members).await?;
    let rows = client.query(&statement, &[]).await?;
    let mut members = Vec::with_capacity(rows.len());
    for row in rows {
        match decode_member(&row) {
            Ok(member) => members.push(member),
            Err(reason) => skip_bad_member_row(&row, &reason),
        }
    }
    Ok(members)
}

/// One member row, or why it cannot be one.
fn decode_member(row: &tokio_postgres::Row) -> Result<MemberRecord, String> {
    fn column<'r, T: tokio_postgres::types::FromSql<'r>>(
        row: &'r tokio_postgres::Row,
        index: usize,
        name: &str,
    ) -> Result<T, String> {
        row.try_get(index)
            .map_err(|error| format!("{name}: {error}"))
    }
    fn non_negative(value: i64, name: &str) -> Result<u64, String> {
        u64::try_from(value).map_err(|_| format!("{name} is negative ({value})"))
    }
    let node_id: String = column(row, 0, "node_id")?;
    if node_id.is_empty() {
        return Err("empty node_id".to_owned());
    }
    let status: String = column(row, 4, "status")?;
    Ok(MemberRecord {
        incarnation: non_negative(column(row, 1, "incarnation")?, "incarnation")?,
        cluster_addr: column(row, 2, "cluster_addr")?,
        http_addr: column(row, 3, "http_addr")?,
        status: MemberStatus::parse(&status)
            .ok_or_else(|| format!("unknown member status {status:?}"))?,
        heartbeat_ms: non_negative(column(row, 5, "heartbeat_ms")?, "heartbeat_ms")?,
        node_id,
    })
}

/// Log a member row [`decode_member`] refused (at most one warning per minute per process:
/// the table is read every heartbeat) and count it in [`skipped_member_rows`].
fn skip_bad_member_row(row: &tokio_postgres::Row, reason: &str) {
    use std::sync::atomic::AtomicU64;
    static LAST_WARNED_S: AtomicU64 = AtomicU64::new(0);
    let skipped = SKIPPED_MEMBER_ROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    metrics::counter!("emporium_store_skipped_member_rows_total", "adapter" => "postgres")
        .increment(1);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let last_s = LAST_WARNED_S.load(std::sync::atomic::Ordering::Relaxed);
    if now_s.saturating_sub(last_s) >= 60 {
        LAST_WARNED_S.store(now_s, std::sync::atomic::Ordering::Relaxed);
        let node_id: Option<String> = row.try_get(0).ok();
        tracing::warn!(
            ?node_id,
            %reason,
            skipped_so_far = skipped,
            "postgres: skipped a member row that cannot be read (fix or delete it in emporium_members)"
        );
    }
}

static SKIPPED_MEMBER_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many member rows this process skipped because they could not be read (every
/// listing counts each bad row again).
pub fn skipped_member_rows() -> u64 {
    SKIPPED_MEMBER_ROWS.load(std::sync::atomic::Ordering::Relaxed)
}

async fn claim_lease_on(
    sql: &Sql,
    client: &Object,
    shard: Shard,
    owner: &str,
    expected: u64,
) -> Result<Lease, OpError> {
    let epoch = expected
        .checked_add(1)
        .ok_or_else(|| StoreError::Other(format!("epoch of shard {shard} would overflow")))?;
    let shard_value = shard_sql(shard)?;
    let applied = async {
        let rows = if expected == 0 {
            let statement = client.prepare_cached(&sql.insert_lease).await?;
            client.execute(&statement, &[&shard_value, &owner]).await?
        } else {
            let Ok(expected) = i64::try_from(expected) else {
                return Ok(false);
            };
            let statement = client.prepare_cached(&sql.update_lease).await?;
            client
                .execute(&statement, &[&shard_value, &owner, &expected])
                .await?
        };
        Ok::<_, OpError>(rows == 1)
    }
    .await;
    match applied {
        Ok(true) => {
            return Ok(Lease {
                shard,
                owner: owner.to_owned(),
                epoch,
            });
        }
        Ok(false) => {}
        Err(OpError::Pg(error)) if error::is_race(&error) => {}
        Err(error) => return Err(error),
    }
    let statement = client.prepare_cached(&sql.current_epoch).await?;
    let found = match client.query_opt(&statement, &[&shard_value]).await? {
        Some(row) => to_u64(row.try_get(0)?, "epoch")?,
        None => 0,
    };
    Err(OpError::Store(StoreError::Conflict {
        what: format!("lease of shard {shard}"),
        expected,
        found,
    }))
}

async fn list_leases_on(sql: &Sql, client: &Object) -> Result<Vec<Lease>, OpError> {
    let statement = client.prepare_cached(&sql.list_leases).await?;
    let rows = client.query(&statement, &[]).await?;
    let mut leases = Vec::with_capacity(rows.len());
    for row in rows {
        let shard: i16 = row.try_get(0)?;
        leases.push(Lease {
            shard: Shard::try_from(shard).map_err(|_| {
                StoreError::Other(format!("negative shard {shard} in postgres leases"))
            })?,
            owner: row.try_get(1)?,
            epoch: to_u64(row.try_get(2)?, "epoch")?,
        });
    }
    Ok(leases)
}

/// Caller-chosen `u64` values (reminder due times, incarnations, heartbeats) are stored as
/// their two's-complement bits in a `bigint`, so every `u64` round-trips; SQL must not
/// compare or order those columns numerically.
fn u64_to_bits(value: u64) -> i64 {
    value as i64
}

fn bits_to_u64(value: i64) -> u64 {
    value as u64
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Other(format!("negative {what} {value} in postgres")))
}

fn shard_sql(shard: Shard) -> Result<i16, StoreError> {
    i16::try_from(shard)
        .map_err(|_| StoreError::Other(format!("shard {shard} does not fit a postgres smallint")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_chosen_u64_values_round_trip_through_bigint() {
        for value in [0, 1, 42, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(bits_to_u64(u64_to_bits(value)), value);
        }
    }

    #[test]
    fn reminder_changes_collapse_to_the_last_change_of_each_name() {
        let set = |name: &str, due_at_ms| ReminderChange::Set {
            name: name.to_owned(),
            due_at_ms,
        };
        let cancel = |name: &str| ReminderChange::Cancel {
            name: name.to_owned(),
        };
        let changes = [
            set("a", 1),
            cancel("a"),
            cancel("b"),
            set("b", 2),
            set("c", 3),
            set("c", u64::MAX),
            cancel("d"),
        ];
        assert_eq!(
            ReminderArrays::collapse(&changes),
            ReminderArrays {
                set_names: vec!["b", "c"],
                set_dues: vec![2, u64_to_bits(u64::MAX)],
                cancel_names: vec!["a", "d"],
            }
        );
        assert_eq!(ReminderArrays::collapse(&[]), ReminderArrays::default());
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let options = PostgresOptions::default();
        assert_eq!(options.pool_size, 16);
        assert_eq!(options.operation_timeout, Duration::from_secs(2));
        assert_eq!(options.schema, "public");
    }

    #[tokio::test]
    async fn bad_options_are_refused_without_a_server() {
        let url = "postgres://postgres@127.0.0.1:1/postgres";
        for options in [
            PostgresOptions {
                pool_size: 0,
                ..PostgresOptions::default()
            },
            PostgresOptions {
                operation_timeout: Duration::ZERO,
                ..PostgresOptions::default()
            },
            PostgresOptions {
                operation_timeout: Duration::from_secs(7200),
                ..PostgresOptions::default()
            },
        ] {
            let result = PostgresStore::connect(url, options).await;
            assert!(matches!(result, Err(StoreError::Other(_))), "{result:?}");
        }
        let result = PostgresStore::connect("not a url", PostgresOptions::default()).await;
        assert!(matches!(result, Err(StoreError::Other(_))), "{result:?}");
    }
}
