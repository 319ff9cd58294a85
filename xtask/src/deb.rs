//! `cargo xtask deb`: the Debian package, written with `dpkg-deb --build` from a staged
//! tree. dpkg-deb is on every Debian host (nothing to install, unlike cargo-deb, which
//! would be one more tool to compile and keep building with rustc 1.95), and the
//! order that matters, the eBPF object built before the daemon so the daemon embeds it,
//! is xtask's own (`build::build_ebpf`).
//!
//! Layout: /usr/sbin/lb-daemon (release, without the `lab` feature), the systemd unit,
//! /etc/lb/lb.toml (a conffile), man pages, bash/zsh/fish completions, docs; maintainer
//! scripts from `lb-daemon/debian/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::{build, man, progress::Progress, util};

pub const PACKAGE: &str = "lb-daemon";

/// Run-time needs beyond the shared libraries: `ip` for the scripts operators write
/// (keepalived's users expect it), nothing of keepalived itself.
const DEPENDS: &[&str] = &["iproute2"];
const RECOMMENDS: &[&str] = &["bpftool"];
const SUGGESTS: &[&str] = &["ipvsadm", "prometheus"];

/// The unit in the repository names the hand-installed binary; the package's is here.
const UNIT_BINARY_FROM: &str = "/usr/local/sbin/lb-daemon";
const UNIT_BINARY_TO: &str = "/usr/sbin/lb-daemon";

