//! Split-brain probes: is one of our VIPs held by another node?
//!
//! IPv4: an ARP request "who has VIP, tell <our primary address>" goes out of the
//! instance's interface from our MAC (the VIP is the target, so no neighbour learns
//! anything wrong from it); any node holding the VIP answers it. The same AF_PACKET
//! socket sees every ARP frame on the link, so a gratuitous ARP from another node for our
//! VIP counts too.
//!
//! IPv6: a neighbour solicitation for the VIP from our primary (link-local) address to
//! the VIP's solicited-node group, with our MAC as source link-layer address; a node
//! holding the VIP answers with a neighbour advertisement, which (like an unsolicited
//! one for our VIP) the socket sees among the link's IPv6 frames.
//!
//! Our own frames (the kernel loops outgoing frames back to packet sockets) carry our
//! MAC and are ignored.

use std::{
    io::{self, Read},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{unix::AsyncFd, Interest};

use super::{
    socket::register,
    vip::{self, hardware_address, link_layer_address},
};
use crate::net::checksum::{checksum, pseudo_header_v6};
use crate::net::proto::{
    BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_ALEN, ETH_HEADER_LEN,
    HW_ETHER, ICMPV6_NEIGHBOUR_ADVERT, IPPROTO_ICMPV6, ND_HOP_LIMIT,
};

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const ARP_LEN: usize = 28;
const FRAME_LEN: usize = ETH_HEADER_LEN + ARP_LEN;
const ICMPV6_NEIGHBOUR_SOLICIT: u8 = 135;
const ND_OPT_SOURCE_LL_ADDR: u8 = 1;
/// NS: type, code, checksum, reserved (8), target (16), source link-layer option (8).
const NS_ICMP_LEN: usize = 32;
const NS_FRAME_LEN: usize = ETH_HEADER_LEN + 40 + NS_ICMP_LEN;

/// Another node speaking for an address: the ARP sender, or the NA's target and sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub ip: IpAddr,
    pub mac: [u8; ETH_ALEN],
}

/// An AF_PACKET socket for ARP (IPv4) or IPv6 neighbour discovery on one interface.
pub struct VipProbe {
    fd: AsyncFd<Socket>,
    ifindex: i32,
    mac: [u8; ETH_ALEN],
    src: IpAddr,
}

impl VipProbe {
    /// Opens the socket on `ifname` (in the calling thread's network namespace); `src` is
    /// the sender address of our probes, and its family the VIPs' probed. Needs
    /// CAP_NET_RAW and a tokio runtime.
    pub fn open(ifname: &str, src: IpAddr) -> io::Result<VipProbe> {
        let ethertype = match src {
            IpAddr::V4(_) => ETHERTYPE_ARP,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        };
        let index = nix::net::if_::if_nametoindex(ifname)
            .map_err(|e| io::Error::other(format!("no interface {ifname}: {e}")))?;
        let ifindex = i32::try_from(index).map_err(|_| io::ErrorKind::InvalidInput)?;
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ethertype.to_be()))),
        )?;
        let (hw_type, mac) = hardware_address(&socket, ifname)?;
        if hw_type != HW_ETHER {
            return Err(io::Error::other(format!(
                "{ifname} is not an Ethernet interface (ARPHRD {hw_type})"
            )));
        }
        socket.bind(&link_layer_address(ifindex, ethertype, [0; ETH_ALEN]))?;
        socket.set_nonblocking(true)?;
        Ok(VipProbe {
            fd: register(socket)?,
            ifindex,
            mac,
            src,
        })
    }

    pub fn mac(&self) -> [u8; ETH_ALEN] {
        self.mac
    }

    /// Asks who has `vip` (of the probe's family; others are skipped).
    pub fn send(&self, vip: IpAddr) -> io::Result<()> {
        let (frame, ethertype, dst) = match (self.src, vip) {
            (IpAddr::V4(src), IpAddr::V4(vip)) => (
                request_frame(self.mac, src, vip).to_vec(),
                ETHERTYPE_ARP,
                BROADCAST_MAC,
            ),
            (IpAddr::V6(src), IpAddr::V6(vip)) => (
                solicit_frame(self.mac, src, vip).to_vec(),
                ETHERTYPE_IPV6,
                solicited_node_mac(vip),
            ),
            _ => return Ok(()),
        };
        let to = link_layer_address(self.ifindex, ethertype, dst);
        let sent = self.fd.get_ref().send_to(&frame, &to)?;
        if sent != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "frame partly sent",
            ));
        }
        Ok(())
    }

    /// The next ARP frame or neighbour advertisement sent by another MAC. Cancel safe.
    pub async fn recv(&self) -> io::Result<Sender> {
        let mut buf = [0u8; 1600];
        loop {
            let n = self
                .fd
                .async_io(Interest::READABLE, |s| (&*s).read(&mut buf))
                .await?;
            let frame = buf.get(..n).unwrap_or_default();
            let sender = match self.src {
                IpAddr::V4(_) => parse_sender(frame, self.mac),
                IpAddr::V6(_) => parse_advert(frame, self.mac),
            };
            if let Some(sender) = sender {
                return Ok(sender);
            }
        }
    }
}

