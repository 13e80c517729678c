//! The harness's cluster section: what forwarding costs.
//!
//! Three `emporium` processes (the binary cargo built beside the harness, see
//! [`node_binary`]) form a cluster on a scratch PostgreSQL database with the cluster process
//! kit (`emporium_testkit::cluster`, the one the black-box tests use). Each cart lives on
//! one node (the holder of its shard's lease, asked through `GET /v1/admin/actors/cart/{id}`),
//! and each request goes either to that owner (served locally) or to the next node (which
//! forwards the ask to the owner over the cluster transport and relays the answer).
//!
//! Measured with the same client and concurrency, each bounded by count and time, on
//! [`CARTS`] warm carts of one line each (each connection has its own carts, so no two write
//! the same cart): `hello-world` (a bare hyper server in this process, first and last: the
//! ratio of the owner rows), `cart read` and `cart write` (PUT of a new quantity: one durable
//! write) through the owner and forwarded (ratio to the same request at its owner; target
//! ≥ 0.7×). The note gives the cart asks the nodes forwarded per request
//! (`emporium_forwarded_requests_total`): 0 at the owner, 1 forwarded; a forwarded write
//! that costs 2 still reads the cart at the edge before writing. Owners are looked up again
//! at the end: a cart that moved would blur the two cases (counted in the note).
//!
//! Skipped (one row saying why) when PostgreSQL or NATS is not up or the binary cannot be
//! built; the scratch database and the stream are dropped at the end.

use std::future::Future;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emporium_testkit::cluster::{
    Cluster, StoreServers, TestStore, TestStream, metric_sum, set_default_binary, sku, wait_settled,
};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

use super::{BenchContext, ClusterSettings, Row};

const SECTION: &str = "cluster";
/// Nodes in the cluster.
const NODES: usize = 3;
/// Warm carts, one line each.
const CARTS: usize = 240;
/// Requests per connection per measurement, at most (the context's duration bounds it too).
const REQUESTS_PER_CONNECTION: usize = 2_000;
/// Shards per node unchanged this long: the cluster has settled.
pub(super) const SETTLED_AFTER: Duration = Duration::from_secs(3);
/// How long the cluster may take to settle after it is complete.
pub(super) const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// PostgreSQL connections per node for the throughput figures (the node's default).
const POOL_SIZE: &str = "16";

/// Run the section: rows for hello-world, reads and writes at the owner and forwarded.
pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    let ctx = ClusterSettings::of(ctx);
    guarded(SECTION, measure(ctx)).await
}

/// `section`'s rows, or one row saying why it failed (a panic of the kit, a node that did
/// not start): a harness section never takes the harness down.
pub(super) async fn guarded(
    section: &str,
    work: impl Future<Output = Result<Vec<Row>, String>> + Send + 'static,
) -> Vec<Row> {
    match tokio::spawn(work).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(skipped)) => vec![note_row(section, "skipped", &skipped)],
        Err(error) => vec![note_row(section, "failed", &panic_text(error))],
    }
}

fn panic_text(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
        })
        .unwrap_or_else(|| "panicked".to_owned())
}

/// A row with no figures, only a note.
pub(super) fn note_row(section: &str, name: &str, note: &str) -> Row {
    Row {
        section: section.to_owned(),
        name: name.to_owned(),
        ops_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        ratio: None,
        ratio_to: String::new(),
        note: note.to_owned(),
    }
}

/// The `emporium` binary beside the harness's own executable (`target/<profile>/`, see
/// `emporium_testkit::cluster::default_binary`; `EMPORIUM_BIN` names another), built
/// first with the harness's profile when the harness runs under cargo (`cargo run` sets
/// `CARGO`), so that a fresh clone needs one command and the nodes are never stale.
pub(super) fn node_binary() -> Result<PathBuf, String> {
    let binary = emporium_testkit::cluster::default_binary();
    let dir = binary
        .parent()
        .ok_or_else(|| "the node binary has no directory".to_owned())?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "emporium", "--bin", "emporium"]);
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .map_err(|error| format!("cargo build of emporium: {error}"))?;
        if !status.success() {
            return Err(format!("cargo build of emporium: {status}"));
        }
    }
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} missing: run `cargo build --release -p emporium` first",
            binary.display()
        ))
    }
}

