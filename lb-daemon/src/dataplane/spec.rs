//! What user space asks the data plane for: a virtual service and its backends, with
//! everything resolved (MACs, egress interface), and the rules a spec must satisfy.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

pub use lb_common::Protocol;
use lb_common::{mode, service_flags, Addr, ServiceKey, FAMILY_V4, FAMILY_V6};

use super::maglev;

/// keepalived's `lb_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// Direct routing: rewrite the destination MAC.
    Dr,
    /// IP-in-IP (or IPv6) tunnel to the backend.
    Tun,
    /// Destination NAT to the backend's address and port; replies are translated back.
    /// With `snat`, the client's address is replaced too (full-NAT), so replies come
    /// back to this node whatever the reals' routing.
    Nat { snat: Option<IpAddr> },
}

impl ForwardMode {
    pub fn is_nat(self) -> bool {
        matches!(self, ForwardMode::Nat { .. })
    }
}

/// Which fields pick the Maglev slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMode {
    /// `maglev`: the 5-tuple.
    FiveTuple,
    /// `maglev_src`: the source address only (client persistence, like IPVS `sh`).
    Source,
}

/// A virtual service: VIP, port (0 = all ports) and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl ServiceId {
    pub fn key(&self) -> ServiceKey {
        let (addr, family) = encode_addr(self.vip);
        ServiceKey {
            addr,
            port: self.port.to_be(),
            proto: self.protocol.number(),
            family,
        }
    }

    /// The largest mark a firewall-mark service may have: its identity is an address
    /// of `0.0.0.0/8` (IPv4) or `0:0::/32`-ish `0:N::` (IPv6), never a VIP.
    pub const FWMARK_MAX: u32 = 0x00ff_ffff;

    /// keepalived's `virtual_server fwmark N` on IPVS, named as IPVS names a mark
    /// service's persistence templates: the mark as address (`0.0.0.N`, or `0:N::` for
    /// an IPv6 service), port 0, TCP (the kernel keeps no protocol for a mark service).
    /// `mark` must be 1..=[`Self::FWMARK_MAX`].
    pub fn fwmark(mark: u32, ipv6: bool) -> ServiceId {
        let vip = if ipv6 {
            let w = mark.to_be_bytes();
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&w);
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::from(mark))
        };
        ServiceId {
            vip,
            port: 0,
            protocol: Protocol::Tcp,
        }
    }

    /// The mark, when this names a firewall-mark service (see [`Self::fwmark`]).
    pub fn fwmark_of(&self) -> Option<u32> {
        if self.port != 0 || self.protocol != Protocol::Tcp {
            return None;
        }
        let mark = match self.vip {
            IpAddr::V4(a) => u32::from(a),
            IpAddr::V6(a) => {
                let b = a.octets();
                if b[4..].iter().any(|&x| x != 0) {
                    return None;
                }
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            }
        };
        (1..=Self::FWMARK_MAX).contains(&mark).then_some(mark)
    }

    pub fn from_key(key: &ServiceKey) -> Option<Self> {
        Some(ServiceId {
            vip: decode_addr(&key.addr, key.family)?,
            port: u16::from_be(key.port),
            protocol: Protocol::from_number(key.proto)?,
        })
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(mark) = self.fwmark_of() {
            let family = if self.vip.is_ipv4() { "IPv4" } else { "IPv6" };
            return write!(f, "fwmark {mark} {family}");
        }
        match self.vip {
            IpAddr::V4(a) => write!(f, "{a}:{} {}", self.port, self.protocol),
            IpAddr::V6(a) => write!(f, "[{a}]:{} {}", self.port, self.protocol),
        }
    }
}

/// How to reach a backend from this node: resolved by user space (see `neigh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    pub ifindex: u32,
    /// MAC of the next hop (the backend itself, or its gateway).
    pub next_hop_mac: [u8; 6],
    /// MAC of the egress interface.
    pub src_mac: [u8; 6],
    /// The node's address on the egress interface, in the backend's family: the outer
    /// source of tunnel packets. Required for TUN.
    pub tunnel_src: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub addr: IpAddr,
    pub port: u16,
    /// Relative share of new flows; 0 = no new flows, established ones continue.
    pub weight: u32,
    pub egress: Egress,
}

