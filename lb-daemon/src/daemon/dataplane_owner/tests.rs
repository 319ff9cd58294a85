//! The owner's decisions against the in-memory plane: what is forwarded when.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;

use super::*;
use crate::daemon::plane::memory::{Forwarding, MemoryPlane};

const CONFIG: &str = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["10.0.0.1/32"]

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_kind = "DR"
[[virtual_server.real_server]]
address = "10.0.1.1"
[[virtual_server.real_server]]
address = "10.0.1.2"

[[virtual_server]]
address = "10.0.0.9"
port = 443
lb_kind = "DR"
[[virtual_server.real_server]]
address = "10.0.1.9"
"#;

const HELD: &str = "10.0.0.1:80 TCP";
const UNHELD: &str = "10.0.0.9:443 TCP";

/// CONFIG without the service no instance holds.
fn held_only() -> &'static str {
    CONFIG
        .split("\n[[virtual_server]]\naddress = \"10.0.0.9\"")
        .next()
        .unwrap()
}

fn config(text: &str) -> Config {
    Config::from_str(text, "lb.toml").unwrap().config
}

/// A running owner on a memory plane.
struct Running {
    handle: OwnerHandle,
    state: Arc<Mutex<Forwarding>>,
}

impl Running {
    fn start(text: &str) -> Running {
        let plane = MemoryPlane::default();
        let state = Arc::clone(&plane.state);
        let owner = Owner::new(&config(text), Box::new(plane) as Box<dyn ForwardingPlane>);
        Running {
            handle: owner.unwrap().spawn(),
            state,
        }
    }

    /// What is forwarded once the owner has handled everything sent so far.
    async fn forwarding(&self) -> BTreeMap<String, Vec<String>> {
        let (reply, done) = oneshot::channel();
        self.handle.msgs.send(Msg::Status { reply }).unwrap();
        done.await.unwrap();
        self.state.lock().unwrap().services.clone()
    }

    fn health(&self, vip: &str, port: u16, backends: &[(&str, u32)]) {
        self.health_quorum(vip, port, backends, true);
    }

    fn health_quorum(&self, vip: &str, port: u16, backends: &[(&str, u32)], quorum_up: bool) {
        let update = Update {
            service: ServiceId {
                vip: vip.parse().unwrap(),
                port,
                protocol: config::Protocol::Tcp,
            },
            backends: backends
                .iter()
                .map(|(addr, weight)| DesiredBackend {
                    addr: addr.parse().unwrap(),
                    port,
                    weight: *weight,
                    sorry: false,
                })
                .collect(),
            quorum_up,
        };
        self.handle.health.send(update).unwrap();
    }

    async fn become_master(&self) {
        let (reply, done) = oneshot::channel();
        let instance = "VI_1".to_string();
        let req = GateRequest::BecomeMaster { instance, reply };
        self.handle.gate.send(req).unwrap();
        done.await.unwrap().unwrap();
    }

    fn left_master(&self) {
        let instance = "VI_1".to_string();
        self.handle
            .gate
            .send(GateRequest::LeftMaster { instance })
            .unwrap();
    }
}

fn services(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(id, bs)| (id.to_string(), bs.iter().map(|b| b.to_string()).collect()))
        .collect()
}

#[tokio::test]
async fn a_service_is_forwarded_only_while_its_instance_is_master() {
    let owner = Running::start(CONFIG);
    owner.health("10.0.0.1", 80, &[("10.0.1.1", 1), ("10.0.1.2", 1)]);
    owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
    // BACKUP: only the service no instance holds.
    assert_eq!(
        owner.forwarding().await,
        services(&[(UNHELD, &["10.0.1.9:443 1"])])
    );
    owner.become_master().await;
    assert_eq!(
        owner.forwarding().await,
        services(&[
            (HELD, &["10.0.1.1:80 1", "10.0.1.2:80 1"]),
            (UNHELD, &["10.0.1.9:443 1"]),
        ])
    );
    owner.left_master();
    assert_eq!(
        owner.forwarding().await,
        services(&[(UNHELD, &["10.0.1.9:443 1"])])
    );
}

