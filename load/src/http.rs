//! One request of a shopper, through goose, and the verdict on its answer.
//!
//! Contract: [`send`] makes the request under a stable name (the row of goose's report),
//! expects one status, and reads the body as JSON. Anything else — no answer, another
//! status, a body that is not JSON — is recorded with goose's `set_failure`, so it counts
//! as an error in goose's report, and returned as the transaction's error. [`Answer::check`]
//! does the same for a failed [`Mismatch`] of the body.

use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use serde_json::Value;

use crate::wire::Mismatch;

/// The longest part of a body quoted in an error.
const QUOTED_BODY: usize = 200;

/// What to send.
pub struct Call<'a> {
    method: GooseMethod,
    path: String,
    name: &'a str,
    expect: u16,
    json: Option<Value>,
    bearer: Option<&'a str>,
    idempotency_key: Option<String>,
}

impl<'a> Call<'a> {
    fn new(method: GooseMethod, path: String, name: &'a str, expect: u16) -> Self {
        Self {
            method,
            path,
            name,
            expect,
            json: None,
            bearer: None,
            idempotency_key: None,
        }
    }

    pub fn get(path: String, name: &'a str) -> Self {
        Self::new(GooseMethod::Get, path, name, 200)
    }

    pub fn post(path: String, name: &'a str, expect: u16) -> Self {
        Self::new(GooseMethod::Post, path, name, expect)
    }

    pub fn put(path: String, name: &'a str) -> Self {
        Self::new(GooseMethod::Put, path, name, 200)
    }

    pub fn delete(path: String, name: &'a str) -> Self {
        Self::new(GooseMethod::Delete, path, name, 200)
    }

    pub fn json(mut self, body: Value) -> Self {
        self.json = Some(body);
        self
    }

    pub fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }

    pub fn idempotency_key(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

/// An answer with the expected status and a JSON body.
pub struct Answer {
    request: GooseRequestMetric,
    body: Value,
}

impl Answer {
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The outcome of a check of this answer: the value, or the mismatch recorded as this
    /// request's failure.
    pub fn check<T>(
        mut self,
        user: &GooseUser,
        outcome: Result<T, Mismatch>,
    ) -> Result<T, Box<TransactionError>> {
        outcome.map_err(|m| {
            let body = quote(&self.body.to_string());
            fail(user, &m.0, &mut self.request, Some(&body))
        })
    }
}

/// Sends `call` as `user`; see the module's contract.
pub async fn send(user: &mut GooseUser, call: Call<'_>) -> Result<Answer, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&call.method, &call.path)?;
    if let Some(json) = &call.json {
        builder = builder.json(json);
    }
    if let Some(token) = call.bearer {
        builder = builder.bearer_auth(token);
    }
    if let Some(key) = &call.idempotency_key {
        builder = builder.header("Idempotency-Key", key);
    }
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(call.name)
        .expect_status_code(call.expect)
        .build();
    let mut goose = user.request(request).await?;
    let response = match goose.response {
        Ok(response) => response,
        Err(e) => {
            return Err(fail(
                user,
                &format!("no answer: {e}"),
                &mut goose.request,
                None,
            ));
        }
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => {
            return Err(fail(
                user,
                &format!("body cut: {e}"),
                &mut goose.request,
                None,
            ));
        }
    };
    if status != call.expect {
        let tag = format!(
            "status {status}, expected {}: {}",
            call.expect,
            problem_type(&text)
        );
        return Err(fail(user, &tag, &mut goose.request, Some(&quote(&text))));
    }
    match serde_json::from_str(&text) {
        Ok(body) => Ok(Answer {
            request: goose.request,
            body,
        }),
        Err(_) => Err(fail(
            user,
            "answer is not JSON",
            &mut goose.request,
            Some(&quote(&text)),
        )),
    }
}

/// Records `tag` as the failure of `request` in goose's metrics and gives the error to
/// return from the transaction.
fn fail(
    user: &GooseUser,
    tag: &str,
    request: &mut GooseRequestMetric,
    body: Option<&str>,
) -> Box<TransactionError> {
    match user.set_failure(tag, request, None, body) {
        Err(e) => e,
        // set_failure always answers an error; keep one should that ever change.
        Ok(()) => Box::new(TransactionError::RequestFailed {
            raw_request: request.clone(),
        }),
    }
}

/// The `type` of a problem+json body, for the error table (`-` when there is none).
fn problem_type(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

fn quote(text: &str) -> String {
    text.chars().take(QUOTED_BODY).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_type_names_the_failure() {
        let body =
            r#"{"type":"/problems/insufficient-stock","title":"Insufficient stock","status":409}"#;
        assert_eq!(problem_type(body), "/problems/insufficient-stock");
        assert_eq!(problem_type("<html>"), "-");
        assert_eq!(quote(&"x".repeat(500)).len(), QUOTED_BODY);
    }
}
