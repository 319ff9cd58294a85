//! Flow-state sync over multicast (keepalived's default: group 224.0.0.81 on the sync
//! interface, no peer list): the sender and receiver of `lb_daemon::sync` in two network
//! namespaces on one switch; a flow sent by one reaches the other, and a node with
//! another key drops it (bad tag). Needs root.

use std::time::Duration;

use lb_common::Protocol;
use lb_daemon::{
    config,
    dataplane::{
        flow_sync::{FlowKind, FlowRecord},
        ServiceId,
    },
    sync::task::{self, Outgoing, Synced},
};
use lb_tests::vrrp_lab::Segment;
use tokio::sync::mpsc;

fn settings(node_id: u32, key: &[u8]) -> config::Sync {
    config::Sync {
        interface: "eth0".into(),
        vrrp_instance: None,
        id: 0,
        port: 8848,
        group: config::DEFAULT_SYNC_GROUP.into(),
        ttl: 1,
        maxlen: config::SYNC_DEFAULT_MAXLEN,
        peers: Vec::new(),
        key: key.to_vec(),
        node_id,
        max_rate: 1000,
    }
}

fn record() -> FlowRecord {
    FlowRecord {
        kind: FlowKind::Nat,
        service: ServiceId {
            vip: "198.18.1.100".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        },
        client: "203.0.113.7:40000".parse().unwrap(),
        dst: "198.18.1.100:80".parse().unwrap(),
        real: "10.0.1.21:8080".parse().unwrap(),
        xsrc: "203.0.113.7:40000".parse().unwrap(),
        state: 2,
        idle_ms: 5,
    }
}

type Got = (Vec<FlowRecord>, std::collections::BTreeMap<String, u64>);

/// A node's sync, in the calling thread's namespace: sends `send` (if any) every 500 ms
/// for `secs`; the flows it received and its drop counters.
fn node(i: usize, key: &'static [u8], send: Option<FlowRecord>, secs: u64) -> Got {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (owner_tx, mut owner_rx) = mpsc::channel(64);
        let sync = task::start(&settings(i as u32 + 1, key), owner_tx)
            .await
            .expect("sync starts");
        let mut got = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                _ = tick.tick() => {
                    if let Some(r) = send {
                        let _ = sync.to_peers.try_send(Outgoing { records: vec![r], bulk: false });
                    }
                }
                Some(m) = owner_rx.recv() => {
                    if let Synced::Flows(f) = m {
                        got.extend(f);
                    }
                }
            }
        }
        (got, sync.stats.snapshot().drops)
    })
}

#[test]
fn flows_cross_the_multicast_group_and_a_wrong_key_is_dropped() {
    let seg = Segment::new(3).expect("segment");
    const KEY: &[u8] = b"the-shared-key-0123456789";
    const OTHER: &[u8] = b"another-key-0123456789000";
    let (sent_back, (got, drops), (stranger_got, stranger_drops)) = std::thread::scope(|s| {
        let receiver = s.spawn(|| seg.nodes[1].ns.run(|| node(1, KEY, None, 4)));
        let stranger = s.spawn(|| seg.nodes[2].ns.run(|| node(2, OTHER, None, 4)));
        std::thread::sleep(Duration::from_millis(300));
        let sender = s.spawn(|| seg.nodes[0].ns.run(|| node(0, KEY, Some(record()), 3)));
        (
            sender.join().unwrap().0,
            receiver.join().unwrap(),
            stranger.join().unwrap(),
        )
    });
    assert!(sent_back.is_empty(), "no loop back to the sender");
    assert!(
        !got.is_empty() && got.iter().all(|r| *r == record()),
        "received {got:?}, drops {drops:?}"
    );
    assert!(stranger_got.is_empty(), "{stranger_got:?}");
    assert!(
        stranger_drops.get("bad_tag").is_some_and(|&n| n > 0),
        "{stranger_drops:?}"
    );
}
