//! `emporium ctl`: the operator's console, a client of one node's admin gRPC API
//! (`emporium-admin`). `src/main.rs` hands it `emporium ctl ...` before any node
//! configuration is loaded.
//!
//! Output: aligned tables and one line per event by default; `--json` prints one JSON
//! document (the same shapes as the HTTP admin routes), or one JSON object per line for
//! `events`. Exit codes are the contract scripts rely on ([`Exit`]).

mod render;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use emporium_admin::{AdminClient, ClientError, ClientSettings, Failure, WatchItem};

/// What `emporium ctl` exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: the node answered, and refused or failed the operation (draining the only node, a
    /// drain that left shards behind, a busy actor).
    Refused = 1,
    /// 2: bad arguments.
    Usage = 2,
    /// 3: the node could not be reached, or it (or a node it had to ask) is unavailable, or
    /// no answer came in time.
    Unreachable = 3,
    /// 4: no valid token, or not an admin's.
    Denied = 4,
    /// 5: no such node or actor kind.
    NotFound = 5,
}

impl From<Failure> for Exit {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused => Exit::Refused,
            Failure::Usage => Exit::Usage,
            Failure::Unreachable => Exit::Unreachable,
            Failure::Denied => Exit::Denied,
            Failure::NotFound => Exit::NotFound,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  the operation was refused or failed (e.g. draining the only node, a drain that left
     shards behind, passivating a busy actor)
  2  usage error (bad arguments)
  3  node unreachable or unavailable, or no answer within --timeout
  4  unauthenticated or permission denied
  5  not found (unknown node or actor kind)";

#[derive(Debug, Parser)]
#[command(
    name = "emporium ctl",
    about = "Operate an Emporium cluster through a node's admin gRPC API",
    after_help = EXIT_CODES
)]
struct Ctl {
    /// The node's admin API: host:port, http://host:port or https://host:port
    #[arg(long, env = "EMPORIUM_ADMIN_ADDR", global = true, value_name = "ADDR")]
    addr: Option<String>,

    /// Bearer token: the node's admin token, or an admin user's access token
    #[arg(
        long,
        env = "EMPORIUM_ADMIN_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// PEM certificate to trust for TLS (the node's, or its CA); turns TLS on for host:port
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// Print JSON (events: one object per line)
    #[arg(long, global = true)]
    json: bool,

    /// Deadline of connecting and of each call (not of `events --follow`)
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The nodes, their shards, active actors and rates, as the node asked sees them
    Cluster,
    /// Where an actor lives: shard, owner, lease epoch, version, whether it is active
    Actor { kind: String, key: String },
    /// Hand every shard of a node over to the others (it stays up, holding nothing)
    Drain { node: String },
    /// Passivate an actor on the node that holds it
    Passivate { kind: String, key: String },
    /// Run a lease round on every node now
    Rebalance,
    /// The cluster's recent events as the node asked saw them
    Events {
        /// Keep printing live events until interrupted (or the node goes away)
        #[arg(long)]
        follow: bool,
    },
}

/// Run `emporium ctl` with `args` (`args[0]` the program, `args[1]` `ctl`).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = std::iter::once(OsString::from("emporium ctl")).chain(args.into_iter().skip(2));
    let ctl = match Ctl::try_parse_from(args) {
        Ok(ctl) => ctl,
        Err(error) => {
            // --help and --version print to stdout and exit 0; anything else is usage.
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    crate::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("emporium ctl: cannot start the async runtime: {error}");
            return Exit::Refused.into();
        }
    };
    match runtime.block_on(run(ctl)) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("emporium ctl: {error}");
            Exit::from(error.failure()).into()
        }
    }
}

