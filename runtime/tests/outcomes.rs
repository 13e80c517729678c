//! The runtime's verdicts (ARCHITECTURE.md, "Outcomes"): an error says "not applied" only
//! when nothing of the command happened, "unknown" when something may have; a command whose
//! caller gave up before it started never runs; a started command's verdict is awaited past
//! the start deadline instead of being guessed.

use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::store::MemoryStore;
use emporium_runtime::{ErrorClass, Runtime, RuntimeConfig, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    value: i64,
}

#[derive(Clone, Serialize, Deserialize)]
enum TallyCommand {
    Add(i64),
    /// Hold the turn for this many ms, then add one.
    SlowAdd(u64),
    Get,
    /// Add to another tally, then fail with a transient error.
    AddElsewhereThenFail {
        other: String,
    },
    /// Read another tally, then fail with a transient error.
    ReadElsewhereThenFail {
        other: String,
    },
    /// Checkpoint a change, then fail with a transient error.
    CheckpointThenFail,
}

struct Tallies;

impl VirtualActor for Tallies {
    const KIND: &'static str = "tally";
    type State = Tally;
    type Command = TallyCommand;
    type Reply = i64;

    fn is_read(command: &TallyCommand) -> bool {
        matches!(command, TallyCommand::Get)
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: TallyCommand,
    ) -> Result<i64, RuntimeError> {
        let moved = |turn: &Turn<Self>| RuntimeError::Moved {
            actor: turn.id().clone(),
            reason: "deliberately transient".to_owned(),
        };
        match command {
            TallyCommand::Add(delta) => turn.state_mut().value += delta,
            TallyCommand::SlowAdd(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                turn.state_mut().value += 1;
            }
            TallyCommand::Get => {}
            TallyCommand::AddElsewhereThenFail { other } => {
                turn.runtime()
                    .actor::<Tallies>(other)
                    .ask(TallyCommand::Add(1))
                    .await?;
                return Err(moved(turn));
            }
            TallyCommand::ReadElsewhereThenFail { other } => {
                turn.runtime()
                    .actor::<Tallies>(other)
                    .ask(TallyCommand::Get)
                    .await?;
                return Err(moved(turn));
            }
            TallyCommand::CheckpointThenFail => {
                turn.state_mut().value += 1;
                turn.commit().await?;
                return Err(moved(turn));
            }
        }
        Ok(turn.state().value)
    }
}

async fn start(ask_ms: u64, turn_ms: u64) -> Runtime {
    Runtime::builder(Arc::new(MemoryStore::new()))
        .config(RuntimeConfig {
            ask_timeout: Duration::from_millis(ask_ms),
            turn_timeout: Duration::from_millis(turn_ms),
            ..RuntimeConfig::default()
        })
        .register(Tallies)
        .build()
        .await
        .expect("runtime starts")
}

async fn value(runtime: &Runtime, key: &str) -> i64 {
    runtime
        .actor::<Tallies>(key)
        .ask(TallyCommand::Get)
        .await
        .expect("read")
}

#[tokio::test]
async fn a_command_still_queued_at_its_deadline_is_dropped_and_said_not_applied() {
    let runtime = start(5_000, 5_000).await;
    let tally = runtime.actor::<Tallies>("queued");
    let slow = {
        let tally = runtime.actor::<Tallies>("queued");
        tokio::spawn(async move { tally.ask(TallyCommand::SlowAdd(400)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Queued behind the slow turn, with a deadline that passes before it can start.
    let late = tally
        .ask_within(TallyCommand::Add(100), Duration::from_millis(100))
        .await
        .expect_err("the deadline passes while it waits");
    assert!(matches!(late, RuntimeError::Expired { .. }), "{late}");
    assert_eq!(late.class(), ErrorClass::Unavailable);
    assert!(late.is_not_applied() && !late.is_outcome_unknown());
    assert_eq!(slow.await.expect("task").expect("slow add"), 1);
    assert_eq!(
        value(&runtime, "queued").await,
        1,
        "the dropped add never ran"
    );
    assert_eq!(runtime.snapshot()["tally"].expired, 1);
}

#[tokio::test]
async fn a_started_command_is_awaited_past_the_start_deadline() {
    let runtime = start(100, 2_000).await;
    let tally = runtime.actor::<Tallies>("started");
    // Starts at once, runs longer than the start deadline: the caller gets its real verdict.
    let reply = tally.ask(TallyCommand::SlowAdd(400)).await;
    assert_eq!(reply.expect("verdict, not a guess"), 1);
}

#[tokio::test]
async fn a_turn_outliving_the_verdict_budget_is_an_unknown_outcome() {
    let runtime = start(100, 200).await;
    let error = runtime
        .actor::<Tallies>("stuck")
        .ask(TallyCommand::SlowAdd(1_000))
        .await
        .expect_err("no verdict in time");
    assert!(error.is_outcome_unknown(), "{error}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        value(&runtime, "stuck").await,
        1,
        "it did apply, as 'unknown' allowed"
    );
}

#[tokio::test]
async fn a_failure_after_an_effect_elsewhere_is_unknown_and_never_retried() {
    let runtime = start(2_000, 2_000).await;
    let error = runtime
        .actor::<Tallies>("caller")
        .ask(TallyCommand::AddElsewhereThenFail {
            other: "callee".to_owned(),
        })
        .await
        .expect_err("fails after its nested add");
    assert!(
        matches!(error, RuntimeError::AfterEffects { .. }),
        "{error}"
    );
    assert!(error.is_outcome_unknown() && !error.is_not_applied());
    assert_eq!(
        value(&runtime, "callee").await,
        1,
        "the nested add ran once"
    );
}

#[tokio::test]
async fn a_failure_after_only_reads_stays_not_applied() {
    let runtime = start(2_000, 2_000).await;
    let error = runtime
        .actor::<Tallies>("reader")
        .ask(TallyCommand::ReadElsewhereThenFail {
            other: "read".to_owned(),
        })
        .await
        .expect_err("fails after a read");
    assert!(error.is_not_applied(), "{error}");
}

#[tokio::test]
async fn a_failure_after_a_checkpoint_is_unknown() {
    let runtime = start(2_000, 2_000).await;
    let error = runtime
        .actor::<Tallies>("saga")
        .ask(TallyCommand::CheckpointThenFail)
        .await
        .expect_err("fails after its checkpoint");
    assert!(error.is_outcome_unknown(), "{error}");
    assert_eq!(
        value(&runtime, "saga").await,
        1,
        "the checkpoint stands, once"
    );
}

#[test]
fn deadlines_derived_from_a_request_timeout_give_their_verdict_before_it() {
    for outer_ms in [1, 100, 2_500, 10_000, 60_000] {
        let outer = Duration::from_millis(outer_ms);
        let config = RuntimeConfig::within(outer);
        assert!(
            config.verdict_within() < outer,
            "{outer:?}: verdict within {:?}",
            config.verdict_within()
        );
        assert!(!config.ask_timeout.is_zero() && !config.turn_timeout.is_zero());
    }
}
