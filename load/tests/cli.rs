//! The `load` binary's command line, without a node: usage, and the refusals that must come
//! before any load is sent. (Runs against a node: `scripts/load-smoke.sh`.)

use std::process::{Command, Output};

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_load"))
        .args(args)
        .env_remove("LOAD_ADMIN_EMAIL")
        .env_remove("LOAD_ADMIN_PASSWORD")
        .env_remove("LOAD_HOSTS")
        .env_remove("LOAD_MIX")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_shows_gooses_flags_and_ours() {
    let output = load(&["--help"]);
    assert!(output.status.success());
    let usage = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--host",
        "--users",
        "--run-time",
        "--report-file",
        "--scenarios",
        "--hosts",
        "--mix",
        "LOAD_ADMIN_PASSWORD",
    ] {
        assert!(usage.contains(flag), "{flag} missing from:\n{usage}");
    }
}

#[test]
fn scenarios_that_need_the_admin_are_refused_without_one() {
    for scenario in ["checkout", "restock", "storefront"] {
        let output = load(&["--host", "http://127.0.0.1:9", "--scenarios", scenario]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{scenario}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("LOAD_ADMIN_EMAIL"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_node_that_does_not_answer_stops_the_run_before_it_starts() {
    // Port 9 (discard) on loopback: nothing listens there.
    let output = load(&[
        "--host",
        "http://127.0.0.1:9",
        "--scenarios",
        "browse",
        "--run-time",
        "1s",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot prepare the shop"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_options_are_refused() {
    let output = load(&["--mix", "browse=ten"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("mix"), "{}", stderr(&output));
    let output = load(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
}
