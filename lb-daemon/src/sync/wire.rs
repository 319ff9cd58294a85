//! The sync message (pure): a header, a batch of flow records, an HMAC-SHA256 tag.
//!
//! ```text
//! 0      4     5      6        8        9   12          16                  24                  32
//! | "LBSY" | ver | flags | count | sync_id | 0 | sender (u32) | sequence (u64) | time (ms, u64) |
//! | count records ...                                                                         |
//! | HMAC-SHA256 (32 bytes) over everything before it                                          |
//! ```
//!
//! A record: `kind, family, proto, state`, then five (address, port) pairs — the
//! service, the client (the table key's source), the destination the client used, the
//! real, and the translated source — 4-byte addresses for family 4, 16-byte for family
//! 6 — then the flow's idle time in ms (u32).
//! Every integer is big-endian. Anything that does not parse exactly is dropped with a
//! [`Drop`] reason; nothing partial is ever returned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lb_common::Protocol;
use ring::hmac;

use crate::dataplane::{
    flow_sync::{FlowKind, FlowRecord},
    ServiceId,
};

pub const MAGIC: [u8; 4] = *b"LBSY";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
pub const TAG_LEN: usize = 32;
pub use crate::config::{
    SYNC_DEFAULT_MAXLEN as DEFAULT_MAXLEN, SYNC_MAX_MAXLEN as MAX_MAXLEN,
    SYNC_MIN_MAXLEN as MIN_MAXLEN,
};
const _: () = assert!(MIN_MAXLEN >= HEADER_LEN + RECORD_V6 + TAG_LEN);

pub const RECORD_V4: usize = 4 + 5 * (4 + 2) + 4;
pub const RECORD_V6: usize = 4 + 5 * (16 + 2) + 4;
/// The largest valid `state` (`lb_common::nat_state::UDP`).
const MAX_STATE: u8 = lb_common::nat_state::UDP;

/// Header flag: a request for the receiver's whole table (bulk sync), no records.
const FLAG_BULK_REQUEST: u8 = 1;

const KIND_CONNTRACK: u8 = 1;
const KIND_NAT: u8 = 2;

/// Why a received message was dropped (also the `reason` label of the drop counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Drop {
    #[error("shorter than a header and a tag, or cut inside a record")]
    Truncated,
    #[error("longer than maxlen")]
    Oversized,
    #[error("not a sync message, or a field out of range")]
    Malformed,
    #[error("unsupported version")]
    Version,
    #[error("another sync_id")]
    OtherSyncId,
    #[error("HMAC tag does not match (wrong key, or altered)")]
    BadTag,
    #[error("from an address that is not a configured peer")]
    UnknownSource,
    #[error("sequence number already seen, or too old")]
    Replayed,
}

impl Drop {
    pub const ALL: [Drop; 8] = [
        Drop::Truncated,
        Drop::Oversized,
        Drop::Malformed,
        Drop::Version,
        Drop::OtherSyncId,
        Drop::BadTag,
        Drop::UnknownSource,
        Drop::Replayed,
    ];

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Drop::Truncated => "truncated",
            Drop::Oversized => "oversized",
            Drop::Malformed => "malformed",
            Drop::Version => "version",
            Drop::OtherSyncId => "other_sync_id",
            Drop::BadTag => "bad_tag",
            Drop::UnknownSource => "unknown_source",
            Drop::Replayed => "replayed",
        }
    }
}

/// Who sent a message, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// keepalived's `lvs_sync_daemon ... id N` (0-255): peers of another id ignore it.
    pub sync_id: u8,
    /// The sender's node id.
    pub sender: u32,
    /// Strictly increasing per sender (replay protection).
    pub sequence: u64,
    /// The sender's wall clock, in ms since the Unix epoch.
    pub time_ms: u64,
}

/// A decoded, authenticated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    /// A node that just started asks for the peers' tables (bulk sync).
    pub bulk_request: bool,
    pub records: Vec<FlowRecord>,
}

/// The shared key.
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn family_of(r: &FlowRecord) -> Option<u8> {
    let all = [
        r.service.vip,
        r.client.ip(),
        r.dst.ip(),
        r.real.ip(),
        r.xsrc.ip(),
    ];
    if all.iter().all(IpAddr::is_ipv4) {
        Some(4)
    } else if all.iter().all(IpAddr::is_ipv6) {
        Some(6)
    } else {
        None
    }
}

fn record_len(family: u8) -> usize {
    if family == 4 {
        RECORD_V4
    } else {
        RECORD_V6
    }
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr, port: u16) {
    match a {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
    out.extend_from_slice(&port.to_be_bytes());
}

fn put_record(out: &mut Vec<u8>, r: &FlowRecord, family: u8) {
    let kind = match r.kind {
        FlowKind::Conntrack => KIND_CONNTRACK,
        FlowKind::Nat => KIND_NAT,
    };
    out.extend_from_slice(&[kind, family, r.service.protocol.number(), r.state]);
    put_addr(out, r.service.vip, r.service.port);
    put_addr(out, r.client.ip(), r.client.port());
    put_addr(out, r.dst.ip(), r.dst.port());
    put_addr(out, r.real.ip(), r.real.port());
    put_addr(out, r.xsrc.ip(), r.xsrc.port());
    out.extend_from_slice(&r.idle_ms.to_be_bytes());
}

fn put_header(out: &mut Vec<u8>, h: &Header, flags: u8, count: u16) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&count.to_be_bytes());
    out.push(h.sync_id);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&h.sender.to_be_bytes());
    out.extend_from_slice(&h.sequence.to_be_bytes());
    out.extend_from_slice(&h.time_ms.to_be_bytes());
}

