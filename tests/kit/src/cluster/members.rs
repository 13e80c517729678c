//! Where each member of a cluster lives: its own `127.0.0.k` address (so clusters never
//! share one), its cluster and admin ports, an optional launcher (a network namespace) and
//! store or NATS URLs of its own (through a proxy); and the member itself, with its process
//! while it runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use super::process::NodeProcess;

/// A fresh `127.0.0.k` (k in 11..=250), so that clusters never share an address.
pub fn next_loopback_host() -> IpAddr {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let host = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11 + host % 240))
}

/// Where [`free_port`] hands out ports: below the kernel's ephemeral range (32768–60999 by
/// default), so no port the kernel picks by itself (a listener bound to port 0, such as a
/// node's HTTP listener, or an outgoing connection) can take one between its choice and the
/// node's bind.
const KIT_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port nothing listens on right now at `ip`, never handed out twice by this process
/// until the kit's range wraps around. (Letting the OS pick one and dropping the listener
/// raced: the OS could give the same port to the node's own port-0 HTTP listener before the
/// node bound its cluster port, and the node then failed to start with "Address already in
/// use".)
pub fn free_port(ip: IpAddr) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(KIT_PORTS.end - KIT_PORTS.start);
    // Processes start at different offsets, so two test binaries rarely try the same ports.
    let start = std::process::id();
    for _ in 0..span {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = KIT_PORTS.start + u16::try_from(offset).expect("offset below the span");
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {KIT_PORTS:?} on {ip}")
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
