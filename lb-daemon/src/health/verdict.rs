//! Health verdicts, keepalived's way (2.2.7 `check/ipwrapper.c`, `check/check_api.c`):
//! checkers report one finished check at a time (retries already done by the IO layer);
//! this decides which real servers are up, each virtual service's quorum, the backend
//! set the data plane should carry, and which notify scripts to run.
//!
//! Pure state machines: no IO, no clock. The caller feeds [`ServiceHealth::record`] and
//! acts on the [`HealthEvent`]s it returns.
//!
//! keepalived's checkers have no rise/fall (only `retry` inside one check); here every
//! checker has the rise/fall hysteresis of keepalived's `vrrp_script`
//! (`vrrp_scheduler.c`): `fall` consecutive failures take an up checker down, `rise`
//! consecutive successes bring a down one up. With the defaults (1, 1) this is exactly
//! keepalived's checker behaviour.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use super::quorum::Quorum;
use super::spec::{Common, Outcome};

/// A checker's hysteresis parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerParams {
    /// Consecutive successes to bring a down checker up (0 is read as 1).
    pub rise: u32,
    /// Consecutive failures to take an up checker down (0 is read as 1).
    pub fall: u32,
    /// keepalived's `alpha` (checker, else real server, else virtual server): start down.
    pub alpha: bool,
}

impl CheckerParams {
    /// From a checker's common parameters; `alpha` comes from the configuration's
    /// inheritance (checker, real server, virtual server).
    pub fn from_common(common: &Common, alpha: bool) -> Self {
        CheckerParams {
            rise: common.rise,
            fall: common.fall,
            alpha,
        }
    }
}

/// One real server of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealConfig {
    pub addr: IpAddr,
    pub port: u16,
    /// The configured weight (keepalived's default is 1).
    pub weight: u32,
    /// Keep the real with weight 0 while it is down instead of removing it (resolved from
    /// the real server, else the virtual server).
    pub inhibit_on_failure: bool,
    /// One entry per checker, in the order the caller indexes them. A real without
    /// checkers is always up, as in keepalived.
    pub checkers: Vec<CheckerParams>,
}

/// `sorry_server`: used instead of the reals while the quorum is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: u16,
    /// `sorry_server_inhibit`: keep it with weight 0 while unused.
    pub inhibit: bool,
}

/// keepalived gives the sorry server weight 1 (check_data.c `alloc_ssvr`).
pub const SORRY_WEIGHT: u32 = 1;

/// The largest weight IPVS takes; keepalived clamps effective weights to it
/// (check_data.h `real_weight`).
pub const WEIGHT_LIMIT: u32 = i32::MAX as u32;

/// One virtual service's health configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// For logs.
    pub name: String,
    /// Minimum live weight (keepalived's default 1); see [`Quorum::new`] for corrections.
    pub quorum: u32,
    /// keepalived's default 0.
    pub hysteresis: u32,
    pub sorry_server: Option<SorryServer>,
    pub reals: Vec<RealConfig>,
    /// keepalived's global `rs_init_notifies`: run notify_up at start-up for the reals
    /// that start up (non-alpha).
    pub rs_init_notifies: bool,
}

/// One backend the data plane should carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredBackend {
    pub addr: IpAddr,
    pub port: u16,
    /// 0: present but given no new connections (inhibited).
    pub weight: u32,
    /// The sorry server rather than a real.
    pub sorry: bool,
}

/// What a call decided, in keepalived's order: weight, real state, quorum, then
/// whether the desired set changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// The real went up; `reason` is the outcome that completed it.
    RealUp {
        real: usize,
        reason: String,
    },
    /// The real went down, or (alpha mode) a checker's first check confirmed the down
    /// state it started in: keepalived runs notify_down then too, once per checker
    /// (check_api.c `update_svr_checker_state`).
    RealDown {
        real: usize,
        reason: String,
    },
    /// The real's effective weight changed (misc_dynamic), whether or not it is up.
    WeightChanged {
        real: usize,
        from: u32,
        to: u32,
    },
    /// `alive_weight`: the summed weight of the live reals.
    QuorumUp {
        alive_weight: u64,
    },
    QuorumDown {
        alive_weight: u64,
    },
    /// [`ServiceHealth::desired`] differs from before the call.
    DesiredChanged,
}

/// The notify script an event calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthScript {
    /// The real's `notify_up`.
    NotifyUp { real: usize },
    /// The real's `notify_down`.
    NotifyDown { real: usize },
    /// The service's `quorum_up`.
    QuorumUp,
    /// The service's `quorum_down`.
    QuorumDown,
}

impl HealthEvent {
    pub fn script(&self) -> Option<HealthScript> {
        match *self {
            HealthEvent::RealUp { real, .. } => Some(HealthScript::NotifyUp { real }),
            HealthEvent::RealDown { real, .. } => Some(HealthScript::NotifyDown { real }),
            HealthEvent::QuorumUp { .. } => Some(HealthScript::QuorumUp),
            HealthEvent::QuorumDown { .. } => Some(HealthScript::QuorumDown),
            HealthEvent::WeightChanged { .. } | HealthEvent::DesiredChanged => None,
        }
    }
}

/// A checker's hysteresis state: the current verdict and the streak against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Up, with this many consecutive failures so far.
    Up { failures: u32 },
    /// Down, with this many consecutive successes so far.
    Down { successes: u32 },
}

impl Verdict {
    /// keepalived: checkers start up, or down in alpha mode (check_data.c
    /// `validate_check_config`).
    pub fn initial(params: CheckerParams) -> Self {
        if params.alpha {
            Verdict::Down { successes: 0 }
        } else {
            Verdict::Up { failures: 0 }
        }
    }

