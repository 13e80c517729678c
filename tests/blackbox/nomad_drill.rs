//! The scaling drill of the Nomad job (issue 13): what Nomad would do to
//! `deploy/nomad/emporium.nomad.hcl`, done by hand on loopback, under a steady load.
//!
//! Nothing about the job is repeated here: the checker's render mode
//! (`deploy/nomad/check`, built with `go build`; without Go the drill says `skipped: go not
//! found`) gives each allocation's command line, environment (the `env` block after the dev
//! var file, and the env template rendered against the registered `emporium-cluster`
//! services and the Nomad variable holding the secrets), the kill signal and timeout, the
//! shutdown delay, the `/readyz` check's interval and timeout, and `min_healthy_time`. The
//! drill plays the Nomad client: it fills in `${NOMAD_*}` (each allocation on a loopback
//! address of its own, like a host; the static cluster port the same on every one), starts
//! the process, registers its services, and stops it with the job's kill signal, waiting at
//! most its kill timeout. The test's own values go in as the job's variables (`-var`): the
//! binary, a fresh PostgreSQL database, a NATS stream, the static port, a quiet log.
//!
//! The load balancer follows the `/readyz` check: every registered node is checked at the
//! check's interval and is in rotation exactly while the last check passed, so a new node
//! gets traffic once ready and a stopping one leaves once its `/readyz` turns 503. (A node
//! being stopped stays registered through the shutdown delay: the drill does not count on
//! load balancers that follow deregistration.)
//!
//! Steps: 1 node, the load starts; scale to 3 (both new allocations placed at once, their
//! seeds rendered from the one registered node); once every check has passed for
//! `min_healthy_time`, scale to 2 (SIGTERM to the highest index, exit 0 within
//! `kill_timeout`). Then: 0 failed requests, every acknowledged write readable through both
//! remaining nodes, no stale read.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};

use crate::cluster_kit::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Balancer, CLUSTER_SECRET, CartChecks, Cluster, JWT_SECRET, Load,
    LoadChecks, LoadPlan, Placement, free_port, next_loopback_host,
};
use crate::stores::TestStore;
use crate::support::{NodeProcess, NodeSpec};

