//! `[[vrrp_sync_group]]`.

use super::{name, notify, Named};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::VrrpSyncGroup;

/// What the membership checks need, available even when the group has errors.
pub(crate) struct GroupFacts {
    pub name: Option<Named>,
    pub members: Vec<Named>,
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
) -> (Option<VrrpSyncGroup>, GroupFacts) {
    let errors_before = d.error_count();
    let name = name(d, &mut t);
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
                .error(d, "a sync group needs at least one vrrp_instance")
                .hint("list instance names, e.g. group = [\"VI_1\", \"VI_2\"]");
        }
    }
    let notify = notify(d, &mut t);
    let arbiter = t
        .get(d, "arbiter")
        .and_then(|f| super::instance::arbiter(d, &f));
    t.finish(d);

    let typed = match &name {
        Some(name) if d.error_count() == errors_before => Some(VrrpSyncGroup {
            name: name.name.clone(),
            group: members.iter().map(|m| m.name.clone()).collect(),
            notify,
            arbiter,
        }),
        _ => None,
    };
    (typed, GroupFacts { name, members })
}
