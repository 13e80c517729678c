//! The command-line layer (clap derive).
//!
//! Flags are taken as text and parsed with everything else after the layers
//! are stacked, so a bad flag gets the same message as a bad variable. The
//! environment is deliberately not wired through clap (`env = ...`): the
//! precedence lives in [`crate::layers::resolve`] alone. Secrets have no flags
//! (a command line shows up in `ps`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::error::{ConfigError, Origin};
use crate::fields::{self, Field};
use crate::layers::{Layer, Raw};

#[derive(Debug, Parser)]
#[command(
    name = "emporium",
    version,
    about = "Emporium: an actor-based e-commerce backend",
    long_about = "Emporium: an actor-based e-commerce backend.\n\n\
        Settings come from, highest precedence first: these flags, EMPORIUM_* \
        environment variables, the TOML file given by --config or \
        EMPORIUM_CONFIG, built-in defaults.\n\n\
        Secrets and the other settings without a flag (EMPORIUM_JWT_SECRET, \
        EMPORIUM_ADMIN_EMAIL/_PASSWORD, EMPORIUM_ADMIN_TOKEN, EMPORIUM_CLUSTER_SECRET, \
        EMPORIUM_REDIS_URL, EMPORIUM_NATS_*, EMPORIUM_SCYLLA_*, EMPORIUM_POSTGRES_POOL_SIZE) go in the \
        environment or the file.\n\n\
        `emporium ctl --help`: the operator's console (the admin gRPC API of admin_addr)."
)]
pub(crate) struct Cli {
    /// TOML config file [env: EMPORIUM_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[arg(long, value_name = "ADDR", help = fields::HTTP_ADDR.flag_help())]
    pub http_addr: Option<String>,

    #[arg(long, value_name = "DIR", help = fields::DATA_DIR.flag_help())]
    pub data_dir: Option<String>,

    #[arg(long, value_name = "STORE", help = fields::STORE.flag_help())]
    pub store: Option<String>,

    #[arg(long, value_name = "DURATION", help = fields::IDLE_TIMEOUT.flag_help())]
    pub idle_timeout: Option<String>,

    #[arg(long, value_name = "N", help = fields::MAX_ACTIVE_ACTORS.flag_help())]
    pub max_active_actors: Option<String>,

    #[arg(long, value_name = "ID", help = fields::NODE_ID.flag_help())]
    pub node_id: Option<String>,

    #[arg(long, overrides_with = "no_demo", help = fields::DEMO.flag_help())]
    pub demo: bool,

    /// Do not seed demo data (the opposite of --demo)
    #[arg(long, overrides_with = "demo")]
    pub no_demo: bool,

    #[arg(long, value_name = "DURATION", help = fields::REQUEST_TIMEOUT.flag_help())]
    pub request_timeout: Option<String>,

    #[arg(long, value_name = "BYTES", help = fields::MAX_BODY_BYTES.flag_help())]
    pub max_body_bytes: Option<String>,

    #[arg(long, value_name = "FILTER", help = fields::LOG.flag_help())]
    pub log: Option<String>,

    #[arg(long, value_name = "ADDR", help = fields::CLUSTER_ADDR.flag_help())]
    pub cluster_addr: Option<String>,

    #[arg(long, value_name = "HOST:PORT,...", help = fields::SEEDS.flag_help())]
    pub seeds: Option<String>,

    #[arg(long, value_name = "ADDR", help = fields::ADMIN_ADDR.flag_help())]
    pub admin_addr: Option<String>,

    #[arg(long, value_name = "FILE", help = fields::ADMIN_TLS_CERT.flag_help())]
    pub admin_tls_cert: Option<String>,

    #[arg(long, value_name = "FILE", help = fields::ADMIN_TLS_KEY.flag_help())]
    pub admin_tls_key: Option<String>,
}

impl Cli {
    /// Parses the arguments (the first is the program name).
    pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, ConfigError> {
        Ok(Cli::try_parse_from(args)?)
    }

    /// The flags given, as a layer.
    pub(crate) fn layer(&self) -> Layer {
        let demo = match (self.demo, self.no_demo) {
            (true, _) => Some("true".to_owned()),
            (_, true) => Some("false".to_owned()),
            _ => None,
        };
        let given: [(&Field, Option<&String>); 15] = [
            (&fields::HTTP_ADDR, self.http_addr.as_ref()),
            (&fields::DATA_DIR, self.data_dir.as_ref()),
            (&fields::STORE, self.store.as_ref()),
            (&fields::IDLE_TIMEOUT, self.idle_timeout.as_ref()),
            (&fields::MAX_ACTIVE_ACTORS, self.max_active_actors.as_ref()),
            (&fields::NODE_ID, self.node_id.as_ref()),
            (&fields::DEMO, demo.as_ref()),
            (&fields::REQUEST_TIMEOUT, self.request_timeout.as_ref()),
            (&fields::MAX_BODY_BYTES, self.max_body_bytes.as_ref()),
            (&fields::LOG, self.log.as_ref()),
            (&fields::CLUSTER_ADDR, self.cluster_addr.as_ref()),
            (&fields::SEEDS, self.seeds.as_ref()),
            (&fields::ADMIN_ADDR, self.admin_addr.as_ref()),
            (&fields::ADMIN_TLS_CERT, self.admin_tls_cert.as_ref()),
            (&fields::ADMIN_TLS_KEY, self.admin_tls_key.as_ref()),
        ];
        given
            .into_iter()
            .filter_map(|(field, text)| {
                let flag = field.flag?;
                Some((
                    field.key,
                    Raw {
                        text: text?.clone(),
                        origin: Origin::Flag(flag),
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn layer(args: &[&str]) -> Layer {
        let args = std::iter::once("emporium")
            .chain(args.iter().copied())
            .map(OsString::from);
        Cli::parse(args).expect("parses").layer()
    }

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_of_the_catalogue_is_wired() {
        for field in fields::ALL {
            let Some(flag) = field.flag else { continue };
            let value = if field.key == "demo" { None } else { Some("x") };
            let args: Vec<&str> = std::iter::once(flag).chain(value).collect();
            let layer = layer(&args);
            let raw = layer.get(field.key).expect(flag);
            assert_eq!(raw.origin, Origin::Flag(flag));
        }
    }

    #[test]
    fn demo_and_no_demo_last_one_wins() {
        let demo = |args: &[&str]| layer(args).get("demo").map(|r| r.text.clone());
        assert_eq!(demo(&[]), None);
        assert_eq!(demo(&["--demo"]), Some("true".into()));
        assert_eq!(demo(&["--no-demo"]), Some("false".into()));
        assert_eq!(demo(&["--demo", "--no-demo"]), Some("false".into()));
        assert_eq!(demo(&["--no-demo", "--demo"]), Some("true".into()));
    }

    #[test]
    fn help_names_the_env_vars_and_defaults() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "--http-addr <ADDR>",
            "[env: EMPORIUM_HTTP_ADDR]",
            "[default: 127.0.0.1:8080]",
            "[env: EMPORIUM_CONFIG]",
            "--no-demo",
            "node-<hostname>",
        ] {
            assert!(help.contains(needle), "help lacks {needle}:\n{help}");
        }
    }
}
