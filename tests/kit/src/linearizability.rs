//! A linearizability checker for registers, one history per key (Wing & Gong's search with
//! the memoization of Lowe and of porcupine).
//!
//! Each operation is a [`Op::Write`] of a value or a [`Op::Read`] that saw a value (or
//! nothing), with the times it was invoked and completed and what the client learnt:
//!
//! - [`Outcome::Ok`]: the server answered; the operation took effect once, at some instant
//!   between its invocation and its completion.
//! - [`Outcome::Failed`]: the server said the operation was *not* applied: it certainly did
//!   not take effect, and it is left out of the history. (A read of its value is then a read
//!   of a value nobody wrote: a violation.)
//! - [`Outcome::Unknown`]: no answer (a `504`, a timeout, a lost connection): a write may
//!   have taken effect at any instant after its invocation, or never. It is modelled as
//!   completing at +infinity; a write whose value nobody read may as well be linearized last,
//!   after everything, so it is dropped. A read of unknown outcome observed nothing and is
//!   dropped too.
//!
//! The search: take, among the operations not yet linearized, one that may go first (it was
//! invoked before every other pending operation completed) and that the register allows
//! (a write always; a read only if it saw the current value); recurse; backtrack when none
//! fits. A configuration (the set linearized so far, the register's value) is visited at
//! most once, and the search gives up after a budget of configurations (see [`Verdict`]).
//! Linearizability is local, so keys are checked one by one ([`check_keys`]).
//!
//! A violation is reported with a small offending sub-history: the shortest prefix (by
//! invocation) that is not linearizable, then shrunk one operation at a time while it stays
//! so, never dropping the write of a value that a remaining read saw.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Debug, Display};
use std::hash::Hash;

/// A time in nanoseconds since some origin shared by the whole history.
pub type Nanos = u128;

/// The completion time of an operation whose outcome is unknown.
pub const NEVER: Nanos = Nanos::MAX;

/// Configurations one key's search may visit by default before it gives up.
pub const DEFAULT_BUDGET: usize = 2_000_000;

/// An operation on one register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<V> {
    /// Set the register to a value.
    Write(V),
    /// The value the read returned (`None`: the register was empty).
    Read(Option<V>),
}

/// What the client learnt about an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered: it took effect between its invocation and its completion.
    Ok,
    /// The server said it was not applied: it never took effect.
    Failed,
    /// No answer: it may have taken effect any time after its invocation, or never.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug)]
pub struct Event<V> {
    pub op: Op<V>,
    pub invoke: Nanos,
    /// When the answer came ([`NEVER`] is implied for [`Outcome::Unknown`]).
    pub complete: Nanos,
    pub outcome: Outcome,
    /// Who sent it and through where, for messages.
    pub note: String,
}

impl<V> Event<V> {
    pub fn new(op: Op<V>, invoke: Nanos, complete: Nanos, outcome: Outcome) -> Self {
        Self {
            op,
            invoke,
            complete,
            outcome,
            note: String::new(),
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The completion time the search uses: +infinity when the outcome is unknown.
    fn effective_complete(&self) -> Nanos {
        match self.outcome {
            Outcome::Unknown => NEVER,
            Outcome::Ok | Outcome::Failed => self.complete,
        }
    }
}

impl<V: Debug> Display for Event<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |t: Nanos| t as f64 / 1e6;
        let op = match &self.op {
            Op::Write(value) => format!("write {value:?}"),
            Op::Read(Some(value)) => format!("read -> {value:?}"),
            Op::Read(None) => "read -> (empty)".to_owned(),
        };
        let done = if self.outcome == Outcome::Unknown {
            "∞".to_owned()
        } else {
            format!("{:.3}", ms(self.complete))
        };
        write!(
            f,
            "[{:.3} ms .. {done} ms] {op} ({:?})",
            ms(self.invoke),
            self.outcome
        )?;
        if !self.note.is_empty() {
            write!(f, " {}", self.note)?;
        }
        Ok(())
    }
}

