//! UDP_CHECK (keepalived `check_udp.c` and `layer4.c`: `udp_bind_connect`,
//! `udp_socket_state`): send the payload on a connected socket, then wait up to
//! `connect_timeout`. Any reply is up; an ICMP destination-unreachable (reported on a
//! connected socket as an error: "connection refused" for a closed port) is down; no
//! reply at all is up unless `require_reply`.
//!
//! keepalived's reply length bounds and masked reply data are not in the spec: any
//! reply counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::{io_reason, random_u64, Verdict};
use crate::health::spec::{Common, Target, UdpCheck};

/// keepalived sends this many bytes of filler when no payload is configured.
const FILLER_LEN: usize = 32;

pub(super) async fn run(udp: &UdpCheck, target: Target, common: &Common) -> Verdict {
    let payload = if udp.payload.is_empty() {
        filler()
    } else {
        udp.payload.clone()
    };
    let exchange = async {
        let socket = match connect(target, common.bind_to).await {
            Ok(socket) => socket,
            Err(why) => return Verdict::down(why),
        };
        if let Err(e) = socket.send(&payload).await {
            return Verdict::down(io_reason(&e));
        }
        let mut buf = [0u8; 2048];
        match socket.recv(&mut buf).await {
            Ok(_) => Verdict::up("reply received"),
            Err(e) => Verdict::down(io_reason(&e)),
        }
    };
    match tokio::time::timeout(common.connect_timeout, exchange).await {
        Ok(verdict) => verdict,
        Err(_) if udp.require_reply => Verdict::down("timeout"),
        // Silence is only a failure when a reply is required.
        Err(_) => Verdict::up("no ICMP error"),
    }
}

/// A UDP socket from `bind_to` (any port) connected to `target`, so that ICMP errors
/// come back as errors on it.
pub(super) async fn connect(target: Target, bind_to: Option<IpAddr>) -> Result<UdpSocket, String> {
    let local = bind_to.unwrap_or(match target.addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))
        .await
        .map_err(|e| format!("bind to {local}: {e}"))?;
    socket
        .connect(SocketAddr::new(target.addr, target.port))
        .await
        .map_err(|e| io_reason(&e))?;
    Ok(socket)
}

fn filler() -> Vec<u8> {
    (0..FILLER_LEN / 8)
        .flat_map(|_| random_u64().to_ne_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::health::checkers::test_support::common;

    fn check(require_reply: bool) -> UdpCheck {
        UdpCheck {
            payload: b"ping".to_vec(),
            require_reply,
        }
    }

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    /// A UDP server that echoes (or, `silent`, swallows) datagrams.
    async fn server(ip: &str, silent: bool) -> SocketAddr {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if !silent {
                    let _ = socket.send_to(&buf[..n], from).await;
                }
            }
        });
        addr
    }

    async fn closed_port() -> SocketAddr {
        UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn echo_is_up() {
        for ip in ["127.0.0.1", "::1"] {
            let addr = server(ip, false).await;
            let v = run(&check(true), target(addr), &common(1000)).await;
            assert_eq!(v, Verdict::up("reply received"), "{ip}");
        }
    }

    #[tokio::test]
    async fn closed_port_is_down() {
        let addr = closed_port().await;
        for require_reply in [false, true] {
            let v = run(&check(require_reply), target(addr), &common(1000)).await;
            assert_eq!(v, Verdict::down("connection refused"));
        }
        // Without a payload, filler is sent, which draws the ICMP error all the same.
        let mut udp = check(false);
        udp.payload.clear();
        let v = run(&udp, target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("connection refused"));
    }

    #[tokio::test]
    async fn silence_depends_on_require_reply() {
        let addr = server("127.0.0.1", true).await;
        let start = Instant::now();
        let v = run(&check(true), target(addr), &common(200)).await;
        assert_eq!(v, Verdict::down("timeout"));
        let v = run(&check(false), target(addr), &common(200)).await;
        assert_eq!(v, Verdict::up("no ICMP error"));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
