//! `global_defs` → `[global]`. The daemon's own `[global]` keys (`dataplane`,
//! `control_socket`, `bpf_pin_path`, `metrics_listen`, `script_timeout`) are accepted in
//! global_defs too, so one keepalived.conf can carry them (keepalived warns about them
//! and goes on; `@id` lines can hide them from it entirely).

use super::{Ctx, Rule};
use crate::convert::parser::{describe, Stmt};
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{seconds_word, Args};

const CONTEXT: &str = "global_defs";

const KNOWN: &[&str] = &[
    "router_id",
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "no_email_faults",
    "vrrp_strict",
    "notify_fifo",
    "notify_fifo_script",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_version",
    "script_user",
    "lvs_timeouts",
    "default_interface",
    "dataplane",
    "control_socket",
    "bpf_pin_path",
    "metrics_listen",
    "script_timeout",
    "lvs_sync_daemon",
];

/// How lb-daemon's no-accept mode (strict mode's default) differs from keepalived's.
pub(super) const NO_ACCEPT: &str = "no-accept mode: while MASTER, the XDP program drops traffic to the VIPs that no virtual server takes (keepalived's input firewall rule); the host's own packets from a VIP are not dropped (keepalived's output rule), and the IPVS data plane drops nothing";

const TUNING: Rule = Rule::Note("keepalived process tuning, nothing to tune in lb-daemon: ignored");
const SNMP: Rule =
    Rule::Note("no SNMP/D-Bus in lb-daemon (Prometheus metrics: metrics_listen): ignored");

