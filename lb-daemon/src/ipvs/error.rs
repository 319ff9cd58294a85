//! What can go wrong programming IPVS, each said with what to do about it.

use super::{model::ServiceEntry, socket::TransportError};
use crate::dataplane::ServiceId;

#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("this kernel has no IPVS (no generic netlink family \"IPVS\", and `modprobe ip_vs` failed): install the kernel's ip_vs module or build it in (CONFIG_IP_VS), or use dataplane = \"xdp\"")]
    NotAvailable,
    #[error("IPVS refused to {op}: permission denied; programming IPVS needs CAP_NET_ADMIN (run lb-daemon as root)")]
    Permission { op: String },
    #[error("IPVS scheduler `{scheduler}` (for {service}) is not available in this kernel: load it with `modprobe ip_vs_{scheduler}` (kernel option CONFIG_IP_VS_{}), or choose another lb_algo", scheduler.to_uppercase())]
    SchedulerMissing {
        service: ServiceId,
        scheduler: String,
    },
    #[error("IPVS refused to {op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: TransportError,
    },
    #[error("IPVS sent a reply this daemon cannot read ({0})")]
    Malformed(String),
}

impl IpvsError {
    /// `op` is what was being done ("list the services", "add real ...").
    pub fn from_transport(op: &str, e: TransportError) -> Self {
        match e.errno() {
            Some(libc::EPERM) | Some(libc::EACCES) => Self::Permission { op: op.to_string() },
            _ => Self::Kernel {
                op: op.to_string(),
                source: e,
            },
        }
    }

    /// Adding or changing a service: ENOENT means the scheduler module is missing.
    pub fn from_service_change(s: &ServiceEntry, e: TransportError) -> Self {
        match e.errno() {
            Some(libc::ENOENT) => Self::SchedulerMissing {
                service: s.id,
                scheduler: s.scheduler.clone(),
            },
            _ => Self::from_transport(&format!("program service {}", s.id), e),
        }
    }

    /// Opening the family: ENOENT means no IPVS in this kernel.
    pub fn from_open(e: TransportError) -> Self {
        match e.errno() {
            Some(libc::ENOENT) => Self::NotAvailable,
            _ => Self::from_transport("open the IPVS generic netlink family", e),
        }
    }
}
