//! Store faults through a TCP proxy the test controls: a store cut off from PostgreSQL must
//! fail every operation with `Unavailable` quickly (that is the edge's 503), and must work
//! again by itself, without a new store, once the network is back.
//!
//! The proxy listens on `127.0.0.1:0` and forwards to the server of `EMPORIUM_TEST_POSTGRES`.
//! `cut()` closes every proxied connection and refuses new ones (the listener is closed),
//! `delay(ms)` holds every forwarded chunk for `ms` (a slow or black-holed network),
//! `restore()` undoes both.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_runtime::store::{
    MemberRecord, MemberStatus, OutboxEntry, ReminderChange, StateWrite,
};
use emporium_runtime::{ActorId, StateStore, StoreError, shard_of_id};
use emporium_store_postgres::{PostgresOptions, PostgresStore};
use emporium_testkit::TcpProxy;
use support::{SchemaGuard, admin, url};

/// Every operation must fail within this while the store is cut off.
const UNAVAILABLE_BOUND: Duration = Duration::from_secs(3);

/// The test server's address and a URL for the same user and database through `proxy`.
fn upstream_and_proxied_url(proxy_addr: Option<SocketAddr>) -> (SocketAddr, String) {
    let config: tokio_postgres::Config = url().parse().expect("EMPORIUM_TEST_POSTGRES url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the fault test needs a tcp host, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolve the test server")
        .find(SocketAddr::is_ipv4)
        .expect("an ipv4 address for the test server");
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|password| format!(":{}", String::from_utf8_lossy(password)))
        .unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    let target = proxy_addr.unwrap_or(upstream);
    (
        upstream,
        format!("postgres://{user}{password}@{target}/{dbname}"),
    )
}

fn write(expected: u64, state: &[u8]) -> StateWrite {
    StateWrite {
        expected_version: expected,
        state: Bytes::copy_from_slice(state),
        ..StateWrite::default()
    }
}

fn member(heartbeat_ms: u64) -> MemberRecord {
    MemberRecord {
        node_id: "fault-node".to_owned(),
        incarnation: 1,
        cluster_addr: "127.0.0.1:1".to_owned(),
        http_addr: "127.0.0.1:2".to_owned(),
        status: MemberStatus::Up,
        heartbeat_ms,
    }
}

/// Run every port operation once; each must fail `Unavailable` within the bound. Returns
/// the slowest failure.
async fn every_operation_is_unavailable(
    store: &PostgresStore,
    id: &ActorId,
    phase: &str,
) -> Duration {
    let mut slowest = Duration::ZERO;
    let mut check = |name: &str, started: Instant, error: Option<StoreError>| {
        let elapsed = started.elapsed();
        match error {
            Some(error) if error.is_unavailable() => {}
            other => panic!("{phase}: {name} should be Unavailable, got {other:?}"),
        }
        assert!(
            elapsed < UNAVAILABLE_BOUND,
            "{phase}: {name} took {elapsed:?} to fail"
        );
        eprintln!(
            "{phase}: {name} unavailable after {} ms",
            elapsed.as_millis()
        );
        slowest = slowest.max(elapsed);
    };
    let t = Instant::now();
    check("load", t, store.load(id).await.err());
    let t = Instant::now();
    check("save", t, store.save(id, write(1, b"never")).await.err());
    let t = Instant::now();
    check("delete", t, store.delete(id, 1).await.err());
    let t = Instant::now();
    check(
        "list_keys",
        t,
        store.list_keys(id.kind, None, 10).await.err(),
    );
    let t = Instant::now();
    check("outbox_pending", t, store.outbox_pending(10).await.err());
    let t = Instant::now();
    let pending = [emporium_runtime::store::PendingEvent {
        actor: id.clone(),
        entry: OutboxEntry {
            event_id: "x".to_owned(),
            topic: "t".to_owned(),
            payload: Bytes::new(),
        },
    }];
    check("outbox_ack", t, store.outbox_ack(&pending).await.err());
    let t = Instant::now();
    check(
        "list_reminders",
        t,
        store.list_reminders(shard_of_id(id)).await.err(),
    );
    let t = Instant::now();
    check(
        "upsert_member",
        t,
        store.upsert_member(&member(9)).await.err(),
    );
    let t = Instant::now();
    check("list_members", t, store.list_members().await.err());
    let t = Instant::now();
    check(
        "claim_lease",
        t,
        store.claim_lease(7, "fault-node", 1).await.err(),
    );
    let t = Instant::now();
    check("list_leases", t, store.list_leases().await.err());
    slowest
}

