//! The HTTP client under the SDK: reqwest, rustls on the aws-lc-rs provider, deadlines.
//!
//! The SDK's own client (its `reqwest` and `tls` features) would bring reqwest's `ring`
//! provider next to the aws-lc-rs one the node already has, and sends requests without
//! any deadline. This one implements the SDK's [`HttpClient`] trait instead: the same
//! requests (query strings written by `yaup`, as the SDK's client writes them, bodies as
//! the SDK serialises them, answers read by the SDK's `parse_response`), plus
//! - the API key as a default `Authorization: Bearer …` header, marked sensitive;
//! - a deadline on every request ([`REQUEST_TIMEOUT`]) and on connecting
//!   ([`CONNECT_TIMEOUT`]), so a hung server fails a search instead of holding it;
//! - for `https://`, the system's trusted roots.

use std::sync::Arc;
use std::time::Duration;

use futures_util::io::{AsyncRead, AsyncReadExt};
use meilisearch_sdk::errors::Error as SdkError;
use meilisearch_sdk::request::{HttpClient, Method, parse_response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::MeiliError;

/// The longest one request may take, from sending to the last byte of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A reqwest client configured for one Meilisearch server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
}

impl Transport {
    /// A client for `url` (checked: `http://` or `https://`), authenticating with `api_key`.
    pub fn new(url: &str, api_key: Option<&str>) -> Result<Self, MeiliError> {
        let https = match reqwest::Url::parse(url) {
            Ok(parsed) if parsed.scheme() == "https" => true,
            Ok(parsed) if parsed.scheme() == "http" => false,
            Ok(parsed) => return Err(bad_url(url, format!("scheme {:?}", parsed.scheme()))),
            Err(error) => return Err(bad_url(url, error.to_string())),
        };
        let client = reqwest::Client::builder()
            .default_headers(headers(api_key)?)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .use_preconfigured_tls(tls_config(https)?)
            .build()
            .map_err(|error| MeiliError::Client(error.to_string()))?;
        Ok(Self { client })
    }
}

fn bad_url(url: &str, reason: String) -> MeiliError {
    MeiliError::Url {
        url: url.to_owned(),
        reason: format!("{reason}; expected an http:// or https:// URL"),
    }
}

/// The `Authorization` header, when there is a key.
fn headers(api_key: Option<&str>) -> Result<HeaderMap, MeiliError> {
    let mut headers = HeaderMap::new();
    if let Some(key) = api_key {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| MeiliError::ApiKey)?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// rustls with the aws-lc-rs provider. reqwest builds a TLS configuration even for a
/// plain-HTTP client and, without one given, would look for a process-wide default
/// provider (and panic without one); the roots are only loaded when they are needed.
fn tls_config(https: bool) -> Result<rustls::ClientConfig, MeiliError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        // Unparsable certificates in the system store are skipped, as reqwest does.
        let found = rustls_native_certs::load_native_certs();
        let (_added, _skipped) = roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(MeiliError::Client(format!(
                "no trusted root certificates found for https ({:?})",
                found.errors
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| MeiliError::Client(format!("TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn verb<Q, B>(method: &Method<Q, B>) -> reqwest::Method {
    match method {
        Method::Get { .. } => reqwest::Method::GET,
        Method::Delete { .. } => reqwest::Method::DELETE,
        Method::Post { .. } => reqwest::Method::POST,
        Method::Put { .. } => reqwest::Method::PUT,
        Method::Patch { .. } => reqwest::Method::PATCH,
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> SdkError {
    SdkError::Other(Box::new(error))
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn stream_request<
        Query: Serialize + Send + Sync,
        Body: AsyncRead + Send + Sync + 'static,
        Output: DeserializeOwned + 'static,
    >(
        &self,
        url: &str,
        method: Method<Query, Body>,
        content_type: &str,
        expected_status_code: u16,
    ) -> Result<Output, SdkError> {
        let url = format!("{url}{}", yaup::to_string(method.query())?);
        let mut request = self.client.request(verb(&method), &url);
        if let Some(body) = method.into_body() {
            let mut bytes = Vec::new();
            Box::pin(body)
                .read_to_end(&mut bytes)
                .await
                .map_err(failed)?;
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(failed)?;
        let text = if text.is_empty() { "null" } else { &text };
        parse_response(status, expected_status_code, text, url)
    }

    fn is_tokio(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_http_and_https_and_refuses_other_urls() {
        assert!(Transport::new("http://127.0.0.1:7700", Some("key")).is_ok());
        // The https client needs the system's roots; a machine without any says so.
        match Transport::new("https://search.example.com", None) {
            Ok(_) => {}
            Err(MeiliError::Client(message)) => assert!(message.contains("root"), "{message}"),
            Err(other) => panic!("{other}"),
        }
        for url in ["ftp://host", "meili://host:7700", "host:7700"] {
            assert!(
                matches!(Transport::new(url, None), Err(MeiliError::Url { .. })),
                "{url}"
            );
        }
        assert!(matches!(
            Transport::new("http://h", Some("bad\nkey")),
            Err(MeiliError::ApiKey)
        ));
    }
}
