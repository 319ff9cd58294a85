//! `http_get` and `ssl_get`: their `url` entries, status codes and digests, and the TLS
//! settings of `ssl_get`.

use crate::config::check::{BodyMatch, HttpCheck, StatusMatch, TlsOptions, Url};
use crate::config::reader::{Decoder, Field, Table};

/// keepalived's (and HTTP's) bounds on status codes.
const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 599;
/// Hex digits of an MD5 digest.
const DIGEST_LEN: usize = 32;

const STATUS_HINT: &str =
    "write a code (200), a list ([200, 204]) or a range (\"200-299\"), codes 100 to 599";

/// The checker keys of `http_get` (`tls`: `ssl_get`); `vhost` is the real or virtual
/// server's `virtualhost`, the default of the checker's.
pub(super) fn decode(
    d: &mut Decoder<'_>,
    t: &mut Table<'_, '_>,
    tls: bool,
    vhost: Option<&str>,
) -> Option<HttpCheck> {
    let virtualhost = t
        .get(d, "virtualhost")
        .and_then(|f| f.string(d))
        .or(vhost.map(str::to_owned));
    let mut urls = Vec::new();
    if let Some(field) = t.required(d, "url") {
        if field.array_len() == Some(0) {
            field
                .error(d, "a checker needs at least one url")
                .hint("e.g. url = [{ path = \"/healthz\" }]");
        }
        for table in field.one_or_more_tables(d) {
            urls.extend(url(d, table));
        }
    }
    let tls = tls.then(|| tls_options(d, t, virtualhost.as_deref()));
    Some(HttpCheck {
        urls,
        virtualhost,
        tls,
    })
}

fn tls_options(d: &mut Decoder<'_>, t: &mut Table<'_, '_>, vhost: Option<&str>) -> TlsOptions {
    // keepalived's SSL_GET never verifies the certificate.
    let verify = t.get(d, "verify").and_then(|f| f.bool(d)).unwrap_or(false);
    let ca = t.get(d, "ca").and_then(|f| {
        let ca = f.absolute_path(d)?;
        if !verify {
            f.warning(d, "ignored: the certificate is not verified")
                .hint("set verify = true to check it against this CA");
        }
        Some(ca)
    });
    let sni = t
        .get(d, "sni_name")
        .and_then(|f| f.string(d))
        .or(vhost.map(str::to_owned));
    TlsOptions { verify, ca, sni }
}

fn url(d: &mut Decoder<'_>, mut t: Table<'_, '_>) -> Option<Url> {
    let errors_before = d.error_count();
    let path = t.required(d, "path").and_then(|f| url_path(d, &f));
    let status = t
        .get(d, "status_code")
        .and_then(|f| status(d, &f))
        .unwrap_or(StatusMatch::Default2xx);
    let digest = t.get(d, "digest").and_then(|f| digest(d, &f));
    let regex = t.get(d, "regex").and_then(|f| regex(d, &f));
    let body = t.get(d, "body").and_then(|f| {
        if t.span_of("regex").is_some() {
            f.error(d, "`regex` is set too")
                .hint("keep one: `body` looks for a substring, `regex` for a pattern");
            return None;
        }
        f.string(d)
    });
    let no_match = match t.get(d, "regex_no_match") {
        Some(f) => {
            let on = f.bool(d).unwrap_or(false);
            if on && t.span_of("regex").is_none() {
                f.error(d, "`regex_no_match` needs a `regex`")
                    .hint("add `regex = \"PATTERN\"`: the server is healthy while its body does not match it");
            }
            on
        }
        None => false,
    };
    let virtualhost = t.get(d, "virtualhost").and_then(|f| f.string(d));
    t.finish(d);
    if d.error_count() != errors_before {
        return None;
    }
    Some(Url {
        path: path?,
        status,
        digest,
        body: regex
            .map(if no_match {
                BodyMatch::RegexAbsent
            } else {
                BodyMatch::Regex
            })
            .or(body.map(BodyMatch::Contains)),
        virtualhost,
    })
}

fn url_path(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<String> {
    let path = f.string(d)?;
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        f.error(d, format!("`{path}` is not an HTTP path"))
            .hint("start with `/`, without spaces, e.g. \"/healthz\"");
        return None;
    }
    Some(path)
}

/// A pattern the checker can compile (Rust `regex` syntax; keepalived's is PCRE2).
fn regex(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<String> {
    let pattern = f.string(d)?;
    if let Err(e) = regex::Regex::new(&pattern) {
        // The last line of the error says what is wrong; those above draw where.
        let shown = e.to_string();
        let reason = shown.lines().last().unwrap_or_default();
        let reason = reason.strip_prefix("error: ").unwrap_or(reason);
        f.error(d, format!("invalid regular expression: {reason}"));
        return None;
    }
    Some(pattern)
}

/// `200`, `[200, 204]`, `"200-299"`, or a list mixing codes and ranges (as keepalived's
/// `status_code 200-299 401 503`).
fn status(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<StatusMatch> {
    if let Some(text) = f.peek_str() {
        let (low, high) = status_text(d, f, text)?;
        return Some(if low == high {
            StatusMatch::Codes(vec![low])
        } else {
            StatusMatch::Range(low, high)
        });
    }
    let Some(items) = f.array_len().and_then(|_| f.array(d)) else {
        let code = f.int(d, i64::from(STATUS_MIN)..=i64::from(STATUS_MAX))?;
        return Some(StatusMatch::Codes(vec![code]));
    };
    if items.is_empty() {
        f.error(d, "an empty list accepts no status code")
            .hint("leave status_code out to accept any 2xx");
        return None;
    }
    let mut ranges = Vec::new();
    for item in &items {
        let range = match item.peek_str() {
            Some(text) => status_text(d, item, text),
            None => item
                .int(d, i64::from(STATUS_MIN)..=i64::from(STATUS_MAX))
                .map(|code| (code, code)),
        };
        ranges.extend(range);
    }
    if ranges.len() != items.len() {
        return None;
    }
    if let [(low, high)] = ranges[..] {
        if low != high {
            return Some(StatusMatch::Range(low, high));
        }
    }
    let mut codes: Vec<u16> = Vec::new();
    for code in ranges.into_iter().flat_map(|(low, high)| low..=high) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Some(StatusMatch::Codes(codes))
}

/// `"200"` or `"200-299"`.
fn status_text(d: &mut Decoder<'_>, f: &Field<'_, '_>, text: &str) -> Option<(u16, u16)> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (Ok(low), Ok(high)) = (low.trim().parse::<u16>(), high.trim().parse::<u16>()) else {
        f.error(d, format!("`{text}` is not a status code or a range"))
            .hint(STATUS_HINT);
        return None;
    };
    let valid = STATUS_MIN..=STATUS_MAX;
    if !valid.contains(&low) || !valid.contains(&high) {
        f.error(
            d,
            format!("status codes are between {STATUS_MIN} and {STATUS_MAX}, got `{text}`"),
        );
        return None;
    }
    if low > high {
        f.error(d, format!("range `{text}` ends before it starts"));
        return None;
    }
    Some((low, high))
}

/// An MD5 digest as `genhash` prints it: 32 hexadecimal digits (kept in lower case).
fn digest(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<String> {
    let text = f.str(d)?.trim();
    if text.len() != DIGEST_LEN || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        f.error(
            d,
            format!("`{text}` is not an MD5 digest: expected {DIGEST_LEN} hexadecimal digits"),
        )
        .hint("genhash prints it: genhash -s ADDRESS -p PORT -u PATH");
        return None;
    }
    Some(text.to_ascii_lowercase())
}
