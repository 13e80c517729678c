//! The tantivy index against the port's conformance suite, ranking included, and what is
//! particular to it: accent folding, and concurrent writers and readers.

use std::collections::BTreeSet;

use emporium_actors::catalog::conformance::{product, ranking, suite};
use emporium_actors::catalog::{SearchIndex, SearchQuery};
use emporium_search_tantivy::TantivyIndex;

fn fresh() -> TantivyIndex {
    TantivyIndex::new().expect("an in-memory index")
}

fn text(text: &str) -> SearchQuery {
    SearchQuery {
        text: Some(text.to_owned()),
        limit: 10,
        ..SearchQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    suite(&fresh()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranks_by_relevance() {
    ranking(&fresh()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_accents_both_ways() {
    let index = fresh();
    index
        .upsert(&product("F-1", "Crème brûlée set", "Ramekins.", "kitchen"))
        .await
        .unwrap();
    for query in ["creme", "CRÈME", "brulee"] {
        let page = index.search(&text(query)).await.unwrap();
        assert_eq!(page.total, 1, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_all_land_and_searches_never_fail() {
    let index = fresh();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let index = index.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let sku = format!("W{writer}-{n:02}");
                    let item = product(&sku, "Widget", &format!("batch {writer}"), "parts");
                    index.upsert(&item).await.unwrap();
                    let seen = index.search(&text("widget")).await.unwrap();
                    assert!(seen.total > 0, "a write is visible once upsert returns");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(index.len().await.unwrap(), 200);
    let everything = index
        .search(&SearchQuery {
            limit: 1_000,
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    let skus: BTreeSet<String> = everything
        .items
        .iter()
        .map(|item| item.sku.to_string())
        .collect();
    assert_eq!((everything.total, skus.len()), (200, 200));
    assert_eq!(everything.facets.get("parts"), Some(&200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_offsets_and_limits_are_harmless() {
    let index = fresh();
    index
        .upsert(&product("H-1", "Hammer", "Steel.", "tools"))
        .await
        .unwrap();
    let page = index
        .search(&SearchQuery {
            offset: usize::MAX,
            limit: usize::MAX,
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (0, 1));
    let page = index
        .search(&SearchQuery {
            limit: usize::MAX,
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total), (1, 1));
}
