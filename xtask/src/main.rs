//! Development tasks: `cargo xtask <command>` (alias in .cargo/config.toml).

mod build;
mod deb;
mod fuzz;
mod man;

mod progress;
mod setup;
mod summary;
mod test_build;
mod util;
mod vm;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test and run the XDP load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: nightly + rust-src, bpf-linker, apt packages, bpffs.
    Setup,
    /// Build the eBPF object (target/bpfel-unknown-none/<profile>/lb-ebpf).
    BuildEbpf {
        /// Use the dev profile instead of release.
        #[arg(long)]
        debug: bool,
    },
    /// Build the eBPF object, then all host crates in release mode.
    Build,
    /// Set up, build the eBPF object and run the workspace tests, then (without extra
    /// arguments) the tests that need an IPVS kernel, in a virtme-ng VM.
    Test {
        /// Only the VM tests (IPVS on Debian's kernel, booted with virtme-ng).
        #[arg(long, conflicts_with = "no_vm")]
        vm: bool,
        /// Skip the VM tests.
        #[arg(long)]
        no_vm: bool,
        /// Extra `cargo test` arguments (put test-binary ones after a second `--`).
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Set up, build and run lb-daemon (default arguments: `lab`).
    Run {
        /// lb-daemon arguments.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Man pages and bash/zsh/fish completions from lb-daemon's CLI (target/man).
    Man,
    /// The Debian package (target/deb/lb-daemon_VERSION_ARCH.deb).
    Deb,
    /// Build the cargo-fuzz targets (tests/fuzz) and run TARGET (all when none) for
    /// `--time` seconds each; fails on a crash and names the reproducer. Target `xdp`
    /// fuzzes the XDP program through BPF_PROG_TEST_RUN (root).
    Fuzz {
        /// One target (see tests/fuzz/fuzz_targets, or `xdp`); all when omitted.
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// The XDP fuzzer's seed (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// The XDP fuzzer stops after this many frames (with `--seed`: replays a failure).
        #[arg(long)]
        runs: Option<u64>,
        /// Unoptimised builds, as `cargo xtask test`'s short runs: quick to build, fewer
        /// executions per second.
        #[arg(long)]
        dev: bool,
    },
    /// The fault-injection soak (tests/src/soak): two LB nodes, client load, a seeded
    /// schedule of faults; prints the report and fails when a target is missed.
    Soak {
        /// Length of the load in minutes.
        #[arg(long, default_value_t = 3.0)]
        minutes: f64,
        /// Seed of the fault schedule (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the report into docs/reliability.md's soak section.
        #[arg(long)]
        record: bool,
        /// Only faults of this kind, repeated (e.g. `master-killed`).
        #[arg(long)]
        only: Option<String>,
    },
    /// Set up, build the eBPF object and run lb-bench.
    Bench {
        /// Benchmark name (e.g. `datapath`; `plot` redraws the charts from
        /// docs/benchmarks.md); lb-bench checks it.
        what: OsString,
        /// Extra lb-bench arguments.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
}

/// Tells tests, the daemon and benchmarks which eBPF object to load.
pub(crate) const OBJECT_ENV: &str = "LB_EBPF_OBJECT";

/// Tells `tests/tests/deb.rs` which package to install.
const DEB_ENV: &str = "LB_DEB";

fn main() -> ExitCode {
    match run_task(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line, without the backtrace
            // anyhow's Debug output adds under RUST_BACKTRACE=1.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::setup(),
        Task::BuildEbpf { debug } => build::build_ebpf(!debug).map(drop),
        Task::Build => build::build_all().map(drop),
        Task::Test { vm, no_vm, args } => test(&args, vm_plan(vm, no_vm, &args)),
        Task::Run { args } => run(args),
        Task::Bench { what, args } => bench(what, &args),
        Task::Soak {
            minutes,
            seed,
            record,
            only,
        } => soak(minutes, seed, record, only),
        Task::Fuzz {
            target,
            time,
            seed,
            runs,
            dev,
        } => fuzz::fuzz(
            target.as_deref(),
            time,
            time,
            seed,
            runs,
            if dev {
                fuzz::Profile::Dev
            } else {
                fuzz::Profile::Release
            },
        ),
        Task::Man => man::generate(false).map(drop),
        Task::Deb => deb::build().map(drop),
    }
}

/// Which tests `cargo xtask test` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestPlan {
    Workspace,
    VmOnly,
    Both,
}

/// The VM tests join a plain `cargo xtask test`; extra cargo arguments select tests, and
/// then only those run.
fn vm_plan(vm: bool, no_vm: bool, args: &[OsString]) -> TestPlan {
    if vm {
        TestPlan::VmOnly
    } else if no_vm || !args.is_empty() {
        TestPlan::Workspace
    } else {
        TestPlan::Both
    }
}

fn test(args: &[OsString], plan: TestPlan) -> Result<()> {
    setup::setup()?;
    let object = build::build_ebpf(true)?;
    let mut totals = summary::Totals::default();
    // The test build, once the tests have run (a full run: no test selection); the
    // steps after them run its binaries.
    let mut built = None;
    let workspace = if plan == TestPlan::VmOnly {
        Ok(())
    } else {
        let tests = workspace_tests(args, &object, &mut totals);
        let rest = if args.is_empty() {
            test_build::build(&object).and_then(|b| {
                // Every fuzz target briefly, then the fault-injection soak (fixed length
                // and seed).
                let fuzzing = fuzz::fuzz(
                    None,
                    fuzz::CI_SECONDS,
                    fuzz::XDP_CI_SECONDS,
                    None,
                    None,
                    fuzz::Profile::Dev,
                );
                let soaking = run_soak(
                    &object,
                    SOAK_CI_MINUTES,
                    Some(SOAK_CI_SEED),
                    false,
                    None,
                    Some(&b),
                );
                built = Some(b);
                fuzzing.and(soaking)
            })
        } else {
            Ok(())
        };
        tests.and(rest)
    };
    let in_vm = if plan == TestPlan::Workspace {
        Ok(())
    } else {
        vm::run(&object, built.as_ref(), &mut totals)
    };
    // The last line totals the whole run, host and VM.
    println!("{}", totals.line());
    match (workspace, in_vm) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Err(w), Err(v)) => Err(w.context(format!("and the VM tests failed too: {v:#}"))),
    }
}