/// The result of checking one key.
#[derive(Debug)]
pub enum Verdict<V> {
    Linearizable,
    Violation(Violation<V>),
    /// The search visited its whole budget of configurations without an answer.
    GaveUp {
        visited: usize,
    },
}

impl<V> Verdict<V> {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }

    pub fn is_violation(&self) -> bool {
        matches!(self, Self::Violation(_))
    }
}

/// A history that is not linearizable, and the small part of it that shows why.
#[derive(Debug)]
pub struct Violation<V> {
    /// The initial value of the register.
    pub initial: Option<V>,
    /// Operations of the history taking part (after dropping failed and unobserved ones).
    pub considered: usize,
    /// A non-linearizable sub-history no operation can be removed from (while keeping the
    /// write of every value it reads), in invocation order.
    pub minimal: Vec<Event<V>>,
    /// Writes answered [`Outcome::Failed`] whose value a read of `minimal` saw.
    pub failed_writes_seen: Vec<Event<V>>,
}

impl<V: Debug> Display for Violation<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable (initial value {:?}; {} operations considered); a minimal offending sub-history:",
            self.initial, self.considered
        )?;
        for event in &self.minimal {
            writeln!(f, "  {event}")?;
        }
        for event in &self.failed_writes_seen {
            writeln!(
                f,
                "  read although its write was answered `not applied`: {event}"
            )?;
        }
        Ok(())
    }
}

/// Check one register's history from `initial`, visiting at most `budget` configurations
/// (the minimization afterwards gets the same budget per attempt).
pub fn check_register<V>(initial: Option<V>, history: &[Event<V>], budget: usize) -> Verdict<V>
where
    V: Clone + Eq + Hash + Debug,
{
    let ops = relevant(history);
    match search(&initial, &ops, budget) {
        Search::Linearizable => Verdict::Linearizable,
        Search::GaveUp(visited) => Verdict::GaveUp { visited },
        Search::Violation => {
            let minimal = minimize(&initial, ops.clone(), budget);
            let failed_writes_seen = history
                .iter()
                .filter(|event| event.outcome == Outcome::Failed)
                .filter(|event| match &event.op {
                    Op::Write(value) => minimal
                        .iter()
                        .any(|seen| seen.op == Op::Read(Some(value.clone()))),
                    Op::Read(_) => false,
                })
                .cloned()
                .collect();
            Verdict::Violation(Violation {
                initial,
                considered: ops.len(),
                minimal,
                failed_writes_seen,
            })
        }
    }
}

/// Every key's verdict that is not [`Verdict::Linearizable`].
pub struct Report<K, V> {
    pub keys: usize,
    pub operations: usize,
    pub problems: Vec<(K, Verdict<V>)>,
}

impl<K: Debug, V: Debug> Report<K, V> {
    pub fn is_linearizable(&self) -> bool {
        self.problems.is_empty()
    }
}

impl<K: Debug, V: Debug> Display for Report<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} keys, {} operations: {} key(s) not shown linearizable",
            self.keys,
            self.operations,
            self.problems.len()
        )?;
        for (key, verdict) in &self.problems {
            match verdict {
                Verdict::Violation(violation) => write!(f, "key {key:?}: {violation}")?,
                Verdict::GaveUp { visited } => writeln!(
                    f,
                    "key {key:?}: the search gave up after {visited} configurations"
                )?,
                Verdict::Linearizable => {}
            }
        }
        Ok(())
    }
}

/// Check every key's history (initial value, operations) independently.
pub fn check_keys<K, V>(
    histories: &BTreeMap<K, (Option<V>, Vec<Event<V>>)>,
    budget: usize,
) -> Report<K, V>
where
    K: Clone + Ord + Debug,
    V: Clone + Eq + Hash + Debug,
{
    let mut report = Report {
        keys: histories.len(),
        operations: 0,
        problems: Vec::new(),
    };
    for (key, (initial, history)) in histories {
        report.operations += history.len();
        let verdict = check_register(initial.clone(), history, budget);
        if !verdict.is_linearizable() {
            report.problems.push((key.clone(), verdict));
        }
    }
    report
}

