//! # emporium-config: one typed node configuration
//!
//! **What.** Everything an Emporium node needs to start (where to listen,
//! which state store, actor limits, secrets, cluster membership) as one
//! [`NodeConfig`], loaded and validated up front by [`NodeConfig::load`].
//!
//! **Why.** Settings read ad hoc from the environment, deep in the code, fail
//! late and vaguely: the node starts, then a request dies on a typo. Loading
//! all of them once, in one place, means a bad value stops the node at
//! start-up with a message naming the field, the value and what would have
//! been accepted; the rest of the code receives typed values
//! ([`std::time::Duration`], [`std::net::SocketAddr`], [`StoreConfig`]) and
//! never parses a string again.
//!
//! **The precedence rule.** Four layers, the highest that sets a field wins:
//!
//! ```text
//! command-line flags  >  EMPORIUM_* environment variables  >  TOML file  >  built-in defaults
//! ```
//!
//! The TOML file is the one named by `--config FILE`, else by
//! `EMPORIUM_CONFIG`; without either there is none. The rule is written once,
//! in `layers::resolve`; clap's own `env` support is not used, so it cannot
//! sneak in a second one. An empty value unsets an optional field, so
//! `EMPORIUM_REDIS_URL=` turns off a Redis URL set in the file.
//!
//! ```no_run
//! use emporium_config::NodeConfig;
//!
//! let config = NodeConfig::load(std::env::args_os(), &|k| std::env::var(k).ok())
//!     .unwrap_or_else(|e| e.exit()); // prints --help/--version or the error
//! println!("starting: {config}"); // secrets never appear
//! ```
//!
//! The settings, their names in each layer and their defaults are listed in
//! this crate's README.md.
//!
//! ## Modules
//!
//! - `fields`: the catalogue: each setting's TOML key, variable, flag, default.
//! - `layers`: the layers as text, and the precedence rule.
//! - `file`, `cli`: the TOML and command-line layers.
//! - `values`: parsers for one value each, and URL masking.
//! - `store`: [`StoreConfig`], parsed from `embedded`, `memory`, `postgres://`, `scylla://`.
//! - `secret`: [`Secret`], a string whose `Debug` is `***`.
//! - `error`: [`ConfigError`].
//! - `node`: [`NodeConfig`], its cross-field rules and its summary line.

mod cli;
mod error;
mod fields;
mod file;
mod layers;
mod node;
mod secret;
mod store;
mod values;

pub use error::{ConfigError, Origin};
pub use node::{
    ADMIN_TOKEN_MIN_BYTES, AdminApiConfig, AdminCredentials, AdminTls, CONFIG_ENV, ClusterConfig,
    JWT_SECRET_MIN_BYTES, MAX_BODY_BYTES_LIMIT, MembershipTimings, NatsStreamConfig, NodeConfig,
    RateLimitConfig,
};
pub use secret::Secret;
pub use store::{SCYLLA_DEFAULT_PORT, ScyllaConsistency, ScyllaSerialConsistency, StoreConfig};
