//! Test-only tools shared by Emporium's suites (adapter tests and black-box tests).
//!
//! [`TcpProxy`] sits between a client and a server on loopback and injects network faults
//! the test controls: `cut()` closes every proxied connection and refuses new ones (the
//! listener is closed), `delay(ms)` holds every forwarded chunk (a slow or black-holed
//! network), `delay_replies(ms)` holds only the server's answers (lost acknowledgements),
//! `reset_connections()` drops connections without refusing new ones (a server restart),
//! and `restore()` undoes all of them on the same address.
//!
//! [`cas_bench`] measures CAS writes per store (the benchmark harness's `stores` section,
//! `load/src/bench/stores.rs`); [`hello_world`] is the
//! plain hyper server every HTTP benchmark measures itself against.
//!
//! [`scratch_postgres`] names a fresh PostgreSQL database per process and drops those of
//! dead runs.
//!
//! [`smtp_sink`] and [`webhook_sink`] are recording servers (SMTP, HTTP/1.1) the
//! notification adapters deliver to, with injectable failures.
//!
//! [`otlp_receiver`] is an OTLP/HTTP trace receiver that records the spans nodes export.
//! [`browser`] drives a headless Chromium through chromedriver (W3C WebDriver): the admin
//! console's browser test.
//!
//! [`cluster`] starts real `emporium` node processes, alone or as a cluster on a scratch
//! store, and drives them from outside (a balancer, a load): the black-box tests and the
//! benchmark harness share it.
//!
//! [`netns`] puts a process in its own network namespace behind a veth pair the test can
//! take down: a real partition; a second veth pair can carry a path (to the store) that a
//! cut of the first leaves intact (a partition of the cluster links alone).

pub mod browser;
pub mod cas_bench;
pub mod cluster;
pub mod hello_world;
pub mod linearizability;
pub mod netns;
pub mod otlp_receiver;
pub mod scratch_postgres;
pub mod smtp_sink;
pub mod webhook_sink;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A fault-injecting TCP proxy on `127.0.0.1`.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    /// Bumped by `cut()`: every connection task watching it ends, closing both sockets.
    generation: watch::Sender<u64>,
    delay_ms: watch::Sender<u64>,
    /// Extra hold on the server's answers only (a lost or late acknowledgement).
    reply_delay_ms: watch::Sender<u64>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl TcpProxy {
    /// Listen on `127.0.0.1:0` and forward every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        Self::start_on(listener, upstream)
    }

    /// A proxy accepting on `listener` (any address) and forwarding to `upstream`.
    pub fn start_on(listener: TcpListener, upstream: SocketAddr) -> Arc<Self> {
        let proxy = Arc::new(Self {
            addr: listener.local_addr().expect("proxy addr"),
            upstream,
            generation: watch::channel(0).0,
            delay_ms: watch::channel(0).0,
            reply_delay_ms: watch::channel(0).0,
            listener: Mutex::new(None),
        });
        proxy.serve(listener);
        proxy
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let proxy = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let proxy = Arc::clone(&proxy);
                tokio::spawn(async move { proxy.forward(client).await });
            }
        });
        *self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    async fn forward(&self, client: TcpStream) {
        let mut generation = self.generation.subscribe();
        let Ok(server) = TcpStream::connect(self.upstream).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::select! {
            _ = generation.changed() => {}
            _ = pump(client_read, server_write, self.delay_ms.subscribe(), None) => {}
            _ = pump(
                server_read,
                client_write,
                self.delay_ms.subscribe(),
                Some(self.reply_delay_ms.subscribe()),
            ) => {}
        }
        // Returning drops all four halves: both connections close.
    }

    /// Close every proxied connection and refuse new ones.
    pub fn cut(&self) {
        if let Some(task) = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort(); // drops the listener: connects are refused
        }
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Hold every forwarded chunk for `ms` milliseconds (0: forward at once).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.send_replace(ms);
    }

    /// Hold only what the server sends back for `ms` milliseconds (0: at once): requests
    /// arrive and apply, their acknowledgements come late or, past the client's deadline,
    /// never (a black-holed acknowledgement).
    pub fn delay_replies(&self, ms: u64) {
        self.reply_delay_ms.send_replace(ms);
    }

    /// Accept and forward again, without delay.
    pub async fn restore(self: &Arc<Self>) {
        self.delay(0);
        self.delay_replies(0);
        if self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            return;
        }
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("rebind the proxy address");
        self.serve(socket.listen(64).expect("listen"));
    }

    /// Drop all connections (without refusing new ones): the server "restarted".
    pub fn reset_connections(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay_ms: watch::Receiver<u64>,
    extra_delay_ms: Option<watch::Receiver<u64>>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = *delay_ms.borrow() + extra_delay_ms.as_ref().map_or(0, |extra| *extra.borrow());
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Install the build's one TLS crypto provider (aws-lc-rs) for this process, unless one is
/// already (the clients the kit builds take the process's provider).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The socket address of a `nats://host:port` URL, to put a [`TcpProxy`] in front of it.
pub async fn nats_addr(url: &str) -> SocketAddr {
    let host_port = url.trim_start_matches("nats://");
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolve the NATS URL")
        .next()
        .expect("an address for the NATS URL")
}
