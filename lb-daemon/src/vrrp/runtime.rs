//! The VRRP side of the daemon: instances built from the configuration, the tracking
//! that feeds them (scripts, interfaces, files), and sync groups that move them together.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    arbiter::{ArbiterCheck, ArbiterSpec},
    fsm::{self, FORCED_BY_GROUP},
    instance::{
        self, Command, GarpPolicy, InstanceHandle, InstanceSpec, InstanceStatus, PathSpec, Report,
        SplitBrainSpec,
    },
    notify::{Notifier, NotifyScripts, NotifyState, Subject},
    packet, process, routes,
    split_brain::Resolution,
    sync_group::{InFlight, MemberStatus, SyncGroup},
    track::{self, ScriptState, Tracked},
    types::{InstanceAuth, State, Version},
    vip::{Vip, VipManager},
    vmac::{self, Vmac},
};
use crate::alerts::{Alerts, Reporter};
use crate::{
    config::{self, Config},
    net::{
        link_watch::{self, LinkStates},
        neigh::Neighbours,
    },
    script::{self, Script},
};

/// How often tracking is re-evaluated when link events are unavailable (interfaces are
/// then read from /sys). With them, tracking wakes only on a change.
const TRACK_POLL: Duration = Duration::from_millis(100);

/// The running VRRP instances.
pub struct Vrrp {
    pub instances: Vec<InstanceHandle>,
    /// Each instance's tracking task, by instance name.
    tracking: HashMap<String, tokio::task::JoinHandle<()>>,
    /// The sync-group task.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Each `vrrp_script`'s runner, by script name.
    script_tasks: HashMap<String, tokio::task::JoinHandle<()>>,
    /// What new instances need: shared script states, the report channel, the gate.
    scripts: HashMap<String, watch::Receiver<bool>>,
    reports: mpsc::UnboundedSender<Report>,
    gate: Option<mpsc::UnboundedSender<instance::GateRequest>>,
    config: Config,
    /// Adds and removes the `[static]` addresses, routes and rules.
    statics: VipManager,
    /// E-mail alerts and notify FIFOs.
    alerts: Alerts,
    /// Each `vrrp_track_process`'s up/down state, and the task watching /proc.
    processes: HashMap<String, watch::Receiver<bool>>,
    process_task: Option<tokio::task::JoinHandle<()>>,
    /// The VMAC interfaces (`use_vmac`), by instance name.
    vmacs: HashMap<String, Vmac>,
    /// Tells the sync-group task about a reload.
    sync_control: mpsc::UnboundedSender<SyncControl>,
    /// The BFD sessions' states (`track_bfd`).
    bfd: watch::Receiver<crate::bfd::session::Snapshot>,
    /// Which links are up, from link events (None: not available, /sys is polled).
    links: Option<watch::Receiver<LinkStates>>,
    /// The `[static]` configuration in force, for the task that restores static
    /// addresses and routes when their link comes up.
    statics_now: watch::Sender<config::StaticNetwork>,
}

impl Vrrp {
    /// Starts every instance of `config`, with its tracking and sync groups.
    /// `adopt_masters`: instances a previous daemon (stopped with --keep-dataplane) left
    /// as MASTER; they take over at once, keeping their VIPs.
    pub async fn start(
        config: &Config,
        gate: Option<mpsc::UnboundedSender<instance::GateRequest>>,
        adopt_masters: &[String],
        alerts: Alerts,
        bfd: watch::Receiver<crate::bfd::session::Snapshot>,
    ) -> Result<Vrrp> {
        let neigh = Neighbours::new().context("opening rtnetlink")?;
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let (sync_control, sync_control_rx) = mpsc::unbounded_channel();
        let mut script_tasks = HashMap::new();
        let scripts = start_scripts(config, |_| true, &mut script_tasks);
        let (processes, process_task) = process::start(&config.vrrp_track_processes);
        let statics = VipManager::new().context("opening rtnetlink")?;
        // keepalived adds the static addresses, routes and rules before the instances.
        routes::apply_static(
            statics.handle(),
            &statics,
            &config::StaticNetwork::default(),
            &config.static_network,
        )
        .await;
        let links = link_watch::start().await;
        let (statics_now, statics_rx) = watch::channel(config.static_network.clone());
        let mut tasks = Vec::new();
        match &links {
            Some(rx) => tasks.push(tokio::spawn(routes::keep_statics(
                rx.clone(),
                statics_rx,
                statics.clone(),
            ))),
            None if !config.static_network.is_empty() => {
                warn!("no link events: static addresses and routes are not restored when their link comes back up")
            }
            None => {}
        }
        let mut vrrp = Vrrp {
            instances: Vec::new(),
            tracking: HashMap::new(),
            tasks,
            script_tasks,
            scripts,
            reports,
            gate,
            config: config.clone(),
            statics,
            alerts,
            processes,
            process_task,
            vmacs: HashMap::new(),
            sync_control,
            bfd,
            links,
            statics_now,
        };
        for inst in &config.vrrp_instances {
            vrrp.start_instance(inst, &neigh, adopt_masters.contains(&inst.name))
                .await?;
        }
        vrrp.tasks.push(tokio::spawn(sync_groups(
            config.clone(),
            vrrp.alerts.clone(),
            vrrp.members(),
            reports_rx,
            sync_control_rx,
        )));
        Ok(vrrp)
    }

    /// Every running instance's command and status channels, for the sync-group task.
    fn members(&self) -> Members {
        self.instances
            .iter()
            .map(|h| (h.name.clone(), (h.commands.clone(), h.status.clone())))
            .collect()
    }

