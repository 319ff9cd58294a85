//! `[[track_group]]`: keepalived's static track groups (`track_group NAME { group { VI_1
//! VI_2 } }`), and what they mean for their member instances.

use super::name;
use super::sync_group::{members, GroupFacts};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{StaticNetwork, TrackGroup, TrackInterface, VrrpInstance};
use crate::config::suggest;

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
) -> (Option<TrackGroup>, GroupFacts) {
    let errors_before = d.error_count();
    let name = name(d, &mut t);
    // keepalived: "track group … has no virtual router(s)", and drops the group.
    let members = members(d, &mut t, "a track group");
    t.finish(d);
    let typed = match &name {
        Some(name) if d.error_count() == errors_before => Some(TrackGroup {
            name: name.name.clone(),
            group: members.iter().map(|m| m.name.clone()).collect(),
        }),
        _ => None,
    };
    (typed, GroupFacts { name, members })
}

/// Members must be instances, each listed once (an instance may be in several groups).
pub(super) fn validate(d: &mut Decoder<'_>, groups: &[GroupFacts], instances: &[&str]) {
    for group in groups {
        let mut seen: Vec<&str> = Vec::new();
        for member in &group.members {
            if !instances.contains(&member.name.as_str()) {
                d.error(
                    &member.path,
                    member.span.clone(),
                    format!("no vrrp_instance is named `{}`", member.name),
                )
                .maybe_hint(
                    suggest::closest(&member.name, instances.iter().copied())
                        .map(|s| format!("did you mean `{s}`?")),
                );
            } else if seen.contains(&member.name.as_str()) {
                d.error(
                    &member.path,
                    member.span.clone(),
                    format!("`{}` is listed twice", member.name),
                );
            } else {
                seen.push(&member.name);
            }
        }
    }
}

/// The interfaces a group's members track (pure), each once.
fn tracked_interfaces<'s>(statics: &'s StaticNetwork, group: &str) -> Vec<&'s str> {
    let mut out: Vec<&str> = Vec::new();
    for (_, _, g, interface) in statics.tracked_lines() {
        if g == group && !out.contains(&interface) {
            out.push(interface);
        }
    }
    out
}

/// Adds to each member's `track_interface` the interfaces its groups track, weight 0
/// (FAULT while down), after its own entries; an interface it already tracks, or its own
/// interface, keeps what it has.
pub(super) fn track_interfaces(statics: &StaticNetwork, instances: &mut [VrrpInstance]) {
    for g in &statics.track_groups {
        let interfaces = tracked_interfaces(statics, &g.name);
        for inst in instances.iter_mut().filter(|i| g.group.contains(&i.name)) {
            for &name in &interfaces {
                let tracked =
                    name == inst.interface || inst.track_interface.iter().any(|t| t.name == name);
                if !tracked {
                    inst.track_interface.push(TrackInterface {
                        name: name.to_owned(),
                        weight: 0,
                        reverse: false,
                    });
                }
            }
        }
    }
}