/// The job, its var file and the Nomad variable its template reads the secrets from.
const JOB: &str = "deploy/nomad/emporium.nomad.hcl";
const VAR_FILE: &str = "deploy/nomad/dev.vars.hcl";
const SECRETS_PATH: &str = "nomad/jobs/emporium";
/// Writes per cart the load makes (one SKU line each); carts the load writes to.
const LINES: usize = 40;
const CARTS: usize = 16;
/// Pause between two rounds of a load worker: slow enough that the writes last through
/// both scaling steps.
const PACE: Duration = Duration::from_millis(400);
/// The load stops by itself after this, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nomad_drill_scales_1_to_3_to_2_under_load_with_no_failed_request() {
    let Some(checker) = Checker::build() else {
        return;
    };
    let Some(mut cluster) = Cluster::provision(TestStore::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nomad = FakeNomad::new(&checker, &cluster, dir.path());
    let job = nomad.render(0, &[]);
    eprintln!(
        "drill: job {} group {} task {}: kill {} after {} ms, shutdown delay {} ms, /readyz every {} ms, min healthy {} ms, drain budget {} ms",
        job["job"],
        job["group"],
        job["task"],
        job["kill_signal"],
        job["kill_timeout_ms"],
        job["shutdown_delay_ms"],
        job["ready_check"]["interval_ms"],
        job["update"]["min_healthy_time_ms"],
        job["drain_ms"]["total"],
    );
    let timings = Timings::of(&job);

    // count = 1
    let first = nomad.start(&mut cluster, 0, job).await;
    cluster.wait_ready().await;
    cluster.create_products().await;
    let carts = cluster.carts(CARTS).await;
    let balancer = cluster.balancer();
    let checks = HealthChecks::start(&balancer, &timings);
    checks.register(&cluster, first);
    let mut plan = LoadPlan::new(carts, LINES, LOAD_LIMIT);
    plan.pace = PACE;
    let load = Load::start(&balancer, plan);
    sleep(Duration::from_secs(2)).await;

    // count = 3: both allocations placed in one evaluation, their templates rendered while
    // only the first node is registered.
    let scaled = Instant::now();
    let registered = vec![nomad.cluster_addr(0)];
    let (second, third) = (nomad.render(1, &registered), nomad.render(2, &registered));
    let (second, third) = nomad.start_two(&mut cluster, (1, second), (2, third)).await;
    checks.register(&cluster, second);
    checks.register(&cluster, third);
    cluster.wait_ready().await;
    let new_nodes = [
        cluster.members[second].id.clone(),
        cluster.members[third].id.clone(),
    ];
    let in_rotation = checks
        .wait_passing(&new_nodes, timings.healthy_deadline)
        .await;
    assert!(
        in_rotation,
        "the new nodes' /readyz checks did not pass within healthy_deadline"
    );
    eprintln!(
        "drill: scaled 1 → 3 in {:.2?} (every check passing)",
        scaled.elapsed()
    );
    // The deployment is healthy once the checks kept passing for min_healthy_time.
    sleep(timings.min_healthy_time).await;

    // count = 2: Nomad stops the highest index: shutdown delay, then the kill signal.
    let stopping = Instant::now();
    sleep(timings.shutdown_delay).await;
    let mut process = cluster.members[third].take();
    let sigterm = Instant::now();
    process.sigterm();
    let status = process.wait_exit(timings.kill_timeout).await;
    let drained = stopping.elapsed();
    checks.deregister(&cluster.members[third].id);
    let status = status.unwrap_or_else(|| {
        panic!(
            "the stopped node still ran {:?} after SIGTERM (kill_timeout)",
            timings.kill_timeout
        )
    });
    assert!(status.success(), "the stopped node exits 0: {status}");
    eprintln!(
        "drill: scaled 3 → 2: the node exited 0 {drained:.2?} after the stop began (shutdown delay {:?}, kill_timeout {:?}); its /readyz check failed {} time(s) (503 while draining, then refused) before it was deregistered",
        timings.shutdown_delay,
        timings.kill_timeout,
        checks.failures_of(&cluster.members[third].id)
    );
    cluster.wait_ready().await;
    sleep(Duration::from_secs(3)).await;

    let report = load.stop().await;
    checks.stop();
    report.print("nomad drill load");
    report.assert_no_failures("nomad drill");
    let writes_after = report
        .writes()
        .filter(|op| op.exchange.sent_at > sigterm)
        .count();
    eprintln!("drill: {writes_after} writes sent after the SIGTERM");
    assert!(
        writes_after > 0,
        "the load must still be writing when the node is stopped"
    );
    cluster
        .assert_carts_hold_exactly_the_acknowledged_writes(&report, &[], &[first, second])
        .await;
    report.assert_no_stale_reads("nomad drill");
    cluster.finish().await;
}

