//! `lb-bench datapath --only CASE --profile`: where a live-frames case's nanoseconds go.
//! `perf record` samples the CPU the case runs on (a software clock: it needs no
//! hardware counters, which this kind of machine does not expose), and each sample that
//! falls in the program under test is attributed to a source line through the program's
//! jited line info (the kernel's map from machine code back to the BPF instructions'
//! BTF line records). Samples in kernel helpers (hash-map lookups, the LRU insert) and
//! in other programs are left out: `perf report` names those by symbol.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

/// One line of the program's source and the machine code from `addr` on that is its.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub addr: u64,
    pub source: String,
}

/// Where the program's machine code is and which source line each piece belongs to.
#[derive(Debug, Default)]
pub struct LineTable {
    /// Jited functions: start address and length.
    pub functions: Vec<(u64, u64)>,
    /// Sorted by address.
    pub lines: Vec<Line>,
}

impl LineTable {
    fn contains(&self, ip: u64) -> bool {
        self.functions
            .iter()
            .any(|&(start, len)| ip >= start && ip < start + len)
    }

    fn line_of(&self, ip: u64) -> Option<&str> {
        let i = self.lines.partition_point(|l| l.addr <= ip);
        i.checked_sub(1).map(|i| self.lines[i].source.as_str())
    }
}

/// The share of the program's samples each source line took, largest first, and the
/// number of samples in the program.
pub fn attribute(table: &LineTable, ips: &[u64]) -> (Vec<(String, f64)>, usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut total = 0;
    for &ip in ips.iter().filter(|&&ip| table.contains(ip)) {
        total += 1;
        *counts.entry(table.line_of(ip).unwrap_or("?")).or_default() += 1;
    }
    let mut shares: Vec<(String, f64)> = counts
        .into_iter()
        .map(|(line, n)| (line.to_string(), n as f64 / total as f64))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    (shares, total)
}

/// `perf record` of one CPU, running until [`Recording::finish`].
pub struct Recording {
    child: Child,
    data: PathBuf,
}

impl Recording {
    pub fn start(cpu: usize, dir: &Path) -> Result<Self> {
        let data = dir.join(format!("perf-{}.data", std::process::id()));
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "4999", "-C"])
            .arg(cpu.to_string())
            .arg("-o")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting `perf record` (Debian: apt-get install linux-perf)")?;
        // perf opens its events before it records: give it the time to.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(Recording { child, data })
    }

    /// Stops the recording and returns the sampled instruction addresses.
    pub fn finish(self) -> Result<Vec<u64>> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )?;
        let out = self.child.wait_with_output()?;
        ensure!(
            self.data.exists(),
            "`perf record` wrote no samples: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let script = Command::new("perf")
            .args(["script", "-F", "ip", "-i"])
            .arg(&self.data)
            .output()
            .context("perf script")?;
        let _ = std::fs::remove_file(&self.data);
        ensure!(
            script.status.success(),
            "perf script: {}",
            String::from_utf8_lossy(&script.stderr).trim()
        );
        Ok(parse_ips(&String::from_utf8_lossy(&script.stdout)))
    }
}

/// `perf script -F ip` output: one hexadecimal address per line.
pub fn parse_ips(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| u64::from_str_radix(l.trim(), 16).ok())
        .collect()
}

// `union bpf_attr` commands and `struct bpf_prog_info` offsets (include/uapi/linux/bpf.h).
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const PROG_INFO_LEN: usize = 232;
const NR_JITED_KSYMS: usize = 104;
const NR_JITED_FUNC_LENS: usize = 108;
const JITED_KSYMS: usize = 112;
const JITED_FUNC_LENS: usize = 120;
const BTF_ID: usize = 128;
const NR_LINE_INFO: usize = 148;
const LINE_INFO: usize = 152;
const JITED_LINE_INFO: usize = 160;
const NR_JITED_LINE_INFO: usize = 168;
const LINE_INFO_REC_SIZE: usize = 172;
const JITED_LINE_INFO_REC_SIZE: usize = 176;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i32> {
    // SAFETY: `attr` is a `union bpf_attr` for `cmd`, every pointer in it to a live
    // buffer of the size it states.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as i32)
}

