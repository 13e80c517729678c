//! `emporium ctl` against a real cluster: three nodes on PostgreSQL serving the admin gRPC
//! API, the real binary run as a script would run it. The view, an actor's owner (the same
//! as the HTTP route's), a drain watched live by `events --follow`, the exit codes, and an
//! admin's access token refused once logged out.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::checkout::Shop;
use crate::cluster_kit::{ADMIN_EMAIL, ADMIN_PASSWORD, Cluster, SHARD_COUNT, free_port};
use crate::stores::TestStore;

const TOKEN: &str = "ctl-blackbox-admin-token-0123456789abcdef";
/// Longest a ctl call may take (a drain hands over a third of the shards).
const CALL_DEADLINE: Duration = Duration::from_secs(90);

/// `emporium ctl --addr ADDR ARGS...` with the token in the environment, as a script would.
fn ctl(addr: &str, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emporium"));
    command
        .arg("ctl")
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("EMPORIUM_ADMIN_ADDR")
        .env("EMPORIUM_ADMIN_TOKEN", token)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Run to the end: (exit code, stdout, stderr).
async fn run(mut command: Command) -> (i32, String, String) {
    let output = tokio::time::timeout(CALL_DEADLINE, command.output())
        .await
        .expect("ctl answered in time")
        .expect("ctl runs");
    (
        output.status.code().expect("ctl exited (not killed)"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn run_json(addr: &str, args: &[&str]) -> Value {
    let (code, out, err) = run(ctl(addr, TOKEN, args)).await;
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ctl {args:?}: {e}: {out}"))
}

/// `ctl events --follow --json` as a child: its lines, parsed, as they come.
fn follow_events(addr: &str) -> (tokio::process::Child, mpsc::UnboundedReceiver<Value>) {
    let mut command = ctl(addr, TOKEN, &["events", "--follow", "--json"]);
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command.spawn().expect("spawn ctl events");
    let stdout = child.stdout.take().expect("stdout piped");
    let (lines, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("events: not JSON ({e}): {line}"));
            if lines.send(value).is_err() {
                break;
            }
        }
    });
    (child, received)
}

/// The next line matching `wanted` within 60 s; every line seen is kept in `seen`.
async fn wait_for_line(
    lines: &mut mpsc::UnboundedReceiver<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.recv().await {
            seen.push(line.clone());
            if wanted(&line) {
                return Some(line);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        _ => panic!("events: no {what}; lines so far: {seen:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctl_operates_a_three_node_cluster() {
    let Some(cluster) = Cluster::start_with_admin_api(TestStore::Postgres, 3, TOKEN).await else {
        return;
    };
    let addr = cluster.admin_addr(0).to_string();

    // The cluster as a document: three nodes, every shard owned once.
    let view = run_json(&addr, &["cluster", "--json"]).await;
    assert_eq!(view["mode"], "cluster", "{view:#}");
    assert_eq!(view["shard_count"], SHARD_COUNT, "{view:#}");
    let nodes = view["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{view:#}");
    let owned: u64 = nodes
        .iter()
        .map(|node| node["shards_owned"].as_u64().expect("shards_owned"))
        .sum();
    assert_eq!(owned, SHARD_COUNT, "{view:#}");
    let (code, table, err) = run(ctl(&addr, TOKEN, &["cluster"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("NODE") && table.contains("node-3"),
        "{table}"
    );

    // An actor's owner: the one the HTTP admin route names.
    let cart = cluster.api(1).new_cart().await;
    let http_owner = cluster.owner_of(2, "cart", &cart).await.expect("an owner");
    let location = run_json(&addr, &["actor", "cart", &cart, "--json"]).await;
    assert_eq!(location["owner"], http_owner.as_str(), "{location:#}");
    assert_eq!(location["active"], true, "{location:#}");
    let (code, text, err) = run(ctl(&addr, TOKEN, &["actor", "cart", &cart])).await;
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&http_owner), "{text}");

    // A drain of node-3, watched live through node-1.
    let (mut follower, mut lines) = follow_events(&addr);
    let mut seen = Vec::new();
    wait_for_line(&mut lines, &mut seen, "caught_up marker", |line| {
        line["type"] == "caught_up"
    })
    .await;
    let history = seen.len() - 1;
    eprintln!("ctl events: {history} events of history before the drain");
    let drained = run_json(&addr, &["drain", "node-3", "--json"]).await;
    assert_eq!(drained["node_id"], "node-3", "{drained:#}");
    assert_eq!(drained["shards_left"], 0, "{drained:#}");
    assert!(drained["shards_at_start"].as_u64() > Some(0), "{drained:#}");
    let moved = wait_for_line(
        &mut lines,
        &mut seen,
        "ownership move from node-3",
        |line| line["type"] == "ownership" && line["from"] == "node-3",
    )
    .await;
    assert!(moved["seq"].as_u64().is_some() && moved["at_ms"].as_u64().is_some());
    eprintln!("ctl events: {moved}");
    follower.kill().await.expect("stop the follower");
    let view = run_json(&addr, &["cluster", "--json"]).await;
    let node3 = view["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|node| node["node_id"] == "node-3"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(node3["shards_owned"], 0, "{view:#}");

    // Exit codes scripts rely on.
    let (code, _, err) = run(ctl(&addr, "not-the-token", &["cluster"])).await;
    assert_eq!(code, 4, "bad token: {err}");
    // An admin's access token works until its holder logs out, then at once no more.
    let shop = Shop::with_admin(cluster.members[0].running(), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (code, _, err) = run(ctl(&addr, &shop.admin, &["cluster"])).await;
    assert_eq!(code, 0, "an admin's access token: {err}");
    let logout = shop.post("/v1/auth/logout", Some(&shop.admin), None).await;
    assert_eq!(logout.status, 204, "logout: {logout:?}");
    let (code, _, err) = run(ctl(&addr, &shop.admin, &["cluster"])).await;
    assert_eq!(code, 4, "a logged-out admin's token: {err}");
    assert!(err.contains("logged out"), "{err}");
    let (code, _, err) = run(ctl(&addr, TOKEN, &["drain", "node-9"])).await;
    assert_eq!(code, 5, "unknown node: {err}");
    let (code, _, err) = run(ctl(&addr, TOKEN, &["actor", "no-such-kind", "x"])).await;
    assert_eq!(code, 5, "unknown kind: {err}");
    let (code, _, err) = run(ctl(&addr, TOKEN, &["frobnicate"])).await;
    assert_eq!(code, 2, "usage: {err}");
    let ip = cluster.admin_addr(0).ip();
    let nobody = format!("{ip}:{}", free_port(ip));
    let (code, _, err) = run(ctl(&nobody, TOKEN, &["cluster", "--timeout", "5s"])).await;
    assert_eq!(code, 3, "nothing listening: {err}");
}
