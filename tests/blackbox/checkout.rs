//! Inventory, the checkout saga, payments and orders against real nodes: the happy path
//! and the order lifecycle, every authorization rule, declined and timed-out payments, 50
//! buyers racing for 10 units (before and after `kill -9`), and an abandoned reservation
//! expiring across a restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Answer, Api, NodeProcess, NodeSpec, metric_sum, wait_until};

const ADMIN_EMAIL: &str = "admin@shop.test";
const ADMIN_PASSWORD: &str = "admin-password-checkout";
const PASSWORD: &str = "customer-password-1";

/// A node with an admin account and no rate limit (the tests hammer it from one address).
fn spec(dir: &std::path::Path) -> NodeSpec {
    shop_settings(NodeSpec::embedded(dir))
}

/// The admin account and settings of these tests, on a node of any store.
pub(crate) fn shop_settings(spec: NodeSpec) -> NodeSpec {
    spec.env("EMPORIUM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("EMPORIUM_RATE_LIMIT", "off")
}

/// A signed-in customer and their own cart.
#[derive(Clone, Debug)]
pub(crate) struct Customer {
    pub(crate) token: String,
    pub(crate) user_id: String,
    pub(crate) cart: String,
}

/// Requests with bearer tokens against one node.
#[derive(Clone)]
pub(crate) struct Shop {
    http: reqwest::Client,
    pub(crate) api: Api,
    pub(crate) admin: String,
}

fn address(country: &str) -> Value {
    json!({
        "name": "Ada Lovelace",
        "line1": "12 Analytical Row",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": country,
    })
}

pub(crate) fn body(country: &str, token: &str) -> Value {
    json!({"shipping_address": address(country), "payment": {"token": token}})
}

impl Shop {
    pub(crate) async fn new(node: &NodeProcess) -> Shop {
        Self::with_admin(node, ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// A shop on `node` signed in as the admin `email`.
    pub(crate) async fn with_admin(node: &NodeProcess, email: &str, password: &str) -> Shop {
        let api = Api::new(node);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let mut shop = Shop {
            http,
            api,
            admin: String::new(),
        };
        shop.admin = shop.login(email, password).await.token;
        shop
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.base)
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Answer {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.api.send(request).await
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(self.http.get(self.url(path)), token).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request, token).await
    }

    pub(crate) async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(body), token)
            .await
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Customer {
        let answer = self
            .post(
                "/v1/auth/login",
                None,
                Some(&json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        Customer {
            token: answer.body["access_token"].as_str().unwrap().to_owned(),
            user_id: answer.body["user_id"].as_str().unwrap().to_owned(),
            cart: answer.body["cart_id"].as_str().unwrap().to_owned(),
        }
    }

    pub(crate) async fn customer(&self, email: &str) -> Customer {
        let signed_up = self
            .post(
                "/v1/users",
                None,
                Some(&json!({"email": email, "password": PASSWORD, "name": "Customer"})),
            )
            .await;
        assert_eq!(signed_up.status, 201, "{signed_up:?}");
        self.login(email, PASSWORD).await
    }

    pub(crate) async fn set_stock(&self, sku: &str, warehouse: &str, on_hand: i64) -> Answer {
        self.send(
            self.http
                .put(self.url(&format!("/v1/admin/inventory/{sku}")))
                .json(&json!({"warehouse": warehouse, "on_hand": on_hand})),
            Some(&self.admin),
        )
        .await
    }

    pub(crate) async fn stock(&self, sku: &str) -> Value {
        let answer = self.get(&format!("/v1/inventory/{sku}"), None).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }

    pub(crate) async fn add(&self, customer: &Customer, sku: &str, quantity: i64) {
        let answer = self
            .post(
                &format!("/v1/carts/{}/items", customer.cart),
                Some(&customer.token),
                Some(&json!({"sku": sku, "quantity": quantity})),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    pub(crate) async fn cart_items(&self, customer: &Customer) -> Vec<Value> {
        let answer = self
            .get(
                &format!("/v1/carts/{}", customer.cart),
                Some(&customer.token),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["items"].as_array().unwrap().clone()
    }

    pub(crate) async fn checkout_as(
        &self,
        customer: &Customer,
        cart: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut request = self
            .http
            .post(self.url(&format!("/v1/carts/{cart}/checkout")))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request, Some(&customer.token)).await
    }

    pub(crate) async fn checkout(&self, customer: &Customer, key: &str, body: &Value) -> Answer {
        self.checkout_as(customer, &customer.cart, Some(key), body)
            .await
    }

    pub(crate) async fn orders(&self, customer: &Customer) -> Vec<Value> {
        let answer = self.get("/v1/users/me/orders", Some(&customer.token)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["items"].as_array().unwrap().clone()
    }

    pub(crate) async fn payment(&self, reference: &str) -> Value {
        let answer = self
            .get(
                &format!("/v1/admin/payments/{reference}"),
                Some(&self.admin),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }
}

fn statuses(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_happy_path_idempotency_and_the_order_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(spec(dir.path())).await;
    let shop = Shop::new(&node).await;

    // Stock in two warehouses; low-stock threshold 5 by default.
    let east = shop.set_stock("SKU-MUG", "east", 4).await;
    assert_eq!(east.status, 200, "{east:?}");
    assert_eq!(east.body["low_stock"], true, "4 available < 5");
    let set = shop.set_stock("SKU-MUG", "west", 6).await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["on_hand"], 10);
    assert_eq!(set.body["low_stock"], false);
    assert_eq!(set.body["warehouses"].as_array().unwrap().len(), 2);
    assert_eq!(shop.set_stock("NO-SUCH-SKU", "east", 1).await.status, 404);
    let bad = shop.set_stock("SKU-MUG", "", 1).await;
    assert!(bad.expect_problem(422).contains("warehouse"));
    let bad = shop.set_stock("SKU-MUG", "east", -1).await;
    assert!(bad.expect_problem(422).contains("on_hand"));

    let price = shop.get("/v1/products/SKU-MUG", None).await.body["price_cents"]
        .as_i64()
        .unwrap();
    let ada = shop.customer("ada@shop.test").await;
    shop.add(&ada, "SKU-MUG", 3).await;

    let order = shop
        .checkout(&ada, "order-1", &body("US", "tok_visa"))
        .await;
    assert_eq!(order.status, 201, "{order:?}");
    let id = order.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        order.headers["location"].to_str().unwrap(),
        format!("/v1/orders/{id}")
    );
    assert_eq!(order.body["status"], "paid");
    assert_eq!(order.body["user_id"], ada.user_id.as_str());
    assert_eq!(order.body["subtotal_cents"], 3 * price);
    assert_eq!(order.body["shipping_cents"], 500, "US rate");
    assert_eq!(order.body["total_cents"], 3 * price + 500);
    assert_eq!(order.body["currency"], "USD");
    assert_eq!(order.body["shipping_address"], address("US"));
    assert_eq!(statuses(&order.body), ["placed", "paid"]);
    assert!(order.body.get("token").is_none());
    let reference = order.body["payment_reference"].as_str().unwrap().to_owned();

    // Visible to its owner, stock sold, cart emptied, listed under the user.
    let read = shop
        .get(&format!("/v1/orders/{id}"), Some(&ada.token))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, order.body);
    let stock = shop.stock("SKU-MUG").await;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["reserved"].as_i64()),
        (Some(7), Some(0))
    );
    assert_eq!(stock["available"], 7);
    assert!(shop.cart_items(&ada).await.is_empty(), "cart emptied");
    let mine = shop.orders(&ada).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());

    // A retry with the same key answers the first outcome and charges nothing more.
    let retry = shop
        .checkout(&ada, "order-1", &body("US", "tok_visa"))
        .await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, order.body);
    let payment = shop.payment(&reference).await;
    assert_eq!(payment["status"], "captured");
    assert_eq!(payment["captured_cents"], 3 * price + 500);
    let kinds: Vec<&str> = payment["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["authorize", "capture"], "charged once");
    assert_eq!(shop.orders(&ada).await.len(), 1);
    assert_eq!(shop.stock("SKU-MUG").await["on_hand"], 7);
    // The same key with another body is refused.
    let reused = shop
        .checkout(&ada, "order-1", &body("DE", "tok_visa"))
        .await;
    assert!(reused.expect_problem(422).contains("Idempotency-Key"));

    // Ship and deliver (admin); cancelling a shipped order is a conflict.
    let ship_path = format!("/v1/admin/orders/{id}/ship");
    let shipped = shop.post(&ship_path, Some(&shop.admin), None).await;
    assert_eq!(shipped.status, 200, "{shipped:?}");
    assert_eq!(shipped.body["status"], "shipped");
    shop.post(&ship_path, Some(&shop.admin), None)
        .await
        .expect_problem(409);
    let cancel = shop
        .post(&format!("/v1/orders/{id}/cancel"), Some(&ada.token), None)
        .await;
    cancel.expect_problem(409);
    assert_eq!(cancel.body["order_status"], "shipped");
    let delivered = shop
        .post(
            &format!("/v1/admin/orders/{id}/deliver"),
            Some(&shop.admin),
            None,
        )
        .await;
    assert_eq!(delivered.status, 200);
    assert_eq!(
        statuses(&delivered.body),
        ["placed", "paid", "shipped", "delivered"]
    );

    // A second order, cancelled before shipping: stock back, payment refunded.
    shop.add(&ada, "SKU-MUG", 4).await;
    let second = shop
        .checkout(&ada, "order-2", &body("DE", "tok_visa"))
        .await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(second.body["shipping_cents"], 900, "DE rate");
    let second_id = second.body["id"].as_str().unwrap().to_owned();
    let stock = shop.stock("SKU-MUG").await;
    assert_eq!(stock["on_hand"], 3);
    assert_eq!(stock["low_stock"], true, "available 3 < threshold 5");
    let alerts = stock["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "one when east alone held 4, one now");
    assert_eq!(alerts[1]["available"], 3);
    assert!(alerts[1]["at"].as_str().unwrap().ends_with('Z'));
    let shipping_before_deliver = shop
        .post(
            &format!("/v1/admin/orders/{second_id}/deliver"),
            Some(&shop.admin),
            None,
        )
        .await;
    shipping_before_deliver.expect_problem(409);
    let cancelled = shop
        .post(
            &format!("/v1/orders/{second_id}/cancel"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "refunded");
    assert_eq!(
        statuses(&cancelled.body),
        ["placed", "paid", "cancelled", "refunded"]
    );
    let stock = shop.stock("SKU-MUG").await;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["reserved"].as_i64()),
        (Some(7), Some(0))
    );
    let refund = shop
        .payment(second.body["payment_reference"].as_str().unwrap())
        .await;
    assert_eq!(refund["status"], "refunded");
    assert_eq!(refund["refunded_cents"], second.body["total_cents"]);
    shop.post(
        &format!("/v1/admin/orders/{second_id}/ship"),
        Some(&shop.admin),
        None,
    )
    .await
    .expect_problem(409);
    let mine = shop.orders(&ada).await;
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0]["id"], second_id.as_str(), "newest first");

    // Two checkouts of one cart with different keys at once: exactly one order.
    shop.add(&ada, "SKU-MUG", 1).await;
    let racing: Vec<_> = (0..5)
        .map(|i| {
            let (shop, ada) = (shop.clone(), ada.clone());
            tokio::spawn(async move {
                shop.checkout(&ada, &format!("race-{i}"), &body("US", "tok_visa"))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in racing {
        let answer = task.await.unwrap();
        match answer.status {
            201 => created += 1,
            409 | 422 => {} // in progress, or the cart was already emptied
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(shop.stock("SKU-MUG").await["on_hand"], 6);
    assert_eq!(shop.orders(&ada).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_checks_the_caller_and_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start(spec(dir.path()).env("EMPORIUM_SHIPPING_RATES", "US=500,DE=900")).await;
    let shop = Shop::new(&node).await;
    shop.set_stock("SKU-PEN", "main", 50).await;
    let ada = shop.customer("ada@auth.test").await;
    let bob = shop.customer("bob@auth.test").await;
    shop.add(&ada, "SKU-PEN", 1).await;
    let order = shop.checkout(&ada, "k-1", &body("US", "tok_visa")).await;
    assert_eq!(order.status, 201, "{order:?}");
    let id = order.body["id"].as_str().unwrap().to_owned();
    let ok_body = body("US", "tok_visa");

    // 401 without a token.
    let checkout_path = format!("/v1/carts/{}/checkout", ada.cart);
    shop.post(&checkout_path, None, Some(&ok_body))
        .await
        .expect_problem(401);
    shop.get(&format!("/v1/orders/{id}"), None)
        .await
        .expect_problem(401);
    shop.post(&format!("/v1/orders/{id}/cancel"), None, None)
        .await
        .expect_problem(401);
    shop.get("/v1/users/me/orders", None)
        .await
        .expect_problem(401);

    // 403 with another user's token.
    shop.add(&ada, "SKU-PEN", 1).await;
    shop.checkout_as(&bob, &ada.cart, Some("bob-1"), &ok_body)
        .await
        .expect_problem(403);
    shop.get(&format!("/v1/orders/{id}"), Some(&bob.token))
        .await
        .expect_problem(403);
    shop.post(&format!("/v1/orders/{id}/cancel"), Some(&bob.token), None)
        .await
        .expect_problem(403);
    assert!(
        shop.orders(&bob).await.is_empty(),
        "me is always the caller"
    );
    assert_eq!(shop.items_of(&ada).await, 1, "ada's cart untouched by bob");
    // Admins may read anyone's order.
    assert_eq!(
        shop.get(&format!("/v1/orders/{id}"), Some(&shop.admin))
            .await
            .status,
        200
    );

    // Admin routes are 403 for customers, 401 without a token.
    for (method, path) in [
        ("PUT", "/v1/admin/inventory/SKU-PEN".to_owned()),
        ("POST", format!("/v1/admin/orders/{id}/ship")),
        ("POST", format!("/v1/admin/orders/{id}/deliver")),
        (
            "GET",
            format!(
                "/v1/admin/payments/{}",
                order.body["payment_reference"].as_str().unwrap()
            ),
        ),
    ] {
        for (token, status) in [(Some(ada.token.as_str()), 403), (None, 401)] {
            let request = match method {
                "PUT" => self_put(&shop, &path),
                "POST" => shop.http.post(shop.url(&path)),
                _ => shop.http.get(shop.url(&path)),
            };
            shop.send(request, token).await.expect_problem(status);
        }
    }

    // Input: the Idempotency-Key header, then the body's fields by name.
    let missing = shop.checkout_as(&ada, &ada.cart, None, &ok_body).await;
    assert!(missing.expect_problem(400).contains("Idempotency-Key"));
    let cases: [(Value, &str); 6] = [
        (
            json!({"shipping_address": {"line1": "x", "city": "c", "postal_code": "1", "country": "US"}, "payment": {"token": "tok_visa"}}),
            "shipping_address.name",
        ),
        (body("us", "tok_visa"), "shipping_address.country"),
        (body("XX", "tok_visa"), "shipping_address.country"),
        (body("USA", "tok_visa"), "shipping_address.country"),
        (
            json!({"shipping_address": address("US"), "payment": {}}),
            "payment.token",
        ),
        (
            json!({"payment": {"token": "tok_visa"}}),
            "shipping_address.name",
        ),
    ];
    for (i, (request, field)) in cases.iter().enumerate() {
        let answer = shop.checkout(&ada, &format!("bad-{i}"), request).await;
        let detail = answer.expect_problem(422);
        assert!(detail.contains(field), "{field}: {detail}");
    }
    // No rate for FR and no '*' in this node's table.
    let no_rate = shop.checkout(&ada, "fr", &body("FR", "tok_visa")).await;
    assert!(
        no_rate
            .expect_problem(422)
            .contains("shipping_address.country")
    );
    // An empty cart.
    let empty = shop.customer("empty@auth.test").await;
    let answer = shop.checkout(&empty, "e-1", &body("US", "tok_visa")).await;
    assert!(answer.expect_problem(422).contains("empty"));
    // Unknown order and cart ids.
    shop.get("/v1/orders/no-such-order", Some(&ada.token))
        .await
        .expect_problem(404);
    shop.checkout_as(&ada, "no-such-cart", Some("nc"), &ok_body)
        .await
        .expect_problem(404);
}

fn self_put(shop: &Shop, path: &str) -> reqwest::RequestBuilder {
    shop.http
        .put(shop.url(path))
        .json(&json!({"warehouse": "main", "on_hand": 1}))
}

impl Shop {
    async fn items_of(&self, customer: &Customer) -> usize {
        self.cart_items(customer).await.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_timed_out_payments_are_compensated() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(spec(dir.path()).env("EMPORIUM_PAYMENT_TIMEOUT", "1s")).await;
    let shop = Shop::new(&node).await;
    shop.set_stock("SKU-CAP", "main", 5).await;
    let ada = shop.customer("ada@pay.test").await;
    shop.add(&ada, "SKU-CAP", 2).await;

    let declined = shop
        .checkout(&ada, "d-1", &body("US", "tok_chargeDeclined"))
        .await;
    declined.expect_problem(402);
    assert_eq!(declined.body["decline_code"], "card_declined");
    assert_eq!(shop.stock("SKU-CAP").await["reserved"], 0, "released");
    assert_eq!(shop.items_of(&ada).await, 1, "cart intact");
    let again = shop
        .checkout(&ada, "d-1", &body("US", "tok_chargeDeclined"))
        .await;
    assert_eq!(
        (again.status, &again.body),
        (402, &declined.body),
        "same outcome"
    );
    let invalid = shop
        .checkout(&ada, "d-2", &body("US", "tok_nonsense"))
        .await;
    invalid.expect_problem(402);
    assert_eq!(invalid.body["decline_code"], "invalid_token");

    let started = Instant::now();
    let timeout = shop.checkout(&ada, "t-1", &body("US", "tok_timeout")).await;
    let took = started.elapsed();
    timeout.expect_problem(402);
    assert_eq!(timeout.body["type"], "/problems/payment-timeout");
    assert!(
        took >= Duration::from_secs(1),
        "waited for the deadline: {took:?}"
    );
    let stock = shop.stock("SKU-CAP").await;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["reserved"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(shop.items_of(&ada).await, 1, "cart intact and unlocked");
    assert!(shop.orders(&ada).await.is_empty(), "no order");

    // Nothing is stuck: the same cart checks out with a good card.
    let ok = shop.checkout(&ada, "ok-1", &body("US", "tok_visa")).await;
    assert_eq!(ok.status, 201, "{ok:?}");
    assert_eq!(shop.stock("SKU-CAP").await["on_hand"], 3);

    let metrics = shop.api.metrics().await;
    let count = |outcome: &str| {
        metric_sum(
            &metrics,
            "emporium_checkouts_total",
            &format!("outcome=\"{outcome}\""),
        )
    };
    assert_eq!(count("placed"), 1.0, "{metrics}");
    assert_eq!(
        count("payment_declined"),
        3.0,
        "declined, its replay, invalid token"
    );
    assert_eq!(count("payment_timeout"), 1.0);
}

/// Buyers, units in stock.
const BUYERS: usize = 50;
const UNITS: i64 = 10;
const RACE_SKU: &str = "SKU-TEE-BLK";

async fn race_invariants(shop: &Shop, buyers: &[Customer]) {
    let stock = shop.stock(RACE_SKU).await;
    assert_eq!(stock["on_hand"], 0, "{stock}");
    assert_eq!(stock["reserved"], 0, "{stock}");
    let mut orders = 0;
    for buyer in buyers {
        let mine = shop.orders(buyer).await;
        assert!(mine.len() <= 1);
        for order in &mine {
            assert_eq!(order["status"], "paid");
            assert_eq!(order["items"][0]["sku"], RACE_SKU);
        }
        orders += mine.len();
    }
    assert_eq!(orders, UNITS as usize, "exactly one order per unit");
}

/// The whole storefront (sign-up, login, stock, carts, checkout, orders) on every store.
mod fifty_buyers_race_on {
    crate::stores::on_every_store!(
        super::fifty_buyers_race_for_ten_units_and_it_holds_after_kill_9
    );
}

async fn fifty_buyers_race_for_ten_units_and_it_holds_after_kill_9(spec: NodeSpec) {
    let node = NodeProcess::start(shop_settings(spec)).await;
    let shop = Shop::new(&node).await;
    assert_eq!(shop.set_stock(RACE_SKU, "main", UNITS).await.status, 200);

    // 50 users, each with their own cart holding one unit.
    let mut buyers = Vec::new();
    for batch in 0..(BUYERS / 10) {
        let signups: Vec<_> = (0..10)
            .map(|i| {
                let shop = shop.clone();
                tokio::spawn(async move {
                    let buyer = shop
                        .customer(&format!("buyer{}@race.test", batch * 10 + i))
                        .await;
                    shop.add(&buyer, RACE_SKU, 1).await;
                    buyer
                })
            })
            .collect();
        for signup in signups {
            buyers.push(signup.await.unwrap());
        }
    }

    let race: Vec<_> = buyers
        .iter()
        .cloned()
        .map(|buyer| {
            let shop = shop.clone();
            tokio::spawn(
                async move { shop.checkout(&buyer, "race", &body("US", "tok_visa")).await },
            )
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for task in race {
        let answer = task.await.unwrap();
        match answer.status {
            201 => won += 1,
            409 => {
                assert_eq!(
                    answer.body["type"], "/problems/insufficient-stock",
                    "{answer:?}"
                );
                assert_eq!(answer.body["skus"], json!([RACE_SKU]));
                assert!(answer.body["detail"].as_str().unwrap().contains(RACE_SKU));
                lost += 1;
            }
            other => panic!("unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!((won, lost), (UNITS as usize, BUYERS - UNITS as usize));
    race_invariants(&shop, &buyers).await;

    // kill -9 and restart on the same data: the same holds.
    let spec = node.kill9().await;
    let node = NodeProcess::start(spec).await;
    let shop = Shop::new(&node).await;
    race_invariants(&shop, &buyers).await;
    // And the losers' retries still answer their first outcome.
    let retry = shop
        .checkout(&buyers[0], "race", &body("US", "tok_visa"))
        .await;
    assert!(matches!(retry.status, 201 | 409), "{retry:?}");
    race_invariants(&shop, &buyers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_reservation_expires_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(4);
    let node = NodeProcess::start(
        spec(dir.path())
            .env("EMPORIUM_RESERVATION_TTL", "4s")
            .env("EMPORIUM_PAYMENT_TIMEOUT", "60s")
            .env("EMPORIUM_REQUEST_TIMEOUT", "30s"),
    )
    .await;
    let shop = Shop::new(&node).await;
    shop.set_stock("SKU-MUG", "main", 5).await;
    let ada = shop.customer("ada@expiry.test").await;
    shop.add(&ada, "SKU-MUG", 2).await;

    // A checkout hangs on the payment provider...
    let hanging = {
        let (shop, ada) = (shop.clone(), ada.clone());
        tokio::spawn(async move {
            let request = shop
                .http
                .post(shop.url(&format!("/v1/carts/{}/checkout", ada.cart)))
                .bearer_auth(&ada.token)
                .header("Idempotency-Key", "hang")
                .json(&body("US", "tok_timeout"));
            shop.api.try_send(request).await
        })
    };
    let reserved = wait_until(Duration::from_secs(10), || async {
        shop.stock("SKU-MUG").await["reserved"] == 2
    })
    .await;
    assert!(reserved, "the checkout reserved its units");
    let reserved_at = Instant::now();
    // Reserved units cannot be taken away by an admin.
    let below = shop.set_stock("SKU-MUG", "main", 1).await;
    below.expect_problem(409);
    assert_eq!(below.body["reserved"], 2);

    // ...and the node dies under it.
    let spec = node.kill9().await;
    let _ = hanging.await;
    let node = NodeProcess::start(spec).await;
    let shop = Shop::new(&node).await;
    let stock = shop.stock("SKU-MUG").await;
    if reserved_at.elapsed() < ttl {
        assert_eq!(stock["reserved"], 2, "still held right after the restart");
    }
    let released = wait_until(ttl + Duration::from_secs(10), || async {
        shop.stock("SKU-MUG").await["reserved"] == 0
    })
    .await;
    assert!(released, "the reservation expired on the restarted node");
    let stock = shop.stock("SKU-MUG").await;
    assert_eq!(
        (stock["on_hand"].as_i64(), stock["available"].as_i64()),
        (Some(5), Some(5))
    );

    // The interrupted checkout is settled by its retry: rolled back, cart unlocked.
    let retry = shop
        .checkout(&ada, "hang", &body("US", "tok_timeout"))
        .await;
    retry.expect_problem(409);
    assert_eq!(retry.body["type"], "/problems/checkout-interrupted");
    assert_eq!(shop.items_of(&ada).await, 1);
    let order = shop.checkout(&ada, "after", &body("US", "tok_visa")).await;
    assert_eq!(order.status, 201, "{order:?}");
    assert_eq!(shop.stock("SKU-MUG").await["on_hand"], 3);
}
