//! The event consumers' dead letters (admins only).
//!
//! - `GET /v1/admin/dead-letters`: every consumer running on this node with its dead
//!   letters (events it gave up on after its retries, or could never apply), oldest first.
//! - `POST /v1/admin/dead-letters/{consumer}/{event_id}/redrive`: hand the event to its
//!   consumer again (after the cause was fixed). `200 {"outcome":"applied"}` removes it from
//!   the list; `409` with the new reason when it still fails (it stays listed); `404` for an
//!   unknown consumer or event id.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_runtime::events::consume::{Redriven, consumer_names, dead_letters, redrive};
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/dead-letters", get(list))
        .route(
            "/v1/admin/dead-letters/{consumer}/{event_id}/redrive",
            post(redrive_one),
        )
}

pub async fn list(
    Admin(_admin): Admin,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let mut consumers = Vec::new();
    for name in consumer_names(&state.runtime) {
        let letters = dead_letters(&state.runtime, &name).await?;
        consumers.push(json!({ "consumer": name, "dead_letters": letters }));
    }
    Ok(Json(json!({ "consumers": consumers })))
}

pub async fn redrive_one(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    Path((consumer, event_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    match redrive(&state.runtime, &consumer, &event_id).await? {
        Redriven::Applied => Ok(Json(json!({ "outcome": "applied", "event_id": event_id }))),
        Redriven::StillFailing(reason) => Err(ApiError::Conflict(format!(
            "{event_id} still cannot be applied by {consumer}: {reason}"
        ))),
        Redriven::NotFound => Err(ApiError::NotFound(format!(
            "no dead letter {event_id} for consumer {consumer}"
        ))),
        Redriven::UnknownConsumer => Err(ApiError::NotFound(format!(
            "no consumer {consumer} runs on this node"
        ))),
    }
}
