//! The cluster, for operators (admins only; `401`/`403` as every admin route). Thin: every
//! route is one call of the runtime's operations (`emporium_runtime::operations`), the same
//! calls the gRPC admin service makes.
//!
//! - `GET /v1/admin/cluster`: the nodes as the answering node sees them (id, addresses,
//!   status, liveness, incarnation, shards owned, active actors in total and per kind,
//!   request/error/event rates, time since the last heartbeat) and the shard count. On a
//!   single node: one node owning every shard, `"mode": "single"`.
//! - `GET /v1/admin/actors/{kind}/{key}`: where one actor lives (its shard, the node holding
//!   the shard's lease and the lease epoch), whether it is active there, and its stored
//!   version. An unknown kind is `404` naming it.
//! - `POST /v1/admin/actors/{kind}/{key}/passivate`: passivate it on its owner
//!   (`passivated`, `inactive` or `busy`).
//! - `POST /v1/admin/nodes/{node}/drain`: hand every shard of the node over; it stays up as
//!   an edge that holds nothing (`/readyz` 503) until stopped. `404` for an unknown node,
//!   `409` for the only node that could hold the shards, or on a single node.
//! - `POST /v1/admin/rebalance`: a lease round on every member now.
//! - `GET /v1/admin/cluster/events`: server-sent events — the recent history (joins,
//!   leaves, liveness, shard moves, failovers with their duration), then live changes;
//!   `event: cluster`, `id:` the sequence number, `data:` the event as JSON.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_runtime::{ClusterEvent, RuntimeError};
use serde_json::json;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

use crate::auth::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

/// Comments on an idle event stream, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/cluster", get(cluster))
        .route("/v1/admin/cluster/events", get(cluster_events))
        .route("/v1/admin/actors/{kind}/{key}", get(actor))
        .route("/v1/admin/actors/{kind}/{key}/passivate", post(passivate))
        .route("/v1/admin/nodes/{node}/drain", post(drain))
        .route("/v1/admin/rebalance", post(rebalance))
}

pub async fn cluster(Admin(_admin): Admin, State(state): State<AppState>) -> Response {
    Json(state.runtime.cluster_status().await).into_response()
}

pub async fn actor(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    match state.runtime.locate_actor(&kind, &key).await {
        Ok(location) => Ok(Json(location).into_response()),
        Err(RuntimeError::UnknownKind { kind }) => Err(ApiError::NotFound(format!(
            "there is no actor kind {kind:?}"
        ))),
        Err(error) => Err(error.into()),
    }
}

pub async fn passivate(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    Path((kind, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let outcome = state.runtime.passivate_actor(&kind, &key).await?;
    Ok(Json(outcome).into_response())
}

pub async fn drain(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    Path(node): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = state.runtime.drain_node(&node).await?;
    Ok(Json(outcome).into_response())
}

pub async fn rebalance(
    Admin(_admin): Admin,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let nodes = state.runtime.rebalance().await?;
    Ok(Json(json!({ "nodes": nodes })).into_response())
}

pub async fn cluster_events(
    Admin(_admin): Admin,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let feed = state.runtime.cluster_events();
    let history = tokio_stream::iter(feed.history).map(|event| sse_event(&event));
    let live = BroadcastStream::new(feed.live).map(|received| match received {
        Ok(event) => sse_event(&event),
        // The reader fell behind: say how much it missed (its `seq` jumps as well).
        Err(BroadcastStreamRecvError::Lagged(missed)) => {
            Event::default().event("lagged").data(missed.to_string())
        }
    });
    Sse::new(history.chain(live).map(Ok)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn sse_event(event: &ClusterEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    Event::default()
        .event("cluster")
        .id(event.seq.to_string())
        .data(data)
}
