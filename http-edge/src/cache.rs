//! Read cache for whole JSON responses (catalog listings and searches).
//!
//! A cached page is the serialized body of a `200` answer, kept for a short TTL under a key
//! made of its *space* (`catalog`), the space's **generation** and the normalized query
//! string. A write to the space starts a new generation ([`ReadCache::invalidate`]): pages of
//! older generations are never served again, on any node sharing the store, and expire on
//! their own. So a listing is never older than the last acknowledged product change (once
//! it reached the node's index, see below), and never older than the TTL otherwise.
//!
//! Catalog writes invalidate by themselves: [`after_catalog_write`] starts a new
//! catalog generation after every successful write under [`CATALOG_WRITE_PATHS`], so admin
//! routes need no cache code. Writes made through *other* nodes reach this node's search
//! index as `ProductChanged` events (`emporium_actors::catalog::SearchProjection`), and the
//! node starts a new catalog generation after each batch that changed the index. So with
//! [`LocalPages`] too, and with a shared store where another node may have cached a page
//! computed from its index before the change reached it, a listing is never older than the
//! last product change that every node's projection has indexed.
//!
//! **Port.** [`PageStore`] holds generations and pages: shared by every node (Redis, in
//! `emporium-redis`) or in this process ([`LocalPages`]). When a shared store is unavailable
//! the cache is bypassed (the page is computed, not stored); a generation bump that failed is
//! retried before the next lookup of its space, so a write made while the store was down
//! still invalidates once it is back.
//!
//! **Premise.** Nodes sharing a store serve each other's pages, so they must compute the same
//! page for the same generation: the nodes of one shop, with one catalog. (Two shops sharing
//! one Redis need two prefixes.)

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::limits::Unavailable;
use crate::problem::ApiError;
use crate::state::AppState;

/// The catalog's space: product listings and searches.
pub const CATALOG: &str = "catalog";

/// Successful writes under these paths change the catalog.
pub const CATALOG_WRITE_PATHS: &[&str] = &["/v1/admin/products", "/v1/admin/catalog"];

/// How long a page is served at most.
pub const DEFAULT_PAGE_TTL: Duration = Duration::from_secs(30);

/// Queries longer than this are not cached (their key would be as long).
const MAX_KEY_BYTES: usize = 1024;
/// Bodies larger than this are not cached.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Most pages the in-process store keeps.
const MAX_LOCAL_PAGES: usize = 4096;

/// The response header telling whether a page came from the cache.
pub const CACHE_HEADER: &str = "x-cache";

/// A space's current generation and the page stored under a key for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub generation: u64,
    pub body: Option<Bytes>,
}

/// Where pages and generations live.
///
/// Contract: [`lookup`](Self::lookup) reads the generation and the page for it at once (one
/// round trip for a shared store); [`store`](Self::store) keeps a page for `ttl` under the
/// generation it was computed for (a page stored for an older generation is simply never
/// read); [`bump`](Self::bump) starts a new generation, atomically across nodes.
#[async_trait::async_trait]
pub trait PageStore: Send + Sync + 'static {
    async fn lookup(&self, space: &str, key: &str) -> Result<Lookup, Unavailable>;
    async fn store(
        &self,
        space: &str,
        generation: u64,
        key: &str,
        body: Bytes,
        ttl: Duration,
    ) -> Result<(), Unavailable>;
    async fn bump(&self, space: &str) -> Result<u64, Unavailable>;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct LocalState {
    generations: HashMap<String, u64>,
    /// `(space, generation, key)` to the body and when it expires.
    pages: HashMap<(String, u64, String), (Bytes, Instant)>,
}

/// In-process pages: this node's own.
#[derive(Default)]
pub struct LocalPages {
    state: Mutex<LocalState>,
}

