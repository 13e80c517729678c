//! Emporium's HTTP edge: the storefront REST API, health and metrics, on hyper 1 via axum.
//!
//! **API boundary**: the routes and their JSON are the product's public contract. Handlers
//! parse input into domain values ([`emporium_actors::values`]), ask actors through the
//! runtime, and map replies to JSON ([`wire`]) and errors to problem+json ([`problem`], the
//! one place that decides status codes).
//!
//! Build the service with [`router`] and run it with [`serve`].

pub mod auth;
pub mod cache;
mod extract;
pub mod limits;
mod observe;
mod pipeline;
mod problem;
mod request_trace;
mod routes;
mod state;
#[cfg(test)]
mod testing;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

pub use observe::install_metrics_recorder;
pub use problem::{ApiError, PROBLEM_JSON, Problem};
pub use request_trace::REQUEST_ID;
pub use state::AppState;

/// Limits applied to every request.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The whole HTTP service.
pub fn router(state: AppState, limits: &EdgeLimits) -> Router {
    routes::all()
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // A backstop only: the runtime's deadlines give their verdict before it fires
        // (`RuntimeConfig::within`). When it does fire, nobody knows what happened.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pipeline::around_every_request,
        ))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
/// Handlers see each connection's peer address (`ConnectInfo<SocketAddr>`), the client
/// address of rate limits.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
