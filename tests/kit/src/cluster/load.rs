//! A load on a cluster's carts, and what came of each request.
//!
//! [`Load`]: workers that each own some carts and add one distinct SKU per write (quantity
//! 1), optionally reading the cart back after each write. Bounded by count (one write per
//! SKU per cart, [`MAX_ROUNDS`]) and by time. [`LoadReport`] keeps every operation with its
//! outcome, and the reads that missed a write acknowledged before they were sent (stale
//! reads); what a caller asserts about them is its own business.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::balancer::{Balancer, Exchange, Outcome, Reply};
use super::lifecycle::sku;

/// Rounds a load worker runs at most, whatever its time limit.
pub const MAX_ROUNDS: usize = 20_000;

/// One operation of a load: a write of one SKU line, or a read.
#[derive(Debug)]
pub struct Op {
    pub cart: String,
    /// The SKU added, for a write; `None` for a read.
    pub write: Option<String>,
    pub exchange: Exchange,
}

/// What a load does.
#[derive(Clone)]
pub struct LoadPlan {
    pub carts: Vec<String>,
    pub workers: usize,
    /// Pause between two rounds of a worker.
    pub pace: Duration,
    /// Read the cart back after each write (and keep reading once every line is written).
    pub reads: bool,
    /// Written to each cart, in order, one write each.
    pub skus: Vec<String>,
    /// The load stops by itself after this.
    pub max_time: Duration,
}

impl LoadPlan {
    /// Writes of the first `lines` test products to `carts`, with reads, for at most `max_time`.
    pub fn new(carts: Vec<String>, lines: usize, max_time: Duration) -> Self {
        Self {
            workers: carts.len().clamp(1, 8),
            carts,
            pace: Duration::from_millis(100),
            reads: true,
            skus: (0..lines).map(sku).collect(),
            max_time,
        }
    }
}

/// A running load; [`Load::stop`] ends it and returns every operation.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<WorkerLog>>,
    carts: Vec<String>,
    started: Instant,
}

#[derive(Default)]
struct WorkerLog {
    ops: Vec<Op>,
    stale_reads: Vec<StaleRead>,
}

impl Load {
    pub fn start(balancer: &Balancer, plan: LoadPlan) -> Load {
        let (stop, stopped) = watch::channel(false);
        let deadline = Instant::now() + plan.max_time;
        let plan = Arc::new(plan);
        let workers = (0..plan.workers)
            .map(|worker| {
                let carts: Vec<String> = plan
                    .carts
                    .iter()
                    .skip(worker)
                    .step_by(plan.workers)
                    .cloned()
                    .collect();
                let worker = Worker {
                    balancer: balancer.clone(),
                    plan: Arc::clone(&plan),
                    stopped: stopped.clone(),
                    deadline,
                };
                tokio::spawn(worker.run(carts))
            })
            .collect();
        Load {
            stop,
            workers,
            carts: plan.carts.clone(),
            started: Instant::now(),
        }
    }

    /// Stop (requests in flight finish) and collect what happened.
    pub async fn stop(self) -> LoadReport {
        self.stop.send_replace(true);
        let mut report = LoadReport {
            ops: Vec::new(),
            stale_reads: Vec::new(),
            carts: self.carts,
            duration: self.started.elapsed(),
        };
        for worker in self.workers {
            let log = worker.await.expect("load worker panicked");
            report.ops.extend(log.ops);
            report.stale_reads.extend(log.stale_reads);
        }
        report.ops.sort_by_key(|op| op.exchange.sent_at);
        report
    }
}

struct Worker {
    balancer: Balancer,
    plan: Arc<LoadPlan>,
    stopped: watch::Receiver<bool>,
    deadline: Instant,
}

impl Worker {
    /// Round robin over `carts`: the next SKU of the cart (while any is left), then a read of
    /// it (when the plan reads). One request at a time, so each cart's writes are in order.
    async fn run(mut self, carts: Vec<String>) -> WorkerLog {
        let mut log = WorkerLog::default();
        let mut written = vec![0usize; carts.len()];
        let mut acked: Vec<BTreeMap<String, Instant>> = vec![BTreeMap::new(); carts.len()];
        for round in 0..MAX_ROUNDS {
            if *self.stopped.borrow() || Instant::now() >= self.deadline || carts.is_empty() {
                break;
            }
            let turn = round % carts.len();
            let cart = &carts[turn];
            if let Some(sku) = self.plan.skus.get(written[turn]) {
                written[turn] += 1;
                let op = self.balancer.add_line(cart, sku).await;
                if op.exchange.outcome() == Outcome::Acked {
                    acked[turn].insert(sku.clone(), op.exchange.done_at);
                }
                log.ops.push(op);
            } else if !self.plan.reads && written.iter().all(|&n| n >= self.plan.skus.len()) {
                break;
            }
            if self.plan.reads {
                let op = self.balancer.read_cart(cart).await;
                if let Some(stale) = stale_read(&op, &acked[turn]) {
                    log.stale_reads.push(stale);
                }
                log.ops.push(op);
            }
            tokio::select! {
                () = tokio::time::sleep(self.plan.pace) => {}
                _ = self.stopped.changed() => {}
            }
        }
        log
    }
}