impl BackendSpec {
    /// The identity Maglev hashes: the same on every node for the same backend.
    pub fn identity(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub id: ServiceId,
    pub mode: ForwardMode,
    pub hash: HashMode,
    /// Maglev table size M (one of `maglev::TABLE_SIZES`).
    pub table_size: u32,
    /// keepalived's `persistence_timeout`: a client sticks to its backend, whatever its
    /// source port, until it has been idle this long.
    pub persistence_timeout: Option<Duration>,
    /// keepalived's `persistence_granularity` as a prefix length: clients in the same
    /// network share a persistence entry (`None`: the whole address).
    pub persistence_prefix: Option<u8>,
    /// Without persistence: a flow idle this long is re-hashed (IPVS defaults: 900 s TCP,
    /// 300 s UDP; see [`default_idle_timeout`]).
    pub idle_timeout: Duration,
    pub backends: Vec<BackendSpec>,
    /// A group service (keepalived's `virtual_server fwmark N` on XDP); None: the
    /// service matches `id` alone.
    pub group: Option<ServiceGroup>,
}

/// What makes a service a group (its `id` is then [`ServiceId::fwmark`]): (address,
/// port, protocol)s matched as one service (one Maglev table, one set of counters), and with persistence one
/// template per client for all of them (docs/dataplane.md, "Group services").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGroup {
    /// keepalived's fwmark N: names the group's persistence templates (never 0).
    pub mark: u32,
    /// The (address, port, protocol)s matched besides `id`'s own, of `id`'s family.
    /// A firewall-mark `id` ([`ServiceId::fwmark`]) is no key: the members alone match.
    pub members: Vec<ServiceId>,
}

impl ServiceSpec {
    /// The keys of `lb_services` the group adds besides `id.key()`.
    pub fn member_keys(&self) -> Vec<ServiceKey> {
        self.group
            .iter()
            .flat_map(|g| &g.members)
            .map(ServiceId::key)
            .collect()
    }

    /// The mark written to [`ServiceInfo::group`](lb_common::ServiceInfo::group).
    pub fn group_mark(&self) -> u32 {
        self.group.as_ref().map_or(0, |g| g.mark)
    }
}

/// IPVS's established-TCP and UDP timeouts.
pub fn default_idle_timeout(protocol: Protocol) -> Duration {
    match protocol {
        Protocol::Tcp | Protocol::Sctp => Duration::from_secs(900),
        Protocol::Udp => Duration::from_secs(300),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("service {service}: {source}")]
    Maglev {
        service: ServiceId,
        #[source]
        source: maglev::MaglevError,
    },
    #[error("service {service}: backend {backend} is IPv{got} but direct routing (DR) needs the VIP's family IPv{want}; use a backend of the same family or lb_kind TUN")]
    DrFamily {
        service: ServiceId,
        backend: IpAddr,
        got: u8,
        want: u8,
    },
    #[error("service {service}: backend {backend} is IPv4, but an IPv6 VIP can only be tunnelled to IPv6 backends (IPv6-in-IPv4 is not supported)")]
    TunFamily { service: ServiceId, backend: IpAddr },
    #[error("service {service}: backend {backend} needs a tunnel source address (the node's IPv{family} address on interface index {ifindex}); add one to that interface")]
    NoTunnelSource {
        service: ServiceId,
        backend: IpAddr,
        family: u8,
        ifindex: u32,
    },
    #[error("service {service}: backend {backend}:{port} is listed twice; merge the entries")]
    DuplicateBackend {
        service: ServiceId,
        backend: IpAddr,
        port: u16,
    },
    #[error("service {service}: real server {backend} is not of the VIP's family; NAT translates within one family (IPv4 to IPv4, IPv6 to IPv6)")]
    NatFamily { service: ServiceId, backend: IpAddr },
    #[error("service {service}: snat_address {snat} is not of the VIP's family")]
    SnatFamily { service: ServiceId, snat: IpAddr },
    #[error("service {service}: a group service is named by its mark (ServiceId::fwmark({mark})), and marks are 1..=16777215")]
    GroupMark { service: ServiceId, mark: u32 },
    #[error("service {service}: group member {member} is not of the service's family; a group matches addresses of one family")]
    GroupFamily { service: ServiceId, member: IpAddr },
    #[error("service {service}: group member {member}:{port} is listed twice; list each address and port once")]
    DuplicateMember {
        service: ServiceId,
        member: IpAddr,
        port: u16,
    },
    #[error("service {service}: timeout {seconds}s is out of range (1..={max}s)")]
    Timeout {
        service: ServiceId,
        seconds: u64,
        max: u64,
    },
}

