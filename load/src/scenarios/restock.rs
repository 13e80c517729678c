//! Restock: the admin sets the stock of a SKU in a warehouse and reads the stock back.
//!
//! Each goose user restocks its own warehouse (`restock-<user>`), going through the catalog
//! in turn, so that two restockers never race on one value. Checkouts may sell from that
//! warehouse between the write and the read, so the read must show the warehouse with at
//! most what was set, never more.

use std::sync::Arc;

use goose::prelude::*;
use serde_json::json;

use super::{arrive, pick, step};
use crate::http::{Call, send};
use crate::session::{Restock, shopper};
use crate::shop::{Admin, Shop};
use crate::wire;

/// Units a restock sets: from `RESTOCK_MIN` to `RESTOCK_MIN + RESTOCK_SPREAD - 1`.
const RESTOCK_MIN: u64 = 100;
const RESTOCK_SPREAD: usize = 900;

pub fn scenario(shop: &Arc<Shop>, admin: &Arc<Admin>) -> Result<Scenario, GooseError> {
    Ok(scenario!("Restock")
        .register_transaction(step!("arrive", arrive, shop).set_on_start())
        .register_transaction(step!("restock a SKU", restock_sku, shop, admin))
        .register_transaction(step!("read the stock back", read_stock_back, shop)))
}

/// The whole flow as one visit (the Storefront's).
pub async fn visit(user: &mut GooseUser, shop: &Shop, admin: &Admin) -> TransactionResult {
    restock_sku(user, shop, admin).await?;
    read_stock_back(user, shop).await
}

/// Sets this user's warehouse of the next SKU to a new quantity: the answer shows it.
pub async fn restock_sku(user: &mut GooseUser, shop: &Shop, admin: &Admin) -> TransactionResult {
    let session = shopper(user);
    session.restock = None;
    let turn = session.restocks;
    session.restocks += 1;
    let Some(product) = shop.products.get(turn % shop.products.len().max(1)) else {
        return Ok(());
    };
    let restock = Restock {
        sku: product.sku.clone(),
        warehouse: format!("restock-{}", user.weighted_users_index),
        on_hand: RESTOCK_MIN + pick(RESTOCK_SPREAD) as u64,
    };
    let token = admin.token(user).await?;
    let path = format!("/v1/admin/inventory/{}", restock.sku);
    let body = json!({"warehouse": restock.warehouse, "on_hand": restock.on_hand});
    let call = Call::put(path, "restock: set stock")
        .json(body)
        .bearer(&token);
    let answer = send(user, call).await?;
    let stock = wire::restocked(
        answer.body(),
        &restock.sku,
        &restock.warehouse,
        restock.on_hand,
    );
    answer.check(user, stock)?;
    shopper(user).restock = Some(restock);
    Ok(())
}

/// The SKU's public stock: it adds up and shows the restocked warehouse.
pub async fn read_stock_back(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(restock) = shopper(user).restock.take() else {
        return Ok(());
    };
    let path = format!("/v1/inventory/{}", restock.sku);
    let answer = send(user, Call::get(path, "restock: read stock")).await?;
    let stock = wire::stock_after_restock(
        answer.body(),
        &restock.sku,
        &restock.warehouse,
        restock.on_hand,
    );
    answer.check(user, stock).map(drop)
}
