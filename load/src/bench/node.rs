//! Section `node`: an in-process node (`Node::build`, the node binary's own assembly) over
//! HTTP, on the embedded defaults, then on PostgreSQL (a scratch database) and on the CQL
//! store (a scratch keyspace) when they are up. Each figure is a ratio of the ceiling:
//!
//! - `product read`: `GET /v1/products/SKU-MUG` (one hot product);
//! - `warm cart read`: `GET /v1/carts/{id}`, one active one-line cart per connection;
//! - `add-to-cart`: `POST /v1/carts/{id}/items`, one unit of a demo SKU (a durable write);
//!   each connection fills its own carts, moving to the next before a line is full;
//! - `cart create`: `POST /v1/carts` (an activation and a durable write);
//! - `checkout`: one signed-in customer per connection; an operation is add one unit, then
//!   `POST /v1/carts/{id}/checkout` (the whole saga with the built-in test gateway), so the
//!   rate is a lower bound on sagas alone. The node's store is wrapped in a
//!   [`CountingStore`]: the note says how many durable writes (successful compare-and-set
//!   saves, each one atomic commit) one checkout made, per actor kind, counted from the first
//!   checkout until the outbox has drained (the event consumers' writes included), less the
//!   one write of each add-to-cart.
//!
//! The node runs on the harness's multi-threaded tokio runtime, like the node binary, with
//! the in-process event bus and the per-client rate limit off (every request comes from one
//! address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium::node::Node;
use emporium_config::{AdminCredentials, NodeConfig, Secret, StoreConfig};
use emporium_runtime::Runtime;
use hyper::Method;
use serde_json::{Value, json};

use super::drive::{self, Call, Measurement};
use super::services::{self, ScratchDatabase};
use super::{BenchContext, Row};
use emporium_runtime::store::{CountingStore, Counts, WriteCounts};

const SECTION: &str = "node";
const FIGURES: [&str; 5] = [
    "product read",
    "warm cart read",
    "add-to-cart",
    "cart create",
    "checkout",
];
const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-admin-password";
/// Demo SKUs the figures write (the demo catalog is seeded at start).
const SKUS: [&str; 14] = [
    "SKU-TEE-BLK",
    "SKU-TEE-WHT",
    "SKU-HOODIE",
    "SKU-CAP",
    "SKU-MUG",
    "SKU-KETTLE",
    "SKU-PAN",
    "SKU-BOOK-RUST",
    "SKU-BOOK-DDIA",
    "SKU-NOTEBOOK",
    "SKU-PEN",
    "SKU-HEADPHONES",
    "SKU-KEYBOARD",
    "SKU-CABLE",
];
/// Units one line takes (`Quantity::MAX`): a cart takes this many adds per SKU.
const UNITS_PER_LINE: u64 = 99;
/// Carts each connection fills in turn during `add-to-cart`.
const CARTS_PER_CONNECTION: usize = 8;

pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(on_embedded(ctx).await);
    rows.extend(on_postgres(ctx).await);
    rows.extend(on_cql(ctx).await);
    rows
}

async fn on_embedded(ctx: &BenchContext) -> Vec<Row> {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => return skipped("embedded", &format!("no temp dir: {error}")),
    };
    let store = StoreConfig::Embedded {
        path: dir.path().join("store.redb"),
    };
    figures_on(ctx, "embedded", store, dir.path()).await
}

async fn on_postgres(ctx: &BenchContext) -> Vec<Row> {
    let Some(url) = ctx.services.postgres.as_deref() else {
        return skipped("postgres", "no PostgreSQL URL");
    };
    let database = match ScratchDatabase::create(url, "node").await {
        Ok(database) => database,
        Err(why) => return skipped("postgres", &why),
    };
    let store = StoreConfig::Postgres {
        url: database.url.clone(),
        pool_size: None,
    };
    let rows = match tempfile::tempdir() {
        Ok(dir) => figures_on(ctx, "postgres", store, dir.path()).await,
        Err(error) => skipped("postgres", &format!("no temp dir: {error}")),
    };
    database.drop_now().await;
    rows
}

