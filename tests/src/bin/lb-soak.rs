//! `cargo xtask soak --minutes N [--seed S]`: the fault-injection soak
//! (tests/src/soak). Prints the report; `--report FILE` also writes it into FILE's soak
//! section (docs/reliability.md). Exits non-zero when a target is missed.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Fault-injection soak of two LB nodes (needs root)")]
struct Args {
    /// Length of the load, in minutes (set-up not counted).
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// Seed of the fault schedule (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Only faults of this kind, repeated (e.g. `master-killed`): to chase one finding.
    #[arg(long)]
    only: Option<String>,
    /// Markdown file whose `soak` section receives the report.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let opts = lb_tests::soak::Options {
        length: Duration::from_secs_f64(args.minutes * 60.0),
        seed,
        only: args.only.clone(),
    };
    match lb_tests::soak::run(&opts) {
        Ok((report, ok)) => {
            let body = format!(
                "Measured on {} with `cargo xtask soak --minutes {} --seed {seed}`.\n\n{report}",
                lb_tests::bench::report::machine(),
                args.minutes
            );
            println!("{body}");
            if let Some(path) = &args.report {
                if let Err(e) = lb_tests::bench::report::write_section(path, "soak", &body) {
                    eprintln!("error: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if ok {
                println!("soak: every target met (seed {seed})");
                ExitCode::SUCCESS
            } else {
                eprintln!("soak: a target was missed (seed {seed}: rerun with --seed {seed})");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: the soak could not run (seed {seed}): {e:#}");
            ExitCode::FAILURE
        }
    }
}
