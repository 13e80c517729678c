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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::sync::{Notify, Semaphore};

use crate::clock::{SharedClock, duration_ms};
use crate::membership::{Liveness, Membership};
use crate::store::MemberStatus;

/// The envelope and answer format this node writes.
pub const ENVELOPE_VERSION: u16 = 1;

/// The kind of a probe: answered by the shard host itself, never by the handler.
pub const PROBE_KIND: &str = "$probe";

const SCOPE: &str = "emporium";
const VARIANT: &str = "envelope";

fn host_group(node_id: &str) -> String {
    format!("emporium.shard_host.{node_id}")
}

/// A request for one actor on another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub version: u16,
    pub kind: String,
    pub key: String,
    /// The encoded command (its encoding is the kind's business).
    pub payload: Vec<u8>,
    /// Sender's wall clock, Unix ms: no answer is useful after it.
    pub deadline_ms: u64,
}

/// Why an envelope or an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("format version {0} is not supported (this node speaks {ENVELOPE_VERSION})")]
    UnsupportedVersion(u16),
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

impl Envelope {
    pub fn new(
        kind: impl Into<String>,
        key: impl Into<String>,
        payload: Vec<u8>,
        deadline_ms: u64,
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            kind: kind.into(),
            key: key.into(),
            payload,
            deadline_ms,
        }
    }

    /// A liveness probe, answered by the shard host itself.
    pub fn probe(deadline_ms: u64) -> Self {
        Self::new(PROBE_KIND, "", Vec::new(), deadline_ms)
    }

    /// Version 1: `version u16 | deadline_ms u64 | kind (u16 length) | key (u32 length) |
    /// payload (u32 length)`, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            2 + 8 + 2 + self.kind.len() + 4 + self.key.len() + 4 + self.payload.len(),
        );
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.deadline_ms.to_be_bytes());
        put_bytes16(&mut out, self.kind.as_bytes());
        put_bytes32(&mut out, self.key.as_bytes());
        put_bytes32(&mut out, &self.payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.u16()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let deadline_ms = reader.u64()?;
        let kind = reader.string16()?;
        let key = reader.string32()?;
        let payload = reader.bytes32()?.to_vec();
        reader.end()?;
        Ok(Self {
            version,
            kind,
            key,
            payload,
            deadline_ms,
        })
    }
}

/// Why a shard host did not run an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    UnsupportedVersion,
    Malformed,
    /// Arrived after its deadline.
    Expired,
    /// Too many envelopes in flight on the host.
    Overloaded,
    /// The host's node does not hold the shard's lease (for the handler to use).
    NotOwner,
    /// No such kind on the host (for the handler to use).
    UnknownKind,
    /// The handler failed.
    Failed,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Self::UnsupportedVersion => 1,
            Self::Malformed => 2,
            Self::Expired => 3,
            Self::Overloaded => 4,
            Self::NotOwner => 5,
            Self::UnknownKind => 6,
            Self::Failed => 7,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::UnsupportedVersion,
            2 => Self::Malformed,
            3 => Self::Expired,
            4 => Self::Overloaded,
            5 => Self::NotOwner,
            6 => Self::UnknownKind,
            7 => Self::Failed,
            _ => return None,
        })
    }
}

/// A shard host's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The encoded reply.
    Reply(Vec<u8>),
    Refused {
        reason: Refusal,
        detail: String,
    },
}

impl Answer {
    pub fn refused(reason: Refusal, detail: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            detail: detail.into(),
        }
    }

    /// Version 1: `version u16 | status u8 (0 = reply, else a refusal) | body (u32 length)`;
    /// the body is the reply, or the refusal's detail in UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let (status, body) = match self {
            Self::Reply(reply) => (0, reply.as_slice()),
            Self::Refused { reason, detail } => (reason.code(), detail.as_bytes()),
        };
        let mut out = Vec::with_capacity(2 + 1 + 4 + body.len());
        out.extend_from_slice(&ENVELOPE_VERSION.to_be_bytes());
        out.push(status);
        put_bytes32(&mut out, body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.u16()?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let status = reader.u8()?;
        let body = reader.bytes32()?.to_vec();
        reader.end()?;
        if status == 0 {
            return Ok(Self::Reply(body));
        }
        let reason = Refusal::from_code(status).ok_or(DecodeError::Malformed("refusal code"))?;
        let detail = String::from_utf8(body).map_err(|_| DecodeError::Malformed("detail"))?;
        Ok(Self::Refused { reason, detail })
    }
}

fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    // Kinds are short names chosen by the domain; a longer one is cut rather than wrapped.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    // Frames are capped far below 4 GiB by ractor_cluster (16 MiB by default).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

struct Reader<'b> {
    bytes: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Malformed("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut buf = [0; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut buf = [0; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    fn bytes32(&mut self) -> Result<&'b [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string16(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| DecodeError::Malformed("utf-8"))
    }

    fn string32(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes32()?.to_vec()).map_err(|_| DecodeError::Malformed("utf-8"))
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}

/// What a shard host does with an envelope addressed to one of its node's actors.
#[async_trait]
pub trait EnvelopeHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: Envelope) -> Answer;
}

/// The shard host's ractor message: an encoded envelope and the port for the encoded answer.
/// Serialisable, so ractor_cluster carries it between nodes.
pub struct ShardHostMsg {
    envelope: Vec<u8>,
    reply: RpcReplyPort<Vec<u8>>,
}

impl ractor::Message for ShardHostMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(SerializedMessage::Call {
            variant: VARIANT.to_owned(),
            args: self.envelope,
            reply: self.reply,
            metadata: None,
        })
    }

    fn deserialize(message: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match message {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == VARIANT => Ok(Self {
                envelope: args,
                reply,
            }),
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The remotable actor of one node: decodes, checks, and hands envelopes to the handler,
/// each in its own task (a slow actor must not hold up the others).
struct ShardHost {
    handler: Arc<dyn EnvelopeHandler>,
    clock: SharedClock,
    permits: Arc<Semaphore>,
}

impl Actor for ShardHost {
    type Msg = ShardHostMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ShardHostMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let ShardHostMsg { envelope, reply } = message;
        let envelope = match Envelope::decode(&envelope) {
            Ok(envelope) => envelope,
            Err(DecodeError::UnsupportedVersion(version)) => {
                let answer = Answer::refused(
                    Refusal::UnsupportedVersion,
                    format!("envelope version {version}, this node speaks {ENVELOPE_VERSION}"),
                );
                let _ = reply.send(answer.encode());
                return Ok(());
            }
            Err(error) => {
                let _ = reply.send(Answer::refused(Refusal::Malformed, error.to_string()).encode());
                return Ok(());
            }
        };
        let now_ms = self.clock.now_ms();
        if now_ms > envelope.deadline_ms {
            let detail = format!("{} ms late", now_ms - envelope.deadline_ms);
            let _ = reply.send(Answer::refused(Refusal::Expired, detail).encode());
            return Ok(());
        }
        if envelope.kind == PROBE_KIND {
            let _ = reply.send(Answer::Reply(Vec::new()).encode());
            return Ok(());
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let _ = reply.send(Answer::refused(Refusal::Overloaded, "too many in flight").encode());
            return Ok(());
        };
        let handler = Arc::clone(&self.handler);
        let budget = Duration::from_millis(envelope.deadline_ms - now_ms);
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(budget, handler.handle(envelope)).await {
                Ok(answer) => answer,
                Err(_) => Answer::refused(Refusal::Expired, "deadline passed while handling"),
            };
            drop(permit);
            let _ = reply.send(answer.encode());
        });
        Ok(())
    }
}

/// How a node takes part in the cluster transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub node_id: String,
    /// Where the node server listens (the member row's `cluster_addr`).
    pub listen: SocketAddr,
    /// The shared secret; a peer with another cookie is refused.
    pub cookie: String,
    /// How often `maintain` reconnects and probes.
    pub maintain_interval: Duration,
    /// How long a probe may take.
    pub probe_timeout: Duration,
    /// Failed probes in a row before a peer is reported unreachable.
    pub failures_before_unreachable: u32,
    /// Envelopes the shard host runs at once; more are refused as overloaded.
    pub max_in_flight: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// How soon the loop tries again a peer whose port refused a connection (faster than
    /// `maintain_interval`: the evidence it yields is what fails a crashed node over).
    pub refused_retry: Duration,
}

