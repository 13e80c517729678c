//! Acknowledged writes survive `kill -9`: the node is killed mid-load, restarted on the same
//! data dir, and every write it acknowledged is found.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::stores::on_every_store;
use crate::support::{Api, NodeProcess, NodeSpec};

mod kill_9_on {
    super::on_every_store!(super::acknowledged_writes_survive_kill_9);
}

/// Writers and the bound on their work: the load stops by count, by time, or at the kill.
const WRITERS: usize = 16;
const MAX_WRITES_PER_WRITER: usize = 2_000;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1500);

const SKUS: [&str; 4] = ["SKU-MUG", "SKU-PEN", "SKU-CAP", "SKU-CABLE"];

/// What one writer knows at the end: the last acknowledged quantity per SKU of its cart,
/// and the one write it may have sent without seeing the answer.
struct WriterLog {
    cart: String,
    acknowledged: HashMap<&'static str, i64>,
    unanswered: Option<(&'static str, i64)>,
}

async fn write_until_killed(api: Api, writer: usize) -> WriterLog {
    let cart = api.new_cart().await;
    let mut log = WriterLog {
        cart: cart.clone(),
        acknowledged: HashMap::new(),
        unanswered: None,
    };
    for sku in SKUS {
        let added = api.add_item(&cart, sku, 1).await;
        assert_eq!(added.status, 200);
        log.acknowledged.insert(sku, 1);
    }
    for step in 0..MAX_WRITES_PER_WRITER {
        let sku = SKUS[(writer + step) % SKUS.len()];
        let quantity = (step % 90 + 2) as i64;
        log.unanswered = Some((sku, quantity));
        let path = format!("/v1/carts/{cart}/items/{sku}");
        let body = json!({"quantity": quantity});
        let request = api.put(&path, &body);
        match tokio::time::timeout(Duration::from_secs(5), request).await {
            Ok(Ok(answer)) if answer.status == 200 => {
                log.acknowledged.insert(sku, quantity);
                log.unanswered = None;
            }
            _ => break, // the node is gone
        }
    }
    log
}

async fn acknowledged_writes_survive_kill_9(spec: NodeSpec) {
    let node = NodeProcess::start(spec).await;
    let api = Api::new(&node);
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_until_killed(api.clone(), writer)))
        .collect();
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    let spec = node.kill9().await;
    let mut logs = Vec::new();
    for writer in writers {
        logs.push(writer.await.expect("writer task"));
    }
    let acknowledged_puts: usize = logs.iter().map(|log| log.acknowledged.len()).sum();
    assert!(acknowledged_puts >= WRITERS * SKUS.len());

    let node = NodeProcess::start(spec).await;
    let api = Api::new(&node);
    for log in &logs {
        let answer = api.get(&format!("/v1/carts/{}", log.cart)).await;
        assert_eq!(answer.status, 200, "cart {} survived", log.cart);
        let items = answer.body["items"].as_array().unwrap();
        for (sku, quantity) in &log.acknowledged {
            let found = items
                .iter()
                .find(|line| line["sku"] == *sku)
                .and_then(|line| line["quantity"].as_i64())
                .unwrap_or_else(|| panic!("line {sku} of {} survived", log.cart));
            // The one write sent without an answer may have landed too (durable, but its
            // reply was lost to the kill); any other value is a lost acknowledged write.
            let unanswered = log
                .unanswered
                .filter(|(unanswered_sku, _)| unanswered_sku == sku)
                .map(|(_, quantity)| quantity);
            assert!(
                found == *quantity || Some(found) == unanswered,
                "{}/{sku}: acknowledged {quantity}, in flight {unanswered:?}, found {found}",
                log.cart
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_keeping_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(NodeSpec::embedded(dir.path())).await;
    let api = Api::new(&node);
    let cart = api.new_cart().await;
    let path = format!("/v1/carts/{cart}/items");
    let added = api
        .post(&path, &json!({"sku": "SKU-PEN", "quantity": 3}))
        .await;
    assert_eq!(added.status, 200);
    let spec = node.spec.clone();
    let status = node.terminate().await;
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let node = NodeProcess::start(spec).await;
    let cart = Api::new(&node).get(&format!("/v1/carts/{cart}")).await;
    assert_eq!(cart.body["items"][0]["quantity"], 3);
}
