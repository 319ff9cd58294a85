//! The configuration as the health checker needs it: for every virtual server, the
//! verdict machine's parameters, the checks to run against each real server, and the
//! scripts to run on verdict changes. The runner starts from this plan and never reads
//! the configuration itself.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use super::{
    runner::{Health, Update},
    spec::{CheckSpec, Target},
    verdict::{CheckerParams, HealthScript, RealConfig, ServiceConfig, SorryServer},
};
use crate::alerts::{email::Endpoint, Alerts};
use crate::config::{Config, VirtualServer};
use crate::dataplane::{from_config::service_id, ServiceId};

/// Everything the health runner starts from.
#[derive(Debug, Clone)]
pub struct HealthPlan {
    /// User the notify and quorum scripts run as.
    pub script_user: Option<String>,
    /// Longest a notify or quorum script may run.
    pub script_timeout: Duration,
    pub services: Vec<ServicePlan>,
    /// The BFD sessions' states, for BFD_CHECK (`None`: no session runs, so every
    /// BFD_CHECK fails).
    pub bfd: Option<tokio::sync::watch::Receiver<crate::bfd::session::Snapshot>>,
}

impl HealthPlan {
    /// The plan with BFD_CHECK reading `states`.
    pub fn with_bfd(
        mut self,
        states: tokio::sync::watch::Receiver<crate::bfd::session::Snapshot>,
    ) -> Self {
        self.bfd = Some(states);
        self
    }
}

/// One virtual service's checks and verdict parameters.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub service: ServiceId,
    pub verdict: ServiceConfig,
    pub checks: Vec<PlannedCheck>,
    pub scripts: ServiceScripts,
    pub alerts: ServiceAlerts,
}

/// What the e-mail alerts of a service say and whether each part sends them
/// (keepalived's `smtp_alert` on the virtual and real servers).
#[derive(Debug, Clone)]
pub struct ServiceAlerts {
    pub service: Endpoint,
    pub smtp_alert: Option<bool>,
    pub quorum: u32,
    pub hysteresis: u32,
    /// By real server index: where it is and its own `smtp_alert`.
    pub reals: Vec<(Endpoint, Option<bool>)>,
}

/// One checker of one real server, with where it connects.
#[derive(Debug, Clone)]
pub struct PlannedCheck {
    /// Index of the real server in its service.
    pub real: usize,
    /// Index of the checker among the real server's.
    pub checker: usize,
    /// Shared with the check's running futures.
    pub spec: Arc<CheckSpec>,
    pub target: Target,
}

/// The commands a service runs on verdict changes (keepalived's `notify_up`,
/// `notify_down`, `quorum_up`, `quorum_down`).
#[derive(Debug, Clone, Default)]
pub struct ServiceScripts {
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    /// By real server index.
    pub notify_up: Vec<Option<String>>,
    /// By real server index.
    pub notify_down: Vec<Option<String>>,
}

impl ServiceScripts {
    pub fn command(&self, s: HealthScript) -> Option<&String> {
        match s {
            HealthScript::NotifyUp { real } => self.notify_up.get(real)?.as_ref(),
            HealthScript::NotifyDown { real } => self.notify_down.get(real)?.as_ref(),
            HealthScript::QuorumUp => self.quorum_up.as_ref(),
            HealthScript::QuorumDown => self.quorum_down.as_ref(),
        }
    }
}

impl Health {
    /// Starts checking every virtual service of `config`; updates go to `updates`, the
    /// initial desired set of each service first.
    pub fn start(config: &Config, updates: mpsc::UnboundedSender<Update>) -> Health {
        Health::run(plan(config), updates, Alerts::default())
    }
}

/// The health plan of `config`.
pub fn plan(config: &Config) -> HealthPlan {
    HealthPlan {
        script_user: config.global.script_user.clone(),
        script_timeout: config.global.script_timeout,
        services: config.virtual_servers.iter().map(service_plan).collect(),
        bfd: None,
    }
}

fn service_plan(vs: &VirtualServer) -> ServicePlan {
    ServicePlan {
        service: service_id(vs),
        verdict: verdict_config(vs),
        checks: planned_checks(vs),
        scripts: scripts(vs),
        alerts: alerts(vs),
    }
}

fn alerts(vs: &VirtualServer) -> ServiceAlerts {
    let endpoint = |address, port| Endpoint {
        address,
        protocol: vs.protocol,
        port,
    };
    ServiceAlerts {
        service: endpoint(vs.address, vs.port),
        smtp_alert: vs.smtp_alert,
        quorum: vs.quorum,
        hysteresis: vs.hysteresis,
        reals: vs
            .real_servers
            .iter()
            .map(|r| (endpoint(r.address, r.port), r.smtp_alert))
            .collect(),
    }
}

