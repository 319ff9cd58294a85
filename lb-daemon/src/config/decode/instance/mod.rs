//! `[[vrrp_instance]]`: the fields are read first ([`fields`], [`track`]), then the rules
//! that tie them together are applied ([`rules`]: version ↔ family ↔ advert_int ↔
//! authentication, state ↔ priority ↔ preemption), following keepalived's
//! `vrrp_complete_instance`.

mod arbiter;
pub(in crate::config::decode) use arbiter::decode as arbiter;
pub(super) mod fields;
mod heartbeat;
mod rules;
mod split_brain;
mod strict;
pub(in crate::config::decode) mod track;
mod vmac;

use std::net::IpAddr;
use std::time::Duration;

use super::{global, name, notify, Named};
use crate::config::address::{AddressFamily, VirtualAddress};
use crate::config::reader::{Decoder, Field, Table};
use crate::config::route::{IpRoute, IpRule};
use crate::config::schema::{
    Authentication, BfdInstance, Global, InitialState, Notify, TrackBfd, TrackFile, TrackInterface,
    TrackProcess, TrackScript, VrrpInstance, VrrpScript, VrrpTrackProcess, VrrpVersion,
    DEFAULT_ADVERT_INT,
};
use crate::config::source::{KeyPath, Span};

const RENAMES: &[(&str, &str)] = &[
    (
        "mcast_src_ip",
        "keepalived's `mcast_src_ip` is `unicast_src_ip` here (keepalived treats them as one)",
    ),
    ("vrrp_mcast_group4", "per instance, write `mcast_group`"),
    ("vrrp_mcast_group6", "per instance, write `mcast_group`"),
    (
        "preempt",
        "preemption is the default; write `nopreempt = true` to turn it off",
    ),
];

const STATES: &[(&str, InitialState)] = &[
    ("MASTER", InitialState::Master),
    ("BACKUP", InitialState::Backup),
];

const PREEMPT_DELAY_MAX: Duration = Duration::from_secs(1000);

/// What the cross-instance checks need, available even when the instance has errors.
pub(crate) struct InstanceFacts {
    pub name: Option<Named>,
    pub interface: Option<String>,
    pub vrid: Option<(u8, KeyPath, Span)>,
    pub family: AddressFamily,
}

/// A value together with the field it came from, for cross-field messages.
struct At<'a, 'i, T> {
    value: T,
    field: Field<'a, 'i>,
}

/// The instance's keys as written (`None`/empty: absent or invalid, already reported).
struct Fields<'a, 'i> {
    path: KeyPath,
    span: Span,
    name: Option<Named>,
    interface: Option<String>,
    state: Option<At<'a, 'i, InitialState>>,
    vrid: Option<At<'a, 'i, u8>>,
    priority_written: bool,
    priority: Option<At<'a, 'i, u8>>,
    advert_int: Option<At<'a, 'i, Duration>>,
    version: Option<At<'a, 'i, VrrpVersion>>,
    nopreempt: Option<At<'a, 'i, bool>>,
    preempt_delay: Option<At<'a, 'i, Duration>>,
    authentication: Option<At<'a, 'i, Authentication>>,
    strict_mode: Option<At<'a, 'i, bool>>,
    accept: Option<At<'a, 'i, bool>>,
    use_vmac: Option<At<'a, 'i, Option<String>>>,
    vmac_xmit_base: bool,
    unicast_src_ip: Option<At<'a, 'i, IpAddr>>,
    unicast_peers: Vec<At<'a, 'i, IpAddr>>,
    vips_span: Option<Span>,
    vips: Vec<At<'a, 'i, VirtualAddress>>,
    excluded: Vec<At<'a, 'i, VirtualAddress>>,
    virtual_routes: Vec<At<'a, 'i, IpRoute>>,
    virtual_rules: Vec<At<'a, 'i, IpRule>>,
    track_interface: Vec<At<'a, 'i, TrackInterface>>,
    track_script: Vec<At<'a, 'i, TrackScript>>,
    track_file: Vec<At<'a, 'i, TrackFile>>,
    track_process: Vec<At<'a, 'i, TrackProcess>>,
    track_bfd: Vec<At<'a, 'i, TrackBfd>>,
    mcast_group: Option<At<'a, 'i, IpAddr>>,
    notify: Notify,
    notify_master_rx_lower_pri: Option<String>,
    garp_master_delay: Duration,
    garp_master_repeat: u32,
    garp_master_refresh: Option<Duration>,
    split_brain: split_brain::Written<'a, 'i>,
    arbiter: Option<crate::config::schema::Arbiter>,
    heartbeat_paths: Vec<At<'a, 'i, crate::config::schema::HeartbeatPath>>,
}

