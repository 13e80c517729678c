//! Links to peers: opening them, finding a peer's shard host through them, following their
//! events, closing them.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef};
use ractor_cluster::NodeServerMessage;
use tokio::sync::Notify;

use super::endpoint::{Transport, TransportError};
use super::host::{self, ShardHostMsg};
use crate::lock;

/// Tells the maintenance loop when a link closes (ractor_cluster's session events).
pub(super) struct LinkEvents {
    pub(super) changed: Arc<Notify>,
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

impl Transport {
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

    /// Close every session with `peer`.
    pub(crate) async fn disconnect(&self, peer: &str) {
        self.forget(peer);
        self.close_direct_link(peer, "the peer is disconnected");
        for session in self.sessions_with(peer).await {
            session.kill();
        }
    }

    /// Drop `peer`'s cached shard host: it is looked up again through the sessions.
    pub(super) fn forget(&self, peer: &str) {
        lock(&self.inner.hosts).remove(peer);
    }

    /// Drop every cached shard host (a closed session's host proxies may not have stopped
    /// yet).
    pub(super) fn forget_all(&self) {
        lock(&self.inner.hosts).clear();
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
    pub(super) async fn peer_host(&self, peer: &str) -> Option<ActorRef<ShardHostMsg>> {
        if peer == self.node_id() {
            return Some(self.inner.host.clone());
        }
        let cached = lock(&self.inner.hosts).get(peer).cloned();
        if let Some(host) = cached {
            if ractor::ACTIVE_STATES.contains(&host.get_status()) {
                return Some(host);
            }
            self.forget(peer);
        }
        let members = host::announced(peer);
        for session in self.sessions_with(peer).await {
            for child in session.get_children() {
                let is_host = members
                    .iter()
                    .any(|member| member.get_id() == child.get_id());
                if is_host && ractor::ACTIVE_STATES.contains(&child.get_status()) {
                    let host = ActorRef::<ShardHostMsg>::from(child);
                    lock(&self.inner.hosts).insert(peer.to_owned(), host.clone());
                    return Some(host);
                }
            }
        }
        None
    }
}
