//! `cargo xtask test --vm`: the tests that need a kernel this machine may not run (IPVS),
//! in one virtme-ng boot of Debian's kernel on this machine's own root filesystem.
//!
//! The test binaries are built here, then run inside the VM with `--ignored` (outside a
//! VM they are ignored); each writes its output and exit status into a directory the VM
//! may write (`target/vm`), which is read back after the boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::progress::Progress;
use crate::test_build::{no_run, TestBuild};
use crate::util;

/// The test targets (of `lb-tests`) that run in the VM, with their test-binary
/// arguments: the IPVS tests (ignored outside the VM), and the XDP namespace tests and
/// the VRRP advert filter's, which show the eBPF programs pass the VM's older kernel's
/// (6.1) verifier and work there too.
pub const VM_TESTS: &[(&str, &str)] = &[
    ("ipvs_vm", "--ignored --test-threads=1"),
    ("netns_e2e", "--test-threads=1"),
    ("vrrp_filter", "--test-threads=1"),
];

/// Test targets that may be named in `LB_VM_TESTS` (comma-separated) to run fewer.
const KNOWN_VM_TESTS: &[(&str, &str)] = VM_TESTS;

/// The targets to run: `LB_VM_TESTS` (comma-separated) or [`VM_TESTS`].
fn selected() -> Result<Vec<(&'static str, &'static str)>> {
    let Ok(list) = std::env::var("LB_VM_TESTS") else {
        return Ok(VM_TESTS.to_vec());
    };
    list.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            KNOWN_VM_TESTS
                .iter()
                .find(|(k, _)| *k == t)
                .copied()
                .with_context(|| {
                    format!(
                        "LB_VM_TESTS names `{t}`; known VM test targets: {}",
                        KNOWN_VM_TESTS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
        .collect()
}

/// Longest a VM run may take (boot included) before it is killed.
const VM_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the VM tests; adds their `test result:` lines to `totals`. With `built` (a full
/// `cargo xtask test`), the executables come from the workspace's test build; else
/// only the daemon and the VM's test targets are built.
pub fn run(
    object: &Path,
    built: Option<&TestBuild>,
    totals: &mut crate::summary::Totals,
) -> Result<()> {
    let mut progress = Progress::new("vm", 3);
    let kernel = find_kernel(Path::new("/boot"), Path::new("/lib/modules"))?;
    let tests = selected()?;
    let step = progress.step("building the VM tests");
    let binaries = match built {
        Some(built) => pick(&tests, &built.executables, "")?,
        None => build_test_binaries(&tests)?,
    };
    step.done();
    let root = util::workspace_root();
    let out_dir = util::target_dir().join("vm");
    if out_dir.exists() {
        fs::remove_dir_all(&out_dir).with_context(|| format!("clearing {}", out_dir.display()))?;
    }
    fs::create_dir_all(&out_dir)?;
    let script = script(&root, &out_dir, &binaries, &tests, object);
    println!(
        "vm: booting {} (virtme-ng, no KVM) for {}",
        kernel.display(),
        VM_TESTS
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let step = progress.step("booting the VM and running the tests");
    let status = boot(&kernel, &script, &out_dir)?;
    step.done();
    let console = out_dir.join("console.log");
    let step = progress.step("collecting the results");
    let mut failed = Vec::new();
    for (name, _) in &binaries {
        let log = fs::read_to_string(out_dir.join(format!("{name}.log"))).unwrap_or_default();
        print!("{log}");
        totals.add_log(&log);
        match fs::read_to_string(out_dir.join(format!("{name}.status"))) {
            Ok(s) if s.trim() == "0" => {}
            Ok(s) => failed.push(format!("{name} (exit status {})", s.trim())),
            Err(_) => failed.push(format!("{name} (did not run)")),
        }
    }
    step.done();
    if !failed.is_empty() {
        bail!(
            "VM tests failed: {} (vng {status}; console in {})",
            failed.join(", "),
            console.display()
        );
    }
    Ok(())
}

/// Boots `kernel` with virtme-ng (no KVM), runs the shell `script` as root from the
/// workspace root, with `out_dir` writable; console output goes to `out_dir`.
pub fn boot(kernel: &Path, script: &str, out_dir: &Path) -> Result<std::process::ExitStatus> {
    let mut cmd = Command::new("timeout");
    cmd.arg(VM_TIMEOUT.as_secs().to_string())
        .arg("vng")
        .args(["--disable-kvm", "--user", "root", "--run"])
        .arg(kernel)
        .arg("--rwdir")
        .arg(out_dir)
        .arg("--exec")
        .arg(script)
        .current_dir(util::workspace_root());
    // CI runs without standard input; the VM must not depend on one either.
    cmd.stdin(std::process::Stdio::null())
        .stdout(fs::File::create(out_dir.join("console.log"))?)
        .stderr(fs::File::create(out_dir.join("console.err"))?)
        .status()
        .context("failed to start `vng` (virtme-ng; `cargo xtask setup` installs it)")
}

/// The health benchmark's keepalived reference (`lb-bench health-reference`) in the
/// IPVS kernel: keepalived's checker needs IPVS. Updates `output`'s section.
pub fn bench_health_reference(bench: &Path, daemon: &Path, output: &Path) -> Result<()> {
    let kernel = find_kernel(Path::new("/boot"), Path::new("/lib/modules"))?;
    let out_dir = util::target_dir().join("vm-bench");
    if out_dir.exists() {
        fs::remove_dir_all(&out_dir)?;
    }
    fs::create_dir_all(&out_dir)?;
    let copy = out_dir.join("benchmarks.md");
    fs::copy(output, &copy).with_context(|| format!("copying {}", output.display()))?;
    let script = format!(
        "modprobe ip_vs; LB_DAEMON_BIN='{daemon}' '{bench}' health-reference --output '{copy}' > '{out}/bench.log' 2>&1; echo $? > '{out}/bench.status'",
        daemon = daemon.display(),
        bench = bench.display(),
        copy = copy.display(),
        out = out_dir.display()
    );
    println!(
        "vm: booting {} for the keepalived reference",
        kernel.display()
    );
    let started = Instant::now();
    boot(&kernel, &script, &out_dir)?;
    println!("vm: finished in {:.0?}", started.elapsed());
    print!(
        "{}",
        fs::read_to_string(out_dir.join("bench.log")).unwrap_or_default()
    );
    let status = fs::read_to_string(out_dir.join("bench.status")).unwrap_or_default();
    if status.trim() != "0" {
        bail!(
            "the keepalived reference failed in the VM (status {:?}; see {})",
            status.trim(),
            out_dir.display()
        );
    }
    fs::copy(&copy, output).with_context(|| format!("updating {}", output.display()))?;
    Ok(())
}

/// The newest `/boot/vmlinuz-*` whose modules include IPVS.
pub fn find_kernel(boot: &Path, modules: &Path) -> Result<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(boot).with_context(|| format!("reading {}", boot.display()))? {
        let path = entry?.path();
        let Some(version) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
        else {
            continue;
        };
        let ipvs = modules
            .join(version)
            .join("kernel/net/netfilter/ipvs/ip_vs.ko");
        if ipvs.exists() {
            found.push((version.to_string(), path));
        }
    }
    found.sort();
    match found.pop() {
        Some((_, path)) => Ok(path),
        None => bail!(
            "no kernel with IPVS modules in {} (looked for {}/<version>/kernel/net/netfilter/ipvs/ip_vs.ko): run `cargo xtask setup`, which installs Debian's linux-image-amd64",
            boot.display(),
            modules.display()
        ),
    }
}

/// Builds the daemon (the tests run it) and the VM test targets; the targets' names and
/// executables.
fn build_test_binaries(tests: &[(&str, &str)]) -> Result<Vec<(String, PathBuf)>> {
    util::run(
        util::host_cargo()?
            .args(["build", "--package", "lb-daemon", "--bin", "lb-daemon"])
            .current_dir(util::workspace_root()),
    )?;
    let mut cmd = util::host_cargo()?;
    cmd.args(["test", "--package", "lb-tests", "--no-run"]);
    for (t, _) in tests {
        cmd.args(["--test", t]);
    }
    let (found, stderr) = no_run(&mut cmd, "the VM tests")?;
    pick(tests, &found, &stderr)
}

/// The executables of `tests` among those cargo named (`output`: what it printed).
fn pick(
    tests: &[(&str, &str)],
    found: &[(String, PathBuf)],
    output: &str,
) -> Result<Vec<(String, PathBuf)>> {
    tests
        .iter()
        .map(|(t, _)| {
            found
                .iter()
                .find(|(name, _)| name == t)
                .cloned()
                .with_context(|| format!("cargo did not name the executable of {t}:\n{output}"))
        })
        .collect()
}

/// What the VM runs: a bpffs for the XDP tests, then each binary, one at a time.
fn script(
    root: &Path,
    out: &Path,
    binaries: &[(String, PathBuf)],
    tests: &[(&str, &str)],
    object: &Path,
) -> String {
    let mut s = format!(
        "mount -t bpf bpf /sys/fs/bpf; cd '{}' && export LB_EBPF_OBJECT='{}' \
         LB_VRRP_FILTER_OBJECT='{}'; ",
        root.display(),
        object.display(),
        object.with_file_name("lb-vrrp-filter").display()
    );
    for (name, bin) in binaries {
        let args = tests
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, a)| *a)
            .unwrap_or_default();
        s.push_str(&format!(
            "'{}' {args} > '{out}/{name}.log' 2>&1; echo $? > '{out}/{name}.status'; ",
            bin.display(),
            out = out.display()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_kernel_with_ipvs() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-{}", std::process::id()));
        let boot = dir.join("boot");
        let modules = dir.join("modules");
        fs::create_dir_all(&boot).unwrap();
        for v in ["6.1.0-1-amd64", "6.1.0-9-amd64", "6.18.0-host"] {
            fs::write(boot.join(format!("vmlinuz-{v}")), "").unwrap();
        }
        for v in ["6.1.0-1-amd64", "6.1.0-9-amd64"] {
            let ipvs = modules.join(v).join("kernel/net/netfilter/ipvs");
            fs::create_dir_all(&ipvs).unwrap();
            fs::write(ipvs.join("ip_vs.ko"), "").unwrap();
        }
        let k = find_kernel(&boot, &modules).unwrap();
        assert_eq!(k, boot.join("vmlinuz-6.1.0-9-amd64"));
        let e = find_kernel(&modules, &boot).unwrap_err();
        assert!(e.to_string().contains("linux-image-amd64"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
