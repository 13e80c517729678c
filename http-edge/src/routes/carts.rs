//! The cart API: create, read, add, set quantity, remove. Each change answers with the
//! whole cart.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use emporium_actors::{CartActor, CartCommand, CartId, CartRejection, CartView, Quantity, Sku};

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

pub async fn create(State(state): State<AppState>) -> Result<Response, ApiError> {
    let id = CartId::generate();
    let cart = ask(&state, &id, CartCommand::Create { owner: None }).await?;
    let location = format!("/v1/carts/{}", cart.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CartJson::from(&cart)),
    )
        .into_response())
}

pub async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    respond(ask(&state, &id, CartCommand::Get).await?)
}

pub async fn add_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddItemRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
    let sku = Sku::parse(&request.sku)?;
    let quantity = Quantity::new(request.quantity)?;
    respond(ask(&state, &id, CartCommand::AddItem { sku, quantity }).await?)
}

pub async fn set_quantity(
    State(state): State<AppState>,
    Path((id, sku)): Path<(String, String)>,
    ApiJson(request): ApiJson<SetQuantityRequest>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
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
    Path((id, sku)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = cart_id(&id)?;
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
