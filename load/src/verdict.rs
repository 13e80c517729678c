//! The run's verdict from goose's metrics: it passes only if requests were made and none
//! failed (a failed check counts: `set_failure` marks its request failed).
//!
//! The binary exits non-zero on a failed verdict, which is what `scripts/load-smoke.sh`
//! relies on. Nothing about timing is judged: a load run is a measurement, not a test of
//! speed.

use std::fmt;

use goose::metrics::GooseMetrics;

/// Counts of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub requests: usize,
    pub failed_requests: usize,
    pub failed_transactions: usize,
}

impl Verdict {
    pub fn of(metrics: &GooseMetrics) -> Self {
        let requests = metrics
            .requests
            .values()
            .map(|r| r.success_count + r.fail_count)
            .sum();
        let failed_requests = metrics.requests.values().map(|r| r.fail_count).sum();
        let failed_transactions = metrics
            .transactions
            .iter()
            .flatten()
            .map(|t| t.fail_count)
            .sum();
        Self {
            requests,
            failed_requests,
            failed_transactions,
        }
    }

    pub fn passed(&self) -> bool {
        self.requests > 0 && self.failed_requests == 0 && self.failed_transactions == 0
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} failed, {} failed transactions: {}",
            self.requests,
            self.failed_requests,
            self.failed_transactions,
            if self.passed() {
                "PASS"
            } else if self.requests == 0 {
                "FAIL (no request was made)"
            } else {
                "FAIL"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_passes_with_requests_and_no_failure() {
        let v = |requests, failed_requests, failed_transactions| Verdict {
            requests,
            failed_requests,
            failed_transactions,
        };
        assert!(v(10, 0, 0).passed());
        assert!(!v(10, 1, 0).passed());
        assert!(!v(10, 0, 1).passed());
        assert!(!v(0, 0, 0).passed());
        assert!(v(0, 0, 0).to_string().contains("no request"));
    }

    #[test]
    fn an_empty_goose_run_fails() {
        assert!(!Verdict::of(&GooseMetrics::default()).passed());
    }
}
