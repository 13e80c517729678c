//! A bad configuration value stops the node at start with a message naming the field.

use std::process::Stdio;

async fn start_with(key: &str, value: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .env("EMPORIUM_DATA_DIR", dir.path())
        .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
        .env(key, value)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run emporium");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_stop_the_node_naming_the_field() {
    for (key, value) in [
        ("EMPORIUM_IDLE_TIMEOUT", "5 minutes please"),
        ("EMPORIUM_HTTP_ADDR", "not-an-address"),
        ("EMPORIUM_STORE", "mongodb://nope"),
        ("EMPORIUM_DEMO", "maybe"),
        ("EMPORIUM_MAX_ACTIVE_ACTORS", "0"),
    ] {
        let (succeeded, stderr) = start_with(key, value).await;
        assert!(!succeeded, "{key}={value} must stop the node");
        assert!(stderr.contains(key), "{key} named in: {stderr}");
    }
}
