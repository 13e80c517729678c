//! Notifications: what was sent, and each user's preferences.
//!
//! - `GET /v1/admin/notifications?limit=N` (admins): the newest messages the development
//!   sink received (every channel without a configured SMTP server or webhook goes there),
//!   newest first, at most `limit` (default 50, 1..=500).
//! - `GET /v1/admin/notifications?user=ID` (admins): that recipient's own log (the last 50
//!   sends, whatever the channel, with their status); `user=admins` for stock alerts.
//! - `GET /v1/users/me/notification-preferences`: the signed-in user's preferences.
//! - `PUT /v1/users/me/notification-preferences`: replace them; omitted fields take their
//!   defaults. A bad `sms_number` / `push_token` (or one missing while its channel is on) is
//!   `422` naming the field; nothing changes.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use emporium_actors::InvalidValue;
use emporium_actors::notification::{NotificationError, NotificationPreferences};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Authenticated};
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::ApiError;
use crate::state::AppState;

/// Most messages one listing returns.
const MAX_LIMIT: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/notifications", get(sent))
        .route(
            "/v1/users/me/notification-preferences",
            get(preferences).put(set_preferences),
        )
}

#[derive(Deserialize)]
pub struct SentQuery {
    pub limit: Option<usize>,
    pub user: Option<String>,
}

pub async fn sent(
    Admin(_admin): Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SentQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(user) = query.user {
        let log = state.notifications.recent(&user).await?;
        return Ok(Json(json!({ "recipient": user, "notifications": log })));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadParameter {
            field: "limit",
            detail: format!("limit: expected 1 to {MAX_LIMIT}, got {limit}"),
        });
    }
    let messages = state.notification_sink.recent(limit);
    Ok(Json(json!({ "sink": "development", "messages": messages })))
}

pub async fn preferences(
    Authenticated(claims): Authenticated,
    State(state): State<AppState>,
) -> Result<Json<NotificationPreferences>, ApiError> {
    Ok(Json(state.notifications.preferences(&claims.sub).await?))
}

pub async fn set_preferences(
    Authenticated(claims): Authenticated,
    State(state): State<AppState>,
    ApiJson(preferences): ApiJson<NotificationPreferences>,
) -> Result<Json<NotificationPreferences>, ApiError> {
    match state
        .notifications
        .set_preferences(&claims.sub, preferences)
        .await?
    {
        Ok(saved) => Ok(Json(saved)),
        Err(rejection) => Err(ApiError::Invalid(InvalidValue {
            field: rejection.field(),
            expected: rejection.to_string(),
        })),
    }
}

impl From<NotificationError> for ApiError {
    fn from(error: NotificationError) -> Self {
        match error {
            NotificationError::Runtime(error) => Self::Runtime(error),
            other => Self::Internal(other.to_string()),
        }
    }
}
