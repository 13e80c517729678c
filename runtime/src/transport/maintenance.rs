//! The maintenance loop: keeps a link to every peer the membership names, probes the linked
//! ones, and reports what it learns (reachable, unreachable, refused, connected).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::direct::DirectLink;
use super::endpoint::{Transport, TransportError};
use super::wire::{Answer, Envelope};
use crate::clock::duration_ms;
use crate::lock;
use crate::membership::{Liveness, Membership};
use crate::store::MemberStatus;

impl Transport {
    /// Probe `peer` through its shard host within the configured timeout.
    pub(crate) async fn probe(&self, peer: &str) -> Result<(), TransportError> {
        let deadline_ms = self.inner.clock.now_ms() + duration_ms(self.inner.config.probe_timeout);
        match self
            .send_over_cluster(peer, Envelope::probe(deadline_ms))
            .await?
        {
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
        self.forget_all();
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
        let mut reachable = Vec::new();
        for (peer, ok, refused) in futures::future::join_all(checks).await {
            any_refused |= refused;
            let count = failures.entry(peer.node_id.clone()).or_insert(0);
            if ok {
                reachable.push(peer.node_id.clone());
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
        self.keep_direct_links(reachable);
        any_refused
    }
}

impl Transport {
    /// Keep a direct link to each of `peers` (whose cluster link just passed its probe), in
    /// the background: a slow connection must not hold up the next probe round, which judges
    /// liveness. One upkeep pass at a time, so two links to one peer are never made at once.
    fn keep_direct_links(&self, peers: Vec<String>) {
        if peers.is_empty() || self.inner.direct_upkeep.swap(true, Ordering::AcqRel) {
            return;
        }
        let transport = self.clone();
        tokio::spawn(async move {
            let upkeep = peers.iter().map(|peer| transport.keep_direct_link(peer));
            futures::future::join_all(upkeep).await;
            transport
                .inner
                .direct_upkeep
                .store(false, Ordering::Release);
        });
    }

    /// Probe `peer`'s open direct link and retire it if it fails; make one if none is open
    /// and the peer offers it. Failures only cost speed: envelopes then go over the cluster
    /// link.
    async fn keep_direct_link(&self, peer: &str) {
        let timeout = self.inner.config.probe_timeout;
        let deadline_ms = self.inner.clock.now_ms() + duration_ms(timeout);
        if let Some(link) = self.direct_link(peer) {
            let frame = Envelope::probe(deadline_ms).encode().unwrap_or_default();
            if let Err(error) = link.call(frame, timeout).await {
                tracing::debug!(peer, ?error, "transport: direct link failed its probe");
                // New envelopes go over the cluster link; those in flight keep their chance.
                link.retire("it failed a probe");
            }
            return;
        }
        let Ok(Answer::Reply(offer)) = self
            .send_over_cluster(peer, Envelope::direct_query(deadline_ms))
            .await
        else {
            return;
        };
        // `null` (or an older node's refusal): the peer takes no direct links.
        let Ok(Some(addr)) = serde_json::from_slice::<Option<SocketAddr>>(&offer) else {
            return;
        };
        let cookie = &self.inner.config.cookie;
        match DirectLink::connect(peer, addr, cookie, self.inner.config.connect_timeout).await {
            Ok(link) => self.adopt_direct_link(peer, link),
            Err(error) => {
                tracing::debug!(peer, %addr, %error, "transport: cannot open a direct link")
            }
        }
    }

    /// Use `link` for `peer` from now on, unless the transport stopped meanwhile or another
    /// open link is in use (closing a link in use would lose what it carries).
    fn adopt_direct_link(&self, peer: &str, link: Arc<DirectLink>) {
        let mut links = lock(&self.inner.direct_links);
        let in_use = links.get(peer).is_some_and(|link| link.is_open());
        if in_use || self.inner.stopped.load(Ordering::Acquire) {
            drop(links);
            link.close("not needed");
            return;
        }
        tracing::debug!(peer, "transport: direct link open");
        links.insert(peer.to_owned(), link);
    }

    /// Close and forget `peer`'s direct link, if any.
    pub(super) fn close_direct_link(&self, peer: &str, why: &str) {
        if let Some(link) = lock(&self.inner.direct_links).remove(peer) {
            link.close(why);
        }
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
