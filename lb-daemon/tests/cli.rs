//! The `lb-daemon` command line, run as a user would.

use std::process::Command;

fn lb_daemon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lb-daemon"))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const VALID: &str = r#"
[global]
router_id = "lb1"

[[vrrp_script]]
name = "chk_haproxy"
script = "pgrep -x haproxy"
interval = "2s"
weight = -20

[[vrrp_instance]]
name = "VI_1"
interface = "lo"
state = "BACKUP"
virtual_router_id = 51
priority = 100
advert_int = 1
authentication = { auth_type = "PASS", auth_pass = "s3cret" }
virtual_ipaddress = ["198.18.0.100/24"]
track_script = ["chk_haproxy"]
"#;

#[test]
fn check_config_accepts_a_valid_file() {
    let path = write("valid.toml", VALID);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_config_points_at_the_mistake() {
    let text = VALID.replace("priority = 100", "priorty = 100");
    let path = write("typo.toml", &text);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.starts_with("priorty")).unwrap() + 1;
    assert!(err.contains(&format!("typo.toml:{line}:")), "{err}");
    assert!(
        err.contains("did you mean") && err.contains("priority"),
        "{err}"
    );
}

#[test]
fn check_config_rejects_ranges_and_missing_interfaces() {
    let text = VALID
        .replace("virtual_router_id = 51", "virtual_router_id = 300")
        .replace("interface = \"lo\"", "interface = \"nosuch0\"");
    let path = write("bad.toml", &text);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("virtual_router_id"), "{err}");
}

#[test]
fn check_config_reports_missing_interfaces() {
    let text = VALID.replace("interface = \"lo\"", "interface = \"nosuch0\"");
    let path = write("noif.toml", &text);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch0"), "{err}");
}

/// `check-config` accepts `docs/examples/<name>`.
fn assert_example_valid(name: &str) {
    let path = format!("{}/../docs/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_documented_example_is_valid() {
    assert_example_valid("vrrp.toml");
}

#[test]
fn the_nat_example_is_valid() {
    assert_example_valid("nat.toml");
}

#[test]
fn the_full_example_is_valid() {
    assert_example_valid("lb.toml");
}

#[test]
fn the_bgp_example_is_valid() {
    assert_example_valid("bgp.toml");
}

#[test]
fn nat_services_are_accepted_and_snat_needs_nat() {
    let nat = format!(
        "{VALID}\n[global.lvs_timeouts]\ntcp = \"1h\"\n\n[[virtual_server]]\naddress = \"198.18.0.100\"\nport = 80\nlb_kind = \"NAT\"\nsnat_address = \"10.0.1.1\"\n\n[[virtual_server.real_server]]\naddress = \"10.0.1.21\"\nport = 8080\n"
    );
    let path = write("nat.toml", &nat);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dr = nat
        .replace("lb_kind = \"NAT\"", "lb_kind = \"DR\"")
        .replace("port = 8080", "port = 80");
    let path = write("dr-snat.toml", &dr);
    let out = lb_daemon().arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = dr
        .lines()
        .position(|l| l.starts_with("snat_address"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("dr-snat.toml:{line}:")) && err.contains("NAT only"),
        "{err}"
    );
}
