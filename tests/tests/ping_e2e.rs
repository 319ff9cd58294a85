//! PING_CHECK end to end in network namespaces: a checker namespace and a real server's
//! namespace joined by a veth, over IPv4 and IPv6, on the unprivileged ping socket (when
//! `net.ipv4.ping_group_range` allows it) and on the raw socket (when it does not); a
//! real server that stops answering is down, and the health runner removes it and
//! brings it back. Needs root.

use std::{net::IpAddr, time::Duration};

use lb_daemon::{
    config::Config,
    health::{
        checkers::check_once,
        runner::{Health, Update},
        spec::Target,
    },
    netns::{veth, Netns},
};
use tokio::sync::mpsc;

/// The checker's and the real server's namespaces, joined by `chk0` / `real0`.
struct Pair {
    checker: Netns,
    real: Netns,
}

const CHECKER_V4: &str = "10.201.0.1";
const REAL_V4: &str = "10.201.0.2";
const CHECKER_V6: &str = "fd00:201::1";
const REAL_V6: &str = "fd00:201::2";

impl Pair {
    fn new() -> Pair {
        let checker = Netns::new("pchk").expect("checker netns");
        let real = Netns::new("preal").expect("real netns");
        veth(&checker, "chk0", &real, "real0").expect("veth");
        for (ns, dev, v4, v6) in [
            (&checker, "chk0", CHECKER_V4, CHECKER_V6),
            (&real, "real0", REAL_V4, REAL_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev])
                .expect("v4");
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])
                .expect("v6");
            ns.ip(&["link", "set", "lo", "up"]).expect("lo");
        }
        Pair { checker, real }
    }

    /// Who may open ping sockets in the checker's namespace.
    fn ping_group_range(&self, range: &str) {
        self.checker
            .sh(&format!("sysctl -qw net.ipv4.ping_group_range='{range}'"))
            .expect("sysctl");
    }

    /// The real server stops (or resumes) answering: its link goes down (up).
    fn real_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        self.real
            .ip(&["link", "set", "real0", state])
            .expect("link");
    }

    /// Runs one PING_CHECK (as configured by `check`) from the checker's namespace.
    fn check(&self, real: &str, check: &str) -> (bool, String) {
        let text = config(real, check);
        self.checker.run(move || {
            let config = load(&text);
            let spec = config.virtual_servers[0].real_servers[0].checks[0].clone();
            let target = Target {
                addr: config.virtual_servers[0].real_servers[0].address,
                port: 0,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let outcome = rt.block_on(check_once(&spec, spec.target(target)));
            (outcome.up, outcome.reason.into_owned())
        })
    }
}

fn config(real: &str, check: &str) -> String {
    let vip = if real.contains(':') {
        "fd00:99::1"
    } else {
        "198.18.0.1"
    };
    format!(
        "[[virtual_server]]\naddress = \"{vip}\"\nport = 80\ndelay_loop = \"200ms\"\n\
         [[virtual_server.real_server]]\naddress = \"{real}\"\nport = 80\n\
         ping_check = {{ {check} }}\n"
    )
}

fn load(text: &str) -> Config {
    match Config::from_str(text, "ping.toml") {
        Ok(l) => l.config,
        Err(e) => panic!("config:\n{e}\n{text}"),
    }
}

const CHECK: &str = "connect_timeout = \"1s\", retry = 0";

#[test]
fn echo_over_ping_and_raw_sockets_both_families() {
    let pair = Pair::new();
    // (ping_group_range, socket the check must have used)
    let table = [("0 2147483647", "ping socket"), ("1 0", "raw socket")];
    for (range, socket) in table {
        pair.ping_group_range(range);
        for real in [REAL_V4, REAL_V6] {
            let (up, reason) = pair.check(real, CHECK);
            assert!(up, "{real} with ping_group_range {range}: {reason}");
            assert_eq!(reason, format!("echo reply ({socket})"), "{real}");
        }
    }
}

#[test]
fn a_silent_or_absent_real_is_down() {
    let pair = Pair::new();
    for range in ["0 2147483647", "1 0"] {
        pair.ping_group_range(range);
        // Nobody has these addresses: no reply.
        for absent in ["10.201.0.9", "fd00:201::9"] {
            let (up, reason) = pair.check(absent, CHECK);
            assert!(!up, "{absent}: {reason}");
        }
        pair.real_link(false);
        for real in [REAL_V4, REAL_V6] {
            let (up, reason) = pair.check(real, CHECK);
            assert!(!up, "{real} behind a down link: {reason}");
        }
        pair.real_link(true);
    }
}

#[test]
fn connect_ip_and_bindto_choose_the_addresses() {
    let pair = Pair::new();
    pair.ping_group_range("1 0");
    // The real server's configured address is unreachable; connect_ip is what is pinged.
    let check = format!("{CHECK}, connect_ip = \"{REAL_V4}\", bindto = \"{CHECKER_V4}\"");
    let (up, reason) = pair.check("10.201.0.9", &check);
    assert!(up, "{reason}");
    // A source address this node does not have: the bind fails, the check is down.
    let check = format!("{CHECK}, bindto = \"10.201.0.7\"");
    let (up, reason) = pair.check(REAL_V4, &check);
    assert!(!up, "{reason}");
    assert!(reason.starts_with("bind to 10.201.0.7"), "{reason}");
}

#[test]
fn the_runner_removes_a_real_that_stops_answering_and_restores_it() {
    let pair = Pair::new();
    pair.ping_group_range("0 2147483647");
    let check = "connect_timeout = \"300ms\", retry = 0, warmup = \"0s\"";
    let text = config(REAL_V4, check);
    let real0 = pair.real.name().to_owned();
    pair.checker.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let health = Health::start(&load(&text), tx);
            let real: IpAddr = REAL_V4.parse().unwrap();
            let has = move |u: &Update| u.backends.iter().any(|b| b.addr == real);
            wait_for(&mut rx, |u| has(u)).await;
            link(&real0, "down");
            wait_for(&mut rx, |u| !has(u)).await;
            link(&real0, "up");
            wait_for(&mut rx, |u| has(u)).await;
            health.stop();
        });
    });
}

/// Sets the real server's link from outside its namespace (`ip -n`).
fn link(netns: &str, state: &str) {
    let ok = std::process::Command::new("ip")
        .args(["-n", netns, "link", "set", "real0", state])
        .status()
        .expect("ip")
        .success();
    assert!(ok, "ip -n {netns} link set real0 {state}");
}

async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Update>, pred: impl Fn(&Update) -> bool) {
    let wait = async {
        while let Some(u) = rx.recv().await {
            if pred(&u) {
                return;
            }
        }
        panic!("health runner stopped");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("no matching update within 10 s");
}
