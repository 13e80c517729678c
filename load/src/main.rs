//! `load`: runs goose scenarios against a storefront; see the crate docs and README.md,
//! "Load tests (goose)".

use std::process::ExitCode;
use std::sync::Arc;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use gumdrop::Options;
use load::options::{self, AdminLogin, LoadOptions, OptionsError};
use load::scenarios;
use load::shop::{Admin, PrepareError, Shop};
use load::verdict::Verdict;

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("{0} (see --help)")]
    GooseOptions(String),
    #[error("the scenarios {0:?} need the admin: set LOAD_ADMIN_EMAIL and LOAD_ADMIN_PASSWORD")]
    NoAdmin(Vec<String>),
    #[error("cannot prepare the shop: {0}")]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Goose(#[from] GooseError),
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("load: error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, LoadError> {
    // Every reqwest client of the process (goose's, the preparation's) takes this TLS
    // provider, the one of the whole workspace; an error means one is installed already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (ours, goose_args) = options::split(args, |key| std::env::var(key).ok())?;
    let mut config = GooseConfiguration::parse_args_default(&goose_args)
        .map_err(|e| LoadError::GooseOptions(e.to_string()))?;
    if config.help {
        println!("{}\n\n{}", GooseConfiguration::usage(), options::USAGE);
        return Ok(ExitCode::SUCCESS);
    }
    if config.host.is_empty()
        && let Some(first) = ours.hosts.first()
    {
        config.host.clone_from(first);
    }
    if config.scenarios.active.is_empty() {
        config.scenarios.active = vec!["storefront".to_owned()];
    }
    let sends_nothing = config.list || config.scenarios_list || config.version;
    let active = config.scenarios.active.clone();
    let admin = ours.admin.clone().map(|login| Arc::new(Admin::new(login)));
    if admin.is_none() && !sends_nothing && scenarios::need_admin(&active, &ours.mix) {
        return Err(LoadError::NoAdmin(active));
    }
    let shop = if sends_nothing {
        Shop::offline(ours.hosts.clone())
    } else {
        Shop::prepare(&config.host, ours.hosts.clone(), admin.as_deref()).await?
    };
    // Listing (`--list`, `--scenarios-list`) shows every scenario; a run registers the
    // selected ones only.
    let (register, admin) = if sends_nothing {
        let all = scenarios::NAMES.map(str::to_owned).to_vec();
        let admin = admin.or_else(|| Some(Arc::new(Admin::new(AdminLogin::default()))));
        (all, admin)
    } else {
        (active, admin)
    };
    let metrics = attack(config, &register, &ours, Arc::new(shop), admin.as_ref())?
        .execute()
        .await?;
    if sends_nothing {
        return Ok(ExitCode::SUCCESS);
    }
    let verdict = Verdict::of(&metrics);
    println!("load: {verdict}");
    Ok(if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// goose with our scenarios and defaults: no telnet or WebSocket controller (they would
/// listen on 0.0.0.0 without authentication), and metrics kept from the very first request
/// (goose otherwise resets them once every user has started, which would hide the
/// failures of the start-up: sign-ups and logins).
fn attack(
    config: GooseConfiguration,
    active: &[String],
    ours: &LoadOptions,
    shop: Arc<Shop>,
    admin: Option<&Arc<Admin>>,
) -> Result<GooseAttack, GooseError> {
    let attack = *GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoResetMetrics, true)?;
    scenarios::register(attack, active, &shop, admin, &ours.mix)
}
