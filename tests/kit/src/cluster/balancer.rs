//! Driving a cluster's members over HTTP from outside.
//!
//! - [`Balancer`]: the load balancer of the tests and benches, round robin over the nodes in
//!   rotation. A connection refused before anything was sent moves on to the next node (as
//!   a load balancer with health checks would); once a request was sent, whatever happens
//!   is its outcome ([`Exchange`], [`Reply`], [`Outcome`]: applied, not applied, unknown).
//! - [`Endpoints`]: the members' base URLs, cheap to clone into tasks, for requests to one
//!   chosen member.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::http::{Answer, Api};
use super::load::{MAX_ROUNDS, Op};

/// A node that does not accept a connection within this is treated as down by the balancer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The members' HTTP side, cheap to clone into spawned tasks (indexes as in the cluster).
#[derive(Clone)]
pub struct Endpoints {
    pub(super) http: reqwest::Client,
    pub(super) bases: Vec<String>,
}

impl Endpoints {
    /// A request to member `index`, with a bearer token and a JSON body when given.
    pub async fn request(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        self.send(index, method, path, token, body, &[]).await
    }

    /// A request with `headers` too.
    pub async fn send(
        &self,
        index: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let base = &self.bases[index];
        assert!(!base.is_empty(), "member {index} is not running");
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Api::with_client(self.http.clone(), base)
            .send(request)
            .await
    }
}

/// A client that gives up on a request after `timeout` and on a connection after 2 s.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .expect("http client")
}

/// One request and what came of it.
#[derive(Debug)]
pub struct Exchange {
    pub node: String,
    pub sent_at: Instant,
    pub done_at: Instant,
    pub reply: Reply,
}

#[derive(Debug)]
pub enum Reply {
    Answer(Answer),
    /// Sent, but no answer came back (client timeout, connection reset).
    Lost(String),
    /// No node took the connection: nothing was sent.
    NotSent(String),
}

/// What a client may conclude about a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: applied, and must stay applied.
    Acked,
    /// A definite refusal (any other status but 504, or never sent): must not be applied.
    Refused,
    /// 504 or no answer: may or may not have been applied.
    Unknown,
}

impl Exchange {
    pub fn outcome(&self) -> Outcome {
        match &self.reply {
            Reply::Answer(answer) if (200..300).contains(&answer.status) => Outcome::Acked,
            Reply::Answer(answer) if answer.status == 504 => Outcome::Unknown,
            Reply::Answer(_) | Reply::NotSent(_) => Outcome::Refused,
            Reply::Lost(_) => Outcome::Unknown,
        }
    }

    pub fn took(&self) -> Duration {
        self.done_at - self.sent_at
    }
}

/// The load balancer of the tests: round robin over the nodes in rotation.
#[derive(Clone)]
pub struct Balancer {
    http: reqwest::Client,
    targets: Arc<Mutex<Vec<(String, String)>>>,
    next: Arc<AtomicUsize>,
}

