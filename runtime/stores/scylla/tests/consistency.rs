//! The configured consistency levels on a live cluster: a keyspace whose replication does
//! not fit the levels is refused at connect, before anything is created in it; a
//! single-datacenter keyspace keeps the `LOCAL_*` defaults; the non-local levels work end to
//! end on a single-datacenter keyspace.
//!
//! The multi-datacenter keyspace names a second datacenter (`dc2`) without nodes: the check
//! reads only the schema. Cassandra 4+ refuses to create such a keyspace ("Unrecognized
//! strategy option"), so there that case reports `skipped:` and the refusal is proved by the
//! unit tests of the decision and the live replication read in `src/schema.rs`, plus the
//! live refusal of `each_quorum` on a `SimpleStrategy` keyspace below (the same connect-time
//! path). Nothing here runs a statement that needs a quorum in `dc2` (none could be reached).
//!
//! Needs `SCYLLA_NODES` (see `common/mod.rs`); reports `skipped:` without it.

use std::time::Duration;

use bytes::Bytes;
use emporium_runtime::store::conformance::{service_unavailable, unique_suffix};
use emporium_runtime::store::{MemberRecord, MemberStatus, StateWrite};
use emporium_runtime::{ActorId, StateStore, StoreError, intern_kind};
use emporium_store_scylla::{ConsistencyLevel, ScyllaConfig, ScyllaStore, SerialLevel};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

mod common;

/// Bound on every connect here: a test that cannot reach a verdict fails, it never hangs.
const CONNECT_BOUND: Duration = Duration::from_secs(60);

/// A plain driver session on the test cluster, for the DDL the adapter never runs.
async fn admin() -> Option<Session> {
    let nodes = common::nodes()?;
    match SessionBuilder::new().known_nodes(&nodes).build().await {
        Ok(session) => Some(session),
        Err(error) => service_unavailable(&format!("scylla at {nodes:?} unreachable: {error}")),
    }
}