async fn on_cql(ctx: &BenchContext) -> Vec<Row> {
    let nodes = match ctx.services.scylla_nodes() {
        Ok(nodes) => nodes.to_vec(),
        Err(why) => return skipped("cql", &why),
    };
    let keyspace = services::scratch_name("node");
    let store = StoreConfig::Scylla {
        nodes: nodes.clone(),
        keyspace: keyspace.clone(),
        user: None,
        password: None,
        replication_factor: 1,
        datacenter: None,
        consistency: Default::default(),
        serial_consistency: Default::default(),
    };
    let rows = match tempfile::tempdir() {
        Ok(dir) => figures_on(ctx, "cql", store, dir.path()).await,
        Err(error) => skipped("cql", &format!("no temp dir: {error}")),
    };
    services::drop_keyspace(&nodes, &keyspace).await;
    rows
}

fn skipped(store: &str, why: &str) -> Vec<Row> {
    FIGURES
        .iter()
        .map(|figure| Row::skipped(SECTION, format!("{figure} ({store})"), why))
        .collect()
}

/// Every figure on a node with `store`.
async fn figures_on(
    ctx: &BenchContext,
    label: &str,
    store: StoreConfig,
    data_dir: &std::path::Path,
) -> Vec<Row> {
    let node = match RunningNode::start(&config(store, data_dir)).await {
        Ok(node) => node,
        Err(why) => return skipped(label, &why),
    };
    let rows = match figures(ctx, label, &node).await {
        Ok(rows) => rows,
        Err(why) => skipped(label, &why),
    };
    node.stop().await;
    rows
}

