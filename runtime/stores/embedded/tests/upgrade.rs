//! A file written by an older build (layout 1: the outbox keyed by sequence with two indexes;
//! layout 2: plus an index by shard) opens, gets its pending outbox entries moved to today's
//! single outbox table (the old tables dropped), and keeps working; a file of a newer layout
//! is refused.
//!
//! The old files are written here with redb directly, from a frozen copy of those layouts'
//! table definitions, so the test does not depend on today's code to produce old data.

use bytes::Bytes;
use redb::{Database, TableDefinition};

use emporium_runtime::store::{OutboxEntry, PendingEvent, StateWrite};
use emporium_runtime::{ActorId, Shard, StateStore, shard_of};
use emporium_store_embedded::EmbeddedStore;

/// Layouts 1 and 2, frozen: the tables the old builds created and the meta keys they kept.
mod layout_v1 {
    use redb::TableDefinition;

    pub const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
    pub const OUTBOX: TableDefinition<u64, (&str, &str, &str, &str, &[u8])> =
        TableDefinition::new("outbox");
    pub const OUTBOX_BY_ACTOR: TableDefinition<(&str, &str, u64), ()> =
        TableDefinition::new("outbox_by_actor");
    pub const OUTBOX_BY_EVENT: TableDefinition<(&str, u64), ()> =
        TableDefinition::new("outbox_by_event");
    pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    /// Layout 2 only.
    pub const OUTBOX_BY_SHARD: TableDefinition<(u16, &str, &str, u64), ()> =
        TableDefinition::new("outbox_by_shard");
}

/// Two keys of `kind` in different shards, and a third in the first one's shard.
fn keys(kind: &str) -> (String, String, String) {
    let shard_of_key = |n: u64| shard_of(kind, &format!("k{n}"));
    let other = (1..).find(|n| shard_of_key(*n) != shard_of_key(0)).unwrap();
    let same = (1..).find(|n| shard_of_key(*n) == shard_of_key(0)).unwrap();
    ("k0".to_owned(), format!("k{other}"), format!("k{same}"))
}

/// Write a file of `layout` (1 or 2) holding `actors` (version 1 each) with their outbox
/// entries, sequences in the order given.
fn write_old_layout(path: &std::path::Path, layout: u64, actors: &[(&str, &str, &[&str])]) {
    use layout_v1::*;
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut records = txn.open_table(RECORDS).unwrap();
        let mut outbox = txn.open_table(OUTBOX).unwrap();
        let mut by_actor = txn.open_table(OUTBOX_BY_ACTOR).unwrap();
        let mut by_event = txn.open_table(OUTBOX_BY_EVENT).unwrap();
        let mut meta = txn.open_table(META).unwrap();
        let mut sequence = 0u64;
        for (kind, key, events) in actors {
            let mut record = 1u64.to_be_bytes().to_vec();
            record.extend_from_slice(b"old");
            records.insert((*kind, *key), record.as_slice()).unwrap();
            for event_id in *events {
                outbox
                    .insert(
                        sequence,
                        (*kind, *key, *event_id, "emporium.old", b"p".as_slice()),
                    )
                    .unwrap();
                by_actor.insert((*kind, *key, sequence), ()).unwrap();
                by_event.insert((*event_id, sequence), ()).unwrap();
                if layout >= 2 {
                    txn.open_table(OUTBOX_BY_SHARD)
                        .unwrap()
                        .insert((shard_of(kind, key), *kind, *key, sequence), ())
                        .unwrap();
                }
                sequence += 1;
            }
        }
        meta.insert("schema_version", layout).unwrap();
        meta.insert("next_outbox_sequence", sequence).unwrap();
        // The other tables of layout 1 are created empty by every open, old or new.
        let _ = txn
            .open_table(TableDefinition::<u16, (u64, &str)>::new("leases"))
            .unwrap();
    }
    txn.commit().unwrap();
}

