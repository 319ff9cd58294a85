//! VRRP raw sockets (IP protocol 112) on one interface: IPv4 or IPv6, multicast or unicast.
//!
//! One [`VrrpSocket`] both receives and sends. What goes on the wire matches keepalived 2.2.7
//! (`open_vrrp_read_socket`, `open_vrrp_send_socket`, `vrrp_build_ip4`, `vrrp_send_pkt` in
//! `keepalived/vrrp/vrrp.c`, the `if_setsockopt_*` helpers in `vrrp_if.c`), checked against
//! captures of its adverts:
//!
//! - IPv4: the IP header is ours (IP_HDRINCL, as keepalived does): TOS 0xc0 (network
//!   control), TTL 255, no DF, an IP ID counting up from 1 and the configured source (primary
//!   address or `unicast_src_ip`) whatever routing would pick. The kernel fills the header
//!   checksum.
//! - IPv6: traffic class 0xc0, hop limit 255, source and interface given per packet
//!   (IPV6_PKTINFO). The kernel computes the VRRP checksum on send and checks it on receive
//!   (IPV6_CHECKSUM at offset 6): adverts with a bad checksum never reach us.
//! - Multicast sends use MSG_DONTROUTE (the group is link-local); unicast ones may be routed.
//!
//! Receive filtering, also as keepalived: the socket is bound to its interface
//! (SO_BINDTODEVICE); a multicast socket is bound to its group, so unicast VRRP to one of our
//! addresses is not seen, and a unicast one to its source address, so only packets to us are;
//! IP(V6)_MULTICAST_ALL is off, so only groups this socket joined are delivered. Multicast
//! loop is off: a socket never hears its own adverts.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use nix::sys::socket::{
    bind, recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 VRRP group, 224.0.0.18.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 VRRP group, ff02::12.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit of every advert: receivers drop multicast adverts that crossed a router.
pub const VRRP_TTL: u8 = 255;
/// IPv4 TOS / IPv6 traffic class of adverts: precedence "internetwork control" (DSCP CS6).
pub const VRRP_TOS: u8 = 0xc0;

const IPV4_HEADER_LEN: usize = 20;
/// Where the checksum sits in a VRRP message (for IPV6_CHECKSUM).
const VRRP_CHECKSUM_OFFSET: libc::c_int = 6;
/// Receive buffer: any IP datagram fits, so none is truncated.
const RECV_BUF_LEN: usize = 65_535;

/// One received VRRP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: IpAddr,
    /// The IP destination: the group, or our address when unicast.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
    /// Interface the packet arrived on.
    pub ifindex: u32,
    /// The VRRP message, without IP header.
    pub payload: Vec<u8>,
}

/// What a [`VrrpSocket`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    pub interface: String,
    pub family_v6: bool,
    /// Source of our adverts: the interface's primary address (IPv6: its link-local
    /// address) or `unicast_src_ip`. A unicast socket only receives packets sent to it.
    pub src: IpAddr,
    /// The group to join ([`VRRP_GROUP_V4`] / [`VRRP_GROUP_V6`] unless configured
    /// otherwise); `None` = unicast peers.
    pub multicast_group: Option<IpAddr>,
}

/// A raw VRRP socket bound to one interface, registered with the tokio reactor.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<OwnedFd>,
    cfg: SocketConfig,
    ifindex: u32,
    /// Last IPv4 ID sent (keepalived numbers its adverts 1, 2, ... and skips 0).
    ip_id: AtomicU16,
}

impl VrrpSocket {
    /// Opens a raw IPPROTO_VRRP socket bound to the interface (SO_BINDTODEVICE), TTL / hop
    /// limit 255, multicast loop off, multicast interface set and group joined when
    /// multicast. IPv6: IPV6_CHECKSUM at offset 6, IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO.
    /// IPv4: IP_HDRINCL (we write the header), IP_PKTINFO for the arrival interface.
    ///
    /// The socket lives in the calling thread's network namespace. Must be called inside a
    /// tokio runtime (or with one entered). Errors name the interface and what failed.
    pub fn open(cfg: &SocketConfig) -> io::Result<Self> {
        check_config(cfg)?;
        let ifindex = interface_index(&cfg.interface)?;
        let fd = raw_socket(cfg.family_v6).map_err(|e| context(e, cfg, "socket()"))?;
        let setup = if cfg.family_v6 {
            setup_v6(&fd, cfg, ifindex)
        } else {
            setup_v4(&fd, cfg, ifindex)
        };
        setup.map_err(|e| context(e, cfg, "setup"))?;
        let fd = register(fd).map_err(|e| context(e, cfg, "tokio registration"))?;
        Ok(VrrpSocket {
            fd,
            cfg: cfg.clone(),
            ifindex,
            ip_id: AtomicU16::new(0),
        })
    }