/// Encodes `records` into as few messages of at most `maxlen` bytes as they need;
/// `header.sequence` is that of the first, the next ones count up from it. Records
/// mixing families are left out (the data plane never makes one). Empty in, empty out.
pub fn encode(header: &Header, records: &[FlowRecord], maxlen: usize, key: &Key) -> Vec<Vec<u8>> {
    let maxlen = maxlen.clamp(MIN_MAXLEN, MAX_MAXLEN);
    let mut messages = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    let mut sequence = header.sequence;
    let mut finish = |body: &mut Vec<u8>, count: &mut u16| {
        if *count == 0 {
            return;
        }
        let mut msg = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
        put_header(
            &mut msg,
            &Header {
                sequence,
                ..*header
            },
            0,
            *count,
        );
        msg.append(body);
        let tag = hmac::sign(&key.0, &msg);
        msg.extend_from_slice(tag.as_ref());
        messages.push(msg);
        // The last sequence number wraps rather than panicking (debug builds).
        sequence = sequence.wrapping_add(1);
        *count = 0;
    };
    for r in records {
        let Some(family) = family_of(r) else { continue };
        if HEADER_LEN + body.len() + record_len(family) + TAG_LEN > maxlen || count == u16::MAX {
            finish(&mut body, &mut count);
        }
        put_record(&mut body, r, family);
        count += 1;
    }
    finish(&mut body, &mut count);
    messages
}

/// A bulk-sync request: "send me your table".
pub fn encode_bulk_request(header: &Header, key: &Key) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_LEN + TAG_LEN);
    put_header(&mut msg, header, FLAG_BULK_REQUEST, 0);
    let tag = hmac::sign(&key.0, &msg);
    msg.extend_from_slice(tag.as_ref());
    msg
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Drop> {
        let end = self.at.checked_add(n).ok_or(Drop::Truncated)?;
        let s = self.buf.get(self.at..end).ok_or(Drop::Truncated)?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Drop> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Drop> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn addr(&mut self, family: u8) -> Result<SocketAddr, Drop> {
        let ip = if family == 4 {
            let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| Drop::Truncated)?;
            IpAddr::V4(Ipv4Addr::from(b))
        } else {
            let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| Drop::Truncated)?;
            IpAddr::V6(Ipv6Addr::from(b))
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
}

/// Checks and decodes one datagram: length, tag (before anything in the body is
/// trusted), header, then every record. `sync_id`: this node's.
pub fn decode(buf: &[u8], maxlen: usize, sync_id: u8, key: &Key) -> Result<Message, Drop> {
    if buf.len() > maxlen.clamp(MIN_MAXLEN, MAX_MAXLEN) {
        return Err(Drop::Oversized);
    }
    if buf.len() < HEADER_LEN + TAG_LEN {
        return Err(Drop::Truncated);
    }
    if buf[..4] != MAGIC {
        return Err(Drop::Malformed);
    }
    let (signed, tag) = buf.split_at(buf.len() - TAG_LEN);
    hmac::verify(&key.0, signed, tag).map_err(|_| Drop::BadTag)?;
    let mut r = Reader { buf: signed, at: 4 };
    if r.u8()? != VERSION {
        return Err(Drop::Version);
    }
    let flags = r.u8()?;
    let count = r.u16()?;
    let their_id = r.u8()?;
    r.take(3)?;
    let sender = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| Drop::Truncated)?);
    let sequence = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| Drop::Truncated)?);
    let time_ms = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| Drop::Truncated)?);
    if their_id != sync_id {
        return Err(Drop::OtherSyncId);
    }
    let bulk_request = flags & FLAG_BULK_REQUEST != 0;
    if flags & !FLAG_BULK_REQUEST != 0 || (bulk_request && count != 0) {
        return Err(Drop::Malformed);
    }
    let mut records = Vec::with_capacity(usize::from(count).min(1024));
    for _ in 0..count {
        let kind = match r.u8()? {
            KIND_CONNTRACK => FlowKind::Conntrack,
            KIND_NAT => FlowKind::Nat,
            _ => return Err(Drop::Malformed),
        };
        let family = r.u8()?;
        if family != 4 && family != 6 {
            return Err(Drop::Malformed);
        }
        let protocol = Protocol::from_number(r.u8()?).ok_or(Drop::Malformed)?;
        let state = r.u8()?;
        if state > MAX_STATE {
            return Err(Drop::Malformed);
        }
        let service = r.addr(family)?;
        let (client, dst, real, xsrc) = (
            r.addr(family)?,
            r.addr(family)?,
            r.addr(family)?,
            r.addr(family)?,
        );
        let idle_ms = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| Drop::Truncated)?);
        records.push(FlowRecord {
            kind,
            service: ServiceId {
                vip: service.ip(),
                port: service.port(),
                protocol,
            },
            client,
            dst,
            real,
            xsrc,
            state,
            idle_ms,
        });
    }
    if r.at != signed.len() {
        return Err(Drop::Malformed);
    }
    Ok(Message {
        header: Header {
            sync_id: their_id,
            sender,
            sequence,
            time_ms,
        },
        bulk_request,
        records,
    })
}

#[cfg(test)]
mod tests;
