//! Running the checks: one task per virtual service, which runs its checks (each started
//! after a random `warmup` spread so thousands of checks do not fire together, then
//! every `delay_loop`: [`Schedule`], one timer per service rather than a task and a timer
//! per check), owns its [`ServiceHealth`], logs each verdict change with its reason, runs
//! notify/quorum scripts, and sends the new desired backend set to the data-plane owner
//! the moment it changes. FILE_CHECK and BFD_CHECK, which have no schedule, run as their
//! own small tasks and send their outcomes to it. It starts from a [`HealthPlan`]
//! (`health::from_config`) and never reads the configuration itself.

use std::{
    collections::HashMap,
    future::Future,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{stream::FuturesUnordered, StreamExt};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{info, warn};

use super::{
    checkers::{self, Begun},
    from_config::{HealthPlan, PlannedCheck, ServiceAlerts, ServicePlan, ServiceScripts},
    schedule::Schedule,
    spec::{CheckKind, FileCheck, Outcome},
    verdict::{DesiredBackend, HealthEvent, ServiceHealth},
};
use crate::alerts::{
    email::{message, CheckFamily},
    Alerts,
};
use crate::dataplane::ServiceId;
use crate::script::{self, Script};

/// The new desired backend set of a service (sent on every change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub service: ServiceId,
    pub backends: Vec<DesiredBackend>,
    pub quorum_up: bool,
}

/// What status shows about one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealStatus {
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub healthy: bool,
    pub last_result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub service: ServiceId,
    pub quorum_up: bool,
    pub reals: Vec<RealStatus>,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub checks: AtomicU64,
    pub failures: AtomicU64,
    pub verdict_changes: AtomicU64,
    /// Check durations, for the histogram (sum in microseconds and count per bucket).
    pub duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    pub duration_sum_us: AtomicU64,
}

/// Upper bounds (seconds) of the check-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

impl Counters {
    fn observe(&self, outcome: &Outcome) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !outcome.up {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let secs = outcome.duration.as_secs_f64();
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_sum_us
            .fetch_add(outcome.duration.as_micros() as u64, Ordering::Relaxed);
    }
}

