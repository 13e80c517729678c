//! What every shopper of a run shares: the catalog as listed before the run, the nodes, and
//! the admin's session; and the preparation of the shop before the first user starts.
//!
//! Contract: [`Shop::prepare`] reads the catalog through the first node and, given the
//! admin's login, stocks the SKUs that checkouts buy ([`CHECKOUT_SKUS`] of the catalog, in
//! SKU order) with [`STOCK_PER_SKU`] units in the warehouse [`STOCK_WAREHOUSE`], so that
//! checkouts are not refused for lack of stock (the demo catalog has none). It fails
//! before any load starts when the node does not answer as expected. Those preparation
//! requests go through their own client and are not in goose's report.

use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::http::{Call, send};
use crate::options::AdminLogin;
use crate::wire::{self, Mismatch, Product};

/// How many SKUs of the catalog checkouts buy from.
pub const CHECKOUT_SKUS: usize = 4;
/// Units of each such SKU set before the run: no run of this tool sells that many.
pub const STOCK_PER_SKU: u64 = 1_000_000;
/// The warehouse the preparation stocks (restocks go to warehouses of their own).
pub const STOCK_WAREHOUSE: &str = "load";
/// A token older than this is renewed: the node's tokens last an hour.
const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(50 * 60);
/// The longest a preparation request may take.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the shop could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("no host: give --host or --hosts")]
    NoHost,
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: status {status}: {body}")]
    Status {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("{what}: {mismatch}")]
    Answer {
        what: &'static str,
        mismatch: Mismatch,
    },
    #[error("the catalog has {0} products; the load test needs at least 2")]
    SmallCatalog(usize),
}

/// The admin's login and current session, shared by every user of the run: one login for
/// the run, not one per user (the node throttles logins per e-mail).
pub struct Admin {
    login: AdminLogin,
    session: Mutex<Option<(String, Instant)>>,
}

impl Admin {
    pub fn new(login: AdminLogin) -> Self {
        Self {
            login,
            session: Mutex::new(None),
        }
    }

    /// The admin's bearer token: the current one, or a new login (as `user`, so it is in
    /// the report) when there is none yet or it is old.
    pub async fn token(&self, user: &mut GooseUser) -> Result<String, Box<TransactionError>> {
        let mut session = self.session.lock().await;
        if let Some((token, at)) = session.as_ref()
            && at.elapsed() < TOKEN_RENEW_AFTER
        {
            return Ok(token.clone());
        }
        let body = json!({"email": self.login.email, "password": self.login.password});
        let answer = send(
            user,
            Call::post("/v1/auth/login".into(), "admin: log in", 200).json(body),
        )
        .await?;
        let login = wire::login(answer.body());
        let login = answer.check(user, login)?;
        *session = Some((login.access_token.clone(), Instant::now()));
        Ok(login.access_token)
    }

    async fn set_token(&self, token: String) {
        *self.session.lock().await = Some((token, Instant::now()));
    }
}

/// The shop as the run sees it.
pub struct Shop {
    /// The catalog's first page (up to 100 products, in SKU order).
    pub products: Vec<Product>,
    /// Words that search finds: one per product name.
    pub search_terms: Vec<String>,
    /// The nodes users are spread over (empty: every user on goose's `--host`).
    pub hosts: Vec<String>,
}

impl Shop {
    /// The SKUs checkouts buy from (stocked by the preparation).
    pub fn checkout_products(&self) -> &[Product] {
        &self.products[..self.products.len().min(CHECKOUT_SKUS)]
    }

    /// The catalog price of `sku`.
    pub fn price_of(&self, sku: &str) -> Option<i64> {
        self.products
            .iter()
            .find(|p| p.sku == sku)
            .map(|p| p.price_cents)
    }

    /// A shop for runs that send nothing (`--list`, `--scenarios-list`).
    pub fn offline(hosts: Vec<String>) -> Self {
        Self {
            products: Vec::new(),
            search_terms: Vec::new(),
            hosts,
        }
    }