/// A cluster of `nodes` on a scratch PostgreSQL database and a stream of its own, its
/// logs in `logs`, settled; `Err` says why not.
pub(super) async fn start_cluster(
    ctx: &ClusterSettings,
    nodes: usize,
    pool_size: &str,
    logs: PathBuf,
) -> Result<Cluster, String> {
    let postgres = ctx
        .postgres_url
        .clone()
        .ok_or_else(|| "PostgreSQL is not up".to_owned())?;
    let nats = ctx
        .nats_url
        .clone()
        .ok_or_else(|| "NATS is not up (cluster mode needs it)".to_owned())?;
    reachable(&nats).await?;
    set_default_binary(node_binary()?);
    let events = Arc::new(TestStream::create_at(&nats, &nats).await);
    let servers = StoreServers {
        postgres: Some(postgres.clone()),
        scylla: None,
        prefix: "emp_bench".to_owned(),
    };
    let mut cluster = Cluster::provision_on(TestStore::Postgres, &servers, events)
        .await
        .ok_or_else(|| format!("PostgreSQL at {postgres} unreachable"))?;
    cluster.set_env("EMPORIUM_POSTGRES_POOL_SIZE", pool_size);
    cluster.set_env("EMPORIUM_RATE_LIMIT", "off");
    cluster.log_to(logs);
    cluster.start_loopback_members(nodes).await;
    let settled = wait_settled(SETTLED_AFTER, SETTLE_DEADLINE, || async {
        cluster.view(0).await
    })
    .await;
    if settled.is_none() {
        return Err(format!("shards still moving after {SETTLE_DEADLINE:?}"));
    }
    Ok(cluster)
}

/// Whether a TCP connection to `url`'s `host:port` opens within 2 s.
async fn reachable(url: &str) -> Result<(), String> {
    let host_port = url.split("://").last().unwrap_or(url);
    let addr = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("{url}: no address"))?;
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(format!("{url} unreachable")),
    }
}

struct Cart {
    id: String,
    /// Index of the owning member.
    owner: usize,
}

async fn measure(ctx: ClusterSettings) -> Result<Vec<Row>, String> {
    let logs = tempfile::tempdir().map_err(|error| error.to_string())?;
    let cluster = start_cluster(&ctx, NODES, POOL_SIZE, logs.path().to_owned()).await?;
    let hello = emporium_testkit::hello_world::start()
        .await
        .map_err(|error| format!("hello-world: {error}"))?;
    let connections = ctx.connections.clamp(1, CARTS);
    let driver = Driver::new(connections, ctx.duration);
    let carts = Arc::new(prepare_carts(&cluster).await);
    let bases: Arc<Vec<String>> = Arc::new(
        (0..NODES)
            .map(|index| cluster.members[index].base().to_owned())
            .collect(),
    );
    let hello_url = format!("http://{hello}/");
    warm_up(&driver, &bases, &carts, &hello_url).await;

    let mut figures = vec![
        driver
            .run("hello-world (first)", hello_target(&hello_url))
            .await,
    ];
    for (name, forwarded, write) in [
        ("cart read, owner", false, false),
        ("cart read, forwarded", true, false),
        ("cart write, owner", false, true),
        ("cart write, forwarded", true, true),
    ] {
        let before = forwarded_total(&cluster).await;
        let target = cart_target(&carts, &bases, connections, forwarded, write);
        let mut figure = driver.run(name, target).await;
        figure.forwards = Some(forwarded_total(&cluster).await - before);
        figures.push(figure);
    }
    figures.push(
        driver
            .run("hello-world (last)", hello_target(&hello_url))
            .await,
    );
    let mut moved = 0;
    for cart in carts.iter() {
        let owner = owner_index(&cluster, &cart.id).await;
        moved += usize::from(owner != Some(cart.owner));
    }
    cluster.finish().await;
    Ok(rows(&figures, moved, connections))
}

/// [`CARTS`] carts with one line each, made through the nodes in turn, and their owners.
async fn prepare_carts(cluster: &Cluster) -> Vec<Cart> {
    let mut carts = Vec::with_capacity(CARTS);
    for index in 0..CARTS {
        let api = cluster.api(index % NODES);
        let id = api.new_cart().await;
        let added = api.add_item(&id, &sku(0), 1).await;
        assert!(added.status < 300, "add to cart: {added:?}");
        let owner = owner_index(cluster, &id)
            .await
            .unwrap_or_else(|| panic!("cart {id} has no owner"));
        carts.push(Cart { id, owner });
    }
    carts
}

/// Index of the member holding `cart`'s shard, as member 0 sees it.
async fn owner_index(cluster: &Cluster, cart: &str) -> Option<usize> {
    let owner = cluster.owner_of(0, "cart", cart).await?;
    cluster.members.iter().position(|member| member.id == owner)
}

