//! PING_CHECK (keepalived `check_ping.c`): one ICMP (IPv4) or ICMPv6 (IPv6) echo request
//! with keepalived's 128-byte payload, and its echo reply within `connect_timeout`.
//!
//! The request goes out on an unprivileged ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP[V6]`)
//! where `net.ipv4.ping_group_range` allows it, else on a raw socket (root or
//! `CAP_NET_RAW`). keepalived instead widens `ping_group_range` to every group; lb-daemon
//! leaves the sysctl alone. A reply counts only when its identifier and sequence number
//! are the request's: a ping socket's identifier is its kernel-chosen "port" (the kernel
//! rewrites it and delivers only replies carrying it), a raw socket's is drawn at random
//! and checked here. Other ICMP messages on the socket are skipped.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU16, Ordering},
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use super::{io_reason, random_u64, Verdict};
use crate::health::spec::{Common, Target};
use crate::net::checksum::checksum;

/// keepalived's `ICMP_BUFSIZE`: payload bytes after the 8-byte ICMP header.
pub const PAYLOAD_LEN: usize = 128;
const ICMP_HEADER_LEN: usize = 8;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Sequence numbers, shared by every PING_CHECK of the process (a fresh one per request).
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// Which socket carried the echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// `SOCK_DGRAM` ping socket: no privilege needed where `ping_group_range` allows.
    Ping,
    /// `SOCK_RAW`: needs `CAP_NET_RAW`.
    Raw,
}

impl SocketKind {
    fn name(self) -> &'static str {
        match self {
            SocketKind::Ping => "ping socket",
            SocketKind::Raw => "raw socket",
        }
    }
}

pub(super) async fn run(target: Target, common: &Common) -> Verdict {
    let (socket, kind) = match open(target.addr, common.bind_to) {
        Ok(opened) => opened,
        Err(why) => return Verdict::down(why),
    };
    let exchange = echo(&socket, kind, target.addr);
    match tokio::time::timeout(common.connect_timeout, exchange).await {
        Ok(Ok(())) => Verdict::up(format!("echo reply ({})", kind.name())),
        Ok(Err(e)) => Verdict::down(io_reason(&e)),
        Err(_) => Verdict::down("timeout"),
    }
}

/// A ping socket when the kernel allows one, else a raw socket; bound to `bind_to`
/// and connected to `to` (a raw socket then only receives from `to`).
fn open(to: IpAddr, bind_to: Option<IpAddr>) -> Result<(UdpSocket, SocketKind), String> {
    let socket = match socket(to, SocketKind::Ping) {
        Ok(s) => (s, SocketKind::Ping),
        Err(ping_err) => match socket(to, SocketKind::Raw) {
            Ok(s) => (s, SocketKind::Raw),
            Err(raw_err) => {
                return Err(format!(
                    "no ICMP socket: ping socket: {ping_err} (see net.ipv4.ping_group_range); \
                     raw socket: {raw_err} (needs CAP_NET_RAW)"
                ))
            }
        },
    };
    let (socket, kind) = socket;
    if let Some(source) = bind_to {
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|e| format!("bind to {source}: {e}"))?;
    }
    socket
        .connect(&SockAddr::from(SocketAddr::new(to, 0)))
        .map_err(|e| io_reason(&e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("ICMP socket: {e}"))?;
    let std_socket: std::net::UdpSocket = socket.into();
    // Any datagram-style fd works under tokio's UdpSocket (send/recv only).
    let socket = UdpSocket::from_std(std_socket).map_err(|e| format!("ICMP socket: {e}"))?;
    Ok((socket, kind))
}

/// An ICMP socket of `kind` for `to`'s family.
pub fn socket(to: IpAddr, kind: SocketKind) -> io::Result<Socket> {
    let (domain, protocol) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let ty = match kind {
        SocketKind::Ping => Type::DGRAM,
        SocketKind::Raw => Type::RAW,
    };
    Socket::new(domain, ty.cloexec(), Some(protocol))
}

