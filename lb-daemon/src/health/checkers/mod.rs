//! keepalived's health checkers (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK,
//! DNS_CHECK, UDP_CHECK, PING_CHECK) as async functions: one attempt ([`check_once`]), keepalived's
//! retry loop ([`check`]) and the `genhash` helper. The scheduler decides when to run
//! them and what an outcome does to a real server.

mod dns;
mod genhash;
mod http;
mod misc;
pub mod ping;
mod smtp;
mod tcp;
mod udp;

use std::{
    borrow::Cow,
    future::Future,
    hash::{BuildHasher, Hasher},
    io,
    time::{Duration, Instant},
};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::spec::{CheckKind, CheckSpec, FileCheck, Outcome, Target};

pub use genhash::{genhash, GenhashError};

// The reply parsers, for the fuzz targets' entry points (`crate::fuzzing`) only.
pub(crate) use dns::response_rcode as dns_response_rcode;
pub(crate) use http::read_response as http_read_response;
pub(crate) use smtp::reply as smtp_reply;

/// One attempt (no retry): connects to `target` (already resolved with
/// `connect_ip`/`connect_port`) and checks. Never panics; network checkers bound the
/// exchange by `common.connect_timeout` (HTTP/SSL: per URL, each URL being its own
/// connection as in keepalived), MISC_CHECK by its own `misc_timeout`.
pub async fn check_once(spec: &CheckSpec, target: Target) -> Outcome {
    let start = Instant::now();
    let common = &spec.common;
    // Only TCP_CHECK's small future is held inline: the others are boxed, so a check's
    // future stays small to allocate and move (all inline, every check was ~9 KB).
    let verdict = match &spec.kind {
        CheckKind::Tcp => tcp::run(target, common).await,
        CheckKind::Http(http) => Box::pin(http::run(http, None, target, common)).await,
        CheckKind::Ssl(http) => {
            // keepalived's SSL_GET verifies nothing unless told to (no SSL_CTX_set_verify).
            let tls = http.tls.clone().unwrap_or(super::spec::TlsOptions {
                verify: false,
                ca: None,
                sni: None,
            });
            Box::pin(http::run(http, Some(&tls), target, common)).await
        }
        CheckKind::Misc(misc) => Box::pin(misc::run(misc, common)).await,
        CheckKind::Smtp(smtp) => Box::pin(smtp::run(smtp, target, common)).await,
        CheckKind::Dns(dns) => Box::pin(dns::run(dns, target, common)).await,
        CheckKind::Udp(udp) => Box::pin(udp::run(udp, target, common)).await,
        CheckKind::Ping => Box::pin(ping::run(target, common)).await,
        CheckKind::File(file) => {
            let value = crate::track_file::read(&file.file);
            return file_outcome(file, value);
        }
        // Event-driven (the runner's bfd_loop); alone, a session nobody runs is down.
        CheckKind::Bfd(b) => return bfd_outcome(&b.name, None),
    };
    outcome_of(verdict, start)
}

/// FILE_CHECK's outcome for the file's current value (`None`: not a valid number, taken
/// as 0 here; the runner's watcher keeps the previous value instead).
pub fn file_outcome(file: &FileCheck, value: Option<i64>) -> Outcome {
    use crate::track_file::{checker_effect, Effect};
    let shown = value.map_or_else(|| "an invalid number".to_owned(), |v| v.to_string());
    let (up, offset) = match checker_effect(value.unwrap_or(0), file.weight, file.reverse) {
        Effect::Fault => (false, None),
        Effect::Offset(o) => (true, Some(o)),
    };
    Outcome {
        up,
        weight: None,
        offset: offset.filter(|_| file.weight != 0),
        reason: format!("{} holds {shown}", file.file.display()).into(),
        duration: Duration::ZERO,
    }
}

/// BFD_CHECK's outcome for the session's state (`None`: the session does not run).
pub fn bfd_outcome(name: &str, state: Option<crate::bfd::fsm::State>) -> Outcome {
    let up = state == Some(crate::bfd::fsm::State::Up);
    let shown = state.map_or("not running", |s| s.name());
    Outcome {
        up: crate::bfd::track::checker_up(up),
        weight: None,
        offset: None,
        reason: format!("BFD session {name} is {shown}").into(),
        duration: Duration::ZERO,
    }
}

/// keepalived's retry semantics: up to `1 + common.retry` attempts,
/// `common.delay_before_retry` apart, stopping at the first success; returns the last
/// outcome with `duration` covering the whole check.
///
/// keepalived only retries while the checker is up (a real already down fails on the
/// first failed attempt, `check_tcp.c:tcp_epilog`); a scheduler wanting exactly that
/// calls [`check_once`] for reals that are down.
pub async fn check(spec: &CheckSpec, target: Target) -> Outcome {
    match begin(spec, target, true) {
        Begun::Ended(outcome) => outcome,
        Begun::Running(running) => running.finish(spec).await,
    }
}

