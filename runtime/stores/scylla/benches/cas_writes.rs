//! Compare-and-set saves per second (each one a Paxos round, i.e. a lightweight transaction)
//! with 1, 8, 32 and 64 concurrent writers, each on its own key, 2 s per configuration,
//! beside the **raw LWT rate of the same node** measured in the same run. Each writer count
//! runs three rounds of the three shapes below, alternating, and reports their medians.
//!
//! Needs `SCYLLA_NODES` (e.g. `127.0.0.1:9042`); without it the bench says so and exits 0.
//! Uses its own keyspace (`emp_bench_<pid>`) and drops it at the end. For each writer count,
//! one after the other:
//! - `raw lwt`: the baseline, no Emporium code: a session of the driver's own (default
//!   token-aware policy), one prepared `INSERT … IF NOT EXISTS` per key then prepared
//!   `UPDATE raw_lwt SET version = ?, state = ? WHERE key = ? IF version = ?`, at the
//!   store's levels (`LOCAL_QUORUM`, serial `LOCAL_SERIAL`), 256-byte state;
//! - `cas writes`: the store's save of a 256-byte state alone;
//! - `cas writes+outbox`: the same plus one 64-byte outbox entry, like a typical actor turn
//!   (the outbox is acknowledged after each configuration so it does not grow).
//!
//! Output, one line per configuration:
//! `scylla <label>: writers=N ops_per_sec=X p50_ms=… p99_ms=… conflicts=0 errors=0`, and
//! after each writer count the medians and the ratios of the store's rates to the raw one
//! (`scylla medians: writers=N raw_lwt=… ratio_to_raw: …`; issue 14's target is ≥ 0.8).

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_runtime::StateStore;
use emporium_store_scylla::{ScyllaConfig, ScyllaStore};
use emporium_testkit::cas_bench::{self, Budget, CasOptions};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

const WRITERS: [usize; 4] = [1, 8, 32, 64];
const RUN_FOR: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
const STATE_SIZE: usize = 256;
const OPTIONS: CasOptions = CasOptions {
    label: "cas writes",
    run_for: RUN_FOR,
    budget: Budget::Unbounded,
    state_size: STATE_SIZE,
    with_outbox: false,
    load_before_save: false,
};

async fn run(nodes: Vec<String>) -> Result<(), String> {
    let keyspace = format!("emp_bench_{}", std::process::id());
    let config = ScyllaConfig::new(nodes.clone(), keyspace.clone()).map_err(|e| e.to_string())?;
    let connected = Instant::now();
    let store = Arc::new(
        ScyllaStore::connect(config)
            .await
            .map_err(|e| e.to_string())?,
    );
    eprintln!(
        "connected and created the schema in {:.1}s (datacenter {})",
        connected.elapsed().as_secs_f64(),
        store.datacenter()
    );
    let raw = RawLwt::open(&nodes, &keyspace).await?;
    let dyn_store: Arc<dyn StateStore> = store.clone();
    let with_outbox = CasOptions {
        label: "cas writes+outbox",
        with_outbox: true,
        ..OPTIONS
    };
    for writers in WRITERS {
        // Rounds alternate the three shapes, so a machine busy with something else for a
        // few seconds weighs on all of them; the ratios use the median of each.
        let mut rates: [Vec<f64>; 3] = Default::default();
        for _ in 0..ROUNDS {
            let baseline = raw.measure(writers).await;
            println!("{}", baseline.line(writers));
            rates[0].push(baseline.ops_per_sec());
            for (n, options) in [&OPTIONS, &with_outbox].into_iter().enumerate() {
                let outcome = cas_bench::measure(&dyn_store, writers, options).await?;
                println!("{}", outcome.line("scylla", options.label));
                rates[n + 1].push(outcome.ops_per_sec());
                drain_outbox(&dyn_store).await?;
            }
        }
        let [raw_rate, plain, outbox] = rates.map(median);
        println!(
            "scylla medians: writers={writers} raw_lwt={raw_rate:.0} cas_writes={plain:.0} \
             cas_writes+outbox={outbox:.0} ratio_to_raw: cas writes={:.2} cas writes+outbox={:.2}",
            plain / raw_rate,
            outbox / raw_rate
        );
    }
    store.drop_keyspace().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(0.0)
}

async fn drain_outbox(store: &Arc<dyn StateStore>) -> Result<(), String> {
    loop {
        let pending = store
            .outbox_pending(10_000)
            .await
            .map_err(|e| e.to_string())?;
        if pending.is_empty() {
            return Ok(());
        }
        store
            .outbox_ack(&pending)
            .await
            .map_err(|e| e.to_string())?;
    }
}

