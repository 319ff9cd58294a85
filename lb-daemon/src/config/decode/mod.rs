//! From the spanned toml tree to the typed sections, one module per section.
//!
//! Each section decoder returns its typed value only when it found no error, and always
//! returns the facts the cross-section checks in [`super::validate`] need (names, VRIDs…),
//! so an instance with a bad priority still takes part in the duplicate-name check.
//! A new section is a new module here plus one line in [`document`].

mod bfd;
mod bgp;
mod flow_sync;
mod global;
mod instance;
mod script;
mod static_network;
mod sync_group;
mod track_group;
mod track_process;
mod virtual_server;

use toml::de::DeTable;
use toml::Spanned;

use super::reader::{Decoder, Table};
use super::route::RULE_START_PRIORITY;
use super::schema::{
    BfdInstance, Bgp, Global, Notify, StaticNetwork, VirtualServer, VrrpInstance, VrrpScript,
    VrrpSyncGroup, VrrpTrackProcess,
};
use super::source::{KeyPath, Span};
use super::validate;

pub(crate) use bgp::BgpFacts;
pub(crate) use instance::InstanceFacts;
pub(crate) use sync_group::GroupFacts;
pub(crate) use virtual_server::{endpoint, ServerFacts};

/// keepalived spellings at the top level, with what to write instead.
const TOP_RENAMES: &[(&str, &str)] = &[
    (
        "global_defs",
        "keepalived's global_defs is the [global] table here",
    ),
    ("vrrp_scripts", "write each script as [[vrrp_script]]"),
    ("vrrp_instances", "write each instance as [[vrrp_instance]]"),
    (
        "virtual_servers",
        "write each virtual server as [[virtual_server]]",
    ),
    (
        "static_ipaddress",
        "keepalived's static_ipaddress is `ipaddress` in a [static] table",
    ),
    (
        "static_routes",
        "keepalived's static_routes is `routes` in a [static] table",
    ),
    (
        "static_rules",
        "keepalived's static_rules is `rules` in a [static] table",
    ),
    (
        "virtual_server_group",
        "virtual server groups are not supported: write one [[virtual_server]] per address and port",
    ),
];

/// A name as written, for duplicate and reference checks.
#[derive(Clone, Debug)]
pub(crate) struct Named {
    pub name: String,
    pub path: KeyPath,
    pub span: Span,
}

/// The sections that decoded without error (all of them when the file is valid).
pub(crate) struct Decoded {
    pub global: Global,
    pub scripts: Vec<VrrpScript>,
    pub processes: Vec<VrrpTrackProcess>,
    pub bfd_instances: Vec<BfdInstance>,
    pub instances: Vec<VrrpInstance>,
    pub groups: Vec<VrrpSyncGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    pub bgp: Bgp,
    pub static_network: StaticNetwork,
    pub sync: Option<crate::config::schema::Sync>,
}

