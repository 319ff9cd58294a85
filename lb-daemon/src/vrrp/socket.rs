//! VRRP raw sockets (IP protocol 112) on one interface: IPv4 or IPv6, multicast or unicast.
//!
//! One [`VrrpSocket`] both receives and sends; an instance's own socket is opened with
//! [`VrrpSocket::open_split`], its receiving half read on a thread ([`super::receiver`]).
//! What goes on the wire matches keepalived 2.2.7 (`open_vrrp_read_socket`,
//! `open_vrrp_send_socket`, `vrrp_build_ip4`, `vrrp_send_pkt` in `keepalived/vrrp/vrrp.c`,
//! the `if_setsockopt_*` helpers in `vrrp_if.c`), checked against captures of its adverts:
//!
//! - IPv4: the IP header is ours (IP_HDRINCL, as keepalived does): TOS 0xc0 (network
//!   control), TTL 255, no DF, an IP ID counting up from 1 and the configured source (primary
//!   address or `unicast_src_ip`) whatever routing would pick. The kernel fills the header
//!   checksum.
//! - IPv6: traffic class 0xc0, hop limit 255, source and interface given per packet
//!   (IPV6_PKTINFO). The kernel computes the VRRP checksum on send and checks it on receive
//!   (IPV6_CHECKSUM at offset 6): adverts with a bad checksum never reach us.
//! - Multicast sends use MSG_DONTROUTE (the group is link-local); unicast ones may be routed.
//! - One difference: keepalived leaves IPv6 unicast adverts at the kernel's default hop
//!   limit (64); ours go with 255, like everything else. Harmless: keepalived checks the hop
//!   limit of multicast adverts only.
//!
//! Receive filtering, also as keepalived: the socket is bound to its interface
//! (SO_BINDTODEVICE); a multicast socket is bound to its group, so unicast VRRP to one of our
//! addresses is not seen, and a unicast one to its source address, so only packets to us are;
//! IP(V6)_MULTICAST_ALL is off, so only groups this socket joined are delivered. Multicast
//! loop is off: a socket never hears its own adverts.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::ah::{self, IPPROTO_AH};
use crate::net::proto::{IPPROTO_VRRP, VRRP_TTL};

/// IPv4 TOS / IPv6 traffic class of adverts: precedence "internetwork control" (DSCP CS6).
const VRRP_TOS: u8 = 0xc0;

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
    /// The IP payload: the VRRP message, or with `auth_type AH` the AH header and the VRRP
    /// message.
    pub payload: Vec<u8>,
    /// IPv4: the IP header as received (the AH ICV covers it); IPv6: empty.
    pub ip_header: Vec<u8>,
}

/// What a [`VrrpSocket`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    pub interface: String,
    pub family_v6: bool,
    /// Source of our adverts: the interface's primary address (IPv6: its link-local
    /// address) or `unicast_src_ip`. A unicast socket only receives packets sent to it.
    pub src: IpAddr,
    /// The group to join (the standard [`VRRP_GROUP_V4`](crate::net::proto::VRRP_GROUP_V4)
    /// / [`VRRP_GROUP_V6`](crate::net::proto::VRRP_GROUP_V6) unless configured otherwise);
    /// `None` = unicast peers.
    pub multicast_group: Option<IpAddr>,
    /// VRRPv2 `auth_type AH` (IPv4 only): the 8-byte key. The socket is then an IP
    /// protocol 51 socket, as keepalived's, and [`VrrpSocket::send_ah`] wraps adverts.
    pub ah_key: Option<[u8; 8]>,
}