impl ServiceSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let service = self.id;
        if !maglev::TABLE_SIZES.contains(&self.table_size) {
            return Err(SpecError::Maglev {
                service,
                source: maglev::MaglevError::UnsupportedTableSize {
                    size: self.table_size,
                },
            });
        }
        let timeout = self.timeout().as_secs();
        if timeout == 0 || timeout > u32::MAX as u64 {
            return Err(SpecError::Timeout {
                service,
                seconds: timeout,
                max: u32::MAX as u64,
            });
        }
        if let ForwardMode::Nat { snat: Some(snat) } = self.mode {
            if snat.is_ipv4() != self.id.vip.is_ipv4() {
                return Err(SpecError::SnatFamily { service, snat });
            }
        }
        if let Some(g) = &self.group {
            if self.id.fwmark_of() != Some(g.mark) {
                return Err(SpecError::GroupMark {
                    service,
                    mark: g.mark,
                });
            }
            let mut seen = std::collections::HashSet::from([self.id]);
            for m in &g.members {
                let (member, port) = (m.vip, m.port);
                if member.is_ipv4() != self.id.vip.is_ipv4() {
                    return Err(SpecError::GroupFamily { service, member });
                }
                if !seen.insert(*m) {
                    return Err(SpecError::DuplicateMember {
                        service,
                        member,
                        port,
                    });
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for b in &self.backends {
            if !seen.insert((b.addr, b.port)) {
                return Err(SpecError::DuplicateBackend {
                    service,
                    backend: b.addr,
                    port: b.port,
                });
            }
            self.validate_family(b)?;
        }
        Ok(())
    }

    fn validate_family(&self, b: &BackendSpec) -> Result<(), SpecError> {
        let service = self.id;
        match self.mode {
            ForwardMode::Dr if b.addr.is_ipv4() != self.id.vip.is_ipv4() => {
                Err(SpecError::DrFamily {
                    service,
                    backend: b.addr,
                    got: family_number(b.addr),
                    want: family_number(self.id.vip),
                })
            }
            ForwardMode::Nat { .. } if b.addr.is_ipv4() != self.id.vip.is_ipv4() => {
                Err(SpecError::NatFamily {
                    service,
                    backend: b.addr,
                })
            }
            ForwardMode::Tun if self.id.vip.is_ipv6() && b.addr.is_ipv4() => {
                Err(SpecError::TunFamily {
                    service,
                    backend: b.addr,
                })
            }
            ForwardMode::Tun if !matches!(b.egress.tunnel_src, Some(src) if src.is_ipv4() == b.addr.is_ipv4()) => {
                Err(SpecError::NoTunnelSource {
                    service,
                    backend: b.addr,
                    family: family_number(b.addr),
                    ifindex: b.egress.ifindex,
                })
            }
            _ => Ok(()),
        }
    }

    /// The client-address bits a persistence entry ignores (in `flags`, see
    /// `service_flags::PERSIST_HOST_BITS_SHIFT`).
    pub fn persist_host_bits(&self) -> u32 {
        let total: u32 = if self.id.vip.is_ipv4() { 32 } else { 128 };
        match (self.persistence_timeout, self.persistence_prefix) {
            (Some(_), Some(p)) => total.saturating_sub(u32::from(p)),
            _ => 0,
        }
    }

    /// The connection-table timeout the program applies.
    pub fn timeout(&self) -> Duration {
        self.persistence_timeout.unwrap_or(self.idle_timeout)
    }

    pub fn flags(&self) -> u32 {
        let mut flags = match self.mode {
            ForwardMode::Dr => mode::DR,
            ForwardMode::Tun => mode::TUN,
            ForwardMode::Nat { snat: None } => mode::NAT,
            ForwardMode::Nat { snat: Some(_) } => mode::NAT | service_flags::SNAT,
        };
        if self.hash == HashMode::Source {
            flags |= service_flags::HASH_SRC;
        }
        if self.persistence_timeout.is_some() {
            flags |= service_flags::PERSISTENT;
            flags |= (self.persist_host_bits().min(0xff)) << service_flags::PERSIST_HOST_BITS_SHIFT;
        }
        flags
    }
}

fn family_number(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

/// An address as the program stores it: network byte order words and a family tag.
pub fn encode_addr(a: IpAddr) -> (Addr, u8) {
    match a {
        IpAddr::V4(v4) => ([u32::from_ne_bytes(v4.octets()), 0, 0, 0], FAMILY_V4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut words = [0u32; 4];
            for (i, w) in words.iter_mut().enumerate() {
                *w = u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            }
            (words, FAMILY_V6)
        }
    }
}

pub fn decode_addr(addr: &Addr, family: u8) -> Option<IpAddr> {
    match family {
        FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::from(addr[0].to_ne_bytes()))),
        FAMILY_V6 => {
            let mut o = [0u8; 16];
            for (i, w) in addr.iter().enumerate() {
                o[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(src: Option<&str>) -> Egress {
        Egress {
            ifindex: 2,
            next_hop_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            tunnel_src: src.map(|s| s.parse().unwrap()),
        }
    }

    fn spec(vip: &str, mode: ForwardMode, backends: &[(&str, Option<&str>)]) -> ServiceSpec {
        ServiceSpec {
            id: ServiceId {
                vip: vip.parse().unwrap(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            mode,
            hash: HashMode::FiveTuple,
            table_size: 251,
            persistence_timeout: None,
            persistence_prefix: None,
            group: None,
            idle_timeout: default_idle_timeout(Protocol::Tcp),
            backends: backends
                .iter()
                .map(|(a, src)| BackendSpec {
                    addr: a.parse().unwrap(),
                    port: 80,
                    weight: 1,
                    egress: egress(*src),
                })
                .collect(),
        }
    }

    #[test]
    fn addresses_round_trip_in_network_order() {
        for s in ["192.0.2.1", "2001:db8::1", "::ffff:1.2.3.4"] {
            let a: IpAddr = s.parse().unwrap();
            let (words, family) = encode_addr(a);
            assert_eq!(decode_addr(&words, family), Some(a));
        }
        let (words, _) = encode_addr("10.0.0.1".parse().unwrap());
        assert_eq!(words[0].to_ne_bytes(), [10, 0, 0, 1]);
    }

    #[test]
    fn service_key_is_network_order() {
        let id = ServiceId {
            vip: "10.0.0.1".parse().unwrap(),
            port: 80,
            protocol: Protocol::Udp,
        };
        let key = id.key();
        assert_eq!(key.port.to_ne_bytes(), [0, 80]);
        assert_eq!(key.proto, 17);
        assert_eq!(ServiceId::from_key(&key), Some(id));
    }

    #[test]
    fn family_rules() {
        use ForwardMode::*;
        assert!(spec("10.0.0.1", Dr, &[("10.0.0.2", None)])
            .validate()
            .is_ok());
        assert!(matches!(
            spec("10.0.0.1", Dr, &[("2001:db8::2", None)]).validate(),
            Err(SpecError::DrFamily { .. })
        ));
        assert!(
            spec("10.0.0.1", Tun, &[("2001:db8::2", Some("2001:db8::1"))])
                .validate()
                .is_ok()
        );
        assert!(matches!(
            spec("2001:db8::1", Tun, &[("10.0.0.2", Some("10.0.0.1"))]).validate(),
            Err(SpecError::TunFamily { .. })
        ));
        assert!(matches!(
            spec("10.0.0.1", Tun, &[("10.0.0.2", Some("2001:db8::1"))]).validate(),
            Err(SpecError::NoTunnelSource { .. })
        ));
        assert!(matches!(
            spec("10.0.0.1", Dr, &[("10.0.0.2", None), ("10.0.0.2", None)]).validate(),
            Err(SpecError::DuplicateBackend { .. })
        ));
        let mut bad_size = spec("10.0.0.1", Dr, &[]);
        bad_size.table_size = 1000;
        let err = bad_size.validate().unwrap_err().to_string();
        assert!(err.contains("1000"), "{err}");
    }

    #[test]
    fn nat_rules_and_flags() {
        let nat = ForwardMode::Nat { snat: None };
        assert!(spec("10.0.0.1", nat, &[("10.0.0.2", None)])
            .validate()
            .is_ok());
        assert!(matches!(
            spec("10.0.0.1", nat, &[("2001:db8::2", None)]).validate(),
            Err(SpecError::NatFamily { .. })
        ));
        let full = ForwardMode::Nat {
            snat: Some("2001:db8::9".parse().unwrap()),
        };
        assert!(matches!(
            spec("10.0.0.1", full, &[("10.0.0.2", None)]).validate(),
            Err(SpecError::SnatFamily { .. })
        ));
        assert_eq!(spec("10.0.0.1", nat, &[]).flags(), mode::NAT);
        let full = ForwardMode::Nat {
            snat: Some("10.0.0.9".parse().unwrap()),
        };
        assert_eq!(
            spec("10.0.0.1", full, &[]).flags(),
            mode::NAT | service_flags::SNAT
        );
    }

    #[test]
    fn fwmark_services_are_named_by_ipvs_template_addresses() {
        let v4 = ServiceId::fwmark(1, false);
        assert_eq!(v4.vip, "0.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((v4.port, v4.fwmark_of()), (0, Some(1)));
        assert_eq!(v4.to_string(), "fwmark 1 IPv4");
        let v6 = ServiceId::fwmark(0x1234, true);
        assert_eq!(v6.vip, "0:1234::".parse::<IpAddr>().unwrap());
        assert_eq!(v6.fwmark_of(), Some(0x1234));
        assert_eq!(v6.to_string(), "fwmark 4660 IPv6");
        // Address services are never taken for marks.
        for (vip, port) in [("10.0.0.1", 0), ("0.0.0.1", 80), ("2001:db8::1", 0)] {
            let id = ServiceId {
                vip: vip.parse().unwrap(),
                port,
                protocol: Protocol::Tcp,
            };
            assert_eq!(id.fwmark_of(), None, "{vip}:{port}");
        }
    }

    #[test]
    fn group_members_are_keys_of_the_services_protocol() {
        let mut s = spec("10.0.0.1", ForwardMode::Dr, &[("10.0.0.2", None)]);
        assert!(s.member_keys().is_empty());
        assert_eq!(s.group_mark(), 0);
        s.id = ServiceId::fwmark(7, false);
        s.group = Some(ServiceGroup {
            mark: 7,
            members: vec![ServiceId {
                vip: "10.0.0.1".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
            }],
        });
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.group_mark(), 7);
        let want = ServiceId {
            vip: "10.0.0.1".parse().unwrap(),
            port: 443,
            protocol: Protocol::Tcp,
        };
        assert_eq!(s.member_keys(), vec![want.key()]);
    }

    #[test]
    fn group_rules() {
        let mut base = spec("10.0.0.1", ForwardMode::Dr, &[("10.0.0.2", None)]);
        base.id = ServiceId::fwmark(1, false);
        let with = |mark: u32, members: &[(&str, u16)]| {
            let mut s = base.clone();
            s.group = Some(ServiceGroup {
                mark,
                members: members
                    .iter()
                    .map(|(a, p)| ServiceId {
                        vip: a.parse().unwrap(),
                        port: *p,
                        protocol: Protocol::Tcp,
                    })
                    .collect(),
            });
            s.validate()
        };
        assert_eq!(
            with(2, &[("10.0.0.1", 443)]),
            Err(SpecError::GroupMark {
                service: base.id,
                mark: 2
            })
        );
        assert!(matches!(
            with(1, &[("2001:db8::1", 443)]),
            Err(SpecError::GroupFamily { .. })
        ));
        assert!(matches!(
            with(1, &[("10.0.0.3", 443), ("10.0.0.3", 443)]),
            Err(SpecError::DuplicateMember { port: 443, .. })
        ));
    }

    #[test]
    fn flags_encode_mode_hash_and_persistence() {
        let mut s = spec("10.0.0.1", ForwardMode::Tun, &[]);
        assert_eq!(s.flags(), mode::TUN);
        s.hash = HashMode::Source;
        s.persistence_timeout = Some(Duration::from_secs(60));
        assert_eq!(
            s.flags(),
            mode::TUN | service_flags::HASH_SRC | service_flags::PERSISTENT
        );
        assert_eq!(s.timeout(), Duration::from_secs(60));
    }
}
