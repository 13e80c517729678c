//! `bench`: the one benchmark harness; see `load/src/bench/mod.rs` and README.md,
//! "Benchmarks". Runs the selected sections, prints the table, writes `BENCHMARKS.md`.

use std::process::ExitCode;

use load::bench::{
    self, BenchContext, BenchOptions, memory_probe, options, report, services, table,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The harness runs itself again as the memory probe (a clean process to measure).
    if args.first().map(String::as_str) == Some(memory_probe::FLAG) {
        return probe(args.get(1));
    }
    let options = match BenchOptions::parse(args.clone()) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{}\n\nSections:", options::USAGE);
        for section in bench::SECTIONS {
            println!("  {:<10} {}", section.name, section.about);
        }
        return ExitCode::SUCCESS;
    }
    let sections = match bench::selected(options.only.as_deref()) {
        Ok(sections) => sections,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    emporium::install_crypto_provider();
    // The servers under test run here, like the node binary's (a multi-threaded runtime, a
    // worker per core); the load generator has threads of its own.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let out = options.out.clone();
    let ctx = BenchContext::new(
        options,
        services::Services::from_env(|key| std::env::var(key).ok()),
    );
    let rows = runtime.block_on(bench::run(&ctx, &sections));
    println!("{}", table::text(&rows));
    let command = std::iter::once("cargo run --release -p load --bin bench --".to_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    let machine = report::Machine::describe();
    if let Err(error) = report::write(&out, &machine, &command, &rows) {
        eprintln!("bench: cannot write {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    println!("bench: wrote {}", out.display());
    ExitCode::SUCCESS
}

fn probe(actors: Option<&String>) -> ExitCode {
    let Some(actors) = actors.and_then(|n| n.parse::<u64>().ok()) else {
        eprintln!("bench: {} takes a number of actors", memory_probe::FLAG);
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(memory_probe::probe(actors)) {
        Ok(report) => {
            println!("{}", report.line());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bench: memory probe: {error}");
            ExitCode::FAILURE
        }
    }
}
