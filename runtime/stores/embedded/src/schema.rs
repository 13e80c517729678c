//! The on-disk layout of the embedded store: one redb table per concern, keyed so that every
//! listing of the port is a range scan.
//!
//! | table             | key                                  | value                               |
//! |-------------------|--------------------------------------|-------------------------------------|
//! | `records`         | `(kind, key)`                        | version (u64 BE) ++ state bytes     |
//! | `outbox_entries`  | `(shard, kind, key, sequence)`       | `(event_id, topic, payload)`        |
//! | `reminders`       | `(shard, kind, key, name)`           | `due_at_ms`                         |
//! | `members`         | `node_id`                            | `(incarnation, cluster, http, status, heartbeat_ms)` |
//! | `leases`          | shard                                | `(epoch, owner)`                    |
//! | `meta`            | name                                 | u64                                 |
//!
//! **Invariants**
//! - redb compares tuple keys element by element and `&str` elements byte by byte, so
//!   `records` is ordered by kind, then by key in ascending byte order: `list_keys` is one
//!   range scan, and a kind that extends another one (`cart`, `cartx`) never leaks into it.
//! - Outbox sequences come from `meta["next_outbox_sequence"]`, which only grows and is
//!   written in the same transaction as the entries that used it, so commit order is sequence
//!   order and a reopened store never reuses a sequence.
//! - `outbox_entries` is the outbox and its only index at once: keyed by shard, then actor,
//!   then sequence, every access the port needs is one range scan — a shard's entries (the
//!   relay), an actor's entries (acknowledgement, delete) — and any prefix of a shard's range
//!   holds each actor's older entries before its newer ones. One row per event: a commit
//!   that raises an event writes one outbox row, its acknowledgement removes one.
//! - `meta["schema_version"]` says which layout the file holds; a store refuses a file written
//!   under a newer layout instead of misreading it, and upgrades an older one when it opens
//!   it (see [`upgrade`]).
//!
//! # Layout versions
//! - 1: the outbox in an `outbox` table keyed by sequence, with two index tables
//!   (`outbox_by_actor`, `outbox_by_event`) written beside every entry.
//! - 2: a third index, `outbox_by_shard`.
//! - 3: `outbox_entries` replaces the `outbox` table and its three indexes (four B-tree
//!   inserts per event, and four removals per acknowledgement, became one each). A file of
//!   layout 1 or 2 has its pending entries moved over, and the old tables dropped, when it is
//!   opened.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use emporium_runtime::{StoreError, shard_of};

pub(crate) const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
/// The outbox: `(shard, kind, key, sequence)` → `(event_id, topic, payload)`.
pub(crate) const OUTBOX: TableDefinition<OutboxKey, OutboxValue> =
    TableDefinition::new("outbox_entries");
pub(crate) const REMINDERS: TableDefinition<(u16, &str, &str, &str), u64> =
    TableDefinition::new("reminders");
pub(crate) const MEMBERS: TableDefinition<&str, (u64, &str, &str, &str, u64)> =
    TableDefinition::new("members");
pub(crate) const LEASES: TableDefinition<u16, (u64, &str)> = TableDefinition::new("leases");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(crate) const NEXT_OUTBOX_SEQUENCE_KEY: &str = "next_outbox_sequence";
/// Bump on any change of the layout above, and teach [`upgrade`] the step.
pub(crate) const SCHEMA_VERSION: u64 = 3;

/// The key of an outbox row: `(shard, kind, key, sequence)`.
pub(crate) type OutboxKey = (u16, &'static str, &'static str, u64);
/// The value of an outbox row: `(event_id, topic, payload)`.
pub(crate) type OutboxValue = (&'static str, &'static str, &'static [u8]);

/// The outbox tables of layouts 1 and 2, frozen: read once to move their entries over.
mod legacy {
    use redb::TableDefinition;

    pub(super) const OUTBOX: TableDefinition<u64, (&str, &str, &str, &str, &[u8])> =
        TableDefinition::new("outbox");
    pub(super) const OUTBOX_BY_ACTOR: TableDefinition<(&str, &str, u64), ()> =
        TableDefinition::new("outbox_by_actor");
    pub(super) const OUTBOX_BY_EVENT: TableDefinition<(&str, u64), ()> =
        TableDefinition::new("outbox_by_event");
    pub(super) const OUTBOX_BY_SHARD: TableDefinition<(u16, &str, &str, u64), ()> =
        TableDefinition::new("outbox_by_shard");
}

/// The largest state or outbox payload the store accepts. redb itself takes values up to
/// 3 GiB, but a batch commits many writes in one transaction held in memory; 64 MiB keeps a
/// single request from starving the batch.
pub(crate) const MAX_VALUE_BYTES: usize = 64 << 20;

/// The `records` value: the version, big-endian, then the state.
pub(crate) fn encode_record(version: u64, state: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + state.len());
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(state);
    value
}

/// The version of a `records` value.
pub(crate) fn record_version(value: &[u8]) -> Result<u64, StoreError> {
    let prefix: [u8; 8] = value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| StoreError::Other(format!("corrupt record: {} bytes", value.len())))?;
    Ok(u64::from_be_bytes(prefix))
}

/// The version and state of a `records` value.
pub(crate) fn decode_record(value: &[u8]) -> Result<(u64, Bytes), StoreError> {
    let version = record_version(value)?;
    Ok((version, Bytes::copy_from_slice(&value[8..])))
}

/// Bring a file of layout `from` to [`SCHEMA_VERSION`] inside `txn` (the caller records the
/// new version in the same transaction, so a crash half-way leaves the old layout whole).
pub(crate) fn upgrade(txn: &WriteTransaction, from: u64) -> Result<(), StoreError> {
    if from < 3 {
        move_legacy_outbox(txn)?;
    }
    Ok(())
}

/// Layouts 1 and 2 → 3: every pending entry of the old `outbox` table becomes one
/// `outbox_entries` row under the same sequence, and the old table and its indexes are
/// dropped. One pass over the outbox, which holds only entries not yet published.
fn move_legacy_outbox(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut moved = 0u64;
    {
        let legacy = txn.open_table(legacy::OUTBOX).map_err(redb_error)?;
        let mut outbox = txn.open_table(OUTBOX).map_err(redb_error)?;
        for row in legacy.iter().map_err(redb_error)? {
            let (sequence, value) = row.map_err(redb_error)?;
            let (kind, key, event_id, topic, payload) = value.value();
            outbox
                .insert(
                    (shard_of(kind, key), kind, key, sequence.value()),
                    (event_id, topic, payload),
                )
                .map_err(redb_error)?;
            moved += 1;
        }
    }
    txn.delete_table(legacy::OUTBOX).map_err(redb_error)?;
    txn.delete_table(legacy::OUTBOX_BY_ACTOR)
        .map_err(redb_error)?;
    txn.delete_table(legacy::OUTBOX_BY_EVENT)
        .map_err(redb_error)?;
    txn.delete_table(legacy::OUTBOX_BY_SHARD)
        .map_err(redb_error)?;
    tracing::info!(entries = moved, "embedded store: outbox moved to one table");
    Ok(())
}

/// Map any redb failure to the port's catch-all error.
pub(crate) fn redb_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("embedded store: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_value_round_trips() {
        let value = encode_record(7, b"state");
        assert_eq!(record_version(&value).unwrap(), 7);
        assert_eq!(
            decode_record(&value).unwrap(),
            (7, Bytes::from_static(b"state"))
        );
        assert_eq!(
            decode_record(&encode_record(1, b"")).unwrap().1,
            Bytes::new()
        );
        assert!(decode_record(b"short").is_err());
    }
}