async fn run(ctl: Ctl) -> Result<Exit, ClientError> {
    let client = connect(&ctl).await?;
    let out = &mut std::io::stdout().lock();
    let json = ctl.json;
    let exit = match ctl.command {
        Command::Cluster => {
            let status = client.cluster().await?;
            print(out, json, &status, render::cluster(&status))
        }
        Command::Actor { kind, key } => {
            let location = client.locate_actor(&kind, &key).await?;
            print(out, json, &location, render::actor(&location))
        }
        Command::Drain { node } => {
            let outcome = client.drain_node(&node).await?;
            print(out, json, &outcome, render::drain(&outcome));
            if outcome.shards_left == 0 {
                Exit::Ok
            } else {
                Exit::Refused
            }
        }
        Command::Passivate { kind, key } => {
            let outcome = client.passivate_actor(&kind, &key).await?;
            print(out, json, &outcome, render::passivate(&outcome));
            if outcome.result == "busy" {
                Exit::Refused
            } else {
                Exit::Ok
            }
        }
        Command::Rebalance => {
            let nodes = client.rebalance().await?;
            let document = serde_json::json!({ "nodes": nodes });
            print(out, json, &document, render::rebalance(&nodes))
        }
        Command::Events { follow } => events(&client, out, json, follow).await?,
    };
    Ok(exit)
}

async fn connect(ctl: &Ctl) -> Result<AdminClient, ClientError> {
    let ca_cert = match &ctl.ca_cert {
        Some(path) => Some(std::fs::read(path).map_err(|error| {
            ClientError::Usage(format!("cannot read {}: {error}", path.display()))
        })?),
        None => None,
    };
    AdminClient::connect(ClientSettings {
        addr: ctl.addr.clone().unwrap_or_default(),
        token: ctl.token.clone(),
        ca_cert,
        timeout: ctl.timeout,
    })
    .await
}

/// Print `document` as JSON, or `human`; [`Exit::Ok`].
fn print(
    out: &mut impl Write,
    json: bool,
    document: &impl serde::Serialize,
    human: String,
) -> Exit {
    let text = if json {
        serde_json::to_string_pretty(document).unwrap_or_else(|_| "null".to_owned())
    } else {
        human
    };
    // A closed stdout (`| head`) is not the operation's failure.
    let _ = writeln!(out, "{}", text.trim_end());
    Exit::Ok
}

/// The history, then (with `follow`) live events until the stream ends: one line each.
async fn events(
    client: &AdminClient,
    out: &mut impl Write,
    json: bool,
    follow: bool,
) -> Result<Exit, ClientError> {
    let mut stream = client.watch().await?;
    while let Some(item) = stream.next().await {
        let item = item?;
        if item == WatchItem::CaughtUp && !follow {
            return Ok(Exit::Ok);
        }
        let line = if json {
            render::watch_item_json(&item)
        } else {
            render::watch_item(&item)
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (`| head -n 3`): done.
            return Ok(Exit::Ok);
        }
    }
    Err(ClientError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Ctl, clap::Error> {
        Ctl::try_parse_from(std::iter::once("emporium ctl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_valid() {
        Ctl::command().debug_assert();
    }

    #[test]
    fn arguments_parse() {
        let ctl = parse(&["--json", "actor", "cart", "c-1", "--addr", "n1:9090"]).unwrap();
        assert!(ctl.json);
        assert_eq!(ctl.addr.as_deref(), Some("n1:9090"));
        assert!(
            matches!(ctl.command, Command::Actor { ref kind, ref key } if kind == "cart" && key == "c-1")
        );
        let ctl = parse(&["events", "--follow", "--timeout", "5s"]).unwrap();
        assert!(matches!(ctl.command, Command::Events { follow: true }));
        assert_eq!(ctl.timeout, Duration::from_secs(5));
        assert!(parse(&["drain"]).is_err(), "drain needs a node");
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["--timeout", "soon", "cluster"]).is_err());
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let help = Ctl::command().render_long_help().to_string();
        for needle in ["Exit codes:", "4  unauthenticated", "EMPORIUM_ADMIN_ADDR"] {
            assert!(help.contains(needle), "help lacks {needle}:\n{help}");
        }
    }

    #[test]
    fn failures_map_to_exit_codes() {
        assert_eq!(Exit::from(Failure::Refused) as u8, 1);
        assert_eq!(Exit::from(Failure::Usage) as u8, 2);
        assert_eq!(Exit::from(Failure::Unreachable) as u8, 3);
        assert_eq!(Exit::from(Failure::Denied) as u8, 4);
        assert_eq!(Exit::from(Failure::NotFound) as u8, 5);
    }
}
