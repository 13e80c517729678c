//! Compare-and-set saves per second against PostgreSQL with 1, 8, 32 and 64 concurrent
//! writers, each on its own key, 2 s per configuration (and at most [`MAX_OPS_PER_RUN`]
//! saves), three rounds per writer count.
//!
//! Two shapes of save are measured, alternating within each round:
//! - `cas writes`: a 256-byte state alone (one conditional statement, autocommit);
//! - `cas writes+outbox`: the same plus one 64-byte outbox entry, like a typical actor turn
//!   (one statement too: the outbox insert is a CTE joined to the conditional write). The
//!   outbox is drained between configurations so it does not grow.
//!
//! After each writer count a line gives the medians and the ratio of the second to the
//! first (`postgres medians: writers=N … ratio outbox/plain=…`; issue 14's target is ≥ 0.8).
//!
//! The server is `EMPORIUM_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached the bench says
//! so and exits 0. It works in its own schema `emp_bench_<pid>`, dropped at the end. The
//! store uses its default options (pool of 16), so 64 writers also measure pool queueing.
//!
//! Output, one line per configuration:
//! `postgres cas writes: writers=N ops_per_sec=X p50_ms=… p99_ms=… conflicts=0 errors=0`.

use std::sync::Arc;
use std::time::Duration;

use emporium_store_postgres::{PostgresOptions, PostgresStore};
use emporium_testkit::cas_bench::{self, Budget, CasOptions};

const ROUNDS: usize = 3;
const MAX_OPS_PER_RUN: u64 = 2_000_000;
const WRITERS: [usize; 4] = [1, 8, 32, 64];
const CAS_WRITES: CasOptions = CasOptions {
    label: "cas writes",
    run_for: Duration::from_secs(2),
    budget: Budget::PerRun(MAX_OPS_PER_RUN),
    state_size: 256,
    with_outbox: false,
    load_before_save: false,
};

async fn run(store: Arc<PostgresStore>) -> Result<(), String> {
    let with_outbox = CasOptions {
        label: "cas writes+outbox",
        with_outbox: true,
        ..CAS_WRITES
    };
    let dyn_store: Arc<dyn emporium_runtime::StateStore> = store;
    for writers in WRITERS {
        // Rounds alternate the two shapes, so a machine busy with something else for a few
        // seconds weighs on both; the ratio uses the median of each.
        let mut rates: [Vec<f64>; 2] = Default::default();
        for _ in 0..ROUNDS {
            for (n, options) in [&CAS_WRITES, &with_outbox].into_iter().enumerate() {
                let outcome = cas_bench::measure(&dyn_store, writers, options).await?;
                println!("{}", outcome.line("postgres", options.label));
                rates[n].push(outcome.ops_per_sec());
                drain_outbox(&dyn_store).await?;
            }
        }
        let [plain, outbox] = rates.map(median);
        println!(
            "postgres medians: writers={writers} cas_writes={plain:.0} cas_writes+outbox={outbox:.0} \
             ratio outbox/plain={:.2}",
            outbox / plain
        );
    }
    Ok(())
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(0.0)
}

async fn drain_outbox(store: &Arc<dyn emporium_runtime::StateStore>) -> Result<(), String> {
    loop {
        let pending = store
            .outbox_pending(10_000)
            .await
            .map_err(|error| error.to_string())?;
        if pending.is_empty() {
            return Ok(());
        }
        store
            .outbox_ack(&pending)
            .await
            .map_err(|error| error.to_string())?;
    }
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
