//! A node's own rates, for operators: requests, server errors and relayed events per second,
//! averaged over the last [`RATE_WINDOW_SECONDS`] whole seconds.
//!
//! Counted where they happen: the edge records each answered request, the relay each event
//! the bus stored. Lock-free: a ring of per-second buckets, each tagged with the second it
//! counts; a bucket found holding an older second is reset by whoever first writes to it in
//! the new second. A write racing that reset may be lost — these are dashboard figures,
//! not accounts.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::SharedClock;
use crate::status::RATE_WINDOW_SECONDS;

/// Buckets in the ring: the window, the second being counted, and one being recycled.
const BUCKETS: usize = RATE_WINDOW_SECONDS as usize + 2;

/// Per-second counters of one node.
pub struct NodeRates {
    clock: SharedClock,
    buckets: [Bucket; BUCKETS],
}

#[derive(Default)]
struct Bucket {
    /// The Unix second this bucket counts (0: never used).
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    events: AtomicU64,
}

/// The rates over the window, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub requests: f64,
    pub errors: f64,
    pub events: f64,
}

impl NodeRates {
    pub(crate) fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            buckets: Default::default(),
        }
    }

    /// One request answered; `server_error` when its answer was a 5xx.
    pub fn record_request(&self, server_error: bool) {
        let bucket = self.current();
        bucket.requests.fetch_add(1, Ordering::Relaxed);
        if server_error {
            bucket.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `count` events stored on the bus.
    pub(crate) fn record_events(&self, count: u64) {
        self.current().events.fetch_add(count, Ordering::Relaxed);
    }

    /// The mean rates over the last [`RATE_WINDOW_SECONDS`] complete seconds.
    pub fn rates(&self) -> Rates {
        let now = self.second();
        let window = now.saturating_sub(RATE_WINDOW_SECONDS)..now;
        let mut sums = [0u64; 3];
        for bucket in &self.buckets {
            if window.contains(&bucket.second.load(Ordering::Acquire)) {
                sums[0] += bucket.requests.load(Ordering::Relaxed);
                sums[1] += bucket.errors.load(Ordering::Relaxed);
                sums[2] += bucket.events.load(Ordering::Relaxed);
            }
        }
        let per_second = |sum: u64| sum as f64 / RATE_WINDOW_SECONDS as f64;
        Rates {
            requests: per_second(sums[0]),
            errors: per_second(sums[1]),
            events: per_second(sums[2]),
        }
    }

    fn second(&self) -> u64 {
        self.clock.now_ms() / 1000
    }

    /// The bucket of the current second, reset first if it still holds an older one.
    fn current(&self) -> &Bucket {
        let second = self.second();
        let bucket = &self.buckets[(second % BUCKETS as u64) as usize];
        let seen = bucket.second.load(Ordering::Acquire);
        if seen != second
            && bucket
                .second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.errors.store(0, Ordering::Relaxed);
            bucket.events.store(0, Ordering::Relaxed);
        }
        bucket
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn rates_are_means_over_the_complete_seconds_of_the_window() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let rates = NodeRates::new(clock.clone());
        for _ in 0..30 {
            rates.record_request(false);
        }
        rates.record_request(true);
        rates.record_events(5);
        // The second being counted is not in the window yet.
        assert_eq!(rates.rates(), Rates::default());
        clock.advance_ms(1_000);
        let seen = rates.rates();
        assert_eq!(seen.requests, 3.1);
        assert_eq!(seen.errors, 0.1);
        assert_eq!(seen.events, 0.5);
        // Counted seconds leave the window, and their buckets are reused cleanly.
        clock.advance_ms(RATE_WINDOW_SECONDS * 1_000);
        assert_eq!(rates.rates(), Rates::default());
        rates.record_request(false);
        clock.advance_ms(1_000);
        assert_eq!(rates.rates().requests, 0.1);
    }
}
