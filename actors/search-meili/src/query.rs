//! A port query as Meilisearch searches, and their answers as one [`SearchPage`].
//!
//! One port query is one `POST /multi-search` of up to three searches:
//! 1. *items*: the text and the category filter, `offset`/`limit`, sorted by `id` (the SKU)
//!    after relevance. Left out when the page is empty anyway (limit 0, an offset past
//!    [`MAX_TOTAL_HITS`], or a category that matches nothing);
//! 2. *count*: the same text and filter with `page: 0`, which returns no hits but an
//!    exact `totalHits` (an `offset`/`limit` search only estimates its total). Only
//!    with a category filter;
//! 3. *facets*: the text alone with `page: 0` and `facets: ["category"]`: the facet counts
//!    ignore the category filter, and its `totalHits` is the total without a filter.
//!
//! The text becomes one quoted phrase per word of [`words`] (`"usb" "c" "cable"`) with the
//! `all` matching strategy: each phrase must match exactly, which rules out prefix, typo,
//! split-word and joined-word matches whatever the index settings. A text without words
//! matches nothing and is answered without asking Meilisearch.
//!
//! Meilisearch compares filter values after folding them to lower case (and NFKD). The
//! catalog's categories are `a-z`, `0-9` and `-`, which folding leaves alone; a requested
//! category that folding would change cannot equal any of them exactly, so it matches
//! nothing here instead of matching its lower-case twin there.

use std::collections::BTreeMap;

use emporium_actors::Product;
use emporium_actors::catalog::{SearchPage, SearchQuery, words};
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::{
    MatchingStrategies, SearchQuery as MeiliQuery, SearchResults, Selectors,
};

use crate::error::MeiliError;
use crate::schema::{CATEGORY, MAX_TOTAL_HITS, PRODUCT_FIELDS, SKU_ORDER};
use crate::transport::Transport;

/// The searches one port query needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The text as quoted phrases; `None` for a listing.
    phrases: Option<String>,
    category: Category,
    /// The items to fetch as (offset, limit); `None` when the page is empty by construction.
    window: Option<(usize, usize)>,
}

/// The category filter.
#[derive(Debug, PartialEq, Eq)]
enum Category {
    Any,
    /// A filter expression.
    Exactly(String),
    /// A category no product can have.
    Nothing,
}

/// The plan of `query`; `None` when it matches nothing (a text without words).
pub(crate) fn plan(query: &SearchQuery) -> Option<Plan> {
    let phrases = match &query.text {
        None => None,
        Some(text) => {
            let quoted: Vec<String> = words(text).map(|word| format!("\"{word}\"")).collect();
            if quoted.is_empty() {
                return None;
            }
            Some(quoted.join(" "))
        }
    };
    let category = match &query.category {
        None => Category::Any,
        Some(category) if folds_to_itself(category) => Category::Exactly(filter(category)),
        Some(_) => Category::Nothing,
    };
    let window =
        (query.limit > 0 && query.offset < MAX_TOTAL_HITS && category != Category::Nothing)
            .then(|| (query.offset, query.limit.min(MAX_TOTAL_HITS - query.offset)));
    Some(Plan {
        phrases,
        category,
        window,
    })
}

/// Does Meilisearch's folding of filter values (trim, NFKD, lower case) leave `category`
/// as it is? Checked conservatively: printable ASCII without capitals or outer spaces.
fn folds_to_itself(category: &str) -> bool {
    category.trim() == category
        && category
            .bytes()
            .all(|byte| (b' '..=b'~').contains(&byte) && !byte.is_ascii_uppercase())
}

/// `category = "…"`, with `\` and `"` escaped as Meilisearch's filter syntax wants.
fn filter(category: &str) -> String {
    let escaped = category.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{CATEGORY} = \"{escaped}\"")
}

