//! HTTP_GET and SSL_GET (keepalived `check_http.c`, `check_ssl.c`): for each `url`, a
//! fresh connection, one `GET`, then the status code, the MD5 digest of the body and
//! the body expectation, in keepalived's order. All URLs must pass.
//!
//! Differences from keepalived, on purpose: the request is HTTP/1.1 with
//! `Connection: close` (keepalived's `http_protocol 1.1`), and a chunked body is decoded
//! before hashing (keepalived hashes the raw chunk framing); `genhash` here hashes the
//! same way, so digests stay consistent.

use std::{
    io,
    net::IpAddr,
    path::Path,
    sync::{Arc, OnceLock},
};

use md5::{Digest, Md5};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsConnector;

use super::{io_reason, read_line, tcp, within, Verdict};
use crate::health::spec::{BodyMatch, Common, HttpCheck, Target, TlsOptions, Url};

/// Body bytes kept for `body` matching; the digest covers the whole body regardless.
const BODY_KEEP: usize = 1 << 20;
/// Longest status or header line, and most header lines, accepted.
const MAX_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 200;
/// keepalived's User-Agent, which backends may already be configured to expect.
const USER_AGENT: &str = "KeepAliveClient";

pub(super) async fn run(
    http: &HttpCheck,
    tls: Option<&TlsOptions>,
    target: Target,
    common: &Common,
) -> Verdict {
    let config = match tls.map(client_config).transpose() {
        Ok(config) => config,
        Err(e) => return Verdict::down(format!("TLS error: {e}")),
    };
    // keepalived enables a real server with no URL without checking (http_connect_thread).
    let mut last = Verdict::up("no urls");
    for url in &http.urls {
        let vhost = url.virtualhost.as_deref().or(http.virtualhost.as_deref());
        let host = vhost.map_or_else(|| host_header(target), str::to_owned);
        let session = match (&config, tls) {
            (Some(config), Some(opts)) => {
                match server_name(opts.sni.as_deref().or(vhost), target.addr) {
                    Ok(name) => Some((config.clone(), name)),
                    Err(e) => return Verdict::down(format!("TLS error: {e}")),
                }
            }
            _ => None,
        };
        // Each URL is its own connection with its own timeout, as in keepalived.
        let verdict = within(common.connect_timeout, async {
            let keep_body = url.body.is_some();
            match fetch(target, common.bind_to, session, &host, &url.path, keep_body).await {
                Ok(resp) => match evaluate(url, &resp) {
                    Ok(()) => Verdict::up(format!("status {}", resp.status)),
                    Err(why) => Verdict::down(why),
                },
                Err(e) => Verdict::down(e.to_string()),
            }
        })
        .await;
        if !verdict.up {
            return match http.urls.len() {
                1 => verdict,
                _ => Verdict::down(format!("{}: {}", url.path, verdict.reason)),
            };
        }
        last = verdict;
    }
    match http.urls.len() {
        0 | 1 => last,
        n => Verdict::up(format!("{n} urls ok")),
    }
}

/// keepalived's checks on a response, in its order (`http_handle_response`).
fn evaluate(url: &Url, resp: &Response) -> Result<(), String> {
    if !url.status.accepts(resp.status) {
        return Err(format!("status {}", resp.status));
    }
    if let Some(want) = &url.digest {
        if !want.trim().eq_ignore_ascii_case(&resp.digest) {
            return Err(format!("digest mismatch (got {})", resp.digest));
        }
    }
    let (pattern, want_match) = match &url.body {
        None => return Ok(()),
        Some(BodyMatch::Contains(text)) => (regex::escape(text), true),
        Some(BodyMatch::Regex(re)) => (re.clone(), true),
        Some(BodyMatch::RegexAbsent(re)) => (re.clone(), false),
    };
    // Bytes, not str: a body need not be UTF-8.
    let re = regex::bytes::Regex::new(&pattern).map_err(|e| format!("bad regex: {e}"))?;
    match (re.is_match(&resp.body), want_match) {
        (true, true) | (false, false) => Ok(()),
        (false, true) => Err("body does not match".into()),
        (true, false) => Err("body matches the regex (regex_no_match)".into()),
    }
}

