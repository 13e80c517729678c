//! `BENCHMARKS.md`: the machine's description (CPU model, cores, memory, kernel, rustc,
//! date, git commit), how the run was made, and the full table. Written whole at the end of a
//! run; figures only mean something next to the machine they came from.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Row, table};

/// What the report says about the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub date: String,
    pub commit: String,
}

impl Machine {
    /// Read from `/proc`, `rustc --version` and `git` (each `unknown` when unavailable).
    pub fn describe() -> Self {
        let proc = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self {
            cpu: cpu_model(&proc("/proc/cpuinfo")).unwrap_or_else(unknown),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory: mem_total(&proc("/proc/meminfo")).unwrap_or_else(unknown),
            kernel: Some(proc("/proc/sys/kernel/osrelease").trim().to_owned())
                .filter(|kernel| !kernel.is_empty())
                .unwrap_or_else(unknown),
            rustc: output("rustc", &["--version"]).unwrap_or_else(unknown),
            date: utc_now(),
            commit: commit().unwrap_or_else(unknown),
        }
    }

    fn markdown(&self) -> String {
        format!(
            "| | |\n| --- | --- |\n| CPU | {} |\n| cores | {} |\n| memory | {} |\n| kernel | {} |\n| rustc | {} |\n| date | {} |\n| commit | {} |\n",
            self.cpu, self.cores, self.memory, self.kernel, self.rustc, self.date, self.commit
        )
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The `model name` of `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// `MemTotal` of `/proc/meminfo`, in GiB.
pub fn mem_total(meminfo: &str) -> Option<String> {
    let kib: f64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The commit of the workspace, with `(modified)` when the tree has uncommitted changes.
fn commit() -> Option<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let hash = output("git", &["-C", root, "rev-parse", "--short=12", "HEAD"])?;
    let dirty = output(
        "git",
        &["-C", root, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_some();
    Some(if dirty {
        format!("{hash} (modified)")
    } else {
        hash
    })
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    utc(secs)
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// The build profile of this binary: a debug build's figures are not the product's.
fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "a **debug** build: its figures are not representative"
    } else {
        "release build"
    }
}

/// The report's text.
pub fn render(machine: &Machine, command: &str, rows: &[Row]) -> String {
    format!(
        "# Benchmarks\n\n\
         Written by `cargo run --release -p load --bin bench` (see README.md, \"Benchmarks\"). \
         Every HTTP figure is a ratio against a plain hyper hello-world measured in the same \
         run with the same load generator; compare ratios, not absolute rates, across machines.\n\n\
         ## Machine\n\n{}\n\
         ## Run\n\n`{command}` ({})\n\n\
         ## Figures\n\n{}",
        machine.markdown(),
        profile(),
        table::markdown(rows)
    )
}

/// Write the report to `path`.
pub fn write(path: &Path, machine: &Machine, command: &str, rows: &[Row]) -> std::io::Result<()> {
    std::fs::write(path, render(machine, command, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_612_486), "2026-12-07 03:01 UTC");
    }

    #[test]
    fn machine_facts_are_read_from_proc() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(
            mem_total("MemTotal:        8388608 kB\n").as_deref(),
            Some("8.0 GiB")
        );
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn the_report_holds_machine_and_table() {
        let machine = Machine {
            cpu: "cpu".into(),
            cores: 2,
            memory: "4.0 GiB".into(),
            kernel: "6.1".into(),
            rustc: "rustc 1.90".into(),
            date: "2026-12-07 03:41 UTC".into(),
            commit: "abc".into(),
        };
        let rows = vec![Row::skipped("node", "checkout (cql)", "down")];
        let text = render(&machine, "bench --quick", &rows);
        assert!(text.contains("| cores | 2 |"));
        assert!(text.contains("`bench --quick`"));
        assert!(text.contains("checkout (cql)"));
    }
}