    pub fn is_up(self) -> bool {
        matches!(self, Verdict::Up { .. })
    }

    /// After one more check: a result agreeing with the verdict resets the streak against
    /// it, so only consecutive results count.
    pub fn step(self, params: CheckerParams, success: bool) -> Self {
        match (self, success) {
            (Verdict::Up { .. }, true) => Verdict::Up { failures: 0 },
            (Verdict::Up { failures }, false) if failures + 1 >= params.fall.max(1) => {
                Verdict::Down { successes: 0 }
            }
            (Verdict::Up { failures }, false) => Verdict::Up {
                failures: failures + 1,
            },
            (Verdict::Down { successes }, true) if successes + 1 >= params.rise.max(1) => {
                Verdict::Up { failures: 0 }
            }
            (Verdict::Down { successes }, true) => Verdict::Down {
                successes: successes + 1,
            },
            (Verdict::Down { .. }, false) => Verdict::Down { successes: 0 },
        }
    }
}

#[derive(Debug, Clone)]
struct Checker {
    params: CheckerParams,
    verdict: Verdict,
    /// keepalived's `has_run`: the first check is special in alpha mode.
    has_run: bool,
    /// misc_dynamic: the weight this checker asked for, while it holds.
    dynamic: Option<u32>,
    /// FILE_CHECK: added to the configured weight, while it holds.
    offset: Option<i64>,
    reason: Option<Cow<'static, str>>,
    /// When `reason` was recorded (the service's record counter), to find the latest.
    seen: u64,
}

impl Checker {
    fn new(params: CheckerParams) -> Self {
        Checker {
            params,
            verdict: Verdict::initial(params),
            has_run: false,
            dynamic: None,
            offset: None,
            reason: None,
            seen: 0,
        }
    }

    /// Apply one outcome; true when it confirms an initial down state (alpha mode's
    /// first failed check).
    fn apply(&mut self, outcome: &Outcome, seen: u64) -> bool {
        let first = !self.has_run;
        let was_up = self.verdict.is_up();
        self.has_run = true;
        // Most checks repeat the last reason ("connected"): kept, not copied again.
        if self.reason.as_deref() != Some(&*outcome.reason) {
            self.reason = Some(outcome.reason.clone());
        }
        self.seen = seen;
        self.verdict = self.verdict.step(self.params, outcome.up);
        if outcome.up {
            // keepalived applies a success's weight at once, up or not yet
            // (check_misc.c `misc_check_child_thread`); exit 0 (None) restores the
            // configured weight.
            self.dynamic = outcome.weight;
            self.offset = outcome.offset;
        } else if !self.verdict.is_up() {
            self.offset = None;
            // A failed misc check drops its weight; while `fall` is not reached yet the
            // checker still holds, and so does its weight.
            self.dynamic = None;
        }
        first && !was_up && !outcome.up
    }
}

#[derive(Debug, Clone)]
struct Real {
    cfg: RealConfig,
    checkers: Vec<Checker>,
}

impl Real {
    fn new(cfg: RealConfig) -> Self {
        let checkers = cfg.checkers.iter().copied().map(Checker::new).collect();
        Real { cfg, checkers }
    }

    /// Up iff no checker is down (keepalived's `num_failed_checkers == 0`).
    fn up(&self) -> bool {
        self.checkers.iter().all(|c| c.verdict.is_up())
    }

    /// keepalived's effective weight: the configured weight plus each misc_dynamic
    /// checker's offset from it and each FILE_CHECK's value × weight (check_misc.c and
    /// track_file.c `cur_weight`), clamped as IPVS wants. With one dynamic checker this
    /// is simply the weight it asked for.
    fn weight(&self) -> u32 {
        let configured = i64::from(self.cfg.weight);
        let offsets: i64 = self
            .checkers
            .iter()
            .filter_map(|c| c.dynamic)
            .map(|w| i64::from(w) - configured)
            .chain(self.checkers.iter().filter_map(|c| c.offset))
            .fold(0i64, i64::saturating_add);
        let clamped = (configured + offsets).clamp(0, i64::from(WEIGHT_LIMIT));
        u32::try_from(clamped).unwrap_or(WEIGHT_LIMIT)
    }

    fn endpoint(&self) -> (IpAddr, u16) {
        (self.cfg.addr, self.cfg.port)
    }

    /// The reason behind the current state: the latest of the down checkers when down,
    /// else the latest of all.
    fn reason(&self) -> Option<&str> {
        let down = !self.up();
        self.checkers
            .iter()
            .filter(|c| !down || !c.verdict.is_up())
            .filter(|c| c.reason.is_some())
            .max_by_key(|c| c.seen)
            .and_then(|c| c.reason.as_deref())
    }
}

/// The health state of one virtual service.
#[derive(Debug, Clone)]
pub struct ServiceHealth {
    name: String,
    reals: Vec<Real>,
    sorry: Option<SorryServer>,
    quorum: Quorum,
    quorum_up: bool,
    /// Counts records, to order reasons.
    records: u64,
    /// The desired set as last reported (compared to detect changes).
    last_desired: Vec<DesiredBackend>,
}

