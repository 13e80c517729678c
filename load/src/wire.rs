//! The storefront's JSON answers as the load test reads them, and the checks each must pass.
//!
//! Contract: every function here is pure (no I/O), so each check is unit-tested against
//! sample answers. A check answers `Err(Mismatch)` naming what is wrong in words that stay
//! the same from one request to the next (no ids), because goose groups its error table by
//! that text. Only the fields the load test relies on are read; unknown fields are ignored,
//! so the node may add fields without breaking the load test.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What made an answer wrong: shown in goose's error table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

fn mismatch(text: impl Into<String>) -> Mismatch {
    Mismatch(text.into())
}

/// Reads an answer as `T`; a missing or mistyped field is a mismatch naming `what`.
pub fn parse<T: DeserializeOwned>(body: &Value, what: &str) -> Result<T, Mismatch> {
    T::deserialize(body).map_err(|e| mismatch(format!("not {what}: {e}")))
}

/// `{"sku","name","description","price_cents","currency","category"}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    pub currency: String,
    pub category: String,
}

impl Product {
    fn check(&self) -> Result<(), Mismatch> {
        if self.sku.is_empty() || self.name.is_empty() {
            return Err(mismatch("a product without sku or name"));
        }
        if self.price_cents <= 0 {
            return Err(mismatch("a product without a positive price"));
        }
        Ok(())
    }
}

/// `GET /v1/products`: `{"items":[product…],"total":N,"facets":{category: count}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub total: u64,
    pub facets: serde_json::Map<String, Value>,
}

/// A listing page: at least one product, each valid, `total` no less than the page, and a
/// facet for every category on the page.
pub fn product_listing(body: &Value) -> Result<ProductPage, Mismatch> {
    let page: ProductPage = parse(body, "a product page")?;
    if page.items.is_empty() {
        return Err(mismatch("an empty catalog page"));
    }
    if page.total < page.items.len() as u64 {
        return Err(mismatch("total is below the number of items on the page"));
    }
    for product in &page.items {
        product.check()?;
        if !page.facets.contains_key(&product.category) {
            return Err(mismatch("a listed product's category has no facet"));
        }
    }
    Ok(page)
}

/// Search results for `term`: at least one hit, and every hit has the term as a word of
/// its name or description (the catalog matches whole words, in any case).
pub fn search_results(body: &Value, term: &str) -> Result<ProductPage, Mismatch> {
    let page: ProductPage = parse(body, "a product page")?;
    if page.items.is_empty() {
        return Err(mismatch(format!("no hit for the catalog word {term:?}")));
    }
    for product in &page.items {
        product.check()?;
        if !has_word(&product.name, term) && !has_word(&product.description, term) {
            return Err(mismatch(format!("a hit for {term:?} without that word")));
        }
    }
    Ok(page)
}

/// Whether `word` is one of the words of `text`, in any case.
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// A product page: the SKU asked for, valid.
pub fn product_page(body: &Value, sku: &str) -> Result<Product, Mismatch> {
    let product: Product = parse(body, "a product")?;
    if product.sku != sku {
        return Err(mismatch("the product page of another SKU"));
    }
    product.check()?;
    Ok(product)
}

/// A cart line: `{"sku","quantity","unit_price_cents"}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
}

/// A cart: `{"id","items":[line…],"subtotal_cents","currency"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    pub id: String,
    pub items: Vec<Line>,
    pub subtotal_cents: i64,
    pub currency: String,
}

/// A cart answer: the cart asked for (any id when `id` is `None`), whose subtotal is the
/// sum of its lines.
pub fn cart(body: &Value, id: Option<&str>) -> Result<Cart, Mismatch> {
    let cart: Cart = parse(body, "a cart")?;
    if cart.id.is_empty() {
        return Err(mismatch("a cart without an id"));
    }
    if id.is_some_and(|id| id != cart.id) {
        return Err(mismatch("another cart than the one asked for"));
    }
    if cart.subtotal_cents != subtotal(&cart.items) {
        return Err(mismatch("cart subtotal_cents is not the sum of its lines"));
    }
    Ok(cart)
}

fn subtotal(lines: &[Line]) -> i64 {
    lines
        .iter()
        .map(|l| i64::from(l.quantity) * l.unit_price_cents)
        .sum()
}

