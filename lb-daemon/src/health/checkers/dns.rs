//! DNS_CHECK (keepalived `check_dns.c`): one query over UDP (random id, RD set, class
//! IN) for `name`/`type`; up when a response with the same id and QR set carries RCODE
//! 0. As in keepalived, answers are not required (ANCOUNT may be 0), and datagrams that
//! are too short, carry another id or are not responses are ignored while waiting.

use super::{io_reason, random_u64, udp, within, Verdict};
use crate::health::spec::{Common, DnsCheck, Target};

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_RD: u16 = 0x0100;
const CLASS_IN: u16 = 1;

pub(super) async fn run(dns: &DnsCheck, target: Target, common: &Common) -> Verdict {
    let id = random_u64() as u16;
    let query = match encode_query(id, &dns.name, dns.qtype.code()) {
        Ok(query) => query,
        Err(why) => return Verdict::down(why),
    };
    within(common.connect_timeout, async {
        let socket = match udp::connect(target, common.bind_to).await {
            Ok(socket) => socket,
            Err(why) => return Verdict::down(why),
        };
        if let Err(e) = socket.send(&query).await {
            return Verdict::down(io_reason(&e));
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = match socket.recv(&mut buf).await {
                Ok(n) => n,
                // An ICMP error (port unreachable: "connection refused").
                Err(e) => return Verdict::down(io_reason(&e)),
            };
            if let Some(rcode) = response_rcode(&buf[..n], id) {
                return match rcode {
                    0 => Verdict::up("NOERROR"),
                    code => Verdict::down(format!("rcode {code} ({})", rcode_name(code))),
                };
            }
        }
    })
    .await
}

/// A standard query: header (id, RD, QDCOUNT 1) and one question.
fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    for word in [id, FLAG_RD, 1, 0, 0, 0] {
        q.extend_from_slice(&word.to_be_bytes());
    }
    q.extend_from_slice(&encode_name(name)?);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// `example.com` / `example.com.` as length-prefixed labels; `.` is the root.
fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&l| l <= 63)
            .ok_or_else(|| format!("query name {name:?}: label longer than 63 bytes"))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("query name {name:?}: longer than 255 bytes"));
    }
    Ok(out)
}

/// The RCODE of `msg` if it is the response to query `id`, else None (ignored).
pub(crate) fn response_rcode(msg: &[u8], id: u16) -> Option<u16> {
    let header = msg.get(..HEADER_LEN)?;
    let got_id = u16::from_be_bytes([header[0], header[1]]);
    let flags = u16::from_be_bytes([header[2], header[3]]);
    (got_id == id && flags & FLAG_QR != 0).then_some(flags & 0x000f)
}

fn rcode_name(code: u16) -> &'static str {
    match code {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::SocketAddr,
        sync::{Arc, Mutex},
        time::{Duration, Instant},
    };

    use tokio::net::UdpSocket;

    use super::*;
    use crate::health::{checkers::test_support::common, spec::DnsType};

    /// A DNS server sending, for each query, the datagrams `answer` builds from it;
    /// records the queries.
    async fn server(
        ip: &str,
        answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                log.lock().unwrap().push(buf[..n].to_vec());
                for reply in answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        (addr, seen)
    }

    /// A response header to `query` with `flags`, and no records.
    fn reply(query: &[u8], id_delta: u16, flags: u16) -> Vec<u8> {
        let id = u16::from_be_bytes([query[0], query[1]]).wrapping_add(id_delta);
        let mut r = query.to_vec();
        r[..2].copy_from_slice(&id.to_be_bytes());
        r[2..4].copy_from_slice(&flags.to_be_bytes());
        r
    }

    fn check(name: &str, qtype: DnsType) -> DnsCheck {
        DnsCheck {
            name: name.into(),
            qtype,
        }
    }

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    #[tokio::test]
    async fn noerror_is_up_even_without_answers() {
        for ip in ["127.0.0.1", "::1"] {
            let (addr, seen) = server(ip, |q| vec![reply(q, 0, FLAG_QR | FLAG_RD)]).await;
            let v = run(
                &check("example.com", DnsType::A),
                target(addr),
                &common(1000),
            )
            .await;
            assert_eq!(v, Verdict::up("NOERROR"), "{ip}");
            let query = seen.lock().unwrap()[0].clone();
            assert_eq!(&query[2..6], &[0x01, 0x00, 0x00, 0x01], "RD, one question");
            assert_eq!(&query[12..], b"\x07example\x03com\x00\x00\x01\x00\x01");
        }
    }

    #[tokio::test]
    async fn servfail_is_down() {
        let (addr, _) = server("127.0.0.1", |q| vec![reply(q, 0, FLAG_QR | 2)]).await;
        let v = run(&check(".", DnsType::Soa), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("rcode 2 (SERVFAIL)"));
    }

    #[tokio::test]
    async fn strays_are_ignored() {
        // Another id, then a query echoed back, then the answer.
        let (addr, _) = server("127.0.0.1", |q| {
            vec![reply(q, 1, FLAG_QR), q.to_vec(), reply(q, 0, FLAG_QR)]
        })
        .await;
        let v = run(&check(".", DnsType::Soa), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::up("NOERROR"));
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        let (addr, _) = server("127.0.0.1", |_| Vec::new()).await;
        let start = Instant::now();
        let v = run(&check(".", DnsType::Soa), target(addr), &common(300)).await;
        assert_eq!(v, Verdict::down("timeout"));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn closed_port_is_down() {
        let addr = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let v = run(&check(".", DnsType::Soa), target(addr), &common(1000)).await;
        assert_eq!(v, Verdict::down("connection refused"));
    }

    #[test]
    fn names() {
        assert_eq!(encode_name(".").unwrap(), [0]);
        assert_eq!(encode_name("").unwrap(), [0]);
        assert_eq!(encode_name("a.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(encode_name("a.bc").unwrap(), b"\x01a\x02bc\x00");
        assert!(encode_name(&"x".repeat(64)).is_err());
        assert!(encode_name(&["x"; 200].join(".")).is_err());
        let q = encode_query(0xbeef, ".", DnsType::Aaaa.code()).unwrap();
        assert_eq!(
            q,
            b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x1c\x00\x01"
        );
    }
}
