//! `lb-daemon genhash URL`: keepalived's `genhash` (`check_genhash.c`): fetches a page
//! the way HTTP_GET / SSL_GET do and gives its status and the MD5 of its body, the
//! value for a `url`'s `digest`.

use std::{net::IpAddr, time::Duration};

use super::{
    http::{self, FetchError},
    io_reason,
};
use crate::health::spec::{Target, TlsOptions};

#[derive(Debug, thiserror::Error)]
pub enum GenhashError {
    #[error("bad URL {url:?}: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("timeout")]
    Timeout,
    #[error("TLS error: {0}")]
    Tls(String),
    /// The request failed: "connection refused", "no data received", ...
    #[error("{0}")]
    Fetch(String),
}

/// Fetches `http(s)://host[:port]/path` (Host: `virtualhost`, else the URL's
/// authority; for https, SNI and verification against the system roots use the
/// virtualhost, else the URL's host) and returns the status and the lower-case hex MD5
/// of the body, whatever the status. `timeout` bounds the whole fetch.
pub async fn genhash(
    url: &str,
    virtualhost: Option<&str>,
    verify_tls: bool,
    timeout: Duration,
) -> Result<(u16, String), GenhashError> {
    let parsed = parse(url).map_err(|why| GenhashError::BadUrl {
        url: url.to_owned(),
        why,
    })?;
    let tls = if parsed.tls {
        let opts = TlsOptions {
            verify: verify_tls,
            ca: None,
            sni: None,
        };
        Some(http::client_config(&opts).map_err(GenhashError::Tls)?)
    } else {
        None
    };
    let host_header = virtualhost.unwrap_or(parsed.authority);
    let fetch = async {
        let addr = resolve(parsed.host, parsed.port).await?;
        let session = match tls {
            Some(config) => {
                let name = http::server_name(Some(virtualhost.unwrap_or(parsed.host)), addr)
                    .map_err(GenhashError::Tls)?;
                Some((config, name))
            }
            None => None,
        };
        let target = Target {
            addr,
            port: parsed.port,
        };
        http::fetch(target, None, session, host_header, &parsed.path, false)
            .await
            .map_err(|e| match e {
                FetchError::Tls(why) => GenhashError::Tls(why),
                e => GenhashError::Fetch(e.to_string()),
            })
    };
    let response = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| GenhashError::Timeout)??;
    Ok((response.status, response.digest))
}

/// The parts of an `http(s)://` URL genhash needs.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    tls: bool,
    /// As written: the Host header.
    authority: &'a str,
    /// Without IPv6 brackets.
    host: &'a str,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Parsed<'_>, &'static str> {
    let (tls, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        _ => return Err("not an http:// or https:// URL"),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    };
    if authority.contains('@') {
        return Err("credentials are not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => p.parse().map_err(|_| "bad port")?,
    };
    Ok(Parsed {
        tls,
        authority,
        host,
        port,
        path,
    })
}

async fn resolve(host: &str, port: u16) -> Result<IpAddr, GenhashError> {
    if let Ok(addr) = host.parse() {
        return Ok(addr);
    }
    let failed = |why: String| GenhashError::Resolve {
        host: host.to_owned(),
        why,
    };
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| failed(io_reason(&e)))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| failed("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let p = parse("http://10.0.0.1/health?x=1").unwrap();
        assert_eq!(
            p,
            Parsed {
                tls: false,
                authority: "10.0.0.1",
                host: "10.0.0.1",
                port: 80,
                path: "/health?x=1".into()
            }
        );
        let p = parse("HTTPS://[::1]:8443").unwrap();
        assert_eq!(
            (p.tls, p.host, p.port, p.path.as_str()),
            (true, "::1", 8443, "/")
        );
        assert_eq!(p.authority, "[::1]:8443");
        let p = parse("http://web.example:8080?q").unwrap();
        assert_eq!(
            (p.host, p.port, p.path.as_str()),
            ("web.example", 8080, "/?q")
        );
        for bad in [
            "ftp://x/",
            "web/",
            "http:///",
            "http://h:x/",
            "http://[::1/",
            "http://u@h/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod fetch_tests {
    use super::*;
    use crate::health::{
        checkers::{
            check_once,
            test_support::{cert, response, serve, spec},
        },
        spec::{CheckKind, HttpCheck, StatusMatch, Url},
    };

    fn http_check(digest: &str) -> HttpCheck {
        HttpCheck {
            urls: vec![Url {
                path: "/page".into(),
                status: StatusMatch::Default2xx,
                digest: Some(digest.into()),
                body: None,
                virtualhost: None,
            }],
            virtualhost: None,
            tls: None,
        }
    }

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_checker_accepts_the_digest_genhash_gives() {
        let server = serve("127.0.0.1", None, |_, _| response(200, "some page\n")).await;
        let url = format!("http://{}/page", server.addr);
        let (status, digest) = genhash(&url, None, false, T).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(digest.len(), 32);
        let out = check_once(
            &spec(CheckKind::Http(http_check(&digest)), 1000),
            server.target(),
        )
        .await;
        assert!(out.up, "{out:?}");
        assert!(server
            .request(0)
            .contains(&format!("\r\nHost: {}\r\n", server.addr)));

        genhash(&url, Some("www.example"), false, T).await.unwrap();
        assert!(server.request(2).contains("\r\nHost: www.example\r\n"));
    }

    #[tokio::test]
    async fn https_and_errors() {
        let cert = cert();
        let body = "secure page";
        let server = serve("::1", Some(cert.acceptor.clone()), move |_, _| {
            response(404, body)
        })
        .await;
        let url = format!("https://{}/page", server.addr);
        let (status, digest) = genhash(&url, None, false, T).await.unwrap();
        assert_eq!(status, 404, "any status is reported");
        let plain = serve("127.0.0.1", None, move |_, _| response(200, body)).await;
        let (_, plain_digest) = genhash(&format!("http://{}/", plain.addr), None, false, T)
            .await
            .unwrap();
        assert_eq!(digest, plain_digest);
        // The self-signed certificate is not in the system roots.
        let err = genhash(&url, None, true, T).await.unwrap_err();
        assert!(matches!(err, GenhashError::Tls(_)), "{err}");

        let addr = crate::health::checkers::tcp::tests::closed_port().await;
        let err = genhash(&format!("http://{addr}/"), None, false, T)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "connection refused");
        let hang = serve("127.0.0.1", None, |_, _| None).await;
        let err = genhash(
            &format!("http://{}/", hang.addr),
            None,
            false,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, GenhashError::Timeout), "{err}");
        let err = genhash("gopher://x/", None, false, T).await.unwrap_err();
        assert!(matches!(err, GenhashError::BadUrl { .. }), "{err}");
    }
}
