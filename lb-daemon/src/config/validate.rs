//! Rules across entries and sections: unique names, VRIDs per link, sync-group membership,
//! one virtual server per service and the addresses VRRP moves.
//! They run on the facts every entry yields, so an entry with its own errors still counts
//! (a bad priority must not hide a duplicate name).

use std::collections::HashMap;

use super::address::AddressFamily;
use super::decode::{endpoint, BgpFacts, GroupFacts, InstanceFacts, Named, ServerFacts};
use super::reader::Decoder;
use super::schema::{Bgp, VrrpInstance};
use super::suggest;

/// Each name once per section.
pub(crate) fn unique_names(d: &mut Decoder<'_>, section: &str, names: &[Named]) {
    let mut first: HashMap<&str, &Named> = HashMap::new();
    for named in names {
        match first.get(named.name.as_str()) {
            Some(earlier) => {
                let line = d.position(&earlier.span).line;
                d.error(
                    &named.path,
                    named.span.clone(),
                    format!("duplicate {section} name `{}`", named.name),
                )
                .hint(format!("first defined at line {line}"));
            }
            None => {
                first.insert(&named.name, named);
            }
        }
    }
}

/// Unique instance names, and one VRID per interface and family (VRRP tells virtual
/// routers apart on a link by VRID alone; IPv4 and IPv6 are separate protocols).
pub(crate) fn instances(d: &mut Decoder<'_>, facts: &[InstanceFacts]) {
    let names: Vec<Named> = facts.iter().filter_map(|f| f.name.clone()).collect();
    unique_names(d, "vrrp_instance", &names);

    let mut owners: HashMap<(&str, AddressFamily, u8), &InstanceFacts> = HashMap::new();
    for fact in facts {
        let (Some(interface), Some((vrid, path, span))) = (&fact.interface, &fact.vrid) else {
            continue;
        };
        match owners.get(&(interface.as_str(), fact.family, *vrid)) {
            Some(owner) => {
                let owner_name = owner
                    .name
                    .as_ref()
                    .map_or("another instance", |n| n.name.as_str());
                let line = owner
                    .vrid
                    .as_ref()
                    .map_or(0, |(_, _, s)| d.position(s).line);
                d.error(
                    path,
                    span.clone(),
                    format!("virtual_router_id {vrid} is already used on {interface} by `{owner_name}` (line {line})"),
                )
                .hint("VRIDs must be unique per interface and address family");
            }
            None => {
                owners.insert((interface, fact.family, *vrid), fact);
            }
        }
    }
}

/// Groups name existing instances, each instance in one group at most.
pub(crate) fn sync_groups(d: &mut Decoder<'_>, groups: &[GroupFacts], instances: &[InstanceFacts]) {
    let names: Vec<Named> = groups.iter().filter_map(|g| g.name.clone()).collect();
    unique_names(d, "vrrp_sync_group", &names);

    let known: Vec<&str> = instances
        .iter()
        .filter_map(|i| i.name.as_ref().map(|n| n.name.as_str()))
        .collect();
    // Instance name → the group that claimed it first.
    let mut member_of: HashMap<&str, (&str, &Named)> = HashMap::new();
    for group in groups {
        let group_name = group.name.as_ref().map_or("?", |n| n.name.as_str());
        let mut distinct = 0;
        for member in &group.members {
            if !known.contains(&member.name.as_str()) {
                d.error(
                    &member.path,
                    member.span.clone(),
                    format!("no vrrp_instance is named `{}`", member.name),
                )
                .maybe_hint(
                    suggest::closest(&member.name, known.iter().copied())
                        .map(|s| format!("did you mean `{s}`?")),
                );
                continue;
            }
            match member_of.get(member.name.as_str()) {
                Some((other, _)) if *other == group_name => {
                    d.error(
                        &member.path,
                        member.span.clone(),
                        format!("`{}` is listed twice", member.name),
                    );
                }
                Some((other, earlier)) => {
                    let line = d.position(&earlier.span).line;
                    d.error(
                        &member.path,
                        member.span.clone(),
                        format!(
                            "`{}` is already in vrrp_sync_group `{other}` (line {line})",
                            member.name
                        ),
                    )
                    .hint("an instance belongs to one sync group at most");
                }
                None => {
                    member_of.insert(&member.name, (group_name, member));
                    distinct += 1;
                }
            }
        }
        if distinct == 1 && group.members.len() == 1 {
            let member = &group.members[0];
            d.warning(
                &member.path,
                member.span.clone(),
                "a sync group of one instance synchronises nothing",
            );
        }
    }
}

