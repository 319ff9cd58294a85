//! `lb-daemon lab` (feature `lab`): the load balancer at work in network namespaces,
//! narrated. [`dataplane`] drives one LB node in-process (and the NAT labs); [`ha`] runs
//! two `lb-daemon run` nodes in one VRRP group; [`bgp`] runs three nodes announcing by BGP
//! behind an ECMP router.

pub mod bgp;
pub mod dataplane;
pub mod ha;

use anyhow::Result;

use crate::dataplane::ForwardMode;

/// Forwarding mode of the lab (keepalived's lb_kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Dr,
    Tun,
    /// NAT, keepalived's two-interface set-up (data-plane lab).
    Nat,
    /// Full-NAT: `snat_address` (data-plane lab).
    FullNat,
    /// Active-active: 3 nodes announcing the VIP by BGP (BIRD 2) to an ECMP router (DR).
    Bgp,
}

impl Mode {
    fn forward_mode(self) -> ForwardMode {
        match self {
            Mode::Dr | Mode::Bgp => ForwardMode::Dr,
            Mode::Tun => ForwardMode::Tun,
            Mode::Nat => ForwardMode::Nat { snat: None },
            // The lab puts its own internal address here.
            Mode::FullNat => ForwardMode::Nat {
                snat: Some(std::net::Ipv4Addr::UNSPECIFIED.into()),
            },
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Forwarding mode (keepalived's lb_kind).
    #[arg(long, value_enum, default_value = "dr")]
    pub mode: Mode,
    /// How many backend namespaces serve TCP behind the VIP.
    #[arg(long, default_value_t = 3)]
    pub backends: usize,
    /// Keep the lab up after the demo until Ctrl-C (to explore it with `ip netns exec`
    /// and `bpftool map dump pinned ...`).
    #[arg(long)]
    pub pause: bool,
    /// Only the data plane (one LB node driven in-process, no VRRP, no daemon).
    #[arg(long)]
    pub dataplane_only: bool,
    /// `--mode bgp` with the VIPs put on the nodes by the lab instead of announced by the
    /// daemons (shows the traffic side alone).
    #[arg(long, hide = true)]
    pub announce_by_hand: bool,
}

pub fn run(args: LabArgs) -> Result<()> {
    if args.mode == Mode::Bgp {
        let announce = if args.announce_by_hand {
            crate::lab::bgp_tier::Announce::ByHand
        } else {
            crate::lab::bgp_tier::Announce::Bgp
        };
        return bgp::run(args.backends, args.pause, announce);
    }
    let mode = args.mode.forward_mode();
    // The NAT labs show the data plane (the NAT pair failover is an e2e test).
    if args.dataplane_only || mode.is_nat() {
        dataplane::run(mode, args.backends, args.pause)
    } else {
        ha::run(mode, args.backends, args.pause)
    }
}