/// What instances may track: the names written (some may not have decoded) and the
/// definitions that decoded.
pub(crate) struct Known<'a> {
    pub scripts: Vec<&'a str>,
    pub script_defs: &'a [VrrpScript],
    pub processes: Vec<&'a str>,
    pub process_defs: &'a [VrrpTrackProcess],
    pub bfd: Vec<&'a str>,
    pub bfd_defs: &'a [BfdInstance],
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    t: Table<'_, '_>,
    global: &Global,
    known: &Known<'_>,
) -> (Option<VrrpInstance>, InstanceFacts) {
    let errors_before = d.error_count();
    let f = read_fields(d, t, global, known);

    let family = rules::family(&f);
    rules::check_vips(d, &f.vips, family);
    rules::check_excluded(d, &f.vips, &f.excluded);
    let version = rules::version(d, f.version.as_ref(), family, global);
    if let Some(a) = &f.advert_int {
        rules::check_advert_int(d, &a.field, a.value, version);
    }
    if f.vips.is_empty() && d.error_count() == errors_before {
        let at = f.vips_span.clone().unwrap_or(f.span.clone());
        rules::no_vips(d, &f.path.key("virtual_ipaddress"), at, version);
    }
    rules::check_unicast(d, f.unicast_src_ip.as_ref(), &f.unicast_peers, family);
    heartbeat::check(d, &f.heartbeat_paths, f.interface.as_deref(), family);
    let mcast_group = match &f.mcast_group {
        Some(group) => {
            rules::check_mcast_group(d, group, family, !f.unicast_peers.is_empty());
            group.value
        }
        None => match family {
            AddressFamily::V4 => IpAddr::V4(global.vrrp_mcast_group4),
            AddressFamily::V6 => IpAddr::V6(global.vrrp_mcast_group6),
        },
    };
    let use_vmac = vmac::resolve(f.use_vmac.as_ref(), f.vrid.as_ref().map(|v| v.value));
    let strict_mode = strict::enabled(&f, global.vrrp_strict);
    if strict_mode {
        strict::check(d, &f);
    }
    let (state, priority) = rules::state_and_priority(d, &f);
    let state = if strict_mode {
        strict::state(d, f.state.as_ref(), state, priority)
    } else {
        state
    };
    let written_auth = if strict_mode {
        strict::authentication(d, f.authentication)
    } else {
        f.authentication
    };
    let (authentication, state) =
        rules::authentication(d, written_auth, version, family, state, priority);
    let (nopreempt, preempt_delay) = rules::preemption(
        d,
        f.nopreempt.as_ref(),
        f.preempt_delay.as_ref(),
        state,
        priority,
    );
    let preempt_delay = if strict_mode {
        strict::preempt_delay(d, f.preempt_delay.as_ref(), preempt_delay)
    } else {
        preempt_delay
    };
    let accept = strict::accept(d, f.accept.as_ref(), strict_mode, version, priority);
    let advert_int = f
        .advert_int
        .as_ref()
        .map_or(DEFAULT_ADVERT_INT, |a| a.value);
    let split_brain = split_brain::resolve(d, f.split_brain, advert_int);

    let facts = InstanceFacts {
        name: f.name.clone(),
        interface: f.interface.clone(),
        vrid: f
            .vrid
            .as_ref()
            .map(|v| (v.value, v.field.path().clone(), v.field.span())),
        family,
    };
    let (Some(name), Some(interface), Some(vrid)) = (f.name, f.interface, f.vrid) else {
        return (None, facts);
    };
    if d.error_count() != errors_before {
        return (None, facts);
    }
    let instance = VrrpInstance {
        name: name.name,
        interface,
        state,
        virtual_router_id: vrid.value,
        priority,
        advert_int,
        version,
        family,
        nopreempt,
        preempt_delay,
        authentication,
        strict_mode,
        accept,
        use_vmac,
        vmac_xmit_base: f.vmac_xmit_base,
        unicast_src_ip: f.unicast_src_ip.map(|a| a.value),
        unicast_peers: values(f.unicast_peers),
        virtual_ipaddress: values(f.vips),
        virtual_ipaddress_excluded: values(f.excluded),
        virtual_routes: values(f.virtual_routes),
        virtual_rules: values(f.virtual_rules),
        track_interface: values(f.track_interface),
        track_script: values(f.track_script),
        track_file: values(f.track_file),
        track_process: values(f.track_process),
        track_bfd: values(f.track_bfd),
        mcast_group,
        notify: f.notify,
        notify_master_rx_lower_pri: f.notify_master_rx_lower_pri,
        garp_master_delay: f.garp_master_delay,
        garp_master_repeat: f.garp_master_repeat,
        garp_master_refresh: f.garp_master_refresh,
        split_brain,
        arbiter: f.arbiter,
        heartbeat_paths: values(f.heartbeat_paths),
    };
    (Some(instance), facts)
}

