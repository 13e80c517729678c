//! Load tests of an Emporium storefront with [goose](https://book.goose.rs): goose users
//! who behave like shoppers (browse, fill carts, check out) and an admin who restocks.
//!
//! The binary (`src/main.rs`) takes goose's own flags (`--host`, `--users`, `--run-time`,
//! `--report-file`, `--scenarios`, …) plus ours (`options`), prepares the shop (`shop`),
//! registers the scenarios (`scenarios`), runs goose, and exits non-zero unless every
//! request passed its checks (`verdict`). Every answer is checked, status and body
//! (`wire`, through `http`); a failed check is an error in goose's report.

pub mod bench;
pub mod http;
pub mod options;
pub mod scenarios;
pub mod session;
pub mod shop;
pub mod verdict;
pub mod wire;
