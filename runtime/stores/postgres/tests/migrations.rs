//! Start-up migrations: idempotent, and safe when many nodes start at once.
//!
//! Each test works in a fresh schema that is dropped at its end.

mod support;

use std::time::{Duration, Instant};

use emporium_runtime::{ActorId, StateStore, StoreError, shard_of, shard_of_id};
use emporium_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use support::{SchemaGuard, admin, url};
use tokio::task::JoinSet;

/// `(version, rows)` of the schema's migration table.
async fn migration_rows(client: &tokio_postgres::Client, schema: &str) -> Vec<(i32, i64)> {
    client
        .query(
            &format!(
                "SELECT version, count(*) FROM \"{schema}\".emporium_schema_migrations \
                 GROUP BY version ORDER BY version"
            ),
            &[],
        )
        .await
        .expect("read migration rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

fn one_row_per_version() -> Vec<(i32, i64)> {
    (1..=SCHEMA_VERSION).map(|version| (version, 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_migrating_one_schema_at_once_all_succeed() {
    let Some(client) = admin().await else {
        return;
    };
    let guard = SchemaGuard::fresh().await;
    let mut starts = JoinSet::new();
    for _ in 0..8 {
        let options = PostgresOptions {
            pool_size: 2,
            ..guard.options()
        };
        starts.spawn(async move { PostgresStore::connect(&url(), options).await });
    }
    let mut stores = Vec::new();
    while let Some(started) = starts.join_next().await {
        let store = started
            .expect("start task")
            .expect("every concurrent start succeeds");
        stores.push(store);
    }
    assert_eq!(stores.len(), 8);
    assert_eq!(
        migration_rows(&client, &guard.schema).await,
        one_row_per_version()
    );

    // Every node sees the same tables: one writes, another reads.
    let id = ActorId::new("migr", "k");
    let written = stores[0]
        .save(
            &id,
            emporium_runtime::store::StateWrite {
                expected_version: 0,
                state: bytes::Bytes::from_static(b"v1"),
                ..Default::default()
            },
        )
        .await
        .expect("save");
    assert_eq!(written, 1);
    let loaded = stores[7].load(&id).await.expect("load").expect("present");
    assert_eq!(loaded.version, 1);
    for store in &stores {
        store.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_on_a_migrated_schema_applies_nothing_and_keeps_data() {
    let Some(client) = admin().await else {
        return;
    };
    let guard = SchemaGuard::fresh().await;
    let first = PostgresStore::connect(&url(), guard.options())
        .await
        .expect("first start");
    let id = ActorId::new("migr", "kept");
    first
        .save(
            &id,
            emporium_runtime::store::StateWrite {
                expected_version: 0,
                state: bytes::Bytes::from_static(b"kept"),
                ..Default::default()
            },
        )
        .await
        .expect("save");
    first.close();
    let first_applied: Vec<String> = applied_at(&client, &guard.schema).await;

    let second = PostgresStore::connect(&url(), guard.options())
        .await
        .expect("second start");
    assert_eq!(
        migration_rows(&client, &guard.schema).await,
        one_row_per_version()
    );
    assert_eq!(
        applied_at(&client, &guard.schema).await,
        first_applied,
        "a restart re-applies no migration"
    );
    let loaded = second.load(&id).await.expect("load").expect("kept");
    assert_eq!(&loaded.state[..], b"kept");
    second.close();
}

async fn applied_at(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    client
        .query(
            &format!(
                "SELECT version::text || ' ' || applied_at::text \
                 FROM \"{schema}\".emporium_schema_migrations ORDER BY version"
            ),
            &[],
        )
        .await
        .expect("read applied_at")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_order_is_byte_order_whatever_the_collation() {
    let Some(_client) = admin().await else {
        return;
    };
    let guard = SchemaGuard::fresh().await;
    let store = PostgresStore::connect(&url(), guard.options())
        .await
        .expect("start");
    // Under a linguistic collation "B" < "a" < "b" would not hold, nor would "é" sort last.
    let keys = ["a", "B", "b", "_", "é", "Z", "a-1", "a_1"];
    for key in keys {
        store
            .save(
                &ActorId::new("bytes", key),
                emporium_runtime::store::StateWrite {
                    expected_version: 0,
                    state: bytes::Bytes::from_static(b"x"),
                    ..Default::default()
                },
            )
            .await
            .expect("save");
    }
    let mut expected: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
    expected.sort();
    let listed = store.list_keys("bytes", None, 100).await.expect("list");
    assert_eq!(listed, expected);
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schema_names_are_refused_before_any_sql() {
    for schema in [
        "",
        "Upper",
        "1digit",
        "semi;colon",
        "quo\"te",
        &"x".repeat(64),
    ] {
        let options = PostgresOptions {
            schema: schema.to_owned(),
            ..PostgresOptions::default()
        };
        match PostgresStore::connect(&url(), options).await {
            Err(StoreError::Other(message)) => assert!(message.contains("schema"), "{message}"),
            other => panic!("schema {schema:?}: expected Other, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_fast() {
    // Bind then drop a listener: nothing listens on that port for the test's duration
    // (barring a very unlucky reuse).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let result = PostgresStore::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        PostgresOptions::default(),
    )
    .await;
    let elapsed = started.elapsed();
    match result {
        Err(error) => assert!(
            error.is_unavailable(),
            "expected Unavailable, got {error:?}"
        ),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

/// Outbox rows written before migration 2 (no `shard` column) get their shard computed in
/// Rust when a node of this build starts, across several backfill rounds, are keyed by
/// migration 3's primary key, and are then listed by `outbox_pending_in` and acknowledged.
/// The version-1 schema is made by migrating a fresh schema and undoing migrations 2 and 3
/// (drop the column, which drops the primary key over it; put back version 1's primary key,
/// unique event id and actor index; forget the rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_older_than_the_shard_column_get_their_shard() {
    let Some(client) = admin().await else {
        return;
    };
    let guard = SchemaGuard::fresh().await;
    let schema = &guard.schema;
    PostgresStore::connect(&url(), guard.options())
        .await
        .expect("first start")
        .close();
    // 2 500 rows: more than two backfill rounds of 1 000; 40 actors of two kinds.
    client
        .batch_execute(&format!(
            "ALTER TABLE \"{schema}\".emporium_outbox DROP COLUMN shard;
             ALTER TABLE \"{schema}\".emporium_outbox ADD PRIMARY KEY (seq);
             ALTER TABLE \"{schema}\".emporium_outbox
                 ADD CONSTRAINT emporium_outbox_event_id_key UNIQUE (event_id);
             CREATE INDEX emporium_outbox_actor ON \"{schema}\".emporium_outbox (kind, key);
             DELETE FROM \"{schema}\".emporium_schema_migrations WHERE version >= 2;
             INSERT INTO \"{schema}\".emporium_outbox (kind, key, event_id, topic, payload)
             SELECT CASE WHEN n % 2 = 0 THEN 'order' ELSE 'cart' END, 'k' || (n % 40),
                    'old-' || n, 'emporium.old', '\\x00'::bytea
             FROM generate_series(1, 2500) AS n;"
        ))
        .await
        .expect("make a version-1 schema with outbox rows");

    let store = PostgresStore::connect(&url(), guard.options())
        .await
        .expect("start on a version-1 schema");
    assert_eq!(migration_rows(&client, schema).await, one_row_per_version());
    let rows = client
        .query(
            &format!("SELECT kind, key, shard FROM \"{schema}\".emporium_outbox"),
            &[],
        )
        .await
        .expect("read shards");
    assert_eq!(rows.len(), 2500);
    for row in &rows {
        let (kind, key, shard): (String, String, i16) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            i32::from(shard),
            i32::from(shard_of(&kind, &key)),
            "{kind}/{key}"
        );
    }
    let indexes: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'emporium_outbox'",
            &[schema],
        )
        .await
        .expect("read indexes")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(indexes.len(), 1, "one index on the outbox: {indexes:?}");
    assert!(
        indexes[0].contains("emporium_outbox_pkey")
            && indexes[0].contains("(shard, kind, key, seq)"),
        "{indexes:?}"
    );

    // Per shard, an actor's old rows come back in seq (commit) order.
    let actor = ActorId::new("order", "k2");
    let listed = store
        .outbox_pending_in(shard_of("order", "k2"), 10_000)
        .await
        .expect("outbox_pending_in");
    let of_actor: Vec<String> = listed
        .iter()
        .filter(|event| event.actor == actor)
        .map(|event| event.entry.event_id.clone())
        .collect();
    let expected: Vec<String> = (1..=2500)
        .filter(|n| n % 2 == 0 && n % 40 == 2)
        .map(|n| format!("old-{n}"))
        .collect();
    assert_eq!(of_actor, expected);
    assert!(
        listed
            .iter()
            .all(|event| shard_of_id(&event.actor) == shard_of_id(&actor))
    );

    // An acknowledgement removes exactly the acknowledged rows of the migrated outbox.
    let (first, rest) = listed.split_at(listed.len() / 2);
    store.outbox_ack(first).await.expect("outbox_ack");
    let left = store
        .outbox_pending_in(shard_of("order", "k2"), 10_000)
        .await
        .expect("outbox_pending_in after the ack");
    assert_eq!(left, rest);
    store.close();
}
