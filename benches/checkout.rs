//! Checkout benchmark: whole checkout sagas per second through the HTTP edge of an
//! in-process node (embedded store), next to a plain hyper hello-world measured in the same
//! run with the same client and concurrency, so the figure is quoted as a ratio.
//!
//! One checkout = one HTTP request running the saga: lock the cart, reserve the stock,
//! authorize with the built-in test gateway, place the order, commit the stock, capture,
//! mark paid, empty the cart: 17 durable writes across six actor kinds for a one-line cart
//! (8 of them the saga's own checkpoints). Each client
//! is one signed-in customer who, per cycle, puts one item in their cart (a separate
//! request, counted in the wall time, so the rate is a lower bound on sagas alone) and
//! checks it out. Clients buy different SKUs round-robin (stock is plentiful), so the hot
//! spot is the store, not one SKU actor.
//!
//! Bounded by count and time. Run: `cargo bench -p emporium --bench checkout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emporium_config::{AdminCredentials, NodeConfig, Secret};
use serde_json::{Value, json};
use support::{RunningNode, bench_config};

mod support;

/// Concurrent clients (customers).
const CLIENTS: usize = 16;
/// Each measurement stops at this many operations or this much time.
const MAX_CHECKOUTS: usize = 20_000;
const MAX_HELLOS: usize = 200_000;
const WINDOW: Duration = Duration::from_secs(8);

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const SKUS: &[&str] = &[
    "SKU-TEE-BLK",
    "SKU-TEE-WHT",
    "SKU-HOODIE",
    "SKU-CAP",
    "SKU-MUG",
    "SKU-KETTLE",
    "SKU-PAN",
    "SKU-NOTEBOOK",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    emporium::install_crypto_provider();
    let hello = emporium_testkit::hello_world::start()
        .await
        .expect("hello-world server");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = RunningNode::start(&NodeConfig {
        admin: Some(AdminCredentials {
            email: ADMIN_EMAIL.to_owned(),
            password: Secret::new(ADMIN_PASSWORD),
        }),
        ..bench_config(dir.path())
    })
    .await;
    let base = node.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let hello_rps = hello_world(&client, &format!("http://{hello}/")).await;
    let customers = prepare(&client, &base).await;
    // The outbox depth the relay lets build up while checkouts run, sampled every 10 ms.
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let (runtime, samples) = (node.runtime.clone(), Arc::clone(&samples));
        tokio::spawn(async move {
            loop {
                let depth = runtime.outbox_pending();
                samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(depth);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (done, failed, secs) = checkouts(&client, &base, customers).await;
    let last_checkout = Instant::now();
    while node.runtime.outbox_pending() > 0 && last_checkout.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained_ms = last_checkout.elapsed().as_secs_f64() * 1000.0;
    sampler.abort();
    let samples = samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mean = samples.iter().sum::<usize>() as f64 / samples.len().max(1) as f64;
    println!(
        "events: outbox depth during the run mean {mean:.1}, max {} events; every event published {drained_ms:.0} ms after the last checkout ({})",
        samples.iter().max().copied().unwrap_or(0),
        if std::env::var("EMPORIUM_TEST_NATS").is_ok() {
            "NATS JetStream"
        } else {
            "in-process bus"
        },
    );
    let rate = done as f64 / secs;
    println!(
        "checkout: {done} checkouts in {secs:.2} s = {rate:.0}/s ({failed} failed); hello-world: {hello_rps:.0} req/s; ratio {:.4} ({} clients)",
        rate / hello_rps,
        CLIENTS
    );
    node.stop().await;
}

/// Hello-world requests per second with the same client and concurrency.
async fn hello_world(client: &reqwest::Client, url: &str) -> f64 {
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, issued, url) = (client.clone(), Arc::clone(&issued), url.to_owned());
            tokio::spawn(async move {
                let mut done = 0usize;
                while issued.fetch_add(1, Ordering::Relaxed) < MAX_HELLOS
                    && started.elapsed() < WINDOW
                {
                    if let Ok(response) = client.get(&url).send().await {
                        let _ = response.bytes().await;
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    let rps = done as f64 / secs;
    println!("hello-world: {done} requests in {secs:.2} s = {rps:.0} req/s");
    rps
}

struct Customer {
    token: String,
    cart: String,
    sku: &'static str,
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

/// Plenty of stock on every SKU, and one signed-in customer per client.
async fn prepare(client: &reqwest::Client, base: &str) -> Vec<Customer> {
    let admin = post(
        client,
        format!("{base}/v1/auth/login"),
        None,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await["access_token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    for sku in SKUS {
        let response = client
            .put(format!("{base}/v1/admin/inventory/{sku}"))
            .bearer_auth(&admin)
            .json(&json!({"warehouse": "main", "on_hand": 1_000_000}))
            .send()
            .await
            .expect("set stock");
        assert!(response.status().is_success(), "{}", response.status());
    }
    let mut customers = Vec::new();
    for i in 0..CLIENTS {
        let email = format!("buyer{i}@bench.test");
        let password = "bench-password-1";
        post(
            client,
            format!("{base}/v1/users"),
            None,
            json!({"email": email, "password": password, "name": "Buyer"}),
        )
        .await;
        let login = post(
            client,
            format!("{base}/v1/auth/login"),
            None,
            json!({"email": email, "password": password}),
        )
        .await;
        customers.push(Customer {
            token: login["access_token"].as_str().expect("token").to_owned(),
            cart: login["cart_id"].as_str().expect("cart").to_owned(),
            sku: SKUS[i % SKUS.len()],
        });
    }
    customers
}

/// Checkouts done, failed, and the seconds they took.
async fn checkouts(
    client: &reqwest::Client,
    base: &str,
    customers: Vec<Customer>,
) -> (usize, usize, f64) {
    let issued = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = customers
        .into_iter()
        .map(|customer| {
            let (client, base) = (client.clone(), base.to_owned());
            let (issued, failed) = (Arc::clone(&issued), Arc::clone(&failed));
            tokio::spawn(async move {
                let mut done = 0usize;
                let mut n = 0usize;
                while issued.fetch_add(1, Ordering::Relaxed) < MAX_CHECKOUTS
                    && started.elapsed() < WINDOW
                {
                    n += 1;
                    let added = client
                        .post(format!("{base}/v1/carts/{}/items", customer.cart))
                        .bearer_auth(&customer.token)
                        .json(&json!({"sku": customer.sku, "quantity": 1}))
                        .send()
                        .await;
                    let checkout = client
                        .post(format!("{base}/v1/carts/{}/checkout", customer.cart))
                        .bearer_auth(&customer.token)
                        .header("Idempotency-Key", format!("bench-{n}"))
                        .json(&json!({
                            "shipping_address": {
                                "name": "Bench Buyer", "line1": "1 Load St", "city": "Perf",
                                "postal_code": "10001", "country": "US"
                            },
                            "payment": {"token": "tok_visa"}
                        }))
                        .send()
                        .await;
                    match (added, checkout) {
                        (Ok(_), Ok(response)) if response.status().as_u16() == 201 => {
                            let _ = response.bytes().await;
                            done += 1;
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    (
        done,
        failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}
