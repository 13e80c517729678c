//! The harness's failover section: how long a `kill -9` keeps a dead owner's carts from
//! answering, over a few kills, and what a rolling restart costs, in the same run.
//!
//! Three `emporium` processes form a cluster on a scratch PostgreSQL database with the
//! cluster process kit (as in the `cluster` section); [`CARTS`] guest carts are made.
//!
//! - **Failover rounds** (`ClusterSettings::failover_rounds`, at most [`MAX_ROUNDS`]): the
//!   victim is node `round % 3`. Its carts are found through the admin API; the kit's load
//!   (writes of one new line per write, reads back) runs on them through the two survivors;
//!   the victim gets `SIGKILL`; one probe per cart reads it through the survivors and the
//!   time from the signal to its first successful answer is the cart's failover time. Then
//!   the victim is started again with the same node id and the round ends once the cluster
//!   is complete and settled.
//! - **Rolling restart**: the load on every cart through the nodes in rotation; each node
//!   in turn is taken out of rotation, gets `SIGTERM`, is started again and put back once
//!   the cluster is complete. Every request not answered 2xx is a failure (target: none).
//! - **Acknowledged writes**: at the end every cart is read through every node: every
//!   acknowledged line present once (missing ones must be 0), refused ones absent, writes
//!   of unknown outcome counted. Each phase writes SKUs of its own, so no line is written
//!   twice on purpose. Reads that missed a write acknowledged before they were sent (stale
//!   reads) must be 0 too. A violation is written in the row's note as `VIOLATION`.
//!
//! Bounded: every load stops by itself after [`LOAD_CAP`], every wait of the kit has a
//! deadline, probes give up after [`PROBE_LIMIT`]. About 20 s per round and 30 s for the
//! rolling restart on a small machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use emporium_testkit::cluster::{
    Balancer, Cluster, Load, LoadPlan, LoadReport, Op, Outcome, PRODUCTS, metric_sum, sku,
    wait_settled,
};
use tokio::time::Instant;

use super::cluster::{SETTLE_DEADLINE, SETTLED_AFTER, guarded, start_cluster};
use super::{BenchContext, ClusterSettings, Row};

const SECTION: &str = "failover";
const NODES: usize = 3;
/// Guest carts (each node owns about a third of them).
const CARTS: usize = 60;
/// Kills at most, whatever the context asks (each phase needs SKUs of its own).
const MAX_ROUNDS: usize = 10;
/// Load workers in a failover round, and in the rolling restart.
const ROUND_WORKERS: usize = 4;
const ROLLING_WORKERS: usize = 6;
/// The load of a round runs this long before the kill, and this long after the last probe
/// is served.
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(2);
const LOAD_AFTER_SERVED: Duration = Duration::from_secs(2);
/// A load stops by itself after this, whatever happens.
const LOAD_CAP: Duration = Duration::from_secs(180);
/// A probe gives up on a cart this long after the kill.
const PROBE_LIMIT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after `SIGTERM` (then it is killed).
const STOP_DEADLINE: Duration = Duration::from_secs(40);
/// PostgreSQL connections per node (three nodes share a server with other runs).
const POOL_SIZE: &str = "8";

/// Run the section: rows for the kills, the rolling restart and the read-back.
pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    guarded(SECTION, measure(ClusterSettings::of(ctx))).await
}

/// One kill.
struct Round {
    /// Kill → first successful read, per victim cart.
    served: Vec<Option<Duration>>,
    /// The survivors' `emporium_failover_seconds` observations during the round (count, sum).
    metric: (f64, f64),
    /// Kill → the first acknowledged write sent after it.
    first_write: Option<Duration>,
    /// Restart of the victim → the cluster complete again.
    rejoin: Duration,
    report: LoadReport,
}

