//! The black-box test kit: start real `emporium` processes and talk HTTP to them.
//!
//! Each node gets its own temporary data dir and an OS-chosen port (it prints the URL it
//! serves on, which is how the kit learns the port). Faults are real signals: `kill -9`,
//! `SIGSTOP`/`SIGCONT`, `SIGTERM`. Waits poll under a deadline instead of sleeping.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a node may take to print its URL.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A node's settings before start.
#[derive(Clone)]
pub struct NodeSpec {
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// A command the node runs under, e.g. `ip netns exec NS` (which execs in place, so the
    /// child's pid is the node's and signals reach it). Empty: the node runs directly.
    pub launcher: Vec<String>,
    /// Command-line arguments after the binary (flags win over the environment).
    pub args: Vec<String>,
}

impl NodeSpec {
    /// A node on the embedded store in `data_dir`.
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            env: Vec::new(),
            launcher: Vec::new(),
            args: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running `emporium` process. Dropping it kills it.
pub struct NodeProcess {
    child: Child,
    pub base: String,
    pub spec: NodeSpec,
}

impl NodeProcess {
    /// The node's command with the kit's defaults and `spec`'s settings (later settings of
    /// the same variable win).
    fn command(spec: &NodeSpec) -> Command {
        let mut command = node_command(&spec.launcher);
        command
            .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
            .env("EMPORIUM_DATA_DIR", &spec.data_dir)
            .env("EMPORIUM_LOG", "warn")
            .env("EMPORIUM_NODE_ID", "test-node")
            // Loads in these tests come from one client address; tests of the limiter set
            // their own limit (a later setting of the same variable wins).
            .env("EMPORIUM_RATE_LIMIT", "off")
            .envs(spec.env.iter().map(|(key, value)| (key, value)))
            .args(&spec.args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Run a node that is expected to stop by itself: its exit status, stdout and stderr, or
    /// `None` (and the node killed) if it still runs after `deadline`.
    pub async fn run_to_exit(
        spec: &NodeSpec,
        deadline: Duration,
    ) -> Option<(std::process::ExitStatus, String, String)> {
        let mut command = Self::command(spec);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().expect("spawn emporium");
        // On timeout the future is dropped, and with it the child (killed on drop).
        let output = tokio::time::timeout(deadline, child.wait_with_output())
            .await
            .ok()?
            .expect("collect the node's output");
        Some((
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    pub async fn start(spec: NodeSpec) -> NodeProcess {
        emporium::install_crypto_provider();
        let mut command = Self::command(&spec);
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn emporium");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read node stdout") {
                if let Some((_, url)) = line.split_once("serving on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("node exited before serving");
        })
        .await
        .expect("node printed its URL in time");
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodeProcess { child, base, spec }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub async fn kill9(mut self) -> NodeSpec {
        signal(self.pid(), libc::SIGKILL);
        let _ = self.child.wait().await;
        self.spec.clone()
    }

    /// `SIGSTOP`: the process freezes (its sockets stay open, requests queue in the kernel).
    pub fn freeze(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// `SIGCONT` after [`NodeProcess::freeze`].
    pub fn thaw(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// `SIGCONT` after `delay`, from a task of its own (while the test waits on something
    /// else, e.g. a node joining).
    pub fn thaw_after(&self, delay: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let pid = self.pid();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            signal(pid, libc::SIGCONT);
        })
    }

    /// Whether the process has exited (by itself or killed), without waiting.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status, if the process exits by itself within `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .ok()
            .map(|status| status.expect("wait for node"))
    }

    /// `SIGTERM`, without waiting (see [`NodeProcess::wait_exit`]).
    pub fn sigterm(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// `SIGTERM`, then wait for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("node exits after SIGTERM")
            .expect("wait for node")
    }
}

/// The `emporium` binary, under `launcher` when there is one.
pub fn node_command(launcher: &[String]) -> Command {
    match launcher.split_first() {
        None => Command::new(env!("CARGO_BIN_EXE_emporium")),
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(env!("CARGO_BIN_EXE_emporium"));
            command
        }
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: plain kill(2) on a child we spawned and have not reaped.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal})");
}

/// A JSON-over-HTTP client for one node.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base: String,
}

/// A response, reduced to what tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// Assert a problem+json answer with `status`; returns its detail.
    pub fn expect_problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        self.body["detail"].as_str().expect("detail").to_owned()
    }
}

impl Api {
    pub fn new(node: &NodeProcess) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: node.base.clone(),
        }
    }

    /// A client for `base` (any node, any address) sending through `client`.
    pub fn with_client(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.to_owned(),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)))
            .await
    }

    /// A PUT that reports a transport failure instead of panicking (for loads that run
    /// into a kill).
    pub async fn put(&self, path: &str, body: &Value) -> Result<Answer, reqwest::Error> {
        self.try_send(self.client.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Send raw bytes with a content type, for malformed-input tests.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        self.try_send(request)
            .await
            .expect("request reaches the node")
    }

    pub async fn try_send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            content_type,
            body,
            headers,
        })
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, 200);
        answer.body.as_str().unwrap_or_default().to_owned()
    }

    /// Create a guest cart; returns its id.
    pub async fn new_cart(&self) -> String {
        let answer = self.post_empty("/v1/carts").await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().expect("cart id").to_owned()
    }

    /// Add `quantity` of `sku` to `cart` (`POST /v1/carts/{cart}/items`).
    pub async fn add_item(&self, cart: &str, sku: &str, quantity: u32) -> Answer {
        self.post(
            &format!("/v1/carts/{cart}/items"),
            &serde_json::json!({"sku": sku, "quantity": quantity}),
        )
        .await
    }
}

/// The value of a Prometheus sample line `name{labels} value`, summed over matching lines.
pub fn metric_sum(metrics: &str, name: &str, label_filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|metric| metric == name)
        })
        .filter(|line| line.contains(label_filter))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Poll `check` until it holds or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
