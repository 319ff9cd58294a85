//! `cargo xtask bench master-to-forwarding`: how long a VRRP MASTER transition waits for
//! its services to be forwarded, from the BecomeMaster request reaching the data-plane
//! owner to its reply (sent once every service of the instance is programmed; VRRP adds
//! the VIPs only then). 100 services x 10 backends on the XDP plane, in a namespace whose
//! 10 backend addresses sit behind a veth, so next hops are really resolved (ARP).
//!
//! Rows: a fresh owner after one second as BACKUP; MASTER again after the kernel's
//! neighbour table was flushed; MASTER again with everything warm.
//!
//! Only [`owner_api`] touches the owner: to measure the code before issue 11, swap that
//! module for the one in the comment at its end and run the same command there.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_daemon::{
    config::{self, Config},
    dataplane::{Capacity, Dataplane, LoadOptions, ServiceId},
    health::{runner::Update, verdict::DesiredBackend},
    netns::{veth, Netns},
};

use super::report;

const SERVICES: usize = 100;
const BACKENDS: usize = 10;
const RUNS: usize = 5;
const INSTANCE: &str = "VI_1";
/// Issue 13: a MASTER forwards its services within this (median).
const TARGET_MS: f64 = 50.0;

fn vip(i: usize) -> String {
    format!("10.241.{}.{}", i / 250, i % 250 + 1)
}

fn backend(j: usize) -> String {
    format!("10.240.0.{}", 11 + j)
}

/// 100 DR services on VIPs one VRRP instance holds, each with the same 10 reals.
fn config_text(pin_dir: &str) -> String {
    let vips: Vec<String> = (0..SERVICES)
        .map(|i| format!("\"{}/32\"", vip(i)))
        .collect();
    let mut text = format!(
        r#"
[global]
bpf_pin_path = "{pin_dir}"

[[vrrp_instance]]
name = "{INSTANCE}"
interface = "d0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = [{}]
"#,
        vips.join(", ")
    );
    for i in 0..SERVICES {
        text.push_str(&format!(
            "\n[[virtual_server]]\naddress = \"{}\"\nport = 80\nlb_kind = \"DR\"\ntable_size = 2039\n",
            vip(i)
        ));
        for j in 0..BACKENDS {
            text.push_str(&format!(
                "[[virtual_server.real_server]]\naddress = \"{}\"\n",
                backend(j)
            ));
        }
    }
    text
}

fn update(i: usize) -> Update {
    Update {
        service: ServiceId {
            vip: vip(i).parse().unwrap(),
            port: 80,
            protocol: config::Protocol::Tcp,
        },
        backends: (0..BACKENDS)
            .map(|j| DesiredBackend {
                addr: backend(j).parse().unwrap(),
                port: 80,
                weight: 1,
                sorry: false,
            })
            .collect(),
        quorum_up: true,
    }
}

/// The director (d0, 10.240.0.1/24) and the reals' namespace (r0, 10 addresses).
fn lab() -> Result<(Netns, Netns)> {
    let director = Netns::new("m2f")?;
    let reals = Netns::new("m2fr")?;
    veth(&director, "d0", &reals, "r0")?;
    director.sh("ip addr add 10.240.0.1/24 dev d0")?;
    let adds: Vec<String> = (0..BACKENDS)
        .map(|j| format!("ip addr add {}/24 dev r0", backend(j)))
        .collect();
    reals.sh(&adds.join(" && "))?;
    Ok((director, reals))
}

/// One fresh owner: (after start, after a neighbour flush, warm) in milliseconds.
fn one_run(director: &Netns, run: usize) -> Result<[f64; 3]> {
    let pin_dir = format!("/sys/fs/bpf/lb-bench-m2f-{}-{run}", std::process::id());
    let config = Config::from_str(&config_text(&pin_dir), "bench.toml")
        .map_err(|e| anyhow::anyhow!("bench configuration: {e:?}"))?
        .config;
    let flush = {
        let name = director.name().to_string();
        move || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &name, "ip", "neigh", "flush", "dev", "d0"])
                .status()
                .map(|_| ())
        }
    };
    director.run(move || -> Result<[f64; 3]> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let dp = Dataplane::load(&LoadOptions {
                pin_dir: pin_dir.into(),
                capacity: Capacity::default(),
            })
            .context("loading the XDP program (cargo xtask build-ebpf; LB_EBPF_OBJECT)")?;
            let owner = owner_api::Running::start(&config, dp)?;
            for i in 0..SERVICES {
                owner.health(update(i));
            }
            owner.status().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut times = [0.0; 3];
            for (k, t) in times.iter_mut().enumerate() {
                if k > 0 {
                    owner.left_master(INSTANCE);
                    owner.status().await;
                }
                if k == 1 {
                    flush()?;
                }
                let start = Instant::now();
                owner.become_master(INSTANCE).await?;
                *t = start.elapsed().as_secs_f64() * 1e3;
                check_forwarded(&owner.status().await)?;
            }
            owner.shutdown().await;
            Ok(times)
        })
    })
}

