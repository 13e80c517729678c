//! Inventory: `PUT /v1/admin/inventory/{sku}` (admins set one warehouse's stock) and
//! `GET /v1/inventory/{sku}` (public: totals, per-warehouse stock, low-stock alerts).
//!
//! Setting `on_hand` below the units reserved in that warehouse is `409`
//! (`/problems/stock-reserved`, with `warehouse` and `reserved`): reserved units belong to
//! checkouts in flight. Stock can only be set for a SKU the catalog knows (`404` otherwise).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use emporium_actors::inventory::{
    InventoryActor, MAX_UNITS, StockCommand, StockReply, StockView, WarehouseId,
};
use emporium_actors::{InvalidValue, Sku};

use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{SetStockRequest, StockJson};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/inventory/{sku}", put(set_stock))
        .route("/v1/inventory/{sku}", get(read))
}

fn units(field: &'static str, value: i64) -> Result<u64, InvalidValue> {
    u64::try_from(value)
        .ok()
        .filter(|units| *units <= MAX_UNITS)
        .ok_or_else(|| InvalidValue {
            field,
            expected: format!("a whole number from 0 to {MAX_UNITS}"),
        })
}

pub async fn set_stock(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(sku): Path<String>,
    ApiJson(request): ApiJson<SetStockRequest>,
) -> Result<Response, ApiError> {
    let sku = Sku::parse(&sku)?;
    let warehouse = WarehouseId::parse(request.warehouse.as_deref().unwrap_or_default())?;
    let on_hand = units(
        "on_hand",
        request.on_hand.ok_or_else(|| InvalidValue {
            field: "on_hand",
            expected: format!("a whole number from 0 to {MAX_UNITS}"),
        })?,
    )?;
    let low_stock_threshold = request
        .low_stock_threshold
        .map(|threshold| units("low_stock_threshold", threshold))
        .transpose()?;
    if state.catalog.get(&sku).await?.is_none() {
        return Err(ApiError::NotFound(format!("unknown sku {sku}")));
    }
    let reply = state
        .runtime
        .actor::<InventoryActor>(sku.as_str())
        .ask(StockCommand::SetStock {
            warehouse,
            on_hand,
            low_stock_threshold,
        })
        .await?;
    match reply {
        StockReply::Set(result) => Ok(respond(&result?)),
        _ => Err(ApiError::Internal("unexpected inventory reply".to_owned())),
    }
}

pub async fn read(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::NotFound(format!("no stock recorded for sku {sku}"));
    let parsed = Sku::parse(&sku).map_err(|_| unknown())?;
    let reply = state
        .runtime
        .actor::<InventoryActor>(parsed.as_str())
        .ask(StockCommand::Get)
        .await?;
    match reply {
        StockReply::View(Some(view)) => Ok(respond(&view)),
        StockReply::View(None) => Err(unknown()),
        _ => Err(ApiError::Internal("unexpected inventory reply".to_owned())),
    }
}

fn respond(view: &StockView) -> Response {
    Json(StockJson::from(view)).into_response()
}
