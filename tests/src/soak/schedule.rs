//! The soak's fault schedule: a seeded, reproducible sequence of faults. Every kind of
//! fault comes once (in a seeded order) before any repeats, so even a short run covers
//! all of them; the rest of the time is filled with seeded random picks. Pure: the same
//! seed and length give the same schedule.

use std::time::Duration;

/// Which service a backend fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Dr,
    Nat,
}

impl Service {
    pub const ALL: [Service; 2] = [Service::Dr, Service::Nat];

    pub fn label(self) -> &'static str {
        match self {
            Service::Dr => "DR",
            Service::Nat => "NAT",
        }
    }
}

/// One fault the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The backend's server process stops (connections refused), then starts again.
    BackendKilled { service: Service, backend: usize },
    /// The backend's link goes down, then up.
    BackendLinkFlap { service: Service, backend: usize },
    /// The master's switch port goes down (the backup takes over), then up.
    MasterLinkCut,
    /// `reload` with a valid change (the master's priorities, in place).
    ReloadValid,
    /// `reload` with a broken file (refused; nothing changes), then the good file back.
    ReloadInvalid,
    /// SIGKILL of the master daemon, then a restart (it preempts back).
    MasterKilled,
    /// `stop --keep-dataplane` of the master and a new daemon at once (an upgrade).
    UpgradeRestart,
    /// A third host sends forged VRRP adverts: wrong auth, wrong TTL, a higher
    /// priority from a non-peer (the instances are unicast with a peer list).
    ForgedAdverts,
    /// Clients connect to the master's control socket and never speak.
    SilentControlClients,
    /// A metrics scraper that sends its request a byte at a time.
    SlowMetricsScraper,
}

impl Fault {
    /// One of each kind (backend faults on backend 0 of each service in turn).
    fn kinds(rng: &mut Rng) -> Vec<Fault> {
        let service = |rng: &mut Rng| Service::ALL[rng.below(2) as usize];
        vec![
            Fault::BackendKilled {
                service: service(rng),
                backend: rng.below(3) as usize,
            },
            Fault::BackendLinkFlap {
                service: service(rng),
                backend: rng.below(3) as usize,
            },
            Fault::MasterLinkCut,
            Fault::ReloadValid,
            Fault::ReloadInvalid,
            Fault::MasterKilled,
            Fault::UpgradeRestart,
            Fault::ForgedAdverts,
            Fault::SilentControlClients,
            Fault::SlowMetricsScraper,
        ]
    }

    /// How long the fault lasts before it is undone.
    pub fn hold(self) -> Duration {
        match self {
            Fault::BackendKilled { .. } => Duration::from_secs(4),
            Fault::BackendLinkFlap { .. } => Duration::from_secs(2),
            Fault::MasterLinkCut => Duration::from_secs(5),
            Fault::MasterKilled => Duration::from_secs(6),
            Fault::SilentControlClients | Fault::SlowMetricsScraper => Duration::from_secs(8),
            Fault::ForgedAdverts => Duration::from_secs(3),
            Fault::ReloadValid | Fault::ReloadInvalid | Fault::UpgradeRestart => Duration::ZERO,
        }
    }

    /// How long after the fault is undone requests may still fail (the failover window's
    /// tail): a backup's master-down interval (3 x 1 s + skew), a preemption back, a
    /// health check's verdict (500 ms delay loop). Zero: no request may fail at all.
    pub fn grace(self) -> Duration {
        match self {
            Fault::BackendKilled { .. } | Fault::BackendLinkFlap { .. } => Duration::from_secs(3),
            // The restored master preempts back after up to a master-down interval, and
            // the reals' gateway ARP may point at the old master until the delayed
            // gratuitous ARPs (keepalived's garp_master_delay, 5 s) correct it: NAT
            // replies go astray until then (the 30-minute run: 8.7 s after the restore).
            Fault::MasterLinkCut => Duration::from_secs(10),
            Fault::MasterKilled => Duration::from_secs(10),
            _ => Duration::ZERO,
        }
    }

    /// The services whose requests may fail inside the window.
    pub fn disrupts(self) -> &'static [Service] {
        match self {
            Fault::BackendKilled { service, .. } | Fault::BackendLinkFlap { service, .. } => {
                match service {
                    Service::Dr => &[Service::Dr],
                    Service::Nat => &[Service::Nat],
                }
            }
            Fault::MasterLinkCut | Fault::MasterKilled => &Service::ALL,
            _ => &[],
        }
    }

    /// The kind's name on the command line (`lb-soak --only NAME`).
    pub fn kind_name(self) -> &'static str {
        match self {
            Fault::BackendKilled { .. } => "backend-killed",
            Fault::BackendLinkFlap { .. } => "backend-link-flap",
            Fault::MasterLinkCut => "master-link-cut",
            Fault::ReloadValid => "reload-valid",
            Fault::ReloadInvalid => "reload-invalid",
            Fault::MasterKilled => "master-killed",
            Fault::UpgradeRestart => "upgrade-restart",
            Fault::ForgedAdverts => "forged-adverts",
            Fault::SilentControlClients => "silent-control-clients",
            Fault::SlowMetricsScraper => "slow-metrics-scraper",
        }
    }

    /// Every kind's name, for `--only`'s error message.
    pub fn kind_names() -> Vec<&'static str> {
        Fault::kinds(&mut Rng(0))
            .into_iter()
            .map(Fault::kind_name)
            .collect()
    }

    pub fn describe(self) -> String {
        match self {
            Fault::BackendKilled { service, backend } => {
                format!("{} backend {backend} killed and restored", service.label())
            }
            Fault::BackendLinkFlap { service, backend } => {
                format!("{} backend {backend} link flap", service.label())
            }
            Fault::MasterLinkCut => "master link cut and restored".into(),
            Fault::ReloadValid => "reload, valid config (priority change)".into(),
            Fault::ReloadInvalid => "reload, invalid config".into(),
            Fault::MasterKilled => "SIGKILL of the master daemon, restart".into(),
            Fault::UpgradeRestart => "stop --keep-dataplane, upgrade restart".into(),
            Fault::ForgedAdverts => "forged VRRP adverts from a third host".into(),
            Fault::SilentControlClients => "control-socket clients that never speak".into(),
            Fault::SlowMetricsScraper => "slow metrics scraper".into(),
        }
    }
}

