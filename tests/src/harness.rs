//! A data plane loaded for a test: its own pin directory (removed on drop), test runs on
//! one CPU (the connection table is per CPU), and spec shorthands.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use lb_common::program_names;
use lb_daemon::dataplane::{
    default_idle_timeout, BackendSpec, Capacity, Dataplane, Egress, ForwardMode, HashMode,
    LoadOptions, Protocol, ServiceId, ServiceSpec, TestRunOutput,
};

use crate::frames::Flow;

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// MAC of the load balancer's interface in fixtures.
pub const LB_MAC: [u8; 6] = [0x02, 0x1b, 0x00, 0x00, 0x00, 0x01];
/// MAC of the router / client the VIP traffic comes from.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x00, 0x00, 0x00, 0x01];
pub const LB_V4: &str = "198.18.0.1";
pub const LB_V6: &str = "2001:db8::1";

/// A fixture flow of a service's protocol.
pub fn service_flow(protocol: Protocol, src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
    match protocol {
        Protocol::Tcp => Flow::tcp(src, sport, dst, dport),
        Protocol::Udp => Flow::udp(src, sport, dst, dport),
        Protocol::Sctp => panic!("SCTP services are IPVS's: no XDP fixture flow"),
    }
}

/// The next-hop MAC fixtures give a backend: derived from its address.
pub fn backend_mac(addr: IpAddr) -> [u8; 6] {
    let o = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0xbe, o[0], o[1], o[2], o[3]]
}

pub fn unique_pin_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    PathBuf::from(format!(
        "/sys/fs/bpf/lbt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

pub struct TestDataplane {
    pub dp: Dataplane,
    pin_dir: PathBuf,
    capacity: Capacity,
}

impl TestDataplane {
    pub fn new() -> Self {
        Self::with_capacity(Capacity {
            maglev_slots: 8 * 65537,
            conntrack: 4096,
            ..Capacity::default()
        })
    }

    pub fn with_capacity(capacity: Capacity) -> Self {
        let pin_dir = unique_pin_dir("fx");
        let dp = Dataplane::load(&LoadOptions {
            pin_dir: pin_dir.clone(),
            capacity,
        })
        .expect("load the XDP program (root, bpffs, LB_EBPF_OBJECT or an embedded object)");
        Self {
            dp,
            pin_dir,
            capacity,
        }
    }

    /// What a restarted daemon does (after a crash or `stop --keep-dataplane`): loads
    /// the program again over the pinned maps, adopting what they hold.
    pub fn restart(&mut self) {
        let dp = Dataplane::load(&LoadOptions {
            pin_dir: self.pin_dir.clone(),
            capacity: self.capacity,
        })
        .expect("load the XDP program again over the pinned maps");
        assert!(dp.adopted(), "the pinned maps are re-used");
        self.dp = dp;
    }

    /// Runs the load balancer once on `frame`, on CPU 0.
    pub fn run(&mut self, frame: &[u8]) -> TestRunOutput {
        self.run_program(program_names::LB, frame, 1)
    }

    /// Runs the load balancer once on `frame` as received on `ifindex`, on CPU 0.
    pub fn run_on(&mut self, frame: &[u8], ifindex: u32) -> TestRunOutput {
        pin_to_cpu0();
        self.dp
            .test_run_on(program_names::LB, frame, 1, ifindex)
            .expect("BPF_PROG_TEST_RUN")
    }

    pub fn run_program(
        &mut self,
        program: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> TestRunOutput {
        pin_to_cpu0();
        self.dp
            .test_run(program, frame, repeat)
            .expect("BPF_PROG_TEST_RUN")
    }

    pub fn counter(&self, c: lb_common::Counter) -> u64 {
        self.dp.counter(c).expect("read counters")
    }
}

impl Default for TestDataplane {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDataplane {
    fn drop(&mut self) {
        lb_daemon::dataplane::bpffs::remove_pins(&self.pin_dir);
    }
}

/// The connection table is per CPU: keep every run of a test on the same one.
pub fn pin_to_cpu0() {
    let mut set = nix::sched::CpuSet::new();
    if set.set(0).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// A service spec with fixture defaults: M = 251, 5-tuple hash, no persistence.
pub fn service(
    vip: &str,
    port: u16,
    protocol: Protocol,
    mode: ForwardMode,
    backends: &[(&str, u32)],
) -> ServiceSpec {
    ServiceSpec {
        id: ServiceId {
            vip: vip.parse().expect("vip"),
            port,
            protocol,
        },
        mode,
        hash: HashMode::FiveTuple,
        table_size: 251,
        persistence_timeout: None,
        persistence_prefix: None,
        group: None,
        idle_timeout: default_idle_timeout(protocol),
        backends: backends.iter().map(|&(a, w)| backend(a, w)).collect(),
    }
}

pub fn backend(addr: &str, weight: u32) -> BackendSpec {
    let addr: IpAddr = addr.parse().expect("backend address");
    let tunnel_src = if addr.is_ipv4() { LB_V4 } else { LB_V6 };
    BackendSpec {
        addr,
        port: 0,
        weight,
        egress: Egress {
            ifindex: 0,
            next_hop_mac: backend_mac(addr),
            src_mac: LB_MAC,
            tunnel_src: Some(tunnel_src.parse().expect("address")),
        },
    }
}

pub fn seconds(s: u64) -> Duration {
    Duration::from_secs(s)
}
