//! Direct links: envelopes to a peer over one plain TCP connection of this module's own,
//! beside ractor_cluster's link.
//!
//! # Why
//! Over ractor_cluster a forwarded call crosses a proxy actor, the node session and the TCP
//! session actors on each side, about a dozen task wake-ups per call, and each frame is one
//! write. A direct link is a reader and a writer task per side: frames are matched to their
//! callers by id, and the writer sends everything queued in one write. ractor_cluster keeps
//! what it is good at here: membership links, probes, crash evidence, and `$direct`, which
//! tells a peer where this node's direct listener is.
//!
//! # Protocol
//! A handshake proves on both sides that the other end knows the cluster secret, without
//! sending it: each side sends a fresh 32-byte nonce, the server answers
//! `HMAC-SHA256(secret, "server" ‖ client nonce ‖ server nonce)`, the client
//! `HMAC-SHA256(secret, "client" ‖ …)`. Either side closes on a wrong proof, a wrong magic or
//! another version (then no direct link is made and envelopes go through ractor_cluster).
//! After it, both directions carry frames: `[u32 length of the rest][u64 id][bytes]`, an
//! encoded [`Envelope`](super::Envelope) from the client, its encoded
//! [`Answer`](super::Answer) from the server under the same id.
//!
//! # Invariants
//! - A call is `NotSent` only when its frame was surely never handed to the connection; it
//!   may then go another way. Once handed over, a link that closes answers it `Lost` (the
//!   peer may have run it: outcome unknown), never `NotSent`.
//! - A link that closes fails every call waiting on it at once; it is never reopened (the
//!   maintenance loop makes a new one).
//! - Every envelope that reaches the server side gets exactly one answer, from the node's
//!   [`Reception`], as one that came through ractor_cluster would.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::host::Reception;
use crate::lock;

const MAGIC: &[u8; 4] = b"EMPD";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 32;
const PROOF_LEN: usize = 32;
/// The largest frame either side reads; a larger one closes the link.
pub(super) const MAX_FRAME: usize = 64 << 20;
/// How long the server waits for a client to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// The writer sends what is queued in one write, up to about this many bytes.
const WRITE_BATCH: usize = 256 << 10;

type Frame = (u64, Vec<u8>);

/// Why a direct link could not be made, or broke.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an Emporium direct link (wrong magic)")]
    NotDirect,
    #[error("direct link version {0}, this node speaks {VERSION}")]
    Version(u8),
    #[error("the other end does not know the cluster secret")]
    Unauthenticated,
    #[error("a frame of {0} bytes is out of bounds")]
    TooLarge(usize),
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
}

/// Why a call over a direct link has no answer.
#[derive(Debug)]
pub(super) enum CallError {
    /// The frame never reached the connection (the link was closed): it may go another way.
    NotSent(Vec<u8>),
    /// The link closed after the frame was handed to it: the peer may have run it.
    Lost,
    /// No answer within the budget.
    TimedOut,
}

fn proof(secret: &str, role: &[u8], client: &[u8], server: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(role);
    mac.update(client);
    mac.update(server);
    mac
}

async fn read_hello(stream: &mut TcpStream) -> Result<[u8; NONCE_LEN], LinkError> {
    let mut magic = [0; 4];
    stream.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(LinkError::NotDirect);
    }
    let version = stream.read_u8().await?;
    if version != VERSION {
        return Err(LinkError::Version(version));
    }
    let mut nonce = [0; NONCE_LEN];
    stream.read_exact(&mut nonce).await?;
    Ok(nonce)
}

fn hello(nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut hello = Vec::with_capacity(4 + 1 + NONCE_LEN + PROOF_LEN);
    hello.extend_from_slice(MAGIC);
    hello.push(VERSION);
    hello.extend_from_slice(nonce);
    hello
}

async fn check_proof(stream: &mut TcpStream, expected: Hmac<Sha256>) -> Result<(), LinkError> {
    let mut given = [0; PROOF_LEN];
    stream.read_exact(&mut given).await?;
    expected
        .verify_slice(&given)
        .map_err(|_| LinkError::Unauthenticated)
}

