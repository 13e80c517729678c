//! Request metrics and the Prometheus recorder.
//!
//! - `emporium_http_requests_total{route,method,status}`
//! - `emporium_http_request_duration_seconds{route,method}` (histogram)
//!
//! `route` is the matched route template (`/v1/carts/{id}`), never the raw path, so label
//! cardinality stays bounded whatever clients send.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
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

/// One request's metrics, from its start ([`RequestMetrics::start`]) to its answer
/// ([`RequestMetrics::finish`]): counted and timed under its route template, and counted in
/// the node's rates (the admin view's requests and errors per second).
pub struct RequestMetrics {
    route: Option<MatchedPath>,
    method: Method,
    // Duration of a request is measured, not decided on: the monotonic clock is right here.
    started: Instant,
}

impl RequestMetrics {
    pub fn start(request: &Request) -> Self {
        Self {
            route: request.extensions().get::<MatchedPath>().cloned(),
            method: request.method().clone(),
            started: Instant::now(),
        }
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn finish(self, state: &AppState, status: StatusCode) {
        state
            .runtime
            .rates()
            .record_request(status.is_server_error());
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        state
            .request_metrics
            .record(route, &self.method, status, self.started.elapsed());
    }
}

/// The recorder's handles of the request metrics, looked up once per route, method and
/// status. Building the label set and finding it in the recorder's registry on every
/// request was about 4% of a node's CPU on a product read (perf, issue 14); a read lock and
/// a short scan replace it. Bounded like the labels: route templates, the standard methods
/// (any other is `other`), status codes.
#[derive(Default)]
pub struct RequestMetricHandles {
    routes: RwLock<HashMap<String, RouteHandles>>,
}

/// One route's handles, per method and status (the count) and per method (the duration).
#[derive(Default)]
struct RouteHandles {
    requests: Vec<(&'static str, u16, Counter)>,
    durations: Vec<(&'static str, Histogram)>,
}

impl RouteHandles {
    /// Count and time one request; `false` (nothing recorded) when its method and status
    /// have no handles yet.
    fn record(&self, method: &str, status: u16, elapsed: Duration) -> bool {
        let requests = self
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status);
        let duration = self.durations.iter().find(|(m, _)| *m == method);
        let (Some((_, _, requests)), Some((_, duration))) = (requests, duration) else {
            return false;
        };
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
        true
    }

    /// Ask the recorder for the handles `route`'s requests of `method` and `status` lack.
    fn register(&mut self, route: &str, method: &'static str, status: u16) {
        if !self
            .requests
            .iter()
            .any(|(m, s, _)| *m == method && *s == status)
        {
            let counter = metrics::counter!(
                "emporium_http_requests_total",
                "route" => route.to_owned(),
                "method" => method,
                "status" => status.to_string()
            );
            self.requests.push((method, status, counter));
        }
        if !self.durations.iter().any(|(m, _)| *m == method) {
            let histogram = metrics::histogram!(
                DURATION_METRIC,
                "route" => route.to_owned(),
                "method" => method
            );
            self.durations.push((method, histogram));
        }
    }
}

impl RequestMetricHandles {
    /// Count and time one request of `route`.
    fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let method = method_label(method);
        let status = status.as_u16();
        let recorded = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .is_some_and(|handles| handles.record(method, status, elapsed));
        if !recorded {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            let handles = routes.entry(route.to_owned()).or_default();
            handles.register(route, method, status);
            handles.record(method, status, elapsed);
        }
    }
}

/// The method's label: a standard method's name, `other` for any other.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    STANDARD
        .iter()
        .find(|(standard, _)| standard == method)
        .map_or("other", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_under_their_route_method_and_status() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let rendered = recorder.handle();
        let handles = RequestMetricHandles::default();
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics::with_local_recorder(&recorder, || {
            let elapsed = Duration::from_millis(1);
            for status in [StatusCode::OK, StatusCode::OK, StatusCode::NOT_FOUND] {
                handles.record("/v1/carts/{id}", &Method::GET, status, elapsed);
            }
            handles.record("unmatched", &odd, StatusCode::METHOD_NOT_ALLOWED, elapsed);
        });
        let text = rendered.render();
        for series in [
            r#"emporium_http_requests_total{route="/v1/carts/{id}",method="GET",status="200"} 2"#,
            r#"emporium_http_requests_total{route="/v1/carts/{id}",method="GET",status="404"} 1"#,
            r#"emporium_http_requests_total{route="unmatched",method="other",status="405"} 1"#,
            r#"emporium_http_request_duration_seconds_count{route="/v1/carts/{id}",method="GET"} 3"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }
}
