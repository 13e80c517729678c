//! The console through the whole router, in process (single node, in-memory store): the
//! session and CSRF checks, logins, actions' fragments, assets and the stream's first
//! events. The browser test (`tests/blackbox/console.rs`) covers a real cluster.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use emporium_actors::{Email, Password, UserName, Users};
use tokio_stream::StreamExt;

use crate::testing::{TestApp, admin_token, customer_token};

const ADMIN_EMAIL: &str = "ops@console.test";
const ADMIN_PASSWORD: &str = "console-admin-password";

fn cookie(token: &str) -> String {
    format!("emporium_console={token}")
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::COOKIE, cookie(token));
    }
    request.body(Body::empty()).unwrap()
}

/// A POST as htmx sends it (cookie, `HX-Request`) when both are given.
fn post(uri: &str, token: Option<&str>, htmx: bool, form: &str) -> Request<Body> {
    let mut request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(token) = token {
        request = request.header(header::COOKIE, cookie(token));
    }
    if htmx {
        request = request.header("hx-request", "true");
    }
    request.body(Body::from(form.to_owned())).unwrap()
}

fn is_html(headers: &HeaderMap) -> bool {
    headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

async fn with_admin_account() -> TestApp {
    let app = TestApp::new().await;
    Users::new(app.state.runtime.clone())
        .ensure_admin(
            &Email::parse(ADMIN_EMAIL).unwrap(),
            &Password::new(ADMIN_PASSWORD).unwrap(),
        )
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn without_a_session_the_page_is_the_login_form() {
    let app = TestApp::new().await;
    let (status, headers, body) = app.send(get("/console", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(is_html(&headers));
    assert!(body.contains(r#"<form class="login" method="post" action="/console/login">"#));
    assert!(!body.contains("sse-connect"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn an_admin_session_opens_the_dashboard_and_others_do_not() {
    let app = TestApp::new().await;
    let (status, _, body) = app
        .send(get("/console", Some(&admin_token(&app.state))))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"sse-connect="/console/stream""#));
    assert!(body.contains(r#"sse-swap="nodes""#));
    assert!(body.contains("/console/assets/htmx.min.js?v="));

    let customer = customer_token(&app.state, "u-1");
    for (token, says) in [
        (customer.as_str(), "for admins"),
        ("not-a-token", "invalid or has expired"),
    ] {
        let (status, _, body) = app.send(get("/console", Some(token))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert!(body.contains(says), "{body}");
        assert!(body.contains(r#"action="/console/login""#));
    }
}

#[tokio::test]
async fn fragments_and_the_stream_need_a_session_and_say_so_in_html() {
    let app = TestApp::new().await;
    for request in [
        get("/console/stream", None),
        get("/console/stream", Some("forged")),
        post("/console/nodes/n1/drain", None, true, ""),
        post("/console/actors/passivate", None, true, "kind=cart&key=c"),
    ] {
        let uri = request.uri().clone();
        let (status, headers, body) = app.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(is_html(&headers), "{uri}: {headers:?}");
        assert_eq!(headers["hx-redirect"], "/console", "{uri}");
        assert!(body.contains("log in"), "{uri}: {body}");
    }
}

#[tokio::test]
async fn actions_need_the_htmx_header_as_well_as_the_cookie() {
    let app = TestApp::new().await;
    let token = admin_token(&app.state);
    // A cross-site form could carry the cookie (if SameSite failed) but not the header.
    let (status, headers, body) = app
        .send(post(
            "/console/actors/passivate",
            Some(&token),
            false,
            "kind=cart&key=c",
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(is_html(&headers));
    assert!(body.contains("HX-Request"), "{body}");
    let lookup = Request::get("/console/actors/lookup?kind=cart&key=c")
        .header(header::COOKIE, cookie(&token))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(lookup).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn actions_answer_fragments_with_the_apis_statuses() {
    let app = TestApp::new().await;
    let token = admin_token(&app.state);
    let (status, _, body) = app
        .send(post(
            "/console/actors/passivate",
            Some(&token),
            true,
            "kind=cart&key=c1",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("cart/c1 on "), "{body}");
    assert!(body.contains("inactive"), "{body}");

    let (status, _, body) = app
        .send(post(
            "/console/actors/passivate",
            Some(&token),
            true,
            "kind=cart",
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("field key: is required"), "{body}");

    let (status, _, body) = app
        .send(post(
            "/console/actors/passivate",
            Some(&token),
            true,
            "kind=nope&key=1",
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("nope"), "{body}");

    // A single node cannot be drained: the API's 409, as a fragment.
    let (status, headers, body) = app
        .send(post(
            "/console/nodes/anything/drain",
            Some(&token),
            true,
            "",
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(is_html(&headers));
    assert!(body.contains(r#"class="result error""#), "{body}");

    let lookup = Request::get("/console/actors/lookup?kind=cart&key=c1")
        .header(header::COOKIE, cookie(&token))
        .header("hx-request", "true")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.send(lookup).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<th>shard</th>"), "{body}");
    assert!(body.contains("<th>stored version</th><td>0</td>"), "{body}");
}

#[tokio::test]
async fn a_login_sets_a_strict_http_only_cookie_that_opens_the_console() {
    let app = with_admin_account().await;
    let form = format!("email={ADMIN_EMAIL}&password={ADMIN_PASSWORD}");
    let (status, headers, _) = app.send(post("/console/login", None, false, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console");
    let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/console"), "{set_cookie}");
    let token = set_cookie
        .strip_prefix("emporium_console=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    let (status, _, body) = app.send(get("/console", Some(&token))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(ADMIN_EMAIL));

    // Logging out revokes the token: the cookie no longer opens anything.
    let (status, headers, _) = app
        .send(post("/console/logout", Some(&token), false, ""))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, body) = app.send(get("/console", Some(&token))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("ended"), "{body}");
}

#[tokio::test]
async fn wrong_credentials_and_customers_get_the_form_again() {
    let app = with_admin_account().await;
    let wrong = format!("email={ADMIN_EMAIL}&password=not-the-password");
    let (status, headers, body) = app.send(post("/console/login", None, false, &wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(
        body.contains("The e-mail address or the password is wrong."),
        "{body}"
    );
    assert!(
        body.contains(&format!(r#"value="{ADMIN_EMAIL}""#)),
        "the address is kept"
    );

    let (status, _, body) = app
        .send(post("/console/login", None, false, "email=a%40b.test"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("field password: is required"), "{body}");

    let users = Users::new(app.state.runtime.clone());
    users
        .sign_up(
            Email::parse("shopper@console.test").unwrap(),
            UserName::parse("Shopper").unwrap(),
            &Password::new("shopper-password").unwrap(),
        )
        .await
        .unwrap();
    let (status, headers, body) = app
        .send(post(
            "/console/login",
            None,
            false,
            "email=shopper%40console.test&password=shopper-password",
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("not an admin"), "{body}");
}

#[tokio::test]
async fn logins_are_throttled_like_the_apis() {
    let app = with_admin_account().await;
    let policy = app.state.login_throttle.policy();
    let wrong = format!("email={ADMIN_EMAIL}&password=wrong-password");
    let mut last = StatusCode::OK;
    let mut retry_after = None;
    for _ in 0..=policy.per_email {
        let (status, headers, _) = app.send(post("/console/login", None, false, &wrong)).await;
        last = status;
        retry_after = headers.get(header::RETRY_AFTER).cloned();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
}

#[tokio::test]
async fn assets_are_embedded_and_cached_for_long() {
    let app = TestApp::new().await;
    for (name, kind) in [
        ("htmx.min.js", "text/javascript"),
        ("sse.min.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let (status, headers, body) = app
            .send(get(&format!("/console/assets/{name}?v=1"), None))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(!body.is_empty());
    }
    let (status, _, _) = app.send(get("/console/assets/../Cargo.toml", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_stream_sends_the_history_then_the_fragments() {
    let app = TestApp::new().await;
    let response = app
        .open(get("/console/stream", Some(&admin_token(&app.state))))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("event: charts") && text.contains("event: history")) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the first fragments within 10 s")
            .expect("the stream stays open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("event: history\n"), "{text}");
    assert!(
        text.contains("event: nodes\ndata: <table id=\"nodes-table\">"),
        "{text}"
    );
    assert!(text.contains("event: shardmap\n"), "{text}");
    assert!(
        text.contains(r#"data-cells="1024""#),
        "a single node owns every shard"
    );
}