impl ServiceHealth {
    /// The state at start-up, with the events keepalived emits then
    /// (ipwrapper.c `init_service_vs`): notify_up for reals starting up when
    /// `rs_init_notifies`; quorum_up if the starting reals reach the quorum; otherwise
    /// quorum_down only with a sorry server (which is then put in). The desired set is
    /// [`desired`](Self::desired); no `DesiredChanged` is emitted for it.
    pub fn new(cfg: ServiceConfig) -> (Self, Vec<HealthEvent>) {
        let total: u64 = cfg.reals.iter().map(|r| u64::from(r.weight)).sum();
        let (quorum, _) = Quorum::new(cfg.quorum, cfg.hysteresis, total);
        let reals: Vec<Real> = cfg.reals.into_iter().map(Real::new).collect();
        let mut health = ServiceHealth {
            name: cfg.name,
            reals,
            sorry: cfg.sorry_server,
            quorum,
            quorum_up: false,
            records: 0,
            last_desired: Vec::new(),
        };
        let mut events = Vec::new();
        if cfg.rs_init_notifies {
            events.extend(health.initial_real_events());
        }
        let alive_weight = health.alive_weight();
        health.quorum_up = quorum.initial(alive_weight);
        if health.quorum_up {
            events.push(HealthEvent::QuorumUp { alive_weight });
        } else if health.sorry.is_some() {
            events.push(HealthEvent::QuorumDown { alive_weight });
        }
        health.last_desired = health.desired();
        (health, events)
    }

    fn initial_real_events(&self) -> Vec<HealthEvent> {
        (0..self.reals.len())
            .filter(|&i| self.real_up(i))
            .map(|real| HealthEvent::RealUp {
                real,
                reason: "starting up".into(),
            })
            .collect()
    }

    /// Checker `checker` of real `real` finished a check (retries included). Indexes
    /// outside the configuration are ignored (no events).
    pub fn record(&mut self, real: usize, checker: usize, outcome: &Outcome) -> Vec<HealthEvent> {
        self.records += 1;
        let seen = self.records;
        let Some(r) = self.reals.get_mut(real) else {
            return Vec::new();
        };
        let was_up = r.up();
        let old_weight = r.weight();
        let Some(c) = r.checkers.get_mut(checker) else {
            return Vec::new();
        };
        let confirmed_down = c.apply(outcome, seen);

        let mut events = Vec::new();
        let new_weight = r.weight();
        let is_up = r.up();
        if new_weight != old_weight {
            events.push(HealthEvent::WeightChanged {
                real,
                from: old_weight,
                to: new_weight,
            });
        }
        let reason = || outcome.reason.to_string();
        match (was_up, is_up) {
            (false, true) => events.push(HealthEvent::RealUp {
                real,
                reason: reason(),
            }),
            (true, false) => events.push(HealthEvent::RealDown {
                real,
                reason: reason(),
            }),
            _ if confirmed_down => events.push(HealthEvent::RealDown {
                real,
                reason: reason(),
            }),
            _ => {}
        }
        // The desired set and the quorum depend only on the reals' states and weights:
        // most checks change neither, and thousands of them a second must stay cheap.
        if was_up != is_up || old_weight != new_weight {
            events.extend(self.update_quorum());
            let now = self.desired();
            if now != self.last_desired {
                self.last_desired = now;
                events.push(HealthEvent::DesiredChanged);
            }
        }
        events
    }

    /// Re-evaluate the quorum after the live weight may have changed.
    fn update_quorum(&mut self) -> Option<HealthEvent> {
        let alive_weight = self.alive_weight();
        let up = self.quorum.next(self.quorum_up, alive_weight);
        if up == self.quorum_up {
            return None;
        }
        self.quorum_up = up;
        Some(if up {
            HealthEvent::QuorumUp { alive_weight }
        } else {
            HealthEvent::QuorumDown { alive_weight }
        })
    }

    /// The backends the data plane should carry, reals in configuration order, then the
    /// sorry server.
    ///
    /// keepalived (ipwrapper.c `update_quorum_state`, `perform_quorum_state`,
    /// `perform_svr_state`): while the quorum is down and a sorry server exists, the live
    /// reals are taken out and only the sorry server serves (inhibited reals stay with
    /// weight 0); real transitions meanwhile change nothing in the pool. Otherwise up
    /// reals serve with their effective weight and down reals are removed, or kept with
    /// weight 0 under inhibit_on_failure. An unused sorry server is kept with weight 0
    /// under `sorry_server_inhibit`. One entry per address and port: an active sorry
    /// server wins over a real at the same place, a real over an unused sorry server.
    pub fn desired(&self) -> Vec<DesiredBackend> {
        let sorry_active = self.sorry_active();
        let sorry = self.sorry.and_then(|s| sorry_entry(s, sorry_active));
        let mut out: Vec<DesiredBackend> = self
            .reals
            .iter()
            .filter_map(|r| real_entry(r, sorry_active))
            .filter(|b| !(sorry_active && sorry.is_some_and(|s| same_place(b, &s))))
            .collect();
        if let Some(s) = sorry {
            if !out.iter().any(|b| same_place(b, &s)) {
                out.push(s);
            }
        }
        out
    }

    /// Whether the sorry server replaces the reals now.
    pub fn sorry_active(&self) -> bool {
        self.sorry.is_some() && !self.quorum_up
    }

    pub fn real_up(&self, real: usize) -> bool {
        self.reals.get(real).is_some_and(Real::up)
    }

    /// The effective weight (configured, or as misc_dynamic set it).
    pub fn real_weight(&self, real: usize) -> Option<u32> {
        self.reals.get(real).map(Real::weight)
    }

    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    /// The quorum parameters in force (after keepalived's corrections).
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// The summed effective weight of the live reals (keepalived's
    /// `weigh_live_realservers`).
    pub fn alive_weight(&self) -> u64 {
        self.reals
            .iter()
            .filter(|r| r.up())
            .map(|r| u64::from(r.weight()))
            .sum()
    }

    /// Why the real is in its state: the latest reason of a down checker when down, the
    /// latest of any checker when up; None before any check finished.
    pub fn last_reason(&self, real: usize) -> Option<&str> {
        self.reals.get(real).and_then(Real::reason)
    }

