//! The kernel's IPVS table as the daemon's per-service status (packets and bytes from
//! the 64-bit statistics; IPVS counts both directions of NAT, `in` is client to real).

use lb_common::Traffic;

use super::{model::Forward, plan::KernelService};
use crate::dataplane::{BackendStatus, ForwardMode, ServiceStatus};

pub fn of_table(table: &[KernelService]) -> Vec<ServiceStatus> {
    table
        .iter()
        .map(|(s, dests)| ServiceStatus {
            id: s.id,
            mode: dests.first().and_then(|d| match d.forward {
                Forward::Masq => Some(ForwardMode::Nat { snat: None }),
                Forward::Route => Some(ForwardMode::Dr),
                Forward::Tunnel => Some(ForwardMode::Tun),
                Forward::Other(_) => None,
            }),
            table_size: 0,
            traffic: Traffic {
                packets: s.stats.inpkts,
                bytes: s.stats.inbytes,
            },
            backends: dests
                .iter()
                .map(|d| BackendStatus {
                    addr: d.addr,
                    port: d.port,
                    weight: d.weight,
                    slots: 0,
                    traffic: Traffic {
                        packets: d.stats.inpkts,
                        bytes: d.stats.inbytes,
                    },
                    // IPVS's ActiveConn.
                    connections: Some(u64::from(d.active_conns)),
                })
                .collect(),
            nat_connections: None,
        })
        .collect()
}
