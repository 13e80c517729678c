//! `POST /v1/users` (sign up) and `GET /v1/users/me`.
//!
//! Sign-up takes `{"email", "password", "name"}` and answers `201` with the account
//! (`{"id", "email", "name", "roles"}`, never the password or its hash); an address that
//! already has an account (compared trimmed and lower-cased) is `409`; a bad e-mail, a
//! password under 8 characters or an empty name is `422` naming the field.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emporium_actors::{Email, Password, Role, User, UserName, Users};
use serde::{Deserialize, Serialize};

use crate::auth::{Authenticated, ROLE_ADMIN, ROLE_CUSTOMER};
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", post(sign_up))
        .route("/v1/users/me", get(me))
}

/// `POST /v1/users`
#[derive(Deserialize)]
pub struct SignUpRequest {
    pub email: String,
    pub password: String,
    pub name: String,
}

/// A user on the wire.
#[derive(Serialize)]
pub struct UserJson<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub roles: Vec<String>,
}

impl<'a> From<&'a User> for UserJson<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: &user.id,
            email: user.email.as_str(),
            name: user.name.as_str(),
            roles: role_names(&user.roles),
        }
    }
}

/// The token roles of a user's domain roles.
pub fn role_names(roles: &[Role]) -> Vec<String> {
    roles
        .iter()
        .map(|role| match role {
            Role::Customer => ROLE_CUSTOMER.to_owned(),
            Role::Admin => ROLE_ADMIN.to_owned(),
        })
        .collect()
}

pub async fn sign_up(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SignUpRequest>,
) -> Result<Response, ApiError> {
    let email = Email::parse(&request.email)?;
    let password = Password::new(&request.password)?;
    let name = UserName::parse(&request.name)?;
    let user = Users::new(state.runtime.clone())
        .sign_up(email, name, &password)
        .await?;
    tracing::info!(user = %user.id, "account created");
    Ok((StatusCode::CREATED, Json(UserJson::from(&user))).into_response())
}

pub async fn me(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    match Users::new(state.runtime.clone()).get(&claims.sub).await? {
        Some(user) => Ok(Json(UserJson::from(&user)).into_response()),
        None => Err(ApiError::Unauthorized(
            "the token's account does not exist".to_owned(),
        )),
    }
}