#[tokio::test]
async fn health_updates_change_the_backends_of_a_forwarded_service() {
    let owner = Running::start(CONFIG);
    owner.become_master().await;
    owner.health("10.0.0.1", 80, &[("10.0.1.1", 1), ("10.0.1.2", 1)]);
    owner.health("10.0.0.1", 80, &[("10.0.1.1", 1), ("10.0.1.2", 0)]);
    assert_eq!(
        owner.forwarding().await[HELD],
        ["10.0.1.1:80 1", "10.0.1.2:80 0"]
    );
    owner.health("10.0.0.1", 80, &[("10.0.1.1", 1)]);
    assert_eq!(owner.forwarding().await[HELD], ["10.0.1.1:80 1"]);
    // An update for a service the configuration does not have changes nothing.
    owner.health("10.0.0.7", 80, &[("10.0.1.1", 1)]);
    assert_eq!(owner.forwarding().await.len(), 2);
}

#[tokio::test]
async fn a_reload_removes_the_services_it_drops() {
    let owner = Running::start(CONFIG);
    owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
    owner.become_master().await;
    let (reply, done) = oneshot::channel();
    let config = Box::new(config(held_only()));
    owner
        .handle
        .msgs
        .send(Msg::Reconfigure { config, reply })
        .unwrap();
    done.await.unwrap();
    let forwarding = owner.forwarding().await;
    assert_eq!(forwarding.keys().collect::<Vec<_>>(), [HELD]);
}

#[tokio::test]
async fn shutdown_removes_the_services_and_keep_leaves_them() {
    for (stop, forwarded) in [("shutdown", 0), ("kept", 1)] {
        let owner = Running::start(CONFIG);
        owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
        assert_eq!(owner.forwarding().await.len(), 1);
        if stop == "shutdown" {
            let (reply, done) = oneshot::channel();
            owner.handle.msgs.send(Msg::Shutdown { reply }).unwrap();
            done.await.unwrap();
        } else {
            let (reply, done) = oneshot::channel();
            owner.handle.msgs.send(Msg::Keep { reply }).unwrap();
            done.await.unwrap().unwrap();
        }
        let state = owner.state.lock().unwrap();
        assert_eq!(state.stopped, Some(stop));
        assert_eq!(state.services.len(), forwarded);
    }
}

#[tokio::test]
async fn a_service_a_reload_adds_is_forwarded_with_its_first_desired_set() {
    let owner = Running::start(held_only());
    assert!(owner.forwarding().await.is_empty());
    let (reply, done) = oneshot::channel();
    let config = Box::new(config(CONFIG));
    owner
        .handle
        .msgs
        .send(Msg::Reconfigure { config, reply })
        .unwrap();
    done.await.unwrap();
    owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
    assert_eq!(
        owner.forwarding().await,
        services(&[(UNHELD, &["10.0.1.9:443 1"])])
    );
}

const BGP_CONFIG: &str = r#"
[bgp]
interfaces = ["eth0", "eth1"]

[[virtual_server]]
address = "198.51.100.10"
port = 80
announce = "bgp"
[[virtual_server.real_server]]
address = "10.0.1.1"

[[virtual_server]]
address = "198.51.100.10"
port = 443
announce = "bgp"
interfaces = ["eth2"]
[[virtual_server.real_server]]
address = "10.0.1.1"

[[virtual_server]]
address = "10.0.0.9"
port = 443
[[virtual_server.real_server]]
address = "10.0.1.9"
"#;

