//! The IPVS generic netlink payload: commands and their nested attributes, on top of
//! `netlink-packet-core` (attribute framing) and `netlink-packet-generic` (the genl
//! header and family plumbing), which have no IPVS family of their own.
//!
//! Layouts follow `include/uapi/linux/ip_vs.h` and `net/netfilter/ipvs/ip_vs_ctl.c`:
//! addresses are a 16-byte `union nf_inet_addr` (IPv4 in the first 4 bytes), ports are
//! big-endian, every other integer is host order; nests carry no `NLA_F_NESTED` flag (the
//! kernel parses them with the liberal, flag-less parser, and its dumps set none either).

use netlink_packet_core::{
    parse_string, parse_u16, parse_u16_be, parse_u32, parse_u64, parse_u8, DecodeError, DefaultNla,
    Emitable, Nla, NlaBuffer, NlasIterator, Parseable, ParseableParametrized, NLA_TYPE_MASK,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::uapi::{cmd_attr, dest_attr, stats_attr, svc_attr, GENL_NAME, GENL_VERSION};

/// Packets, bytes and connections of a service or destination (`IPVS_*_ATTR_STATS64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    fn fields(&self) -> [(u16, u64); 5] {
        [
            (stats_attr::CONNS, self.conns),
            (stats_attr::INPKTS, self.inpkts),
            (stats_attr::OUTPKTS, self.outpkts),
            (stats_attr::INBYTES, self.inbytes),
            (stats_attr::OUTBYTES, self.outbytes),
        ]
    }

    fn parse(value: &[u8]) -> Result<Stats, DecodeError> {
        let mut s = Stats::default();
        for nla in NlasIterator::new(value) {
            let nla = nla?;
            // 64-bit counters; anything else (IPVS_STATS_ATTR_PAD, rates) is skipped.
            let Ok(v) = parse_u64(nla.value()) else {
                continue;
            };
            match nla.kind() & NLA_TYPE_MASK {
                stats_attr::CONNS => s.conns = v,
                stats_attr::INPKTS => s.inpkts = v,
                stats_attr::OUTPKTS => s.outpkts = v,
                stats_attr::INBYTES => s.inbytes = v,
                stats_attr::OUTBYTES => s.outbytes = v,
                _ => {}
            }
        }
        Ok(s)
    }

    fn emit(&self, buffer: &mut [u8]) {
        let nlas: Vec<U64Nla> = self
            .fields()
            .into_iter()
            .map(|(k, v)| U64Nla(k, v))
            .collect();
        nlas.as_slice().emit(buffer);
    }

    fn len(&self) -> usize {
        self.fields().len() * U64Nla(0, 0).buffer_len()
    }
}

struct U64Nla(u16, u64);

impl Nla for U64Nla {
    fn value_len(&self) -> usize {
        8
    }
    fn kind(&self) -> u16 {
        self.0
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.1.to_ne_bytes());
    }
}

/// An address attribute: 16 bytes, IPv4 in the first 4.
fn emit_addr(buffer: &mut [u8], addr: &[u8; 16]) {
    buffer.copy_from_slice(addr);
}

fn parse_addr(value: &[u8]) -> Result<[u8; 16], DecodeError> {
    if value.len() != 4 && value.len() != 16 {
        return Err(format!(
            "address attribute of {} bytes (4 or 16 expected)",
            value.len()
        )
        .into());
    }
    let mut a = [0u8; 16];
    a[..value.len()].copy_from_slice(value);
    Ok(a)
}

