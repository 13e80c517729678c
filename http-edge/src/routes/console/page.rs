//! The two whole pages: the login form and the dashboard. The dashboard is a skeleton: its
//! sections are filled by the server-sent events of `/console/stream` (htmx's SSE
//! extension swaps each event's fragment into the element whose `sse-swap` names it), and
//! its forms post to the action endpoints, whose answers htmx swaps in. No page reload.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::assets::{HTMX, HTMX_SSE, STYLESHEET};
use super::html::{Fragment, escape};
use crate::auth::Claims;

/// Scripts and styles from this origin only; no framing (the drain buttons must not be
/// clickable through another site's page).
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// A whole page with the console's security headers.
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut response = Fragment { status, html }.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// htmx's settings: error answers of actions are fragments naming what went wrong, so
/// they are swapped in like successes (htmx ignores 4xx/5xx bodies by default).
const HTMX_CONFIG: &str =
    r#"{"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;

fn head(title: &str, scripts: bool) -> String {
    let scripts = if scripts {
        format!(
            r#"<meta name="htmx-config" content="{}"><script src="{}"></script><script src="{}"></script>"#,
            escape(HTMX_CONFIG),
            escape(&HTMX.url()),
            escape(&HTMX_SSE.url())
        )
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><link rel="stylesheet" href="{css}">{scripts}</head>"#,
        title = escape(title),
        css = escape(&STYLESHEET.url()),
    )
}

/// The login form; `message` explains why it is shown again, `email` is kept.
pub fn login(node_id: &str, message: Option<&str>, email: &str) -> String {
    let message = message.map_or_else(String::new, |message| {
        format!(
            r#"<p class="error" role="alert" id="login-error">{}</p>"#,
            escape(message)
        )
    });
    format!(
        r#"{head}<body><form class="login" method="post" action="/console/login"><h1>Emporium console</h1><p class="muted">Node {node}. Sign in with an admin account.</p>{message}<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" required value="{email}"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required><button type="submit">Log in</button></form></body></html>"#,
        head = head("Emporium console: log in", false),
        node = escape(node_id),
        email = escape(email),
    )
}

/// The dashboard skeleton, live from `/console/stream`.
pub fn dashboard(claims: &Claims, node_id: &str) -> String {
    format!(
        r##"{head}<body><header><h1>Emporium cluster console</h1><span>node {node}</span><span class="who">{email}</span><form method="post" action="/console/logout"><button type="submit">Log out</button></form></header>
<main hx-ext="sse" sse-connect="/console/stream">
<section class="wide"><h2>Nodes</h2><div id="nodes" sse-swap="nodes"><p class="muted">Connecting…</p></div><div id="action-result" class="result" aria-live="polite"></div></section>
<section><h2>Shard map</h2><div id="shardmap" sse-swap="shardmap"></div></section>
<section><h2>Rates, last two minutes</h2><div id="charts" sse-swap="charts"></div></section>
<section><h2>Active actors per kind</h2><div id="kinds" sse-swap="kinds"></div></section>
<section class="actions"><h2>Actors</h2>
<form hx-get="/console/actors/lookup" hx-target="#actor-result"><input name="kind" placeholder="kind (cart)" required><input name="key" placeholder="key" required><button type="submit">Look up</button></form>
<form hx-post="/console/actors/passivate" hx-target="#actor-result"><input name="kind" placeholder="kind (cart)" required><input name="key" placeholder="key" required><button type="submit">Passivate</button></form>
<div id="actor-result" aria-live="polite"></div></section>
<section class="wide"><h2>Cluster history</h2><ol id="history" class="history" sse-swap="history"></ol></section>
</main>
</body></html>"##,
        head = head("Emporium console", true),
        node = escape(node_id),
        email = escape(&claims.email),
    )
}
