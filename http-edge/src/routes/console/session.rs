//! The console's session and its CSRF rule.
//!
//! - **Session**: after a login, the admin's JWT (the same token `POST /v1/auth/login`
//!   issues) in a cookie `emporium_console`: `HttpOnly` (no script reads it),
//!   `SameSite=Strict` (no other site's page sends it), `Path=/console` (the API never sees
//!   it, so the API's bearer-only rule stands). Checked on every console request as the
//!   API checks a bearer token: signature, expiry, revocation (logout), admin role.
//! - **CSRF**: actions (anything that changes the cluster) also need the `HX-Request`
//!   header, which htmx sends and a cross-site HTML form cannot (and a cross-site `fetch`
//!   with it needs a CORS preflight nobody answers). `SameSite=Strict` alone would depend
//!   on every browser implementing it.
//!
//! Without a valid session, fragments and the stream answer `401` with `HX-Redirect:
//! /console` (htmx then loads the login page); the page itself renders the login form.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::html::Fragment;
use crate::auth::Claims;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "emporium_console";

/// Why a request has no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("please log in")]
    Missing,
    #[error("your session is invalid or has expired: please log in again")]
    Invalid,
    #[error("your session was ended: please log in again")]
    Revoked,
    #[error("the console is for admins")]
    NotAdmin,
    /// A session, but an action without the `HX-Request` header (a cross-site form?).
    #[error("actions are sent by the console page only (HX-Request header missing)")]
    NotFromConsole,
}

impl SessionError {
    fn status(self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid | Self::Revoked => StatusCode::UNAUTHORIZED,
            Self::NotAdmin | Self::NotFromConsole => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let mut response = Fragment::error(self.status(), &self.to_string()).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/console"));
        }
        response
    }
}

/// `Set-Cookie` value of a new session holding `token` for `ttl`.
pub fn session_cookie(token: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
        ttl.as_secs()
    )
}

/// `Set-Cookie` value that ends the session in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0")
}

/// The session token the request carries, if any (every `Cookie` header is looked at).
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|token| !token.is_empty())
}

/// The admin's claims from the session cookie, checked like a bearer token.
pub async fn session(headers: &HeaderMap, state: &AppState) -> Result<Claims, SessionError> {
    let token = cookie_token(headers).ok_or(SessionError::Missing)?;
    let claims = state.tokens.verify(token).ok_or(SessionError::Invalid)?;
    if state.revocations.is_revoked(&claims.jti).await {
        return Err(SessionError::Revoked);
    }
    if !claims.is_admin() {
        return Err(SessionError::NotAdmin);
    }
    Ok(claims)
}

/// Whether htmx sent the request (`HX-Request: true`).
pub fn from_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("hx-request")
        .is_some_and(|value| value.as_bytes() == b"true")
}

/// A console request with a valid admin session (fragments, the stream).
pub struct ConsoleAdmin(pub Claims);

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SessionError> {
        session(&parts.headers, state).await.map(Self)
    }
}

/// An action: a valid admin session and the `HX-Request` header.
pub struct ConsoleAction(pub Claims);

impl FromRequestParts<AppState> for ConsoleAction {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SessionError> {
        let claims = session(&parts.headers, state).await?;
        if !from_htmx(&parts.headers) {
            return Err(SessionError::NotFromConsole);
        }
        Ok(Self(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        assert_eq!(cookie_token(&headers(&[])), None);
        assert_eq!(
            cookie_token(&headers(&["a=1; emporium_console=tok; b=2"])),
            Some("tok")
        );
        assert_eq!(
            cookie_token(&headers(&["x=1", "emporium_console=t2"])),
            Some("t2")
        );
        assert_eq!(cookie_token(&headers(&["emporium_console="])), None);
        assert_eq!(cookie_token(&headers(&["emporium_consolex=t"])), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_console() {
        let cookie = session_cookie("tok", Duration::from_secs(600));
        for part in [
            "emporium_console=tok",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=600",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        assert!(cleared_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn only_htmx_requests_count_as_from_the_console() {
        let mut headers = HeaderMap::new();
        assert!(!from_htmx(&headers));
        headers.insert("hx-request", HeaderValue::from_static("true"));
        assert!(from_htmx(&headers));
    }
}