pub(crate) fn document(d: &mut Decoder<'_>, root: &Spanned<DeTable<'_>>) -> Decoded {
    let mut top =
        Table::new(d, root.get_ref(), root.span(), KeyPath::root()).with_renames(TOP_RENAMES);

    let global = match top.get(d, "global").and_then(|f| f.table(d)) {
        Some(table) => global::decode(d, table),
        None => Global::default(),
    };

    let mut track_group_facts = Vec::new();
    let mut track_groups = Vec::new();
    for table in sections(d, &mut top, "track_group") {
        let (group, facts) = track_group::decode(d, table);
        track_group_facts.push(facts);
        track_groups.extend(group);
    }
    let track_group_names: Vec<Named> = track_group_facts
        .iter()
        .filter_map(|g| g.name.clone())
        .collect();
    validate::unique_names(d, "track_group", &track_group_names);
    let mut static_network = match top.get(d, "static").and_then(|f| f.table(d)) {
        Some(table) => {
            let names: Vec<&str> = track_group_names.iter().map(|n| n.name.as_str()).collect();
            static_network::decode(d, table, &names)
        }
        None => StaticNetwork::default(),
    };

    let bgp_table = top.get(d, "bgp").and_then(|f| f.table(d));
    let (bgp, bgp_facts) = bgp::decode(d, bgp_table);

    let mut script_names = Vec::new();
    let mut scripts = Vec::new();
    for table in sections(d, &mut top, "vrrp_script") {
        let (script, name) = script::decode(d, table);
        script_names.extend(name);
        scripts.extend(script);
    }
    validate::unique_names(d, "vrrp_script", &script_names);

    let mut process_names = Vec::new();
    let mut processes = Vec::new();
    for table in sections(d, &mut top, "vrrp_track_process") {
        let (process, name) = track_process::decode(d, table);
        process_names.extend(name);
        processes.extend(process);
    }
    validate::unique_names(d, "vrrp_track_process", &process_names);

    let mut bfd_names = Vec::new();
    let mut bfd_instances = Vec::new();
    let mut bfd_endpoints: Vec<(bfd::Endpoints, Named)> = Vec::new();
    for table in sections(d, &mut top, "bfd_instance") {
        let (bfd, name, endpoints) = bfd::decode(d, table);
        if let (Some(e), Some(n)) = (endpoints, &name) {
            // keepalived: two instances may not share a neighbor (and source) address.
            if let Some((_, first)) = bfd_endpoints.iter().find(|(seen, _)| *seen == e) {
                d.error(
                    &n.path,
                    n.span.clone(),
                    format!(
                        "bfd_instance `{}` has the neighbor_ip {} of bfd_instance `{}`",
                        n.name, e.0, first.name
                    ),
                )
                .hint("one session per neighbor: track the same bfd_instance from several places");
            } else {
                bfd_endpoints.push((e, n.clone()));
            }
        }
        bfd_names.extend(name);
        bfd_instances.extend(bfd);
    }
    validate::unique_names(d, "bfd_instance", &bfd_names);

    let known = instance::Known {
        bfd: bfd_names.iter().map(|n| n.name.as_str()).collect(),
        bfd_defs: &bfd_instances,
        scripts: script_names.iter().map(|n| n.name.as_str()).collect(),
        script_defs: &scripts,
        processes: process_names.iter().map(|n| n.name.as_str()).collect(),
        process_defs: &processes,
    };
    let mut instance_facts = Vec::new();
    let mut instances = Vec::new();
    for table in sections(d, &mut top, "vrrp_instance") {
        let (instance, facts) = instance::decode(d, table, &global, &known);
        instance_facts.push(facts);
        instances.extend(instance);
    }
    validate::instances(d, &instance_facts);
    let instance_names: Vec<&str> = instance_facts
        .iter()
        .filter_map(|i| i.name.as_ref().map(|n| n.name.as_str()))
        .collect();
    track_group::validate(d, &track_group_facts, &instance_names);
    static_network.track_groups = track_groups;
    track_group::track_interfaces(&static_network, &mut instances);

    let mut group_facts = Vec::new();
    let mut groups = Vec::new();
    for table in sections(d, &mut top, "vrrp_sync_group") {
        let (group, facts) = sync_group::decode(d, table, &known);
        group_facts.push(facts);
        groups.extend(group);
    }
    validate::sync_groups(d, &group_facts, &instance_facts);

    let mut server_facts = Vec::new();
    let mut virtual_servers = Vec::new();
    sync_group::merge_track_bfd(&groups, &mut instances);

    let server_tables = top
        .get(d, "virtual_server")
        .map(|f| f.labelled_tables(d, "virtual_server", virtual_server::label))
        .unwrap_or_default();
    for table in server_tables {
        let (server, facts) = virtual_server::decode(d, table, &global, &known);
        server_facts.push(facts);
        virtual_servers.extend(server);
    }
    // Which addresses VRRP moves is known only when every instance decoded.
    let all_instances = (instances.len() == instance_facts.len()).then_some(&instances[..]);
    validate::virtual_servers(d, &server_facts, all_instances);
    validate::announced(d, &server_facts, all_instances, &bgp, &bgp_facts);
    let sync = match top.get(d, "sync").and_then(|f| f.table(d)) {
        Some(table) => flow_sync::decode(d, table, &global, &instances),
        None => None,
    };

    top.finish(d);
    rule_preferences(&mut static_network, &mut instances);
    Decoded {
        global,
        scripts,
        processes,
        bfd_instances,
        instances,
        groups,
        virtual_servers,
        bgp,
        static_network,
        sync,
    }
}

/// keepalived gives rules without a preference one counting down from 16384 per family, in
/// the order they are read (static rules, then each instance's).
fn rule_preferences(statics: &mut StaticNetwork, instances: &mut [VrrpInstance]) {
    let mut next = [RULE_START_PRIORITY; 2];
    let rules = statics.rules.iter_mut().chain(
        instances
            .iter_mut()
            .flat_map(|i| i.virtual_rules.iter_mut()),
    );
    for rule in rules.filter(|r| r.priority.is_none()) {
        let n = &mut next[usize::from(rule.v6)];
        rule.priority = Some(*n);
        *n = n.saturating_sub(1);
    }
}

/// The entries of the array of tables `key` (none when absent).
fn sections<'a, 'i>(
    d: &mut Decoder<'_>,
    top: &mut Table<'a, 'i>,
    key: &'static str,
) -> Vec<Table<'a, 'i>> {
    top.get(d, key)
        .map(|f| f.tables(d, key))
        .unwrap_or_default()
}

/// The entry's required `name`.
fn name(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Option<Named> {
    let field = t.required(d, "name")?;
    let name = field.string(d)?;
    Some(Named {
        name,
        path: field.path().clone(),
        span: field.span(),
    })
}

/// The `notify_*` scripts shared by instances and sync groups.
fn notify(d: &mut Decoder<'_>, t: &mut Table<'_, '_>) -> Notify {
    let mut script = |key| t.get(d, key).and_then(|f| f.string(d));
    Notify {
        master: script("notify_master"),
        backup: script("notify_backup"),
        fault: script("notify_fault"),
        stop: script("notify_stop"),
        any: script("notify"),
        smtp_alert: t.get(d, "smtp_alert").and_then(|f| f.bool(d)),
    }
}
