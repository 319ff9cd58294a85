//! What the chosen data plane cannot do, reported by `check-config` with the position of
//! the key, like every other error: full-NAT (`snat_address`) on IPVS, whose NAT
//! rewrites the destination only.

use super::diagnostic::{Diagnostic, Severity};
use super::schema::{Config, Dataplane};
use super::source::KeyPath;

pub fn check_availability(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if config.global.dataplane != Dataplane::Ipvs {
        return out;
    }
    for (i, vs) in config.virtual_servers.iter().enumerate() {
        if let Some(addr) = vs.snat_address {
            out.push(config.source.diagnostic(
                Severity::Error,
                &KeyPath::root()
                    .key("virtual_server")
                    .index(i)
                    .key("snat_address"),
                format!("snat_address {addr} (full-NAT) is not available on the IPVS data plane, whose NAT rewrites only the destination"),
                Some("remove snat_address (the reals then route their replies through this node), or use dataplane = \"xdp\"".into()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const NAT: &str = r#"
[global]
dataplane = "DP"

[[virtual_server]]
address = "10.0.0.1"
port = 80
lb_kind = "NAT"
SNAT
[[virtual_server.real_server]]
address = "10.0.1.1"
"#;

    fn check(dp: &str, snat: &str) -> Vec<Diagnostic> {
        let text = NAT.replace("DP", dp).replace("SNAT", snat);
        check_availability(&Config::from_str(&text, "lb.toml").unwrap().config)
    }

    #[test]
    fn ipvs_serves_what_it_can_and_refuses_full_nat_at_the_key() {
        assert!(check("ipvs", "").is_empty());
        assert!(check("xdp", "snat_address = \"10.0.1.254\"").is_empty());
        let d = check("ipvs", "snat_address = \"10.0.1.254\"");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 9, "{d:?}");
        assert!(d[0].message.contains("full-NAT"), "{}", d[0].message);
        assert!(d[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("dataplane = \"xdp\""));
    }
}