/// The lines a shopper expects: SKU, quantity and the catalog price of the SKU.
pub type Expected<'a> = &'a [(&'a str, u32, i64)];

/// The cart holds exactly `expected` (in any order), each line at its catalog price.
pub fn cart_lines(cart: &Cart, expected: Expected<'_>) -> Result<(), Mismatch> {
    if cart.items.len() != expected.len() {
        return Err(mismatch(format!(
            "cart has {} lines, expected {}",
            cart.items.len(),
            expected.len()
        )));
    }
    for (sku, quantity, price) in expected {
        let Some(line) = cart.items.iter().find(|l| l.sku == *sku) else {
            return Err(mismatch("an expected cart line is missing"));
        };
        if line.quantity != *quantity {
            return Err(mismatch("a cart line has the wrong quantity"));
        }
        if line.unit_price_cents != *price {
            return Err(mismatch("a cart line is not at the catalog price"));
        }
    }
    Ok(())
}

/// `POST /v1/users`: `{"id","email","name","roles"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// The account just signed up: that e-mail, a customer.
pub fn account(body: &Value, email: &str) -> Result<Account, Mismatch> {
    let account: Account = parse(body, "an account")?;
    if account.id.is_empty() || account.email != email {
        return Err(mismatch("the account answered is not the one signed up"));
    }
    if !account.roles.iter().any(|r| r == "customer") {
        return Err(mismatch("a signed-up account without the customer role"));
    }
    Ok(account)
}

/// `POST /v1/auth/login`: `{"access_token","token_type","user_id","cart_id"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Login {
    pub access_token: String,
    pub token_type: String,
    pub user_id: String,
    pub cart_id: String,
}

/// A login: a bearer token and the user's own cart.
pub fn login(body: &Value) -> Result<Login, Mismatch> {
    let login: Login = parse(body, "a login")?;
    if login.access_token.is_empty() || login.token_type != "Bearer" {
        return Err(mismatch("a login without a bearer token"));
    }
    if login.user_id.is_empty() || login.cart_id.is_empty() {
        return Err(mismatch("a login without the user's id and cart"));
    }
    Ok(login)
}

/// An order: `{"id","status","items","subtotal_cents","shipping_cents","total_cents","currency"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    pub status: String,
    pub items: Vec<Line>,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
    pub currency: String,
}

/// A paid order of exactly `expected`, whose totals add up: subtotal = Σ lines,
/// total = subtotal + shipping.
pub fn paid_order(body: &Value, expected: Expected<'_>) -> Result<Order, Mismatch> {
    let order: Order = parse(body, "an order")?;
    if order.id.is_empty() {
        return Err(mismatch("an order without an id"));
    }
    if order.status != "paid" {
        return Err(mismatch(format!(
            "order status {:?}, expected \"paid\"",
            order.status
        )));
    }
    let as_cart = Cart {
        id: order.id.clone(),
        items: order.items.clone(),
        subtotal_cents: order.subtotal_cents,
        currency: order.currency.clone(),
    };
    cart_lines(&as_cart, expected)?;
    if order.subtotal_cents != subtotal(&order.items) {
        return Err(mismatch("order subtotal_cents is not the sum of its lines"));
    }
    if order.shipping_cents < 0 || order.total_cents != order.subtotal_cents + order.shipping_cents
    {
        return Err(mismatch("order total_cents is not subtotal + shipping"));
    }
    Ok(order)
}

/// The same order read back: same id, status and total as the checkout answered.
pub fn same_order(body: &Value, placed: &Order) -> Result<Order, Mismatch> {
    let order: Order = parse(body, "an order")?;
    if order.id != placed.id {
        return Err(mismatch("another order than the one asked for"));
    }
    if order.status != placed.status || order.total_cents != placed.total_cents {
        return Err(mismatch(
            "the order read back differs from the checkout's answer",
        ));
    }
    Ok(order)
}

/// One warehouse of a SKU's stock.
#[derive(Debug, Clone, Deserialize)]
pub struct Warehouse {
    pub warehouse: String,
    pub on_hand: u64,
    pub reserved: u64,
}

