//! `PUT /v1/admin/products/{sku}`: create or replace a product (admins only).
//!
//! - `401` without a valid token, `403` with a token lacking the `admin` role; both are
//!   decided before the body is read.
//! - The body is the whole product (see [`ProductUpsertRequest`]). Malformed JSON, a
//!   missing required field or a wrong type is `400`; a value the catalog refuses is `422`
//!   naming the field (`sku`, `name`, `description`, `price_cents`, `currency`,
//!   `category`, `attributes`). Unknown fields are ignored.
//! - Attribute values may be strings, numbers or booleans; numbers and booleans are kept
//!   as their JSON text (`2` → `"2"`, `true` → `"true"`). `null`, arrays and objects are
//!   `422`.
//! - `201 Created` with `Location: /v1/products/{sku}` when the SKU was new, `200` when it
//!   replaced a product; the body is the product as `GET /v1/products/{sku}` shows it.
//!   Listings and search show the new version as soon as the answer is sent.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use emporium_actors::{Currency, InvalidValue, ProductDraft, Sku};
use serde_json::Value;

use crate::auth::Admin;
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::wire::{ProductJson, ProductUpsertRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/products/{sku}", put(upsert))
}

pub async fn upsert(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    Path(sku): Path<String>,
    ApiJson(request): ApiJson<ProductUpsertRequest>,
) -> Result<Response, ApiError> {
    let sku = Sku::parse(&sku)?;
    let draft = draft(request)?;
    let upserted = state.catalog.upsert(&sku, draft).await?;
    let body = Json(ProductJson::from(&upserted.product));
    if upserted.created {
        let location = format!("/v1/products/{sku}");
        Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
    } else {
        Ok(body.into_response())
    }
}

/// The request as a draft; the catalog checks the bounds of every field.
fn draft(request: ProductUpsertRequest) -> Result<ProductDraft, InvalidValue> {
    let currency = Currency::parse(&request.currency)?;
    let attributes = request
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| {
            let text = attribute_text(&key, value)?;
            Ok((key, text))
        })
        .collect::<Result<BTreeMap<String, String>, InvalidValue>>()?;
    Ok(ProductDraft {
        name: request.name,
        description: request.description,
        price_cents: request.price_cents,
        currency,
        category: request.category,
        attributes,
    })
}

/// A scalar attribute value as text.
fn attribute_text(key: &str, value: Value) -> Result<String, InvalidValue> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(InvalidValue {
            field: "attributes",
            expected: format!("values that are strings, numbers or booleans ({key:?} is not)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(attributes: Value) -> ProductUpsertRequest {
        serde_json::from_value(json!({
            "name": "Mug",
            "price_cents": 100,
            "currency": "EUR",
            "category": "kitchen",
            "attributes": attributes,
        }))
        .unwrap()
    }

    #[test]
    fn scalar_attributes_become_text() {
        let draft = draft(request(
            json!({"colour": "red", "ml": 350, "ratio": 1.5, "dishwasher": true}),
        ))
        .unwrap();
        let expected: BTreeMap<String, String> = [
            ("colour", "red"),
            ("dishwasher", "true"),
            ("ml", "350"),
            ("ratio", "1.5"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(draft.attributes, expected);
        assert_eq!(draft.description, "");
        assert_eq!(draft.currency.as_str(), "EUR");
        assert!(draft.validate().is_ok());
    }

    #[test]
    fn other_attribute_values_and_bad_currencies_name_the_field() {
        for bad in [
            json!({"a": null}),
            json!({"a": [1]}),
            json!({"a": {"b": 1}}),
        ] {
            let error = draft(request(bad.clone())).unwrap_err();
            assert_eq!(error.field, "attributes", "{bad}");
            assert!(error.expected.contains("\"a\""), "{error}");
        }
        let mut euro = request(json!(null));
        assert!(draft(request(json!(null))).unwrap().attributes.is_empty());
        euro.currency = "eur".to_owned();
        assert_eq!(draft(euro).unwrap_err().field, "currency");
    }
}