/// Not measured: every connection opens to hello-world and to each node, and each cart is
/// read through each node once.
async fn warm_up(driver: &Driver, bases: &Arc<Vec<String>>, carts: &Arc<Vec<Cart>>, hello: &str) {
    let urls: Vec<String> = carts
        .iter()
        .flat_map(|cart| {
            bases
                .iter()
                .map(move |base| format!("{base}/v1/carts/{}", cart.id))
        })
        .chain(std::iter::once(hello.to_owned()))
        .collect();
    let urls = Arc::new(urls);
    let count = urls.len();
    let warm = Driver {
        requests: count.div_ceil(driver.connections),
        ..driver.clone()
    };
    let per_connection = warm.requests;
    warm.run("warm-up", move |connection, n| {
        let url = urls[(connection * per_connection + n) % count].clone();
        (Method::GET, url, None)
    })
    .await;
}

type Target = dyn Fn(usize, usize) -> (Method, String, Option<String>) + Send + Sync;

fn hello_target(url: &str) -> impl Fn(usize, usize) -> (Method, String, Option<String>) + use<> {
    let url = url.to_owned();
    move |_, _| (Method::GET, url.clone(), None)
}

/// Request `n` of connection `c`: a read or a write of one of its own carts, through the
/// owner or the next node.
fn cart_target(
    carts: &Arc<Vec<Cart>>,
    bases: &Arc<Vec<String>>,
    connections: usize,
    forwarded: bool,
    write: bool,
) -> impl Fn(usize, usize) -> (Method, String, Option<String>) + use<> {
    let (carts, bases) = (Arc::clone(carts), Arc::clone(bases));
    let per_connection = (carts.len() / connections).max(1);
    move |connection, n| {
        let index = (connection + connections * (n % per_connection)) % carts.len();
        let cart = &carts[index];
        let node = if forwarded {
            (cart.owner + 1) % bases.len()
        } else {
            cart.owner
        };
        let base = &bases[node];
        if write {
            let body = json!({"quantity": n % 98 + 1}).to_string();
            let url = format!("{base}/v1/carts/{}/items/{}", cart.id, sku(0));
            (Method::PUT, url, Some(body))
        } else {
            (Method::GET, format!("{base}/v1/carts/{}", cart.id), None)
        }
    }
}