/// The baseline: lightweight transactions through the driver alone.
struct RawLwt {
    session: Arc<Session>,
    create: PreparedStatement,
    update: PreparedStatement,
}

/// What one baseline configuration did.
#[derive(Default)]
struct RawRun {
    ops: u64,
    conflicts: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u64>,
}

impl RawRun {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let sorted = &self.latencies_us;
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
    }

    fn line(&self, writers: usize) -> String {
        format!(
            "scylla raw lwt: writers={writers} ops_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} conflicts={} errors={}",
            self.ops_per_sec(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.conflicts,
            self.errors,
        )
    }
}

impl RawLwt {
    async fn open(nodes: &[String], keyspace: &str) -> Result<Self, String> {
        let session = SessionBuilder::new()
            .known_nodes(nodes)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        session
            .query_unpaged(
                format!(
                    "CREATE TABLE IF NOT EXISTS {keyspace}.raw_lwt \
                     (key text PRIMARY KEY, version bigint, state blob)"
                ),
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        session
            .await_schema_agreement()
            .await
            .map_err(|e| e.to_string())?;
        let prepare = |text: String| {
            let session = &session;
            async move {
                let mut statement = session.prepare(text).await.map_err(|e| e.to_string())?;
                statement.set_consistency(Consistency::LocalQuorum);
                statement.set_serial_consistency(Some(SerialConsistency::LocalSerial));
                statement.set_request_timeout(Some(Duration::from_secs(2)));
                Ok::<_, String>(statement)
            }
        };
        let create = prepare(format!(
            "INSERT INTO {keyspace}.raw_lwt (key, version, state) VALUES (?, 1, ?) IF NOT EXISTS"
        ))
        .await?;
        let update = prepare(format!(
            "UPDATE {keyspace}.raw_lwt SET version = ?, state = ? WHERE key = ? IF version = ?"
        ))
        .await?;
        Ok(Self {
            session: Arc::new(session),
            create,
            update,
        })
    }

    async fn measure(&self, writers: usize) -> RawRun {
        let deadline = Instant::now() + RUN_FOR;
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (session, create, update) = (
                    Arc::clone(&self.session),
                    self.create.clone(),
                    self.update.clone(),
                );
                tokio::spawn(async move {
                    raw_writer(
                        &session,
                        &create,
                        &update,
                        format!("raw-{writers}-w{w}"),
                        deadline,
                    )
                    .await
                })
            })
            .collect();
        let mut total = RawRun::default();
        for task in tasks {
            if let Ok(tally) = task.await {
                total.ops += tally.ops;
                total.conflicts += tally.conflicts;
                total.errors += tally.errors;
                total.latencies_us.extend(tally.latencies_us);
            } else {
                total.errors += 1;
            }
        }
        total.secs = started.elapsed().as_secs_f64();
        total.latencies_us.sort_unstable();
        total
    }
}

/// One writer of the baseline: saves its key under the version it holds until `deadline`.
async fn raw_writer(
    session: &Session,
    create: &PreparedStatement,
    update: &PreparedStatement,
    key: String,
    deadline: Instant,
) -> RawRun {
    let mut tally = RawRun::default();
    let state = vec![7u8; STATE_SIZE];
    let mut version: i64 = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        let result = if version == 0 {
            session.execute_unpaged(create, (&key, &state)).await
        } else {
            session
                .execute_unpaged(update, (version + 1, &state, &key, version))
                .await
        };
        let outcome = result
            .map_err(|e| e.to_string())
            .and_then(|result| lwt_outcome(result).ok_or_else(|| "no [applied]".to_owned()));
        match outcome {
            Ok((true, _)) => {
                version += 1;
                tally.ops += 1;
                tally
                    .latencies_us
                    .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Ok((false, found)) => {
                tally.conflicts += 1;
                version = found.unwrap_or(0);
            }
            Err(error) => {
                tally.errors += 1;
                eprintln!("raw lwt failed: {error}");
            }
        }
    }
    tally
}

/// `[applied]` and, when not applied, the version found.
fn lwt_outcome(result: scylla::response::query_result::QueryResult) -> Option<(bool, Option<i64>)> {
    use scylla::value::{CqlValue, Row};
    let rows = result.into_rows_result().ok()?;
    let row = rows.rows::<Row>().ok()?.next()?.ok()?;
    let applied = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
    let found = row.columns.iter().skip(1).find_map(|column| match column {
        Some(CqlValue::BigInt(version)) => Some(*version),
        _ => None,
    });
    Some((applied, found))
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
