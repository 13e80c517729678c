//! CAS saves per second of the embedded store, on a temporary directory, with 1, 16 and 128
//! concurrent writers on distinct keys (each writer: load, then save under the loaded
//! version, in a loop). Every save is durable (fsynced) before it is acknowledged, so the
//! figure with one writer is the disk's fsync rate, and the group commit is what lets the
//! others go beyond it; `mean_batch` is the number of saves per commit.
//!
//! Run with `cargo bench -p emporium-store-embedded`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_runtime::store::StateWrite;
use emporium_runtime::{ActorId, StateStore, StoreError};
use emporium_store_embedded::EmbeddedStore;

/// How long each configuration runs, at most.
const DURATION: Duration = Duration::from_millis(2_500);
/// How many saves one writer makes, at most.
const MAX_OPS_PER_WRITER: u64 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for writers in [1u64, 16, 128] {
        runtime.block_on(run(writers))?;
    }
    Ok(())
}

async fn run(writers: u64) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("bench.redb"))?);
    let state = Bytes::from(vec![7u8; 256]);
    let before = store.commit_stats();
    let started = Instant::now();
    let deadline = started + DURATION;

    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let id = ActorId::new("bench", format!("writer-{writer}"));
            let mut ops = 0u64;
            while ops < MAX_OPS_PER_WRITER && Instant::now() < deadline {
                let expected = store.load(&id).await?.map_or(0, |record| record.version);
                let write = StateWrite {
                    expected_version: expected,
                    state: state.clone(),
                    ..StateWrite::default()
                };
                store.save(&id, write).await?;
                ops += 1;
            }
            Ok::<u64, StoreError>(ops)
        }));
    }
    let mut ops = 0;
    for task in tasks {
        ops += task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let after = store.commit_stats();
    let commits = after.commits - before.commits;
    let requests = after.requests - before.requests;
    let mean_batch = if commits == 0 {
        0.0
    } else {
        requests as f64 / commits as f64
    };
    println!(
        "embedded cas writes: writers={writers} ops={ops} secs={secs:.2} ops_per_sec={:.0} mean_batch={mean_batch:.1}",
        ops as f64 / secs
    );
    Ok(())
}
