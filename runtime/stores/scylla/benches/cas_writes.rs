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

use bytes::Bytes;
use emporium_runtime::store::{OutboxEntry, StateWrite};
use emporium_runtime::{ActorId, StateStore, intern_kind};
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};

const RUN_FOR: Duration = Duration::from_secs(3);
const WRITERS: [usize; 3] = [1, 16, 64];

#[derive(Default)]
struct Tally {
    ops: u64,
    conflicts: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

async fn writer(store: Arc<ScyllaStore>, id: ActorId, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut version = 0u64;
    let state = Bytes::from(vec![7u8; 256]);
    let payload = Bytes::from(vec![9u8; 64]);
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let write = StateWrite {
            expected_version: version,
            state: state.clone(),
            outbox: vec![OutboxEntry {
                event_id: format!("{}-{}-{n}", id.kind, id.key),
                topic: "bench.cas".to_owned(),
                payload: payload.clone(),
            }],
            reminders: Vec::new(),
        };
        let started = Instant::now();
        match store.save(&id, write).await {
            Ok(saved) => {
                version = saved;
                tally.ops += 1;
                tally
                    .latencies_us
                    .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Err(error) if error.is_conflict() => {
                tally.conflicts += 1;
                version = store
                    .load(&id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |record| record.version);
            }
            Err(error) => {
                tally.errors += 1;
                eprintln!("save failed: {error}");
                version = store
                    .load(&id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |record| record.version);
            }
        }
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

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
    let kind = intern_kind("bench");
    for (round, writers) in WRITERS.into_iter().enumerate() {
        let deadline = Instant::now() + RUN_FOR;
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let id = ActorId::new(kind, format!("r{round}-w{w}"));
                tokio::spawn(writer(Arc::clone(&store), id, deadline))
            })
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            let tally = task.await.map_err(|error| error.to_string())?;
            total.ops += tally.ops;
            total.conflicts += tally.conflicts;
            total.errors += tally.errors;
            total.latencies_us.extend(tally.latencies_us);
        }
        let elapsed = started.elapsed().as_secs_f64();
        total.latencies_us.sort_unstable();
        println!(
            "scylla cas writes: writers={writers} ops_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} conflicts={} errors={}",
            total.ops as f64 / elapsed,
            percentile(&total.latencies_us, 0.50),
            percentile(&total.latencies_us, 0.99),
            total.conflicts,
            total.errors,
        );
        // Drain the outbox so the next configuration starts from the same state.
        loop {
            let pending = store
                .outbox_pending(10_000)
                .await
                .map_err(|error| error.to_string())?;
            if pending.is_empty() {
                break;
            }
            store
                .outbox_ack(&pending)
                .await
                .map_err(|error| error.to_string())?;
        }
    }
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
