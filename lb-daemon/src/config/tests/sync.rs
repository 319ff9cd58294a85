//! `[sync]`: values, defaults and every diagnostic with its position.

use super::{at, error, ip, load, BASE};
use crate::config::*;

const KEY: &str = "key = \"0123456789abcdef0123\"\n";

/// BASE (lines 1–5), then `[sync]` on line 6 with `keys`.
fn with_sync(keys: &str) -> String {
    format!("{BASE}[sync]\n{keys}")
}

#[test]
fn every_key_and_the_defaults() {
    let text = with_sync(&format!(
        "interface = \"eth1\"\nvrrp_instance = \"VI_1\"\nid = 7\nport = 9000\nttl = 3\n\
         maxlen = 1400\ngroup = \"ff02::81\"\nnode_id = 42\nmax_rate = 100\n{KEY}"
    ));
    let s = load(&text).config.sync.expect("[sync]");
    assert_eq!(
        s,
        Sync {
            interface: "eth1".into(),
            vrrp_instance: Some("VI_1".into()),
            id: 7,
            port: 9000,
            group: ip("ff02::81"),
            ttl: 3,
            maxlen: 1400,
            peers: Vec::new(),
            key: b"0123456789abcdef0123".to_vec(),
            node_id: 42,
            max_rate: 100,
        }
    );
    let d = load(&with_sync(&format!(
        "interface = \"eth0\"\npeers = [\"10.0.0.2\", \"10.0.0.3\"]\n{KEY}"
    )))
    .config
    .sync
    .expect("[sync]");
    assert_eq!(
        (d.vrrp_instance, d.id, d.port, d.group, d.ttl, d.maxlen),
        (None, 0, 8848, ip("224.0.0.81"), 1, 1472)
    );
    assert_eq!(d.peers, vec![ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_ne!(d.node_id, 0);
    assert!(load(BASE).config.sync.is_none());
}

#[test]
fn a_key_is_required_and_long_enough() {
    let e = error(&with_sync("interface = \"eth0\"\n"));
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.contains("needs a shared key"), "{e}");
    let e = error(&with_sync("interface = \"eth0\"\nkey = \"short\"\n"));
    assert_eq!(at(&e), (8, 7), "{e}");
    assert!(e.message.contains("at least 16"), "{e}");
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\n{KEY}key_file = \"/etc/lb/sync.key\"\n"
    )));
    assert_eq!(at(&e), (9, 12), "{e}");
}

#[test]
fn the_key_can_come_from_a_file() {
    let dir = std::env::temp_dir().join(format!("lb-sync-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sync.key");
    std::fs::write(&path, "abcdefghijklmnopqrstuvwxyz\n").unwrap();
    let s = load(&with_sync(&format!(
        "interface = \"eth0\"\nkey_file = \"{}\"\n",
        path.display()
    )))
    .config
    .sync
    .unwrap();
    assert_eq!(s.key, b"abcdefghijklmnopqrstuvwxyz".to_vec());
    let e = error(&with_sync(
        "interface = \"eth0\"\nkey_file = \"/nonexistent/sync.key\"\n",
    ));
    assert_eq!(at(&e), (8, 12), "{e}");
    assert!(e.message.contains("cannot read"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_values_point_at_their_key() {
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\nvrrp_instance = \"VI_2\"\n{KEY}"
    )));
    assert_eq!(at(&e), (8, 17), "{e}");
    assert_eq!(e.message, "no vrrp_instance is named `VI_2`");
    assert!(e.hint.as_deref().unwrap().contains("VI_1"), "{e:?}");
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\ngroup = \"10.0.0.1\"\n{KEY}"
    )));
    assert_eq!(at(&e), (8, 9), "{e}");
    assert!(e.message.contains("not a multicast address"), "{e}");
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\nid = 256\n{KEY}"
    )));
    assert_eq!(at(&e), (8, 6), "{e}");
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\nmaxlen = 100\n{KEY}"
    )));
    assert_eq!(at(&e), (8, 10), "{e}");
    let e = error(&with_sync(KEY));
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.contains("interface"), "{e}");
    let e = error(&with_sync(&format!(
        "interface = \"eth0\"\nmaxlne = 1400\n{KEY}"
    )));
    assert_eq!(at(&e), (8, 1), "{e}");
}

#[test]
fn the_key_stays_out_of_debug_output() {
    let s = load(&with_sync(&format!("interface = \"eth0\"\n{KEY}")))
        .config
        .sync
        .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(shown.contains("<20 bytes>"), "{shown}");
}

#[test]
fn sync_is_refused_with_the_ipvs_data_plane() {
    let text = format!(
        "[global]\ndataplane = \"ipvs\"\n{}",
        with_sync(&format!("interface = \"eth0\"\n{KEY}"))
    );
    let e = error(&text);
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("needs the XDP data plane"), "{e}");
}
