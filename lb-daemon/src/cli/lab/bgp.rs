//! `lb-daemon lab --mode bgp`: the active-active tier, narrated. A router running BIRD 2
//! spreads a VIP over 3 LB nodes by ECMP; each node runs `lb-daemon run` announcing the VIP
//! by BGP through its own BIRD; DR backends answer the client directly. Shown: the routes
//! on the router, the spread of connections over the nodes, a node's link cut (BFD) and
//! its return with long-lived connections kept, a drain.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::signals;
use crate::dataplane::ForwardMode;
use crate::lab::bgp_tier::{
    check_tracked, Announce, DaemonSettings, Tier, TierService, Tracked, CLIENT_V4, VIP_V4,
};
use crate::lab::spread_summary;

/// Long-lived connections followed through the node's loss, its return and the drain.
const LONG_LIVED: usize = 30;
const FAST: Duration = Duration::from_secs(2);
const SLOW: Duration = Duration::from_secs(30);

fn say(msg: impl AsRef<str>) {
    println!("lab: {}", msg.as_ref());
}

pub fn run(backends: usize, pause: bool, announce: Announce) -> Result<()> {
    signals::install()?;
    let exe = std::env::current_exe().context("locating lb-daemon")?;
    let result = lab(&exe, backends, pause, announce);
    say("done: every namespace and process removed");
    result
}

fn lab(exe: &Path, n_backends: usize, pause: bool, announce: Announce) -> Result<()> {
    say(format!(
        "starting: a router (BIRD, AS 65000, ECMP with an L4 hash), LB nodes lb1..lb3 \
         (10.90.0.11-13, each lb-daemon + BIRD, AS 65001, BGP + BFD 3 x 100 ms), \
         {n_backends} DR backends, client {CLIENT_V4}, VIP {VIP_V4}:80"
    ));
    let mut tier = Tier::new(3, n_backends)?;
    tier.serve(&[VIP_V4], false)?;
    let settings = DaemonSettings {
        announce,
        ..DaemonSettings::default()
    };
    let service = TierService::new(VIP_V4, ForwardMode::Dr)?;
    tier.start_daemons(exe, &[service], &settings)?;
    tier.wait_serving(VIP_V4, SLOW)?;
    let names = tier.node_names();
    let sessions = tier.router_bird.sessions()?;
    say(format!(
        "the router's BGP sessions: {}",
        sessions
            .iter()
            .map(|s| format!("{} {}", s.name, s.info))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    say(format!(
        "every node announces the VIP; the router's route:\n{}",
        tier.router.ip(&["route", "show", VIP_V4])?.trim_end()
    ));

    let (flows, replies) = spread(&tier, 300)?;
    say(format!(
        "300 connections: new flows per node {} (data-plane counters); backends {}",
        per_node(&names, &flows),
        spread_summary(&replies)
    ));

    let mut conns = tier.open_tracked(VIP_V4, LONG_LIVED)?;
    let on = |i: usize, conns: &[Tracked]| conns.iter().filter(|c| c.node == i).count();
    say(format!(
        "{LONG_LIVED} long-lived connections: {} through lb1, {} through lb2, {} through lb3",
        on(0, &conns),
        on(1, &conns),
        on(2, &conns)
    ));
    say("cutting lb3's link (its switch port: only BFD can tell the router)");
    tier.cut(2)?;
    let took = tier.wait_nexthops(VIP_V4, &[0, 1], FAST)?;
    say(format!(
        "the router dropped lb3's next hop after {} ms",
        took.as_millis()
    ));
    report_survival("after lb3's loss", &mut conns, &names);
    let (flows, _) = spread(&tier, 300)?;
    say(format!(
        "300 connections over the two left: {}",
        per_node(&names, &flows)
    ));

    say("restoring lb3's link");
    tier.restore(2)?;
    let took = tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)?;
    say(format!(
        "lb3's BGP session is back and its route with it after {:.1} s",
        took.as_secs_f64()
    ));
    report_survival("after lb3's return", &mut conns, &names);

    if announce == Announce::Bgp {
        drain(&tier, exe, &mut conns, &names)?;
    }
    if pause {
        say(format!(
            "paused; router namespace {}, `lb-daemon status --socket {}`; Ctrl-C to stop",
            tier.router.name(),
            tier.socket(0).display()
        ));
        while signals::sleep(Duration::from_secs(3600)) {}
    }
    say("stopping the daemons, BIRDs and namespaces");
    Ok(())
}

/// `lb-daemon drain` on lb1: its route goes, its connections move with their backends,
/// no new flow reaches it; then `undrain`.
fn drain(tier: &Tier, exe: &Path, conns: &mut [Tracked], names: &[String]) -> Result<()> {
    say("`lb-daemon drain` on lb1");
    let mut drain = tier.drain_command(exe, 0, "drain")?;
    let took = tier.wait_nexthops(VIP_V4, &[1, 2], FAST)?;
    say(format!(
        "lb1 withdrew the VIP: gone from the router after {} ms",
        took.as_millis()
    ));
    report_survival("during the drain", conns, names);
    let (flows, _) = spread(tier, 300)?;
    say(format!(
        "300 new connections during the drain: {}",
        per_node(names, &flows)
    ));
    let out = tier.drain_command(exe, 0, "undrain")?.wait_with_output()?;
    say(format!(
        "`lb-daemon undrain`: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    ));
    let took = tier.wait_nexthops(VIP_V4, &[0, 1, 2], SLOW)?;
    say(format!(
        "lb1 announces again: back on the router after {} ms",
        took.as_millis()
    ));
    report_survival("after undrain", conns, names);
    // A drain command still waiting for its drain to finish is not needed any more.
    let _ = drain.kill();
    let _ = drain.wait();
    Ok(())
}

/// `n` connections; the new flows each node saw, and the replies.
fn spread(tier: &Tier, n: usize) -> Result<(Vec<u64>, Vec<crate::lab::Reply>)> {
    let before = tier.flows_per_node()?;
    let replies = tier.requests(VIP_V4, n)?;
    let after = tier.flows_per_node()?;
    Ok((
        after.iter().zip(&before).map(|(a, b)| a - b).collect(),
        replies,
    ))
}

fn per_node(names: &[String], flows: &[u64]) -> String {
    names
        .iter()
        .zip(flows)
        .map(|(n, f)| format!("{n} {f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report_survival(when: &str, conns: &mut [Tracked], names: &[String]) {
    let s = check_tracked(conns, names);
    if s.all_kept() {
        say(format!(
            "{when}: all {} long-lived connections still answered by their backends",
            s.total
        ));
    } else {
        say(format!(
            "{when}: {} of {} kept their backend; lost: {}",
            s.kept,
            s.total,
            s.lost.join("; ")
        ));
    }
}
