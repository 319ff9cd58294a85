//! IPVS virtual services and destinations as typed values, and the requests that add,
//! change, delete and list them (built from and read back into [`codec`] attributes).
//!
//! [`codec`]: super::codec

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{
    codec::{CmdAttr, DestAttr, IpvsMessage, Stats, SvcAttr},
    uapi::{cmd, fwd, AF_INET, AF_INET6, SVC_F_PERSISTENT},
};
use crate::dataplane::{Protocol, ServiceId};

/// How IPVS forwards to a destination (`IP_VS_CONN_F_*`; keepalived's `lb_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// NAT (`-m`, masquerading).
    Masq,
    /// TUN (`-i`, IP-in-IP).
    Tunnel,
    /// DR (`-g`, direct routing).
    Route,
    /// Anything else the kernel reports (local node, bypass).
    Other(u32),
}

impl Forward {
    pub fn to_raw(self) -> u32 {
        match self {
            Self::Masq => fwd::MASQ,
            Self::Tunnel => fwd::TUNNEL,
            Self::Route => fwd::DROUTE,
            Self::Other(v) => v,
        }
    }

    pub fn from_raw(v: u32) -> Self {
        match v & fwd::MASK {
            fwd::MASQ => Self::Masq,
            fwd::TUNNEL => Self::Tunnel,
            fwd::DROUTE => Self::Route,
            other => Self::Other(other),
        }
    }

    /// As `ipvsadm -Ln` prints it.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Tunnel => "Tunnel",
            Self::Route => "Route",
            Self::Other(fwd::LOCALNODE) => "Local",
            Self::Other(fwd::BYPASS) => "Bypass",
            Self::Other(_) => "Unknown",
        }
    }
}

/// A TUN destination's tunnel as IPVS holds it (`IPVS_DEST_ATTR_TUN_*`, Linux 5.2+):
/// all zero is IP-in-IP, what kernels without these attributes do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelAttrs {
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`: 0 IP-in-IP, 1 GUE, 2 GRE.
    pub kind: u8,
    /// GUE's UDP port.
    pub port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`: 0 none, 1 checksum, 2 remote checksum.
    pub flags: u16,
}

impl TunnelAttrs {
    /// As `ipvsadm --tun-info` names the type.
    pub fn kind_name(self) -> &'static str {
        match self.kind {
            0 => "ipip",
            1 => "gue",
            2 => "gre",
            _ => "unknown",
        }
    }
}

/// A virtual service as the kernel holds it (what we program, or what a dump returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub id: ServiceId,
    pub scheduler: String,
    /// Persistence timeout in seconds (`IP_VS_SVC_F_PERSISTENT`); None: not persistent.
    pub persistence: Option<u32>,
    /// The persistence netmask as a prefix length (ipvsadm's `-M`; keepalived's
    /// `persistence_granularity`): 32 / 128 is one client address.
    pub persistence_prefix: u8,
    /// Read back only.
    pub stats: Stats,
}

/// A destination (real server) of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestEntry {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    /// A TUN destination's tunnel (IP-in-IP unless set; ignored by other methods).
    pub tunnel: TunnelAttrs,
    /// Connection limits (`-x`, `-y`; keepalived's `uthreshold`, `lthreshold`): 0 none.
    pub u_thresh: u32,
    pub l_thresh: u32,
    /// Read back only.
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub stats: Stats,
}

impl DestEntry {
    pub fn new(addr: IpAddr, port: u16, forward: Forward, weight: u32) -> Self {
        Self {
            addr,
            port,
            forward,
            weight,
            tunnel: TunnelAttrs::default(),
            u_thresh: 0,
            l_thresh: 0,
            active_conns: 0,
            inactive_conns: 0,
            stats: Stats::default(),
        }
    }

    /// With a tunnel of its own (meaningful for [`Forward::Tunnel`]).
    pub fn with_tunnel(mut self, tunnel: TunnelAttrs) -> Self {
        self.tunnel = tunnel;
        self
    }