/// One virtual server per address, port and protocol; a warning for an address no VRRP
/// instance moves (`instances`: all of them, `None` when some did not decode).
pub(crate) fn virtual_servers(
    d: &mut Decoder<'_>,
    servers: &[ServerFacts],
    instances: Option<&[VrrpInstance]>,
) {
    let mut first = HashMap::new();
    // A fwmark server's `match` entries are services too (XDP matches them).
    let services = servers.iter().flat_map(|server| {
        let own = match (server.service, &server.address) {
            (Some(service), Some((_, path, span))) => Some((service, path, span)),
            _ => None,
        };
        let matched = server
            .matches
            .iter()
            .flat_map(|(list, path, span)| list.iter().map(move |service| (*service, path, span)));
        own.into_iter().chain(matched)
    });
    for ((address, port, protocol), path, span) in services {
        match first.get(&(address, port, protocol)) {
            Some(earlier) => {
                let line = d.position(earlier).line;
                let shown = endpoint(&address.to_string(), port);
                d.error(
                    path,
                    span.clone(),
                    format!("virtual server {shown} {protocol} is defined twice"),
                )
                .hint(format!("first defined at line {line}"));
            }
            None => {
                first.insert((address, port, protocol), span.clone());
            }
        }
    }

    let Some(instances) = instances else { return };
    for server in servers {
        let Some((address, path, span)) = &server.address else {
            continue;
        };
        // Announced by BGP: no VRRP instance is expected (one holding it is an error).
        if server.announce_bgp.is_some() {
            continue;
        }
        let moved = instances
            .iter()
            .flat_map(|i| i.all_addresses())
            .any(|vip| vip.address == *address);
        if !moved {
            d.warning(
                path,
                span.clone(),
                format!("{address} is in no vrrp_instance's virtual_ipaddress"),
            )
            .hint("it is served only while this host has the address; add it to a vrrp_instance to fail it over");
        }
    }
}

/// `announce = "bgp"`: not on a VIP a VRRP instance holds (the two would fight over the
/// address), and with somewhere to attach (`[bgp].interfaces` or the server's own).
pub(crate) fn announced(
    d: &mut Decoder<'_>,
    servers: &[ServerFacts],
    instances: Option<&[VrrpInstance]>,
    bgp: &Bgp,
    bgp_facts: &BgpFacts,
) {
    let mut missing_interfaces = false;
    for server in servers {
        let (Some((path, span)), Some((address, _, _))) = (&server.announce_bgp, &server.address)
        else {
            continue;
        };
        let holder = instances.and_then(|all| {
            all.iter()
                .find(|i| i.all_addresses().any(|v| v.address == *address))
        });
        if let Some(instance) = holder {
            d.error(
                path,
                span.clone(),
                format!(
                    "{address} is announced by BGP and also held by vrrp_instance `{}`",
                    instance.name
                ),
            )
            .hint("a VIP is either announced by BGP (active-active) or moved by VRRP: remove announce, or remove the address from the instance's virtual_ipaddress");
        }
        if !server.has_interfaces && bgp.interfaces.is_empty() && !missing_interfaces {
            missing_interfaces = true;
            let (path, span) = bgp_facts
                .section
                .clone()
                .unwrap_or_else(|| (path.clone(), span.clone()));
            d.error(
                &path,
                span,
                "announce = \"bgp\" needs the interfaces where the data plane attaches",
            )
            .hint("write interfaces = [\"eth0\"] (the uplinks the routers send the VIP traffic to) in [bgp], or in the virtual server");
        }
    }
}
