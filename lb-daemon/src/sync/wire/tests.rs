//! Fixtures for every way a message is dropped, and round trips.

use super::*;

fn key() -> Key {
    Key::new(b"shared secret")
}

fn header() -> Header {
    Header {
        sync_id: 7,
        sender: 0x0a00_0001,
        sequence: 100,
        time_ms: 1_700_000_000_000,
    }
}

fn nat4(port: u16) -> FlowRecord {
    FlowRecord {
        kind: FlowKind::Nat,
        service: ServiceId {
            vip: "192.0.2.10".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        },
        client: SocketAddr::new("203.0.113.7".parse().unwrap(), port),
        dst: "192.0.2.10:80".parse().unwrap(),
        real: "10.0.0.21:8080".parse().unwrap(),
        xsrc: "10.0.0.1:2000".parse().unwrap(),
        state: 2,
        idle_ms: 1234,
    }
}

fn conn6() -> FlowRecord {
    FlowRecord {
        kind: FlowKind::Conntrack,
        service: ServiceId {
            vip: "2001:db8::10".parse().unwrap(),
            port: 0,
            protocol: Protocol::Udp,
        },
        client: "[2001:db8:ff::7]:5353".parse().unwrap(),
        dst: "[2001:db8::10]:53".parse().unwrap(),
        real: "[2001:db8::21]:0".parse().unwrap(),
        xsrc: "[2001:db8:ff::7]:5353".parse().unwrap(),
        state: 0,
        idle_ms: 0,
    }
}

fn one() -> Vec<u8> {
    let mut m = encode(&header(), &[nat4(40000), conn6()], DEFAULT_MAXLEN, &key());
    assert_eq!(m.len(), 1);
    m.remove(0)
}

/// Re-signs an altered message, as a sender with the key would.
fn resign(mut msg: Vec<u8>) -> Vec<u8> {
    msg.truncate(msg.len() - TAG_LEN);
    let tag = hmac::sign(&key().0, &msg);
    msg.extend_from_slice(tag.as_ref());
    msg
}

#[test]
fn round_trip_both_families_and_kinds() {
    let msg = one();
    assert_eq!(msg.len(), HEADER_LEN + RECORD_V4 + RECORD_V6 + TAG_LEN);
    let got = decode(&msg, DEFAULT_MAXLEN, 7, &key()).expect("valid");
    assert_eq!(got.header, header());
    assert!(!got.bulk_request);
    assert_eq!(got.records, vec![nat4(40000), conn6()]);
}

#[test]
fn batches_split_at_maxlen_with_consecutive_sequence_numbers() {
    let records: Vec<FlowRecord> = (0..100).map(|i| nat4(40000 + i)).collect();
    let maxlen = 512;
    let msgs = encode(&header(), &records, maxlen, &key());
    let per = (maxlen - HEADER_LEN - TAG_LEN) / RECORD_V4;
    assert_eq!(msgs.len(), 100usize.div_ceil(per));
    let mut all = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        assert!(m.len() <= maxlen);
        let d = decode(m, maxlen, 7, &key()).expect("valid");
        assert_eq!(d.header.sequence, 100 + i as u64);
        all.extend(d.records);
    }
    assert_eq!(all, records);
    assert!(encode(&header(), &[], maxlen, &key()).is_empty());
}

#[test]
fn truncated_messages_are_dropped() {
    let msg = one();
    assert_eq!(decode(&[], 1472, 7, &key()), Err(Drop::Truncated));
    assert_eq!(
        decode(&msg[..HEADER_LEN + TAG_LEN - 1], 1472, 7, &key()),
        Err(Drop::Truncated)
    );
    // Cut inside a record and re-signed: the count promises more than there is.
    let cut = resign(msg[..msg.len() - 10].to_vec());
    assert_eq!(decode(&cut, 1472, 7, &key()), Err(Drop::Truncated));
}

