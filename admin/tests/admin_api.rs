//! The admin API in process: the server on a loopback port, the crate's client against it,
//! over a single-node runtime on the in-memory store and over in-process cluster nodes.
//! Every RPC, the token checks, the error codes, the event stream's order, a TLS round trip.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use emporium_admin::{
    AdminClient, AuthError, Authorizer, ClientError, ClientSettings, Failure, ServerTls, WatchItem,
};
use emporium_runtime::cluster::{Cluster, ClusterOptions, LeaseConfig, MembershipConfig};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{ClusterChange, Runtime, RuntimeError, StateStore, Turn, VirtualActor};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ADMIN: &str = "admin-token-0123456789abcdef0123456789";
const CUSTOMER: &str = "customer-token";

/// Adds its command to its count.
struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "counter";
    type State = u64;
    type Command = u64;
    type Reply = u64;

    async fn handle(&self, turn: &mut Turn<Self>, add: u64) -> Result<u64, RuntimeError> {
        *turn.state_mut() += add;
        Ok(*turn.state())
    }
}

/// `ADMIN` is an admin, `CUSTOMER` a valid token of someone else, anything else invalid.
struct TestTokens;

#[tonic::async_trait]
impl Authorizer for TestTokens {
    async fn check(&self, bearer: &str) -> Result<(), AuthError> {
        match bearer {
            ADMIN => Ok(()),
            CUSTOMER => Err(AuthError::PermissionDenied("not an admin".into())),
            _ => Err(AuthError::Unauthenticated("unknown token".into())),
        }
    }
}

/// A running admin server; dropping it stops the server.
struct Served {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve(runtime: &Runtime, tls: Option<ServerTls>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let service = emporium_admin::AdminService::new(runtime.clone(), Arc::new(TestTokens));
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        emporium_admin::serve(service, listener, tls, shutdown)
            .await
            .expect("the admin server runs");
    });
    Served { addr, _stop: stop }
}

fn settings(addr: &str, token: Option<&str>) -> ClientSettings {
    ClientSettings {
        addr: addr.to_owned(),
        token: token.map(str::to_owned),
        ca_cert: None,
        timeout: Duration::from_secs(10),
    }
}

async fn client(served: &Served, token: Option<&str>) -> AdminClient {
    AdminClient::connect(settings(&served.addr.to_string(), token))
        .await
        .unwrap()
}

async fn single_node() -> Runtime {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    Runtime::builder(store)
        .node_id("solo")
        .register(Counter)
        .build()
        .await
        .unwrap()
}

fn failure<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (Failure, String) {
    let error = result.expect_err("an error");
    (error.failure(), error.to_string())
}