/// One attribute inside `IPVS_CMD_ATTR_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvcAttr {
    Af(u16),
    Protocol(u16),
    Addr([u8; 16]),
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags { flags: u32, mask: u32 },
    Timeout(u32),
    Netmask(u32),
    Stats64(Stats),
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Af(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Addr(_) => 16,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::SchedName(s) => s.len() + 1,
            Self::Flags { .. } => 8,
            Self::Stats64(s) => s.len(),
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Af(_) => svc_attr::AF,
            Self::Protocol(_) => svc_attr::PROTOCOL,
            Self::Addr(_) => svc_attr::ADDR,
            Self::Port(_) => svc_attr::PORT,
            Self::Fwmark(_) => svc_attr::FWMARK,
            Self::SchedName(_) => svc_attr::SCHED_NAME,
            Self::Flags { .. } => svc_attr::FLAGS,
            Self::Timeout(_) => svc_attr::TIMEOUT,
            Self::Netmask(_) => svc_attr::NETMASK,
            Self::Stats64(_) => svc_attr::STATS64,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Af(v) | Self::Protocol(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Port(p) => buffer.copy_from_slice(&p.to_be_bytes()),
            Self::Addr(a) => emit_addr(buffer, a),
            Self::Fwmark(v) | Self::Timeout(v) | Self::Netmask(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            Self::SchedName(s) => {
                buffer[..s.len()].copy_from_slice(s.as_bytes());
                buffer[s.len()] = 0;
            }
            Self::Flags { flags, mask } => {
                buffer[..4].copy_from_slice(&flags.to_ne_bytes());
                buffer[4..8].copy_from_slice(&mask.to_ne_bytes());
            }
            Self::Stats64(s) => s.emit(buffer),
            Self::Other(o) => o.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            svc_attr::AF => Self::Af(parse_u16(v)?),
            svc_attr::PROTOCOL => Self::Protocol(parse_u16(v)?),
            svc_attr::ADDR => Self::Addr(parse_addr(v)?),
            svc_attr::PORT => Self::Port(parse_u16_be(v)?),
            svc_attr::FWMARK => Self::Fwmark(parse_u32(v)?),
            svc_attr::SCHED_NAME => Self::SchedName(parse_string(v)?),
            svc_attr::FLAGS => {
                if v.len() != 8 {
                    return Err(format!("service flags of {} bytes (8 expected)", v.len()).into());
                }
                Self::Flags {
                    flags: parse_u32(&v[..4])?,
                    mask: parse_u32(&v[4..])?,
                }
            }
            svc_attr::TIMEOUT => Self::Timeout(parse_u32(v)?),
            svc_attr::NETMASK => Self::Netmask(parse_u32(v)?),
            svc_attr::STATS64 => Self::Stats64(Stats::parse(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One attribute inside `IPVS_CMD_ATTR_DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr([u8; 16]),
    Port(u16),
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    AddrFamily(u16),
    Stats64(Stats),
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*` (Linux 5.2+).
    TunType(u8),
    /// The GUE tunnel's UDP port (network byte order on the wire).
    TunPort(u16),
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Addr(_) => 16,
            Self::TunType(_) => 1,
            Self::Port(_) | Self::AddrFamily(_) | Self::TunPort(_) | Self::TunFlags(_) => 2,
            Self::FwdMethod(_)
            | Self::Weight(_)
            | Self::UThresh(_)
            | Self::LThresh(_)
            | Self::ActiveConns(_)
            | Self::InactConns(_)
            | Self::PersistConns(_) => 4,
            Self::Stats64(s) => s.len(),
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Addr(_) => dest_attr::ADDR,
            Self::Port(_) => dest_attr::PORT,
            Self::FwdMethod(_) => dest_attr::FWD_METHOD,
            Self::Weight(_) => dest_attr::WEIGHT,
            Self::UThresh(_) => dest_attr::U_THRESH,
            Self::LThresh(_) => dest_attr::L_THRESH,
            Self::ActiveConns(_) => dest_attr::ACTIVE_CONNS,
            Self::InactConns(_) => dest_attr::INACT_CONNS,
            Self::PersistConns(_) => dest_attr::PERSIST_CONNS,
            Self::AddrFamily(_) => dest_attr::ADDR_FAMILY,
            Self::Stats64(_) => dest_attr::STATS64,
            Self::TunType(_) => dest_attr::TUN_TYPE,
            Self::TunPort(_) => dest_attr::TUN_PORT,
            Self::TunFlags(_) => dest_attr::TUN_FLAGS,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Addr(a) => emit_addr(buffer, a),
            Self::Port(p) | Self::TunPort(p) => buffer.copy_from_slice(&p.to_be_bytes()),
            Self::AddrFamily(v) | Self::TunFlags(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::TunType(v) => buffer[0] = *v,
            Self::FwdMethod(v)
            | Self::Weight(v)
            | Self::UThresh(v)
            | Self::LThresh(v)
            | Self::ActiveConns(v)
            | Self::InactConns(v)
            | Self::PersistConns(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Stats64(s) => s.emit(buffer),
            Self::Other(o) => o.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() & NLA_TYPE_MASK {
            dest_attr::ADDR => Self::Addr(parse_addr(v)?),
            dest_attr::PORT => Self::Port(parse_u16_be(v)?),
            dest_attr::FWD_METHOD => Self::FwdMethod(parse_u32(v)?),
            dest_attr::WEIGHT => Self::Weight(parse_u32(v)?),
            dest_attr::U_THRESH => Self::UThresh(parse_u32(v)?),
            dest_attr::L_THRESH => Self::LThresh(parse_u32(v)?),
            dest_attr::ACTIVE_CONNS => Self::ActiveConns(parse_u32(v)?),
            dest_attr::INACT_CONNS => Self::InactConns(parse_u32(v)?),
            dest_attr::PERSIST_CONNS => Self::PersistConns(parse_u32(v)?),
            dest_attr::ADDR_FAMILY => Self::AddrFamily(parse_u16(v)?),
            dest_attr::STATS64 => Self::Stats64(Stats::parse(v)?),
            dest_attr::TUN_TYPE => Self::TunType(parse_u8(v)?),
            dest_attr::TUN_PORT => Self::TunPort(parse_u16_be(v)?),
            dest_attr::TUN_FLAGS => Self::TunFlags(parse_u16(v)?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A first-level attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(a) => a.as_slice().buffer_len(),
            Self::Dest(a) => a.as_slice().buffer_len(),
            Self::TimeoutTcp(_) | Self::TimeoutTcpFin(_) | Self::TimeoutUdp(_) => 4,
            Self::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => cmd_attr::SERVICE,
            Self::Dest(_) => cmd_attr::DEST,
            Self::TimeoutTcp(_) => cmd_attr::TIMEOUT_TCP,
            Self::TimeoutTcpFin(_) => cmd_attr::TIMEOUT_TCP_FIN,
            Self::TimeoutUdp(_) => cmd_attr::TIMEOUT_UDP,
            Self::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Service(a) => a.as_slice().emit(buffer),
            Self::Dest(a) => a.as_slice().emit(buffer),
            Self::TimeoutTcp(v) | Self::TimeoutTcpFin(v) | Self::TimeoutUdp(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            Self::Other(o) => o.emit_value(buffer),
        }
    }
}

fn parse_nested<A>(value: &[u8]) -> Result<Vec<A>, DecodeError>
where
    A: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(value)
        .map(|nla| A::parse(&nla?))
        .collect()
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CmdAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        Ok(match buf.kind() & NLA_TYPE_MASK {
            cmd_attr::SERVICE => Self::Service(parse_nested(buf.value())?),
            cmd_attr::DEST => Self::Dest(parse_nested(buf.value())?),
            cmd_attr::TIMEOUT_TCP => Self::TimeoutTcp(parse_u32(buf.value())?),
            cmd_attr::TIMEOUT_TCP_FIN => Self::TimeoutTcpFin(parse_u32(buf.value())?),
            cmd_attr::TIMEOUT_UDP => Self::TimeoutUdp(parse_u32(buf.value())?),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One IPVS generic netlink message (after the genl header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<CmdAttr>,
}

impl IpvsMessage {
    pub fn service(&self) -> Option<&[SvcAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    pub fn dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Dest(d) => Some(d.as_slice()),
            _ => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs: parse_nested(buf)?,
        })
    }
}
