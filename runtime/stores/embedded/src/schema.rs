//! The on-disk layout of the embedded store: one redb table per concern, keyed so that every
//! listing of the port is a range scan.
//!
//! | table             | key                                  | value                               |
//! |-------------------|--------------------------------------|-------------------------------------|
//! | `records`         | `(kind, key)`                        | version (u64 BE) ++ state bytes     |
//! | `outbox`          | sequence (u64)                       | `(kind, key, event_id, topic, payload)` |
//! | `outbox_by_actor` | `(kind, key, sequence)`              | `()`                                |
//! | `outbox_by_event` | `(event_id, sequence)`               | `()`                                |
//! | `outbox_by_shard` | `(shard, kind, key, sequence)`       | `()`                                |
//! | `reminders`       | `(shard, kind, key, name)`           | `due_at_ms`                         |
//! | `members`         | `node_id`                            | `(incarnation, cluster, http, status, heartbeat_ms)` |
//! | `leases`          | shard                                | `(epoch, owner)`                    |
//! | `meta`            | name                                 | u64                                 |
//!
//! **Invariants**
//! - redb compares tuple keys element by element and `&str` elements byte by byte, so
//!   `records` is ordered by kind, then by key in ascending byte order: `list_keys` is one
//!   range scan, and a kind that extends another one (`cart`, `cartx`) never leaks into it.
//! - `outbox` sequences come from `meta["next_outbox_sequence"]`, which only grows and is
//!   written in the same transaction as the entries that used it, so commit order is sequence
//!   order and a reopened store never reuses a sequence.
//! - Every `outbox` row has exactly one row in each of the three index tables, added and
//!   removed in the same transaction as it. `outbox_by_shard` orders a shard's entries by
//!   actor, then by sequence, so any prefix of a shard's range holds each actor's older
//!   entries before its newer ones.
//! - `meta["schema_version"]` says which layout the file holds; a store refuses a file written
//!   under a newer layout instead of misreading it, and upgrades an older one when it opens
//!   it (see [`upgrade`]).
//!
//! # Layout versions
//! - 1: everything above but `outbox_by_shard`.
//! - 2: `outbox_by_shard`, built at open from the `outbox` rows of a version-1 file.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use emporium_runtime::{StoreError, shard_of};

pub(crate) const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
pub(crate) const OUTBOX: TableDefinition<u64, (&str, &str, &str, &str, &[u8])> =
    TableDefinition::new("outbox");
pub(crate) const OUTBOX_BY_ACTOR: TableDefinition<(&str, &str, u64), ()> =
    TableDefinition::new("outbox_by_actor");
pub(crate) const OUTBOX_BY_EVENT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("outbox_by_event");
pub(crate) const OUTBOX_BY_SHARD: TableDefinition<(u16, &str, &str, u64), ()> =
    TableDefinition::new("outbox_by_shard");
pub(crate) const REMINDERS: TableDefinition<(u16, &str, &str, &str), u64> =
    TableDefinition::new("reminders");
pub(crate) const MEMBERS: TableDefinition<&str, (u64, &str, &str, &str, u64)> =
    TableDefinition::new("members");
pub(crate) const LEASES: TableDefinition<u16, (u64, &str)> = TableDefinition::new("leases");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(crate) const NEXT_OUTBOX_SEQUENCE_KEY: &str = "next_outbox_sequence";
/// Bump on any change of the layout above, and teach [`upgrade`] the step.
pub(crate) const SCHEMA_VERSION: u64 = 2;

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
    if from < 2 {
        index_outbox_by_shard(txn)?;
    }
    Ok(())
}

/// Layout 1 → 2: one `outbox_by_shard` row per `outbox` row. One pass over the outbox,
/// which holds only entries not yet published.
fn index_outbox_by_shard(txn: &WriteTransaction) -> Result<(), StoreError> {
    let outbox = txn.open_table(OUTBOX).map_err(redb_error)?;
    let mut by_shard = txn.open_table(OUTBOX_BY_SHARD).map_err(redb_error)?;
    let mut indexed = 0u64;
    for row in outbox.iter().map_err(redb_error)? {
        let (sequence, value) = row.map_err(redb_error)?;
        let (kind, key, _, _, _) = value.value();
        by_shard
            .insert((shard_of(kind, key), kind, key, sequence.value()), ())
            .map_err(redb_error)?;
        indexed += 1;
    }
    tracing::info!(entries = indexed, "embedded store: outbox indexed by shard");
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
