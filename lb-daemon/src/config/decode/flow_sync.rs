//! `[sync]`: flow-state sync between LB nodes (docs/sync.md), keepalived's
//! `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`.

use std::net::IpAddr;

use crate::config::reader::{Decoder, Table};
use crate::config::schema::{
    Global, Sync, VrrpInstance, DEFAULT_SYNC_GROUP, DEFAULT_SYNC_MAX_RATE, DEFAULT_SYNC_PORT,
    SYNC_DEFAULT_MAXLEN as DEFAULT_MAXLEN, SYNC_MAX_MAXLEN as MAX_MAXLEN,
    SYNC_MIN_MAXLEN as MIN_MAXLEN,
};
use crate::config::suggest;

/// The node id when none is given: a hash of `router_id` (or the host name), never 0.
fn default_node_id(global: &Global) -> u32 {
    let name = global.router_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    });
    // FNV-1a: stable across builds and platforms.
    let h = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
    global: &Global,
    instances: &[VrrpInstance],
) -> Option<Sync> {
    let errors = d.error_count();
    if global.dataplane == crate::config::schema::Dataplane::Ipvs {
        d.error(t.path(), t.span(), "[sync] needs the XDP data plane, and [global] dataplane is \"ipvs\"")
            .hint("with IPVS run keepalived's own lvs_sync_daemon, or set dataplane = \"xdp\" (or \"auto\")");
    }
    let interface = t.required(d, "interface").and_then(|f| f.interface(d));
    let vrrp_instance = t.get(d, "vrrp_instance").and_then(|f| {
        let name = f.string(d)?;
        if !instances.is_empty() && !instances.iter().any(|i| i.name == name) {
            let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
            f.error(d, format!("no vrrp_instance is named `{name}`"))
                .maybe_hint(suggest::hint(&name, &names).or(Some(
                    "name the instance whose MASTER sends (its BACKUPs receive), or leave vrrp_instance out for all-to-all sync (a BGP tier)".into(),
                )));
            return None;
        }
        Some(name)
    });
    let id = t
        .get(d, "id")
        .and_then(|f| f.int::<u8>(d, 0..=255))
        .unwrap_or(0);
    let port = t
        .get(d, "port")
        .and_then(|f| f.int::<u16>(d, 1..=65535))
        .unwrap_or(DEFAULT_SYNC_PORT);
    let ttl = t
        .get(d, "ttl")
        .and_then(|f| f.int::<u32>(d, 1..=255))
        .unwrap_or(1);
    let maxlen = t
        .get(d, "maxlen")
        .and_then(|f| f.int::<usize>(d, MIN_MAXLEN as i64..=MAX_MAXLEN as i64))
        .unwrap_or(DEFAULT_MAXLEN);
    let group = t.get(d, "group").and_then(|f| {
        let g: IpAddr = f.parse(d, "an IP address")?;
        if !g.is_multicast() {
            f.error(d, format!("{g} is not a multicast address"))
                .hint("keepalived's default group is 224.0.0.81; for unicast list the peers in `peers` instead");
            return None;
        }
        Some(g)
    });
    let peers: Vec<IpAddr> = t
        .get(d, "peers")
        .and_then(|f| f.array(d))
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.parse::<IpAddr>(d, "an IP address"))
                .collect()
        })
        .unwrap_or_default();
    let key_field = t.get(d, "key");
    let key_file = t.get(d, "key_file");
    let key = match (&key_field, &key_file) {
        (Some(_), Some(f)) => {
            f.error(d, "give either `key` or `key_file`, not both");
            None
        }
        (Some(k), None) => k.string(d).map(String::into_bytes),
        (None, Some(f)) => f
            .absolute_path(d)
            .and_then(|path| match std::fs::read(&path) {
                Ok(bytes) => {
                    let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
                    Some(trimmed)
                }
                Err(e) => {
                    f.error(d, format!("cannot read {}: {e}", path.display()))
                        .hint("the file holds the shared key, the same on every sync peer");
                    None
                }
            }),
        (None, None) => {
            d.error(t.path(), t.span(), "[sync] needs a shared key: `key` or `key_file`")
                .hint("sync messages are authenticated (HMAC-SHA256); set the same key on every peer, e.g. key_file = \"/etc/lb/sync.key\"");
            None
        }
    };
    if let (Some(k), Some(f)) = (&key, key_field.as_ref().or(key_file.as_ref())) {
        if k.len() < 16 {
            f.error(
                d,
                format!("the key is {} bytes; at least 16 are needed", k.len()),
            )
            .hint("generate one with `head -c 32 /dev/urandom | base64`");
        }
    }
    let node_id = t
        .get(d, "node_id")
        .and_then(|f| f.int::<u32>(d, 1..=i64::from(u32::MAX)))
        .unwrap_or_else(|| default_node_id(global));
    let max_rate = t
        .get(d, "max_rate")
        .and_then(|f| f.int::<u32>(d, 1..=1_000_000))
        .unwrap_or(DEFAULT_SYNC_MAX_RATE);
    t.finish(d);
    if d.error_count() > errors {
        return None;
    }
    Some(Sync {
        interface: interface?,
        vrrp_instance,
        id,
        port,
        group: group.unwrap_or(IpAddr::V4(DEFAULT_SYNC_GROUP)),
        ttl,
        maxlen,
        peers,
        key: key?,
        node_id,
        max_rate,
    })
}
