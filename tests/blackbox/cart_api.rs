//! The cart walk-through and every bad input, against one real node.

use serde_json::json;

use crate::stores::on_every_store;
use crate::support::{Api, NodeProcess, NodeSpec};

mod walk_through_on {
    super::on_every_store!(super::products_and_cart_walk_through);
}

async fn products_and_cart_walk_through(spec: NodeSpec) {
    let node = NodeProcess::start(spec).await;
    let api = Api::new(&node);

    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.get("/readyz").await.status, 200);

    let products = api.get("/v1/products?limit=100").await;
    assert_eq!(products.status, 200);
    let total = products.body["total"].as_u64().unwrap();
    assert!(total >= 10, "demo products seeded: {total}");
    assert_eq!(
        products.body["items"].as_array().unwrap().len() as u64,
        total
    );
    let kitchen = api.get("/v1/products?category=kitchen").await;
    assert!(
        kitchen.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["category"] == "kitchen")
    );
    assert_eq!(kitchen.body["facets"]["kitchen"], kitchen.body["total"]);
    let page = api.get("/v1/products?limit=2&offset=2").await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);

    let mug = api.get("/v1/products/SKU-MUG").await;
    assert_eq!(mug.status, 200);
    for field in [
        "sku",
        "name",
        "description",
        "price_cents",
        "currency",
        "category",
    ] {
        assert!(!mug.body[field].is_null(), "product field {field}");
    }
    let price = mug.body["price_cents"].as_i64().unwrap();

    let created = api.post_empty("/v1/carts").await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/v1/carts/{id}")
    );
    assert_eq!(created.body["items"], json!([]));
    assert_eq!(created.body["subtotal_cents"], 0);

    let cart_path = format!("/v1/carts/{id}");
    let added = api
        .post(
            &format!("{cart_path}/items"),
            &json!({"sku": "SKU-MUG", "quantity": 2}),
        )
        .await;
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(
        added.body["items"],
        json!([{"sku": "SKU-MUG", "quantity": 2, "unit_price_cents": price}])
    );
    assert_eq!(added.body["subtotal_cents"], 2 * price);
    let more = api
        .post(
            &format!("{cart_path}/items"),
            &json!({"sku": "SKU-MUG", "quantity": 1}),
        )
        .await;
    assert_eq!(more.body["items"][0]["quantity"], 3, "adding again adds up");
    api.post(
        &format!("{cart_path}/items"),
        &json!({"sku": "SKU-PEN", "quantity": 1}),
    )
    .await;

    let set = api
        .put(
            &format!("{cart_path}/items/SKU-MUG"),
            &json!({"quantity": 5}),
        )
        .await
        .unwrap();
    assert_eq!(set.status, 200);
    assert_eq!(set.body["items"][0]["quantity"], 5);
    let removed_by_zero = api
        .put(
            &format!("{cart_path}/items/SKU-PEN"),
            &json!({"quantity": 0}),
        )
        .await
        .unwrap();
    assert_eq!(removed_by_zero.body["items"].as_array().unwrap().len(), 1);
    let deleted = api.delete(&format!("{cart_path}/items/SKU-MUG")).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["items"], json!([]));
    let read = api.get(&cart_path).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_problem_and_the_node_survives() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        NodeProcess::start(NodeSpec::embedded(dir.path()).env("EMPORIUM_MAX_BODY_BYTES", "4096"))
            .await;
    let api = Api::new(&node);
    let id = api.new_cart().await;
    let items = format!("/v1/carts/{id}/items");

    // 400: malformed JSON, wrong types, missing fields.
    for body in [
        &b"{not json"[..],
        br#"{"sku": "SKU-MUG", "quantity": "two"}"#,
        br#"{"sku": 12, "quantity": 1}"#,
        br#"{"quantity": 1}"#,
        br#"{"sku": "SKU-MUG", "quantity": 1.5}"#,
        br#"{"sku": "SKU-MUG", "quantity": 99999999999999999999999}"#,
        br#"[]"#,
        b"",
    ] {
        let answer = api
            .post_raw(&items, "application/json", body.to_vec())
            .await;
        answer.expect_problem(400);
    }
    // 415: not JSON.
    api.post_raw(&items, "text/plain", b"sku=SKU-MUG".to_vec())
        .await
        .expect_problem(415);
    // 404: unknown cart, unknown SKU, line not in the cart, unknown route.
    api.get("/v1/carts/does-not-exist")
        .await
        .expect_problem(404);
    api.get("/v1/carts/bad%20id%21").await.expect_problem(404);
    api.post(
        "/v1/carts/does-not-exist/items",
        &json!({"sku": "SKU-MUG", "quantity": 1}),
    )
    .await
    .expect_problem(404);
    let detail = api
        .post(&items, &json!({"sku": "NO-SUCH-SKU", "quantity": 1}))
        .await
        .expect_problem(404);
    assert!(detail.contains("NO-SUCH-SKU"), "{detail}");
    api.get("/v1/products/NO-SUCH-SKU")
        .await
        .expect_problem(404);
    api.delete(&format!("/v1/carts/{id}/items/SKU-MUG"))
        .await
        .expect_problem(404);
    api.get("/v1/nowhere").await.expect_problem(404);
    // 405: wrong method.
    api.delete("/v1/products").await.expect_problem(405);
    // 422: quantities out of range, bad SKU text, limits.
    for quantity in [0, -1, 100, i64::MAX] {
        let detail = api
            .post(&items, &json!({"sku": "SKU-MUG", "quantity": quantity}))
            .await
            .expect_problem(422);
        assert!(detail.contains("quantity"), "{detail}");
    }
    api.post(&items, &json!({"sku": "bad sku!", "quantity": 1}))
        .await
        .expect_problem(422);
    api.put(&format!("{items}/SKU-MUG"), &json!({"quantity": -3}))
        .await
        .unwrap()
        .expect_problem(422);
    api.post(&items, &json!({"sku": "SKU-MUG", "quantity": 60}))
        .await;
    let detail = api
        .post(&items, &json!({"sku": "SKU-MUG", "quantity": 60}))
        .await
        .expect_problem(422);
    assert!(detail.contains("99"), "line limit named: {detail}");
    api.get("/v1/products?limit=0").await.expect_problem(422);
    api.get("/v1/products?limit=abc").await.expect_problem(400);
    // 413: a body over the limit.
    let huge = format!(
        r#"{{"sku":"SKU-MUG","quantity":1,"pad":"{}"}}"#,
        "x".repeat(8192)
    );
    api.post_raw(&items, "application/json", huge.into_bytes())
        .await
        .expect_problem(413);

    // Nothing above changed the cart beyond the one valid add, and the node still serves.
    let cart = api.get(&format!("/v1/carts/{id}")).await;
    assert_eq!(cart.status, 200);
    assert_eq!(cart.body["items"][0]["quantity"], 60);
    assert_eq!(api.get("/healthz").await.status, 200);
}