/// A check [`begin`] started: over already, or to be finished by [`Running::finish`].
pub enum Begun {
    Ended(Outcome),
    Running(Running),
}

/// The rest of a begun check.
pub struct Running {
    target: Target,
    retries: bool,
    start: Instant,
    first: First,
}

/// Where a begun check's first attempt stands.
enum First {
    /// Not made yet: a checker other than TCP_CHECK.
    NotMade,
    /// TCP_CHECK's handshake is under way.
    Connecting(tcp::Connecting),
    /// It failed, and retries follow.
    Failed(Outcome),
}

/// Begins a check of `target`: keepalived's retry loop when `retries` (see [`check`]),
/// one attempt otherwise. TCP_CHECK's connect is made here, and it most often ends here
/// too (a listener on this host answers or refuses within `connect`): such a check is
/// over without a future, a timer or a task slot (issue 13: checks at keepalived's CPU or
/// below). The others start when [`Running::finish`] is awaited.
pub fn begin(spec: &CheckSpec, target: Target, retries: bool) -> Begun {
    let start = Instant::now();
    let first = match &spec.kind {
        CheckKind::Tcp => match tcp::start(target, spec.common.bind_to) {
            tcp::Started::Ended(verdict) => {
                let outcome = outcome_of(verdict, start);
                if outcome.up || !retries || spec.common.retry == 0 {
                    return Begun::Ended(outcome);
                }
                First::Failed(outcome)
            }
            tcp::Started::Connecting(connecting) => First::Connecting(connecting),
        },
        _ => First::NotMade,
    };
    Begun::Running(Running {
        target,
        retries,
        start,
        first,
    })
}

impl Running {
    /// Ends the check `spec` began as: its first attempt, then any retries.
    pub async fn finish(self, spec: &CheckSpec) -> Outcome {
        let Running {
            target,
            retries,
            start,
            first,
        } = self;
        let mut outcome = match first {
            First::NotMade => check_once(spec, target).await,
            First::Connecting(connecting) => {
                outcome_of(tcp::finish(connecting, &spec.common).await, start)
            }
            First::Failed(outcome) => outcome,
        };
        let attempts = if retries { spec.common.retry } else { 0 };
        let mut attempt = 0;
        while !outcome.up && attempt < attempts {
            attempt += 1;
            tokio::time::sleep(spec.common.delay_before_retry).await;
            outcome = check_once(spec, target).await;
        }
        outcome.duration = start.elapsed();
        outcome
    }
}

/// A network checker's verdict as the outcome of an attempt begun at `start`.
fn outcome_of(verdict: Verdict, start: Instant) -> Outcome {
    Outcome {
        up: verdict.up,
        weight: verdict.weight,
        offset: None,
        reason: verdict.reason,
        duration: start.elapsed(),
    }
}

/// What one attempt concluded, before its duration is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    up: bool,
    weight: Option<u32>,
    reason: Cow<'static, str>,
}

impl Verdict {
    fn up(reason: impl Into<Cow<'static, str>>) -> Self {
        Verdict {
            up: true,
            weight: None,
            reason: reason.into(),
        }
    }

    fn down(reason: impl Into<Cow<'static, str>>) -> Self {
        Verdict {
            up: false,
            weight: None,
            reason: reason.into(),
        }
    }
}

/// Runs `fut`, a down "timeout" if it takes longer than `limit`.
async fn within(limit: Duration, fut: impl Future<Output = Verdict>) -> Verdict {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Verdict::down("timeout"))
}