    async fn start_instance(
        &mut self,
        inst: &config::VrrpInstance,
        neigh: &Neighbours,
        adopt_master: bool,
    ) -> Result<()> {
        if let Some(name) = &inst.use_vmac {
            if !self.vmacs.contains_key(&inst.name) {
                let family = match inst.family {
                    config::AddressFamily::V4 => vmac::VmacFamily::V4,
                    // Adverts leave the VMAC from their usual source (vmac_xmit_base:
                    // from the base, where it already is).
                    config::AddressFamily::V6 => vmac::VmacFamily::V6 {
                        advert_source: match inst.vmac_xmit_base {
                            true => None,
                            false => match primary_address(inst, neigh).await? {
                                IpAddr::V6(a) => Some(a),
                                IpAddr::V4(_) => None,
                            },
                        },
                    },
                };
                let made = vmac::ensure(
                    self.statics.handle(),
                    name,
                    &inst.interface,
                    inst.virtual_router_id,
                    family,
                )
                .await
                .with_context(|| format!("instance {}: use_vmac", inst.name))?;
                self.vmacs.insert(inst.name.clone(), made);
            }
        }
        let mut spec = instance_spec(&self.config, inst, neigh).await?;
        spec.report = self.report_for(&inst.notify);
        spec.gate = self.gate.clone();
        spec.adopt_master = adopt_master;
        let handle = instance::spawn(spec, self.reports.clone())?;
        self.track(inst, handle.commands.clone());
        self.instances.push(handle);
        Ok(())
    }

    /// How an instance with these settings reports its transitions.
    fn report_for(&self, notify: &config::Notify) -> Option<Reporter> {
        report_for(&self.alerts, notify)
    }

    /// (Re)starts the tracking of `inst`, replacing the one it had.
    fn track(&mut self, inst: &config::VrrpInstance, commands: mpsc::UnboundedSender<Command>) {
        let task = tokio::spawn(track_instance(
            inst.clone(),
            self.scripts.clone(),
            self.processes.clone(),
            self.bfd.clone(),
            self.links.clone(),
            commands,
        ));
        if let Some(old) = self.tracking.insert(inst.name.clone(), task) {
            old.abort();
        }
    }

    /// Applies a changed instance to its running task (see [`same_socket`]).
    async fn reconfigure_instance(
        &mut self,
        inst: &config::VrrpInstance,
        neigh: &Neighbours,
    ) -> Result<()> {
        let mut spec = instance_spec(&self.config, inst, neigh).await?;
        spec.report = self.report_for(&inst.notify);
        let Some(commands) = self
            .instances
            .iter()
            .find(|h| h.name == inst.name)
            .map(|h| h.commands.clone())
        else {
            return Err(anyhow!("instance {} is not running", inst.name));
        };
        commands
            .send(Command::Reconfigure(Box::new(spec)))
            .map_err(|_| anyhow!("instance {} has stopped", inst.name))?;
        self.track(inst, commands);
        Ok(())
    }