/// A fault at an offset from the start of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub at: Duration,
    pub fault: Fault,
}

/// Quiet time between one fault's window and the next fault.
pub const GAP: Duration = Duration::from_secs(3);
/// Quiet time before the first fault (the load settles) and after the last.
pub const LEAD: Duration = Duration::from_secs(5);

/// The faults of a run of `length` with `seed`: each kind once, then random picks, each
/// starting after the previous one's window and gap, all ending before `length`.
pub fn schedule(seed: u64, length: Duration) -> Vec<Planned> {
    schedule_of(seed, length, None)
}

/// As [`schedule`], but with `only` (a kind's name) every fault is of that kind: to
/// chase one finding with many repetitions. `None` when the name is unknown.
pub fn schedule_only(seed: u64, length: Duration, only: &str) -> Option<Vec<Planned>> {
    Fault::kind_names()
        .contains(&only)
        .then(|| schedule_of(seed, length, Some(only)))
}

fn schedule_of(seed: u64, length: Duration, only: Option<&str>) -> Vec<Planned> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut first = Fault::kinds(&mut rng);
    rng.shuffle(&mut first);
    let wanted = |f: &Fault| only.is_none_or(|k| f.kind_name() == k);
    first.retain(wanted);
    let mut out = Vec::new();
    let mut at = LEAD;
    let mut queue = first.into_iter();
    loop {
        let fault = match queue.next() {
            Some(f) => f,
            None => {
                let mut all = Fault::kinds(&mut rng);
                all.retain(wanted);
                let i = rng.below(all.len() as u64) as usize;
                all.swap_remove(i)
            }
        };
        let end = at + fault.hold() + fault.grace() + GAP;
        if end + LEAD > length {
            break;
        }
        out.push(Planned { at, fault });
        at = end;
    }
    out
}

/// splitmix64: small, seeded, good enough to pick faults.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(f: Fault) -> std::mem::Discriminant<Fault> {
        std::mem::discriminant(&f)
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let len = Duration::from_secs(600);
        assert_eq!(schedule(7, len), schedule(7, len));
        assert_ne!(schedule(7, len), schedule(8, len));
    }

    #[test]
    fn three_minutes_cover_every_kind_of_fault_without_overlap() {
        for seed in 0..50 {
            let len = Duration::from_secs(180);
            let plan = schedule(seed, len);
            let mut kinds: Vec<_> = plan.iter().map(|p| kind(p.fault)).collect();
            kinds.dedup();
            let all = Fault::kinds(&mut Rng(0));
            for f in &all {
                assert!(
                    plan.iter().any(|p| kind(p.fault) == kind(*f)),
                    "seed {seed}: {f:?} missing from {plan:?}"
                );
            }
            for w in plan.windows(2) {
                let end = w[0].at + w[0].fault.hold() + w[0].fault.grace();
                assert!(end + GAP <= w[1].at, "seed {seed}: windows overlap: {w:?}");
            }
            let last = plan.last().unwrap();
            assert!(last.at + last.fault.hold() + last.fault.grace() + GAP + LEAD <= len);
        }
    }

    #[test]
    fn only_one_kind_repeats_that_kind() {
        let plan = schedule_only(5, Duration::from_secs(180), "master-killed").unwrap();
        assert!(plan.len() >= 5, "{plan:?}");
        assert!(plan.iter().all(|p| p.fault == Fault::MasterKilled));
        let flaps = schedule_only(5, Duration::from_secs(120), "backend-link-flap").unwrap();
        assert!(flaps
            .iter()
            .all(|p| matches!(p.fault, Fault::BackendLinkFlap { .. })));
        assert!(schedule_only(5, Duration::from_secs(60), "no-such-fault").is_none());
    }

    #[test]
    fn a_run_too_short_for_a_fault_has_none() {
        assert!(schedule(1, Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn only_failover_and_backend_faults_may_fail_requests() {
        for f in Fault::kinds(&mut Rng(3)) {
            let disrupts = !f.disrupts().is_empty();
            assert_eq!(disrupts, f.grace() > Duration::ZERO, "{f:?}");
        }
    }
}
