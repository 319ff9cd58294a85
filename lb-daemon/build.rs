//! Embeds the eBPF objects into the daemon when `cargo xtask build-ebpf` has built them,
//! so the installed binary is self-contained: the XDP program (`lb-ebpf`) and the VRRP
//! advert filter (`lb-vrrp-filter`). Without them the daemon still builds, and loads the
//! XDP object from `LB_EBPF_OBJECT` at run time (or says how to build it); without the
//! filter, VRRP reads every advert in user space.

use std::{env, fs, path::PathBuf};

/// (object built by `cargo xtask build-ebpf`, file in OUT_DIR, cfg set when embedded)
const OBJECTS: [(&str, &str, &str); 2] = [
    ("lb-ebpf", "lb-ebpf.o", "lb_embedded_ebpf"),
    (
        "lb-vrrp-filter",
        "lb-vrrp-filter.o",
        "lb_embedded_vrrp_filter",
    ),
];

fn main() {
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for (name, file, cfg) in OBJECTS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let object = target.join("bpfel-unknown-none/release").join(name);
        println!("cargo::rerun-if-changed={}", object.display());
        let out = out_dir.join(file);
        if fs::copy(&object, &out).is_ok() {
            println!("cargo::rustc-cfg={cfg}");
        } else {
            // Keep include_bytes! happy; the daemon reports the missing object at run time.
            fs::write(&out, b"").expect("write OUT_DIR");
        }
    }
}
