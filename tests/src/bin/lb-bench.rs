//! `cargo xtask bench <what>`: benchmarks whose results go to docs/benchmarks.md.
//! Never a timed test: these numbers are measured here and written down, not asserted.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(about = "lb benchmarks; results are written to docs/benchmarks.md")]
struct Args {
    /// What to measure: datapath, failover, health, master-to-forwarding, scaleout, sync; or
    /// `plot` to redraw the charts from the tables already in the file; `split-brain`
    /// prints failover's split-brain rows without writing anything; `idle-backup` its
    /// idle-backup CPU rows
    what: String,
    /// Markdown file to update (its section for this benchmark is replaced).
    #[arg(long, default_value = "docs/benchmarks.md")]
    output: PathBuf,
    /// Calls per run for each row (the issue asks for >= 100,000).
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// Runs per row; the reported figure is the median of the runs' medians.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// datapath: packets per live-frames run (0: no live-frames rows; `--calls 0`: only those).
    #[arg(long, default_value_t = 10_000_000)]
    live_repeat: u32,
    /// datapath: only the live-frames cases whose name contains one of these
    /// `|`-separated words (e.g. `--calls 0 --only "flood|insert"`), for an A/B of two
    /// builds or a profile; the rows are printed, not written.
    #[arg(long)]
    only: Option<String>,
    /// datapath, with `--only`: also print where each case's time goes in the program,
    /// by source line (`perf record` of the CPU the case runs on).
    #[arg(long, requires = "only")]
    profile: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.what == "plot" {
        return plot(&args.output);
    }
    if args.what == "idle-backup" {
        // Only the idle-backup CPU rows of `failover`, printed (not written).
        println!("{}", lb_tests::bench::failover::idle_rows()?);
        return Ok(());
    }
    if args.what == "split-brain" {
        // Only the split-brain rows of `failover`, printed (not written): to measure them
        // without the rest of the section.
        println!("{}", lb_tests::bench::split_brain::rows()?);
        return Ok(());
    }
    if let Some(only) = &args.only {
        if args.what != "datapath" {
            bail!("--only selects datapath cases; {:?} has none", args.what);
        }
        let cases: Vec<&str> = only.split('|').filter(|c| !c.is_empty()).collect();
        let live = lb_tests::bench::datapath::Live {
            repeat: args.live_repeat,
            only: &cases,
            profile: args.profile,
        };
        // A partial run never replaces the full table in the file.
        println!("{}", lb_tests::bench::datapath::run(0, args.runs, live)?);
        return Ok(());
    }
    let section = match args.what.as_str() {
        "datapath" => lb_tests::bench::datapath::run(
            args.calls,
            args.runs,
            lb_tests::bench::datapath::Live {
                repeat: args.live_repeat,
                only: &[],
                profile: false,
            },
        )?,
        "failover" => lb_tests::bench::failover::run()?,
        "health" => lb_tests::bench::health::run()?,
        "master-to-forwarding" => lb_tests::bench::master_to_forwarding::run()?,
        "scaleout" => lb_tests::bench::scaleout::run()?,
        "sync" => lb_tests::bench::sync::run()?,
        // Run by `cargo xtask bench health` inside the IPVS kernel's VM.
        "health-reference" => lb_tests::bench::health::run_reference()?,
        other => bail!(
            "unknown benchmark {other:?}; available: datapath, failover, health, master-to-forwarding, scaleout, sync, plot (health-reference runs in the IPVS VM)"
        ),
    };
    println!("{section}");
    lb_tests::bench::report::write_section(&args.output, &args.what, &section)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("written to {}", args.output.display());
    plot(&args.output)
}

/// Redraws the SVG charts of the tables in `doc` (docs/benchmarks/*.svg).
fn plot(doc: &std::path::Path) -> Result<()> {
    for chart in lb_tests::bench::plot::render(doc)? {
        println!("chart: {}", chart.display());
    }
    Ok(())
}
