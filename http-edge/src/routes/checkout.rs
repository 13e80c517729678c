//! `POST /v1/carts/{id}/checkout`: turn the caller's cart into an order.
//!
//! Needs a bearer token, an `Idempotency-Key` header (`400` naming it when missing) and
//! `{"shipping_address": {"name", "line1", "city", "postal_code", "country"},
//! "payment": {"token"}}` (`422` naming the first bad or missing field). The saga runs in a
//! `checkout` actor keyed by `{user_id}:{Idempotency-Key}` (see
//! `emporium_actors::checkout`): `201` with the order and `Location: /v1/orders/{id}`, or a
//! problem (`402` payment declined or not completed, `409` insufficient stock naming the
//! SKUs, ...). A retry with the same key and body answers exactly the first outcome; the
//! same key with another body is `422`. Answers are counted in `emporium_checkouts_total`
//! by `outcome` (`placed`, `insufficient_stock`, `payment_declined`, ...).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use emporium_actors::CartId;
use emporium_actors::checkout::{
    CheckoutActor, CheckoutCommand, CheckoutFailure, CheckoutOutcome, CheckoutRequest,
    IdempotencyKey, PaymentToken, checkout_key,
};
use emporium_actors::shipping::ShippingAddress;

use crate::auth::Authenticated;
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{CheckoutRequestJson, OrderJson};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/carts/{id}/checkout", post(checkout))
}

pub async fn checkout(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CheckoutRequestJson>,
) -> Result<Response, ApiError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => {
            return Err(ApiError::BadRequest(
                "the Idempotency-Key header is required: a unique value (e.g. a UUID) per checkout, reused only to retry it".to_owned(),
            ));
        }
        Some(value) => IdempotencyKey::parse(value.to_str().unwrap_or_default())
            .map_err(|invalid| ApiError::BadRequest(invalid.to_string()))?,
    };
    let cart_id =
        CartId::parse(&id).map_err(|_| ApiError::NotFound("cart not found".to_owned()))?;
    let address = request.shipping_address.unwrap_or_default();
    let shipping_address = ShippingAddress::parse(
        address.name.as_deref(),
        address.line1.as_deref(),
        address.city.as_deref(),
        address.postal_code.as_deref(),
        address.country.as_deref(),
    )?;
    let token = PaymentToken::parse(request.payment.unwrap_or_default().token.as_deref())?;
    let request = CheckoutRequest {
        user_id: claims.sub.clone(),
        cart_id,
        shipping_address,
        token,
    };
    let outcome = state
        .runtime
        .actor::<CheckoutActor>(checkout_key(&claims.sub, &key))
        .ask(CheckoutCommand::Run(Box::new(request)))
        .await??;
    let label = match &outcome {
        CheckoutOutcome::Placed { .. } => "placed",
        CheckoutOutcome::Failed { failure } => failure_label(failure),
    };
    metrics::counter!("emporium_checkouts_total", "outcome" => label).increment(1);
    match outcome {
        CheckoutOutcome::Placed { order } => {
            let location = format!("/v1/orders/{}", order.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(OrderJson::from(order.as_ref())),
            )
                .into_response())
        }
        CheckoutOutcome::Failed { failure } => Err(ApiError::Checkout(failure)),
    }
}

/// The `outcome` label of `emporium_checkouts_total` (retries count again).
fn failure_label(failure: &CheckoutFailure) -> &'static str {
    match failure {
        CheckoutFailure::CartNotFound => "cart_not_found",
        CheckoutFailure::NotYourCart => "not_your_cart",
        CheckoutFailure::CartBusy => "cart_busy",
        CheckoutFailure::EmptyCart => "empty_cart",
        CheckoutFailure::NoShipping { .. } => "no_shipping",
        CheckoutFailure::InsufficientStock { .. } => "insufficient_stock",
        CheckoutFailure::PaymentDeclined { .. } => "payment_declined",
        CheckoutFailure::PaymentTimeout => "payment_timeout",
        CheckoutFailure::Interrupted => "interrupted",
    }
}