    /// The latest reason one checker reported.
    pub fn checker_reason(&self, real: usize, checker: usize) -> Option<&str> {
        self.reals
            .get(real)
            .and_then(|r| r.checkers.get(checker))
            .and_then(|c| c.reason.as_deref())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address and port of a real.
    pub fn real_place(&self, real: usize) -> Option<(IpAddr, u16)> {
        self.reals.get(real).map(|r| (r.cfg.addr, r.cfg.port))
    }

    pub fn real_count(&self) -> usize {
        self.reals.len()
    }

    /// A log line for an event: "198.18.0.21:443 down: HTTP_GET status 503".
    pub fn describe(&self, event: &HealthEvent) -> String {
        let at = |real: usize| {
            self.reals
                .get(real)
                .map(|r| SocketAddr::new(r.cfg.addr, r.cfg.port).to_string())
                .unwrap_or_else(|| format!("real #{real}"))
        };
        let q = self.quorum;
        match event {
            HealthEvent::RealUp { real, reason } => format!("{} up: {reason}", at(*real)),
            HealthEvent::RealDown { real, reason } => format!("{} down: {reason}", at(*real)),
            HealthEvent::WeightChanged { real, from, to } => {
                format!("{} weight {from} -> {to}", at(*real))
            }
            HealthEvent::QuorumUp { alive_weight } => format!(
                "{}: quorum up, live weight {alive_weight} >= {}+{}",
                self.name, q.quorum, q.hysteresis
            ),
            HealthEvent::QuorumDown { alive_weight } => format!(
                "{}: quorum down, live weight {alive_weight} < {}-{}",
                self.name, q.quorum, q.hysteresis
            ),
            HealthEvent::DesiredChanged => format!("{}: backend set changed", self.name),
        }
    }
}

/// A real's entry in the desired set, if any.
fn real_entry(r: &Real, sorry_active: bool) -> Option<DesiredBackend> {
    let serving = r.up() && !sorry_active;
    let weight = match (serving, r.cfg.inhibit_on_failure) {
        (true, _) => r.weight(),
        (false, true) => 0,
        (false, false) => return None,
    };
    let (addr, port) = r.endpoint();
    Some(DesiredBackend {
        addr,
        port,
        weight,
        sorry: false,
    })
}

/// The sorry server's entry, if any.
fn sorry_entry(s: SorryServer, active: bool) -> Option<DesiredBackend> {
    let weight = match (active, s.inhibit) {
        (true, _) => SORRY_WEIGHT,
        (false, true) => 0,
        (false, false) => return None,
    };
    Some(DesiredBackend {
        addr: s.addr,
        port: s.port,
        weight,
        sorry: true,
    })
}

fn same_place(a: &DesiredBackend, b: &DesiredBackend) -> bool {
    a.addr == b.addr && a.port == b.port
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, time::Duration};

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn ok(reason: &str) -> Outcome {
        Outcome {
            up: true,
            weight: None,
            offset: None,
            reason: reason.to_string().into(),
            duration: Duration::from_millis(1),
        }
    }

    fn fail(reason: &str) -> Outcome {
        Outcome {
            up: false,
            ..ok(reason)
        }
    }

    fn dynamic(weight: u32) -> Outcome {
        Outcome {
            weight: Some(weight),
            ..ok(&format!("exit {}", weight + 2))
        }
    }

    fn params(rise: u32, fall: u32, alpha: bool) -> CheckerParams {
        CheckerParams { rise, fall, alpha }
    }

    fn real(last: u8, weight: u32, checkers: Vec<CheckerParams>) -> RealConfig {
        RealConfig {
            addr: ip(last),
            port: 443,
            weight,
            inhibit_on_failure: false,
            checkers,
        }
    }

    fn simple(last: u8) -> RealConfig {
        real(last, 1, vec![params(1, 1, false)])
    }

    fn service(reals: Vec<RealConfig>) -> ServiceConfig {
        ServiceConfig {
            name: "web".into(),
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
            reals,
            rs_init_notifies: false,
        }
    }

    fn start(cfg: ServiceConfig) -> ServiceHealth {
        ServiceHealth::new(cfg).0
    }

    fn sorry(inhibit: bool) -> SorryServer {
        SorryServer {
            addr: ip(99),
            port: 8080,
            inhibit,
        }
    }

    fn backend(last: u8, weight: u32) -> DesiredBackend {
        DesiredBackend {
            addr: ip(last),
            port: 443,
            weight,
            sorry: false,
        }
    }

    fn sorry_backend(weight: u32) -> DesiredBackend {
        DesiredBackend {
            addr: ip(99),
            port: 8080,
            weight,
            sorry: true,
        }
    }

    fn down(real: usize, reason: &str) -> HealthEvent {
        HealthEvent::RealDown {
            real,
            reason: reason.into(),
        }
    }

    fn up(real: usize, reason: &str) -> HealthEvent {
        HealthEvent::RealUp {
            real,
            reason: reason.into(),
        }
    }

    // --- checker hysteresis

    #[test]
    fn fall_counts_consecutive_failures_and_a_success_resets_it() {
        let p = params(2, 3, false);
        let mut v = Verdict::initial(p);
        v = v.step(p, false);
        v = v.step(p, false);
        assert_eq!(v, Verdict::Up { failures: 2 });
        v = v.step(p, true);
        assert_eq!(v, Verdict::Up { failures: 0 });
        for _ in 0..2 {
            v = v.step(p, false);
        }
        assert!(v.is_up());
        v = v.step(p, false);
        assert_eq!(v, Verdict::Down { successes: 0 });
    }

