//! The VRRP advert filter (`lb-vrrp-filter`) on a real kernel: two network namespaces
//! joined by a veth, a raw VRRP socket in each, the filter attached to the receiving one.
//! Table-driven over IPv4 and IPv6. Runs on this machine's kernel and, in
//! `cargo xtask test`, on Linux 6.1 in the VM (the older verifier). Needs root and the
//! built filter object (`cargo xtask build-ebpf`).

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_daemon::{
    netns::{veth, Netns},
    vrrp::{
        advert_filter::{self, FilterSlot},
        packet,
        receiver::Template,
        socket::{ReceiveSocket, Received, SocketConfig, VrrpSocket},
        types::{Advert, Auth, Version},
    },
};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn group(self) -> IpAddr {
        match self {
            Family::V4 => "224.0.0.18".parse().unwrap(),
            Family::V6 => "ff02::12".parse().unwrap(),
        }
    }

    /// Source of host `host`'s multicast adverts: its IPv4 address or link-local one.
    fn src(self, net: u8, host: u8) -> IpAddr {
        match self {
            Family::V4 => format!("198.18.{net}.{host}").parse().unwrap(),
            Family::V6 => format!("fe80::{host}").parse().unwrap(),
        }
    }

    fn advert(self, net: u8, priority: u8, vips: usize) -> Vec<u8> {
        let addresses = (0..vips)
            .map(|i| match self {
                Family::V4 => format!("198.18.{net}.{}", 100 + i).parse().unwrap(),
                Family::V6 => format!("2001:db8:{net}::{:x}", 100 + i).parse().unwrap(),
            })
            .collect();
        let advert = Advert {
            version: Version::V3,
            vrid: 51,
            priority,
            interval_cs: 100,
            addresses,
            auth: Auth::None,
        };
        packet::encode(&advert, self.src(net, 1), self.group()).unwrap()
    }
}

struct Pair {
    a: Netns,
    b: Netns,
    rt: tokio::runtime::Runtime,
}

fn pair(tag: &str, net: u8) -> Pair {
    let a = Netns::new(tag).unwrap();
    let b = Netns::new(tag).unwrap();
    veth(&a, "va", &b, "vb").unwrap();
    for (ns, dev, host) in [(&a, "va", 1), (&b, "vb", 2)] {
        ns.ip(&[
            "addr",
            "add",
            &format!("198.18.{net}.{host}/24"),
            "dev",
            dev,
        ])
        .unwrap();
        ns.ip(&[
            "addr",
            "add",
            &format!("fe80::{host}/64"),
            "dev",
            dev,
            "nodad",
        ])
        .unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Pair { a, b, rt }
}

fn open(p: &Pair, in_b: bool, family: Family, net: u8) -> (VrrpSocket, ReceiveSocket) {
    let (ns, dev, host) = if in_b {
        (&p.b, "vb", 2)
    } else {
        (&p.a, "va", 1)
    };
    let cfg = SocketConfig {
        interface: dev.into(),
        family_v6: matches!(family, Family::V6),
        src: family.src(net, host),
        multicast_group: Some(family.group()),
        ah_key: None,
    };
    let handle = p.rt.handle().clone();
    ns.run(move || {
        let _guard = handle.enter();
        VrrpSocket::open_split(&cfg).unwrap()
    })
}

fn send(p: &Pair, sock: &VrrpSocket, payload: &[u8], group: IpAddr) {
    p.rt.block_on(sock.send(payload, group)).unwrap();
}

fn next(reader: &mut ReceiveSocket, wait: Duration) -> Option<Received> {
    let end = Instant::now() + wait;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if let Some(r) = reader.recv_timeout(Some(left), None).unwrap() {
            return Some(r);
        }
        if left.is_zero() {
            return None;
        }
    }
}

