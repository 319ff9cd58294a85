//! `cargo xtask setup`: installs what building and testing need, idempotently.
//! Every step checks first, so a fully set-up machine is done in well under a second.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::progress::Progress;
use crate::util;

/// Debian packages the tests, the lab demo and the benchmarks use.
pub const APT_PACKAGES: &[&str] = &[
    "bpftool",
    "iproute2",
    "iputils-ping",
    "tcpdump",
    "ethtool",
    "procps",
    "psmisc",
    // The real VRRP peer of the interoperability tests.
    "keepalived",
    // The BGP speaker of the active-active tier (each LB node and the test router).
    "bird2",
    // The VM tests (`cargo xtask test --vm`): a kernel with IPVS modules, qemu to boot it
    // (virtme-ng drives it), busybox for virtme-ng's init, ipvsadm to compare with.
    "linux-image-amd64",
    "qemu-system-x86",
    "busybox-static",
    "ipvsadm",
    // The metrics test scrapes with a real Prometheus and checks with promtool; the
    // alert rules are unit-tested with `promtool test rules`.
    "prometheus",
    // `xdpdump`: watching the XDP program's packets (docs/observability.md).
    "xdp-tools",
    // `lb-daemon top`'s screen test runs it in a tmux pane.
    "tmux",
    // The split-brain tests cut only the heartbeat: a bridge-family rule dropping VRRP.
    "nftables",
    // `lb-bench datapath --profile`: where the XDP program's time goes (`perf record`).
    "linux-perf",
];

/// Services Debian's `prometheus` package starts; the tests run their own Prometheus,
/// so the packaged ones are stopped and disabled (they would hold ports 9090 and 9100).
const PACKAGED_SERVICES: &[&str] = &["prometheus", "prometheus-node-exporter"];

/// virtme-ng (`vng`) boots a kernel on this machine's root filesystem; from PyPI.
const VIRTME_NG: &str = "virtme-ng";

const BPFFS: &str = "/sys/fs/bpf";

/// Where the bpf-linker build finds nightly's libLLVM (`LLVM_PREFIX`); its `lib` also
/// ends up as the installed binary's RUNPATH.
const LLVM_PREFIX_DIR: &str = ".cache/lb-bpf-linker-llvm";

fn report(step: &str, message: &str) {
    println!("setup: {step}: {message}");
}

pub fn setup() -> Result<()> {
    let root = util::is_root()?;
    let mut progress = Progress::new("setup", 7);
    let step = progress.step("nightly toolchain");
    nightly_toolchain()?;
    let sysroot = util::nightly_sysroot()?;
    step.done();
    let step = progress.step("rust-src");
    rust_src(&sysroot)?;
    step.done();
    let step = progress.step("bpf-linker");
    bpf_linker(&sysroot)?;
    step.done();

    let step = progress.step("cargo-fuzz");
    cargo_fuzz()?;
    step.done();

    // Steps that need root report what is missing instead of failing one by one.
    let mut needs_root = Vec::new();
    let step = progress.step("apt packages");
    needs_root.extend(apt_packages(root)?);
    step.done();
    let step = progress.step("bpffs");
    needs_root.extend(bpffs(root)?);
    step.done();
    let step = progress.step("pip packages");
    virtme_ng()?;
    aiosmtpd()?;
    step.done();
    if !needs_root.is_empty() {
        bail!(
            "setup needs root for: {}; re-run `cargo xtask setup` as root",
            needs_root.join("; ")
        );
    }
    Ok(())
}

fn virtme_ng() -> Result<()> {
    const STEP: &str = "virtme-ng";
    if util::succeeds(Command::new("vng").arg("--version")) {
        report(STEP, "ok");
        return Ok(());
    }
    report(STEP, "installing with pip");
    ensure!(
        pip_install(VIRTME_NG) && util::succeeds(Command::new("vng").arg("--version")),
        "cannot install virtme-ng: run `pip install {VIRTME_NG}` (with --break-system-packages on Debian's Python) and make sure `vng` is on PATH"
    );
    report(STEP, "installed");
    Ok(())
}

/// The real SMTP server the e-mail alert tests deliver to (PyPI's aiosmtpd).
const AIOSMTPD: &str = "aiosmtpd";

fn aiosmtpd() -> Result<()> {
    const STEP: &str = "aiosmtpd";
    let present = || util::succeeds(Command::new("python3").args(["-c", "import aiosmtpd"]));
    if present() {
        report(STEP, "ok");
        return Ok(());
    }
    report(STEP, "installing with pip");
    ensure!(
        pip_install(AIOSMTPD) && present(),
        "cannot install aiosmtpd: run `pip install {AIOSMTPD}` (with --break-system-packages on Debian's Python)"
    );
    report(STEP, "installed");
    Ok(())
}

