//! The node-to-node transport over `ractor_cluster` (feature `cluster`).
//!
//! # What goes over the wire
//! One **shard host** per node is the only remotable actor. It receives an [`Envelope`]
//! — `{ v, kind, key, deadline_ms, payload }` and, optionally, the sender's W3C trace context
//! (`traceparent`, `tracestate`), encoded by this module, not by ractor — and
//! answers with the bytes of an [`Answer`] through an RPC reply port. Entity actors stay
//! local-only: every remotable actor is announced to every peer (`actors × nodes` remote
//! proxies), and their message types would all need wire encodings.
//!
//! **One codec**: every envelope and every answer is one JSON object (serde_json), whose
//! payload or reply — itself JSON: a routed call, an encoded result, a list of shards, a
//! count — is carried verbatim inside it, neither escaped nor parsed into a tree; an empty
//! payload or reply travels as `null` (the format, its versions and its errors: `wire`).
//!
//! The ractor-level message (`host::ShardHostMsg`) is just bytes, so ractor_cluster can
//! always decode it (a message it cannot decode is silently dropped, and the caller would
//! wait for its deadline). Everything that can go wrong with the *content* is answered
//! explicitly: an unknown format version, a malformed envelope, an expired deadline, an
//! overloaded host, a reply that is not JSON.
//!
//! # Invariants
//! - Every frame is a JSON object with the format version in its `v` field, in this and in
//!   every later version; a frame of another version is answered
//!   [`Refusal::UnsupportedVersion`] (version 1, the binary format before JSON, included).
//! - Every envelope that reaches a shard host gets exactly one answer, and no frame makes
//!   either side panic: what cannot be read is refused as [`Refusal::Malformed`].
//! - Only JSON travels: an envelope whose payload is not JSON never leaves its node
//!   ([`Transport::send`] refuses it as `Malformed` itself), and a handler's reply that is
//!   not JSON is answered as [`Refusal::Failed`]. What a handler receives is JSON.
//! - Probes (`$probe`) are answered by the shard host itself, never by the handler.
//!
//! # Deadlines
//! `deadline_ms` is the sender's wall clock (Unix ms) after which the answer is useless. The
//! sender waits at most until then; the host refuses an envelope that arrives late (a
//! receiver whose clock runs ahead refuses early: keep clocks within a fraction of the ask
//! deadline, which is seconds).
//!
//! # Connections
//! A [`Transport`] runs a `NodeServer` on the node's cluster address, authenticated by the
//! shared cookie (optionally TLS, not wired yet). ractor_cluster never reconnects and never
//! notices a hung peer (its pings do not time out), so [`Transport::maintain`] runs a loop
//! over the peers of the membership view that (re)connects to every peer without a link and
//! probes every linked peer through its shard host with a timeout. A peer that fails
//! `failures_before_unreachable` probes in a row is reported to the [`PeerSource`] (for
//! [`Membership`](crate::membership::Membership):
//! [`report_unreachable`](crate::membership::Membership::report_unreachable), which makes
//! it `Suspect` here) and its
//! session is closed so that a fresh one is built when it answers again; the first probe that
//! succeeds reports it reachable.
//!
//! # Crash evidence
//! A link that closes (the node server reports the session gone: a crashed peer's kernel
//! closes its sockets) wakes the loop at once for a reconnect pass, instead of waiting for
//! the next tick. A connection attempt answered by **ECONNREFUSED** — nothing listens on
//! the peer's cluster address, which a paused process (the kernel still accepts into its
//! backlog) or a partitioned one (timeouts, unreachable) cannot produce — is reported as
//! [`PeerSource::report_refused`] for the peer's current life; the membership then asks
//! the store to confirm the crash (see [`crate::membership`]). While a peer refuses, it is
//! retried every [`TransportConfig::refused_retry`]; a successful connection is reported as
//! [`PeerSource::report_connected`], which withdraws the evidence.
//!
//! # Direct links
//! Envelopes to a peer go over a **direct link** when one is open: a TCP connection of the
//! transport's own to the peer's direct listener (bound on the cluster address's IP, on a
//! port the kernel picks, which the peer learns by asking `$direct` over ractor_cluster),
//! authenticated by an HMAC over fresh nonces with the cluster secret, carrying the same
//! frames, each answered under its id by the same [`Reception`](host) as through
//! ractor_cluster. It costs a forwarded call about half the task hand-offs (see `direct`).
//! The maintenance loop makes one to every linked peer that offers it (in the background)
//! and probes it; a direct link that fails a probe is retired (no new envelopes; closed once
//! those in flight are answered), one whose peer is disconnected is closed, and envelopes go
//! through ractor_cluster until a new one is made. Probes of the cluster link itself go
//! through ractor_cluster only, so failure detection is what it was without direct links.
//! An envelope that was surely never written to a closed direct link goes through
//! ractor_cluster instead; one that may have been is answered as dropped (outcome unknown).
//!
//! # Finding a peer's shard host
//! The host joins the process group `emporium.shard_host.<node id>`; a peer's session
//! spawns a proxy for it when the link is authenticated. The host of peer `p` is the member
//! of `p`'s group that is a child of *this* node server's session with `p`. (Process groups
//! are process-wide in ractor: when two node servers share a process, as in the tests, the
//! group also holds the local actor and proxies made by the other server's sessions.)
//!
//! # Where things are
//! - `wire`: [`Envelope`], [`Answer`], [`Refusal`], the JSON codec and [`DecodeError`];
//! - `host`: the node's `Reception` (how an envelope is checked and answered, whichever way it
//!   came), the shard host actor and its [`EnvelopeHandler`], its process group;
//! - `direct`: direct links, their listener and their protocol;
//! - `links`: opening links, finding a peer's host through them, link events, closing them;
//! - `maintenance`: probes and the loop that keeps links to every [`Peer`] of a
//!   [`PeerSource`] and reports what it learns;
//! - `endpoint`: [`Transport`] itself — [`TransportConfig`], [`TransportError`], start,
//!   send, shutdown.
//!
//! The user is `crate::cluster`: forwarded calls (its `Placement::forward`), and the
//! `$revoke` and `$status` envelopes between nodes.

mod direct;
mod endpoint;
mod host;
mod links;
mod maintenance;
mod wire;

pub use endpoint::{Transport, TransportConfig, TransportError};
pub use host::EnvelopeHandler;
pub use maintenance::{MaintenanceHandle, Peer, PeerSource};
pub use wire::{Answer, DecodeError, Envelope, Refusal};
