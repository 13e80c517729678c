//! Where each member of a cluster lives: its own `127.0.0.k` address (so clusters never
//! share one), its cluster and admin ports, an optional launcher (a network namespace) and
//! store or NATS URLs of its own (through a proxy); and the member itself, with its process
//! while it runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};

use super::process::NodeProcess;

/// A fresh `127.0.0.k` (k in 11..=250), so that clusters never share an address.
pub fn next_loopback_host() -> IpAddr {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let host = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11 + host % 240))
}

/// A port nothing listens on right now at `ip` (the OS picks it; the listener is dropped).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .unwrap_or_else(|error| panic!("no free port on {ip}: {error}"))
        .port()
}

/// Where a node binds, how it is launched and which store URL it uses.
#[derive(Clone, Debug)]
pub struct Placement {
    pub http_ip: IpAddr,
    pub cluster_addr: SocketAddr,
    /// Run under this command (e.g. `ip netns exec NS`); empty: directly.
    pub launcher: Vec<String>,
    /// Overrides the cluster's store URL (e.g. through a proxy).
    pub store_url: Option<String>,
    /// Overrides the cluster's NATS URL (e.g. through a proxy into a network namespace).
    pub events_url: Option<String>,
    /// Where the admin gRPC API listens, when the cluster turns it on
    /// ([`Cluster::start_with_admin_api`]).
    pub admin_addr: SocketAddr,
}

impl Placement {
    /// HTTP and cluster listener on a fresh `127.0.0.k`.
    pub fn loopback() -> Self {
        let host = next_loopback_host();
        Self::http_and_cluster(host, host)
    }

    /// HTTP on `http_ip` (port chosen by the node), the cluster listener on a free port of
    /// `cluster_ip`.
    pub fn http_and_cluster(http_ip: IpAddr, cluster_ip: IpAddr) -> Self {
        Self {
            http_ip,
            cluster_addr: SocketAddr::new(cluster_ip, free_port(cluster_ip)),
            launcher: Vec::new(),
            store_url: None,
            events_url: None,
            admin_addr: SocketAddr::new(http_ip, free_port(http_ip)),
        }
    }
}

/// One node of the cluster: its settings, and its process while it runs.
pub struct Member {
    pub id: String,
    pub placement: Placement,
    pub process: Option<NodeProcess>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Whether the started process is still alive (it did not exit by itself).
    pub fn is_alive(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| !process.has_exited())
    }

    /// The node's HTTP base URL (it must be running).
    pub fn base(&self) -> &str {
        &self.running().base
    }

    pub fn running(&self) -> &NodeProcess {
        self.process
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.id))
    }

    /// The process, no longer part of the cluster (to kill, stop or watch it).
    pub fn take(&mut self) -> NodeProcess {
        self.process
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.id))
    }
}
