//! Network-namespace helpers for the tests and the demo lab (`lb-daemon lab`).
//!
//! A [`Netns`] owns a uniquely named namespace (`ip netns add`) and deletes it on drop, after
//! killing every process living in it, so nothing outlives a test even when it panics.
//! [`veth`] wires two namespaces together and a [`Switch`] is an L2 segment (a bridge in its
//! own namespace) that hosts plug into.
//!
//! Everything here needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// How long Drop keeps trying to kill the processes left in a namespace.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// Process-wide counter making namespace names unique together with the pid.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises `ip netns add`: the first calls race on setting up the shared /run/netns mount.
static ADD_LOCK: Mutex<()> = Mutex::new(());

/// Returns `<prefix>-<pid>-<counter>`, unique within this machine while this process lives.
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A spawned process shared between its [`NsChild`] guard and the owning [`Netns`].
type SharedChild = Arc<Mutex<Option<Child>>>;

/// A network namespace with a unique name, deleted on drop (even on panic), together with
/// every process spawned in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: Mutex<Vec<SharedChild>>,
}

impl Netns {
    /// Creates the namespace `<prefix>-<pid>-<counter>` and brings its `lo` up.
    pub fn new(prefix: &str) -> Result<Netns> {
        let name = unique_name(prefix);
        {
            let _guard = lock(&ADD_LOCK);
            run_cmd(Command::new("ip").args(["netns", "add", &name]))?;
        }
        // Built right after `add` so that a failure below still deletes the namespace.
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        tracing::debug!(netns = %ns.name, "created network namespace");
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the namespace file (/run/netns/NAME).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...` (iproute2 commands without a shell); returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run_cmd(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `ip netns exec NAME sh -c CMD`; returns stdout.
    ///
    /// Fails (with the command, exit status and stderr) if the command does. Background jobs
    /// must redirect their output, or this waits for them; they are killed when the Netns drops.
    pub fn sh(&self, cmd: &str) -> Result<String> {
        run_cmd(&mut self.exec_command(&["sh", "-c", cmd]))
    }

    /// Spawns a long-running process in the namespace (`ip netns exec NAME <argv>`), with its
    /// output discarded. It is killed when the Netns or the returned guard is dropped.
    pub fn spawn(&self, argv: &[&str]) -> Result<NsChild> {
        self.spawn_with(argv, Stdio::null(), Stdio::null())
    }

    /// Like [`Netns::spawn`], with the caller's choice of stdout and stderr (e.g. a log file).
    pub fn spawn_with(&self, argv: &[&str], stdout: Stdio, stderr: Stdio) -> Result<NsChild> {
        if argv.is_empty() {
            bail!("cannot spawn an empty command in netns {}", self.name);
        }
        let child = self
            .exec_command(argv)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {argv:?} in netns {}", self.name))?;
        tracing::debug!(netns = %self.name, pid = child.id(), ?argv, "spawned");
        let shared = Arc::new(Mutex::new(Some(child)));
        lock(&self.children).push(Arc::clone(&shared));
        Ok(NsChild { child: shared })
    }

    /// Runs `f` on a fresh thread that has joined this namespace, and returns its result.
    ///
    /// Sockets created by `f` (netlink included) live in the namespace. A panic in `f` (or a
    /// failure to enter the namespace) propagates to the caller. Note that `/proc/self/net`
    /// shows the main thread's namespace: use `/proc/thread-self/net` inside `f`.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = self.path();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                if let Err(e) = enter(&path) {
                    panic!("cannot enter network namespace {}: {e:#}", path.display());
                }
                f()
            });
        let handle = match thread {
            Ok(h) => h,
            Err(e) => panic!("cannot spawn a thread for netns {}: {e}", self.name),
        };
        match handle.join() {
            Ok(r) => r,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Whether `addr` is assigned to `dev` in this namespace.
    pub fn has_address(&self, dev: &str, addr: &str) -> bool {
        self.ip(&["-o", "addr", "show", "dev", dev])
            .map(|out| {
                out.split_whitespace()
                    .any(|w| w.split('/').next() == Some(addr))
            })
            .unwrap_or(false)
    }

    /// Pids of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<i32> {
        pids_in(&self.path())
    }

    fn exec_command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    /// SIGKILLs every process in the namespace until none is left (or a deadline passes).
    fn kill_all(&self) {
        for child in lock(&self.children).drain(..) {
            kill_child(&child);
        }
        // Processes started through `sh` (or by spawned children) are not ours to wait for:
        // find them through /proc.
        let deadline = Instant::now() + KILL_DEADLINE;
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                tracing::warn!(netns = %self.name, ?pids, "processes survived SIGKILL");
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        match run_cmd(Command::new("ip").args(["netns", "del", &self.name])) {
            Ok(_) => tracing::debug!(netns = %self.name, "deleted network namespace"),
            Err(e) => tracing::warn!(netns = %self.name, "cannot delete namespace: {e:#}"),
        }
    }
}

/// A process spawned by [`Netns::spawn`]; SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct NsChild {
    child: SharedChild,
}

impl NsChild {
    /// Pid of the process (`ip netns exec` execs the program, so this is the program itself).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.child).as_ref().map(Child::id)
    }

    /// The exit status if the process has ended, without blocking.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        match lock(&self.child).as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("process already killed"),
        }
    }

    /// Kills and reaps the process now.
    pub fn kill(&self) {
        kill_child(&self.child);
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        kill_child(&self.child);
    }
}

/// Creates a veth pair: `a_if` in namespace `a`, `b_if` in namespace `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    check_ifname(a_if)?;
    check_ifname(b_if)?;
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// An L2 segment: a namespace holding a bridge `br0` that hosts plug into.
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
    ports: AtomicU32,
}

impl Switch {
    /// Name of the bridge inside the switch's namespace.
    pub const BRIDGE: &'static str = "br0";

