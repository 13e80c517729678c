//! The Meilisearch adapter of the catalog's [`SearchIndex`] port: the index lives in a
//! Meilisearch server, shared by every node that points at it, instead of in each node.
//!
//! - [`parse_meili_url`]: `meili://host:port?key=…&index=…` (`meilis://` for HTTPS) into
//!   [`MeiliSettings`];
//! - [`MeiliIndex::connect`]: creates the index if missing, writes its settings, and
//!   implements the port through the `meilisearch-sdk` crate;
//! - `schema`: the document shape and the index settings, `query`: how a port query
//!   becomes Meilisearch searches, `tasks`: waiting for writes, `transport`: the HTTP
//!   client under the SDK.
//!
//! # The port's contract in Meilisearch terms
//! - *Writes visible when `upsert` returns*: an upsert is one add-or-replace task, and
//!   returns once Meilisearch reports it succeeded (`tasks`).
//! - *Replace by SKU, last of a batch wins*: the primary key is derived from the SKU.
//! - *Word matching*: each word of the text (as [`words`] cuts it) is sent as an exact
//!   one-word phrase and all must match, in `name` or `description`; typo tolerance and
//!   prefix search are off as well.
//! - *Listing in SKU order, relevance then SKU order for a text*: `sort` on the SKU's hex,
//!   as the last ranking rule; a name match outranks a description match (the
//!   `attribute` rule, `name` searchable first).
//! - *Exact totals and facets*: counted by `page`-mode searches, exhaustive up to
//!   [`MAX_TOTAL_HITS`] matches and [`MAX_CATEGORIES`] categories.
//!
//! # What remains different
//! - Words are cut by Meilisearch's tokenizer (charabia) in the documents, by [`words`]
//!   in the query. They agree on text split by spaces and punctuation; they can differ
//!   on scripts segmented by dictionary (Chinese, Japanese, Thai), on some symbols, and
//!   where charabia keeps a run together that [`words`] splits (or the reverse). Like the
//!   tantivy index, Meilisearch folds accents and case (`creme` finds `crème`), which the
//!   in-memory twin does not.
//! - Meilisearch reads at most 10 words of a query: words after the tenth are ignored, so
//!   such a query can match more than the contract says.
//! - Ranking is Meilisearch's rules (word proximity, attribute, exactness), not BM25.
//! - A search that runs over Meilisearch's `searchCutoffMs` (1.5 s by default) answers
//!   with the matches found so far.
//! - Totals stop at [`MAX_TOTAL_HITS`], and pages past it are empty.
//! - The index is shared: a product written through one node is searchable from every
//!   node as soon as its upsert returns, with no per-node rebuild needed (the node may
//!   still run one at start; it only rewrites the same documents).
//! - Every call is a network request: it can fail with a [`SearchError`] naming the step
//!   (unreachable server, error status, failed task, timeout after
//!   [`REQUEST_TIMEOUT`] or [`TASK_TIMEOUT`]).
//!
//! Requires Meilisearch 1.12 or later (the `prefix-search` setting).
//!
//! [`SearchIndex`]: emporium_actors::catalog::SearchIndex
//! [`SearchError`]: emporium_actors::catalog::SearchError
//! [`words`]: emporium_actors::catalog::words

mod config;
mod error;
mod index;
mod query;
mod schema;
mod tasks;
mod transport;

pub use config::{DEFAULT_INDEX, DEFAULT_PORT, MeiliSettings, MeiliUrlError, parse_meili_url};
pub use error::MeiliError;
pub use index::MeiliIndex;
pub use schema::{MAX_CATEGORIES, MAX_TOTAL_HITS, PRIMARY_KEY, document_id};
pub use tasks::TASK_TIMEOUT;
pub use transport::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