/// A successful read that misses a line whose write was acknowledged before it was sent.
fn stale_read(op: &Op, acked: &BTreeMap<String, Instant>) -> Option<StaleRead> {
    let Reply::Answer(answer) = &op.exchange.reply else {
        return None;
    };
    if answer.status != 200 {
        return None;
    }
    let lines = lines_of(&answer.body);
    let missed: Vec<(&String, Duration)> = acked
        .iter()
        .filter(|(sku, _)| !lines.contains_key(*sku))
        .map(|(sku, acked_at)| {
            (
                sku,
                op.exchange.sent_at.saturating_duration_since(*acked_at),
            )
        })
        .collect();
    if missed.is_empty() {
        return None;
    }
    let missed: Vec<String> = missed
        .iter()
        .map(|(sku, before)| format!("{sku} (acknowledged {before:.2?} before the read was sent)"))
        .collect();
    Some(StaleRead {
        description: format!(
            "cart {} read through {} (answered in {:.2?}) misses {}",
            op.cart,
            op.exchange.node,
            op.exchange.took(),
            missed.join(", ")
        ),
    })
}

/// A successful read that missed acknowledged writes.
#[derive(Debug)]
pub struct StaleRead {
    /// The cart, the node that answered, and each missed write with how long before the
    /// read was sent it was acknowledged.
    pub description: String,
}

/// Everything a load did.
pub struct LoadReport {
    pub ops: Vec<Op>,
    /// Reads that missed an acknowledged line (see [`stale_read`]).
    pub stale_reads: Vec<StaleRead>,
    pub carts: Vec<String>,
    pub duration: Duration,
}

impl LoadReport {
    pub fn writes(&self) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(|op| op.write.is_some())
    }

    pub fn reads(&self) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(|op| op.write.is_none())
    }

    /// Operations that were not acknowledged.
    pub fn failures(&self) -> Vec<&Op> {
        self.ops
            .iter()
            .filter(|op| op.exchange.outcome() != Outcome::Acked)
            .collect()
    }

    /// Print counts: requests, writes by outcome, reads, stale reads.
    pub fn print(&self, label: &str) {
        let count = |outcome| {
            self.writes()
                .filter(|op| op.exchange.outcome() == outcome)
                .count()
        };
        let reads_ok = self
            .reads()
            .filter(|op| op.exchange.outcome() == Outcome::Acked)
            .count();
        eprintln!(
            "{label}: {} requests in {:.1?}: writes {} (acked {}, refused {}, unknown {}), reads {} ({} ok), stale reads {}",
            self.ops.len(),
            self.duration,
            self.writes().count(),
            count(Outcome::Acked),
            count(Outcome::Refused),
            count(Outcome::Unknown),
            self.reads().count(),
            reads_ok,
            self.stale_reads.len(),
        );
        for stale in self.stale_reads.iter().take(5) {
            eprintln!("{label}: stale read: {}", stale.description);
        }
        for failure in self.failures().iter().take(5) {
            eprintln!("{label}: not acknowledged: {}", describe(failure));
        }
    }
}

/// One line about an operation, for failure messages.
pub fn describe(op: &Op) -> String {
    let what = match &op.write {
        Some(sku) => format!("add {sku} to"),
        None => "read".to_owned(),
    };
    let reply = match &op.exchange.reply {
        Reply::Answer(answer) => format!("{} {}", answer.status, answer.body),
        Reply::Lost(error) => format!("lost: {error}"),
        Reply::NotSent(error) => format!("not sent: {error}"),
    };
    format!(
        "{what} cart {} via {} after {:.2?}: {reply}",
        op.cart,
        op.exchange.node,
        op.exchange.took()
    )
}

/// A cart body's lines: SKU → quantity.
pub fn lines_of(cart: &Value) -> BTreeMap<String, u64> {
    cart["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|line| {
                    (
                        line["sku"].as_str().unwrap_or_default().to_owned(),
                        line["quantity"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