/// The announcer's inputs: BGP services are served from the start on [bgp].interfaces
/// (or their own), and their readiness follows programming and each health update.
#[tokio::test]
async fn bgp_services_report_their_readiness_to_the_announcer() {
    use crate::daemon::announcer::{Readiness, ServiceReadiness};
    let plane = MemoryPlane::default();
    let state = Arc::clone(&plane.state);
    let (tx, mut rx) = tokio::sync::watch::channel(Readiness::new());
    let owner = Owner::new(
        &config(BGP_CONFIG),
        Box::new(plane) as Box<dyn ForwardingPlane>,
    )
    .unwrap()
    .with_readiness(tx);
    let owner = Running {
        handle: owner.spawn(),
        state,
    };
    let vip: IpAddr = "198.51.100.10".parse().unwrap();
    let id = |port| ServiceId {
        vip,
        port,
        protocol: config::Protocol::Tcp,
    };
    let r = |programmed, quorum| ServiceReadiness {
        vip,
        programmed,
        quorum,
    };
    owner.forwarding().await;
    // Programmed at start (no VRRP instance gates them), quorum not known yet; the
    // service that is not announced is not reported.
    let seen = rx.borrow_and_update().clone();
    assert_eq!(
        seen,
        Readiness::from([(id(80), r(true, None)), (id(443), r(true, None))])
    );
    let interfaces = owner.state.lock().unwrap().interfaces.clone();
    assert_eq!(interfaces["198.51.100.10:80 TCP"], vec!["eth0", "eth1"]);
    assert_eq!(interfaces["198.51.100.10:443 TCP"], vec!["eth2"]);

    owner.health("198.51.100.10", 80, &[("10.0.1.1", 1)]);
    owner.health_quorum("198.51.100.10", 443, &[], false);
    owner.forwarding().await;
    assert!(rx.has_changed().unwrap());
    assert_eq!(
        *rx.borrow_and_update(),
        Readiness::from([
            (id(80), r(true, Some(true))),
            (id(443), r(true, Some(false)))
        ])
    );
    // Nothing changed: no wake-up for the announcer.
    owner.health("198.51.100.10", 80, &[("10.0.1.1", 2)]);
    owner.forwarding().await;
    assert!(!rx.has_changed().unwrap());
}

/// A next hop that appears (a backend left out for want of it) or changes (a new MAC)
/// reprograms exactly the forwarded services that use that backend.
#[test]
fn a_new_next_hop_reprograms_the_forwarded_services_using_it() {
    let mut owner = Owner::new(
        &config(CONFIG),
        Box::new(MemoryPlane::default()) as Box<dyn ForwardingPlane>,
    )
    .unwrap();
    let id = |vip: &str, port| ServiceId {
        vip: vip.parse().unwrap(),
        port,
        protocol: config::Protocol::Tcp,
    };
    let backend = |addr: &str, port| DesiredBackend {
        addr: addr.parse().unwrap(),
        port,
        weight: 1,
        sorry: false,
    };
    owner
        .desired
        .insert(id("10.0.0.1", 80), vec![backend("10.0.1.1", 80)]);
    owner
        .desired
        .insert(id("10.0.0.9", 443), vec![backend("10.0.1.9", 443)]);
    let addrs = |a: &[&str]| {
        a.iter()
            .map(|a| a.parse().unwrap())
            .collect::<HashSet<IpAddr>>()
    };
    // The held service is not forwarded while its instance is BACKUP.
    assert!(owner
        .active_services_using(&addrs(&["10.0.1.1"]))
        .is_empty());
    assert_eq!(
        owner.active_services_using(&addrs(&["10.0.1.9", "10.0.7.7"])),
        [id("10.0.0.9", 443)]
    );
    owner.masters.insert("VI_1".into());
    assert_eq!(
        owner.active_services_using(&addrs(&["10.0.1.1"])),
        [id("10.0.0.1", 80)]
    );
    assert!(owner.active_services_using(&HashSet::new()).is_empty());
}

impl Running {
    /// The plane counts `packets` more for the service `vip`:`port` (TCP).
    fn count(&self, vip: &str, port: u16, packets: u64) {
        let id = ServiceId {
            vip: vip.parse().unwrap(),
            port,
            protocol: config::Protocol::Tcp,
        };
        let mut state = self.state.lock().unwrap();
        let traffic = state.traffic.get_mut(&id).expect("a programmed service");
        traffic.packets += packets;
        traffic.bytes += packets * 100;
    }

