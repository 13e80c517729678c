//! A minimal W3C WebDriver client for browser tests: it starts `chromedriver` on a free
//! loopback port, opens one headless Chromium session, and speaks the WebDriver JSON
//! protocol over HTTP (reqwest, already in the build): navigate, find elements by CSS,
//! type, click, read text, run a script, take a screenshot.
//!
//! [`Browser::start`] answers [`BrowserError::Unavailable`] when no `chromedriver` or no
//! Chromium is installed (Debian: `chromium`, `chromium-driver`; `scripts/services.sh`
//! installs them), so that a test can report itself skipped. `EMPORIUM_CHROMEDRIVER` and
//! `EMPORIUM_CHROMIUM` name other binaries.
//!
//! Cleanup: [`Browser::quit`] ends the session (Chromium exits) and the driver. Dropped
//! without it (a failed test), the session is deleted with one blocking request and the
//! driver is killed, so no Chromium outlives the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long the driver may take to answer `/status` after it was started.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How long one WebDriver command may take (starting Chromium is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong talking to the browser.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// No driver or no browser on this machine: the test is skipped.
    #[error("browser unavailable: {0}")]
    Unavailable(String),
    /// The driver answered a WebDriver error (`error` is its code, e.g. `no such element`).
    #[error("{command}: {error}: {message}")]
    Driver {
        command: String,
        error: String,
        message: String,
    },
    #[error("{command}: {reason}")]
    Transport { command: String, reason: String },
}

impl BrowserError {
    /// The element was replaced in the page since it was found (find it again).
    pub fn is_stale(&self) -> bool {
        matches!(self, Self::Driver { error, .. } if error == "stale element reference")
    }
}

/// One headless Chromium session behind its own chromedriver.
pub struct Browser {
    http: reqwest::Client,
    driver_addr: SocketAddr,
    session: String,
    driver: Child,
}

/// An element of the page (valid until the page replaces it).
#[derive(Clone, Debug)]
pub struct Element {
    id: String,
}

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| candidates.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Start chromedriver and a headless Chromium session (1400×1000 window).
    pub async fn start() -> Result<Browser, BrowserError> {
        let driver_path = find_binary("EMPORIUM_CHROMEDRIVER", &["chromedriver"])
            .ok_or_else(|| BrowserError::Unavailable("no chromedriver on PATH".to_owned()))?;
        let chromium = find_binary(
            "EMPORIUM_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .ok_or_else(|| BrowserError::Unavailable("no chromium on PATH".to_owned()))?;
        let port = free_port()?;
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                BrowserError::Unavailable(format!(
                    "{} cannot start: {error}",
                    driver_path.display()
                ))
            })?;
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .map_err(|error| transport("client", error))?;
        let mut browser = Browser {
            http,
            driver_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            driver,
        };
        browser.wait_for_driver().await?;
        browser.session = browser.new_session(&chromium).await?;
        Ok(browser)
    }

    async fn wait_for_driver(&self) -> Result<(), BrowserError> {
        let deadline = tokio::time::Instant::now() + DRIVER_START;
        loop {
            let ready = self
                .http
                .get(format!("http://{}/status", self.driver_addr))
                .send()
                .await;
            if let Ok(answer) = ready
                && let Ok(body) = answer.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::Unavailable(format!(
                    "chromedriver did not answer on {} within {DRIVER_START:?}",
                    self.driver_addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&self, chromium: &Path) -> Result<String, BrowserError> {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let url = format!("http://{}/session", self.driver_addr);
        let value = match self
            .call("new session", self.http.post(url).json(&capabilities))
            .await
        {
            Ok(value) => value,
            // A driver that cannot start its browser means no usable browser here.
            Err(BrowserError::Driver { message, .. }) => {
                return Err(BrowserError::Unavailable(format!(
                    "chromium does not start: {message}"
                )));
            }
            Err(error) => return Err(error),
        };
        value["sessionId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| protocol("new session", &value))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/session/{}{path}", self.driver_addr, self.session)
    }

    /// Send one command; its `value`, or the driver's error.
    async fn call(
        &self,
        command: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, BrowserError> {
        let answer = request
            .send()
            .await
            .map_err(|error| transport(command, error))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|error| transport(command, error))?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(BrowserError::Driver {
            command: command.to_owned(),
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn post(&self, command: &str, path: &str, body: Value) -> Result<Value, BrowserError> {
        self.call(command, self.http.post(self.url(path)).json(&body))
            .await
    }

    async fn get(&self, command: &str, path: &str) -> Result<Value, BrowserError> {
        self.call(command, self.http.get(self.url(path))).await
    }

    /// Load `url` (waits for the page's load event).
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.post("navigate", "/url", json!({ "url": url })).await?;
        Ok(())
    }

    /// The first element matching `css`.
    pub async fn find(&self, css: &str) -> Result<Element, BrowserError> {
        let value = self
            .post(
                &format!("find {css}"),
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        element(&value).ok_or_else(|| protocol("find", &value))
    }

    /// Every element matching `css` (none is not an error).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, BrowserError> {
        let value = self
            .post(
                &format!("find all {css}"),
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(value
            .as_array()
            .map(|elements| elements.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    /// Type `text` into `element`.
    pub async fn send_keys(&self, element: &Element, text: &str) -> Result<(), BrowserError> {
        self.post(
            "send keys",
            &format!("/element/{}/value", element.id),
            json!({ "text": text }),
        )
        .await?;
        Ok(())
    }

    /// Click `element` as a user would (scrolled into view; refused if covered).
    pub async fn click(&self, element: &Element) -> Result<(), BrowserError> {
        self.post(
            "click",
            &format!("/element/{}/click", element.id),
            json!({}),
        )
        .await?;
        Ok(())
    }

    /// The rendered text of `element`.
    pub async fn text(&self, element: &Element) -> Result<String, BrowserError> {
        let value = self
            .get("text", &format!("/element/{}/text", element.id))
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) in the page; its return
    /// value as JSON.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        self.post(
            "execute script",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The page's current URL.
    pub async fn current_url(&self) -> Result<String, BrowserError> {
        let value = self.get("current url", "/url").await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Resize the window (e.g. taller, to get a whole page in a screenshot).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<(), BrowserError> {
        self.post(
            "set window rect",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await?;
        Ok(())
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>, BrowserError> {
        let value = self.get("screenshot", "/screenshot").await?;
        let encoded = value
            .as_str()
            .ok_or_else(|| protocol("screenshot", &value))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| transport("screenshot", error))
    }

    /// End the session (Chromium exits) and stop the driver.
    pub async fn quit(mut self) {
        let url = self.url("");
        let _ = self.http.delete(url).send().await;
        self.session.clear();
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    /// A test that failed did not call [`Browser::quit`]: delete the session with a plain
    /// blocking request (no runtime is needed in a destructor), then kill the driver.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            delete_session_blocking(self.driver_addr, &self.session);
        }
        let _ = self.driver.start_kill();
    }
}

fn delete_session_blocking(driver: SocketAddr, session: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(&driver, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: {driver}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

fn element(value: &Value) -> Option<Element> {
    value[ELEMENT_KEY]
        .as_str()
        .map(|id| Element { id: id.to_owned() })
}

fn free_port() -> Result<u16, BrowserError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| transport("free port", error))
}

fn transport(command: &str, error: impl std::fmt::Display) -> BrowserError {
    BrowserError::Transport {
        command: command.to_owned(),
        reason: error.to_string(),
    }
}

fn protocol(command: &str, value: &Value) -> BrowserError {
    BrowserError::Transport {
        command: command.to_owned(),
        reason: format!("unexpected answer {value}"),
    }
}
