//! The adapter against a stub Meilisearch (see `stub`): the requests it sends (paths,
//! bodies, the `Authorization` header), and how it maps answers and errors to the port.

mod stub;

use std::collections::BTreeMap;

use emporium_actors::catalog::conformance::product;
use emporium_actors::catalog::{SearchIndex, SearchPage, SearchQuery};
use emporium_search_meili::{MAX_CATEGORIES, MAX_TOTAL_HITS, MeiliError, MeiliIndex};
use serde_json::{Value, json};
use stub::{Reply, Stub, error_body, failed_task_body, index_body, result, stats_body, task_body};

const KEY: &str = "s3cret-key";
const INDEX: &str = "products";

async fn connected() -> (Stub, MeiliIndex) {
    let stub = Stub::start().await;
    let index = MeiliIndex::connect(&stub.url, Some(KEY.to_owned()), INDEX)
        .await
        .unwrap();
    stub.clear();
    (stub, index)
}

fn query(text: Option<&str>, category: Option<&str>, offset: usize, limit: usize) -> SearchQuery {
    SearchQuery {
        text: text.map(str::to_owned),
        category: category.map(str::to_owned),
        offset,
        limit,
    }
}

/// The product's document: its JSON plus the hex of its SKU as `id`.
fn document(id: &str, product: &emporium_actors::Product) -> Value {
    let mut document = serde_json::to_value(product).unwrap();
    document["id"] = json!(id);
    document
}

fn hit(product: &emporium_actors::Product) -> Value {
    serde_json::to_value(product).unwrap()
}

fn facets(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .map(|(category, count)| ((*category).to_owned(), *count))
        .collect()
}

const PRODUCT_FIELDS: [&str; 7] = [
    "sku",
    "name",
    "description",
    "price_cents",
    "currency",
    "category",
    "attributes",
];

#[tokio::test]
async fn connect_creates_the_index_writes_its_settings_and_waits_for_each_task() {
    let stub = Stub::start().await;
    let index = MeiliIndex::connect(&format!("{}/", stub.url), Some(KEY.to_owned()), INDEX)
        .await
        .unwrap();
    assert_eq!(index.index_name(), INDEX);

    let requests = stub.requests();
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer s3cret-key"),
            "{} {}",
            request.method,
            request.path
        );
    }
    let calls: Vec<(String, String)> = stub
        .calls()
        .into_iter()
        .map(|call| (call.method, call.path))
        .collect();
    let expected = [
        ("POST", "/indexes"),
        ("GET", "/indexes/products"),
        ("PATCH", "/indexes/products/settings"),
        ("PUT", "/indexes/products/settings/prefix-search"),
    ]
    .map(|(method, path)| (method.to_owned(), path.to_owned()));
    assert_eq!(calls, expected);
    for task in ["/tasks/0", "/tasks/1", "/tasks/2"] {
        assert_eq!(stub.count(task), 1, "{task} polled until it succeeded");
    }

    let bodies: Vec<Value> = stub.calls().into_iter().map(|call| call.body).collect();
    assert_eq!(bodies[0], json!({ "uid": "products", "primaryKey": "id" }));
    let settings = &bodies[2];
    assert_eq!(
        settings["searchableAttributes"],
        json!(["name", "description"])
    );
    assert_eq!(
        settings["filterableAttributes"],
        json!(["category", "price_cents", "currency"])
    );
    assert_eq!(settings["sortableAttributes"], json!(["id"]));
    assert_eq!(
        settings["rankingRules"],
        json!([
            "words",
            "typo",
            "proximity",
            "attribute",
            "exactness",
            "sort"
        ])
    );
    assert_eq!(settings["typoTolerance"]["enabled"], json!(false));
    assert_eq!(settings["stopWords"], json!([]));
    assert_eq!(settings["synonyms"], json!({}));
    assert_eq!(settings["separatorTokens"], json!([]));
    assert_eq!(settings["nonSeparatorTokens"], json!([]));
    assert_eq!(settings["dictionary"], json!([]));
    assert_eq!(
        settings["pagination"],
        json!({ "maxTotalHits": MAX_TOTAL_HITS })
    );
    assert_eq!(
        settings["faceting"],
        json!({ "maxValuesPerFacet": MAX_CATEGORIES })
    );
    assert_eq!(bodies[3], json!("disabled"));
    let json_calls = stub
        .calls()
        .into_iter()
        .filter(|call| call.body != Value::Null);
    for call in json_calls {
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/json"),
            "{}",
            call.path
        );
    }
}

#[tokio::test]
async fn connect_without_a_key_sends_no_authorization() {
    let stub = Stub::start().await;
    MeiliIndex::connect(&stub.url, None, INDEX).await.unwrap();
    let requests = stub.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|request| request.authorization.is_none())
    );
}

