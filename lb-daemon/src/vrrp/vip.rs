//! Virtual IP addresses: adding and removing them (rtnetlink) and announcing them to the
//! segment (gratuitous ARP for IPv4, unsolicited neighbour advertisement for IPv6).
//!
//! Matches keepalived 2.2.7 (`vrrp_ipaddress.c`, `vrrp_arp.c`, `vrrp_ndisc.c`), checked
//! against what it puts on an interface and on the wire:
//!
//! - addresses are added like `ip addr add A/P dev D label L`: no broadcast address, scope
//!   global; IPv6 ones with IFA_F_NODAD so they are usable at once, without waiting for DAD;
//! - a gratuitous ARP is a broadcast ARP *request* with sender and target IP = the VIP,
//!   sender MAC = the interface's MAC and target MAC ff:ff:ff:ff:ff:ff;
//! - an unsolicited NA goes from the VIP to ff02::1 (MAC 33:33:00:00:00:01), hop limit 255,
//!   override flag set, router flag set when the interface forwards IPv6, with a target
//!   link-layer address option carrying the interface's MAC.
//!
//! Both announcements are whole Ethernet frames sent through an AF_PACKET socket, one per
//! call: how many, and how often, is the caller's policy.
//!
//! Everything happens in the calling thread's network namespace (for [`VipManager`]: the one
//! it was created in).

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};

use crate::net::address::{self, OnLink};
use crate::net::checksum::{checksum, pseudo_header_v6};
use crate::net::link;
use crate::net::proto::{
    ALL_NODES, ALL_NODES_MAC, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETH_ALEN, ETH_HEADER_LEN, HW_ETHER, ICMPV6_NEIGHBOUR_ADVERT, IFNAME_MAX, IPPROTO_ICMPV6,
    ND_HOP_LIMIT,
};
use crate::net::rtnl::{self, errno};

const ARP_REQUEST: u16 = 1;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
pub(super) const GARP_LEN: usize = ETH_HEADER_LEN + 28;
/// NA: 4 bytes type/code/checksum, 4 flags, 16 target, 8 option.
const NA_ICMP_LEN: usize = 32;
const NA_LEN: usize = ETH_HEADER_LEN + 40 + NA_ICMP_LEN;

/// A virtual address as configured: `addr/prefix dev DEV [label LABEL]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: String,
    /// IPv4 only (the kernel has no labels for IPv6 addresses; ignored there).
    pub label: Option<String>,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} dev {}", self.addr, self.prefix, self.dev)?;
        match &self.label {
            Some(label) => write!(f, " label {label}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("no tokio runtime: VipManager::new must be called inside a tokio runtime")]
    NoRuntime,
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] io::Error),
    #[error("interface {dev} does not exist (needed for {what}): check the name (`ip link`)")]
    NoInterface { dev: String, what: String },
    #[error("invalid VIP {vip}: {reason}")]
    Invalid { vip: String, reason: String },
    #[error("cannot {op} VIP {vip}: {source}{}", netlink_hint(.source))]
    Netlink {
        op: &'static str,
        vip: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error(
        "interface {dev} is not Ethernet (hardware type {hw_type}): \
         cannot send {what} for {addr} on it"
    )]
    NotEthernet {
        dev: String,
        hw_type: u16,
        what: &'static str,
        addr: IpAddr,
    },
    #[error("cannot send {what} for {addr} on {dev}: {source}{}", send_hint(.source))]
    Send {
        what: &'static str,
        addr: IpAddr,
        dev: String,
        #[source]
        source: io::Error,
    },
}

/// Adds, removes and looks up addresses in the network namespace it was created in.
#[derive(Debug, Clone)]
pub struct VipManager {
    handle: rtnetlink::Handle,
}

impl VipManager {
    /// Opens a netlink socket (in the calling thread's network namespace) and spawns its
    /// connection task. Must be called inside a tokio runtime (or with one entered).
    pub fn new() -> Result<Self, VipError> {
        let handle = rtnl::connect().map_err(|e| match e {
            rtnl::ConnectError::NoRuntime => VipError::NoRuntime,
            rtnl::ConnectError::Socket(e) => VipError::Socket(e),
        })?;
        Ok(VipManager { handle })
    }