/// An Ethernet + ARP request frame: sender `mac`/`src`, target ?/`target`.
pub fn request_frame(mac: [u8; ETH_ALEN], src: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    // Target MAC unknown: zero (RFC 826).
    vip::arp_request(mac, src, target, [0; ETH_ALEN])
}

/// 33:33:ff + the VIP's last three bytes: its solicited-node group's MAC.
fn solicited_node_mac(vip: Ipv6Addr) -> [u8; ETH_ALEN] {
    let o = vip.octets();
    [0x33, 0x33, 0xff, o[13], o[14], o[15]]
}

/// ff02::1:ffXX:XXXX for the VIP.
fn solicited_node(vip: Ipv6Addr) -> Ipv6Addr {
    let o = vip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// An Ethernet + IPv6 + ICMPv6 neighbour solicitation for `target` from `src`/`mac`.
pub fn solicit_frame(mac: [u8; ETH_ALEN], src: Ipv6Addr, target: Ipv6Addr) -> [u8; NS_FRAME_LEN] {
    let dst = solicited_node(target);
    let mut f = [0u8; NS_FRAME_LEN];
    f[0..6].copy_from_slice(&solicited_node_mac(target));
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let ip = &mut f[ETH_HEADER_LEN..ETH_HEADER_LEN + 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(NS_ICMP_LEN as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    let icmp = &mut f[ETH_HEADER_LEN + 40..];
    icmp[0] = ICMPV6_NEIGHBOUR_SOLICIT;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = ND_OPT_SOURCE_LL_ADDR;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let mut pseudo = pseudo_header_v6(src, dst, IPPROTO_ICMPV6, NS_ICMP_LEN as u32).to_vec();
    pseudo.extend_from_slice(icmp);
    let sum = checksum(&pseudo, 0);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A neighbour advertisement (no extension headers) from an Ethernet source other than
/// `own`: its target address and that MAC.
pub fn parse_advert(frame: &[u8], own: [u8; ETH_ALEN]) -> Option<Sender> {
    if frame.get(12..14)? != ETHERTYPE_IPV6.to_be_bytes() {
        return None;
    }
    let mac: [u8; ETH_ALEN] = frame.get(6..12)?.try_into().ok()?;
    let ip = frame.get(ETH_HEADER_LEN..ETH_HEADER_LEN + 40)?;
    let icmp = frame.get(ETH_HEADER_LEN + 40..)?;
    if mac == own
        || ip[0] >> 4 != 6
        || ip[6] != IPPROTO_ICMPV6
        || ip[7] != ND_HOP_LIMIT
        || *icmp.first()? != ICMPV6_NEIGHBOUR_ADVERT
    {
        return None;
    }
    let target: [u8; 16] = icmp.get(8..24)?.try_into().ok()?;
    Some(Sender {
        ip: IpAddr::V6(Ipv6Addr::from(target)),
        mac,
    })
}

/// The sender of an Ethernet/IPv4 ARP request or reply whose sender MAC is not `own`.
pub fn parse_sender(frame: &[u8], own: [u8; ETH_ALEN]) -> Option<Sender> {
    let arp = frame.get(ETH_HEADER_LEN..FRAME_LEN)?;
    let be16 = |i: usize| u16::from_be_bytes([arp[i], arp[i + 1]]);
    if frame.get(12..14)? != ETHERTYPE_ARP.to_be_bytes()
        || be16(0) != HW_ETHER
        || be16(2) != ETHERTYPE_IPV4
        || arp[4] != ETH_ALEN as u8
        || arp[5] != 4
        || !matches!(be16(6), ARP_REQUEST | ARP_REPLY)
    {
        return None;
    }
    let mac: [u8; ETH_ALEN] = arp[8..14].try_into().ok()?;
    if mac == own {
        return None;
    }
    let ip: [u8; 4] = arp[14..18].try_into().ok()?;
    Some(Sender {
        ip: IpAddr::V4(Ipv4Addr::from(ip)),
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const THEIRS: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn request_and_parse_round_trip() {
        let src = Ipv4Addr::new(198, 18, 0, 12);
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let f = request_frame(OURS, src, vip);
        assert_eq!(&f[0..6], &BROADCAST_MAC);
        assert_eq!(&f[ETH_HEADER_LEN + 24..], &vip.octets());
        assert_eq!(parse_sender(&f, OURS), None, "our own frame");
        assert_eq!(
            parse_sender(&f, THEIRS),
            Some(Sender {
                ip: IpAddr::V4(src),
                mac: OURS
            })
        );
        // A reply from the other holder of the VIP.
        let mut reply = request_frame(THEIRS, vip, src);
        reply[ETH_HEADER_LEN + 7] = 2;
        assert_eq!(
            parse_sender(&reply, OURS),
            Some(Sender {
                ip: IpAddr::V4(vip),
                mac: THEIRS
            })
        );
        // Not ARP for IPv4, or cut short.
        let mut other = reply;
        other[ETH_HEADER_LEN + 7] = 3;
        assert_eq!(parse_sender(&other, OURS), None);
        assert_eq!(parse_sender(&reply[..40], OURS), None);
        let mut v6 = reply;
        v6[ETH_HEADER_LEN + 2] = 0x86;
        assert_eq!(parse_sender(&v6, OURS), None);
    }

    #[test]
    fn solicitation_and_advert() {
        let src: Ipv6Addr = "fe80::12".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = solicit_frame(OURS, src, vip);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 1, 0]);
        assert_eq!(
            &f[ETH_HEADER_LEN + 24..ETH_HEADER_LEN + 40],
            &"ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap().octets()
        );
        // The checksum verifies over the pseudo-header and the message.
        let icmp = &f[ETH_HEADER_LEN + 40..];
        let mut pseudo =
            pseudo_header_v6(src, solicited_node(vip), IPPROTO_ICMPV6, NS_ICMP_LEN as u32).to_vec();
        pseudo.extend_from_slice(icmp);
        assert_eq!(checksum(&pseudo, 0), 0);
        assert_eq!(
            parse_advert(&f, THEIRS),
            None,
            "a solicitation, not an advert"
        );
        // The holder's answer: an NA for the VIP from its MAC.
        let mut na = f;
        na[6..12].copy_from_slice(&THEIRS);
        na[ETH_HEADER_LEN + 40] = ICMPV6_NEIGHBOUR_ADVERT;
        assert_eq!(
            parse_advert(&na, OURS),
            Some(Sender {
                ip: IpAddr::V6(vip),
                mac: THEIRS
            })
        );
        assert_eq!(parse_advert(&na, THEIRS), None, "our own");
        assert_eq!(parse_advert(&na[..60], OURS), None, "cut short");
    }
}