    /// Restarts the runners of the scripts that were added or changed, stops the removed
    /// ones; an unchanged script keeps its runner and its up/down state. Returns the
    /// names of the scripts (re)started or stopped.
    fn apply_scripts(&mut self, old: &Config, new: &Config) -> Vec<String> {
        let changed = |name: &str| {
            let find = |c: &Config| c.vrrp_scripts.iter().find(|s| s.name == name).cloned();
            find(old) != find(new) || !self.script_tasks.contains_key(name)
        };
        let restart: Vec<String> = new
            .vrrp_scripts
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| changed(n))
            .collect();
        let mut touched: Vec<String> = self
            .script_tasks
            .keys()
            .filter(|n| restart.contains(n) || !new.vrrp_scripts.iter().any(|s| &s.name == *n))
            .cloned()
            .collect();
        for name in &touched {
            if let Some(task) = self.script_tasks.remove(name) {
                task.abort();
            }
            self.scripts.remove(name);
        }
        let started = start_scripts(
            new,
            |n| restart.iter().any(|r| r == n),
            &mut self.script_tasks,
        );
        touched.extend(started.keys().cloned());
        self.scripts.extend(started);
        touched.sort();
        touched.dedup();
        touched
    }

    /// Stops one instance gracefully (priority 0, VIPs removed).
    async fn stop_instance(&mut self, name: &str) {
        if let Some(t) = self.tracking.remove(name) {
            t.abort();
        }
        if let Some(pos) = self.instances.iter().position(|h| h.name == name) {
            let h = self.instances.remove(pos);
            let _ = h.commands.send(Command::Shutdown);
            if tokio::time::timeout(Duration::from_secs(5), h.task)
                .await
                .is_err()
            {
                warn!(instance = %name, "instance did not stop within 5s");
            }
        }
        self.remove_vmac(name).await;
    }

    /// Removes `instance`'s VMAC interface; the base's saved ARP settings pass to another
    /// VMAC on the same base, or are put back by the last one.
    async fn remove_vmac(&mut self, instance: &str) {
        let Some(mut vmac) = self.vmacs.remove(instance) else {
            return;
        };
        let other = self.vmacs.values_mut().find(|v| v.base == vmac.base);
        let still_used = other.is_some();
        if let Some(other) = other {
            other.give_saved(vmac.take_saved());
        }
        vmac.remove(self.statics.handle(), still_used).await;
    }

    /// Applies a reloaded configuration: unchanged instances keep running untouched (no
    /// VIP flap, no failover); changed ones take their new priority, interval, tracking,
    /// VIPs, peers, notify scripts in place, keeping their state ([`same_socket`]); ones
    /// whose socket changes restart; removed ones stop gracefully; new ones start.
    /// Changed `vrrp_script`s get new runners. Sync groups change in place too: an
    /// unchanged group keeps its state, a group formed or re-formed around running
    /// instances takes them to the group state of their current states (keepalived's
    /// reload), and an instance that joins or leaves a group is reconfigured in place.
    /// Returns whether anything changed, and a summary.
    pub async fn apply(&mut self, new: &Config) -> Result<(bool, String), String> {
        let old = self.config.clone();
        let old = &old;
        let groups_changed = new.vrrp_sync_groups != old.vrrp_sync_groups;
        let changed: Vec<String> = old
            .vrrp_instances
            .iter()
            .filter(|o| new.vrrp_instance(&o.name) != Some(o) || regrouped(old, new, o))
            .map(|o| o.name.clone())
            .chain(
                new.vrrp_instances
                    .iter()
                    .filter(|n| old.vrrp_instance(&n.name).is_none())
                    .map(|n| n.name.clone()),
            )
            .collect();
        if new.static_network != old.static_network {
            info!("reload: applying the [static] changes");
            self.statics_now.send_replace(new.static_network.clone());
            routes::apply_static(
                self.statics.handle(),
                &self.statics,
                &old.static_network,
                &new.static_network,
            )
            .await;
        }
        let scripts_changed = new.vrrp_scripts != old.vrrp_scripts;
        let processes_changed = new.vrrp_track_processes != old.vrrp_track_processes;
        if processes_changed {
            info!("reload: restarting the process tracking");
            if let Some(t) = self.process_task.take() {
                t.abort();
            }
            (self.processes, self.process_task) = process::start(&new.vrrp_track_processes);
        }
        if changed.is_empty() && !scripts_changed && !processes_changed && !groups_changed {
            self.config = new.clone();
            return Ok((false, "VRRP instances unchanged".into()));
        }
        let neigh = Neighbours::new().map_err(|e| e.to_string())?;
        let (in_place, restart): (Vec<String>, Vec<String>) =
            changed.iter().cloned().partition(|name| {
                match (old.vrrp_instance(name), new.vrrp_instance(name)) {
                    (Some(o), Some(n)) => same_socket(o, n),
                    _ => false,
                }
            });
        for name in &restart {
            if old.vrrp_instance(name).is_some() {
                info!(instance = %name, "reload: stopping the old instance");
                self.stop_instance(name).await;
            }
        }
        self.config = new.clone();
        let scripts = self.apply_scripts(old, new);
        for name in &in_place {
            if let Some(inst) = new.vrrp_instance(name) {
                info!(instance = %name, "reload: applying the changes in place");
                self.reconfigure_instance(inst, &neigh)
                    .await
                    .map_err(|e| format!("instance {name}: {e:#}"))?;
            }
        }
        let mut started = Vec::new();
        for name in &restart {
            if let Some(inst) = new.vrrp_instance(name) {
                info!(instance = %name, "reload: starting the instance");
                self.start_instance(inst, &neigh, false)
                    .await
                    .map_err(|e| format!("instance {name}: {e:#}"))?;
                started.push(name.clone());
            }
        }
        // The instances that kept running learn their new neighbours' VRIDs, and those
        // tracking a restarted script follow its new runner.
        for inst in &new.vrrp_instances {
            let Some(h) = self.instances.iter().find(|h| h.name == inst.name) else {
                continue;
            };
            let commands = h.commands.clone();
            let _ = commands.send(Command::SiblingVrids(sibling_vrids(new, inst)));
            let follows = inst.track_script.iter().any(|t| scripts.contains(&t.name))
                || (processes_changed && !inst.track_process.is_empty());
            if follows && !changed.contains(&inst.name) {
                self.track(inst, commands);
            }
        }
        // Last, once every member runs: the groups learn the new members' channels and
        // the formed groups settle.
        let _ = self.sync_control.send(SyncControl::Reload {
            config: new.clone(),
            members: self.members(),
        });
        let groups: Vec<&str> = new
            .vrrp_sync_groups
            .iter()
            .filter(|g| !old.vrrp_sync_groups.contains(g))
            .map(|g| g.name.as_str())
            .chain(
                old.vrrp_sync_groups
                    .iter()
                    .filter(|g| new.vrrp_sync_groups.iter().all(|n| n.name != g.name))
                    .map(|g| g.name.as_str()),
            )
            .collect();
        Ok((
            true,
            format!(
                "VRRP instances changed in place: {in_place:?}; restarted or started: {started:?}; scripts restarted: {scripts:?}; sync groups changed: {groups:?}; the others kept their state"
            ),
        ))
    }

    /// Live status of every instance.
    pub fn status_receivers(&self) -> Vec<watch::Receiver<InstanceStatus>> {
        self.instances.iter().map(|h| h.status.clone()).collect()
    }

    pub fn statuses(&self) -> Vec<InstanceStatus> {
        self.instances
            .iter()
            .map(|h| h.status.borrow().clone())
            .collect()
    }

    /// Stop for an upgrade: the tasks end without a priority-0 advert and the VIPs stay,
    /// so a new daemon started within the master-down interval takes over with no
    /// failover. Returns the instances that were MASTER.
    pub fn abandon(self) -> Vec<String> {
        let masters = self
            .instances
            .iter()
            .filter(|h| h.status.borrow().state == State::Master)
            .map(|h| h.name.clone())
            .collect();
        for h in &self.instances {
            h.task.abort();
        }
        for t in self
            .tracking
            .values()
            .chain(&self.tasks)
            .chain(self.script_tasks.values())
            .chain(&self.process_task)
        {
            t.abort();
        }
        masters
    }

    /// Graceful stop: every instance sends priority 0 and gives its VIPs up; then the
    /// `[static]` rules, routes and addresses go (keepalived's `stop_vrrp`).
    pub async fn shutdown(mut self) {
        for h in &self.instances {
            let _ = h.commands.send(Command::Shutdown);
        }
        for h in std::mem::take(&mut self.instances) {
            if tokio::time::timeout(Duration::from_secs(5), h.task)
                .await
                .is_err()
            {
                warn!(instance = %h.name, "instance did not stop within 5s");
            }
        }
        let names: Vec<String> = self.vmacs.keys().cloned().collect();
        for name in names {
            self.remove_vmac(&name).await;
        }
        // Nothing is restored any more: the static state goes now.
        self.statics_now
            .send_replace(config::StaticNetwork::default());
        routes::apply_static(
            self.statics.handle(),
            &self.statics,
            &self.config.static_network,
            &config::StaticNetwork::default(),
        )
        .await;
        for t in self
            .tracking
            .values()
            .chain(&self.tasks)
            .chain(self.script_tasks.values())
            .chain(&self.process_task)
        {
            t.abort();
        }
    }
}

