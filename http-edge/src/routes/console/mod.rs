//! The cluster admin console at `/console`: server-rendered HTML, made live with htmx and
//! its SSE extension (both embedded in the binary, see [`assets`]). The Rust side renders
//! every fragment from the runtime's status types, so there is no JSON contract between a
//! front end and the server to keep in step, and no front-end build.
//!
//! Routes (every one answers HTML):
//!
//! - `GET /console`: the dashboard, or the login form without a valid session ([`login`]);
//!   `POST /console/login`, `POST /console/logout`.
//! - `GET /console/stream`: server-sent events carrying the dashboard's fragments ([`stream`]).
//! - `POST /console/nodes/{node}/drain`, `POST /console/actors/passivate`,
//!   `GET /console/actors/lookup`: actions answering fragments ([`actions`]).
//! - `GET /console/assets/{name}`: the embedded scripts and stylesheet ([`assets`]).
//!
//! Access: an admin's session cookie on every route but the login form and the assets;
//! actions also need the `HX-Request` header (CSRF, see [`session`]). Without a session,
//! fragments and the stream are `401` (with `HX-Redirect: /console`). Bad input is a `4xx`
//! fragment naming the field; nothing here panics on input.

mod actions;
mod assets;
mod charts;
mod fragments;
mod html;
mod login;
mod page;
mod session;
mod stream;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(login::index))
        .route("/console/login", post(login::login))
        .route("/console/logout", post(login::logout))
        .route("/console/stream", get(stream::stream))
        .route("/console/nodes/{node}/drain", post(actions::drain))
        .route("/console/actors/passivate", post(actions::passivate))
        .route("/console/actors/lookup", get(actions::lookup))
        .route("/console/assets/{name}", get(assets::serve))
}

#[cfg(test)]
mod tests;
