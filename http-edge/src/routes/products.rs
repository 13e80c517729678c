//! `GET /v1/products` (listing, full-text search, category filter, paging, facets) and
//! `GET /v1/products/{sku}`. Admins write products through `admin_products`.
//!
//! The listing answers `{"items":[…],"total":N,"facets":{"books":2,…}}`: `total` counts the
//! matches across all pages, `facets` counts the text query's matches per category,
//! ignoring `category`. Without `q` items come in SKU order; with `q` by relevance.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use emporium_actors::Sku;
use emporium_actors::catalog::SearchQuery;

use crate::cache::CATALOG;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{ProductJson, ProductListJson, ProductListQuery};

/// Page size when the client gives none, and the most it may ask for.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// The deepest page start: paging further is a crawl, not browsing.
const MAX_OFFSET: usize = 10_000;
/// The longest search text, in characters.
const MAX_QUERY_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(list))
        .route("/v1/products/{sku}", get(read))
}

/// The listing through the read cache (`crate::cache`): one page per query string (pairs in
/// any order), until the next product change or the page's TTL.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    query: ApiQuery<ProductListQuery>,
) -> Result<Response, ApiError> {
    let cache = state.cache.clone();
    cache
        .response(CATALOG, raw.as_deref(), list_page(State(state), query))
        .await
}

pub async fn list_page(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProductListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid(emporium_actors::InvalidValue {
            field: "limit",
            expected: format!("a whole number from 1 to {MAX_LIMIT}"),
        }));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::Invalid(emporium_actors::InvalidValue {
            field: "offset",
            expected: format!("a whole number from 0 to {MAX_OFFSET}"),
        }));
    }
    let text = query.q.filter(|text| !text.trim().is_empty());
    if text
        .as_deref()
        .is_some_and(|text| text.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(ApiError::Invalid(emporium_actors::InvalidValue {
            field: "q",
            expected: format!("at most {MAX_QUERY_CHARS} characters"),
        }));
    }
    let search = SearchQuery {
        text,
        category: query.category.filter(|category| !category.is_empty()),
        offset,
        limit,
    };
    let page = state.catalog.search(&search).await?;
    Ok(Json(ProductListJson {
        items: page.items.iter().map(ProductJson::from).collect(),
        total: page.total,
        facets: &page.facets,
    })
    .into_response())
}

pub async fn read(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let sku = Sku::parse(&sku).map_err(|_| ApiError::NotFound(format!("unknown sku {sku}")))?;
    match state.catalog.get(&sku).await? {
        Some(product) => Ok(Json(ProductJson::from(&product)).into_response()),
        None => Err(ApiError::NotFound(format!("unknown sku {sku}"))),
    }
}