impl TransportConfig {
    pub fn new(node_id: impl Into<String>, listen: SocketAddr, cookie: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            listen,
            cookie: cookie.into(),
            maintain_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(500),
            failures_before_unreachable: 3,
            max_in_flight: 4096,
            connect_timeout: Duration::from_millis(500),
            refused_retry: Duration::from_millis(200),
        }
    }
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot start the node server or the shard host: {0}")]
    Start(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// ECONNREFUSED: nothing listens at `addr` (crash evidence, see the module doc).
    #[error("{addr} refused the connection: nothing listens there")]
    Refused { addr: String },
    #[error("no link to {peer}")]
    NotConnected { peer: String },
    #[error("{peer} did not answer within {after:?}")]
    Timeout { peer: String, after: Duration },
    #[error("the deadline passed before sending")]
    Expired,
    #[error("{peer} dropped the request without answering")]
    Dropped { peer: String },
    #[error("unreadable answer from {peer}: {error}")]
    Decode { peer: String, error: DecodeError },
}

impl TransportError {
    /// Worth retrying (elsewhere or later): the link or the peer is the problem.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, Self::Start(_) | Self::Decode { .. })
    }
}

struct Inner {
    config: TransportConfig,
    clock: SharedClock,
    server: ActorRef<NodeServerMessage>,
    host: ActorRef<ShardHostMsg>,
    /// Peers' shard hosts as last found, until they stop.
    hosts: Mutex<HashMap<String, ActorRef<ShardHostMsg>>>,
    stopped: AtomicBool,
    /// Woken when a session closes: the maintenance loop reconnects at once.
    links_changed: Arc<Notify>,
}

/// Tells the maintenance loop when a link closes (ractor_cluster's session events).
struct LinkEvents {
    changed: Arc<Notify>,
}

impl ractor_cluster::NodeEventSubscription for LinkEvents {
    fn node_session_opened(&self, _session: ractor_cluster::node::NodeServerSessionInformation) {}

    fn node_session_disconnected(
        &self,
        session: ractor_cluster::node::NodeServerSessionInformation,
    ) {
        tracing::debug!(peer = %session.peer_addr, "transport: link closed");
        self.changed.notify_one();
    }

    fn node_session_authenticated(
        &self,
        _session: ractor_cluster::node::NodeServerSessionInformation,
    ) {
    }
}

