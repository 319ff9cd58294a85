//! The charts in docs/benchmarks/ are the tables of docs/benchmarks.md drawn: a bench
//! run (or `cargo xtask bench plot`) redraws them; this test fails when they drift.

use std::{fs, path::Path};

use lb_tests::bench::plot;

#[test]
fn every_chart_matches_its_table_and_is_linked() {
    let doc_path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/benchmarks.md"
    ));
    let doc = fs::read_to_string(doc_path).unwrap();
    let charts = plot::charts(&doc);
    let files: Vec<&str> = charts.iter().map(|c| c.file).collect();
    for expected in [
        "datapath-live.svg",
        "datapath-repeat1.svg",
        "failover.svg",
        "health.svg",
    ] {
        assert!(
            files.contains(&expected),
            "no {expected} from the tables: {files:?}"
        );
    }
    let dir = plot::chart_dir(doc_path);
    for chart in &charts {
        let path = dir.join(chart.file);
        let on_disk = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask bench plot`", path.display()));
        assert!(
            on_disk == chart.svg,
            "{} is not the table's chart: run `cargo xtask bench plot`",
            path.display()
        );
        let link = format!("(benchmarks/{})", chart.file);
        assert!(doc.contains(&link), "benchmarks.md does not show {link}");
    }
}
