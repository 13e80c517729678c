//! The one benchmark harness: `cargo run --release -p load --bin bench`.
//!
//! One run measures, in this order, each *section* of [`SECTIONS`] (or those `--only` names)
//! and prints one table, which [`report`] also writes with the machine's description to
//! `BENCHMARKS.md`:
//!
//! - `ceiling`: a plain hyper hello-world; every HTTP figure is a ratio against it, measured
//!   in the same run with the same load generator ([`drive`]);
//! - `node`: an in-process node (embedded defaults, then PostgreSQL and the CQL store when
//!   they are up) over HTTP;
//! - `runtime`: the runtime without HTTP (activations, memory per idle actor, events);
//! - `stores`: compare-and-set writes per store adapter, next to their baselines;
//! - `cluster`, `failover`: registered by the cluster kit (see the marked place below).
//!
//! The contract of a section: `pub async fn run(ctx: &BenchContext) -> Vec<Row>`, bounded by
//! count and time (a few seconds per figure, shorter with `--quick`); a figure that cannot be
//! measured (a store that is not up) is still a row, saying `skipped` and why, never a
//! silent gap. Benchmarks are not tests: nothing here asserts a timing.

pub mod ceiling;
pub mod cluster;
pub mod drive;
pub mod failover;
pub mod memory_probe;
pub mod node;
pub mod options;
pub mod report;
pub mod runtime;
pub mod scratch_store;
pub mod services;
pub mod stores;
pub mod table;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::OnceCell;

pub use drive::{Load, Measurement};
pub use options::{BenchOptions, OptionsError};

/// One line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The section that measured it (`node`, `stores`, …).
    pub section: String,
    /// What was measured, with its variant (`cart read (embedded)`).
    pub name: String,
    /// Successful operations per second (0 when skipped).
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// `ops_per_sec` over the baseline's, measured in the same run; `None` when there is none.
    pub ratio: Option<f64>,
    /// The baseline `ratio` is against (`hello-world`, `raw LWT`, …), empty when none.
    pub ratio_to: String,
    /// Anything a reader needs to trust the figure: failures, the load generator's CPU,
    /// counts, or why the row was skipped.
    pub note: String,
}

impl Row {
    /// A measured row, without a ratio.
    pub fn measured(section: &str, name: impl Into<String>, m: &Measurement) -> Self {
        Self {
            section: section.to_owned(),
            name: name.into(),
            ops_per_sec: m.ops_per_sec(),
            p50_ms: m.p50_ms,
            p99_ms: m.p99_ms,
            ratio: None,
            ratio_to: String::new(),
            note: m.note(),
        }
    }

    /// A row for a figure that could not be measured, and why.
    pub fn skipped(section: &str, name: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Self {
            section: section.to_owned(),
            name: name.into(),
            ops_per_sec: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            ratio: None,
            ratio_to: String::new(),
            note: format!("skipped: {why}"),
        }
    }

    /// This row's rate as a ratio of `baseline`'s (named `to`).
    pub fn against(mut self, to: &str, baseline_ops_per_sec: f64) -> Self {
        if baseline_ops_per_sec > 0.0 && self.ops_per_sec > 0.0 {
            self.ratio = Some(self.ops_per_sec / baseline_ops_per_sec);
            self.ratio_to = to.to_owned();
        }
        self
    }

    /// Append `more` to the note.
    pub fn with_note(mut self, more: impl AsRef<str>) -> Self {
        let more = more.as_ref();
        if !more.is_empty() {
            if !self.note.is_empty() {
                self.note.push_str("; ");
            }
            self.note.push_str(more);
        }
        self
    }

    /// Whether the row holds no figure.
    pub fn is_skipped(&self) -> bool {
        self.note.starts_with("skipped")
    }
}

/// What every section is given: the options, the services that are up, and the ceiling,
/// measured once per run (by the first section that asks for it).
pub struct BenchContext {
    pub options: BenchOptions,
    pub services: services::Services,
    ceiling: OnceCell<Result<Measurement, String>>,
}

impl BenchContext {
    pub fn new(options: BenchOptions, services: services::Services) -> Self {
        Self {
            options,
            services,
            ceiling: OnceCell::new(),
        }
    }

    /// How long one figure is measured at most.
    pub fn window(&self) -> Duration {
        if self.options.quick {
            Duration::from_millis(1_000)
        } else {
            Duration::from_secs(3)
        }
    }

    /// The HTTP load of one figure: `--connections` connections for [`Self::window`], at
    /// most `max_ops` operations.
    pub fn load(&self, max_ops: u64) -> Load {
        Load {
            connections: self.options.connections,
            threads: self.options.driver_threads,
            window: self.window(),
            max_ops,
        }
    }

    /// The hello-world ceiling of this run: measured at the first call, the same figure
    /// afterwards. `Err` says why it could not be measured (then no HTTP ratio exists).
    pub async fn ceiling(&self) -> Result<&Measurement, &str> {
        self.ceiling
            .get_or_init(|| ceiling::measure(self))
            .await
            .as_ref()
            .map_err(String::as_str)
    }

    /// `row` as a ratio of the ceiling, with its p99 compared to the ceiling's p99 in the
    /// note; unchanged when the ceiling is unknown.
    pub async fn against_ceiling(&self, row: Row) -> Row {
        match self.ceiling().await {
            Ok(hello) if !row.is_skipped() => {
                let p99 = if hello.p99_ms > 0.0 {
                    format!("p99 {:.1}x hello-world's", row.p99_ms / hello.p99_ms)
                } else {
                    String::new()
                };
                row.against(ceiling::NAME, hello.ops_per_sec())
                    .with_note(p99)
            }
            _ => row,
        }
    }
}