fn ids(pending: &[PendingEvent]) -> Vec<&str> {
    pending.iter().map(|e| e.entry.event_id.as_str()).collect()
}

async fn pending_in(store: &EmbeddedStore, shard: Shard) -> Vec<PendingEvent> {
    store.outbox_pending_in(shard, 100).await.unwrap()
}

/// The names of the tables in the file at `path` (the store must be closed).
fn table_names(path: &std::path::Path) -> Vec<String> {
    use redb::{ReadableDatabase, TableHandle};
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|table| table.name().to_owned())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_file_has_its_outbox_moved_when_opened() {
    an_old_file_keeps_its_pending_events(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_2_file_has_its_outbox_moved_when_opened() {
    an_old_file_keeps_its_pending_events(2).await;
}

async fn an_old_file_keeps_its_pending_events(layout: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let (a, b, c) = keys("order");
    let (shard_a, shard_b) = (shard_of("order", &a), shard_of("order", &b));
    write_old_layout(
        &path,
        layout,
        &[
            ("order", a.as_str(), &["a1", "a2"]),
            ("order", b.as_str(), &["b1"]),
            ("order", c.as_str(), &["c1", "c2"]),
        ],
    );

    {
        let store = EmbeddedStore::open(&path).unwrap();
        let in_a = pending_in(&store, shard_a).await;
        let mut in_a_ids = ids(&in_a);
        in_a_ids.sort_unstable();
        assert_eq!(in_a_ids, ["a1", "a2", "c1", "c2"], "old entries moved");
        let of_a: Vec<&str> = ids(&in_a)
            .into_iter()
            .filter(|id| id.starts_with('a'))
            .collect();
        assert_eq!(of_a, ["a1", "a2"], "one actor's entries in commit order");
        assert_eq!(ids(&pending_in(&store, shard_b).await), ["b1"]);
        assert_eq!(ids(&store.outbox_pending(100).await.unwrap()).len(), 5);

        // The old data keeps working: a save continues after the old record and sequence
        // (its entry comes after the moved ones), and an acknowledgement removes a moved
        // entry.
        let a_id = ActorId::new("order", a.as_str());
        let write = StateWrite {
            expected_version: 1,
            state: Bytes::from_static(b"new"),
            outbox: vec![OutboxEntry {
                event_id: "a3".to_owned(),
                topic: "emporium.new".to_owned(),
                payload: Bytes::new(),
            }],
            reminders: Vec::new(),
        };
        assert_eq!(store.save(&a_id, write).await.unwrap(), 2);
        let first_of_a: Vec<PendingEvent> = in_a
            .iter()
            .filter(|event| event.entry.event_id == "a1")
            .cloned()
            .collect();
        store.outbox_ack(&first_of_a).await.unwrap();
        let now_in_a = pending_in(&store, shard_a).await;
        let of_a: Vec<&str> = ids(&now_in_a)
            .into_iter()
            .filter(|id| id.starts_with('a'))
            .collect();
        assert_eq!(of_a, ["a2", "a3"]);
    }

    let tables = table_names(&path);
    assert!(
        !tables
            .iter()
            .any(|name| name.starts_with("outbox_by") || name == "outbox"),
        "the old outbox tables are dropped: {tables:?}"
    );

    // Reopened at the new layout: nothing is moved twice, nothing lost.
    let store = EmbeddedStore::open(&path).unwrap();
    let mut in_a = ids(&pending_in(&store, shard_a).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    in_a.sort_unstable();
    assert_eq!(in_a, ["a2", "a3", "c1", "c2"]);
    assert_eq!(ids(&pending_in(&store, shard_b).await), ["b1"]);
}

#[tokio::test]
async fn a_file_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(layout_v1::META)
            .unwrap()
            .insert("schema_version", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let Err(error) = EmbeddedStore::open(&path) else {
        panic!("a layout-99 file was opened");
    };
    assert!(error.to_string().contains("schema version 99"), "{error}");
}
