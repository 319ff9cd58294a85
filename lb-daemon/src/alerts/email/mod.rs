//! keepalived's e-mail alerts (`notification_email`, `smtp_server`, `smtp_alert`): VRRP
//! transitions, sync-group transitions, real servers up and down, virtual servers
//! gaining and losing quorum.
//!
//! Alerts go through a bounded queue to one sender task, so a slow or dead SMTP server
//! never delays VRRP or the checks: a full queue drops the alert (counted and logged),
//! a failed delivery is logged and counted. Nothing is sent unless both recipients and
//! a server are configured (keepalived's rule).

pub mod message;
pub mod smtp;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, RwLock,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Email, Global, SmtpServer};
pub use message::{Alert, CheckFamily, Endpoint, VrrpState};

/// Alerts waiting to be sent; more are dropped (a dead server must not grow memory).
pub const QUEUE_LEN: usize = 64;

/// Everything a delivery needs, resolved from `[global]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub router_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub server: SmtpServer,
    pub helo: String,
    pub timeout: Duration,
    /// The global `smtp_alert*` defaults and `no_email_faults`.
    pub policy: Email,
}

impl Settings {
    /// `None` when no e-mail is configured (no recipients or no server).
    pub fn from_config(global: &Global, host_name: &str) -> Option<Settings> {
        let email = &global.email;
        let server = email.smtp_server.clone()?;
        if email.to.is_empty() {
            return None;
        }
        Some(Settings {
            router_id: global
                .router_id
                .clone()
                .unwrap_or_else(|| host_name.to_string()),
            // keepalived: USER@HOSTNAME, the user the daemon runs as.
            from: email
                .from
                .clone()
                .unwrap_or_else(|| format!("{}@{host_name}", user_name())),
            to: email.to.clone(),
            server,
            helo: email
                .helo_name
                .clone()
                .unwrap_or_else(|| host_name.to_string()),
            timeout: email.connect_timeout,
            policy: email.clone(),
        })
    }
}

fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

/// The host name (keepalived's default router_id, HELO name and sender domain).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// What became of the alerts, for metrics and status.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    /// The queue was full (the server is slow or dead).
    pub dropped: AtomicU64,
}

struct Shared {
    settings: RwLock<Option<Settings>>,
    counters: Counters,
    /// Queued or being delivered (for [`Mailer::flush`]).
    pending: AtomicU64,
}

/// A handle to the sender task: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Mailer {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Alert>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

impl Mailer {
    /// Starts the sender task (inside a tokio runtime).
    pub fn start(settings: Option<Settings>) -> Mailer {
        let shared = Arc::new(Shared {
            settings: RwLock::new(settings),
            counters: Counters::default(),
            pending: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        tokio::spawn(sender(Arc::clone(&shared), rx));
        Mailer { shared, tx }
    }

    /// New settings after a reload (alerts already queued use them too).
    pub fn configure(&self, settings: Option<Settings>) {
        *self
            .shared
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> Option<Settings> {
        self.shared
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues `alert` if its sender's `smtp_alert` (`own`; unset: the global defaults)
    /// says so; returns at once. Dropped (and counted) if the queue is full.
    pub fn send(&self, alert: Alert, own: Option<bool>) {
        let Some(settings) = self.settings() else {
            return;
        };
        let policy = &settings.policy;
        let wanted = match &alert {
            Alert::Instance { state, .. } | Alert::Group { state, .. } => {
                policy.vrrp_alerts(own) && !(*state == VrrpState::Fault && policy.no_email_faults)
            }
            Alert::SplitBrain { .. } => policy.vrrp_alerts(own),
            Alert::RealServer { .. } => policy.real_server_alerts(own),
            Alert::VirtualServer { .. } => policy.virtual_server_alerts(own),
        };
        if !wanted {
            return;
        }
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(alert).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            warn!(
                server = %settings.server,
                queued = QUEUE_LEN,
                "e-mail alert dropped: the queue is full (is the SMTP server slow or down?)"
            );
        }
    }

    /// Waits until the queued alerts are delivered (or failed), at most `bound`: at
    /// stop, so the last transitions' alerts still go out.
    pub async fn flush(&self, bound: Duration) {
        let _ = tokio::time::timeout(bound, async {
            while self.shared.pending.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }
}

async fn sender(shared: Arc<Shared>, mut rx: mpsc::Receiver<Alert>) {
    while let Some(alert) = rx.recv().await {
        deliver(&shared, alert).await;
        shared.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn deliver(shared: &Shared, alert: Alert) {
    {
        let settings = shared
            .settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(s) = settings else {
            return;
        };
        let composed = message::compose(&s.router_id, &alert);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let data = message::data(&message::rfc5322_date(now), &s.from, &s.to, &composed);
        let dialogue = smtp::Dialogue::new(&s.helo, &s.from, &s.to, data);
        let server = s.server.to_string();
        match smtp::deliver(&server, &s.server.host, s.server.port, s.timeout, dialogue).await {
            Ok(()) => {
                shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                info!(%server, subject = %composed.subject, "e-mail alert sent");
            }
            Err(e) => {
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(%server, subject = %composed.subject, error = %e, "e-mail alert not sent");
            }
        }
    }
}
