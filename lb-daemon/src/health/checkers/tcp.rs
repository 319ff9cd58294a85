//! TCP_CHECK: up when a connection is established within `connect_timeout`, closed at
//! once (keepalived `check_tcp.c`: `tcp_connect_thread` / `tcp_check_thread`). Also the
//! connect step shared by the HTTP, SSL and SMTP checkers (keepalived's
//! `tcp_bind_connect`: bind to `bindto`, then connect).

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use tokio::net::{TcpSocket, TcpStream};

use super::{io_reason, within, Verdict};
use crate::health::spec::{Common, Target};

pub(super) async fn run(target: Target, common: &Common) -> Verdict {
    within(common.connect_timeout, async {
        match connect(target, common.bind_to).await {
            Ok(stream) => {
                // Close with a reset: thousands of checks a second must not leave as many
                // sockets in TIME_WAIT on the load balancer (HAProxy does the same).
                // (A zero linger never blocks the close.)
                let _ = nix::sys::socket::setsockopt(
                    &stream,
                    nix::sys::socket::sockopt::Linger,
                    &libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    },
                );
                Verdict::up("connected")
            }
            Err(e) => Verdict::down(e.to_string()),
        }
    })
    .await
}

/// Why a connection could not be made; its `Display` is the checker's reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("bind to {addr}: {source}")]
    Bind { addr: IpAddr, source: io::Error },
    #[error("{}", io_reason(.0))]
    Connect(io::Error),
}

/// Connects to `target`, from `bind_to` (any port) when given. No timeout: callers
/// bound the whole exchange.
pub(super) async fn connect(
    target: Target,
    bind_to: Option<IpAddr>,
) -> Result<TcpStream, ConnectError> {
    let dst = SocketAddr::new(target.addr, target.port);
    let socket = if dst.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectError::Connect)?;
    if let Some(addr) = bind_to {
        socket
            .bind(SocketAddr::new(addr, 0))
            .map_err(|source| ConnectError::Bind { addr, source })?;
    }
    let stream = socket.connect(dst).await.map_err(ConnectError::Connect)?;
    // Requests are single small writes: send them at once.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;
    use crate::health::checkers::test_support::common;

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    #[tokio::test]
    async fn up_when_a_listener_accepts() {
        for ip in ["127.0.0.1", "::1"] {
            let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
                .await
                .unwrap();
            let v = run(target(listener.local_addr().unwrap()), &common(1000)).await;
            assert_eq!(v, Verdict::up("connected"), "{ip}");
        }
    }

    #[tokio::test]
    async fn refused_on_a_closed_port() {
        let addr = closed_port().await;
        let v = run(target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("connection refused"));
    }

    #[tokio::test]
    async fn binds_to_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = common(1000);
        c.bind_to = Some("127.0.0.1".parse().unwrap());
        let (v, accepted) = tokio::join!(run(target(addr), &c), listener.accept());
        assert!(v.up, "{v:?}");
        assert_eq!(accepted.unwrap().1.ip(), c.bind_to.unwrap());

        // A source of the other family cannot reach the target.
        c.bind_to = Some("::1".parse().unwrap());
        let v = run(target(addr), &c).await;
        assert!(!v.up && v.reason.starts_with("bind to ::1"), "{v:?}");
    }

    /// A port nothing listens on (bound then released).
    pub(crate) async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        tokio::time::sleep(Duration::from_millis(1)).await;
        addr
    }
}
