//! Errors as RFC 7807 `application/problem+json`, mapped in one place.
//!
//! Every handler returns `Result<_, ApiError>`; [`ApiError`] turns into a [`Problem`] here
//! and nowhere else. [`problem_for_bare_errors`] also dresses the bodiless error responses
//! of the framework and its layers (unknown route, wrong method, body too large, timeout)
//! so that a client always gets the same shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emporium_actors::analytics::UnknownWindow;
use emporium_actors::checkout::{CheckoutFailure, CheckoutRejection};
use emporium_actors::inventory::StockRejection;
use emporium_actors::order::OrderRejection;
use emporium_actors::{CartRejection, CatalogError, InvalidValue, UserError};
use emporium_runtime::{OperationError, RuntimeError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying a `503`.
const RETRY_AFTER_SECS: &str = "1";

/// The problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Extension members (RFC 7807 §3.2), e.g. `skus` of an out-of-stock answer.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    /// Add an extension member.
    pub fn with(mut self, member: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(member.to_owned(), value.into());
        self
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: malformed JSON, a wrong type, a bad query string.
    #[error("{0}")]
    BadRequest(String),
    /// Unsupported media type.
    /// A query or path parameter that is missing or not one of the accepted values; the
    /// problem names it in `field`.
    #[error("{detail}")]
    BadParameter { field: &'static str, detail: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A well-formed request with a value outside what the domain accepts.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// No valid credentials: a missing, malformed, expired or revoked token.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the right to this resource.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// Over a rate limit or the login throttle; `Retry-After` says when to come back.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        /// At least 1.
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Cart(#[from] CartRejection),
    /// A checkout that did not place an order (the stored outcome of its saga).
    #[error(transparent)]
    Checkout(#[from] CheckoutFailure),
    #[error(transparent)]
    CheckoutKey(#[from] CheckoutRejection),
    #[error(transparent)]
    Stock(#[from] StockRejection),
    #[error(transparent)]
    Order(#[from] OrderRejection),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An operator's request that could not be carried out (admin routes).
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error("{0}")]
    Internal(String),
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Invalid(invalid) => Self::Invalid(invalid),
            CatalogError::Runtime(runtime) => Self::Runtime(runtime),
            CatalogError::Search(search) => Self::Internal(search.to_string()),
        }
    }
}

impl From<UnknownWindow> for ApiError {
    fn from(error: UnknownWindow) -> Self {
        Self::BadParameter {
            field: UnknownWindow::FIELD,
            detail: error.to_string(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::EmailTaken => Self::Conflict(error.to_string()),
            UserError::Runtime(runtime) => Self::Runtime(runtime),
            UserError::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl ApiError {
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::BadRequest(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
                detail.clone(),
            ),
            Self::BadParameter { field, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameter",
                "Invalid parameter",
                detail.clone(),
            )
            .with("field", *field),
            Self::UnsupportedMediaType(detail) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail.clone(),
            ),
            Self::PayloadTooLarge(detail) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                detail.clone(),
            ),
            Self::Invalid(invalid) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                invalid.to_string(),
            ),
            Self::Unauthorized(detail) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail.clone(),
            ),
            Self::Forbidden(detail) => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                detail.clone(),
            ),
            Self::Conflict(detail) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail.clone())
            }
            Self::TooManyRequests { detail, .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
                detail.clone(),
            ),
            Self::NotFound(detail) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                detail.clone(),
            ),
            Self::Cart(rejection) => cart_problem(rejection),
            Self::Checkout(failure) => checkout_problem(failure),
            Self::CheckoutKey(rejection) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                rejection.to_string(),
            ),
            Self::Stock(rejection) => stock_problem(rejection),
            Self::Order(rejection) => order_problem(rejection),
            Self::Runtime(error) => runtime_problem(error),
            Self::Operation(error) => operation_problem(error),
            Self::Internal(detail) => {
                tracing::error!(detail, "internal error");
                internal_problem()
            }
        }
    }
}

fn operation_problem(error: &OperationError) -> Problem {
    let detail = error.to_string();
    match error {
        OperationError::NotClustered => Problem::new(
            StatusCode::CONFLICT,
            "not-clustered",
            "Not a cluster",
            detail,
        ),
        OperationError::UnknownNode(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-node",
            "No such node",
            detail,
        ),
        OperationError::UnknownKind(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-kind",
            "No such actor kind",
            detail,
        ),
        OperationError::Refused(_) => Problem::new(
            StatusCode::CONFLICT,
            "operation-refused",
            "Operation refused",
            detail,
        ),
        OperationError::Unreachable { .. } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node-unreachable",
            "Node unreachable",
            detail,
        ),
        OperationError::Runtime(runtime) => runtime_problem(runtime),
    }
}

fn cart_problem(rejection: &CartRejection) -> Problem {
    let detail = rejection.to_string();
    match rejection {
        CartRejection::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "cart-not-found",
            "Cart not found",
            detail,
        ),
        CartRejection::UnknownSku(_) => {
            Problem::new(StatusCode::NOT_FOUND, "unknown-sku", "Unknown SKU", detail)
        }
        CartRejection::LineNotFound(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "line-not-found",
            "Item not in cart",
            detail,
        ),
        CartRejection::TooManyLines { .. } | CartRejection::QuantityTooLarge { .. } => {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cart-limit",
                "Cart limit exceeded",
                detail,
            )
        }
        CartRejection::NotYourCart => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
        }
        CartRejection::SignInRequired => Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        ),
        CartRejection::CheckoutInProgress => Problem::new(
            StatusCode::CONFLICT,
            "checkout-in-progress",
            "Checkout in progress",
            detail,
        ),
        CartRejection::CurrencyMismatch { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency-mismatch",
            "Currency mismatch",
            detail,
        ),
    }
}

