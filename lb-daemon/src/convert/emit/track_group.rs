//! `track_group NAME { group { … } }` (keepalived's static track group) →
//! `[[track_group]]`.

use super::script::block_name;
use super::Ctx;
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};

pub(super) fn convert(ctx: &mut Ctx<'_>, stmt: &Stmt) -> Option<Section> {
    let name = block_name(ctx, stmt)?;
    let context = format!("track_group {name}");
    let mut s = Section::new("[[track_group]]", Some(stmt.pos()));
    s.set("name", Value::str(&name), stmt.pos());
    for entry in stmt.body() {
        if entry.keyword() != "group" {
            ctx.unknown(entry, &context, &["group"], &[]);
            continue;
        }
        super::sync_group::group(ctx, &mut s, entry, &context);
    }
    if !s.has("group") {
        ctx.d.error(
            stmt.pos(),
            &context,
            "the track group lists no instance",
            Some("add `group { VI_1 VI_2 }`".into()),
        );
    }
    Some(s)
}