    /// With connection limits (upper, lower).
    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Self {
        (self.u_thresh, self.l_thresh) = (upper, lower);
        self
    }

    /// The fields we program (a dump's counters left out).
    pub fn same_config(&self, other: &DestEntry) -> bool {
        self.addr == other.addr
            && self.port == other.port
            && self.forward == other.forward
            && self.weight == other.weight
            && self.u_thresh == other.u_thresh
            && self.l_thresh == other.l_thresh
            && (self.forward != Forward::Tunnel || self.tunnel == other.tunnel)
    }
}

impl fmt::Display for DestEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Why an attribute set is not a service or destination we can manage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("{what} lacks the {attr} attribute")]
    Missing {
        what: &'static str,
        attr: &'static str,
    },
    #[error("address family {0} (neither AF_INET nor AF_INET6)")]
    Family(u16),
    #[error("IP protocol {0} (only TCP, UDP and SCTP services are managed)")]
    Protocol(u16),
    #[error("firewall-mark service {0} (marks above 16777215 are not managed)")]
    Fwmark(u32),
}

fn family_of(a: IpAddr) -> u16 {
    if a.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

fn addr_bytes(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

fn addr_from(bytes: &[u8; 16], family: u16) -> Result<IpAddr, ModelError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*bytes))),
        other => Err(ModelError::Family(other)),
    }
}

/// The attributes naming a service (what every destination command and a delete need).
pub fn service_key_attrs(id: &ServiceId) -> Vec<SvcAttr> {
    // A firewall-mark service is named by its family and mark alone (the kernel ignores
    // protocol, address and port then).
    if let Some(mark) = id.fwmark_of() {
        return vec![SvcAttr::Af(family_of(id.vip)), SvcAttr::Fwmark(mark)];
    }
    vec![
        SvcAttr::Af(family_of(id.vip)),
        SvcAttr::Protocol(id.protocol.number().into()),
        SvcAttr::Addr(addr_bytes(id.vip)),
        SvcAttr::Port(id.port),
    ]
}

/// One client address: 32 bits for IPv4, 128 for IPv6.
fn full_prefix(vip: IpAddr) -> u8 {
    if vip.is_ipv4() {
        32
    } else {
        128
    }
}

/// IPVS_SVC_ATTR_NETMASK: IPv4 the mask itself in network byte order (as ipvsadm sends
/// `inet_aton`'s result), IPv6 the prefix length.
pub fn netmask_attr(vip: IpAddr, prefix: u8) -> u32 {
    if vip.is_ipv4() {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0);
        u32::from_ne_bytes(mask.to_be_bytes())
    } else {
        u32::from(prefix.min(128))
    }
}

/// The prefix length of a netmask attribute read back.
fn prefix_of(vip: IpAddr, attr: u32) -> u8 {
    if vip.is_ipv4() {
        u32::from_be_bytes(attr.to_ne_bytes()).leading_ones() as u8
    } else {
        attr.min(128) as u8
    }
}

impl ServiceEntry {
    pub fn new(id: ServiceId, scheduler: &str, persistence: Option<u32>) -> Self {
        Self {
            id,
            scheduler: scheduler.to_string(),
            persistence,
            persistence_prefix: full_prefix(id.vip),
            stats: Stats::default(),
        }
    }

    /// Clients of one `/prefix` network share a persistence template.
    pub fn with_persistence_prefix(mut self, prefix: u8) -> Self {
        self.persistence_prefix = prefix.min(full_prefix(self.id.vip));
        self
    }

    /// The fields we program (a dump's counters left out).
    pub fn same_config(&self, other: &ServiceEntry) -> bool {
        self.id == other.id
            && self.scheduler == other.scheduler
            && self.persistence == other.persistence
            && (self.persistence.is_none() || self.persistence_prefix == other.persistence_prefix)
    }

