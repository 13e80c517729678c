//! CAS saves per second of the embedded store, on a temporary directory, with 1, 16 and 128
//! concurrent writers on distinct keys (each writer: load, then save under the loaded
//! version, in a loop). Every save is durable (fsynced) before it is acknowledged, so the
//! figure with one writer is the disk's fsync rate, and the group commit is what lets the
//! others go beyond it; `mean_batch` is the number of saves per commit.
//!
//! Run with `cargo bench -p emporium-store-embedded`.

use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::StateStore;
use emporium_store_embedded::{CommitStats, EmbeddedStore};
use emporium_testkit::cas_bench::{self, Budget, CasOptions};

const OPTIONS: CasOptions = CasOptions {
    label: "cas writes",
    run_for: Duration::from_millis(2_500),
    budget: Budget::PerWriter(200_000),
    state_size: 256,
    with_outbox: false,
    load_before_save: true,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for writers in [1, 16, 128] {
        runtime.block_on(run(writers))?;
    }
    Ok(())
}

async fn run(writers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("bench.redb"))?);
    let before = store.commit_stats();
    let shared: Arc<dyn StateStore> = store.clone();
    let outcome = cas_bench::measure(&shared, writers, &OPTIONS).await?;
    if outcome.conflicts + outcome.errors > 0 {
        return Err(format!(
            "{} conflicts and {} errors with {writers} writers",
            outcome.conflicts, outcome.errors
        )
        .into());
    }
    let after = store.commit_stats();
    let batches = CommitStats {
        commits: after.commits - before.commits,
        requests: after.requests - before.requests,
    };
    println!(
        "embedded cas writes: writers={writers} ops={} secs={:.2} ops_per_sec={:.0} mean_batch={:.1}",
        outcome.ops,
        outcome.secs,
        outcome.ops_per_sec(),
        batches.mean_batch()
    );
    Ok(())
}
