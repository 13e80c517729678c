//! Storefront analytics: one `analytics` actor per UTC hour, fed with domain events, and the
//! summary of a window of hours.
//!
//! # The contract
//! - **Buckets.** An event belongs to the hour of its envelope `time` (UTC); the bucket key
//!   is that hour as `YYYY-MM-DDTHH` ([`HourBucket`], e.g. `2026-12-06T20`). Inside a
//!   bucket, aggregates are kept per minute, so a window can start mid-hour.
//! - **Feeding.** The dispatcher groups deliveries by bucket ([`group_by_bucket`]) and sends
//!   each group as one [`AnalyticsCommand::Apply`]: one turn and one commit per batch. It
//!   acknowledges the deliveries only after the reply, so a lost reply means a redelivery.
//! - **Exactly-once effect, within a bound.** Each bucket remembers the ids of the events it
//!   applied (a FIFO of 64-bit hashes, [`DEFAULT_DEDUP_CAPACITY`] per bucket by default) and
//!   skips an id it remembers, whether it comes again in a later batch or twice in one. The
//!   bound keeps the state small (it is rewritten on every commit): a redelivery of an
//!   event older than the last N events the bucket applied would count twice. JetStream
//!   redelivers within its ack wait, far inside that for any realistic hour. Events that
//!   analytics does not count are not remembered, so they do not use the bound.
//! - **Order does not matter.** Counts and sums commute; the latest `StockLow` of a SKU is
//!   chosen by event time, not by arrival.
//! - **Reading.** [`AnalyticsCommand::Summary`] is a read: asking a bucket that was never
//!   written creates no row. [`summary`] asks every bucket of a [`Window`] (at most 16 at a
//!   time), merges their [`Aggregates`] ([`merge`]) and derives the [`Summary`].

mod actor;
mod aggregates;
mod bucket;
mod dedup;
mod report;
mod window;

#[cfg(test)]
mod tests;

pub use actor::{
    AnalyticsActor, AnalyticsCommand, AnalyticsReply, ApplyReport, BucketState, group_by_bucket,
};
pub use aggregates::{Aggregates, Funnel, LowStock, Money, ProductSales, merge};
pub use bucket::{HourBucket, MinuteRange};
pub use dedup::{DEFAULT_DEDUP_CAPACITY, SeenIds};
pub use report::{Summary, TOP_PRODUCTS, TopProduct, summary};
pub use window::{UnknownWindow, Window, WindowSpan};