    pub fn new(prefix: &str) -> Result<Switch> {
        let ns = Netns::new(prefix)?;
        ns.ip(&["link", "add", Self::BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", Self::BRIDGE, "up"])?;
        Ok(Switch {
            ns,
            ports: AtomicU32::new(0),
        })
    }

    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Makes a veth whose end `ifname` is in `host` (up) and whose other end is a port of the
    /// bridge; returns that port's name (in the switch namespace), e.g. to attach XDP to it.
    pub fn plug(&self, host: &Netns, ifname: &str) -> Result<String> {
        let port = format!("port{}", self.ports.fetch_add(1, Ordering::Relaxed));
        veth(host, ifname, &self.ns, &port)?;
        self.ns
            .ip(&["link", "set", &port, "master", Self::BRIDGE])?;
        Ok(port)
    }
}

/// Fails unless `name` is a valid interface name.
pub fn check_ifname(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if !valid {
        bail!("invalid interface name {name:?}: use 1..={IFNAME_MAX} chars, no '/', ':' or space");
    }
    Ok(())
}

/// Runs `cmd`, returning stdout; the error names the command, its status and its stderr.
fn run_cmd(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET).context("setns(CLONE_NEWNET)")?;
    Ok(())
}

/// Pids whose /proc/PID/ns/net is the namespace file at `ns_path` (what `ip netns pids` does).
fn pids_in(ns_path: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(ns_path) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            // Zombies and vanished processes have no readable ns link: skipped.
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}

fn kill_child(child: &SharedChild) {
    if let Some(mut c) = lock(child).take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Locks ignoring poison: the data stays consistent and Drop must not panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! These tests need root and iproute2; they fail (rather than skip) without them.

    use super::*;

    fn proc_alive(pid: i32) -> bool {
        // A zombie still has a /proc entry: check its state too.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    fn netns_listed(name: &str) -> bool {
        let list = run_cmd(Command::new("ip").args(["netns", "list"])).unwrap();
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    }

    fn ifindex(name: &str) -> u32 {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: `c` is a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    }

    #[test]
    fn names_are_unique() {
        let a = Netns::new("tnu").unwrap();
        let b = Netns::new("tnu").unwrap();
        assert_ne!(a.name(), b.name());
        assert!(a
            .name()
            .starts_with(&format!("tnu-{}-", std::process::id())));
        assert!(a.path().exists() && b.path().exists());
    }

    #[test]
    fn veth_ping_between_namespaces() {
        let a = Netns::new("tpa").unwrap();
        let b = Netns::new("tpb").unwrap();
        veth(&a, "va", &b, "vb").unwrap();
        a.ip(&["addr", "add", "198.18.10.1/24", "dev", "va"])
            .unwrap();
        b.ip(&["addr", "add", "198.18.10.2/24", "dev", "vb"])
            .unwrap();
        a.sh("ping -c1 -W1 198.18.10.2").unwrap();
        b.sh("ping -c1 -W1 198.18.10.1").unwrap();
        // Nobody has this address: ping must fail, proving the check above can fail.
        assert!(a.sh("ping -c1 -W1 198.18.10.3").is_err());
    }

    #[test]
    fn sh_reports_failures() {
        let a = Netns::new("tsh").unwrap();
        assert_eq!(a.sh("echo hello").unwrap(), "hello\n");
        let err = format!("{:#}", a.sh("echo oops >&2; exit 3").unwrap_err());
        assert!(err.contains("oops"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("exit 3"), "command missing: {err}");
    }

    #[test]
    fn run_is_inside_the_namespace() {
        let a = Netns::new("tra").unwrap();
        let b = Netns::new("trb").unwrap();
        let (a_if, b_if) = ("trun-a", "trun-b");
        veth(&a, a_if, &b, b_if).unwrap();
        assert_eq!(
            ifindex(a_if),
            0,
            "{a_if} must not exist outside the namespace"
        );
        let (dev, a_idx, b_idx) = a.run(move || {
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            (dev, ifindex(a_if), ifindex(b_if))
        });
        assert!(dev.contains(&format!("{a_if}:")), "{dev}");
        assert!(!dev.contains(b_if), "{dev}");
        assert_ne!(a_idx, 0);
        assert_eq!(b_idx, 0);
        // The caller's thread is unaffected.
        assert_eq!(ifindex(a_if), 0);
    }

    #[test]
    fn run_propagates_panics() {
        let a = Netns::new("trp").unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.run(|| panic!("boom inside"));
        }));
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom inside"));
    }

