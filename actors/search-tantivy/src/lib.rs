//! The tantivy adapter of the catalog's [`SearchIndex`] port: a full-text index held in
//! memory, inside the node's process.
//!
//! The index lives in a RAM directory: it is rebuilt from the product actors at every start
//! (`Catalog::rebuild_index`), so there is nothing on disk to migrate or to get out of step
//! with the store.
//!
//! # Fields
//! - `sku`: raw, stored, fast: the replace-by-SKU key and the listing order.
//! - `name`, `description`: text, cut into words the way [`emporium_actors::catalog::words`]
//!   describes (letters and digits, lower-cased, at most 64 bytes), then folded to ASCII
//!   (`crème` finds `creme`). No stemming and no stop words: `mugs` does not find `mug`.
//! - `category`: raw, for the filter; `category_facet`: the same value as a facet, counted
//!   with tantivy's facet collector.
//! - `price_cents`: indexed and fast, for later range filters and price sorting.
//! - `product`: the whole product as JSON, stored, so a page is served from the index alone.
//!
//! # Queries
//! Every word of the text must occur in the name or the description. Matches rank by BM25,
//! a name match counting [`NAME_BOOST`] times a description match; equal scores, and
//! listings without text, come in SKU order so that paging is stable.
//!
//! # Writes
//! One writer behind a mutex: an upsert deletes the SKU's term, adds the new document,
//! commits and reloads the reader before it returns, so the next search sees it. A batch
//! ([`SearchIndex::upsert_many`]) is one commit. Commits and searches run on tokio's
//! blocking pool, off the async workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use emporium_actors::Product;
use emporium_actors::catalog::{MAX_WORD_BYTES, SearchError, SearchIndex, SearchPage, SearchQuery};
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByString};
use tantivy::collector::{Collector, Count, FacetCollector, FacetCounts, TopDocs};
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};

/// How much more a word in the name weighs than the same word in the description.
pub const NAME_BOOST: f32 = 2.0;

/// The analyzer of `name` and `description`, registered under this name.
const WORDS_TOKENIZER: &str = "emporium_words";

/// Indexing memory before the writer flushes a segment (tantivy's minimum is 15 MB). The
/// index is small and commits come often, so this is rarely reached.
const WRITER_MEMORY_BYTES: usize = 16 * 1024 * 1024;

/// The schema's fields.
#[derive(Clone, Copy)]
struct Fields {
    sku: Field,
    name: Field,
    description: Field,
    category: Field,
    category_facet: Field,
    price_cents: Field,
    product: Field,
}

impl Fields {
    fn schema() -> (Schema, Self) {
        let mut builder = Schema::builder();
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS_TOKENIZER)
                // BM25 needs term frequencies; there are no phrase queries, so no positions.
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Self {
            sku: builder.add_text_field("sku", STRING | STORED | FAST),
            name: builder.add_text_field("name", words.clone()),
            description: builder.add_text_field("description", words),
            category: builder.add_text_field("category", STRING),
            category_facet: builder.add_facet_field("category_facet", FacetOptions::default()),
            price_cents: builder.add_i64_field("price_cents", INDEXED | FAST),
            product: builder.add_text_field("product", STORED),
        };
        (builder.build(), fields)
    }
}

fn failure(context: &str, error: impl std::fmt::Display) -> SearchError {
    SearchError(format!("{context}: {error}"))
}

/// The words analyzer: [`emporium_actors::catalog::words`], then ASCII folding.
fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(RemoveLongFilter::limit(MAX_WORD_BYTES + 1))
        .filter(AsciiFoldingFilter)
        .build()
}

/// The tantivy search index. Cheap to clone: clones share one index.
#[derive(Clone)]
pub struct TantivyIndex {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

impl TantivyIndex {
    /// An empty in-memory index, with one indexing thread and one merge thread.
    pub fn new() -> Result<Self, SearchError> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_ram(schema);
        index
            .tokenizers()
            .register(WORDS_TOKENIZER, words_analyzer());
        let writer = index
            .writer_with_options(
                IndexWriterOptions::builder()
                    .memory_budget_per_thread(WRITER_MEMORY_BYTES)
                    .num_worker_threads(1)
                    .num_merge_threads(1)
                    .build(),
            )
            .map_err(|error| failure("cannot open the index writer", error))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|error| failure("cannot open the index reader", error))?;
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
            }),
        })
    }

    /// Run `work` on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|error| failure("search task failed", error))?
    }
}

