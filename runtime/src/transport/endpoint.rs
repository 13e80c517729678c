//! This node's end of the transport: its configuration, its errors, starting and stopping
//! it, and sending an envelope to a peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::sync::Notify;

use super::direct::{CallError, DirectLink, DirectServer, MAX_FRAME};
use super::host::{self, EnvelopeHandler, Reception, ShardHost, ShardHostMsg};
use super::links::LinkEvents;
use super::wire::{Answer, DecodeError, Envelope, Refusal};
use crate::clock::SharedClock;
use crate::lock;

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

pub(super) struct Inner {
    pub(super) config: TransportConfig,
    pub(super) clock: SharedClock,
    pub(super) server: ActorRef<NodeServerMessage>,
    /// This node's shard host.
    pub(super) host: ActorRef<ShardHostMsg>,
    /// Peers' shard hosts as last found, until they stop.
    pub(super) hosts: Mutex<HashMap<String, ActorRef<ShardHostMsg>>>,
    /// This node's direct listener (none if it could not bind: envelopes then come through
    /// ractor_cluster only).
    pub(super) direct_server: Option<DirectServer>,
    /// Open direct links to peers, made and checked by the maintenance loop.
    pub(super) direct_links: Mutex<HashMap<String, Arc<DirectLink>>>,
    /// Whether a direct-link upkeep pass is running.
    pub(super) direct_upkeep: AtomicBool,
    pub(super) stopped: AtomicBool,
    /// Woken when a session closes: the maintenance loop reconnects at once.
    pub(super) links_changed: Arc<Notify>,
}

/// An envelope ready to send, or answered without sending (expired, or a payload that is not
/// JSON).
enum Framed {
    Send { bytes: Vec<u8>, budget: Duration },
    Answered(Result<Answer, TransportError>),
}

/// This node's end of the cluster transport: its node server and its shard host.
#[derive(Clone)]
pub struct Transport {
    pub(super) inner: Arc<Inner>,
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
        let reception = Arc::new(Reception::new(
            handler,
            Arc::clone(&clock),
            config.max_in_flight,
        ));
        let direct_server = match DirectServer::bind(
            config.listen.ip(),
            config.cookie.clone(),
            Arc::clone(&reception),
        )
        .await
        {
            Ok(server) => {
                reception.offer_direct(server.addr().to_string());
                Some(server)
            }
            Err(error) => {
                tracing::warn!(%error, "transport: no direct links to this node (cannot listen); peers use the cluster link");
                None
            }
        };
        let host = match Actor::spawn(None, ShardHost::new(reception), ()).await {
            Ok((host, _)) => host,
            Err(error) => {
                server.kill();
                if let Some(direct) = &direct_server {
                    direct.stop();
                }
                return Err(TransportError::Start(error.to_string()));
            }
        };
        host::announce(&config.node_id, &host);
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
                direct_server,
                direct_links: Mutex::new(HashMap::new()),
                direct_upkeep: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                links_changed,
            }),
        })
    }

    pub(crate) fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Send `envelope` to `peer` and wait for its answer, at most until the envelope's
    /// deadline: over the direct link to `peer` when one is open, else through its shard
    /// host over ractor_cluster. An envelope whose payload is not JSON never leaves: it is
    /// answered here as the peer would answer it, refused as [`Refusal::Malformed`].
    pub async fn send(&self, peer: &str, envelope: Envelope) -> Result<Answer, TransportError> {
        let (bytes, budget) = match self.frame(envelope) {
            Framed::Send { bytes, budget } => (bytes, budget),
            Framed::Answered(answered) => return answered,
        };
        let direct = self
            .direct_link(peer)
            .filter(|_| bytes.len() + 8 <= MAX_FRAME);
        let bytes = match direct {
            Some(link) => match link.call(bytes, budget).await {
                Ok(answer) => {
                    metrics::counter!("emporium_transport_envelopes_total", "path" => "direct")
                        .increment(1);
                    return self.decode_answer(peer, &answer);
                }
                // Never handed to the link: it goes the other way, whole.
                Err(CallError::NotSent(bytes)) => bytes,
                Err(CallError::Lost) => {
                    return Err(TransportError::Dropped {
                        peer: peer.to_owned(),
                    });
                }
                Err(CallError::TimedOut) => {
                    return Err(TransportError::Timeout {
                        peer: peer.to_owned(),
                        after: budget,
                    });
                }
            },
            None => bytes,
        };
        self.send_over_cluster_link(peer, bytes, budget).await
    }

    /// Send `envelope` through `peer`'s shard host over ractor_cluster, never over a direct
    /// link: what probes the cluster link itself.
    pub(super) async fn send_over_cluster(
        &self,
        peer: &str,
        envelope: Envelope,
    ) -> Result<Answer, TransportError> {
        match self.frame(envelope) {
            Framed::Send { bytes, budget } => {
                self.send_over_cluster_link(peer, bytes, budget).await
            }
            Framed::Answered(answered) => answered,
        }
    }

    /// The envelope's frame and what is left of its deadline, or what to answer instead of
    /// sending it.
    fn frame(&self, envelope: Envelope) -> Framed {
        let now_ms = self.inner.clock.now_ms();
        if envelope.deadline_ms <= now_ms {
            return Framed::Answered(Err(TransportError::Expired));
        }
        let budget = Duration::from_millis(envelope.deadline_ms - now_ms);
        match envelope.encode() {
            Ok(bytes) => Framed::Send { bytes, budget },
            // What the peer's host would answer, without sending it.
            Err(error) => Framed::Answered(Ok(Answer::refused(
                Refusal::Malformed,
                format!("the payload is {error}"),
            ))),
        }
    }

    fn decode_answer(&self, peer: &str, answer: &[u8]) -> Result<Answer, TransportError> {
        Answer::decode(answer).map_err(|error| TransportError::Decode {
            peer: peer.to_owned(),
            error,
        })
    }

    /// Whether envelopes to `peer` go over a direct link now.
    pub fn has_direct_link(&self, peer: &str) -> bool {
        self.direct_link(peer).is_some()
    }

    /// `peer`'s direct link, if one is open and takes calls (never this node's own: a node
    /// reaches itself through its shard host).
    pub(super) fn direct_link(&self, peer: &str) -> Option<Arc<DirectLink>> {
        let link = lock(&self.inner.direct_links).get(peer).cloned()?;
        link.is_open().then_some(link)
    }

    async fn send_over_cluster_link(
        &self,
        peer: &str,
        bytes: Vec<u8>,
        budget: Duration,
    ) -> Result<Answer, TransportError> {
        let host = self
            .peer_host(peer)
            .await
            .ok_or_else(|| TransportError::NotConnected {
                peer: peer.to_owned(),
            })?;
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
                metrics::counter!("emporium_transport_envelopes_total", "path" => "cluster")
                    .increment(1);
                self.decode_answer(peer, &answer)
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

    /// Stop the node server (closing every link) and the shard host.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        host::withdraw(self.node_id(), &self.inner.host);
        if let Some(direct) = &self.inner.direct_server {
            direct.stop();
        }
        // `stopped` is set first: no upkeep pass adopts a new link after this drain.
        for (_, link) in lock(&self.inner.direct_links).drain() {
            link.close("this node is stopping");
        }
        let wait = Some(Duration::from_secs(5));
        let _ = self.inner.server.kill_and_wait(wait).await;
        let _ = self.inner.host.kill_and_wait(wait).await;
    }
}
