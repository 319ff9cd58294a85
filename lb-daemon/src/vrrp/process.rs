//! `vrrp_track_process`, as keepalived 2.2.7 (core/track_process.c): a process counts
//! when its name (`/proc/PID/comm`), or with `full_command` its command's first word and
//! arguments (`/proc/PID/cmdline`), match; the tracked process is up while
//! `quorum <= count <= quorum_max`, a change taking effect after `fork_delay` (gaining)
//! or `terminate_delay` (losing) if it still holds then.
//!
//! keepalived learns of forks and exits from the kernel's process events connector; this
//! daemon reads /proc every [`SCAN_INTERVAL`] (one pass for every tracked process), which
//! needs no extra privilege and costs a few hundred small reads a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::config::{ParamMatch, VrrpTrackProcess};

/// How often /proc is read.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(250);

/// A process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessInfo {
    /// `/proc/PID/comm` (15 characters at most).
    pub comm: String,
    /// `/proc/PID/cmdline`, split at its NULs (empty for kernel threads).
    pub argv: Vec<String>,
}

/// Whether `p` is one of `spec`'s processes.
pub fn matches(spec: &VrrpTrackProcess, p: &ProcessInfo) -> bool {
    if !spec.full_command {
        return p.comm == spec.process;
    }
    let Some((first, args)) = p.argv.split_first() else {
        return false;
    };
    if *first != spec.process {
        return false;
    }
    let want = &spec.parameters[..];
    match spec.param_match {
        ParamMatch::Any => true,
        ParamMatch::Exact => args == want,
        ParamMatch::Initial => args.starts_with(want),
        ParamMatch::Partial => want.is_empty() || args.windows(want.len()).any(|w| w == want),
    }
}

/// Up or down with keepalived's quorum window and delays (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    up: bool,
    /// The opposite state has held since then (waiting for its delay).
    pending_since: Option<Instant>,
}

impl QuorumState {
    /// From the first count: no delay at start, as keepalived's initial scan.
    pub fn new(spec: &VrrpTrackProcess, count: usize) -> Self {
        Self {
            up: in_quorum(spec, count),
            pending_since: None,
        }
    }

    pub fn up(&self) -> bool {
        self.up
    }

    /// A new count at `now`; returns the new state when it changed.
    pub fn observe(&mut self, spec: &VrrpTrackProcess, count: usize, now: Instant) -> Option<bool> {
        let want = in_quorum(spec, count);
        if want == self.up {
            self.pending_since = None;
            return None;
        }
        let delay = if want {
            spec.fork_delay
        } else {
            spec.terminate_delay
        };
        let since = *self.pending_since.get_or_insert(now);
        if now.duration_since(since) >= delay {
            self.up = want;
            self.pending_since = None;
            Some(want)
        } else {
            None
        }
    }
}

fn in_quorum(spec: &VrrpTrackProcess, count: usize) -> bool {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    spec.quorum <= count && count <= spec.quorum_max
}

/// Every process now running (those that vanish while being read are skipped).
pub fn scan(read_cmdline: bool) -> Vec<ProcessInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let argv = if read_cmdline {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    raw.split(|&b| b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push(ProcessInfo {
            comm: comm.trim_end_matches('\n').to_string(),
            argv,
        });
    }
    out
}