/// This node's end of the cluster transport: its node server and its shard host.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Listen on `config.listen` and start the shard host, which hands envelopes to
    /// `handler`.
    pub async fn start(
        config: TransportConfig,
        clock: SharedClock,
        handler: Arc<dyn EnvelopeHandler>,
    ) -> Result<Self, TransportError> {
        let server = NodeServer::new(
            config.listen.port(),
            config.cookie.clone(),
            config.node_id.clone(),
            config.listen.ip().to_string(),
            None,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(config.listen.ip());
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|error| TransportError::Start(error.to_string()))?;
        let host = ShardHost {
            handler,
            clock: Arc::clone(&clock),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
        };
        let host = match Actor::spawn(None, host, ()).await {
            Ok((host, _)) => host,
            Err(error) => {
                server.kill();
                return Err(TransportError::Start(error.to_string()));
            }
        };
        ractor::pg::join_scoped(
            SCOPE.to_owned(),
            host_group(&config.node_id),
            vec![host.get_cell()],
        );
        let links_changed = Arc::new(Notify::new());
        let subscribed = server.cast(NodeServerMessage::SubscribeToEvents {
            id: "emporium.transport".to_owned(),
            subscription: Box::new(LinkEvents {
                changed: Arc::clone(&links_changed),
            }),
        });
        if let Err(error) = subscribed {
            tracing::warn!(%error, "transport: cannot follow link events; closed links are noticed at the next tick");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                clock,
                server,
                host,
                hosts: Mutex::new(HashMap::new()),
                stopped: AtomicBool::new(false),
                links_changed,
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Open a link to the node server at `addr` (authentication completes in the
    /// background; [`Transport::is_connected`] tells when the peer's host is reachable).
    /// Fails with [`TransportError::Refused`] exactly when the peer's kernel refused the
    /// connection (ECONNREFUSED), and gives up after `connect_timeout`.
    pub async fn connect(&self, addr: &str) -> Result<(), TransportError> {
        let timeout = self.inner.config.connect_timeout;
        let connected = tokio::time::timeout(
            timeout,
            ractor_cluster::client_connect(&self.inner.server, addr),
        )
        .await;
        match connected {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ractor_cluster::ClientConnectErr::Socket(error)))
                if error.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Err(TransportError::Refused {
                    addr: addr.to_owned(),
                })
            }
            Ok(Err(error)) => Err(TransportError::Connect {
                addr: addr.to_owned(),
                reason: error.to_string(),
            }),
            Err(_elapsed) => Err(TransportError::Connect {
                addr: addr.to_owned(),
                reason: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Whether `peer`'s shard host can be reached over an authenticated link.
    pub async fn is_connected(&self, peer: &str) -> bool {
        self.peer_host(peer).await.is_some()
    }

    /// Send `envelope` to `peer`'s shard host and wait for its answer, at most until the
    /// envelope's deadline.
    pub async fn send(&self, peer: &str, envelope: Envelope) -> Result<Answer, TransportError> {
        let now_ms = self.inner.clock.now_ms();
        if envelope.deadline_ms <= now_ms {
            return Err(TransportError::Expired);
        }
        let budget = Duration::from_millis(envelope.deadline_ms - now_ms);
        let host = self
            .peer_host(peer)
            .await
            .ok_or_else(|| TransportError::NotConnected {
                peer: peer.to_owned(),
            })?;
        let bytes = envelope.encode();
        let called = host
            .call(
                |reply| ShardHostMsg {
                    envelope: bytes,
                    reply,
                },
                Some(budget),
            )
            .await;
        match called {
            Ok(CallResult::Success(answer)) => {
                Answer::decode(&answer).map_err(|error| TransportError::Decode {
                    peer: peer.to_owned(),
                    error,
                })
            }
            Ok(CallResult::Timeout) => Err(TransportError::Timeout {
                peer: peer.to_owned(),
                after: budget,
            }),
            Ok(CallResult::SenderError) => Err(TransportError::Dropped {
                peer: peer.to_owned(),
            }),
            Err(_messaging) => {
                self.forget(peer);
                Err(TransportError::NotConnected {
                    peer: peer.to_owned(),
                })
            }
        }
    }

    /// Probe `peer` through its shard host within the configured timeout.
    pub async fn probe(&self, peer: &str) -> Result<(), TransportError> {
        let deadline_ms = self.inner.clock.now_ms() + duration_ms(self.inner.config.probe_timeout);
        match self.send(peer, Envelope::probe(deadline_ms)).await? {
            Answer::Reply(_) => Ok(()),
            Answer::Refused { reason, detail } => Err(TransportError::Connect {
                addr: peer.to_owned(),
                reason: format!("probe refused ({reason:?}): {detail}"),
            }),
        }
    }

    /// Keep links to every peer of `peers` and probe them, until the returned handle is
    /// dropped or the transport shuts down. A closed link wakes a reconnect pass at once;
    /// while a peer refuses connections, it is tried again every `refused_retry`.
    pub fn maintain(&self, peers: Arc<dyn PeerSource>) -> MaintenanceHandle {
        let transport = self.clone();
        let task = tokio::spawn(async move {
            let mut failures: HashMap<String, u32> = HashMap::new();
            let mut reported: HashMap<String, bool> = HashMap::new();
            let config = &transport.inner.config;
            let mut ticks = tokio::time::interval(config.maintain_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let links_changed = Arc::clone(&transport.inner.links_changed);
            let mut refusing = false;
            loop {
                let full = tokio::select! {
                    _ = ticks.tick() => true,
                    () = links_changed.notified() => false,
                    () = tokio::time::sleep(config.refused_retry), if refusing => false,
                };
                if transport.inner.stopped.load(Ordering::Acquire) {
                    return;
                }
                refusing = if full {
                    transport
                        .maintain_once(peers.as_ref(), &mut failures, &mut reported)
                        .await
                } else {
                    transport.reconnect_once(peers.as_ref()).await
                };
            }
        });
        MaintenanceHandle { task }
    }

    /// The peers to keep links with (not this node).
    fn wanted(&self, peers: &dyn PeerSource) -> Vec<Peer> {
        peers
            .peers()
            .into_iter()
            .filter(|peer| peer.node_id != self.node_id())
            .collect()
    }

    /// Connect to `peer` if no link is up; report a refusal or a success to `peers`.
    /// Returns whether a link was already up, and whether the attempt was refused.
    async fn ensure_link(&self, peers: &dyn PeerSource, peer: &Peer) -> (bool, bool) {
        if self.is_connected(&peer.node_id).await {
            return (true, false);
        }
        // Port 0 is no address at all (the kernel refuses it): no evidence of anything.
        let dialable = peer
            .cluster_addr
            .parse::<SocketAddr>()
            .map_or(true, |addr| addr.port() != 0);
        match self.connect(&peer.cluster_addr).await {
            Ok(()) => {
                peers.report_connected(&peer.node_id);
                (false, false)
            }
            Err(TransportError::Refused { .. }) if dialable => {
                tracing::debug!(peer = %peer.node_id, incarnation = peer.incarnation, "transport: connection refused");
                peers.report_refused(&peer.node_id, peer.incarnation);
                (false, true)
            }
            Err(error) => {
                tracing::debug!(peer = %peer.node_id, %error, "transport: connect failed");
                (false, false)
            }
        }
    }

    /// A link closed, or a peer refused: reconnect every peer without a link (no probes).
    /// Returns whether a peer refused.
    async fn reconnect_once(&self, peers: &dyn PeerSource) -> bool {
        // A closed session's host proxies may not have stopped yet: find every host again
        // through the sessions the node server still has.
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let wanted = self.wanted(peers);
        let attempts = wanted.iter().map(|peer| self.ensure_link(peers, peer));
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .any(|(_, refused)| refused)
    }

    /// Reconnect every peer without a link and probe every linked one. Returns whether a
    /// peer refused a connection.
    async fn maintain_once(
        &self,
        peers: &dyn PeerSource,
        failures: &mut HashMap<String, u32>,
        reported: &mut HashMap<String, bool>,
    ) -> bool {
        let wanted = self.wanted(peers);
        failures.retain(|node_id, _| wanted.iter().any(|peer| peer.node_id == *node_id));
        reported.retain(|node_id, _| wanted.iter().any(|peer| peer.node_id == *node_id));
        let checks = wanted.iter().map(|peer| async move {
            let (linked, refused) = self.ensure_link(peers, peer).await;
            if !linked {
                return (peer, false, refused);
            }
            (peer, self.probe(&peer.node_id).await.is_ok(), false)
        });
        let mut any_refused = false;
        for (peer, ok, refused) in futures::future::join_all(checks).await {
            any_refused |= refused;
            let count = failures.entry(peer.node_id.clone()).or_insert(0);
            if ok {
                *count = 0;
                if reported.insert(peer.node_id.clone(), true) == Some(false) {
                    peers.report(&peer.node_id, true);
                }
                continue;
            }
            *count += 1;
            if *count == self.inner.config.failures_before_unreachable {
                tracing::warn!(peer = %peer.node_id, "transport: peer unreachable");
                reported.insert(peer.node_id.clone(), false);
                peers.report(&peer.node_id, false);
                // A hung peer keeps its TCP link: close it, so that a fresh, authenticated
                // one is built when it answers again.
                self.disconnect(&peer.node_id).await;
            }
        }
        any_refused
    }

    /// Close every session with `peer`.
    pub async fn disconnect(&self, peer: &str) {
        self.forget(peer);
        for session in self.sessions_with(peer).await {
            session.kill();
        }
    }

    /// Stop the node server (closing every link) and the shard host.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        ractor::pg::leave_scoped(
            SCOPE.to_owned(),
            host_group(self.node_id()),
            vec![self.inner.host.get_cell()],
        );
        let wait = Some(Duration::from_secs(5));
        let _ = self.inner.server.kill_and_wait(wait).await;
        let _ = self.inner.host.kill_and_wait(wait).await;
    }

    fn forget(&self, peer: &str) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(peer);
    }

    async fn sessions_with(&self, peer: &str) -> Vec<ActorCell> {
        let Ok(CallResult::Success(sessions)) = self
            .inner
            .server
            .call(NodeServerMessage::GetSessions, Some(Duration::from_secs(1)))
            .await
        else {
            return Vec::new();
        };
        sessions
            .into_values()
            .filter(|session| {
                session.peer_name.as_ref().is_some_and(|name| {
                    name.name
                        .rsplit_once('@')
                        .is_some_and(|(node_id, _host)| node_id == peer)
                })
            })
            .map(|session| session.actor.get_cell())
            .collect()
    }

    /// `peer`'s shard host as seen through this node server's session with it.
    async fn peer_host(&self, peer: &str) -> Option<ActorRef<ShardHostMsg>> {
        if peer == self.node_id() {
            return Some(self.inner.host.clone());
        }
        let cached = self
            .inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .cloned();
        if let Some(host) = cached {
            if ractor::ACTIVE_STATES.contains(&host.get_status()) {
                return Some(host);
            }
            self.forget(peer);
        }
        let members: Vec<ActorCell> =
            ractor::pg::get_scoped_members(&SCOPE.to_owned(), &host_group(peer));
        for session in self.sessions_with(peer).await {
            for child in session.get_children() {
                let is_host = members
                    .iter()
                    .any(|member| member.get_id() == child.get_id());
                if is_host && ractor::ACTIVE_STATES.contains(&child.get_status()) {
                    let host = ActorRef::<ShardHostMsg>::from(child);
                    self.inner
                        .hosts
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(peer.to_owned(), host.clone());
                    return Some(host);
                }
            }
        }
        None
    }
}

/// Stops the maintenance loop when dropped.
pub struct MaintenanceHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A peer to keep a link with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    /// The life the evidence about this peer is about.
    pub incarnation: u64,
    pub cluster_addr: String,
}