    pub fn config(&self) -> &SocketConfig {
        &self.cfg
    }

    /// Index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits for the next VRRP message. Malformed datagrams are dropped (and logged at debug
    /// level) rather than returned, so an error here is a socket error.
    ///
    /// Cancel safe: a datagram is consumed only when it is returned.
    pub async fn recv(&self) -> io::Result<Received> {
        let mut buf = vec![0u8; RECV_BUF_LEN];
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        loop {
            let got = self
                .fd
                .async_io(Interest::READABLE, |fd| {
                    self.recv_one(fd.as_raw_fd(), &mut buf, &mut cmsg)
                })
                .await?;
            if let Some(received) = got {
                return Ok(received);
            }
        }
    }

    /// Sends a VRRP message (no IP header) to `dst` (the group or a unicast peer) from the
    /// configured source.
    pub async fn send(&self, payload: &[u8], dst: IpAddr) -> io::Result<()> {
        // keepalived sends multicast with MSG_DONTROUTE and lets unicast be routed.
        let flags = if dst.is_multicast() {
            MsgFlags::from_bits_retain(libc::MSG_DONTROUTE)
        } else {
            MsgFlags::empty()
        };
        match (self.cfg.src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => self.send_v4(src, dst, payload, flags).await,
            (IpAddr::V6(src), IpAddr::V6(dst)) => self.send_v6(src, dst, payload, flags).await,
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "VRRP socket on {} (source {}) cannot send to {dst}: other address family",
                    self.cfg.interface, self.cfg.src
                ),
            )),
        }
    }

    async fn send_v4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        flags: MsgFlags,
    ) -> io::Result<()> {
        let header = ipv4_header(src, dst, payload.len(), self.next_ip_id())?;
        let iov = [IoSlice::new(&header), IoSlice::new(payload)];
        // With IP_HDRINCL the address only routes the packet; the header says the rest.
        let addr = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        let sent = self
            .fd
            .async_io(Interest::WRITABLE, |fd| {
                Ok(sendmsg(fd.as_raw_fd(), &iov, &[], flags, Some(&addr))?)
            })
            .await?;
        check_sent(sent, header.len() + payload.len())
    }

    async fn send_v6(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        payload: &[u8],
        flags: MsgFlags,
    ) -> io::Result<()> {
        let iov = [IoSlice::new(payload)];
        let addr = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, self.ifindex));
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let cmsgs = [ControlMessage::Ipv6PacketInfo(&info)];
        let sent = self
            .fd
            .async_io(Interest::WRITABLE, |fd| {
                Ok(sendmsg(fd.as_raw_fd(), &iov, &cmsgs, flags, Some(&addr))?)
            })
            .await?;
        check_sent(sent, payload.len())
    }

    /// The IPv4 ID of the next advert: 1, 2, ... 65535, 1 (0 would let the kernel choose).
    fn next_ip_id(&self) -> u16 {
        loop {
            let id = self.ip_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id != 0 {
                return id;
            }
        }
    }

    /// Reads one datagram: `Ok(None)` when it was dropped as malformed.
    fn recv_one(
        &self,
        fd: RawFd,
        buf: &mut [u8],
        cmsg: &mut Vec<u8>,
    ) -> io::Result<Option<Received>> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            tracing::debug!(interface = %self.cfg.interface, "dropped a truncated VRRP datagram");
            return Ok(None);
        }
        let (len, src) = (msg.bytes, msg.address);
        let info = Ancillary::parse(msg.cmsgs().map_err(io::Error::from)?);
        let data = iov[0].get(..len).unwrap_or_default();
        let received = if self.cfg.family_v6 {
            parse_v6(data, src, info)
        } else {
            parse_v4(data, info.ifindex.unwrap_or(self.ifindex))
        };
        if received.is_none() {
            tracing::debug!(
                interface = %self.cfg.interface,
                len,
                "dropped a malformed VRRP datagram"
            );
        }
        Ok(received)
    }
}