/// Starts one task watching every tracked process; returns each one's up/down state.
pub fn start(
    specs: &[VrrpTrackProcess],
) -> (
    HashMap<String, watch::Receiver<bool>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if specs.is_empty() {
        return (HashMap::new(), None);
    }
    let specs = specs.to_vec();
    let cmdline = specs.iter().any(|s| s.full_command);
    let processes = scan(cmdline);
    let mut states = Vec::new();
    let mut senders = Vec::new();
    let mut receivers = HashMap::new();
    for spec in &specs {
        let count = processes.iter().filter(|p| matches(spec, p)).count();
        let state = QuorumState::new(spec, count);
        info!(track_process = %spec.name, count, up = state.up(), "tracking process");
        let (tx, rx) = watch::channel(state.up());
        receivers.insert(spec.name.clone(), rx);
        senders.push(tx);
        states.push(state);
    }
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(SCAN_INTERVAL).await;
            let processes = tokio::task::spawn_blocking(move || scan(cmdline))
                .await
                .unwrap_or_default();
            let now = Instant::now();
            for ((spec, state), tx) in specs.iter().zip(states.iter_mut()).zip(&senders) {
                let count = processes.iter().filter(|p| matches(spec, p)).count();
                if let Some(up) = state.observe(spec, count, now) {
                    let what = if up { "gained" } else { "lost" };
                    info!(track_process = %spec.name, count, "Quorum {what} for tracked process {}", spec.name);
                    let _ = tx.send(up);
                }
            }
        }
    });
    (receivers, Some(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(process: &str) -> VrrpTrackProcess {
        VrrpTrackProcess {
            name: "p".into(),
            process: process.into(),
            parameters: Vec::new(),
            param_match: ParamMatch::Any,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }

    fn proc_(comm: &str, argv: &[&str]) -> ProcessInfo {
        ProcessInfo {
            comm: comm.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn names_and_command_lines_match_as_keepalived() {
        let haproxy = proc_(
            "haproxy",
            &["/usr/sbin/haproxy", "-f", "/etc/haproxy/haproxy.cfg", "-Ws"],
        );
        assert!(matches(&spec("haproxy"), &haproxy));
        assert!(!matches(&spec("haprox"), &haproxy));
        let mut full = spec("/usr/sbin/haproxy");
        full.full_command = true;
        assert!(matches(&full, &haproxy));
        assert!(!matches(&spec("/usr/sbin/haproxy"), &haproxy), "comm only");
        full.parameters = vec!["-f".into(), "/etc/haproxy/haproxy.cfg".into()];
        full.param_match = ParamMatch::Exact;
        assert!(!matches(&full, &haproxy), "-Ws follows");
        full.param_match = ParamMatch::Initial;
        assert!(matches(&full, &haproxy));
        full.parameters = vec!["/etc/haproxy/haproxy.cfg".into(), "-Ws".into()];
        assert!(!matches(&full, &haproxy));
        full.param_match = ParamMatch::Partial;
        assert!(matches(&full, &haproxy));
        assert!(
            !matches(&full, &proc_("kworker/0:1", &[])),
            "kernel threads have no argv"
        );
    }

    #[test]
    fn quorum_window_and_delays() {
        let mut s = spec("nginx");
        s.quorum = 2;
        s.quorum_max = 4;
        s.fork_delay = Duration::from_secs(1);
        s.terminate_delay = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut q = QuorumState::new(&s, 3);
        assert!(q.up());
        assert_eq!(
            q.observe(&s, 5, t0),
            None,
            "too many: waits terminate_delay"
        );
        assert_eq!(q.observe(&s, 5, t0 + Duration::from_secs(1)), None);
        assert_eq!(q.observe(&s, 1, t0 + Duration::from_secs(2)), Some(false));
        assert_eq!(
            q.observe(&s, 2, t0 + Duration::from_secs(3)),
            None,
            "fork_delay"
        );
        assert_eq!(
            q.observe(&s, 1, t0 + Duration::from_millis(3500)),
            None,
            "back out"
        );
        assert_eq!(
            q.observe(&s, 2, t0 + Duration::from_secs(4)),
            None,
            "starts again"
        );
        assert_eq!(q.observe(&s, 3, t0 + Duration::from_secs(5)), Some(true));
        // quorum_max = 0: up while none runs.
        let mut none = spec("telnetd");
        none.quorum = 0;
        none.quorum_max = 0;
        let mut q = QuorumState::new(&none, 0);
        assert!(q.up());
        assert_eq!(q.observe(&none, 1, t0), Some(false));
    }

    #[test]
    fn this_test_process_is_found_in_proc() {
        let me = scan(true);
        let pid_comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(me.iter().any(|p| p.comm == pid_comm.trim_end()));
        assert!(me.iter().any(|p| !p.argv.is_empty()));
    }
}
