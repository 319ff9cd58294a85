//! Injecting and undoing the soak's faults, each with the checks that tell whether the
//! daemon handled it (a refused bad reload, a socket still answering, ...).

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use super::{
    lab::{SoakLab, FORGER, METRICS},
    schedule::{Fault, Service},
};
use crate::daemon_lab::http_get;

/// What undoing a fault needs.
pub enum Undo {
    Nothing,
    StartBackend(Service, usize),
    LinkUp(Service, usize),
    Restore(usize),
    Restart(usize),
    Close(Vec<UnixStream>),
    StopScraper(Arc<AtomicBool>, JoinHandle<Result<()>>),
}

/// Clients that connect to the control socket and never speak.
const SILENT_CLIENTS: usize = 64;

/// Injects `fault`; `problems` collects what went wrong beyond the fault itself.
pub fn inject(lab: &mut SoakLab, fault: Fault, problems: &mut Vec<String>) -> Result<Undo> {
    Ok(match fault {
        Fault::BackendKilled { service, backend } => {
            lab.backend(service, backend).stop_server();
            Undo::StartBackend(service, backend)
        }
        Fault::BackendLinkFlap { service, backend } => {
            // From the switch side: the backend keeps its addresses and routes (setting
            // its own eth0 down would delete a NAT real's default route via the LB).
            lab.set_switch_port(service, backend, "down")?;
            Undo::LinkUp(service, backend)
        }
        Fault::MasterLinkCut => {
            let m = lab.master(Duration::from_secs(10))?;
            lab.seg.cut(m)?;
            Undo::Restore(m)
        }
        Fault::ReloadValid => {
            let m = lab.master(Duration::from_secs(10))?;
            // A priority change applies in place: the master never leaves MASTER.
            lab.bump[m] = if lab.bump[m] == 0 { 10 } else { 0 };
            lab.write_config(m, &lab.config(m))?;
            let out = lab.cli(m, &["reload"])?;
            if !out.status.success() {
                problems.push(format!(
                    "a valid reload was refused: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            if lab.master(Duration::from_secs(1))? != m {
                problems.push("the master changed on a priority reload".into());
            }
            Undo::Nothing
        }
        Fault::ReloadInvalid => {
            let m = lab.master(Duration::from_secs(10))?;
            lab.write_config(m, "[[vrrp_instance]]\nname = 3\n")?;
            let out = lab.cli(m, &["reload"])?;
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !err.contains("lb.toml:") {
                problems.push(format!(
                    "an invalid reload was not refused with its diagnostics: {err}"
                ));
            }
            lab.write_config(m, &lab.config(m))?;
            Undo::Nothing
        }
        Fault::MasterKilled => {
            let m = lab.master(Duration::from_secs(10))?;
            lab.seg.nodes[m].kill();
            Undo::Restart(m)
        }
        Fault::UpgradeRestart => {
            let m = lab.master(Duration::from_secs(10))?;
            let out = lab.cli(m, &["stop", "--keep-dataplane"])?;
            if !out.status.success() {
                problems.push(format!(
                    "stop --keep-dataplane failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            lab.start(m)?;
            lab.wait_socket(m, Duration::from_secs(10))?;
            Undo::Nothing
        }
        Fault::ForgedAdverts => {
            let m = lab.master(Duration::from_secs(10))?;
            let sent = lab.seg.nodes[FORGER].ns.run(forge_adverts)?;
            if sent == 0 {
                problems.push("no forged advert could be sent".into());
            }
            if lab.master(Duration::from_secs(1))? != m {
                problems.push("forged adverts moved the master".into());
            }
            Undo::Nothing
        }
        Fault::SilentControlClients => {
            let m = lab.master(Duration::from_secs(10))?;
            let sock = lab.sock(m);
            let clients: Vec<UnixStream> = (0..SILENT_CLIENTS)
                .filter_map(|_| UnixStream::connect(&sock).ok())
                .collect();
            // The operator's own `status` must still be answered.
            match lab.cli(m, &["status"]) {
                Ok(o) if o.status.success() => {}
                Ok(o) => problems.push(format!(
                    "status failed with {} silent control clients: {}",
                    clients.len(),
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => problems.push(format!("status: {e:#}")),
            }
            Undo::Close(clients)
        }
        Fault::SlowMetricsScraper => {
            let m = lab.master(Duration::from_secs(10))?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let ns = lab.seg.nodes[m].ns.path();
            let slow = std::thread::spawn(move || slow_scrape(ns, &flag));
            std::thread::sleep(Duration::from_millis(500));
            // A normal scrape is still served next to the slow one.
            if let Err(e) = http_get(&lab.seg.nodes[m].ns, METRICS, "/metrics") {
                problems.push(format!("a scrape failed next to a slow scraper: {e:#}"));
            }
            Undo::StopScraper(stop, slow)
        }
    })
}

pub fn undo(lab: &mut SoakLab, undo: Undo, problems: &mut Vec<String>) -> Result<()> {
    match undo {
        Undo::Nothing => {}
        Undo::StartBackend(service, i) => lab.backend(service, i).start_server(i)?,
        Undo::LinkUp(service, i) => lab.set_switch_port(service, i, "up")?,
        Undo::Restore(m) => lab.seg.restore(m)?,
        Undo::Restart(m) => {
            lab.start(m)?;
            lab.wait_socket(m, Duration::from_secs(10))?;
        }
        Undo::Close(clients) => drop(clients),
        Undo::StopScraper(stop, slow) => {
            stop.store(true, Ordering::Relaxed);
            match slow.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("the slow scraper: {e:#}")),
                Err(_) => problems.push("the slow scraper panicked".into()),
            }
        }
    }
    Ok(())
}

/// Sends its request a byte every 250 ms until told to stop, then reads what comes.
fn slow_scrape(ns: std::path::PathBuf, stop: &AtomicBool) -> Result<()> {
    let f = std::fs::File::open(&ns)?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut s = std::net::TcpStream::connect(METRICS).context("slow scraper connect")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = b"GET /metrics HTTP/1.1\r\nHost: lb\r\n\r\n";
    for b in request.iter() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // The daemon may close a connection that is too slow: that is its right.
        if s.write_all(&[*b]).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    Ok(())
}

/// From the third host: VRRPv2 adverts for VRID 51 to both LBs — a wrong password, a
/// TTL of 64 (must be 255), and the right password with priority 254 from an address
/// that is not a unicast peer. Every one must be dropped. Returns how many were sent.
fn forge_adverts() -> Result<usize> {
    let mut sent = 0;
    for _ in 0..40 {
        for (auth, ttl, priority) in [
            (b"wrong\0\0\0", 255, 200),
            (b"soak\0\0\0\0", 64, 200),
            (b"soak\0\0\0\0", 255, 254),
        ] {
            let msg = advert(51, priority, auth);
            for lb in ["198.18.0.11", "198.18.0.12"] {
                sent += usize::from(send_raw(&msg, lb.parse()?, ttl)?);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(sent)
}

/// A VRRPv2 advert (RFC 3768): the lab's two VIPs, simple password, 1 s.
fn advert(vrid: u8, priority: u8, auth: &[u8; 8]) -> Vec<u8> {
    let mut m = vec![0x21, vrid, priority, 2, 1, 1, 0, 0];
    for vip in [super::lab::DR_VIP, super::lab::NAT_VIP] {
        let a: std::net::Ipv4Addr = vip.parse().expect("VIP");
        m.extend_from_slice(&a.octets());
    }
    m.extend_from_slice(auth);
    let mut sum: u32 = m
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    m[6..8].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    m
}

/// One datagram on a raw IP protocol 112 socket with this TTL.
fn send_raw(msg: &[u8], to: std::net::Ipv4Addr, ttl: i32) -> Result<bool> {
    // SAFETY: plain socket calls on a descriptor owned here and closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, 112);
        if fd < 0 {
            bail!("raw socket: {}", std::io::Error::last_os_error());
        }
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_TTL,
            (&ttl as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(to.octets()),
            },
            sin_zero: [0; 8],
        };
        let n = libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        libc::close(fd);
        Ok(n == msg.len() as isize)
    }
}
