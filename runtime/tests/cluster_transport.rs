//! The cluster transport over ractor_cluster, with real node servers on 127.0.0.1 in one
//! process (feature `cluster`): an envelope goes from A to B's shard host and its answer
//! comes back; a wrong cookie is refused; a restarted peer is linked again by the
//! maintenance loop; a peer that accepts TCP but never answers is reported unreachable; a
//! closed link is retried at once, and a port that refuses is reported as crash evidence
//! (a hung or unreachable peer never is); envelopes take the direct link once the loop made
//! one, and one in flight when it drops is an unknown outcome.
//!
//! Real sockets need real time: every wait here polls with a bound, none sleeps blindly.
#![cfg(feature = "cluster")]

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use emporium_runtime::cluster::{
    Answer, Envelope, EnvelopeHandler, Peer, PeerSource, Refusal, Transport, TransportConfig,
    TransportError,
};
use emporium_runtime::{Clock, SharedClock, SystemClock};

const COOKIE: &str = "emporium-test-cookie";

/// Answers the JSON string `node:kind/key:payload`; kind `slow` never answers in time; kind
/// `busy` refuses; kind `text` replies with something that is not JSON.
struct Echo {
    node: String,
}

#[async_trait]
impl EnvelopeHandler for Echo {
    async fn handle(&self, envelope: Envelope) -> Answer {
        match envelope.kind.as_str() {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Answer::Reply(Vec::new())
            }
            "busy" => Answer::refused(Refusal::NotOwner, "not mine"),
            "text" => Answer::Reply(b"not json".to_vec()),
            _ => {
                let text = format!(
                    "{}:{}/{}:{}",
                    self.node,
                    envelope.kind,
                    envelope.key,
                    String::from_utf8_lossy(&envelope.payload)
                );
                Answer::Reply(serde_json::to_vec(&text).unwrap())
            }
        }
    }
}

/// What `Echo` said, or the refusal.
fn echoed(answer: Answer) -> String {
    match answer {
        Answer::Reply(reply) => serde_json::from_slice(&reply).expect("a JSON string"),
        refused => panic!("{refused:?}"),
    }
}

fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn clock() -> SharedClock {
    Arc::new(SystemClock::new())
}

async fn start(node: &str, addr: SocketAddr, cookie: &str) -> Transport {
    let mut config = TransportConfig::new(node, addr, cookie);
    config.maintain_interval = Duration::from_millis(100);
    config.probe_timeout = Duration::from_millis(300);
    Transport::start(
        config,
        clock(),
        Arc::new(Echo {
            node: node.to_owned(),
        }),
    )
    .await
    .expect("transport starts")
}