async fn figures(ctx: &BenchContext, label: &str, node: &RunningNode) -> Result<Vec<Row>, String> {
    let addr = node.addr;
    let connections = ctx.options.connections;
    let name = |figure: &str| format!("{figure} ({label})");
    let mut rows = Vec::new();

    let m = measure(ctx, addr, 2_000_000, |_: usize, _: u64| {
        vec![Call::get("/v1/products/SKU-MUG")]
    })
    .await?;
    rows.push(
        ctx.against_ceiling(Row::measured(SECTION, name("product read"), &m))
            .await,
    );

    let carts = Arc::new(new_carts(addr, connections, Some("SKU-MUG")).await?);
    for cart in carts.iter() {
        expect_ok(addr, &Call::get(format!("/v1/carts/{cart}"))).await?;
    }
    let m = measure(ctx, addr, 2_000_000, move |c: usize, _: u64| {
        vec![Call::get(format!("/v1/carts/{}", carts[c]))]
    })
    .await?;
    rows.push(
        ctx.against_ceiling(Row::measured(SECTION, name("warm cart read"), &m))
            .await,
    );

    let pool = Arc::new(new_carts(addr, connections * CARTS_PER_CONNECTION, None).await?);
    let per_cart = UNITS_PER_LINE * SKUS.len() as u64;
    let budget = per_cart * pool.len() as u64;
    let m = measure(ctx, addr, budget, move |c: usize, n: u64| {
        let cart = &pool[c * CARTS_PER_CONNECTION + (n / per_cart) as usize % CARTS_PER_CONNECTION];
        let sku = SKUS[(n % SKUS.len() as u64) as usize];
        let body = format!(r#"{{"sku":"{sku}","quantity":1}}"#);
        vec![Call::json(
            Method::POST,
            format!("/v1/carts/{cart}/items"),
            body,
        )]
    })
    .await?;
    rows.push(
        ctx.against_ceiling(Row::measured(SECTION, name("add-to-cart"), &m))
            .await,
    );

    let m = measure(ctx, addr, 2_000_000, |_: usize, _: u64| {
        vec![Call::empty(Method::POST, "/v1/carts")]
    })
    .await?;
    rows.push(
        ctx.against_ceiling(Row::measured(SECTION, name("cart create"), &m))
            .await,
    );

    rows.push(checkout(ctx, label, node).await?);
    Ok(rows)
}

/// The checkout figure with its durable writes per checkout.
async fn checkout(ctx: &BenchContext, label: &str, node: &RunningNode) -> Result<Row, String> {
    let addr = node.addr;
    let customers = Arc::new(customers(addr, ctx.options.connections).await?);
    let before = node.counts.snapshot();
    let m = measure(ctx, addr, 50_000, move |c: usize, n: u64| {
        let customer = &customers[c];
        let add = format!(r#"{{"sku":"{}","quantity":1}}"#, customer.sku);
        vec![
            Call::json(
                Method::POST,
                format!("/v1/carts/{}/items", customer.cart),
                add,
            )
            .bearer(&customer.token),
            Call::json(
                Method::POST,
                format!("/v1/carts/{}/checkout", customer.cart),
                CHECKOUT_BODY,
            )
            .bearer(&customer.token)
            .header(
                hyper::header::HeaderName::from_static("idempotency-key"),
                &format!("bench-{n}"),
            ),
        ]
    })
    .await?;
    let drained = drain_outbox(&node.runtime).await;
    let writes = node.counts.snapshot().since(&before);
    let row = Row::measured(SECTION, format!("checkout ({label})"), &m);
    let row = ctx.against_ceiling(row).await;
    Ok(row
        .with_note(writes_per_checkout(&writes, m.ops, m.ops + m.failed))
        .with_note(drained))
}

const CHECKOUT_BODY: &str = r#"{"shipping_address":{"name":"Bench Buyer","line1":"1 Load St","city":"Perf","postal_code":"10001","country":"US"},"payment":{"token":"tok_visa"}}"#;

/// "N durable writes per checkout (kind n, …)", the adds' own writes taken out of the carts'.
pub fn writes_per_checkout(writes: &WriteCounts, checkouts: u64, adds: u64) -> String {
    if checkouts == 0 {
        return "no checkout completed".to_owned();
    }
    let per = |n: u64| n as f64 / checkouts as f64;
    let mut kinds = Vec::new();
    let mut total = 0;
    for (kind, saves) in &writes.saves {
        let saves = if *kind == "cart" {
            saves.saturating_sub(adds)
        } else {
            *saves
        };
        total += saves;
        if saves > 0 {
            kinds.push(format!("{kind} {:.1}", per(saves)));
        }
    }
    format!(
        "{:.1} durable writes/checkout ({}), {:.1} events/checkout",
        per(total),
        kinds.join(", "),
        per(writes.outbox_entries)
    )
}

/// Wait (at most 30 s) until the relay has published every event, then a little longer for
/// the consumers' own writes; says how long it took.
async fn drain_outbox(runtime: &Runtime) -> String {
    let started = Instant::now();
    while runtime.outbox_pending() > 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pending = runtime.outbox_pending();
    let took = started.elapsed().as_millis();
    tokio::time::sleep(Duration::from_millis(500)).await;
    if pending == 0 {
        format!("outbox drained {took} ms after the last checkout")
    } else {
        format!("{pending} events still pending 30 s after the last checkout")
    }
}

async fn measure(
    ctx: &BenchContext,
    addr: SocketAddr,
    max_ops: u64,
    script: impl drive::Script,
) -> Result<Measurement, String> {
    drive::drive(addr, &ctx.load(max_ops), Arc::new(script))
        .await
        .map_err(|error| error.to_string())
}

fn config(store: StoreConfig, data_dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_owned(),
        store,
        rate_limit: None,
        admin: Some(AdminCredentials {
            email: ADMIN_EMAIL.to_owned(),
            password: Secret::new(ADMIN_PASSWORD),
        }),
        ..NodeConfig::default()
    }
}

/// A node serving in the background until [`RunningNode::stop`].
struct RunningNode {
    addr: SocketAddr,
    runtime: Runtime,
    counts: Counts,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningNode {
    async fn start(config: &NodeConfig) -> Result<Self, String> {
        let mut counts = None;
        let node = Node::build_with_store_layer(config, None, |store| {
            let (store, tally) = CountingStore::wrap(store);
            counts = Some(tally);
            store
        })
        .await
        .map_err(|error| format!("the node did not start: {error:#}"))?;
        let counts = counts.ok_or("the node never opened its store")?;
        let addr = node.http_addr();
        let runtime = node.runtime().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(node.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            runtime,
            counts,
            stop,
            running,
        })
    }

    /// Drain and stop the node, waiting for it.
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Ok(Err(error)) = self.running.await {
            eprintln!("bench: the node stopped with an error: {error:#}");
        }
    }
}

