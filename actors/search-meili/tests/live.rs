//! The port's conformance suite against a real Meilisearch, when `MEILI_URL` names one
//! (`MEILI_URL=http://127.0.0.1:7700 MEILI_KEY=… cargo test -p emporium-search-meili --test
//! live`). Each suite runs in its own index, named uniquely and deleted afterwards, also
//! when the suite fails. Without `MEILI_URL` each test says it is skipped and returns.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use emporium_actors::catalog::conformance::{product, ranking, suite};
use emporium_actors::catalog::{SearchIndex, SearchQuery};
use emporium_search_meili::MeiliIndex;
use futures_util::FutureExt;

/// The server's URL and key, or `None` (after saying so) when `MEILI_URL` is unset.
fn server(test: &str) -> Option<(String, Option<String>)> {
    match std::env::var("MEILI_URL") {
        Ok(url) if !url.is_empty() => Some((url, std::env::var("MEILI_KEY").ok())),
        _ => {
            println!("{test}: skipped: MEILI_URL not set");
            None
        }
    }
}

/// Run `check` on a fresh index of its own, then delete the index whatever happened.
async fn with_fresh_index<F, Fut>(test: &str, check: F)
where
    F: FnOnce(MeiliIndex) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some((url, key)) = server(test) else {
        return;
    };
    let name = format!("emporium_test_{test}_{}", uuid::Uuid::new_v4().simple());
    let index = MeiliIndex::connect(&url, key, &name).await.unwrap();
    let outcome = AssertUnwindSafe(check(index.clone())).catch_unwind().await;
    index.delete_index().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    with_fresh_index("suite", |index| async move { suite(&index).await }).await;
}

#[tokio::test]
async fn ranks_by_relevance() {
    with_fresh_index("ranking", |index| async move { ranking(&index).await }).await;
}

#[tokio::test]
async fn matches_whole_words_only() {
    with_fresh_index("words", |index| async move {
        index
            .upsert_many(&[
                product("W-1", "Cottons", "Bundled.", "fabric"),
                product("W-2", "Cotton", "Plain.", "fabric"),
                product("W-3", "Tshirt", "One word.", "apparel"),
            ])
            .await
            .unwrap();
        for (text, expected) in [
            ("cotton", vec!["W-2"]),
            ("cotto", vec![]),
            ("coton", vec![]),
            ("t shirt", vec![]),
        ] {
            let page = index
                .search(&SearchQuery {
                    text: Some(text.to_owned()),
                    limit: 10,
                    ..SearchQuery::default()
                })
                .await
                .unwrap();
            let skus: Vec<&str> = page.items.iter().map(|item| item.sku.as_str()).collect();
            assert_eq!(skus, expected, "{text:?}");
            assert_eq!(page.total, expected.len(), "{text:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn lists_in_byte_order_of_skus() {
    with_fresh_index("order", |index| async move {
        let skus = ["b-1", "B-2", "a.1", "A_1", "A-10", "A-1"];
        let products: Vec<_> = skus
            .iter()
            .map(|sku| product(sku, "Thing", "Stuff.", "misc"))
            .collect();
        index.upsert_many(&products).await.unwrap();
        let page = index
            .search(&SearchQuery {
                limit: 10,
                ..SearchQuery::default()
            })
            .await
            .unwrap();
        let listed: Vec<&str> = page.items.iter().map(|item| item.sku.as_str()).collect();
        let mut sorted = skus.to_vec();
        sorted.sort_unstable();
        assert_eq!(listed, sorted);
    })
    .await;
}
