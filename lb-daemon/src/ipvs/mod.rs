//! The IPVS data plane: the kernel's IP Virtual Server programmed through its generic
//! netlink family ("IPVS", `include/uapi/linux/ip_vs.h`), for hosts where the XDP
//! program cannot run. The same configuration drives it: a virtual server becomes an
//! IPVS service (scheduler from `lb_algo`, `maglev` as `mh`, `maglev_src` as `sh`;
//! persistence), its healthy reals its destinations (NAT = masquerading, DR = direct
//! routing, TUN = IP-in-IP; weights, 0 when inhibited).
//!
//! - [`uapi`]: the header's numbers; [`codec`]: the attribute codec on
//!   `netlink-packet-core` / `netlink-packet-generic`; [`model`]: typed services and
//!   destinations, and the requests.
//! - [`socket`]: the netlink socket ([`Transport`] is the seam for tests).
//! - [`plan`]: reconciliation as a pure function; [`manager`]: the table owner.
//! - [`from_config`]: a virtual server and its desired backends as an IPVS service.

pub mod codec;
mod error;
pub mod from_config;
pub mod manager;
pub mod model;
pub mod plan;
pub mod socket;
pub mod status;
pub mod uapi;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use error::IpvsError;
pub use manager::{Manager, Report};
pub use model::{DestEntry, Forward, ServiceEntry};
pub use plan::{DesiredService, KernelService, Op};
pub use socket::{GenlSocket, Transport, TransportError};

/// The manager on the kernel's IPVS.
pub type Ipvs = Manager<GenlSocket>;

/// Opens the kernel's IPVS family. Without one, `modprobe ip_vs` is tried once (as
/// `ipvsadm` and keepalived do; the kernel loads scheduler modules itself).
pub fn open() -> Result<Ipvs, IpvsError> {
    match GenlSocket::open() {
        Err(e) if e.errno() == Some(libc::ENOENT) => {
            let loaded = std::process::Command::new("modprobe")
                .args(["-q", "ip_vs"])
                .status()
                .is_ok_and(|s| s.success());
            if !loaded {
                return Err(IpvsError::NotAvailable);
            }
            tracing::info!("loaded the ip_vs kernel module");
            GenlSocket::open()
        }
        other => other,
    }
    .map(Manager::new)
    .map_err(IpvsError::from_open)
}