fn read_fields<'a, 'i>(
    d: &mut Decoder<'_>,
    t: Table<'a, 'i>,
    global: &Global,
    known: &Known<'_>,
) -> Fields<'a, 'i> {
    let mut t = t.with_renames(RENAMES);
    let name = name(d, &mut t);
    let interface = t.required(d, "interface").and_then(|f| f.interface(d));
    let state = read(d, &mut t, "state", |d, f| f.keyword(d, STATES));
    if t.span_of("virtual_router_id").is_none() {
        d.error(
            t.path(),
            t.span(),
            "missing required key `virtual_router_id`",
        );
    }
    let vrid = read(d, &mut t, "virtual_router_id", |d, f| f.int(d, 1..=255));
    let priority_written = t.span_of("priority").is_some();
    let priority = read(d, &mut t, "priority", |d, f| f.int(d, 1..=255));
    let advert_int = read(d, &mut t, "advert_int", |d, f| f.duration(d));
    let version = read(d, &mut t, "version", global::version);
    let nopreempt = read(d, &mut t, "nopreempt", |d, f| f.bool(d));
    let strict_mode = read(d, &mut t, "strict_mode", |d, f| f.bool(d));
    let accept = read(d, &mut t, "accept", |d, f| f.bool(d));
    let use_vmac = read(d, &mut t, "use_vmac", vmac::name);
    let vmac_xmit_base = t
        .get(d, "vmac_xmit_base")
        .and_then(|f| f.bool(d))
        .unwrap_or(false);
    let preempt_delay = read(d, &mut t, "preempt_delay", |d, f| {
        f.duration_in(d, Duration::ZERO..=PREEMPT_DELAY_MAX)
    });
    let authentication = read(d, &mut t, "authentication", fields::authentication);
    let ip = |d: &mut Decoder<'_>, f: &Field<'_, '_>| f.parse::<IpAddr>(d, "an IP address");
    let unicast_src_ip = read(d, &mut t, "unicast_src_ip", ip);
    let unicast_peers = list(d, &mut t, "unicast_peers", ip);
    let vips_span = t.span_of("virtual_ipaddress");
    let vips = list(d, &mut t, "virtual_ipaddress", fields::virtual_address);
    let excluded = list(
        d,
        &mut t,
        "virtual_ipaddress_excluded",
        fields::virtual_address,
    );
    let virtual_routes = list(d, &mut t, "virtual_routes", fields::route);
    let virtual_rules = list(d, &mut t, "virtual_rules", fields::rule);
    let track_interface = list(d, &mut t, "track_interface", track::interface);
    let track_script = list(d, &mut t, "track_script", |d, f| {
        track::script(d, f, &known.scripts, known.script_defs)
    });
    let track_file = list(d, &mut t, "track_file", track::file);
    let track_process = list(d, &mut t, "track_process", |d, f| {
        track::process(d, f, &known.processes, known.process_defs)
    });
    let track_bfd = list(d, &mut t, "track_bfd", |d, f| {
        track::bfd(d, f, &known.bfd, known.bfd_defs)
    });
    let mcast_group = read(d, &mut t, "mcast_group", ip);
    let notify = notify(d, &mut t);
    let notify_master_rx_lower_pri = t
        .get(d, "notify_master_rx_lower_pri")
        .and_then(|f| f.string(d));
    let garp_master_delay = t
        .get(d, "garp_master_delay")
        .and_then(|f| f.duration(d))
        .unwrap_or(global.vrrp_garp_master_delay);
    let garp_master_repeat = t
        .get(d, "garp_master_repeat")
        .and_then(|f| f.int(d, 0..=i64::MAX))
        .unwrap_or(global.vrrp_garp_master_repeat);
    let garp_master_refresh = match t.get(d, "garp_master_refresh") {
        // Zero means "never", as in keepalived.
        Some(f) => f.duration(d).filter(|r| !r.is_zero()),
        None => global.vrrp_garp_master_refresh,
    };
    let split_brain = split_brain::fields(d, &mut t);
    let arbiter = t.get(d, "arbiter").and_then(|f| arbiter::decode(d, &f));
    let heartbeat_paths = list(d, &mut t, "heartbeat_paths", heartbeat::path);
    let (path, span) = (t.path().clone(), t.span());
    t.finish(d);
    Fields {
        path,
        span,
        name,
        interface,
        state,
        vrid,
        priority_written,
        priority,
        advert_int,
        version,
        nopreempt,
        preempt_delay,
        authentication,
        strict_mode,
        accept,
        use_vmac,
        vmac_xmit_base,
        unicast_src_ip,
        unicast_peers,
        vips_span,
        vips,
        excluded,
        virtual_routes,
        virtual_rules,
        track_interface,
        track_script,
        track_file,
        track_process,
        track_bfd,
        mcast_group,
        notify,
        notify_master_rx_lower_pri,
        garp_master_delay,
        garp_master_repeat,
        garp_master_refresh,
        split_brain,
        arbiter,
        heartbeat_paths,
    }
}

/// Reads an optional key, keeping its field for later messages.
fn read<'a, 'i, T>(
    d: &mut Decoder<'_>,
    t: &mut Table<'a, 'i>,
    key: &'static str,
    decode: impl FnOnce(&mut Decoder<'_>, &Field<'a, 'i>) -> Option<T>,
) -> Option<At<'a, 'i, T>> {
    let field = t.get(d, key)?;
    let value = decode(d, &field)?;
    Some(At { value, field })
}

/// Reads an optional array, keeping the elements that decode.
fn list<'a, 'i, T>(
    d: &mut Decoder<'_>,
    t: &mut Table<'a, 'i>,
    key: &'static str,
    mut decode: impl FnMut(&mut Decoder<'_>, &Field<'a, 'i>) -> Option<T>,
) -> Vec<At<'a, 'i, T>> {
    let Some(items) = t.get(d, key).and_then(|f| f.array(d)) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|field| decode(d, &field).map(|value| At { value, field }))
        .collect()
}

fn values<T>(items: Vec<At<'_, '_, T>>) -> Vec<T> {
    items.into_iter().map(|a| a.value).collect()
}