/// Fail the test instead of hanging it.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the test took longer than 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_on_a_single_node() {
    bounded(async {
        let runtime = single_node().await;
        let served = serve(&runtime, None).await;
        let admin = client(&served, Some(ADMIN)).await;

        let cluster = admin.cluster().await.unwrap();
        assert_eq!(cluster.mode, "single");
        assert_eq!(cluster.node_id, "solo");
        assert_eq!(cluster.shard_count, 1024);
        assert_eq!(cluster.nodes.len(), 1);
        assert_eq!(cluster.nodes[0].shards_owned, 1024);

        runtime.actor::<Counter>("c-1").ask(5).await.unwrap();
        let location = admin.locate_actor("counter", "c-1").await.unwrap();
        assert_eq!(location.shard, emporium_runtime::shard_of("counter", "c-1"));
        assert_eq!(location.active, Some(true));
        assert_eq!(location.version, 1);
        let load = admin.cluster().await.unwrap().nodes[0]
            .load
            .clone()
            .unwrap();
        assert_eq!(load.active_by_kind.get("counter"), Some(&1));

        let outcome = admin.passivate_actor("counter", "c-1").await.unwrap();
        assert_eq!(
            (outcome.node_id.as_str(), outcome.result.as_str()),
            ("solo", "passivated")
        );
        assert!(!runtime.is_active::<Counter>("c-1"));
        let outcome = admin.passivate_actor("counter", "c-1").await.unwrap();
        assert_eq!(outcome.result, "inactive");
        let location = admin.locate_actor("counter", "c-1").await.unwrap();
        assert_eq!(location.active, Some(false));

        // Cluster actions on a single node are refused; unknown kinds are not found.
        let (kind, message) = failure(admin.drain_node("solo").await);
        assert_eq!(kind, Failure::Refused, "{message}");
        let (kind, message) = failure(admin.rebalance().await);
        assert_eq!(kind, Failure::Refused, "{message}");
        let (kind, message) = failure(admin.locate_actor("nope", "x").await);
        assert_eq!(kind, Failure::NotFound, "{message}");
        assert!(message.contains("nope"), "{message}");
        let (kind, _) = failure(admin.passivate_actor("nope", "x").await);
        assert_eq!(kind, Failure::NotFound);
        let (kind, _) = failure(admin.locate_actor("", "x").await);
        assert_eq!(kind, Failure::Usage);

        // A single node has no history: the stream says so at once, then stays open.
        let mut events = admin.watch().await.unwrap();
        assert_eq!(events.next().await.unwrap().unwrap(), WatchItem::CaughtUp);
        let quiet = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
        assert!(quiet.is_err(), "nothing happens on a single node");

        // Stopping the server ends the open stream.
        drop(served);
        let end = tokio::time::timeout(Duration::from_secs(3), events.next()).await;
        assert!(
            matches!(end, Ok(None | Some(Err(_)))),
            "the stream ends when the server stops: {end:?}"
        );
        runtime.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_an_admin_token() {
    bounded(async {
        let runtime = single_node().await;
        let served = serve(&runtime, None).await;
        for (token, expected) in [
            (None, "unauthenticated"),
            (Some("forged"), "unauthenticated"),
            (Some(CUSTOMER), "permission denied"),
        ] {
            let admin = client(&served, token).await;
            let results: Vec<(Failure, String)> = vec![
                failure(admin.cluster().await),
                failure(admin.locate_actor("counter", "c").await),
                failure(admin.drain_node("solo").await),
                failure(admin.passivate_actor("counter", "c").await),
                failure(admin.rebalance().await),
                failure(admin.watch().await.map(|_| ())),
            ];
            for (kind, message) in results {
                assert_eq!(kind, Failure::Denied, "{token:?}: {message}");
                assert!(message.starts_with(expected), "{token:?}: {message}");
            }
        }
        runtime.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unreachable() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = AdminClient::connect(settings(&addr.to_string(), Some(ADMIN)))
        .await
        .err()
        .expect("nothing listens");
    assert_eq!(error.failure(), Failure::Unreachable, "{error}");
    let error = AdminClient::connect(settings("https://127.0.0.1:1", Some(ADMIN)))
        .await
        .err()
        .expect("TLS needs a CA");
    assert_eq!(error.failure(), Failure::Usage, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_with_a_self_signed_certificate() {
    bounded(async {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = certified.cert.pem();
        let key = certified.signing_key.serialize_pem();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let tls = ServerTls::from_files(&cert_path, &key_path).unwrap();
        assert!(
            ServerTls::from_files(&cert_path, &cert_path).is_err(),
            "a certificate is no key"
        );

        let runtime = single_node().await;
        let served = serve(&runtime, Some(tls)).await;
        let port = served.addr.port();
        let tls_settings = ClientSettings {
            ca_cert: Some(cert.clone().into_bytes()),
            ..settings(&format!("localhost:{port}"), Some(ADMIN))
        };
        let admin = AdminClient::connect(tls_settings).await.unwrap();
        assert_eq!(admin.cluster().await.unwrap().node_id, "solo");

        // Plain HTTP/2 to a TLS port gets no answer a client could take for one.
        let plain =
            AdminClient::connect(settings(&format!("http://localhost:{port}"), Some(ADMIN))).await;
        if let Ok(plain) = plain {
            let (kind, message) = failure(plain.cluster().await);
            assert_eq!(kind, Failure::Unreachable, "{message}");
        }

        // A certificate the client does not trust is refused.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let untrusted = ClientSettings {
            ca_cert: Some(other.cert.pem().into_bytes()),
            ..settings(&format!("https://localhost:{port}"), Some(ADMIN))
        };
        let result = match AdminClient::connect(untrusted).await {
            Ok(admin) => admin.cluster().await.map(|_| ()),
            Err(error) => Err(error),
        };
        let (kind, message) = failure(result);
        assert_eq!(kind, Failure::Unreachable, "{message}");
        runtime.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// In-process cluster nodes.

struct Member {
    runtime: Runtime,
    cluster: Cluster,
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn member(store: &Arc<MemoryStore>, id: &str) -> Member {
    let membership = MembershipConfig {
        heartbeat_interval: Duration::from_millis(100),
        suspect_after: Duration::from_millis(400),
        dead_after: Duration::from_secs(1),
        forget_after: Duration::from_secs(3600),
    };
    let mut options = ClusterOptions::new(
        id,
        free_addr(),
        format!("{id}.http:8080"),
        "admin-api-test-secret",
    );
    options.leases = LeaseConfig {
        refresh_interval: membership.heartbeat_interval,
        max_concurrent_claims: 64,
    };
    options.membership = membership;
    let store: Arc<dyn StateStore> = store.clone();
    let builder = Runtime::builder(store).node_id(id).register(Counter);
    let (runtime, cluster) = Cluster::start(builder, options).await.unwrap();
    Member { runtime, cluster }
}

/// Poll `check` every 50 ms for at most 20 s.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 20 s");
}

/// The next event of the stream (markers are checked by the caller when it wants them).
async fn next_event(events: &mut emporium_admin::EventStream) -> emporium_runtime::ClusterEvent {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
            Ok(Some(Ok(WatchItem::Event(event)))) => return event,
            Ok(Some(Ok(WatchItem::Lagged(missed)))) => panic!("lagged by {missed}"),
            Ok(Some(Ok(WatchItem::CaughtUp))) => {}
            other => panic!("the stream ended or failed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_events_history_then_live_and_a_drain() {
    bounded(async {
        let store = Arc::new(MemoryStore::new());
        let a = member(&store, "adm-a").await;
        let served = serve(&a.runtime, None).await;
        let admin = client(&served, Some(ADMIN)).await;
        eventually("adm-a owns every shard", || async {
            admin.cluster().await.unwrap().nodes[0].shards_owned == 1024
        })
        .await;

        // Alone: its own join and shard claims are history, then the marker.
        let mut events = admin.watch().await.unwrap();
        let mut history = Vec::new();
        loop {
            match events.next().await.unwrap().unwrap() {
                WatchItem::Event(event) => history.push(event),
                WatchItem::CaughtUp => break,
                WatchItem::Lagged(missed) => panic!("lagged by {missed}"),
            }
        }
        assert!(
            history.iter().any(|event| matches!(&event.change,
                ClusterChange::Ownership { to, .. } if to == "adm-a")),
            "history: {history:?}"
        );
        assert!(history.windows(2).all(|pair| pair[0].seq < pair[1].seq));
        let (kind, message) = failure(admin.drain_node("adm-a").await);
        assert_eq!(kind, Failure::Refused, "the only node: {message}");
        let (kind, message) = failure(admin.drain_node("adm-zz").await);
        assert_eq!(kind, Failure::NotFound, "{message}");

        // A second node joins: live events, and shards move to it.
        let b = member(&store, "adm-b").await;
        let mut joined = false;
        let mut moved_to_b = false;
        while !(joined && moved_to_b) {
            let event = next_event(&mut events).await;
            assert!(event.seq > history.last().map_or(0, |last| last.seq));
            match &event.change {
                ClusterChange::Joined { node_id, .. } if node_id == "adm-b" => joined = true,
                ClusterChange::Ownership { to, .. } if to == "adm-b" => moved_to_b = true,
                _ => {}
            }
        }
        eventually("both nodes hold shards", || async {
            let view = admin.cluster().await.unwrap();
            view.nodes.len() == 2 && view.nodes.iter().all(|node| node.shards_owned > 0)
        })
        .await;
        let ran = admin.rebalance().await.unwrap();
        assert!(ran.contains(&"adm-a".to_owned()), "{ran:?}");

        // Where an actor lives, seen through A, and its passivation on its owner.
        let key = (0..500)
            .map(|n| format!("k-{n}"))
            .find(|key| b.cluster.leases().serves(emporium_runtime::shard_of("counter", key)))
            .expect("some key is served by adm-b");
        a.runtime.actor::<Counter>(&key).ask(1).await.unwrap();
        let location = admin.locate_actor("counter", &key).await.unwrap();
        assert_eq!(location.owner.as_deref(), Some("adm-b"));
        assert_eq!(location.active, Some(true));
        let outcome = admin.passivate_actor("counter", &key).await.unwrap();
        assert_eq!((outcome.node_id.as_str(), outcome.result.as_str()), ("adm-b", "passivated"));

        // Drain B through A: every shard comes back to A.
        let drained = admin.drain_node("adm-b").await.unwrap();
        assert_eq!(drained.node_id, "adm-b");
        assert!(drained.shards_at_start > 0);
        assert_eq!(drained.shards_left, 0);
        let mut back_to_a = false;
        while !back_to_a {
            let event = next_event(&mut events).await;
            back_to_a = matches!(&event.change,
                ClusterChange::Ownership { from: Some(from), to, .. } if from == "adm-b" && to == "adm-a");
        }
        b.cluster.stop().await;
        a.cluster.stop().await;
    })
    .await;
}
