//! The cart API: create, read, add, set quantity, remove. Each change answers with the
//! whole cart.
//!
//! Ownership: a guest cart (no owner) is open to anyone holding its id. A user's cart is
//! open to its owner and to admins only: `401` without a token, `403` with another user's.
//! `POST /v1/carts` with a bearer token answers the caller's own cart: `201` when this
//! call created it, `200` when it already existed; without a token it makes a guest cart.
//!
//! One ask per request: the caller travels in the command ([`CartCommand::AsCaller`]) and
//! the cart checks ownership in the turn that runs it, so a request for a cart on another
//! node crosses the cluster once. (The edge used to read the cart first to check its
//! owner, which made every write two asks, and two hops when forwarded.) The order of the
//! answers is unchanged: a cart's refusal (404, 401, 403) comes before a bad SKU or
//! quantity, so input that does not parse asks the cart first (a read), only then answers
//! the validation error.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use emporium_actors::{
    CartActor, CartCaller, CartCommand, CartId, CartRejection, CartView, Quantity, Sku, Users,
};

use crate::auth::{Caller, Claims};
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{AddItemRequest, CartJson, SetQuantityRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/carts", post(create))
        .route("/v1/carts/{id}", get(read))
        .route("/v1/carts/{id}/items", post(add_item))
        .route(
            "/v1/carts/{id}/items/{sku}",
            put(set_quantity).delete(remove_item),
        )
}

pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let (cart, status) = match caller {
        Some(claims) => {
            let opened = Users::new(state.runtime.clone())
                .open_cart(&claims.sub, None)
                .await?
                .ok_or_else(|| {
                    ApiError::Unauthorized("the token's account does not exist".to_owned())
                })?;
            let status = if opened.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (opened.cart, status)
        }
        None => {
            let id = CartId::generate();
            let command = CartCommand::Create { owner: None };
            (ask(&state, &id, command).await?, StatusCode::CREATED)
        }
    };
    let location = format!("/v1/carts/{}", cart.id);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(CartJson::from(&cart)),
    )
        .into_response())
}

pub async fn read(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    let caller = cart_caller(caller.as_ref());
    respond(ask(&state, &id, CartCommand::Get.as_caller(caller)).await?)
}

pub async fn add_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddItemRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    let caller = cart_caller(caller.as_ref());
    let line = Sku::parse(&request.sku)
        .map_err(ApiError::from)
        .and_then(|sku| Ok((sku, Quantity::new(request.quantity)?)));
    let (sku, quantity) = cart_first(&state, &caller, &id, line).await?;
    let command = CartCommand::AddItem { sku, quantity };
    respond(ask(&state, &id, command.as_caller(caller)).await?)
}

pub async fn set_quantity(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, sku)): Path<(String, String)>,
    ApiJson(request): ApiJson<SetQuantityRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    let caller = cart_caller(caller.as_ref());
    // 0 removes the line; negatives and values over the line limit are refused.
    let line = line_sku(&sku).and_then(|sku| match request.quantity {
        0 => Ok((sku, 0)),
        units => Ok((sku, Quantity::new(units)?.get())),
    });
    let (sku, quantity) = cart_first(&state, &caller, &id, line).await?;
    let command = CartCommand::SetQuantity { sku, quantity };
    respond(ask(&state, &id, command.as_caller(caller)).await?)
}

pub async fn remove_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    let caller = cart_caller(caller.as_ref());
    let sku = cart_first(&state, &caller, &id, line_sku(&sku)).await?;
    let command = CartCommand::RemoveItem { sku };
    respond(ask(&state, &id, command.as_caller(caller)).await?)
}

/// An id that cannot be a cart's is answered like an unknown cart.
fn cart_id(text: &str) -> Result<CartId, ApiError> {
    CartId::parse(text).map_err(|_| ApiError::Cart(CartRejection::NotFound))
}

fn line_sku(text: &str) -> Result<Sku, ApiError> {
    Sku::parse(text).map_err(|_| ApiError::NotFound(format!("sku {text} is not in the cart")))
}

