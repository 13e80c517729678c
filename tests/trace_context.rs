//! One trace across a forwarded call, in one process: two cluster runtimes on one
//! `MemoryStore` carry W3C trace context with the node's [`W3cTraceContext`], and every span
//! goes through the node's real export path (`telemetry::export_layer`, OTLP/HTTP) to the
//! test kit's receiver. An ask through the node that does not own the actor must produce
//! the sender's `cluster.forward`, the owner's `cluster.serve` (its child, across the wire)
//! and the owner's `actor.turn` (the serve span's child), all in the caller's trace.
//!
//! The trace context port itself: a parent it cannot read is ignored (the span stays a root
//! of a trace of its own), a valid one is continued.
//!
//! One test only: the subscriber is process-wide (turns run on the runtime's worker
//! threads, so a thread-local default would miss them).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use emporium::telemetry::{W3cTraceContext, export_layer, tracer_provider};
use emporium_runtime::cluster::{Cluster, ClusterOptions, LeaseConfig, MembershipConfig};
use emporium_runtime::store::MemoryStore;
use emporium_runtime::{
    Rendezvous, Runtime, RuntimeError, StateStore, TraceContext, TraceHeaders, Turn, VirtualActor,
    shard_of,
};
use emporium_testkit::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// A counter: enough of an actor to run a turn.
struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "counter";
    type State = u64;
    type Command = u64;
    type Reply = (String, u64);

    async fn handle(&self, turn: &mut Turn<Self>, add: u64) -> Result<(String, u64), RuntimeError> {
        *turn.state_mut() += add;
        Ok((turn.runtime().node_id().to_owned(), *turn.state()))
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start(store: &Arc<MemoryStore>, id: &str) -> (Runtime, Cluster) {
    let membership = MembershipConfig {
        heartbeat_interval: Duration::from_millis(100),
        suspect_after: Duration::from_millis(400),
        dead_after: Duration::from_secs(1),
        forget_after: Duration::from_secs(3600),
    };
    let mut options = ClusterOptions::new(id, free_addr(), format!("{id}.http:8080"), "secret");
    options.leases = LeaseConfig {
        refresh_interval: membership.heartbeat_interval,
        max_concurrent_claims: 64,
    };
    options.membership = membership;
    let store: Arc<dyn StateStore> = store.clone();
    let builder = Runtime::builder(store)
        .node_id(id)
        .trace_context(Arc::new(W3cTraceContext))
        .register(Counter);
    Cluster::start(builder, options).await.unwrap()
}

/// Both nodes route `key` to its rendezvous owner.
async fn converged(nodes: &[&Cluster], ids: &[&str], key: &str) {
    let owner = Rendezvous::new(ids)
        .owner(shard_of(Counter::KIND, key))
        .map(str::to_owned);
    let shard = shard_of(Counter::KIND, key);
    for _ in 0..200 {
        let served = nodes.iter().all(|cluster| {
            let table = cluster.leases().table();
            let holder = table.lease(shard).and_then(|lease| lease.holder.as_ref());
            holder.map(|holder| holder.node_id.as_str()) == owner.as_deref()
        });
        if served && nodes.iter().all(|cluster| cluster.is_serving()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the leases did not converge");
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_call_is_one_trace_across_both_nodes() {
    emporium::install_crypto_provider();
    let receiver = OtlpReceiver::start().await.unwrap();
    let provider = tracer_provider(&receiver.endpoint(), "in-process").unwrap();
    let subscriber = tracing_subscriber::registry().with(export_layer(&provider));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // The port alone: a valid parent is continued, an unreadable one ignored.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (traceparent, continued) in [
        (parent, true),
        ("00-not-a-trace-01", false),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            false,
        ),
        ("", false),
    ] {
        let span = tracing::debug_span!(target: "emporium_test", "adopted");
        let headers = TraceHeaders {
            traceparent: traceparent.to_owned(),
            tracestate: None,
        };
        W3cTraceContext.adopt(&span, &headers);
        let injected = span.in_scope(|| W3cTraceContext.inject()).unwrap();
        assert_eq!(
            injected
                .traceparent
                .contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            continued,
            "{traceparent:?} -> {injected:?}"
        );
    }
    assert_eq!(W3cTraceContext.inject(), None, "no span, nothing to carry");

    // A call forwarded from A to B.
    let store = Arc::new(MemoryStore::new());
    let ids = ["otel-a", "otel-b"];
    let (a, cluster_a) = start(&store, ids[0]).await;
    let (_b, cluster_b) = start(&store, ids[1]).await;
    let key = (0..10_000)
        .map(|n| format!("c-{n}"))
        .find(|key| Rendezvous::new(&ids).owner(shard_of(Counter::KIND, key)) == Some(ids[1]))
        .unwrap();
    converged(&[&cluster_a, &cluster_b], &ids, &key).await;
    let request = tracing::info_span!(target: "emporium_test", "request");
    let (node, count) = a
        .actor::<Counter>(key.clone())
        .ask(2)
        .instrument(request)
        .await
        .unwrap();
    assert_eq!((node.as_str(), count), ("otel-b", 2), "B ran it");

    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap()
        .unwrap();
    let names = ["request", "cluster.forward", "cluster.serve", "actor.turn"];
    let spans = receiver
        .wait_until(Duration::from_secs(10), |spans| {
            names
                .iter()
                .all(|name| spans.iter().any(|span| span.name == *name))
        })
        .await
        .unwrap_or_else(|| panic!("not every span arrived: {:#?}", receiver.spans()));
    let request = one(&spans, "request");
    // A stale view may have cost a refused attempt first: the one that was served.
    let served: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|span| span.name != "cluster.forward" || span.attribute("outcome") == Some("ok"))
        .cloned()
        .collect();
    let forward = one(&served, "cluster.forward");
    let serve = one(&spans, "cluster.serve");
    let turn = one(&spans, "actor.turn");
    for span in [forward, serve, turn] {
        assert_eq!(span.trace_id, request.trace_id, "{span:#?}");
    }
    assert_eq!(forward.parent_span_id.as_ref(), Some(&request.span_id));
    assert_eq!(serve.parent_span_id.as_ref(), Some(&forward.span_id));
    assert_eq!(turn.parent_span_id.as_ref(), Some(&serve.span_id));
    assert_eq!(forward.attribute("peer.node"), Some("otel-b"));
    assert_eq!(forward.attribute("outcome"), Some("ok"));
    assert_eq!(turn.attribute("actor.kind"), Some("counter"));
    assert_eq!(turn.attribute("actor.key"), Some(key.as_str()));
    assert_eq!(turn.attribute("outcome"), Some("ok"));
    assert_eq!(
        turn.attribute("actor.shard"),
        Some(shard_of(Counter::KIND, &key).to_string().as_str())
    );
    assert_eq!(
        request.resource.get("service.name").map(String::as_str),
        Some("emporium")
    );
    assert_eq!(request.node(), Some("in-process"));
    assert_eq!(receiver.rejected(), 0);

    cluster_a.stop().await;
    cluster_b.stop().await;
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}