fn verdict_config(vs: &VirtualServer) -> ServiceConfig {
    ServiceConfig {
        name: format!("{}:{}", vs.address, vs.port),
        quorum: vs.quorum,
        hysteresis: vs.hysteresis,
        sorry_server: vs.sorry_server.map(|(addr, port)| SorryServer {
            addr,
            port,
            inhibit: false,
        }),
        reals: vs
            .real_servers
            .iter()
            .map(|r| RealConfig {
                addr: r.address,
                port: r.port,
                weight: r.weight,
                inhibit_on_failure: r.inhibit_on_failure,
                checkers: r
                    .checks
                    .iter()
                    .map(|c| CheckerParams::from_common(&c.common, vs.alpha))
                    .collect(),
            })
            .collect(),
        rs_init_notifies: false,
    }
}

fn planned_checks(vs: &VirtualServer) -> Vec<PlannedCheck> {
    vs.real_servers
        .iter()
        .enumerate()
        .flat_map(|(real, r)| {
            r.checks.iter().enumerate().map(move |(checker, check)| {
                let target = check.target(Target {
                    addr: r.address,
                    port: r.port,
                });
                PlannedCheck {
                    real,
                    checker,
                    spec: Arc::new(check.clone()),
                    target,
                }
            })
        })
        .collect()
}

fn scripts(vs: &VirtualServer) -> ServiceScripts {
    ServiceScripts {
        quorum_up: vs.quorum_up.clone(),
        quorum_down: vs.quorum_down.clone(),
        notify_up: vs
            .real_servers
            .iter()
            .map(|r| r.notify_up.clone())
            .collect(),
        notify_down: vs
            .real_servers
            .iter()
            .map(|r| r.notify_down.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::{
        config::Protocol,
        health::verdict::{HealthScript, SorryServer},
    };

    const TEXT: &str = r#"[global]
script_user = "checker"

[[virtual_server]]
address = "192.0.2.10"
port = 80
quorum = 2
quorum_up = "/etc/lb/q.sh up"
sorry_server = { address = "192.0.2.99", port = 8080 }

[[virtual_server.real_server]]
address = "10.0.0.1"
notify_down = "/etc/lb/alert.sh down"
tcp_check = [{}, { connect_ip = "10.0.9.9", connect_port = 9000 }]

[[virtual_server.real_server]]
address = "10.0.0.2"
port = 8080
tcp_check = {}
"#;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_service_plan_carries_its_checks_verdict_and_scripts() {
        let config = Config::from_str(TEXT, "lb.toml").expect("valid").config;
        let plan = plan(&config);
        assert_eq!(plan.script_user.as_deref(), Some("checker"));
        assert_eq!(plan.script_timeout, config.global.script_timeout);
        let [service] = plan.services.as_slice() else {
            panic!("one service expected, got {}", plan.services.len());
        };
        assert_eq!(
            service.service,
            ServiceId {
                vip: addr("192.0.2.10"),
                port: 80,
                protocol: Protocol::Tcp
            }
        );

        let places: Vec<_> = service
            .checks
            .iter()
            .map(|c| (c.real, c.checker, c.target))
            .collect();
        let target = |a: &str, port| Target {
            addr: addr(a),
            port,
        };
        assert_eq!(
            places,
            vec![
                (0, 0, target("10.0.0.1", 80)),
                (0, 1, target("10.0.9.9", 9000)),
                (1, 0, target("10.0.0.2", 8080)),
            ]
        );

        assert_eq!(service.verdict.name, "192.0.2.10:80");
        assert_eq!(service.verdict.quorum, 2);
        assert_eq!(
            service.verdict.sorry_server,
            Some(SorryServer {
                addr: addr("192.0.2.99"),
                port: 8080,
                inhibit: false
            })
        );
        let checkers: Vec<usize> = service
            .verdict
            .reals
            .iter()
            .map(|r| r.checkers.len())
            .collect();
        assert_eq!(checkers, vec![2, 1]);

        let scripts = &service.scripts;
        assert_eq!(
            scripts.command(HealthScript::QuorumUp).map(String::as_str),
            Some("/etc/lb/q.sh up")
        );
        assert_eq!(scripts.command(HealthScript::QuorumDown), None);
        assert_eq!(
            scripts
                .command(HealthScript::NotifyDown { real: 0 })
                .map(String::as_str),
            Some("/etc/lb/alert.sh down")
        );
        assert_eq!(scripts.command(HealthScript::NotifyDown { real: 1 }), None);
    }
}
