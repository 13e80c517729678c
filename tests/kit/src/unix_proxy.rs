//! A Unix-socket front for a TCP server: how a process in a network namespace (see
//! [`crate::netns`]) reaches a server of the root namespace without crossing any veth.
//! Network namespaces do not separate filesystem sockets, so cutting the veth leaves this
//! path intact: a partition of the cluster links alone, the store still reachable.
//!
//! For PostgreSQL the socket is `DIR/.s.PGSQL.PORT`, and a client connects with the
//! directory as its host: `postgres://USER@%2FDIR:PORT/DATABASE`. The server sees a TCP
//! connection from loopback (so its loopback authentication rules apply).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::net::{TcpStream, UnixListener};
use tokio::task::JoinHandle;

/// Forwards every connection on a Unix socket to one TCP address; stops when dropped.
pub struct UnixProxy {
    dir: PathBuf,
    task: JoinHandle<()>,
}

impl UnixProxy {
    /// A socket named the way PostgreSQL clients look for one (`.s.PGSQL.PORT`, with the
    /// port of `upstream`) in a fresh directory under the system's temporary directory.
    pub fn postgres(upstream: SocketAddr) -> io::Result<UnixProxy> {
        let dir = std::env::temp_dir().join(format!(
            "emporium-unix-proxy-{}-{}",
            std::process::id(),
            upstream.port()
        ));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join(format!(".s.PGSQL.{}", upstream.port()));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(UnixProxy { dir, task })
    }

    /// The directory holding the socket (a PostgreSQL client's `host`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory, percent-encoded for the host part of a URL.
    pub fn url_host(&self) -> String {
        self.dir.to_string_lossy().replace('/', "%2F")
    }
}

impl Drop for UnixProxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