/// Poll `check` every 20 ms for at most `limit`; return whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn deadline_in(ms: u64) -> u64 {
    SystemClock::new().now_ms() + ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_reaches_the_peers_shard_host_and_the_answer_comes_back() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a = start("rt-a", a_addr, COOKIE).await;
    let b = start("rt-b", b_addr, COOKIE).await;
    a.connect(&b_addr.to_string()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || a.is_connected("rt-b")).await,
        "no link from a to b"
    );

    let answer = a
        .send(
            "rt-b",
            Envelope::new("cart", "c-1", br#"{"add":2}"#.to_vec(), deadline_in(2_000)),
        )
        .await
        .unwrap();
    assert_eq!(echoed(answer), r#"rt-b:cart/c-1:{"add":2}"#);

    // The link is two-way once authenticated.
    assert!(eventually(Duration::from_secs(10), || b.is_connected("rt-a")).await);
    let back = b
        .send(
            "rt-a",
            Envelope::new("sku", "s-9", vec![], deadline_in(2_000)),
        )
        .await
        .unwrap();
    // No payload travels as JSON `null`.
    assert_eq!(echoed(back), "rt-a:sku/s-9:null");

    // Refusals travel as answers; a handler slower than the deadline is cut at the deadline.
    let refused = a
        .send(
            "rt-b",
            Envelope::new("busy", "x", vec![], deadline_in(2_000)),
        )
        .await
        .unwrap();
    assert!(matches!(
        refused,
        Answer::Refused {
            reason: Refusal::NotOwner,
            ..
        }
    ));
    let started = Instant::now();
    let slow = a
        .send("rt-b", Envelope::new("slow", "x", vec![], deadline_in(300)))
        .await;
    assert!(
        matches!(
            slow,
            Ok(Answer::Refused {
                reason: Refusal::TimedOut,
                ..
            }) | Err(TransportError::Timeout { .. })
        ),
        "a handler cut at the deadline may have applied it: {slow:?}"
    );
    // One already late on arrival is never handed to the handler.
    let late = a
        .send(
            "rt-b",
            Envelope::new("cart", "x", vec![], deadline_in(0) - 1_000),
        )
        .await;
    assert!(
        matches!(
            late,
            Ok(Answer::Refused {
                reason: Refusal::Expired,
                ..
            }) | Err(TransportError::Expired)
        ),
        "{late:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // A payload that is not JSON never leaves; a reply that is not JSON is the handler's
    // failure.
    let not_json = a
        .send(
            "rt-b",
            Envelope::new("cart", "x", b"add 2".to_vec(), deadline_in(2_000)),
        )
        .await;
    assert!(
        matches!(
            not_json,
            Ok(Answer::Refused {
                reason: Refusal::Malformed,
                ..
            })
        ),
        "{not_json:?}"
    );
    let text = a
        .send(
            "rt-b",
            Envelope::new("text", "x", vec![], deadline_in(2_000)),
        )
        .await;
    assert!(
        matches!(
            text,
            Ok(Answer::Refused {
                reason: Refusal::Failed,
                ..
            })
        ),
        "{text:?}"
    );
    assert!(matches!(
        a.send("rt-b", Envelope::new("cart", "late", vec![], 1))
            .await,
        Err(TransportError::Expired)
    ));

    // A rough figure for the report (not a benchmark): sequential round trips.
    let rounds = 200;
    let started = Instant::now();
    for i in 0..rounds {
        let payload = br#"{"command":{"command":"Get","start_within_ms":2000}}"#.to_vec();
        let envelope = Envelope::new("cart", format!("c-{i}"), payload, deadline_in(2_000));
        assert!(matches!(
            a.send("rt-b", envelope).await,
            Ok(Answer::Reply(_))
        ));
    }
    eprintln!(
        "transport: {rounds} sequential loopback round trips, {:?} each on average",
        started.elapsed() / rounds
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused() {
    let (a_addr, c_addr) = (free_addr(), free_addr());
    let a = start("ck-a", a_addr, COOKIE).await;
    let c = start("ck-c", c_addr, "another-cookie").await;
    a.connect(&c_addr.to_string()).await.unwrap();
    assert!(
        !eventually(Duration::from_secs(2), || a.is_connected("ck-c")).await,
        "a node with another cookie was linked"
    );
    assert!(!c.is_connected("ck-a").await);
    assert!(matches!(
        a.send(
            "ck-c",
            Envelope::new("cart", "x", vec![], deadline_in(1_000))
        )
        .await,
        Err(TransportError::NotConnected { .. })
    ));
    a.shutdown().await;
    c.shutdown().await;
}

/// A fixed peer list that records reachability reports, refusals and connections.
struct StaticPeers {
    peers: Vec<Peer>,
    reports: Mutex<Vec<(String, bool)>>,
    refused: Mutex<Vec<(String, u64, Instant)>>,
    connected: Mutex<Vec<String>>,
}

impl PeerSource for StaticPeers {
    fn peers(&self) -> Vec<Peer> {
        self.peers.clone()
    }

    fn report(&self, node_id: &str, reachable: bool) {
        self.reports
            .lock()
            .unwrap()
            .push((node_id.to_owned(), reachable));
    }

    fn report_refused(&self, node_id: &str, incarnation: u64) {
        self.refused
            .lock()
            .unwrap()
            .push((node_id.to_owned(), incarnation, Instant::now()));
    }

    fn report_connected(&self, node_id: &str) {
        self.connected.lock().unwrap().push(node_id.to_owned());
    }
}

impl StaticPeers {
    fn new(peers: Vec<Peer>) -> Arc<Self> {
        Arc::new(Self {
            peers,
            reports: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
            connected: Mutex::new(Vec::new()),
        })
    }

    fn reports(&self) -> Vec<(String, bool)> {
        self.reports.lock().unwrap().clone()
    }

    fn refused(&self) -> Vec<(String, u64, Instant)> {
        self.refused.lock().unwrap().clone()
    }
}

fn peer(node_id: &str, incarnation: u64, addr: impl ToString) -> Peer {
    Peer {
        node_id: node_id.to_owned(),
        incarnation,
        cluster_addr: addr.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_loop_links_again_after_the_peer_restarts() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a = start("rc-a", a_addr, COOKIE).await;
    let b = start("rc-b", b_addr, COOKIE).await;
    let peers = StaticPeers::new(vec![peer("rc-b", 1, b_addr)]);
    let _maintenance = a.maintain(peers.clone());
    assert!(
        eventually(Duration::from_secs(10), || a.is_connected("rc-b")).await,
        "the loop did not link a to b"
    );

    // The peer's node server goes away (a restart): the link drops, the peer is reported.
    b.shutdown().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !a.is_connected("rc-b").await
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            peers.reports().contains(&("rc-b".to_owned(), false))
        })
        .await,
        "b was never reported unreachable: {:?}",
        peers.reports()
    );

    // It comes back on the same address: the loop links again, and reports it reachable.
    let restarted_at = Instant::now();
    let b = start("rc-b", b_addr, COOKIE).await;
    assert!(
        eventually(Duration::from_secs(10), || a.is_connected("rc-b")).await,
        "the loop did not link a to the restarted b"
    );
    eprintln!(
        "transport: linked to the restarted peer after {:?}",
        restarted_at.elapsed()
    );
    let answer = a
        .send(
            "rc-b",
            Envelope::new("cart", "c", vec![], deadline_in(2_000)),
        )
        .await
        .unwrap();
    assert_eq!(echoed(answer), "rc-b:cart/c:null");
    assert!(
        eventually(Duration::from_secs(5), || async {
            peers.reports().last() == Some(&("rc-b".to_owned(), true))
        })
        .await,
        "{:?}",
        peers.reports()
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Whether `transport` has a direct link to `peer` within 10 s.
async fn direct_link_made(transport: &Transport, peer: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        transport.has_direct_link(peer)
    })
    .await
}

/// What `Echo` on `peer` answers to a cart envelope carrying `payload`.
async fn echo(transport: &Transport, peer: &str, payload: &str) -> String {
    let envelope = Envelope::new("cart", "c", payload.as_bytes().to_vec(), deadline_in(2_000));
    echoed(transport.send(peer, envelope).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_take_the_direct_link_and_one_it_dropped_is_an_unknown_outcome() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a = start("dl-a", a_addr, COOKIE).await;
    let b = start("dl-b", b_addr, COOKIE).await;
    let peers = StaticPeers::new(vec![peer("dl-b", 1, b_addr)]);
    let _maintenance = a.maintain(peers.clone());
    assert!(
        direct_link_made(&a, "dl-b").await,
        "the loop made no direct link from a to b"
    );
    assert_eq!(echo(&a, "dl-b", "1").await, "dl-b:cart/c:1");

    // b stops while it runs a call: the call may have run, so it is dropped (unknown), and
    // at once rather than at its deadline.
    let in_flight = {
        let a = a.clone();
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = a
                .send(
                    "dl-b",
                    Envelope::new("slow", "s", vec![], deadline_in(20_000)),
                )
                .await;
            (outcome, sent.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.shutdown().await;
    let (outcome, after) = in_flight.await.unwrap();
    assert!(
        matches!(outcome, Err(TransportError::Dropped { .. })),
        "{outcome:?}"
    );
    assert!(after < Duration::from_secs(5), "answered after {after:?}");
    assert!(!a.has_direct_link("dl-b"));
    // With no link either way, nothing is sent: not applied, safe to try elsewhere.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let sent = a
                .send("dl-b", Envelope::new("cart", "c", vec![], deadline_in(500)))
                .await;
            matches!(sent, Err(TransportError::NotConnected { .. }))
        })
        .await
    );

    // b comes back on the same address: a new direct link is made and used.
    let b = start("dl-b", b_addr, COOKIE).await;
    assert!(
        direct_link_made(&a, "dl-b").await,
        "no direct link to the restarted b"
    );
    assert_eq!(echo(&a, "dl-b", "2").await, "dl-b:cart/c:2");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_but_never_answers_is_reported_unreachable() {
    // A black hole: accepts TCP connections and never speaks (a hung process looks the same
    // to a new link).
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = {
        let held = held.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = hole.accept().await {
                held.lock().unwrap().push(socket);
            }
        })
    };
    let a = start("bh-a", free_addr(), COOKIE).await;
    let peers = StaticPeers::new(vec![peer("bh-hung", 1, hole_addr)]);
    let started = Instant::now();
    let _maintenance = a.maintain(peers.clone());
    assert!(
        eventually(Duration::from_secs(10), || async {
            peers.reports().contains(&("bh-hung".to_owned(), false))
        })
        .await
    );
    eprintln!(
        "transport: a silent peer was reported unreachable after {:?}",
        started.elapsed()
    );
    assert!(!a.is_connected("bh-hung").await);
    assert!(
        peers.refused().is_empty(),
        "a hung peer is no crash: {:?}",
        peers.refused()
    );
    holder.abort();
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_link_is_retried_at_once_and_a_refusing_port_is_crash_evidence() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    // A slow tick: only the link events and the refused retries can act within the test.
    let mut config = TransportConfig::new("cr-a", a_addr, COOKIE);
    config.maintain_interval = Duration::from_secs(30);
    let a = Transport::start(
        config,
        clock(),
        Arc::new(Echo {
            node: "cr-a".to_owned(),
        }),
    )
    .await
    .expect("transport starts");
    let b = start("cr-b", b_addr, COOKIE).await;
    let peers = StaticPeers::new(vec![peer("cr-b", 7, b_addr)]);
    let _maintenance = a.maintain(peers.clone());
    assert!(
        eventually(Duration::from_secs(10), || a.is_connected("cr-b")).await,
        "the first tick links a to b"
    );
    assert!(peers.refused().is_empty());

    // b's node server goes away: its kernel closes the link and refuses new ones.
    let closed_at = Instant::now();
    b.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            !peers.refused().is_empty()
        })
        .await,
        "a refusing port was never reported"
    );
    let (node, incarnation, at) = peers.refused()[0].clone();
    assert_eq!((node.as_str(), incarnation), ("cr-b", 7));
    let after = at.duration_since(closed_at);
    eprintln!("transport: a closed peer's refusal reported {after:?} after it closed");
    assert!(
        after < Duration::from_secs(3),
        "reported {after:?} after the close: not at once"
    );
    // While it refuses, it is retried (and reported) well within one slow tick.
    assert!(
        eventually(Duration::from_secs(5), || async {
            peers.refused().len() >= 3
        })
        .await,
        "{:?}",
        peers.refused()
    );

    // Back on the same address: a connection succeeds and is reported.
    let b = start("cr-b", b_addr, COOKIE).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            peers.connected.lock().unwrap().contains(&"cr-b".to_owned())
        })
        .await,
        "the connection to the restarted peer was not reported"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_with_port_zero_is_no_crash_evidence() {
    let a = start("un-a", free_addr(), COOKIE).await;
    // The kernel refuses port 0, but it names no listener that could have closed. (An
    // unroutable address is not tried here: whether it times out, is unreachable or is
    // refused by a firewall depends on the machine; the store arbitrates the last case.)
    let peers = StaticPeers::new(vec![peer("un-zero", 1, "127.0.0.1:0")]);
    let _maintenance = a.maintain(peers.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        peers.refused().is_empty(),
        "no refusal from a silent address: {:?}",
        peers.refused()
    );
    a.shutdown().await;
}
