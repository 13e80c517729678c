//! The cart API: create, read, add, set quantity, remove. Each change answers with the
//! whole cart.
//!
//! Ownership: a guest cart (no owner) is open to anyone holding its id. A user's cart is
//! open to its owner and to admins only: `401` without a token, `403` with another user's.
//! `POST /v1/carts` with a bearer token answers the caller's own cart: `201` when this
//! call created it, `200` when it already existed; without a token it makes a guest cart.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use emporium_actors::{
    CartActor, CartCommand, CartId, CartRejection, CartView, Quantity, Sku, Users,
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
    respond(authorized(&state, caller.as_ref(), &id).await?)
}

pub async fn add_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddItemRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    authorized(&state, caller.as_ref(), &id).await?;
    let sku = Sku::parse(&request.sku)?;
    let quantity = Quantity::new(request.quantity)?;
    respond(ask(&state, &id, CartCommand::AddItem { sku, quantity }).await?)
}

pub async fn set_quantity(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, sku)): Path<(String, String)>,
    ApiJson(request): ApiJson<SetQuantityRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    authorized(&state, caller.as_ref(), &id).await?;
    let sku = line_sku(&sku)?;
    // 0 removes the line; negatives and values over the line limit are refused.
    let quantity = match request.quantity {
        0 => 0,
        units => Quantity::new(units)?.get(),
    };
    respond(ask(&state, &id, CartCommand::SetQuantity { sku, quantity }).await?)
}

pub async fn remove_item(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    authorized(&state, caller.as_ref(), &id).await?;
    let sku = line_sku(&sku)?;
    respond(ask(&state, &id, CartCommand::RemoveItem { sku }).await?)
}

/// An id that cannot be a cart's is answered like an unknown cart.
fn cart_id(text: &str) -> Result<CartId, ApiError> {
    CartId::parse(text).map_err(|_| ApiError::Cart(CartRejection::NotFound))
}

fn line_sku(text: &str) -> Result<Sku, ApiError> {
    Sku::parse(text).map_err(|_| ApiError::NotFound(format!("sku {text} is not in the cart")))
}

/// The cart, when `caller` may use it: a guest cart is open to anyone with its id, an owned
/// cart to its owner and admins. An owner never changes once a cart exists, so checking
/// before the command is enough.
async fn authorized(
    state: &AppState,
    caller: Option<&Claims>,
    id: &CartId,
) -> Result<CartView, ApiError> {
    let cart = ask(state, id, CartCommand::Get).await?;
    match (cart.owner.as_deref(), caller) {
        (None, _) => Ok(cart),
        (Some(_), None) => Err(ApiError::Unauthorized(
            "this cart belongs to a user: send that user's bearer token".to_owned(),
        )),
        (Some(owner), Some(claims)) if claims.may_access(owner) => Ok(cart),
        (Some(_), Some(_)) => Err(ApiError::Forbidden(
            "this cart belongs to another user".to_owned(),
        )),
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
