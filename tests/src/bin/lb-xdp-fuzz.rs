//! `cargo xtask fuzz xdp`: the XDP program fuzzed through BPF_PROG_TEST_RUN
//! (`lb_tests::xdp_fuzz`). Needs root and `LB_EBPF_OBJECT` (xtask sets it).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Fuzz the XDP program through BPF_PROG_TEST_RUN")]
struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Generator seed (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many runs instead (replays a failure with its seed).
    #[arg(long)]
    runs: Option<u64>,
    /// Where a failing frame is written.
    #[arg(long, default_value = "target/xdp-fuzz")]
    out_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    println!("xdp fuzz: seed {seed}");
    let opts = lb_tests::xdp_fuzz::Options {
        seed,
        time: Duration::from_secs(args.time),
        runs: args.runs,
        out_dir: args.out_dir,
    };
    match lb_tests::xdp_fuzz::run(opts) {
        Ok(report) => {
            println!("xdp fuzz: {report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