/// The source address of adverts: `unicast_src_ip`, else the interface's primary
/// address of the family (IPv6: its link-local address, as RFC 5798 requires).
async fn primary_address(inst: &config::VrrpInstance, neigh: &Neighbours) -> Result<IpAddr> {
    source_address(inst, &inst.interface, inst.unicast_src_ip, neigh).await
}

/// The advert source on `interface`: `unicast_src_ip`, else the interface's first
/// address of the instance's family (IPv6: link-local).
async fn source_address(
    inst: &config::VrrpInstance,
    interface: &str,
    unicast_src_ip: Option<IpAddr>,
    neigh: &Neighbours,
) -> Result<IpAddr> {
    if let Some(src) = unicast_src_ip {
        return Ok(src);
    }
    let link = neigh
        .link(interface)
        .await
        .with_context(|| format!("instance {}: interface {}", inst.name, interface))?;
    let found = match inst.family {
        config::AddressFamily::V4 => link.ipv4.first().copied().map(IpAddr::V4),
        config::AddressFamily::V6 => link
            .ipv6
            .iter()
            .copied()
            .find(is_link_local)
            .map(IpAddr::V6),
    };
    found.ok_or_else(|| {
        anyhow!(
            "instance {}: interface {} has no {} address to send adverts from; add one or set unicast_src_ip",
            inst.name,
            interface,
            match inst.family {
                config::AddressFamily::V4 => "IPv4",
                config::AddressFamily::V6 => "IPv6 link-local",
            }
        )
    })
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

async fn instance_spec(
    config: &Config,
    inst: &config::VrrpInstance,
    neigh: &Neighbours,
) -> Result<InstanceSpec> {
    let primary = primary_address(inst, neigh).await?;
    let mut paths = Vec::new();
    for p in &inst.heartbeat_paths {
        paths.push(PathSpec {
            interface: p.interface.clone(),
            src: source_address(inst, &p.interface, p.unicast_src_ip, neigh).await?,
            multicast_group: p.unicast_peers.is_empty().then_some(inst.mcast_group),
            unicast_peers: p.unicast_peers.clone(),
        });
    }
    let version = match inst.version {
        config::VrrpVersion::V2 => Version::V2,
        config::VrrpVersion::V3 => Version::V3,
    };
    let g = &config.global;
    let interval = match inst.family {
        config::AddressFamily::V4 => g.vrrp_garp_interval,
        config::AddressFamily::V6 => g.vrrp_gna_interval,
    };
    Ok(InstanceSpec {
        fsm: fsm::Params {
            name: inst.name.clone(),
            version,
            vrid: inst.virtual_router_id,
            priority: inst.priority,
            advert_interval_cs: (inst.advert_int.as_millis() / 10) as u16,
            initial_state: match inst.state {
                config::InitialState::Master => State::Master,
                config::InitialState::Backup => State::Backup,
            },
            preempt: !inst.nopreempt,
            preempt_delay: inst.preempt_delay,
            primary_address: primary,
            in_sync_group: config.sync_group_of(&inst.name).is_some(),
            strict: inst.strict_mode,
        },
        // use_vmac: adverts go out of the VMAC (its MAC as source), unless vmac_xmit_base.
        interface: match (&inst.use_vmac, inst.vmac_xmit_base) {
            (Some(vmac), false) => vmac.clone(),
            _ => inst.interface.clone(),
        },
        vips: vips(inst, &inst.virtual_ipaddress),
        excluded: vips(inst, &inst.virtual_ipaddress_excluded),
        routes: inst.virtual_routes.clone(),
        rules: inst.virtual_rules.clone(),
        auth: match &inst.authentication {
            None => InstanceAuth::None,
            Some(a) => {
                let key = packet::auth_field(&a.auth_pass).0;
                match a.auth_type {
                    config::AuthType::Pass => InstanceAuth::Pass(key),
                    config::AuthType::Ah => InstanceAuth::Ah(key),
                }
            }
        },
        multicast_group: (!inst.is_unicast()).then_some(inst.mcast_group),
        unicast_peers: inst.unicast_peers.clone(),
        garp: GarpPolicy {
            delay: inst.garp_master_delay,
            repeat: inst.garp_master_repeat,
            refresh: inst.garp_master_refresh,
            interval,
        },
        notify: NotifyScripts {
            master_rx_lower_pri: inst.notify_master_rx_lower_pri.clone(),
            ..notify_scripts(&inst.notify)
        },
        report: None,
        script_timeout: g.script_timeout,
        script_user: script_user(config),
        sibling_vrids: sibling_vrids(config, inst),
        gate: None,
        adopt_master: false,
        split_brain: inst.split_brain.as_ref().map(|c| SplitBrainSpec {
            interval: c.interval,
            resolution: match c.resolution {
                config::SplitBrainResolution::StepDown => Resolution::StepDown,
                config::SplitBrainResolution::Alert => Resolution::Alert,
            },
            notify: c.notify.clone(),
        }),
        arbiter: config.arbiter_of(inst).map(|a| ArbiterSpec {
            address: a.address,
            check: match a.check {
                config::ArbiterCheck::Icmp => ArbiterCheck::Icmp,
                config::ArbiterCheck::Tcp { port } => ArbiterCheck::Tcp(port),
            },
            interval: a.interval,
            timeout: a.timeout,
            rise: a.rise,
            fall: a.fall,
        }),
        paths,
    })
}

fn vips(inst: &config::VrrpInstance, addrs: &[config::VirtualAddress]) -> Vec<Vip> {
    addrs
        .iter()
        .map(|v| Vip {
            addr: v.address,
            prefix: v.prefix_len,
            // use_vmac: the VIPs live on the VMAC, so clients learn its MAC for them.
            dev: v
                .dev
                .clone()
                .or_else(|| inst.use_vmac.clone())
                .unwrap_or_else(|| inst.interface.clone()),
            label: v.label.clone(),
        })
        .collect()
}

/// The user scripts run as: `script_user`, else keepalived's default — the
/// `keepalived_script` user when it exists, else the daemon's own user.
pub(crate) fn script_user(config: &Config) -> Option<String> {
    const KEEPALIVED_SCRIPT: &str = "keepalived_script";
    config.global.script_user.clone().or_else(|| {
        nix::unistd::User::from_name(KEEPALIVED_SCRIPT)
            .ok()
            .flatten()
            .map(|_| KEEPALIVED_SCRIPT.to_string())
    })
}

/// VRIDs of the other instances on the same interface and family.
fn sibling_vrids(config: &Config, inst: &config::VrrpInstance) -> Vec<u8> {
    config
        .vrrp_instances
        .iter()
        .filter(|o| o.name != inst.name && o.interface == inst.interface && o.family == inst.family)
        .map(|o| o.virtual_router_id)
        .collect()
}

fn notify_scripts(n: &config::Notify) -> NotifyScripts {
    NotifyScripts {
        master: n.master.clone(),
        backup: n.backup.clone(),
        fault: n.fault.clone(),
        stop: n.stop.clone(),
        generic: n.any.clone(),
        master_rx_lower_pri: None,
    }
}

/// Whether an instance's place in the sync groups changed: its group (by name and
/// members) or the arbiter it inherits. Its settings are unchanged, but its FSM's
/// `in_sync_group` and arbiter are, so it is reconfigured in place.
fn regrouped(old: &Config, new: &Config, inst: &config::VrrpInstance) -> bool {
    let place = |c: &Config| {
        (
            c.sync_group_of(&inst.name)
                .map(|g| (g.name.clone(), g.group.clone())),
            c.vrrp_instance(&inst.name)
                .and_then(|i| c.arbiter_of(i))
                .cloned(),
        )
    };
    place(old) != place(new)
}

/// Whether a changed instance keeps its socket, so the change applies in place: same
/// interface, VRID, version, family, source address, multicast group or unicast, and
/// whether the authentication is IPsec AH.
fn same_socket(old: &config::VrrpInstance, new: &config::VrrpInstance) -> bool {
    let identity = |i: &config::VrrpInstance| {
        (
            i.interface.clone(),
            i.virtual_router_id,
            i.version,
            i.family,
            i.unicast_src_ip,
            i.is_unicast(),
            i.mcast_group,
            // AH adverts come through an IP protocol 51 socket.
            i.authentication
                .as_ref()
                .is_some_and(|a| a.auth_type == config::AuthType::Ah),
            i.heartbeat_paths.clone(),
            (i.use_vmac.clone(), i.vmac_xmit_base),
        )
    };
    identity(old) == identity(new)
}

/// Each `vrrp_script` runs once, whatever the number of instances tracking it (as in
/// keepalived); its up/down state is shared through a watch channel. Only the scripts
/// `wanted` names.
fn start_scripts(
    config: &Config,
    wanted: impl Fn(&str) -> bool,
    tasks: &mut HashMap<String, tokio::task::JoinHandle<()>>,
) -> HashMap<String, watch::Receiver<bool>> {
    let mut out = HashMap::new();
    for s in config.vrrp_scripts.iter().filter(|s| wanted(&s.name)) {
        let used = config
            .vrrp_instances
            .iter()
            .any(|i| i.track_script.iter().any(|t| t.name == s.name));
        if !used {
            continue;
        }
        let (tx, rx) = watch::channel(true);
        let job = Script {
            command: s.script.clone(),
            args: Vec::new(),
            timeout: s.timeout,
            user: s.user.clone().or_else(|| script_user(config)),
        };
        tasks.insert(
            s.name.clone(),
            tokio::spawn(run_vrrp_script(
                s.name.clone(),
                job,
                s.interval,
                ScriptState::new(s.rise, s.fall, false),
                tx,
            )),
        );
        out.insert(s.name.clone(), rx);
    }
    out
}

async fn run_vrrp_script(
    name: String,
    job: Script,
    interval: Duration,
    mut state: ScriptState,
    tx: watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = script::run(&job).await;
        if let Some(up) = state.record(outcome.success()) {
            info!(script = %name, up, outcome = %outcome.describe(), "vrrp_script changed state");
            let _ = tx.send(up);
        }
    }
}