/// Send `call`; its JSON answer if 2xx, else an error naming the request.
async fn expect_ok(addr: SocketAddr, call: &Call) -> Result<Value, String> {
    let (status, body) = drive::request(addr, call).await?;
    if !status.is_success() {
        return Err(format!(
            "{} {} -> {status}: {}",
            call.method,
            call.path,
            String::from_utf8_lossy(&body)
        ));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|error| format!("{} {}: {error}", call.method, call.path))
}

fn field(value: &Value, name: &str) -> Result<String, String> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name:?} in {value}"))
}

/// `count` guest carts, each with one unit of `sku` when given.
async fn new_carts(
    addr: SocketAddr,
    count: usize,
    sku: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut carts = Vec::with_capacity(count);
    for _ in 0..count {
        let cart = field(
            &expect_ok(addr, &Call::empty(Method::POST, "/v1/carts")).await?,
            "id",
        )?;
        if let Some(sku) = sku {
            let body = json!({"sku": sku, "quantity": 1}).to_string();
            expect_ok(
                addr,
                &Call::json(Method::POST, format!("/v1/carts/{cart}/items"), body),
            )
            .await?;
        }
        carts.push(cart);
    }
    Ok(carts)
}

struct Customer {
    token: String,
    cart: String,
    sku: &'static str,
}

/// Plenty of stock on every SKU (as the admin), and `count` signed-in customers.
async fn customers(addr: SocketAddr, count: usize) -> Result<Vec<Customer>, String> {
    let login = |email: &str, password: &str| {
        Call::json(
            Method::POST,
            "/v1/auth/login",
            json!({"email": email, "password": password}).to_string(),
        )
    };
    let admin = field(
        &expect_ok(addr, &login(ADMIN_EMAIL, ADMIN_PASSWORD)).await?,
        "access_token",
    )?;
    for sku in SKUS {
        let body = json!({"warehouse": "main", "on_hand": 10_000_000}).to_string();
        let call =
            Call::json(Method::PUT, format!("/v1/admin/inventory/{sku}"), body).bearer(&admin);
        expect_ok(addr, &call).await?;
    }
    let mut customers = Vec::with_capacity(count);
    for i in 0..count {
        let email = format!("buyer{i}@bench.test");
        let password = "bench-password-1";
        let signup = json!({"email": email, "password": password, "name": "Buyer"}).to_string();
        expect_ok(addr, &Call::json(Method::POST, "/v1/users", signup)).await?;
        let session = expect_ok(addr, &login(&email, password)).await?;
        customers.push(Customer {
            token: field(&session, "access_token")?,
            cart: field(&session, "cart_id")?,
            sku: SKUS[i % SKUS.len()],
        });
    }
    Ok(customers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_adds_writes_are_not_the_checkouts() {
        let writes = WriteCounts {
            saves: BTreeMap::from([("cart", 30), ("checkout", 80), ("order", 20)]),
            outbox_entries: 50,
        };
        let note = writes_per_checkout(&writes, 10, 10);
        assert_eq!(
            note,
            "12.0 durable writes/checkout (cart 2.0, checkout 8.0, order 2.0), 5.0 events/checkout"
        );
        assert_eq!(writes_per_checkout(&writes, 0, 0), "no checkout completed");
    }
}
