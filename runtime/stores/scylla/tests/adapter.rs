//! Behaviour of the scylla adapter beyond the port's conformance suite: the index tables
//! are hints (dangling rows are skipped, old ones removed, young ones kept), an
//! acknowledgement wins over an entry written with a clock that runs ahead, the write size
//! bound, error classes, and outcomes of saves that time out.
//!
//! Needs `SCYLLA_NODES` like the conformance suite (see `common/mod.rs`), except the
//! unreachable-cluster case, which needs nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use emporium_runtime::store::conformance::unique_suffix;
use emporium_runtime::store::{OutboxEntry, ReminderChange, StateWrite};
use emporium_runtime::{ActorId, StateStore, intern_kind, shard_of};
use emporium_store_scylla::schema::{KEY_BUCKETS, OUTBOX_BUCKETS, bucket_of};
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};
use scylla::serialize::row::SerializeRow;

mod common;

fn kind(case: &str) -> &'static str {
    intern_kind(&format!("adapter_{case}_{}", unique_suffix()))
}

fn now_micros() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_micros()).unwrap()
}

/// Far older than the adapter's index grace period.
fn long_ago() -> i64 {
    now_micros() - 600_000_000
}

fn write(expected_version: u64, state: &[u8]) -> StateWrite {
    StateWrite {
        expected_version,
        state: Bytes::copy_from_slice(state),
        outbox: Vec::new(),
        reminders: Vec::new(),
    }
}

