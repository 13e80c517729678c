//! Compare-and-set saves per second (each one a Paxos round, i.e. a lightweight transaction)
//! with 1, 16 and 64 concurrent writers, each on its own key, about 3 s per configuration.
//!
//! Needs `SCYLLA_NODES` (e.g. `127.0.0.1:9042`); without it the bench says so and exits 0.
//! Uses its own keyspace (`emp_bench_<pid>`) and drops it at the end. Each save carries a
//! 256-byte state and one 64-byte outbox entry, like a typical actor turn; the outbox is
//! acknowledged between configurations so it does not grow.
//!
//! Output, one line per configuration:
//! `scylla cas writes: writers=N ops_per_sec=X p50_ms=… p99_ms=… conflicts=0 errors=0`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_store_scylla::{ScyllaConfig, ScyllaStore};
use emporium_testkit::cas_bench::{self, Budget, CasOptions};

const WRITERS: [usize; 3] = [1, 16, 64];
const OPTIONS: CasOptions = CasOptions {
    label: "cas writes",
    run_for: Duration::from_secs(3),
    budget: Budget::Unbounded,
    state_size: 256,
    with_outbox: true,
    load_before_save: false,
};

async fn run(nodes: Vec<String>) -> Result<(), String> {
    let keyspace = format!("emp_bench_{}", std::process::id());
    let config = ScyllaConfig::new(nodes, keyspace).map_err(|error| error.to_string())?;
    let connected = Instant::now();
    let store = Arc::new(
        ScyllaStore::connect(config)
            .await
            .map_err(|error| error.to_string())?,
    );
    eprintln!(
        "connected and created the schema in {:.1}s (datacenter {})",
        connected.elapsed().as_secs_f64(),
        store.datacenter()
    );
    cas_bench::run(store.clone(), "scylla", &WRITERS, &OPTIONS).await?;
    store
        .drop_keyspace()
        .await
        .map_err(|error| error.to_string())?;
    Ok(())
}

fn main() {
    let Ok(nodes) = std::env::var("SCYLLA_NODES") else {
        println!("scylla cas writes: skipped (SCYLLA_NODES not set)");
        return;
    };
    let nodes: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scylla cas writes: cannot start a runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(nodes)) {
        eprintln!("scylla cas writes: failed: {error}");
        std::process::exit(1);
    }
}
