//! Entry points for the fuzz targets (`tests/fuzz`, docs/reliability.md "Fuzzing"): one
//! function per parser of outside input, taking the raw bytes an attacker controls and
//! asserting the parser's properties (a panic is a finding). Not an API: hidden from the
//! docs, and nothing in the daemon calls it.
//!
//! Each function drives the daemon's own parser exactly as the IO code does (same
//! limits, same order of calls); the async readers run on a `&[u8]` stream, which never
//! pends, so they complete under a plain `block_on` without a runtime. A result that is
//! only checked for "no panic" goes through `std::hint::black_box`: dropped, a pure
//! parser's call may be optimised away whole (`probe_frame` and `health_datagram` once
//! reported 8 edges of coverage, the harness's own, for that reason).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::net::proto::{VRRP_GROUP_V4, VRRP_GROUP_V6};
use crate::vrrp::{ah, packet, types::Auth, types::Version};

/// The first byte of an input picks the endpoints a VRRP message is checked against
/// (the checksum covers them): IPv4 or IPv6, multicast or unicast.
fn vrrp_endpoints(selector: u8) -> (IpAddr, IpAddr) {
    match selector % 4 {
        0 => (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(VRRP_GROUP_V4),
        ),
        1 => (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        ),
        2 => (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(VRRP_GROUP_V6),
        ),
        _ => (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
        ),
    }
}

/// The bytes of a VRRP message that carry no information, set as the encoder writes
/// them: v2 auth data when the auth type is none or AH, v3's reserved interval nibble,
/// and a checksum of 0xffff (the same one's-complement value as 0x0000).
fn vrrp_canonical(msg: &[u8], version: Version, auth: Auth) -> Vec<u8> {
    let mut m = msg.to_vec();
    match version {
        Version::V2 => {
            if matches!(auth, Auth::None | Auth::Ah) {
                let n = m.len();
                m[n - 8..].fill(0);
            }
        }
        Version::V3 => m[4] &= 0x0f,
    }
    m
}

fn checksum_equivalent(a: &[u8], b: &[u8]) -> bool {
    let (ca, cb) = ([a[6], a[7]], [b[6], b[7]]);
    let same_rest = a[..6] == b[..6] && a[8..] == b[8..];
    same_rest && (ca == cb || matches!((ca, cb), ([0, 0], [0xff, 0xff]) | ([0xff, 0xff], [0, 0])))
}

/// VRRP v2/v3 adverts, IPv4 and IPv6 (`vrrp::packet`): input = endpoint selector byte,
/// then the VRRP message. Properties: decoding never panics; a decoded advert
/// re-encodes (with the checksum form it arrived with) to the input bytes up to the
/// fields the format ignores ([`vrrp_canonical`]), and decodes again to the same advert;
/// the per-instance checks (`validate`) never panic on it.
pub fn vrrp_packet(data: &[u8]) {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let (src, dst) = vrrp_endpoints(selector);
    let Ok(decoded) = packet::decode_detailed(msg, src, dst) else {
        return;
    };
    let advert = decoded.advert;
    let expect = packet::Expect {
        version: advert.version,
        vrid: selector,
        auth: advert.auth,
        interval_cs: 100,
        multicast: selector % 2 == 0,
        addresses: advert.addresses.iter().take(2).copied().collect(),
    };
    let _ = std::hint::black_box(packet::validate(&advert, selector, &expect));
    let checksum_dst = match (decoded.legacy_unicast_checksum, dst) {
        (true, IpAddr::V4(_)) => IpAddr::V4(VRRP_GROUP_V4),
        _ => dst,
    };
    // The encoder refuses what keepalived never sends (interval 0, v3 without
    // addresses): such input has no canonical form.
    let Ok(encoded) = packet::encode(&advert, src, checksum_dst) else {
        return;
    };
    let mut want = vrrp_canonical(msg, advert.version, advert.auth);
    if want != msg {
        // The ignored bytes were not zero: the checksum covered them, so it differs too.
        want[6..8].copy_from_slice(&encoded[6..8]);
    }
    assert!(
        checksum_equivalent(&encoded, &want),
        "re-encoded advert differs:\n input   {want:02x?}\n encoded {encoded:02x?}\n advert {advert:?}"
    );
    let again = packet::decode(&encoded, src, dst).expect("a re-encoded advert decodes");
    assert_eq!(again, advert);
}

