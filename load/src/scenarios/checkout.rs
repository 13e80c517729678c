//! Checkout: a customer signs up (a fresh e-mail per goose user) and logs in once, then on
//! every iteration fills their cart, checks out with the test card and a fresh
//! `Idempotency-Key`, and reads the order back: paid, with the lines bought and totals that
//! add up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::{Value, json};

use super::cart::expected;
use super::{arrive, pick, step};
use crate::http::{Call, send};
use crate::session::{Customer, shopper};
use crate::shop::Shop;
use crate::wire;

/// The password of every load-test customer (each has its own e-mail).
const PASSWORD: &str = "load-test-password";
/// The test gateway's card that is always approved.
const TEST_CARD: &str = "tok_visa";
/// A customer logs in again after this: the node's tokens last an hour.
const RELOGIN_AFTER: Duration = Duration::from_secs(50 * 60);

pub fn scenario(shop: &Arc<Shop>) -> Result<Scenario, GooseError> {
    Ok(scenario!("Checkout")
        .register_transaction(step!("arrive", arrive, shop).set_on_start().set_sequence(1))
        .register_transaction(
            step!("sign up and log in", sign_up_and_log_in, shop)
                .set_on_start()
                .set_sequence(2),
        )
        .register_transaction(step!("fill the cart", fill_cart, shop))
        .register_transaction(step!("check out", check_out, shop))
        .register_transaction(step!("follow the order", follow_order, shop)))
}

/// The whole flow as one visit (the Storefront's): the account is made on the first one.
pub async fn visit(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    fill_cart(user, shop).await?;
    check_out(user, shop).await?;
    follow_order(user, shop).await
}

/// A new account (`201`, a customer) and its login (a token and the user's cart).
pub async fn sign_up_and_log_in(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    shopper(user).customer = None;
    let email = format!("load-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": PASSWORD, "name": "Load Shopper"});
    let call = Call::post("/v1/users".into(), "checkout: sign up", 201).json(body);
    let answer = send(user, call).await?;
    let account = wire::account(answer.body(), &email);
    answer.check(user, account)?;
    let mut customer = Customer {
        email,
        password: PASSWORD.to_owned(),
        token: String::new(),
        cart_id: String::new(),
        logged_in: Instant::now(),
        lines: Vec::new(),
        order: None,
    };
    log_in(user, &mut customer).await?;
    shopper(user).customer = Some(customer);
    Ok(())
}

async fn log_in(user: &mut GooseUser, customer: &mut Customer) -> TransactionResult {
    let body = json!({"email": customer.email, "password": customer.password});
    let call = Call::post("/v1/auth/login".into(), "checkout: log in", 200).json(body);
    let answer = send(user, call).await?;
    let login = wire::login(answer.body());
    let login = answer.check(user, login)?;
    customer.token = login.access_token;
    customer.cart_id = login.cart_id;
    customer.logged_in = Instant::now();
    Ok(())
}

/// The customer (signed up first if an earlier attempt failed), logged in again when the
/// token is about to expire. The account stays in the session whatever happens to a visit.
async fn customer(
    user: &mut GooseUser,
    shop: &Shop,
) -> Result<Option<Customer>, Box<TransactionError>> {
    if shopper(user).customer.is_none() {
        sign_up_and_log_in(user, shop).await?;
    }
    let Some(mut customer) = shopper(user).customer.clone() else {
        return Ok(None);
    };
    if customer.logged_in.elapsed() >= RELOGIN_AFTER {
        log_in(user, &mut customer).await?;
        if let Some(stored) = shopper(user).customer.as_mut() {
            stored.token.clone_from(&customer.token);
            stored.logged_in = customer.logged_in;
        }
    }
    Ok(Some(customer))
}

/// Opens the cart (emptying what an earlier failed visit left), then adds one of a stocked
/// product and two of another.
pub async fn fill_cart(user: &mut GooseUser, shop: &Shop) -> TransactionResult {
    let Some(customer) = customer(user, shop).await? else {
        return Ok(());
    };
    if let Some(stored) = shopper(user).customer.as_mut() {
        stored.lines.clear();
        stored.order = None;
    }
    let path = format!("/v1/carts/{}", customer.cart_id);
    let call = Call::get(path, "checkout: open cart").bearer(&customer.token);
    let answer = send(user, call).await?;
    let cart = wire::cart(answer.body(), Some(&customer.cart_id));
    let leftovers: Vec<String> = answer
        .check(user, cart)?
        .items
        .into_iter()
        .map(|l| l.sku)
        .collect();
    for sku in leftovers {
        let path = format!("/v1/carts/{}/items/{sku}", customer.cart_id);
        let call = Call::delete(path, "checkout: drop leftover").bearer(&customer.token);
        send(user, call).await?;
    }
    let stocked = shop.checkout_products();
    let first = pick(stocked.len());
    let second = (first + 1 + pick(stocked.len() - 1)) % stocked.len();
    let mut lines = Vec::new();
    for (index, quantity) in [(first, 1), (second, 2)] {
        let product = &stocked[index];
        lines.push((product.sku.clone(), quantity, product.price_cents));
        let path = format!("/v1/carts/{}/items", customer.cart_id);
        let body = json!({"sku": product.sku, "quantity": quantity});
        let call = Call::post(path, "checkout: add item", 200)
            .json(body)
            .bearer(&customer.token);
        let answer = send(user, call).await?;
        let expected = expected(&lines);
        let holds = wire::cart(answer.body(), Some(&customer.cart_id))
            .and_then(|cart| wire::cart_lines(&cart, &expected));
        answer.check(user, holds)?;
    }
    if let Some(stored) = shopper(user).customer.as_mut() {
        stored.lines = lines;
    }
    Ok(())
}

/// The checkout of the filled cart: `201` with a paid order of exactly its lines.
pub async fn check_out(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(stored) = shopper(user).customer.as_mut() else {
        return Ok(());
    };
    let lines = std::mem::take(&mut stored.lines);
    let (cart_id, token) = (stored.cart_id.clone(), stored.token.clone());
    if lines.is_empty() {
        return Ok(());
    }
    let path = format!("/v1/carts/{cart_id}/checkout");
    let call = Call::post(path, "checkout: check out", 201)
        .json(checkout_body())
        .bearer(&token)
        .idempotency_key(uuid::Uuid::new_v4().to_string());
    let answer = send(user, call).await?;
    let expected = expected(&lines);
    let order = wire::paid_order(answer.body(), &expected);
    let order = answer.check(user, order)?;
    if let Some(stored) = shopper(user).customer.as_mut() {
        stored.order = Some(order);
    }
    Ok(())
}

/// The order read back: the same id, status and total.
pub async fn follow_order(user: &mut GooseUser, _shop: &Shop) -> TransactionResult {
    let Some(stored) = shopper(user).customer.as_mut() else {
        return Ok(());
    };
    let Some(placed) = stored.order.take() else {
        return Ok(());
    };
    let token = stored.token.clone();
    let path = format!("/v1/orders/{}", placed.id);
    let call = Call::get(path, "checkout: read order").bearer(&token);
    let answer = send(user, call).await?;
    let same = wire::same_order(answer.body(), &placed);
    answer.check(user, same).map(drop)
}

fn checkout_body() -> Value {
    json!({
        "shipping_address": {
            "name": "Load Shopper",
            "line1": "1 Benchmark Way",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US"
        },
        "payment": {"token": TEST_CARD}
    })
}