/// Where the maintenance loop learns its peers and reports their reachability.
pub trait PeerSource: Send + Sync + 'static {
    fn peers(&self) -> Vec<Peer>;
    /// Probes: `reachable` after `failures_before_unreachable` failures, or again.
    fn report(&self, node_id: &str, reachable: bool);
    /// A connection to the address of `node_id`'s life `incarnation` was refused
    /// (ECONNREFUSED). Called at every refused attempt.
    fn report_refused(&self, _node_id: &str, _incarnation: u64) {}
    /// A connection to `node_id` was established.
    fn report_connected(&self, _node_id: &str) {}
}

/// The members worth a link: not this node, not dead, not down.
impl PeerSource for Membership {
    fn peers(&self) -> Vec<Peer> {
        self.view()
            .members
            .iter()
            .filter(|member| {
                member.node_id != self.node_id()
                    && member.liveness != Liveness::Dead
                    && member.status != MemberStatus::Down
                    && !member.cluster_addr.is_empty()
            })
            .map(|member| Peer {
                node_id: member.node_id.clone(),
                incarnation: member.incarnation,
                cluster_addr: member.cluster_addr.clone(),
            })
            .collect()
    }

    fn report(&self, node_id: &str, reachable: bool) {
        if reachable {
            self.report_reachable(node_id);
        } else {
            self.report_unreachable(node_id);
        }
    }