impl Balancer {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            targets: Arc::default(),
            next: Arc::default(),
        }
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put node `id` (at `base`) in rotation, replacing an earlier address of it.
    pub fn add(&self, id: &str, base: &str) {
        let mut targets = self.targets();
        targets.retain(|(node, _)| node != id);
        targets.push((id.to_owned(), base.to_owned()));
    }

    /// Take node `id` out of rotation (it is about to be stopped, or is cut off).
    pub fn remove(&self, id: &str) {
        self.targets().retain(|(node, _)| node != id);
    }

    fn pick(&self) -> Option<(String, String)> {
        let targets = self.targets();
        if targets.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some(targets[turn % targets.len()].clone())
    }

    /// Send to the next node in rotation; a connection refused (nothing sent) moves on to
    /// the next one, a few rounds at most.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Exchange {
        let sent_at = Instant::now();
        let mut refused = String::from("no node in rotation");
        for _ in 0..9 {
            let Some((node, base)) = self.pick() else {
                break;
            };
            let mut request = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(body) = body {
                request = request.json(body);
            }
            let api = Api::with_client(self.http.clone(), &base);
            let reply = match api.try_send(request).await {
                Ok(answer) => Reply::Answer(answer),
                Err(error) if error.is_connect() => {
                    refused = format!("{node}: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => Reply::Lost(format!("{error:?}")),
            };
            return Exchange {
                node,
                sent_at,
                done_at: Instant::now(),
                reply,
            };
        }
        Exchange {
            node: String::new(),
            sent_at,
            done_at: Instant::now(),
            reply: Reply::NotSent(refused),
        }
    }

    /// The same rotation through a client that gives up after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Balancer {
        Balancer {
            http: http_client(timeout),
            targets: Arc::clone(&self.targets),
            next: Arc::clone(&self.next),
        }
    }

    /// How long after `since` a read of `cart` first succeeds, reading again at once after
    /// every failure; `None` if none does within `limit`. Reads time out after 2 s (a read
    /// abandoned changes nothing), so the figure is what a client that retries would see,
    /// whether or not the node retries by itself.
    pub async fn time_until_served(
        &self,
        cart: &str,
        since: Instant,
        limit: Duration,
    ) -> Option<Duration> {
        let probe = self.with_timeout(Duration::from_secs(2));
        for _ in 0..MAX_ROUNDS {
            if since.elapsed() > limit {
                return None;
            }
            let op = probe.read_cart(cart).await;
            if op.exchange.outcome() == Outcome::Acked {
                return Some(op.exchange.done_at - since);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Add `sku` (quantity 1) to `cart`.
    pub async fn add_line(&self, cart: &str, sku: &str) -> Op {
        let body = json!({"sku": sku, "quantity": 1});
        let exchange = self
            .send(
                Method::POST,
                &format!("/v1/carts/{cart}/items"),
                Some(&body),
            )
            .await;
        Op {
            cart: cart.to_owned(),
            write: Some(sku.to_owned()),
            exchange,
        }
    }

    /// Read `cart`.
    pub async fn read_cart(&self, cart: &str) -> Op {
        let exchange = self
            .send(Method::GET, &format!("/v1/carts/{cart}"), None)
            .await;
        Op {
            cart: cart.to_owned(),
            write: None,
            exchange,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(reply: Reply) -> Exchange {
        let now = Instant::now();
        Exchange {
            node: "node-1".to_owned(),
            sent_at: now,
            done_at: now,
            reply,
        }
    }

    fn answer(status: u16) -> Reply {
        Reply::Answer(Answer {
            status,
            content_type: String::new(),
            body: Value::Null,
            headers: reqwest::header::HeaderMap::new(),
        })
    }

    #[test]
    fn only_a_2xx_is_applied_and_only_a_504_or_a_lost_answer_is_unknown() {
        assert_eq!(exchange(answer(201)).outcome(), Outcome::Acked);
        assert_eq!(exchange(answer(503)).outcome(), Outcome::Refused);
        assert_eq!(exchange(answer(409)).outcome(), Outcome::Refused);
        assert_eq!(exchange(answer(504)).outcome(), Outcome::Unknown);
        assert_eq!(
            exchange(Reply::Lost("reset".into())).outcome(),
            Outcome::Unknown
        );
        assert_eq!(
            exchange(Reply::NotSent("refused".into())).outcome(),
            Outcome::Refused
        );
    }

    #[tokio::test]
    async fn the_balancer_turns_over_the_nodes_in_rotation() {
        let balancer = Balancer::new(http_client(Duration::from_secs(1)));
        balancer.add("a", "http://a");
        balancer.add("b", "http://b");
        balancer.add("a", "http://a2");
        let picks: Vec<String> = (0..4)
            .filter_map(|_| balancer.pick())
            .map(|(_, base)| base)
            .collect();
        assert_eq!(picks, ["http://b", "http://a2", "http://b", "http://a2"]);
        balancer.remove("b");
        assert_eq!(balancer.pick().map(|(id, _)| id).as_deref(), Some("a"));
        balancer.remove("a");
        let sent = balancer.send(Method::GET, "/", None).await;
        assert!(matches!(sent.reply, Reply::NotSent(_)), "{sent:?}");
    }
}
