//! The arbiter: an address outside the VRRP pair (a gateway) that a node must reach to
//! be MASTER. Checked by ICMP echo or TCP connect every `interval`, with `vrrp_script`'s
//! rise/fall hysteresis ([`super::track::ScriptState`]); the instance task turns the
//! verdicts into [`super::fsm::Event::Arbiter`]. The rules are in docs/vrrp.md.

use std::{
    io::{self, Read},
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::{io::Interest, sync::mpsc};
use tracing::{info, warn};

use super::{socket::register, track::ScriptState};
use crate::net::checksum::checksum;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const PAYLOAD: &[u8; 8] = b"lb-arbtr";

/// How the arbiter is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArbiterCheck {
    /// ICMP (or ICMPv6) echo: a reply within the timeout.
    Icmp,
    /// A TCP connection to this port completes within the timeout.
    Tcp(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbiterSpec {
    pub address: IpAddr,
    pub check: ArbiterCheck,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl ArbiterSpec {
    fn describe(&self) -> String {
        match self.check {
            ArbiterCheck::Icmp => format!("ICMP echo to {}", self.address),
            ArbiterCheck::Tcp(port) => {
                format!("TCP connect to {}", SocketAddr::new(self.address, port))
            }
        }
    }
}

/// Starts checking; the receiver gets the new reachability at every change (the
/// arbiter counts as reachable until `fall` checks in a row failed). The task ends when
/// the receiver is dropped.
pub fn spawn(spec: ArbiterSpec, instance: String) -> mpsc::UnboundedReceiver<bool> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut state = ScriptState::new(spec.rise, spec.fall, false);
        let what = spec.describe();
        loop {
            let ok = check_once(&spec).await;
            if let Err(e) = &ok {
                tracing::debug!(instance, arbiter = %what, error = %e, "arbiter check failed");
            }
            if let Some(up) = state.record(ok.is_ok()) {
                if up {
                    info!(instance, arbiter = %what, "arbiter reachable again");
                } else {
                    warn!(instance, arbiter = %what, "arbiter unreachable: this node will not be MASTER while another can");
                }
                if tx.send(up).is_err() {
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(spec.interval).await;
        }
    });
    rx
}

/// One check, bounded by the timeout.
pub async fn check_once(spec: &ArbiterSpec) -> io::Result<()> {
    let attempt = async {
        match spec.check {
            ArbiterCheck::Tcp(port) => {
                tokio::net::TcpStream::connect(SocketAddr::new(spec.address, port))
                    .await
                    .map(drop)
            }
            ArbiterCheck::Icmp => echo(spec.address).await,
        }
    };
    tokio::time::timeout(spec.timeout, attempt)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// One ICMP echo over a raw socket (needs CAP_NET_RAW); returns at the matching reply.
async fn echo(to: IpAddr) -> io::Result<()> {
    let id = (std::process::id() & 0xffff) as u16;
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let (domain, protocol) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    socket.set_nonblocking(true)?;
    let fd = register(socket)?;
    let request = echo_request(to.is_ipv6(), id, seq);
    fd.get_ref()
        .send_to(&request, &SockAddr::from(SocketAddr::new(to, 0)))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = fd
            .async_io(Interest::READABLE, |s| {
                let mut r: &Socket = s;
                r.read(&mut buf)
            })
            .await?;
        let packet = buf.get(..n).unwrap_or_default();
        if is_echo_reply(packet, to, id, seq) {
            return Ok(());
        }
    }
}

/// An echo request; the kernel fills in the ICMPv6 checksum, ICMPv4's is ours.
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![0u8; 8 + PAYLOAD.len()];
    m[0] = if v6 {
        ICMPV6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    };
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..].copy_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(&m, 0);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    m
}

/// Raw IPv4 sockets deliver the IP header (checked: the reply comes from `from`);
/// ICMPv6 ones deliver the message alone (the socket is the one that sent the request).
fn is_echo_reply(packet: &[u8], from: IpAddr, id: u16, seq: u16) -> bool {
    let icmp = match from {
        IpAddr::V4(from) => {
            let Some(first) = packet.first() else {
                return false;
            };
            let ihl = usize::from(first & 0x0f) * 4;
            if packet.get(12..16) != Some(&from.octets()[..]) {
                return false;
            }
            packet.get(ihl..)
        }
        IpAddr::V6(_) => Some(packet),
    };
    let reply = if from.is_ipv6() {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    matches!(icmp, Some(m) if m.len() >= 8
        && m[0] == reply
        && m[4..6] == id.to_be_bytes()
        && m[6..8] == seq.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_and_reply_matching() {
        let req = echo_request(false, 0x1234, 7);
        assert_eq!(req[0], ICMP_ECHO_REQUEST);
        assert_eq!(checksum(&req, 0), 0, "checksum verifies");
        // The reply as a raw IPv4 socket sees it: a 20-byte header, then ICMP.
        let from: IpAddr = "198.18.0.13".parse().unwrap();
        let mut reply = vec![0x45u8; 20];
        reply[12..16].copy_from_slice(&[198, 18, 0, 13]);
        let mut icmp = req.clone();
        icmp[0] = ICMP_ECHO_REPLY;
        reply.extend_from_slice(&icmp);
        assert!(is_echo_reply(&reply, from, 0x1234, 7));
        assert!(!is_echo_reply(&reply, from, 0x1234, 8), "another sequence");
        assert!(!is_echo_reply(
            &reply,
            "198.18.0.14".parse().unwrap(),
            0x1234,
            7
        ));
        assert!(!is_echo_reply(&reply[..24], from, 0x1234, 7));
        let v6 = echo_request(true, 1, 2);
        assert_eq!(v6[0], ICMPV6_ECHO_REQUEST);
        let mut r6 = v6;
        r6[0] = ICMPV6_ECHO_REPLY;
        assert!(is_echo_reply(&r6, "2001:db8::1".parse().unwrap(), 1, 2));
    }

    #[tokio::test]
    async fn loopback_answers_echo_and_refuses_a_closed_port() {
        let spec = |check| ArbiterSpec {
            address: "127.0.0.1".parse().unwrap(),
            check,
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        };
        // Root (CAP_NET_RAW) is needed for the raw socket, as for the daemon.
        check_once(&spec(ArbiterCheck::Icmp))
            .await
            .expect("ping 127.0.0.1");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        check_once(&spec(ArbiterCheck::Tcp(port)))
            .await
            .expect("connect");
        drop(listener);
        assert!(check_once(&spec(ArbiterCheck::Tcp(port))).await.is_err());
    }
}