/// Whether a link is up, from /sys (the daemon's network namespace view).
fn link_up(ifname: &str) -> bool {
    let base = PathBuf::from("/sys/class/net").join(ifname);
    let oper = std::fs::read_to_string(base.join("operstate")).unwrap_or_default();
    let flags = std::fs::read_to_string(base.join("flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let admin_up = flags & libc::IFF_UP as u32 != 0;
    admin_up && matches!(oper.trim(), "up" | "unknown")
}

/// Re-evaluates an instance's tracking and tells the instance when the verdict changes.
async fn track_instance(
    inst: config::VrrpInstance,
    scripts: HashMap<String, watch::Receiver<bool>>,
    processes: HashMap<String, watch::Receiver<bool>>,
    mut bfd: watch::Receiver<crate::bfd::session::Snapshot>,
    mut links: Option<watch::Receiver<LinkStates>>,
    commands: mpsc::UnboundedSender<Command>,
) {
    // Only what this instance tracks wakes it.
    let mut scripts: Vec<(String, watch::Receiver<bool>)> = inst
        .track_script
        .iter()
        .filter_map(|t| scripts.get(&t.name).map(|rx| (t.name.clone(), rx.clone())))
        .collect();
    let mut processes: Vec<(String, watch::Receiver<bool>)> = inst
        .track_process
        .iter()
        .filter_map(|t| {
            processes
                .get(&t.name)
                .map(|rx| (t.name.clone(), rx.clone()))
        })
        .collect();
    let is_up = |links: &Option<watch::Receiver<LinkStates>>, name: &str| match links {
        Some(rx) => rx.borrow().get(name).copied().unwrap_or(false),
        None => link_up(name),
    };
    // The first verdict always goes out: after a reload the instance may still carry the
    // fault or the weights of the tracking this task replaces.
    let mut last: Option<(Vec<String>, u8)> = None;
    // Watched (inotify), not re-read on every poll.
    let mut files: Vec<_> = inst
        .track_file
        .iter()
        .map(|t| (t, crate::track_file::watch(t.path.clone())))
        .collect();
    // Each tracked session's last state, for the fast takeover (docs/bfd.md).
    let mut bfd_up: HashMap<String, bool> = HashMap::new();
    loop {
        let mut tracked = vec![Tracked::Binary {
            // keepalived tracks the instance's own interface (weight 0: down => FAULT).
            name: inst.interface.clone(),
            up: is_up(&links, &inst.interface),
            weight: 0,
        }];
        for t in &inst.track_interface {
            let up = is_up(&links, &t.name);
            tracked.push(Tracked::binary(&t.name, up, t.weight, t.reverse));
        }
        for t in &inst.track_script {
            let up = state_of(&scripts, &t.name);
            tracked.push(Tracked::binary(&t.name, up, t.weight, t.reverse));
        }
        for t in &inst.track_process {
            let up = state_of(&processes, &t.name);
            let name = format!("process {}", t.name);
            tracked.push(Tracked::binary(&name, up, t.weight, t.reverse));
        }
        for (t, value) in &files {
            tracked.push(Tracked::File {
                name: t.path.display().to_string(),
                value: *value.borrow(),
                weight: t.weight,
                reverse: t.reverse,
            });
        }
        {
            let snapshot = bfd.borrow_and_update();
            for t in &inst.track_bfd {
                let session = crate::bfd::runtime::session(&snapshot, &t.name);
                let up = session.is_some_and(|s| s.state == crate::bfd::fsm::State::Up);
                let name = format!("bfd {}", t.name);
                tracked.push(crate::bfd::track::tracked(&name, up, t.weight, t.reverse));
                let was_up = bfd_up.insert(t.name.clone(), up).unwrap_or(false);
                if let (true, false, Some(s)) = (was_up, up, session) {
                    // The instance decides (it knows whether it is BACKUP and who is MASTER).
                    let _ = commands.send(Command::PeerDown(s.neighbor));
                }
            }
        }
        let verdict = track::verdict(&tracked);
        let priority = fsm::effective_priority(inst.priority, verdict.weight);
        let now = (verdict.faults.clone(), priority);
        if last.as_ref() != Some(&now) {
            if commands
                .send(Command::Tracking {
                    faults: verdict.faults,
                    priority,
                })
                .is_err()
            {
                return;
            }
            last = Some(now);
        }
        // Wait for a change of anything the verdict reads (the polling fallback without
        // link events); a source whose sender is gone never wakes it again.
        let mut wakers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> =
            Vec::new();
        match links.as_mut() {
            Some(rx) => wakers.push(Box::pin(changed(rx))),
            None => wakers.push(Box::pin(tokio::time::sleep(TRACK_POLL))),
        }
        if !inst.track_bfd.is_empty() {
            wakers.push(Box::pin(changed(&mut bfd)));
        }
        for (_, rx) in scripts.iter_mut().chain(processes.iter_mut()) {
            wakers.push(Box::pin(changed(rx)));
        }
        for (_, rx) in &mut files {
            wakers.push(Box::pin(changed(rx)));
        }
        futures::future::select_all(wakers).await;
    }
}

/// A tracked script's or process's state: its watcher's verdict, up while it has none.
fn state_of(watched: &[(String, watch::Receiver<bool>)], name: &str) -> bool {
    watched
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, rx)| *rx.borrow())
        .unwrap_or(true)
}