/// `pip install PACKAGE`; Debian's system Python refuses it without
/// --break-system-packages.
fn pip_install(package: &str) -> bool {
    util::succeeds(Command::new("pip").args(["install", package]))
        || util::succeeds(Command::new("pip").args(["install", "--break-system-packages", package]))
        || util::succeeds(Command::new("pip3").args([
            "install",
            "--break-system-packages",
            package,
        ]))
}

pub fn has_nightly(toolchain_list: &str) -> bool {
    toolchain_list.lines().any(|l| l.starts_with("nightly"))
}

fn nightly_toolchain() -> Result<()> {
    const STEP: &str = "nightly toolchain";
    let list = util::output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is required (https://rustup.rs)")?;
    if has_nightly(&list) {
        report(STEP, "ok");
        return Ok(());
    }
    report(STEP, "installing");
    util::run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))
    .context(
        "cannot install the nightly toolchain, which builds the eBPF program (-Z build-std)",
    )?;
    report(STEP, "installed");
    Ok(())
}

fn rust_src(sysroot: &Path) -> Result<()> {
    const STEP: &str = "rust-src (nightly)";
    if sysroot.join("lib/rustlib/src/rust/library").is_dir() {
        report(STEP, "ok");
        return Ok(());
    }
    report(STEP, "installing");
    util::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    report(STEP, "installed");
    Ok(())
}

/// Probes bpf-linker the way `build-ebpf` will run it (same PATH and library path).
fn bpf_linker_works(sysroot: &Path) -> Result<bool> {
    let mut probe = Command::new("bpf-linker");
    probe.arg("--version");
    util::build_env(&mut probe, false)?;
    util::add_llvm_library_path(&mut probe, sysroot)?;
    Ok(util::succeeds(&mut probe))
}

fn bpf_linker(sysroot: &Path) -> Result<()> {
    const STEP: &str = "bpf-linker";
    if bpf_linker_works(sysroot)? {
        report(STEP, "ok");
        return Ok(());
    }
    report(
        STEP,
        "building against nightly's libLLVM (takes a few minutes)",
    );
    install_bpf_linker(sysroot)?;
    ensure!(
        bpf_linker_works(sysroot)?,
        "bpf-linker was installed but `bpf-linker --version` still fails"
    );
    report(STEP, "installed");
    Ok(())
}

/// The LLVM major version in a name like `libLLVM.so.22.1-rust-1.97.0-nightly`.
pub fn llvm_major(file_name: &str) -> Option<u32> {
    let version = file_name.strip_prefix("libLLVM.so.")?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn find_libllvm(libdir: &Path) -> Result<(PathBuf, u32)> {
    let entries =
        fs::read_dir(libdir).with_context(|| format!("cannot list {}", libdir.display()))?;
    for entry in entries {
        let entry = entry?;
        if let Some(major) = entry.file_name().to_str().and_then(llvm_major) {
            return Ok((entry.path(), major));
        }
    }
    bail!("no libLLVM.so.* in {}", libdir.display())
}

/// `ln -sf target link`.
fn symlink_force(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        fs::remove_file(link).with_context(|| format!("cannot remove {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), target.display()))
}

/// bpf-linker must use the same LLVM as rustc's output, so it is built against nightly's
/// own libLLVM rather than a system LLVM.
fn install_bpf_linker(sysroot: &Path) -> Result<()> {
    let (libllvm, major) = find_libllvm(&sysroot.join("lib"))?;
    let prefix = util::home_dir()?.join(LLVM_PREFIX_DIR);
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    symlink_force(&libllvm, &lib.join("libLLVM.so"))?;
    // The binary asks for the versioned soname; having it here makes its RUNPATH work.
    if let Some(name) = libllvm.file_name() {
        symlink_force(&libllvm, &lib.join(name))?;
    }

    let mut cmd = util::clean_cargo()?;
    cmd.args(["install", "bpf-linker", "--force", "--no-default-features"])
        .args(["--features", &format!("llvm-{major}")])
        .env("LLVM_PREFIX", &prefix);
    util::run(&mut cmd)
}

/// cargo-fuzz (`cargo xtask fuzz`), built with the nightly toolchain that runs it.
fn cargo_fuzz() -> Result<()> {
    const STEP: &str = "cargo-fuzz";
    if util::succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        report(STEP, "ok");
        return Ok(());
    }
    report(STEP, "installing (takes a minute)");
    let mut cmd = util::nightly_cargo()?;
    cmd.args(["install", "cargo-fuzz", "--locked"]);
    util::run(&mut cmd)
        .context("cannot install cargo-fuzz: run `cargo +nightly install cargo-fuzz`")?;
    report(STEP, "installed");
    Ok(())
}

/// Names in `dpkg-query -f '${Package}\t${Status}\n'` output that are installed
/// (status `<want> ok installed`; want may be install, hold, ...).
pub fn installed_packages(dpkg_output: &str) -> HashSet<&str> {
    dpkg_output
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once('\t')?;
            let words: Vec<&str> = status.split_whitespace().collect();
            (words.len() == 3 && words[1] == "ok" && words[2] == "installed").then_some(name)
        })
        .collect()
}

