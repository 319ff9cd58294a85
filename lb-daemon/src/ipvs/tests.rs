//! The IPVS codec against bytes derived by hand from `ip_vs.h` (x86-64: host order is
//! little-endian), round trips, and the manager on the in-memory kernel.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::GenlMessage;

use super::{
    codec::{CmdAttr, DestAttr, IpvsMessage, Stats, SvcAttr},
    fake::{wire, FakeKernel},
    manager::Manager,
    model::{request, DestEntry, Forward, ModelError, ServiceEntry},
    plan::{plan, DesiredService, Op},
    uapi::cmd,
    IpvsError,
};
use crate::dataplane::{Protocol, ServiceId};

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id(vip: &str, port: u16, protocol: Protocol) -> ServiceId {
    ServiceId {
        vip: vip.parse().unwrap(),
        port,
        protocol,
    }
}

/// A whole netlink message as it leaves the socket.
fn frame(msg: IpvsMessage, family: u16, seq: u32) -> Vec<u8> {
    let mut g = GenlMessage::from_payload(msg);
    g.set_resolved_family_id(family);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(g));
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

#[test]
fn new_service_ipv4_golden_bytes() {
    let s = ServiceEntry::new(id("192.0.2.1", 80, Protocol::Tcp), "wrr", Some(300));
    // persistence_granularity: the netmask attribute as ipvsadm sends it, and back.
    let wide = s.clone().with_persistence_prefix(24);
    let attrs = wide.to_attrs();
    assert!(
        attrs.contains(&SvcAttr::Netmask(u32::from_ne_bytes([255, 255, 255, 0]))),
        "{attrs:?}"
    );
    let back = ServiceEntry::from_attrs(&attrs).unwrap();
    assert_eq!(back.persistence_prefix, 24);
    assert!(back.same_config(&wide) && !back.same_config(&s));
    let v6 = ServiceEntry::new(id("2001:db8::1", 80, Protocol::Tcp), "wrr", Some(300))
        .with_persistence_prefix(64);
    assert!(v6.to_attrs().contains(&SvcAttr::Netmask(64)));
    let bytes = frame(request::new_service(&s), 0x1c, 7);
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        // nlmsghdr: length 104, type = family 0x1c, flags REQUEST|ACK, seq 7, port 0
        0x68, 0, 0, 0, 0x1c, 0, 0x05, 0, 7, 0, 0, 0, 0, 0, 0, 0,
        // genlmsghdr: cmd IPVS_CMD_NEW_SERVICE (1), version 1
        1, 1, 0, 0,
        // IPVS_CMD_ATTR_SERVICE (1), 84 bytes, no NLA_F_NESTED
        84, 0, 1, 0,
        // IPVS_SVC_ATTR_AF = AF_INET (2), u16 + 2 bytes padding
        6, 0, 1, 0, 2, 0, 0, 0,
        // IPVS_SVC_ATTR_PROTOCOL = IPPROTO_TCP (6)
        6, 0, 2, 0, 6, 0, 0, 0,
        // IPVS_SVC_ATTR_ADDR: union nf_inet_addr, 16 bytes
        20, 0, 3, 0, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // IPVS_SVC_ATTR_PORT: big-endian 80
        6, 0, 4, 0, 0, 80, 0, 0,
        // IPVS_SVC_ATTR_SCHED_NAME "wrr\0"
        8, 0, 6, 0, b'w', b'r', b'r', 0,
        // IPVS_SVC_ATTR_FLAGS: { flags IP_VS_SVC_F_PERSISTENT, mask ~0 }
        12, 0, 7, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        // IPVS_SVC_ATTR_TIMEOUT 300 s
        8, 0, 8, 0, 0x2c, 1, 0, 0,
        // IPVS_SVC_ATTR_NETMASK 255.255.255.255
        8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(bytes, want);
}