#[async_trait::async_trait]
impl SearchIndex for TantivyIndex {
    async fn upsert_many(&self, products: &[Product]) -> Result<(), SearchError> {
        if products.is_empty() {
            return Ok(());
        }
        let fields = self.inner.fields;
        let documents = products
            .iter()
            .map(|product| Ok((product.sku.as_str().to_owned(), document(fields, product)?)))
            .collect::<Result<Vec<_>, SearchError>>()?;
        self.blocking(move |inner| inner.upsert(documents)).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let query = query.clone();
        self.blocking(move |inner| inner.search(&query)).await
    }

    async fn len(&self) -> Result<usize, SearchError> {
        let searcher = self.inner.reader.searcher();
        usize::try_from(searcher.num_docs()).map_err(|error| failure("document count", error))
    }
}

/// The indexed form of `product`.
fn document(fields: Fields, product: &Product) -> Result<TantivyDocument, SearchError> {
    let stored = serde_json::to_string(product)
        .map_err(|error| failure("cannot encode the product", error))?;
    let mut document = TantivyDocument::new();
    document.add_text(fields.sku, product.sku.as_str());
    document.add_text(fields.name, &product.name);
    document.add_text(fields.description, &product.description);
    document.add_text(fields.category, &product.category);
    document.add_facet(
        fields.category_facet,
        Facet::from_path([product.category.as_str()]),
    );
    document.add_i64(fields.price_cents, product.price_cents);
    document.add_text(fields.product, stored);
    Ok(document)
}