/// Builds the package; returns the `.deb`'s path (under target/deb).
pub fn build() -> Result<PathBuf> {
    let mut progress = Progress::new("deb", 5);
    let step = progress.step("eBPF object");
    build::build_ebpf(true)?;
    step.done();
    let step = progress.step("daemon (release, no lab)");
    let daemon = build_daemon()?;
    step.done();
    let step = progress.step("man pages and completions");
    let docs = man::generate(true)?;
    step.done();

    let step = progress.step("staging");
    let version = env!("CARGO_PKG_VERSION");
    let arch = util::output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();
    let out_dir = util::target_dir().join("deb");
    let stage = out_dir.join(format!("{PACKAGE}_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    stage_tree(&stage, &daemon, &docs)?;
    let binary = fs::read(&daemon)?;
    let control = control_file(&ControlFields {
        version,
        arch: &arch,
        installed_kib: installed_kib(&stage)?,
        depends: &depends(&binary),
    });
    write(&stage.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    write(&stage.join("DEBIAN/conffiles"), b"/etc/lb/lb.toml\n", 0o644)?;
    let scripts = util::workspace_root().join("lb-daemon/debian");
    for script in ["postinst", "prerm", "postrm"] {
        copy(
            &scripts.join(script),
            &stage.join("DEBIAN").join(script),
            0o755,
        )?;
    }
    step.done();

    let step = progress.step("dpkg-deb --build");
    let deb = out_dir.join(format!("{PACKAGE}_{version}_{arch}.deb"));
    util::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    fs::remove_dir_all(&stage)?;
    fs::remove_file(&daemon)?;
    step.done();
    println!("deb: {}", deb.display());
    Ok(deb)
}

/// The daemon as shipped: release, default features (no lab), the eBPF object
/// embedded. Copied at once: target/release/lb-daemon is also `cargo xtask build`'s.
fn build_daemon() -> Result<PathBuf> {
    let mut cmd = util::host_cargo()?;
    cmd.args([
        "build",
        "--release",
        "--package",
        "lb-daemon",
        "--bin",
        "lb-daemon",
    ]);
    util::run(&mut cmd)?;
    let built = build::daemon_binary();
    let kept = util::target_dir().join("deb").join("lb-daemon");
    fs::create_dir_all(util::target_dir().join("deb"))?;
    fs::copy(&built, &kept).with_context(|| format!("copying {}", built.display()))?;
    // Debian ships stripped binaries; debug info would triple the package.
    util::run(Command::new("strip").arg("--strip-unneeded").arg(&kept))?;
    Ok(kept)
}

fn stage_tree(stage: &Path, daemon: &Path, docs: &man::Docs) -> Result<()> {
    let root = util::workspace_root();
    copy(daemon, &stage.join("usr/sbin/lb-daemon"), 0o755)?;

    let unit = fs::read_to_string(root.join("lb-daemon/systemd/lb-daemon.service"))?;
    ensure!(
        unit.contains(UNIT_BINARY_FROM),
        "lb-daemon.service no longer names {UNIT_BINARY_FROM}: update deb.rs"
    );
    let unit = unit.replace(UNIT_BINARY_FROM, UNIT_BINARY_TO);
    write(
        &stage.join("lib/systemd/system/lb-daemon.service"),
        unit.as_bytes(),
        0o644,
    )?;
    copy(
        &root.join("lb-daemon/debian/lb.toml"),
        &stage.join("etc/lb/lb.toml"),
        0o644,
    )?;

    let man8 = stage.join("usr/share/man/man8");
    for page in sorted_entries(&docs.man8)? {
        let name = page.file_name().unwrap_or_default().to_string_lossy();
        write(&man8.join(format!("{name}.gz")), &gzip(&page)?, 0o644)?;
    }
    for (from, to) in [
        (
            "lb-daemon.bash",
            "usr/share/bash-completion/completions/lb-daemon",
        ),
        ("_lb-daemon", "usr/share/zsh/vendor-completions/_lb-daemon"),
        (
            "lb-daemon.fish",
            "usr/share/fish/vendor_completions.d/lb-daemon.fish",
        ),
    ] {
        copy(&docs.completions.join(from), &stage.join(to), 0o644)?;
    }

    let doc = stage.join("usr/share/doc/lb-daemon");
    copy(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    copy(
        &root.join("lb-daemon/debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    for md in sorted_entries(&root.join("docs"))? {
        if md.extension().is_some_and(|e| e == "md") {
            let name = md.file_name().unwrap_or_default();
            copy(&md, &doc.join(name), 0o644)?;
        }
    }
    Ok(())
}

/// The fields of DEBIAN/control that vary.
pub struct ControlFields<'a> {
    pub version: &'a str,
    pub arch: &'a str,
    pub installed_kib: u64,
    pub depends: &'a [String],
}

pub fn control_file(f: &ControlFields<'_>) -> String {
    format!(
        "Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: lb maintainers <root@localhost>
Installed-Size: {size}
Depends: {depends}
Recommends: {recommends}
Suggests: {suggests}
Section: net
Priority: optional
Description: XDP layer-4 load balancer with VRRP failover
 Replaces keepalived + LVS on edge hosts: keepalived's VRRP (wire-compatible),
 health checkers and configuration names, with the packet path in an XDP program
 (Maglev hashing, DR, TUN and NAT) and IPVS as a fallback. Configured in TOML
 (/etc/lb/lb.toml); `lb-daemon convert` translates a keepalived.conf.
",
        version = f.version,
        arch = f.arch,
        size = f.installed_kib,
        depends = f.depends.join(", "),
        recommends = RECOMMENDS.join(", "),
        suggests = SUGGESTS.join(", "),
    )
}

/// Depends: the C library at the newest symbol version the binary uses (what
/// dpkg-shlibdeps would compute for glibc), libgcc_s when linked, then [`DEPENDS`].
pub fn depends(binary: &[u8]) -> Vec<String> {
    let mut deps = Vec::new();
    if let Some((major, minor)) = newest_glibc(binary) {
        deps.push(format!("libc6 (>= {major}.{minor})"));
    }
    if contains(binary, b"libgcc_s.so.1") {
        deps.push("libgcc-s1".to_string());
    }
    deps.extend(DEPENDS.iter().map(|d| d.to_string()));
    deps
}

/// The highest `GLIBC_x.y` version string in the binary (its version needs).
pub fn newest_glibc(binary: &[u8]) -> Option<(u32, u32)> {
    const TAG: &[u8] = b"GLIBC_";
    let mut newest = None;
    let mut at = 0;
    while let Some(found) = find(&binary[at..], TAG) {
        let start = at + found + TAG.len();
        let digits: Vec<u8> = binary[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .copied()
            .collect();
        let text = String::from_utf8_lossy(&digits);
        let mut parts = text.split('.').map(|p| p.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            newest = newest.max(Some((major, minor)));
        }
        at = start;
    }
    newest
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fn installed_kib(dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
            }
        }
    }
    Ok(bytes.div_ceil(1024))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.retain(|p| p.is_file());
    entries.sort();
    Ok(entries)
}

/// `gzip -9n`: no name or time stamp in the header, as Debian's man pages.
fn gzip(path: &Path) -> Result<Vec<u8>> {
    let out = Command::new("gzip")
        .args(["-9n", "-c"])
        .arg(path)
        .output()
        .context("failed to start gzip")?;
    if !out.status.success() {
        bail!("gzip {} failed ({})", path.display(), out.status);
    }
    Ok(out.stdout)
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write(to, &bytes, mode)
}

fn write(to: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(to, bytes).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_newest_glibc_version() {
        let binary = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.4\0GLIBC_PRIVATE\0";
        assert_eq!(newest_glibc(binary), Some((2, 34)));
        assert_eq!(newest_glibc(b"no libc here"), None);
    }

    #[test]
    fn depends_on_libc_libgcc_and_iproute2() {
        let binary = b"GLIBC_2.28\0libgcc_s.so.1\0";
        assert_eq!(
            depends(binary),
            ["libc6 (>= 2.28)", "libgcc-s1", "iproute2"]
        );
        assert_eq!(depends(b""), ["iproute2"]);
    }

    #[test]
    fn control_names_everything_dpkg_needs() {
        let control = control_file(&ControlFields {
            version: "0.1.0",
            arch: "amd64",
            installed_kib: 4321,
            depends: &["libc6 (>= 2.34)".to_string(), "iproute2".to_string()],
        });
        for line in [
            "Package: lb-daemon\n",
            "Version: 0.1.0\n",
            "Architecture: amd64\n",
            "Installed-Size: 4321\n",
            "Depends: libc6 (>= 2.34), iproute2\n",
        ] {
            assert!(control.contains(line), "{line:?} missing from\n{control}");
        }
        // keepalived may stay installed (migration, `convert`); the unit conflicts.
        assert!(!control.contains("Conflicts"));
        // Every description line after the first starts with a space.
        let description = control.split("Description:").nth(1).unwrap();
        assert!(description.lines().skip(1).all(|l| l.starts_with(' ')));
    }
}