fn get_info(fd: BorrowedFd<'_>, info: &mut [u8]) -> std::io::Result<()> {
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(|_| ())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// The line table of a loaded program.
pub fn line_table(prog: BorrowedFd<'_>) -> Result<LineTable> {
    let mut info = vec![0u8; PROG_INFO_LEN];
    get_info(prog, &mut info).context("the program's info")?;
    let n_ksyms = u32_at(&info, NR_JITED_KSYMS) as usize;
    let n_lens = u32_at(&info, NR_JITED_FUNC_LENS) as usize;
    let n_lines = u32_at(&info, NR_LINE_INFO) as usize;
    let n_jited = u32_at(&info, NR_JITED_LINE_INFO) as usize;
    let rec = u32_at(&info, LINE_INFO_REC_SIZE) as usize;
    let btf_id = u32_at(&info, BTF_ID);
    ensure!(
        n_lines > 0 && n_jited == n_lines && rec >= 16 && btf_id != 0,
        "the program has no jited line info (is the JIT on, and the object built with BTF?)"
    );
    let mut ksyms = vec![0u64; n_ksyms];
    let mut lens = vec![0u32; n_lens];
    let mut records = vec![0u8; n_lines * rec];
    let mut addrs = vec![0u64; n_jited];
    let mut info = vec![0u8; PROG_INFO_LEN];
    put(&mut info, NR_JITED_KSYMS, &(n_ksyms as u32).to_ne_bytes());
    put(
        &mut info,
        NR_JITED_FUNC_LENS,
        &(n_lens as u32).to_ne_bytes(),
    );
    put(
        &mut info,
        JITED_KSYMS,
        &(ksyms.as_mut_ptr() as u64).to_ne_bytes(),
    );
    put(
        &mut info,
        JITED_FUNC_LENS,
        &(lens.as_mut_ptr() as u64).to_ne_bytes(),
    );
    put(&mut info, NR_LINE_INFO, &(n_lines as u32).to_ne_bytes());
    put(
        &mut info,
        LINE_INFO,
        &(records.as_mut_ptr() as u64).to_ne_bytes(),
    );
    put(
        &mut info,
        JITED_LINE_INFO,
        &(addrs.as_mut_ptr() as u64).to_ne_bytes(),
    );
    put(
        &mut info,
        NR_JITED_LINE_INFO,
        &(n_jited as u32).to_ne_bytes(),
    );
    put(&mut info, LINE_INFO_REC_SIZE, &(rec as u32).to_ne_bytes());
    put(&mut info, JITED_LINE_INFO_REC_SIZE, &8u32.to_ne_bytes());
    get_info(prog, &mut info).context("the program's line info")?;
    let strings = btf_strings(btf_id)?;
    let string = |off: u32| -> String {
        let s = strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..end]).trim().to_string()
    };
    let mut lines: Vec<Line> = (0..n_lines)
        .map(|i| {
            let r = &records[i * rec..];
            let file = string(u32_at(r, 4));
            let file = file.rsplit('/').next().unwrap_or_default().to_string();
            let line_col = u32_at(r, 12);
            Line {
                addr: addrs[i],
                source: format!("{file}:{}: {}", line_col >> 10, string(u32_at(r, 8))),
            }
        })
        .collect();
    lines.sort_by_key(|l| l.addr);
    Ok(LineTable {
        functions: ksyms
            .into_iter()
            .zip(lens)
            .map(|(k, l)| (k, u64::from(l)))
            .collect(),
        lines,
    })
}

