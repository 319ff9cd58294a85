//! A virtual server as the XDP data plane sees it: its [`ServiceId`], `lb_kind` as the
//! forwarding mode, `lb_algo` as the Maglev hash input, and the service's timeouts. The
//! one place where configuration types become data-plane types (IPVS has its own,
//! `ipvs::from_config`, which takes the service identity from here).

use super::spec::{
    default_idle_timeout, BackendSpec, ForwardMode, HashMode, ServiceGroup, ServiceId, ServiceSpec,
};
use crate::config::{Announce, Config, LbAlgo, LbKind, VirtualServer, VrrpInstance};

/// The service a virtual server configures.
pub fn service_id(vs: &VirtualServer) -> ServiceId {
    if let Some(mark) = vs.fwmark {
        return ServiceId::fwmark(mark, vs.address.is_ipv6());
    }
    ServiceId {
        vip: vs.address,
        port: vs.port,
        protocol: vs.protocol,
    }
}

/// The VRRP instance that gates the virtual server: the one whose virtual_ipaddress holds
/// its address, or for a `fwmark` server one of its `match` addresses (None: always
/// served, or announced by BGP, which check-config keeps apart from VRRP).
pub fn gating_instance<'c>(config: &'c Config, vs: &VirtualServer) -> Option<&'c VrrpInstance> {
    if vs.announce == Announce::Bgp {
        return None;
    }
    config.vrrp_instances.iter().find(|i| {
        i.all_addresses()
            .any(|v| v.address == vs.address || vs.matches.iter().any(|m| m.ip() == v.address))
    })
}

/// Where the data plane attaches for the virtual server: its own `interfaces`, else
/// `[bgp].interfaces` when announced by BGP, else its VRRP instance's interface (NAT
/// reals' interfaces are found only when it is programmed).
pub fn attach_interfaces(config: &Config, vs: &VirtualServer) -> Vec<String> {
    if !vs.interfaces.is_empty() {
        vs.interfaces.clone()
    } else if vs.announce == Announce::Bgp {
        config.bgp.interfaces.clone()
    } else {
        gating_instance(config, vs)
            .map(|i| vec![i.interface.clone()])
            .unwrap_or_default()
    }
}

/// `lb_kind`, with the full-NAT source address for NAT.
pub fn forward_mode(vs: &VirtualServer) -> ForwardMode {
    match vs.lb_kind {
        LbKind::Tun => ForwardMode::Tun,
        LbKind::Dr => ForwardMode::Dr,
        LbKind::Nat => ForwardMode::Nat {
            snat: vs.snat_address,
        },
    }
}

/// What picks the Maglev slot: the client address for `maglev_src`, else the 5-tuple
/// (IPVS schedulers never reach the XDP data plane).
pub fn hash_mode(algo: LbAlgo) -> HashMode {
    if algo == LbAlgo::MaglevSrc {
        HashMode::Source
    } else {
        HashMode::FiveTuple
    }
}

/// The service `vs` configures, forwarding to `backends` (already resolved).
pub fn service_spec(vs: &VirtualServer, backends: Vec<BackendSpec>) -> ServiceSpec {
    let id = service_id(vs);
    ServiceSpec {
        id,
        mode: forward_mode(vs),
        hash: hash_mode(vs.lb_algo),
        table_size: vs.table_size,
        persistence_timeout: vs.persistence_timeout,
        persistence_prefix: vs.persistence_prefix,
        group: vs.fwmark.map(|mark| ServiceGroup {
            mark,
            members: vs
                .matches
                .iter()
                .map(|m| ServiceId {
                    vip: m.ip(),
                    port: m.port(),
                    protocol: vs.protocol,
                })
                .collect(),
        }),
        idle_timeout: default_idle_timeout(vs.protocol),
        backends,
    }
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use super::*;
    use crate::config::{Config, Protocol};

    fn virtual_server(extra: &str) -> VirtualServer {
        let text = format!(
            "[[virtual_server]]\naddress = \"192.0.2.10\"\nport = 53\nprotocol = \"UDP\"\n{extra}\n\
             [[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n"
        );
        let loaded = Config::from_str(&text, "lb.toml").expect("valid configuration");
        loaded.config.virtual_servers[0].clone()
    }

    #[test]
    fn a_fwmark_server_is_a_group_named_by_its_mark() {
        let text = "[[virtual_server]]\nfwmark = 5\nprotocol = \"UDP\"\npersistence_timeout = 60\n\
                    match = [\"192.0.2.10:80\", \"192.0.2.11:443\"]\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.1\"\nport = 80\n";
        let loaded = Config::from_str(text, "lb.toml").expect("valid configuration");
        let vs = &loaded.config.virtual_servers[0];
        let spec = service_spec(vs, Vec::new());
        assert_eq!(spec.id, ServiceId::fwmark(5, false));
        assert_eq!(spec.validate(), Ok(()));
        let group = spec.group.expect("a group");
        assert_eq!(group.mark, 5);
        let members: Vec<String> = group.members.iter().map(|m| m.to_string()).collect();
        assert_eq!(members, ["192.0.2.10:80 UDP", "192.0.2.11:443 UDP"]);
        assert_eq!(spec.idle_timeout, default_idle_timeout(Protocol::Udp));
    }

    #[test]
    fn a_fwmark_server_is_gated_by_the_instance_holding_a_match_address() {
        let text = "[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 9\n\
                    priority = 100\nvirtual_ipaddress = [\"192.0.2.11/24\"]\n\
                    [[virtual_server]]\nfwmark = 5\nmatch = [\"192.0.2.10:80\", \"192.0.2.11:443\"]\n\
                    [[virtual_server.real_server]]\naddress = \"10.0.0.1\"\nport = 80\n";
        let loaded = Config::from_str(text, "lb.toml").expect("valid configuration");
        let vs = &loaded.config.virtual_servers[0];
        let gate = gating_instance(&loaded.config, vs).expect("gated");
        assert_eq!(gate.name, "VI_1");
        assert_eq!(attach_interfaces(&loaded.config, vs), ["lo"]);
    }

    #[test]
    fn the_spec_carries_identity_mode_hash_and_timeouts() {
        let vs = virtual_server(
            "lb_kind = \"NAT\"\nlb_algo = \"maglev_src\"\nsnat_address = \"192.0.2.20\"\n\
             persistence_timeout = 300\ntable_size = 251",
        );
        let spec = service_spec(&vs, Vec::new());
        let vip: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            spec.id,
            ServiceId {
                vip,
                port: 53,
                protocol: Protocol::Udp
            }
        );
        assert_eq!(
            spec.mode,
            ForwardMode::Nat {
                snat: Some("192.0.2.20".parse().unwrap())
            }
        );
        assert_eq!(spec.hash, HashMode::Source);
        assert_eq!(spec.table_size, 251);
        assert_eq!(spec.persistence_timeout, Some(Duration::from_secs(300)));
        assert_eq!(spec.idle_timeout, default_idle_timeout(Protocol::Udp));
    }

    #[test]
    fn dr_and_tun_hash_the_five_tuple_by_default() {
        let dr = virtual_server("lb_kind = \"DR\"");
        assert_eq!(forward_mode(&dr), ForwardMode::Dr);
        assert_eq!(hash_mode(dr.lb_algo), HashMode::FiveTuple);
        let tun = virtual_server("lb_kind = \"TUN\"\nlb_algo = \"maglev\"");
        assert_eq!(forward_mode(&tun), ForwardMode::Tun);
        assert_eq!(hash_mode(tun.lb_algo), HashMode::FiveTuple);
    }
}