/// After the network is back the same store must work again; allow a couple of attempts
/// for connections that die only when first used. Returns how many attempts it took.
async fn works_again(store: &PostgresStore, id: &ActorId, phase: &str) -> usize {
    for attempt in 1..=3 {
        match store.load(id).await {
            Ok(_) => return attempt,
            Err(error) => eprintln!("{phase}: attempt {attempt} after restore: {error}"),
        }
    }
    panic!("{phase}: the store did not recover after restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_delay_and_restore_through_a_proxy() {
    let Some(_admin) = admin().await else {
        return;
    };
    let (upstream, _) = upstream_and_proxied_url(None);
    let proxy = TcpProxy::start(upstream).await;
    let (_, proxied_url) = upstream_and_proxied_url(Some(proxy.addr));
    let guard = SchemaGuard::fresh().await;
    let store = PostgresStore::connect(
        &proxied_url,
        PostgresOptions {
            pool_size: 4,
            ..guard.options()
        },
    )
    .await
    .expect("connect through the proxy");

    let id = ActorId::new("fault", "cart-1");
    assert_eq!(store.save(&id, write(0, b"v1")).await.expect("save v1"), 1);
    assert_eq!(
        store
            .claim_lease(7, "fault-node", 0)
            .await
            .expect("lease")
            .epoch,
        1
    );
    store.upsert_member(&member(1)).await.expect("member");

    // 1. Cut: connections close, new ones are refused.
    proxy.cut();
    let slowest_cut = every_operation_is_unavailable(&store, &id, "cut").await;
    proxy.restore().await;
    let attempts = works_again(&store, &id, "cut").await;
    eprintln!(
        "cut: slowest failure {} ms; recovered on attempt {attempts}",
        slowest_cut.as_millis()
    );
    assert_eq!(store.save(&id, write(1, b"v2")).await.expect("save v2"), 2);

    // 2. A black hole: connections stay open but nothing comes back in time.
    proxy.delay(10_000);
    let slowest_delay = every_operation_is_unavailable(&store, &id, "delay").await;
    // A write with outbox and reminders cut off mid-flight must apply whole or not at all.
    let mut pending_write = write(2, b"v3");
    pending_write.outbox.push(OutboxEntry {
        event_id: "fault-cart-1-v3".to_owned(),
        topic: "fault.saved".to_owned(),
        payload: Bytes::from_static(b"v3"),
    });
    pending_write.reminders.push(ReminderChange::Set {
        name: "expire".to_owned(),
        due_at_ms: 42,
    });
    let started = Instant::now();
    let result = store.save(&id, pending_write).await;
    assert!(
        result.as_ref().is_err_and(StoreError::is_unavailable),
        "delayed save: {result:?}"
    );
    assert!(started.elapsed() < UNAVAILABLE_BOUND);
    proxy.restore().await;
    let attempts = works_again(&store, &id, "delay").await;
    eprintln!(
        "delay: slowest failure {} ms; recovered on attempt {attempts}",
        slowest_delay.as_millis()
    );
    let current = store.load(&id).await.expect("load").expect("present");
    let pending = store.outbox_pending(100).await.expect("pending");
    let reminders = store
        .list_reminders(shard_of_id(&id))
        .await
        .expect("reminders");
    let has_event = pending
        .iter()
        .any(|event| event.entry.event_id == "fault-cart-1-v3");
    let has_reminder = reminders.iter().any(|reminder| reminder.actor == id);
    match current.version {
        2 => assert!(!has_event && !has_reminder, "a failed save left a trace"),
        3 => assert!(has_event && has_reminder, "a save applied partially"),
        other => panic!("unexpected version {other}"),
    }

    // 3. The server drops every connection (a restart): the pool heals by itself.
    proxy.reset_connections();
    let attempts = works_again(&store, &id, "reset").await;
    eprintln!("reset: recovered on attempt {attempts}");
    let version = current.version;
    assert_eq!(
        store
            .save(&id, write(version, b"after"))
            .await
            .expect("save after recovery"),
        version + 1
    );
    assert_eq!(
        store.list_leases().await.expect("leases").len(),
        1,
        "data written before the faults is still there"
    );
    println!(
        "postgres time to unavailable: cut {} ms, black hole {} ms (bound {} ms)",
        slowest_cut.as_millis(),
        slowest_delay.as_millis(),
        UNAVAILABLE_BOUND.as_millis()
    );
    store.close();
}
