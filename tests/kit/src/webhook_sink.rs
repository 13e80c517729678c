//! An HTTP/1.1 server on `127.0.0.1:0` that records every request: what webhook clients'
//! tests post to.
//!
//! Each call is kept with its method, path (with query), headers and body, and answered
//! `200 OK`; [`WebhookSink::fail_next`] makes the next calls answer `500` instead (still
//! recorded), to exercise a client's retry classification.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCall {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The status it was answered.
    pub status: u16,
}

impl WebhookCall {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The running sink. It serves until the runtime stops.
pub struct WebhookSink {
    pub addr: SocketAddr,
    calls: Mutex<Vec<WebhookCall>>,
    failures_left: AtomicUsize,
    count: watch::Sender<usize>,
}

impl WebhookSink {
    /// Listen on a free loopback port.
    pub async fn start() -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Arc::new(Self {
            addr: listener.local_addr()?,
            calls: Mutex::new(Vec::new()),
            failures_left: AtomicUsize::new(0),
            count: watch::channel(0).0,
        });
        let serving = Arc::clone(&sink);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let sink = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let sink = Arc::clone(&sink);
                        async move { Ok::<_, Infallible>(sink.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(sink)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer `500` to the next `count` calls.
    pub fn fail_next(&self, count: usize) {
        self.failures_left.store(count, Ordering::SeqCst);
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<WebhookCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait until at least `count` calls arrived; all of them, or `None` on timeout.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Option<Vec<WebhookCall>> {
        let mut seen = self.count.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|seen| *seen >= count))
            .await
            .ok()?
            .ok()?;
        Some(self.calls())
    }

    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        let status = if fail {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        self.record(WebhookCall {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body,
            status: status.as_u16(),
        });
        let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
        *response.status_mut() = status;
        response
    }

    fn record(&self, call: WebhookCall) {
        let count = {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            calls.push(call);
            calls.len()
        };
        self.count.send_replace(count);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn post(sink: &WebhookSink, body: &str) -> String {
        let mut stream = TcpStream::connect(sink.addr).await.unwrap();
        let request = format!(
            "POST /hook?x=1 HTTP/1.1\r\nHost: sink\r\nIdempotency-Key: k-1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn calls_are_recorded_and_failures_answer_500_then_200() {
        let sink = WebhookSink::start().await.unwrap();
        sink.fail_next(1);
        assert!(post(&sink, "{}").await.starts_with("HTTP/1.1 500"));
        assert!(post(&sink, "{\"a\":1}").await.starts_with("HTTP/1.1 200"));
        let calls = sink.wait_for(2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(calls[0].status, 500);
        assert_eq!(calls[1].method, "POST");
        assert_eq!(calls[1].path, "/hook?x=1");
        assert_eq!(calls[1].header("idempotency-key"), Some("k-1"));
        assert_eq!(calls[1].body, Bytes::from_static(b"{\"a\":1}"));
    }
}
