//! Memory per idle active actor, measured in a child process of its own (the harness binary
//! run again with `--memory-probe COUNT`), so that what the other figures allocated and the
//! allocator kept does not blur the growth.
//!
//! The child builds a runtime on the in-memory store with one counter kind, asks `COUNT`
//! fresh keys once each (a read: no record is ever written, so no store or cache grows with
//! the actors: the growth is the runtime's own per-actor cost), and reads its resident set
//! (`/proc/self/statm`) before, with every actor active and idle, and once the idle timeout
//! has passivated them all (what the allocator keeps afterwards, with the node's own
//! passivation hook returning free memory, `emporium::memory`). It prints one line,
//! [`ProbeReport::line`], that the parent parses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_runtime::store::MemoryStore;
use emporium_runtime::{Runtime, RuntimeConfig};

use super::runtime::Counter;

/// The flag that makes the harness binary a probe.
pub const FLAG: &str = "--memory-probe";

/// The idle timeout of the probe's runtime: how soon its actors passivate.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probe saw, in bytes of resident memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    pub actors: u64,
    pub rss_before: u64,
    pub rss_active: u64,
    /// Actors still active when `rss_active` was read (all of them, unless some passivated).
    pub active: u64,
    pub rss_passivated: u64,
    /// Seconds the activations took.
    pub activation_secs: f64,
}

impl ProbeReport {
    pub fn bytes_per_active_actor(&self) -> f64 {
        self.rss_active.saturating_sub(self.rss_before) as f64 / self.active.max(1) as f64
    }

    /// Resident bytes per actor still held once all were passivated.
    pub fn bytes_per_actor_after_passivation(&self) -> f64 {
        self.rss_passivated.saturating_sub(self.rss_before) as f64 / self.actors.max(1) as f64
    }

    /// The line the child prints.
    pub fn line(&self) -> String {
        format!(
            "memory-probe actors={} rss_before={} rss_active={} active={} rss_passivated={} activation_secs={:.3}",
            self.actors,
            self.rss_before,
            self.rss_active,
            self.active,
            self.rss_passivated,
            self.activation_secs
        )
    }

    /// Parse [`Self::line`] out of the child's output.
    pub fn parse(output: &str) -> Option<Self> {
        let line = output
            .lines()
            .find(|line| line.starts_with("memory-probe "))?;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        Some(Self {
            actors: field("actors")?.parse().ok()?,
            rss_before: field("rss_before")?.parse().ok()?,
            rss_active: field("rss_active")?.parse().ok()?,
            active: field("active")?.parse().ok()?,
            rss_passivated: field("rss_passivated")?.parse().ok()?,
            activation_secs: field("activation_secs")?.parse().ok()?,
        })
    }
}

/// Run the probe in a child process and read its report.
pub async fn in_child(actors: u64) -> Result<ProbeReport, String> {
    let exe = std::env::current_exe()
        .map_err(|error| format!("cannot find the harness binary: {error}"))?;
    let output = tokio::process::Command::new(exe)
        .arg(FLAG)
        .arg(actors.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| format!("cannot run the probe: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ProbeReport::parse(&stdout).ok_or_else(|| {
        format!(
            "the probe answered nothing usable ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// The probe itself (in the child): activate `actors` counters, read RSS, wait for them to
/// passivate, read RSS again.
pub async fn probe(actors: u64) -> Result<ProbeReport, String> {
    let runtime = Runtime::builder(Arc::new(MemoryStore::new()))
        .config(RuntimeConfig {
            idle_timeout: IDLE_TIMEOUT,
            max_active_actors: usize::try_from(actors * 2).unwrap_or(usize::MAX),
            ..RuntimeConfig::default()
        })
        .register(Counter)
        .on_passivation(emporium::memory::trim_after_passivations())
        .build()
        .await
        .map_err(|error| format!("cannot build the runtime: {error}"))?;
    // One actor first, so that lazily built structures are not counted per actor.
    ask(&runtime, "warm-up".to_owned()).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_before = rss_bytes()?;
    let started = Instant::now();
    activate(&runtime, actors).await?;
    let activation_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let active = runtime.active_actors();
    let rss_active = rss_bytes()?;
    let waiting = Instant::now();
    while runtime.active_actors() > 0 && waiting.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(ProbeReport {
        actors,
        rss_before,
        rss_active,
        active,
        rss_passivated: rss_bytes()?,
        activation_secs,
    })
}

async fn ask(runtime: &Runtime, key: String) -> Result<(), String> {
    runtime
        .actor::<Counter>(key)
        .ask(false)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Ask `actors` fresh keys once each, 64 at a time.
async fn activate(runtime: &Runtime, actors: u64) -> Result<(), String> {
    const CALLERS: u64 = 64;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let mut key = caller;
                while key < actors {
                    ask(&runtime, format!("idle-{key}")).await?;
                    key += CALLERS;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|error| error.to_string())??;
    }
    Ok(())
}

/// The process's resident set, from `/proc/self/statm` (pages × page size).
pub fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|error| format!("cannot read /proc/self/statm: {error}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("unexpected /proc/self/statm: {statm:?}"))?;
    Ok(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size)
        .ok()
        .filter(|size| *size > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_survives_its_line() {
        let report = ProbeReport {
            actors: 1000,
            rss_before: 10_000_000,
            rss_active: 12_000_000,
            active: 1000,
            rss_passivated: 11_000_000,
            activation_secs: 0.25,
        };
        let output = format!("noise\n{}\n", report.line());
        assert_eq!(ProbeReport::parse(&output), Some(report.clone()));
        assert_eq!(report.bytes_per_active_actor(), 2000.0);
        assert_eq!(report.bytes_per_actor_after_passivation(), 1000.0);
        assert_eq!(ProbeReport::parse("nothing"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_sees_actors_come_and_go() {
        let report = probe(2_000).await.unwrap();
        assert_eq!(report.actors, 2_000);
        assert!(report.active >= 2_000, "{report:?}");
        assert!(report.rss_active > 0);
    }
}
