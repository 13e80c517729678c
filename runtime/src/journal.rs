//! The cluster journal: what happened to the cluster as this node saw it (joins, leaves,
//! liveness changes, shard moves, failovers), kept in a bounded history and broadcast live
//! to operators (the admin API's event stream, the console).
//!
//! Filled by the cluster's watcher (`cluster::journal`); empty on a single node. Bounded:
//! the last [`HISTORY`] events are kept; a live reader that falls more than [`LIVE_BUFFER`]
//! events behind skips ahead (the `seq` gap tells it so).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::lock;
use crate::status::{ClusterChange, ClusterEvent};

/// Events kept for late readers (the console's failover history).
pub const HISTORY: usize = 256;
/// Events a live reader may fall behind before it skips ahead.
const LIVE_BUFFER: usize = 1024;

pub(crate) struct Journal {
    observer: String,
    clock: SharedClock,
    state: Mutex<Recent>,
    live: broadcast::Sender<ClusterEvent>,
}

#[derive(Default)]
struct Recent {
    next_seq: u64,
    events: VecDeque<ClusterEvent>,
}

/// The journal as a reader gets it: what happened so far, then what happens next (no event
/// in both, none missed between them).
pub struct ClusterEventFeed {
    pub history: Vec<ClusterEvent>,
    pub live: broadcast::Receiver<ClusterEvent>,
}

impl Journal {
    pub(crate) fn new(observer: String, clock: SharedClock) -> Self {
        Self {
            observer,
            clock,
            state: Mutex::new(Recent::default()),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }

    pub(crate) fn record(&self, change: ClusterChange) {
        let mut state = lock(&self.state);
        state.next_seq += 1;
        let event = ClusterEvent {
            seq: state.next_seq,
            at_ms: self.clock.now_ms(),
            observer: self.observer.clone(),
            change,
        };
        if state.events.len() == HISTORY {
            state.events.pop_front();
        }
        state.events.push_back(event.clone());
        // Sent under the lock, so that a reader subscribing meanwhile sees each event once.
        let _ = self.live.send(event);
    }

    pub(crate) fn feed(&self) -> ClusterEventFeed {
        let state = lock(&self.state);
        ClusterEventFeed {
            history: state.events.iter().cloned().collect(),
            live: self.live.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn joined(node: &str) -> ClusterChange {
        ClusterChange::Joined {
            node_id: node.to_owned(),
            incarnation: 1,
        }
    }

    #[tokio::test]
    async fn a_reader_gets_the_history_then_every_later_event_once() {
        let journal = Journal::new("n1".to_owned(), Arc::new(ManualClock::new(5_000)));
        journal.record(joined("n2"));
        let mut feed = journal.feed();
        journal.record(joined("n3"));
        assert_eq!(feed.history.len(), 1);
        assert_eq!(feed.history[0].seq, 1);
        assert_eq!(feed.history[0].observer, "n1");
        let next = feed.live.recv().await.unwrap();
        assert_eq!(
            (next.seq, next.at_ms, next.change),
            (2, 5_000, joined("n3"))
        );
    }

    #[test]
    fn the_history_is_bounded() {
        let journal = Journal::new("n1".to_owned(), Arc::new(ManualClock::new(0)));
        for _ in 0..HISTORY + 10 {
            journal.record(joined("n2"));
        }
        let history = journal.feed().history;
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].seq, 11);
    }
}
