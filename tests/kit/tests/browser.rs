//! The WebDriver client against a real headless Chromium, on a page of its own (a `data:`
//! URL): typing, clicking, reading text, scripts, screenshots, stale elements. Skipped
//! (`skipped: …`) without chromium and chromedriver, failed under
//! `EMPORIUM_REQUIRE_SERVICES=1`.

use emporium_testkit::browser::{Browser, BrowserError};
use serde_json::json;

const PAGE: &str = "data:text/html,<input id=name><button id=go \
    onclick=\"document.getElementById('out').textContent='hello '+document.getElementById('name').value\">go</button>\
    <p id=out></p><button id=swap onclick=\"this.replaceWith(this.cloneNode(true))\">swap</button>";

async fn browser() -> Option<Browser> {
    match Browser::start().await {
        Ok(browser) => Some(browser),
        Err(BrowserError::Unavailable(reason)) => {
            if std::env::var("EMPORIUM_REQUIRE_SERVICES").is_ok_and(|value| value == "1") {
                panic!("required service unavailable: {reason}");
            }
            eprintln!("skipped: {reason}");
            None
        }
        Err(error) => panic!("the browser did not start: {error}"),
    }
}

#[tokio::test]
async fn the_client_types_clicks_reads_runs_scripts_and_takes_screenshots() {
    let Some(browser) = browser().await else {
        return;
    };
    browser.goto(PAGE).await.unwrap();
    let name = browser.find("#name").await.unwrap();
    browser.send_keys(&name, "console").await.unwrap();
    browser
        .click(&browser.find("#go").await.unwrap())
        .await
        .unwrap();
    let out = browser.find("#out").await.unwrap();
    assert_eq!(browser.text(&out).await.unwrap(), "hello console");

    let sum = browser
        .execute(
            "return arguments[0] + arguments[1];",
            vec![json!(2), json!(3)],
        )
        .await
        .unwrap();
    assert_eq!(sum, json!(5));
    assert_eq!(browser.find_all("button").await.unwrap().len(), 2);
    assert!(browser.find_all("#missing").await.unwrap().is_empty());
    let missing = browser.find("#missing").await.unwrap_err();
    assert!(
        matches!(&missing, BrowserError::Driver { error, .. } if error == "no such element"),
        "{missing}"
    );

    // An element the page replaced is reported stale (the caller finds it again).
    let swap = browser.find("#swap").await.unwrap();
    browser.click(&swap).await.unwrap();
    let stale = browser.click(&swap).await.unwrap_err();
    assert!(stale.is_stale(), "{stale}");

    browser.set_window_size(800, 600).await.unwrap();
    let png = browser.screenshot_png().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    browser.quit().await;
}
