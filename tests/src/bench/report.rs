//! docs/benchmarks.md: one section per benchmark, replaced on every run, with the
//! machine it was measured on.

use std::{fs, path::Path};

/// Kernel, CPU model and core count of this machine.
pub fn machine() -> String {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    // Counted from cpuinfo: the benchmark pins itself to one CPU.
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    format!("Linux {kernel}, {model}, {cores} cores")
}

/// (user, system) CPU time of a process, in clock ticks (USER_HZ = 100 on Linux).
pub fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11), get(12))
}

/// Nanoseconds a process's threads have run on a CPU (the scheduler's own account,
/// `/proc/PID/task/*/schedstat`), exact where [`cpu_ticks`] samples in 10 ms ticks.
/// Threads that exited are not counted.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    )
}

/// Replaces (or appends) the section of benchmark `name` in the markdown file.
pub fn write_section(path: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let old = fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    fs::write(path, replace_section(&old, name, body))
}

pub fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let (start, end) = markers(name);
    let block = format!("{start}\n{}\n{end}", body.trim_end());
    match (doc.find(&start), doc.find(&end)) {
        (Some(s), Some(e)) if e > s => format!("{}{block}{}", &doc[..s], &doc[e + end.len()..]),
        _ => format!("{}\n\n{block}\n", doc.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# Benchmarks\n\nintro\n";
        let once = replace_section(doc, "datapath", "table 1");
        assert!(
            once.contains("<!-- bench:datapath:start -->\ntable 1\n<!-- bench:datapath:end -->")
        );
        let twice = replace_section(&format!("{once}\nafter\n"), "datapath", "table 2");
        assert!(twice.contains("table 2") && !twice.contains("table 1"));
        assert!(twice.contains("intro") && twice.contains("after"));
        let other = replace_section(&twice, "failover", "f");
        assert!(other.contains("table 2") && other.contains("bench:failover:start"));
    }
}
