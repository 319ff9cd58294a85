//! keepalived's `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N]
//! [ttl N] [group IP]` (global_defs) and the older `lvs_sync_daemon_interface IFACE`
//! (vrrp_instance) → `[sync]` (docs/sync.md). keepalived's sync is unauthenticated;
//! here messages carry an HMAC, so the section names a key file the operator creates.

use super::Ctx;
use crate::convert::lexer::Pos;
use crate::convert::parser::Stmt;
use crate::convert::toml_out::{Section, Value};
use crate::convert::value::{int_word, ip_word, Args};

/// Where the converted `[sync]` expects the shared key.
pub(crate) const KEY_FILE: &str = "/etc/lb/sync.key";

const KEY_HOW: &str = "sync messages are authenticated here (keepalived's are not): create the key file with the same content on every node, e.g. `head -c 32 /dev/urandom | base64 > /etc/lb/sync.key`";

fn section(ctx: &mut Ctx<'_>, pos: &Pos) -> Section {
    ctx.d.warning(
        pos,
        "lvs_sync_daemon",
        format!("flow-state sync needs a shared key in {KEY_FILE}"),
        Some(KEY_HOW.into()),
    );
    let mut s = Section::new("[sync]", Some(pos));
    s.comment(
        format!("converted from lvs_sync_daemon: {KEY_HOW}"),
        Some(pos),
    );
    s.set("key_file", Value::str(KEY_FILE), pos);
    s
}

/// `lvs_sync_daemon …` in global_defs.
pub(super) fn global(ctx: &mut Ctx<'_>, stmt: &Stmt) {
    let context = "global_defs";
    let a = Args::new(stmt, context);
    let args = stmt.args();
    let Some(interface) = args.first() else {
        ctx.d.error(
            stmt.pos(),
            context,
            "`lvs_sync_daemon` needs an interface".to_string(),
            Some("write `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`".into()),
        );
        return;
    };
    let mut s = section(ctx, stmt.pos());
    s.set("interface", Value::str(&interface.text), &interface.pos);
    let mut rest = &args[1..];
    const OPTIONS: [&str; 5] = ["id", "maxlen", "port", "ttl", "group"];
    if let Some(instance) = rest.first().filter(|w| !OPTIONS.contains(&w.text.as_str())) {
        s.set("vrrp_instance", Value::str(&instance.text), &instance.pos);
        rest = &rest[1..];
    }
    for pair in rest.chunks(2) {
        let name = &pair[0];
        let Some(value) = pair.get(1) else {
            ctx.d.error(
                &name.pos,
                context,
                format!("`{}` needs a value", name.text),
                None,
            );
            continue;
        };
        let range = match name.text.as_str() {
            "id" => 0..=255,
            "maxlen" => 256..=65_000,
            "port" => 1..=65_535,
            "ttl" => 1..=255,
            "group" => {
                if let Some(ip) = ip_word(&a, ctx.d, value) {
                    s.set("group", Value::Str(ip.to_string()), &value.pos);
                }
                continue;
            }
            other => {
                ctx.d.error(
                    &name.pos,
                    context,
                    format!("`{other}` is not an lvs_sync_daemon option"),
                    Some("the options are id, maxlen, port, ttl and group".into()),
                );
                continue;
            }
        };
        if let Some(n) = int_word(&a, ctx.d, value, range) {
            s.set(&name.text, Value::Int(n), &value.pos);
        }
    }
    ctx.sync = Some(s);
}

/// `lvs_sync_daemon_interface IFACE` in vrrp_instance `instance` (keepalived 1.x).
pub(super) fn instance(ctx: &mut Ctx<'_>, stmt: &Stmt, instance: &str, context: &str) {
    let a = Args::new(stmt, context);
    let Some(iface) = a.one(ctx.d) else { return };
    if ctx.sync.is_some() {
        ctx.d.warning(
            stmt.pos(),
            context,
            "lvs_sync_daemon is already set: this lvs_sync_daemon_interface is ignored".to_string(),
            None,
        );
        return;
    }
    let mut s = section(ctx, stmt.pos());
    s.set("interface", Value::str(&iface.text), &iface.pos);
    s.set("vrrp_instance", Value::str(instance), stmt.pos());
    ctx.sync = Some(s);
}