async fn client_handshake(stream: &mut TcpStream, secret: &str) -> Result<(), LinkError> {
    let client: [u8; NONCE_LEN] = rand::random();
    stream.write_all(&hello(&client)).await?;
    let server = read_hello(stream).await?;
    check_proof(stream, proof(secret, b"server", &client, &server)).await?;
    let mine = proof(secret, b"client", &client, &server)
        .finalize()
        .into_bytes();
    stream.write_all(&mine).await?;
    Ok(())
}

async fn server_handshake(stream: &mut TcpStream, secret: &str) -> Result<(), LinkError> {
    let client = read_hello(stream).await?;
    let server: [u8; NONCE_LEN] = rand::random();
    let mut answer = hello(&server);
    answer.extend_from_slice(
        &proof(secret, b"server", &client, &server)
            .finalize()
            .into_bytes(),
    );
    stream.write_all(&answer).await?;
    check_proof(stream, proof(secret, b"client", &client, &server)).await
}

/// The next frame, or `None` when the other end closed between frames.
async fn read_frame(reader: &mut BufReader<OwnedReadHalf>) -> Result<Option<Frame>, LinkError> {
    let len = match reader.read_u32().await {
        Ok(len) => len as usize,
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(LinkError::TooLarge(len));
    }
    let id = reader.read_u64().await?;
    let mut bytes = vec![0; len - 8];
    reader.read_exact(&mut bytes).await?;
    Ok(Some((id, bytes)))
}

/// Append the frame of `bytes` under `id` to `buffer`. An envelope over [`MAX_FRAME`] never
/// takes a direct link (`Transport::send`); an answer over it (none of an actor's comes near)
/// is refused by the reader, which closes the link: its call is answered as of unknown
/// outcome, never wrongly.
fn put_frame(buffer: &mut Vec<u8>, id: u64, bytes: &[u8]) {
    let len = u32::try_from(bytes.len() + 8).unwrap_or(u32::MAX);
    buffer.extend_from_slice(&len.to_be_bytes());
    buffer.extend_from_slice(&id.to_be_bytes());
    buffer.extend_from_slice(bytes);
}

/// Write the frames `outgoing` yields, everything queued at once in one write, until every
/// sender is gone (`Ok`) or the connection fails (`Err`).
async fn write_frames(
    mut writer: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Frame>,
) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(16 << 10);
    while let Some(first) = outgoing.recv().await {
        buffer.clear();
        let mut next = Some(first);
        while let Some((id, bytes)) = next.take() {
            put_frame(&mut buffer, id, &bytes);
            if buffer.len() < WRITE_BATCH {
                next = outgoing.try_recv().ok();
            }
        }
        writer.write_all(&buffer).await?;
    }
    Ok(())
}