    /// (packets, bytes) of the service `vip`:`port` as the owner reports them.
    async fn reported(&self, vip: &str, port: u16) -> (u64, u64) {
        let (reply, done) = oneshot::channel();
        self.handle.msgs.send(Msg::Status { reply }).unwrap();
        let status = done.await.unwrap();
        let s = status
            .iter()
            .find(|s| s.id.vip.to_string() == vip && s.id.port == port)
            .expect("the service is reported");
        (s.traffic.packets, s.traffic.bytes)
    }

    async fn reload(&self, text: &str) {
        let (reply, done) = oneshot::channel();
        let config = Box::new(config(text));
        let msg = Msg::Reconfigure { config, reply };
        self.handle.msgs.send(msg).unwrap();
        done.await.unwrap();
    }
}

#[tokio::test]
async fn counters_carry_on_across_mastership_and_reloads() {
    let owner = Running::start(CONFIG);
    owner.health("10.0.0.1", 80, &[("10.0.1.1", 1)]);
    owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
    owner.become_master().await;
    owner.forwarding().await;
    owner.count("10.0.0.1", 80, 10);
    assert_eq!(owner.reported("10.0.0.1", 80).await, (10, 1000));
    // Counted more, then left MASTER: the plane dropped the counters, not the owner.
    owner.count("10.0.0.1", 80, 5);
    owner.left_master();
    assert_eq!(owner.reported("10.0.0.1", 80).await, (15, 1500));
    assert_eq!(owner.state.lock().unwrap().traffic.len(), 1, "removed");
    // MASTER again: the plane counts from 0, the report goes on from 15.
    owner.become_master().await;
    owner.forwarding().await;
    owner.count("10.0.0.1", 80, 30);
    assert_eq!(owner.reported("10.0.0.1", 80).await, (45, 4500));
    // A reload that drops the unheld service, then one that brings it back.
    owner.count("10.0.0.9", 443, 7);
    owner.reload(held_only()).await;
    assert_eq!(owner.reported("10.0.0.9", 443).await, (7, 700));
    owner.reload(CONFIG).await;
    owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
    owner.forwarding().await;
    owner.count("10.0.0.9", 443, 1);
    assert_eq!(owner.reported("10.0.0.9", 443).await, (8, 800));
    assert_eq!(owner.reported("10.0.0.1", 80).await, (45, 4500));
}

mod sync {
    use super::*;
    use crate::dataplane::flow_sync::{FlowKind, FlowRecord};
    use crate::sync::task::{Outgoing, SyncHandle, SyncStats, Synced};

    fn record(vip: &str, port: u16, client_port: u16) -> FlowRecord {
        let client = std::net::SocketAddr::new("203.0.113.7".parse().unwrap(), client_port);
        FlowRecord {
            kind: FlowKind::Conntrack,
            service: ServiceId {
                vip: vip.parse().unwrap(),
                port,
                protocol: config::Protocol::Tcp,
            },
            client,
            dst: std::net::SocketAddr::new(vip.parse().unwrap(), port),
            real: "10.0.1.1:0".parse().unwrap(),
            xsrc: client,
            state: 0,
            idle_ms: 0,
        }
    }

    /// An owner syncing for VI_1, and what it hands its sender.
    fn start() -> (Running, mpsc::Receiver<Outgoing>, Arc<SyncStats>) {
        start_kept(&[])
    }

    /// The same, started after a `stop --keep-dataplane` that handed over `kept`.
    fn start_kept(kept: &[String]) -> (Running, mpsc::Receiver<Outgoing>, Arc<SyncStats>) {
        let plane = MemoryPlane::default();
        let state = Arc::clone(&plane.state);
        let (to_peers, from_owner) = mpsc::channel(16);
        let stats = SyncStats::new(1, "unicast", Some("VI_1"));
        let handle = SyncHandle {
            to_peers,
            stats: Arc::clone(&stats),
        };
        let owner = Owner::new(&config(CONFIG), Box::new(plane) as Box<dyn ForwardingPlane>)
            .unwrap()
            .with_sync(&handle, Some("VI_1".into()))
            .with_kept_masters(kept);
        let running = Running {
            handle: owner.spawn(),
            state,
        };
        (running, from_owner, stats)
    }

