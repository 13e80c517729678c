//! What happens around every request, in one middleware: [`around_every_request`].
//!
//! Each step is its own module's concept (the request's id and span, its metrics, the rate
//! limit, the catalog cache's invalidation, problem bodies for bare errors); this module only
//! fixes their order. They used to be five stacked `axum` middleware layers, and each layer
//! cloned the boxed service beneath it and boxed a future of its own on every request: about
//! a tenth of a node's CPU on a product read (perf, issue 14). One layer does it once.
//!
//! Order, outermost first: the span (so every step's log lines carry the request id), the
//! metrics (so a rate-limited answer is counted too), the rate limit, then the handler with
//! its problem bodies, then the catalog invalidation of a successful catalog write.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::observe::RequestMetrics;
use crate::state::AppState;
use crate::{cache, limits, problem, request_trace};

/// Middleware: every request's id, span, metrics, rate limit, problem bodies and catalog
/// invalidation.
pub async fn around_every_request(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (id, span) = request_trace::begin(&mut request);
    let steps = async {
        let metrics = RequestMetrics::start(&request);
        let started = metrics.started();
        let limit_keys = limits::limit_keys(&state, &request);
        let response = match limits::admit(&state, &limit_keys).await {
            Ok(()) => handle(&state, request, next).await,
            Err(too_many) => too_many,
        };
        metrics.finish(&state, response.status());
        request_trace::finish(&tracing::Span::current(), id, started, response)
    };
    steps.instrument(span).await
}

/// The handler's answer, with a problem body if it is a bare error, and the catalog
/// generation moved on after a successful catalog write.
async fn handle(state: &AppState, request: Request, next: Next) -> Response {
    let writes_catalog = cache::writes_catalog(&request);
    let response = problem::problem_for_bare_errors(next.run(request).await);
    if writes_catalog {
        cache::after_catalog_write(state, response.status()).await;
    }
    response
}