const RULES: &[(&str, Rule)] = &[
    (
        "no_checker_emails",
        Rule::Note("lb-daemon sends one e-mail per real server going up or down, as keepalived with no_checker_emails: ignored"),
    ),
    ("checker_log_all_failures", Rule::Note("lb-daemon logs every check verdict change: ignored")),
    ("vrrp_skip_check_adv_addr", Rule::Note("an optimisation of keepalived's advert checks: ignored")),
    ("vrrp_check_unicast_src", Rule::Approx("lb-daemon accepts unicast adverts from any source")),
    ("vrrp_iptables", Rule::Note("lb-daemon adds no iptables rules: ignored")),
    ("vrrp_ipsets", Rule::Note("lb-daemon adds no ipsets: ignored")),
    ("nftables", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_priority", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_ifindex", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_counters", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_ipvs", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_ipvs_priority", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("nftables_ipvs_start_fwmark", Rule::Note("lb-daemon adds no nftables rules: ignored")),
    ("vrrp_priority", TUNING),
    ("vrrp_no_swap", TUNING),
    ("vrrp_rt_priority", TUNING),
    ("vrrp_cpu_affinity", TUNING),
    ("vrrp_rlimit_rttime", TUNING),
    ("vrrp_rlimit_rtime", TUNING),
    ("checker_priority", TUNING),
    ("checker_no_swap", TUNING),
    ("checker_rt_priority", TUNING),
    ("checker_cpu_affinity", TUNING),
    ("checker_rlimit_rttime", TUNING),
    ("checker_rlimit_rtime", TUNING),
    ("bfd_priority", TUNING),
    ("bfd_no_swap", TUNING),
    ("bfd_rt_priority", TUNING),
    ("bfd_cpu_affinity", TUNING),
    ("bfd_rlimit_rttime", TUNING),
    ("bfd_rlimit_rtime", TUNING),
    ("process_names", TUNING),
    ("process_name", TUNING),
    ("vrrp_process_name", TUNING),
    ("checker_process_name", TUNING),
    ("lvs_process_name", TUNING),
    ("bfd_process_name", TUNING),
    ("vrrp_netlink_cmd_rcv_bufs", TUNING),
    ("vrrp_netlink_cmd_rcv_bufs_force", TUNING),
    ("vrrp_netlink_monitor_rcv_bufs", TUNING),
    ("vrrp_netlink_monitor_rcv_bufs_force", TUNING),
    ("process_monitor_rcv_bufs", TUNING),
    ("process_monitor_rcv_bufs_force", TUNING),
    ("lvs_netlink_cmd_rcv_bufs", TUNING),
    ("lvs_netlink_cmd_rcv_bufs_force", TUNING),
    ("lvs_netlink_monitor_rcv_bufs", TUNING),
    ("lvs_netlink_monitor_rcv_bufs_force", TUNING),
    ("vrrp_rx_bufs_policy", TUNING),
    ("vrrp_rx_bufs_multiplier", TUNING),
    ("umask", TUNING),
    ("random_seed", TUNING),
    ("reload_check_config", TUNING),
    ("reload_time_file", TUNING),
    ("reload_repeat", TUNING),
    ("reload_file", TUNING),
    ("include_check", TUNING),
    ("config_save_dir", TUNING),
    ("tmp_config_directory", TUNING),
    ("data_use_instance", TUNING),
    ("use_pid_dir", TUNING),
    ("instance", TUNING),
    ("child_wait_time", TUNING),
    ("linkbeat_use_polling", Rule::Note("lb-daemon watches links through netlink: ignored")),
    ("dynamic_interfaces", Rule::Note("interfaces must exist when lb-daemon starts: ignored")),
    ("disable_local_igmp", Rule::Note("ignored")),
    ("log_unknown_vrids", Rule::Note("ignored")),
    ("vrrp_startup_delay", Rule::Approx("lb-daemon starts its instances at once")),
    ("vrrp_garp_master_refresh_repeat", Rule::Approx("each refresh sends one gratuitous ARP")),
    ("vrrp_garp_lower_prio_delay", Rule::Approx("no gratuitous ARP burst after a lower-priority advert")),
    ("vrrp_garp_lower_prio_repeat", Rule::Approx("no gratuitous ARP burst after a lower-priority advert")),
    ("vrrp_down_timer_adverts", Rule::Approx("the master-down timer is RFC 5798's (3 adverts plus skew)")),
    ("vrrp_min_garp", Rule::Approx("gratuitous ARPs follow vrrp_garp_master_delay/repeat")),
    ("vrrp_garp_extra_if", Rule::Approx("gratuitous ARPs are sent on the VIP's own interface only")),
    ("vrrp_vmac_garp_intvl", Rule::Approx("VMAC instances send gratuitous ARPs like the others (vrrp_garp_master_refresh)")),
    ("vmac_prefix", Rule::Approx("VMAC interfaces are named vrrp.VRID: write use_vmac = \"NAME\" in the instance for another name")),
    ("vmac_addr_prefix", Rule::Note("ignored")),
    ("vrrp_lower_prio_no_advert", Rule::Approx("the master always answers a lower-priority advert with its own")),
    ("vrrp_higher_prio_send_advert", Rule::Approx("no extra advert before yielding to a higher priority")),
    ("vrrp_notify_priority_changes", Rule::Approx("notify scripts run on state changes only")),
    ("fifo_write_vrrp_states_on_reload", Rule::Note("the states are written on transitions only: ignored")),
    ("max_auto_priority", TUNING),
    ("min_auto_priority_delay", TUNING),
    ("rs_init_notifies", Rule::Approx("real servers' notify_up scripts do not run at start")),
    ("lvs_flush", Rule::Note("lb-daemon replaces the services a previous run left: ignored")),
    ("lvs_flush_on_stop", Rule::Note("lb-daemon removes its services on stop: ignored")),
    ("lvs_flush_onstop", Rule::Note("lb-daemon removes its services on stop: ignored")),
    ("snmp_socket", SNMP),
    ("enable_traps", SNMP),
    ("enable_snmp_vrrp", SNMP),
    ("enable_snmp_keepalived", SNMP),
    ("enable_snmp_rfc", SNMP),
    ("enable_snmp_rfcv2", SNMP),
    ("enable_snmp_rfcv3", SNMP),
    ("enable_snmp_checker", SNMP),
    ("enable_dbus", SNMP),
    ("dbus_service_name", SNMP),
    (
        "enable_script_security",
        Rule::Note("always on in lb-daemon: a script run as root that a non-root user could modify is refused"),
    ),
    ("startup_script_timeout", Rule::Note("ignored")),
    ("shutdown_script_timeout", Rule::Note("ignored")),
    (
        "startup_script",
        Rule::Refuse("run it from the systemd unit (ExecStartPre=) and remove this line"),
    ),
    (
        "shutdown_script",
        Rule::Refuse("run it from the systemd unit (ExecStopPost=) and remove this line"),
    ),
    (
        "net_namespace",
        Rule::Refuse("run lb-daemon inside the namespace (`ip netns exec NAME lb-daemon run …`) and remove net_namespace"),
    ),
    ("net_namespace_ipvs", Rule::Refuse("run lb-daemon inside the namespace and remove net_namespace_ipvs")),
    ("namespace_with_ipsets", Rule::Note("no ipsets here: ignored")),
];

/// Every `global_defs` block into one `[global]` (keepalived merges them too).
pub(super) fn convert(ctx: &mut Ctx<'_>, stmts: &[Stmt]) -> Section {
    let blocks: Vec<&Stmt> = stmts
        .iter()
        .filter(|s| s.keyword() == "global_defs")
        .collect();
    let mut global = Section::new("[global]", blocks.first().map(|b| b.pos()));
    for block in blocks {
        if !ctx.needs_block(block, CONTEXT) {
            continue;
        }
        if let Some(extra) = block.args().first() {
            ctx.d.error(
                &extra.pos,
                CONTEXT,
                format!("unexpected `{}` after global_defs", extra.text),
                Some("write `global_defs {`".into()),
            );
        }
        for stmt in block.body() {
            entry(ctx, &mut global, stmt);
        }
    }
    global
}

fn entry(ctx: &mut Ctx<'_>, g: &mut Section, stmt: &Stmt) {
    let a = Args::new(stmt, CONTEXT);
    let d = &mut *ctx.d;
    let pos = stmt.pos();
    let kw = stmt.keyword();
    match kw {
        "router_id" | "control_socket" | "bpf_pin_path" | "metrics_listen" => {
            if let Some(v) = a.string(d) {
                g.set(kw, v, pos);
            }
        }
        "dataplane" => {
            if let Some(v) = a.one(d) {
                ctx.ipvs = v.text == "ipvs";
                g.set(kw, Value::str(&v.text), pos);
            }
        }
        "notification_email" => {
            // keepalived reads the addresses as words, one or several per line.
            let addresses: Vec<Value> = stmt
                .body()
                .iter()
                .flat_map(|s| s.words.iter())
                .chain(stmt.args().iter())
                .map(|w| Value::str(&w.text))
                .collect();
            g.set(kw, Value::Array(addresses), pos);
        }
        "notification_email_from" | "smtp_helo_name" => {
            if let Some(v) = a.string(d) {
                g.set(kw, v, pos);
            }
        }
        "smtp_server" => match stmt.args() {
            [host] => g.set(kw, Value::str(&host.text), pos),
            [host, port] => g.set(kw, Value::str(format!("{} {}", host.text, port.text)), pos),
            _ => d.error(
                pos,
                CONTEXT,
                "smtp_server takes an address and an optional port",
                Some("write `smtp_server 192.0.2.25` or `smtp_server 192.0.2.25 587`".into()),
            ),
        },
        "smtp_connect_timeout" => {
            if let Some(v) = a.seconds(d) {
                g.set(kw, v, pos);
            }
        }
        "notify_fifo"
        | "vrrp_notify_fifo"
        | "lvs_notify_fifo"
        | "notify_fifo_script"
        | "vrrp_notify_fifo_script"
        | "lvs_notify_fifo_script" => match stmt.args() {
            [] => {
                a.one(d);
            }
            [first, owner @ ..] => {
                g.set(kw, Value::str(&first.text), pos);
                if !owner.is_empty() {
                    ctx.approx(
                        g,
                        stmt,
                        CONTEXT,
                        "the FIFO belongs to the daemon's user and its script runs as script_user",
                    );
                }
            }
        },
        "vrrp_strict" => {
            if a.none(d) {
                g.set(kw, Value::Bool(true), pos);
                ctx.approx(g, stmt, CONTEXT, NO_ACCEPT);
            }
        }
        "smtp_alert" | "smtp_alert_vrrp" | "smtp_alert_checker" | "no_email_faults" => {
            if let Some(b) = a.flag(d) {
                g.set(kw, Value::Bool(b), pos);
            }
        }
        "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
            if let Some(ip) = a.ip(d) {
                g.set(kw, Value::Str(ip.to_string()), pos);
            }
        }
        "vrrp_garp_master_delay"
        | "vrrp_garp_master_refresh"
        | "vrrp_garp_interval"
        | "vrrp_gna_interval"
        | "script_timeout" => {
            if let Some(v) = a.seconds(d) {
                g.set(kw, v, pos);
            }
        }
        "vrrp_garp_master_repeat" => {
            if let Some(n) = a.int(d, 0..=i64::from(u32::MAX)) {
                g.set(kw, Value::Int(n), pos);
            }
        }
        "vrrp_version" => {
            if let Some(n) = a.int(d, 2..=3) {
                g.set(kw, Value::Int(n), pos);
            }
        }
        "script_user" => script_user(ctx, g, stmt, CONTEXT, "script_user"),
        "lvs_timeouts" => lvs_timeouts(ctx, g, stmt),
        "lvs_sync_daemon" => super::sync::global(ctx, stmt),
        "default_interface" => {
            if let Some(w) = a.one(d) {
                ctx.default_interface = Some((w.text.clone(), pos.clone()));
                g.comment(
                    format!(
                        "default_interface {}: used by the instances that name no interface",
                        w.text
                    ),
                    Some(pos),
                );
            }
        }
        _ => {
            if !ctx.rule(g, stmt, CONTEXT, RULES) {
                ctx.unknown(stmt, CONTEXT, KNOWN, RULES);
            }
        }
    }
}