    #[tokio::test]
    async fn a_backup_keeps_its_masters_flows_and_installs_them_before_serving() {
        let (owner, _from_owner, stats) = start();
        owner.health("10.0.0.1", 80, &[("10.0.1.1", 1), ("10.0.1.2", 1)]);
        owner.health("10.0.0.9", 443, &[("10.0.1.9", 1)]);
        owner.forwarding().await;
        let held = record("10.0.0.1", 80, 40000);
        let unheld = record("10.0.0.9", 443, 40001);
        owner
            .handle
            .synced
            .send(Synced::Flows(vec![held, unheld]))
            .await
            .unwrap();
        owner.forwarding().await;
        // The service this node serves takes its flow at once; the other waits.
        assert_eq!(owner.state.lock().unwrap().installed, vec![unheld]);
        assert_eq!(stats.snapshot().pending, 1);
        owner.become_master().await;
        // Installed when the service was programmed, before the gate answered (after
        // the bulk window: a quiet pause after the last flows), its idle time grown by
        // the time it was kept.
        let installed = owner.state.lock().unwrap().installed.clone();
        assert_eq!(installed[0], unheld);
        assert!(installed[1].idle_ms >= 300, "{:?}", installed[1]);
        assert_eq!(
            FlowRecord {
                idle_ms: 0,
                ..installed[1]
            },
            held
        );
        let s = stats.snapshot();
        assert_eq!((s.pending, s.installed), (0, 2));
    }

    #[tokio::test]
    async fn a_master_that_steps_down_keeps_its_flows_for_its_next_turn() {
        let (owner, _from_owner, stats) = start();
        owner.health("10.0.0.1", 80, &[("10.0.1.1", 1)]);
        owner.become_master().await;
        // A flow this node scheduled while MASTER (its own, not a peer's).
        let r = record("10.0.0.1", 80, 40000);
        owner.state.lock().unwrap().installed.push(r);
        owner.left_master();
        owner.forwarding().await;
        assert!(
            owner.state.lock().unwrap().installed.is_empty(),
            "gone with the service"
        );
        assert_eq!(stats.snapshot().pending, 1);
        // MASTER again (say the peer failed meanwhile): the flow is back before serving.
        owner.become_master().await;
        let installed = owner.state.lock().unwrap().installed.clone();
        assert_eq!(installed.len(), 1);
        assert_eq!(
            FlowRecord {
                idle_ms: 0,
                ..installed[0]
            },
            r
        );
        assert_eq!(stats.snapshot().pending, 0);
    }

