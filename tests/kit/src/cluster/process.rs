//! One `emporium` process: what it is started with ([`NodeSpec`]), starting it and learning
//! its URL, and the real faults a test or a bench inflicts on it (`kill -9`, `SIGSTOP` /
//! `SIGCONT`, `SIGTERM`).
//!
//! Each node gets its own data dir and an OS-chosen HTTP port: it prints the URL it serves
//! on (`… serving on http://…`), which is how the kit learns the port. A [`NodeProcess`]
//! kills its process when dropped, so a panicking test or bench leaves no node behind.
//!
//! **Which binary.** The kit is a library, so it cannot name the binary cargo built for the
//! caller (`CARGO_BIN_EXE_emporium` exists only in the emporium package's own tests and
//! benches). [`default_binary`] is, in order: the one given to [`set_default_binary`],
//! `EMPORIUM_BIN`, or the `emporium` cargo put beside the running executable (an
//! integration test runs from `target/<profile>/deps/`, a binary from `target/<profile>/`:
//! both find `target/<profile>/emporium`, the file `CARGO_BIN_EXE_emporium` names).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a node may take to print its URL.
const START_DEADLINE: Duration = Duration::from_secs(60);

static DEFAULT_BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Make `binary` the `emporium` every later [`NodeSpec::embedded`] launches (first call wins).
pub fn set_default_binary(binary: impl Into<PathBuf>) {
    let _ = DEFAULT_BINARY.set(binary.into());
}

/// The `emporium` binary nodes are started from (see the module documentation).
pub fn default_binary() -> PathBuf {
    if let Some(binary) = DEFAULT_BINARY.get() {
        return binary.clone();
    }
    if let Some(binary) = std::env::var_os("EMPORIUM_BIN") {
        return PathBuf::from(binary);
    }
    beside_current_exe().unwrap_or_else(|| PathBuf::from("emporium"))
}

fn beside_current_exe() -> Option<PathBuf> {
    binary_beside(&std::env::current_exe().ok()?)
}

/// `target/<profile>/emporium` for an executable in `target/<profile>/` or its `deps/` or
/// `examples/`.
fn binary_beside(exe: &Path) -> Option<PathBuf> {
    let mut dir = exe.parent()?;
    if dir
        .file_name()
        .is_some_and(|name| name == "deps" || name == "examples")
    {
        dir = dir.parent()?;
    }
    Some(dir.join(format!("emporium{}", std::env::consts::EXE_SUFFIX)))
}

/// A node's settings before start.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The `emporium` executable.
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// A command the node runs under, e.g. `ip netns exec NS` (which execs in place, so the
    /// child's pid is the node's and signals reach it). Empty: the node runs directly.
    pub launcher: Vec<String>,
    /// Command-line arguments after the binary (flags win over the environment).
    pub args: Vec<String>,
    /// Where the node's stderr (its log) goes; `None`: this process's stderr.
    pub log: Option<PathBuf>,
}

impl NodeSpec {
    /// A node on the embedded store in `data_dir`, started from [`default_binary`].
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            binary: default_binary(),
            data_dir: data_dir.to_owned(),
            env: Vec::new(),
            launcher: Vec::new(),
            args: Vec::new(),
            log: None,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The value of `key` the node gets (the last setting wins), if set.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
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
        let mut command = node_command(&spec.binary, &spec.launcher);
        command
            .env("EMPORIUM_HTTP_ADDR", "127.0.0.1:0")
            .env("EMPORIUM_DATA_DIR", &spec.data_dir)
            .env("EMPORIUM_LOG", "warn")
            .env("EMPORIUM_NODE_ID", "test-node")
            // Loads come from one client address; tests of the limiter set their own limit
            // (a later setting of the same variable wins).
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

    /// Start the node and wait (at most a minute) until it prints the URL it serves on.
    pub async fn start(spec: NodeSpec) -> NodeProcess {
        crate::install_crypto_provider();
        let mut command = Self::command(&spec);
        command.stdout(Stdio::piped()).stderr(log_target(&spec));
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", spec.binary.display()));
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
    pub fn thaw_after(&self, delay: Duration) -> tokio::task::JoinHandle<()> {
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

    /// `SIGTERM`, then at most `deadline` for the exit status; `None` (and the process
    /// killed) if it still runs then. For benches, which report a slow stop instead of
    /// failing on it.
    pub async fn terminate_within(
        mut self,
        deadline: Duration,
    ) -> Option<std::process::ExitStatus> {
        signal(self.pid(), libc::SIGTERM);
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        }
    }
}

/// The node's stderr: this process's, or appended to the spec's log file.
fn log_target(spec: &NodeSpec) -> Stdio {
    let Some(path) = &spec.log else {
        return Stdio::inherit();
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_or_else(|_| Stdio::inherit(), Stdio::from)
}

/// `binary`, under `launcher` when there is one.
pub fn node_command(binary: &Path, launcher: &[String]) -> Command {
    match launcher.split_first() {
        None => Command::new(binary),
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: plain kill(2) on a child we spawned and have not reaped.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_found_in_the_profile_dir_of_tests_examples_and_binaries() {
        let expected = PathBuf::from(format!(
            "/t/release/emporium{}",
            std::env::consts::EXE_SUFFIX
        ));
        for exe in [
            "/t/release/deps/blackbox-0123",
            "/t/release/examples/sections",
            "/t/release/bench",
        ] {
            assert_eq!(
                binary_beside(Path::new(exe)),
                Some(expected.clone()),
                "{exe}"
            );
        }
    }

    #[test]
    fn the_last_setting_of_a_variable_is_the_one_the_node_gets() {
        let spec = NodeSpec::embedded(Path::new("/data"))
            .env("EMPORIUM_LOG", "warn")
            .env("EMPORIUM_LOG", "info");
        assert_eq!(spec.env_value("EMPORIUM_LOG"), Some("info"));
        assert_eq!(spec.env_value("EMPORIUM_STORE"), None);
    }
}