/// An IPv4 VRRP datagram as the raw socket delivers it (IP header, then the VRRP
/// message or AH + VRRP), through `vrrp::socket`'s header parsing, `auth_type AH`
/// (`vrrp::ah::open` with a fixed key) and the decoder. Properties: no panic; and
/// sealing the input's own header and payload with [`ah::seal`] gives a packet that
/// [`ah::open`] accepts with the same sequence number and message.
pub fn vrrp_ipv4_datagram(data: &[u8]) {
    const KEY: [u8; 8] = *b"fuzzkey!";
    let Some(r) = crate::vrrp::socket::parse_v4(data, 1) else {
        return;
    };
    for unicast in [false, true] {
        let mut counter = ah::SeqCounter::default();
        if let Ok(opened) = ah::open(&r.ip_header, &r.payload, &KEY, unicast, &mut counter) {
            let _ = std::hint::black_box(packet::decode(opened.msg, r.src, r.dst));
        }
    }
    let _ = std::hint::black_box(packet::decode(&r.payload, r.src, r.dst));

    let Ok(header) = <[u8; 20]>::try_from(&r.ip_header[..]) else {
        return;
    };
    let seq = u32::from_be_bytes([header[4], header[5], header[10], header[11]]).max(1);
    let unicast = header[1] & 1 == 1;
    let sealed = ah::seal(&header, &r.payload, seq, &KEY, unicast);
    let mut rest = sealed.to_vec();
    rest.extend_from_slice(&r.payload);
    let mut counter = ah::SeqCounter::default();
    let opened = ah::open(&header, &rest, &KEY, unicast, &mut counter)
        .expect("a sealed packet opens with the same key");
    assert_eq!(opened.seq, seq);
    assert_eq!(opened.msg, &r.payload[..]);
}

/// The split-brain probes' parsers (`vrrp::probe`): ARP senders and IPv6 neighbour
/// advertisements in received Ethernet frames. Property: no panic.
pub fn probe_frame(data: &[u8]) {
    let own = [0x02, 0, 0, 0, 0, 1];
    let _ = std::hint::black_box(crate::vrrp::probe::parse_sender(data, own));
    let _ = std::hint::black_box(crate::vrrp::probe::parse_advert(data, own));
}

/// The TOML configuration loader (`Config::from_str`). Property: no panic; and a
/// configuration that loads is rendered again by the `toml` crate (canonical
/// formatting: other quoting, ordering and table layout) and loads to the same model.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let Ok(loaded) = crate::config::Config::from_str(text, path) else {
        return;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        panic!("the loader accepted text the toml crate rejects");
    };
    let Ok(rendered) = toml::to_string(&table) else {
        return;
    };
    let reloaded = crate::config::Config::from_str(&rendered, path).unwrap_or_else(|e| {
        panic!("a loaded config no longer loads once re-rendered:\n{rendered}\n{e:?}")
    });
    assert_eq!(reloaded.config, loaded.config, "re-rendered:\n{rendered}");
}

/// keepalived.conf: the lexer, the parser and the converter (`convert::convert_str`),
/// then the TOML loader on what it emits. Properties: no panic; the emitted TOML is
/// valid TOML; the loader never panics on it and its diagnostics map back to
/// keepalived lines (`Converted::remap`). Input naming `include` is skipped: it would
/// read this machine's files (the include globbing has its own unit tests).
pub fn keepalived_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        return;
    }
    let path = Path::new("/nonexistent/keepalived.conf");
    let Ok(converted) = crate::convert::convert_str(text, path, "") else {
        return;
    };
    if let Err(e) = converted.toml.parse::<toml::Table>() {
        panic!("convert emitted invalid TOML ({e}):\n{}", converted.toml);
    }
    if let Err(errors) = crate::config::Config::from_str(&converted.toml, "converted.toml") {
        for d in errors.errors {
            let _ = std::hint::black_box(converted.remap(d));
        }
    }
}

