//! Which data plane the daemon drives: `dataplane = "xdp"` or `"ipvs"` as written;
//! `"auto"` XDP when the program loads and attaches on every interface the services
//! need, else IPVS (and IPVS straight away when a virtual server uses an IPVS-only
//! scheduler), logging why.

use anyhow::{anyhow, Context, Result};
use tracing::{debug, info, warn};

use super::plane::Plane;
use crate::{
    config::{self, Config},
    dataplane::{self, from_config::attach_interfaces, Capacity, Dataplane, LoadOptions},
    ipvs,
};

/// Whether `config` needs a forwarding plane: virtual servers, or a VRRP instance in
/// no-accept mode (the XDP program drops what no service takes of its VIPs' traffic).
pub fn needs_plane(config: &Config) -> bool {
    !config.virtual_servers.is_empty()
        || config
            .vrrp_instances
            .iter()
            .any(config::VrrpInstance::drops_vip_traffic)
}

/// The plane for `config`; None when it needs none ([`needs_plane`]: VRRP / health
/// checks only).
pub fn choose(config: &Config) -> Result<Option<Plane>> {
    if !needs_plane(config) {
        return Ok(None);
    }
    let plane = match config.global.dataplane {
        config::Dataplane::Xdp => Plane::Xdp(Box::new(load_xdp(config)?)),
        config::Dataplane::Ipvs => open_ipvs()?,
        config::Dataplane::Auto => auto(config)?,
    };
    info!(dataplane = plane.name(), "data plane chosen");
    Ok(Some(plane))
}

fn auto(config: &Config) -> Result<Plane> {
    if let Some(reason) = ipvs_only(config) {
        info!("dataplane = \"auto\": using IPVS, because {reason}");
        return open_ipvs();
    }
    match probe_xdp(config) {
        Ok(dp) => Ok(Plane::Xdp(Box::new(dp))),
        Err(xdp) => {
            // A verifier rejection carries the whole verifier log: its first line says
            // why, the rest goes to the debug log.
            let full = format!("{xdp:#}");
            let why = full.lines().next().unwrap_or_default();
            warn!("dataplane = \"auto\": XDP is not usable here ({why}); falling back to IPVS");
            debug!(error = %full, "why XDP is not usable");
            open_ipvs().map_err(|e| {
                anyhow!("no data plane: XDP is not usable ({why}) and IPVS is not either ({e:#})")
            })
        }
    }
}

/// Why this configuration needs IPVS whatever XDP can do.
pub fn ipvs_only(config: &Config) -> Option<String> {
    config
        .virtual_servers
        .iter()
        .find(|vs| !vs.lb_algo.is_maglev())
        .map(|vs| {
            format!(
                "virtual server {}:{} uses the IPVS scheduler `{}`",
                vs.address,
                vs.port,
                vs.lb_algo.name()
            )
        })
}

/// The interfaces XDP must run on: where each virtual server attaches
/// ([`attach_interfaces`]), each once.
pub fn needed_interfaces(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for vs in &config.virtual_servers {
        for i in attach_interfaces(config, vs) {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

fn load_xdp(config: &Config) -> Result<Dataplane> {
    let mut dp = Dataplane::load(&LoadOptions {
        pin_dir: config.global.bpf_pin_path.clone(),
        capacity: Capacity {
            conntrack: config.global.conntrack_size,
            nat: config.global.nat_table_size,
            ..Capacity::default()
        },
    })
    .context("loading the XDP data plane (root, BPF, a bpffs for bpf_pin_path)")?;
    dp.set_new_flow_limit(config.global.new_flow_limit)
        .context("setting new_flow_limit")?;
    if dp.adopted() {
        info!(pin_dir = %config.global.bpf_pin_path.display(), "re-using the pinned maps of a previous run");
    }
    Ok(dp)
}

/// Loads XDP and attaches it once on every needed interface (detached again: the owner
/// attaches when a service is served). Interfaces a previous daemon left a pinned link
/// on are taken over later, not probed.
fn probe_xdp(config: &Config) -> Result<Dataplane> {
    let mut dp = load_xdp(config)?;
    for ifname in needed_interfaces(config) {
        if dataplane::link_pin_path(dp.pin_dir(), &ifname).exists() {
            continue;
        }
        let attached = dp
            .attach(&ifname)
            .with_context(|| format!("attaching XDP to {ifname}"))
            .and_then(|_| {
                dp.detach(&ifname)
                    .with_context(|| format!("detaching XDP from {ifname}"))
            });
        if let Err(e) = attached {
            dp.unpin();
            return Err(e);
        }
    }
    Ok(dp)
}

fn open_ipvs() -> Result<Plane> {
    let ipvs = ipvs::open().context("opening the IPVS data plane")?;
    Ok(Plane::Ipvs(Box::new(ipvs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[global]
dataplane = "auto"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
priority = 100
virtual_ipaddress = ["10.0.0.1/32"]

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_algo = "ALGO"
[[virtual_server.real_server]]
address = "10.0.1.1"

[[virtual_server]]
address = "10.0.0.2"
port = 80
interfaces = ["eth1", "eth0"]
[[virtual_server.real_server]]
address = "10.0.1.1"
"#;

    fn config(algo: &str) -> Config {
        Config::from_str(&TEXT.replace("ALGO", algo), "lb.toml")
            .unwrap()
            .config
    }

    #[test]
    fn ipvs_only_schedulers_choose_ipvs_and_say_which_server() {
        assert_eq!(ipvs_only(&config("maglev")), None);
        assert_eq!(ipvs_only(&config("maglev_src")), None);
        let why = ipvs_only(&config("wlc")).unwrap();
        assert!(
            why.contains("10.0.0.1:80") && why.contains("`wlc`"),
            "{why}"
        );
    }

    #[test]
    fn needed_interfaces_are_the_instances_and_the_written_ones_once_each() {
        assert_eq!(needed_interfaces(&config("maglev")), ["eth0", "eth1"]);
    }

    #[test]
    fn bgp_services_need_the_bgp_interfaces() {
        let text = format!(
            "[bgp]\ninterfaces = [\"up0\", \"up1\"]\n{}\n[[virtual_server]]\naddress = \"198.51.100.10\"\n\
             port = 80\nannounce = \"bgp\"\n[[virtual_server.real_server]]\naddress = \"10.0.1.1\"\n",
            TEXT.replace("ALGO", "maglev")
        );
        let config = Config::from_str(&text, "lb.toml").unwrap().config;
        assert_eq!(needed_interfaces(&config), ["eth0", "eth1", "up0", "up1"]);
    }
}