/// Resolves when `rx` changes; never when its sender is gone (nothing will change).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

type Members = HashMap<
    String,
    (
        mpsc::UnboundedSender<Command>,
        watch::Receiver<InstanceStatus>,
    ),
>;

fn report_for(alerts: &Alerts, notify: &config::Notify) -> Option<Reporter> {
    Some(Reporter {
        alerts: alerts.clone(),
        smtp_alert: notify.smtp_alert,
    })
}

/// What the sync-group task is told by [`Vrrp::apply`].
enum SyncControl {
    /// The reloaded configuration, and every running instance's channels (restarted
    /// instances have new ones).
    Reload { config: Config, members: Members },
}

/// A running sync group: its membership and state, its notifier, and the configuration
/// they came from (to tell on a reload what to keep).
struct GroupRun {
    group: SyncGroup,
    notifier: Notifier,
    config: config::VrrpSyncGroup,
    /// The notifier's settings: the group's notify block, the script timeout and user.
    notify_settings: (config::Notify, Duration, Option<String>),
}

/// The groups of `config`, reusing from `old` what did not change: a group with the same
/// name and members keeps its state, one whose notify settings are also the same keeps
/// its notifier. Returns the groups and the names of those formed or re-formed (new, or
/// new members), which must be reconciled ([`SyncGroup::reconcile`]).
fn regroup(
    config: &Config,
    alerts: &Alerts,
    mut old: Vec<GroupRun>,
) -> (Vec<GroupRun>, Vec<String>) {
    let mut formed = Vec::new();
    let runs = config
        .vrrp_sync_groups
        .iter()
        .map(|g| {
            let settings = (
                g.notify.clone(),
                config.global.script_timeout,
                script_user(config),
            );
            let kept = old
                .iter()
                .position(|r| r.config.name == g.name && r.config.group == g.group)
                .map(|i| old.swap_remove(i));
            let (group, notifier) = match kept {
                Some(r) if r.notify_settings == settings => (r.group, r.notifier),
                kept => {
                    let group = match kept {
                        Some(r) => r.group,
                        None => {
                            formed.push(g.name.clone());
                            SyncGroup::new(&g.name, g.group.clone())
                        }
                    };
                    let notifier = Notifier::spawn(
                        Subject::Group,
                        &g.name,
                        notify_scripts(&g.notify),
                        settings.1,
                        settings.2.clone(),
                        report_for(alerts, &g.notify),
                    );
                    (group, notifier)
                }
            };
            GroupRun {
                group,
                notifier,
                config: g.clone(),
                notify_settings: settings,
            }
        })
        .collect();
    (runs, formed)
}

