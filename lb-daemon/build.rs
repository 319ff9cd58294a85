//! Embeds the eBPF object into the daemon when `cargo xtask build-ebpf` has built it, so
//! the installed binary is self-contained. Without it the daemon still builds, and loads
//! the object from `LB_EBPF_OBJECT` at run time (or says how to build it).

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lb_embedded_ebpf)");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let object = target.join("bpfel-unknown-none/release/lb-ebpf");
    println!("cargo::rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("lb-ebpf.o");
    if fs::copy(&object, &out).is_ok() {
        println!("cargo::rustc-cfg=lb_embedded_ebpf");
    } else {
        // Keep include_bytes! happy; the daemon reports the missing object at run time.
        fs::write(&out, b"").expect("write OUT_DIR");
    }
}
