//! An OTLP/HTTP trace receiver on `127.0.0.1:0`: what a node exporting spans
//! (`EMPORIUM_OTLP_ENDPOINT`) is pointed at in tests.
//!
//! It accepts `POST /v1/traces` with a protobuf `ExportTraceServiceRequest` body, answers
//! `200` with an empty `ExportTraceServiceResponse`, and records every span with its ids
//! (lowercase hex), name, attributes (as strings) and the resource attributes of its
//! batch (`service.name`, `service.instance.id`). Anything else is answered `404`, and a
//! body that does not decode `400` (and counted in [`OtlpReceiver::rejected`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One span as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The attributes of the exporting process (`service.name`, `service.instance.id`).
    pub resource: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The node that exported it (`service.instance.id`).
    pub fn node(&self) -> Option<&str> {
        self.resource.get("service.instance.id").map(String::as_str)
    }
}

/// The running receiver. It serves until the runtime stops.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    spans: Mutex<Vec<ReceivedSpan>>,
    rejected: AtomicUsize,
    count: watch::Sender<usize>,
}

impl OtlpReceiver {
    /// Listen on a free loopback port.
    pub async fn start() -> std::io::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Arc::new(Self {
            addr: listener.local_addr()?,
            spans: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
            count: watch::channel(0).0,
        });
        let serving = Arc::clone(&receiver);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let receiver = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let receiver = Arc::clone(&receiver);
                        async move { Ok::<_, Infallible>(receiver.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(receiver)
    }

    /// The base URL a node exports to (`EMPORIUM_OTLP_ENDPOINT`): `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests whose body was not an OTLP trace export.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }

    /// Wait until `done` holds for the spans received (checked at each arrival); the spans
    /// then, or `None` after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[ReceivedSpan]) -> bool,
    ) -> Option<Vec<ReceivedSpan>> {
        let mut arrivals = self.count.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let spans = self.spans();
                if done(&spans) {
                    return Some(spans);
                }
                arrivals.changed().await.ok()?;
            }
        });
        waited.await.ok().flatten()
    }

    async fn answer(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::POST || request.uri().path() != "/v1/traces" {
            return respond(StatusCode::NOT_FOUND, Bytes::new());
        }
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, Bytes::new()),
        };
        let Ok(export) = ExportTraceServiceRequest::decode(body) else {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return respond(StatusCode::BAD_REQUEST, Bytes::new());
        };
        self.record(export);
        let reply = ExportTraceServiceResponse::default().encode_to_vec();
        respond(StatusCode::OK, Bytes::from(reply))
    }

    fn record(&self, export: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for resource_spans in export.resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                received.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                });
            }
        }
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        spans.extend(received);
        self.count.send_replace(spans.len());
    }
}

fn respond(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| {
            (
                pair.key.clone(),
                pair.value.as_ref().map_or_else(String::new, text),
            )
        })
        .collect()
}

/// A scalar as text; arrays and maps in their debug form.
fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