    #[test]
    fn rise_counts_consecutive_successes_and_a_failure_resets_it() {
        let p = params(3, 1, true);
        let mut v = Verdict::initial(p);
        assert!(!v.is_up());
        v = v.step(p, true).step(p, true);
        assert_eq!(v, Verdict::Down { successes: 2 });
        v = v.step(p, false);
        assert_eq!(v, Verdict::Down { successes: 0 });
        v = v.step(p, true).step(p, true);
        assert!(!v.is_up());
        v = v.step(p, true);
        assert_eq!(v, Verdict::Up { failures: 0 });
        // fall 1: one failure is enough.
        assert!(!v.step(p, false).is_up());
    }

    #[test]
    fn zero_rise_and_fall_mean_one() {
        let p = params(0, 0, false);
        let v = Verdict::initial(p).step(p, false);
        assert!(!v.is_up());
        assert!(v.step(p, true).is_up());
    }

    // --- reals

    #[test]
    fn without_alpha_a_real_starts_up_and_falls_after_fall_failures() {
        let mut h = start(service(vec![
            real(21, 1, vec![params(1, 3, false)]),
            simple(22),
        ]));
        assert!(h.real_up(0));
        assert_eq!(h.desired(), vec![backend(21, 1), backend(22, 1)]);
        assert!(h.record(0, 0, &fail("timeout")).is_empty());
        assert!(h.record(0, 0, &fail("timeout")).is_empty());
        assert!(h.record(0, 0, &ok("connected")).is_empty());
        assert!(h.record(0, 0, &fail("refused")).is_empty());
        assert!(h.record(0, 0, &fail("refused")).is_empty());
        assert!(h.real_up(0));
        let events = h.record(0, 0, &fail("HTTP_GET status 503"));
        assert_eq!(
            events,
            vec![down(0, "HTTP_GET status 503"), HealthEvent::DesiredChanged]
        );
        assert!(!h.real_up(0));
        assert_eq!(h.desired(), vec![backend(22, 1)]);
        assert_eq!(
            h.describe(&events[0]),
            "198.18.0.21:443 down: HTTP_GET status 503"
        );
    }

    #[test]
    fn alpha_starts_down_and_needs_rise_successes() {
        let mut h = start(service(vec![
            real(21, 1, vec![params(2, 1, true)]),
            simple(22),
        ]));
        assert!(!h.real_up(0));
        assert_eq!(h.desired(), vec![backend(22, 1)]);
        assert!(h.record(0, 0, &ok("connected")).is_empty());
        assert_eq!(
            h.record(0, 0, &ok("connected")),
            vec![up(0, "connected"), HealthEvent::DesiredChanged]
        );
        assert_eq!(h.desired(), vec![backend(21, 1), backend(22, 1)]);
    }

    #[test]
    fn alpha_first_failure_confirms_down_once_per_checker() {
        let alpha = params(1, 1, true);
        let mut h = start(service(vec![real(21, 1, vec![alpha, alpha]), simple(22)]));
        // keepalived runs notify_down on each checker's first failed check in alpha mode.
        assert_eq!(h.record(0, 0, &fail("refused")), vec![down(0, "refused")]);
        assert!(h.record(0, 0, &fail("refused")).is_empty());
        assert_eq!(h.record(0, 1, &fail("timeout")), vec![down(0, "timeout")]);
        assert!(h.record(0, 1, &fail("timeout")).is_empty());
    }

    #[test]
    fn alpha_first_success_without_reaching_rise_is_silent() {
        let mut h = start(service(vec![real(21, 1, vec![params(2, 1, true)])]));
        assert!(h.record(0, 0, &ok("connected")).is_empty());
        // Not the first check any more: a failure now is no confirmation.
        assert!(h.record(0, 0, &fail("refused")).is_empty());
    }

    #[test]
    fn one_failing_checker_takes_the_real_down_and_all_must_pass_to_come_back() {
        let p = params(1, 1, false);
        let mut h = start(service(vec![real(21, 1, vec![p, p]), simple(22)]));
        assert_eq!(
            h.record(0, 1, &fail("MISC_CHECK exit 1")),
            vec![down(0, "MISC_CHECK exit 1"), HealthEvent::DesiredChanged]
        );
        assert_eq!(h.record(0, 0, &fail("refused")), vec![]);
        assert!(h.record(0, 1, &ok("exit 0")).is_empty());
        assert!(!h.real_up(0));
        assert_eq!(
            h.record(0, 0, &ok("connected")),
            vec![up(0, "connected"), HealthEvent::DesiredChanged]
        );
        assert!(h.real_up(0));
    }

    #[test]
    fn a_real_without_checkers_is_always_up() {
        let h = start(service(vec![real(21, 3, vec![])]));
        assert!(h.real_up(0));
        assert_eq!(h.desired(), vec![backend(21, 3)]);
    }

    #[test]
    fn out_of_range_records_are_ignored() {
        let mut h = start(service(vec![simple(21)]));
        assert!(h.record(5, 0, &fail("x")).is_empty());
        assert!(h.record(0, 5, &fail("x")).is_empty());
        assert!(h.real_up(0));
        assert!(!h.real_up(5));
        assert_eq!(h.last_reason(5), None);
    }

    // --- FILE_CHECK offsets

    fn file_offset(offset: i64) -> Outcome {
        Outcome {
            offset: Some(offset),
            ..ok(&format!("/w holds {offset}"))
        }
    }

    #[test]
    fn file_offsets_add_to_the_configured_weight_and_clamp_at_zero() {
        let mut h = start(service(vec![
            real(21, 5, vec![params(1, 1, false), params(1, 1, false)]),
            simple(22),
        ]));
        h.record(0, 0, &file_offset(3));
        assert_eq!(h.real_weight(0), Some(8));
        // A second checker's offset adds up; a misc_dynamic weight counts from the configured one.
        h.record(0, 1, &dynamic(7));
        assert_eq!(h.real_weight(0), Some(10));
        h.record(0, 0, &file_offset(-20));
        assert_eq!(h.real_weight(0), Some(0), "clamped at 0, still up");
        assert_eq!(h.desired(), vec![backend(21, 0), backend(22, 1)]);
        // The file's fault: the real goes down and its offset is dropped.
        h.record(0, 0, &fail("/w holds 1"));
        assert!(!h.real_up(0));
        assert_eq!(h.real_weight(0), Some(7));
        h.record(0, 0, &file_offset(0));
        assert!(h.real_up(0));
        assert_eq!(h.real_weight(0), Some(7));
    }

