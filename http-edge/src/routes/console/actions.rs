//! The console's actions, each answering a fragment htmx swaps in (errors too, with their
//! status): `POST /console/nodes/{node}/drain`, `POST /console/actors/passivate` (form
//! `kind`, `key`), `GET /console/actors/lookup?kind=…&key=…`. Each needs a session and the
//! `HX-Request` header ([`ConsoleAction`]); each is one call of the runtime's operations,
//! the same as the JSON admin routes, and is logged with the admin who asked.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use super::fragments;
use super::html::Fragment;
use super::session::ConsoleAction;
use crate::problem::ApiError;
use crate::state::AppState;

/// Longest `kind` or `key` accepted.
const MAX_FIELD: usize = 256;

pub async fn drain(
    ConsoleAction(claims): ConsoleAction,
    State(state): State<AppState>,
    Path(node): Path<String>,
) -> Fragment {
    tracing::info!(admin = %claims.sub, %node, "console: drain a node");
    match state.runtime.drain_node(&node).await {
        Ok(outcome) => Fragment::ok(fragments::drained(&outcome)),
        Err(error) => failed(error.into()),
    }
}

pub async fn passivate(
    ConsoleAction(claims): ConsoleAction,
    State(state): State<AppState>,
    body: Bytes,
) -> Fragment {
    let (kind, key) = match actor_fields(&body) {
        Ok(fields) => fields,
        Err(invalid) => return invalid,
    };
    tracing::info!(admin = %claims.sub, %kind, %key, "console: passivate an actor");
    match state.runtime.passivate_actor(&kind, &key).await {
        Ok(outcome) => Fragment::ok(fragments::passivated(&outcome)),
        Err(error) => failed(error.into()),
    }
}

pub async fn lookup(
    ConsoleAction(_claims): ConsoleAction,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Fragment {
    let (kind, key) = match actor_fields(query.unwrap_or_default().as_bytes()) {
        Ok(fields) => fields,
        Err(invalid) => return invalid,
    };
    match state.runtime.locate_actor(&kind, &key).await {
        Ok(location) => Fragment::ok(fragments::location(&location)),
        Err(error) => failed(error.into()),
    }
}

/// The error as the JSON API would answer it (status and detail), as a fragment.
fn failed(error: ApiError) -> Fragment {
    let problem = error.to_problem();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Fragment::error(status, &problem.detail)
}

/// `kind` and `key` of a URL-encoded form or query (bytes that are not UTF-8 decoded
/// lossily); a `400` fragment naming the field that is missing, empty or too long.
pub fn actor_fields(encoded: &[u8]) -> Result<(String, String), Fragment> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded).map_err(|_| {
        Fragment::error(
            StatusCode::BAD_REQUEST,
            "the form cannot be read (not URL-encoded UTF-8)",
        )
    })?;
    let field = |name: &str| -> Result<String, Fragment> {
        let value = fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.trim())
            .unwrap_or_default();
        if value.is_empty() {
            return Err(invalid(name, "is required"));
        }
        if value.len() > MAX_FIELD {
            return Err(invalid(name, "is too long (at most 256 bytes)"));
        }
        Ok(value.to_owned())
    };
    Ok((field("kind")?, field("key")?))
}

fn invalid(field: &str, why: &str) -> Fragment {
    Fragment::error(StatusCode::BAD_REQUEST, &format!("field {field}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded_and_trimmed() {
        let (kind, key) = actor_fields(b"kind=cart&key=+a%2Fb+").unwrap();
        assert_eq!((kind.as_str(), key.as_str()), ("cart", "a/b"));
    }

    #[test]
    fn bad_form_input_is_a_400_naming_the_field() {
        for (input, field) in [
            (&b""[..], "field kind"),
            (b"kind=cart", "field key"),
            (b"kind=+&key=k", "field kind"),
        ] {
            let Err(fragment) = actor_fields(input) else {
                panic!("{input:?} accepted");
            };
            assert_eq!(fragment.status, StatusCode::BAD_REQUEST);
            assert!(fragment.html.contains(field), "{}", fragment.html);
        }
        let long = format!("kind=cart&key={}", "k".repeat(300));
        assert!(
            actor_fields(long.as_bytes())
                .err()
                .unwrap()
                .html
                .contains("field key: is too long")
        );
        // Bytes that are not UTF-8 are decoded lossily (and then name no kind): no panic.
        let (kind, _) = actor_fields(b"kind=%FF&key=k").unwrap();
        assert_eq!(kind, "\u{FFFD}");
    }
}