/// The instances in FAULT without a fault of their own (a group put them there) that are
/// in no group now: nothing else would ever take them out of FAULT.
fn freed(groups: &[GroupRun], statuses: &HashMap<String, InstanceStatus>) -> Vec<String> {
    let mut out: Vec<String> = statuses
        .iter()
        .filter(|(name, s)| {
            s.state == State::Fault && !s.faulty && !groups.iter().any(|r| r.group.contains(name))
        })
        .map(|(name, _)| name.clone())
        .collect();
    out.sort();
    out
}

/// Sends each move to its member.
fn force(members: &Members, moves: Vec<(String, State)>, group: &SyncGroup, cause: &str) {
    for (member, state) in moves {
        if let Some((tx, _)) = members.get(&member) {
            info!(group = %group.name(), %member, %state, %cause, "sync group moves member");
            let _ = tx.send(Command::Force(state));
        }
    }
}

/// The keepalived word for a group state in `notify GROUP`.
fn group_word(state: State) -> Option<NotifyState> {
    match state {
        State::Master => Some(NotifyState::Master),
        State::Backup => Some(NotifyState::Backup),
        State::Fault => Some(NotifyState::Fault),
        State::Init => None,
    }
}

/// Moves the members of each sync group together, answers members' requests, and runs
/// the groups' notify scripts. A reload replaces the groups and the members' channels.
async fn sync_groups(
    config: Config,
    alerts: Alerts,
    mut members: Members,
    mut rx: mpsc::UnboundedReceiver<Report>,
    mut control: mpsc::UnboundedReceiver<SyncControl>,
) {
    let (mut groups, _) = regroup(&config, &alerts, Vec::new());
    let mut group_states: HashMap<String, State> = HashMap::new();
    let mut in_flight = InFlight::default();
    let mut control_open = true;
    loop {
        let report = tokio::select! {
            report = rx.recv() => match report {
                Some(report) => report,
                None => return,
            },
            ctl = control.recv(), if control_open => {
                match ctl {
                    Some(SyncControl::Reload { config, members: now }) => {
                        members = now;
                        let formed;
                        (groups, formed) = regroup(&config, &alerts, std::mem::take(&mut groups));
                        in_flight.clear();
                        settle_after_reload(
                            &groups,
                            &formed,
                            &members,
                            &mut group_states,
                            &mut in_flight,
                        );
                    }
                    None => control_open = false,
                }
                continue;
            }
        };
        let statuses: HashMap<String, InstanceStatus> = members
            .iter()
            .map(|(n, (_, st))| (n.clone(), st.borrow().clone()))
            .collect();
        match report {
            Report::Request { instance, want } => {
                let view: HashMap<String, MemberStatus> = statuses
                    .iter()
                    .map(|(n, s)| {
                        (
                            n.clone(),
                            MemberStatus {
                                state: s.state,
                                wants_master: s.wants_master,
                                faulty: s.faulty,
                            },
                        )
                    })
                    .collect();
                for run in groups.iter().filter(|r| r.group.contains(&instance)) {
                    let moves = in_flight.on_request(&run.group, &instance, want, &view);
                    force(&members, moves, &run.group, &instance);
                }
            }
            // The instance has logged it, shows it in status and mailed it already.
            Report::SplitBrain { .. } => {}
            Report::Transition(t) => {
                let mut states: HashMap<String, State> =
                    statuses.iter().map(|(n, s)| (n.clone(), s.state)).collect();
                let forced = t.reason == FORCED_BY_GROUP;
                for run in groups.iter().filter(|r| r.group.contains(&t.instance)) {
                    let group = &run.group;
                    if forced {
                        in_flight.on_forced(&t.instance, t.to);
                    } else {
                        let moves =
                            in_flight.on_transition(group, &t.instance, t.from, t.to, &states);
                        force(&members, moves, group, &t.instance);
                    }
                    states.insert(t.instance.clone(), t.to);
                    let Some(gs) = group.group_state(&states) else {
                        continue;
                    };
                    if group_states.insert(group.name().to_string(), gs) == Some(gs) {
                        continue;
                    }
                    if let Some(w) = group_word(gs) {
                        info!(group = %group.name(), state = %gs, "sync group state");
                        run.notifier.notify(w, 0);
                    }
                }
            }
        }
    }
}

