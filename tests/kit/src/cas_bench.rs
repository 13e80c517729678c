//! CAS writes per second of a store adapter: the `stores` section of the benchmark harness
//! (`load/src/bench/stores.rs`) measures every adapter with it.
//!
//! A configuration runs `writers` concurrent writers, each on a key of its own, for
//! [`CasOptions::run_for`] or until the [`Budget`] is spent. A writer saves under the version
//! it holds (the one its last save returned, or, with [`CasOptions::load_before_save`], the
//! one it loaded just before); after a failed save it counts a conflict or an error and
//! reloads its version. The latency of every successful save is kept for the percentiles.
//!
//! A bench opens its store and calls [`run`] (every writer count on that store, one line
//! each: `<adapter> <label>: writers=N ops_per_sec=X p50_ms=… p99_ms=… conflicts=… errors=…`),
//! or [`measure`] (one configuration) when it reports figures of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_runtime::store::{OutboxEntry, StateWrite};
use emporium_runtime::{ActorId, StateStore, intern_kind};

/// How many saves a configuration attempts at most, besides its deadline.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// At most this many per writer.
    PerWriter(u64),
    /// At most this many per configuration, split evenly between its writers.
    PerRun(u64),
    /// Only the deadline stops the writers.
    Unbounded,
}

impl Budget {
    fn per_writer(self, writers: usize) -> u64 {
        match self {
            Self::PerWriter(ops) => ops,
            Self::PerRun(ops) => ops / writers as u64,
            Self::Unbounded => u64::MAX,
        }
    }
}

/// The shape of a bench's configurations.
#[derive(Clone, Debug)]
pub struct CasOptions {
    /// Names the configurations in the printed lines (`<adapter> <label>: …`) and the keys.
    pub label: &'static str,
    /// How long one configuration runs, at most.
    pub run_for: Duration,
    pub budget: Budget,
    /// Bytes of state each save writes.
    pub state_size: usize,
    /// Whether each save also carries one 64-byte outbox entry.
    pub with_outbox: bool,
    /// Load the record before every save and save under the loaded version.
    pub load_before_save: bool,
}

/// The outcome of one configuration.
#[derive(Debug, Default)]
pub struct CasRun {
    pub writers: usize,
    /// Successful saves.
    pub ops: u64,
    /// Saves refused for a stale version.
    pub conflicts: u64,
    /// Failed saves (and, with `load_before_save`, failed loads) other than conflicts.
    pub errors: u64,
    /// Wall time of the configuration, from the first spawn to the last writer's end.
    pub secs: f64,
    /// Latency of every successful save, sorted once the configuration is over.
    latencies_us: Vec<u64>,
}

impl CasRun {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// The `p`-th percentile (`0.0..=1.0`) of the save latencies, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let sorted = &self.latencies_us;
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
    }

    /// The line [`run`] prints for this configuration.
    pub fn line(&self, adapter: &str, label: &str) -> String {
        format!(
            "{adapter} {label}: writers={} ops_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} conflicts={} errors={}",
            self.writers,
            self.ops_per_sec(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.conflicts,
            self.errors,
        )
    }
}

/// Measure each writer count of `writers` in turn on `store`, printing one line per
/// configuration and draining the outbox after each, so the next starts from the same state.
pub async fn run(
    store: Arc<dyn StateStore>,
    adapter: &str,
    writers: &[usize],
    options: &CasOptions,
) -> Result<(), String> {
    for &count in writers {
        let outcome = measure(&store, count, options).await?;
        println!("{}", outcome.line(adapter, options.label));
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
    Ok(())
}

/// Run one configuration of `writers` writers on `store`.
pub async fn measure(
    store: &Arc<dyn StateStore>,
    writers: usize,
    options: &CasOptions,
) -> Result<CasRun, String> {
    let kind = intern_kind("bench");
    let deadline = Instant::now() + options.run_for;
    let budget = options.budget.per_writer(writers);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let id = ActorId::new(kind, format!("{}-{writers}-w{w}", options.label));
            tokio::spawn(writer(
                Arc::clone(store),
                id,
                options.clone(),
                deadline,
                budget,
            ))
        })
        .collect();
    let mut total = CasRun {
        writers,
        ..CasRun::default()
    };
    for task in tasks {
        let tally = task.await.map_err(|error| error.to_string())?;
        total.ops += tally.ops;
        total.conflicts += tally.conflicts;
        total.errors += tally.errors;
        total.latencies_us.extend(tally.latencies_us);
    }
    total.secs = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    Ok(total)
}

async fn writer(
    store: Arc<dyn StateStore>,
    id: ActorId,
    options: CasOptions,
    deadline: Instant,
    budget: u64,
) -> CasRun {
    let mut tally = CasRun::default();
    let mut version = 0u64;
    let state = Bytes::from(vec![7u8; options.state_size]);
    let payload = Bytes::from(vec![9u8; 64]);
    let mut n = 0u64;
    while Instant::now() < deadline && n < budget {
        n += 1;
        if options.load_before_save {
            match store.load(&id).await {
                Ok(record) => version = record.map_or(0, |record| record.version),
                Err(error) => {
                    tally.errors += 1;
                    eprintln!("load failed: {error}");
                    continue;
                }
            }
        }
        let outbox = if options.with_outbox {
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