/// Cart asks forwarded so far, summed over the running members.
async fn forwarded_total(cluster: &Cluster) -> f64 {
    let mut total = 0.0;
    for index in cluster.running() {
        let api = cluster.api(index);
        let request = api.client().get(format!("{}/metrics", api.base));
        if let Ok(answer) = api.try_send(request).await {
            let text = answer.body.as_str().unwrap_or_default();
            total += metric_sum(text, "emporium_forwarded_requests_total", r#"kind="cart""#);
        }
    }
    total
}

/// One measurement's figures.
struct Figure {
    name: &'static str,
    done: usize,
    failed: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Cart asks the nodes forwarded meanwhile (`None`: not a cluster request).
    forwards: Option<f64>,
}

impl Figure {
    fn rps(&self) -> f64 {
        self.done as f64 / self.secs
    }
}

/// The section's load driver: `connections` concurrent clients, each one request at a time,
/// at most `requests` each and `duration` in all.
///
/// TODO(harness merge): replace by `load::bench::drive`, the harness's driver, so that the
/// owner rows are ratios to the harness's own ceiling measured with the same client.
#[derive(Clone)]
struct Driver {
    client: reqwest::Client,
    connections: usize,
    requests: usize,
    duration: Duration,
}

impl Driver {
    fn new(connections: usize, duration: Duration) -> Self {
        emporium_testkit::install_crypto_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            client,
            connections,
            requests: REQUESTS_PER_CONNECTION,
            duration,
        }
    }

    async fn run(
        &self,
        name: &'static str,
        target: impl Fn(usize, usize) -> (Method, String, Option<String>) + Send + Sync + 'static,
    ) -> Figure {
        let target: Arc<Target> = Arc::new(target);
        let started = Instant::now();
        let tasks: Vec<_> = (0..self.connections)
            .map(|connection| {
                let (driver, target) = (self.clone(), Arc::clone(&target));
                tokio::spawn(async move { driver.connection(connection, started, &*target).await })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut failed = 0;
        for task in tasks {
            if let Ok((mine, failures)) = task.await {
                latencies.extend(mine);
                failed += failures;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        Figure {
            name,
            done: latencies.len(),
            failed,
            secs,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            forwards: None,
        }
    }

    /// One connection's requests: latencies (µs) of the successful ones, and failures.
    async fn connection(
        &self,
        connection: usize,
        started: Instant,
        target: &Target,
    ) -> (Vec<u32>, usize) {
        let mut latencies = Vec::with_capacity(self.requests);
        let mut failed = 0;
        for n in 0..self.requests {
            if started.elapsed() >= self.duration {
                break;
            }
            let (method, url, body) = target(connection, n);
            let mut request = self.client.request(method, url);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body);
            }
            let sent = Instant::now();
            let ok = match request.send().await {
                Ok(response) => response.status().is_success() & response.bytes().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            } else {
                failed += 1;
            }
        }
        (latencies, failed)
    }
}

/// The `p` quantile of sorted latencies in µs, in ms.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// The table rows: hello-world and the owner rows as ratios to the faster hello-world run,
/// the forwarded rows as ratios to the same request at its owner.
fn rows(figures: &[Figure], moved: usize, connections: usize) -> Vec<Row> {
    let hello = figures
        .iter()
        .filter(|figure| figure.name.starts_with("hello-world"))
        .map(Figure::rps)
        .fold(0.0, f64::max);
    let rps_of = |name: &str| {
        figures
            .iter()
            .find(|figure| figure.name == name)
            .map_or(f64::NAN, Figure::rps)
    };
    figures
        .iter()
        .map(|figure| {
            let (ratio, ratio_to) = match figure.name.strip_suffix(", forwarded") {
                Some(request) => (
                    figure.rps() / rps_of(&format!("{request}, owner")),
                    format!("{request}, owner (target ≥ 0.7)"),
                ),
                None => (figure.rps() / hello, "hello-world (this section)".to_owned()),
            };
            let forwards = figure.forwards.map_or_else(String::new, |forwards| {
                format!(
                    "; {:.2} forwards/request",
                    forwards / figure.done.max(1) as f64
                )
            });
            Row {
                section: SECTION.to_owned(),
                name: figure.name.to_owned(),
                ops_per_sec: figure.rps(),
                p50_ms: figure.p50_ms,
                p99_ms: figure.p99_ms,
                ratio: Some(ratio),
                ratio_to,
                note: format!(
                    "{NODES} nodes on PostgreSQL, {connections} connections; {} failed{forwards}; {moved} of {CARTS} carts moved",
                    figure.failed
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &'static str, done: usize, forwards: Option<f64>) -> Figure {
        Figure {
            name,
            done,
            failed: 0,
            secs: 1.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            forwards,
        }
    }

    #[test]
    fn forwarded_rows_are_ratios_to_the_owner_and_the_others_to_the_faster_hello_world() {
        let figures = [
            figure("hello-world (first)", 800, None),
            figure("cart read, owner", 400, Some(0.0)),
            figure("cart read, forwarded", 300, Some(300.0)),
            figure("hello-world (last)", 1000, None),
        ];
        let rows = rows(&figures, 0, 8);
        let ratio = |name: &str| {
            let row = rows.iter().find(|row| row.name == name).expect("a row");
            (row.ratio.expect("a ratio"), row.ratio_to.clone())
        };
        assert_eq!(ratio("cart read, owner").0, 0.4);
        assert_eq!(ratio("cart read, forwarded").0, 0.75);
        assert!(
            ratio("cart read, forwarded")
                .1
                .starts_with("cart read, owner")
        );
        assert_eq!(ratio("hello-world (first)").0, 0.8);
        let forwarded = rows.iter().find(|row| row.name == "cart read, forwarded");
        assert!(forwarded.is_some_and(|row| row.note.contains("1.00 forwards/request")));
    }

    #[test]
    fn percentiles_are_ranks_of_the_sorted_latencies() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&sorted, 0.50), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn each_connection_keeps_to_its_own_carts() {
        let carts: Arc<Vec<Cart>> = Arc::new(
            (0..12)
                .map(|index| Cart {
                    id: format!("c{index}"),
                    owner: index % 3,
                })
                .collect(),
        );
        let bases = Arc::new(vec![
            "http://a".to_owned(),
            "http://b".to_owned(),
            "http://c".to_owned(),
        ]);
        let target = cart_target(&carts, &bases, 4, true, false);
        for connection in 0..4 {
            for n in 0..10 {
                let (_, url, _) = target(connection, n);
                let cart: usize = url
                    .rsplit('c')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .expect("cart");
                assert_eq!(cart % 4, connection, "{url}");
                let owner = &bases[cart % 3];
                assert!(
                    !url.starts_with(owner.as_str()),
                    "forwarded, not to the owner: {url}"
                );
            }
        }
    }
}