/// keepalived's Host header without a virtualhost: the address and port, IPv6 in
/// brackets (RFC 2732).
fn host_header(target: Target) -> String {
    match target.addr {
        IpAddr::V4(a) => format!("{a}:{}", target.port),
        IpAddr::V6(a) => format!("[{a}]:{}", target.port),
    }
}

/// The TLS server name: a DNS name sends SNI; without one, the address (no SNI, and a
/// verified certificate must then name the IP).
pub(super) fn server_name(name: Option<&str>, addr: IpAddr) -> Result<ServerName<'static>, String> {
    match name {
        Some(name) => ServerName::try_from(name.to_owned())
            .map_err(|_| format!("invalid server name {name:?}")),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

/// What a GET returned.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    /// MD5 of the whole (decoded) body, lower-case hex.
    pub digest: String,
    /// The first [`BODY_KEEP`] bytes of the body, when asked for.
    pub body: Vec<u8>,
}

/// Why a GET failed; its `Display` is the checker's reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(transparent)]
    Connect(#[from] tcp::ConnectError),
    #[error("TLS error: {0}")]
    Tls(String),
    /// keepalived: "Read, no data received".
    #[error("no data received")]
    NoData,
    #[error("bad response: {0}")]
    Protocol(String),
    #[error("{}", io_reason(.0))]
    Io(#[from] io::Error),
}

/// Connects (TLS when `tls` is given) and GETs `path`. No timeout: callers bound it.
pub(super) async fn fetch(
    target: Target,
    bind_to: Option<IpAddr>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    host: &str,
    path: &str,
    keep_body: bool,
) -> Result<Response, FetchError> {
    let stream = tcp::connect(target, bind_to).await?;
    match tls {
        None => exchange(stream, host, path, keep_body).await,
        Some((config, name)) => {
            let stream = TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| FetchError::Tls(e.to_string()))?;
            exchange(stream, host, path, keep_body).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
    keep_body: bool,
) -> Result<Response, FetchError> {
    let path = if path.is_empty() { "/" } else { path };
    let request = format!(
        "GET {path} HTTP/1.1\r\nUser-Agent: {USER_AGENT}\r\nHost: {host}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    read_response(&mut BufReader::new(stream), keep_body).await
}

/// How the body is delimited (RFC 9112 section 6.3).
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub(crate) async fn read_response<R: AsyncBufRead + Unpin>(
    r: &mut R,
    keep_body: bool,
) -> Result<Response, FetchError> {
    let mut first = true;
    let (status, framing) = loop {
        let line = match read_line(r, MAX_LINE).await {
            Ok(Some(line)) => line,
            Ok(None) if first => return Err(FetchError::NoData),
            Ok(None) => return Err(FetchError::Protocol("no final response".into())),
            Err(e) => return Err(header_error(e)),
        };
        first = false;
        let status = parse_status_line(&line)?;
        let framing = read_headers(r, status).await?;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if !(100..200).contains(&status) || status == 101 {
            break (status, framing);
        }
    };
    let mut body = Body::new(keep_body);
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            // A short body is tolerated as keepalived does (it only logs a length
            // mismatch); a digest will not match it.
            body.pump(r, Some(n)).await?;
        }
        Framing::UntilClose => {
            body.pump(r, None).await?;
        }
        Framing::Chunked => read_chunks(r, &mut body).await?,
    }
    Ok(Response {
        status,
        digest: body.digest(),
        body: body.kept,
    })
}

fn header_error(e: io::Error) -> FetchError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
            FetchError::Protocol(format!("header: {e}"))
        }
        _ => FetchError::Io(e),
    }
}

fn parse_status_line(line: &str) -> Result<u16, FetchError> {
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    // Exactly three digits (RFC 9112 section 4).
    if version.starts_with("HTTP/") && code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(code) = code.parse() {
            return Ok(code);
        }
    }
    Err(FetchError::Protocol(format!(
        "status line {:?}",
        shown(line)
    )))
}