#[test]
fn identical_adverts_are_taken_in_the_kernel_and_the_first_other_datagram_disarms() {
    for (family, tag, net) in [(Family::V4, "vqf4", 60), (Family::V6, "vqf6", 61)] {
        let p = pair(tag, net);
        let group = family.group();
        let (master, _) = open(&p, false, family, net);
        let (_backup, mut reader) = open(&p, true, family, net);
        if let Err(e) = advert_filter::load() {
            panic!("the advert filter must load (built object, root): {e}");
        }
        let mut slot = FilterSlot::attach(reader.as_fd(), "vb")
            .unwrap_or_else(|| panic!("{family:?}: the advert filter must attach"));
        let steady = family.advert(net, 150, 1);

        // Unarmed, the filter takes nothing.
        send(&p, &master, &steady, group);
        let first = next(&mut reader, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{family:?}: unarmed, the advert must arrive"));
        assert_eq!(slot.read().count, 0, "{family:?}");
        let template = Template::of(&first);

        // Armed: identical adverts are dropped, counted and their arrival noted.
        assert!(slot.arm(&template), "{family:?}");
        let before = Instant::now();
        for _ in 0..3 {
            send(&p, &master, &steady, group);
        }
        assert_eq!(
            next(&mut reader, QUIET),
            None,
            "{family:?}: taken in the kernel"
        );
        let taken = slot.read();
        assert_eq!(taken.count, 3, "{family:?}");
        let last = taken.last.expect("arrival noted");
        assert!(
            last >= before - Duration::from_millis(5) && last <= Instant::now(),
            "{family:?}: arrival {:?} after the first send",
            last.checked_duration_since(before)
        );
        assert!(slot.is_armed(), "{family:?}");

        // Another advert (a new priority) is received and disarms the slot: what follows,
        // even the steady advert, is received in order.
        let other = family.advert(net, 151, 1);
        send(&p, &master, &other, group);
        send(&p, &master, &steady, group);
        let got = next(&mut reader, Duration::from_secs(2)).expect("the other advert");
        assert_ne!(
            got.payload, first.payload,
            "{family:?}: the other advert comes first"
        );
        assert!(!slot.is_armed(), "{family:?}: the filter disarmed the slot");
        let got = next(&mut reader, Duration::from_secs(2)).expect("the steady advert");
        assert_eq!(got.payload, first.payload, "{family:?}");
        assert_eq!(slot.read().count, 0, "{family:?}");

        // Armed again: taken again. Arming with a message longer than a slot holds
        // leaves it disarmed.
        assert!(slot.arm(&template));
        send(&p, &master, &steady, group);
        assert_eq!(next(&mut reader, QUIET), None, "{family:?}");
        assert_eq!(slot.read().count, 1, "{family:?}");
        let long = Template {
            payload: family.advert(net, 150, 40),
            ..template.clone()
        };
        assert!(long.payload.len() > lb_common::vrrp_quiet::PAYLOAD_MAX);
        assert!(!slot.arm(&long), "{family:?}");
        assert!(!slot.is_armed());
        send(&p, &master, &steady, group);
        assert!(
            next(&mut reader, Duration::from_secs(2)).is_some(),
            "{family:?}"
        );

        // A template that differs in the interface only is not the advert.
        let elsewhere = Template {
            ifindex: template.ifindex + 100,
            ..template.clone()
        };
        assert!(slot.arm(&elsewhere));
        send(&p, &master, &steady, group);
        assert!(
            next(&mut reader, Duration::from_secs(2)).is_some(),
            "{family:?}"
        );
        assert!(!slot.is_armed(), "{family:?}");
    }
}

#[test]
fn slots_are_per_socket_and_freed_with_it() {
    let family = Family::V4;
    let net = 62;
    let p = pair("vqfs", net);
    let group = family.group();
    let (master, _) = open(&p, false, family, net);
    let (_b1, mut r1) = open(&p, true, family, net);
    let (_b2, mut r2) = open(&p, true, family, net);
    let mut s1 = FilterSlot::attach(r1.as_fd(), "vb").expect("filter");
    let mut s2 = FilterSlot::attach(r2.as_fd(), "vb").expect("filter");
    let steady = family.advert(net, 150, 1);
    send(&p, &master, &steady, group);
    let first = next(&mut r1, Duration::from_secs(2)).expect("socket 1");
    assert!(next(&mut r2, Duration::from_secs(2)).is_some(), "socket 2");
    // Only socket 1's slot is armed: socket 2 still gets every advert.
    assert!(s1.arm(&Template::of(&first)));
    send(&p, &master, &steady, group);
    assert_eq!(next(&mut r1, QUIET), None);
    assert!(next(&mut r2, Duration::from_secs(2)).is_some());
    assert_eq!((s1.read().count, s2.read().count), (1, 0));
    // A dropped slot is disarmed and forgotten: its socket receives everything again.
    drop(s1);
    send(&p, &master, &steady, group);
    assert!(next(&mut r1, Duration::from_secs(2)).is_some());
}