/// The string section of the kernel's copy of BTF object `id`.
fn btf_strings(id: u32) -> Result<Vec<u8>> {
    let mut attr = [0u8; 16];
    put(&mut attr, 0, &id.to_ne_bytes());
    let fd = bpf(BPF_BTF_GET_FD_BY_ID, &mut attr).context("the program's BTF")?;
    // SAFETY: a new fd, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let borrowed = std::os::fd::AsFd::as_fd(&fd);
    // struct bpf_btf_info { u64 btf; u32 btf_size; u32 id; ... }
    let mut info = [0u8; 32];
    get_info(borrowed, &mut info)?;
    let size = u32_at(&info, 8) as usize;
    let mut raw = vec![0u8; size];
    let mut info = [0u8; 32];
    put(&mut info, 0, &(raw.as_mut_ptr() as u64).to_ne_bytes());
    put(&mut info, 8, &(size as u32).to_ne_bytes());
    get_info(borrowed, &mut info)?;
    // The header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
    if raw.len() < 24 || u16::from_ne_bytes([raw[0], raw[1]]) != 0xeb9f {
        bail!("BTF {id} has no BTF header");
    }
    let (hdr, str_off, str_len) = (
        u32_at(&raw, 4) as usize,
        u32_at(&raw, 16) as usize,
        u32_at(&raw, 20) as usize,
    );
    raw.get(hdr + str_off..hdr + str_off + str_len)
        .map(<[u8]>::to_vec)
        .context("BTF string section out of bounds")
}

/// The profile's rows for a case: the `top` hottest lines.
pub fn render(case: &str, shares: &[(String, f64)], samples: usize, top: usize) -> String {
    let mut out = format!(
        "\nprofile of {case}: {samples} samples in the program's own code (kernel helpers left out)\n"
    );
    for (line, share) in shares.iter().take(top) {
        out.push_str(&format!("{:5.1}%  {line}\n", share * 100.0));
    }
    out
}

/// Runs `f` (the case's timed runs, on `cpu`) under `perf record` and attributes the
/// samples that fall in `prog`.
pub fn profile<T>(
    case: &str,
    prog: BorrowedFd<'_>,
    cpu: usize,
    f: impl FnOnce() -> Result<T>,
) -> Result<(T, String)> {
    let table = line_table(prog)?;
    let recording = Recording::start(cpu, &std::env::temp_dir())?;
    let result = f();
    let ips = recording.finish()?;
    let result = result?;
    let (shares, samples) = attribute(&table, &ips);
    Ok((result, render(case, &shares, samples, 25)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> LineTable {
        LineTable {
            functions: vec![(0x1000, 0x100), (0x2000, 0x40)],
            lines: vec![
                Line {
                    addr: 0x1000,
                    source: "lb.rs:10: parse".into(),
                },
                Line {
                    addr: 0x1080,
                    source: "select.rs:20: ring read".into(),
                },
                Line {
                    addr: 0x2000,
                    source: "conn_filter.rs:5: bitmap read".into(),
                },
            ],
        }
    }

    #[test]
    fn samples_go_to_the_line_whose_code_holds_them() {
        let ips = [0x1004, 0x1090, 0x10ff, 0x2010, 0x2020, 0x2030];
        let (shares, total) = attribute(&table(), &ips);
        assert_eq!(total, 6);
        assert_eq!(
            shares[0],
            ("conn_filter.rs:5: bitmap read".to_string(), 0.5)
        );
        assert_eq!(shares[1].0, "select.rs:20: ring read");
        assert!((shares[1].1 - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!(shares[2].0, "lb.rs:10: parse");
    }

    #[test]
    fn samples_outside_the_program_are_not_counted() {
        // Between the two functions, before, after: helpers, other programs.
        let ips = [0x0fff, 0x1100, 0x1fff, 0x2040, 0x1001];
        let (shares, total) = attribute(&table(), &ips);
        assert_eq!(total, 1);
        assert_eq!(shares, vec![("lb.rs:10: parse".to_string(), 1.0)]);
    }

    #[test]
    fn perf_script_addresses_are_parsed_and_junk_skipped() {
        let text = "ffffffffc0a01234\n  ffffffffc0a01238 \n\nnot an address\n";
        assert_eq!(
            parse_ips(text),
            vec![0xffff_ffff_c0a0_1234, 0xffff_ffff_c0a0_1238]
        );
    }
}