fn workspace_tests(args: &[OsString], object: &Path, totals: &mut summary::Totals) -> Result<()> {
    let mut cmd = util::host_cargo()?;
    // Every test binary runs even when one fails, so one run shows every failure.
    cmd.args(["test", "--no-fail-fast"]);
    // `--workspace` would silently override a `-p` the caller passed.
    if !selects_packages(args) {
        cmd.args(["--workspace", "--exclude", "lb-ebpf"]);
    }
    cmd.args(args).env(OBJECT_ENV, object);
    // The package test installs the package as shipped (release, no lab); built once
    // here, and only when that test is among those selected.
    if runs_deb_test(args) {
        cmd.env(DEB_ENV, deb::build()?);
    }
    let (counted, result) = summary::run_counted(&mut cmd);
    totals.add(&counted);
    result
}

/// Whether cargo arguments (before any `--`) pick packages with `-p`/`--package`.
fn selects_packages(args: &[OsString]) -> bool {
    args.iter()
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| a == "--package" || a.starts_with("--package=") || a.starts_with("-p"))
}

/// Whether the selected tests may include `lb-tests`' `deb` test: not when packages
/// other than lb-tests, only library tests, or other test targets are named.
fn runs_deb_test(args: &[OsString]) -> bool {
    let cargo: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let value_of = |flag: &str, short: Option<&str>| -> Vec<String> {
        let mut values = Vec::new();
        for (i, a) in cargo.iter().enumerate() {
            if a == flag || Some(a.as_str()) == short {
                values.extend(cargo.get(i + 1).cloned());
            } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                values.push(v.to_string());
            } else if let Some(v) = short.and_then(|s| a.strip_prefix(s)) {
                values.push(v.to_string());
            }
        }
        values
    };
    let packages = value_of("--package", Some("-p"));
    let tests = value_of("--test", None);
    let only_lib = cargo
        .iter()
        .any(|a| a == "--lib" || a == "--bins" || a == "--doc");
    (packages.is_empty() || packages.iter().any(|p| p == "lb-tests"))
        && (tests.is_empty() || tests.iter().any(|t| t == "deb"))
        && !only_lib
}