/// The checker binary, built once from `deploy/nomad/check`.
struct Checker {
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Checker {
    /// `None` (skipped, with a message) when no `go` is installed.
    fn build() -> Option<Checker> {
        let Some(go) = go_binary() else {
            eprintln!("skipped: go not found (the drill renders the job with deploy/nomad/check)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("nomad-check");
        let output = std::process::Command::new(go)
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(".")
            .current_dir(repo().join("deploy/nomad/check"))
            .output()
            .expect("run go build");
        assert!(
            output.status.success(),
            "go build of the checker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Checker { bin, _dir: dir })
    }

    /// `nomad-check render` with `args`, as JSON.
    fn render(&self, args: &[String]) -> Value {
        let output = std::process::Command::new(&self.bin)
            .arg("render")
            .args(args)
            .current_dir(repo())
            .output()
            .expect("run the checker");
        assert!(
            output.status.success(),
            "nomad-check render {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("render prints JSON")
    }
}

fn go_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("go"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let fallback = PathBuf::from("/usr/local/go/bin/go");
        fallback.is_file().then_some(fallback)
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The job's timings the drill acts on.
struct Timings {
    kill_timeout: Duration,
    shutdown_delay: Duration,
    check_interval: Duration,
    check_timeout: Duration,
    min_healthy_time: Duration,
    healthy_deadline: Duration,
}

impl Timings {
    fn of(job: &Value) -> Timings {
        let ms = |value: &Value| Duration::from_millis(value.as_u64().expect("a duration in ms"));
        assert_eq!(job["kill_signal"], "SIGTERM", "the drill sends SIGTERM");
        Timings {
            kill_timeout: ms(&job["kill_timeout_ms"]),
            shutdown_delay: ms(&job["shutdown_delay_ms"]),
            check_interval: ms(&job["ready_check"]["interval_ms"]),
            check_timeout: ms(&job["ready_check"]["timeout_ms"]),
            min_healthy_time: ms(&job["update"]["min_healthy_time_ms"]),
            healthy_deadline: ms(&job["update"]["healthy_deadline_ms"]),
        }
    }
}

/// What a Nomad client would do for the drill's allocations.
struct FakeNomad<'a> {
    checker: &'a Checker,
    hosts: Vec<IpAddr>,
    /// The job's static cluster port, free on every host.
    cluster_port: u16,
    vars: Vec<String>,
    dir: PathBuf,
}

impl<'a> FakeNomad<'a> {
    fn new(checker: &'a Checker, cluster: &Cluster, dir: &Path) -> Self {
        let hosts: Vec<IpAddr> = (0..3).map(|_| next_loopback_host()).collect();
        let cluster_port = static_port(&hosts);
        let shared = |key: &str| {
            cluster
                .shared_env(key)
                .unwrap_or_else(|| panic!("the cluster kit sets {key}"))
        };
        let vars = [
            ("emporium_bin", env!("CARGO_BIN_EXE_emporium").to_owned()),
            ("store", shared("EMPORIUM_STORE")),
            ("nats_url", shared("EMPORIUM_EVENTS")),
            ("nats_stream", shared("EMPORIUM_NATS_STREAM")),
            (
                "nats_subject_prefix",
                shared("EMPORIUM_NATS_SUBJECT_PREFIX"),
            ),
            ("cluster_port", cluster_port.to_string()),
            ("log", "warn".to_owned()),
        ]
        .into_iter()
        .flat_map(|(name, value)| ["-var".to_owned(), format!("{name}={value}")])
        .chain(["-var-file".to_owned(), VAR_FILE.to_owned()])
        .collect();
        Self {
            checker,
            hosts,
            cluster_port,
            vars,
            dir: dir.to_owned(),
        }
    }

    fn cluster_addr(&self, index: usize) -> SocketAddr {
        SocketAddr::new(self.hosts[index], self.cluster_port)
    }

    /// The job rendered for allocation `index` while `registered` are the
    /// `emporium-cluster` registrations, with the allocation's `NOMAD_*` values filled in.
    fn render(&mut self, index: usize, registered: &[SocketAddr]) -> Value {
        let runtime = self.runtime_env(index);
        let services: Vec<String> = registered.iter().map(ToString::to_string).collect();
        let mut args = self.vars.clone();
        args.extend([
            "-service".to_owned(),
            format!("emporium-cluster={}", services.join(",")),
        ]);
        for (key, value) in [
            ("cluster_secret", CLUSTER_SECRET),
            ("jwt_secret", JWT_SECRET),
            ("admin_email", ADMIN_EMAIL),
            ("admin_password", ADMIN_PASSWORD),
        ] {
            args.extend([
                "-nomad-var".to_owned(),
                format!("{SECRETS_PATH}:{key}={value}"),
            ]);
        }
        for (name, value) in &runtime {
            args.extend(["-env".to_owned(), format!("{name}={value}")]);
        }
        args.push(JOB.to_owned());
        let mut job = self.checker.render(&args);
        assert_eq!(
            job["command"].as_str(),
            Some(env!("CARGO_BIN_EXE_emporium")),
            "the job runs the binary of its emporium_bin variable"
        );
        job["runtime"] = serde_json::to_value(&runtime).expect("runtime env");
        job
    }

    /// `NOMAD_*` for allocation `index`: its own host, a dynamic http port, the static
    /// cluster port, its own directories.
    fn runtime_env(&self, index: usize) -> BTreeMap<String, String> {
        let host = self.hosts[index];
        let http = SocketAddr::new(host, free_port(host));
        let cluster = self.cluster_addr(index);
        let alloc_dir = self.dir.join(format!("alloc-{index}"));
        for sub in ["alloc/data", "local", "secrets"] {
            std::fs::create_dir_all(alloc_dir.join(sub)).expect("allocation dirs");
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let alloc_id = format!(
            "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
            (nanos >> 32) as u32,
            (nanos >> 16) as u16,
            index,
            nanos as u64 & 0xffff_ffff_ffff
        );
        let path = |sub: &str| alloc_dir.join(sub).display().to_string();
        [
            ("NOMAD_ALLOC_ID", alloc_id),
            ("NOMAD_ALLOC_INDEX", index.to_string()),
            ("NOMAD_ALLOC_DIR", path("alloc")),
            ("NOMAD_TASK_DIR", path("local")),
            ("NOMAD_SECRETS_DIR", path("secrets")),
            ("NOMAD_ADDR_http", http.to_string()),
            ("NOMAD_IP_http", host.to_string()),
            ("NOMAD_PORT_http", http.port().to_string()),
            ("NOMAD_ADDR_cluster", cluster.to_string()),
            ("NOMAD_IP_cluster", host.to_string()),
            ("NOMAD_PORT_cluster", cluster.port().to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The process Nomad's exec driver would run for a rendered allocation.
    fn spec(&self, index: usize, job: &Value) -> NodeSpec {
        let runtime: BTreeMap<String, String> =
            serde_json::from_value(job["runtime"].clone()).expect("runtime env");
        let fill = |text: &str| interpolate(text, &runtime);
        let mut spec = NodeSpec::embedded(&self.dir.join(format!("alloc-{index}/alloc/data")));
        for section in ["env", "template_env"] {
            for (name, value) in job[section].as_object().expect("an env map") {
                spec = spec.env(name, &fill(value.as_str().expect("a string")));
            }
        }
        // Test-only: the test server's PostgreSQL is shared by every test running at once.
        spec = spec.env("EMPORIUM_POSTGRES_POOL_SIZE", "6");
        spec.args = job["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|arg| fill(arg.as_str().expect("a string arg")))
            .collect();
        spec
    }

    /// Start allocation `index` as member of `cluster`; returns the member's index.
    async fn start(&self, cluster: &mut Cluster, index: usize, job: Value) -> usize {
        let (member, spec) = self.member(cluster, index, &job);
        cluster.members[member].process = Some(NodeProcess::start(spec).await);
        member
    }

    /// Start two allocations at once.
    async fn start_two(
        &self,
        cluster: &mut Cluster,
        a: (usize, Value),
        b: (usize, Value),
    ) -> (usize, usize) {
        let (first, first_spec) = self.member(cluster, a.0, &a.1);
        let (second, second_spec) = self.member(cluster, b.0, &b.1);
        let (one, two) = tokio::join!(
            NodeProcess::start(first_spec),
            NodeProcess::start(second_spec)
        );
        cluster.members[first].process = Some(one);
        cluster.members[second].process = Some(two);
        (first, second)
    }

    fn member(&self, cluster: &mut Cluster, index: usize, job: &Value) -> (usize, NodeSpec) {
        let spec = self.spec(index, job);
        let node_id = node_id(&spec);
        let member = cluster.add_member(Placement {
            http_ip: self.hosts[index],
            cluster_addr: self.cluster_addr(index),
            launcher: Vec::new(),
            store_url: None,
            events_url: None,
            admin_addr: SocketAddr::new(self.hosts[index], free_port(self.hosts[index])),
        });
        cluster.members[member].id = node_id;
        (member, spec)
    }
}

/// The node id the process starts with: `--node-id` wins over the environment.
fn node_id(spec: &NodeSpec) -> String {
    spec.args
        .windows(2)
        .find(|pair| pair[0] == "--node-id")
        .map(|pair| pair[1].clone())
        .or_else(|| {
            spec.env
                .iter()
                .rev()
                .find(|(name, _)| name == "EMPORIUM_NODE_ID")
                .map(|(_, value)| value.clone())
        })
        .expect("the job sets a node id")
}

/// `text` with every `${NAME}` of `runtime` filled in; any other `${…}` left is a runtime
/// interpolation the drill does not know, and fails it.
fn interpolate(text: &str, runtime: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in runtime {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    assert!(
        !out.contains("${"),
        "{text:?}: a runtime interpolation the drill does not fill in"
    );
    out
}

/// A port free on every host right now (the job's static cluster port).
fn static_port(hosts: &[IpAddr]) -> u16 {
    for _ in 0..50 {
        let port = free_port(hosts[0]);
        if hosts
            .iter()
            .all(|host| std::net::TcpListener::bind((*host, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on every drill host");
}

/// The job's `/readyz` check, as the load balancer follows it.
struct HealthChecks {
    registered: Arc<Mutex<Vec<(String, String)>>>,
    /// Failed checks per node id.
    failures: Arc<Mutex<BTreeMap<String, usize>>>,
    passing: watch::Receiver<Vec<String>>,
    stop: watch::Sender<bool>,
}

impl HealthChecks {
    fn start(balancer: &Balancer, timings: &Timings) -> HealthChecks {
        let registered: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let failures: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let (passing_tx, passing) = watch::channel(Vec::new());
        let (stop, mut stopped) = watch::channel(false);
        let http = reqwest::Client::builder()
            .timeout(timings.check_timeout)
            .build()
            .expect("check client");
        let (balancer, interval) = (balancer.clone(), timings.check_interval);
        let (nodes, failed) = (Arc::clone(&registered), Arc::clone(&failures));
        tokio::spawn(async move {
            while !*stopped.borrow() {
                let snapshot = nodes.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let mut ready = Vec::new();
                for (id, base) in snapshot {
                    let answer = http.get(format!("{base}/readyz")).send().await;
                    if answer.is_ok_and(|answer| answer.status() == 200) {
                        balancer.add(&id, &base);
                        ready.push(id);
                    } else {
                        balancer.remove(&id);
                        *failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(id)
                            .or_default() += 1;
                    }
                }
                passing_tx.send_replace(ready);
                tokio::select! {
                    () = sleep(interval) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        HealthChecks {
            registered,
            failures,
            passing,
            stop,
        }
    }

    /// Nomad registers a task's services when the task starts.
    fn register(&self, cluster: &Cluster, member: usize) {
        let node = &cluster.members[member];
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((node.id.clone(), node.base().to_owned()));
    }

    fn deregister(&self, id: &str) {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(node, _)| node != id);
    }

    fn failures_of(&self, id: &str) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Wait (at most `deadline`) until the checks of every node of `ids` pass.
    async fn wait_passing(&self, ids: &[String], deadline: Duration) -> bool {
        let mut passing = self.passing.clone();
        tokio::time::timeout(
            deadline,
            passing.wait_for(|ready| ids.iter().all(|id| ready.contains(id))),
        )
        .await
        .is_ok_and(|seen| seen.is_ok())
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }
}
