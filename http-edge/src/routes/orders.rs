//! Orders: `GET /v1/orders/{id}` and `POST /v1/orders/{id}/cancel` (the owner or an admin;
//! `401` without a token, `403` for another user), `GET /v1/users/me/orders`, and the admin
//! transitions `POST /v1/admin/orders/{id}/ship` and `/deliver`. A transition the order's
//! status does not allow is `409` (`/problems/invalid-transition`, with the current
//! `order_status`).
//!
//! `GET /v1/admin/payments/{reference}` shows the payment gateway's record of a payment
//! (status, amounts, the operations applied), for support and for tests.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_actors::order::{
    OrderActor, OrderCommand, OrderRejection, OrderView, UserOrdersActor, UserOrdersCommand,
};
use emporium_actors::payment::PaymentError;

use crate::auth::{Admin, Authenticated, Claims};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{OrderJson, OrderListJson, PaymentJson};

/// Most orders `GET /v1/users/me/orders` answers (the newest).
const MAX_LISTED: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders/{id}", get(read))
        .route("/v1/orders/{id}/cancel", post(cancel))
        .route("/v1/users/me/orders", get(mine))
        .route("/v1/admin/orders/{id}/ship", post(ship))
        .route("/v1/admin/orders/{id}/deliver", post(deliver))
        .route("/v1/admin/payments/{reference}", get(payment))
}

fn order_key(id: &str) -> Result<&str, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if ok {
        Ok(id)
    } else {
        Err(ApiError::Order(OrderRejection::NotFound))
    }
}

async fn ask(state: &AppState, id: &str, command: OrderCommand) -> Result<OrderView, ApiError> {
    let reply = state
        .runtime
        .actor::<OrderActor>(order_key(id)?)
        .ask(command)
        .await?;
    Ok(reply?)
}

/// The order, if `claims` may see it.
async fn owned(state: &AppState, claims: &Claims, id: &str) -> Result<OrderView, ApiError> {
    let order = ask(state, id, OrderCommand::Get).await?;
    if claims.may_access(&order.user_id) {
        Ok(order)
    } else {
        Err(ApiError::Forbidden(
            "this order belongs to another user".to_owned(),
        ))
    }
}

fn respond(order: &OrderView) -> Response {
    Json(OrderJson::from(order)).into_response()
}

pub async fn read(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(respond(&owned(&state, &claims, &id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &claims, &id).await?;
    let reason = if claims.is_admin() {
        format!("cancelled by admin {}", claims.sub)
    } else {
        "cancelled by the customer".to_owned()
    };
    Ok(respond(
        &ask(&state, &id, OrderCommand::Cancel { reason }).await?,
    ))
}

pub async fn mine(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    let ids = state
        .runtime
        .actor::<UserOrdersActor>(claims.sub.as_str())
        .ask(UserOrdersCommand::List)
        .await?;
    let total = ids.len();
    let mut orders = Vec::new();
    for id in ids.iter().rev().take(MAX_LISTED) {
        orders.push(ask(&state, id, OrderCommand::Get).await?);
    }
    Ok(Json(OrderListJson {
        items: orders.iter().map(OrderJson::from).collect(),
        total,
    })
    .into_response())
}

pub async fn ship(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(respond(&ask(&state, &id, OrderCommand::Ship).await?))
}

pub async fn deliver(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(respond(&ask(&state, &id, OrderCommand::Deliver).await?))
}

pub async fn payment(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let gateway = state.payments.gateway(&state.runtime);
    let record = gateway
        .retrieve(&reference)
        .await
        .map_err(|error| match error {
            PaymentError::Unavailable(reason) => {
                ApiError::Internal(format!("payment gateway unavailable: {reason}"))
            }
            PaymentError::Refused(reason) => ApiError::NotFound(reason),
        })?;
    match record {
        Some(record) => Ok(Json(PaymentJson::from(&record)).into_response()),
        None => Err(ApiError::NotFound(format!("unknown payment {reference}"))),
    }
}
