//! `cargo xtask fuzz [TARGET] [--time S]`: builds the cargo-fuzz crate (`tests/fuzz`,
//! its own workspace, nightly) and runs libFuzzer targets one after the other, each for
//! `S` seconds, with seed corpora from the repository's fixtures and a dictionary per
//! text format. Prints executions and coverage per target; fails on a crash and says
//! where the reproducer is (docs/reliability.md "Fuzzing").

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::progress::Progress;
use crate::util;

/// Every fuzz target (`tests/fuzz/fuzz_targets/NAME.rs`, entry `lb_daemon::fuzzing::NAME`).
pub const TARGETS: &[&str] = &[
    "vrrp_packet",
    "vrrp_ipv4_datagram",
    "probe_frame",
    "config_toml",
    "keepalived_conf",
    "ipvs_netlink",
    "control_request",
    "metrics_request",
    "http_reply",
    "smtp_reply",
    "health_datagram",
    "sync_wire",
    "bird_reply",
];

/// `cargo xtask test` runs each target this long: a smoke run over the committed
/// corpus (long runs are `cargo xtask fuzz`'s).
pub const CI_SECONDS: u64 = 6;

/// The XDP program's fuzzer (`lb_tests::xdp_fuzz`, binary `lb-xdp-fuzz`): not a
/// libFuzzer target (libFuzzer cannot see coverage inside a BPF program), run through
/// BPF_PROG_TEST_RUN with the eBPF object xtask builds.
pub const XDP: &str = "xdp";

/// `cargo xtask test` runs the XDP fuzzer this long.
pub const XDP_CI_SECONDS: u64 = 10;

/// How the fuzzers are built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    /// Optimised: `cargo xtask fuzz`, where executions per second matter.
    Release,
    /// Unoptimised: `cargo xtask test`'s short runs. `lb-xdp-fuzz` is then the debug
    /// binary `cargo test` has just built, and the libFuzzer targets build in a
    /// fraction of the release build's time; a run finds fewer inputs, not others.
    Dev,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Dev => "debug",
        }
    }
}

/// "A parser never allocates without bound on small input": libFuzzer fails a run whose
/// RSS passes this (MB) ...
const RSS_LIMIT_MB: u32 = 1024;
/// ... or that asks for one allocation larger than this (MB).
const MALLOC_LIMIT_MB: u32 = 64;
/// Inputs up to this size (bytes).
const MAX_LEN: u32 = 8192;

/// Seed files for a target: repository paths (files, or directories taken whole).
fn seeds(target: &str) -> &'static [&'static str] {
    match target {
        "config_toml" => &["docs/examples", "lb-daemon/debian/lb.toml"],
        "keepalived_conf" => &["lb-daemon/tests/fixtures/keepalived/ok"],
        _ => &[],
    }
}

/// Seed inputs written by the xtask for the binary formats (a few known-good messages).
fn builtin_seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        // Selector 0 (IPv4 multicast), a v2 advert: VRID 51, priority 100, 1 address,
        // auth none, 1 s; checksum over the message.
        "vrrp_packet" => vec![
            with_checksum(&[0x21, 51, 100, 1, 0, 1, 0, 0, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0], 0, 1),
            [vec![2], with_checksum(&[0x31, 51, 100, 1, 0, 100, 0, 0], 0, 0)].concat(),
        ],
        "control_request" => ["status\n", "reload\n", "stop keep-dataplane\n", "drain\n"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "metrics_request" => vec![b"GET /metrics HTTP/1.1\r\nHost: lb\r\n\r\n".to_vec()],
        "http_reply" => vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ],
        "smtp_reply" => vec![b"220-mail.example.com ESMTP\r\n220 ready\r\n250 OK\r\n".to_vec()],
        "bird_reply" => vec![b"0001 BIRD 2.0.12 ready.\n2002-Name       Proto      Table      State  Since         Info\n1002-bgp1       BGP        ---        up     10:00:00.000  Established\n0000 \n".to_vec()],
        "probe_frame" => vec![arp_reply(), neighbour_advert()],
        "health_datagram" => vec![dns_response(), icmp_echo_reply(false), icmp_echo_reply(true)],
        _ => Vec::new(),
    }
}

/// An Ethernet ARP reply: 198.18.0.2 is at 02:00:00:00:00:02.
fn arp_reply() -> Vec<u8> {
    let mac = [2, 0, 0, 0, 0, 2];
    [
        &[0xff; 6][..],
        &mac,
        &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2],
        &mac,
        &[198, 18, 0, 2],
        &[0; 6],
        &[198, 18, 0, 1],
    ]
    .concat()
}