#[tokio::test]
async fn connect_accepts_an_index_that_already_exists() {
    let stub = Stub::start().await;
    let exists = error_body(
        "index_already_exists",
        "invalid_request",
        "Index `products` already exists.",
    );
    stub.reply(
        "GET",
        "/tasks/0",
        Reply::json(200, failed_task_body("0", "indexCreation", INDEX, exists)),
    );
    MeiliIndex::connect(&stub.url, Some(KEY.to_owned()), INDEX)
        .await
        .unwrap();
    assert_eq!(stub.calls().len(), 4, "went on to write the settings");
}

#[tokio::test]
async fn connect_refuses_an_index_with_another_primary_key() {
    let stub = Stub::start().await;
    stub.reply(
        "GET",
        "/indexes/products",
        Reply::json(200, index_body(INDEX, Some("sku"))),
    );
    let error = MeiliIndex::connect(&stub.url, Some(KEY.to_owned()), INDEX)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MeiliError::PrimaryKey { found, .. } if found == "sku"),
        "{error}"
    );
}

#[tokio::test]
async fn connect_reports_a_failed_settings_task_with_its_message() {
    let stub = Stub::start().await;
    let invalid = error_body(
        "invalid_settings_ranking_rules",
        "invalid_request",
        "`sort` ranking rule is invalid.",
    );
    stub.reply(
        "GET",
        "/tasks/1",
        Reply::json(200, failed_task_body("1", "settingsUpdate", INDEX, invalid)),
    );
    let error = MeiliIndex::connect(&stub.url, Some(KEY.to_owned()), INDEX)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MeiliError::TaskFailed { task: 1, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("`sort` ranking rule is invalid."),
        "{message}"
    );
    assert!(message.contains("write the index settings"), "{message}");
}

