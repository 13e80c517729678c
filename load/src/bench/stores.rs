//! Section `stores`: compare-and-set writes per second of each store adapter, with
//! [`WRITERS`] concurrent writers, each on a key of its own, a 256-byte state
//! (`emporium_testkit::cas_bench`), next to the baselines of issue 14 measured in the same
//! run at the same concurrency:
//!
//! - `cas (<store>)`: the state alone; for PostgreSQL, this is the *plain CAS* baseline;
//! - `cas+outbox (<store>)`: the same plus one 64-byte outbox entry, like a typical actor
//!   turn that raises an event; a ratio of the plain CAS of the same store;
//! - `raw LWT (cql)`: the CQL node's own rate of lightweight transactions, through the same
//!   driver with a prepared `UPDATE … IF version = ?` at the store's default levels
//!   (`LOCAL_QUORUM`, `LOCAL_SERIAL`), no Emporium code: the CQL store's CAS figures are
//!   ratios of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_runtime::StateStore;
use emporium_testkit::cas_bench::{self, Budget, CasOptions};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row as CqlRow};

use super::drive::{Measurement, ProcessCpu, percentile_ms};
use super::scratch_store::{Adapter, ScratchStore};
use super::services;
use super::{BenchContext, Row};

const SECTION: &str = "stores";
/// Concurrent writers of every figure (the PostgreSQL figures are at 64).
pub const WRITERS: usize = 64;
const STATE_SIZE: usize = 256;

pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    let mut rows = Vec::new();
    for adapter in [Adapter::Embedded, Adapter::Postgres] {
        rows.extend(adapter_rows(ctx, adapter, None).await);
    }
    let lwt = raw_lwt(ctx).await;
    let baseline = (!lwt.is_skipped()).then_some(("raw LWT (cql)", lwt.ops_per_sec));
    rows.push(lwt);
    rows.extend(adapter_rows(ctx, Adapter::Cql, baseline).await);
    rows
}

/// `cas` and `cas+outbox` on `adapter`; both as ratios of `baseline` when given, else the
/// second as a ratio of the first.
async fn adapter_rows(
    ctx: &BenchContext,
    adapter: Adapter,
    baseline: Option<(&str, f64)>,
) -> Vec<Row> {
    let names = [
        format!("cas ({})", adapter.label()),
        format!("cas+outbox ({})", adapter.label()),
    ];
    let store = match ScratchStore::open(&ctx.services, adapter, "cas").await {
        Ok(store) => store,
        Err(why) => {
            return names
                .into_iter()
                .map(|name| Row::skipped(SECTION, name, &why))
                .collect();
        }
    };
    let plain = cas_row(ctx, &store.store, &names[0], false).await;
    let outbox = cas_row(ctx, &store.store, &names[1], true).await;
    store.remove().await;
    match baseline {
        Some((to, rate)) => vec![plain.against(to, rate), outbox.against(to, rate)],
        None => {
            let to = names[0].clone();
            let rate = plain.ops_per_sec;
            vec![plain, outbox.against(&to, rate)]
        }
    }
}

async fn cas_row(
    ctx: &BenchContext,
    store: &Arc<dyn StateStore>,
    name: &str,
    with_outbox: bool,
) -> Row {
    let options = CasOptions {
        label: if with_outbox { "cas+outbox" } else { "cas" },
        run_for: ctx.window(),
        budget: Budget::Unbounded,
        state_size: STATE_SIZE,
        with_outbox,
        load_before_save: false,
    };
    let cpu = ProcessCpu::start();
    match cas_bench::measure(store, WRITERS, &options).await {
        Ok(run) => {
            let m = Measurement {
                ops: run.ops,
                failed: run.conflicts + run.errors,
                secs: run.secs,
                p50_ms: run.percentile_ms(0.50),
                p99_ms: run.percentile_ms(0.99),
                driver_cores: None,
                process_cores: cpu.cores(),
                first_error: (run.conflicts + run.errors > 0)
                    .then(|| format!("{} conflicts, {} errors", run.conflicts, run.errors)),
            };
            Row::measured(SECTION, name, &m).with_note(format!("{WRITERS} writers"))
        }
        Err(why) => Row::skipped(SECTION, name, why),
    }
}

