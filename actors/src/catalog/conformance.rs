//! The conformance suite of the [`SearchIndex`] port: one executable copy of the contract
//! written on the port, run by the in-memory twin's unit tests and by every adapter's own
//! tests (feature `conformance`).
//!
//! - [`suite`]: upsert, SKU-ordered listing, category filter, paging, word matching,
//!   facets and replace-by-SKU. Every index passes it.
//! - [`ranking`]: relevance order for a text query. Only ranking indexes run it (the
//!   in-memory twin lists matches in SKU order).
//!
//! Each function wants a fresh, empty index.

use std::collections::{BTreeMap, BTreeSet};

use super::{Product, SearchIndex, SearchPage, SearchQuery};
use crate::values::{Currency, Sku};

/// A product with a fixed price; only the searchable fields vary.
pub fn product(sku: &str, name: &str, description: &str, category: &str) -> Product {
    Product {
        sku: Sku::parse(sku).expect("a valid test SKU"),
        name: name.to_owned(),
        description: description.to_owned(),
        price_cents: 1_000,
        currency: Currency::default(),
        category: category.to_owned(),
        attributes: BTreeMap::new(),
    }
}

fn query(text: Option<&str>, category: Option<&str>, offset: usize, limit: usize) -> SearchQuery {
    SearchQuery {
        text: text.map(str::to_owned),
        category: category.map(str::to_owned),
        offset,
        limit,
    }
}

async fn search(index: &dyn SearchIndex, query: &SearchQuery) -> SearchPage {
    match index.search(query).await {
        Ok(page) => page,
        Err(error) => panic!("search {query:?}: {error}"),
    }
}

fn skus(page: &SearchPage) -> Vec<&str> {
    page.items
        .iter()
        .map(|product| product.sku.as_str())
        .collect()
}

fn sku_set(page: &SearchPage) -> BTreeSet<&str> {
    page.items
        .iter()
        .map(|product| product.sku.as_str())
        .collect()
}

fn facets(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .map(|(category, count)| ((*category).to_owned(), *count))
        .collect()
}

/// The catalog the suite starts from, given in an order that is not SKU order.
fn catalog() -> Vec<Product> {
    vec![
        product(
            "C-2",
            "Cotton Tote Bag",
            "A tote for carrying books.",
            "books",
        ),
        product(
            "A-1",
            "Black T-shirt",
            "Organic cotton crew-neck tee.",
            "apparel",
        ),
        product("B-2", "Cast Iron Pan", "A pre-seasoned skillet.", "kitchen"),
        product(
            "A-2",
            "Grey Hoodie",
            "Heavyweight fleece hoodie with a pocket.",
            "apparel",
        ),
        product(
            "C-1",
            "The Rust Book",
            "A printed edition of the Rust programming language book.",
            "books",
        ),
        product(
            "B-1",
            "Ceramic Mug",
            "Stoneware mug, dishwasher safe.",
            "kitchen",
        ),
    ]
}

