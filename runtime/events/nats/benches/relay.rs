//! Events per second through the outbox relay to JetStream, on the embedded store.
//!
//! `EMPORIUM_TEST_NATS=nats://127.0.0.1:4222 cargo bench -p emporium-events-nats --bench relay`
//!
//! 1. The ceiling: the bare JetStream adapter publishing batches of 256 (no store, no relay).
//! 2. The relay: `WRITERS` concurrent writers each commit turns that raise one event, on the
//!    embedded store; timed from the first commit until the outbox is empty (every event
//!    stored by JetStream and acknowledged in the outbox). Also prints the deepest outbox
//!    the relay let build up.
//!
//! A stream of its own, deleted afterwards. Not a test: nothing is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_events_nats::{JetStreamBus, JetStreamSettings};
use emporium_runtime::events::{EventBus, EventEnvelope, RelaySettings};
use emporium_runtime::{Runtime, RuntimeError, Turn, VirtualActor};
use emporium_store_embedded::EmbeddedStore;
use serde::{Deserialize, Serialize};

const EVENTS: usize = 20_000;
const WRITERS: usize = 64;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Ticked {
    Ticked { n: u64 },
}

impl emporium_runtime::events::Event for Ticked {
    const SCHEMA: u32 = 1;
    fn subject(&self) -> &'static str {
        "emporium.bench.ticked"
    }
}

struct Ticker;

impl VirtualActor for Ticker {
    const KIND: &'static str = "ticker";
    type State = u64;
    type Command = ();
    type Reply = ();

    async fn handle(&self, turn: &mut Turn<Self>, _: ()) -> Result<(), RuntimeError> {
        *turn.state_mut() += 1;
        let n = *turn.state();
        turn.emit(Ticked::Ticked { n })
    }
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("EMPORIUM_TEST_NATS") else {
        eprintln!("relay bench skipped: EMPORIUM_TEST_NATS not set");
        return;
    };
    let suffix = std::process::id();
    let settings = JetStreamSettings {
        stream: format!("EMPORIUM_BENCH_RELAY_{suffix}"),
        subject_prefix: format!("benchrelay{suffix}"),
        ..JetStreamSettings::new(url.as_str())
    };
    let bus = JetStreamBus::start(settings).await.expect("JetStream");

    let started = Instant::now();
    for chunk in 0..EVENTS / 256 {
        let batch: Vec<EventEnvelope> = (0..256)
            .map(|i| EventEnvelope {
                id: format!("raw-{chunk}-{i}"),
                subject: "emporium.bench.raw".to_owned(),
                payload: Bytes::from_static(b"{\"type\":\"Ticked\",\"data\":{\"n\":1}}"),
            })
            .collect();
        let results = bus.publish(&batch).await;
        assert!(results.iter().all(Result::is_ok), "raw publish failed");
    }
    let raw = (EVENTS / 256 * 256) as f64 / started.elapsed().as_secs_f64();
    println!("jetstream publish, batches of 256: {raw:.0} events/s (the ceiling)");

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).expect("store"));
    let runtime = Runtime::builder(store)
        .events(Arc::new(bus.clone()), RelaySettings::default())
        .register(Ticker)
        .build()
        .await
        .expect("runtime");
    let started = Instant::now();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (runtime, peak) = (runtime.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    runtime.outbox_pending(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                for _ in 0..EVENTS / WRITERS {
                    runtime
                        .actor::<Ticker>(format!("t{w}"))
                        .ask(())
                        .await
                        .expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let committed = started.elapsed();
    while runtime.outbox_pending() > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drained = started.elapsed();
    watcher.abort();
    let events = (EVENTS / WRITERS * WRITERS) as f64;
    println!(
        "relay, embedded store, {WRITERS} writers: {:.0} commits/s; {:.0} events/s through the relay to JetStream (all stored {:.0} ms after the last commit); deepest outbox {} events",
        events / committed.as_secs_f64(),
        events / drained.as_secs_f64(),
        (drained - committed).as_secs_f64() * 1000.0,
        peak.load(std::sync::atomic::Ordering::Relaxed),
    );
    runtime.shutdown(Duration::from_secs(5)).await;
    bus.delete_stream().await.expect("delete the bench stream");
}
