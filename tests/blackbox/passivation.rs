//! Active actors rise with traffic and fall back after the idle timeout, visibly in
//! `/metrics`.

use std::time::Duration;

use serde_json::json;

use crate::support::{Api, NodeProcess, NodeSpec, metric_sum, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_actors_rise_with_traffic_and_fall_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start(NodeSpec::embedded(dir.path()).env("EMPORIUM_IDLE_TIMEOUT", "1s")).await;
    let api = Api::new(&node);
    for _ in 0..20 {
        let cart = api.new_cart().await;
        let added = api
            .post(
                &format!("/v1/carts/{cart}/items"),
                &json!({"sku": "SKU-MUG", "quantity": 1}),
            )
            .await;
        assert_eq!(added.status, 200);
    }
    let metrics = api.metrics().await;
    let active_carts = metric_sum(&metrics, "emporium_actors_active", "kind=\"cart\"");
    assert!(
        active_carts >= 20.0,
        "active carts after traffic: {active_carts}\n{metrics}"
    );
    assert!(
        metric_sum(
            &metrics,
            "emporium_actor_activations_total",
            "kind=\"cart\""
        ) >= 20.0
    );

    let fell = wait_until(Duration::from_secs(15), || {
        let api = api.clone();
        async move {
            let metrics = api.metrics().await;
            metric_sum(&metrics, "emporium_actors_active", "") == 0.0
        }
    })
    .await;
    assert!(fell, "all actors passivated after the idle timeout");
    let metrics = api.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "emporium_actor_passivations_total",
            "reason=\"idle\""
        ) >= 20.0,
        "{metrics}"
    );
    let duration_samples = metric_sum(
        &metrics,
        "emporium_http_request_duration_seconds_count",
        "route=\"/v1/carts/{id}/items\"",
    );
    assert!(duration_samples >= 20.0, "{metrics}");
}