fn check_forwarded(status: &[lb_daemon::dataplane::ServiceStatus]) -> Result<()> {
    let full = status
        .iter()
        .filter(|s| s.backends.len() == BACKENDS)
        .count();
    if full != SERVICES {
        bail!("{full} of {SERVICES} services forwarded with all {BACKENDS} backends");
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run() -> Result<String> {
    let (director, _reals) = lab()?;
    let mut rows: [Vec<f64>; 3] = Default::default();
    for run in 0..RUNS {
        let times = one_run(&director, run)?;
        eprintln!("run {run}: {times:?} ms");
        for (row, t) in rows.iter_mut().zip(times) {
            row.push(t);
        }
    }
    let labels = [
        "fresh owner, BACKUP for 1 s",
        "MASTER again, neighbour table flushed",
        "MASTER again, warm",
    ];
    let mut out = format!(
        "## MASTER transition to forwarding (`cargo xtask bench master-to-forwarding`)\n\n\
         {SERVICES} services x {BACKENDS} backends, XDP, \
         from BecomeMaster reaching the owner to its reply (all services programmed); \
         median of {RUNS} runs. {}. Target (issue 13): under {TARGET_MS} ms.\n\n\
         | case | ms (median) | min | max | met |\n| --- | ---: | ---: | ---: | --- |\n",
        report::machine()
    );
    for (label, row) in labels.iter().zip(rows) {
        let (min, max) = (
            row.iter().copied().fold(f64::MAX, f64::min),
            row.iter().copied().fold(0.0, f64::max),
        );
        let median = median(row);
        let met = if median < TARGET_MS { "yes" } else { "**no**" };
        out.push_str(&format!(
            "| {label} | {median:.1} | {min:.1} | {max:.1} | {met} |\n"
        ));
    }
    Ok(out)
}

/// The data-plane owner's API as this benchmark drives it.
mod owner_api {
    use anyhow::{anyhow, Result};
    use lb_daemon::{
        config::Config,
        daemon::dataplane_owner::{Msg, Owner, OwnerHandle, Plane},
        dataplane::{Dataplane, ServiceStatus},
        health::runner::Update,
        vrrp::instance::GateRequest,
    };
    use tokio::sync::oneshot;

    pub struct Running(OwnerHandle);

    impl Running {
        pub fn start(config: &Config, dp: Dataplane) -> Result<Running> {
            let owner = Owner::new(config, Plane::Xdp(Box::new(dp)))?;
            Ok(Running(owner.spawn()))
        }

        pub fn health(&self, u: Update) {
            let _ = self.0.health.send(u);
        }

        pub async fn become_master(&self, instance: &str) -> Result<()> {
            let (reply, done) = oneshot::channel();
            let instance = instance.to_string();
            let _ = self
                .0
                .gate
                .send(GateRequest::BecomeMaster { instance, reply });
            done.await?.map_err(|e| anyhow!(e))
        }

        pub fn left_master(&self, instance: &str) {
            let instance = instance.to_string();
            let _ = self.0.gate.send(GateRequest::LeftMaster { instance });
        }

        /// Also a barrier: answered once everything sent before is handled.
        pub async fn status(&self) -> Vec<ServiceStatus> {
            let (reply, done) = oneshot::channel();
            let _ = self.0.msgs.send(Msg::Status { reply });
            done.await.unwrap_or_default()
        }

        pub async fn shutdown(self) {
            let (reply, done) = oneshot::channel();
            let _ = self.0.msgs.send(Msg::Shutdown { reply });
            let _ = done.await;
        }
    }

    // Before issue 11 (one channel, `run(rx)`), the same API reads:
    //
    // pub struct Running(tokio::sync::mpsc::UnboundedSender<Msg>);
    // start: let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    //        tokio::spawn(Owner::new(config, Plane::Xdp(Box::new(dp)))?.run(rx)); Running(tx)
    // health: self.0.send(Msg::Health(u))
    // become_master: self.0.send(Msg::BecomeMaster { instance, reply })
    // left_master: self.0.send(Msg::LeftMaster { instance })
    // status / shutdown: unchanged but `self.0.send(..)`.
}
