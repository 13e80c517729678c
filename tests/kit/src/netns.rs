//! Network namespaces for partition tests: a node in its own namespace, reachable only
//! through one veth pair that the test can take down (a partition) and up again (healed).
//!
//! ```text
//!   root namespace                         namespace NAME
//!   10.231.X.1/24 ── veth (root side) ═══ veth (ns side) ── 10.231.X.2/24, lo
//! ```
//!
//! Everything the partitioned process reaches must sit behind `10.231.X.1` in the root
//! namespace (its peers' listeners, a proxy to the store), and whoever talks to it dials
//! `10.231.X.2`: then every byte it exchanges crosses the veth, and [`NetNs::cut`] isolates
//! it completely. Processes of the root namespace still reach `10.231.X.1` while the link is
//! down (a local address stays local), so the majority side keeps talking to itself.
//!
//! A cut is a black hole, not a refusal: connects from either side time out and established
//! connections stall, as on a real partition.
//!
//! Needs `CAP_NET_ADMIN` and the `ip` tool; [`NetNs::create`] reports why it could not. The
//! namespace (and with it the veth pair) is deleted on drop, and leftovers of test
//! processes that died are deleted by the next [`NetNs::create`] with the same prefix.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;

use crate::TcpProxy;

/// The second octet pair of every address this module assigns: `10.231.X.0/24`.
const SUBNET_PREFIX: [u8; 2] = [10, 231];

/// Links are made one at a time in a process, so that two never pick the same subnet.
static CREATING: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A second veth pair into a namespace (see [`NetNs::second_link`]).
pub struct SecondLink {
    /// The root side: where servers the process inside reaches this way must listen.
    pub root_addr: Ipv4Addr,
    /// The namespace side.
    pub ns_addr: Ipv4Addr,
}

/// A network namespace joined to the root namespace by one veth pair.
pub struct NetNs {
    name: String,
    root_link: String,
    ns_link: String,
    /// The root side of the veth: where the namespace's peers must listen.
    pub root_addr: Ipv4Addr,
    /// The namespace side: where processes inside listen.
    pub ns_addr: Ipv4Addr,
}