    /// Reads the catalog at `host` and, with `admin`, logs in and stocks the checkout SKUs.
    pub async fn prepare(
        host: &str,
        hosts: Vec<String>,
        admin: Option<&Admin>,
    ) -> Result<Self, PrepareError> {
        let base = host.trim_end_matches('/');
        if base.is_empty() {
            return Err(PrepareError::NoHost);
        }
        let client = reqwest::Client::builder()
            .timeout(PREPARE_TIMEOUT)
            .build()
            .map_err(|source| PrepareError::Http {
                what: "HTTP client",
                source,
            })?;
        let what = "list the catalog";
        let listing = fetch(client.get(format!("{base}/v1/products?limit=100")), what).await?;
        let products = wire::product_listing(&listing)
            .map_err(|mismatch| PrepareError::Answer { what, mismatch })?
            .items;
        if products.len() < 2 {
            return Err(PrepareError::SmallCatalog(products.len()));
        }
        let shop = Self {
            search_terms: search_terms(&products),
            products,
            hosts,
        };
        if let Some(admin) = admin {
            shop.stock(&client, base, admin).await?;
        }
        Ok(shop)
    }

    async fn stock(
        &self,
        client: &reqwest::Client,
        base: &str,
        admin: &Admin,
    ) -> Result<(), PrepareError> {
        let what = "log in as the admin";
        let body = json!({"email": admin.login.email, "password": admin.login.password});
        let answer = fetch(
            client.post(format!("{base}/v1/auth/login")).json(&body),
            what,
        )
        .await?;
        let token = wire::login(&answer)
            .map_err(|mismatch| PrepareError::Answer { what, mismatch })?
            .access_token;
        for product in self.checkout_products() {
            let what = "stock a SKU for checkouts";
            let body = json!({"warehouse": STOCK_WAREHOUSE, "on_hand": STOCK_PER_SKU});
            let request = client
                .put(format!("{base}/v1/admin/inventory/{}", product.sku))
                .bearer_auth(&token)
                .json(&body);
            let answer = fetch(request, what).await?;
            wire::restocked(&answer, &product.sku, STOCK_WAREHOUSE, STOCK_PER_SKU)
                .map_err(|mismatch| PrepareError::Answer { what, mismatch })?;
        }
        admin.set_token(token).await;
        Ok(())
    }
}

/// Sends `request`; a 2xx JSON body, or the error saying what failed.
async fn fetch(
    request: reqwest::RequestBuilder,
    what: &'static str,
) -> Result<Value, PrepareError> {
    let http = |source| PrepareError::Http { what, source };
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    let text = response.text().await.map_err(http)?;
    if !status.is_success() {
        return Err(PrepareError::Status {
            what,
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
        });
    }
    serde_json::from_str(&text).map_err(|_| PrepareError::Answer {
        what,
        mismatch: Mismatch("answer is not JSON".into()),
    })
}

/// One search word per product: the longest word of its name (4 letters or more), in
/// lower case. The catalog matches whole words, so each finds at least its product.
fn search_terms(products: &[Product]) -> Vec<String> {
    let mut terms: Vec<String> = products
        .iter()
        .filter_map(|p| {
            p.name
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 4)
                .max_by_key(|w| w.chars().count())
                .map(str::to_lowercase)
        })
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(sku: &str, name: &str) -> Product {
        Product {
            sku: sku.into(),
            name: name.into(),
            description: String::new(),
            price_cents: 100,
            currency: "USD".into(),
            category: "c".into(),
        }
    }

    #[test]
    fn search_terms_are_whole_words_of_names() {
        let products = [
            product("A", "Black T-shirt"),
            product("B", "USB-C Cable"),
            product("C", "Pen"),
            product("D", "Cable Tie"),
        ];
        assert_eq!(search_terms(&products), ["cable", "shirt"]);
    }

    #[test]
    fn checkouts_buy_from_the_first_skus() {
        let shop = Shop {
            products: (0..6).map(|i| product(&format!("S{i}"), "Thing")).collect(),
            search_terms: vec![],
            hosts: vec![],
        };
        let skus: Vec<_> = shop
            .checkout_products()
            .iter()
            .map(|p| p.sku.as_str())
            .collect();
        assert_eq!(skus, ["S0", "S1", "S2", "S3"]);
        assert_eq!(shop.price_of("S5"), Some(100));
        assert_eq!(shop.price_of("nope"), None);
    }
}