/// An I/O error as a short reason for logs ("connection refused", ...).
fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// Unpredictable enough for DNS ids and UDP filler (not for secrets): every
/// `RandomState` gets fresh SipHash keys seeded from the OS.
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Reads one line (up to `\n`, which is stripped along with a `\r`) of at most `max`
/// bytes. `Ok(None)` at a clean end of stream. A TLS peer closing without
/// close_notify counts as an end of stream, as keepalived's quiet shutdown does.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf().await {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => &[],
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-line",
            ));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Parameters and tiny HTTP(S) servers on loopback for the checkers' tests.

    use std::{
        net::SocketAddr,
        path::PathBuf,
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc, Mutex,
        },
        time::Duration,
    };

    use rustls::{
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
        ServerConfig,
    };
    use tokio::{
        io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
        net::TcpListener,
    };
    use tokio_rustls::TlsAcceptor;

    use crate::health::spec::{CheckKind, CheckSpec, Common, Target};

    pub fn common(timeout_ms: u64) -> Common {
        Common {
            connect_ip: None,
            connect_port: None,
            bind_to: None,
            connect_timeout: Duration::from_millis(timeout_ms),
            retry: 0,
            delay_before_retry: Duration::from_millis(10),
            delay_loop: Duration::from_secs(5),
            warmup: Duration::ZERO,
            rise: 1,
            fall: 1,
        }
    }

    pub fn spec(kind: CheckKind, timeout_ms: u64) -> CheckSpec {
        CheckSpec {
            kind,
            common: common(timeout_ms),
        }
    }

    pub fn target(addr: SocketAddr) -> Target {
        Target {
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    /// A response with a Content-Length.
    pub fn response(status: u16, body: &str) -> Option<Vec<u8>> {
        Some(
            format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    /// A reply ending with this is sent without it, then the connection is held open.
    pub const HANG: &[u8] = b"\0HANG";

    /// Given the connection's number (from 0) and the request head, the bytes to
    /// answer (see [`HANG`]), or None to hang without answering.
    pub type Respond = dyn Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync;

    pub struct Server {
        pub addr: SocketAddr,
        /// Request heads, in order of arrival.
        pub requests: Arc<Mutex<Vec<String>>>,
        /// TLS only: the SNI of each accepted handshake.
        pub sni: Arc<Mutex<Vec<Option<String>>>>,
    }

    impl Server {
        pub fn target(&self) -> Target {
            target(self.addr)
        }

        pub fn request(&self, i: usize) -> String {
            self.requests.lock().unwrap()[i].clone()
        }
    }

    /// An HTTP server (HTTPS with `tls`) on `ip`; answers, then closes (without TLS
    /// close_notify, as many servers do).
    pub async fn serve(
        ip: &str,
        tls: Option<TlsAcceptor>,
        respond: impl Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            sni: Arc::default(),
        };
        let (requests, sni) = (server.requests.clone(), server.sni.clone());
        let respond: Arc<Respond> = Arc::new(respond);
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let (requests, sni, respond, tls) =
                    (requests.clone(), sni.clone(), respond.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => answer(stream, n, &*respond, &requests).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let name = stream.get_ref().1.server_name().map(str::to_owned);
                            sni.lock().unwrap().push(name);
                            answer(stream, n, &*respond, &requests).await;
                        }
                    }
                });
            }
        });
        server
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        n: usize,
        respond: &Respond,
        requests: &Mutex<Vec<String>>,
    ) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => head.extend_from_slice(&buf[..k]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        requests.lock().unwrap().push(head.clone());
        let reply = respond(n, &head).unwrap_or_else(|| HANG.to_vec());
        let (bytes, hang) = match reply.strip_suffix(HANG) {
            Some(bytes) => (bytes, true),
            None => (&reply[..], false),
        };
        let _ = stream.write_all(bytes).await;
        let _ = stream.flush().await;
        if hang {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }

    /// A self-signed certificate for localhost, 127.0.0.1 and ::1: the acceptor
    /// serving it and its PEM in a file (removed on drop).
    pub struct Cert {
        pub acceptor: TlsAcceptor,
        pub pem_file: PathBuf,
    }

    impl Drop for Cert {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.pem_file);
        }
    }

    pub fn cert() -> Cert {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap();
        let pem_file = std::env::temp_dir().join(format!(
            "lb-checkers-ca-{}-{}.pem",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&pem_file, cert.pem()).unwrap();
        Cert {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            pem_file,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        time::{Duration, Instant},
    };

    use super::{
        test_support::{response, serve, spec},
        *,
    };
    use crate::health::spec::{HttpCheck, MiscCheck, StatusMatch, Url};

    /// Thousands of checks a second each allocate and move their future: one checker's
    /// state must not size them all (inline, HTTP/SSL made every check ~9 KB).
    #[test]
    fn a_check_future_stays_small() {
        let s = spec(CheckKind::Tcp, 100);
        let t = test_support::target("127.0.0.1:1".parse().unwrap());
        let size = std::mem::size_of_val(&check(&s, t));
        assert!(size <= 1536, "a check's future is {size} bytes");
    }

    /// A TCP_CHECK to a listener on this host ends inside `begin`, without a runtime (so
    /// without a future, timer or reactor); a refusal too, unless retries follow.
    #[test]
    fn a_local_tcp_check_ends_when_it_begins() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = test_support::target(listener.local_addr().unwrap());
        let mut s = spec(CheckKind::Tcp, 1000);
        s.common.retry = 2;
        let Begun::Ended(out) = begin(&s, up, true) else {
            panic!("a local listener's check did not end at once");
        };
        assert_eq!((out.up, &*out.reason), (true, "connected"));
        drop(listener);
        // Down and no retry for a real that is down (keepalived's tcp_epilog): over.
        let Begun::Ended(out) = begin(&s, up, false) else {
            panic!("a refused check without retries did not end at once");
        };
        assert_eq!((out.up, &*out.reason), (false, "connection refused"));
        // A real that is up retries: the check goes on.
        assert!(matches!(begin(&s, up, true), Begun::Running(_)));
    }

    /// A refused first attempt made in `begin` is followed by keepalived's retries,
    /// `delay_before_retry` apart, until one succeeds or `retry` are spent.
    #[tokio::test]
    async fn a_check_begun_refused_retries_then_succeeds() {
        let addr = tcp::tests::closed_port().await;
        let mut s = spec(CheckKind::Tcp, 1000);
        s.common.retry = 2;
        s.common.delay_before_retry = Duration::from_millis(150);
        let Begun::Running(running) = begin(&s, test_support::target(addr), true) else {
            panic!("a refused check with retries ended at once");
        };
        // A listener appears between the first attempt and the first retry.
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let (out, accepted) = tokio::join!(running.finish(&s), listener.accept());
        assert!(out.up, "{out:?}");
        assert!(accepted.is_ok());
        assert!(out.duration >= Duration::from_millis(150), "{out:?}");

        // Refused every time: 3 attempts, 2 delays.
        drop(listener);
        let out = check(&s, test_support::target(addr)).await;
        assert_eq!((out.up, &*out.reason), (false, "connection refused"));
        assert!(out.duration >= Duration::from_millis(300), "{out:?}");
        assert!(out.duration < Duration::from_millis(1000), "{out:?}");
    }

    fn http() -> CheckKind {
        CheckKind::Http(HttpCheck {
            urls: vec![Url {
                path: "/".into(),
                status: StatusMatch::Default2xx,
                digest: None,
                body: None,
                virtualhost: None,
            }],
            virtualhost: None,
            tls: None,
        })
    }

    /// A server failing (503) its first `failures` requests, then answering 200.
    async fn flaky(failures: usize) -> test_support::Server {
        serve("127.0.0.1", None, move |n, _| {
            response(if n < failures { 503 } else { 200 }, "")
        })
        .await
    }

    #[tokio::test]
    async fn retries_until_success() {
        let server = flaky(2).await;
        let mut s = spec(http(), 1000);
        s.common.retry = 2;
        s.common.delay_before_retry = Duration::from_millis(50);
        let out = check(&s, server.target()).await;
        assert!(out.up, "{out:?}");
        assert_eq!(server.requests.lock().unwrap().len(), 3);
        assert!(out.duration >= Duration::from_millis(100), "{out:?}");

        let server = flaky(2).await;
        s.common.retry = 1;
        let out = check(&s, server.target()).await;
        assert_eq!((out.up, &*out.reason), (false, "status 503"));
        assert_eq!(server.requests.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn no_retry_after_success_and_delay_is_honoured() {
        let server = flaky(0).await;
        let mut s = spec(http(), 1000);
        s.common.retry = 3;
        s.common.delay_before_retry = Duration::from_secs(10);
        assert!(check(&s, server.target()).await.up);
        assert_eq!(server.requests.lock().unwrap().len(), 1);

        let server = flaky(usize::MAX).await;
        s.common.retry = 2;
        s.common.delay_before_retry = Duration::from_millis(150);
        let start = Instant::now();
        let out = check(&s, server.target()).await;
        assert!(!out.up);
        assert_eq!(server.requests.lock().unwrap().len(), 3);
        assert!(out.duration >= Duration::from_millis(300), "{out:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn check_once_dispatches_and_times_itself() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let server = serve("127.0.0.1", None, move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            response(200, "")
        })
        .await;
        let out = check_once(&spec(http(), 1000), server.target()).await;
        assert_eq!((out.up, &*out.reason), (true, "status 200"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // TCP to the same server; SSL_GET to it fails (it speaks plain HTTP).
        let out = check_once(&spec(CheckKind::Tcp, 1000), server.target()).await;
        assert!(out.up && out.reason == "connected", "{out:?}");
        let CheckKind::Http(h) = http() else {
            unreachable!()
        };
        let out = check_once(&spec(CheckKind::Ssl(h), 300), server.target()).await;
        assert!(!out.up, "{out:?}");

        let misc = MiscCheck {
            path: "sleep 0.2; exit 3".into(),
            timeout: Duration::from_secs(2),
            dynamic: true,
            user: None,
        };
        let out = check_once(&spec(CheckKind::Misc(misc), 1000), server.target()).await;
        assert_eq!((out.up, out.weight), (true, Some(1)));
        assert!(out.duration >= Duration::from_millis(200), "{out:?}");
    }
}