    // --- misc_dynamic weights

    #[test]
    fn dynamic_weight_changes_the_desired_weight_while_up() {
        let mut h = start(service(vec![
            real(21, 5, vec![params(1, 1, false)]),
            simple(22),
        ]));
        assert_eq!(
            h.record(0, 0, &dynamic(10)),
            vec![
                HealthEvent::WeightChanged {
                    real: 0,
                    from: 5,
                    to: 10
                },
                HealthEvent::DesiredChanged
            ]
        );
        assert_eq!(h.desired(), vec![backend(21, 10), backend(22, 1)]);
        // Same weight again: nothing.
        assert!(h.record(0, 0, &dynamic(10)).is_empty());
        // Exit 0: back to the configured weight (check_misc.c resets cur_weight).
        assert_eq!(
            h.record(0, 0, &ok("exit 0")),
            vec![
                HealthEvent::WeightChanged {
                    real: 0,
                    from: 10,
                    to: 5
                },
                HealthEvent::DesiredChanged
            ]
        );
    }

    #[test]
    fn a_failing_dynamic_checker_drops_its_weight_when_it_goes_down() {
        let mut h = start(service(vec![
            real(21, 5, vec![params(1, 2, false)]),
            simple(22),
        ]));
        h.record(0, 0, &dynamic(10));
        // fall 2: the first failure holds the checker and its weight.
        assert!(h.record(0, 0, &fail("exit 1")).is_empty());
        assert_eq!(h.real_weight(0), Some(10));
        assert_eq!(
            h.record(0, 0, &fail("exit 1")),
            vec![
                HealthEvent::WeightChanged {
                    real: 0,
                    from: 10,
                    to: 5
                },
                down(0, "exit 1"),
                HealthEvent::DesiredChanged
            ]
        );
    }

    #[test]
    fn weight_change_while_down_changes_no_backend() {
        let mut h = start(service(vec![
            real(21, 5, vec![params(1, 1, false), params(1, 1, false)]),
            simple(22),
        ]));
        h.record(0, 0, &fail("refused"));
        // The misc checker still passes and sets a weight: logged, but the real is out.
        assert_eq!(
            h.record(0, 1, &dynamic(7)),
            vec![HealthEvent::WeightChanged {
                real: 0,
                from: 5,
                to: 7
            }]
        );
        assert_eq!(
            h.record(0, 0, &ok("connected")),
            vec![up(0, "connected"), HealthEvent::DesiredChanged]
        );
        assert_eq!(h.desired(), vec![backend(21, 7), backend(22, 1)]);
    }

    #[test]
    fn dynamic_weight_zero_keeps_the_real_up_with_weight_zero() {
        let mut h = start(service(vec![
            real(21, 5, vec![params(1, 1, false)]),
            simple(22),
        ]));
        h.record(0, 0, &dynamic(0));
        assert!(h.real_up(0));
        assert_eq!(h.desired(), vec![backend(21, 0), backend(22, 1)]);
    }

    #[test]
    fn several_dynamic_checkers_add_their_offsets_like_keepalived() {
        let p = params(1, 1, false);
        let mut h = start(service(vec![real(21, 2, vec![p, p])]));
        h.record(0, 0, &dynamic(5));
        h.record(0, 1, &dynamic(7));
        // 2 + (5 - 2) + (7 - 2)
        assert_eq!(h.real_weight(0), Some(10));
        // Offsets below zero clamp at 0.
        h.record(0, 0, &dynamic(0));
        h.record(0, 1, &dynamic(0));
        assert_eq!(h.real_weight(0), Some(0));
    }

    // --- inhibit

    #[test]
    fn inhibit_keeps_a_down_real_with_weight_zero() {
        let mut inhibited = simple(21);
        inhibited.inhibit_on_failure = true;
        let mut h = start(service(vec![inhibited, simple(22), simple(23)]));
        h.record(0, 0, &fail("refused"));
        h.record(1, 0, &fail("refused"));
        assert_eq!(h.desired(), vec![backend(21, 0), backend(23, 1)]);
    }

    #[test]
    fn inhibited_alpha_reals_start_with_weight_zero() {
        let mut cfg = real(21, 4, vec![params(1, 1, true)]);
        cfg.inhibit_on_failure = true;
        let mut h = start(service(vec![cfg, real(22, 4, vec![params(1, 1, true)])]));
        assert_eq!(h.desired(), vec![backend(21, 0)]);
        h.record(0, 0, &ok("connected"));
        assert_eq!(h.desired(), vec![backend(21, 4)]);
    }

    #[test]
    fn all_down_without_sorry_server_leaves_nothing() {
        let mut h = start(service(vec![simple(21), simple(22)]));
        h.record(0, 0, &fail("refused"));
        let events = h.record(1, 0, &fail("refused"));
        assert_eq!(
            events,
            vec![
                down(1, "refused"),
                HealthEvent::QuorumDown { alive_weight: 0 },
                HealthEvent::DesiredChanged
            ]
        );
        assert!(h.desired().is_empty());
    }

    // --- quorum