#[test]
fn new_dest_ipv6_golden_bytes() {
    let sid = id("2001:db8::1", 443, Protocol::Udp);
    let d = DestEntry::new(v4("2001:db8::10"), 8443, Forward::Masq, 5);
    let msg = request::new_dest(&sid, &d);
    let mut g = GenlMessage::from_payload(msg);
    g.set_resolved_family_id(0x1c);
    let mut bytes = vec![0u8; netlink_packet_core::Emitable::buffer_len(&g)];
    netlink_packet_core::Emitable::emit(&g, &mut bytes);
    let addr6 = |last: u8| {
        let mut a = vec![0x20, 0x01, 0x0d, 0xb8];
        a.extend([0u8; 11]);
        a.push(last);
        a
    };
    let mut want: Vec<u8> = vec![5, 1, 0, 0]; // IPVS_CMD_NEW_DEST, version 1
                                              // IPVS_CMD_ATTR_SERVICE: AF_INET6 (10), IPPROTO_UDP (17), address, port 443
    want.extend([48, 0, 1, 0]); // 4 + 8 + 8 + 20 + 8
    want.extend([6, 0, 1, 0, 10, 0, 0, 0]);
    want.extend([6, 0, 2, 0, 17, 0, 0, 0]);
    want.extend([20, 0, 3, 0]);
    want.extend(addr6(1));
    want.extend([6, 0, 4, 0, 0x01, 0xbb, 0, 0]);
    // IPVS_CMD_ATTR_DEST: address, port 8443, FWD_METHOD masq (0), weight 5,
    // U_THRESH 0, L_THRESH 0, ADDR_FAMILY AF_INET6
    want.extend([72, 0, 2, 0]);
    want.extend([20, 0, 1, 0]);
    want.extend(addr6(0x10));
    want.extend([6, 0, 2, 0, 0x20, 0xfb, 0, 0]);
    want.extend([8, 0, 3, 0, 0, 0, 0, 0]);
    want.extend([8, 0, 4, 0, 5, 0, 0, 0]);
    want.extend([8, 0, 5, 0, 0, 0, 0, 0]);
    want.extend([8, 0, 6, 0, 0, 0, 0, 0]);
    want.extend([6, 0, 11, 0, 10, 0, 0, 0]);
    assert_eq!(bytes, want);
}

#[test]
fn set_timeouts_golden_bytes() {
    let mut g = GenlMessage::from_payload(request::set_timeouts(900, 120, 300));
    g.set_resolved_family_id(0x1c);
    let mut bytes = vec![0u8; netlink_packet_core::Emitable::buffer_len(&g)];
    netlink_packet_core::Emitable::emit(&g, &mut bytes);
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        12, 1, 0, 0, // IPVS_CMD_SET_CONFIG, version 1
        8, 0, 4, 0, 0x84, 3, 0, 0, // IPVS_CMD_ATTR_TIMEOUT_TCP 900
        8, 0, 5, 0, 120, 0, 0, 0,  // IPVS_CMD_ATTR_TIMEOUT_TCP_FIN 120
        8, 0, 6, 0, 0x2c, 1, 0, 0, // IPVS_CMD_ATTR_TIMEOUT_UDP 300
    ];
    assert_eq!(bytes, want);
}

#[test]
fn lvs_timeouts_become_ipvs_timeouts() {
    let mut m = Manager::new(FakeKernel::default());
    let t = crate::config::NatTimeouts {
        tcp: std::time::Duration::from_secs(600),
        tcpfin: std::time::Duration::from_millis(500),
        udp: std::time::Duration::from_secs(30),
    };
    m.set_timeouts(&t).unwrap();
    // Sub-second values round up to IPVS's smallest, 1 s (0 would mean "unchanged").
    assert_eq!(m.transport_mut().timeouts, Some((600, 1, 30)));
}

#[test]
fn forwarding_methods_have_the_kernels_numbers() {
    assert_eq!(Forward::Masq.to_raw(), 0);
    assert_eq!(Forward::Tunnel.to_raw(), 2);
    assert_eq!(Forward::Route.to_raw(), 3);
    for f in [
        Forward::Masq,
        Forward::Tunnel,
        Forward::Route,
        Forward::Other(1),
    ] {
        assert_eq!(Forward::from_raw(f.to_raw()), f);
    }
    // Flags above the forwarding mask (IP_VS_CONN_F_NOOUTPUT...) are not the method.
    assert_eq!(Forward::from_raw(0x0100 | 3), Forward::Route);
}

#[test]
fn services_round_trip_for_every_scheduler_family_and_protocol() {
    for sched in crate::config::LbAlgo::IPVS_SCHEDULERS {
        for vip in ["198.51.100.7", "2001:db8::7"] {
            for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                for persistence in [None, Some(1), Some(86400)] {
                    let s = ServiceEntry::new(id(vip, 8080, protocol), sched, persistence);
                    let back = wire(request::new_service(&s));
                    assert_eq!(back.cmd, cmd::NEW_SERVICE);
                    let parsed = ServiceEntry::from_attrs(back.service().unwrap()).unwrap();
                    assert_eq!(parsed, s);
                }
            }
        }
    }
}

#[test]
fn dests_round_trip_for_every_forwarding_method() {
    let sid = id("198.51.100.7", 80, Protocol::Tcp);
    for fwd in [Forward::Masq, Forward::Route, Forward::Tunnel] {
        for (addr, family) in [("10.1.2.3", 2), ("fd00::3", 10)] {
            let d = DestEntry::new(v4(addr), 8080, fwd, 65535);
            let back = wire(request::set_dest(&sid, &d));
            assert_eq!(back.cmd, cmd::SET_DEST);
            // The family comes from the destination's own attribute, not the service.
            let parsed = DestEntry::from_attrs(back.dest().unwrap(), 2).unwrap();
            assert_eq!(parsed, d, "family {family}");
        }
    }
}

