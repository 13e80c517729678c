//! The `emporium` node as a library: [`node::Node::build`] assembles a node from its
//! configuration. The binary (`src/main.rs`), the benches and in-process tests all build
//! nodes through it. [`ctl`] is the binary's other face, `emporium ctl`, the operator's
//! console over a node's admin gRPC API.

pub mod ctl;
pub mod memory;
pub mod node;
pub mod telemetry;

/// Install aws-lc-rs as the process's TLS crypto provider (once; later calls do nothing).
/// Every HTTP client of the process (notification webhooks, the Meilisearch client, the
/// tests' clients) is built without a provider of its own and takes this one.
pub fn install_crypto_provider() {
    // An error means one is installed already: fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
