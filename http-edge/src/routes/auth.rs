//! `POST /v1/auth/login`: e-mail and password for a bearer token, and the user's cart.
//!
//! Wrong credentials are one answer, `401` with the same body, whether the address has no
//! account or the password is wrong; both cost one password verification, so the time
//! taken does not tell them apart either. Attempts are counted per e-mail and per client
//! address before the password is checked ([`crate::limits::LoginThrottle`]); over the
//! limit a login is `429` until the window ends, and a successful login takes its attempt
//! back.
//!
//! With `guest_cart_id`, the guest cart's lines are merged into the user's own cart
//! (created on first login): quantities add up to the line limit, new lines are added
//! while there is room, and the merged lines leave the guest cart. Only carts without an
//! owner merge: a cart that does not exist or that belongs to a user (another user's, or
//! one a checkout took over) is ignored; the login still succeeds and that cart is left
//! untouched.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use emporium_actors::{CartId, Email, InvalidValue, Password, User, Users};
use serde::{Deserialize, Serialize};

use crate::auth::Authenticated;
use crate::extract::ApiJson;
use crate::limits::ClientAddr;
use crate::problem::ApiError;
use crate::routes::users::role_names;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
}

/// `POST /v1/auth/logout`: the presented token is refused from now on, on every node that
/// shares the revocation list (Redis), until it would have expired anyway. `204`.
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.revocations.revoke(&claims.jti, claims.exp).await?;
    tracing::info!(user = %claims.sub, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/login`
#[derive(Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub guest_cart_id: Option<String>,
}

#[derive(Serialize)]
pub struct LoginJson<'a> {
    pub access_token: &'a str,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub user_id: &'a str,
    pub cart_id: &'a str,
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized("the e-mail address or the password is wrong".to_owned())
}

/// Check an e-mail address and a password, throttled: the one check of `POST
/// /v1/auth/login` and of the console's login. The attempt is counted first (`429` over the
/// limit); the caller calls [`LoginThrottle::succeeded`](crate::limits::LoginThrottle) once
/// the login is complete. Wrong credentials are `401`, the same whether the address has an
/// account or not.
pub(crate) async fn verify_credentials(
    state: &AppState,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<User, ApiError> {
    state.login_throttle.check(email, client).await?;
    // An address that cannot be parsed has no account: the same answer, at the same cost.
    let parsed = Email::parse(email).ok();
    let password = Password::presented(password);
    Users::new(state.runtime.clone())
        .authenticate(parsed.as_ref(), &password)
        .await?
        .ok_or_else(wrong_credentials)
}

/// A bearer token for `user`, issued now with the user's roles.
pub(crate) fn issue_token(state: &AppState, user: &User) -> Result<String, ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|error| ApiError::Internal(format!("the clock is before 1970: {error}")))?
        .as_secs();
    let roles = role_names(&user.roles);
    let (token, _) = state
        .tokens
        .issue(&user.id, user.email.as_str(), &roles, now)?;
    Ok(token)
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let guest = match request.guest_cart_id.as_deref() {
        Some(id) => Some(CartId::parse(id).map_err(|invalid| InvalidValue {
            field: "guest_cart_id",
            expected: invalid.expected,
        })?),
        None => None,
    };
    let user = verify_credentials(&state, &request.email, &request.password, client).await?;
    let users = Users::new(state.runtime.clone());
    let opened = users
        .open_cart(&user.id, guest)
        .await?
        .ok_or_else(wrong_credentials)?;
    users.record_login(&user.id).await?;
    let token = issue_token(&state, &user)?;
    state.login_throttle.succeeded(&request.email, client).await;
    tracing::info!(user = %user.id, "logged in");
    let body = LoginJson {
        access_token: &token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
        user_id: &user.id,
        cart_id: &opened.cart.id,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}