    #[test]
    fn spawned_processes_die_with_their_guard_and_namespace() {
        let a = Netns::new("tsp").unwrap();
        let first = a.spawn(&["sleep", "1000"]).unwrap();
        let second = a.spawn(&["sleep", "1000"]).unwrap();
        let (p1, p2) = (first.pid().unwrap() as i32, second.pid().unwrap() as i32);
        assert!(first.try_wait().unwrap().is_none());
        // The pid is the program itself, living in the namespace (once `ip` has done setns).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(a.pids().contains(&p1) && a.pids().contains(&p2)) {
            assert!(
                Instant::now() < deadline,
                "{p1}, {p2} not in {:?}",
                a.pids()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // A process started through `sh` in the background.
        let bg: i32 = a
            .sh("sleep 1000 >/dev/null 2>&1 & echo $!")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(proc_alive(bg));

        drop(first);
        assert!(!proc_alive(p1), "guard drop must kill {p1}");
        assert!(proc_alive(p2));

        // `second` outlives the namespace: its process must still die with it.
        let name = a.name().to_owned();
        let path = a.path();
        assert!(netns_listed(&name));
        drop(a);
        assert!(!proc_alive(p2), "namespace drop must kill {p2}");
        assert!(
            !proc_alive(bg),
            "namespace drop must kill sh's background job {bg}"
        );
        assert!(second.try_wait().is_err());
        assert!(!netns_listed(&name), "{name} still listed");
        assert!(!path.exists());
    }

    #[test]
    fn namespace_is_deleted_on_panic() {
        let name = std::thread::spawn(|| {
            let a = Netns::new("tpn").unwrap();
            let name = a.name().to_owned();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _a = a;
                panic!("test panic");
            }))
            .unwrap_err();
            name
        })
        .join()
        .unwrap();
        assert!(!netns_listed(&name));
    }

    #[test]
    fn switch_connects_hosts() {
        let sw = Switch::new("tsw").unwrap();
        let hosts: Vec<Netns> = (0..3).map(|_| Netns::new("tswh").unwrap()).collect();
        let mut ports = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            ports.push(sw.plug(h, "eth0").unwrap());
            h.ip(&[
                "addr",
                "add",
                &format!("198.18.11.{}/24", i + 1),
                "dev",
                "eth0",
            ])
            .unwrap();
        }
        assert_eq!(ports, ["port0", "port1", "port2"]);
        let br = sw
            .ns()
            .ip(&["-o", "link", "show", "master", "br0"])
            .unwrap();
        for p in &ports {
            assert!(br.contains(&format!("{p}@")), "{br}");
        }
        hosts[0].sh("ping -c1 -W1 198.18.11.2").unwrap();
        hosts[2].sh("ping -c1 -W1 198.18.11.1").unwrap();
    }

    #[test]
    fn bad_interface_names_are_rejected() {
        let a = Netns::new("tbn").unwrap();
        let b = Netns::new("tbn").unwrap();
        let err = veth(&a, "this-name-is-too-long", &b, "x").unwrap_err();
        assert!(err.to_string().contains("invalid interface name"), "{err}");
    }
}