/// A raw VRRP socket bound to one interface, registered with the tokio reactor. `recv` and
/// `send` take `&self`: one task may receive while another sends (share it in an `Arc`).
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    cfg: SocketConfig,
    ifindex: u32,
    /// Last IPv4 ID sent (keepalived numbers its adverts 1, 2, ... and skips 0).
    ip_id: AtomicU16,
    /// The receive buffer, allocated once: `recv` is re-created on every turn of the
    /// instance's select loop, and zeroing 64 KiB each time was a visible part of an idle
    /// backup's CPU at 20 ms adverts.
    recv_buf: std::sync::Mutex<Vec<u8>>,
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
        let (fd, ifindex) = Self::configured(cfg)?;
        let fd = register(fd).map_err(|e| context(e, cfg, "tokio registration"))?;
        Ok(Self::wrap(fd, cfg, ifindex, true))
    }

    /// As [`open`](Self::open), for an instance whose adverts a thread of its own reads
    /// ([`super::receiver`]): the [`VrrpSocket`] only sends (the reactor is told of
    /// writability only, so arriving adverts do not wake the runtime), and the
    /// [`ReceiveSocket`], a duplicate of the same descriptor, receives.
    pub fn open_split(cfg: &SocketConfig) -> io::Result<(Self, ReceiveSocket)> {
        let (fd, ifindex) = Self::configured(cfg)?;
        let reader = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| context(e, cfg, "dup()"))?;
        let fd = register_for(fd, Interest::WRITABLE)
            .map_err(|e| context(e, cfg, "tokio registration"))?;
        let receiver = ReceiveSocket {
            fd: reader,
            cfg: cfg.clone(),
            ifindex,
            buf: vec![0u8; RECV_BUF_LEN],
            cmsg: nix::cmsg_space!(libc::in6_pktinfo, libc::c_int),
        };
        Ok((Self::wrap(fd, cfg, ifindex, false), receiver))
    }

    /// `receives`: whether [`recv`](Self::recv) is used (a send-only half needs no buffer).
    fn wrap(fd: AsyncFd<Socket>, cfg: &SocketConfig, ifindex: u32, receives: bool) -> Self {
        let buf_len = if receives { RECV_BUF_LEN } else { 0 };
        VrrpSocket {
            fd,
            cfg: cfg.clone(),
            ifindex,
            ip_id: AtomicU16::new(0),
            recv_buf: std::sync::Mutex::new(vec![0u8; buf_len]),
        }
    }

    /// The raw socket, set up for `cfg`, and the index of its interface.
    fn configured(cfg: &SocketConfig) -> io::Result<(Socket, u32)> {
        check_config(cfg)?;
        let ifindex = interface_index(&cfg.interface)?;
        let protocol = if cfg.ah_key.is_some() {
            IPPROTO_AH
        } else {
            IPPROTO_VRRP
        };
        let fd = raw_socket(cfg.family_v6, protocol).map_err(|e| context(e, cfg, "socket()"))?;
        let setup = if cfg.family_v6 {
            setup_v6(&fd, cfg, ifindex)
        } else {
            setup_v4(&fd, cfg, ifindex)
        };
        setup.map_err(|e| context(e, cfg, "setup"))?;
        Ok((fd, ifindex))
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
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        loop {
            let got = self
                .fd
                .async_io(Interest::READABLE, |fd| {
                    // Held only inside this synchronous read, never across an await.
                    let mut buf = self
                        .recv_buf
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

    /// Sends a VRRP message wrapped in keepalived's IPsec AH header, with sequence number
    /// `seq` (see [`ah::SeqCounter`]). Only for sockets opened with an `ah_key`.
    pub async fn send_ah(&self, payload: &[u8], dst: IpAddr, seq: u32) -> io::Result<()> {
        let (Some(key), IpAddr::V4(src), IpAddr::V4(dst)) = (self.cfg.ah_key, self.cfg.src, dst)
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "VRRP socket on {}: AH adverts need an AH socket and IPv4 ({dst})",
                    self.cfg.interface
                ),
            ));
        };
        let flags = if dst.is_multicast() {
            MsgFlags::from_bits_retain(libc::MSG_DONTROUTE)
        } else {
            MsgFlags::empty()
        };
        let id = self.next_ip_id();
        let mut header = ipv4_header(src, dst, ah::AH_LEN + payload.len(), id)?;
        header[9] = IPPROTO_AH;
        let unicast = self.cfg.multicast_group.is_none();
        let ah_header = ah::seal(&header, payload, seq, &key, unicast);
        self.send_v4_parts(dst, &header, &[&ah_header, payload], flags)
            .await
    }

    async fn send_v4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        flags: MsgFlags,
    ) -> io::Result<()> {
        let header = ipv4_header(src, dst, payload.len(), self.next_ip_id())?;
        self.send_v4_parts(dst, &header, &[payload], flags).await
    }

    async fn send_v4_parts(
        &self,
        dst: Ipv4Addr,
        header: &[u8; IPV4_HEADER_LEN],
        parts: &[&[u8]],
        flags: MsgFlags,
    ) -> io::Result<()> {
        let mut iov = vec![IoSlice::new(header)];
        iov.extend(parts.iter().map(|p| IoSlice::new(p)));
        let total: usize = iov.iter().map(|s| s.len()).sum();
        // With IP_HDRINCL the address only routes the packet; the header says the rest.
        let addr = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        let sent = self
            .fd
            .async_io(Interest::WRITABLE, |fd| {
                Ok(sendmsg(fd.as_raw_fd(), &iov, &[], flags, Some(&addr))?)
            })
            .await?;
        check_sent(sent, total)
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
    fn recv_one(&self, fd: RawFd, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Option<Received>> {
        read_datagram(fd, &self.cfg, self.ifindex, buf, cmsg)
    }
}

/// The receiving half of a socket opened with [`VrrpSocket::open_split`], for a thread
/// that waits in `poll(2)` rather than in the async runtime.
#[derive(Debug)]
pub struct ReceiveSocket {
    fd: OwnedFd,
    cfg: SocketConfig,
    ifindex: u32,
    /// Both allocated once: this runs for every advert.
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl ReceiveSocket {
    /// The next VRRP message, waiting at most `timeout` (`None`: as long as it takes),
    /// or until `stop` (an eventfd), if given, is readable: `Ok(None)` when none came in time, `stop`
    /// fired, or a malformed one was dropped. Blocks the calling thread.
    pub fn recv_timeout(
        &mut self,
        timeout: Option<Duration>,
        stop: Option<BorrowedFd<'_>>,
    ) -> io::Result<Option<Received>> {
        let mut pfds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                // poll(2) skips negative descriptors.
                fd: stop.map_or(-1, |s| s.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.map_or(-1, |t| {
            // Rounded up: poll's milliseconds must not wake the caller before `timeout`.
            let ms = t.as_micros().div_ceil(1000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        });
        // SAFETY: two valid pollfds for the duration of the call.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        if pfds[0].revents == 0 {
            return Ok(None);
        }
        match read_datagram(
            self.fd.as_raw_fd(),
            &self.cfg,
            self.ifindex,
            &mut self.buf,
            &mut self.cmsg,
        ) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other,
        }
    }

    /// The interface the socket is bound to, for thread names and logs.
    pub fn interface(&self) -> &str {
        &self.cfg.interface
    }

    /// The socket, for the advert filter to attach to.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether no datagram is waiting (`SIOCINQ`: the next datagram's length, 0 if none).
    pub fn queue_empty(&self) -> bool {
        let mut next: libc::c_int = 0;
        // SAFETY: SIOCINQ writes one c_int.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::FIONREAD, &mut next) };
        rc == 0 && next == 0
    }
}

/// Reads one datagram from a VRRP socket: `Ok(None)` when it was dropped as malformed.
fn read_datagram(
    fd: RawFd,
    cfg: &SocketConfig,
    ifindex: u32,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<Option<Received>> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        tracing::debug!(interface = %cfg.interface, "dropped a truncated VRRP datagram");
        return Ok(None);
    }
    let (len, src) = (msg.bytes, msg.address);
    let Ok(cmsgs) = msg.cmsgs() else {
        // MSG_CTRUNC: cannot happen with our buffer, but is no reason to fail for good.
        tracing::debug!(
            interface = %cfg.interface,
            "dropped a VRRP datagram: ancillary data truncated"
        );
        return Ok(None);
    };
    let info = Ancillary::parse(cmsgs);
    let data = iov[0].get(..len).unwrap_or_default();
    let received = if cfg.family_v6 {
        parse_v6(data, src, info)
    } else {
        parse_v4(data, info.ifindex.unwrap_or(ifindex))
    };
    if received.is_none() {
        tracing::debug!(
            interface = %cfg.interface,
            len,
            "dropped a malformed VRRP datagram"
        );
    }
    Ok(received)
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
pub(crate) fn parse_v4(data: &[u8], ifindex: u32) -> Option<Received> {
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
        ip_header: data[..header_len].to_vec(),
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
        ip_header: Vec::new(),
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
    if cfg.ah_key.is_some() && cfg.family_v6 {
        return invalid(format!(
            "VRRP socket on {}: IPsec AH authentication is IPv4 only (as in keepalived)",
            cfg.interface
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
pub(super) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    register_for(socket, Interest::READABLE | Interest::WRITABLE)
}

/// As [`register`], for `interest` only: the reactor is not woken for the rest.
fn register_for(socket: Socket, interest: Interest) -> io::Result<AsyncFd<Socket>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "no tokio runtime: open VRRP sockets inside one",
        ));
    }
    // SAFETY: a Socket owns its descriptor, which stays open and the same until dropped,
    // and the AsyncFd owns the Socket from now on.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}

/// A non-blocking raw IPPROTO_VRRP (or IPPROTO_AH) socket (socket2 sets close-on-exec).
fn raw_socket(v6: bool, protocol: u8) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let protocol = Protocol::from(libc::c_int::from(protocol));
    Socket::new(domain, Type::RAW.nonblocking(), Some(protocol))
}

fn setup_v4(socket: &Socket, cfg: &SocketConfig, ifindex: u32) -> io::Result<()> {
    bind_to_device(socket, &cfg.interface)?;
    socket
        .set_header_included_v4(true)
        .map_err(|e| annotate(e, "IP_HDRINCL"))?;
    // socket2 has no IP_PKTINFO.
    set_int(socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1, "IP_PKTINFO")?;
    // Without this, a raw socket gets every group any socket joined on the host.
    socket
        .set_multicast_all_v4(false)
        .map_err(|e| annotate(e, "IP_MULTICAST_ALL"))?;
    let local = match cfg.multicast_group {
        Some(IpAddr::V4(group)) => {
            socket
                .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
                .map_err(|e| annotate(e, "IP_ADD_MEMBERSHIP"))?;
            // socket2 sets IP_MULTICAST_IF by address only; keepalived (and we) use the index.
            let ifreq = ip_mreqn(Ipv4Addr::UNSPECIFIED, ifindex);
            set_opt(
                socket.as_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                &ifreq,
                "IP_MULTICAST_IF",
            )?;
            socket
                .set_multicast_loop_v4(false)
                .map_err(|e| annotate(e, "IP_MULTICAST_LOOP"))?;
            group
        }
        _ => match cfg.src {
            IpAddr::V4(src) => src,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED, // excluded by check_config
        },
    };
    // Bound to the group: unicast VRRP is not ours. Bound to src: only packets to us.
    socket
        .bind(&SockAddr::from(SocketAddrV4::new(local, 0)))
        .map_err(|e| annotate(e, &format!("bind({local})")))
}

fn setup_v6(socket: &Socket, cfg: &SocketConfig, ifindex: u32) -> io::Result<()> {
    bind_to_device(socket, &cfg.interface)?;
    let v6 = libc::IPPROTO_IPV6;
    // socket2 has neither IPV6_CHECKSUM nor IPV6_RECVPKTINFO.
    set_int(
        socket,
        v6,
        libc::IPV6_CHECKSUM,
        VRRP_CHECKSUM_OFFSET,
        "IPV6_CHECKSUM",
    )?;
    set_int(socket, v6, libc::IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")?;
    socket
        .set_recv_hoplimit_v6(true)
        .map_err(|e| annotate(e, "IPV6_RECVHOPLIMIT"))?;
    socket
        .set_tclass_v6(VRRP_TOS.into())
        .map_err(|e| annotate(e, "IPV6_TCLASS"))?;
    let ttl = u32::from(VRRP_TTL);
    socket
        .set_unicast_hops_v6(ttl)
        .map_err(|e| annotate(e, "IPV6_UNICAST_HOPS"))?;
    socket
        .set_multicast_hops_v6(ttl)
        .map_err(|e| annotate(e, "IPV6_MULTICAST_HOPS"))?;
    // Otherwise a socket bound to a unicast address still gets all multicast VRRP.
    socket
        .set_multicast_all_v6(false)
        .map_err(|e| annotate(e, "IPV6_MULTICAST_ALL"))?;
    let local = match cfg.multicast_group {
        Some(IpAddr::V6(group)) => {
            socket
                .join_multicast_v6(&group, ifindex)
                .map_err(|e| annotate(e, "IPV6_ADD_MEMBERSHIP"))?;
            socket
                .set_multicast_if_v6(ifindex)
                .map_err(|e| annotate(e, "IPV6_MULTICAST_IF"))?;
            socket
                .set_multicast_loop_v6(false)
                .map_err(|e| annotate(e, "IPV6_MULTICAST_LOOP"))?;
            group
        }
        _ => match cfg.src {
            IpAddr::V6(src) => src,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED, // excluded by check_config
        },
    };
    // As for IPv4; the scope id is needed for link-local addresses and groups.
    socket
        .bind(&SockAddr::from(SocketAddrV6::new(local, 0, 0, ifindex)))
        .map_err(|e| annotate(e, &format!("bind({local})")))
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

fn bind_to_device(socket: &Socket, ifname: &str) -> io::Result<()> {
    socket
        .bind_device(Some(ifname.as_bytes()))
        .map_err(|e| annotate(e, "SO_BINDTODEVICE"))
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) -> io::Result<()> {
    set_opt(socket.as_fd(), level, name, &value, what)
}

/// setsockopt with a plain-data value, for the options socket2 lacks (and the advert
/// filter's `SO_ATTACH_BPF`); the error names it.
pub(super) fn set_opt<T: Copy>(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `value` points to a live `T` of `len` bytes, which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len,
        )
    };
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

/// Helpers shared by the VRRP IO tests (here and in `vip`). They need root and iproute2.
#[cfg(test)]
pub(crate) mod testing {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use tokio::runtime::Runtime;

    use crate::netns::{veth, Netns};

    /// Two namespaces joined by a veth: `va` in the first, `vb` in the second, with
    /// 198.18.NET.1/24, fe80::1/64 and 2001:db8:NET::1/64 on `va` (.2 / ::2 on `vb`). The
    /// IPv6 addresses skip DAD so they are usable at once.
    pub(crate) fn pair(prefix: &str, net: u8) -> (Netns, Netns) {
        let a = Netns::new(prefix).unwrap();
        let b = Netns::new(prefix).unwrap();
        veth(&a, "va", &b, "vb").unwrap();
        for (ns, dev, host) in [(&a, "va", 1), (&b, "vb", 2)] {
            add_addresses(ns, dev, net, host);
        }
        (a, b)
    }

    pub(crate) fn add_addresses(ns: &Netns, dev: &str, net: u8, host: u8) {
        let v4 = format!("198.18.{net}.{host}/24");
        let ll = format!("fe80::{host}/64");
        let global = format!("2001:db8:{net}::{host}/64");
        ns.ip(&["addr", "add", &v4, "dev", dev]).unwrap();
        ns.ip(&["addr", "add", &ll, "dev", dev, "nodad"]).unwrap();
        ns.ip(&["addr", "add", &global, "dev", dev, "nodad"])
            .unwrap();
    }

    pub(crate) fn runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Runs `f` inside `ns` with `rt` entered: sockets it opens live in `ns` and are driven
    /// by `rt` from the calling thread.
    pub(crate) fn in_ns<R: Send + 'static>(
        ns: &Netns,
        rt: &Runtime,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let handle = rt.handle().clone();
        ns.run(move || {
            let _guard = handle.enter();
            f()
        })
    }

    pub(crate) fn ifindex(ns: &Netns, dev: &'static str) -> u32 {
        ns.run(move || nix::net::if_::if_nametoindex(dev).unwrap())
    }

    pub(crate) fn mac(ns: &Netns, dev: &str) -> [u8; 6] {
        let out = ns.ip(&["-o", "link", "show", "dev", dev]).unwrap();
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in {out}"));
        let mut mac = [0u8; 6];
        for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).unwrap();
        }
        mac
    }

    /// RFC 1071 checksum over `data`: 0 when `data` includes a correct checksum.
    pub(crate) fn checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The IPv6 pseudo-header for an upper-layer message of `len` bytes.
    pub(crate) fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], len: usize, proto: u8) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
        p
    }

    /// An AF_PACKET socket seeing every frame that arrives on one interface.
    pub(crate) struct Capture {
        fd: OwnedFd,
    }

    impl Capture {
        pub(crate) fn open(ns: &Netns, dev: &'static str) -> Capture {
            let fd = ns.run(move || {
                let all = (libc::ETH_P_ALL as u16).to_be();
                // SAFETY: plain syscalls on a descriptor we own; sockaddr_ll is plain data.
                unsafe {
                    let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(all));
                    assert!(
                        fd >= 0,
                        "AF_PACKET socket: {}",
                        std::io::Error::last_os_error()
                    );
                    let fd = OwnedFd::from_raw_fd(fd);
                    let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                    sll.sll_family = libc::AF_PACKET as u16;
                    sll.sll_protocol = all;
                    sll.sll_ifindex = nix::net::if_::if_nametoindex(dev).unwrap() as i32;
                    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                    let rc = libc::bind(
                        fd.as_raw_fd(),
                        (&sll as *const libc::sockaddr_ll).cast(),
                        len,
                    );
                    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
                    fd
                }
            });
            Capture { fd }
        }

        /// The next incoming frame for which `want` holds; panics after `wait`.
        pub(crate) fn next(&self, wait: Duration, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
            let deadline = Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "no matching frame within {wait:?}");
                if let Some(frame) = self.recv(left) {
                    if want(&frame) {
                        return frame;
                    }
                }
            }
        }

        /// One incoming frame (outgoing ones skipped), or None on timeout.
        fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                return None;
            }
            let mut buf = vec![0u8; 65_536];
            // SAFETY: sockaddr_ll is plain data; buffers are valid for their lengths.
            let (n, from) = unsafe {
                let mut from: libc::sockaddr_ll = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                let n = libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                );
                (n, from)
            };
            if n < 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
                return None;
            }
            buf.truncate(n as usize);
            Some(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    //! These tests need root and iproute2 (and keepalived for `keepalived_interop`); they fail
    //! (rather than skip) without them.

    use std::time::Duration;

    use tokio::time::timeout;

    use super::testing::{checksum, ifindex, in_ns, pair, pseudo_header_v6, runtime, Capture};
    use super::*;
    use crate::net::proto::{VRRP_GROUP_V4, VRRP_GROUP_V6};
    use crate::netns::{veth, Netns};

    const WAIT: Duration = Duration::from_secs(3);
    /// How long "nothing arrives" is watched for.
    const QUIET: Duration = Duration::from_millis(300);

    /// A VRRPv3 advert for vrid 7 (its content does not matter to the socket).
    fn v3_advert(vip: IpAddr) -> Vec<u8> {
        let mut p = vec![0x31, 7, 100, 1, 0x00, 0x64, 0, 0];
        match vip {
            IpAddr::V4(a) => p.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => p.extend_from_slice(&a.octets()),
        }
        p
    }

    fn config(dev: &str, src: &str, group: Option<IpAddr>) -> SocketConfig {
        let src: IpAddr = src.parse().unwrap();
        SocketConfig {
            interface: dev.to_owned(),
            family_v6: src.is_ipv6(),
            src,
            multicast_group: group,
            ah_key: None,
        }
    }

    fn open(ns: &Netns, rt: &tokio::runtime::Runtime, cfg: SocketConfig) -> VrrpSocket {
        in_ns(ns, rt, move || VrrpSocket::open(&cfg)).unwrap()
    }

    async fn nothing(sock: &VrrpSocket, who: &str) {
        if let Ok(got) = timeout(QUIET, sock.recv()).await {
            panic!("{who} should have received nothing, got {got:?}");
        }
    }

    /// The address family a twin test runs with, and its addresses on a [`pair`] of subnet
    /// `net`: multicast adverts go from the primary (IPv4) or link-local (IPv6) address.
    #[derive(Debug, Clone, Copy)]
    enum Family {
        V4,
        V6,
    }

    impl Family {
        fn group(self) -> IpAddr {
            match self {
                Family::V4 => IpAddr::V4(VRRP_GROUP_V4),
                Family::V6 => IpAddr::V6(VRRP_GROUP_V6),
            }
        }

        /// Source of multicast adverts from host `host` (1 = A, 2 = B).
        fn multicast_src(self, net: u8, host: u8) -> String {
            match self {
                Family::V4 => format!("198.18.{net}.{host}"),
                Family::V6 => format!("fe80::{host}"),
            }
        }

        /// Source of unicast adverts, and what a unicast socket is bound to.
        fn unicast_src(self, net: u8, host: u8) -> String {
            match self {
                Family::V4 => format!("198.18.{net}.{host}"),
                Family::V6 => format!("2001:db8:{net}::{host}"),
            }
        }

        /// An advert for a VIP of subnet `net`.
        fn advert(self, net: u8) -> Vec<u8> {
            let vip = match self {
                Family::V4 => format!("198.18.{net}.100"),
                Family::V6 => format!("2001:db8:{net}::100"),
            };
            v3_advert(vip.parse().unwrap())
        }

        /// `got` is `sent` as it left `src` for `dst`: unchanged for IPv4; for IPv6 all but
        /// the checksum, which the sender's kernel filled in, and right.
        fn check_payload(self, got: &[u8], sent: &[u8], src: IpAddr, dst: IpAddr) {
            let (Family::V6, IpAddr::V6(src), IpAddr::V6(dst)) = (self, src, dst) else {
                assert_eq!(got, sent);
                return;
            };
            assert_eq!(got[..6], sent[..6]);
            assert_eq!(got[8..], sent[8..]);
            assert_ne!(got[6..8], [0, 0]);
            let mut summed = pseudo_header_v6(src.octets(), dst.octets(), got.len(), IPPROTO_VRRP);
            summed.extend_from_slice(got);
            assert_eq!(checksum(&summed), 0, "bad checksum in {got:02x?}");
        }
    }

    #[test]
    fn multicast_reaches_the_peer_and_not_the_sender() {
        for (family, tag, net) in [(Family::V4, "tvm4", 30), (Family::V6, "tvm6", 31)] {
            let (a, b) = pair(tag, net);
            let rt = runtime();
            let group = family.group();
            let a_src = family.multicast_src(net, 1);
            let sa = open(&a, &rt, config("va", &a_src, Some(group)));
            let sb = open(
                &b,
                &rt,
                config("vb", &family.multicast_src(net, 2), Some(group)),
            );
            let payload = family.advert(net);
            let got = rt.block_on(async {
                sa.send(&payload, group).await.unwrap();
                let got = timeout(WAIT, sb.recv())
                    .await
                    .expect("B got nothing")
                    .unwrap();
                nothing(&sa, "A (multicast loop is off)").await;
                got
            });
            let src: IpAddr = a_src.parse().unwrap();
            assert_eq!(got.src, src, "{family:?}");
            assert_eq!(got.dst, group, "{family:?}");
            assert_eq!(got.ttl, 255, "{family:?}");
            assert_eq!(got.ifindex, ifindex(&b, "vb"), "{family:?}");
            family.check_payload(&got.payload, &payload, src, group);
        }
    }

    /// The first unicast packet to a fresh neighbour waits for ARP / ND, and under a
    /// loaded CI run it once never arrived within 3 s (stop 28): re-sent every 500 ms
    /// until B's unicast socket has it. Which socket receives is what is tested.
    async fn first_unicast(
        sa: &VrrpSocket,
        sb: &VrrpSocket,
        payload: &[u8],
        peer: IpAddr,
        family: Family,
    ) -> Received {
        for _ in 0..12 {
            sa.send(payload, peer).await.unwrap();
            if let Ok(got) = timeout(Duration::from_millis(500), sb.recv()).await {
                return got.unwrap();
            }
        }
        panic!("{family:?}: B's unicast socket got nothing in 6 s");
    }

    #[test]
    fn unicast_reaches_only_the_unicast_socket() {
        for (family, tag, net) in [(Family::V4, "tvu4", 32), (Family::V6, "tvu6", 33)] {
            let (a, b) = pair(tag, net);
            let rt = runtime();
            let group = family.group();
            let (a_src, peer) = (family.unicast_src(net, 1), family.unicast_src(net, 2));
            let peer: IpAddr = peer.parse().unwrap();
            let sa = open(&a, &rt, config("va", &a_src, None));
            let sa_m = open(
                &a,
                &rt,
                config("va", &family.multicast_src(net, 1), Some(group)),
            );
            let sb = open(&b, &rt, config("vb", &peer.to_string(), None));
            let sb_m = open(
                &b,
                &rt,
                config("vb", &family.multicast_src(net, 2), Some(group)),
            );
            let payload = family.advert(net);
            rt.block_on(async {
                let got = first_unicast(&sa, &sb, &payload, peer, family).await;
                let src: IpAddr = a_src.parse().unwrap();
                assert_eq!(got.src, src);
                assert_eq!((got.dst, got.ttl), (peer, 255));
                family.check_payload(&got.payload, &payload, src, peer);
                nothing(&sb_m, "B's multicast socket (unicast packet)").await;
                // A copy re-sent while the first was on its way is not the next test's.
                while timeout(QUIET, sb.recv()).await.is_ok() {}
                // And the other way round: multicast is not for the unicast socket.
                sa_m.send(&payload, group).await.unwrap();
                let got = timeout(WAIT, sb_m.recv())
                    .await
                    .expect("B got nothing")
                    .unwrap();
                assert_eq!(got.dst, group);
                nothing(&sb, "B's unicast socket (multicast packet)").await;
            });
        }
    }

    #[test]
    fn a_socket_hears_only_its_own_interface() {
        // B has vb (toward A) and vc (toward C). A reaches vc's address through vb.
        let (a, b) = pair("tvif", 34);
        let c = Netns::new("tvif").unwrap();
        veth(&b, "vc", &c, "vd").unwrap();
        b.ip(&["addr", "add", "198.18.35.2/24", "dev", "vc"])
            .unwrap();
        a.ip(&["route", "add", "198.18.35.0/24", "dev", "va"])
            .unwrap();
        let rt = runtime();
        let group = IpAddr::V4(VRRP_GROUP_V4);
        let vc_addr: IpAddr = "198.18.35.2".parse().unwrap();
        let sa = open(&a, &rt, config("va", "198.18.34.1", Some(group)));
        let sa_u = open(&a, &rt, config("va", "198.18.34.1", None));
        let on_vb = open(&b, &rt, config("vb", "198.18.34.2", Some(group)));
        let on_vc = open(&b, &rt, config("vc", "198.18.35.2", Some(group)));
        // Same local address, different devices: only the device tells them apart.
        let on_vb_u = open(&b, &rt, config("vb", "198.18.35.2", None));
        let on_vc_u = open(&b, &rt, config("vc", "198.18.35.2", None));
        let payload = v3_advert("198.18.34.100".parse().unwrap());
        rt.block_on(async {
            sa.send(&payload, group).await.unwrap();
            timeout(WAIT, on_vb.recv())
                .await
                .expect("vb got nothing")
                .unwrap();
            nothing(&on_vc, "the multicast socket bound to vc").await;
            sa_u.send(&payload, vc_addr).await.unwrap();
            let got = timeout(WAIT, on_vb_u.recv())
                .await
                .expect("vb got nothing")
                .unwrap();
            assert_eq!(got.dst, vc_addr);
            nothing(&on_vc_u, "the unicast socket bound to vc").await;
        });
    }

    /// What keepalived puts on the wire around an advert, per family: IPv4 TOS 0xc0, TTL
    /// 255, IDs counting from 1, no DF, a right header checksum; IPv6 traffic class 0xc0,
    /// hop limit 255.
    #[test]
    fn ip_header_is_keepalived_s() {
        for (family, tag, net) in [(Family::V4, "tvh4", 36), (Family::V6, "tvh6", 37)] {
            let (a, b) = pair(tag, net);
            let rt = runtime();
            let group = family.group();
            let a_src = family.multicast_src(net, 1);
            let sa = open(&a, &rt, config("va", &a_src, Some(group)));
            let capture = Capture::open(&b, "vb");
            let payload = family.advert(net);
            rt.block_on(async {
                sa.send(&payload, group).await.unwrap();
                sa.send(&payload, group).await.unwrap();
            });
            for id in [1u16, 2] {
                match family {
                    Family::V4 => check_ipv4_header(&capture, id, net, &payload),
                    Family::V6 => check_ipv6_header(&capture, &a_src),
                }
            }
        }
    }

    fn check_ipv4_header(capture: &Capture, id: u16, net: u8, payload: &[u8]) {
        let is_vrrp = |f: &[u8]| f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 112;
        let frame = capture.next(WAIT, is_vrrp);
        let ip = &frame[14..34];
        assert_eq!(
            frame[..6],
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12],
            "group MAC"
        );
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[1], 0xc0, "TOS");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(total, 20 + payload.len(), "total length");
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), id, "IP ID");
        assert_eq!(ip[6..8], [0, 0], "no DF, no fragment");
        assert_eq!(ip[8], 255, "TTL");
        assert_eq!(ip[12..16], [198, 18, net, 1]);
        assert_eq!(ip[16..20], [224, 0, 0, 18]);
        assert_eq!(checksum(ip), 0, "header checksum");
        assert_eq!(frame[34..], payload[..]);
    }

    fn check_ipv6_header(capture: &Capture, src: &str) {
        let is_vrrp = |f: &[u8]| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[20] == 112;
        let frame = capture.next(WAIT, is_vrrp);
        let ip = &frame[14..54];
        assert_eq!(frame[..6], [0x33, 0x33, 0, 0, 0, 0x12], "group MAC");
        let traffic_class = (u16::from_be_bytes([ip[0], ip[1]]) >> 4) as u8;
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(traffic_class, 0xc0);
        assert_eq!(ip[7], 255, "hop limit");
        assert_eq!(ip[8..24], src.parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(ip[24..40], VRRP_GROUP_V6.octets());
    }

    #[test]
    fn config_errors_name_the_problem() {
        let rt = runtime();
        let _guard = rt.enter();
        let wrong_family = config("lo", "::1", Some(IpAddr::V4(VRRP_GROUP_V4)));
        let err = VrrpSocket::open(&wrong_family).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("224.0.0.18"), "{err}");
        let no_such = config("no-such-if0", "198.18.0.1", None);
        let err = VrrpSocket::open(&no_such).unwrap_err();
        assert!(err.to_string().contains("no-such-if0"), "{err}");
    }

    #[test]
    fn open_outside_a_runtime_is_an_error() {
        let ns = Netns::new("tvrt").unwrap();
        let err = ns
            .run(|| VrrpSocket::open(&config("lo", "127.0.0.1", None)))
            .unwrap_err();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    #[test]
    fn ip_ids_skip_zero() {
        let rt = runtime();
        let ns = Netns::new("tvid").unwrap();
        let sock = open(&ns, &rt, config("lo", "127.0.0.1", None));
        sock.ip_id.store(u16::MAX - 1, Ordering::Relaxed);
        let ids: Vec<u16> = (0..3).map(|_| sock.next_ip_id()).collect();
        assert_eq!(ids, [u16::MAX, 1, 2]);
    }

    /// Interop with keepalived (installed by `cargo xtask setup`): keepalived's adverts reach
    /// our sockets as expected, and ours are accepted by it (a higher priority makes it back
    /// off) without any complaint in its log. Multicast and unicast, IPv4 and IPv6.
    #[test]
    fn keepalived_interop() {
        let (a, b) = pair("tvka", 38);
        let dir = TempDir::new();
        let log = dir.path.join("keepalived.log");
        let _keepalived = spawn_keepalived(&a, &dir, &log);
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

        let rt = runtime();
        let (g4, g6) = (IpAddr::V4(VRRP_GROUP_V4), IpAddr::V6(VRRP_GROUP_V6));
        let (ka4, ka6): (IpAddr, IpAddr) = (
            "198.18.38.1".parse().unwrap(),
            "2001:db8:38::1".parse().unwrap(),
        );
        let s4 = open(&b, &rt, config("vb", "198.18.38.2", Some(g4)));
        let s6 = open(&b, &rt, config("vb", "fe80::2", Some(g6)));
        let s4u = open(&b, &rt, config("vb", "198.18.38.2", None));
        let s6u = open(&b, &rt, config("vb", "2001:db8:38::2", None));
        let (vip4, vip4u) = ([198, 18, 38, 100], [198, 18, 38, 101]);
        let (vip6, vip6u): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:38::100".parse().unwrap(),
            "2001:db8:38::101".parse().unwrap(),
        );
        rt.block_on(async {
            let next = |s| next_advert(s, &log);
            let got = next(&s4).await;
            assert_eq!(
                (got.src, got.dst, got.ttl),
                ("198.18.38.1".parse().unwrap(), g4, 255)
            );
            assert_eq!(got.payload, v2_advert(51, 150, vip4, *b"secret1\0"));
            let got = next(&s6).await;
            assert_eq!(
                (got.src, got.dst, got.ttl),
                ("fe80::1".parse().unwrap(), g6, 255)
            );
            assert_eq!(got.payload[..6], [0x31, 52, 150, 1, 0x00, 0x64]);
            let got = next(&s4u).await;
            assert_eq!(
                (got.src, got.dst, got.ttl),
                (ka4, "198.18.38.2".parse().unwrap(), 255)
            );
            assert_eq!(got.payload, v3_advert_v4(53, 150, vip4u, got.src, got.dst));
            let got = next(&s6u).await;
            // No TTL check: keepalived leaves IPv6 unicast at the kernel's default hop limit.
            assert_eq!((got.src, got.dst), (ka6, "2001:db8:38::2".parse().unwrap()));
            assert_eq!(got.payload[..6], [0x31, 54, 150, 1, 0x00, 0x64]);

            // Our adverts, with a higher priority: keepalived must yield.
            for _ in 0..2 {
                s4.send(&v2_advert(51, 200, vip4, *b"secret1\0"), g4)
                    .await
                    .unwrap();
                s6.send(&v3_advert_v6(52, 200, vip6), g6).await.unwrap();
                let ours: IpAddr = "198.18.38.2".parse().unwrap();
                s4u.send(&v3_advert_v4(53, 200, vip4u, ours, ka4), ka4)
                    .await
                    .unwrap();
                s6u.send(&v3_advert_v6(54, 200, vip6u), ka6).await.unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let text = read_log();
        let accepted = [
            ("V4", "198.18.38.2"),
            ("V6", "fe80::2"),
            ("V4U", "198.18.38.2"),
            ("V6U", "2001:db8:38::2"),
        ];
        for (instance, from) in accepted {
            let line = format!(
                "({instance}) Master received advert from {from} with higher priority 200, ours 150"
            );
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
        let complaints = [
            "invalid",
            "mismatch",
            "not present",
            "unexpected",
            "expected",
            "too short",
            "too long",
            "wrong",
            "error",
        ];
        for bad in complaints {
            assert!(
                !text.to_lowercase().contains(bad),
                "keepalived complained ({bad}):\n{text}"
            );
        }
    }

    /// The next advert from keepalived, who becomes master after ~3.5 s of silence.
    async fn next_advert(sock: &VrrpSocket, log: &std::path::Path) -> Received {
        match timeout(Duration::from_secs(10), sock.recv()).await {
            Ok(got) => got.unwrap(),
            Err(_) => panic!(
                "no advert for {:?}; keepalived's log:\n{}",
                sock.config(),
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }

    /// Runs keepalived (VRRP only, logging to `log`) on `va` in `ns` with [`KEEPALIVED_CONF`].
    fn spawn_keepalived(ns: &Netns, dir: &TempDir, log: &std::path::Path) -> crate::netns::NsChild {
        let conf = dir.path.join("keepalived.conf");
        std::fs::write(&conf, KEEPALIVED_CONF).unwrap();
        let path = |name: &str| dir.path.join(name).display().to_string();
        let argv = [
            "keepalived",
            "-n",
            "-l",
            "-D",
            "--vrrp",
            "-f",
            &conf.display().to_string(),
            "-p",
            &path("keepalived.pid"),
            "-r",
            &path("vrrp.pid"),
        ];
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        ns.spawn_with(&argv, out.into(), err.into()).unwrap()
    }

    /// Four instances on va: VRRPv2 with a password over IPv4 multicast, VRRPv3 over IPv6
    /// multicast, VRRPv3 over IPv4 and IPv6 unicast.
    const KEEPALIVED_CONF: &str = "\
global_defs {
    router_id interop
}
vrrp_instance V4 {
    state MASTER
    interface va
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret1
    }
    virtual_ipaddress {
        198.18.38.100/24
    }
}
vrrp_instance V6 {
    state MASTER
    interface va
    virtual_router_id 52
    priority 150
    advert_int 1
    virtual_ipaddress {
        2001:db8:38::100/64
    }
}
vrrp_instance V4U {
    state MASTER
    version 3
    interface va
    virtual_router_id 53
    priority 150
    advert_int 1
    unicast_src_ip 198.18.38.1
    unicast_peer {
        198.18.38.2
    }
    virtual_ipaddress {
        198.18.38.101/24
    }
}
vrrp_instance V6U {
    state MASTER
    interface va
    virtual_router_id 54
    priority 150
    advert_int 1
    unicast_src_ip 2001:db8:38::1
    unicast_peer {
        2001:db8:38::2
    }
    virtual_ipaddress {
        2001:db8:38::101/64
    }
}
";

    /// A VRRPv3 IPv4 advert, 1 s interval, checksummed with the pseudo-header.
    fn v3_advert_v4(vrid: u8, priority: u8, vip: [u8; 4], src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (src, dst) else {
            panic!("IPv4 endpoints expected");
        };
        let mut p = vec![0x31, vrid, priority, 1, 0x00, 0x64, 0, 0];
        p.extend_from_slice(&vip);
        let mut summed = Vec::new();
        summed.extend_from_slice(&src.octets());
        summed.extend_from_slice(&dst.octets());
        summed.extend_from_slice(&[0, IPPROTO_VRRP, 0, p.len() as u8]);
        summed.extend_from_slice(&p);
        let sum = checksum(&summed);
        p[6..8].copy_from_slice(&sum.to_be_bytes());
        p
    }

    /// A VRRPv2 advert with one address and a simple password (the codec's job, redone
    /// here so the socket can be tested alone).
    fn v2_advert(vrid: u8, priority: u8, vip: [u8; 4], password: [u8; 8]) -> Vec<u8> {
        let mut p = vec![0x21, vrid, priority, 1, 1, 1, 0, 0];
        p.extend_from_slice(&vip);
        p.extend_from_slice(&password);
        let sum = checksum(&p);
        p[6..8].copy_from_slice(&sum.to_be_bytes());
        p
    }

    /// A VRRPv3 IPv6 advert, 1 s interval; the kernel fills the checksum.
    fn v3_advert_v6(vrid: u8, priority: u8, vip: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x31, vrid, priority, 1, 0x00, 0x64, 0, 0];
        p.extend_from_slice(&vip.octets());
        p
    }

    /// A directory removed on drop.
    struct TempDir {
        path: std::path::PathBuf,
    }

    impl TempDir {
        fn new() -> TempDir {
            let path = std::env::temp_dir().join(crate::netns::unique_name("vrrp-io"));
            std::fs::create_dir_all(&path).unwrap();
            TempDir { path }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
