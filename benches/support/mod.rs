//! What the HTTP benches share: an in-process node on the embedded store, configured for a
//! bench, and its lifetime.

use std::path::Path;

use emporium::node::Node;
use emporium_config::{NatsStreamConfig, NodeConfig, StoreConfig};
use emporium_runtime::Runtime;

/// A node on the embedded store in `dir`, on a free port. Every request of a bench comes from
/// one client address, so the per-client rate limit is off.
pub fn bench_config(dir: &Path) -> NodeConfig {
    NodeConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.to_owned(),
        store: StoreConfig::Embedded {
            path: dir.join("store.redb"),
        },
        rate_limit: None,
        // Events on the test services' NATS when it is named (a stream per run), else the
        // in-process bus.
        nats_url: std::env::var("EMPORIUM_TEST_NATS").ok(),
        nats_stream: NatsStreamConfig {
            name: format!("EMPORIUM_BENCH_{}", std::process::id()),
            subject_prefix: format!("bench{}", std::process::id()),
            ..NatsStreamConfig::default()
        },
        ..NodeConfig::default()
    }
}

/// A node serving in the background until [`RunningNode::stop`] (or until this is dropped).
pub struct RunningNode {
    pub base: String,
    /// The node's runtime (the checkout bench reads its outbox depth).
    #[allow(dead_code)] // each bench compiles this module; only some read it
    pub runtime: Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningNode {
    pub async fn start(config: &NodeConfig) -> Self {
        let node = Node::build(config, None).await.expect("node builds");
        let base = format!("http://{}", node.http_addr());
        let runtime = node.runtime().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(node.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            runtime,
            stop,
            running,
        }
    }

    /// Drain and stop the node, waiting for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.running.await;
    }
}