/// The start of a peer's line, for a reason.
fn shown(line: &str) -> String {
    line.chars().take(64).collect()
}

async fn read_headers<R: AsyncBufRead + Unpin>(
    r: &mut R,
    status: u16,
) -> Result<Framing, FetchError> {
    let mut length = None;
    let mut chunked = false;
    for _ in 0..MAX_HEADERS {
        let line = match read_line(r, MAX_LINE).await {
            Ok(Some(line)) => line,
            Ok(None) => return Err(FetchError::Protocol("header: connection closed".into())),
            Err(e) => return Err(header_error(e)),
        };
        if line.is_empty() {
            let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
            return Ok(if bodiless {
                Framing::Empty
            } else if chunked {
                Framing::Chunked
            } else {
                length.map_or(Framing::UntilClose, Framing::Length)
            });
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(FetchError::Protocol(format!(
                "header line {:?}",
                shown(&line)
            )));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| FetchError::Protocol(format!("Content-Length {value:?}")))?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; it then overrides any Content-Length.
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Err(FetchError::Protocol("too many header lines".into()))
}

/// Decodes a chunked body into `body`; a connection closing early ends the body.
async fn read_chunks<R: AsyncBufRead + Unpin>(
    r: &mut R,
    body: &mut Body,
) -> Result<(), FetchError> {
    loop {
        let Some(line) = read_line(r, MAX_LINE).await.map_err(chunk_error)? else {
            return Ok(());
        };
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| FetchError::Protocol(format!("chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailer fields, up to the empty line.
            for _ in 0..MAX_HEADERS {
                match read_line(r, MAX_LINE).await.map_err(chunk_error)? {
                    Some(line) if !line.is_empty() => continue,
                    _ => return Ok(()),
                }
            }
            return Err(FetchError::Protocol("too many trailer lines".into()));
        }
        if body.pump(r, Some(size)).await? < size {
            return Ok(());
        }
        match read_line(r, MAX_LINE).await.map_err(chunk_error)? {
            None => return Ok(()),
            Some(line) if line.is_empty() => {}
            Some(_) => return Err(FetchError::Protocol("chunk not followed by CRLF".into())),
        }
    }
}

fn chunk_error(e: io::Error) -> FetchError {
    match e.kind() {
        io::ErrorKind::InvalidData => FetchError::Protocol(format!("chunk: {e}")),
        _ => FetchError::Io(e),
    }
}

/// The body as it streams in: hashed whole, kept up to [`BODY_KEEP`] when asked.
struct Body {
    md5: Md5,
    keep: bool,
    kept: Vec<u8>,
}

impl Body {
    fn new(keep: bool) -> Self {
        Body {
            md5: Md5::new(),
            keep,
            kept: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.md5.update(data);
        if self.keep {
            let room = BODY_KEEP.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&data[..room.min(data.len())]);
        }
    }

    /// Reads up to `limit` bytes (or to the end of the stream); returns how many.
    async fn pump<R: AsyncBufRead + Unpin>(
        &mut self,
        r: &mut R,
        limit: Option<u64>,
    ) -> io::Result<u64> {
        let mut read = 0u64;
        loop {
            let want = limit.map_or(usize::MAX, |l| {
                usize::try_from(l - read).unwrap_or(usize::MAX)
            });
            if want == 0 {
                return Ok(read);
            }
            let buf = match r.fill_buf().await {
                Ok(buf) => buf,
                // A TLS peer closing without close_notify: keepalived's quiet shutdown.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => &[],
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(read);
            }
            let n = buf.len().min(want);
            self.push(&buf[..n]);
            r.consume(n);
            read += n as u64;
        }
    }

    fn digest(&self) -> String {
        self.md5
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The rustls provider: ring, which needs no C toolchain beyond cc.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The client configuration for `opts`: no verification, the `ca` file's roots, or the
/// system roots (loaded once).
pub(super) fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    static NO_VERIFY: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static SYSTEM: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let cache = match (opts.verify, &opts.ca) {
        (false, _) => &NO_VERIFY,
        (true, None) => &SYSTEM,
        // The file may change between checks: read it every time.
        (true, Some(path)) => return build_config(Some(roots_from_pem(path)?)),
    };
    if let Some(config) = cache.get() {
        return Ok(config.clone());
    }
    let roots = if opts.verify {
        Some(system_roots()?)
    } else {
        None
    };
    let config = build_config(roots)?;
    // A failed system-roots load is not cached: it may work next time.
    Ok(cache.get_or_init(|| config).clone())
}

/// `roots` None: accept any certificate.
fn build_config(roots: Option<RootCertStore>) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots_from_pem(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("ca {shown}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca {shown}: {e}"))?;
        roots.add(cert).map_err(|e| format!("ca {shown}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("ca {shown}: no certificate"));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), |e| e.to_string());
        return Err(format!("no system root certificates: {why}"));
    }
    Ok(roots)
}

/// `verify false`: any certificate is accepted (keepalived's default, SSL_VERIFY_NONE),
/// but the handshake signatures are still checked so the session is sound.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::health::{
        checkers::test_support::{cert, common, response, serve, HANG},
        spec::StatusMatch,
    };

    /// MD5("hello").
    const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

    fn url(path: &str) -> Url {
        Url {
            path: path.into(),
            status: StatusMatch::Default2xx,
            digest: None,
            body: None,
            virtualhost: None,
        }
    }

    fn check(urls: Vec<Url>) -> HttpCheck {
        HttpCheck {
            urls,
            virtualhost: None,
            tls: None,
        }
    }

    async fn get(http: &HttpCheck, respond: Option<Vec<u8>>) -> Verdict {
        let server = serve("127.0.0.1", None, move |_, _| respond.clone()).await;
        run(http, None, server.target(), &common(1000)).await
    }

    #[tokio::test]
    async fn status_codes() {
        let default = check(vec![url("/")]);
        assert_eq!(
            get(&default, response(200, "")).await,
            Verdict::up("status 200")
        );
        assert_eq!(
            get(&default, response(204, "")).await,
            Verdict::up("status 204")
        );
        assert_eq!(
            get(&default, response(503, "")).await,
            Verdict::down("status 503")
        );
        assert_eq!(
            get(&default, response(302, "")).await,
            Verdict::down("status 302")
        );

        let mut u = url("/");
        u.status = StatusMatch::Codes(vec![200, 503]);
        assert!(get(&check(vec![u.clone()]), response(503, "")).await.up);
        assert!(!get(&check(vec![u]), response(500, "")).await.up);

        let mut u = url("/");
        u.status = StatusMatch::Range(500, 599);
        assert!(get(&check(vec![u.clone()]), response(503, "")).await.up);
        assert_eq!(
            get(&check(vec![u]), response(200, "")).await,
            Verdict::down("status 200")
        );
    }

    #[tokio::test]
    async fn digest_and_body() {
        let mut u = url("/");
        u.digest = Some(HELLO_MD5.to_uppercase());
        assert!(
            get(&check(vec![u.clone()]), response(200, "hello"))
                .await
                .up
        );
        let v = get(&check(vec![u.clone()]), response(200, "hellO")).await;
        assert!(
            !v.up && v.reason.starts_with("digest mismatch (got "),
            "{v:?}"
        );
        // The status is checked first.
        assert_eq!(
            get(&check(vec![u]), response(500, "hello")).await,
            Verdict::down("status 500")
        );

        let mut u = url("/");
        u.body = Some(BodyMatch::Contains("ell".into()));
        assert!(
            get(&check(vec![u.clone()]), response(200, "hello"))
                .await
                .up
        );
        assert_eq!(
            get(&check(vec![u]), response(200, "help")).await,
            Verdict::down("body does not match")
        );
        let mut u = url("/");
        u.body = Some(BodyMatch::Regex(r"^h.l+o$".into()));
        assert!(
            get(&check(vec![u.clone()]), response(200, "hello"))
                .await
                .up
        );
        assert!(!get(&check(vec![u]), response(200, "hello!")).await.up);
        // regex_no_match: healthy while the body does not match.
        let mut u = url("/");
        u.body = Some(BodyMatch::RegexAbsent("maintenance|error".into()));
        assert!(
            get(&check(vec![u.clone()]), response(200, "all good"))
                .await
                .up
        );
        assert_eq!(
            get(&check(vec![u]), response(200, "down for maintenance")).await,
            Verdict::down("body matches the regex (regex_no_match)")
        );
        // Contains is literal.
        let mut u = url("/");
        u.body = Some(BodyMatch::Contains("l+".into()));
        assert!(!get(&check(vec![u]), response(200, "hello")).await.up);
    }

    #[tokio::test]
    async fn request_and_host_header() {
        let server = serve("127.0.0.1", None, |_, _| response(200, "")).await;
        let mut http = check(vec![url("/health?full=1")]);
        assert!(run(&http, None, server.target(), &common(1000)).await.up);
        let req = server.request(0);
        assert!(req.starts_with("GET /health?full=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", server.addr.port())));
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        assert!(req.contains("\r\nUser-Agent: KeepAliveClient\r\n"), "{req}");

        http.virtualhost = Some("www.example".into());
        http.urls.push(url("/two"));
        http.urls[1].virtualhost = Some("two.example".into());
        assert_eq!(
            run(&http, None, server.target(), &common(1000)).await,
            Verdict::up("2 urls ok")
        );
        assert!(server.request(1).contains("\r\nHost: www.example\r\n"));
        assert!(server.request(2).contains("\r\nHost: two.example\r\n"));

        let server = serve("::1", None, |_, _| response(200, "")).await;
        assert!(
            run(&check(vec![url("/")]), None, server.target(), &common(1000))
                .await
                .up
        );
        let host = format!("\r\nHost: [::1]:{}\r\n", server.addr.port());
        assert!(server.request(0).contains(&host));
    }

    #[tokio::test]
    async fn body_framings() {
        let mut u = url("/");
        u.digest = Some(md5_hex(b"hello world"));
        u.body = Some(BodyMatch::Contains("hello world".into()));
        let http = check(vec![u]);
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                       5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        assert!(get(&http, Some(chunked.into())).await.up);
        let until_close = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello world";
        assert!(get(&http, Some(until_close.into())).await.up);
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n\
                       hello worldTRAILING JUNK";
        assert!(get(&http, Some(interim.into())).await.up);
        // A short body is tolerated as keepalived does; only the digest notices.
        let short = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhello world";
        assert!(get(&http, Some(short.into())).await.up);
        let short = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhello";
        assert!(!get(&http, Some(short.into())).await.up);
    }

    #[tokio::test]
    async fn broken_servers() {
        let http = check(vec![url("/")]);
        assert_eq!(
            get(&http, Some(Vec::new())).await,
            Verdict::down("no data received")
        );
        let v = get(&http, Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec())).await;
        assert!(v.reason.starts_with("bad response: status line"), "{v:?}");
        let v = get(&http, Some(b"HTTP/1.1 200 OK\r\nContent-".to_vec())).await;
        assert!(
            !v.up && v.reason.starts_with("bad response: header"),
            "{v:?}"
        );
        let bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        let v = get(&http, Some(bad_chunk.into())).await;
        assert!(!v.up && v.reason.contains("chunk size"), "{v:?}");

        let addr = crate::health::checkers::tcp::tests::closed_port().await;
        let target = Target {
            addr: addr.ip(),
            port: addr.port(),
        };
        let v = run(&http, None, target, &common(1000)).await;
        assert_eq!(v, Verdict::down("connection refused"));
    }

    #[tokio::test]
    async fn hanging_server_times_out() {
        let http = check(vec![url("/")]);
        let partial = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", HANG].concat();
        for respond in [None, Some(partial)] {
            let server = serve("127.0.0.1", None, move |_, _| respond.clone()).await;
            let start = Instant::now();
            let v = run(&http, None, server.target(), &common(300)).await;
            let took = start.elapsed();
            assert_eq!(v, Verdict::down("timeout"));
            assert!(
                took >= Duration::from_millis(290) && took < Duration::from_secs(1),
                "{took:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_url_must_pass() {
        let server = serve("127.0.0.1", None, |_, head| {
            if head.starts_with("GET /b ") {
                response(404, "")
            } else {
                response(200, "")
            }
        })
        .await;
        let http = check(vec![url("/a"), url("/b"), url("/c")]);
        let v = run(&http, None, server.target(), &common(1000)).await;
        assert_eq!(v, Verdict::down("/b: status 404"));
        assert_eq!(
            server.requests.lock().unwrap().len(),
            2,
            "stops at the first failure"
        );
    }

    fn tls(verify: bool, ca: Option<&Path>, sni: Option<&str>) -> TlsOptions {
        TlsOptions {
            verify,
            ca: ca.map(Path::to_path_buf),
            sni: sni.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn https_verification_and_sni() {
        let cert = cert();
        let server = serve("127.0.0.1", Some(cert.acceptor.clone()), |_, _| {
            // Close-delimited, closed without close_notify: keepalived's quiet shutdown.
            Some(b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec())
        })
        .await;
        let mut u = url("/");
        u.digest = Some(HELLO_MD5.into());
        let mut http = check(vec![u]);
        let c = common(1000);
        let t = server.target();

        assert!(run(&http, Some(&tls(false, None, None)), t, &c).await.up);
        let v = run(
            &http,
            Some(&tls(true, Some(&cert.pem_file), Some("localhost"))),
            t,
            &c,
        )
        .await;
        assert!(v.up, "{v:?}");
        // Without a name the certificate must cover the address, which it does.
        let v = run(&http, Some(&tls(true, Some(&cert.pem_file), None)), t, &c).await;
        assert!(v.up, "{v:?}");
        let v = run(&http, Some(&tls(true, None, Some("localhost"))), t, &c).await;
        assert!(!v.up && v.reason.starts_with("TLS error"), "{v:?}");
        let v = run(
            &http,
            Some(&tls(true, Some(&cert.pem_file), Some("other.example"))),
            t,
            &c,
        )
        .await;
        assert!(!v.up && v.reason.starts_with("TLS error"), "{v:?}");
        let v = run(
            &http,
            Some(&tls(true, Some(Path::new("/nonexistent.pem")), None)),
            t,
            &c,
        )
        .await;
        assert!(
            !v.up && v.reason.starts_with("TLS error: ca /nonexistent.pem"),
            "{v:?}"
        );

        // SNI: the explicit name, else the virtualhost, else none.
        http.virtualhost = Some("vhost.example".into());
        assert!(run(&http, Some(&tls(false, None, None)), t, &c).await.up);
        assert!(
            run(&http, Some(&tls(false, None, Some("sni.example"))), t, &c)
                .await
                .up
        );
        let sni = server.sni.lock().unwrap().clone();
        let want = [
            None,
            Some("localhost"),
            None,
            Some("vhost.example"),
            Some("sni.example"),
        ];
        assert_eq!(sni, want.map(|s| s.map(String::from)));
        assert!(server.request(4).contains("\r\nHost: vhost.example\r\n"));
    }

    #[tokio::test]
    async fn plain_http_to_an_https_server_fails_and_vice_versa() {
        let cert = cert();
        let server = serve("127.0.0.1", Some(cert.acceptor.clone()), |_, _| {
            response(200, "")
        })
        .await;
        let http = check(vec![url("/")]);
        let v = run(&http, None, server.target(), &common(500)).await;
        assert!(!v.up, "{v:?}");
        // The test server waits for a request head, which a ClientHello is not.
        let server = serve("127.0.0.1", None, |_, _| response(200, "")).await;
        let v = run(
            &http,
            Some(&tls(false, None, None)),
            server.target(),
            &common(300),
        )
        .await;
        assert_eq!(v, Verdict::down("timeout"));
    }

    fn md5_hex(data: &[u8]) -> String {
        let mut body = Body::new(false);
        body.push(data);
        body.digest()
    }

    #[test]
    fn digest_is_md5_hex() {
        assert_eq!(md5_hex(b"hello"), HELLO_MD5);
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
