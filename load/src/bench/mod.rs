//! The benchmark harness (`cargo run --release -p load --bin bench`), one section per module.
//!
//! PLACEHOLDER of branch `kit`: the harness's own `mod.rs` (branch `harness`) defines
//! `BenchContext`, `Row` and the load driver; this file only holds the shapes the `cluster`
//! and `failover` sections are written against, and is replaced by that one at merge.

use std::time::Duration;

pub mod cluster;
pub mod failover;

/// One line of the harness's table.
#[derive(Clone, Debug)]
pub struct Row {
    pub section: String,
    pub name: String,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// To the ceiling or to a named baseline ([`Row::ratio_to`]).
    pub ratio: Option<f64>,
    pub ratio_to: String,
    pub note: String,
}

/// What every section is given.
#[derive(Clone, Debug)]
pub struct BenchContext {
    /// PostgreSQL admin URL (a scratch database is made on it), `None`: not up.
    pub postgres_url: Option<String>,
    /// NATS URL (cluster mode needs it), `None`: not up.
    pub nats_url: Option<String>,
    /// Concurrent connections of the load driver.
    pub connections: usize,
    /// Time bound of one measurement.
    pub duration: Duration,
    /// Failover rounds (`kill -9` of one node each).
    pub failover_rounds: usize,
}
