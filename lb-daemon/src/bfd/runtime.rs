//! The daemon's BFD: the `[[bfd_instance]]` sessions of the configuration, one
//! [`session::run_dynamic`] task per address family in use, and one merged
//! [`Snapshot`] that `track_bfd` (VRRP), `BFD_CHECK` (health), status and metrics read.
//! A reload hands each task its new set: unchanged sessions keep running untouched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fsm::{State, Timers};
use super::session::{self, SessionSpec, SessionStatus, Snapshot, CONTROL_PORT};
use crate::config::{BfdInstance, Config};

/// The session a configured `bfd_instance` runs.
pub fn spec(b: &BfdInstance) -> SessionSpec {
    let us = |d: std::time::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    SessionSpec {
        name: b.name.clone(),
        neighbor: b.neighbor_ip,
        source: b.source_ip,
        timers: Timers {
            min_rx_us: us(b.min_rx),
            min_tx_us: us(b.min_tx),
            idle_tx_us: us(b.idle_tx),
            multiplier: b.multiplier,
        },
        passive: b.passive,
        ttl: b.ttl,
    }
}

/// The sessions of one family (`v6`) in `config`.
pub fn specs(config: &Config, v6: bool) -> Vec<SessionSpec> {
    config
        .bfd_instances
        .iter()
        .filter(|b| b.neighbor_ip.is_ipv6() == v6)
        .map(spec)
        .collect()
}

/// The session `name` of `snapshot`.
pub fn session<'s>(snapshot: &'s Snapshot, name: &str) -> Option<&'s SessionStatus> {
    snapshot.sessions.iter().find(|s| s.name == name)
}

/// Whether the session `name` is Up (a session not running is not).
pub fn is_up(snapshot: &Snapshot, name: &str) -> bool {
    session(snapshot, name).is_some_and(|s| s.state == State::Up)
}

/// Both families' snapshots as one: sessions IPv4 first, drops summed.
pub fn merge(parts: &[Snapshot; 2]) -> Snapshot {
    let mut out = Snapshot::default();
    for p in parts {
        out.sessions.extend(p.sessions.iter().cloned());
        for (reason, n) in &p.drops {
            *out.drops.entry(reason).or_default() += n;
        }
    }
    out
}

struct Family {
    specs: watch::Sender<Vec<SessionSpec>>,
    tasks: [JoinHandle<()>; 2],
}

struct Merged {
    parts: Mutex<[Snapshot; 2]>,
    out: watch::Sender<Snapshot>,
}

/// The running BFD sessions.
pub struct Bfd {
    families: [Option<Family>; 2],
    merged: Arc<Merged>,
    /// Keeps the merged channel open while nothing else listens.
    states: watch::Receiver<Snapshot>,
}

impl Bfd {
    /// Starts the sessions of `config` (none: no socket is opened).
    pub fn start(config: &Config) -> Result<Bfd> {
        let (out, states) = watch::channel(Snapshot::default());
        let mut bfd = Bfd {
            families: [None, None],
            merged: Arc::new(Merged {
                parts: Mutex::new([Snapshot::default(), Snapshot::default()]),
                out,
            }),
            states,
        };
        bfd.apply(config)?;
        Ok(bfd)
    }

    /// Every session's state, counters and drops, updated on each change.
    pub fn states(&self) -> watch::Receiver<Snapshot> {
        self.states.clone()
    }

    /// Hands each family its new set of sessions; a family used for the first time gets
    /// its receive socket (UDP 3784) here.
    pub fn apply(&mut self, config: &Config) -> Result<()> {
        for v6 in [false, true] {
            let wanted = specs(config, v6);
            let slot = &mut self.families[usize::from(v6)];
            match slot {
                Some(f) => {
                    f.specs.send_if_modified(|s| {
                        let changed = *s != wanted;
                        *s = wanted;
                        changed
                    });
                }
                None if wanted.is_empty() => {}
                None => *slot = Some(spawn(&self.merged, v6, wanted)?),
            }
        }
        Ok(())
    }
}

/// One family's task: its receive socket, its sessions, its share of the merged view.
fn spawn(merged: &Arc<Merged>, v6: bool, wanted: Vec<SessionSpec>) -> Result<Family> {
    {
        let any: IpAddr = if v6 {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        let receiver = session::bind_receiver(any, CONTROL_PORT)
            .with_context(|| format!("BFD: binding UDP {any}:{CONTROL_PORT}"))?;
        let (specs, specs_rx) = watch::channel(wanted);
        let (out, mut family_rx) = watch::channel(Snapshot::default());
        let run = tokio::spawn(async move {
            if let Err(e) = session::run_dynamic(specs_rx, receiver, CONTROL_PORT, out).await {
                tracing::error!(error = %e, "BFD receive failed: the sessions stopped");
            }
        });
        let merged = Arc::clone(merged);
        let idx = usize::from(v6);
        let forward = tokio::spawn(async move {
            while family_rx.changed().await.is_ok() {
                let part = family_rx.borrow_and_update().clone();
                let snapshot = {
                    let Ok(mut parts) = merged.parts.lock() else {
                        return;
                    };
                    parts[idx] = part;
                    merge(&parts)
                };
                merged.out.send_replace(snapshot);
            }
        });
        Ok(Family {
            specs,
            tasks: [run, forward],
        })
    }
}

impl Bfd {
    pub fn stop(self) {
        for f in self.families.into_iter().flatten() {
            for t in f.tasks {
                t.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn status(name: &str, state: State) -> SessionStatus {
        SessionStatus {
            name: name.into(),
            neighbor: "10.0.0.1".parse().unwrap(),
            state,
            remote_discr: 0,
            tx_interval_us: None,
            rx_interval_us: 0,
            detection_time_us: None,
            last_down: None,
            transitions: 0,
            packets_in: 0,
            packets_out: 0,
        }
    }

    #[test]
    fn merge_concatenates_sessions_and_sums_drops() {
        let a = Snapshot {
            sessions: vec![status("a", State::Up)],
            drops: HashMap::from([("bad_ttl", 2)]),
        };
        let b = Snapshot {
            sessions: vec![status("b", State::Down)],
            drops: HashMap::from([("bad_ttl", 1), ("no_session", 4)]),
        };
        let m = merge(&[a, b]);
        assert_eq!(m.sessions.len(), 2);
        assert_eq!(m.drops["bad_ttl"], 3);
        assert_eq!(m.drops["no_session"], 4);
        assert!(is_up(&m, "a"));
        assert!(!is_up(&m, "b"));
        assert!(!is_up(&m, "missing"), "a session not running is not Up");
    }
}
