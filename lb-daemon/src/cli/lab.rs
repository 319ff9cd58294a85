//! `lb-daemon lab`: the data plane at work in network namespaces, narrated.

use std::time::Duration;

use anyhow::{Context, Result};

use super::signals;
use crate::{
    dataplane::ForwardMode,
    lab::{
        backend_addr, backend_name, spread_summary, Lab, LabOptions, CLIENT_ADDR, LB_ADDR, VIP,
        VIP_PORT,
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
    say(format!("starting: client {CLIENT_ADDR}, LB {LB_ADDR} with XDP on eth0, {backends} backends, {kind}"));
    let mut lab = Lab::start(LabOptions::new(mode, backends)).context("starting the lab")?;
    let attached = lab.dataplane().attached();
    say(format!(
        "XDP attached: {attached:?}; VIP {VIP}:{VIP_PORT}/TCP, Maglev M = 65537"
    ));
    for i in 0..backends {
        say(format!("  {} = {}", backend_name(i), backend_addr(i)));
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