/// Checkout outcomes other than an order. Payment problems are `402` and final for their
/// Idempotency-Key (a timeout was voided and compensated: retry with a new key).
fn checkout_problem(failure: &CheckoutFailure) -> Problem {
    let detail = failure.to_string();
    match failure {
        CheckoutFailure::CartNotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "cart-not-found",
            "Cart not found",
            detail,
        ),
        CheckoutFailure::NotYourCart => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
        }
        CheckoutFailure::CartBusy => Problem::new(
            StatusCode::CONFLICT,
            "checkout-in-progress",
            "Checkout in progress",
            detail,
        ),
        CheckoutFailure::EmptyCart => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty-cart",
            "Empty cart",
            detail,
        ),
        CheckoutFailure::NoShipping { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-shipping",
            "No shipping to this country",
            format!("shipping_address.country: {detail}"),
        ),
        CheckoutFailure::InsufficientStock { skus } => Problem::new(
            StatusCode::CONFLICT,
            "insufficient-stock",
            "Insufficient stock",
            detail,
        )
        .with("skus", skus.clone()),
        CheckoutFailure::PaymentDeclined { code, .. } => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
            detail,
        )
        .with("decline_code", code.clone()),
        CheckoutFailure::PaymentTimeout => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-timeout",
            "Payment not completed",
            detail,
        ),
        CheckoutFailure::Interrupted => Problem::new(
            StatusCode::CONFLICT,
            "checkout-interrupted",
            "Checkout interrupted",
            detail,
        ),
    }
}

fn stock_problem(rejection: &StockRejection) -> Problem {
    let detail = rejection.to_string();
    match rejection {
        StockRejection::BelowReserved {
            warehouse,
            reserved,
            ..
        } => Problem::new(
            StatusCode::CONFLICT,
            "stock-reserved",
            "Stock is reserved",
            detail,
        )
        .with("warehouse", warehouse.as_str())
        .with("reserved", *reserved),
        StockRejection::Insufficient { sku, .. } => Problem::new(
            StatusCode::CONFLICT,
            "insufficient-stock",
            "Insufficient stock",
            detail,
        )
        .with("skus", vec![sku.clone()]),
        StockRejection::TooMany { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            format!("on_hand: {detail}"),
        ),
        StockRejection::Closed { .. } | StockRejection::UnknownReservation { .. } => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
    }
}

fn order_problem(rejection: &OrderRejection) -> Problem {
    let detail = rejection.to_string();
    match rejection {
        OrderRejection::NotFound => Problem::new(
            StatusCode::NOT_FOUND,
            "order-not-found",
            "Order not found",
            detail,
        ),
        OrderRejection::InvalidTransition { from, .. } => Problem::new(
            StatusCode::CONFLICT,
            "invalid-transition",
            "Invalid order transition",
            detail,
        )
        .with("order_status", from.as_str()),
        OrderRejection::AlreadyExists(_) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
    }
}

/// The runtime's verdict, as the client gets it: **not applied** (503 with `Retry-After`:
/// safe to retry), **unknown** (504 `outcome-unknown`: read back before retrying), or a
/// failure (500). Applied changes are the handlers' 2xx answers.
fn runtime_problem(error: &RuntimeError) -> Problem {
    if error.is_outcome_unknown() {
        tracing::warn!(%error, "outcome unknown");
        return outcome_unknown_problem();
    }
    if error.is_unavailable() {
        tracing::warn!(%error, "service unavailable");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the request could not be completed now; retry after the delay in Retry-After",
        );
    }
    tracing::error!(%error, "runtime error");
    internal_problem()
}

fn outcome_unknown_problem() -> Problem {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "outcome-unknown",
        "Outcome unknown",
        "no answer came back in time; the change may or may not have been applied: read it back before retrying",
    )
}

fn internal_problem() -> Problem {
    // The detail never carries internals to the client; the log has them.
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the server failed to handle the request; it has been logged",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.to_problem().into_response();
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            // The real wait, not the generic 1 s of other 429/503 answers.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

/// Give error responses produced outside the handlers (routing, body limit, timeout) a
/// problem body. Responses that already are problems, HTML answers of the console (error
/// fragments htmx swaps in), and successes pass untouched.
pub fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.as_bytes());
    let is_problem = content_type == Some(PROBLEM_JSON.as_bytes());
    let is_html = content_type.is_some_and(|value| value.starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_html {
        return response;
    }
    if status == StatusCode::GATEWAY_TIMEOUT {
        // The request timeout fired while the handler ran: whatever it was doing may
        // have been applied.
        return outcome_unknown_problem().into_response();
    }
    let (slug, title, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "Not found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "Method not allowed",
            "this route does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "Payload too large",
            "the request body exceeds the limit",
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "Service unavailable",
            "the request did not complete in time; retry after the delay in Retry-After",
        ),
        _ => ("error", "Error", "the request failed"),
    };
    let status = if status == StatusCode::REQUEST_TIMEOUT {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    Problem::new(status, slug, title, detail).into_response()
}