    /// The rtnetlink handle (routes and rules go through the same socket).
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Adds the address (with prefix and label, like `ip addr add A/P dev D label L`); an
    /// address already there is fine. IPv6 addresses are added with IFA_F_NODAD so they can
    /// be used (and announced) at once, as keepalived does.
    pub async fn add(&self, vip: &Vip) -> Result<(), VipError> {
        check_vip(vip)?;
        let index = self.ifindex(&vip.dev, vip).await?;
        address::add(&self.handle, on_link(index, vip))
            .await
            .map_err(|source| netlink_error("add", vip, source))
    }

    /// Removes the address; an address (or interface) already gone is fine.
    pub async fn remove(&self, vip: &Vip) -> Result<(), VipError> {
        check_vip(vip)?;
        let index = match self.ifindex(&vip.dev, vip).await {
            Err(VipError::NoInterface { .. }) => return Ok(()),
            result => result?,
        };
        address::remove(&self.handle, on_link(index, vip))
            .await
            .map_err(|source| netlink_error("remove", vip, source))
    }

    /// Whether the address, with this prefix length, is on the interface.
    pub async fn present(&self, vip: &Vip) -> Result<bool, VipError> {
        check_vip(vip)?;
        let index = self.ifindex(&vip.dev, vip).await?;
        address::contains(&self.handle, on_link(index, vip))
            .await
            .map_err(|source| netlink_error("look up", vip, source))
    }

    async fn ifindex(&self, dev: &str, vip: &Vip) -> Result<u32, VipError> {
        let no_interface = || VipError::NoInterface {
            dev: dev.to_owned(),
            what: format!("VIP {vip}"),
        };
        match link::by_name(&self.handle, dev).await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(no_interface()),
            Err(e) if matches!(errno(&e), Some(libc::ENODEV | libc::EINVAL)) => Err(no_interface()),
            Err(source) => Err(netlink_error("look up the interface of", vip, source)),
        }
    }
}

fn check_vip(vip: &Vip) -> Result<(), VipError> {
    let invalid = |reason: String| {
        Err(VipError::Invalid {
            vip: vip.to_string(),
            reason,
        })
    };
    let max_prefix = if vip.addr.is_ipv4() { 32 } else { 128 };
    if vip.prefix > max_prefix {
        return invalid(format!("prefix length above {max_prefix}"));
    }
    if vip.dev.is_empty() || vip.dev.len() > IFNAME_MAX {
        return invalid(format!("interface name must be 1..={IFNAME_MAX} bytes"));
    }
    match &vip.label {
        // The kernel would silently truncate it.
        Some(label) if label.len() > IFNAME_MAX => {
            invalid(format!("label longer than {IFNAME_MAX} bytes"))
        }
        _ => Ok(()),
    }
}

fn on_link(ifindex: u32, vip: &Vip) -> OnLink<'_> {
    OnLink {
        ifindex,
        addr: vip.addr,
        prefix: vip.prefix,
        label: vip.label.as_deref(),
    }
}

fn netlink_error(op: &'static str, vip: &Vip, source: rtnetlink::Error) -> VipError {
    VipError::Netlink {
        op,
        vip: vip.to_string(),
        source,
    }
}

fn netlink_hint(e: &rtnetlink::Error) -> &'static str {
    match errno(e) {
        Some(libc::EPERM | libc::EACCES) => " (run as root or with CAP_NET_ADMIN)",
        Some(libc::EINVAL) => " (check the address and prefix length)",
        _ => "",
    }
}

fn send_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => " (run as root or with CAP_NET_RAW)",
        Some(libc::ENETDOWN) => " (the interface is down: bring it up)",
        Some(libc::ENXIO | libc::ENODEV) => " (the interface has gone)",
        _ => "",
    }
}

/// Sends one gratuitous ARP for `vip` on `ifname`: a broadcast ARP request with sender and
/// target IP = `vip`, from the interface's MAC (what keepalived sends).
pub fn send_garp(ifname: &str, vip: Ipv4Addr) -> Result<(), VipError> {
    const WHAT: &str = "gratuitous ARP";
    let link = Link::open(ifname, WHAT, IpAddr::V4(vip))?;
    let frame = garp_frame(link.mac, vip);
    link.send(&frame, ETHERTYPE_ARP, BROADCAST_MAC)
}

