//! Durability under `kill -9`: every write the store answered `Ok` is there after the process
//! was killed mid-stream.
//!
//! The test re-runs its own binary as a child (`crash_child`, which does nothing unless
//! `EMPORIUM_CRASH_CHILD_DIR` is set). The child saves in a loop from several tasks and prints
//! `acked <key>` after each `Ok`; the parent kills it with SIGKILL while writes are in flight,
//! reopens the file and checks every acknowledged key.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bytes::Bytes;
use emporium_runtime::store::StateWrite;
use emporium_runtime::{ActorId, StateStore};
use emporium_store_embedded::EmbeddedStore;

const CHILD_DIR: &str = "EMPORIUM_CRASH_CHILD_DIR";
const WANTED_ACKS: usize = 400;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    // Keep the pipe open until the child is dead, so it never sees a closed stdout.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix("acked ") {
            acked.push(key.to_owned());
            if acked.len() >= WANTED_ACKS {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no clean shutdown.
    child.wait().unwrap();
    drop(lines);
    assert!(
        acked.len() >= WANTED_ACKS,
        "the child stopped after {} acks",
        acked.len()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(&dir.path().join("state.redb")).unwrap();
        for key in &acked {
            let record = store
                .load(&ActorId::new("crash", key.clone()))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
            assert_eq!(record.version, 1);
            assert_eq!(record.state, Bytes::from(key.clone().into_bytes()));
        }
    });
}

/// The child half of [`acknowledged_writes_survive_kill_9`]; a no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = std::sync::Arc::new(
            EmbeddedStore::open(&std::path::Path::new(&dir).join("state.redb")).unwrap(),
        );
        let mut tasks = Vec::new();
        for task in 0..8 {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("t{task}-{n}");
                    let write = StateWrite {
                        expected_version: 0,
                        state: Bytes::from(key.clone().into_bytes()),
                        ..StateWrite::default()
                    };
                    store
                        .save(&ActorId::new("crash", key.clone()), write)
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {key}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}