/// The contract every index meets. `index` must be empty.
pub async fn suite(index: &dyn SearchIndex) {
    // Empty.
    assert_eq!(index.len().await.expect("len"), 0);
    assert!(index.is_empty().await.expect("is_empty"));
    let empty = search(index, &query(None, None, 0, 10)).await;
    assert_eq!(empty, SearchPage::default(), "an empty index finds nothing");

    index.upsert_many(&catalog()).await.expect("upsert_many");
    assert_eq!(index.len().await.expect("len"), 6);
    assert!(!index.is_empty().await.expect("is_empty"));
    let all_facets = facets(&[("apparel", 2), ("books", 2), ("kitchen", 2)]);

    // A listing comes in SKU order, with facets over everything.
    let all = search(index, &query(None, None, 0, 100)).await;
    assert_eq!(skus(&all), ["A-1", "A-2", "B-1", "B-2", "C-1", "C-2"]);
    assert_eq!(all.total, 6);
    assert_eq!(all.facets, all_facets);
    let tote = all
        .items
        .iter()
        .find(|product| product.sku.as_str() == "C-2")
        .expect("C-2 listed");
    assert_eq!(tote, &catalog()[0], "an item comes back as it was upserted");

    // The category filter narrows items and total, never the facets.
    let kitchen = search(index, &query(None, Some("kitchen"), 0, 100)).await;
    assert_eq!(skus(&kitchen), ["B-1", "B-2"]);
    assert_eq!(kitchen.total, 2);
    assert_eq!(
        kitchen.facets, all_facets,
        "facets ignore the category filter"
    );
    let none = search(index, &query(None, Some("garden"), 0, 100)).await;
    assert_eq!((none.items.len(), none.total), (0, 0));
    assert_eq!(none.facets, all_facets);
    let prefix = search(index, &query(None, Some("kitch"), 0, 100)).await;
    assert_eq!(prefix.total, 0, "the category filter is an exact match");

    // Paging: pages add up to the listing, the total does not depend on the page.
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let page = search(index, &query(None, None, offset, 2)).await;
        assert_eq!(page.total, 6, "offset {offset}");
        assert_eq!(page.facets, all_facets, "offset {offset}");
        assert_eq!(page.items.len(), 2, "offset {offset}");
        paged.extend(page.items);
    }
    assert_eq!(paged, all.items, "pages concatenate to the listing");
    for offset in [6, 1_000] {
        let past = search(index, &query(None, None, offset, 2)).await;
        assert_eq!((past.items.len(), past.total), (0, 6), "offset {offset}");
    }
    let kitchen_page = search(index, &query(None, Some("kitchen"), 1, 1)).await;
    assert_eq!((skus(&kitchen_page), kitchen_page.total), (vec!["B-2"], 2));
    let counted = search(index, &query(None, None, 0, 0)).await;
    assert_eq!(
        (counted.items.len(), counted.total),
        (0, 6),
        "limit 0 counts"
    );
    assert_eq!(counted.facets, all_facets);

    // Text: words of the name or the description, any case.
    for text in ["cotton", "COTTON", "Cotton!"] {
        let cotton = search(index, &query(Some(text), None, 0, 10)).await;
        assert_eq!(sku_set(&cotton), BTreeSet::from(["A-1", "C-2"]), "{text:?}");
        assert_eq!(cotton.total, 2, "{text:?}");
        assert_eq!(
            cotton.facets,
            facets(&[("apparel", 1), ("books", 1)]),
            "{text:?}"
        );
    }
    let by_name = search(index, &query(Some("mug"), None, 0, 10)).await;
    assert_eq!(skus(&by_name), ["B-1"], "a name word");
    let by_description = search(index, &query(Some("Dishwasher"), None, 0, 10)).await;
    assert_eq!(skus(&by_description), ["B-1"], "a description word");
    let hyphenated = search(index, &query(Some("t-shirt"), None, 0, 10)).await;
    assert_eq!(skus(&hyphenated), ["A-1"], "punctuation splits words");

    // Text and category: the filter narrows the items, the facets follow the text only.
    let cotton_books = search(index, &query(Some("cotton"), Some("books"), 0, 10)).await;
    assert_eq!(skus(&cotton_books), ["C-2"]);
    assert_eq!(cotton_books.total, 1);
    assert_eq!(cotton_books.facets, facets(&[("apparel", 1), ("books", 1)]));

    // Every word must match, in the name or the description.
    let both = search(index, &query(Some("rust edition"), None, 0, 10)).await;
    assert_eq!(
        skus(&both),
        ["C-1"],
        "one word in the name, one in the description"
    );
    let nowhere = search(index, &query(Some("cotton hoodie"), None, 0, 10)).await;
    assert_eq!(nowhere.total, 0, "no product has both words");
    assert!(nowhere.facets.is_empty(), "no facets without matches");
    let unknown = search(index, &query(Some("zeppelin"), None, 0, 10)).await;
    assert_eq!((unknown.items.len(), unknown.total), (0, 0));
    let no_words = search(index, &query(Some("-- !"), None, 0, 10)).await;
    assert_eq!(no_words.total, 0, "a text without words matches nothing");

    // Paging a text query: pages do not overlap and cover the matches.
    let first = search(index, &query(Some("cotton"), None, 0, 1)).await;
    let second = search(index, &query(Some("cotton"), None, 1, 1)).await;
    assert_eq!((first.total, second.total), (2, 2));
    let mut pages: Vec<&str> = skus(&first);
    pages.extend(skus(&second));
    pages.sort_unstable();
    assert_eq!(pages, ["A-1", "C-2"]);

    // An upsert replaces the product with the same SKU: old words, old category gone.
    let linen = product("A-1", "Linen Shirt", "Breathable linen.", "summer");
    index.upsert(&linen).await.expect("upsert");
    assert_eq!(index.len().await.expect("len"), 6, "replaced, not added");
    let listing = search(index, &query(None, None, 0, 100)).await;
    assert_eq!(skus(&listing), ["A-1", "A-2", "B-1", "B-2", "C-1", "C-2"]);
    assert_eq!(listing.items[0], linen);
    assert_eq!(
        listing.facets,
        facets(&[("apparel", 1), ("books", 2), ("kitchen", 2), ("summer", 1)])
    );
    let cotton = search(index, &query(Some("cotton"), None, 0, 10)).await;
    assert_eq!(skus(&cotton), ["C-2"], "the old description is forgotten");
    let shirt = search(index, &query(Some("shirt"), None, 0, 10)).await;
    assert_eq!(skus(&shirt), ["A-1"]);
    let apparel = search(index, &query(None, Some("apparel"), 0, 10)).await;
    assert_eq!(skus(&apparel), ["A-2"], "the old category is forgotten");

    // Within one batch, the last product of a SKU wins.
    index
        .upsert_many(&[
            product("D-1", "Desk Lamp", "Warm light.", "home"),
            product("D-1", "Floor Lamp", "Tall light.", "home"),
        ])
        .await
        .expect("upsert_many");
    assert_eq!(index.len().await.expect("len"), 7);
    let lamp = search(index, &query(Some("lamp"), None, 0, 10)).await;
    assert_eq!(
        lamp.items,
        [product("D-1", "Floor Lamp", "Tall light.", "home")]
    );
    let desk = search(index, &query(Some("desk"), None, 0, 10)).await;
    assert_eq!(desk.total, 0);
}

