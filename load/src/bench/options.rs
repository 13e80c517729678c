//! The harness's flags: `--only SECTION[,…]`, `--quick`, `--out PATH`, `--connections N`,
//! `--driver-threads N`. Parsed by hand (a handful of flags; the goose binary's parser is
//! goose's own).

use std::path::PathBuf;

/// The usage text `--help` prints.
pub const USAGE: &str = "\
Usage: cargo run --release -p load --bin bench -- [OPTIONS]

Measures a plain hyper hello-world (the ceiling), an in-process node, the runtime and the
store adapters in one run, prints one table and writes it with this machine's description.

Options:
  --only SECTION[,…]     run only these sections (see below); the ceiling is measured anyway
                         when an HTTP section needs it
  --quick                short windows (1 s per figure, fewer actors): a smoke run, e.g. in CI
  --out PATH             where the report goes (default: BENCHMARKS.md at the workspace root)
  --connections N        concurrent HTTP connections of the load generator (default 32)
  --driver-threads N     OS threads of the load generator (default 1)
  -h, --help             this text

Services (used when up, else their rows say skipped):
  EMPORIUM_TEST_POSTGRES  PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/postgres)
  SCYLLA_NODES            CQL contact points, e.g. 127.0.0.1:9042";

/// What the flags asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// `--only`: section names; `None` runs every section.
    pub only: Option<Vec<String>>,
    pub quick: bool,
    pub out: PathBuf,
    pub connections: usize,
    pub driver_threads: usize,
    pub help: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            only: None,
            quick: false,
            out: default_out(),
            connections: 32,
            driver_threads: 1,
            help: false,
        }
    }
}

/// `BENCHMARKS.md` at the workspace root (this crate's parent directory).
pub fn default_out() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md"))
}

/// A flag the harness cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionsError {
    #[error("unknown option {0:?} (see --help)")]
    Unknown(String),
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("{flag} takes a positive number, not {value:?}")]
    NotAPositiveNumber { flag: &'static str, value: String },
    #[error("unknown section {name:?}; the sections are: {known}")]
    UnknownSection { name: String, known: String },
}

impl BenchOptions {
    /// Parse the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, OptionsError> {
        let mut options = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = |name: &'static str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or(OptionsError::MissingValue(name))
            };
            match flag.as_str() {
                "--only" => {
                    let names = value("--only")?
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect();
                    options.only = Some(names);
                }
                "--quick" => options.quick = true,
                "--out" => options.out = PathBuf::from(value("--out")?),
                "--connections" => {
                    options.connections = positive("--connections", &value("--connections")?)?;
                }
                "--driver-threads" => {
                    options.driver_threads =
                        positive("--driver-threads", &value("--driver-threads")?)?;
                }
                "-h" | "--help" => options.help = true,
                _ => return Err(OptionsError::Unknown(arg)),
            }
        }
        Ok(options)
    }
}

fn positive(flag: &'static str, value: &str) -> Result<usize, OptionsError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(OptionsError::NotAPositiveNumber {
            flag,
            value: value.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BenchOptions, OptionsError> {
        BenchOptions::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn every_flag_is_read() {
        let options = parse(&[
            "--only",
            "node, stores",
            "--quick",
            "--out=/tmp/b.md",
            "--connections",
            "8",
            "--driver-threads=2",
        ])
        .unwrap();
        assert_eq!(
            options.only,
            Some(vec!["node".to_owned(), "stores".to_owned()])
        );
        assert!(options.quick);
        assert_eq!(options.out, PathBuf::from("/tmp/b.md"));
        assert_eq!(options.connections, 8);
        assert_eq!(options.driver_threads, 2);
    }

    #[test]
    fn defaults_run_everything_into_the_workspace_report() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.only, None);
        assert_eq!(options.connections, 32);
        assert!(options.out.ends_with("BENCHMARKS.md"));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert_eq!(
            parse(&["--connections", "0"]),
            Err(OptionsError::NotAPositiveNumber {
                flag: "--connections",
                value: "0".to_owned()
            })
        );
        assert_eq!(parse(&["--out"]), Err(OptionsError::MissingValue("--out")));
        assert_eq!(
            parse(&["--fast"]),
            Err(OptionsError::Unknown("--fast".to_owned()))
        );
    }
}