/// `GET /v1/inventory/{sku}`: `{"sku","on_hand","reserved","available","warehouses"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    pub sku: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub warehouses: Vec<Warehouse>,
}

impl Stock {
    pub fn warehouse(&self, name: &str) -> Option<&Warehouse> {
        self.warehouses.iter().find(|w| w.warehouse == name)
    }
}

/// A SKU's stock that adds up: the SKU asked for, `on_hand` and `reserved` the sums over
/// its warehouses, `available = on_hand - reserved`.
pub fn stock(body: &Value, sku: &str) -> Result<Stock, Mismatch> {
    let stock: Stock = parse(body, "a stock")?;
    if stock.sku != sku {
        return Err(mismatch("the stock of another SKU"));
    }
    let on_hand: u64 = stock.warehouses.iter().map(|w| w.on_hand).sum();
    let reserved: u64 = stock.warehouses.iter().map(|w| w.reserved).sum();
    if on_hand != stock.on_hand || reserved != stock.reserved {
        return Err(mismatch("stock totals are not the sums over warehouses"));
    }
    if stock.available != stock.on_hand.saturating_sub(stock.reserved) {
        return Err(mismatch("stock available is not on_hand - reserved"));
    }
    Ok(stock)
}

/// The answer to a restock: `warehouse` holds exactly `on_hand` now.
pub fn restocked(
    body: &Value,
    sku: &str,
    warehouse: &str,
    on_hand: u64,
) -> Result<Stock, Mismatch> {
    let stock = stock(body, sku)?;
    match stock.warehouse(warehouse) {
        Some(w) if w.on_hand == on_hand => Ok(stock),
        Some(_) => Err(mismatch(
            "the restocked warehouse does not hold what was set",
        )),
        None => Err(mismatch("the restocked warehouse is missing")),
    }
}