/// An Ethernet/IPv6 unsolicited neighbour advertisement for 2001:db8::2 (hop limit
/// 255), with its target link-layer address option.
fn neighbour_advert() -> Vec<u8> {
    let mac = [2, 0, 0, 0, 0, 2];
    let mut target = [0u8; 16];
    target[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    target[15] = 2;
    let mut all_nodes = [0u8; 16];
    all_nodes[..2].copy_from_slice(&[0xff, 0x02]);
    all_nodes[15] = 1;
    [
        &[0x33, 0x33, 0, 0, 0, 1][..],
        &mac,
        &[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255],
        &target,
        &all_nodes,
        &[136, 0, 0, 0, 0x20, 0, 0, 0],
        &target,
        &[2, 1],
        &mac,
    ]
    .concat()
}

/// A DNS response to `www.example.com A` with one answer; its first two bytes are the
/// id the target expects.
fn dns_response() -> Vec<u8> {
    [
        &[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0][..],
        b"\x03www\x07example\x03com\x00",
        &[0, 1, 0, 1],
        &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1],
    ]
    .concat()
}

/// An ICMP (ICMPv6) echo reply the target takes as the reply it waits for: its
/// identifier is the input's first two bytes (type, code) and its sequence that
/// rotated left by 3.
fn icmp_echo_reply(v6: bool) -> Vec<u8> {
    let ty: u8 = if v6 { 129 } else { 0 };
    let id = u16::from_be_bytes([ty, 0]);
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&id.rotate_left(3).to_be_bytes());
    m.extend_from_slice(b"lb-daemon ping check payload");
    m
}

/// A seed for `vrrp_packet`: `selector` byte then `msg` with a valid v2 checksum when
/// `v2` is 1 (plain RFC 1071 over the message), else left for the fuzzer to fix.
fn with_checksum(msg: &[u8], selector: u8, v2: u8) -> Vec<u8> {
    let mut m = msg.to_vec();
    if v2 == 1 {
        let mut sum: u32 = m
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = !(sum as u16);
        m[6..8].copy_from_slice(&c.to_be_bytes());
    }
    [vec![selector], m].concat()
}

/// Dictionaries (libFuzzer `-dict`) for the text formats.
fn dictionary(target: &str) -> Option<&'static str> {
    match target {
        "config_toml" => Some(include_str!("../../tests/fuzz/dicts/toml.dict")),
        "keepalived_conf" => Some(include_str!("../../tests/fuzz/dicts/keepalived.dict")),
        "http_reply" | "metrics_request" => Some(include_str!("../../tests/fuzz/dicts/http.dict")),
        "smtp_reply" => Some(include_str!("../../tests/fuzz/dicts/smtp.dict")),
        "control_request" => Some(include_str!("../../tests/fuzz/dicts/control.dict")),
        _ => None,
    }
}

fn fuzz_dir() -> PathBuf {
    util::workspace_root().join("tests/fuzz")
}

/// Builds every target (debug assertions on, no sanitizer: the parsers are safe Rust,
/// so ASan would only slow the build and the runs).
pub fn build(profile: Profile) -> Result<PathBuf> {
    let mut cmd = util::nightly_cargo()?;
    cmd.current_dir(fuzz_dir())
        .args(["fuzz", "build", "--fuzz-dir", ".", "--sanitizer", "none"])
        .env("CARGO_INCREMENTAL", "0");
    if profile == Profile::Dev {
        cmd.arg("--dev");
    }
    util::run(&mut cmd)
        .context("building the fuzz targets (`cargo xtask setup` installs cargo-fuzz)")?;
    Ok(fuzz_dir()
        .join("target/x86_64-unknown-linux-gnu")
        .join(profile.dir()))
}

