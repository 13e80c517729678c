//! The table of a run: one aligned text line per row for the terminal ([`line`], [`text`]),
//! and the Markdown table of `BENCHMARKS.md` ([`markdown`]).

use super::Row;

const HEADER: [&str; 7] = [
    "section", "figure", "ops/s", "p50 ms", "p99 ms", "ratio", "note",
];

/// The cells of `row`, formatted.
fn cells(row: &Row) -> [String; 7] {
    let skipped = row.is_skipped();
    let number = |value: f64, digits: usize| {
        if skipped {
            "–".to_owned()
        } else {
            format!("{value:.digits$}")
        }
    };
    let ratio = match row.ratio {
        Some(ratio) => format!("{} x {}", ratio_digits(ratio), row.ratio_to),
        None => "–".to_owned(),
    };
    [
        row.section.clone(),
        row.name.clone(),
        number(row.ops_per_sec, 0),
        number(row.p50_ms, 2),
        number(row.p99_ms, 2),
        ratio,
        row.note.clone(),
    ]
}

/// Small ratios keep two significant digits (a checkout is a hundredth of a hello-world).
fn ratio_digits(ratio: f64) -> String {
    if ratio >= 0.1 {
        format!("{ratio:.2}")
    } else if ratio >= 0.01 {
        format!("{ratio:.3}")
    } else {
        format!("{ratio:.4}")
    }
}

/// One row as one line of text (printed as each section finishes).
pub fn line(row: &Row) -> String {
    let [section, name, ops, p50, p99, ratio, note] = cells(row);
    format!("{section:<8} {name:<34} {ops:>10} {p50:>8} {p99:>8} {ratio:>28}  {note}")
}

/// The whole table as aligned text.
pub fn text(rows: &[Row]) -> String {
    let [s, n, o, p50, p99, r, note] = HEADER;
    let mut out = format!("{s:<8} {n:<34} {o:>10} {p50:>8} {p99:>8} {r:>28}  {note}\n");
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// The whole table in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | --- |\n");
    for row in rows {
        let cells = cells(row).map(|cell| cell.replace('|', "\\|"));
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::drive::Measurement;
    use super::*;

    #[test]
    fn markdown_has_a_line_per_row_and_escapes_pipes() {
        let m = Measurement::counted(500, 1.0);
        let rows = vec![
            Row::measured("node", "product read (embedded)", &m)
                .against("hello-world", 1000.0)
                .with_note("a|b"),
            Row::skipped("node", "checkout (cql)", "SCYLLA_NODES not set"),
        ];
        let table = markdown(&rows);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| 500 |"));
        assert!(table.contains("0.50 x hello-world"));
        assert!(table.contains("a\\|b"));
        assert!(table.contains("| – |"));
        assert!(text(&rows).lines().count() == 3);
    }

    #[test]
    fn small_ratios_keep_their_digits() {
        assert_eq!(ratio_digits(0.38), "0.38");
        assert_eq!(ratio_digits(0.018), "0.018");
        assert_eq!(ratio_digits(0.0095), "0.0095");
    }
}