/// Relevance: a product whose name has the word ranks above one whose longer description
/// mentions it once, whatever their SKU order; equal scores keep SKU order. `index` must be
/// empty.
pub async fn ranking(index: &dyn SearchIndex) {
    index
        .upsert_many(&[
            product(
                "R-1",
                "Plain Notebook",
                "A5 notebook with a leather cover, sewn by hand in a small workshop.",
                "stationery",
            ),
            product(
                "R-2",
                "Leather Wallet",
                "Slim wallet with six card slots.",
                "accessories",
            ),
            product("R-3", "Pencil", "Graphite.", "stationery"),
        ])
        .await
        .expect("upsert_many");
    let leather = search(index, &query(Some("leather"), None, 0, 10)).await;
    assert_eq!(skus(&leather), ["R-2", "R-1"], "the name match ranks first");
    assert_eq!(leather.total, 2);

    index
        .upsert_many(&[
            product("R-5", "Blue Pencil", "Graphite.", "stationery"),
            product("R-4", "Blue Pencil", "Graphite.", "stationery"),
        ])
        .await
        .expect("upsert_many");
    let blue = search(index, &query(Some("blue"), None, 0, 10)).await;
    assert_eq!(skus(&blue), ["R-4", "R-5"], "equal scores in SKU order");
}