#[tokio::test]
async fn connect_reports_a_refused_key() {
    let stub = Stub::start().await;
    stub.reply(
        "POST",
        "/indexes",
        Reply::error(
            403,
            "invalid_api_key",
            "auth",
            "The provided API key is invalid.",
        ),
    );
    let error = MeiliIndex::connect(&stub.url, Some("wrong".to_owned()), INDEX)
        .await
        .unwrap_err();
    assert!(matches!(error, MeiliError::Request { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("create the index"), "{message}");
    assert!(message.contains("invalid_api_key"), "{message}");
}

#[tokio::test]
async fn connect_refuses_bad_arguments_before_any_request() {
    let stub = Stub::start().await;
    let bad_name = MeiliIndex::connect(&stub.url, None, "my products").await;
    assert!(matches!(bad_name, Err(MeiliError::IndexName(_))));
    let bad_url = MeiliIndex::connect("meili://127.0.0.1:7700", None, INDEX).await;
    assert!(matches!(bad_url, Err(MeiliError::Url { .. })));
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn connect_to_nothing_fails_fast() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = MeiliIndex::connect(&url, None, INDEX).await.unwrap_err();
    assert!(matches!(error, MeiliError::Request { .. }), "{error}");
}

#[tokio::test]
async fn upsert_sends_one_document_per_sku_and_returns_once_the_task_succeeded() {
    let (stub, index) = connected().await;
    stub.reply(
        "GET",
        "/tasks/3",
        Reply::json(
            200,
            task_body("3", "enqueued", "documentAdditionOrUpdate", INDEX),
        ),
    );
    stub.reply(
        "GET",
        "/tasks/3",
        Reply::json(
            200,
            task_body("3", "processing", "documentAdditionOrUpdate", INDEX),
        ),
    );
    let lamp = product("D-1", "Desk Lamp", "Warm light.", "home");
    let floor = product("D-1", "Floor Lamp", "Tall light.", "home");
    let shelf = product("s.1", "Shelf", "Oak.", "home");
    index
        .upsert_many(&[lamp, shelf.clone(), floor.clone()])
        .await
        .unwrap();

    let calls = stub.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/indexes/products/documents?primaryKey=id");
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer s3cret-key"));
    assert_eq!(
        calls[0].body,
        json!([document("442d31", &floor), document("732e31", &shelf)]),
        "the last product of a SKU, ids in hex"
    );
    assert_eq!(stub.count("/tasks/3"), 3, "enqueued, processing, succeeded");
}

#[tokio::test]
async fn upsert_of_nothing_sends_nothing() {
    let (stub, index) = connected().await;
    index.upsert_many(&[]).await.unwrap();
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn upsert_reports_a_failed_task() {
    let (stub, index) = connected().await;
    let invalid = error_body(
        "invalid_document_id",
        "invalid_request",
        "Document identifier `x.y` is invalid.",
    );
    stub.reply(
        "GET",
        "/tasks/3",
        Reply::json(
            200,
            failed_task_body("3", "documentAdditionOrUpdate", INDEX, invalid),
        ),
    );
    let error = index
        .upsert(&product("A-1", "Mug", "Stoneware.", "kitchen"))
        .await
        .unwrap_err();
    assert!(error.0.contains("add documents"), "{error}");
    assert!(
        error.0.contains("Document identifier `x.y` is invalid."),
        "{error}"
    );
}

#[tokio::test]
async fn upsert_reports_error_statuses() {
    let (stub, index) = connected().await;
    let path = "/indexes/products/documents?primaryKey=id";
    stub.reply(
        "POST",
        path,
        Reply::error(
            413,
            "payload_too_large",
            "invalid_request",
            "The provided payload reached the size limit.",
        ),
    );
    stub.reply("POST", path, Reply::text(503, "upstream unavailable"));
    let mug = product("A-1", "Mug", "Stoneware.", "kitchen");
    let too_large = index.upsert(&mug).await.unwrap_err();
    assert!(too_large.0.contains("payload_too_large"), "{too_large}");
    let unavailable = index.upsert(&mug).await.unwrap_err();
    assert!(unavailable.0.contains("503"), "{unavailable}");
}

#[tokio::test]
async fn a_filtered_listing_is_three_searches_in_one_request() {
    let (stub, index) = connected().await;
    let pan = product("B-2", "Cast Iron Pan", "A skillet.", "kitchen");
    let items = json!({ "indexUid": INDEX, "offset": 1, "limit": 1 });
    let count = json!({ "indexUid": INDEX, "page": 0 });
    let all = json!({ "indexUid": INDEX, "page": 0, "facets": ["category"] });
    stub.reply(
        "POST",
        "/multi-search",
        Reply::json(
            200,
            json!({ "results": [
                result(&items, vec![hit(&pan)], 2, json!(null)),
                result(&count, vec![], 2, json!(null)),
                result(&all, vec![], 6, json!({ "apparel": 2, "books": 2, "kitchen": 2, "garden": 0 })),
            ]}),
        ),
    );
    let page = index
        .search(&query(None, Some("kitchen"), 1, 1))
        .await
        .unwrap();
    assert_eq!(
        page,
        SearchPage {
            items: vec![pan],
            total: 2,
            facets: facets(&[("apparel", 2), ("books", 2), ("kitchen", 2)]),
        }
    );

    let calls = stub.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/multi-search")
    );
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer s3cret-key"));
    assert_eq!(
        calls[0].body,
        json!({ "queries": [
            {
                "indexUid": INDEX,
                "offset": 1,
                "limit": 1,
                "filter": "category = \"kitchen\"",
                "sort": ["id:asc"],
                "attributesToRetrieve": PRODUCT_FIELDS,
            },
            { "indexUid": INDEX, "page": 0, "filter": "category = \"kitchen\"" },
            { "indexUid": INDEX, "page": 0, "facets": ["category"] },
        ]})
    );
}

#[tokio::test]
async fn a_text_search_sends_exact_phrases_and_counts_from_the_facets_search() {
    let (stub, index) = connected().await;
    let tee = product("A-1", "Black T-shirt", "Organic cotton tee.", "apparel");
    let tote = product("C-2", "Cotton Tote Bag", "A tote.", "books");
    let items = json!({ "indexUid": INDEX, "q": "\"cotton\"", "offset": 0, "limit": 10 });
    let all = json!({ "indexUid": INDEX, "q": "\"cotton\"", "page": 0, "facets": ["category"] });
    stub.reply(
        "POST",
        "/multi-search",
        Reply::json(
            200,
            json!({ "results": [
                result(&items, vec![hit(&tote), hit(&tee)], 2, json!(null)),
                result(&all, vec![], 2, json!({ "apparel": 1, "books": 1 })),
            ]}),
        ),
    );
    let page = index
        .search(&query(Some("Cotton!"), None, 0, 10))
        .await
        .unwrap();
    assert_eq!(page.items, [tote, tee], "in Meilisearch's order");
    assert_eq!(page.total, 2);
    assert_eq!(page.facets, facets(&[("apparel", 1), ("books", 1)]));

    let body = &stub.calls()[0].body;
    assert_eq!(
        body["queries"][0],
        json!({
            "indexUid": INDEX,
            "q": "\"cotton\"",
            "matchingStrategy": "all",
            "offset": 0,
            "limit": 10,
            "sort": ["id:asc"],
            "attributesToRetrieve": PRODUCT_FIELDS,
        })
    );
    assert_eq!(
        body["queries"][1],
        json!({
            "indexUid": INDEX,
            "q": "\"cotton\"",
            "matchingStrategy": "all",
            "page": 0,
            "facets": ["category"],
        })
    );
    assert_eq!(body["queries"].as_array().map(Vec::len), Some(2));

    stub.clear();
    index
        .search(&query(Some("USB-C cable"), None, 0, 10))
        .await
        .unwrap();
    assert_eq!(
        stub.calls()[0].body["queries"][0]["q"],
        json!("\"usb\" \"c\" \"cable\"")
    );
}

#[tokio::test]
async fn pages_that_are_empty_by_construction_skip_the_items_search() {
    let (stub, index) = connected().await;
    for (offset, limit) in [(0, 0), (usize::MAX, 10)] {
        stub.clear();
        let page = index
            .search(&query(None, None, offset, limit))
            .await
            .unwrap();
        assert!(page.items.is_empty());
        let queries = stub.calls()[0].body["queries"].clone();
        assert_eq!(
            queries,
            json!([{ "indexUid": INDEX, "page": 0, "facets": ["category"] }]),
            "offset {offset}, limit {limit}"
        );
    }
    stub.clear();
    let folded = index
        .search(&query(None, Some("Kitchen"), 0, 10))
        .await
        .unwrap();
    assert_eq!(folded.total, 0, "an upper-case category matches nothing");
    assert_eq!(
        stub.calls()[0].body["queries"],
        json!([{ "indexUid": INDEX, "page": 0, "facets": ["category"] }])
    );
}

#[tokio::test]
async fn a_text_without_words_asks_nothing() {
    let (stub, index) = connected().await;
    let page = index
        .search(&query(Some("-- !"), None, 0, 10))
        .await
        .unwrap();
    assert_eq!(page, SearchPage::default());
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn search_errors_become_search_errors() {
    let (stub, index) = connected().await;
    let listing = query(None, None, 0, 10);
    let cases = [
        (
            Reply::error(500, "internal", "internal", "Out of memory."),
            "Out of memory.",
        ),
        (
            Reply::error(
                400,
                "invalid_search_sort",
                "invalid_request",
                "Attribute `id` is not sortable.",
            ),
            "invalid_search_sort",
        ),
        (Reply::text(502, "<html>Bad Gateway</html>"), "502"),
        (Reply::text(200, "{\"results\": 7}"), "parsing"),
        (
            Reply::json(200, json!({ "results": [] })),
            "result for every search",
        ),
    ];
    for (reply, expected) in cases {
        stub.reply("POST", "/multi-search", reply);
        let error = index.search(&listing).await.unwrap_err();
        assert!(error.0.contains(expected), "{expected:?} in {error}");
        assert!(error.0.starts_with("meilisearch: search"), "{error}");
    }
    let items = json!({ "indexUid": INDEX, "offset": 0, "limit": 10 });
    let mut no_total = result(
        &json!({ "indexUid": INDEX, "facets": [] }),
        vec![],
        0,
        json!({}),
    );
    no_total["estimatedTotalHits"] = json!(0);
    stub.reply(
        "POST",
        "/multi-search",
        Reply::json(
            200,
            json!({ "results": [result(&items, vec![], 0, json!(null)), no_total] }),
        ),
    );
    let error = index.search(&listing).await.unwrap_err();
    assert!(error.0.contains("totalHits"), "{error}");
}

#[tokio::test]
async fn len_reads_the_number_of_documents() {
    let (stub, index) = connected().await;
    stub.reply(
        "GET",
        "/indexes/products/stats",
        Reply::json(200, stats_body(42)),
    );
    assert_eq!(index.len().await.unwrap(), 42);
    assert!(
        index.is_empty().await.unwrap(),
        "the stub's default is empty"
    );
    let calls = stub.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|call| call.method == "GET"
        && call.path == "/indexes/products/stats"
        && call.authorization.as_deref() == Some("Bearer s3cret-key")));

    stub.reply(
        "GET",
        "/indexes/products/stats",
        Reply::error(
            404,
            "index_not_found",
            "invalid_request",
            "Index `products` not found.",
        ),
    );
    let error = index.len().await.unwrap_err();
    assert!(error.0.contains("index_not_found"), "{error}");
}

#[tokio::test]
async fn delete_index_deletes_and_waits() {
    let (stub, index) = connected().await;
    index.delete_index().await.unwrap();
    let calls = stub.calls();
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("DELETE", "/indexes/products")
    );
    assert_eq!(stub.count("/tasks/3"), 1);
}

#[tokio::test]
async fn debug_output_hides_the_key() {
    let (_stub, index) = connected().await;
    let shown = format!("{index:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains(INDEX), "{shown}");
}
