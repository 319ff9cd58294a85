//! The announcer task against a real VIP link in a namespace and a stand-in owner that
//! answers `Status` with a packet counter: readiness in, addresses out; drain, undrain,
//! stop. Needs root and iproute2 (fails rather than skips without them).

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::{
    config::Protocol,
    dataplane::{ServiceId, ServiceStatus},
    netns::Netns,
};

const A: &str = "198.51.100.10";
const B: &str = "198.51.100.11";

const CONFIG: &str = r#"
[bgp]
interfaces = ["eth0"]
hold_down = "0s"
drain_idle = "300ms"
drain_timeout = "3s"

[[virtual_server]]
address = "198.51.100.10"
port = 80
announce = "bgp"
[[virtual_server.real_server]]
address = "10.0.1.1"

[[virtual_server]]
address = "198.51.100.11"
port = 80
announce = "bgp"
[[virtual_server.real_server]]
address = "10.0.1.1"
"#;

fn id(vip: &str) -> ServiceId {
    ServiceId {
        vip: vip.parse().unwrap(),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

fn ready(vips: &[&str]) -> Readiness {
    vips.iter()
        .map(|v| {
            let r = ServiceReadiness {
                vip: v.parse().unwrap(),
                programmed: true,
                quorum: Some(true),
            };
            (id(v), r)
        })
        .collect()
}

/// Answers `Status` with service A's packet count, which the test moves.
fn fake_owner(packets: Arc<AtomicU64>) -> mpsc::UnboundedSender<Msg> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Msg::Status { reply } = msg {
                let _ = reply.send(vec![ServiceStatus {
                    id: id(A),
                    mode: None,
                    table_size: 0,
                    traffic: lb_common::Traffic {
                        packets: packets.load(Ordering::Relaxed),
                        bytes: 0,
                    },
                    backends: Vec::new(),
                    nat_connections: None,
                }]);
            }
        }
    });
    tx
}

/// Polls `cond` for up to 5 s.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn readiness_drain_undrain_and_stop() {
    let ns = Netns::new("tbgpa").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let link = ns
        .run(move || handle.block_on(VipLink::ensure("lb-vip0")))
        .unwrap();
    // Left by a previous daemon: B (configured) stays until known, 192.0.2.1 goes.
    ns.ip(&["addr", "add", "192.0.2.1/32", "dev", "lb-vip0"])
        .unwrap();
    ns.ip(&["addr", "add", &format!("{B}/32"), "dev", "lb-vip0"])
        .unwrap();
    let config = Config::from_str(CONFIG, "lb.toml").unwrap().config;
    rt.block_on(async move {
        let packets = Arc::new(AtomicU64::new(0));
        let (tx, rx) = watch::channel(Readiness::new());
        let probe = link.clone();
        let on_link = async || probe.addresses().await.unwrap();
        let announcer = Announcer::new(link, &config, rx, fake_owner(Arc::clone(&packets)))
            .await
            .unwrap()
            .spawn();
        let vip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(on_link().await, vec![vip(B)]);
        let state = |i: usize| announcer.status.read().unwrap().vips[i].state.clone();
        assert_eq!(state(1), "announced (kept from the previous daemon)");

        // A ready: announced. B's services known and not programmed: withdrawn.
        let mut r = ready(&[A]);
        r.insert(
            id(B),
            ServiceReadiness {
                vip: vip(B),
                programmed: false,
                quorum: Some(true),
            },
        );
        tx.send(r).unwrap();
        eventually("A announced, B withdrawn", async || {
            on_link().await == vec![vip(A)]
        })
        .await;
        assert_eq!(state(0), "announced");
        assert_eq!(state(1), "withdrawn: not programmed");
        tx.send(ready(&[A, B])).unwrap();
        eventually("both announced", async || on_link().await.len() == 2).await;

        // Drain: withdrawn at once; ends once A's counter stops moving for 300 ms.
        let (reply, said) = oneshot::channel();
        announcer.cmds.send(Cmd::Drain { reply }).unwrap();
        let said = said.await.unwrap();
        assert!(said.starts_with("drained: 2 VIPs withdrawn"), "{said}");
        assert!(on_link().await.is_empty());
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(600) {
            packets.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drain = || announcer.status.read().unwrap().drain.clone().unwrap();
        assert!(drain().starts_with("draining for"), "{}", drain());
        let (reply, stop_ok) = oneshot::channel();
        announcer.cmds.send(Cmd::DrainForStop { reply }).unwrap();
        tokio::time::timeout(Duration::from_secs(2), stop_ok)
            .await
            .expect("the drain ends 300 ms after the last packet")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(850));
        assert!(drain().starts_with("drained: no packet"), "{}", drain());
        assert!(announcer.status.read().unwrap().drained);
        // Readiness changes do not announce a drained node.
        tx.send(ready(&[A])).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(on_link().await.is_empty());

        let (reply, said) = oneshot::channel();
        announcer.cmds.send(Cmd::Undrain { reply }).unwrap();
        assert_eq!(said.await.unwrap(), "undrained: 1 VIPs announced");
        assert_eq!(on_link().await, vec![vip(A)]);

        // An address removed by hand comes back at the next reconcile (3 s).
        probe.remove(vip(A)).await.unwrap();
        eventually("A re-added", async || on_link().await == vec![vip(A)]).await;

        let (reply, done) = oneshot::channel();
        announcer.cmds.send(Cmd::WithdrawAll { reply }).unwrap();
        done.await.unwrap();
        assert!(on_link().await.is_empty());
    });
}