pub struct Health {
    pub status: Vec<watch::Receiver<ServiceStatus>>,
    pub counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Health {
    /// Starts checking every service of `plan` (see `from_config::plan`); updates go
    /// to `updates`, the initial desired set of each service first; verdict changes
    /// also to `alerts` (e-mail, notify FIFOs).
    pub fn run(plan: HealthPlan, updates: mpsc::UnboundedSender<Update>, alerts: Alerts) -> Health {
        let counters = Arc::new(Counters::default());
        let mut tasks = Vec::new();
        let mut status = Vec::new();
        for service in plan.services {
            let (rx, mut t) = start_service(
                service,
                updates.clone(),
                Arc::clone(&counters),
                plan.script_user.clone(),
                plan.script_timeout,
                alerts.clone(),
                plan.bfd.clone(),
            );
            status.push(rx);
            tasks.append(&mut t);
        }
        Health {
            status,
            counters,
            tasks,
        }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

struct Finished {
    real: usize,
    checker: usize,
    outcome: Outcome,
}

fn start_service(
    plan: ServicePlan,
    updates: mpsc::UnboundedSender<Update>,
    counters: Arc<Counters>,
    script_user: Option<String>,
    script_timeout: Duration,
    sink: Alerts,
    bfd: Option<watch::Receiver<crate::bfd::session::Snapshot>>,
) -> (watch::Receiver<ServiceStatus>, Vec<JoinHandle<()>>) {
    let ServicePlan {
        service,
        verdict,
        checks,
        scripts,
        alerts,
    } = plan;
    let families = checks
        .iter()
        .map(|c| ((c.real, c.checker), family(&c.spec.kind)))
        .collect();
    let (health, startup) = ServiceHealth::new(verdict);
    let (status_tx, status_rx) = watch::channel(status_of(service, &health));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let mut scheduled = Vec::new();
    for check in checks {
        if let CheckKind::File(file) = &check.spec.kind {
            tasks.push(tokio::spawn(file_loop(
                check.real,
                check.checker,
                file.clone(),
                done_tx.clone(),
            )));
        } else if let CheckKind::Bfd(b) = &check.spec.kind {
            tasks.push(tokio::spawn(bfd_loop(
                check.real,
                check.checker,
                b.name.clone(),
                bfd.clone(),
                done_tx.clone(),
            )));
        } else {
            scheduled.push(check);
        }
    }
    drop(done_tx);
    let now = Instant::now().into_std();
    let schedule = Schedule::new(scheduled.iter().map(|c| {
        (
            now + spread(c.spec.common.warmup),
            c.spec.common.delay_loop.max(MIN_DELAY_LOOP),
        )
    }));
    let owner = ServiceOwner {
        service,
        health,
        scripts,
        script_user,
        script_timeout,
        updates,
        status: status_tx,
        counters,
        checks: scheduled,
        schedule,
        reports: ServiceReports {
            sink,
            alerts,
            families,
        },
    };
    tasks.push(tokio::spawn(owner.run(startup, done_rx)));
    (status_rx, tasks)
}

/// A random delay in `[0, max)` (warmup spread).
fn spread(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut b = [0u8; 8];
    if getrandom_fill(&mut b).is_err() {
        return Duration::ZERO;
    }
    let frac = (u64::from_ne_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(frac)
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// The shortest `delay_loop` honoured (a smaller one would spin).
const MIN_DELAY_LOOP: Duration = Duration::from_millis(10);

/// FILE_CHECK: the file is watched, and each new value is an outcome at once (keepalived
/// reacts to inotify events; there is no schedule). Not counted as checks.
async fn file_loop(
    real: usize,
    checker: usize,
    file: FileCheck,
    done: mpsc::UnboundedSender<Finished>,
) {
    let mut value = crate::track_file::watch(file.file.clone());
    loop {
        let current = *value.borrow_and_update();
        let outcome = checkers::file_outcome(&file, Some(current));
        if done
            .send(Finished {
                real,
                checker,
                outcome,
            })
            .is_err()
        {
            return;
        }
        tokio::select! {
            changed = value.changed() => if changed.is_err() { return },
            _ = done.closed() => return,
        }
    }
}

/// BFD_CHECK: each change of the session's state is an outcome at once (keepalived's
/// checker hears the BFD process's events; there is no schedule). Not counted as checks.
async fn bfd_loop(
    real: usize,
    checker: usize,
    name: String,
    states: Option<watch::Receiver<crate::bfd::session::Snapshot>>,
    done: mpsc::UnboundedSender<Finished>,
) {
    let mut states = states;
    let mut last = None;
    loop {
        let state = states.as_mut().and_then(|rx| {
            crate::bfd::runtime::session(&rx.borrow_and_update(), &name).map(|s| s.state)
        });
        let up = state == Some(crate::bfd::fsm::State::Up);
        if last != Some(up) {
            last = Some(up);
            let outcome = checkers::bfd_outcome(&name, state);
            if done
                .send(Finished {
                    real,
                    checker,
                    outcome,
                })
                .is_err()
            {
                return;
            }
        }
        let changed = match states.as_mut() {
            Some(rx) => tokio::select! {
                changed = rx.changed() => changed.is_ok(),
                _ = done.closed() => return,
            },
            None => false,
        };
        if !changed {
            done.closed().await;
            return;
        }
    }
}

struct ServiceOwner {
    service: ServiceId,
    health: ServiceHealth,
    scripts: ServiceScripts,
    script_user: Option<String>,
    script_timeout: Duration,
    updates: mpsc::UnboundedSender<Update>,
    status: watch::Sender<ServiceStatus>,
    counters: Arc<Counters>,
    /// The checks this task runs, by [`Schedule`] index.
    checks: Vec<PlannedCheck>,
    schedule: Schedule,
    reports: ServiceReports,
}

/// A service's alerts (e-mail, notify FIFOs): where they go, what they name, which
/// checker is which.
struct ServiceReports {
    sink: Alerts,
    alerts: ServiceAlerts,
    families: HashMap<(usize, usize), CheckFamily>,
}

impl ServiceReports {
    /// keepalived's alert for a verdict change that `checker` of `real` caused.
    fn on_event(&self, event: &HealthEvent, checker: usize) {
        let a = &self.alerts;
        match event {
            HealthEvent::RealUp { real, .. } | HealthEvent::RealDown { real, .. } => {
                let Some((endpoint, own)) = a.reals.get(*real) else {
                    return;
                };
                let up = matches!(event, HealthEvent::RealUp { .. });
                let family = self
                    .families
                    .get(&(*real, checker))
                    .copied()
                    .unwrap_or(CheckFamily::Tcp);
                let body = message::check_body(family, up);
                self.sink.real_server(*endpoint, a.service, up, body, *own);
            }
            HealthEvent::QuorumUp { alive_weight } | HealthEvent::QuorumDown { alive_weight } => {
                let up = matches!(event, HealthEvent::QuorumUp { .. });
                let body = message::quorum_body(up, a.quorum, a.hysteresis, *alive_weight);
                self.sink.virtual_server(a.service, up, body, a.smtp_alert);
            }
            HealthEvent::WeightChanged { .. } | HealthEvent::DesiredChanged => {}
        }
    }
}

/// How keepalived words a checker's alerts.
fn family(kind: &CheckKind) -> CheckFamily {
    match kind {
        CheckKind::Tcp => CheckFamily::Tcp,
        CheckKind::Http(_) | CheckKind::Ssl(_) => CheckFamily::Http,
        CheckKind::Misc(_) => CheckFamily::Misc,
        CheckKind::Smtp(_) => CheckFamily::Smtp,
        CheckKind::Dns(_) => CheckFamily::Dns,
        CheckKind::Udp(_) => CheckFamily::Udp,
        CheckKind::Ping => CheckFamily::Ping,
        CheckKind::File(_) => CheckFamily::File,
        CheckKind::Bfd(_) => CheckFamily::Bfd,
    }
}

impl ServiceOwner {
    async fn run(mut self, startup: Vec<HealthEvent>, mut done: mpsc::UnboundedReceiver<Finished>) {
        self.handle(startup);
        self.publish();
        let mut running = FuturesUnordered::new();
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_at = None;
        let mut events_open = true;
        loop {
            let now = Instant::now().into_std();
            while let Some(i) = self.schedule.take_due(now) {
                if let Some(check) = self.start(i) {
                    running.push(check);
                }
            }
            let next = self.schedule.next_due();
            if next != timer_at {
                if let Some(at) = next {
                    timer.as_mut().reset(Instant::from_std(at));
                }
                timer_at = next;
            }
            if !events_open && running.is_empty() && next.is_none() {
                // Nothing scheduled and no FILE/BFD checker left: nothing will happen.
                return;
            }
            tokio::select! {
                Some((i, outcome)) = running.next(), if !running.is_empty() => {
                    self.conclude(i, &outcome);
                }
                f = done.recv(), if events_open => match f {
                    Some(f) => self.record(f.real, f.checker, &f.outcome),
                    None => events_open = false,
                },
                () = &mut timer, if timer_at.is_some() => timer_at = None,
            }
        }
    }

    /// Starts check `i`: `None` if it ended at once (concluded here, see
    /// [`checkers::begin`]), else the future that ends it. keepalived retries only while
    /// the real is up: a down real is probed once.
    fn start(
        &mut self,
        i: usize,
    ) -> Option<impl Future<Output = (usize, Outcome)> + Send + 'static> {
        let c = &self.checks[i];
        let up = self.health.real_up(c.real);
        match checkers::begin(&c.spec, c.target, up) {
            Begun::Ended(outcome) => {
                self.conclude(i, &outcome);
                None
            }
            Begun::Running(running) => {
                let spec = Arc::clone(&c.spec);
                Some(async move { (i, running.finish(&spec).await) })
            }
        }
    }

    /// Check `i` ended with `outcome`: its next run is scheduled and the outcome recorded.
    fn conclude(&mut self, i: usize, outcome: &Outcome) {
        self.schedule.finished(i, Instant::now().into_std());
        self.counters.observe(outcome);
        let (real, checker) = (self.checks[i].real, self.checks[i].checker);
        self.record(real, checker, outcome);
    }

    /// One outcome of `checker` of `real`: the verdict, its news, the status.
    fn record(&mut self, real: usize, checker: usize, outcome: &Outcome) {
        let was_up = self.health.real_up(real);
        let events = self.health.record(real, checker, outcome);
        for event in &events {
            // A real confirmed in the state it started in (alpha) is no news.
            let news = match event {
                HealthEvent::RealUp { .. } => !was_up,
                HealthEvent::RealDown { .. } => was_up,
                _ => true,
            };
            if news {
                self.reports.on_event(event, checker);
            }
        }
        // Status first: whoever sees the update may look at the status at once. Only
        // this real's entry can change (a full rebuild per check would cost O(reals)),
        // and most checks change nothing: then nothing is allocated or notified.
        let health = &self.health;
        let quorum_up = health.quorum_up();
        self.status.send_if_modified(|s| {
            let mut changed = s.quorum_up != quorum_up;
            s.quorum_up = quorum_up;
            if let Some(slot) = s.reals.get_mut(real) {
                changed |= refresh(slot, health, real);
            }
            changed
        });
        if !events.is_empty() {
            self.handle(events);
        }
    }

    fn publish(&self) {
        let _ = self.updates.send(Update {
            service: self.service,
            backends: self.health.desired(),
            quorum_up: self.health.quorum_up(),
        });
    }

    fn handle(&mut self, events: Vec<HealthEvent>) {
        for event in &events {
            match event {
                HealthEvent::DesiredChanged => self.publish(),
                HealthEvent::RealUp { .. }
                | HealthEvent::RealDown { .. }
                | HealthEvent::QuorumUp { .. }
                | HealthEvent::QuorumDown { .. } => {
                    self.counters
                        .verdict_changes
                        .fetch_add(1, Ordering::Relaxed);
                    let line = self.health.describe(event);
                    if matches!(
                        event,
                        HealthEvent::RealDown { .. } | HealthEvent::QuorumDown { .. }
                    ) {
                        warn!(service = %self.health.name(), "{line}");
                    } else {
                        info!(service = %self.health.name(), "{line}");
                    }
                }
                HealthEvent::WeightChanged { .. } => {
                    info!(service = %self.health.name(), "{}", self.health.describe(event));
                }
            }
            if let Some(cmd) = event.script().and_then(|s| self.scripts.command(s)) {
                let job = Script {
                    command: cmd.clone(),
                    args: Vec::new(),
                    timeout: self.script_timeout,
                    user: self.script_user.clone(),
                };
                tokio::spawn(async move {
                    let outcome = script::run(&job).await;
                    if !outcome.success() {
                        warn!(command = %job.command, outcome = %outcome.describe(), "health script failed");
                    }
                });
            }
        }
    }
}

/// Real `i`'s first status entry: its place, and the rest as [`refresh`] keeps it.
fn real_status(health: &ServiceHealth, i: usize) -> Option<RealStatus> {
    let (address, port) = health.real_place(i)?;
    let mut slot = RealStatus {
        address,
        port,
        weight: 0,
        healthy: false,
        last_result: None,
    };
    refresh(&mut slot, health, i);
    Some(slot)
}

/// Brings `slot` up to date with real `i`; true if anything changed.
fn refresh(slot: &mut RealStatus, health: &ServiceHealth, i: usize) -> bool {
    let weight = health.real_weight(i).unwrap_or(0);
    let healthy = health.real_up(i);
    let reason = health.last_reason(i);
    if slot.weight == weight && slot.healthy == healthy && slot.last_result.as_deref() == reason {
        return false;
    }
    slot.weight = weight;
    slot.healthy = healthy;
    slot.last_result = reason.map(str::to_string);
    true
}

fn status_of(service: ServiceId, health: &ServiceHealth) -> ServiceStatus {
    ServiceStatus {
        service,
        quorum_up: health.quorum_up(),
        reals: (0..health.real_count())
            .filter_map(|i| real_status(health, i))
            .collect(),
    }
}