async fn cql(session: &Session, statement: &str) {
    session
        .query_unpaged(statement, &[])
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

async fn local_datacenter(session: &Session) -> String {
    let result = session
        .query_unpaged("SELECT data_center FROM system.local", &[])
        .await
        .expect("read system.local");
    let rows = result.into_rows_result().expect("rows");
    let (datacenter,) = rows.first_row::<(String,)>().expect("one row");
    datacenter
}

async fn table_count(session: &Session, keyspace: &str) -> usize {
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .expect("read system_schema.tables");
    result.into_rows_result().expect("rows").rows_num()
}

async fn connect(config: ScyllaConfig) -> Result<ScyllaStore, StoreError> {
    tokio::time::timeout(CONNECT_BOUND, ScyllaStore::connect(config))
        .await
        .unwrap_or_else(|_| panic!("connect took longer than {CONNECT_BOUND:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_datacenter_keyspace_is_refused_with_local_levels() {
    let Some(session) = admin().await else {
        return;
    };
    let Some(nodes) = common::nodes() else {
        return;
    };
    let local = local_datacenter(&session).await;
    let keyspace = format!("emp_mdc_{}", std::process::id());
    cql(&session, &format!("DROP KEYSPACE IF EXISTS {keyspace}")).await;
    let create = format!(
        "CREATE KEYSPACE {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', '{local}': 1, 'dc2': 1}}"
    );
    if let Err(error) = session.query_unpaged(create.as_str(), &[]).await {
        let error = error.to_string();
        assert!(
            error.contains("Unrecognized strategy option"),
            "{create}: {error}"
        );
        eprintln!(
            "skipped: the cluster refuses a keyspace replicated to a datacenter without \
             nodes ({error}); the refusal is covered by schema.rs's tests"
        );
        return;
    }

    let mut outcomes = Vec::new();
    for (consistency, serial) in [
        (ConsistencyLevel::LocalQuorum, SerialLevel::LocalSerial),
        (ConsistencyLevel::Quorum, SerialLevel::LocalSerial),
        (ConsistencyLevel::LocalQuorum, SerialLevel::Serial),
    ] {
        let config = ScyllaConfig::new(nodes.clone(), keyspace.clone())
            .expect("a valid config")
            .with_consistency(consistency, serial);
        outcomes.push((consistency, serial, connect(config).await.map(|_| ())));
    }
    // The default configuration (nothing set) is the first case above.
    let default = ScyllaConfig::new(nodes.clone(), keyspace.clone()).expect("a valid config");
    assert_eq!(
        (default.consistency, default.serial_consistency),
        (ConsistencyLevel::LocalQuorum, SerialLevel::LocalSerial)
    );
    let tables = table_count(&session, &keyspace).await;
    cql(&session, &format!("DROP KEYSPACE IF EXISTS {keyspace}")).await;

    for (consistency, serial, outcome) in outcomes {
        let Err(StoreError::Other(message)) = outcome else {
            panic!("{consistency}/{serial} on {keyspace}: expected a refusal, got {outcome:?}");
        };
        let mut datacenters = [local.clone(), "dc2".to_owned()];
        datacenters.sort();
        for part in [
            format!("keyspace {keyspace} (NetworkTopologyStrategy)"),
            format!("several datacenters ({})", datacenters.join(", ")),
            "serial_consistency = serial".to_owned(),
            "consistency = quorum or each_quorum".to_owned(),
        ] {
            assert!(message.contains(&part), "{part:?} not in {message}");
        }
        if consistency.is_local() {
            assert!(message.contains("consistency = LOCAL_QUORUM"), "{message}");
        }
        if serial.is_local() {
            assert!(
                message.contains("serial_consistency = LOCAL_SERIAL"),
                "{message}"
            );
        }
    }
    assert_eq!(tables, 0, "a refused connect created tables in {keyspace}");
}

/// The same connect-time path, on what a single-datacenter cluster can hold: `each_quorum`
/// needs `NetworkTopologyStrategy`, so a `SimpleStrategy` keyspace is refused before any
/// table is created in it, and accepted with `quorum`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quorum_on_a_simple_strategy_keyspace_is_refused_at_connect() {
    let Some(session) = admin().await else {
        return;
    };
    let Some(nodes) = common::nodes() else {
        return;
    };
    let keyspace = format!("emp_simple_{}", std::process::id());
    cql(&session, &format!("DROP KEYSPACE IF EXISTS {keyspace}")).await;
    cql(
        &session,
        &format!(
            "CREATE KEYSPACE {keyspace} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
    )
    .await;
    let config = ScyllaConfig::new(nodes, keyspace.clone()).expect("a valid config");
    let refused = connect(
        config
            .clone()
            .with_consistency(ConsistencyLevel::EachQuorum, SerialLevel::Serial),
    )
    .await
    .map(|_| ());
    let tables = table_count(&session, &keyspace).await;
    let accepted = connect(config.with_consistency(ConsistencyLevel::Quorum, SerialLevel::Serial))
        .await
        .map(|store| store.consistency());
    cql(&session, &format!("DROP KEYSPACE IF EXISTS {keyspace}")).await;

    let Err(StoreError::Other(message)) = refused else {
        panic!("each_quorum on SimpleStrategy: expected a refusal, got {refused:?}");
    };
    assert!(
        message.contains(&format!("keyspace {keyspace} uses SimpleStrategy")),
        "{message}"
    );
    assert!(
        message.contains("each_quorum needs NetworkTopologyStrategy"),
        "{message}"
    );
    assert_eq!(tables, 0, "a refused connect created tables in {keyspace}");
    assert_eq!(
        accepted.expect("quorum/serial on a one-datacenter keyspace"),
        (ConsistencyLevel::Quorum, SerialLevel::Serial)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_datacenter_keyspace_keeps_the_local_defaults() {
    let Some(store) = common::open_scylla().await else {
        return;
    };
    assert_eq!(
        store.consistency(),
        (ConsistencyLevel::LocalQuorum, SerialLevel::LocalSerial)
    );
}

/// Every statement kind at the non-local levels: `EACH_QUORUM` writes and commits (reads at
/// `QUORUM`), `SERIAL` Paxos (saves and member removals), and `QUORUM`/`ALL` on the same
/// records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_local_levels_read_and_write_on_a_single_datacenter_keyspace() {
    let Some(config) = common::config() else {
        return;
    };
    let kind = intern_kind(&format!("consistency_{}", unique_suffix()));
    let id = ActorId::new(kind, "k");
    let write = |expected_version: u64, state: &'static [u8]| StateWrite {
        expected_version,
        state: Bytes::from_static(state),
        outbox: Vec::new(),
        reminders: Vec::new(),
    };
    let mut version = 0;
    for consistency in [
        ConsistencyLevel::EachQuorum,
        ConsistencyLevel::Quorum,
        ConsistencyLevel::All,
    ] {
        let Some(store) = common::open_with(
            config
                .clone()
                .with_consistency(consistency, SerialLevel::Serial),
        )
        .await
        else {
            return;
        };
        assert_eq!(store.consistency(), (consistency, SerialLevel::Serial));
        version = store
            .save(&id, write(version, b"v"))
            .await
            .unwrap_or_else(|error| panic!("save at {consistency}: {error}"));
        let loaded = store.load(&id).await.expect("load").expect("a record");
        assert_eq!(loaded.version, version, "{consistency}");
        let stale = store.save(&id, write(version - 1, b"stale")).await;
        assert!(
            stale.as_ref().is_err_and(StoreError::is_conflict),
            "{consistency}: {stale:?}"
        );
        assert!(
            store
                .list_keys(kind, None, 10)
                .await
                .expect("list")
                .contains(&"k".to_owned())
        );
        // The member removal is a lightweight transaction too: Paxos at SERIAL.
        let member = MemberRecord {
            node_id: format!("{kind}-{consistency}"),
            incarnation: 7,
            cluster_addr: "127.0.0.1:7000".to_owned(),
            http_addr: "127.0.0.1:8080".to_owned(),
            status: MemberStatus::Down,
            heartbeat_ms: 1,
        };
        store.upsert_member(&member).await.expect("upsert_member");
        let kept = store.remove_member(&member.node_id, 6).await;
        assert!(matches!(kept, Ok(false)), "{consistency}: {kept:?}");
        let removed = store.remove_member(&member.node_id, 7).await;
        assert!(matches!(removed, Ok(true)), "{consistency}: {removed:?}");
    }
    assert_eq!(version, 3);
}
