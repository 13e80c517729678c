//! In-process tests of the whole router: an app on the in-memory store, requests sent with
//! `tower::ServiceExt::oneshot`, tokens signed with the app's own keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use emporium_actors::Catalog;
use emporium_actors::catalog::MemoryIndex;
use emporium_actors::experiments::Experiments;
use emporium_runtime::Runtime;
use emporium_runtime::store::MemoryStore;
use tower::ServiceExt;

use crate::auth::{ROLE_ADMIN, ROLE_CUSTOMER, TokenKeys};
use crate::{AppState, EdgeLimits};

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";
/// Responses larger than this fail the test.
const MAX_BODY: usize = 1 << 20;

pub struct TestApp {
    pub state: AppState,
    router: Router,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_experiments(Experiments::default()).await
    }

    pub async fn with_experiments(experiments: Experiments) -> Self {
        let runtime = emporium_actors::register(Runtime::builder(Arc::new(MemoryStore::new())))
            .build()
            .await
            .unwrap();
        let catalog = Catalog::new(runtime.clone(), Arc::new(MemoryIndex::default()));
        let tokens = TokenKeys::new(SECRET, Duration::from_secs(600));
        let state = AppState::new(runtime, catalog, tokens).with_experiments(experiments);
        let router = crate::router(state.clone(), &EdgeLimits::default());
        Self { state, router }
    }

    /// `request`, as a client would send it.
    pub async fn send(&self, request: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(request).await.unwrap()
    }

    /// `GET uri`, with a bearer token when given: status, headers and the JSON body
    /// (`null` when empty).
    pub async fn get(
        &self,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, MAX_BODY).await.unwrap();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (parts.status, parts.headers, json)
    }
}

impl TestApp {
    /// Send `request` as it is: status, headers and the body as text.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, MAX_BODY).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    /// The response to `request` with its body unread (an event stream).
    pub async fn open(&self, request: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(request).await.unwrap()
    }
}

pub fn admin_token(state: &AppState) -> String {
    token(state, "admin-1", ROLE_ADMIN)
}

pub fn customer_token(state: &AppState, user_id: &str) -> String {
    token(state, user_id, ROLE_CUSTOMER)
}

fn token(state: &AppState, user_id: &str, role: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let email = format!("{user_id}@example.com");
    state
        .tokens
        .issue(user_id, &email, &[role.to_owned()], now)
        .unwrap()
        .0
}