/// Returns a description of the work left when it needs root.
fn apt_packages(root: bool) -> Result<Option<String>> {
    const STEP: &str = "apt packages";
    // dpkg-query exits 1 when some name is unknown but still lists the others.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package}\t${Status}\n"])
        .args(APT_PACKAGES)
        .stderr(std::process::Stdio::null())
        .output()
        .context("failed to start `dpkg-query` (setup supports Debian/Ubuntu only)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let installed = installed_packages(&stdout);
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect();
    if missing.is_empty() {
        report(STEP, "ok");
        return Ok(None);
    }
    let list = missing.join(" ");
    if !root {
        report(STEP, &format!("missing {list} (needs root)"));
        return Ok(Some(format!("apt-get install {list}")));
    }
    report(STEP, &format!("installing {list}"));
    util::run(Command::new("apt-get").args(["update", "-qq"]))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(&missing),
    )?;
    report(STEP, &format!("installed {list}"));
    stop_packaged_services();
    Ok(None)
}

/// Stops and disables [`PACKAGED_SERVICES`]; without systemd (a container) there is
/// nothing running to stop, so failures are reported, not fatal.
fn stop_packaged_services() {
    for verb in ["stop", "disable"] {
        let status = Command::new("systemctl")
            .arg(verb)
            .args(PACKAGED_SERVICES)
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            report(
                "packaged services",
                &format!(
                    "systemctl {verb} {} failed (no systemd?)",
                    PACKAGED_SERVICES.join(" ")
                ),
            );
        }
    }
}

/// Whether the last mount at `mountpoint` in /proc/mounts content is a bpf filesystem
/// (the last one wins when something is mounted over it).
pub fn is_bpffs(proc_mounts: &str, mountpoint: &str) -> bool {
    proc_mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _source = fields.next()?;
            let target = fields.next()?;
            let fstype = fields.next()?;
            (target == mountpoint).then_some(fstype)
        })
        .next_back()
        == Some("bpf")
}

fn bpffs_mounted() -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    Ok(is_bpffs(&mounts, BPFFS))
}

/// Pinned maps and links live on bpffs; returns the work left when it needs root.
fn bpffs(root: bool) -> Result<Option<String>> {
    let step = format!("bpffs ({BPFFS})");
    if bpffs_mounted()? {
        report(&step, "ok");
        return Ok(None);
    }
    if !root {
        report(&step, "not mounted (needs root)");
        return Ok(Some(format!("mount -t bpf bpf {BPFFS}")));
    }
    fs::create_dir_all(BPFFS).with_context(|| format!("cannot create {BPFFS}"))?;
    util::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    ensure!(
        bpffs_mounted()?,
        "mounted bpffs but {BPFFS} still is not bpf in /proc/mounts"
    );
    report(&step, "mounted");
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nightly_in_toolchain_list() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(list));
        assert!(!has_nightly(
            "stable-x86_64-unknown-linux-gnu (default)\n1.95.0-x86_64\n"
        ));
    }

    #[test]
    fn parses_llvm_major_from_library_name() {
        assert_eq!(llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"), Some(22));
        assert_eq!(llvm_major("libLLVM.so.9"), Some(9));
        assert_eq!(llvm_major("libLLVM-22-rust-1.97.0-nightly.so"), None);
        assert_eq!(llvm_major("libLLVM.so."), None);
    }

    #[test]
    fn reads_installed_packages() {
        let out = "bpftool\tinstall ok installed\n\
                   tcpdump\tdeinstall ok config-files\n\
                   procps\thold ok installed\n\
                   ethtool\tinstall ok unpacked\n";
        let installed = installed_packages(out);
        assert_eq!(installed, HashSet::from(["bpftool", "procps"]));
    }

    #[test]
    fn detects_bpffs_in_proc_mounts() {
        let mounted = "sysfs /sys sysfs rw,nosuid 0 0\n\
                       bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0\n";
        assert!(is_bpffs(mounted, "/sys/fs/bpf"));
        let absent = "sysfs /sys sysfs rw,nosuid 0 0\n";
        assert!(!is_bpffs(absent, "/sys/fs/bpf"));
        let covered = format!("{mounted}tmpfs /sys/fs/bpf tmpfs rw 0 0\n");
        assert!(!is_bpffs(&covered, "/sys/fs/bpf"));
        let elsewhere = "bpf /run/bpf bpf rw 0 0\n";
        assert!(!is_bpffs(elsewhere, "/sys/fs/bpf"));
    }
}
