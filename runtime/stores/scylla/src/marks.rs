//! A small, lossy memory of the index rows ("marks") this process wrote recently, so a save
//! does not write again a mark it wrote moments ago.
//!
//! # Why
//! A save that raises events writes two marks (`outbox_actors`, `outbox_shards`) before its
//! lightweight transaction: one more round trip and two more writes per save, although an
//! actor that saves often finds its marks still there. Skipping a mark is safe exactly when
//! the protocol of the crate docs still holds: *a mark exists, written at most
//! `INDEX_GRACE / 6` before the compare-and-set that needs it commits, or it is written again
//! after the commit*. Readers delete only marks older than [`INDEX_GRACE`], so a mark this
//! process wrote at `t` exists until at least `t + INDEX_GRACE`; a save that reuses it takes
//! `t` as its marking time, and [`refresh_marks`](crate::ScyllaStore) rewrites it when the
//! commit comes later than `t + INDEX_GRACE / 6`, as it does for a mark the save wrote itself.
//!
//! # Contract
//! - [`RecentMarks::fresh_since`] answers `Some(t)` only for a mark of that kind and actor
//!   whose successful write began at `t`, no longer than [`REUSE_FOR`] ago; anything else
//!   (never written, evicted, too old) is `None`, and the caller writes the mark.
//! - [`RecentMarks::wrote`] is called only after the mark's write succeeded, with the time
//!   taken *before* it was sent (so `t` is never later than the row's write time).
//! - Bounded: [`SLOTS`] slots, each holding one mark; a new mark evicts whatever shared its
//!   slot. Memory is a few hundred KiB at most, whatever the number of actors.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::INDEX_GRACE;

/// Slots of the memory. Enough for the actors that save repeatedly within [`REUSE_FOR`] on a
/// busy node; fewer only means more marks written, never a wrong answer.
pub(crate) const SLOTS: usize = 4096;

/// How long a mark may be reused: well inside the `INDEX_GRACE / 6` a save has from its
/// marking time to its commit before it must refresh, so a reusing save rarely needs to.
pub(crate) const REUSE_FOR: Duration = Duration::from_millis(INDEX_GRACE.as_secs() * 1000 / 12);

/// Which index row a save writes before its compare-and-set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mark {
    Key,
    Outbox,
    Reminders,
}

struct Slot {
    mark: Mark,
    kind: &'static str,
    key: String,
    written_at: Instant,
}

/// See the module docs.
pub(crate) struct RecentMarks {
    slots: Vec<Mutex<Option<Slot>>>,
}

impl RecentMarks {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, mark: Mark, kind: &str, key: &str) -> &Mutex<Option<Slot>> {
        let mut hasher = DefaultHasher::new();
        (mark, kind, key).hash(&mut hasher);
        // The modulo keeps the index below `SLOTS`, which fits a usize.
        let index = (hasher.finish() % SLOTS as u64) as usize;
        &self.slots[index]
    }

    /// When this process began the write of `mark` for the actor, if that is recent enough
    /// to reuse it.
    pub(crate) fn fresh_since(&self, mark: Mark, kind: &str, key: &str) -> Option<Instant> {
        let slot = self.slot(mark, kind, key).lock().ok()?;
        let slot = slot.as_ref()?;
        (slot.mark == mark
            && slot.kind == kind
            && slot.key == key
            && slot.written_at.elapsed() < REUSE_FOR)
            .then_some(slot.written_at)
    }

    /// Remember that the write of `mark` for the actor, begun at `written_at`, succeeded.
    pub(crate) fn wrote(&self, mark: Mark, kind: &'static str, key: &str, written_at: Instant) {
        // A poisoned slot only held a mark: forgetting it is always safe.
        let mut slot = match self.slot(mark, kind, key).lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slot.as_mut() {
            Some(held) if held.mark == mark && held.kind == kind && held.key == key => {
                held.written_at = held.written_at.max(written_at);
            }
            _ => {
                *slot = Some(Slot {
                    mark,
                    kind,
                    key: key.to_owned(),
                    written_at,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_reused_only_for_its_own_kind_and_actor_and_while_fresh() {
        let marks = RecentMarks::new();
        assert_eq!(marks.fresh_since(Mark::Outbox, "cart", "a"), None);
        let at = Instant::now();
        marks.wrote(Mark::Outbox, "cart", "a", at);
        assert_eq!(marks.fresh_since(Mark::Outbox, "cart", "a"), Some(at));
        assert_eq!(marks.fresh_since(Mark::Reminders, "cart", "a"), None);
        assert_eq!(marks.fresh_since(Mark::Outbox, "cart", "b"), None);
        assert_eq!(marks.fresh_since(Mark::Outbox, "order", "a"), None);
        let Some(old) = Instant::now().checked_sub(REUSE_FOR + Duration::from_millis(1)) else {
            return;
        };
        marks.wrote(Mark::Key, "cart", "a", old);
        assert_eq!(marks.fresh_since(Mark::Key, "cart", "a"), None, "too old");
    }

    #[test]
    fn the_memory_stays_bounded_and_a_newer_write_wins() {
        let marks = RecentMarks::new();
        let at = Instant::now();
        for n in 0..(SLOTS * 4) {
            marks.wrote(Mark::Outbox, "cart", &n.to_string(), at);
        }
        assert_eq!(marks.slots.len(), SLOTS);
        let later = at + Duration::from_millis(5);
        marks.wrote(Mark::Outbox, "cart", "x", later);
        marks.wrote(Mark::Outbox, "cart", "x", at);
        assert_eq!(marks.fresh_since(Mark::Outbox, "cart", "x"), Some(later));
    }

    #[test]
    fn reuse_ends_well_before_a_save_must_refresh_its_marks() {
        assert!(REUSE_FOR * 2 <= INDEX_GRACE / 6);
    }
}
