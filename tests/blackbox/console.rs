//! The admin console in a real browser: three nodes on PostgreSQL, headless Chromium
//! (through chromedriver) opens node 1's `/console`, logs in as the admin, sees the three
//! nodes, clicks node 3's drain button, and watches — without a reload — node 3's shard
//! count fall to 0, its cells leave the shard map and the moves appear in the history.
//! A screenshot is kept at `target/test-artefacts/console-drain.png`.
//!
//! Skipped (`skipped: …`) without PostgreSQL, NATS, chromium or chromedriver; failed
//! instead under `EMPORIUM_REQUIRE_SERVICES=1`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::store::conformance::service_unavailable;
use emporium_testkit::browser::{Browser, BrowserError};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster_kit::{ADMIN_EMAIL, ADMIN_PASSWORD, Cluster, SHARD_COUNT};
use crate::event_kit::TestStream;
use crate::stores::TestStore;

/// The drained node (member index 2).
const DRAINED: &str = "node-3";
/// From the click to every sign of the drain on the page.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// From the login to the dashboard showing the three nodes.
const DASHBOARD_DEADLINE: Duration = Duration::from_secs(30);

/// What the page shows, read in one script (one consistent moment of the DOM).
const READ_PAGE: &str = r#"
const drained = arguments[0];
const row = document.querySelector(`#nodes tr[data-node="${drained}"]`);
const legend = document.querySelector(`#shardmap li[data-node="${drained}"]`);
const cls = legend ? legend.dataset.class : null;
const moves = Array.from(document.querySelectorAll('#history li[data-change="ownership"]'))
  .map((li) => li.textContent)
  .filter((text) => text.includes(`${drained} →`));
const result = document.querySelector('#action-result');
return {
  rows: document.querySelectorAll('#nodes tr[data-node]').length,
  shards: row ? Number(row.querySelector('td[data-shards]').dataset.shards) : null,
  cells: cls ? document.querySelectorAll(`#shardmap .shardmap i.${cls}`).length : null,
  total_cells: document.querySelectorAll('#shardmap .shardmap i').length,
  moves: moves,
  result: result ? result.textContent : null,
  marker: window.__consoleMarker || null,
  time_origin: performance.timeOrigin,
  navigations: performance.getEntriesByType('navigation').length,
  url: location.pathname,
};
"#;

async fn browser() -> Option<Browser> {
    match Browser::start().await {
        Ok(browser) => Some(browser),
        Err(BrowserError::Unavailable(reason)) => service_unavailable(&reason),
        Err(error) => panic!("the browser did not start: {error}"),
    }
}

/// The page's state, or `None` while it cannot be read (a navigation in progress).
async fn read_page(browser: &Browser) -> Option<Value> {
    browser.execute(READ_PAGE, vec![json!(DRAINED)]).await.ok()
}

/// Poll the page until `done` holds; the last state read, and whether it held.
async fn wait_for_page(
    browser: &Browser,
    deadline: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, bool) {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < deadline {
        if let Some(state) = read_page(browser).await {
            if done(&state) {
                return (state, true);
            }
            last = state;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (last, false)
}

fn artefact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artefacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artefacts");
    dir.join(name)
}

async fn save_screenshot(browser: &Browser, name: &str) {
    // Tall enough for the whole dashboard, history included.
    if let Err(error) = browser.set_window_size(1400, 1700).await {
        eprintln!("console: the window keeps its size: {error}");
    }
    match browser.screenshot_png().await {
        Ok(png) => {
            let path = artefact(name);
            std::fs::write(&path, png).expect("write the screenshot");
            eprintln!("console: screenshot saved to {}", path.display());
        }
        Err(error) => eprintln!("console: no screenshot: {error}"),
    }
}

/// Click node 3's drain button, finding it again if a refresh replaced it meanwhile.
async fn click_drain(browser: &Browser) {
    let css = format!(r#"button[data-drain="{DRAINED}"]"#);
    let mut last_error = None;
    for _ in 0..20 {
        let attempt = match browser.find(&css).await {
            Ok(button) => browser.click(&button).await,
            Err(error) => Err(error),
        };
        match attempt {
            Ok(()) => return,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the drain button of {DRAINED} could not be clicked: {last_error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_drains_a_node_from_the_console_and_watches_its_shards_move() {
    let Some(browser) = browser().await else {
        return;
    };
    let Some(stream) = TestStream::create().await else {
        return;
    };
    let Some(cluster) = Cluster::start_with_events(TestStore::Postgres, 3, Arc::new(stream)).await
    else {
        return;
    };
    let base = cluster.members[0].base();

    // Log in through the form.
    browser
        .goto(&format!("{base}/console"))
        .await
        .expect("open /console");
    let email = browser
        .find(r#"input[name="email"]"#)
        .await
        .expect("the login form");
    browser.send_keys(&email, ADMIN_EMAIL).await.unwrap();
    let password = browser.find(r#"input[name="password"]"#).await.unwrap();
    browser.send_keys(&password, ADMIN_PASSWORD).await.unwrap();
    let submit = browser.find(r#"button[type="submit"]"#).await.unwrap();
    browser.click(&submit).await.unwrap();

    // The dashboard fills itself from the stream: three nodes, every shard on the map.
    let (before, shown) = wait_for_page(&browser, DASHBOARD_DEADLINE, |page| {
        page["rows"] == 3
            && page["total_cells"] == SHARD_COUNT
            && page["shards"].as_u64().is_some_and(|shards| shards > 0)
            && page["cells"] == page["shards"]
    })
    .await;
    if !shown {
        save_screenshot(&browser, "console-drain-failed.png").await;
    }
    assert!(shown, "the dashboard never showed three nodes: {before:#}");
    assert_eq!(before["url"], "/console");
    eprintln!(
        "console: {DRAINED} holds {} shards before the drain",
        before["shards"]
    );

    // A marker in the page: a reload or a navigation would lose it.
    let origin = browser
        .execute(
            "window.__consoleMarker = 'before-drain'; return performance.timeOrigin;",
            vec![],
        )
        .await
        .unwrap();

    click_drain(&browser).await;
    let clicked = Instant::now();
    let (after, drained) = wait_for_page(&browser, DRAIN_DEADLINE, |page| {
        page["shards"] == 0
            && page["cells"] == 0
            && !page["moves"].as_array().is_none_or(Vec::is_empty)
    })
    .await;
    save_screenshot(&browser, "console-drain.png").await;
    assert!(
        drained,
        "the page never showed {DRAINED} drained (shards 0, no cell, moves in the history): {after:#}"
    );
    eprintln!(
        "console: drained on the page {:.1?} after the click; moves: {}; result: {}",
        clicked.elapsed(),
        after["moves"],
        after["result"]
    );
    assert_eq!(after["rows"], 3, "the drained node stays listed");
    assert_eq!(after["total_cells"], SHARD_COUNT);
    assert_eq!(after["marker"], "before-drain", "the page was reloaded");
    assert_eq!(after["time_origin"], origin, "the page was reloaded");
    assert_eq!(after["navigations"], 1);
    assert_eq!(after["url"], "/console");

    // The drain's own answer is shown once it returned.
    let (answered, shown) = wait_for_page(&browser, Duration::from_secs(20), |page| {
        page["result"]
            .as_str()
            .is_some_and(|text| text.contains(&format!("Drained {DRAINED}")))
    })
    .await;
    assert!(shown, "the drain's answer was never shown: {answered:#}");

    // The API agrees with the page.
    let view = cluster.view(0).await;
    let node = view["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|node| node["node_id"] == DRAINED))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(node["shards_owned"], 0, "{view:#}");
    browser.quit().await;
}