    #[test]
    fn quorum_without_hysteresis() {
        let mut cfg = service(vec![simple(21), simple(22), simple(23)]);
        cfg.quorum = 2;
        let (mut h, events) = ServiceHealth::new(cfg);
        assert_eq!(events, vec![HealthEvent::QuorumUp { alive_weight: 3 }]);
        assert!(h.quorum_up());
        assert_eq!(
            h.record(0, 0, &fail("refused")),
            vec![down(0, "refused"), HealthEvent::DesiredChanged]
        );
        assert!(h.quorum_up(), "2 live is still the quorum");
        assert_eq!(
            h.record(1, 0, &fail("refused")),
            vec![
                down(1, "refused"),
                HealthEvent::QuorumDown { alive_weight: 1 },
                HealthEvent::DesiredChanged
            ]
        );
        // No sorry server: the live real keeps serving.
        assert_eq!(h.desired(), vec![backend(23, 1)]);
        assert_eq!(
            h.record(1, 0, &ok("connected")),
            vec![
                up(1, "connected"),
                HealthEvent::QuorumUp { alive_weight: 2 },
                HealthEvent::DesiredChanged
            ]
        );
    }

    #[test]
    fn quorum_with_hysteresis() {
        // quorum 3, hysteresis 1: up at >= 4, down at < 2.
        let reals = (21..26).map(simple).collect();
        let mut cfg = service(reals);
        cfg.quorum = 3;
        cfg.hysteresis = 1;
        let (mut h, events) = ServiceHealth::new(cfg);
        assert_eq!(events, vec![HealthEvent::QuorumUp { alive_weight: 5 }]);
        for i in 0..3 {
            let events = h.record(i, 0, &fail("refused"));
            assert!(events
                .iter()
                .all(|e| e.script() != Some(HealthScript::QuorumDown)));
        }
        assert!(h.quorum_up(), "2 live is not below 3-1");
        assert!(h
            .record(3, 0, &fail("refused"))
            .contains(&HealthEvent::QuorumDown { alive_weight: 1 }));
        for i in 0..2 {
            h.record(i, 0, &ok("connected"));
        }
        assert!(!h.quorum_up(), "3 live is not 3+1");
        assert!(h
            .record(2, 0, &ok("connected"))
            .contains(&HealthEvent::QuorumUp { alive_weight: 4 }));
    }

    #[test]
    fn weight_changes_move_the_quorum() {
        let mut cfg = service(vec![real(21, 5, vec![params(1, 1, false)])]);
        cfg.quorum = 4;
        let mut h = start(cfg);
        assert!(h.quorum_up());
        assert_eq!(
            h.record(0, 0, &dynamic(3)),
            vec![
                HealthEvent::WeightChanged {
                    real: 0,
                    from: 5,
                    to: 3
                },
                HealthEvent::QuorumDown { alive_weight: 3 },
                HealthEvent::DesiredChanged
            ]
        );
    }

    #[test]
    fn quorum_is_corrected_like_keepalived() {
        let mut cfg = service(vec![simple(21), simple(22)]);
        cfg.quorum = 5;
        cfg.hysteresis = 5;
        let h = start(cfg);
        assert_eq!(
            h.quorum(),
            Quorum {
                quorum: 2,
                hysteresis: 1
            }
        );
        assert!(!h.quorum_up(), "2 live is below 2+1 at start");
    }

    // --- sorry server

    fn with_sorry(sorry_server: SorryServer) -> ServiceConfig {
        let mut cfg = service(vec![simple(21), simple(22), simple(23)]);
        cfg.quorum = 2;
        cfg.sorry_server = Some(sorry_server);
        cfg
    }

    #[test]
    fn losing_quorum_replaces_the_live_reals_with_the_sorry_server() {
        let mut cfg = with_sorry(sorry(false));
        cfg.reals[2].inhibit_on_failure = true;
        let mut h = start(cfg);
        assert_eq!(
            h.desired(),
            vec![backend(21, 1), backend(22, 1), backend(23, 1)]
        );
        h.record(0, 0, &fail("refused"));
        assert_eq!(
            h.record(1, 0, &fail("refused")),
            vec![
                down(1, "refused"),
                HealthEvent::QuorumDown { alive_weight: 1 },
                HealthEvent::DesiredChanged
            ]
        );
        assert!(h.sorry_active());
        // Real 23 is still alive but out; inhibited, so at weight 0.
        assert!(h.real_up(2));
        assert_eq!(h.desired(), vec![backend(23, 0), sorry_backend(1)]);
    }

    #[test]
    fn real_transitions_under_the_sorry_server_change_no_backend() {
        let mut cfg = with_sorry(sorry(false));
        cfg.quorum = 3;
        let mut h = start(cfg);
        h.record(0, 0, &fail("refused"));
        assert!(h.sorry_active());
        // Scripts still run; the pool does not move.
        assert_eq!(h.record(1, 0, &fail("refused")), vec![down(1, "refused")]);
        assert_eq!(h.record(1, 0, &ok("connected")), vec![up(1, "connected")]);
        assert_eq!(h.desired(), vec![sorry_backend(1)]);
    }

    #[test]
    fn weight_changes_under_the_sorry_server_wait_for_the_quorum() {
        let mut cfg = with_sorry(sorry(false));
        cfg.quorum = 3;
        let mut h = start(cfg);
        h.record(0, 0, &fail("refused"));
        // keepalived edits the weight only with quorum up or no sorry server in use.
        assert_eq!(
            h.record(1, 0, &dynamic(0)),
            vec![HealthEvent::WeightChanged {
                real: 1,
                from: 1,
                to: 0
            }]
        );
        assert_eq!(h.desired(), vec![sorry_backend(1)]);
        // A weight that brings the live weight to the quorum brings the reals back.
        assert_eq!(
            h.record(1, 0, &dynamic(4)),
            vec![
                HealthEvent::WeightChanged {
                    real: 1,
                    from: 0,
                    to: 4
                },
                HealthEvent::QuorumUp { alive_weight: 5 },
                HealthEvent::DesiredChanged
            ]
        );
        assert_eq!(h.desired(), vec![backend(22, 4), backend(23, 1)]);
    }

