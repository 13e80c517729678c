//! Store faults seen from a client: the node's store (PostgreSQL) is reached through a TCP
//! proxy the test controls. While it is cut or black-holed, requests that need the store fail
//! fast — `503` problem+json with `Retry-After` when nothing was applied, `504
//! outcome-unknown` for a write already on its way to the store — the node stays up, and it
//! recovers by itself when the store returns, with every acknowledged write intact.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_testkit::TcpProxy;
use serde_json::json;

use crate::stores::{Provisioned, TestStore};
use crate::support::{Api, NodeProcess, wait_until};

/// A request that needs the store must fail within this while it is unreachable.
const FAIL_FAST: Duration = Duration::from_secs(4);

fn postgres_upstream(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().expect("postgres url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the fault test needs a tcp host, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolve postgres")
        .find(SocketAddr::is_ipv4)
        .expect("ipv4 address")
}

/// A node on a fresh PostgreSQL database that it reaches through a [`TcpProxy`] the test
/// controls; `None` when PostgreSQL is not configured (the test is skipped).
pub(crate) async fn node_behind_store_proxy(
    data_dir: &Path,
) -> Option<(NodeProcess, Arc<TcpProxy>, Provisioned)> {
    let (spec, provisioned) = TestStore::Postgres.provision(data_dir).await?;
    let Provisioned::Postgres {
        admin_url,
        database,
    } = &provisioned
    else {
        unreachable!("provisioned postgres");
    };
    let proxy = TcpProxy::start(postgres_upstream(admin_url)).await;
    let user = admin_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .unwrap_or("postgres");
    let proxied = format!("postgres://{user}@{}/{database}", proxy.addr);
    let node = NodeProcess::start(spec.env("EMPORIUM_STORE", &proxied)).await;
    Some((node, proxy, provisioned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_gives_fast_503s_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let Some((node, proxy, provisioned)) = node_behind_store_proxy(dir.path()).await else {
        return;
    };
    let api = Api::new(&node);

    let cart = api.new_cart().await;
    let items = format!("/v1/carts/{cart}/items");
    let added = api
        .post(&items, &json!({"sku": "SKU-MUG", "quantity": 2}))
        .await;
    assert_eq!(added.status, 200);

    for fault in ["cut", "black hole"] {
        match fault {
            "cut" => proxy.cut(),
            _ => proxy.delay(60_000),
        }
        // A write to a cart and a read of a cart that is not active both need the store.
        let started = Instant::now();
        let write = api
            .post(&items, &json!({"sku": "SKU-PEN", "quantity": 1}))
            .await;
        let write_took = started.elapsed();
        if write.status == 504 {
            // The write reached the wire towards the store: black-holed, it may apply when
            // the network moves again; sent on a pooled connection in the instant the cut
            // closed it, the adapter cannot know whether it arrived. Either way the answer
            // is "unknown". (A 503 is right when the adapter gave up before sending it,
            // e.g. waiting for a fresh connection.)
            assert_eq!(write.body["type"], "/problems/outcome-unknown", "{write:?}");
        } else {
            write.expect_problem(503);
            assert!(write.headers.contains_key("retry-after"), "{write:?}");
        }
        assert!(
            write_took < FAIL_FAST,
            "{fault}: write failed after {write_took:?}"
        );
        let started = Instant::now();
        api.post_empty("/v1/carts").await.expect_problem(503);
        assert!(
            started.elapsed() < FAIL_FAST,
            "{fault}: create failed after {:?}",
            started.elapsed()
        );
        assert_eq!(api.get("/healthz").await.status, 200, "the node stays up");

        proxy.restore().await;
        let recovered = wait_until(Duration::from_secs(15), || {
            let api = api.clone();
            let items = items.clone();
            async move {
                api.post(&items, &json!({"sku": "SKU-CAP", "quantity": 1}))
                    .await
                    .status
                    == 200
            }
        })
        .await;
        assert!(
            recovered,
            "{fault}: the node recovers by itself when the store returns"
        );
    }

    // Acknowledged writes are intact, failed ones left nothing half-written: the pen was never
    // acknowledged; the cap was added once per recovery (two acknowledged adds).
    let cart_now = api.get(&format!("/v1/carts/{cart}")).await;
    let quantity_of = |sku: &str| {
        cart_now.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["sku"] == sku)
            .and_then(|line| line["quantity"].as_i64())
    };
    assert_eq!(quantity_of("SKU-MUG"), Some(2));
    assert_eq!(quantity_of("SKU-CAP"), Some(2));
    let pen = quantity_of("SKU-PEN");
    // A write whose outcome was unknown (cut mid-flight) may have applied once, never twice.
    assert!(pen.is_none() || pen == Some(1), "pen: {pen:?}");
    let status = node.terminate().await;
    assert!(status.success());
    provisioned.drop_store().await;
}
