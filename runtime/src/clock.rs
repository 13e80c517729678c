//! The one place the runtime reads time.
//!
//! Runtime and domain code never call `SystemTime::now` or `Instant::now` directly: they ask
//! the [`Clock`] carried by the runtime. Production uses [`SystemClock`]; tests use
//! [`ManualClock`] to jump wall time (reminders, reservation expiry) and tokio's paused time
//! for the monotonic side (idle timeouts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time as Unix milliseconds: for persisted timestamps and reminder due times.
    fn now_ms(&self) -> u64;

    /// Milliseconds since the clock was created, never going backwards: for idle timeouts
    /// and durations. Follows tokio's clock, so `tokio::time::pause` controls it in tests.
    fn monotonic_ms(&self) -> u64;
}

/// The shared handle the runtime passes around.
pub type SharedClock = Arc<dyn Clock>;

/// Real time.
pub struct SystemClock {
    started: tokio::time::Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64)
    }

    fn monotonic_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// A clock whose wall time only moves when a test says so. Its monotonic side follows
/// tokio's (pausable) clock.
pub struct ManualClock {
    wall_ms: AtomicU64,
    started: tokio::time::Instant,
}

impl ManualClock {
    pub fn new(wall_ms: u64) -> Self {
        Self {
            wall_ms: AtomicU64::new(wall_ms),
            started: tokio::time::Instant::now(),
        }
    }

    /// Move wall time forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// `duration` in whole milliseconds, saturating: the unit every deadline and timing in the
/// runtime is compared in.
pub(crate) fn duration_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
