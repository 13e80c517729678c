//! Traces across hops, on real processes: two nodes on PostgreSQL + NATS export their spans
//! over OTLP/HTTP (`EMPORIUM_OTLP_ENDPOINT`) to the test kit's receiver. A cart request sent
//! to the node that does not own the cart is one trace on both nodes: the sender's edge span
//! (with the request id the client chose, echoed in the response), its forward span, and on
//! the owner a serve span that is the forward span's child, with the cart's turn under it.
//! A request id that is not plausible is replaced by a fresh one, which the edge span and
//! the response both carry.

use std::time::Duration;

use emporium_testkit::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use serde_json::json;

use crate::cluster_kit::{Cluster, sku};
use crate::stores::TestStore;

/// How long spans may take to arrive (the nodes export every 100 ms here).
const ARRIVAL: Duration = Duration::from_secs(20);

/// The spans of trace `trace_id` named `name`, exported by `node`.
fn spans_of<'a>(
    spans: &'a [ReceivedSpan],
    trace_id: &str,
    name: &str,
    node: &str,
) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|span| span.trace_id == trace_id && span.name == name)
        .filter(|span| span.node() == Some(node))
        .collect()
}

/// The edge span of the request with `request_id` (exported as `METHOD /route`).
fn edge_span<'a>(spans: &'a [ReceivedSpan], request_id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.attribute("request_id") == Some(request_id))
}

/// node-1's forwards of cart commands in trace `trace_id` that node-2 answered.
fn answered_cart_forwards<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans_of(spans, trace_id, "cluster.forward", "node-1")
        .into_iter()
        .filter(|span| span.attribute("actor.kind") == Some("cart"))
        .filter(|span| span.attribute("outcome") == Some("ok"))
        .collect()
}

/// Whether the request's edge span arrived, and for each of its forwards a span on the
/// other node whose parent it is (the nodes export independently, in batches).
fn every_hop_arrived(spans: &[ReceivedSpan], request_id: &str) -> bool {
    let Some(edge) = edge_span(spans, request_id) else {
        return false;
    };
    let forwards: Vec<&ReceivedSpan> = answered_cart_forwards(spans, &edge.trace_id);
    !forwards.is_empty()
        && forwards.iter().all(|forward| {
            let serves = spans_of(spans, &edge.trace_id, "cluster.serve", "node-2");
            let served = serves
                .iter()
                .find(|serve| serve.parent_span_id.as_ref() == Some(&forward.span_id));
            served.is_some_and(|serve| {
                spans_of(spans, &edge.trace_id, "actor.turn", "node-2")
                    .iter()
                    .any(|turn| turn.parent_span_id.as_ref() == Some(&serve.span_id))
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_cart_request_is_one_trace_across_both_nodes() {
    let receiver = OtlpReceiver::start().await.expect("OTLP receiver");
    let endpoint = receiver.endpoint();
    let env = [
        ("EMPORIUM_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let Some(cluster) = Cluster::start_with_env(TestStore::Postgres, 2, &env).await else {
        return;
    };
    let (owned_by_2, _) = cluster.carts_split_by_owner("node-2", 1, 0).await;
    let cart = &owned_by_2[0];
    assert_eq!(
        cluster.owner_of(0, "cart", cart).await.as_deref(),
        Some("node-2")
    );

    // Through node-1, which forwards it to node-2.
    let request_id = "trace-test-0001";
    let api = cluster.api(0);
    let request = cluster
        .client()
        .post(format!("{}/v1/carts/{cart}/items", api.base))
        .header("x-request-id", request_id)
        .json(&json!({"sku": sku(0), "quantity": 2}));
    let answer = api.send(request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id),
        "the client's id is echoed"
    );

    let spans = receiver
        .wait_until(ARRIVAL, |spans| every_hop_arrived(spans, request_id))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the request's spans did not arrive: {:#?}",
                receiver.spans()
            )
        });
    let edge = edge_span(&spans, request_id).expect("the edge span");
    let trace = edge.trace_id.as_str();
    assert_eq!(edge.name, "POST /v1/carts/{id}/items");
    assert_eq!(edge.node(), Some("node-1"));
    assert_eq!(edge.parent_span_id, None, "the request starts the trace");
    assert_eq!(edge.attribute("http.route"), Some("/v1/carts/{id}/items"));
    assert_eq!(edge.attribute("http.request.method"), Some("POST"));
    assert_eq!(edge.attribute("http.response.status_code"), Some("200"));
    assert_eq!(
        edge.resource.get("service.name").map(String::as_str),
        Some("emporium")
    );

    // node-1: the forwards of the cart commands (the route asks the cart more than once),
    // children of the edge span; a stale view may have cost a refused attempt first.
    let forwards = answered_cart_forwards(&spans, trace);
    assert!(!forwards.is_empty(), "an answered forward: {spans:#?}");
    for forward in forwards {
        assert_eq!(
            forward.parent_span_id.as_deref(),
            Some(edge.span_id.as_str())
        );
        assert_eq!(forward.attribute("peer.node"), Some("node-2"));
        assert_eq!(forward.attribute("actor.key"), Some(cart.as_str()));

        // node-2: serving it, the forward span's child across the wire, and the cart's
        // turn under that.
        let serves: Vec<&ReceivedSpan> = spans_of(&spans, trace, "cluster.serve", "node-2")
            .into_iter()
            .filter(|span| span.parent_span_id.as_deref() == Some(forward.span_id.as_str()))
            .collect();
        assert_eq!(
            serves.len(),
            1,
            "one serve span under {forward:#?}: {spans:#?}"
        );
        let serve = serves[0];
        assert_eq!(serve.attribute("actor.kind"), Some("cart"));
        assert_eq!(serve.attribute("actor.key"), Some(cart.as_str()));
        let turns: Vec<&ReceivedSpan> = spans_of(&spans, trace, "actor.turn", "node-2")
            .into_iter()
            .filter(|span| span.parent_span_id.as_deref() == Some(serve.span_id.as_str()))
            .collect();
        assert_eq!(
            turns.len(),
            1,
            "the cart's turn under {serve:#?}: {spans:#?}"
        );
        assert_eq!(turns[0].attribute("actor.kind"), Some("cart"));
        assert_eq!(turns[0].attribute("outcome"), Some("ok"));
    }

    // An id that is not plausible is replaced; the new one is on the span and echoed.
    let request = cluster
        .client()
        .get(format!("{}/v1/carts/{cart}", api.base))
        .header("x-request-id", "not a plausible id");
    let answer = api.send(request).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let fresh = answer
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an x-request-id")
        .to_owned();
    assert_ne!(fresh, "not a plausible id");
    let spans = receiver
        .wait_until(ARRIVAL, |spans| edge_span(spans, &fresh).is_some())
        .await
        .unwrap_or_else(|| panic!("no edge span for {fresh}"));
    let edge = edge_span(&spans, &fresh).expect("the edge span");
    assert_eq!(edge.attribute("http.route"), Some("/v1/carts/{id}"));
    assert_eq!(receiver.rejected(), 0, "every export decoded");
    cluster.finish().await;
}