/// The stock read back after a restock: `warehouse` is there with at most what was set
/// (checkouts may have sold from it since, never added to it).
pub fn stock_after_restock(
    body: &Value,
    sku: &str,
    warehouse: &str,
    set_to: u64,
) -> Result<Stock, Mismatch> {
    let stock = stock(body, sku)?;
    match stock.warehouse(warehouse) {
        Some(w) if w.on_hand <= set_to && w.reserved <= w.on_hand => Ok(stock),
        Some(_) => Err(mismatch("the restocked warehouse holds more than was set")),
        None => Err(mismatch("the restocked warehouse is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mug() -> Value {
        json!({"sku":"SKU-MUG","name":"Ceramic Mug","description":"A 350 ml stoneware mug, dishwasher safe.",
               "price_cents":1299,"currency":"USD","category":"kitchen","attributes":{}})
    }

    #[test]
    fn a_listing_needs_products_a_total_and_their_facets() {
        let good = json!({"items":[mug()],"total":14,"facets":{"kitchen":3}});
        assert_eq!(product_listing(&good).unwrap().items.len(), 1);
        let empty = json!({"items":[],"total":0,"facets":{}});
        assert!(product_listing(&empty).is_err());
        let short_total = json!({"items":[mug(), mug()],"total":1,"facets":{"kitchen":3}});
        assert!(product_listing(&short_total).is_err());
        let no_facet = json!({"items":[mug()],"total":1,"facets":{"books":1}});
        assert!(product_listing(&no_facet).is_err());
        let problem = json!({"type":"/problems/unavailable","status":503});
        assert!(
            product_listing(&problem)
                .unwrap_err()
                .0
                .starts_with("not a product page")
        );
    }

    #[test]
    fn every_search_hit_has_the_word() {
        let page = json!({"items":[mug()],"total":1,"facets":{"kitchen":1}});
        assert!(search_results(&page, "stoneware").is_ok());
        assert!(search_results(&page, "MUG").is_ok());
        assert!(search_results(&page, "kettle").is_err());
        assert!(
            search_results(&page, "ston").is_err(),
            "a word, not a substring"
        );
    }

    #[test]
    fn a_product_page_is_the_sku_asked_for() {
        assert!(product_page(&mug(), "SKU-MUG").is_ok());
        assert!(product_page(&mug(), "SKU-PEN").is_err());
        let free =
            json!({"sku":"SKU-MUG","name":"Mug","price_cents":0,"currency":"USD","category":"k"});
        assert!(product_page(&free, "SKU-MUG").is_err());
    }

    #[test]
    fn a_cart_adds_up_and_holds_exactly_the_expected_lines() {
        let body = json!({"id":"c1","items":[{"sku":"SKU-MUG","quantity":3,"unit_price_cents":1299}],
                          "subtotal_cents":3897,"currency":"USD"});
        let c = cart(&body, Some("c1")).unwrap();
        assert!(cart_lines(&c, &[("SKU-MUG", 3, 1299)]).is_ok());
        assert!(cart_lines(&c, &[("SKU-MUG", 2, 1299)]).is_err());
        assert!(cart_lines(&c, &[("SKU-MUG", 3, 1300)]).is_err());
        assert!(cart_lines(&c, &[("SKU-MUG", 3, 1299), ("SKU-PEN", 1, 2499)]).is_err());
        assert!(cart(&body, Some("c2")).is_err());
        let wrong_total = json!({"id":"c1","items":[{"sku":"SKU-MUG","quantity":3,"unit_price_cents":1299}],
                                 "subtotal_cents":1299,"currency":"USD"});
        assert!(cart(&wrong_total, None).is_err());
    }

    #[test]
    fn sign_up_and_login_answers() {
        let acc = json!({"id":"u1","email":"a@x.io","name":"A","roles":["customer"]});
        assert!(account(&acc, "a@x.io").is_ok());
        assert!(account(&acc, "b@x.io").is_err());
        let ok = json!({"access_token":"t","token_type":"Bearer","expires_in":3600,"user_id":"u1","cart_id":"c1"});
        assert_eq!(login(&ok).unwrap().cart_id, "c1");
        let no_cart = json!({"access_token":"t","token_type":"Bearer","user_id":"u1","cart_id":""});
        assert!(login(&no_cart).is_err());
    }

    fn order_json(status: &str, total: i64) -> Value {
        json!({"id":"o1","user_id":"u1","status":status,
               "items":[{"sku":"SKU-MUG","quantity":2,"unit_price_cents":1299}],
               "subtotal_cents":2598,"shipping_cents":500,"total_cents":total,"currency":"USD"})
    }

    #[test]
    fn a_paid_order_adds_up() {
        let placed = paid_order(&order_json("paid", 3098), &[("SKU-MUG", 2, 1299)]).unwrap();
        assert!(paid_order(&order_json("placed", 3098), &[("SKU-MUG", 2, 1299)]).is_err());
        assert!(paid_order(&order_json("paid", 2598), &[("SKU-MUG", 2, 1299)]).is_err());
        assert!(paid_order(&order_json("paid", 3098), &[("SKU-MUG", 1, 1299)]).is_err());
        assert!(same_order(&order_json("paid", 3098), &placed).is_ok());
        assert!(same_order(&order_json("cancelled", 3098), &placed).is_err());
    }

    fn stock_json(main: u64, restock: u64, reserved: u64) -> Value {
        json!({"sku":"SKU-MUG","on_hand":main + restock,"reserved":reserved,
               "available":main + restock - reserved,
               "warehouses":[{"warehouse":"load","on_hand":main,"reserved":reserved},
                             {"warehouse":"restock-1","on_hand":restock,"reserved":0}],
               "low_stock_threshold":5,"low_stock":false,"alerts":[]})
    }

    #[test]
    fn stock_adds_up_and_a_restock_shows() {
        assert!(restocked(&stock_json(100, 40, 2), "SKU-MUG", "restock-1", 40).is_ok());
        assert!(restocked(&stock_json(100, 39, 2), "SKU-MUG", "restock-1", 40).is_err());
        assert!(restocked(&stock_json(100, 40, 2), "SKU-MUG", "restock-2", 40).is_err());
        assert!(stock_after_restock(&stock_json(100, 38, 2), "SKU-MUG", "restock-1", 40).is_ok());
        assert!(stock_after_restock(&stock_json(100, 41, 2), "SKU-MUG", "restock-1", 40).is_err());
        assert!(stock(&stock_json(100, 40, 2), "SKU-PEN").is_err());
        let mut off = stock_json(100, 40, 2);
        off["available"] = json!(1);
        assert!(stock(&off, "SKU-MUG").is_err());
    }
}