/// What the kernel told us about a datagram besides its bytes.
#[derive(Debug, Default)]
struct Ancillary {
    ifindex: Option<u32>,
    dst_v6: Option<Ipv6Addr>,
    hop_limit: Option<u8>,
}

impl Ancillary {
    fn parse(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> Self {
        let mut info = Ancillary::default();
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    info.ifindex = u32::try_from(pi.ipi_ifindex).ok();
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    info.ifindex = Some(pi.ipi6_ifindex);
                    info.dst_v6 = Some(Ipv6Addr::from(pi.ipi6_addr.s6_addr));
                }
                ControlMessageOwned::Ipv6HopLimit(hops) => {
                    info.hop_limit = u8::try_from(hops).ok();
                }
                _ => {}
            }
        }
        info
    }
}

/// IPv4 raw sockets deliver the IP header: TTL and destination come from it.
fn parse_v4(data: &[u8], ifindex: u32) -> Option<Received> {
    let header_len = usize::from(data.first()? & 0x0f) * 4;
    if data.first()? >> 4 != 4 || header_len < IPV4_HEADER_LEN || data.len() < header_len {
        return None;
    }
    Some(Received {
        src: IpAddr::V4(ipv4_at(data, 12)?),
        dst: IpAddr::V4(ipv4_at(data, 16)?),
        ttl: data[8],
        ifindex,
        payload: data[header_len..].to_vec(),
    })
}

/// IPv6 raw sockets deliver the payload only: the rest comes from ancillary data.
fn parse_v6(data: &[u8], src: Option<SockaddrStorage>, info: Ancillary) -> Option<Received> {
    let src = src?.as_sockaddr_in6()?.ip();
    Some(Received {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(info.dst_v6?),
        ttl: info.hop_limit?,
        ifindex: info.ifindex?,
        payload: data.to_vec(),
    })
}

fn ipv4_at(data: &[u8], offset: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = data.get(offset..offset + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

/// The IPv4 header keepalived writes: TOS 0xc0, TTL 255, no DF, checksum left to the kernel.
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
    id: u16,
) -> io::Result<[u8; IPV4_HEADER_LEN]> {
    let total = u16::try_from(IPV4_HEADER_LEN + payload_len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("VRRP message of {payload_len} bytes does not fit an IPv4 packet"),
        )
    })?;
    let mut h = [0u8; IPV4_HEADER_LEN];
    h[0] = 0x45; // version 4, 5 words
    h[1] = VRRP_TOS;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    // h[6..8]: flags and fragment offset 0; h[10..12]: checksum, filled by the kernel.
    h[8] = VRRP_TTL;
    h[9] = IPPROTO_VRRP;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    Ok(h)
}

fn check_sent(sent: usize, expected: usize) -> io::Result<()> {
    if sent == expected {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("VRRP advert partly sent: {sent} of {expected} bytes"),
        ))
    }
}

fn check_config(cfg: &SocketConfig) -> io::Result<()> {
    let invalid = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    if cfg.src.is_ipv6() != cfg.family_v6 {
        return invalid(format!(
            "VRRP socket on {}: source {} is not of the instance's address family",
            cfg.interface, cfg.src
        ));
    }
    match cfg.multicast_group {
        Some(g) if g.is_ipv6() != cfg.family_v6 || !g.is_multicast() => invalid(format!(
            "VRRP socket on {}: {g} is not a multicast group of the instance's address family",
            cfg.interface
        )),
        _ => Ok(()),
    }
}

/// The index of the interface in the calling thread's network namespace.
fn interface_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("VRRP socket: interface {name:?} not found ({e}); check the interface name"),
        )
    })
}

/// Registers the socket with the current tokio runtime's reactor.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "no tokio runtime: open VRRP sockets inside one",
        ));
    }
    // SAFETY: an OwnedFd stays open, and always returns the same descriptor, until dropped,
    // and the AsyncFd owns it from now on.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

