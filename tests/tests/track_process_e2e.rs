//! `vrrp_track_process`: a daemon in a namespace tracks a real process (a copy of
//! `sleep` under a name of its own, so nothing else on the host matches): with weight 0
//! the instance is in FAULT while the process is not running and MASTER while it is;
//! with a positive weight the priority rises while it runs; `reverse` counts the weight
//! the other way. Needs root; runs `target/debug/lb-daemon`.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_tests::{daemon_lab::status_json, single_node::SingleNode};

/// A process named `name` (its /proc/PID/comm), killed on drop.
struct Tracked(Child);

impl Tracked {
    fn start(binary: &Path) -> Tracked {
        Tracked(
            Command::new(binary)
                .arg("600")
                .stdout(Stdio::null())
                .spawn()
                .expect("starting the tracked process"),
        )
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(node: &SingleNode, process: &str) -> String {
    format!(
        r#"[global]
control_socket = "{socket}"

[[vrrp_track_process]]
name = "needed"
process = "{process}"

[[vrrp_track_process]]
name = "bonus"
process = "{process}"
weight = 30

[[vrrp_instance]]
name = "VI_1"
interface = "d0"
state = "MASTER"
virtual_router_id = 71
priority = 150
advert_int = 1
virtual_ipaddress = ["192.0.2.100/32"]
track_process = ["needed"]

[[vrrp_instance]]
name = "VI_2"
interface = "d0"
state = "BACKUP"
virtual_router_id = 72
priority = 100
advert_int = 1
virtual_ipaddress = ["192.0.2.101/32"]
track_process = ["bonus", {{ name = "needed", weight = 5, reverse = true }}]
"#,
        socket = node.socket().display()
    )
}

/// (state, effective priority) of each instance once `want` holds.
fn wait(
    node: &SingleNode,
    what: &str,
    want: impl Fn(&[(String, u64)]) -> bool,
) -> Vec<(String, u64)> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_json(&node.socket());
        let now: Vec<(String, u64)> = status["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| {
                        (
                            i["state"].as_str().unwrap_or("").to_string(),
                            i["priority_effective"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if now.len() == 2 && want(&now) {
            return now;
        }
        assert!(Instant::now() < end, "{what}: still {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_instance_follows_the_tracked_process() {
    let mut node = SingleNode::new("lb-tp");
    // A name no other process on the host has (comm holds 15 characters).
    let name = format!("lbtp{}", std::process::id() % 1_000_000);
    let binary = node.path(&name);
    std::fs::copy("/bin/sleep", &binary).unwrap();
    node.start(&config(&node, &name));

    // Not running: weight 0 means FAULT; VI_2 gets neither weight.
    let now = wait(&node, "FAULT without the process", |s| s[0].0 == "FAULT");
    assert_eq!(now[1].1, 100, "VI_2: no weight applies while it is down");

    // Running: VI_1 leaves FAULT; VI_2 gets +30 from "bonus" and, `reverse`, -5 from
    // "needed" (a positive weight reversed is subtracted while up, as keepalived).
    let process = Tracked::start(&binary);
    wait(&node, "MASTER once it runs", |s| {
        s[0].0 == "MASTER" && s[1].1 == 125
    });

    drop(process);
    wait(&node, "FAULT once it exits", |s| {
        s[0].0 == "FAULT" && s[1].1 == 100
    });
}