/// `cargo xtask fuzz`: `target` (all when None, the XDP program's fuzzer included)
/// for `seconds` each (the XDP fuzzer for `xdp_seconds`), the XDP fuzzer with `seed`.
pub fn fuzz(
    target: Option<&str>,
    seconds: u64,
    xdp_seconds: u64,
    seed: Option<u64>,
    runs: Option<u64>,
    profile: Profile,
) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) || t == XDP => vec![t],
        Some(t) => bail!(
            "unknown fuzz target {t:?}; targets: {}, {XDP}",
            TARGETS.join(", ")
        ),
        None => TARGETS.iter().copied().chain([XDP]).collect(),
    };
    let mut progress = Progress::new("fuzz", targets.len());
    let mut failed = Vec::new();
    if targets.contains(&XDP) {
        let step = progress.step(XDP);
        match run_xdp(xdp_seconds, seed, runs, profile) {
            Ok(()) => step.done(),
            Err(e) => {
                println!("fuzz: {XDP}: FAILED: {e:#}");
                failed.push(XDP);
            }
        }
    }
    let targets: Vec<&str> = targets.into_iter().filter(|t| *t != XDP).collect();
    let bin = if targets.is_empty() {
        PathBuf::new()
    } else {
        build(profile)?
    };
    for t in targets {
        let step = progress.step(t);
        match run_one(&bin, t, seconds) {
            Ok(stats) => {
                println!("fuzz: {t}: {stats}");
                step.done();
            }
            Err(e) => {
                println!("fuzz: {t}: FAILED: {e:#}");
                failed.push(t);
            }
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The XDP fuzzer: the eBPF object and `lb-xdp-fuzz`, run as root for `seconds` (or
/// `runs` frames, to replay a failure with its seed).
fn run_xdp(seconds: u64, seed: Option<u64>, runs: Option<u64>, profile: Profile) -> Result<()> {
    let object = crate::build::build_ebpf(true)?;
    let mut cmd = match profile {
        Profile::Release => {
            let mut cmd = util::run_lb_tests_bin("lb-xdp-fuzz")?;
            cmd.env("CARGO_INCREMENTAL", "0");
            cmd
        }
        // The debug binary of the workspace's test build (made already by `cargo xtask
        // test`: nothing recompiles).
        Profile::Dev => Command::new(crate::test_build::build(&object)?.bin("lb-xdp-fuzz")),
    };
    cmd.arg(format!("--time={seconds}"))
        .arg(format!(
            "--out-dir={}",
            util::target_dir().join("xdp-fuzz").display()
        ))
        .env(crate::OBJECT_ENV, &object);
    if let Some(seed) = seed {
        cmd.arg(format!("--seed={seed}"));
    }
    if let Some(runs) = runs {
        cmd.arg(format!("--runs={runs}"));
    }
    util::run(&mut cmd).context("the XDP fuzzer failed (its output names the frame and the replay)")
}

fn run_one(bin: &Path, target: &str, seconds: u64) -> Result<String> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    let seed_dir = dir.join("target/seeds").join(target);
    let artifacts = dir.join("artifacts").join(target);
    for d in [&corpus, &seed_dir, &artifacts] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    write_seeds(target, &seed_dir)?;
    let mut cmd = Command::new(bin.join(target));
    cmd.arg(&corpus)
        .arg(&seed_dir)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    if let Some(dict) = dictionary(target) {
        let path = dir.join("target/seeds").join(format!("{target}.dict"));
        fs::write(&path, dict).with_context(|| format!("cannot write {}", path.display()))?;
        cmd.arg(format!("-dict={}", path.display()));
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", util::display(&cmd)))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let log_path = dir.join("target").join(format!("{target}.log"));
    fs::write(&log_path, log.as_bytes())
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    if !out.status.success() {
        let reproducer = log
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .unwrap_or("(none written)");
        bail!(
            "crashed or broke a property; reproducer: {reproducer}; log: {}; replay with `{} {reproducer}`",
            log_path.display(),
            bin.join(target).display()
        );
    }
    Ok(summary(&log))
}

/// `execs N, cov C, ft F, corpus K` from libFuzzer's last status line and final stats.
pub fn summary(log: &str) -> String {
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"));
    let field = |name: &str| {
        last.and_then(|l| {
            let mut words = l.split_whitespace();
            words
                .find(|w| *w == name)
                .and(words.next())
                .map(str::to_string)
        })
    };
    let execs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .map(|s| s.trim().to_string());
    format!(
        "execs {}, cov {}, ft {}, corpus {}",
        execs.unwrap_or_else(|| "?".into()),
        field("cov:").unwrap_or_else(|| "?".into()),
        field("ft:").unwrap_or_else(|| "?".into()),
        field("corp:").unwrap_or_else(|| "?".into()),
    )
}

fn write_seeds(target: &str, dir: &Path) -> Result<()> {
    let root = util::workspace_root();
    let mut n = 0;
    for rel in seeds(target) {
        let path = root.join(rel);
        let files: Vec<PathBuf> = if path.is_dir() {
            fs::read_dir(&path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        } else {
            vec![path]
        };
        for f in files {
            let bytes = fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
            fs::write(dir.join(format!("seed{n:03}")), bytes)?;
            n += 1;
        }
    }
    for bytes in builtin_seeds(target) {
        fs::write(dir.join(format!("seed{n:03}")), bytes)?;
        n += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_seeds_are_what_their_parsers_take() {
        let arp = arp_reply();
        assert_eq!(arp.len(), 42);
        assert_eq!(arp[12..14], [0x08, 0x06]);
        assert_eq!(arp[28..32], [198, 18, 0, 2], "sender address");
        let na = neighbour_advert();
        assert_eq!(na.len(), 14 + 40 + 32, "payload length 32");
        assert_eq!((na[20], na[21], na[54]), (58, 255, 136));
        let dns = dns_response();
        assert_eq!(dns.len(), 12 + 17 + 4 + 16);
        for v6 in [false, true] {
            let m = icmp_echo_reply(v6);
            let id = u16::from_be_bytes([m[0], m[1]]);
            assert_eq!(m[4..6], id.to_be_bytes());
            assert_eq!(m[6..8], id.rotate_left(3).to_be_bytes());
        }
    }

    #[test]
    fn summary_reads_libfuzzer_output() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 120 ft: 300 corp: 40/2Kb lim: 43 exec/s: 2048 rss: 40Mb\n\
                   stat::number_of_executed_units: 5000\n";
        assert_eq!(summary(log), "execs 5000, cov 120, ft 300, corpus 40/2Kb");
    }

    #[test]
    fn every_target_has_a_source_file() {
        for t in TARGETS {
            assert!(
                fuzz_dir()
                    .join("fuzz_targets")
                    .join(format!("{t}.rs"))
                    .is_file(),
                "{t}"
            );
        }
    }
}
