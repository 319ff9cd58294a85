//! `[[vrrp_sync_group]]`.

use super::instance::Known;
use super::{name, notify, Named};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{VrrpInstance, VrrpSyncGroup};

/// What the membership checks need, available even when the group has errors.
pub(crate) struct GroupFacts {
    pub name: Option<Named>,
    pub members: Vec<Named>,
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
    known: &Known<'_>,
) -> (Option<VrrpSyncGroup>, GroupFacts) {
    let errors_before = d.error_count();
    let name = name(d, &mut t);
    let members = members(d, &mut t, "a sync group");
    let notify = notify(d, &mut t);
    let arbiter = t
        .get(d, "arbiter")
        .and_then(|f| super::instance::arbiter(d, &f));
    let track_bfd = t
        .get(d, "track_bfd")
        .and_then(|f| f.array(d))
        .unwrap_or_default()
        .iter()
        .filter_map(|f| super::instance::track::bfd(d, f, &known.bfd, known.bfd_defs))
        .collect();
    t.finish(d);

    let typed = match &name {
        Some(name) if d.error_count() == errors_before => Some(VrrpSyncGroup {
            name: name.name.clone(),
            group: members.iter().map(|m| m.name.clone()).collect(),
            notify,
            arbiter,
            track_bfd,
        }),
        _ => None,
    };
    (typed, GroupFacts { name, members })
}

/// The required `group = ["VI_1", …]` of a sync or track group (`what`), at least one.
pub(super) fn members(d: &mut Decoder<'_>, t: &mut Table<'_, '_>, what: &str) -> Vec<Named> {
    let mut members = Vec::new();
    if let Some(field) = t.required(d, "group") {
        for item in field.array(d).unwrap_or_default() {
            if let Some(member) = item.string(d) {
                members.push(Named {
                    name: member,
                    path: item.path().clone(),
                    span: item.span(),
                });
            }
        }
        if field.array_len() == Some(0) {
            field
                .error(d, format!("{what} needs at least one vrrp_instance"))
                .hint("list instance names, e.g. group = [\"VI_1\", \"VI_2\"]");
        }
    }
    members
}

/// keepalived applies a sync group's `track_bfd` to every member: each member gets the
/// group's entries after its own (an entry it tracks itself keeps its own weight).
pub(super) fn merge_track_bfd(groups: &[VrrpSyncGroup], instances: &mut [VrrpInstance]) {
    for g in groups {
        for inst in instances.iter_mut().filter(|i| g.group.contains(&i.name)) {
            for t in &g.track_bfd {
                if !inst.track_bfd.iter().any(|o| o.name == t.name) {
                    inst.track_bfd.push(t.clone());
                }
            }
        }
    }
}
