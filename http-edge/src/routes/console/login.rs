//! `GET /console` (the dashboard, or the login form without a valid session), `POST
//! /console/login` and `POST /console/logout`: plain HTML forms, so logging in works
//! before any script has loaded.
//!
//! The login checks the e-mail and password exactly as `POST /v1/auth/login` does (same
//! throttle, same answer for an unknown address and a wrong password:
//! [`verify_credentials`]), then requires the admin role. Success is `303` to `/console`
//! with the session cookie; a failure re-renders the form with a message and the status
//! the API would answer (`401`, `403`, `429` with `Retry-After`, `400` naming the field).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::page;
use super::session::{self, SessionError};
use crate::limits::ClientAddr;
use crate::problem::ApiError;
use crate::routes::auth::{issue_token, verify_credentials};
use crate::state::AppState;

pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let node = state.runtime.node_id();
    match session::session(&headers, &state).await {
        Ok(claims) => page::respond(StatusCode::OK, page::dashboard(&claims, node)),
        Err(SessionError::Missing) => page::respond(StatusCode::OK, page::login(node, None, "")),
        Err(error) => login_again(&state, error.to_string(), ""),
    }
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Bytes,
) -> Response {
    let (email, password) = match credentials(&body) {
        Ok(fields) => fields,
        Err(message) => {
            let node = state.runtime.node_id();
            return page::respond(
                StatusCode::BAD_REQUEST,
                page::login(node, Some(&message), ""),
            );
        }
    };
    let user = match verify_credentials(&state, &email, &password, client).await {
        Ok(user) => user,
        Err(error) => return refused(&state, &error, &email),
    };
    if !user.is_admin() {
        // Counted as a failed attempt: the console is no oracle for customers' passwords.
        tracing::warn!(user = %user.id, "console: a login without the admin role");
        return refused(&state, &ApiError::Forbidden(String::new()), &email);
    }
    let token = match issue_token(&state, &user) {
        Ok(token) => token,
        Err(error) => return refused(&state, &error, &email),
    };
    state.login_throttle.succeeded(&email, client).await;
    tracing::info!(user = %user.id, "console: logged in");
    let cookie = session::session_cookie(&token, state.tokens.ttl());
    see_console(&cookie)
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(claims) = session::session(&headers, &state).await {
        if let Err(error) = state.revocations.revoke(&claims.jti, claims.exp).await {
            tracing::warn!(%error, "console: the session could not be revoked; the cookie is cleared");
        }
        tracing::info!(user = %claims.sub, "console: logged out");
    }
    see_console(&session::cleared_cookie())
}

/// `303` to `/console`, setting `cookie`.
fn see_console(cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/console"));
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The login form again, saying why, with the status the API would answer.
fn refused(state: &AppState, error: &ApiError, email: &str) -> Response {
    let (status, message) = match error {
        ApiError::Unauthorized(_) => (
            StatusCode::UNAUTHORIZED,
            "The e-mail address or the password is wrong.".to_owned(),
        ),
        ApiError::Forbidden(_) => (
            StatusCode::FORBIDDEN,
            "This account is not an admin: the console is for admins.".to_owned(),
        ),
        other => {
            let problem = other.to_problem();
            let status =
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, problem.detail)
        }
    };
    let node = state.runtime.node_id();
    let mut response = page::respond(status, page::login(node, Some(&message), email));
    if let ApiError::TooManyRequests {
        retry_after_secs, ..
    } = error
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    response
}

fn login_again(state: &AppState, message: String, email: &str) -> Response {
    let node = state.runtime.node_id();
    page::respond(
        StatusCode::UNAUTHORIZED,
        page::login(node, Some(&message), email),
    )
}

/// `email` and `password` of the login form; the message names a missing field.
fn credentials(body: &[u8]) -> Result<(String, String), String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| "The form cannot be read (not URL-encoded UTF-8).".to_owned())?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("field {name}: is required"))
    };
    Ok((field("email")?, field("password")?))
}