impl Plan {
    /// The searches, in the order [`Plan::page`] reads their results.
    pub(crate) fn searches<'a>(
        &'a self,
        index: &'a Index<Transport>,
    ) -> Vec<MeiliQuery<'a, Transport>> {
        let mut searches = Vec::with_capacity(3);
        if let Some((offset, limit)) = self.window {
            let mut items = self.base(index, true);
            items
                .with_offset(offset)
                .with_limit(limit)
                .with_sort(SKU_ORDER)
                .with_attributes_to_retrieve(Selectors::Some(PRODUCT_FIELDS));
            searches.push(items);
        }
        if matches!(self.category, Category::Exactly(_)) {
            let mut count = self.base(index, true);
            count.with_page(0);
            searches.push(count);
        }
        let mut facets = self.base(index, false);
        facets
            .with_page(0)
            .with_facets(Selectors::Some(&[CATEGORY]));
        searches.push(facets);
        searches
    }

    /// A search with the text, and with the category filter if `filtered`.
    fn base<'a>(
        &'a self,
        index: &'a Index<Transport>,
        filtered: bool,
    ) -> MeiliQuery<'a, Transport> {
        let mut search = MeiliQuery::new(index);
        if let Some(phrases) = &self.phrases {
            search
                .with_query(phrases)
                .with_matching_strategy(MatchingStrategies::ALL);
        }
        if let (true, Category::Exactly(filter)) = (filtered, &self.category) {
            search.with_filter(filter);
        }
        search
    }

    /// The page from the results of [`Plan::searches`], in the same order.
    pub(crate) fn page(
        &self,
        results: Vec<SearchResults<Product>>,
    ) -> Result<SearchPage, MeiliError> {
        let mut results = results.into_iter();
        let mut next = || {
            results.next().ok_or(MeiliError::Answer {
                during: "search",
                field: "result for every search",
            })
        };
        let items = match self.window {
            Some(_) => next()?.hits.into_iter().map(|hit| hit.result).collect(),
            None => Vec::new(),
        };
        let count = match self.category {
            Category::Exactly(_) => Some(total_hits(&next()?)?),
            Category::Any | Category::Nothing => None,
        };
        let facets = next()?;
        let total = match self.category {
            Category::Any => total_hits(&facets)?,
            Category::Exactly(_) => count.unwrap_or_default(),
            Category::Nothing => 0,
        };
        Ok(SearchPage {
            items,
            total,
            facets: category_counts(facets),
        })
    }
}

fn total_hits(results: &SearchResults<Product>) -> Result<usize, MeiliError> {
    results.total_hits.ok_or(MeiliError::Answer {
        during: "search",
        field: "totalHits",
    })
}

/// The category counts of a facets search, without zero counts.
fn category_counts(results: SearchResults<Product>) -> BTreeMap<String, usize> {
    results
        .facet_distribution
        .and_then(|mut facets| facets.remove(CATEGORY))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(
        text: Option<&str>,
        category: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> SearchQuery {
        SearchQuery {
            text: text.map(str::to_owned),
            category: category.map(str::to_owned),
            offset,
            limit,
        }
    }

    #[test]
    fn text_becomes_one_exact_phrase_per_word() {
        let cable = plan(&query(Some("USB-C  Cable!"), None, 0, 10)).unwrap();
        assert_eq!(cable.phrases.as_deref(), Some(r#""usb" "c" "cable""#));
        assert_eq!(plan(&query(Some("-- !"), None, 0, 10)), None);
        assert_eq!(plan(&query(Some(""), None, 0, 10)), None);
    }

    #[test]
    fn categories_filter_exactly_or_match_nothing() {
        let kitchen = plan(&query(None, Some("home-2"), 0, 10)).unwrap();
        assert_eq!(
            kitchen.category,
            Category::Exactly(r#"category = "home-2""#.into())
        );
        let quoted = plan(&query(None, Some(r#"a"b\c"#), 0, 10)).unwrap();
        assert_eq!(
            quoted.category,
            Category::Exactly(r#"category = "a\"b\\c""#.into())
        );
        for folded in ["Kitchen", " kitchen", "kitchen ", "küche", "ﬁ"] {
            let nothing = plan(&query(None, Some(folded), 0, 10)).unwrap();
            assert_eq!(
                (nothing.category, nothing.window),
                (Category::Nothing, None),
                "{folded:?}"
            );
        }
    }

    #[test]
    fn the_window_stays_within_max_total_hits() {
        let window = |offset, limit| plan(&query(None, None, offset, limit)).unwrap().window;
        assert_eq!(window(4, 2), Some((4, 2)));
        assert_eq!(window(0, 0), None);
        assert_eq!(window(MAX_TOTAL_HITS, 1), None);
        assert_eq!(window(usize::MAX, usize::MAX), None);
        assert_eq!(window(0, usize::MAX), Some((0, MAX_TOTAL_HITS)));
        assert_eq!(window(MAX_TOTAL_HITS - 1, 5), Some((MAX_TOTAL_HITS - 1, 1)));
    }
}
