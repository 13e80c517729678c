//! Generates the admin API's Rust code from `proto/` with the `protoc` vendored by
//! `protoc-bin-vendored`, so that a fresh machine needs no system `protoc`.

use std::error::Error;

const PROTO: &str = "proto/emporium/admin/v1/admin.proto";

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts run single-threaded; nothing else reads the environment now.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&[PROTO], &["proto"])?;
    Ok(())
}
