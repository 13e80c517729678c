//! The black-box test kit: start real `emporium` processes and talk HTTP to them.
//!
//! The processes, their HTTP clients and the waits live in `emporium_testkit::cluster`
//! (shared with the benchmark harness); this module names what the tests use. Each node
//! gets its own temporary data dir and an OS-chosen port (it prints the URL it serves on,
//! which is how the kit learns the port). Faults are real signals: `kill -9`,
//! `SIGSTOP`/`SIGCONT`, `SIGTERM`. Waits poll under a deadline instead of sleeping.

pub use emporium_testkit::cluster::{Answer, Api, NodeProcess, NodeSpec, metric_sum, wait_until};

#[cfg(test)]
mod tests {
    /// The kit starts the binary cargo built for these tests (it finds it beside the test
    /// executable, since a library cannot name `CARGO_BIN_EXE_emporium`).
    #[test]
    fn the_kit_starts_the_binary_cargo_built_for_these_tests() {
        let spec = super::NodeSpec::embedded(std::path::Path::new("/nonexistent"));
        assert_eq!(
            spec.binary.canonicalize().expect("the kit's binary exists"),
            std::path::Path::new(env!("CARGO_BIN_EXE_emporium"))
                .canonicalize()
                .expect("cargo's binary exists")
        );
    }
}