    /// Every attribute `IPVS_CMD_NEW_SERVICE` / `SET_SERVICE` need (the kernel refuses a
    /// full service without scheduler, flags, timeout and netmask).
    pub fn to_attrs(&self) -> Vec<SvcAttr> {
        let mut attrs = service_key_attrs(&self.id);
        let (flags, timeout) = match self.persistence {
            Some(t) => (SVC_F_PERSISTENT, t),
            None => (0, 0),
        };
        let netmask = netmask_attr(self.id.vip, self.persistence_prefix);
        attrs.extend([
            SvcAttr::SchedName(self.scheduler.clone()),
            SvcAttr::Flags {
                flags,
                mask: u32::MAX,
            },
            SvcAttr::Timeout(timeout),
            SvcAttr::Netmask(netmask),
        ]);
        attrs
    }

    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<Self, ModelError> {
        let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
        let (mut sched, mut flags, mut timeout, mut stats) = (None, 0, 0, Stats::default());
        let mut netmask = None;
        for a in attrs {
            match a {
                SvcAttr::Af(v) => af = Some(*v),
                SvcAttr::Protocol(v) => proto = Some(*v),
                SvcAttr::Addr(v) => addr = Some(*v),
                SvcAttr::Port(v) => port = Some(*v),
                SvcAttr::Fwmark(v) => fwmark = Some(*v),
                SvcAttr::SchedName(v) => sched = Some(v.clone()),
                SvcAttr::Flags { flags: f, .. } => flags = *f,
                SvcAttr::Timeout(v) => timeout = *v,
                SvcAttr::Stats64(s) => stats = *s,
                SvcAttr::Netmask(v) => netmask = Some(*v),
                SvcAttr::Other(_) => {}
            }
        }
        let missing = |attr| ModelError::Missing {
            what: "service",
            attr,
        };
        let af = af.ok_or(missing("AF"))?;
        if let Some(mark) = fwmark.filter(|m| *m != 0) {
            if mark > ServiceId::FWMARK_MAX {
                return Err(ModelError::Fwmark(mark));
            }
            if af != AF_INET && af != AF_INET6 {
                return Err(ModelError::Family(af));
            }
            let id = ServiceId::fwmark(mark, af == AF_INET6);
            return Ok(ServiceEntry {
                id,
                scheduler: sched.ok_or(missing("SCHED_NAME"))?,
                persistence: (flags & SVC_F_PERSISTENT != 0).then_some(timeout),
                persistence_prefix: netmask.map_or(full_prefix(id.vip), |m| prefix_of(id.vip, m)),
                stats,
            });
        }
        let proto = proto.ok_or(missing("PROTOCOL"))?;
        let protocol = u8::try_from(proto)
            .ok()
            .and_then(Protocol::from_number)
            .ok_or(ModelError::Protocol(proto))?;
        let vip = addr_from(&addr.ok_or(missing("ADDR"))?, af)?;
        Ok(ServiceEntry {
            id: ServiceId {
                vip,
                port: port.ok_or(missing("PORT"))?,
                protocol,
            },
            scheduler: sched.ok_or(missing("SCHED_NAME"))?,
            persistence: (flags & SVC_F_PERSISTENT != 0).then_some(timeout),
            persistence_prefix: netmask.map_or(full_prefix(vip), |m| prefix_of(vip, m)),
            stats,
        })
    }
}