impl Inner {
    fn upsert(&self, documents: Vec<(String, TantivyDocument)>) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let staged = documents.into_iter().try_for_each(|(sku, document)| {
            // A delete applies to the documents added before it, so the last document of a
            // SKU in the batch is the one that stays.
            writer.delete_term(Term::from_field_text(self.fields.sku, &sku));
            writer.add_document(document).map(|_| ())
        });
        if let Err(error) = staged.and_then(|()| writer.commit().map(|_| ())) {
            // Drop the uncommitted operations so the next batch starts clean.
            let _ = writer.rollback();
            return Err(failure("cannot index the products", error));
        }
        // Reload while still holding the writer, so readers never go back in time.
        self.reader
            .reload()
            .map_err(|error| failure("cannot reload the index reader", error))
    }

    fn search(&self, query: &SearchQuery) -> Result<SearchPage, SearchError> {
        let searcher = self.reader.searcher();
        let text = match query.text.as_deref() {
            None => None,
            Some(text) => match self.text_query(text) {
                Some(text) => Some(text),
                // A text without a word matches nothing.
                None => return Ok(SearchPage::default()),
            },
        };
        let matching: Box<dyn Query> = text.as_ref().map_or_else(
            || Box::new(AllQuery) as Box<dyn Query>,
            |text| text.box_clone(),
        );
        let filtered: Box<dyn Query> = match query.category.as_deref() {
            None => matching.box_clone(),
            Some(category) => {
                // The filter takes part without adding to the score.
                let in_category = TermQuery::new(
                    Term::from_field_text(self.fields.category, category),
                    IndexRecordOption::Basic,
                );
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, matching.box_clone()),
                    (
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(Box::new(in_category), 0.0)),
                    ),
                ]))
            }
        };

        // One pass collects the page, the total and, without a category filter, the facets;
        // with a filter, the facets take a second pass over the text matches.
        let window = page_window(&searcher, query);
        let top = window.map(|(offset, limit)| TopDocs::with_limit(limit).and_offset(offset));
        let by_sku = (SortByString::for_field("sku"), Order::Asc);
        let facets_in_pass = query.category.is_none();
        let (addresses, total, counts) = if text.is_some() {
            let by_score = (SortBySimilarityScore, Order::Desc);
            let top = top.map(|top| top.order_by((by_score, by_sku)));
            collect(&searcher, &*filtered, top, facets_in_pass)?
        } else {
            let top = top.map(|top| top.order_by(by_sku));
            collect(&searcher, &*filtered, top, facets_in_pass)?
        };
        let counts = match counts {
            Some(counts) => counts,
            None => run(&searcher, &*matching, &category_facets())?,
        };
        let items = addresses
            .into_iter()
            .map(|address| self.product(&searcher, address))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SearchPage {
            items,
            total,
            facets: category_counts(&counts),
        })
    }

    /// Every word of `text` in the name or the description; `None` when it has no word.
    fn text_query(&self, text: &str) -> Option<Box<dyn Query>> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(WORDS_TOKENIZER)
            .unwrap_or_else(words_analyzer);
        let mut words = BTreeSet::new();
        let mut tokens = analyzer.token_stream(text);
        tokens.process(&mut |token| {
            words.insert(token.text.clone());
        });
        if words.is_empty() {
            return None;
        }
        let each_word = words
            .into_iter()
            .map(|word| {
                let in_field = |field| -> Box<dyn Query> {
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, &word),
                        IndexRecordOption::WithFreqs,
                    ))
                };
                let either: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                    (
                        Occur::Should,
                        Box::new(BoostQuery::new(in_field(self.fields.name), NAME_BOOST)),
                    ),
                    (Occur::Should, in_field(self.fields.description)),
                ]));
                (Occur::Must, either)
            })
            .collect();
        Some(Box::new(BooleanQuery::new(each_word)))
    }

    fn product(&self, searcher: &Searcher, address: DocAddress) -> Result<Product, SearchError> {
        let document: TantivyDocument = searcher
            .doc(address)
            .map_err(|error| failure("cannot read a stored document", error))?;
        let stored = document
            .get_first(self.fields.product)
            .and_then(|value| value.as_str())
            .ok_or_else(|| SearchError("a stored document has no product".to_owned()))?;
        serde_json::from_str(stored).map_err(|error| failure("cannot decode a product", error))
    }
}

fn category_facets() -> FacetCollector {
    let mut facets = FacetCollector::for_field("category_facet");
    facets.add_facet(Facet::root());
    facets
}

/// The page `top` (if any), the count and the facets (if `with_facets`) of `query`, in one
/// pass.
fn collect<K, C>(
    searcher: &Searcher,
    query: &dyn Query,
    top: Option<C>,
    with_facets: bool,
) -> Result<(Vec<DocAddress>, usize, Option<FacetCounts>), SearchError>
where
    C: Collector<Fruit = Vec<(K, DocAddress)>>,
{
    let facets = with_facets.then(category_facets);
    let (hits, total, counts) = run(searcher, query, &(top, Count, facets))?;
    let addresses = hits
        .unwrap_or_default()
        .into_iter()
        .map(|(_, address)| address)
        .collect();
    Ok((addresses, total, counts))
}

fn run<C: Collector>(
    searcher: &Searcher,
    query: &dyn Query,
    collector: &C,
) -> Result<C::Fruit, SearchError> {
    searcher
        .search(query, collector)
        .map_err(|error| failure("search failed", error))
}

/// `(offset, limit)` to collect, bounded by the number of documents so that a huge offset
/// or limit costs nothing; `None` when the page is empty anyway.
fn page_window(searcher: &Searcher, query: &SearchQuery) -> Option<(usize, usize)> {
    let documents = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
    if query.limit == 0 || query.offset >= documents {
        return None;
    }
    Some((query.offset, query.limit.min(documents - query.offset)))
}

fn category_counts(counts: &FacetCounts) -> BTreeMap<String, usize> {
    counts
        .get(Facet::root())
        .filter_map(|(facet, count)| {
            let category = facet.to_path().last()?.to_string();
            Some((category, usize::try_from(count).ok()?))
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}
