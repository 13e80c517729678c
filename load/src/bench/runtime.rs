//! Section `runtime`: the runtime without HTTP.
//!
//! - `activations (<store>)`: first asks to fresh keys of a counter kind (spawn the
//!   activation, load from the store, which finds no record, run the turn, reply), 64
//!   callers, on each store adapter: the in-memory twin (the runtime's own cost), the
//!   embedded store, PostgreSQL and the CQL store when up.
//! - `idle actor memory`: resident bytes per idle active actor and what is still held once
//!   they have passivated, measured in a child process ([`super::memory_probe`]); its rate is
//!   the probe's activations per second.
//! - `events via relay (<store>)`: writes on 1024 hot counters, each raising one event,
//!   until the outbox relay has published every event to the in-process bus; the rate is
//!   events published per second from the first write to the drained outbox, as a ratio of
//!   the same writes raising no event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_runtime::events::Event;
use emporium_runtime::events::{MemoryEventBus, MemoryEventBusConfig, RelaySettings};
use emporium_runtime::{Runtime, RuntimeConfig, RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use super::drive::{self, Measurement};
use super::memory_probe;
use super::scratch_store::{Adapter, ScratchStore};
use super::{BenchContext, Row};

const SECTION: &str = "runtime";
/// Concurrent callers of the runtime figures.
const CALLERS: usize = 64;
/// Hot keys the event figures write.
const HOT_KEYS: u64 = 1024;

/// The counter: its state is a count; `true` adds one, `false` only reads.
pub struct Counter;

#[derive(Default, Serialize, Deserialize)]
pub struct Tally {
    count: u64,
}

impl VirtualActor for Counter {
    const KIND: &'static str = "bench-counter";
    type State = Tally;
    type Command = bool;
    type Reply = u64;

    async fn handle(&self, turn: &mut Turn<Self>, write: bool) -> Result<u64, RuntimeError> {
        if write {
            turn.state_mut().count += 1;
        }
        Ok(turn.state().count)
    }
}

/// A counter that raises one [`Counted`] event with every write (or none, for the baseline).
struct Emitter;

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Counted {
    Counted { count: u64 },
}

impl Event for Counted {
    const SCHEMA: u32 = 1;
    fn subject(&self) -> &'static str {
        "bench.counted"
    }
}

impl VirtualActor for Emitter {
    const KIND: &'static str = "bench-emitter";
    type State = Tally;
    /// Whether the write raises an event.
    type Command = bool;
    type Reply = u64;

    async fn handle(&self, turn: &mut Turn<Self>, emit: bool) -> Result<u64, RuntimeError> {
        turn.state_mut().count += 1;
        let count = turn.state().count;
        if emit {
            turn.emit(Counted::Counted { count })?;
        }
        Ok(count)
    }
}

pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut memory_rate = None;
    for adapter in Adapter::ALL {
        let row = activations(ctx, adapter).await;
        let row = match memory_rate {
            Some(rate) => row.against("activations (memory)", rate),
            None => row,
        };
        if adapter == Adapter::Memory && !row.is_skipped() {
            memory_rate = Some(row.ops_per_sec);
        }
        rows.push(row);
    }
    rows.push(idle_memory(ctx).await);
    for adapter in [Adapter::Memory, Adapter::Embedded] {
        rows.push(events(ctx, adapter).await);
    }
    rows
}

async fn runtime_on(store: &ScratchStore, events: bool) -> Result<Runtime, String> {
    let mut builder = Runtime::builder(store.store.clone())
        .config(RuntimeConfig {
            max_active_actors: 10_000_000,
            ..RuntimeConfig::default()
        })
        .register(Counter)
        .register(Emitter);
    if events {
        let bus = Arc::new(MemoryEventBus::new(MemoryEventBusConfig::default()));
        builder = builder.events(bus, RelaySettings::default());
    }
    builder
        .build()
        .await
        .map_err(|error| format!("cannot build the runtime: {error}"))
}