/// The operations the search needs, in invocation order: failed ones and reads of unknown
/// outcome dropped, and unknown writes whose value no read saw dropped (they can always be
/// linearized after everything else).
fn relevant<V: Clone + Eq + Debug>(history: &[Event<V>]) -> Vec<Event<V>> {
    let read = |value: &V| {
        history.iter().any(|event| {
            event.outcome == Outcome::Ok
                && matches!(&event.op, Op::Read(Some(seen)) if seen == value)
        })
    };
    let mut ops: Vec<Event<V>> = history
        .iter()
        .filter(|event| match (&event.op, event.outcome) {
            (_, Outcome::Failed) | (Op::Read(_), Outcome::Unknown) => false,
            (Op::Write(value), Outcome::Unknown) => read(value),
            (_, Outcome::Ok) => true,
        })
        .cloned()
        .collect();
    ops.sort_by_key(|event| (event.invoke, event.effective_complete()));
    ops
}

enum Search {
    Linearizable,
    Violation,
    GaveUp(usize),
}

/// A set of operation indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }
    fn get(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn clear(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

struct Frame<V> {
    candidates: Vec<usize>,
    next: usize,
    /// The operation this frame linearized and the value before it (none for the root).
    undo: Option<(usize, Option<V>)>,
}

/// The operations not yet linearized that may go next: invoked no later than the earliest
/// completion among the pending ones (nothing pending completed before they began).
fn candidates<V>(ops: &[Event<V>], done: &Bits) -> Vec<usize> {
    let mut earliest = NEVER;
    let mut scanned = Vec::new();
    for (index, event) in ops.iter().enumerate() {
        if done.get(index) {
            continue;
        }
        if event.invoke > earliest {
            break;
        }
        earliest = earliest.min(event.effective_complete());
        scanned.push(index);
    }
    scanned.retain(|&index| ops[index].invoke <= earliest);
    scanned
}

/// The register after `op`, or `None` if the register does not allow it now.
fn step<V: Clone + Eq>(state: &Option<V>, op: &Op<V>) -> Option<Option<V>> {
    match op {
        Op::Write(value) => Some(Some(value.clone())),
        Op::Read(seen) if seen == state => Some(state.clone()),
        Op::Read(_) => None,
    }
}

fn search<V>(initial: &Option<V>, ops: &[Event<V>], budget: usize) -> Search
where
    V: Clone + Eq + Hash,
{
    // Operations that must be linearized; unknown writes left over at the end go last.
    let required = ops.iter().filter(|op| op.outcome == Outcome::Ok).count();
    let mut required_done = 0;
    let mut done = Bits::new(ops.len());
    let mut state = initial.clone();
    let mut seen: HashSet<(Bits, Option<V>)> = HashSet::new();
    let mut stack = vec![Frame {
        candidates: candidates(ops, &done),
        next: 0,
        undo: None,
    }];
    loop {
        if required_done == required {
            return Search::Linearizable;
        }
        let Some(frame) = stack.last_mut() else {
            return Search::Violation;
        };
        if let Some(&index) = frame.candidates.get(frame.next) {
            frame.next += 1;
            let Some(next_state) = step(&state, &ops[index].op) else {
                continue;
            };
            done.set(index);
            if !seen.insert((done.clone(), next_state.clone())) {
                done.clear(index);
                continue;
            }
            if seen.len() > budget {
                return Search::GaveUp(seen.len());
            }
            required_done += usize::from(ops[index].outcome == Outcome::Ok);
            let previous = std::mem::replace(&mut state, next_state);
            stack.push(Frame {
                candidates: candidates(ops, &done),
                next: 0,
                undo: Some((index, previous)),
            });
        } else {
            let frame = stack.pop().expect("a frame was on the stack");
            if let Some((index, previous)) = frame.undo {
                done.clear(index);
                state = previous;
                required_done -= usize::from(ops[index].outcome == Outcome::Ok);
            }
        }
    }
}

/// A small non-linearizable sub-history of `ops` (which is not linearizable).
fn minimize<V>(initial: &Option<V>, ops: Vec<Event<V>>, budget: usize) -> Vec<Event<V>>
where
    V: Clone + Eq + Hash + Debug,
{
    let fails =
        |candidate: &[Event<V>]| matches!(search(initial, candidate, budget), Search::Violation);
    // The shortest failing prefix (by invocation).
    let mut current = ops.clone();
    for len in 1..=ops.len() {
        if fails(&ops[..len]) {
            current = ops[..len].to_vec();
            break;
        }
    }
    // Then drop what is not needed, latest first, a bounded number of attempts.
    let mut attempts = 0;
    let mut index = current.len();
    while index > 0 && attempts < 5_000 {
        index -= 1;
        let keeps_a_read_valid = match &current[index].op {
            Op::Write(value) => current
                .iter()
                .any(|event| event.op == Op::Read(Some(value.clone()))),
            Op::Read(_) => false,
        };
        if keeps_a_read_valid {
            continue;
        }
        attempts += 1;
        let mut without = current.clone();
        without.remove(index);
        if fails(&without) {
            current = without;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: usize = 100_000;

    fn ok(op: Op<u32>, invoke: Nanos, complete: Nanos) -> Event<u32> {
        Event::new(op, invoke, complete, Outcome::Ok)
    }

    fn failed(op: Op<u32>, invoke: Nanos, complete: Nanos) -> Event<u32> {
        Event::new(op, invoke, complete, Outcome::Failed)
    }

    fn unknown(op: Op<u32>, invoke: Nanos) -> Event<u32> {
        Event::new(op, invoke, invoke + 1, Outcome::Unknown)
    }

    fn check(initial: Option<u32>, history: &[Event<u32>]) -> Verdict<u32> {
        check_register(initial, history, BUDGET)
    }

    #[test]
    fn a_linearizable_history_passes() {
        // Overlapping writes and reads that see either value, in a consistent order.
        let history = [
            ok(Op::Write(1), 0, 10),
            ok(Op::Write(2), 5, 30),
            ok(Op::Read(Some(1)), 12, 20), // 1 then 2: write 2 linearized after this read
            ok(Op::Read(Some(2)), 25, 40),
            ok(Op::Read(Some(2)), 41, 50),
            ok(Op::Write(3), 45, 60),
            ok(Op::Read(Some(3)), 55, 70), // overlaps the write of 3
            ok(Op::Read(Some(3)), 71, 80),
        ];
        assert!(check(None, &history).is_linearizable());
        // The empty register is read as empty before any write.
        let history = [ok(Op::Read(None), 0, 1), ok(Op::Write(7), 2, 3)];
        assert!(check(None, &history).is_linearizable());
        assert!(check(Some(1), &[ok(Op::Read(Some(1)), 0, 1)]).is_linearizable());
    }

    #[test]
    fn a_stale_read_fails() {
        // The write of 1 completed before the read began, which still saw the initial value.
        let history = [ok(Op::Write(1), 0, 10), ok(Op::Read(Some(0)), 20, 30)];
        let verdict = check(Some(0), &history);
        let Verdict::Violation(violation) = verdict else {
            panic!("a stale read passed: {verdict:?}");
        };
        assert_eq!(violation.minimal.len(), 2, "{violation}");
        // And from an empty register.
        let history = [ok(Op::Write(1), 0, 10), ok(Op::Read(None), 20, 30)];
        assert!(check(None, &history).is_violation());
    }

    #[test]
    fn a_read_of_a_value_whose_write_failed_fails() {
        let history = [
            ok(Op::Write(1), 0, 10),
            failed(Op::Write(2), 20, 30),
            ok(Op::Read(Some(2)), 40, 50),
        ];
        let verdict = check(None, &history);
        let Verdict::Violation(violation) = verdict else {
            panic!("a read of a write answered `not applied` passed: {verdict:?}");
        };
        assert_eq!(violation.minimal.len(), 1, "{violation}");
        assert_eq!(violation.failed_writes_seen.len(), 1, "{violation}");
        let message = violation.to_string();
        assert!(message.contains("not applied"), "{message}");
        // Concurrent with the read does not help either.
        let history = [failed(Op::Write(2), 0, 30), ok(Op::Read(Some(2)), 10, 20)];
        assert!(check(None, &history).is_violation());
    }

    #[test]
    fn an_unknown_write_that_was_read_later_passes() {
        let history = [
            ok(Op::Write(1), 0, 10),
            unknown(Op::Write(2), 20),
            ok(Op::Read(Some(1)), 30, 40),   // not applied yet
            ok(Op::Read(Some(2)), 100, 110), // applied since
            ok(Op::Read(Some(2)), 120, 130),
        ];
        assert!(check(None, &history).is_linearizable());
        // Never applied at all is fine too.
        let history = [
            ok(Op::Write(1), 0, 10),
            unknown(Op::Write(2), 20),
            ok(Op::Read(Some(1)), 100, 110),
        ];
        assert!(check(None, &history).is_linearizable());
        // But it cannot take effect before it was sent.
        let history = [
            ok(Op::Write(1), 0, 10),
            ok(Op::Read(Some(2)), 20, 30),
            unknown(Op::Write(2), 40),
        ];
        assert!(check(None, &history).is_violation());
        // Nor take effect twice (once read over by a later write).
        let history = [
            unknown(Op::Write(2), 0),
            ok(Op::Read(Some(2)), 10, 20),
            ok(Op::Write(3), 30, 40),
            ok(Op::Read(Some(2)), 50, 60),
        ];
        assert!(check(None, &history).is_violation());
    }

    #[test]
    fn a_read_of_an_older_value_after_a_newer_write_completed_fails() {
        let history = [
            ok(Op::Write(1), 0, 10),
            ok(Op::Read(Some(1)), 11, 12),
            ok(Op::Write(2), 20, 30),
            ok(Op::Read(Some(2)), 31, 35), // noise the minimization removes
            ok(Op::Write(3), 36, 38),
            ok(Op::Read(Some(3)), 39, 40),
            ok(Op::Read(Some(1)), 45, 50), // 1 again, after 2 and 3 completed
        ];
        let verdict = check(None, &history);
        let Verdict::Violation(violation) = verdict else {
            panic!("an old value read after a newer write passed: {verdict:?}");
        };
        assert!(violation.minimal.len() <= 3, "{violation}");
        assert!(
            violation
                .minimal
                .iter()
                .any(|event| event.op == Op::Read(Some(1)) && event.invoke == 45),
            "{violation}"
        );
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut histories = BTreeMap::new();
        histories.insert(
            "a",
            (
                None,
                vec![ok(Op::Write(1), 0, 10), ok(Op::Read(Some(1)), 20, 30)],
            ),
        );
        histories.insert(
            "b",
            (
                None,
                vec![ok(Op::Write(1), 0, 10), ok(Op::Read(None), 20, 30)],
            ),
        );
        let report = check_keys(&histories, BUDGET);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].0, "b");
        assert!(report.to_string().contains("\"b\""), "{report}");
    }

    #[test]
    fn many_concurrent_clients_stay_within_the_budget() {
        // 6 clients, 400 rounds each of overlapping writes and reads of a sequential
        // register whose effects land at the middle of each operation.
        let mut history = Vec::new();
        let mut value = None;
        let mut next = 0u32;
        let mut effects: Vec<(Nanos, usize)> = Vec::new();
        for round in 0..400u128 {
            for client in 0..6u128 {
                let invoke = round * 100 + client * 7;
                let complete = invoke + 60 + client * 3;
                let op = if (round + client) % 3 == 0 {
                    next += 1;
                    Op::Write(next)
                } else {
                    Op::Read(None)
                };
                effects.push(((invoke + complete) / 2, history.len()));
                history.push(ok(op, invoke, complete));
            }
        }
        effects.sort();
        for (_, index) in effects {
            match &mut history[index].op {
                Op::Write(written) => value = Some(*written),
                Op::Read(seen) => *seen = value,
            }
        }
        assert!(check_register(None, &history, DEFAULT_BUDGET).is_linearizable());
    }
}