/// IPVS generic netlink replies (`ipvs::codec`, `ipvs::socket`'s framing, `ipvs::model`):
/// a datagram split into netlink messages, each decoded as the manager's dumps are.
/// Properties: no panic; a decoded message serializes and decodes back to itself.
pub fn ipvs_netlink(data: &[u8]) {
    use netlink_packet_core::{
        NetlinkDeserializable, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    };
    use netlink_packet_generic::GenlMessage;

    use crate::ipvs::codec::IpvsMessage;
    use crate::ipvs::model::{DestEntry, ServiceEntry};

    let Ok(frames) = crate::ipvs::socket::frames(data) else {
        return;
    };
    for frame in frames {
        let Ok(msg) = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(frame) else {
            continue;
        };
        let NetlinkPayload::InnerMessage(inner) = &msg.payload else {
            continue;
        };
        let ipvs = &inner.payload;
        let family = match ipvs.service().map(ServiceEntry::from_attrs) {
            Some(Ok(s)) if s.id.vip.is_ipv6() => libc::AF_INET6 as u16,
            _ => libc::AF_INET as u16,
        };
        if let Some(d) = ipvs.dest() {
            let _ = std::hint::black_box(DestEntry::from_attrs(d, family));
        }
        let mut buf = vec![0u8; NetlinkSerializable::buffer_len(inner)];
        NetlinkSerializable::serialize(inner, &mut buf);
        let again = GenlMessage::<IpvsMessage>::deserialize(&msg.header, &buf)
            .unwrap_or_else(|e| panic!("a decoded message does not decode once re-encoded: {e}"));
        // Unknown attributes (top level or nested in a service or destination) lose the
        // NLA_F_NESTED / NLA_F_NET_BYTEORDER flag bits on decode (netlink-packet-core), so
        // the first encoding may differ from the input; from then on it is a fixed point.
        let mut buf2 = vec![0u8; NetlinkSerializable::buffer_len(&again)];
        NetlinkSerializable::serialize(&again, &mut buf2);
        assert_eq!(
            buf2, buf,
            "re-encoding a decoded IPVS message is not stable"
        );
    }
}

/// The control socket's request handling (`daemon::control`): one line read as the
/// server reads it (at most `MAX_REQUEST` bytes), then answered with an empty status
/// and no daemon behind the channel. Property: no panic, and every answer is one line.
pub fn control_request(data: &[u8]) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx);
    let source: crate::daemon::control::Source =
        Arc::new(crate::daemon::snapshot::Snapshot::default);
    let answer = block_on(async {
        let mut reader = BufReader::new(data.take(crate::daemon::control::MAX_REQUEST));
        let mut line = String::new();
        if reader.read_line(&mut line).await.is_err() {
            return None;
        }
        Some(crate::daemon::control::answer(line.trim(), &source, &tx).await)
    });
    if let Some(answer) = answer {
        assert!(
            answer.ends_with('\n') && answer.matches('\n').count() == 1,
            "{answer:?}"
        );
    }
}

/// The metrics server's request head reader and router (`daemon::metrics`). Property:
/// no panic, and the head read never exceeds its bound by more than one read.
pub fn metrics_request(data: &[u8]) {
    let mut stream = data;
    let Ok(head) = block_on(crate::daemon::metrics::read_head(&mut stream)) else {
        return;
    };
    assert!(head.len() <= 3 * (8 * 1024 + 1024), "{}", head.len());
    let _ = std::hint::black_box(crate::daemon::metrics::route(&head));
}