#[async_trait::async_trait]
impl PageStore for LocalPages {
    async fn lookup(&self, space: &str, key: &str) -> Result<Lookup, Unavailable> {
        let state = lock(&self.state);
        let generation = state.generations.get(space).copied().unwrap_or(0);
        let body = state
            .pages
            .get(&(space.to_owned(), generation, key.to_owned()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(body, _)| body.clone());
        Ok(Lookup { generation, body })
    }

    async fn store(
        &self,
        space: &str,
        generation: u64,
        key: &str,
        body: Bytes,
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state.generations.get(space).copied().unwrap_or(0) != generation {
            return Ok(());
        }
        if state.pages.len() >= MAX_LOCAL_PAGES {
            state.pages.retain(|_, (_, expires)| *expires > now);
            if state.pages.len() >= MAX_LOCAL_PAGES {
                state.pages.clear();
            }
        }
        state.pages.insert(
            (space.to_owned(), generation, key.to_owned()),
            (body, now + ttl),
        );
        Ok(())
    }

    async fn bump(&self, space: &str) -> Result<u64, Unavailable> {
        let mut state = lock(&self.state);
        let generation = state.generations.entry(space.to_owned()).or_insert(0);
        *generation += 1;
        let generation = *generation;
        state
            .pages
            .retain(|(page_space, _, _), _| page_space != space);
        Ok(generation)
    }
}

/// The query string as a cache key: pairs sorted by name (stably: repeated names keep their
/// order), so `?a=1&b=2` and `?b=2&a=1` share a page. `None` when too long to cache.
pub fn normalized_query(query: Option<&str>) -> Option<String> {
    let mut pairs: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .collect();
    pairs.sort_by_key(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name));
    let key = pairs.join("&");
    (key.len() <= MAX_KEY_BYTES).then_some(key)
}

/// The edge's read cache.
#[derive(Clone)]
pub struct ReadCache {
    store: Option<Arc<dyn PageStore>>,
    ttl: Duration,
    /// Spaces whose last bump failed: bumped before their next lookup.
    pending_bumps: Arc<Mutex<HashSet<String>>>,
}

impl ReadCache {
    /// No caching: every page is computed.
    pub fn off() -> Self {
        Self {
            store: None,
            ttl: DEFAULT_PAGE_TTL,
            pending_bumps: Arc::default(),
        }
    }

    pub fn new(store: Arc<dyn PageStore>, ttl: Duration) -> Self {
        Self {
            store: Some(store),
            ttl,
            pending_bumps: Arc::default(),
        }
    }

    /// This process's own pages.
    pub fn local(ttl: Duration) -> Self {
        Self::new(Arc::new(LocalPages::default()), ttl)
    }

    /// The page for `query` in `space`: from the store, or computed by `compute` and stored
    /// when it is a plain `200` JSON answer. Errors are never cached.
    pub async fn response(
        &self,
        space: &str,
        query: Option<&str>,
        compute: impl Future<Output = Result<Response, ApiError>>,
    ) -> Result<Response, ApiError> {
        let (Some(store), Some(key)) = (&self.store, normalized_query(query)) else {
            return Ok(tagged(compute.await?, "bypass"));
        };
        if !self.bump_pending(store.as_ref(), space).await {
            return Ok(tagged(compute.await?, "bypass"));
        }
        let lookup = match store.lookup(space, &key).await {
            Ok(lookup) => lookup,
            Err(Unavailable) => return Ok(tagged(compute.await?, "bypass")),
        };
        if let Some(body) = lookup.body {
            let mut response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            response
                .headers_mut()
                .insert(CACHE_HEADER, HeaderValue::from_static("hit"));
            count("hit");
            return Ok(response);
        }
        let response = compute.await?;
        let Some((response, body)) = cacheable(response).await else {
            return Ok(uncacheable());
        };
        let Some(body) = body else {
            return Ok(tagged(response, "bypass"));
        };
        // A failed store only costs the next request a miss.
        let _ = store
            .store(space, lookup.generation, &key, body, self.ttl)
            .await;
        Ok(tagged(response, "miss"))
    }

    /// Start a new generation of `space` (remembered and retried if the store is down).
    pub async fn invalidate(&self, space: &str) {
        let Some(store) = &self.store else {
            return;
        };
        if store.bump(space).await.is_err() {
            lock(&self.pending_bumps).insert(space.to_owned());
        }
    }

    /// Retry a failed bump of `space`; `false` while it still fails.
    async fn bump_pending(&self, store: &dyn PageStore, space: &str) -> bool {
        if !lock(&self.pending_bumps).contains(space) {
            return true;
        }
        if store.bump(space).await.is_err() {
            return false;
        }
        lock(&self.pending_bumps).remove(space);
        true
    }
}

