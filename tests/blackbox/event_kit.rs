//! Events in the black-box tests: each test's (or test cluster's) JetStream stream is the
//! kit's `TestStream` (`emporium_testkit::cluster::events`); the order checks are here.

pub use emporium_testkit::cluster::{Stored, TestStream};

/// Per source actor, the versions of its events in stream order must only grow.
pub fn assert_per_actor_order(stored: &[Stored]) {
    let mut last: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for message in stored {
        let source = format!(
            "{}:{}",
            message.envelope["source"]["kind"].as_str().unwrap_or("?"),
            message.envelope["source"]["key"].as_str().unwrap_or("?")
        );
        let id = message.envelope["id"].as_str().unwrap_or("");
        let index: u64 = id
            .rsplit(':')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let position = (message.envelope["version"].as_u64().unwrap_or(0), index);
        if let Some(previous) = last.insert(source.clone(), position) {
            assert!(
                position > previous,
                "{source}: {position:?} after {previous:?}"
            );
        }
    }
}
