//! Section `ceiling`: a plain hyper 1 hello-world (`emporium_testkit::hello_world`) on the
//! same tokio runtime the node sections serve from, measured with the same load generator and
//! connections. Every HTTP figure of the run is a ratio against it, so the machine and the
//! generator cancel out.

use std::sync::Arc;

use super::drive::{self, Call, Measurement};
use super::{BenchContext, Row};

/// The ceiling's name in the `ratio to` column.
pub const NAME: &str = "hello-world";

/// Requests at most in one window.
const MAX_REQUESTS: u64 = 2_000_000;

pub async fn run(ctx: &BenchContext) -> Vec<Row> {
    match ctx.ceiling().await {
        Ok(hello) => vec![row(ctx, hello)],
        Err(why) => vec![Row::skipped("ceiling", NAME, why)],
    }
}

/// The ceiling's row.
pub fn row(ctx: &BenchContext, hello: &Measurement) -> Row {
    Row::measured("ceiling", NAME, hello)
        .against(NAME, hello.ops_per_sec())
        .with_note(format!("{} connections", ctx.options.connections))
}

/// Start the server and measure it (once per run: see [`BenchContext::ceiling`]).
pub async fn measure(ctx: &BenchContext) -> Result<Measurement, String> {
    let addr = emporium_testkit::hello_world::start()
        .await
        .map_err(|error| format!("cannot start the hello-world server: {error}"))?;
    drive::drive(
        addr,
        &ctx.load(MAX_REQUESTS),
        Arc::new(|_, _| vec![Call::get("/")]),
    )
    .await
    .map_err(|error| error.to_string())
}