async fn measure(ctx: ClusterSettings) -> Result<Vec<Row>, String> {
    let rounds = ctx.failover_rounds.clamp(1, MAX_ROUNDS);
    let logs = tempfile::tempdir().map_err(|error| error.to_string())?;
    let mut cluster = start_cluster(&ctx, NODES, POOL_SIZE, logs.path().to_owned()).await?;
    let carts = cluster.carts(CARTS).await;
    // Each phase (every round, then the rolling restart) writes SKUs of its own.
    let per_phase = PRODUCTS / (rounds + 1);
    let phase_skus = |phase: usize| -> Vec<String> {
        (phase * per_phase..(phase + 1) * per_phase)
            .map(sku)
            .collect()
    };
    let mut results = Vec::with_capacity(rounds);
    for round in 0..rounds {
        results.push(failover_round(&mut cluster, round, &carts, phase_skus(round)).await);
    }
    let (rolling, rolling_report) = rolling_restart(&mut cluster, &carts, phase_skus(rounds)).await;
    let reports: Vec<&LoadReport> = results
        .iter()
        .map(|round| &round.report)
        .chain([&rolling_report])
        .collect();
    let check = read_back(&cluster, &carts, &reports).await;
    let warnings = count_warnings(&cluster);
    cluster.finish().await;
    Ok(vec![
        kill_row(&results),
        rolling_row(&rolling, &rolling_report),
        check_row(&check, &reports, &warnings),
    ])
}

/// Kill node `round % 3` under a load on its carts; see the module documentation.
async fn failover_round(
    cluster: &mut Cluster,
    round: usize,
    carts: &[String],
    skus: Vec<String>,
) -> Round {
    let victim = round % NODES;
    let victim_id = cluster.members[victim].id.clone();
    let survivors: Vec<usize> = (0..NODES).filter(|&index| index != victim).collect();
    let mut mine = Vec::new();
    for cart in carts {
        let owner = cluster.owner_of(survivors[0], "cart", cart).await;
        if owner.as_deref() == Some(victim_id.as_str()) {
            mine.push(cart.clone());
        }
    }
    let balancer = Balancer::new(cluster.client().clone());
    for &index in &survivors {
        balancer.add(&cluster.members[index].id, cluster.members[index].base());
    }
    let metric_before = failover_metric(cluster, &survivors).await;
    let plan = LoadPlan {
        workers: ROUND_WORKERS.min(mine.len()).max(1),
        skus,
        ..LoadPlan::new(mine.clone(), 0, LOAD_CAP)
    };
    let load = Load::start(&balancer, plan);
    tokio::time::sleep(LOAD_BEFORE_KILL).await;

    let process = cluster.members[victim].take();
    let killed_at = Instant::now();
    process.kill9().await;
    let probes: Vec<_> = mine
        .iter()
        .map(|cart| {
            let (probe, cart) = (balancer.clone(), cart.clone());
            tokio::spawn(
                async move { probe.time_until_served(&cart, killed_at, PROBE_LIMIT).await },
            )
        })
        .collect();
    let mut served = Vec::with_capacity(probes.len());
    for probe in probes {
        served.push(probe.await.ok().flatten());
    }
    tokio::time::sleep(LOAD_AFTER_SERVED).await;
    let report = load.stop().await;
    let metric_after = failover_metric(cluster, &survivors).await;
    let first_write = report
        .writes()
        .filter(|op| op.exchange.sent_at >= killed_at && op.exchange.outcome() == Outcome::Acked)
        .map(|op| op.exchange.done_at - killed_at)
        .min();

    let restarting = Instant::now();
    cluster.start_member(victim).await;
    cluster.wait_ready().await;
    let rejoin = restarting.elapsed();
    settle(cluster).await;
    Round {
        served,
        metric: (
            metric_after.0 - metric_before.0,
            metric_after.1 - metric_before.1,
        ),
        first_write,
        rejoin,
        report,
    }
}

/// The rolling restart's steps: per node, how it exited and how long until it was back.
struct Rolling {
    steps: Vec<String>,
    /// First `SIGTERM` → last node back in rotation.
    duration: Duration,
}