/// Sends one unsolicited neighbour advertisement for `vip` on `ifname`, from `vip` to
/// ff02::1, hop limit 255, override flag set, router flag set if the interface forwards IPv6,
/// target link-layer address option = the interface's MAC (what keepalived sends).
pub fn send_unsolicited_na(ifname: &str, vip: Ipv6Addr) -> Result<(), VipError> {
    const WHAT: &str = "unsolicited neighbour advertisement";
    let link = Link::open(ifname, WHAT, IpAddr::V6(vip))?;
    let frame = na_frame(link.mac, vip, ipv6_forwarding(ifname));
    link.send(&frame, ETHERTYPE_IPV6, ALL_NODES_MAC)
}

/// The gratuitous ARP frame: an ARP request for the VIP from the VIP, broadcast as
/// the target MAC (what keepalived sends).
fn garp_frame(mac: [u8; ETH_ALEN], vip: Ipv4Addr) -> [u8; GARP_LEN] {
    arp_request(mac, vip, vip, BROADCAST_MAC)
}

/// An Ethernet broadcast carrying an ARP request: sender `mac`/`sender`, target
/// `target_mac`/`target` (zero when unknown, RFC 826; broadcast in a gratuitous ARP).
pub(super) fn arp_request(
    mac: [u8; ETH_ALEN],
    sender: Ipv4Addr,
    target: Ipv4Addr,
    target_mac: [u8; ETH_ALEN],
) -> [u8; GARP_LEN] {
    let mut f = [0u8; GARP_LEN];
    ethernet_header(&mut f, BROADCAST_MAC, mac, ETHERTYPE_ARP);
    let arp = &mut f[ETH_HEADER_LEN..];
    arp[0..2].copy_from_slice(&HW_ETHER.to_be_bytes());
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = ETH_ALEN as u8;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    arp[8..14].copy_from_slice(&mac);
    arp[14..18].copy_from_slice(&sender.octets());
    arp[18..24].copy_from_slice(&target_mac);
    arp[24..28].copy_from_slice(&target.octets());
    f
}

/// The unsolicited NA frame: Ethernet header, IPv6 header, ICMPv6 NA with one option.
fn na_frame(mac: [u8; ETH_ALEN], vip: Ipv6Addr, router: bool) -> [u8; NA_LEN] {
    let mut f = [0u8; NA_LEN];
    ethernet_header(&mut f, ALL_NODES_MAC, mac, ETHERTYPE_IPV6);
    let ip = &mut f[ETH_HEADER_LEN..ETH_HEADER_LEN + 40];
    ip[0] = 0x60; // version 6, traffic class and flow label 0
    ip[4..6].copy_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&vip.octets());
    ip[24..40].copy_from_slice(&ALL_NODES.octets());
    let icmp = &mut f[ETH_HEADER_LEN + 40..];
    icmp[0] = ICMPV6_NEIGHBOUR_ADVERT;
    icmp[4] = NA_FLAG_OVERRIDE | if router { NA_FLAG_ROUTER } else { 0 };
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = ND_OPT_TARGET_LL_ADDR;
    icmp[25] = 1; // option length in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(vip, ALL_NODES, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

fn ethernet_header(frame: &mut [u8], dst: [u8; ETH_ALEN], src: [u8; ETH_ALEN], ethertype: u16) {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// ICMPv6 checksum: over the pseudo-header (src, dst, length, next header) and the message.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&pseudo_header_v6(src, dst, IPPROTO_ICMPV6, len));
    pseudo.extend_from_slice(message);
    checksum(&pseudo, 0)
}

/// Whether `ifname` forwards IPv6: keepalived then sets the NA router flag. Read through
/// /proc/sys/net, which shows the calling thread's network namespace.
fn ipv6_forwarding(ifname: &str) -> bool {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding");
    match std::fs::read_to_string(&path) {
        Ok(value) => value.trim() != "0",
        Err(e) => {
            tracing::debug!(%path, "cannot read IPv6 forwarding ({e}): router flag left clear");
            false
        }
    }
}

/// An AF_PACKET socket to send whole frames on one Ethernet interface.
struct Link {
    socket: Socket,
    ifname: String,
    ifindex: i32,
    mac: [u8; ETH_ALEN],
    what: &'static str,
    addr: IpAddr,
}

