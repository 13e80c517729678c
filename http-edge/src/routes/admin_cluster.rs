//! The cluster, for operators (admins only; `401`/`403` as every admin route).
//!
//! - `GET /v1/admin/cluster`: the nodes as the answering node sees them (id, addresses,
//!   status, liveness, shards owned, active actors, time since the last heartbeat) and the
//!   shard count. On a single node: one node owning every shard, `"mode": "single"`.
//! - `GET /v1/admin/actors/{kind}/{key}`: where one actor lives (its shard, the node holding
//!   the shard's lease and the lease epoch), whether it is active there, and its stored
//!   version. An unknown kind is `404` naming it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use emporium_runtime::RuntimeError;

use crate::auth::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/cluster", get(cluster))
        .route("/v1/admin/actors/{kind}/{key}", get(actor))
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