fn raw_socket(v6: bool) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let kind = libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain syscall; a non-negative result is a new descriptor nobody else owns.
    let fd = unsafe { libc::socket(domain, kind, libc::c_int::from(IPPROTO_VRRP)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setup_v4(fd: &OwnedFd, cfg: &SocketConfig, ifindex: u32) -> io::Result<()> {
    bind_to_device(fd, &cfg.interface)?;
    set_int(fd, libc::IPPROTO_IP, libc::IP_HDRINCL, 1, "IP_HDRINCL")?;
    set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1, "IP_PKTINFO")?;
    // Without this, a raw socket gets every group any socket joined on the host.
    set_int(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_ALL,
        0,
        "IP_MULTICAST_ALL",
    )?;
    let local = match cfg.multicast_group {
        Some(IpAddr::V4(group)) => {
            let mreq = ip_mreqn(group, ifindex);
            set_opt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_ADD_MEMBERSHIP,
                &mreq,
                "IP_ADD_MEMBERSHIP",
            )?;
            let ifreq = ip_mreqn(Ipv4Addr::UNSPECIFIED, ifindex);
            set_opt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                &ifreq,
                "IP_MULTICAST_IF",
            )?;
            set_int(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_LOOP,
                0,
                "IP_MULTICAST_LOOP",
            )?;
            group
        }
        _ => match cfg.src {
            IpAddr::V4(src) => src,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED, // excluded by check_config
        },
    };
    // Bound to the group: unicast VRRP is not ours. Bound to src: only packets to us.
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(local, 0)),
    )
    .map_err(|e| annotate(e.into(), &format!("bind({local})")))
}

fn setup_v6(fd: &OwnedFd, cfg: &SocketConfig, ifindex: u32) -> io::Result<()> {
    bind_to_device(fd, &cfg.interface)?;
    let v6 = libc::IPPROTO_IPV6;
    set_int(
        fd,
        v6,
        libc::IPV6_CHECKSUM,
        VRRP_CHECKSUM_OFFSET,
        "IPV6_CHECKSUM",
    )?;
    set_int(fd, v6, libc::IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")?;
    set_int(fd, v6, libc::IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT")?;
    set_int(fd, v6, libc::IPV6_TCLASS, VRRP_TOS.into(), "IPV6_TCLASS")?;
    let ttl = libc::c_int::from(VRRP_TTL);
    set_int(fd, v6, libc::IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS")?;
    set_int(
        fd,
        v6,
        libc::IPV6_MULTICAST_HOPS,
        ttl,
        "IPV6_MULTICAST_HOPS",
    )?;
    // Otherwise a socket bound to a unicast address still gets all multicast VRRP.
    set_int(fd, v6, libc::IPV6_MULTICAST_ALL, 0, "IPV6_MULTICAST_ALL")?;
    let local = match cfg.multicast_group {
        Some(IpAddr::V6(group)) => {
            let mreq = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr {
                    s6_addr: group.octets(),
                },
                ipv6mr_interface: ifindex,
            };
            set_opt(
                fd,
                v6,
                libc::IPV6_ADD_MEMBERSHIP,
                &mreq,
                "IPV6_ADD_MEMBERSHIP",
            )?;
            let index = libc::c_int::try_from(ifindex).unwrap_or_default();
            set_int(fd, v6, libc::IPV6_MULTICAST_IF, index, "IPV6_MULTICAST_IF")?;
            set_int(fd, v6, libc::IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP")?;
            group
        }
        _ => match cfg.src {
            IpAddr::V6(src) => src,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED, // excluded by check_config
        },
    };
    // As for IPv4; the scope id is needed for link-local addresses and groups.
    let addr = SockaddrIn6::from(SocketAddrV6::new(local, 0, 0, ifindex));
    bind(fd.as_raw_fd(), &addr).map_err(|e| annotate(e.into(), &format!("bind({local})")))
}

fn ip_mreqn(addr: Ipv4Addr, ifindex: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: libc::c_int::try_from(ifindex).unwrap_or_default(),
    }
}

fn bind_to_device(fd: &OwnedFd, ifname: &str) -> io::Result<()> {
    let name = ifname.as_bytes();
    let len = libc::socklen_t::try_from(name.len()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `name` is valid for `len` bytes; the kernel copies at most that many.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(annotate(io::Error::last_os_error(), "SO_BINDTODEVICE"))
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) -> io::Result<()> {
    set_opt(fd, level, name, &value, what)
}

/// setsockopt with a plain-data value; the error names the option.
fn set_opt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `value` points to a live `T` of `len` bytes, which the kernel only reads.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(annotate(io::Error::last_os_error(), what))
    }
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn context(e: io::Error, cfg: &SocketConfig, step: &str) -> io::Error {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        " (raw sockets need root or CAP_NET_RAW)"
    } else {
        ""
    };
    io::Error::new(
        e.kind(),
        format!(
            "VRRP socket on {} (source {}): {step}: {e}{hint}",
            cfg.interface, cfg.src
        ),
    )
}