/// What the multi-process sections (`cluster`, `failover`) take from the run: owned, so that
/// their work can run on a task of its own (a panic there is a row, not the end of the run).
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// PostgreSQL admin URL (a scratch database is made on it); `None`: not up.
    pub postgres_url: Option<String>,
    /// NATS URL (`EMPORIUM_TEST_NATS`, else the local default; cluster mode needs it).
    pub nats_url: Option<String>,
    /// Concurrent connections of the load.
    pub connections: usize,
    /// Time bound of one measurement.
    pub duration: Duration,
    /// `kill -9` rounds of the failover section (`FAILOVER_ROUNDS`, default 3, 1 with `--quick`).
    pub failover_rounds: usize,
}

impl ClusterSettings {
    pub fn of(ctx: &BenchContext) -> Self {
        let default_rounds = if ctx.options.quick { 1 } else { 3 };
        Self {
            postgres_url: ctx.services.postgres.clone(),
            nats_url: Some(
                std::env::var("EMPORIUM_TEST_NATS")
                    .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
            ),
            connections: ctx.options.connections,
            duration: ctx.window(),
            failover_rounds: std::env::var("FAILOVER_ROUNDS")
                .ok()
                .and_then(|rounds| rounds.parse().ok())
                .unwrap_or(default_rounds),
        }
    }
}

/// A section's measurements, boxed so that the registry can hold every section.
pub type SectionRun<'a> = Pin<Box<dyn Future<Output = Vec<Row>> + 'a>>;

/// A registered section.
pub struct Section {
    /// The name `--only` takes and the table's first column shows.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    pub run: for<'a> fn(&'a BenchContext) -> SectionRun<'a>,
}

/// Register `module::run` as a section.
macro_rules! section {
    ($name:literal, $module:ident, $about:literal) => {
        Section {
            name: $name,
            about: $about,
            run: |ctx| Box::pin($module::run(ctx)),
        }
    };
}

/// Every section, in the order a run measures them.
pub const SECTIONS: &[Section] = &[
    section!(
        "ceiling",
        ceiling,
        "a plain hyper hello-world: the ceiling every HTTP ratio is against"
    ),
    section!(
        "node",
        node,
        "an in-process node over HTTP: reads, cart writes, checkout (embedded, PostgreSQL, CQL)"
    ),
    section!(
        "runtime",
        runtime,
        "the runtime without HTTP: activations per store, memory per idle actor, events/s"
    ),
    section!(
        "stores",
        stores,
        "CAS writes per store adapter, next to plain CAS and raw LWT baselines"
    ),
    section!(
        "cluster",
        cluster,
        "3 emporium processes on PostgreSQL: cart reads and writes at the owner and forwarded"
    ),
    section!(
        "failover",
        failover,
        "3 emporium processes: kill -9 rounds, a rolling restart, every acknowledged write read back"
    ),
];

/// The sections `--only` selects (all when it is absent), in registry order; an unknown
/// name is an error naming the known ones.
pub fn selected(only: Option<&[String]>) -> Result<Vec<&'static Section>, OptionsError> {
    let Some(only) = only else {
        return Ok(SECTIONS.iter().collect());
    };
    if let Some(unknown) = only
        .iter()
        .find(|name| !SECTIONS.iter().any(|s| s.name == name.as_str()))
    {
        return Err(OptionsError::UnknownSection {
            name: unknown.clone(),
            known: SECTIONS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(SECTIONS
        .iter()
        .filter(|s| only.iter().any(|name| name == s.name))
        .collect())
}

/// Run the selected sections in order and gather their rows.
pub async fn run(ctx: &BenchContext, sections: &[&'static Section]) -> Vec<Row> {
    let mut rows = Vec::new();
    for section in sections {
        eprintln!("bench: section {} …", section.name);
        let started = std::time::Instant::now();
        let section_rows = (section.run)(ctx).await;
        for row in &section_rows {
            eprintln!("{}", table::line(row));
        }
        eprintln!(
            "bench: section {} done in {:.1} s",
            section.name,
            started.elapsed().as_secs_f64()
        );
        rows.extend(section_rows);
    }
    // A run whose HTTP ratios used the ceiling shows it, even when `--only` left its
    // section out.
    if let Some(Ok(hello)) = ctx.ceiling.get()
        && !rows.iter().any(|row| row.section == "ceiling")
    {
        rows.insert(0, ceiling::row(ctx, hello));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_needs_both_figures() {
        let m = Measurement::counted(1000, 1.0);
        let row = Row::measured("node", "x", &m).against("hello-world", 4000.0);
        assert_eq!(row.ratio, Some(0.25));
        assert_eq!(row.ratio_to, "hello-world");
        let skipped = Row::skipped("node", "x", "down").against("hello-world", 4000.0);
        assert_eq!(skipped.ratio, None);
        assert!(skipped.is_skipped());
    }

    #[test]
    fn only_selects_known_sections_in_registry_order() {
        let picked = selected(Some(&["stores".to_owned(), "ceiling".to_owned()])).unwrap();
        let names: Vec<_> = picked.iter().map(|s| s.name).collect();
        assert_eq!(names, ["ceiling", "stores"]);
        assert!(matches!(
            selected(Some(&["nope".to_owned()])),
            Err(OptionsError::UnknownSection { .. })
        ));
        assert_eq!(selected(None).unwrap().len(), SECTIONS.len());
    }
}
