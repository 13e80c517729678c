//! The load generator: the same for the ceiling and for Emporium, and lean, so that it is
//! not what limits the figures.
//!
//! [`drive`] opens `connections` HTTP/1.1 keep-alive connections (a bare hyper 1 client: no
//! pool, no redirects, no decompression), spread over `threads` OS threads of its own, each
//! a single-threaded tokio runtime, apart from the runtime serving the node under test. Every
//! connection runs operations back to back (a closed loop); an operation is one or more
//! requests ([`Script::op`]) and succeeds when every answer is 2xx. It stops at the window's
//! end or once `max_ops` operations have started. Latency is per operation, kept whole for
//! the percentiles.
//!
//! The generator measures its own CPU time (`getrusage(RUSAGE_THREAD)` of its threads) and
//! the process's (`RUSAGE_SELF`, the servers included) over the same wall time, printed
//! beside the figures: a generator near one core per thread is the bottleneck.
//!
//! [`drive_tasks`] is the same closed loop for figures without HTTP (the runtime, the
//! stores): async operations on the caller's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How much load one figure gets.
#[derive(Clone, Debug)]
pub struct Load {
    pub connections: usize,
    /// OS threads of the generator (connections are spread over them).
    pub threads: usize,
    pub window: Duration,
    /// Operations started at most.
    pub max_ops: u64,
}

/// One request of an operation.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/v1/products/SKU-MUG`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Bytes>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A request with a JSON body.
    pub fn json(method: Method, path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Some(body.into()),
        }
    }

    /// A request without a body (e.g. `POST /v1/carts`).
    pub fn empty(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// With `Authorization: Bearer <token>` (a token that is not a valid header value is
    /// left out, and the server's 401 counts as a failure).
    pub fn bearer(self, token: &str) -> Self {
        self.header(AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// With one more header (left out when `value` is not a valid header value).
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    fn request(&self, host: &HeaderValue) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, host.clone());
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(self.body.clone().unwrap_or_default()))
    }
}

/// What a connection sends: the requests of its `n`-th operation (counted per connection).
pub trait Script: Send + Sync + 'static {
    fn op(&self, connection: usize, n: u64) -> Vec<Call>;
}

impl<F> Script for F
where
    F: Fn(usize, u64) -> Vec<Call> + Send + Sync + 'static,
{
    fn op(&self, connection: usize, n: u64) -> Vec<Call> {
        self(connection, n)
    }
}

/// The outcome of one figure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that did not (a non-2xx answer, a broken connection).
    pub failed: u64,
    /// Wall time, from the first operation to the last one's end.
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU the load generator used, in cores (CPU seconds per wall second); `None` when the
    /// operations ran on the measured process's own runtime.
    pub driver_cores: Option<f64>,
    /// CPU the whole process used meanwhile (servers and generator), in cores.
    pub process_cores: f64,
    /// The first failure seen, to say what went wrong.
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn ops_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Failures and CPU use, for a row's note.
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        if self.failed > 0 {
            let error = self.first_error.as_deref().unwrap_or("");
            parts.push(format!("{} failed ({error})", self.failed));
        }
        match self.driver_cores {
            Some(driver) => parts.push(format!(
                "cpu: load generator {:.0}%, process {:.0}%",
                driver * 100.0,
                self.process_cores * 100.0
            )),
            None => parts.push(format!("cpu: process {:.0}%", self.process_cores * 100.0)),
        }
        parts.join("; ")
    }

    /// `ops` done in `secs`, with nothing else known (a figure measured elsewhere).
    pub fn counted(ops: u64, secs: f64) -> Self {
        Self {
            ops,
            secs,
            ..Self::default()
        }
    }
}

/// Why a figure could not be measured at all.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("cannot start the load generator: {0}")]
    Start(std::io::Error),
    #[error("a load generator thread panicked")]
    Panicked,
}

/// What one connection (or one task) counted.
#[derive(Default)]
struct Tally {
    ops: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.ops += 1;
                let us = started.elapsed().as_micros();
                self.latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(error) => {
                self.failed += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.failed += other.failed;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn into_measurement(mut self, secs: f64, driver: Option<f64>, process: f64) -> Measurement {
        self.latencies_us.sort_unstable();
        Measurement {
            ops: self.ops,
            failed: self.failed,
            secs,
            p50_ms: percentile_ms(&self.latencies_us, 0.50),
            p99_ms: percentile_ms(&self.latencies_us, 0.99),
            driver_cores: driver,
            process_cores: process,
            first_error: self.first_error,
        }
    }
}

/// The `p`-th percentile (`0.0..=1.0`) of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[rank.min(sorted_us.len() - 1)]) / 1000.0
}

