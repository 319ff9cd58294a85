//! Notify scripts, as keepalived runs them: on a transition to MASTER, BACKUP or FAULT
//! (and STOP on shutdown), the state's own script (`notify_master`, ...) and the generic
//! `notify` script with the arguments `INSTANCE|GROUP name STATE priority`.
//!
//! Scripts run on a worker task per instance or group, in transition order, never
//! blocking the protocol; each has the script timeout and runs as the script user.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::alerts::{email::VrrpState, Reporter};
use crate::script::{self, Script};

/// What the scripts are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    pub fn word(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

/// Whose scripts these are (the generic script's first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Instance,
    Group,
}

impl Subject {
    fn word(self) -> &'static str {
        match self {
            Subject::Instance => "INSTANCE",
            Subject::Group => "GROUP",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
    pub generic: Option<String>,
    /// `notify_master_rx_lower_pri` (instances only).
    pub master_rx_lower_pri: Option<String>,
}

impl NotifyScripts {
    fn for_state(&self, state: NotifyState) -> Option<&String> {
        match state {
            NotifyState::Master => self.master.as_ref(),
            NotifyState::Backup => self.backup.as_ref(),
            NotifyState::Fault => self.fault.as_ref(),
            NotifyState::Stop => self.stop.as_ref(),
        }
    }

    /// The scripts to run for a transition, in keepalived's order (the state's own
    /// script, then the generic one with its four arguments).
    pub fn jobs(
        &self,
        subject: Subject,
        name: &str,
        state: NotifyState,
        priority: u8,
        timeout: Duration,
        user: Option<&str>,
    ) -> Vec<Script> {
        let mut jobs = Vec::new();
        let user = user.map(str::to_string);
        if let Some(cmd) = self.for_state(state) {
            jobs.push(Script {
                command: cmd.clone(),
                args: Vec::new(),
                timeout,
                user: user.clone(),
            });
        }
        if let Some(cmd) = &self.generic {
            jobs.push(Script {
                command: cmd.clone(),
                args: vec![
                    subject.word().to_string(),
                    name.to_string(),
                    state.word().to_string(),
                    priority.to_string(),
                ],
                timeout,
                user,
            });
        }
        jobs
    }
}

/// Runs one instance's (or group's) notify scripts in order on a worker task.
#[derive(Clone)]
pub struct Notifier {
    subject: Subject,
    name: String,
    scripts: NotifyScripts,
    timeout: Duration,
    user: Option<String>,
    /// Where e-mail alerts and notify-FIFO lines go.
    report: Option<Reporter>,
    tx: mpsc::UnboundedSender<Vec<Script>>,
}

impl Notifier {
    /// Must be called inside a tokio runtime.
    pub fn spawn(
        subject: Subject,
        name: &str,
        scripts: NotifyScripts,
        timeout: Duration,
        user: Option<String>,
        report: Option<Reporter>,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Script>>();
        let owner = name.to_string();
        tokio::spawn(async move {
            while let Some(jobs) = rx.recv().await {
                for job in jobs {
                    let outcome = script::run(&job).await;
                    if outcome.success() {
                        info!(owner, command = %job.command, args = ?job.args, "notify script done");
                    } else {
                        warn!(owner, command = %job.command, args = ?job.args, outcome = %outcome.describe(), "notify script failed");
                    }
                }
            }
        });
        Self {
            subject,
            name: name.to_string(),
            scripts,
            timeout,
            user,
            report,
            tx,
        }
    }

    /// `notify_split_brain`: the script with keepalived's four arguments (`INSTANCE name
    /// SPLIT_BRAIN|SPLIT_BRAIN_END priority`) and what is known of the other node (its
    /// MAC, its address, the VIP it answered for; `-` when unknown), after any script
    /// already queued.
    pub fn split_brain(&self, command: &str, began: bool, priority: u8, about: [String; 3]) {
        let word = if began {
            "SPLIT_BRAIN"
        } else {
            "SPLIT_BRAIN_END"
        };
        let mut args = vec![
            self.subject.word().to_string(),
            self.name.clone(),
            word.to_string(),
            priority.to_string(),
        ];
        args.extend(about);
        let _ = self.tx.send(vec![Script {
            command: command.to_string(),
            args,
            timeout: self.timeout,
            user: self.user.clone(),
        }]);
    }

