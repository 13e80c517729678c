//! The `analytics` actor: one instance per UTC hour (key `YYYY-MM-DDTHH`), holding that
//! hour's aggregates per minute and the ids of the events it applied.

use std::collections::BTreeMap;

use emporium_runtime::{RuntimeError, Turn, VirtualActor};
use serde::{Deserialize, Serialize};

use super::aggregates::{Aggregates, merge};
use super::bucket::{HourBucket, MinuteRange};
use super::dedup::{DEFAULT_DEDUP_CAPACITY, SeenIds};
use crate::events::DomainEnvelope;

/// The analytics actor kind. Holds only the dedup bound; state is per bucket.
#[derive(Clone, Copy, Debug)]
pub struct AnalyticsActor {
    dedup_capacity: usize,
}

impl Default for AnalyticsActor {
    fn default() -> Self {
        Self::new(DEFAULT_DEDUP_CAPACITY)
    }
}

impl AnalyticsActor {
    /// Remember the last `dedup_capacity` event ids per bucket (at least 1).
    pub fn new(dedup_capacity: usize) -> Self {
        Self {
            dedup_capacity: dedup_capacity.max(1),
        }
    }
}

/// One bucket's stored state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BucketState {
    /// Minute of the hour (0–59) → what happened in it; minutes without events are absent.
    #[serde(default)]
    minutes: BTreeMap<u8, Aggregates>,
    #[serde(default)]
    seen: SeenIds,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AnalyticsCommand {
    /// Count these events, all of this bucket's hour, each at most once.
    Apply(Vec<DomainEnvelope>),
    /// The aggregates of these minutes of the hour. A read.
    Summary(MinuteRange),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalyticsReply {
    Applied(ApplyReport),
    Summary(Aggregates),
}

/// What became of an `Apply` batch. Every envelope is in exactly one count; all of them may
/// be acknowledged once this reply arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Counted now.
    pub applied: u32,
    /// Already counted (an id remembered from an earlier batch or earlier in this one).
    pub duplicates: u32,
    /// Events analytics does not count (user, product, cart line, shipping events…).
    pub ignored: u32,
    /// Events whose time is outside this bucket's hour (a dispatcher bug): not counted.
    pub misrouted: u32,
}

/// Split envelopes by the bucket they belong to, keeping their order within each.
pub fn group_by_bucket(
    envelopes: Vec<DomainEnvelope>,
) -> BTreeMap<HourBucket, Vec<DomainEnvelope>> {
    let mut groups: BTreeMap<HourBucket, Vec<DomainEnvelope>> = BTreeMap::new();
    for envelope in envelopes {
        groups
            .entry(HourBucket::of_ms(envelope.time))
            .or_default()
            .push(envelope);
    }
    groups
}

impl VirtualActor for AnalyticsActor {
    const KIND: &'static str = "analytics";
    type State = BucketState;
    type Command = AnalyticsCommand;
    type Reply = AnalyticsReply;

    fn is_read(command: &AnalyticsCommand) -> bool {
        matches!(command, AnalyticsCommand::Summary(_))
    }

    async fn handle(
        &self,
        turn: &mut Turn<Self>,
        command: AnalyticsCommand,
    ) -> Result<AnalyticsReply, RuntimeError> {
        Ok(match command {
            AnalyticsCommand::Apply(batch) => AnalyticsReply::Applied(self.apply(turn, batch)),
            AnalyticsCommand::Summary(minutes) => {
                AnalyticsReply::Summary(summarise(turn.state(), minutes))
            }
        })
    }
}

impl AnalyticsActor {
    /// Count the new events of `batch`. The state is touched only when one is new, so a
    /// batch of duplicates commits nothing; otherwise the turn commits once.
    fn apply(&self, turn: &mut Turn<Self>, batch: Vec<DomainEnvelope>) -> ApplyReport {
        let mut report = ApplyReport::default();
        let bucket = HourBucket::parse(turn.key());
        for envelope in batch {
            let count = if !bucket.is_some_and(|bucket| bucket.contains(envelope.time)) {
                &mut report.misrouted
            } else if !Aggregates::counts(&envelope.event) {
                &mut report.ignored
            } else if turn.state().seen.contains(&envelope.id) {
                &mut report.duplicates
            } else {
                let state = turn.state_mut();
                state.seen.insert(&envelope.id, self.dedup_capacity);
                let minute = HourBucket::minute_of(envelope.time);
                state.minutes.entry(minute).or_default().apply(&envelope);
                &mut report.applied
            };
            *count = count.saturating_add(1);
        }
        if report.misrouted > 0 {
            tracing::warn!(
                bucket = turn.key(),
                misrouted = report.misrouted,
                "analytics events outside their bucket's hour were not counted"
            );
        }
        report
    }
}

/// The merge of the minutes in `range`.
fn summarise(state: &BucketState, range: MinuteRange) -> Aggregates {
    merge(
        state
            .minutes
            .iter()
            .filter(|(minute, _)| range.contains(**minute))
            .map(|(_, aggregates)| aggregates),
    )
}