/// Run `script` against the HTTP server at `addr` with `load`. Runs on threads of its own;
/// the caller's runtime keeps serving meanwhile.
pub async fn drive(
    addr: SocketAddr,
    load: &Load,
    script: Arc<dyn Script>,
) -> Result<Measurement, DriveError> {
    let load = load.clone();
    tokio::task::spawn_blocking(move || drive_on_threads(addr, &load, &script))
        .await
        .map_err(|_| DriveError::Panicked)?
}

/// What one generator thread hands back.
type ThreadOutcome = Result<(Tally, f64), DriveError>;

fn drive_on_threads(
    addr: SocketAddr,
    load: &Load,
    script: &Arc<dyn Script>,
) -> Result<Measurement, DriveError> {
    let threads = load.threads.clamp(1, load.connections.max(1));
    // Every thread connects first; the clock starts once all are connected.
    let ready = Arc::new(Barrier::new(threads + 1));
    let started = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for thread in 0..threads {
        let connections: Vec<usize> = (thread..load.connections).step_by(threads).collect();
        let (script, ready, started, load) = (
            Arc::clone(script),
            Arc::clone(&ready),
            Arc::clone(&started),
            load.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("bench-driver-{thread}"))
            .spawn(move || generator_thread(addr, connections, &load, script, &ready, &started))
            .map_err(DriveError::Start)?;
        handles.push(handle);
    }
    ready.wait();
    let begun = Instant::now();
    let process_before = cpu_seconds(Who::Process);
    let mut total = Tally::default();
    let mut driver_cpu = 0.0;
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok((tally, cpu))) => {
                total.merge(tally);
                driver_cpu += cpu;
            }
            Ok(Err(error)) => failure = failure.or(Some(error)),
            Err(_) => failure = failure.or(Some(DriveError::Panicked)),
        }
    }
    let secs = begun.elapsed().as_secs_f64();
    let process = (cpu_seconds(Who::Process) - process_before) / secs;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(total.into_measurement(secs, Some(driver_cpu / secs), process))
}

/// One generator thread: connect its connections, wait for the others, run them to the end.
/// Returns the tally and the thread's CPU seconds while running.
fn generator_thread(
    addr: SocketAddr,
    connections: Vec<usize>,
    load: &Load,
    script: Arc<dyn Script>,
    ready: &Barrier,
    started: &Arc<AtomicU64>,
) -> ThreadOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            ready.wait();
            return Err(DriveError::Start(error));
        }
    };
    let connected = runtime.block_on(connect_all(addr, connections.len()));
    // Always meet the others at the barrier, connected or not, or they would wait forever.
    ready.wait();
    let senders = connected?;
    let cpu_before = cpu_seconds(Who::Thread);
    let deadline = Instant::now() + load.window;
    let tally = runtime.block_on(async {
        let tasks: Vec<_> = senders
            .into_iter()
            .zip(connections)
            .map(|(sender, connection)| {
                let run = Connection {
                    addr,
                    sender,
                    script: Arc::clone(&script),
                    connection,
                    deadline,
                    max_ops: load.max_ops,
                    started: Arc::clone(started),
                };
                tokio::spawn(run.run())
            })
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            if let Ok(tally) = task.await {
                total.merge(tally);
            }
        }
        total
    });
    Ok((tally, cpu_seconds(Who::Thread) - cpu_before))
}

async fn connect_all(
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<SendRequest<Full<Bytes>>>, DriveError> {
    let mut senders = Vec::with_capacity(count);
    for _ in 0..count {
        senders.push(connect(addr).await?);
    }
    Ok(senders)
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, DriveError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| DriveError::Connect { addr, source })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| DriveError::Handshake { addr, source })?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Send one `call` to `addr` on a connection of its own and read the whole answer: for
/// preparing a figure (accounts, carts), not for measuring.
pub async fn request(addr: SocketAddr, call: &Call) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(addr).await.map_err(|error| error.to_string())?;
    let host = HeaderValue::from_str(&addr.to_string()).map_err(|error| error.to_string())?;
    let request = call.request(&host).map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("{} {}: {error}", call.method, call.path))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// One keep-alive connection's closed loop.
struct Connection {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    script: Arc<dyn Script>,
    connection: usize,
    deadline: Instant,
    max_ops: u64,
    started: Arc<AtomicU64>,
}

impl Connection {
    async fn run(mut self) -> Tally {
        let host = HeaderValue::from_str(&self.addr.to_string())
            .unwrap_or(HeaderValue::from_static("localhost"));
        let mut tally = Tally::default();
        let mut n = 0u64;
        while Instant::now() < self.deadline
            && self.started.fetch_add(1, Ordering::Relaxed) < self.max_ops
        {
            let calls = self.script.op(self.connection, n);
            n += 1;
            let begun = Instant::now();
            let outcome = self.op(&calls, &host).await;
            let broken = outcome.is_err() && self.sender.is_closed();
            tally.record(begun, outcome);
            if broken {
                // The server closed the connection: open another, or stop this one.
                match connect(self.addr).await {
                    Ok(sender) => self.sender = sender,
                    Err(error) => {
                        tally.first_error.get_or_insert(error.to_string());
                        break;
                    }
                }
            }
        }
        tally
    }