impl DestEntry {
    /// Every attribute `IPVS_CMD_NEW_DEST` / `SET_DEST` need.
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let mut attrs = vec![
            DestAttr::Addr(addr_bytes(self.addr)),
            DestAttr::Port(self.port),
            DestAttr::FwdMethod(self.forward.to_raw()),
            DestAttr::Weight(self.weight),
            DestAttr::UThresh(self.u_thresh),
            DestAttr::LThresh(self.l_thresh),
            DestAttr::AddrFamily(family_of(self.addr)),
        ];
        // Only when not IP-in-IP: kernels before 5.2 know nothing of these.
        if self.forward == Forward::Tunnel && self.tunnel != TunnelAttrs::default() {
            attrs.extend([
                DestAttr::TunType(self.tunnel.kind),
                DestAttr::TunPort(self.tunnel.port),
                DestAttr::TunFlags(self.tunnel.flags),
            ]);
        }
        attrs
    }

    /// `service_family`: the family of a destination that does not say its own.
    pub fn from_attrs(attrs: &[DestAttr], service_family: u16) -> Result<Self, ModelError> {
        let mut d = DestEntry::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, Forward::Masq, 0);
        let (mut addr, mut port, mut family) = (None, None, service_family);
        for a in attrs {
            match a {
                DestAttr::Addr(v) => addr = Some(*v),
                DestAttr::Port(v) => port = Some(*v),
                DestAttr::AddrFamily(v) => family = *v,
                DestAttr::FwdMethod(v) => d.forward = Forward::from_raw(*v),
                DestAttr::Weight(v) => d.weight = *v,
                DestAttr::UThresh(v) => d.u_thresh = *v,
                DestAttr::LThresh(v) => d.l_thresh = *v,
                DestAttr::TunType(v) => d.tunnel.kind = *v,
                DestAttr::TunPort(v) => d.tunnel.port = *v,
                DestAttr::TunFlags(v) => d.tunnel.flags = *v,
                DestAttr::ActiveConns(v) => d.active_conns = *v,
                DestAttr::InactConns(v) => d.inactive_conns = *v,
                DestAttr::Stats64(s) => d.stats = *s,
                _ => {}
            }
        }
        let missing = |attr| ModelError::Missing {
            what: "destination",
            attr,
        };
        d.addr = addr_from(&addr.ok_or(missing("ADDR"))?, family)?;
        d.port = port.ok_or(missing("PORT"))?;
        Ok(d)
    }
}

/// The family a service's attributes name (for its destinations).
pub fn service_family(id: &ServiceId) -> u16 {
    family_of(id.vip)
}

/// The requests of the IPVS family that the manager sends.
pub mod request {
    use super::*;

    fn msg(cmd: u8, attrs: Vec<CmdAttr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    pub fn new_service(s: &ServiceEntry) -> IpvsMessage {
        msg(cmd::NEW_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
    }

    pub fn set_service(s: &ServiceEntry) -> IpvsMessage {
        msg(cmd::SET_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
    }

    pub fn del_service(id: &ServiceId) -> IpvsMessage {
        msg(
            cmd::DEL_SERVICE,
            vec![CmdAttr::Service(service_key_attrs(id))],
        )
    }

    /// A dump of every service.
    pub fn get_services() -> IpvsMessage {
        msg(cmd::GET_SERVICE, Vec::new())
    }

    pub fn new_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
        dest_msg(cmd::NEW_DEST, id, d.to_attrs())
    }

    pub fn set_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
        dest_msg(cmd::SET_DEST, id, d.to_attrs())
    }

    pub fn del_dest(id: &ServiceId, addr: IpAddr, port: u16) -> IpvsMessage {
        dest_msg(
            cmd::DEL_DEST,
            id,
            vec![
                DestAttr::Addr(addr_bytes(addr)),
                DestAttr::Port(port),
                DestAttr::AddrFamily(family_of(addr)),
            ],
        )
    }

    /// The connection timeouts, in seconds (`ipvsadm --set TCP TCPFIN UDP`).
    pub fn set_timeouts(tcp: u32, tcp_fin: u32, udp: u32) -> IpvsMessage {
        msg(
            cmd::SET_CONFIG,
            vec![
                CmdAttr::TimeoutTcp(tcp),
                CmdAttr::TimeoutTcpFin(tcp_fin),
                CmdAttr::TimeoutUdp(udp),
            ],
        )
    }

    /// A dump of one service's destinations.
    pub fn get_dests(id: &ServiceId) -> IpvsMessage {
        msg(cmd::GET_DEST, vec![CmdAttr::Service(service_key_attrs(id))])
    }

    fn dest_msg(cmd: u8, id: &ServiceId, dest: Vec<DestAttr>) -> IpvsMessage {
        msg(
            cmd,
            vec![CmdAttr::Service(service_key_attrs(id)), CmdAttr::Dest(dest)],
        )
    }
}
