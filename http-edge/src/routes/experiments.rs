//! `GET /v1/experiments/{name}/assignment`: the variant of experiment `name` for the
//! caller, `{"experiment", "variant", "key"}`.
//!
//! - The key is the signed-in user's id; without a token, the `key` query parameter
//!   (anonymous visitors send their cart id). A signed-in caller's `key` parameter is
//!   ignored, so a user sees the variant their funnel events are counted under.
//! - No key (absent or empty) or a key over 128 bytes is `400`
//!   `/problems/invalid-parameter` with `"field": "key"`; an experiment that is not
//!   configured is `404`.
//! - The assignment is a pure function of name and key: the same on every node and after
//!   every restart, and nothing is stored.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::AssignmentJson;

/// The longest key accepted (user and cart ids are far shorter).
const MAX_KEY_BYTES: usize = 128;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/experiments/{name}/assignment", get(assignment))
}

#[derive(Deserialize)]
pub struct AssignmentQuery {
    key: Option<String>,
}

pub async fn assignment(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<AssignmentQuery>,
) -> Result<Response, ApiError> {
    let experiment = state
        .experiments
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("there is no experiment {name:?}")))?;
    let key = match caller {
        Some(claims) => claims.sub,
        None => anonymous_key(query.key)?,
    };
    let variant = experiment.assign(&name, &key);
    Ok(Json(AssignmentJson {
        experiment: &name,
        variant,
        key: &key,
    })
    .into_response())
}

/// The `key` parameter of an anonymous caller.
fn anonymous_key(key: Option<String>) -> Result<String, ApiError> {
    let bad = |detail: &str| ApiError::BadParameter {
        field: "key",
        detail: format!("key: {detail}"),
    };
    match key {
        None => Err(bad("sign in, or send ?key= (your cart id)")),
        Some(key) if key.is_empty() => Err(bad("must not be empty")),
        Some(key) if key.len() > MAX_KEY_BYTES => {
            Err(bad(&format!("at most {MAX_KEY_BYTES} bytes")))
        }
        Some(key) => Ok(key),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use emporium_actors::experiments::Experiments;

    use crate::testing::{TestApp, customer_token};

    async fn app() -> TestApp {
        TestApp::with_experiments(Experiments::parse("button=control,green").unwrap()).await
    }

    #[tokio::test]
    async fn an_anonymous_visitor_is_assigned_by_the_key_it_sends() {
        let app = app().await;
        let experiments = app.state.experiments.clone();
        let expected = experiments
            .get("button")
            .unwrap()
            .assign("button", "cart-7");
        let (status, _, body) = app
            .get("/v1/experiments/button/assignment?key=cart-7", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["experiment"], "button");
        assert_eq!(body["key"], "cart-7");
        assert_eq!(body["variant"], expected);
        // Stable: asked again, the same variant.
        let (_, _, again) = app
            .get("/v1/experiments/button/assignment?key=cart-7", None)
            .await;
        assert_eq!(again, body);
    }

    #[tokio::test]
    async fn a_signed_in_user_is_assigned_by_their_id() {
        let app = app().await;
        let token = customer_token(&app.state, "user-42");
        let (status, _, body) = app
            .get("/v1/experiments/button/assignment?key=cart-7", Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["key"], "user-42");
        let expected = app
            .state
            .experiments
            .get("button")
            .unwrap()
            .assign("button", "user-42");
        assert_eq!(body["variant"], expected);
    }

    #[tokio::test]
    async fn no_key_is_400_and_an_unknown_experiment_404() {
        let app = app().await;
        for uri in [
            "/v1/experiments/button/assignment",
            "/v1/experiments/button/assignment?key=",
        ] {
            let (status, headers, body) = app.get(uri, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(headers["content-type"], crate::PROBLEM_JSON);
            assert_eq!(body["field"], "key");
        }
        let long = format!("/v1/experiments/button/assignment?key={}", "k".repeat(129));
        assert_eq!(app.get(&long, None).await.0, StatusCode::BAD_REQUEST);
        let (status, headers, _) = app
            .get("/v1/experiments/nope/assignment?key=cart-7", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], crate::PROBLEM_JSON);
    }
}