    async fn op(&mut self, calls: &[Call], host: &HeaderValue) -> Result<(), String> {
        for call in calls {
            let request = call.request(host).map_err(|error| error.to_string())?;
            self.sender
                .ready()
                .await
                .map_err(|error| error.to_string())?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|error| error.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| error.to_string())?;
            if !status.is_success() {
                let body = body.to_bytes();
                let text = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
                return Err(format!("{} {} -> {status}: {text}", call.method, call.path));
            }
        }
        Ok(())
    }
}

/// Run `op(worker, n)` in a closed loop on `workers` tasks of the caller's runtime, for
/// `window` or until `max_ops` started; `op` answers whether it succeeded (`Err` says why
/// not).
pub async fn drive_tasks<F, Fut>(
    workers: usize,
    window: Duration,
    max_ops: u64,
    op: F,
) -> Measurement
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = Arc::new(AtomicU64::new(0));
    let begun = Instant::now();
    let deadline = begun + window;
    let process_before = cpu_seconds(Who::Process);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (op, started) = (Arc::clone(&op), Arc::clone(&started));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0u64;
                while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max_ops
                {
                    let at = Instant::now();
                    let outcome = op(worker, n).await;
                    n += 1;
                    tally.record(at, outcome);
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => total.merge(tally),
            Err(error) => {
                total.failed += 1;
                total.first_error.get_or_insert(error.to_string());
            }
        }
    }
    let secs = begun.elapsed().as_secs_f64();
    let process = (cpu_seconds(Who::Process) - process_before) / secs;
    total.into_measurement(secs, None, process)
}

/// The process's CPU use over a stretch of wall time (for figures measured by other
/// harnesses, e.g. the CAS writes of `emporium_testkit::cas_bench`).
pub struct ProcessCpu {
    cpu: f64,
    at: Instant,
}

impl ProcessCpu {
    pub fn start() -> Self {
        Self {
            cpu: cpu_seconds(Who::Process),
            at: Instant::now(),
        }
    }

    /// CPU seconds per wall second since [`ProcessCpu::start`].
    pub fn cores(&self) -> f64 {
        let wall = self.at.elapsed().as_secs_f64();
        if wall > 0.0 {
            (cpu_seconds(Who::Process) - self.cpu) / wall
        } else {
            0.0
        }
    }
}

/// Whose CPU time [`cpu_seconds`] reads.
#[derive(Clone, Copy)]
enum Who {
    /// The calling thread.
    Thread,
    /// The whole process.
    Process,
}

/// User + system CPU seconds used so far (0 where `getrusage` is not available).
fn cpu_seconds(who: Who) -> f64 {
    #[cfg(target_os = "linux")]
    {
        let who = match who {
            Who::Thread => libc::RUSAGE_THREAD,
            Who::Process => libc::RUSAGE_SELF,
        };
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is a valid, writable `rusage`; getrusage only writes into it.
        let rc = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
        if rc != 0 {
            return 0.0;
        }
        // SAFETY: getrusage returned 0, so it filled the struct (which was zeroed anyway).
        let usage = unsafe { usage.assume_init() };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = who;
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 51.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds(Who::Thread);
        let mut x = 0u64;
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_seconds(Who::Thread) > before);
    }

    /// The generator against the hello-world server: every request answered, counted, timed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_a_server_and_counts_what_it_sent() {
        let addr = emporium_testkit::hello_world::start().await.unwrap();
        let load = Load {
            connections: 4,
            threads: 2,
            window: Duration::from_secs(5),
            max_ops: 400,
        };
        let m = drive(addr, &load, Arc::new(|_, _| vec![Call::get("/")]))
            .await
            .unwrap();
        assert_eq!(m.failed, 0);
        // Each connection starts at most one operation past the budget.
        assert_eq!(m.ops, 400);
        assert!(m.p50_ms > 0.0 && m.p99_ms >= m.p50_ms);
        assert!(m.driver_cores.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_connection_is_an_error_not_a_figure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let load = Load {
            connections: 2,
            threads: 1,
            window: Duration::from_millis(200),
            max_ops: 10,
        };
        let outcome = drive(addr, &load, Arc::new(|_, _| vec![Call::get("/")])).await;
        assert!(matches!(outcome, Err(DriveError::Connect { .. })));
    }

    #[tokio::test]
    async fn tasks_count_failures_apart() {
        let m = drive_tasks(3, Duration::from_secs(5), 30, |_, n| async move {
            if n % 2 == 0 {
                Ok(())
            } else {
                Err("odd".to_owned())
            }
        })
        .await;
        assert_eq!(m.ops + m.failed, 30);
        assert!(m.failed > 0);
        assert_eq!(m.first_error.as_deref(), Some("odd"));
    }
}
