//! `GET /console/stream`: the dashboard's live feed, as server-sent events whose data are
//! HTML fragments, named after the element that shows them (`sse-swap`):
//!
//! - every second: `nodes`, `shardmap`, `kinds`, `charts` — each sent only when it differs
//!   from what this stream sent last (the shard map rarely changes);
//! - at once and on each journal event: `history`, the last [`HISTORY_LINES`] lines, newest
//!   first (the whole list each time, so a reconnecting page never shows a line twice).
//!
//! One task per open stream; it ends when the page goes away (the channel closes) or when
//! the session expires (a last `nodes` fragment says so). Its rate charts are its own
//! ([`RateHistory`]): bounded, and gone with the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use emporium_runtime::{ClusterEvent, ClusterStatus, Runtime};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::charts::RateHistory;
use super::fragments;
use super::session::ConsoleAdmin;
use crate::state::AppState;

/// How often the fragments are refreshed.
const TICK: Duration = Duration::from_secs(1);
/// History lines a page shows.
pub const HISTORY_LINES: usize = 100;
/// Events a slow page may have queued before the stream waits for it.
const QUEUE: usize = 16;

pub async fn stream(
    ConsoleAdmin(claims): ConsoleAdmin,
    State(state): State<AppState>,
) -> impl IntoResponse {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(feed(state.runtime.clone(), claims.exp, sender));
    Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::default())
}

type Sender = mpsc::Sender<Result<Event, Infallible>>;

/// Send fragments until the page goes away or the session expires.
async fn feed(runtime: Runtime, expires_at_secs: u64, sender: Sender) {
    let journal = runtime.cluster_events();
    let mut view = ConsoleView::default();
    for event in &journal.history {
        view.add_event(event);
    }
    let mut live = Some(journal.live);
    if !send(&sender, "history", view.history()).await {
        return;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = sender.closed() => return,
            _ = tick.tick() => {
                if now_secs() >= expires_at_secs {
                    let _ = send(&sender, "nodes", EXPIRED.to_owned()).await;
                    return;
                }
                let status = runtime.cluster_status().await;
                let owners = runtime.shard_owners();
                for (name, html) in view.frame(&status, &owners) {
                    if !send(&sender, name, html).await {
                        return;
                    }
                }
            }
            received = next_event(&mut live) => {
                match received {
                    Ok(event) => view.add_event(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => view.add_note(missed),
                    // The journal lives as long as the runtime: nothing more will come.
                    Err(broadcast::error::RecvError::Closed) => live = None,
                }
                if !send(&sender, "history", view.history()).await {
                    return;
                }
            }
        }
    }
}

const EXPIRED: &str = r#"<div class="result error" role="alert">Your session has expired: <a href="/console">log in again</a>.</div>"#;

async fn next_event(
    live: &mut Option<broadcast::Receiver<ClusterEvent>>,
) -> Result<ClusterEvent, broadcast::error::RecvError> {
    match live {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// False when the page went away.
async fn send(sender: &Sender, name: &str, html: String) -> bool {
    let event = Event::default().event(name).data(html);
    sender.send(Ok(event)).await.is_ok()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// What one open page has been sent: the fragments last sent, the rate samples and the
/// history lines.
#[derive(Default)]
pub struct ConsoleView {
    rates: RateHistory,
    last_sent: [String; 4],
    /// Newest first, at most [`HISTORY_LINES`].
    history: VecDeque<String>,
}

impl ConsoleView {
    /// The fragments to send after one more second: those that changed.
    pub fn frame(
        &mut self,
        status: &ClusterStatus,
        owners: &[Option<String>],
    ) -> Vec<(&'static str, String)> {
        self.rates.record(status);
        let rendered = [
            ("nodes", fragments::nodes_table(status)),
            ("shardmap", fragments::shard_map(status, owners)),
            ("kinds", fragments::active_kinds(status)),
            ("charts", self.rates.render()),
        ];
        let mut changed = Vec::new();
        for (index, (name, html)) in rendered.into_iter().enumerate() {
            if self.last_sent[index] != html {
                self.last_sent[index].clone_from(&html);
                changed.push((name, html));
            }
        }
        changed
    }

    pub fn add_event(&mut self, event: &ClusterEvent) {
        self.push_line(fragments::history_line(event));
    }

    /// A live reader fell behind and missed `missed` events.
    pub fn add_note(&mut self, missed: u64) {
        self.push_line(fragments::history_note(&format!(
            "{missed} events were missed (this page fell behind)"
        )));
    }

    fn push_line(&mut self, line: String) {
        if self.history.len() == HISTORY_LINES {
            self.history.pop_back();
        }
        self.history.push_front(line);
    }

    /// The history list's content, newest line first.
    pub fn history(&self) -> String {
        if self.history.is_empty() {
            return r#"<li class="muted">Nothing has happened to the cluster yet.</li>"#.to_owned();
        }
        self.history.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use emporium_runtime::{ClusterChange, NodeStatus};

    use super::*;

    fn status(shards: usize) -> ClusterStatus {
        ClusterStatus {
            mode: "cluster",
            node_id: "n1".to_owned(),
            shard_count: 1024,
            unowned_shards: 0,
            nodes: vec![NodeStatus {
                node_id: "n1".to_owned(),
                cluster_addr: None,
                http_addr: None,
                status: "up".to_owned(),
                liveness: "alive".to_owned(),
                incarnation: Some(1),
                shards_owned: shards,
                active_actors: Some(0),
                load: None,
                last_heartbeat_ms_ago: Some(0),
            }],
        }
    }

    fn names(frame: &[(&'static str, String)]) -> Vec<&'static str> {
        frame.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn only_fragments_that_changed_are_sent_again() {
        let mut view = ConsoleView::default();
        let owners = vec![Some("n1".to_owned()); 4];
        let first = view.frame(&status(4), &owners);
        assert_eq!(names(&first), ["nodes", "shardmap", "kinds", "charts"]);
        // The charts move every second (one more sample); the rest did not change.
        assert_eq!(names(&view.frame(&status(4), &owners)), ["charts"]);
        let moved = vec![None, Some("n1".to_owned()), None, None];
        assert_eq!(
            names(&view.frame(&status(1), &moved)),
            ["nodes", "shardmap", "charts"]
        );
    }

    #[test]
    fn the_history_is_newest_first_and_bounded() {
        let mut view = ConsoleView::default();
        assert!(view.history().contains("Nothing has happened"));
        for seq in 1..=(HISTORY_LINES as u64 + 5) {
            view.add_event(&ClusterEvent {
                seq,
                at_ms: 0,
                observer: "n1".to_owned(),
                change: ClusterChange::Ownership {
                    from: Some("n3".to_owned()),
                    to: "n1".to_owned(),
                    shards: 1,
                },
            });
        }
        let history = view.history();
        assert_eq!(history.matches("<li").count(), HISTORY_LINES);
        let newest = history.find(r#"data-seq="105""#).unwrap();
        let older = history.find(r#"data-seq="104""#).unwrap();
        assert!(newest < older);
        assert!(!history.contains(r#"data-seq="5""#));
        view.add_note(3);
        assert!(view.history().starts_with(r#"<li class="note""#));
    }
}
