//! HTTP edge benchmark: a node on the embedded store versus a plain hyper hello-world,
//! measured in the same run with the same client, so figures are quoted as ratios.
//!
//! Scenarios (each bounded by count and time):
//! - `hello-world`: GET on a bare hyper 1 server (the ceiling of this machine and client);
//! - `product read`: GET /v1/products/SKU-MUG (one hot actor, no write);
//! - `cart create`: POST /v1/carts, each a new cart (activation + one durable write);
//! - `cart write`: PUT a line's quantity on 64 existing carts (one durable write each);
//! - `activation (runtime)`: first asks to fresh keys through the runtime, no HTTP.
//!
//! Run: `cargo bench -p emporium --bench edge`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{RunningNode, bench_config};

mod support;

/// Concurrent client connections.
const CLIENTS: usize = 32;
/// Each scenario stops at this many requests or this much time, whichever comes first.
const MAX_REQUESTS: usize = 200_000;
const WINDOW: Duration = Duration::from_secs(3);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    emporium::install_crypto_provider();
    let hello = emporium_testkit::hello_world::start()
        .await
        .expect("hello-world server");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = RunningNode::start(&bench_config(dir.path())).await;
    let base = node.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");

    let hello_url = format!("http://{hello}/");
    let hello_rps = measure("hello-world", &client, move |_| {
        (reqwest::Method::GET, hello_url.clone(), None)
    })
    .await;
    let product_url = format!("{base}/v1/products/SKU-MUG");
    let read_rps = measure("product read", &client, move |_| {
        (reqwest::Method::GET, product_url.clone(), None)
    })
    .await;
    let carts_url = format!("{base}/v1/carts");
    let create_rps = measure("cart create (activation + write)", &client, move |_| {
        (reqwest::Method::POST, carts_url.clone(), None)
    })
    .await;
    let carts = Arc::new(prepare_carts(&client, &base, 64).await);
    let write_rps = measure("cart write", &client, move |n| {
        let cart = &carts[n % carts.len()];
        let body = format!(r#"{{"quantity":{}}}"#, n % 90 + 1);
        (
            reqwest::Method::PUT,
            format!("{base}/v1/carts/{cart}/items/SKU-MUG"),
            Some(body),
        )
    })
    .await;

    println!();
    for (name, rps) in [
        ("product read", read_rps),
        ("cart create", create_rps),
        ("cart write", write_rps),
    ] {
        println!(
            "edge: {name}: {rps:.0} req/s = {:.2} x hello-world ({hello_rps:.0} req/s)",
            rps / hello_rps
        );
    }
    node.stop().await;
}

type Target = (reqwest::Method, String, Option<String>);

async fn measure(
    name: &str,
    client: &reqwest::Client,
    target: impl Fn(usize) -> Target + Send + Sync + 'static,
) -> f64 {
    let target = Arc::new(target);
    let issued = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, target, issued, failed) = (
                client.clone(),
                Arc::clone(&target),
                Arc::clone(&issued),
                Arc::clone(&failed),
            );
            tokio::spawn(async move {
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= MAX_REQUESTS || started.elapsed() >= WINDOW {
                        break;
                    }
                    let (method, url, body) = target(n);
                    let mut request = client.request(method, url);
                    if let Some(body) = body {
                        request = request
                            .header("content-type", "application/json")
                            .body(body);
                    }
                    let ok = match request.send().await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            let _ = response.bytes().await;
                            ok
                        }
                        Err(_) => false,
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let done = issued.load(Ordering::Relaxed).min(MAX_REQUESTS + CLIENTS) - CLIENTS;
    let rps = done as f64 / secs;
    println!(
        "edge: {name}: {done} requests in {secs:.2} s = {rps:.0} req/s, failed {}",
        failed.load(Ordering::Relaxed)
    );
    rps
}

async fn prepare_carts(client: &reqwest::Client, base: &str, count: usize) -> Vec<String> {
    let mut carts = Vec::new();
    for _ in 0..count {
        let created: serde_json::Value = client
            .post(format!("{base}/v1/carts"))
            .send()
            .await
            .expect("create cart")
            .json()
            .await
            .expect("cart json");
        let id = created["id"].as_str().expect("cart id").to_owned();
        client
            .post(format!("{base}/v1/carts/{id}/items"))
            .json(&serde_json::json!({"sku": "SKU-MUG", "quantity": 1}))
            .send()
            .await
            .expect("add item");
        carts.push(id);
    }
    carts
}