/// This node's direct listener: every connection that proves it knows the secret has its
/// envelopes answered by the node's [`Reception`].
pub(super) struct DirectServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl DirectServer {
    /// Listen on `ip`, on a port the kernel picks.
    pub(super) async fn bind(
        ip: IpAddr,
        secret: String,
        reception: Arc<Reception>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept(listener, Arc::from(secret), reception, stopped));
        Ok(Self { addr, stop })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting and close every connection.
    pub(super) fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn accept(
    listener: TcpListener,
    secret: Arc<str>,
    reception: Arc<Reception>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        match accepted {
            Ok((stream, from)) => {
                let served = serve(
                    stream,
                    Arc::clone(&secret),
                    Arc::clone(&reception),
                    stopped.clone(),
                );
                tokio::spawn(async move {
                    if let Err(error) = served.await {
                        tracing::debug!(%from, %error, "transport: direct link closed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "transport: cannot accept a direct link");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One accepted connection: the handshake, then every envelope answered under its id.
async fn serve(
    mut stream: TcpStream,
    secret: Arc<str>,
    reception: Arc<Reception>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), LinkError> {
    stream.set_nodelay(true)?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, server_handshake(&mut stream, &secret))
        .await
        .map_err(|_| LinkError::Timeout(HANDSHAKE_TIMEOUT))??;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let (answers, outgoing) = mpsc::unbounded_channel();
    let writing = tokio::spawn(write_frames(writer, outgoing));
    let read = loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame,
            _ = stopped.changed() => break Ok(()),
        };
        match frame {
            Ok(Some((id, envelope))) => {
                let answers = answers.clone();
                reception.receive(&envelope, move |answer| {
                    // The link may have closed meanwhile: nobody is waiting any more.
                    let _ = answers.send((id, answer));
                });
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    writing.abort();
    read
}

/// This node's end of a direct link to one peer.
pub(super) struct DirectLink {
    peer: String,
    next_id: AtomicU64,
    state: Mutex<LinkState>,
    outgoing: mpsc::UnboundedSender<Frame>,
    tasks: Mutex<Vec<AbortHandle>>,
}

struct LinkState {
    open: bool,
    /// Takes no new calls; closes once the last call in flight is done with.
    retired: bool,
    waiting: HashMap<u64, oneshot::Sender<Vec<u8>>>,
}

impl LinkState {
    fn retired_and_idle(&self) -> bool {
        self.retired && self.waiting.is_empty()
    }
}

impl DirectLink {
    /// Connect to `peer`'s direct listener at `addr` and prove both ends know `secret`,
    /// within `timeout`.
    pub(super) async fn connect(
        peer: &str,
        addr: SocketAddr,
        secret: &str,
        timeout: Duration,
    ) -> Result<Arc<Self>, LinkError> {
        let opened = async {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            client_handshake(&mut stream, secret).await?;
            Ok::<_, LinkError>(stream)
        };
        let stream = tokio::time::timeout(timeout, opened)
            .await
            .map_err(|_| LinkError::Timeout(timeout))??;
        let (reader, writer) = stream.into_split();
        let (outgoing, queued) = mpsc::unbounded_channel();
        let link = Arc::new(Self {
            peer: peer.to_owned(),
            next_id: AtomicU64::new(0),
            state: Mutex::new(LinkState {
                open: true,
                retired: false,
                waiting: HashMap::new(),
            }),
            outgoing,
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&link);
        let writing = tokio::spawn(async move {
            if let Err(error) = write_frames(writer, queued).await {
                close(&weak, &error.to_string());
            }
        });
        let weak = Arc::downgrade(&link);
        let reading = tokio::spawn(read_answers(BufReader::new(reader), weak));
        lock(&link.tasks).extend([writing.abort_handle(), reading.abort_handle()]);
        Ok(link)
    }

    /// Whether the link takes new calls.
    pub(super) fn is_open(&self) -> bool {
        let state = lock(&self.state);
        state.open && !state.retired
    }

    /// Send the encoded envelope `frame` and wait at most `budget` for its answer.
    pub(super) async fn call(
        &self,
        frame: Vec<u8>,
        budget: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answered, answer) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            if !state.open || state.retired {
                return Err(CallError::NotSent(frame));
            }
            state.waiting.insert(id, answered);
        }
        if let Err(mpsc::error::SendError((_, frame))) = self.outgoing.send((id, frame)) {
            // The writer is gone, so the frame was never taken.
            lock(&self.state).waiting.remove(&id);
            return Err(CallError::NotSent(frame));
        }
        match tokio::time::timeout(budget, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_closed)) => Err(CallError::Lost),
            Err(_elapsed) => {
                self.done_with(id);
                Err(CallError::TimedOut)
            }
        }
    }

    /// Forget call `id` (answered or given up), and close the link if it was retired and
    /// this was its last call; the answer's taker, if the call still waits.
    fn done_with(&self, id: u64) -> Option<oneshot::Sender<Vec<u8>>> {
        let (waiting, idle) = {
            let mut state = lock(&self.state);
            let waiting = state.waiting.remove(&id);
            (waiting, state.retired_and_idle())
        };
        if idle {
            self.close("retired, and its last call is done");
        }
        waiting
    }

    /// Take no new calls, and close once the calls in flight are answered or give up (the
    /// peer may only be slow: closing now would make their outcomes unknown).
    pub(super) fn retire(&self, why: &str) {
        let idle = {
            let mut state = lock(&self.state);
            state.retired = true;
            state.retired_and_idle()
        };
        tracing::debug!(peer = %self.peer, why, "transport: direct link retired");
        if idle {
            self.close(why);
        }
    }

    /// Close the link: every waiting call is answered `Lost`, later calls `NotSent`.
    pub(super) fn close(&self, why: &str) {
        let waiting = {
            let mut state = lock(&self.state);
            if !state.open {
                return;
            }
            state.open = false;
            std::mem::take(&mut state.waiting)
        };
        tracing::debug!(peer = %self.peer, waiting = waiting.len(), why, "transport: direct link closed");
        drop(waiting);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// A link nobody holds any more (replaced while retired, or forgotten) stops its reader and
/// writer, which hold it only weakly, and so closes its connection.
impl Drop for DirectLink {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

fn close(link: &Weak<DirectLink>, why: &str) {
    if let Some(link) = link.upgrade() {
        link.close(why);
    }
}

/// Hand every answer to the call waiting for it, until the connection ends.
async fn read_answers(mut reader: BufReader<OwnedReadHalf>, link: Weak<DirectLink>) {
    let why = loop {
        match read_frame(&mut reader).await {
            Ok(Some((id, answer))) => {
                let Some(link) = link.upgrade() else { return };
                // A call that stopped waiting (its budget ran out) is no longer there.
                if let Some(waiting) = link.done_with(id) {
                    let _ = waiting.send(answer);
                }
            }
            Ok(None) => break "the peer closed it".to_owned(),
            Err(error) => break error.to_string(),
        }
    };
    close(&link, &why);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{SharedClock, SystemClock};
    use crate::transport::host::EnvelopeHandler;
    use crate::transport::wire::{Answer, Envelope, Refusal};
    use async_trait::async_trait;

    const SECRET: &str = "a-cluster-secret-of-some-length";

    /// Answers with the payload it was given, after `delay` when the key is "slow".
    struct Mirror;

    #[async_trait]
    impl EnvelopeHandler for Mirror {
        async fn handle(&self, envelope: Envelope) -> Answer {
            if envelope.key == "slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Answer::Reply(envelope.payload)
        }
    }

    fn clock() -> SharedClock {
        Arc::new(SystemClock::new())
    }

    async fn server() -> DirectServer {
        let reception = Arc::new(Reception::new(Arc::new(Mirror), clock(), 256));
        DirectServer::bind("127.0.0.1".parse().unwrap(), SECRET.to_owned(), reception)
            .await
            .unwrap()
    }

    fn envelope(key: &str, payload: &str) -> Vec<u8> {
        let deadline_ms = clock().now_ms() + 5_000;
        Envelope::new("cart", key, payload.as_bytes().to_vec(), deadline_ms)
            .encode()
            .unwrap()
    }

    async fn link_to(server: &DirectServer) -> Arc<DirectLink> {
        DirectLink::connect("p", server.addr(), SECRET, Duration::from_secs(1))
            .await
            .unwrap()
    }

    /// A call of payload `1` that the server answers after 300 ms, sent and under way.
    async fn slow_call_under_way(
        link: &Arc<DirectLink>,
    ) -> tokio::task::JoinHandle<Result<Answer, CallError>> {
        let link = Arc::clone(link);
        let call = tokio::spawn(async move { call(&link, "slow", "1").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        call
    }

    async fn call(link: &DirectLink, key: &str, payload: &str) -> Result<Answer, CallError> {
        let answer = link
            .call(envelope(key, payload), Duration::from_secs(5))
            .await?;
        Ok(Answer::decode(&answer).unwrap())
    }

    #[tokio::test]
    async fn concurrent_calls_each_get_their_own_answer() {
        let server = server().await;
        let link = link_to(&server).await;
        // The slow ones are answered after the quick ones that were sent later.
        let calls = (0..200).map(|i| {
            let link = Arc::clone(&link);
            async move {
                let key = if i % 10 == 0 { "slow" } else { "quick" };
                let answer = call(&link, key, &format!("{{\"n\":{i}}}")).await;
                (i, answer)
            }
        });
        for (i, answer) in futures::future::join_all(calls).await {
            let expected = Answer::Reply(format!("{{\"n\":{i}}}").into_bytes());
            assert_eq!(answer.unwrap(), expected);
        }
        // The node's own checks apply as through ractor_cluster.
        let late = Envelope::new("cart", "c", b"null".to_vec(), 1)
            .encode()
            .unwrap();
        let answer = link.call(late, Duration::from_secs(5)).await.unwrap();
        assert!(matches!(
            Answer::decode(&answer).unwrap(),
            Answer::Refused {
                reason: Refusal::Expired,
                ..
            }
        ));
        let garbage = link
            .call(b"add 2".to_vec(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(
            Answer::decode(&garbage).unwrap(),
            Answer::Refused {
                reason: Refusal::Malformed,
                ..
            }
        ));
        server.stop();
    }

    #[tokio::test]
    async fn a_wrong_secret_gets_no_link_on_either_side() {
        let server = server().await;
        let refused =
            DirectLink::connect("p", server.addr(), "another-secret", Duration::from_secs(1)).await;
        assert!(refused.is_err(), "a client with another secret got a link");

        // A client that cannot prove it knows the secret is closed before any frame is read.
        let mut forger = TcpStream::connect(server.addr()).await.unwrap();
        forger.write_all(&hello(&[7; NONCE_LEN])).await.unwrap();
        let mut server_hello = [0; 4 + 1 + NONCE_LEN + PROOF_LEN];
        forger.read_exact(&mut server_hello).await.unwrap();
        forger.write_all(&[0; PROOF_LEN]).await.unwrap();
        let mut frame = Vec::new();
        put_frame(&mut frame, 1, &envelope("c", "1"));
        let _ = forger.write_all(&frame).await;
        let mut rest = Vec::new();
        let _ = forger.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "a forger was answered: {rest:?}");

        // A server with another secret: the client refuses it before sending anything.
        let reception = Arc::new(Reception::new(Arc::new(Mirror), clock(), 64));
        let impostor = DirectServer::bind(
            "127.0.0.1".parse().unwrap(),
            "another-secret".to_owned(),
            reception,
        )
        .await
        .unwrap();
        let refused =
            DirectLink::connect("p", impostor.addr(), SECRET, Duration::from_secs(1)).await;
        assert!(matches!(refused, Err(LinkError::Unauthenticated)));

        // Something that is not a direct link at all is closed, and the server lives on.
        let mut stranger = TcpStream::connect(server.addr()).await.unwrap();
        stranger.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = stranger.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "a stranger was answered: {rest:?}");
        let link = link_to(&server).await;
        assert!(call(&link, "c", "1").await.is_ok());
    }

    #[tokio::test]
    async fn a_link_that_closes_loses_what_it_carried_and_sends_nothing_more() {
        let server = server().await;
        let link = link_to(&server).await;
        let in_flight = slow_call_under_way(&link).await;
        // The server goes away while the slow call runs: its outcome is unknown.
        server.stop();
        let lost = in_flight.await.unwrap();
        assert!(matches!(lost, Err(CallError::Lost)), "{lost:?}");
        assert!(!link.is_open());
        let after = link.call(envelope("c", "2"), Duration::from_secs(1)).await;
        match after {
            // It gives back exactly what it was given, to be sent another way.
            Err(CallError::NotSent(frame)) => {
                assert_eq!(Envelope::decode(&frame).unwrap().payload, b"2");
            }
            other => panic!("a call on a closed link: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_retired_link_answers_what_it_carries_then_closes() {
        let server = server().await;
        let link = link_to(&server).await;
        let in_flight = slow_call_under_way(&link).await;
        link.retire("a test");
        assert!(!link.is_open(), "a retired link takes new calls");
        let refused = link.call(envelope("c", "2"), Duration::from_secs(1)).await;
        assert!(matches!(refused, Err(CallError::NotSent(_))), "{refused:?}");
        // The call it carried is answered, and then the link closes.
        let answered = in_flight.await.unwrap();
        assert_eq!(answered.unwrap(), Answer::Reply(b"1".to_vec()));
        assert!(lock(&link.state).waiting.is_empty());
        assert!(
            !lock(&link.state).open,
            "a retired link stayed open when idle"
        );
        server.stop();
    }

    #[tokio::test]
    async fn a_call_without_an_answer_in_its_budget_times_out_and_the_link_stays() {
        let server = server().await;
        let link = link_to(&server).await;
        let late = link
            .call(envelope("slow", "1"), Duration::from_millis(50))
            .await;
        assert!(matches!(late, Err(CallError::TimedOut)), "{late:?}");
        // Its answer arrives later and is dropped; the link serves the next call.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            call(&link, "c", "3").await.unwrap(),
            Answer::Reply(b"3".to_vec())
        );
        server.stop();
    }
}