    fn report_refused(&self, node_id: &str, incarnation: u64) {
        Membership::report_refused(self, node_id, incarnation);
    }

    fn report_connected(&self, node_id: &str) {
        Membership::report_connected(self, node_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let envelope = Envelope::new("cart", "c-7f3a", vec![1, 2, 3, 0, 255], 1_700_000_000_000);
        let bytes = envelope.encode();
        assert_eq!(&bytes[..2], &ENVELOPE_VERSION.to_be_bytes());
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        let probe = Envelope::probe(5);
        assert_eq!(Envelope::decode(&probe.encode()), Ok(probe));
    }

    #[test]
    fn unknown_versions_and_garbage_are_named() {
        let mut bytes = Envelope::new("k", "x", vec![], 1).encode();
        bytes[1] = 9;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedVersion(9))
        );
        let bytes = Envelope::new("k", "x", vec![7; 10], 1).encode();
        assert!(matches!(
            Envelope::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Envelope::decode(&long),
            Err(DecodeError::Malformed("trailing bytes"))
        );
        assert!(Envelope::decode(&[]).is_err());
    }

    #[test]
    fn answers_round_trip() {
        for answer in [
            Answer::Reply(vec![]),
            Answer::Reply(b"{\"ok\":true}".to_vec()),
            Answer::refused(Refusal::NotOwner, "shard 17 is on node-2"),
            Answer::refused(Refusal::Overloaded, ""),
        ] {
            assert_eq!(Answer::decode(&answer.encode()), Ok(answer));
        }
        let mut bad = Answer::Reply(vec![]).encode();
        bad[2] = 200;
        assert!(Answer::decode(&bad).is_err());
    }
}
