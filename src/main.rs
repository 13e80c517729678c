//! `emporium`: run one node; `emporium ctl ...`: operate a cluster (see `src/ctl`).
//!
//! Configuration comes from `--config FILE`, `EMPORIUM_*` variables and flags (flags win);
//! see `cluster-config/README.md`. A bad value stops the node here with a message naming the
//! field. `ctl` is dispatched before that: it needs none of the node's settings.

use std::process::ExitCode;

use emporium_config::NodeConfig;

use emporium::node::Node;
use emporium::telemetry::Telemetry;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|first| first == "ctl") {
        return emporium::ctl::main(args);
    }
    let config = match NodeConfig::load(args, &|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(error) => error.exit(),
    };
    // First: the exporter's HTTP client takes the process's TLS provider.
    emporium::install_crypto_provider();
    let telemetry = match Telemetry::init(
        &config.log,
        config.otlp_endpoint.as_deref(),
        &config.node_id,
    ) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("emporium: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("emporium: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("emporium: {error:#}");
            ExitCode::FAILURE
        }
    };
    // After the node stopped (SIGTERM included) and outside the async runtime: the last
    // batch of spans is exported before the process exits.
    drop(runtime);
    telemetry.shutdown();
    outcome
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    tracing::info!("starting: {config}");
    let metrics = emporium_http_edge::install_metrics_recorder()?;
    let node = Node::build(&config, Some(metrics)).await?;
    let url = format!("http://{}", node.http_addr());
    tracing::info!(%url, "serving");
    println!("emporium node {} serving on {url}", config.node_id);
    if let Some(addr) = node.admin_addr() {
        let (scheme, ca) = match node.admin_tls() {
            true => ("https", " --ca-cert CERT"),
            false => ("http", ""),
        };
        tracing::info!(%addr, "admin API (gRPC) listening");
        println!("  admin API (gRPC): {scheme}://{addr} (emporium ctl --addr {addr}{ca})");
    }
    if config.demo {
        println!("  try: curl {url}/v1/products");
    }
    node.run_until_stopped(shutdown_signal()).await
}

/// SIGTERM (Nomad, systemd, `kill`) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