/// `script_user USER [GROUP]` (also a script's or checker's `user`): the group is the
/// user's own here.
pub(super) fn script_user(
    ctx: &mut Ctx<'_>,
    s: &mut Section,
    stmt: &Stmt,
    context: &str,
    key: &str,
) {
    match stmt.args() {
        [user] => s.set(key, Value::str(&user.text), stmt.pos()),
        [user, _group] => {
            s.set(key, Value::str(&user.text), stmt.pos());
            ctx.approx(s, stmt, context, "scripts run with the user's own group");
        }
        _ => {
            Args::new(stmt, context).one(ctx.d);
        }
    }
}

/// `lvs_timeouts tcp N tcpfin N udp N` → `lvs_timeouts = { tcp = "Ns", … }`.
fn lvs_timeouts(ctx: &mut Ctx<'_>, g: &mut Section, stmt: &Stmt) {
    let a = Args::new(stmt, CONTEXT);
    let args = stmt.args();
    let mut entries = Vec::new();
    let mut ok = true;
    for pair in args.chunks(2) {
        let name = &pair[0];
        if !["tcp", "tcpfin", "udp"].contains(&name.text.as_str()) {
            ctx.d.error(
                &name.pos,
                CONTEXT,
                format!("`{}` is not an lvs_timeouts protocol", name.text),
                Some("write `lvs_timeouts tcp SECONDS tcpfin SECONDS udp SECONDS`".into()),
            );
            ok = false;
            continue;
        }
        let Some(value) = pair.get(1) else {
            ctx.d.error(
                &name.pos,
                CONTEXT,
                format!("`{}` needs a number of seconds", name.text),
                None,
            );
            ok = false;
            continue;
        };
        match seconds_word(&a, ctx.d, value) {
            Some(v) => entries.push((name.text.clone(), v)),
            None => ok = false,
        }
    }
    if entries.is_empty() && ok {
        ctx.d.error(
            stmt.pos(),
            CONTEXT,
            format!("`{}` sets no timeout", describe(stmt)),
            Some("write `lvs_timeouts tcp SECONDS tcpfin SECONDS udp SECONDS`".into()),
        );
        return;
    }
    if ok {
        g.set("lvs_timeouts", Value::Table(entries), stmt.pos());
    }
}