/// Sends one echo request and waits (unbounded: the caller times out) for its reply.
async fn echo(socket: &UdpSocket, kind: SocketKind, to: IpAddr) -> io::Result<()> {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    // A ping socket's identifier is set by the kernel; read it back to match replies.
    let identifier = match kind {
        SocketKind::Ping => socket.local_addr()?.port(),
        SocketKind::Raw => random_u64() as u16,
    };
    let v6 = to.is_ipv6();
    socket.send(&request(v6, identifier, sequence)).await?;
    let mut buf = [0u8; 2048];
    loop {
        let len = socket.recv(&mut buf).await?;
        // A raw IPv4 socket receives the IP header too; the others start at ICMP.
        let icmp = if kind == SocketKind::Raw && !v6 {
            strip_ipv4_header(&buf[..len])
        } else {
            Some(&buf[..len])
        };
        if icmp.is_some_and(|m| is_reply(m, v6, identifier, sequence)) {
            return Ok(());
        }
    }
}

/// An echo request: type, code 0, checksum, identifier, sequence, then 128 bytes of
/// payload as keepalived sends (a letter pattern here; a peer echoes any payload).
/// The ICMPv4 checksum is filled in (the kernel recomputes it on a ping socket);
/// the kernel always computes ICMPv6's.
pub fn request(v6: bool, identifier: u16, sequence: u16) -> Vec<u8> {
    let mut m = vec![0u8; ICMP_HEADER_LEN + PAYLOAD_LEN];
    m[0] = if v6 {
        ICMPV6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    };
    m[4..6].copy_from_slice(&identifier.to_be_bytes());
    m[6..8].copy_from_slice(&sequence.to_be_bytes());
    for (i, b) in m[ICMP_HEADER_LEN..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    if !v6 {
        let sum = checksum(&m, 0);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    m
}

/// Whether `m` (an ICMP message) is the echo reply to `identifier`/`sequence`.
pub fn is_reply(m: &[u8], v6: bool, identifier: u16, sequence: u16) -> bool {
    let reply = if v6 {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    m.len() >= ICMP_HEADER_LEN
        && m[0] == reply
        && m[1] == 0
        && m[4..6] == identifier.to_be_bytes()
        && m[6..8] == sequence.to_be_bytes()
}

/// The payload of an IPv4 packet (its header's length from IHL), if well formed.
fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    (first >> 4 == 4 && ihl >= 20).then_some(())?;
    packet.get(ihl..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_type_id_seq_payload_and_a_valid_v4_checksum() {
        for v6 in [false, true] {
            let m = request(v6, 0x1234, 0xbeef);
            assert_eq!(m.len(), 8 + 128);
            assert_eq!(m[0], if v6 { 128 } else { 8 });
            assert_eq!(m[1], 0);
            assert_eq!(&m[4..8], &[0x12, 0x34, 0xbe, 0xef]);
            assert_eq!(&m[8..11], b"abc");
            if v6 {
                assert_eq!(&m[2..4], &[0, 0], "the kernel fills ICMPv6's checksum");
            } else {
                assert_eq!(checksum(&m, 0), 0, "checksum verifies");
            }
        }
    }

    #[test]
    fn only_the_matching_echo_reply_counts() {
        // (message, v6, matches)
        let reply = |ty: u8, id: u16, seq: u16| {
            let mut m = vec![ty, 0, 0, 0];
            m.extend(id.to_be_bytes());
            m.extend(seq.to_be_bytes());
            m
        };
        let table = [
            (reply(0, 7, 9), false, true),
            (reply(129, 7, 9), true, true),
            (reply(0, 7, 9), true, false), // an ICMPv4 reply type on v6
            (reply(8, 7, 9), false, false), // our own request (raw socket on loopback)
            (reply(128, 7, 9), true, false), // ditto, IPv6
            (reply(0, 8, 9), false, false), // another identifier
            (reply(0, 7, 10), false, false), // another sequence
            (reply(3, 7, 9), false, false), // destination unreachable
            (reply(0, 7, 9)[..7].to_vec(), false, false), // short
        ];
        for (m, v6, expected) in table {
            assert_eq!(is_reply(&m, v6, 7, 9), expected, "{m:?} v6={v6}");
        }
    }

    #[test]
    fn raw_ipv4_packets_lose_their_header() {
        let mut packet = vec![0x46u8; 24]; // IHL 6: 24-byte header with options
        packet.extend([0, 0, 0, 0, 0, 7, 0, 9]);
        assert_eq!(strip_ipv4_header(&packet), Some(&packet[24..]));
        assert_eq!(strip_ipv4_header(&[0x60; 40]), None, "not IPv4");
        assert_eq!(strip_ipv4_header(&[0x44; 40]), None, "IHL below 5");
        assert_eq!(strip_ipv4_header(&[]), None);
    }
}