fn run(mut args: Vec<OsString>) -> Result<()> {
    setup::setup()?;
    let (object, daemon) = build::build_all()?;
    if args.is_empty() {
        args.push("lab".into());
    }
    let mut cmd = Command::new(&daemon);
    cmd.args(&args).env(OBJECT_ENV, &object);
    exec(cmd, &daemon)
}

fn bench(what: OsString, args: &[OsString]) -> Result<()> {
    // Redrawing the charts from the recorded tables needs no set-up nor eBPF object.
    if what == "plot" {
        return util::run(lb_bench()?.arg("plot").args(args));
    }
    setup::setup()?;
    let health = what == "health";
    let mut progress = progress::Progress::new("bench", if health { 3 } else { 2 });
    // Benchmarks that run the daemon use the release build.
    let step = progress.step("build (release)");
    let (object, daemon) = build::build_all()?;
    step.done();
    let mut cmd = lb_bench()?;
    cmd.arg(&what)
        .args(args)
        .env(OBJECT_ENV, &object)
        .env("LB_DAEMON_BIN", &daemon);
    let step = progress.step(&format!("lb-bench {}", what.to_string_lossy()));
    util::run(&mut cmd)?;
    step.done();
    // keepalived's checker, the health benchmark's reference, needs IPVS: it runs, with
    // our daemon at the same load, in the IPVS kernel's VM.
    if health {
        let step = progress.step("keepalived reference (VM)");
        let bench = util::target_dir().join("release").join("lb-bench");
        vm::bench_health_reference(
            &bench,
            &daemon,
            &util::workspace_root().join("docs/benchmarks.md"),
        )?;
        // The VM wrote its table into a copy: the health chart is redrawn here.
        util::run(lb_bench()?.arg("plot"))?;
        step.done();
    }
    Ok(())
}

/// The soak of a full `cargo xtask test` (docs/reliability.md, "Fault-injection soak").
const SOAK_CI_MINUTES: f64 = 3.0;
const SOAK_CI_SEED: u64 = 1;

fn soak(minutes: f64, seed: Option<u64>, record: bool, only: Option<String>) -> Result<()> {
    setup::setup()?;
    let object = build::build_ebpf(true)?;
    run_soak(&object, minutes, seed, record, only, None)
}

/// Builds the daemon and `lb-soak`, and runs the soak with the eBPF object `object`.
fn run_soak(
    object: &Path,
    minutes: f64,
    seed: Option<u64>,
    record: bool,
    only: Option<String>,
    built: Option<&test_build::TestBuild>,
) -> Result<()> {
    let (soak, daemon) = match built {
        Some(b) => (b.bin("lb-soak"), b.bin("lb-daemon")),
        None => {
            let mut build = util::host_cargo()?;
            build.args([
                "build",
                "--package",
                "lb-daemon",
                "--bin",
                "lb-daemon",
                "--package",
                "lb-tests",
                "--bin",
                "lb-soak",
            ]);
            util::run(&mut build)?;
            let debug = util::target_dir().join("debug");
            (debug.join("lb-soak"), debug.join("lb-daemon"))
        }
    };
    let mut cmd = Command::new(soak);
    cmd.arg("--minutes")
        .arg(minutes.to_string())
        .env(OBJECT_ENV, object)
        .env("LB_DAEMON_BIN", daemon);
    if let Some(seed) = seed {
        cmd.arg("--seed").arg(seed.to_string());
    }
    if let Some(kind) = only {
        cmd.arg("--only").arg(kind);
    }
    if record {
        cmd.arg("--report")
            .arg(util::workspace_root().join("docs/reliability.md"));
    }
    util::run(&mut cmd)
}