/// The caller as the cart judges it: a verified token's account and admin role, or nobody.
fn cart_caller(claims: Option<&Claims>) -> CartCaller {
    claims.map_or_else(CartCaller::anonymous, |claims| {
        CartCaller::account(claims.sub.clone(), claims.is_admin())
    })
}

/// `parsed` input, or its error only after the cart's own refusal: an unknown cart, or one
/// the caller may not use, is answered as such whatever the input (the answers' order of
/// old). Costs a read only for input that does not parse.
async fn cart_first<T>(
    state: &AppState,
    caller: &CartCaller,
    id: &CartId,
    parsed: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match parsed {
        Ok(value) => Ok(value),
        Err(invalid) => {
            ask(state, id, CartCommand::Get.as_caller(caller.clone())).await?;
            Err(invalid)
        }
    }
}

async fn ask(state: &AppState, id: &CartId, command: CartCommand) -> Result<CartView, ApiError> {
    let reply = state
        .runtime
        .actor::<CartActor>(id.as_str())
        .ask(command)
        .await?;
    Ok(reply?)
}

fn respond(cart: CartView) -> Result<Response, ApiError> {
    Ok(Json(CartJson::from(&cart)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request, header};

    use super::*;
    use crate::testing::{TestApp, admin_token, customer_token};

    /// `method path` with an optional JSON body and token: status, content type, body.
    async fn call(
        app: &TestApp,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_owned())
            }
            None => Body::empty(),
        };
        let (status, headers, text) = app.send(request.body(body).unwrap()).await;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, text)
    }

    #[tokio::test]
    async fn an_owned_cart_answers_its_owner_and_admins_only_and_refusals_come_first() {
        let app = TestApp::new().await;
        let id = CartId::generate();
        app.state
            .runtime
            .actor::<CartActor>(id.as_str())
            .ask(CartCommand::Create {
                owner: Some("u-1".to_owned()),
            })
            .await
            .unwrap()
            .unwrap();
        let owner = customer_token(&app.state, "u-1");
        let other = customer_token(&app.state, "u-2");
        let admin = admin_token(&app.state);
        let cart = format!("/v1/carts/{id}");
        let items = format!("{cart}/items");
        let line = format!("{cart}/items/SKU-MUG");
        let bad_line = format!("{cart}/items/not%20a%20sku");
        let routes = [
            (Method::GET, cart.as_str(), None),
            (
                Method::POST,
                items.as_str(),
                Some(r#"{"sku":"SKU-MUG","quantity":1}"#),
            ),
            // Input that does not parse: the cart's refusal still comes first.
            (
                Method::POST,
                items.as_str(),
                Some(r#"{"sku":"bad sku","quantity":1}"#),
            ),
            (Method::PUT, line.as_str(), Some(r#"{"quantity":5}"#)),
            (Method::PUT, line.as_str(), Some(r#"{"quantity":-1}"#)),
            (Method::DELETE, line.as_str(), None),
            (Method::DELETE, bad_line.as_str(), None),
        ];
        for (method, path, body) in &routes {
            let (status, content_type, text) = call(&app, method.clone(), path, None, *body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {body:?}: {text}"
            );
            assert_eq!(content_type, crate::PROBLEM_JSON);
            assert!(text.contains("send that user's bearer token"), "{text}");
            let (status, content_type, text) =
                call(&app, method.clone(), path, Some(&other), *body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} {body:?}: {text}"
            );
            assert_eq!(content_type, crate::PROBLEM_JSON);
            assert!(text.contains("this cart belongs to another user"), "{text}");
        }
        for token in [&owner, &admin] {
            let (status, _, text) = call(&app, Method::GET, &cart, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            // The owner's bad input is answered as such.
            let bad = Some(r#"{"sku":"bad sku","quantity":1}"#);
            let (status, _, _) = call(&app, Method::POST, &items, Some(token), bad).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            let (status, _, _) = call(&app, Method::DELETE, &bad_line, Some(token), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        // An unknown cart is not found, whoever asks and whatever the input.
        let unknown = format!("/v1/carts/{}/items", CartId::generate());
        let bad = Some(r#"{"sku":"bad sku","quantity":1}"#);
        let (status, _, text) = call(&app, Method::POST, &unknown, Some(&other), bad).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
        assert!(text.contains("cart-not-found"), "{text}");
    }
}