async fn cql(store: &ScyllaStore, statement: String, values: impl SerializeRow) {
    store
        .session()
        .query_unpaged(statement.as_str(), values)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

async fn count(store: &ScyllaStore, statement: String, values: impl SerializeRow) -> usize {
    let result = store
        .session()
        .query_unpaged(statement.as_str(), values)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    result.into_rows_result().unwrap().rows_num()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_key_rows_are_skipped_and_only_old_ones_removed() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    let ks = store.keyspace().to_owned();
    let kind = kind("keys");
    store
        .save(&ActorId::new(kind, "real"), write(0, b"x"))
        .await
        .unwrap();
    // As left by a crash between the index write and the compare-and-set.
    for (key, at) in [("ghost-old", long_ago()), ("ghost-young", now_micros())] {
        cql(
            &store,
            format!(
                "INSERT INTO {ks}.actor_keys (kind, bucket, key, live) VALUES (?, ?, ?, true) \
                 USING TIMESTAMP ?"
            ),
            (kind, bucket_of(kind, key, KEY_BUCKETS), key, at),
        )
        .await;
    }
    assert_eq!(store.list_keys(kind, None, 10).await.unwrap(), vec!["real"]);
    assert_eq!(
        store.list_keys(kind, Some("a"), 1).await.unwrap(),
        vec!["real"],
        "dangling rows must not eat into the limit"
    );
    let left = |key: &'static str| {
        let ks = ks.clone();
        let store = &store;
        async move {
            count(
                store,
                format!(
                    "SELECT key FROM {ks}.actor_keys WHERE kind = ? AND bucket = ? AND key = ?"
                ),
                (kind, bucket_of(kind, key, KEY_BUCKETS), key),
            )
            .await
        }
    };
    assert_eq!(
        left("ghost-old").await,
        0,
        "an old dangling key row is removed"
    );
    assert_eq!(
        left("ghost-young").await,
        1,
        "a young one may belong to a save in flight"
    );
    assert_eq!(left("real").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_outbox_and_reminder_rows_are_skipped_and_removed() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    let ks = store.keyspace().to_owned();
    let kind = kind("marks");
    let key = "nobody";
    let shard = i32::from(shard_of(kind, key));
    let bucket = bucket_of(kind, key, OUTBOX_BUCKETS);
    cql(
        &store,
        format!(
            "INSERT INTO {ks}.outbox_actors (bucket, kind, key, live) VALUES (?, ?, ?, true) \
             USING TIMESTAMP ?"
        ),
        (bucket, kind, key, long_ago()),
    )
    .await;
    for table in ["reminder_actors", "outbox_shards"] {
        cql(
            &store,
            format!(
                "INSERT INTO {ks}.{table} (shard, kind, key, live) VALUES (?, ?, ?, true) \
                 USING TIMESTAMP ?"
            ),
            (shard, kind, key, long_ago()),
        )
        .await;
    }

    let pending = store.outbox_pending(100_000).await.unwrap();
    assert!(pending.iter().all(|event| event.actor.kind != kind));
    let pending = store
        .outbox_pending_in(shard_of(kind, key), 100_000)
        .await
        .unwrap();
    assert!(pending.iter().all(|event| event.actor.kind != kind));
    let reminders = store.list_reminders(shard_of(kind, key)).await.unwrap();
    assert!(reminders.iter().all(|reminder| reminder.actor.kind != kind));

    let outbox_rows = count(
        &store,
        format!("SELECT key FROM {ks}.outbox_actors WHERE bucket = ? AND kind = ? AND key = ?"),
        (bucket, kind, key),
    )
    .await;
    let reminder_rows = count(
        &store,
        format!("SELECT key FROM {ks}.reminder_actors WHERE shard = ? AND kind = ? AND key = ?"),
        (shard, kind, key),
    )
    .await;
    let shard_rows = count(
        &store,
        format!("SELECT key FROM {ks}.outbox_shards WHERE shard = ? AND kind = ? AND key = ?"),
        (shard, kind, key),
    )
    .await;
    assert_eq!(
        (outbox_rows, reminder_rows, shard_rows),
        (0, 0, 0),
        "old dangling rows are removed"
    );
}

/// A keyspace written before `outbox_shards` existed: connecting creates the missing tables
/// (and nothing else) and copies the outbox marks, so pending entries saved before are
/// listed per shard; a second connect copies nothing again. The old keyspace is made by
/// dropping the two new tables of a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyspace_without_outbox_shards_gets_them_at_connect() {
    let Some(config) = common::config_of_case("upgrade") else {
        return;
    };
    let Some(store) = common::open_with(config.clone()).await else {
        return;
    };
    let ks = store.keyspace().to_owned();
    let kind = kind("upgrade");
    let actors: Vec<ActorId> = (0..5)
        .map(|n| ActorId::new(kind, format!("k{n}")))
        .collect();
    for actor in &actors {
        let mut saved = write(0, b"old");
        for n in 0..2 {
            saved.outbox.push(OutboxEntry {
                event_id: format!("{}-{n}", actor.key),
                topic: "emporium.old".to_owned(),
                payload: Bytes::new(),
            });
        }
        store.save(actor, saved).await.unwrap();
    }
    for table in ["outbox_shards", "schema_migrations"] {
        cql(&store, format!("DROP TABLE {ks}.{table}"), ()).await;
    }
    drop(store);

    let store = common::open_with(config.clone()).await.expect("reconnect");
    for actor in &actors {
        let listed = store
            .outbox_pending_in(shard_of(actor.kind, &actor.key), 100)
            .await
            .unwrap();
        let ids: Vec<&str> = listed
            .iter()
            .filter(|event| event.actor == *actor)
            .map(|event| event.entry.event_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [format!("{}-0", actor.key), format!("{}-1", actor.key)],
            "entries of {actor} saved before the upgrade"
        );
    }
    let recorded = count(
        &store,
        format!("SELECT name FROM {ks}.schema_migrations WHERE name = 'outbox_shards_backfill'"),
        (),
    )
    .await;
    assert_eq!(recorded, 1, "the copy is recorded once done");

    // Recorded: a further connect copies nothing (a mark removed now stays removed).
    let first = &actors[0];
    cql(
        &store,
        format!("DELETE FROM {ks}.outbox_shards WHERE shard = ? AND kind = ? AND key = ?"),
        (
            i32::from(shard_of(first.kind, &first.key)),
            first.kind,
            first.key.as_str(),
        ),
    )
    .await;
    drop(store);
    let store = common::open_with(config).await.expect("reconnect");
    let listed = store
        .outbox_pending_in(shard_of(first.kind, &first.key), 100)
        .await
        .unwrap();
    assert!(listed.iter().all(|event| event.actor != *first));
    store.drop_keyspace().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_wins_over_an_entry_written_by_a_clock_ahead() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    let ks = store.keyspace().to_owned();
    let kind = kind("clock");
    let id = ActorId::new(kind, "a");
    let event_id = format!("{kind}-1");
    let mut first = write(0, b"s");
    first.outbox.push(OutboxEntry {
        event_id: event_id.clone(),
        topic: "t".to_owned(),
        payload: Bytes::from_static(b"p"),
    });
    store.save(&id, first).await.unwrap();
    // As if the Paxos coordinator's clock ran a minute ahead of the acknowledging one.
    cql(
        &store,
        format!(
            "UPDATE {ks}.actors USING TIMESTAMP ? SET topic = 't' \
             WHERE kind = ? AND key = ? AND section = 0 AND name = ?"
        ),
        (now_micros() + 60_000_000, kind, "a", event_id.as_str()),
    )
    .await;
    let mine = |pending: Vec<emporium_runtime::store::PendingEvent>| -> Vec<_> {
        pending
            .into_iter()
            .filter(|event| event.actor.kind == kind)
            .collect()
    };
    let pending = mine(store.outbox_pending(100_000).await.unwrap());
    assert_eq!(pending.len(), 1);
    store.outbox_ack(&pending).await.unwrap();
    assert!(mine(store.outbox_pending(100_000).await.unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_writes_are_refused_whole() {
    let Some(mut config) = common::config() else {
        return;
    };
    config.max_write_bytes = 4096;
    let Some(store) = common::open_with(config).await else {
        return;
    };
    let id = ActorId::new(kind("large"), "k");
    let mut big = write(0, &[1u8; 3000]);
    big.outbox.push(OutboxEntry {
        event_id: "e".to_owned(),
        topic: "t".to_owned(),
        payload: Bytes::from(vec![2u8; 2000]),
    });
    big.reminders.push(ReminderChange::Set {
        name: "r".to_owned(),
        due_at_ms: 1,
    });
    match store.save(&id, big).await {
        Err(emporium_runtime::StoreError::TooLarge { size, limit }) => {
            assert!(size > limit && limit == 4096);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(store.load(&id).await.unwrap(), None);
    assert_eq!(store.save(&id, write(0, &[1u8; 3000])).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_unavailable() {
    let mut config = ScyllaConfig::new(vec!["127.0.0.1:1".to_owned()], "emp_unreachable").unwrap();
    config.connect_timeout = Duration::from_millis(500);
    match ScyllaStore::connect(config).await {
        Err(error) => assert!(error.is_unavailable(), "{error:?}"),
        Ok(_) => panic!("connected to port 1"),
    }
}

/// With a request timeout far too short, saves time out mid-flight; every answer the
/// adapter gives must still be true: `Ok(v)` means version `v` is stored (by this writer),
/// a conflict means it did not apply, and nothing else but `Unavailable` comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_saves_answer_truthfully() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    let Some(config) = common::config() else {
        return;
    };
    let Some(hasty) =
        common::open_with(config.with_request_timeout(Duration::from_millis(2))).await
    else {
        return;
    };
    let id = ActorId::new(kind("hasty"), "k");
    let (mut ok, mut unavailable, mut conflicts) = (0, 0, 0);
    for n in 0..60u32 {
        let expected = store
            .load(&id)
            .await
            .unwrap()
            .map_or(0, |record| record.version);
        let state = n.to_be_bytes();
        match hasty.save(&id, write(expected, &state)).await {
            Ok(version) => {
                ok += 1;
                assert_eq!(version, expected + 1);
                let stored = store.load(&id).await.unwrap().unwrap();
                assert_eq!(
                    (stored.version, stored.state.as_ref()),
                    (version, &state[..])
                );
            }
            Err(error) if error.is_conflict() => {
                conflicts += 1;
                let stored = store.load(&id).await.unwrap();
                assert_ne!(
                    stored.map(|record| record.state),
                    Some(Bytes::copy_from_slice(&state))
                );
            }
            Err(error) => {
                assert!(error.is_unavailable(), "{error:?}");
                unavailable += 1;
            }
        }
    }
    eprintln!("hasty saves: ok={ok} unavailable={unavailable} conflicts={conflicts}");
}

/// A lost compare-and-set reports the version (or epoch) it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_report_what_they_found() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    let found = |result: Result<_, emporium_runtime::StoreError>| match result {
        Err(emporium_runtime::StoreError::Conflict { found, .. }) => found,
        other => panic!("expected a conflict, got {other:?}"),
    };
    let id = ActorId::new(kind("found"), "k");
    assert_eq!(found(store.delete(&id, 3).await), 0);
    assert_eq!(found(store.save(&id, write(2, b"x")).await.map(|_| ())), 0);
    store.save(&id, write(0, b"a")).await.unwrap();
    store.save(&id, write(1, b"b")).await.unwrap();
    assert_eq!(found(store.save(&id, write(0, b"c")).await.map(|_| ())), 2);
    assert_eq!(found(store.save(&id, write(1, b"c")).await.map(|_| ())), 2);
    let mut with_outbox = write(5, b"c");
    with_outbox.outbox.push(OutboxEntry {
        event_id: format!("{}-x", id.kind),
        topic: "t".to_owned(),
        payload: Bytes::new(),
    });
    assert_eq!(found(store.save(&id, with_outbox).await.map(|_| ())), 2);
    assert_eq!(found(store.delete(&id, 1).await), 2);

    // A shard no other test of this process uses: leases are not per kind.
    let leases = store.list_leases().await.unwrap();
    let shard = (0..emporium_runtime::SHARD_COUNT)
        .rev()
        .find(|shard| leases.iter().all(|lease| lease.shard != *shard))
        .expect("a free shard");
    assert_eq!(found(store.claim_lease(shard, "a", 1).await.map(|_| ())), 0);
    store.claim_lease(shard, "a", 0).await.unwrap();
    assert_eq!(found(store.claim_lease(shard, "b", 0).await.map(|_| ())), 1);
    assert_eq!(found(store.claim_lease(shard, "b", 2).await.map(|_| ())), 1);
}