/// A service as the kernel dumps it: NLA_F_NESTED may be set, a 64-bit statistics nest
/// with IPVS_STATS_ATTR_PAD, a PE name and 32-bit statistics we do not read.
#[test]
fn kernel_style_dump_is_read() {
    let mut attrs = Vec::new();
    let put = |attrs: &mut Vec<u8>, kind: u16, value: &[u8]| {
        attrs.extend(((value.len() + 4) as u16).to_ne_bytes());
        attrs.extend(kind.to_ne_bytes());
        attrs.extend(value);
        while !attrs.len().is_multiple_of(4) {
            attrs.push(0);
        }
    };
    put(&mut attrs, 1, &2u16.to_ne_bytes());
    put(&mut attrs, 2, &17u16.to_ne_bytes());
    put(
        &mut attrs,
        3,
        &[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    put(&mut attrs, 4, &53u16.to_be_bytes());
    put(&mut attrs, 6, b"sh\0");
    let mut flags = (1u32 | 2).to_ne_bytes().to_vec();
    flags.extend(u32::MAX.to_ne_bytes());
    put(&mut attrs, 7, &flags);
    put(&mut attrs, 8, &60u32.to_ne_bytes());
    put(&mut attrs, 9, &u32::MAX.to_ne_bytes());
    put(&mut attrs, 11, b"sip\0");
    let mut stats = Vec::new();
    put(&mut stats, 11, &[]); // IPVS_STATS_ATTR_PAD
    put(&mut stats, 1, &3u64.to_ne_bytes());
    put(&mut stats, 2, &40u64.to_ne_bytes());
    put(&mut stats, 4, &4000u64.to_ne_bytes());
    put(&mut stats, 6, &7u64.to_ne_bytes()); // CPS: not read
    put(&mut attrs, 12 | 0x8000, &stats);
    let mut payload = vec![cmd::NEW_SERVICE, 1, 0, 0];
    put(&mut payload, 1 | 0x8000, &attrs);
    let msg = GenlMessage::<IpvsMessage>::parse_with_param(&payload[..], 0x1c)
        .unwrap()
        .payload;
    let s = ServiceEntry::from_attrs(msg.service().unwrap()).unwrap();
    assert_eq!(s.id, id("10.0.0.1", 53, Protocol::Udp));
    assert_eq!(s.scheduler, "sh");
    assert_eq!(s.persistence, Some(60));
    assert_eq!(
        s.stats,
        Stats {
            conns: 3,
            inpkts: 40,
            inbytes: 4000,
            ..Stats::default()
        }
    );
}

#[test]
fn malformed_attributes_are_errors() {
    // An address of 5 bytes.
    let payload = [
        cmd::NEW_SERVICE,
        1,
        0,
        0,
        16,
        0,
        1,
        0,
        9,
        0,
        3,
        0,
        1,
        2,
        3,
        4,
        5,
        0,
        0,
        0,
    ];
    let err = GenlMessage::<IpvsMessage>::parse_with_param(&payload[..], 0x1c).unwrap_err();
    assert!(err.to_string().contains("5 bytes"), "{err}");
    // An attribute longer than the buffer.
    let payload = [cmd::NEW_SERVICE, 1, 0, 0, 40, 0, 1, 0, 0, 0, 0, 0];
    assert!(GenlMessage::<IpvsMessage>::parse_with_param(&payload[..], 0x1c).is_err());
}

#[test]
fn services_we_do_not_manage_are_named() {
    let fwmark = [
        SvcAttr::Af(2),
        SvcAttr::Fwmark(0x0100_0000),
        SvcAttr::SchedName("rr".into()),
    ];
    assert_eq!(
        ServiceEntry::from_attrs(&fwmark),
        Err(ModelError::Fwmark(0x0100_0000))
    );
    // SCTP is managed now; another protocol (DCCP, 33) is not.
    let mut dccp = ServiceEntry::new(id("10.0.0.1", 80, Protocol::Tcp), "rr", None).to_attrs();
    dccp[1] = SvcAttr::Protocol(33);
    assert_eq!(
        ServiceEntry::from_attrs(&dccp),
        Err(ModelError::Protocol(33))
    );
    let no_addr = [SvcAttr::Af(2), SvcAttr::Protocol(6)];
    assert!(ServiceEntry::from_attrs(&no_addr)
        .unwrap_err()
        .to_string()
        .contains("ADDR"));
}

#[test]
fn fwmark_services_are_named_by_family_and_mark() {
    for ipv6 in [false, true] {
        let sid = ServiceId::fwmark(1, ipv6);
        let family = if ipv6 { 10 } else { 2 };
        let s = ServiceEntry::new(sid, "wlc", Some(300));
        let attrs = s.to_attrs();
        // IPVS_SVC_ATTR_FWMARK instead of protocol, address and port.
        assert_eq!(attrs[..2], [SvcAttr::Af(family), SvcAttr::Fwmark(1)]);
        assert!(!attrs.iter().any(|a| matches!(
            a,
            SvcAttr::Addr(_) | SvcAttr::Port(_) | SvcAttr::Protocol(_)
        )));
        let back = wire(request::new_service(&s));
        assert_eq!(ServiceEntry::from_attrs(back.service().unwrap()), Ok(s));
        let m = request::new_dest(&sid, &DestEntry::new(v4("10.0.1.1"), 0, Forward::Route, 1));
        let CmdAttr::Service(key) = &m.attrs[0] else {
            panic!("service first")
        };
        assert_eq!(key, &vec![SvcAttr::Af(family), SvcAttr::Fwmark(1)]);
    }
    // As the kernel dumps a mark service: AF, FWMARK, no protocol, address or port.
    let dumped = [
        SvcAttr::Af(2),
        SvcAttr::Fwmark(7),
        SvcAttr::SchedName("rr".into()),
        SvcAttr::Flags {
            flags: 0,
            mask: u32::MAX,
        },
    ];
    assert_eq!(
        ServiceEntry::from_attrs(&dumped).map(|s| s.id),
        Ok(ServiceId::fwmark(7, false))
    );
}

#[test]
fn plan_adds_a_fwmark_service_with_its_reals() {
    let sid = ServiceId::fwmark(3, false);
    let d = desired(sid, "wlc", &[("10.0.1.1", 1), ("10.0.1.2", 1)]);
    let p = plan(&map(vec![d.clone()]), &HashSet::new(), &HashSet::new(), &[]);
    assert_eq!(p.ops[0], Op::NewService(d.service.clone()));
    assert_eq!(p.ops[1], Op::NewDest(sid, d.dests[0].clone()));
    let kernel = vec![(d.service.clone(), d.dests.clone())];
    assert!(
        plan(&map(vec![d]), &HashSet::new(), &HashSet::new(), &kernel)
            .ops
            .is_empty()
    );
}

#[test]
fn dest_messages_name_their_service_by_key_only() {
    let sid = id("10.0.0.1", 80, Protocol::Tcp);
    let m = request::del_dest(&sid, v4("10.0.1.1"), 80);
    assert_eq!(m.cmd, cmd::DEL_DEST);
    let CmdAttr::Service(s) = &m.attrs[0] else {
        panic!("service first")
    };
    assert_eq!(s.len(), 4, "AF, PROTOCOL, ADDR, PORT");
    let CmdAttr::Dest(d) = &m.attrs[1] else {
        panic!("dest second")
    };
    assert!(d.contains(&DestAttr::Port(80)));
}

// ---- planning ----

fn desired(sid: ServiceId, sched: &str, dests: &[(&str, u32)]) -> DesiredService {
    DesiredService {
        service: ServiceEntry::new(sid, sched, None),
        dests: dests
            .iter()
            .map(|(a, w)| DestEntry::new(v4(a), sid.port, Forward::Route, *w))
            .collect(),
    }
}

fn map(ds: Vec<DesiredService>) -> HashMap<ServiceId, DesiredService> {
    ds.into_iter().map(|d| (d.service.id, d)).collect()
}

#[test]
fn plan_adds_a_missing_service_with_its_reals() {
    let sid = id("10.0.0.1", 80, Protocol::Tcp);
    let d = desired(sid, "mh", &[("10.0.1.1", 1), ("10.0.1.2", 2)]);
    let p = plan(&map(vec![d.clone()]), &HashSet::new(), &HashSet::new(), &[]);
    assert_eq!(p.ops.len(), 3);
    assert_eq!(p.ops[0], Op::NewService(d.service.clone()));
    assert_eq!(p.ops[2], Op::NewDest(sid, d.dests[1].clone()));
    // Nothing to do once the kernel matches.
    let kernel = vec![(d.service.clone(), d.dests.clone())];
    assert!(
        plan(&map(vec![d]), &HashSet::new(), &HashSet::new(), &kernel)
            .ops
            .is_empty()
    );
}

#[test]
fn plan_fixes_drift_inside_our_services_and_leaves_foreign_ones() {
    let sid = id("10.0.0.1", 80, Protocol::Tcp);
    let want = desired(sid, "mh", &[("10.0.1.1", 1), ("10.0.1.2", 0)]);
    let ours_old = id("10.0.0.2", 80, Protocol::Tcp);
    let foreign = id("10.0.0.9", 80, Protocol::Udp);
    let kernel = vec![
        (
            ServiceEntry::new(sid, "rr", None),
            vec![
                DestEntry::new(v4("10.0.1.1"), 80, Forward::Route, 1),
                DestEntry::new(v4("10.0.1.2"), 80, Forward::Route, 1),
                DestEntry::new(v4("10.0.1.99"), 80, Forward::Route, 1),
            ],
        ),
        (ServiceEntry::new(ours_old, "rr", None), Vec::new()),
        (ServiceEntry::new(foreign, "wlc", None), Vec::new()),
    ];
    let managed = HashSet::from([sid, ours_old]);
    let p = plan(&map(vec![want.clone()]), &managed, &managed, &kernel);
    assert_eq!(
        p.ops,
        vec![
            Op::SetService(want.service.clone()),
            Op::DelDest(sid, kernel[0].1[2].clone()),
            Op::SetDest(sid, want.dests[1].clone()),
            Op::DelService(ours_old),
        ]
    );
    assert_eq!(p.foreign, vec![foreign]);
    // Not yet removable (a previous daemon's, VRRP undecided): kept, not foreign either.
    let p = plan(
        &map(vec![want.clone()]),
        &managed,
        &HashSet::from([sid]),
        &kernel,
    );
    assert!(!p.ops.contains(&Op::DelService(ours_old)));
    assert_eq!(p.foreign, vec![foreign]);
}

#[test]
fn plan_changes_the_forwarding_method_in_place() {
    let sid = id("10.0.0.1", 80, Protocol::Tcp);
    let want = desired(sid, "rr", &[("10.0.1.1", 1)]);
    let mut have = want.dests.clone();
    have[0].forward = Forward::Masq;
    let p = plan(
        &map(vec![want.clone()]),
        &HashSet::new(),
        &HashSet::new(),
        &[(want.service.clone(), have)],
    );
    assert_eq!(p.ops, vec![Op::SetDest(sid, want.dests[0].clone())]);
}

// ---- the manager on the in-memory kernel ----

#[test]
fn manager_applies_reads_back_and_cleans_up_only_its_own() {
    let mut m = Manager::new(FakeKernel::default());
    let foreign = ServiceEntry::new(id("10.9.9.9", 22, Protocol::Tcp), "rr", None);
    m.transport_mut().table.push((foreign.clone(), Vec::new()));
    let a = id("10.0.0.1", 80, Protocol::Tcp);
    let b = id("2001:db8::1", 53, Protocol::Udp);
    m.set_managed([a, b]);
    let r = m
        .apply(desired(a, "wlc", &[("10.0.1.1", 3), ("10.0.1.2", 1)]))
        .unwrap();
    assert_eq!(r.applied.len(), 3);
    assert_eq!(r.new_foreign, vec![foreign.id]);
    m.apply(desired(b, "sh", &[("2001:db8::10", 1)])).unwrap();
    let table = m.table().unwrap();
    assert_eq!(table.len(), 3);
    let (sa, da) = table.iter().find(|(s, _)| s.id == a).unwrap();
    assert_eq!(sa.scheduler, "wlc");
    assert_eq!(sa.stats.inpkts, 10, "statistics are read back");
    assert_eq!(da.len(), 2);
    // Reported once only.
    assert!(m.reconcile().unwrap().new_foreign.is_empty());
    assert_eq!(m.cleanup().unwrap(), 2);
    let left = m.table().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0.id, foreign.id);
}

#[test]
fn manager_follows_health_inhibit_and_removal() {
    let mut m = Manager::new(FakeKernel::default());
    let a = id("10.0.0.1", 80, Protocol::Tcp);
    m.apply(desired(a, "rr", &[("10.0.1.1", 1), ("10.0.1.2", 1)]))
        .unwrap();
    // inhibit_on_failure: weight 0, the real stays.
    let r = m
        .apply(desired(a, "rr", &[("10.0.1.1", 1), ("10.0.1.2", 0)]))
        .unwrap();
    assert!(matches!(&r.applied[..], [Op::SetDest(_, d)] if d.weight == 0));
    // Without it: the real goes.
    let r = m.apply(desired(a, "rr", &[("10.0.1.1", 1)])).unwrap();
    assert!(matches!(&r.applied[..], [Op::DelDest(_, d)] if d.addr == v4("10.0.1.2")));
    // Leaving MASTER: the service goes.
    let r = m.remove(&a).unwrap();
    assert_eq!(r.applied, vec![Op::DelService(a)]);
    assert!(m.table().unwrap().is_empty());
}

#[test]
fn manager_corrects_changes_made_by_hand() {
    let mut m = Manager::new(FakeKernel::default());
    let a = id("10.0.0.1", 80, Protocol::Tcp);
    let want = desired(a, "rr", &[("10.0.1.1", 1)]);
    m.apply(want.clone()).unwrap();
    {
        let k = m.transport_mut();
        k.table[0].0.scheduler = "lc".into();
        k.table[0].1[0].weight = 9;
        k.table[0]
            .1
            .push(DestEntry::new(v4("10.0.1.50"), 80, Forward::Route, 1));
    }
    let r = m.reconcile().unwrap();
    assert_eq!(r.applied.len(), 3, "{:?}", r.applied);
    let table = m.table().unwrap();
    assert!(table[0].0.same_config(&want.service));
    assert_eq!(table[0].1.len(), 1);
    assert!(table[0].1[0].same_config(&want.dests[0]));
    // Deleted by hand: re-created.
    m.transport_mut().table.clear();
    m.reconcile().unwrap();
    assert_eq!(m.table().unwrap().len(), 1);
}

#[test]
fn a_previous_daemons_services_wait_for_the_grace_period() {
    let mut m = Manager::new(FakeKernel::default());
    let a = id("10.0.0.1", 80, Protocol::Tcp);
    let b = id("10.0.0.2", 80, Protocol::Tcp);
    let kept = desired(b, "rr", &[("10.0.1.1", 1)]);
    m.transport_mut()
        .table
        .push((kept.service.clone(), kept.dests.clone()));
    m.begin_grace();
    m.set_managed([a, b]);
    // Serving another service reconciles the table, but b stays (and is not foreign).
    let r = m.apply(desired(a, "rr", &[])).unwrap();
    assert_eq!(
        r.applied,
        vec![Op::NewService(desired(a, "rr", &[]).service)]
    );
    assert!(r.new_foreign.is_empty());
    assert_eq!(m.table().unwrap().len(), 2);
    // Its instance stays BACKUP: once the grace ends it goes.
    m.end_grace();
    assert_eq!(m.reconcile().unwrap().applied, vec![Op::DelService(b)]);
}

#[test]
fn missing_scheduler_says_which_module_to_load() {
    let mut k = FakeKernel::default();
    k.schedulers.retain(|s| *s != "mh");
    let mut m = Manager::new(k);
    let a = id("10.0.0.1", 80, Protocol::Tcp);
    let e = m.apply(desired(a, "mh", &[("10.0.1.1", 1)])).unwrap_err();
    assert!(matches!(e, IpvsError::SchedulerMissing { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("`mh`") && text.contains("modprobe ip_vs_mh"),
        "{text}"
    );
    assert!(
        text.contains("CONFIG_IP_VS_MH") && text.contains("10.0.0.1:80 TCP"),
        "{text}"
    );
}

#[test]
fn permission_and_missing_module_errors_say_what_to_do() {
    let mut m = Manager::new(FakeKernel {
        deny: true,
        ..FakeKernel::default()
    });
    let e = m.reconcile().unwrap_err();
    assert!(matches!(e, IpvsError::Permission { .. }), "{e:?}");
    assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
    let e = IpvsError::from_open(super::TransportError::Kernel(libc::ENOENT));
    assert!(
        e.to_string().contains("modprobe ip_vs") && e.to_string().contains("CONFIG_IP_VS"),
        "{e}"
    );
}

#[test]
fn a_real_ipvs_family_or_a_clear_error() {
    // This machine may or may not have IPVS: either the family opens and lists, or the
    // error is the one that names the module.
    match super::open() {
        Ok(mut ipvs) => {
            ipvs.table().unwrap();
        }
        Err(e) => assert!(
            matches!(e, IpvsError::NotAvailable | IpvsError::Permission { .. }),
            "{e:?}"
        ),
    }
}

#[test]
fn from_config_maps_kinds_algorithms_and_persistence() {
    use crate::{config::Config, health::verdict::DesiredBackend};
    let text = r#"
[global]
dataplane = "ipvs"

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_kind = "NAT"
persistence_timeout = "300s"
[[virtual_server.real_server]]
address = "10.0.1.1"
port = 8080

[[virtual_server]]
address = "10.0.0.1"
port = 443
lb_kind = "DR"
lb_algo = "maglev_src"
[[virtual_server.real_server]]
address = "10.0.1.1"

[[virtual_server]]
address = "2001:db8::1"
port = 53
protocol = "UDP"
lb_kind = "TUN"
lb_algo = "lblcr"
[[virtual_server.real_server]]
address = "2001:db8::10"
"#;
    let config = Config::from_str(text, "lb.toml").unwrap().config;
    let b = |a: &str, port, weight| DesiredBackend {
        addr: v4(a),
        port,
        weight,
        sorry: false,
    };
    let vs = &config.virtual_servers;
    let nat = super::from_config::desired_service(&vs[0], &[b("10.0.1.1", 8080, 0)]);
    assert_eq!(nat.service.scheduler, "mh");
    assert_eq!(nat.service.persistence, Some(300));
    assert_eq!(nat.dests[0].forward, Forward::Masq);
    assert_eq!((nat.dests[0].port, nat.dests[0].weight), (8080, 0));
    let dr = super::from_config::desired_service(&vs[1], &[b("10.0.1.1", 443, 2)]);
    assert_eq!(dr.service.scheduler, "sh");
    assert_eq!(dr.service.persistence, None);
    assert_eq!(dr.dests[0].forward, Forward::Route);
    let tun = super::from_config::desired_service(&vs[2], &[b("2001:db8::10", 53, 1)]);
    assert_eq!(tun.service.scheduler, "lblcr");
    assert_eq!(tun.service.id.protocol, Protocol::Udp);
    assert_eq!(tun.dests[0].forward, Forward::Tunnel);
    assert!(super::from_config::unsupported(&vs[0]).is_none());
}

/// keepalived's `lvs_method` inside `real_server` (and `sorry_server_lvs_method`): each
/// destination of one service with its own forwarding method.
const MIXED: &str = r#"
[global]
dataplane = "ipvs"

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_kind = "DR"
sorry_server = { address = "10.0.9.9", port = 8081, lb_kind = "NAT" }
[[virtual_server.real_server]]
address = "10.0.1.1"
[[virtual_server.real_server]]
address = "10.0.1.2"
port = 8080
lb_kind = "NAT"
[[virtual_server.real_server]]
address = "10.0.1.3"
lb_kind = "TUN"
"#;

fn mixed_backends() -> (
    crate::config::VirtualServer,
    Vec<crate::health::verdict::DesiredBackend>,
) {
    use crate::{config::Config, health::verdict::DesiredBackend};
    let mut config = Config::from_str(MIXED, "lb.toml").unwrap().config;
    let b = |a: &str, port, sorry| DesiredBackend {
        addr: v4(a),
        port,
        weight: 1,
        sorry,
    };
    let backends = vec![
        b("10.0.1.1", 80, false),
        b("10.0.1.2", 8080, false),
        b("10.0.1.3", 80, false),
        b("10.0.9.9", 8081, true),
    ];
    (config.virtual_servers.remove(0), backends)
}

#[test]
fn from_config_gives_each_real_its_own_forwarding_method() {
    let (vs, backends) = mixed_backends();
    let want = super::from_config::desired_service(&vs, &backends);
    let got: Vec<_> = want
        .dests
        .iter()
        .map(|d| (d.addr, d.port, d.forward))
        .collect();
    assert_eq!(
        got,
        vec![
            (v4("10.0.1.1"), 80, Forward::Route),
            // NAT rewrites the port; DR and TUN keep the virtual server's.
            (v4("10.0.1.2"), 8080, Forward::Masq),
            (v4("10.0.1.3"), 80, Forward::Tunnel),
            (v4("10.0.9.9"), 8081, Forward::Masq),
        ]
    );
    // The netlink attributes carry each one's IP_VS_CONN_F_* (DROUTE 3, MASQ 0,
    // TUNNEL 2).
    let methods: Vec<_> = want
        .dests
        .iter()
        .map(|d| {
            let msg = request::new_dest(&want.service.id, d);
            let Some(CmdAttr::Dest(attrs)) = msg.attrs.get(1) else {
                panic!("no destination attributes in {msg:?}");
            };
            attrs
                .iter()
                .find_map(|a| match a {
                    DestAttr::FwdMethod(m) => Some(*m),
                    _ => None,
                })
                .expect("FWD_METHOD")
        })
        .collect();
    assert_eq!(methods, vec![3, 0, 2, 0]);
    assert!(vs.uses_lb_kind(crate::config::LbKind::Nat));
}

#[test]
fn plan_corrects_one_real_s_forwarding_method_and_leaves_the_others() {
    let (vs, backends) = mixed_backends();
    let want = super::from_config::desired_service(&vs, &backends);
    let sid = want.service.id;
    // As a whole-service DR would have left the kernel.
    let have: Vec<_> = want
        .dests
        .iter()
        .map(|d| DestEntry::new(d.addr, d.port, Forward::Route, d.weight))
        .collect();
    let p = plan(
        &map(vec![want.clone()]),
        &HashSet::new(),
        &HashSet::new(),
        &[(want.service.clone(), have)],
    );
    assert_eq!(
        p.ops,
        vec![
            Op::SetDest(sid, want.dests[1].clone()),
            Op::SetDest(sid, want.dests[2].clone()),
            Op::SetDest(sid, want.dests[3].clone()),
        ]
    );
    // Once matching, nothing to do.
    let p = plan(
        &map(vec![want.clone()]),
        &HashSet::new(),
        &HashSet::new(),
        &[(want.service.clone(), want.dests.clone())],
    );
    assert!(p.ops.is_empty(), "{:?}", p.ops);
}

/// keepalived's `lvs_method TUN type gue port 6080 csum` and `uthreshold`/`lthreshold`.
const TUNNELS: &str = r#"
[global]
dataplane = "ipvs"

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_kind = "TUN"
tunnel_type = "gue"
tunnel_port = 6080
tunnel_checksum = "remcsum"
[[virtual_server.real_server]]
address = "10.0.1.1"
uthreshold = 100
lthreshold = 80
[[virtual_server.real_server]]
address = "10.0.1.2"
tunnel_type = "gre"
tunnel_checksum = "csum"
[[virtual_server.real_server]]
address = "10.0.1.3"
tunnel_type = "ipip"
"#;

#[test]
fn tunnels_and_thresholds_reach_the_destinations_and_the_wire() {
    use crate::ipvs::model::TunnelAttrs;
    use crate::{config::Config, health::verdict::DesiredBackend};
    let vs = Config::from_str(TUNNELS, "lb.toml")
        .unwrap()
        .config
        .virtual_servers;
    let backends: Vec<_> = ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
        .iter()
        .map(|a| DesiredBackend {
            addr: v4(a),
            port: 80,
            weight: 1,
            sorry: false,
        })
        .collect();
    let want = super::from_config::desired_service(&vs[0], &backends);
    let got: Vec<_> = want
        .dests
        .iter()
        .map(|d| (d.tunnel, d.u_thresh, d.l_thresh))
        .collect();
    let tunnel = |kind, port, flags| TunnelAttrs { kind, port, flags };
    assert_eq!(
        got,
        vec![
            // GUE (1) on port 6080 with remote checksum offload (2).
            (tunnel(1, 6080, 2), 100, 80),
            // GRE (2) with a checksum (1).
            (tunnel(2, 0, 1), 0, 0),
            (TunnelAttrs::default(), 0, 0),
        ]
    );
    let sid = want.service.id;
    for d in &want.dests {
        let back = wire(request::new_dest(&sid, d));
        let attrs = back.dest().unwrap();
        // IP-in-IP sends no tunnel attribute: kernels before 5.2 do not know them.
        let has_tun = attrs.iter().any(|a| matches!(a, DestAttr::TunType(_)));
        assert_eq!(has_tun, d.tunnel != TunnelAttrs::default(), "{d}");
        assert_eq!(&DestEntry::from_attrs(attrs, 2).unwrap(), d);
    }
    // A tunnel changed by hand is a difference to correct; a DR destination has none.
    let mut changed = want.dests[0].clone();
    changed.tunnel.port = 6081;
    assert!(!changed.same_config(&want.dests[0]));
    let dr = DestEntry::new(v4("10.0.1.1"), 80, Forward::Route, 1);
    assert!(dr.clone().with_tunnel(tunnel(1, 1, 0)).same_config(&dr));
    assert!(!dr.clone().with_thresholds(1, 0).same_config(&dr));
}

#[test]
fn tunnel_attributes_golden_bytes() {
    use crate::ipvs::model::TunnelAttrs;
    let attrs = DestEntry::new(v4("10.0.1.1"), 80, Forward::Tunnel, 1)
        .with_tunnel(TunnelAttrs {
            kind: 1,
            port: 6080,
            flags: 1,
        })
        .to_attrs();
    let tail: Vec<u8> = attrs[attrs.len() - 3..]
        .iter()
        .flat_map(|a| {
            let mut b = vec![0u8; netlink_packet_core::Emitable::buffer_len(a)];
            netlink_packet_core::Emitable::emit(a, &mut b);
            b
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            // IPVS_DEST_ATTR_TUN_TYPE (13), u8 GUE, padded
            5, 0, 13, 0, 1, 0, 0, 0, // IPVS_DEST_ATTR_TUN_PORT (14), be16 6080
            6, 0, 14, 0, 0x17, 0xc0, 0, 0, // IPVS_DEST_ATTR_TUN_FLAGS (15), u16 CSUM
            6, 0, 15, 0, 1, 0, 0, 0,
        ]
    );
}
