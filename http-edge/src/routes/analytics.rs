//! `GET /v1/admin/analytics/summary?window=1h|24h|7d` (admins only; `401`/`403` as every
//! admin route, decided before the query is read).
//!
//! - `window` is the last 60 minutes (`1h`), 24 hours (`24h`) or 7 days (`7d`), ending at
//!   the current minute; `24h` when absent. Any other value is `400`
//!   `/problems/invalid-parameter` with `"field": "window"`.
//! - The body: orders placed, revenue and average order value per currency, orders paid,
//!   cancelled and refunded, carts abandoned, the funnel (carts created → checkouts
//!   started → orders paid) overall and per experiment variant, the top products by units,
//!   and the SKUs that reported low stock in the window with their latest availability.
//!   Counts come from the domain events as the analytics consumer has applied them, so
//!   they trail the shop by the event pipeline's lag.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use emporium_actors::analytics::{self, Window};
use serde::Deserialize;

use crate::auth::Admin;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::AnalyticsSummaryJson;

/// The window when the query names none.
const DEFAULT_WINDOW: Window = Window::Day;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/analytics/summary", get(summary))
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    window: Option<String>,
}

pub async fn summary(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Response, ApiError> {
    let window = match query.window.as_deref() {
        Some(text) => Window::parse(text)?,
        None => DEFAULT_WINDOW,
    };
    let now_ms = state.runtime.clock().now_ms();
    let summary = analytics::summary(&state.runtime, window, now_ms).await?;
    Ok(Json(AnalyticsSummaryJson::from(&summary)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use emporium_actors::analytics::{AnalyticsActor, AnalyticsCommand, HourBucket};
    use emporium_actors::events::{DomainEnvelope, DomainEvent, EventLine, Variants};
    use emporium_runtime::events::{Event, EventSource};
    use serde_json::json;

    use crate::testing::{TestApp, admin_token, customer_token};

    #[tokio::test]
    async fn admins_get_the_summary_of_a_window() {
        let app = TestApp::new().await;
        let admin = admin_token(&app.state);
        for window in ["1h", "24h", "7d"] {
            let uri = format!("/v1/admin/analytics/summary?window={window}");
            let (status, _, body) = app.get(&uri, Some(&admin)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["window"], window);
            assert_eq!(body["orders_placed"], 0);
            assert_eq!(body["funnel"]["carts_created"], 0);
            assert!(body["top_products"].as_array().unwrap().is_empty());
        }
        let (status, _, body) = app.get("/v1/admin/analytics/summary", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["window"], "24h", "the default window");
    }

    #[tokio::test]
    async fn the_summary_shows_what_the_buckets_applied() {
        let app = TestApp::new().await;
        let now = app.state.runtime.clock().now_ms();
        let variants: Variants = [("button".to_owned(), "green".to_owned())].into();
        let events = vec![
            event(
                "cart:c-1:1:0",
                now,
                DomainEvent::CartCreated {
                    cart_id: "c-1".to_owned(),
                    user_id: None,
                    variants: variants.clone(),
                },
            ),
            event(
                "order:o-1:1:0",
                now,
                DomainEvent::OrderPlaced {
                    order_id: "o-1".to_owned(),
                    user_id: "u-1".to_owned(),
                    lines: vec![EventLine {
                        sku: "MUG".to_owned(),
                        quantity: 2,
                        unit_price_cents: 500,
                    }],
                    subtotal_cents: 1_000,
                    shipping_cents: 500,
                    total_cents: 1_500,
                    currency: "EUR".to_owned(),
                    variants,
                },
            ),
        ];
        let bucket = HourBucket::of_ms(now).to_string();
        app.state
            .runtime
            .actor::<AnalyticsActor>(bucket)
            .ask(AnalyticsCommand::Apply(events))
            .await
            .unwrap();
        let admin = admin_token(&app.state);
        let (status, _, body) = app
            .get("/v1/admin/analytics/summary?window=1h", Some(&admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["orders_placed"], 1);
        assert_eq!(body["revenue_cents"]["EUR"], 1_500);
        assert_eq!(body["average_order_value_cents"]["EUR"], 1_500);
        assert_eq!(body["funnel"]["carts_created"], 1);
        assert_eq!(body["variants"]["button"]["green"]["carts_created"], 1);
        assert_eq!(
            body["top_products"],
            json!([{"sku": "MUG", "units": 2, "revenue_cents": {"EUR": 1_000}}])
        );
    }

    fn event(id: &str, time: u64, event: DomainEvent) -> DomainEnvelope {
        DomainEnvelope {
            id: id.to_owned(),
            source: EventSource {
                kind: "test".to_owned(),
                key: "k".to_owned(),
            },
            version: 1,
            time,
            schema: DomainEvent::SCHEMA,
            event,
        }
    }

    #[tokio::test]
    async fn a_bad_window_is_a_problem_naming_the_parameter() {
        let app = TestApp::new().await;
        let admin = admin_token(&app.state);
        let (status, headers, body) = app
            .get("/v1/admin/analytics/summary?window=3h", Some(&admin))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], crate::PROBLEM_JSON);
        assert_eq!(body["field"], "window");
        assert_eq!(body["type"], "/problems/invalid-parameter");
        assert!(body["detail"].as_str().unwrap().contains("3h"), "{body}");
    }

    #[tokio::test]
    async fn only_admins_may_read_it() {
        let app = TestApp::new().await;
        let uri = "/v1/admin/analytics/summary?window=1h";
        assert_eq!(app.get(uri, None).await.0, StatusCode::UNAUTHORIZED);
        let customer = customer_token(&app.state, "u-1");
        assert_eq!(app.get(uri, Some(&customer)).await.0, StatusCode::FORBIDDEN);
        // Decided before the query: a bad window from a customer is still 403.
        let bad = "/v1/admin/analytics/summary?window=3h";
        assert_eq!(app.get(bad, Some(&customer)).await.0, StatusCode::FORBIDDEN);
    }
}