/// `cargo run --release -p lb-tests --bin lb-bench --`, arguments to follow.
fn lb_bench() -> Result<Command> {
    util::run_lb_tests_bin("lb-bench")
}

/// Replaces xtask with `cmd`, so its exit status and signals (Ctrl-C) are the daemon's.
fn exec(mut cmd: Command, program: &Path) -> Result<()> {
    let shown = util::display(&cmd);
    let error = cmd.exec();
    Err(error).with_context(|| format!("failed to exec `{shown}` ({})", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Task {
        Cli::try_parse_from(args)
            .expect("valid command line")
            .command
    }

    #[test]
    fn passes_everything_after_the_separator_through() {
        let Task::Test { args, .. } = parse(&[
            "xtask",
            "test",
            "--",
            "-p",
            "lb-common",
            "--",
            "--nocapture",
        ]) else {
            panic!("not test");
        };
        assert_eq!(args, ["-p", "lb-common", "--", "--nocapture"]);

        let Task::Bench { what, args } =
            parse(&["xtask", "bench", "datapath", "--", "--secs", "5"])
        else {
            panic!("not bench");
        };
        assert_eq!(what, "datapath");
        assert_eq!(args, ["--secs", "5"]);

        let Task::Run { args } = parse(&["xtask", "run"]) else {
            panic!("not run");
        };
        assert!(args.is_empty());
    }

    #[test]
    fn notices_package_selection() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(selects_packages(&os(&["-p", "lb-common"])));
        assert!(selects_packages(&os(&["--package=lb-tests", "netns"])));
        assert!(selects_packages(&os(&["-plb-tests"])));
        assert!(!selects_packages(&os(&["maglev", "--", "-p"])));
        assert!(!selects_packages(&os(&[])));
    }

    #[test]
    fn builds_the_package_only_when_its_test_may_run() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(runs_deb_test(&os(&[])));
        assert!(runs_deb_test(&os(&["-p", "lb-tests"])));
        assert!(runs_deb_test(&os(&["-p", "lb-tests", "--test", "deb"])));
        assert!(runs_deb_test(&os(&["--package=lb-tests", "--test=deb"])));
        assert!(!runs_deb_test(&os(&["-p", "lb-daemon"])));
        assert!(!runs_deb_test(&os(&["-plb-common"])));
        assert!(!runs_deb_test(&os(&[
            "-p",
            "lb-tests",
            "--test",
            "watchdog_e2e"
        ])));
        assert!(!runs_deb_test(&os(&["--lib"])));
        // After `--` the arguments are the test binaries'.
        assert!(runs_deb_test(&os(&["--", "--test", "x"])));
    }

    #[test]
    fn vm_tests_join_a_plain_run_only() {
        let plan = |argv: &[&str]| {
            let Task::Test { vm, no_vm, args } = parse(argv) else {
                panic!("not test");
            };
            vm_plan(vm, no_vm, &args)
        };
        assert_eq!(plan(&["xtask", "test"]), TestPlan::Both);
        assert_eq!(plan(&["xtask", "test", "--vm"]), TestPlan::VmOnly);
        assert_eq!(plan(&["xtask", "test", "--no-vm"]), TestPlan::Workspace);
        assert_eq!(
            plan(&["xtask", "test", "--", "-p", "lb-common"]),
            TestPlan::Workspace
        );
        assert!(Cli::try_parse_from(["xtask", "test", "--vm", "--no-vm"]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn build_ebpf_defaults_to_release() {
        assert!(matches!(
            parse(&["xtask", "build-ebpf"]),
            Task::BuildEbpf { debug: false }
        ));
        assert!(matches!(
            parse(&["xtask", "build-ebpf", "--debug"]),
            Task::BuildEbpf { debug: true }
        ));
        assert!(Cli::try_parse_from(["xtask", "bench"]).is_err());
    }
}
