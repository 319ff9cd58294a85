//! TCP_CHECK: up when a connection is established within `connect_timeout`, closed at
//! once (keepalived `check_tcp.c`: `tcp_connect_thread` / `tcp_check_thread`). Also the
//! connect step shared by the HTTP, SSL and SMTP checkers (keepalived's
//! `tcp_bind_connect`: bind to `bindto`, then connect).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::{io_reason, within, Verdict};
use crate::health::spec::{Common, Target};

pub(super) async fn run(target: Target, common: &Common) -> Verdict {
    match start(target, common.bind_to) {
        Started::Ended(verdict) => verdict,
        Started::Connecting(connecting) => finish(connecting, common).await,
    }
}

/// A TCP_CHECK attempt right after its connect was made.
pub(super) enum Started {
    /// The handshake ended within `connect`, either way (a listener on this host).
    Ended(Verdict),
    /// A SYN is out and unanswered yet: [`finish`] waits for the answer.
    Connecting(Connecting),
}

/// A socket whose handshake is under way.
pub(super) struct Connecting(Socket);

/// Connects, without waiting: fewer system calls than [`connect`], because nothing is
/// read or written, the zero linger is set before connecting, and a connection
/// established within `connect` (a listener on this host) is never registered with the
/// reactor, nor needs a future at all (issue 13: checks at keepalived's CPU or below).
pub(super) fn start(target: Target, bind_to: Option<IpAddr>) -> Started {
    match connect_at_once(target, bind_to) {
        Ok(None) => Started::Ended(Verdict::up("connected")),
        Ok(Some(socket)) => Started::Connecting(Connecting(socket)),
        Err(e) => Started::Ended(Verdict::down(e.to_string())),
    }
}

/// Waits, up to `connect_timeout`, for the end of a handshake [`start`] left under way.
pub(super) async fn finish(connecting: Connecting, common: &Common) -> Verdict {
    within(common.connect_timeout, async {
        match wait(connecting.0).await {
            Ok(()) => Verdict::up("connected"),
            Err(e) => Verdict::down(e.to_string()),
        }
    })
    .await
}

/// `Ok(None)`: connected; `Ok(Some(socket))`: the handshake is under way.
fn connect_at_once(
    target: Target,
    bind_to: Option<IpAddr>,
) -> Result<Option<Socket>, ConnectError> {
    let dst = SocketAddr::new(target.addr, target.port);
    let socket = open(dst, bind_to)?;
    // Close with a reset: thousands of checks a second must not leave as many sockets in
    // TIME_WAIT on the load balancer (HAProxy does the same). A zero linger never blocks
    // the close.
    let _ = socket.set_linger(Some(Duration::ZERO));
    match socket.connect(&dst.into()) {
        Ok(()) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(ConnectError::Connect(e)),
    }
    // A listener on this host (loopback, a local proxy, a namespace over veth) has
    // answered by the time `connect` returns: the kernel finishes the handshake as it
    // releases the socket. One poll says so, without the reactor's two epoll_ctl calls
    // and a wake-up; a remote real costs that one poll more.
    match handshake_ended(&socket) {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some(socket)),
        Err(e) => Err(ConnectError::Connect(e)),
    }
}

/// Waits on the reactor for the end of a handshake under way.
async fn wait(socket: Socket) -> Result<(), ConnectError> {
    let stream =
        TcpStream::from_std(std::net::TcpStream::from(socket)).map_err(ConnectError::Connect)?;
    // Writable once the handshake ended, either way; its error says which.
    stream.writable().await.map_err(ConnectError::Connect)?;
    match stream.take_error() {
        Ok(None) => Ok(()),
        Ok(Some(e)) | Err(e) => Err(ConnectError::Connect(e)),
    }
}

/// Whether a non-blocking connect's handshake has ended (`Ok(true)`: connected), without
/// waiting; its error if it failed.
fn handshake_ended(socket: &Socket) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    if n != 1 {
        Ok(false)
    } else if fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
        Err(socket
            .take_error()
            .ok()
            .flatten()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused)))
    } else {
        Ok(fd.revents & libc::POLLOUT != 0)
    }
}

/// A non-blocking TCP socket of `dst`'s family, bound to `bind_to` (any port) when
/// given: keepalived's `tcp_bind_connect` before its connect.
fn open(dst: SocketAddr, bind_to: Option<IpAddr>) -> Result<Socket, ConnectError> {
    let socket = Socket::new(
        Domain::for_address(dst),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(ConnectError::Connect)?;
    if let Some(addr) = bind_to {
        socket
            .bind(&SocketAddr::new(addr, 0).into())
            .map_err(|source| ConnectError::Bind { addr, source })?;
    }
    Ok(socket)
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
    let socket = TcpSocket::from_std_stream(open(dst, bind_to)?.into());
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
    use crate::health::checkers::test_support::{common, target};

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

    /// A listener whose accept queue is full drops SYNs: the connect returns
    /// EINPROGRESS, and the check waits on the reactor, failing at `connect_timeout`
    /// while the queue stays full and succeeding on a SYN retransmission (~1 s) once
    /// there is room. Also closes with a reset either way (no TIME_WAIT).
    #[tokio::test]
    async fn a_handshake_that_ends_after_connect_returns_is_waited_for() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        // Backlog 0: one connection fills the queue.
        socket.listen(0).unwrap();
        let listener = std::net::TcpListener::from(socket);
        let addr = listener.local_addr().unwrap();
        let _filler = std::net::TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        let v = run(target(addr), &common(300)).await;
        assert!(!v.up, "{v:?}");
        assert!(started.elapsed() >= Duration::from_millis(300), "{v:?}");
        // Room again 200 ms into the next check: its retransmitted SYN is answered.
        let accepter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let held: Vec<_> = (0..2).map(|_| listener.accept().unwrap()).collect();
            held
        });
        let started = std::time::Instant::now();
        let v = run(target(addr), &common(3000)).await;
        assert_eq!(v, Verdict::up("connected"));
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "answered at once: the queue was not full"
        );
        let held = accepter.join().unwrap();
        // The check's end reached the real as a reset.
        let mut buf = [0u8; 1];
        let (mut checked, _) = held.into_iter().last().unwrap();
        checked
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let err = std::io::Read::read(&mut checked, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
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