    /// Asks for VI_1's MASTER transition; the answer comes on the receiver.
    fn ask_master(owner: &Running) -> oneshot::Receiver<Result<(), String>> {
        let (reply, answer) = oneshot::channel();
        let instance = "VI_1".to_string();
        owner
            .handle
            .gate
            .send(GateRequest::BecomeMaster { instance, reply })
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn a_master_handed_over_by_an_upgrade_does_not_wait_for_bulk_sync() {
        // A fresh start waits for its peers' flows before it serves (gates are handled
        // before the status request the round trip makes).
        let (owner, _from_owner, _stats) = start();
        let mut answer = ask_master(&owner);
        owner.forwarding().await;
        assert!(answer.try_recv().is_err(), "deferred to the bulk window");
        // An instance the previous daemon handed over (`stop --keep-dataplane`) has its
        // tables, and no peer took over while it restarted: served at once, so its
        // adverts resume before the peers' master-down timers run out.
        let (owner, _from_owner, _stats) = start_kept(&["VI_1".to_string()]);
        owner.health("10.0.0.1", 80, &[("10.0.1.1", 1)]);
        let mut answer = ask_master(&owner);
        let forwarding = owner.forwarding().await;
        assert_eq!(answer.try_recv(), Ok(Ok(())));
        assert_eq!(
            forwarding.get(HELD),
            Some(&vec!["10.0.1.1:80 1".to_string()])
        );
        // Only the first transition: a later one waits like any other.
        owner.left_master();
        let mut answer = ask_master(&owner);
        owner.forwarding().await;
        assert!(answer.try_recv().is_err(), "deferred to the bulk window");
    }

    #[tokio::test]
    async fn new_flows_are_sent_only_while_master_of_the_sync_instance() {
        let (owner, mut from_owner, stats) = start();
        owner.forwarding().await;
        let r = record("10.0.0.1", 80, 40000);
        owner.state.lock().unwrap().learned.push(r);
        // Drained and dropped in one step: once drained, the decision is made.
        while !owner.state.lock().unwrap().learned.is_empty() {
            tokio::time::sleep(LEARN_EVERY).await;
        }
        owner.forwarding().await;
        assert!(from_owner.try_recv().is_err(), "a BACKUP does not send");
        assert!(!stats.snapshot().sending);
        owner.become_master().await;
        owner.state.lock().unwrap().learned.push(r);
        assert_eq!(
            from_owner.recv().await.unwrap(),
            Outgoing {
                records: vec![r],
                bulk: false
            }
        );
        assert!(stats.snapshot().sending);
    }

    #[tokio::test]
    async fn a_master_answers_a_bulk_request_with_its_table() {
        let (owner, mut from_owner, _stats) = start();
        let r = record("10.0.0.1", 80, 40000);
        owner.state.lock().unwrap().installed.push(r);
        // A BACKUP does not answer.
        owner.handle.synced.send(Synced::BulkRequest).await.unwrap();
        owner.forwarding().await;
        assert!(from_owner.try_recv().is_err());
        owner.become_master().await;
        owner.handle.synced.send(Synced::BulkRequest).await.unwrap();
        assert_eq!(
            from_owner.recv().await.unwrap(),
            Outgoing {
                records: vec![r],
                bulk: true
            }
        );
    }
}

/// CONFIG with VI_1 in strict mode (no-accept by default) and a second instance that
/// accepts.
fn strict_config() -> String {
    CONFIG.replace(
        "priority = 100\nvirtual_ipaddress = [\"10.0.0.1/32\"]\n",
        "priority = 100\nstrict_mode = true\nvirtual_ipaddress = [\"10.0.0.1/32\"]\n\
         virtual_ipaddress_excluded = [\"2001:db8::1/128\"]\n\n\
         [[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth1\"\nvirtual_router_id = 52\n\
         priority = 100\nstrict_mode = true\naccept = true\nversion = 3\n\
         virtual_ipaddress = [\"10.0.0.2/32\"]\n",
    )
}

#[tokio::test]
async fn no_accept_vips_are_dropped_only_while_their_instance_is_master() {
    let text = strict_config();
    assert!(text.contains("VI_2"), "the replacement applied");
    let owner = Running::start(&text);
    owner.forwarding().await;
    let strict = |owner: &Running| {
        let f = owner.state.lock().unwrap();
        (
            f.strict_vips
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            f.strict_interfaces.clone(),
        )
    };
    assert_eq!(strict(&owner), (vec![], vec![]), "BACKUP: nothing dropped");
    owner.become_master().await;
    assert_eq!(
        strict(&owner),
        (
            vec!["10.0.0.1".to_string(), "2001:db8::1".to_string()],
            vec!["eth0".to_string()]
        ),
        "MASTER: its VIPs, excluded ones too; VI_2 accepts"
    );
    owner.left_master();
    owner.forwarding().await;
    assert_eq!(
        strict(&owner),
        (vec![], vec![]),
        "left MASTER: dropped no more"
    );
}
