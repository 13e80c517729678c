//! Compare-and-set saves per second against PostgreSQL with 1, 16 and 64 concurrent
//! writers, each on its own key, about 3 s per configuration (and at most
//! [`MAX_OPS_PER_RUN`] saves).
//!
//! Two shapes of save are measured:
//! - `cas writes`: a 256-byte state alone (one conditional statement, autocommit);
//! - `cas writes+outbox`: the same plus one 64-byte outbox entry (a transaction: BEGIN,
//!   conditional write, outbox insert, COMMIT), like a typical actor turn. The outbox is
//!   drained between configurations so it does not grow.
//!
//! The server is `EMPORIUM_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached the bench says
//! so and exits 0. It works in its own schema `emp_bench_<pid>`, dropped at the end. The
//! store uses its default options (pool of 16), so 64 writers also measure pool queueing.
//!
//! Output, one line per configuration:
//! `postgres cas writes: writers=N ops_per_sec=X p50_ms=… p99_ms=… conflicts=0 errors=0`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_runtime::store::{OutboxEntry, StateWrite};
use emporium_runtime::{ActorId, StateStore, intern_kind};
use emporium_store_postgres::{PostgresOptions, PostgresStore};

const RUN_FOR: Duration = Duration::from_secs(3);
const MAX_OPS_PER_RUN: u64 = 2_000_000;
const WRITERS: [usize; 3] = [1, 16, 64];

#[derive(Default)]
struct Tally {
    ops: u64,
    conflicts: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

async fn writer(
    store: Arc<PostgresStore>,
    id: ActorId,
    with_outbox: bool,
    deadline: Instant,
    budget: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut version = 0u64;
    let state = Bytes::from(vec![7u8; 256]);
    let payload = Bytes::from(vec![9u8; 64]);
    let mut n = 0u64;
    while Instant::now() < deadline && n < budget {
        n += 1;
        let outbox = if with_outbox {
            vec![OutboxEntry {
                event_id: format!("{}-{}-{n}", id.kind, id.key),
                topic: "bench.cas".to_owned(),
                payload: payload.clone(),
            }]
        } else {
            Vec::new()
        };
        let write = StateWrite {
            expected_version: version,
            state: state.clone(),
            outbox,
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
            Err(error) => {
                if error.is_conflict() {
                    tally.conflicts += 1;
                } else {
                    tally.errors += 1;
                    eprintln!("save failed: {error}");
                }
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

async fn run(store: Arc<PostgresStore>) -> Result<(), String> {
    let kind = intern_kind("bench");
    for with_outbox in [false, true] {
        let label = if with_outbox {
            "cas writes+outbox"
        } else {
            "cas writes"
        };
        for writers in WRITERS {
            let deadline = Instant::now() + RUN_FOR;
            let budget = MAX_OPS_PER_RUN / writers as u64;
            let started = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let id = ActorId::new(kind, format!("{label}-{writers}-w{w}"));
                    tokio::spawn(writer(
                        Arc::clone(&store),
                        id,
                        with_outbox,
                        deadline,
                        budget,
                    ))
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
                "postgres {label}: writers={writers} ops_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} conflicts={} errors={}",
                total.ops as f64 / elapsed,
                percentile(&total.latencies_us, 0.50),
                percentile(&total.latencies_us, 0.99),
                total.conflicts,
                total.errors,
            );
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
    }
    Ok(())
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = url
        .parse::<tokio_postgres::Config>()?
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("EMPORIUM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("emp_bench_{}", std::process::id());
    let options = PostgresOptions {
        schema: schema.clone(),
        ..PostgresOptions::default()
    };
    let store = match PostgresStore::connect(&url, options).await {
        Ok(store) => Arc::new(store),
        Err(error) if error.is_unavailable() => {
            println!("postgres cas writes: skipped: postgres at {url} unreachable: {error}");
            return;
        }
        Err(error) => {
            eprintln!("postgres cas writes: cannot open the store: {error}");
            std::process::exit(1);
        }
    };
    let outcome = run(Arc::clone(&store)).await;
    store.close();
    if let Err(error) = drop_schema(&url, &schema).await {
        eprintln!("could not drop schema {schema}: {error}");
    }
    if let Err(error) = outcome {
        eprintln!("postgres cas writes: {error}");
        std::process::exit(1);
    }
}
