//! The catalog against real nodes: the admin upsert (auth with tokens from the real login,
//! every bad field, create then replace), search (words of name and description, any case, ranked), the category filter,
//! paging with a stable total, facets, and products surviving a `kill -9` (the search index
//! is rebuilt from the store at start).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Answer, Api, NodeProcess, NodeSpec};

/// The admin every node of these tests creates at start.
const ADMIN_EMAIL: &str = "catalog-admin@example.com";
const ADMIN_PASSWORD: &str = "catalog-admin-password";

async fn start(dir: &std::path::Path, demo: bool) -> NodeProcess {
    let spec = NodeSpec::embedded(dir)
        .env("EMPORIUM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("EMPORIUM_DEMO", if demo { "true" } else { "false" });
    NodeProcess::start(spec).await
}

/// Requests with an optional bearer token.
struct Shop {
    http: reqwest::Client,
    api: Api,
    admin: String,
}

impl Shop {
    /// A client holding an admin token, from `POST /v1/auth/login`.
    async fn new(node: &NodeProcess) -> Self {
        let api = Api::new(node);
        let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            api,
            admin,
        }
    }

    /// Sign up a customer and log in; returns the customer's token.
    async fn customer(&self) -> String {
        let (email, password) = ("shopper@example.com", "shopper-password");
        let body = json!({"email": email, "password": password, "name": "Shopper"});
        let answer = self.api.post("/v1/users", &body).await;
        assert_eq!(answer.status, 201, "sign-up: {answer:?}");
        login(&self.api, email, password).await
    }

    async fn get(&self, path: &str) -> Answer {
        let answer = self.api.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        answer
    }

    async fn put_as(&self, sku: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut request = self
            .http
            .put(format!("{}/v1/admin/products/{sku}", self.api.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.api.send(request).await
    }

    async fn put_raw(&self, sku: &str, body: &str) -> Answer {
        let request = self
            .http
            .put(format!("{}/v1/admin/products/{sku}", self.api.base))
            .bearer_auth(&self.admin)
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.api.send(request).await
    }

    /// Upsert as admin and expect `status`.
    async fn upsert(&self, sku: &str, body: &Value, status: u16) -> Answer {
        let answer = self.put_as(sku, Some(&self.admin), body).await;
        assert_eq!(answer.status, status, "PUT {sku} {body}: {answer:?}");
        answer
    }

    /// Upsert a minimal product.
    async fn add(&self, sku: &str, name: &str, description: &str, category: &str) {
        let body = json!({
            "name": name,
            "description": description,
            "price_cents": 1000,
            "currency": "USD",
            "category": category,
        });
        self.upsert(sku, &body, 201).await;
    }
}

async fn login(api: &Api, email: &str, password: &str) -> String {
    let answer = api
        .post(
            "/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(answer.status, 200, "login {email}: {answer:?}");
    answer.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

fn skus(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["sku"].as_str().expect("sku").to_owned())
        .collect()
}

fn sku_set(answer: &Answer) -> BTreeSet<String> {
    skus(answer).into_iter().collect()
}

fn trail_mug() -> Value {
    json!({
        "name": "Trail Mug",
        "description": "Enamel camping mug.",
        "price_cents": 1500,
        "currency": "EUR",
        "category": "outdoor",
        "attributes": {"colour": "green", "ml": 350, "dishwasher": false},
        "ignored_field": [1, 2, 3],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_upsert_creates_replaces_and_is_searchable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), false).await;
    let shop = Shop::new(&node).await;
    let path = "/v1/products/SKU-TRAIL-MUG";

    // Who may write.
    let anonymous = shop.put_as("SKU-TRAIL-MUG", None, &trail_mug()).await;
    anonymous.expect_problem(401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    let forged = shop
        .put_as("SKU-TRAIL-MUG", Some("not-a-token"), &trail_mug())
        .await;
    forged.expect_problem(401);
    let customer = shop.customer().await;
    shop.put_as("SKU-TRAIL-MUG", Some(&customer), &trail_mug())
        .await
        .expect_problem(403);
    shop.api.get(path).await.expect_problem(404);

    // Create.
    let created = shop.upsert("SKU-TRAIL-MUG", &trail_mug(), 201).await;
    assert_eq!(created.headers["location"], path);
    let expected = json!({
        "sku": "SKU-TRAIL-MUG",
        "name": "Trail Mug",
        "description": "Enamel camping mug.",
        "price_cents": 1500,
        "currency": "EUR",
        "category": "outdoor",
        "attributes": {"colour": "green", "dishwasher": "false", "ml": "350"},
    });
    assert_eq!(
        created.body, expected,
        "scalars become strings, unknowns ignored"
    );
    assert_eq!(shop.get(path).await.body, expected);
    let found = shop.get("/v1/products?q=enamel").await;
    assert_eq!(found.body["items"], json!([expected]));
    let listed = shop.get("/v1/products?category=outdoor").await;
    assert_eq!(
        (listed.body["total"].clone(), skus(&listed)),
        (json!(1), vec!["SKU-TRAIL-MUG".to_owned()])
    );

    // Replace: the whole product, visible everywhere as soon as the answer comes.
    let replacement = json!({
        "name": "  Trail Mug XL  ",
        "description": "Enamel mug, extra large.",
        "price_cents": 1700,
        "currency": "EUR",
        "category": "camping",
    });
    let replaced = shop.upsert("SKU-TRAIL-MUG", &replacement, 200).await;
    assert!(replaced.headers.get("location").is_none());
    let expected = json!({
        "sku": "SKU-TRAIL-MUG",
        "name": "Trail Mug XL",
        "description": "Enamel mug, extra large.",
        "price_cents": 1700,
        "currency": "EUR",
        "category": "camping",
        "attributes": {},
    });
    assert_eq!(
        replaced.body, expected,
        "a replace, not a patch: attributes gone"
    );
    assert_eq!(shop.get(path).await.body, expected);
    assert_eq!(
        shop.get("/v1/products?q=large").await.body["items"],
        json!([expected])
    );
    assert_eq!(
        shop.get("/v1/products?q=camping").await.body["total"],
        0,
        "old description"
    );
    assert_eq!(
        shop.get("/v1/products?category=outdoor").await.body["total"],
        0
    );
    let camping = shop.get("/v1/products?category=camping").await;
    assert_eq!(camping.body["total"], 1);
    assert_eq!(camping.body["facets"], json!({"camping": 1}));

    // Every bad field is a 422 naming it; nothing changes.
    let long_description = "x".repeat(5_001);
    let too_many: serde_json::Map<String, Value> =
        (0..33).map(|n| (format!("k{n}"), json!("v"))).collect();
    let cases: Vec<(&str, Value)> = vec![
        ("name", json!("")),
        ("name", json!("   ")),
        ("description", json!(long_description)),
        ("price_cents", json!(0)),
        ("price_cents", json!(-5)),
        ("price_cents", json!(100_000_001)),
        ("currency", json!("eur")),
        ("currency", json!("EURO")),
        ("category", json!("Outdoor Gear")),
        ("category", json!("")),
        ("attributes", Value::Object(too_many)),
        ("attributes", json!({"sizes": ["S", "M"]})),
        ("attributes", json!({"nothing": null})),
    ];
    for (field, value) in cases {
        let mut body = trail_mug();
        body[field] = value.clone();
        let answer = shop.put_as("SKU-TRAIL-MUG", Some(&shop.admin), &body).await;
        let detail = answer.expect_problem(422);
        assert!(
            detail.starts_with(&format!("{field}:")),
            "{field} = {value}: {detail}"
        );
    }
    let bad_sku = shop
        .put_as("bad%20sku", Some(&shop.admin), &trail_mug())
        .await;
    assert!(bad_sku.expect_problem(422).starts_with("sku:"));

    // Unreadable bodies are 400: syntax, types, missing fields.
    for body in [
        "{",
        "[]",
        r#"{"name":"Mug","price_cents":"15","currency":"EUR","category":"kitchen"}"#,
        r#"{"name":"Mug","price_cents":12.5,"currency":"EUR","category":"kitchen"}"#,
        r#"{"price_cents":1500,"currency":"EUR","category":"kitchen"}"#,
        r#"{"name":"Mug","price_cents":1500,"currency":"EUR","category":"kitchen","attributes":[]}"#,
    ] {
        shop.put_raw("SKU-TRAIL-MUG", body)
            .await
            .expect_problem(400);
    }
    assert_eq!(
        shop.get(path).await.body,
        expected,
        "refused writes change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_pages_and_counts_facets() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), false).await;
    let shop = Shop::new(&node).await;
    shop.add(
        "KT-1",
        "Cast Iron Skillet",
        "Season it to prevent RUST.",
        "kitchen",
    )
    .await;
    shop.add(
        "BK-2",
        "Gardening Basics",
        "Grow vegetables; a chapter on rust fungus.",
        "books",
    )
    .await;
    shop.add(
        "GD-1",
        "Rust-proof Trowel",
        "Stainless steel hand trowel.",
        "garden",
    )
    .await;
    shop.add(
        "BK-1",
        "Rust in Action",
        "Systems programming with Rust.",
        "books",
    )
    .await;
    shop.add("GD-2", "Watering Can", "Galvanised, five litres.", "garden")
        .await;
    shop.add("BK-3", "Cooking Simply", "Recipes for every day.", "books")
        .await;

    // A listing: SKU order, facets over everything.
    let all = shop.get("/v1/products").await;
    assert_eq!(skus(&all), ["BK-1", "BK-2", "BK-3", "GD-1", "GD-2", "KT-1"]);
    assert_eq!(all.body["total"], 6);
    assert_eq!(
        all.body["facets"],
        json!({"books": 3, "garden": 2, "kitchen": 1})
    );

    // Words of the name or the description, any case; name matches rank first.
    for q in ["rust", "RUST", "Rust"] {
        let rust = shop.get(&format!("/v1/products?q={q}")).await;
        assert_eq!(rust.body["total"], 4, "{q}");
        assert_eq!(
            sku_set(&rust),
            BTreeSet::from(["BK-1", "BK-2", "GD-1", "KT-1"].map(str::to_owned)),
            "{q}"
        );
        let top_two: BTreeSet<String> = skus(&rust).into_iter().take(2).collect();
        assert_eq!(
            top_two,
            BTreeSet::from(["BK-1".to_owned(), "GD-1".to_owned()]),
            "{q}"
        );
        assert_eq!(
            rust.body["facets"],
            json!({"books": 2, "garden": 1, "kitchen": 1}),
            "{q}"
        );
    }
    assert_eq!(
        skus(&shop.get("/v1/products?q=trowel").await),
        ["GD-1"],
        "name"
    );
    assert_eq!(
        skus(&shop.get("/v1/products?q=Vegetables").await),
        ["BK-2"],
        "description"
    );
    assert_eq!(
        skus(&shop.get("/v1/products?q=watering%20can").await),
        ["GD-2"],
        "two words"
    );
    let none = shop.get("/v1/products?q=zeppelin").await;
    assert_eq!(
        (none.body["total"].clone(), none.body["items"].clone()),
        (json!(0), json!([]))
    );
    assert_eq!(none.body["facets"], json!({}));

    // The category filter narrows items and total; facets keep following the text.
    let rusty_books = shop.get("/v1/products?q=rust&category=books").await;
    assert_eq!(
        sku_set(&rusty_books),
        BTreeSet::from(["BK-1".to_owned(), "BK-2".to_owned()])
    );
    assert_eq!(rusty_books.body["total"], 2);
    assert_eq!(
        rusty_books.body["facets"],
        json!({"books": 2, "garden": 1, "kitchen": 1})
    );
    let garden = shop.get("/v1/products?category=garden").await;
    assert_eq!(skus(&garden), ["GD-1", "GD-2"]);
    assert_eq!(garden.body["facets"], all.body["facets"]);

    // Paging: pages add up to the listing; the total never moves.
    let mut paged = Vec::new();
    for offset in [0, 2, 4] {
        let page = shop
            .get(&format!("/v1/products?limit=2&offset={offset}"))
            .await;
        assert_eq!(page.body["total"], 6, "offset {offset}");
        paged.extend(skus(&page));
    }
    assert_eq!(paged, skus(&all));
    let past = shop.get("/v1/products?limit=2&offset=6").await;
    assert_eq!(
        (past.body["total"].clone(), past.body["items"].clone()),
        (json!(6), json!([]))
    );
    let mut rust_pages = Vec::new();
    for offset in 0..4 {
        let page = shop
            .get(&format!("/v1/products?q=rust&limit=1&offset={offset}"))
            .await;
        assert_eq!(page.body["total"], 4);
        rust_pages.extend(skus(&page));
    }
    let rust_all = skus(&shop.get("/v1/products?q=rust").await);
    assert_eq!(rust_pages, rust_all, "ranked pages are stable");

    // Out-of-range parameters.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=10001", "offset"),
    ] {
        let detail = shop
            .api
            .get(&format!("/v1/products?{query}"))
            .await
            .expect_problem(422);
        assert!(
            detail.starts_with(&format!("{field}:")),
            "{query}: {detail}"
        );
    }
    let long_q = format!("/v1/products?q={}", "a".repeat(201));
    assert!(
        shop.api
            .get(&long_q)
            .await
            .expect_problem(422)
            .starts_with("q:")
    );
    shop.api
        .get("/v1/products?offset=-1")
        .await
        .expect_problem(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upserted_product_survives_kill_9_and_is_found_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), true).await;
    let shop = Shop::new(&node).await;
    let demo = shop.get("/v1/products?limit=100").await;
    let demo_total = demo.body["total"].as_u64().expect("total");
    assert!(demo_total >= 10, "the demo catalog is seeded");
    assert_eq!(
        skus(&shop.get("/v1/products?q=kettle").await),
        ["SKU-KETTLE"]
    );

    let lantern = json!({
        "name": "Camping Lantern",
        "description": "Rechargeable LED lantern.",
        "price_cents": 2999,
        "currency": "USD",
        "category": "outdoor",
        "attributes": {"lumens": 300},
    });
    let created = shop.upsert("SKU-LANTERN", &lantern, 201).await;
    let mug = json!({
        "name": "Ceramic Mug, large",
        "description": "A 500 ml stoneware mug.",
        "price_cents": 1499,
        "currency": "USD",
        "category": "kitchen",
    });
    let replaced = shop.upsert("SKU-MUG", &mug, 200).await;

    let spec = node.kill9().await;
    let node = NodeProcess::start(spec).await;
    let shop = Shop::new(&node).await;
    assert_eq!(
        shop.get("/v1/products/SKU-LANTERN").await.body,
        created.body
    );
    assert_eq!(shop.get("/v1/products/SKU-MUG").await.body, replaced.body);
    assert_eq!(
        skus(&shop.get("/v1/products?q=lantern").await),
        ["SKU-LANTERN"]
    );
    assert_eq!(skus(&shop.get("/v1/products?q=500").await), ["SKU-MUG"]);
    assert_eq!(
        shop.get("/v1/products?q=350").await.body["total"],
        0,
        "old text gone"
    );
    let all = shop.get("/v1/products?limit=100").await;
    assert_eq!(all.body["total"], demo_total + 1, "rebuilt, not re-seeded");
    assert_eq!(all.body["facets"]["outdoor"], 1);
}
