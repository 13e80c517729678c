//! What a caller may be told about a command: applied, not applied, or unknown.
//!
//! Two pieces make the runtime's verdict exact instead of guessed from a timer:
//!
//! - A [`Ticket`] travels with every asked command. The activation *starts* it before the
//!   handler runs; the caller *abandons* it when its deadline passes (or when it goes away).
//!   Both are one compare-and-swap on the same cell, so exactly one wins: either the command
//!   runs and the caller waits for its verdict, or it is dropped unapplied and the caller
//!   answers "not applied" knowing it is true.
//! - A [`TurnScope`] is installed around each handler (a task-local): it bounds the
//!   deadlines of the asks the handler makes and records whether any of them may have changed
//!   something. A turn that fails after such an effect reports its failure as
//!   [`RuntimeError::AfterEffects`](crate::RuntimeError) (outcome unknown), never as
//!   "nothing happened", so routing never retries it and the edge never says "retry".

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::RuntimeError;

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

/// The start-or-abandon race of one asked command.
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    state: AtomicU8,
}

impl Ticket {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The activation is about to run the command: `false` when the caller gave up first
    /// (the command must then be dropped without running).
    pub(crate) fn start(&self) -> bool {
        self.transition(STARTED)
    }

    /// The caller gives up: `true` when the command had not started and now never will.
    pub(crate) fn abandon(&self) -> bool {
        self.transition(ABANDONED)
    }

    fn transition(&self, to: u8) -> bool {
        self.state
            .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Abandons the ticket when the asking future is dropped (the HTTP client went away, an
/// outer timeout fired): a command nobody waits for any more is not started late.
pub(crate) struct AbandonOnDrop(pub(crate) Arc<Ticket>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// The context of the turn a handler runs in.
pub(crate) struct TurnScope {
    /// When the turn's caller stops waiting for its verdict.
    ends_at: Instant,
    /// An ask made by the turn may have changed another actor.
    effects: Cell<bool>,
}

tokio::task_local! {
    static TURN: TurnScope;
}

impl TurnScope {
    /// Run `handler` as a turn that must end within `budget`; returns its output and whether
    /// any ask it made may have had an effect.
    pub(crate) async fn run<F: Future>(budget: Duration, handler: F) -> (F::Output, bool) {
        let scope = TurnScope {
            ends_at: Instant::now() + budget,
            effects: Cell::new(false),
        };
        TURN.scope(scope, async move {
            let output = handler.await;
            let effects = TURN.with(|turn| turn.effects.get());
            (output, effects)
        })
        .await
    }
}

/// The deadline for an ask: `requested`, shortened to what is left of the enclosing turn
/// (an answer after the turn's own caller stopped waiting is of no use to anyone).
pub(crate) fn bounded_by_turn(requested: Duration) -> Duration {
    TURN.try_with(|turn| requested.min(turn.ends_at.saturating_duration_since(Instant::now())))
        .unwrap_or(requested)
}

/// Record, in the enclosing turn if any, what an ask of another actor may have done: a
/// command that is not a read changed something unless its error proves it did not run.
pub(crate) fn note_ask<T>(read_only: bool, result: &Result<T, RuntimeError>) {
    let may_have_applied = match result {
        Ok(_) => !read_only,
        Err(error) => !read_only && !error.is_not_applied(),
    };
    if may_have_applied {
        note_effect();
    }
}

/// Record that the enclosing turn (if any) had an effect outside its own actor.
pub(crate) fn note_effect() {
    let _ = TURN.try_with(|turn| turn.effects.set(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_abandon_exclude_each_other() {
        let ticket = Ticket::new();
        assert!(ticket.start());
        assert!(!ticket.abandon());
        let ticket = Ticket::new();
        assert!(ticket.abandon());
        assert!(!ticket.start());
    }

    #[test]
    fn dropping_the_guard_abandons_a_queued_ticket() {
        let ticket = Ticket::new();
        drop(AbandonOnDrop(Arc::clone(&ticket)));
        assert!(!ticket.start());
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_bounds_nested_deadlines_and_records_effects() {
        assert_eq!(
            bounded_by_turn(Duration::from_secs(9)),
            Duration::from_secs(9)
        );
        let ((), effects) = TurnScope::run(Duration::from_secs(2), async {
            assert_eq!(
                bounded_by_turn(Duration::from_secs(9)),
                Duration::from_secs(2)
            );
            note_ask::<()>(true, &Ok(()));
        })
        .await;
        assert!(!effects, "a read has no effect");
        let ((), effects) = TurnScope::run(Duration::from_secs(2), async {
            note_ask::<()>(false, &Ok(()));
        })
        .await;
        assert!(effects);
    }
}