/// The raw LWT rate of the CQL node: a scratch keyspace with one plain table.
async fn raw_lwt(ctx: &BenchContext) -> Row {
    let name = "raw LWT (cql)";
    let nodes = match ctx.services.scylla_nodes() {
        Ok(nodes) => nodes.to_vec(),
        Err(why) => return Row::skipped(SECTION, name, why),
    };
    let keyspace = services::scratch_name("lwt");
    let row = match lwt_figure(&nodes, &keyspace, ctx.window()).await {
        Ok(m) => Row::measured(SECTION, name, &m).with_note(format!(
            "{WRITERS} writers, prepared UPDATE … IF version = ?, LOCAL_QUORUM/LOCAL_SERIAL"
        )),
        Err(why) => Row::skipped(SECTION, name, why),
    };
    services::drop_keyspace(&nodes, &keyspace).await;
    row
}

async fn lwt_figure(
    nodes: &[String],
    keyspace: &str,
    window: Duration,
) -> Result<Measurement, String> {
    let session = Arc::new(services::cql_session(nodes).await?);
    let ddl = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.lwt (key text PRIMARY KEY, version bigint, state blob)"
        ),
    ];
    for statement in ddl {
        session
            .query_unpaged(statement, ())
            .await
            .map_err(|error| format!("cannot create the LWT table: {error}"))?;
    }
    let insert = prepare(
        &session,
        format!("INSERT INTO {keyspace}.lwt (key, version, state) VALUES (?, 0, ?) IF NOT EXISTS"),
    )
    .await?;
    let update = prepare(
        &session,
        format!("UPDATE {keyspace}.lwt SET version = ?, state = ? WHERE key = ? IF version = ?"),
    )
    .await?;
    let cpu = ProcessCpu::start();
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (session, insert, update) = (Arc::clone(&session), insert.clone(), update.clone());
            tokio::spawn(
                async move { lwt_writer(&session, &insert, &update, writer, deadline).await },
            )
        })
        .collect();
    let (mut ops, mut failed, mut latencies, mut first_error) = (0, 0, Vec::new(), None);
    for task in tasks {
        let tally = task.await.map_err(|error| error.to_string())?;
        ops += tally.ops;
        failed += tally.failed;
        latencies.extend(tally.latencies_us);
        first_error = first_error.or(tally.first_error);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(Measurement {
        ops,
        failed,
        secs,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        driver_cores: None,
        process_cores: cpu.cores(),
        first_error,
    })
}

async fn prepare(session: &Session, text: String) -> Result<PreparedStatement, String> {
    let mut statement = session
        .prepare(text)
        .await
        .map_err(|error| format!("cannot prepare: {error}"))?;
    statement.set_consistency(Consistency::LocalQuorum);
    statement.set_serial_consistency(Some(SerialConsistency::LocalSerial));
    Ok(statement)
}

#[derive(Default)]
struct LwtTally {
    ops: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

/// One writer: create its row, then `UPDATE … IF version = v` with v counting up.
async fn lwt_writer(
    session: &Session,
    insert: &PreparedStatement,
    update: &PreparedStatement,
    writer: usize,
    deadline: Instant,
) -> LwtTally {
    let mut tally = LwtTally::default();
    let key = format!("w{writer}");
    let state = vec![7u8; STATE_SIZE];
    if let Err(error) = session.execute_unpaged(insert, (&key, &state)).await {
        tally.failed += 1;
        tally.first_error = Some(error.to_string());
        return tally;
    }
    let mut version: i64 = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = session
            .execute_unpaged(update, (version + 1, &state, &key, version))
            .await
            .map_err(|error| error.to_string())
            .and_then(|result| applied(result).map_err(|error| error.to_string()));
        match outcome {
            Ok(true) => {
                version += 1;
                tally.ops += 1;
                tally
                    .latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok(false) => {
                tally.failed += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| "not applied".to_owned());
                return tally;
            }
            Err(error) => {
                tally.failed += 1;
                tally.first_error.get_or_insert(error);
                return tally;
            }
        }
    }
    tally
}

/// `[applied]` of a lightweight transaction's answer (its first column).
fn applied(
    result: scylla::response::query_result::QueryResult,
) -> Result<bool, Box<dyn std::error::Error>> {
    let rows = result.into_rows_result()?;
    let first = rows.rows::<CqlRow>()?.next().transpose()?;
    Ok(matches!(
        first.as_ref().and_then(|row| row.columns.first()),
        Some(Some(CqlValue::Boolean(true)))
    ))
}
