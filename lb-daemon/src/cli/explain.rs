//! `lb-daemon explain CLIENT_IP:PORT VIP:PORT [--proto tcp|udp]`: which service and
//! backend the running data plane gives a flow, and why, from its pinned maps.

use std::{net::SocketAddr, path::Path};

use anyhow::{Context, Result};

use crate::dataplane::{
    explain::{explain, PinnedMaps, Query},
    Protocol,
};

pub fn run(client: SocketAddr, vip: SocketAddr, protocol: Proto, pin_dir: &Path) -> Result<()> {
    let protocol = Protocol::from(protocol);
    if client.is_ipv4() != vip.is_ipv4() {
        anyhow::bail!("{client} and {vip} are of different families: a flow has one");
    }
    let maps = PinnedMaps::open(pin_dir)?;
    let q = Query {
        client,
        vip,
        protocol,
    };
    println!("flow: {client} -> {vip} {protocol:?}");
    println!("{}", explain(&maps, &q, monotonic_ns()?));
    Ok(())
}

/// `--proto`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

impl From<Proto> for Protocol {
    fn from(p: Proto) -> Protocol {
        match p {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        }
    }
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_coarse_ns` (the connection table's).
fn monotonic_ns() -> Result<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading CLOCK_MONOTONIC");
    }
    Ok(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}
