//! Request metrics and the Prometheus recorder.
//!
//! - `emporium_http_requests_total{route,method,status}`
//! - `emporium_http_request_duration_seconds{route,method}` (histogram)
//!
//! `route` is the matched route template (`/v1/carts/{id}`), never the raw path, so label
//! cardinality stays bounded whatever clients send.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const DURATION_METRIC: &str = "emporium_http_request_duration_seconds";
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Seconds: from 100 µs to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Install the process-wide Prometheus recorder and its upkeep task. Call once, from `main`.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION_METRIC.to_owned()), DURATION_BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Middleware: count and time every request under its route template, and count it in the
/// node's rates (the admin view's requests and errors per second).
pub async fn record_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    // Duration of a request is measured, not decided on: the monotonic clock is right here.
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .runtime
        .rates()
        .record_request(response.status().is_server_error());
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "emporium_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(DURATION_METRIC, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
