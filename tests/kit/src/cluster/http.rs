//! Talking to one node over HTTP: [`Api`] (JSON requests to one base URL) and [`Answer`]
//! (a response reduced to what callers look at), and reading its `/metrics`.

use std::time::Duration;

use serde_json::Value;

use super::process::NodeProcess;

/// A JSON-over-HTTP client for one node.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base: String,
}

/// A response, reduced to what tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// Assert a problem+json answer with `status`; returns its detail.
    pub fn expect_problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        self.body["detail"].as_str().expect("detail").to_owned()
    }
}

impl Api {
    pub fn new(node: &NodeProcess) -> Self {
        crate::install_crypto_provider();
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: node.base.clone(),
        }
    }

    /// A client for `base` (any node, any address) sending through `client`.
    pub fn with_client(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)))
            .await
    }

    /// A PUT that reports a transport failure instead of panicking (for loads that run
    /// into a kill).
    pub async fn put(&self, path: &str, body: &Value) -> Result<Answer, reqwest::Error> {
        self.try_send(self.client.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Send raw bytes with a content type, for malformed-input tests.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        self.try_send(request)
            .await
            .expect("request reaches the node")
    }

    pub async fn try_send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            content_type,
            body,
            headers,
        })
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, 200);
        answer.body.as_str().unwrap_or_default().to_owned()
    }

    /// Create a guest cart; returns its id.
    pub async fn new_cart(&self) -> String {
        let answer = self.post_empty("/v1/carts").await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().expect("cart id").to_owned()
    }

    /// Add `quantity` of `sku` to `cart` (`POST /v1/carts/{cart}/items`).
    pub async fn add_item(&self, cart: &str, sku: &str, quantity: u32) -> Answer {
        self.post(
            &format!("/v1/carts/{cart}/items"),
            &serde_json::json!({"sku": sku, "quantity": quantity}),
        )
        .await
    }
}

/// The value of a Prometheus sample line `name{labels} value`, summed over matching lines.
pub fn metric_sum(metrics: &str, name: &str, label_filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|metric| metric == name)
        })
        .filter(|line| line.contains(label_filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