impl NetNs {
    /// A fresh namespace named `{prefix}-{pid}-{n}` with `lo` up and a veth pair on a free
    /// `10.231.X.0/24`. Deletes namespaces left by dead test processes with this prefix.
    pub fn create(prefix: &str) -> io::Result<NetNs> {
        let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
        remove_stale(prefix);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = free_subnet()?;
        let namespace = NetNs {
            name: format!("{prefix}-{pid}-{serial}"),
            // Interface names have at most 15 bytes.
            root_link: format!("ve{pid}r{serial}"),
            ns_link: format!("ve{pid}n{serial}"),
            root_addr: Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet, 1),
            ns_addr: Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet, 2),
        };
        ip(&["netns", "add", &namespace.name])?;
        // From here on, dropping `namespace` deletes whatever was made.
        namespace.wire()?;
        Ok(namespace)
    }

    fn wire(&self) -> io::Result<()> {
        let ns_link = self.ns_link.as_str();
        let root_cidr = format!("{}/24", self.root_addr);
        let ns_cidr = format!("{}/24", self.ns_addr);
        ip(&[
            "link",
            "add",
            &self.root_link,
            "type",
            "veth",
            "peer",
            "name",
            ns_link,
            "netns",
            &self.name,
        ])?;
        ip(&["addr", "add", &root_cidr, "dev", &self.root_link])?;
        ip(&["link", "set", &self.root_link, "up"])?;
        self.ip_inside(&["link", "set", "lo", "up"])?;
        self.ip_inside(&["addr", "add", &ns_cidr, "dev", ns_link])?;
        self.ip_inside(&["link", "set", ns_link, "up"])
    }

    fn ip_inside(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command prefix that runs a program inside: `ip netns exec NAME`. It execs in
    /// place, so the spawned child's pid is the program's own.
    pub fn launcher(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(str::to_owned)
            .to_vec()
    }

    /// A second veth pair on a subnet of its own, which [`NetNs::cut`] leaves up: a path
    /// (e.g. to the store, through [`NetNs::proxy_on`]) that survives a partition of the
    /// first one, the cluster links. Deleted with the namespace.
    pub fn second_link(&self) -> io::Result<SecondLink> {
        let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = free_subnet()?;
        let (root_link, ns_link) = (format!("ve{pid}r{serial}"), format!("ve{pid}n{serial}"));
        let link = SecondLink {
            root_addr: Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet, 1),
            ns_addr: Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet, 2),
        };
        let (root_cidr, ns_cidr) = (
            format!("{}/24", link.root_addr),
            format!("{}/24", link.ns_addr),
        );
        ip(&[
            "link", "add", &root_link, "type", "veth", "peer", "name", &ns_link, "netns",
            &self.name,
        ])?;
        ip(&["addr", "add", &root_cidr, "dev", &root_link])?;
        ip(&["link", "set", &root_link, "up"])?;
        self.ip_inside(&["addr", "add", &ns_cidr, "dev", &ns_link])?;
        self.ip_inside(&["link", "set", &ns_link, "up"])?;
        Ok(link)
    }

    /// Partition: take the veth down. Nothing crosses it until [`NetNs::heal`].
    pub fn cut(&self) -> io::Result<()> {
        ip(&["link", "set", &self.root_link, "down"])
    }

    /// Heal the partition: the veth up again. Returns once both ends are up, with the
    /// neighbour entries that failed during the cut forgotten (until they are, connects fail
    /// at once with "no route to host").
    pub fn heal(&self) -> io::Result<()> {
        ip(&["link", "set", &self.root_link, "up"])?;
        for _ in 0..100 {
            if self.link_is_up(&[], &self.root_link)?
                && self.link_is_up(&["-n", &self.name], &self.ns_link)?
            {
                ip(&["neigh", "flush", "dev", &self.root_link])?;
                return self.ip_inside(&["neigh", "flush", "dev", &self.ns_link]);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(io::Error::other(format!(
            "{} did not come up",
            self.root_link
        )))
    }

    /// Whether `link` (in the namespace `scope` selects) is operationally up.
    fn link_is_up(&self, scope: &[&str], link: &str) -> io::Result<bool> {
        let mut args = scope.to_vec();
        args.extend_from_slice(&["-o", "link", "show", "dev", link]);
        let output = Command::new("ip").args(&args).output()?;
        Ok(String::from_utf8_lossy(&output.stdout).contains("state UP"))
    }

    /// A proxy on the root side of the veth (`root_addr`, an OS-chosen port) to `upstream`
    /// in the root namespace: how a process inside reaches a server that listens on
    /// `127.0.0.1` only, through the veth.
    pub async fn proxy_to(&self, upstream: SocketAddr) -> io::Result<Arc<TcpProxy>> {
        Self::proxy_on(self.root_addr, upstream).await
    }

    /// A proxy on `root_addr` (an OS-chosen port) to `upstream`: e.g. on a
    /// [`SecondLink`]'s root side.
    pub async fn proxy_on(root_addr: Ipv4Addr, upstream: SocketAddr) -> io::Result<Arc<TcpProxy>> {
        let listener = TcpListener::bind((root_addr, 0)).await?;
        Ok(TcpProxy::start_on(listener, upstream))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth pair with it.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Run `ip ARGS`; its stderr becomes the error.
fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// A third octet X such that no interface has an address in `10.231.X.0/24`.
fn free_subnet() -> io::Result<u8> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()?;
    let listing = String::from_utf8_lossy(&output.stdout);
    (1..=254u8)
        .find(|octet| {
            let taken = format!("{}.{}.{octet}.", SUBNET_PREFIX[0], SUBNET_PREFIX[1]);
            !listing.contains(&taken)
        })
        .ok_or_else(|| io::Error::other("no free 10.231.X.0/24 subnet"))
}

/// Delete the namespaces `{prefix}-{pid}-{n}` whose test process is gone.
fn remove_stale(prefix: &str) {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    let owner_pid = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        rest.split('-').next()?.parse().ok()
    };
    for name in listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let dead = owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if dead {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
