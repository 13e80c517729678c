//! Cart: a guest creates a cart, adds two items, changes a quantity, removes one, and reads
//! the cart back: exactly the line left, at its catalog price, and a subtotal that adds up.

use std::sync::Arc;

use goose::prelude::*;
use serde_json::json;

use super::{arrive, pick, step};
use crate::http::{Call, send};
use crate::session::{GuestCart, Line, shopper};
use crate::shop::Shop;
use crate::wire;

pub fn scenario(shop: &Arc<Shop>) -> Result<Scenario, GooseError> {
    Ok(scenario!("Cart")
        .register_transaction(step!("arrive", arrive, shop).set_on_start())
        .register_transaction(step!("create a cart", create_cart, shop))
        .register_transaction(step!("add two items", add_two_items, shop))
        .register_transaction(step!("change a quantity", change_quantity, shop))
        .register_transaction(step!("remove an item", remove_item, shop))
        .register_transaction(step!("read the cart back", read_cart_back, shop)))
}

/// The whole flow as one visit (the Storefront's).
pub async fn visit(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    create_cart(user, shop).await?;
    add_two_items(user, shop).await?;
    change_quantity(user, shop).await?;
    remove_item(user, shop).await?;
    read_cart_back(user, shop).await
}

/// A new guest cart: `201`, empty.
pub async fn create_cart(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    shopper(user).cart = None;
    let answer = send(user, Call::post("/v1/carts".into(), "cart: create", 201)).await?;
    let cart = wire::cart(answer.body(), None).and_then(|cart| {
        wire::cart_lines(&cart, &[])?;
        Ok(cart)
    });
    let cart = answer.check(user, cart)?;
    shopper(user).cart = Some(GuestCart {
        id: cart.id,
        lines: Vec::new(),
    });
    Ok(())
}

/// Two different products: one of the first, two of the second.
pub async fn add_two_items(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    let Some(mut cart) = shopper(user).cart.take() else {
        return Ok(());
    };
    let first = pick(shop.products.len());
    let second = (first + 1 + pick(shop.products.len() - 1)) % shop.products.len();
    for (index, quantity) in [(first, 1), (second, 2)] {
        let product = &shop.products[index];
        cart.lines
            .push((product.sku.clone(), quantity, product.price_cents));
        let path = format!("/v1/carts/{}/items", cart.id);
        let body = json!({"sku": product.sku, "quantity": quantity});
        let call = Call::post(path, "cart: add item", 200).json(body);
        answer_holds(user, call, &cart).await?;
    }
    shopper(user).cart = Some(cart);
    Ok(())
}

/// The first line's quantity set to 3.
pub async fn change_quantity(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(mut cart) = shopper(user).cart.take() else {
        return Ok(());
    };
    let Some(line) = cart.lines.first_mut() else {
        return Ok(());
    };
    line.1 = 3;
    let path = format!("/v1/carts/{}/items/{}", cart.id, line.0);
    let call = Call::put(path, "cart: change quantity").json(json!({"quantity": 3}));
    answer_holds(user, call, &cart).await?;
    shopper(user).cart = Some(cart);
    Ok(())
}

/// The last line removed.
pub async fn remove_item(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(mut cart) = shopper(user).cart.take() else {
        return Ok(());
    };
    let Some((sku, _, _)) = cart.lines.pop() else {
        return Ok(());
    };
    let path = format!("/v1/carts/{}/items/{sku}", cart.id);
    answer_holds(user, Call::delete(path, "cart: remove item"), &cart).await?;
    shopper(user).cart = Some(cart);
    Ok(())
}

/// The cart as stored: exactly the lines expected.
pub async fn read_cart_back(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(cart) = shopper(user).cart.take() else {
        return Ok(());
    };
    let path = format!("/v1/carts/{}", cart.id);
    answer_holds(user, Call::get(path, "cart: read back"), &cart).await
}

/// Sends `call`, whose answer must be `cart` holding exactly its expected lines.
async fn answer_holds(user: &mut GooseUser, call: Call<'_>, cart: &GuestCart) -> TransactionResult {
    let answer = send(user, call).await?;
    let expected = expected(&cart.lines);
    let holds = wire::cart(answer.body(), Some(&cart.id))
        .and_then(|answered| wire::cart_lines(&answered, &expected));
    answer.check(user, holds)
}

/// The expected lines as the checks take them.
pub fn expected(lines: &[Line]) -> Vec<(&str, u32, i64)> {
    lines.iter().map(|(s, q, p)| (s.as_str(), *q, *p)).collect()
}