/// `SIGTERM` and restart each node in turn under a load through the others.
async fn rolling_restart(
    cluster: &mut Cluster,
    carts: &[String],
    skus: Vec<String>,
) -> (Rolling, LoadReport) {
    let balancer = cluster.balancer();
    let plan = LoadPlan {
        workers: ROLLING_WORKERS,
        skus,
        ..LoadPlan::new(carts.to_vec(), 0, LOAD_CAP)
    };
    let load = Load::start(&balancer, plan);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let mut steps = Vec::with_capacity(NODES);
    for index in 0..NODES {
        let id = cluster.members[index].id.clone();
        // The balancer stops sending to a node before it is stopped.
        balancer.remove(&id);
        let stopping = Instant::now();
        let exit = cluster.members[index]
            .take()
            .terminate_within(STOP_DEADLINE)
            .await
            .map_or_else(|| "killed".to_owned(), |status| status.to_string());
        let stopped = stopping.elapsed();
        cluster.start_member(index).await;
        cluster.wait_ready().await;
        balancer.add(&id, cluster.members[index].base());
        steps.push(format!(
            "{id} stopped in {:.1} s ({exit}), back in {:.1} s",
            stopped.as_secs_f64(),
            (stopping.elapsed() - stopped).as_secs_f64()
        ));
        if index + 1 < NODES {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let duration = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    settle(cluster).await;
    (Rolling { steps, duration }, report)
}

/// Until the shards per node stopped moving (at most [`SETTLE_DEADLINE`]).
async fn settle(cluster: &Cluster) {
    let via = cluster.running()[0];
    let settled = wait_settled(SETTLED_AFTER, SETTLE_DEADLINE, || cluster.view(via)).await;
    assert!(
        settled.is_some(),
        "shards still moving after {SETTLE_DEADLINE:?}"
    );
}

/// `emporium_failover_seconds` (count, sum) summed over `nodes`.
async fn failover_metric(cluster: &Cluster, nodes: &[usize]) -> (f64, f64) {
    let (mut count, mut sum) = (0.0, 0.0);
    for &index in nodes {
        let api = cluster.api(index);
        let request = api.client().get(format!("{}/metrics", api.base));
        if let Ok(answer) = api.try_send(request).await {
            let text = answer.body.as_str().unwrap_or_default();
            count += metric_sum(text, "emporium_failover_seconds_count", "");
            sum += metric_sum(text, "emporium_failover_seconds_sum", "");
        }
    }
    (count, sum)
}

/// What reading every cart back through every node found.
#[derive(Default)]
struct Check {
    acked: usize,
    missing: usize,
    refused: usize,
    refused_applied: usize,
    unknown: usize,
    unknown_applied: usize,
    twice: usize,
    phantoms: usize,
    differing: usize,
}

impl Check {
    fn violations(&self) -> usize {
        self.missing + self.refused_applied + self.twice + self.phantoms + self.differing
    }
}

/// Every cart read through every node and compared with the writes of `reports`.
async fn read_back(cluster: &Cluster, carts: &[String], reports: &[&LoadReport]) -> Check {
    let mut check = Check::default();
    let writes: Vec<&Op> = reports.iter().flat_map(|report| report.writes()).collect();
    for cart in carts {
        let mut seen: Option<BTreeMap<String, u64>> = None;
        for index in 0..NODES {
            let lines = cluster.cart_lines(index, cart).await;
            match &seen {
                None => seen = Some(lines),
                Some(first) => check.differing += usize::from(*first != lines),
            }
        }
        let lines = seen.unwrap_or_default();
        let mine: Vec<&&Op> = writes.iter().filter(|op| op.cart == *cart).collect();
        for op in &mine {
            let sku = op.write.as_deref().unwrap_or_default();
            let quantity = lines.get(sku).copied();
            check.twice += usize::from(quantity.is_some_and(|quantity| quantity != 1));
            match op.exchange.outcome() {
                Outcome::Acked => {
                    check.acked += 1;
                    check.missing += usize::from(quantity.is_none());
                }
                Outcome::Refused => {
                    check.refused += 1;
                    check.refused_applied += usize::from(quantity.is_some());
                }
                Outcome::Unknown => {
                    check.unknown += 1;
                    check.unknown_applied += usize::from(quantity.is_some());
                }
            }
        }
        check.phantoms += lines
            .keys()
            .filter(|line| {
                !mine
                    .iter()
                    .any(|op| op.write.as_deref() == Some(line.as_str()))
            })
            .count();
    }
    check
}

/// Warnings and errors in the nodes' logs, other than links closing and peers unreachable
/// (what a kill or a stop looks like): (all, unexpected).
fn count_warnings(cluster: &Cluster) -> (usize, usize) {
    let (mut all, mut unexpected) = (0, 0);
    for index in 0..cluster.members.len() {
        let Some(log) = cluster.log_of(index) else {
            continue;
        };
        let text = std::fs::read_to_string(Path::new(&log)).unwrap_or_default();
        for line in text.lines() {
            if !(line.contains("WARN") || line.contains("ERROR")) {
                continue;
            }
            all += 1;
            let expected = [
                "tcp_session_closed",
                "duplicate_connection",
                "peer unreachable",
            ]
            .iter()
            .any(|known| line.contains(known));
            unexpected += usize::from(!expected);
        }
    }
    (all, unexpected)
}

fn median(sorted: &[Duration]) -> Option<Duration> {
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn secs(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Kill → served again over every victim cart of every round: p50 and p99 in ms.
fn kill_row(rounds: &[Round]) -> Row {
    let mut times: Vec<Duration> = rounds
        .iter()
        .flat_map(|round| round.served.iter().flatten().copied())
        .collect();
    times.sort();
    let never: usize = rounds
        .iter()
        .map(|round| {
            round
                .served
                .iter()
                .filter(|served| served.is_none())
                .count()
        })
        .sum();
    let (count, sum) = rounds.iter().fold((0.0, 0.0), |(count, sum), round| {
        (count + round.metric.0, sum + round.metric.1)
    });
    let mut first_writes: Vec<Duration> = rounds.iter().filter_map(|r| r.first_write).collect();
    first_writes.sort();
    let rejoin = rounds.iter().map(|round| round.rejoin).max();
    let stale: usize = rounds
        .iter()
        .map(|round| round.report.stale_reads.len())
        .sum();
    let unacked: usize = rounds
        .iter()
        .map(|round| round.report.failures().len())
        .sum();
    let violation = if stale > 0 || never > 0 {
        "VIOLATION: "
    } else {
        ""
    };
    Row {
        section: SECTION.to_owned(),
        name: "kill -9 → carts served again".to_owned(),
        ops_per_sec: f64::NAN,
        p50_ms: quantile_ms(&times, 0.50),
        p99_ms: quantile_ms(&times, 0.99),
        ratio: None,
        ratio_to: String::new(),
        note: format!(
            "{violation}{} rounds, {} cart failovers (worst {}), never served {never}; \
             emporium_failover_seconds mean {} over {count} obs; first acked write after the kill: median {}; \
             {unacked} requests not acknowledged during the rounds; stale reads {stale} (must be 0); victim back and cluster complete within {}",
            rounds.len(),
            times.len(),
            secs(times.last().copied()),
            if count > 0.0 {
                format!("{:.2} s", sum / count)
            } else {
                "-".to_owned()
            },
            secs(median(&first_writes)),
            secs(rejoin),
        ),
    }
}

/// The rolling restart: the load's throughput and latencies while nodes restarted.
fn rolling_row(rolling: &Rolling, report: &LoadReport) -> Row {
    let mut took: Vec<Duration> = report.ops.iter().map(|op| op.exchange.took()).collect();
    took.sort();
    let failed = report.failures().len();
    let stale = report.stale_reads.len();
    let violation = if stale > 0 { "VIOLATION: " } else { "" };
    Row {
        section: SECTION.to_owned(),
        name: "rolling restart (SIGTERM each node)".to_owned(),
        ops_per_sec: report.ops.len() as f64 / report.duration.as_secs_f64(),
        p50_ms: quantile_ms(&took, 0.50),
        p99_ms: quantile_ms(&took, 0.99),
        ratio: None,
        ratio_to: String::new(),
        note: format!(
            "{violation}took {:.1} s (first SIGTERM → last node back); {} requests, {failed} failed (target 0), stale reads {stale}; {}",
            rolling.duration.as_secs_f64(),
            report.ops.len(),
            rolling.steps.join("; "),
        ),
    }
}

/// The read-back of every acknowledged write.
fn check_row(check: &Check, reports: &[&LoadReport], warnings: &(usize, usize)) -> Row {
    let writes: usize = reports.iter().map(|report| report.writes().count()).sum();
    let violation = if check.violations() > 0 {
        "VIOLATION: "
    } else {
        ""
    };
    Row {
        section: SECTION.to_owned(),
        name: "acknowledged writes read back".to_owned(),
        ops_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        ratio: None,
        ratio_to: String::new(),
        note: format!(
            "{violation}{CARTS} carts through all {NODES} nodes, {writes} writes: {} acknowledged, MISSING {} (must be 0); \
             {} of unknown outcome ({} applied); {} refused, applied anyway {}; twice {}; lines nobody wrote {}; \
             carts differing between nodes {}; node log warnings {} ({} other than links closing)",
            check.acked,
            check.missing,
            check.unknown,
            check.unknown_applied,
            check.refused,
            check.refused_applied,
            check.twice,
            check.phantoms,
            check.differing,
            warnings.0,
            warnings.1,
        ),
    }
}