    #[test]
    fn regaining_quorum_takes_the_sorry_server_out_and_the_live_reals_back() {
        let mut h = start(with_sorry(sorry(false)));
        h.record(0, 0, &fail("refused"));
        h.record(1, 0, &fail("refused"));
        assert_eq!(
            h.record(0, 0, &ok("connected")),
            vec![
                up(0, "connected"),
                HealthEvent::QuorumUp { alive_weight: 2 },
                HealthEvent::DesiredChanged
            ]
        );
        assert!(!h.sorry_active());
        assert_eq!(h.desired(), vec![backend(21, 1), backend(23, 1)]);
    }

    #[test]
    fn an_inhibited_sorry_server_stays_with_weight_zero() {
        let mut h = start(with_sorry(sorry(true)));
        assert_eq!(
            h.desired(),
            vec![
                backend(21, 1),
                backend(22, 1),
                backend(23, 1),
                sorry_backend(0)
            ]
        );
        h.record(0, 0, &fail("refused"));
        h.record(1, 0, &fail("refused"));
        assert_eq!(h.desired(), vec![sorry_backend(1)]);
    }

    #[test]
    fn a_sorry_server_at_a_real_s_place_appears_once() {
        let same = SorryServer {
            addr: ip(23),
            port: 443,
            inhibit: true,
        };
        let mut h = start(with_sorry(same));
        // Unused: the real's entry stands.
        assert_eq!(
            h.desired(),
            vec![backend(21, 1), backend(22, 1), backend(23, 1)]
        );
        h.record(0, 0, &fail("refused"));
        h.record(1, 0, &fail("refused"));
        assert_eq!(
            h.desired(),
            vec![DesiredBackend {
                sorry: true,
                ..backend(23, SORRY_WEIGHT)
            }]
        );
    }

    // --- start-up

    #[test]
    fn alpha_start_with_a_sorry_server_starts_with_quorum_down_and_the_sorry_server() {
        let mut cfg = with_sorry(sorry(false));
        for r in &mut cfg.reals {
            r.checkers = vec![params(1, 1, true)];
        }
        let (mut h, events) = ServiceHealth::new(cfg);
        assert_eq!(events, vec![HealthEvent::QuorumDown { alive_weight: 0 }]);
        assert_eq!(h.desired(), vec![sorry_backend(1)]);
        h.record(0, 0, &ok("connected"));
        assert!(h
            .record(1, 0, &ok("connected"))
            .contains(&HealthEvent::QuorumUp { alive_weight: 2 }));
        assert_eq!(h.desired(), vec![backend(21, 1), backend(22, 1)]);
    }

    #[test]
    fn alpha_start_without_a_sorry_server_is_silent() {
        let reals = vec![real(21, 1, vec![params(1, 1, true)])];
        let (h, events) = ServiceHealth::new(service(reals));
        assert!(events.is_empty());
        assert!(!h.quorum_up());
        assert!(h.desired().is_empty());
    }

    #[test]
    fn rs_init_notifies_runs_notify_up_for_reals_starting_up() {
        let mut cfg = service(vec![simple(21), real(22, 1, vec![params(1, 1, true)])]);
        cfg.rs_init_notifies = true;
        let (_, events) = ServiceHealth::new(cfg);
        assert_eq!(
            events,
            vec![
                up(0, "starting up"),
                HealthEvent::QuorumUp { alive_weight: 1 }
            ]
        );
        let scripts: Vec<_> = events.iter().filter_map(HealthEvent::script).collect();
        assert_eq!(
            scripts,
            vec![HealthScript::NotifyUp { real: 0 }, HealthScript::QuorumUp]
        );
    }

    // --- reasons

    #[test]
    fn reasons_are_kept_per_checker_and_explain_the_state() {
        let p = params(1, 1, false);
        let mut h = start(service(vec![real(21, 1, vec![p, p])]));
        assert_eq!(h.last_reason(0), None);
        h.record(0, 0, &ok("connected"));
        assert_eq!(h.last_reason(0), Some("connected"));
        h.record(0, 1, &fail("HTTP_GET status 503"));
        // The other checker passing later does not hide why the real is down.
        h.record(0, 0, &ok("connected"));
        assert_eq!(h.last_reason(0), Some("HTTP_GET status 503"));
        assert_eq!(h.checker_reason(0, 0), Some("connected"));
        assert_eq!(h.checker_reason(0, 1), Some("HTTP_GET status 503"));
        h.record(0, 1, &ok("HTTP_GET status 200"));
        assert_eq!(h.last_reason(0), Some("HTTP_GET status 200"));
    }

    #[test]
    fn events_map_to_scripts_and_log_lines() {
        let h = start(service(vec![simple(21)]));
        assert_eq!(
            down(0, "x").script(),
            Some(HealthScript::NotifyDown { real: 0 })
        );
        assert_eq!(HealthEvent::DesiredChanged.script(), None);
        assert_eq!(
            h.describe(&HealthEvent::QuorumDown { alive_weight: 0 }),
            "web: quorum down, live weight 0 < 1-0"
        );
        let v6 = ServiceHealth::new(ServiceConfig {
            reals: vec![RealConfig {
                addr: "2001:db8::1".parse().expect("v6"),
                ..simple(21)
            }],
            ..service(vec![])
        })
        .0;
        assert_eq!(
            v6.describe(&up(0, "connected")),
            "[2001:db8::1]:443 up: connected"
        );
    }
}
