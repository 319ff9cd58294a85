//! The Debian package on this machine: `dpkg -i`, the files where Debian puts them, the
//! man page, the completions, `lb-daemon check-config /etc/lb/lb.toml`,
//! `systemd-analyze verify` on the unit, then `dpkg --purge` leaving nothing behind.
//!
//! The package comes from `cargo xtask test`, which builds it once (release, no lab,
//! as shipped) and passes its path in `LB_DEB`; building a release daemon inside this
//! test would cost minutes on every run. Needs root; refuses to touch a machine where
//! lb-daemon is already installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGE: &str = "lb-daemon";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", PACKAGE])
        .stdout
        .starts_with(b"install ok")
}

/// Purges the package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", PACKAGE]);
    }
}

fn deb() -> PathBuf {
    let deb = std::env::var_os("LB_DEB").map(PathBuf::from).expect(
        "LB_DEB is not set: this test installs the package `cargo xtask deb` builds; run it \
         with `cargo xtask test` (which builds the package and sets LB_DEB), or \
         `cargo xtask deb` and LB_DEB=target/deb/lb-daemon_<version>_<arch>.deb",
    );
    assert!(deb.is_file(), "LB_DEB={} is not a file", deb.display());
    deb
}

#[test]
fn installs_checks_and_purges_cleanly() {
    let deb = deb();
    assert!(
        !installed(),
        "{PACKAGE} is already installed on this machine; this test installs and purges it, \
         so it will not run over an operator's installation"
    );
    let _purge = Purge;

    // The control file: what it needs, and keepalived not among it.
    let control = ok("dpkg-deb", &["--field", deb.to_str().unwrap()]);
    assert!(control.contains("Depends: libc6 (>= "), "{control}");
    assert!(control.contains("iproute2"), "{control}");
    let relations: Vec<&str> = control
        .lines()
        .filter(|l| {
            ["Depends:", "Pre-Depends:", "Conflicts:"]
                .iter()
                .any(|f| l.starts_with(f))
        })
        .collect();
    assert!(
        !relations.iter().any(|l| l.contains("keepalived")),
        "{relations:?}"
    );
    let conffiles = ok("dpkg-deb", &["--info", deb.to_str().unwrap(), "conffiles"]);
    assert_eq!(conffiles.trim(), "/etc/lb/lb.toml");

    ok("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(installed());

    for file in [
        "/usr/sbin/lb-daemon",
        "/lib/systemd/system/lb-daemon.service",
        "/etc/lb/lb.toml",
        "/usr/share/man/man8/lb-daemon.8.gz",
        "/usr/share/man/man8/lb-daemon-run.8.gz",
        "/usr/share/man/man8/lb-daemon-check-config.8.gz",
        "/usr/share/bash-completion/completions/lb-daemon",
        "/usr/share/zsh/vendor-completions/_lb-daemon",
        "/usr/share/fish/vendor_completions.d/lb-daemon.fish",
        "/usr/share/doc/lb-daemon/README.md",
        "/usr/share/doc/lb-daemon/copyright",
        "/usr/share/doc/lb-daemon/architecture.md",
    ] {
        assert!(Path::new(file).is_file(), "{file} is not installed");
    }

    // The shipped binary: no lab, the eBPF object embedded, the default config.
    let lab = run("/usr/sbin/lb-daemon", &["lab"]);
    assert!(!lab.status.success());
    assert!(String::from_utf8_lossy(&lab.stderr).contains("without the lab feature"));
    ok("/usr/sbin/lb-daemon", &["check-config", "/etc/lb/lb.toml"]);
    ok("/usr/sbin/lb-daemon", &["check-config"]);
    let help = ok("/usr/sbin/lb-daemon", &["run", "--help"]);
    assert!(help.contains("/etc/lb/lb.toml"), "{help}");

    // The man page: found by man(1) where it exists, readable either way.
    if run("man", &["--version"]).status.success() {
        let path = ok("man", &["-w", "lb-daemon"]);
        assert!(path.trim().ends_with("lb-daemon.8.gz"), "{path}");
    }
    let page = ok("zcat", &["/usr/share/man/man8/lb-daemon-stop.8.gz"]);
    assert!(page.contains(".TH lb-daemon-stop 8"), "{page}");
    assert!(page.contains("keep\\-dataplane"), "{page}");

    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/lb-daemon").unwrap();
    assert!(bash.contains("check-config") && bash.contains("--keep-dataplane"));
    if run("bash", &["--version"]).status.success() {
        ok(
            "bash",
            &[
                "-c",
                "source /usr/share/bash-completion/completions/lb-daemon && complete -p lb-daemon",
            ],
        );
    }

    // The unit points at the packaged binary and passes systemd's own check.
    let unit = std::fs::read_to_string("/lib/systemd/system/lb-daemon.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/lb-daemon run"), "{unit}");
    assert!(unit.contains("WatchdogSec="), "{unit}");
    if run("systemd-analyze", &["--version"]).status.success() {
        let verify = run(
            "systemd-analyze",
            &["verify", "/lib/systemd/system/lb-daemon.service"],
        );
        let stderr = String::from_utf8_lossy(&verify.stderr);
        // Without a running systemd (containers) verify may only complain about the
        // manager; the unit's own errors name the unit file.
        assert!(
            verify.status.success() || !stderr.contains("lb-daemon.service:"),
            "systemd-analyze verify:\n{stderr}"
        );
    }

    // Installing does not start (or enable) the service.
    let active = run("systemctl", &["is-active", "lb-daemon.service"]);
    assert_ne!(String::from_utf8_lossy(&active.stdout).trim(), "active");

    ok("dpkg", &["--purge", PACKAGE]);
    assert!(!installed());
    assert!(!Path::new("/usr/sbin/lb-daemon").exists());
    assert!(!Path::new("/lib/systemd/system/lb-daemon.service").exists());
    assert!(
        !Path::new("/etc/lb").exists() || std::fs::read_dir("/etc/lb").unwrap().next().is_none(),
        "/etc/lb is not empty after purge"
    );
    assert!(!Path::new("/usr/share/doc/lb-daemon").exists());
}
