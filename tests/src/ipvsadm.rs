//! `ipvsadm -Ln` output and our own table read-back in one normalised form, so the VM
//! tests can compare what the kernel shows through the two tools.
//!
//! One line per service (`TCP 10.0.0.1:80 rr persistent 300`) and one per real
//! (`TCP 10.0.0.1:80 -> 10.0.1.1:8080 Masq 1`), sorted.

use std::net::IpAddr;

use lb_daemon::ipvs::KernelService;

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Our read-back in the normalised form.
pub fn normalise_table(table: &[KernelService]) -> Vec<String> {
    let mut out = Vec::new();
    for (s, dests) in table {
        let svc = format!("{} {}", s.id.protocol, endpoint(s.id.vip, s.id.port));
        out.push(match s.persistence {
            Some(t) => format!("{svc} {} persistent {t}", s.scheduler),
            None => format!("{svc} {}", s.scheduler),
        });
        for d in dests {
            out.push(format!(
                "{svc} -> {} {} {}",
                endpoint(d.addr, d.port),
                d.forward.ipvsadm_name(),
                d.weight
            ));
        }
    }
    out.sort();
    out
}

/// `ipvsadm -Ln` in the normalised form (TCP, UDP and firewall-mark services, the last
/// as `FWM N`; scheduler flags such as `mh-fallback` are dropped, `persistent N` kept).
pub fn normalise_ipvsadm(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut svc = String::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            [proto @ ("TCP" | "UDP" | "SCTP" | "FWM"), addr, sched, rest @ ..] => {
                svc = format!("{proto} {addr}");
                let persistent = rest
                    .iter()
                    .position(|w| *w == "persistent")
                    .and_then(|i| rest.get(i + 1));
                out.push(match persistent {
                    Some(t) => format!("{svc} {sched} persistent {t}"),
                    None => format!("{svc} {sched}"),
                });
            }
            ["->", addr, fwd, weight, ..] if *addr != "RemoteAddress:Port" => {
                out.push(format!("{svc} -> {addr} {fwd} {weight}"));
            }
            _ => {}
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipvsadm_listing() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 mh (mh-fallback) persistent 300
  -> 10.0.1.1:80                  Route   1      0          0
UDP  [fd00::1]:53 sh
  -> [fd00::10]:53                Tunnel  0      0          0
FWM  5 wrr persistent 300
  -> 10.0.1.2:0                   Route   2      0          0
";
        assert_eq!(
            normalise_ipvsadm(text),
            vec![
                "FWM 5 -> 10.0.1.2:0 Route 2",
                "FWM 5 wrr persistent 300",
                "TCP 10.0.0.1:80 -> 10.0.1.1:80 Route 1",
                "TCP 10.0.0.1:80 mh persistent 300",
                "UDP [fd00::1]:53 -> [fd00::10]:53 Tunnel 0",
                "UDP [fd00::1]:53 sh",
            ]
        );
    }
}