#[test]
fn oversized_messages_are_dropped_before_anything_else() {
    let records: Vec<FlowRecord> = (0..20).map(|i| nat4(40000 + i)).collect();
    let msg = encode(&header(), &records, 1472, &key()).remove(0);
    assert!(msg.len() > MIN_MAXLEN);
    assert_eq!(decode(&msg, msg.len() - 1, 7, &key()), Err(Drop::Oversized));
    assert!(decode(&msg, msg.len(), 7, &key()).is_ok());
    assert_eq!(
        decode(&vec![0; 70_000], 70_000, 7, &key()),
        Err(Drop::Oversized)
    );
}

#[test]
fn malformed_messages_are_dropped() {
    let mut msg = one();
    msg[0] = b'X';
    assert_eq!(decode(&msg, 1472, 7, &key()), Err(Drop::Malformed));
    // A record of an unknown kind, family, protocol or state (correctly signed).
    for (offset, value) in [(0, 9u8), (1, 5), (2, 1), (3, 6)] {
        let mut m = one();
        m[HEADER_LEN + offset] = value;
        assert_eq!(decode(&resign(m), 1472, 7, &key()), Err(Drop::Malformed));
    }
    // Trailing bytes after the last record.
    let mut m = one();
    m.truncate(m.len() - TAG_LEN);
    m.extend_from_slice(&[0; 3]);
    m.extend_from_slice(&[0; TAG_LEN]);
    assert_eq!(decode(&resign(m), 1472, 7, &key()), Err(Drop::Malformed));
}

#[test]
fn another_version_or_sync_id_is_dropped() {
    let mut m = one();
    m[4] = 2;
    assert_eq!(decode(&resign(m), 1472, 7, &key()), Err(Drop::Version));
    assert_eq!(decode(&one(), 1472, 8, &key()), Err(Drop::OtherSyncId));
}

#[test]
fn a_bad_tag_is_dropped_and_the_body_never_trusted() {
    let msg = one();
    assert_eq!(
        decode(&msg, 1472, 7, &Key::new(b"other secret")),
        Err(Drop::BadTag)
    );
    let mut altered = msg.clone();
    altered[HEADER_LEN + 5] ^= 1;
    assert_eq!(decode(&altered, 1472, 7, &key()), Err(Drop::BadTag));
    let mut tag = msg;
    let last = tag.len() - 1;
    tag[last] ^= 1;
    assert_eq!(decode(&tag, 1472, 7, &key()), Err(Drop::BadTag));
    // A huge count with a bad tag allocates nothing.
    let mut m = one();
    m[6] = 0xff;
    m[7] = 0xff;
    assert_eq!(decode(&m, 1472, 7, &key()), Err(Drop::BadTag));
}

#[test]
fn bulk_requests_round_trip_and_carry_nothing() {
    let req = encode_bulk_request(&header(), &key());
    assert_eq!(req.len(), HEADER_LEN + TAG_LEN);
    let m = decode(&req, 1472, 7, &key()).expect("valid");
    assert!(m.bulk_request);
    assert!(m.records.is_empty());
    assert!(!decode(&one(), 1472, 7, &key()).unwrap().bulk_request);
    // Unknown flags, or a request with records, are malformed.
    let mut m = one();
    m[5] = 0x80;
    assert_eq!(decode(&resign(m), 1472, 7, &key()), Err(Drop::Malformed));
    let mut m = one();
    m[5] = 1;
    assert_eq!(decode(&resign(m), 1472, 7, &key()), Err(Drop::Malformed));
}

#[test]
fn every_drop_reason_has_a_distinct_label() {
    let names: std::collections::HashSet<_> = Drop::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names.len(), Drop::ALL.len());
}

/// Found by the `sync_wire` fuzz target: a batch split after the message numbered
/// u64::MAX overflowed the sequence counter (a panic in debug builds).
#[test]
fn the_last_sequence_number_wraps() {
    let h = Header {
        sequence: u64::MAX,
        ..header()
    };
    let records: Vec<FlowRecord> = (0..200).map(nat4).collect();
    let messages = encode(&h, &records, MIN_MAXLEN, &key());
    assert!(messages.len() > 1);
    let second = decode(&messages[1], MIN_MAXLEN, h.sync_id, &key()).unwrap();
    assert_eq!(second.header.sequence, 0);
}