impl Link {
    /// `what` and `addr` say what is being sent, for error messages.
    fn open(ifname: &str, what: &'static str, addr: IpAddr) -> Result<Link, VipError> {
        let send_error = |source| VipError::Send {
            what,
            addr,
            dev: ifname.to_owned(),
            source,
        };
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|_| VipError::NoInterface {
            dev: ifname.to_owned(),
            what: format!("{what} for {addr}"),
        })?;
        let ifindex =
            i32::try_from(ifindex).map_err(|_| send_error(io::ErrorKind::InvalidInput.into()))?;
        let socket = packet_socket().map_err(send_error)?;
        let (hw_type, hwaddr) = hardware_address(&socket, ifname).map_err(send_error)?;
        if hw_type != HW_ETHER {
            return Err(VipError::NotEthernet {
                dev: ifname.to_owned(),
                hw_type,
                what,
                addr,
            });
        }
        Ok(Link {
            socket,
            ifname: ifname.to_owned(),
            ifindex,
            mac: hwaddr,
            what,
            addr,
        })
    }

    fn send(&self, frame: &[u8], ethertype: u16, dst: [u8; ETH_ALEN]) -> Result<(), VipError> {
        let to = link_layer_address(self.ifindex, ethertype, dst);
        let source = match self.socket.send_to(frame, &to) {
            Ok(sent) if sent == frame.len() => return Ok(()),
            Ok(_) => io::Error::new(io::ErrorKind::WriteZero, "frame partly sent"),
            Err(e) => e,
        };
        Err(VipError::Send {
            what: self.what,
            addr: self.addr,
            dev: self.ifname.clone(),
            source,
        })
    }
}

/// A send-only packet socket (protocol 0: the kernel queues nothing to it).
fn packet_socket() -> io::Result<Socket> {
    Socket::new(Domain::PACKET, Type::RAW, None)
}

/// The sockaddr_ll a frame for `dst` (of `ethertype`) goes out of interface `ifindex` with.
pub(super) fn link_layer_address(ifindex: i32, ethertype: u16, dst: [u8; ETH_ALEN]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll is one of this platform's sockaddr types (and fits the storage).
    let sll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex;
    sll.sll_halen = ETH_ALEN as u8;
    sll.sll_addr[..ETH_ALEN].copy_from_slice(&dst);
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the family is AF_PACKET and `len` the size of the sockaddr_ll filled in above.
    unsafe { SockAddr::new(storage, len) }
}

/// The hardware type (ARPHRD_*) and address of `ifname` (SIOCGIFHWADDR).
pub(super) fn hardware_address(socket: &Socket, ifname: &str) -> io::Result<(u16, [u8; ETH_ALEN])> {
    // SAFETY: ifreq is plain data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() > IFNAME_MAX {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the kernel fills it in
    // (socket2 has no SIOCGIFHWADDR).
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR succeeded, so the hwaddr member of the union is the one set.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; ETH_ALEN];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data) {
        *dst = src as u8;
    }
    Ok((hw.sa_family, mac))
}

#[cfg(test)]
mod tests {
    //! These tests need root and iproute2; they fail (rather than skip) without them.

    use std::time::{Duration, Instant};

    use super::*;
    use crate::netns::Netns;
    use crate::vrrp::socket::testing::{
        checksum, in_ns, mac, pair, pseudo_header_v6, runtime, Capture,
    };

    const WAIT: Duration = Duration::from_secs(3);

    fn vip(addr: &str, prefix: u8, dev: &str, label: Option<&str>) -> Vip {
        Vip {
            addr: addr.parse().unwrap(),
            prefix,
            dev: dev.to_owned(),
            label: label.map(str::to_owned),
        }
    }

