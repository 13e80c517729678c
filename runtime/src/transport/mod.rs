//! The node-to-node transport over `ractor_cluster` (feature `cluster`).
//!
//! # What goes over the wire
//! One **shard host** per node is the only remotable actor. It receives an [`Envelope`]
//! — `{ version, kind, key, payload, deadline_ms }`, encoded by this module, not by ractor —
//! and answers with the bytes of an [`Answer`] through an RPC reply port. Entity actors stay
//! local-only: every remotable actor is announced to every peer (`actors × nodes` remote
//! proxies), and their message types would all need wire encodings.
//!
//! The ractor-level message ([`ShardHostMsg`]) is just bytes, so ractor_cluster can always
//! decode it (a message it cannot decode is silently dropped, and the caller would wait for
//! its deadline). Everything that can go wrong with the *content* is answered explicitly: an
//! unknown envelope version, a malformed envelope, an expired deadline, an overloaded host.
//! The first two bytes of every envelope and every answer are the format version, and stay
//! so in every future version.
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
//! [`Membership`]: [`Membership::report_unreachable`], which makes it `Suspect` here) and its
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
//! # Finding a peer's shard host
//! The host joins the process group `emporium.shard_host.<node id>`; a peer's session
//! spawns a proxy for it when the link is authenticated. The host of peer `p` is the member
//! of `p`'s group that is a child of *this* node server's session with `p`. (Process groups
//! are process-wide in ractor: when two node servers share a process, as in the tests, the
//! group also holds the local actor and proxies made by the other server's sessions.)
//!
//! Not wired into [`crate::ActorHandle::ask`] or the HTTP edge yet: that needs commands and
//! replies that can be encoded (see `ARCHITECTURE.md`, "Cluster (in progress)").

mod endpoint;
mod host;
mod links;
mod maintenance;
mod wire;

pub use endpoint::{Transport, TransportConfig, TransportError};
pub use host::EnvelopeHandler;
pub use maintenance::{MaintenanceHandle, Peer, PeerSource};
pub use wire::{Answer, DecodeError, Envelope, Refusal};
