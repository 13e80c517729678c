//! [`ConfigError`]: what went wrong, said so an operator can fix it.
//!
//! Every value error names the field twice (its environment variable and its
//! TOML key, because the operator may have set it either way), shows the bad
//! value (never for secrets; URLs with their passwords masked), says what was
//! expected, and, when the value did not come from the environment, where it
//! came from:
//!
//! ```text
//! invalid EMPORIUM_IDLE_TIMEOUT (idle_timeout) = "5 minutes please": expected a duration like 30s, 5m or 250ms
//! invalid EMPORIUM_HTTP_ADDR (http_addr) = "localhost:80": expected a socket address like 127.0.0.1:8080 or [::1]:8080 (an IP address, not a host name) (set by --http-addr)
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a value came from: one of the four layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// The field's environment variable.
    Env,
    /// The command-line flag with this name (e.g. `--http-addr`).
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "set in {}", path.display()),
            Origin::Env => f.write_str("set in the environment"),
            Origin::Flag(flag) => write!(f, "set by {flag}"),
        }
    }
}

/// Why [`NodeConfig::load`](crate::NodeConfig::load) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The command line did not parse, or asked for `--help` / `--version`.
    /// [`ConfigError::exit`] (or `clap::Error::exit`) prints it and exits with
    /// the right code: 0 for help and version, 2 for a usage error.
    #[error("{0}")]
    Cli(#[from] clap::Error),

    /// The config file named by `--config` or `EMPORIUM_CONFIG` could not be read.
    #[error("cannot read config file {} (from {origin}): {source}", path.display())]
    FileRead {
        /// The path as given.
        path: PathBuf,
        /// `--config` or `EMPORIUM_CONFIG`.
        origin: &'static str,
        /// The I/O error (e.g. not found).
        source: io::Error,
    },

    /// The config file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },

    /// The config file has a key that is not a setting (a typo, usually).
    #[error("unknown key `{key}` in config file {}{}; the known keys are: {known}", path.display(), hint.as_deref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, dotted for keys inside a table (`scylla.usr`).
        key: String,
        /// The closest known key, when one is close.
        hint: Option<String>,
        /// The keys allowed at that level, comma-separated.
        known: String,
    },

    /// A value is not valid for its field.
    #[error("{}", fmt_invalid(.env, .key, .value.as_deref(), .expected, .origin))]
    Invalid {
        /// The TOML key (`idle_timeout`, `scylla.replication_factor`).
        key: &'static str,
        /// The environment variable (`EMPORIUM_IDLE_TIMEOUT`).
        env: &'static str,
        /// The bad value as given; `None` for secrets. URLs have their
        /// credentials masked.
        value: Option<String>,
        /// What the field accepts.
        expected: String,
        /// Where the bad value came from.
        origin: Origin,
    },

    /// Values that are each fine but do not go together (cluster mode on the
    /// embedded store, an admin e-mail without a password, ...).
    #[error("{message}")]
    Conflict {
        /// Names every field involved, by env var and TOML key.
        message: String,
    },
}

fn fmt_invalid(
    env: &str,
    key: &str,
    value: Option<&str>,
    expected: &str,
    origin: &Origin,
) -> String {
    let value = value.map(|v| format!(" = {v:?}")).unwrap_or_default();
    let origin = match origin {
        Origin::Env => String::new(),
        other => format!(" ({other})"),
    };
    format!("invalid {env} ({key}){value}: expected {expected}{origin}")
}

impl ConfigError {
    /// Whether this is `--help` or `--version` rather than a failure.
    pub fn is_help_or_version(&self) -> bool {
        matches!(self, ConfigError::Cli(e) if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ))
    }

    /// For `main`: prints the error (help and version to stdout, anything else
    /// to stderr) and exits: 0 for `--help`/`--version`, 2 otherwise.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Cli(e) => e.exit(),
            other => {
                eprintln!("error: {other}");
                std::process::exit(2)
            }
        }
    }
}