/// HTTP_GET / SSL_GET replies (`health::checkers::http`: status line, headers, the
/// Content-Length / chunked / until-close body, MD5 digest). SSL_GET parses the same
/// bytes once rustls has decrypted them. Property: no panic; the body kept is bounded.
pub fn http_reply(data: &[u8]) {
    for keep_body in [false, true] {
        let mut r = BufReader::new(data);
        if let Ok(resp) = block_on(crate::health::checkers::http_read_response(
            &mut r, keep_body,
        )) {
            assert!(resp.body.len() <= data.len());
            assert_eq!(resp.digest.len(), 32);
        }
    }
}

/// SMTP_CHECK replies (`health::checkers::smtp`): reply after reply (multi-line
/// `NNN-` continuations) as the dialogue reads them. Property: no panic, codes 0..=999.
pub fn smtp_reply(data: &[u8]) {
    let mut r = BufReader::new(data);
    for _ in 0..8 {
        match block_on(crate::health::checkers::smtp_reply(&mut r)) {
            Ok(code) => assert!(code <= 999),
            Err(_) => break,
        }
    }
}

/// Datagram replies: DNS_CHECK's response (`dns`), PING_CHECK's ICMP / ICMPv6 echo
/// reply (`ping::is_reply`). UDP_CHECK does not parse its reply (any reply is up).
/// Property: no panic.
pub fn health_datagram(data: &[u8]) {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let _ = std::hint::black_box(crate::health::checkers::dns_response_rcode(data, id));
    for v6 in [false, true] {
        let _ = std::hint::black_box(crate::health::checkers::ping::is_reply(
            data,
            v6,
            id,
            id.rotate_left(3),
        ));
    }
}

/// Flow-state sync datagrams (`sync::wire`). The HMAC is checked before anything else,
/// so besides the raw input (which must fail the tag) the input is also signed with the
/// test key to reach the body. Properties: no panic; a message that decodes re-encodes
/// to the same bytes (the 3 reserved header bytes, ignored on receipt, aside) and
/// decodes again to itself.
pub fn sync_wire(data: &[u8]) {
    use crate::sync::wire;

    let key = wire::Key::new(b"fuzz-sync-key");
    let maxlen = wire::MAX_MAXLEN;
    if let Ok(m) = wire::decode(data, maxlen, 1, &key) {
        panic!("an unsigned message was accepted: {m:?}");
    }
    if data.len() < wire::HEADER_LEN || data.len() + wire::TAG_LEN > maxlen {
        return;
    }
    let mut signed = data.to_vec();
    signed[..4].copy_from_slice(&wire::MAGIC);
    let tag = ring::hmac::sign(&ring_key(), &signed);
    signed.extend_from_slice(tag.as_ref());
    let Ok(message) = wire::decode(&signed, maxlen, signed[8], &key) else {
        return;
    };
    let encoded = if message.bulk_request {
        vec![wire::encode_bulk_request(&message.header, &key)]
    } else {
        wire::encode(&message.header, &message.records, maxlen, &key)
    };
    if message.records.is_empty() && !message.bulk_request {
        assert!(encoded.is_empty());
        return;
    }
    assert_eq!(encoded.len(), 1, "one datagram re-encodes to one");
    let mut want = signed[..signed.len() - wire::TAG_LEN].to_vec();
    want[9..12].fill(0);
    let got = &encoded[0][..encoded[0].len() - wire::TAG_LEN];
    assert_eq!(got, &want[..], "re-encoded sync message differs");
    let again = wire::decode(&encoded[0], maxlen, message.header.sync_id, &key)
        .expect("a re-encoded message decodes");
    assert_eq!(again, message);
}

fn ring_key() -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fuzz-sync-key")
}

/// BIRD control-socket replies (`bgp::bird`), read by the BGP tier: the reply stream
/// and the `show protocols` table. Property: no panic.
pub fn bird_reply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(replies) = crate::bgp::bird::parse_replies(text) {
        for reply in &replies {
            let _ = std::hint::black_box(crate::bgp::bird::parse_protocols(reply));
        }
    }
}