async fn activations(ctx: &BenchContext, adapter: Adapter) -> Row {
    let name = format!("activations ({})", adapter.label());
    let store = match ScratchStore::open(&ctx.services, adapter, "activations").await {
        Ok(store) => store,
        Err(why) => return Row::skipped(SECTION, name, why),
    };
    let row = match runtime_on(&store, false).await {
        Ok(runtime) => {
            let m = drive::drive_tasks(CALLERS, ctx.window(), 5_000_000, move |worker, n| {
                let handle = runtime.actor::<Counter>(format!("fresh-{worker}-{n}"));
                async move {
                    handle
                        .ask(false)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await;
            Row::measured(SECTION, name, &m).with_note("fresh keys: the load finds no record")
        }
        Err(why) => Row::skipped(SECTION, name, why),
    };
    store.remove().await;
    row
}

async fn idle_memory(ctx: &BenchContext) -> Row {
    let name = "idle actor memory";
    let actors = if ctx.options.quick { 20_000 } else { 100_000 };
    match memory_probe::in_child(actors).await {
        Ok(report) => {
            let m = Measurement::counted(report.actors, report.activation_secs);
            let mut row = Row::measured(SECTION, name, &m);
            row.note = format!(
                "{:.0} B per idle active actor ({} actors, RSS {:.1} -> {:.1} MB), {:.0} B per actor still held after all passivated (child process, memory store: no record, no cache)",
                report.bytes_per_active_actor(),
                report.active,
                report.rss_before as f64 / 1e6,
                report.rss_active as f64 / 1e6,
                report.bytes_per_actor_after_passivation(),
            );
            row
        }
        Err(why) => Row::skipped(SECTION, name, why),
    }
}

async fn events(ctx: &BenchContext, adapter: Adapter) -> Row {
    let name = format!("events via relay ({})", adapter.label());
    let store = match ScratchStore::open(&ctx.services, adapter, "events").await {
        Ok(store) => store,
        Err(why) => return Row::skipped(SECTION, name, why),
    };
    let row = match runtime_on(&store, true).await {
        Ok(runtime) => {
            let baseline = writes(&runtime, ctx.window(), false).await;
            let relayed = relayed(&runtime, ctx.window()).await;
            runtime.shutdown(Duration::from_secs(5)).await;
            let events = Measurement {
                ops: relayed.published,
                secs: relayed.secs,
                ..relayed.writes.clone()
            };
            let mut row = Row::measured(SECTION, name, &events)
                .against("writes without events", baseline.ops_per_sec());
            row.note = format!(
                "{} events published in {:.2} s ({} still pending); writes raising them {:.0}/s (p50/p99: theirs), without events {:.0}/s; {}",
                relayed.published,
                relayed.secs,
                relayed.pending,
                relayed.writes.ops_per_sec(),
                baseline.ops_per_sec(),
                relayed.writes.note()
            );
            row
        }
        Err(why) => Row::skipped(SECTION, name, why),
    };
    store.remove().await;
    row
}

/// Writes on the hot keys for `window`, raising one event each or none.
async fn writes(runtime: &Runtime, window: Duration, emit: bool) -> Measurement {
    let runtime = runtime.clone();
    drive::drive_tasks(CALLERS, window, 5_000_000, move |worker, n| {
        let key = (worker as u64 * 7919 + n) % HOT_KEYS;
        let handle = runtime.actor::<Emitter>(format!("hot-{key}"));
        async move {
            handle
                .ask(emit)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await
}

/// What [`relayed`] saw.
struct Relayed {
    /// The emitting writes.
    writes: Measurement,
    /// Events published from the first write until the outbox drained (or 60 s passed).
    published: u64,
    pending: u64,
    secs: f64,
}

/// Emitting writes for `window`, then wait until the relay has drained the outbox.
async fn relayed(runtime: &Runtime, window: Duration) -> Relayed {
    let started = Instant::now();
    let writes = writes(runtime, window, true).await;
    while runtime.outbox_pending() > 0 && started.elapsed() < window + Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pending = runtime.outbox_pending() as u64;
    Relayed {
        published: writes.ops.saturating_sub(pending),
        pending,
        secs: started.elapsed().as_secs_f64(),
        writes,
    }
}