    /// `ip -o addr show dev DEV` lines mentioning `needle`.
    fn addr_lines(ns: &Netns, dev: &str, needle: &str) -> Vec<String> {
        let out = ns.ip(&["-o", "addr", "show", "dev", dev]).unwrap();
        out.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `ip neigh show ADDR dev DEV` mentions `lladdr`.
    fn wait_neighbour(ns: &Netns, addr: &str, dev: &str, lladdr: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = ns.ip(&["neigh", "show", addr, "dev", dev]).unwrap();
            if out.contains(lladdr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{addr} never became {lladdr}: {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn mac_text(mac: [u8; 6]) -> String {
        let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
        parts.join(":")
    }

    #[test]
    fn ipv4_vip_with_label_comes_and_goes() {
        let (a, _b) = pair("tvv4", 40);
        let rt = runtime();
        let manager = in_ns(&a, &rt, VipManager::new).unwrap();
        let v = vip("198.18.40.100", 24, "va", Some("va:vip"));
        rt.block_on(async {
            assert!(!manager.present(&v).await.unwrap());
            manager.add(&v).await.unwrap();
            manager.add(&v).await.unwrap(); // already there: fine
            assert!(manager.present(&v).await.unwrap());
            // Same address, other prefix: not this VIP.
            let other = Vip {
                prefix: 25,
                ..v.clone()
            };
            assert!(!manager.present(&other).await.unwrap());
        });
        let lines = addr_lines(&a, "va", "198.18.40.100/24");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("va:vip"), "label missing: {}", lines[0]);
        // Like `ip addr add`: no broadcast address.
        assert!(!lines[0].contains("brd"), "{}", lines[0]);
        rt.block_on(async {
            manager.remove(&v).await.unwrap();
            manager.remove(&v).await.unwrap(); // already gone: fine
            assert!(!manager.present(&v).await.unwrap());
        });
        assert!(addr_lines(&a, "va", "198.18.40.100").is_empty());
        // The primary address is untouched.
        assert_eq!(addr_lines(&a, "va", "198.18.40.1/24").len(), 1);
    }

    #[test]
    fn ipv6_vip_is_usable_at_once() {
        let (a, _b) = pair("tvv6", 41);
        let rt = runtime();
        let manager = in_ns(&a, &rt, VipManager::new).unwrap();
        let v = vip("2001:db8:41::100", 64, "va", None);
        rt.block_on(async {
            manager.add(&v).await.unwrap();
            manager.add(&v).await.unwrap();
            assert!(manager.present(&v).await.unwrap());
        });
        let lines = addr_lines(&a, "va", "2001:db8:41::100/64");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("nodad"), "{}", lines[0]);
        assert!(!lines[0].contains("tentative"), "{}", lines[0]);
        // Usable: something can be sent from it right away.
        a.sh("ping -6 -c1 -W1 -I 2001:db8:41::100 2001:db8:41::2")
            .unwrap();
        rt.block_on(async {
            manager.remove(&v).await.unwrap();
            manager.remove(&v).await.unwrap();
            assert!(!manager.present(&v).await.unwrap());
        });
        assert!(addr_lines(&a, "va", "2001:db8:41::100").is_empty());
    }

    #[test]
    fn errors_name_the_vip_and_interface() {
        let ns = Netns::new("tvve").unwrap();
        let rt = runtime();
        let manager = in_ns(&ns, &rt, VipManager::new).unwrap();
        let missing = vip("198.18.42.100", 24, "nosuch0", None);
        rt.block_on(async {
            let err = manager.add(&missing).await.unwrap_err().to_string();
            assert!(
                err.contains("nosuch0") && err.contains("198.18.42.100"),
                "{err}"
            );
            assert!(manager.present(&missing).await.is_err());
            // Nothing to remove from an interface that does not exist.
            manager.remove(&missing).await.unwrap();
            let bad = vip("198.18.42.100", 33, "lo", None);
            let err = manager.add(&bad).await.unwrap_err().to_string();
            assert!(err.contains("prefix"), "{err}");
        });
        let err = ns.run(|| send_garp("nosuch0", Ipv4Addr::new(198, 18, 42, 100)));
        assert!(matches!(err, Err(VipError::NoInterface { .. })), "{err:?}");
        let err = ns.run(|| send_garp("lo", Ipv4Addr::new(198, 18, 42, 100)));
        assert!(matches!(err, Err(VipError::NotEthernet { .. })), "{err:?}");
    }

    #[test]
    fn new_outside_a_runtime_is_an_error() {
        assert!(matches!(VipManager::new(), Err(VipError::NoRuntime)));
    }

    #[test]
    fn gratuitous_arp_is_keepalived_s_and_updates_the_peer() {
        let (a, b) = pair("tvga", 43);
        let a_mac = mac(&a, "va");
        // The peer has a stale, wrong entry for the VIP: the GARP must correct it.
        b.ip(&[
            "neigh",
            "replace",
            "198.18.43.100",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "vb",
            "nud",
            "stale",
        ])
        .unwrap();
        let capture = Capture::open(&b, "vb");
        a.run(|| send_garp("va", Ipv4Addr::new(198, 18, 43, 100)))
            .unwrap();
        let frame = capture.next(WAIT, |f| f.len() >= 42 && f[12..14] == [0x08, 0x06]);
        let mut expected = vec![0xff; 6];
        expected.extend_from_slice(&a_mac);
        expected.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        expected.extend_from_slice(&a_mac);
        expected.extend_from_slice(&[198, 18, 43, 100]);
        expected.extend_from_slice(&[0xff; 6]);
        expected.extend_from_slice(&[198, 18, 43, 100]);
        assert_eq!(frame[..42], expected[..], "{frame:02x?}");
        wait_neighbour(&b, "198.18.43.100", "vb", &mac_text(a_mac));
    }

    #[test]
    fn unsolicited_na_is_keepalived_s_and_updates_the_peer() {
        let (a, b) = pair("tvna", 44);
        let a_mac = mac(&a, "va");
        let target: Ipv6Addr = "2001:db8:44::100".parse().unwrap();
        b.ip(&[
            "neigh",
            "replace",
            "2001:db8:44::100",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "vb",
            "nud",
            "stale",
        ])
        .unwrap();
        let capture = Capture::open(&b, "vb");
        let is_na =
            |f: &[u8]| f.len() >= 86 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 136;

        a.run(move || send_unsolicited_na("va", target)).unwrap();
        let frame = capture.next(WAIT, is_na);
        check_na(&frame, a_mac, target, NA_FLAG_OVERRIDE);
        wait_neighbour(&b, "2001:db8:44::100", "vb", &mac_text(a_mac));

        // A router says so, as keepalived does when the interface forwards.
        a.sh("sysctl -qw net.ipv6.conf.va.forwarding=1").unwrap();
        a.run(move || send_unsolicited_na("va", target)).unwrap();
        let frame = capture.next(WAIT, is_na);
        check_na(&frame, a_mac, target, NA_FLAG_OVERRIDE | NA_FLAG_ROUTER);
    }

    fn check_na(frame: &[u8], mac: [u8; 6], target: Ipv6Addr, flags: u8) {
        assert_eq!(frame.len(), NA_LEN, "{frame:02x?}");
        assert_eq!(frame[..6], ALL_NODES_MAC);
        assert_eq!(frame[6..12], mac);
        let (ip, icmp) = frame[14..].split_at(40);
        assert_eq!(
            ip[..4],
            [0x60, 0, 0, 0],
            "version, traffic class, flow label"
        );
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 32, "payload length");
        assert_eq!((ip[6], ip[7]), (58, 255), "next header, hop limit");
        assert_eq!(ip[8..24], target.octets(), "source = the VIP");
        assert_eq!(ip[24..40], ALL_NODES.octets());
        assert_eq!((icmp[0], icmp[1]), (136, 0));
        assert_eq!(icmp[4..8], [flags, 0, 0, 0], "flags");
        assert_eq!(icmp[8..24], target.octets());
        assert_eq!(icmp[24..26], [2, 1], "target link-layer address option");
        assert_eq!(icmp[26..32], mac);
        let mut summed = pseudo_header_v6(target.octets(), ALL_NODES.octets(), icmp.len(), 58);
        summed.extend_from_slice(icmp);
        assert_eq!(checksum(&summed), 0, "ICMPv6 checksum");
    }

    #[test]
    fn checksum_matches_a_known_frame() {
        // keepalived 2.2.7's NA for 2001:db8::100 from 7a:24:53:99:8c:d5 (captured).
        let frame = na_frame(
            [0x7a, 0x24, 0x53, 0x99, 0x8c, 0xd5],
            "2001:db8::100".parse().unwrap(),
            false,
        );
        assert_eq!(frame[56..58], [0x9e, 0x9a]);
    }
}
