//! One span per request, named by its route template, and the request id.
//!
//! **The request id**: the client's `x-request-id` when it is a plausible id (1 to 128
//! characters among ASCII letters, digits and `-_.:+/=`), else a fresh UUID. The request
//! continues with that id in its `x-request-id` header, and the response echoes it, so a
//! client, a proxy's access log and this node's log lines name the same request.
//!
//! **The span** (`http.request`, INFO, so that every log line of the request carries the
//! id under the default filter): method, route template (never the raw path, like the
//! metrics), status, request id; `otel.name` is `METHOD /route/{template}` and a 5xx marks
//! it an error. The runtime's spans (a turn, a forwarded call) are its children, on this
//! node and — through the envelope's trace context — on the node that owns the actor.
//!
//! A 5xx is logged at ERROR in the span, as the `tower-http` trace layer this replaces did.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// Give `request` its id (in its `x-request-id` header) and its span.
pub fn begin(request: &mut Request) -> (HeaderValue, tracing::Span) {
    let id = request_id(request);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let span = request_span(request, &id);
    (id, span)
}

/// Record the answer in the request's span (a 5xx logged at ERROR) and echo the id.
pub fn finish(
    span: &tracing::Span,
    id: HeaderValue,
    started: Instant,
    mut response: Response,
) -> Response {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        tracing::error!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis(),
            "response failed"
        );
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// The client's id if it is plausible, else a new one.
fn request_id(request: &Request) -> HeaderValue {
    request
        .headers()
        .get(REQUEST_ID)
        .filter(|value| is_plausible_id(value.as_bytes()))
        .cloned()
        .unwrap_or_else(new_request_id)
}

fn is_plausible_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:+/=".contains(byte))
}

fn new_request_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // A hyphenated UUID is always a valid header value; the fallback is never taken.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

fn request_span(request: &Request, id: &HeaderValue) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = request.method().as_str();
    // Checked by `is_plausible_id` or made here: always ASCII.
    let id = id.to_str().unwrap_or_default();
    tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id = id,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;
    use crate::testing::TestApp;

    async fn get_with_id(app: &TestApp, id: Option<&[u8]>) -> (StatusCode, String) {
        let mut request = axum::http::Request::get("/v1/products/SKU-00001");
        if let Some(id) = id {
            request = request.header(REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        }
        let response = app.open(request.body(Body::empty()).unwrap()).await;
        let echoed = response.headers().get(REQUEST_ID).expect("an x-request-id");
        (response.status(), echoed.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn a_plausible_client_id_is_echoed() {
        let app = TestApp::new().await;
        for id in [
            "req-42",
            "0b7c9f2e-6d1a-4c1e-9a51-6f1e2d3c4b5a",
            "a:b/c+d=_.",
        ] {
            let (_, echoed) = get_with_id(&app, Some(id.as_bytes())).await;
            assert_eq!(echoed, id);
        }
        let longest = "x".repeat(MAX_REQUEST_ID);
        assert_eq!(get_with_id(&app, Some(longest.as_bytes())).await.1, longest);
    }

    #[tokio::test]
    async fn a_missing_or_implausible_id_is_replaced_by_a_uuid() {
        let app = TestApp::new().await;
        let too_long = "x".repeat(MAX_REQUEST_ID + 1);
        for id in [
            None,
            Some(&b""[..]),
            Some(b"two words"),
            Some(b"line\tbreak"),
            Some(b"caf\xc3\xa9"),
            Some(b"<script>"),
            Some(too_long.as_bytes()),
        ] {
            let (status, echoed) = get_with_id(&app, id).await;
            assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{id:?} -> {echoed}");
        }
        let (_, first) = get_with_id(&app, None).await;
        let (_, second) = get_with_id(&app, None).await;
        assert_ne!(first, second, "a fresh id per request");
    }
}
