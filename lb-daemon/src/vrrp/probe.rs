//! Split-brain probes: is one of our VIPs held by another node?
//!
//! An ARP request "who has VIP, tell <our primary address>" goes out of the instance's
//! interface from our MAC (the VIP is the target, so no neighbour learns anything wrong
//! from it); any node holding the VIP answers it. The same AF_PACKET socket sees every
//! ARP frame on the link, so a gratuitous ARP from another node for our VIP counts too.
//! Our own frames (the kernel loops outgoing frames back to packet sockets) carry our
//! MAC and are ignored. IPv4 only: IPv6 VIPs are not probed (adverts from another master
//! still count, see [`super::split_brain`]).

use std::{
    io::{self, Read},
    net::Ipv4Addr,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{unix::AsyncFd, Interest};

use super::{
    socket::register,
    vip::{hardware_address, link_layer_address},
};
use crate::net::proto::{
    BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_ALEN, ETH_HEADER_LEN, HW_ETHER,
};

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const ARP_LEN: usize = 28;
const FRAME_LEN: usize = ETH_HEADER_LEN + ARP_LEN;

/// Another node speaking for an address: the ARP sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub ip: Ipv4Addr,
    pub mac: [u8; ETH_ALEN],
}

/// An AF_PACKET socket for ARP on one interface.
pub struct ArpProbe {
    fd: AsyncFd<Socket>,
    ifindex: i32,
    mac: [u8; ETH_ALEN],
    src: Ipv4Addr,
}

impl ArpProbe {
    /// Opens the socket on `ifname` (in the calling thread's network namespace); `src` is
    /// the sender address of our requests. Needs CAP_NET_RAW and a tokio runtime.
    pub fn open(ifname: &str, src: Ipv4Addr) -> io::Result<ArpProbe> {
        let index = nix::net::if_::if_nametoindex(ifname)
            .map_err(|e| io::Error::other(format!("no interface {ifname}: {e}")))?;
        let ifindex = i32::try_from(index).map_err(|_| io::ErrorKind::InvalidInput)?;
        let socket = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETHERTYPE_ARP.to_be()))),
        )?;
        let (hw_type, mac) = hardware_address(&socket, ifname)?;
        if hw_type != HW_ETHER {
            return Err(io::Error::other(format!(
                "{ifname} is not an Ethernet interface (ARPHRD {hw_type})"
            )));
        }
        socket.bind(&link_layer_address(ifindex, ETHERTYPE_ARP, [0; ETH_ALEN]))?;
        socket.set_nonblocking(true)?;
        Ok(ArpProbe {
            fd: register(socket)?,
            ifindex,
            mac,
            src,
        })
    }

    pub fn mac(&self) -> [u8; ETH_ALEN] {
        self.mac
    }

    /// Broadcasts "who has `vip`, tell <src>".
    pub fn send(&self, vip: Ipv4Addr) -> io::Result<()> {
        let frame = request_frame(self.mac, self.src, vip);
        let to = link_layer_address(self.ifindex, ETHERTYPE_ARP, BROADCAST_MAC);
        let sent = self.fd.get_ref().send_to(&frame, &to)?;
        if sent != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "frame partly sent",
            ));
        }
        Ok(())
    }

    /// The next ARP frame sent by another MAC. Cancel safe.
    pub async fn recv(&self) -> io::Result<Sender> {
        let mut buf = [0u8; 128];
        loop {
            let n = self
                .fd
                .async_io(Interest::READABLE, |s| (&*s).read(&mut buf))
                .await?;
            if let Some(sender) = buf.get(..n).and_then(|f| parse_sender(f, self.mac)) {
                return Ok(sender);
            }
        }
    }
}

/// An Ethernet + ARP request frame: sender `mac`/`src`, target ?/`target`.
pub fn request_frame(mac: [u8; ETH_ALEN], src: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&BROADCAST_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let arp = &mut f[ETH_HEADER_LEN..];
    arp[0..2].copy_from_slice(&HW_ETHER.to_be_bytes());
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = ETH_ALEN as u8;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    arp[8..14].copy_from_slice(&mac);
    arp[14..18].copy_from_slice(&src.octets());
    // Target MAC unknown: zero (RFC 826).
    arp[24..28].copy_from_slice(&target.octets());
    f
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
        ip: Ipv4Addr::from(ip),
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
            Some(Sender { ip: src, mac: OURS })
        );
        // A reply from the other holder of the VIP.
        let mut reply = request_frame(THEIRS, vip, src);
        reply[ETH_HEADER_LEN + 7] = 2;
        assert_eq!(
            parse_sender(&reply, OURS),
            Some(Sender {
                ip: vip,
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
}