    /// keepalived's `MASTER_RX_LOWER_PRI` event: this MASTER heard a lower-priority
    /// advert. The FIFO line (`INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150`, our priority)
    /// and `notify_master_rx_lower_pri` without arguments, as keepalived's
    /// `send_event_notify`.
    pub fn heard_lower_priority(&self, priority: u8) {
        if let Some(r) = &self.report {
            r.alerts
                .vrrp_event(&self.name, "MASTER_RX_LOWER_PRI", priority);
        }
        if let Some(cmd) = &self.scripts.master_rx_lower_pri {
            let _ = self.tx.send(vec![Script {
                command: cmd.clone(),
                args: Vec::new(),
                timeout: self.timeout,
                user: self.user.clone(),
            }]);
        }
    }

    pub fn notify(&self, state: NotifyState, priority: u8) {
        if let Some(r) = &self.report {
            let state = match state {
                NotifyState::Master => VrrpState::Master,
                NotifyState::Backup => VrrpState::Backup,
                NotifyState::Fault => VrrpState::Fault,
                NotifyState::Stop => VrrpState::Stop,
            };
            let group = self.subject == Subject::Group;
            r.alerts
                .vrrp(group, &self.name, state, priority, r.smtp_alert);
        }
        let jobs = self.scripts.jobs(
            self.subject,
            &self.name,
            state,
            priority,
            self.timeout,
            self.user.as_deref(),
        );
        if !jobs.is_empty() {
            // The worker only stops when every sender is gone.
            let _ = self.tx.send(jobs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_follow_keepalived_conventions() {
        let scripts = NotifyScripts {
            master: Some("/etc/lb/notify.sh master".into()),
            generic: Some("/etc/lb/notify.sh".into()),
            ..Default::default()
        };
        let t = Duration::from_secs(5);
        let jobs = scripts.jobs(
            Subject::Instance,
            "VI_1",
            NotifyState::Master,
            100,
            t,
            Some("nobody"),
        );
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].command, "/etc/lb/notify.sh master");
        assert!(jobs[0].args.is_empty());
        assert_eq!(jobs[1].args, vec!["INSTANCE", "VI_1", "MASTER", "100"]);
        assert_eq!(jobs[1].user.as_deref(), Some("nobody"));
        let jobs = scripts.jobs(Subject::Group, "G1", NotifyState::Fault, 0, t, None);
        assert_eq!(jobs.len(), 1, "no notify_fault: only the generic script");
        assert_eq!(jobs[0].args, vec!["GROUP", "G1", "FAULT", "0"]);
    }

    /// Runs `events` on a notifier whose scripts (made by `scripts` from the log file's
    /// path) append to a log; the log once it has `lines` lines (or after 2 s).
    async fn logged(
        tag: &str,
        scripts: impl FnOnce(&str) -> NotifyScripts,
        events: impl FnOnce(&Notifier),
        lines: usize,
    ) -> String {
        let dir = std::env::temp_dir().join(format!("lb-notify-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let n = Notifier::spawn(
            Subject::Instance,
            "VI_1",
            scripts(&log.display().to_string()),
            Duration::from_secs(5),
            None,
            None,
        );
        events(&n);
        let mut content = String::new();
        for _ in 0..100 {
            content = std::fs::read_to_string(&log).unwrap_or_default();
            if content.lines().count() == lines {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
        content
    }

    #[tokio::test]
    async fn scripts_run_in_order() {
        let content = logged(
            "order",
            |log| NotifyScripts {
                generic: Some(format!("echo \"$@\" >> {log}; true")),
                ..Default::default()
            },
            |n| {
                n.notify(NotifyState::Backup, 100);
                n.notify(NotifyState::Master, 100);
                n.notify(NotifyState::Stop, 100);
            },
            3,
        )
        .await;
        assert_eq!(
            content,
            "INSTANCE VI_1 BACKUP 100\nINSTANCE VI_1 MASTER 100\nINSTANCE VI_1 STOP 100\n"
        );
    }

    #[tokio::test]
    async fn a_lower_priority_advert_runs_notify_master_rx_lower_pri_without_arguments() {
        let content = logged(
            "rx",
            |log| NotifyScripts {
                master_rx_lower_pri: Some(format!("echo \"rx $#\" >> {log}; true")),
                generic: Some(format!("echo \"$@\" >> {log}; true")),
                ..Default::default()
            },
            |n| {
                n.heard_lower_priority(150);
                n.notify(NotifyState::Master, 150);
            },
            2,
        )
        .await;
        // Only its own script, with no arguments; the generic one is for states.
        assert_eq!(content, "rx 0\nINSTANCE VI_1 MASTER 150\n");
    }
}
