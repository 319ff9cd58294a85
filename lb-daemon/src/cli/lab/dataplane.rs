//! `lb-daemon lab`: the data plane at work in network namespaces, narrated.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::signals;
use crate::{
    dataplane::ForwardMode,
    lab::{
        backend_addr, backend_name, spread_summary, Lab, LabOptions, Topology, CLIENT_ADDR,
        LB_ADDR, NAT_REAL_PORT, VIP, VIP_PORT,
    },
};

fn say(msg: impl AsRef<str>) {
    println!("lab: {}", msg.as_ref());
}

fn spread(lab: &Lab, n: usize) -> Result<String> {
    Ok(spread_summary(&lab.requests(n)?))
}

/// One narrated step of the demo.
type Step = fn(&mut Lab) -> Result<()>;

fn show_spread(lab: &mut Lab) -> Result<()> {
    say(format!("300 short connections: {}", spread(lab, 300)?));
    Ok(())
}

fn drain_keeps_long_lived_flow(lab: &mut Lab) -> Result<()> {
    let mut conn = lab.open()?;
    let held = conn.ask()?.backend;
    say(format!("a long-lived connection is served by {held}"));
    say(format!(
        "draining {held}: weight 0 (no new flows, established ones continue)"
    ));
    lab.update_service(|s| {
        for (i, b) in s.backends.iter_mut().enumerate() {
            if backend_name(i) == held {
                b.weight = 0;
            }
        }
    })?;
    say(format!("300 short connections: {}", spread(lab, 300)?));
    say(format!(
        "the long-lived connection is still served by {}",
        conn.ask()?.backend
    ));
    Ok(())
}

/// NAT: UDP too, what the reals see, and the translation table.
fn show_nat(lab: &mut Lab) -> Result<()> {
    let seen = lab.request(None)?.client_seen;
    say(format!("the reals see the client as {seen}"));
    let replies: Vec<_> = (0..30).map(|_| lab.udp_request()).collect::<Result<_>>()?;
    say(format!("30 UDP requests: {}", spread_summary(&replies)));
    let conns = lab.dataplane().nat_connections()?;
    say(format!("NAT table: {} connections, e.g.", conns.len()));
    for c in conns.iter().take(3) {
        say(format!(
            "  {}:{} -> VIP {}:{} => {}:{} -> real {}:{} ({})",
            c.client.0,
            c.client.1,
            c.vip.0,
            c.vip.1,
            c.source.0,
            c.source.1,
            c.real.0,
            c.real.1,
            crate::dataplane::nat::state_name(c.state)
        ));
    }
    Ok(())
}

fn restore_weights(lab: &mut Lab) -> Result<()> {
    say("restoring every weight to 1");
    lab.update_service(|s| s.backends.iter_mut().for_each(|b| b.weight = 1))?;
    show_spread(lab)
}

fn show_counters(lab: &mut Lab) -> Result<()> {
    for s in lab.dataplane().status()? {
        say(format!(
            "service {}: {} packets, {} bytes",
            s.id, s.traffic.packets, s.traffic.bytes
        ));
        for b in s.backends {
            say(format!(
                "  backend {}:{} weight {} slots {} packets {}",
                b.addr, b.port, b.weight, b.slots, b.traffic.packets
            ));
        }
    }
    Ok(())
}

pub fn run(mode: ForwardMode, backends: usize, pause: bool) -> Result<()> {
    signals::install()?;
    let kind = match mode {
        ForwardMode::Dr => "DR (MAC rewrite)",
        ForwardMode::Tun => "TUN (IP-in-IP, lb_decap on the backends)",
        ForwardMode::Nat { snat: None } => "NAT (reals behind the LB, their gateway)",
        ForwardMode::Nat { snat: Some(_) } => "full-NAT (SNAT to the LB's address)",
    };
    let opts = match mode {
        ForwardMode::Nat { snat } => LabOptions::nat(backends, Topology::TwoArm, snat.is_some()),
        _ => LabOptions::new(mode, backends),
    };
    let nat = mode.is_nat();
    let where_ = if nat {
        "XDP on eth0 (clients) and eth1 (reals)"
    } else {
        "XDP on eth0"
    };
    say(format!(
        "starting: client {CLIENT_ADDR}, LB {LB_ADDR} with {where_}, {backends} backends, {kind}"
    ));
    let mut lab = Lab::start(opts).context("starting the lab")?;
    let attached = lab.dataplane().attached();
    say(format!(
        "XDP attached: {attached:?}; VIP {VIP}:{VIP_PORT}/TCP, Maglev M = 65537"
    ));
    for i in 0..backends {
        let addr = if nat {
            format!("{}:{NAT_REAL_PORT}", lab.opts.addrs.nat_real(i))
        } else {
            backend_addr(i).to_string()
        };
        say(format!("  {} = {addr}", backend_name(i)));
    }
    if nat {
        show_nat(&mut lab)?;
    }
    let steps: [Step; 4] = [
        show_spread,
        drain_keeps_long_lived_flow,
        restore_weights,
        show_counters,
    ];
    for step in steps {
        if signals::stop_requested() {
            break;
        }
        step(&mut lab)?;
    }
    if pause && !signals::stop_requested() {
        say(format!(
            "paused; namespaces: client {}, lb {}; maps pinned in {}; Ctrl-C to stop",
            lab.client_ns().name(),
            lab.lb_ns().name(),
            lab.opts.pin_dir.display()
        ));
        while signals::sleep(Duration::from_secs(3600)) {}
    }
    say("stopping: removing namespaces and pinned maps");
    drop(lab);
    say("done");
    Ok(())
}