fn count(result: &'static str) {
    metrics::counter!("emporium_cache_requests_total", "result" => result).increment(1);
}

fn tagged(mut response: Response, result: &'static str) -> Response {
    count(result);
    response
        .headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(result));
    response
}

/// A response whose body could not be read back: nothing sensible to send.
fn uncacheable() -> Response {
    ApiError::Internal("a computed page could not be read back".to_owned()).into_response()
}

/// Read back a computed response: the response to send and, when it is a plain `200` JSON
/// page (no header but its content type and length) of bounded size, its body to store.
async fn cacheable(response: Response) -> Option<(Response, Option<Bytes>)> {
    let plain = response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
        && response
            .headers()
            .keys()
            .all(|name| name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH);
    if !plain {
        return Some((response, None));
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(bytes) => Some((
            Response::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        )),
        // Over the size bound (the body is consumed): the caller answers 500. Pages are far
        // below the bound (at most 100 products per page).
        Err(_) => None,
    }
}

/// Whether `request` writes the catalog (a write under [`CATALOG_WRITE_PATHS`]): its success
/// must drop every node's cached listings ([`after_catalog_write`]).
pub fn writes_catalog(request: &Request) -> bool {
    !request.method().is_safe()
        && CATALOG_WRITE_PATHS
            .iter()
            .any(|prefix| request.uri().path().starts_with(prefix))
}

/// After a successful catalog write, start a new catalog generation, so every node's cached
/// listings are dropped at once.
pub async fn after_catalog_write(state: &AppState, status: StatusCode) {
    if status.is_success() {
        state.cache.invalidate(CATALOG).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &'static str) -> Result<Response, ApiError> {
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from_static(body.as_bytes()),
        )
            .into_response())
    }

    async fn body(response: Response) -> (String, String) {
        let tag = response.headers()[CACHE_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (tag, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn pages_are_cached_until_a_new_generation_or_the_ttl() {
        let cache = ReadCache::local(Duration::from_secs(30));
        let first = cache
            .response(CATALOG, Some("q=mug&limit=5"), async { page("1") })
            .await
            .unwrap();
        assert_eq!(body(first).await, ("miss".into(), "1".into()));
        let again = cache
            .response(CATALOG, Some("limit=5&q=mug"), async { page("2") })
            .await
            .unwrap();
        assert_eq!(body(again).await, ("hit".into(), "1".into()), "same query");
        cache.invalidate(CATALOG).await;
        let after = cache
            .response(CATALOG, Some("q=mug&limit=5"), async { page("3") })
            .await
            .unwrap();
        assert_eq!(body(after).await, ("miss".into(), "3".into()));
        tokio::time::advance(Duration::from_secs(31)).await;
        let expired = cache
            .response(CATALOG, Some("q=mug&limit=5"), async { page("4") })
            .await
            .unwrap();
        assert_eq!(body(expired).await, ("miss".into(), "4".into()));
    }

    #[tokio::test]
    async fn errors_and_other_answers_are_not_cached() {
        let cache = ReadCache::local(Duration::from_secs(30));
        let error = cache
            .response(CATALOG, Some("limit=0"), async {
                Err(ApiError::BadRequest("no".into()))
            })
            .await;
        assert!(error.is_err());
        let with_header = cache
            .response(CATALOG, Some("limit=1"), async {
                let mut response = page("x")?;
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(response)
            })
            .await
            .unwrap();
        assert_eq!(body(with_header).await.0, "bypass");
        let computed = cache
            .response(CATALOG, Some("limit=1"), async { page("y") })
            .await
            .unwrap();
        assert_eq!(body(computed).await, ("miss".into(), "y".into()));
    }

    #[test]
    fn query_keys() {
        assert_eq!(normalized_query(None).as_deref(), Some(""));
        assert_eq!(
            normalized_query(Some("q=a&category=b&&offset=0")).as_deref(),
            Some("category=b&offset=0&q=a")
        );
        assert_eq!(
            normalized_query(Some("c=2&a=1&c=1")).as_deref(),
            Some("a=1&c=2&c=1"),
            "repeated names keep their order"
        );
        assert_eq!(normalized_query(Some(&"q=x".repeat(400))), None);
    }
}