/// After a reload: the groups formed around running instances take them to the group
/// state ([`SyncGroup::reconcile`]) and announce it (`notify GROUP`); the state of a
/// removed or re-formed group is forgotten; an instance left in FAULT only by a group it
/// no longer belongs to goes back to BACKUP ([`freed`]).
fn settle_after_reload(
    groups: &[GroupRun],
    formed: &[String],
    members: &Members,
    group_states: &mut HashMap<String, State>,
    in_flight: &mut InFlight,
) {
    group_states
        .retain(|name, _| groups.iter().any(|r| r.group.name() == name) && !formed.contains(name));
    let statuses: HashMap<String, InstanceStatus> = members
        .iter()
        .map(|(n, (_, st))| (n.clone(), st.borrow().clone()))
        .collect();
    let states: HashMap<String, State> =
        statuses.iter().map(|(n, s)| (n.clone(), s.state)).collect();
    for name in freed(groups, &statuses) {
        if let Some((tx, _)) = members.get(&name) {
            info!(member = %name, "left its sync group while held in FAULT by it: back to BACKUP");
            in_flight.sent(&[(name.clone(), State::Backup)]);
            let _ = tx.send(Command::Force(State::Backup));
        }
    }
    for run in groups
        .iter()
        .filter(|r| formed.iter().any(|f| f == r.group.name()))
    {
        let moves = run.group.reconcile(&states);
        in_flight.sent(&moves);
        force(members, moves, &run.group, "reload");
        // The state the forces just sent lead to.
        let Some(gs) = run.group.group_state(&states) else {
            continue;
        };
        group_states.insert(run.group.name().to_string(), gs);
        if let Some(w) = group_word(gs) {
            info!(group = %run.group.name(), state = %gs, "sync group formed by reload");
            run.notifier.notify(w, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(check_a: &str, check_b: &str, src: &str) -> Config {
        let text = format!(
            "[[vrrp_script]]\nname = \"a\"\nscript = \"{check_a}\"\ninterval = \"1s\"\n\n\
             [[vrrp_script]]\nname = \"b\"\nscript = \"{check_b}\"\ninterval = \"1s\"\n\n\
             [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"lo\"\nvirtual_router_id = 51\n\
             virtual_ipaddress = [\"198.18.0.100\"]\ntrack_script = [\"a\", \"b\"]\n{src}"
        );
        Config::from_str(&text, "lb.toml")
            .unwrap_or_else(|e| panic!("{e}"))
            .config
    }

    #[test]
    fn only_a_new_socket_restarts_an_instance() {
        let base = config("true", "true", "");
        let old = &base.vrrp_instances[0];
        let mut new = old.clone();
        new.priority = 200;
        new.advert_int = Duration::from_secs(2);
        new.nopreempt = true;
        new.virtual_ipaddress.clear();
        new.track_script.clear();
        assert!(
            same_socket(old, &new),
            "priority, interval, VIPs, tracking: in place"
        );
        let moved = config("true", "true", "unicast_src_ip = \"127.0.0.1\"\n");
        assert!(!same_socket(old, &moved.vrrp_instances[0]));
        let mut vrid = old.clone();
        vrid.virtual_router_id = 52;
        assert!(!same_socket(old, &vrid));
        let mut unicast = old.clone();
        unicast.unicast_peers = vec!["127.0.0.2".parse().unwrap()];
        assert!(!same_socket(old, &unicast));
    }

    #[tokio::test]
    async fn a_reload_restarts_only_the_changed_scripts() {
        let old = config("true", "true", "");
        let (reports, _rx) = mpsc::unbounded_channel();
        let mut script_tasks = HashMap::new();
        let scripts = start_scripts(&old, |_| true, &mut script_tasks);
        let mut vrrp = Vrrp {
            instances: Vec::new(),
            tracking: HashMap::new(),
            tasks: Vec::new(),
            script_tasks,
            scripts,
            reports,
            gate: None,
            config: old.clone(),
            statics: VipManager::new().unwrap(),
            alerts: Alerts::default(),
            processes: HashMap::new(),
            process_task: None,
            vmacs: HashMap::new(),
            sync_control: mpsc::unbounded_channel().0,
            bfd: watch::channel(Default::default()).1,
            links: None,
            statics_now: watch::channel(Default::default()).0,
        };
        let kept = vrrp.script_tasks["b"].id();
        let new = config("false", "true", "");
        assert_eq!(vrrp.apply_scripts(&old, &new), vec!["a".to_string()]);
        assert_eq!(vrrp.script_tasks["b"].id(), kept, "b keeps its runner");
        assert!(vrrp.scripts.contains_key("a") && vrrp.scripts.contains_key("b"));
        // Unchanged: nothing restarts.
        assert!(vrrp.apply_scripts(&new, &new).is_empty());
        for t in vrrp.script_tasks.values() {
            t.abort();
        }
    }
}
