//! The `emporium` node as a library: [`node::Node::build`] assembles a node from its
//! configuration. The binary (`src/main.rs`), the benches and in-process tests all build
//! nodes through it.

pub mod node;
