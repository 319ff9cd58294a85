//! Telling someone: keepalived's e-mail alerts ([`email`]) and notify FIFOs ([`fifo`]).
//! Both are fed from the same events (VRRP instance and sync-group transitions, real
//! servers up and down, virtual servers gaining and losing quorum) and neither can
//! block the daemon.

pub mod email;
pub mod fifo;

use email::{Alert, Endpoint, Mailer, VrrpState};
use fifo::NotifyFifos;

/// Where events go (either part may be absent).
#[derive(Clone, Debug, Default)]
pub struct Alerts {
    pub mailer: Option<Mailer>,
    pub fifos: Option<NotifyFifos>,
}

impl Alerts {
    /// A VRRP instance (or, `group`, a sync group) changed state. `smtp_alert` is its
    /// own setting (unset: the global defaults decide).
    pub fn vrrp(
        &self,
        group: bool,
        name: &str,
        state: VrrpState,
        priority: u8,
        smtp_alert: Option<bool>,
    ) {
        if let Some(f) = &self.fifos {
            f.vrrp(&fifo::vrrp_line(group, name, state, priority));
        }
        if let Some(m) = &self.mailer {
            let name = name.to_string();
            let alert = if group {
                Alert::Group { name, state }
            } else {
                Alert::Instance { name, state }
            };
            m.send(alert, smtp_alert);
        }
    }

    /// An instance event that is not a state (keepalived's `MASTER_RX_LOWER_PRI`):
    /// FIFO only, as keepalived.
    pub fn vrrp_event(&self, name: &str, event: &str, priority: u8) {
        if let Some(f) = &self.fifos {
            f.vrrp(&fifo::event_line(name, event, priority));
        }
    }

    /// A split brain began or ended on an instance (e-mail only: keepalived's FIFO has
    /// no such line).
    pub fn split_brain(&self, name: &str, began: bool, detail: &str, smtp_alert: Option<bool>) {
        if let Some(m) = &self.mailer {
            let alert = Alert::SplitBrain {
                name: name.to_string(),
                began,
                detail: detail.to_string(),
            };
            m.send(alert, smtp_alert);
        }
    }

    /// A real server went up or down; `body` is its checker's e-mail text.
    pub fn real_server(
        &self,
        real: Endpoint,
        service: Endpoint,
        up: bool,
        body: String,
        smtp_alert: Option<bool>,
    ) {
        if let Some(f) = &self.fifos {
            f.lvs(&fifo::rs_line(real, service, up));
        }
        if let Some(m) = &self.mailer {
            let alert = Alert::RealServer {
                real,
                service,
                up,
                body,
            };
            m.send(alert, smtp_alert);
        }
    }

    /// A virtual server gained or lost its quorum; `body` is the e-mail text.
    pub fn virtual_server(
        &self,
        service: Endpoint,
        up: bool,
        body: String,
        smtp_alert: Option<bool>,
    ) {
        if let Some(f) = &self.fifos {
            f.lvs(&fifo::vs_line(service, up));
        }
        if let Some(m) = &self.mailer {
            m.send(Alert::VirtualServer { service, up, body }, smtp_alert);
        }
    }
}

/// An instance's or group's way to report its transitions, with its own `smtp_alert`.
#[derive(Clone, Debug)]
pub struct Reporter {
    pub alerts: Alerts,
    pub smtp_alert: Option<bool>,
}
