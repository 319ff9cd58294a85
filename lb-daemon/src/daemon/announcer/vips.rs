//! The announcer's decisions, without IO: what the owner reports per service turned into
//! one [`Announcer`] state machine per VIP, the drain's progress, and the status rows.
//!
//! A VIP is announced while AT LEAST ONE of its services is programmed (program attached)
//! and has quorum, and the node is not drained: one healthy service is enough for the
//! routers to send the VIP's traffic here; the others' packets meet the program too and
//! find their own (empty or sorry) backend sets, as with VRRP.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{
    bgp::announce::{Action, Announcer, Conditions, Reason},
    dataplane::ServiceId,
};

/// What the owner knows about one announced service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceReadiness {
    pub vip: IpAddr,
    /// In the data plane with the program attached.
    pub programmed: bool,
    /// `Update.quorum_up` of its last health update (None: none arrived yet).
    pub quorum: Option<bool>,
}

/// Every announced service's readiness, as the owner last published it.
pub type Readiness = HashMap<ServiceId, ServiceReadiness>;

/// One VIP's inputs, folded over its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct VipInputs {
    /// At least one service is programmed.
    programmed: bool,
    /// At least one programmed service has quorum.
    quorum: bool,
    /// Every service of the VIP reported its quorum at least once.
    known: bool,
}

fn per_vip(readiness: &Readiness) -> BTreeMap<IpAddr, VipInputs> {
    let mut vips: BTreeMap<IpAddr, VipInputs> = BTreeMap::new();
    for r in readiness.values() {
        let v = vips.entry(r.vip).or_insert(VipInputs {
            known: true,
            ..VipInputs::default()
        });
        v.programmed |= r.programmed;
        v.quorum |= r.programmed && r.quorum == Some(true);
        v.known &= r.quorum.is_some();
    }
    vips
}

/// The VIPs this node announces by BGP, with their machines.
#[derive(Debug)]
pub struct Vips {
    machines: BTreeMap<IpAddr, Announcer>,
    /// Configured VIPs found on the interface at start (a daemon stopped with
    /// `--keep-dataplane`): kept until their services' state is known, then decided by
    /// their machine like any other.
    inherited: BTreeSet<IpAddr>,
    drained: bool,
}

impl Vips {
    /// `configured`: the announced VIPs; `on_link`: the host addresses on the interface.
    /// Returns the machines and the addresses to remove at once (not configured here).
    pub fn new(
        configured: impl IntoIterator<Item = IpAddr>,
        hold_down: Duration,
        on_link: &[IpAddr],
    ) -> (Vips, Vec<IpAddr>) {
        let machines: BTreeMap<IpAddr, Announcer> = configured
            .into_iter()
            .map(|vip| (vip, Announcer::new(hold_down)))
            .collect();
        let (inherited, stray): (Vec<IpAddr>, Vec<IpAddr>) =
            on_link.iter().partition(|a| machines.contains_key(a));
        let vips = Vips {
            machines,
            inherited: inherited.into_iter().collect(),
            drained: false,
        };
        (vips, stray)
    }

    /// A reload: new VIPs start withdrawn, removed ones are returned (to withdraw if they
    /// were on the interface), kept ones keep their state.
    pub fn reconfigure(
        &mut self,
        configured: impl IntoIterator<Item = IpAddr>,
        hold_down: Duration,
    ) -> Vec<IpAddr> {
        let wanted: BTreeSet<IpAddr> = configured.into_iter().collect();
        let removed: Vec<IpAddr> = self
            .machines
            .keys()
            .filter(|v| !wanted.contains(v))
            .copied()
            .collect();
        for vip in &removed {
            self.machines.remove(vip);
            self.inherited.remove(vip);
        }
        for vip in wanted {
            self.machines
                .entry(vip)
                .or_insert_with(|| Announcer::new(hold_down));
        }
        removed
    }

    pub fn set_drained(&mut self, drained: bool) {
        self.drained = drained;
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Re-evaluates every VIP; the addresses to add (Announce) or remove (Withdraw).
    pub fn evaluate(&mut self, readiness: &Readiness, now: Instant) -> Vec<(IpAddr, Action)> {
        let inputs = per_vip(readiness);
        let mut actions = Vec::new();
        for (vip, machine) in &mut self.machines {
            let i = inputs.get(vip).copied().unwrap_or_default();
            let inherited = self.inherited.contains(vip);
            if inherited && !i.known && !self.drained {
                continue;
            }
            let c = Conditions {
                programmed: i.programmed,
                quorum: i.quorum,
                drained: self.drained,
            };
            let action = machine.update(c, now);
            if inherited {
                self.inherited.remove(vip);
                // The address is there whatever the machine believed: make it agree.
                if !machine.is_announced() {
                    actions.push((*vip, Action::Withdraw));
                }
                continue;
            }
            if let Some(action) = action {
                actions.push((*vip, action));
            }
        }
        actions
    }

    /// When to evaluate again if nothing else changes (a hold-down ending).
    pub fn wake_in(&self) -> Option<Duration> {
        self.machines.values().filter_map(Announcer::wake_in).min()
    }

    /// The addresses that should be on the interface now.
    pub fn on_link(&self) -> BTreeSet<IpAddr> {
        self.machines
            .iter()
            .filter(|(vip, m)| m.is_announced() || self.inherited.contains(vip))
            .map(|(vip, _)| *vip)
            .collect()
    }

    pub fn any_announced(&self) -> bool {
        !self.on_link().is_empty()
    }

    /// Each VIP with whether it is announced and its state as `status` shows it.
    pub fn rows(&self) -> Vec<(IpAddr, bool, String)> {
        self.machines
            .iter()
            .map(|(vip, m)| {
                if self.inherited.contains(vip) {
                    return (
                        *vip,
                        true,
                        "announced (kept from the previous daemon)".into(),
                    );
                }
                let state = if m.is_announced() {
                    "announced".to_string()
                } else {
                    format!("withdrawn: {}", reason(m.reason()))
                };
                (*vip, m.is_announced(), state)
            })
            .collect()
    }
}

/// The reason in status words: hold-down in whole seconds, rounded up.
fn reason(r: Reason) -> String {
    match r {
        Reason::HoldDown { remaining } => {
            let secs = remaining.as_millis().div_ceil(1000);
            format!("hold-down ({secs}s left)")
        }
        other => other.to_string(),
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// No packet for `drain_idle`.
    Idle,
    /// `drain_timeout` passed.
    Timeout,
}

/// A drain in progress: forwarding goes on until no packet arrived for `idle`, or
/// `timeout` passed, judged by the data plane's packet counters of the drained VIPs.
#[derive(Debug, Clone)]
pub struct Drain {
    started: Instant,
    timeout: Duration,
    idle: Duration,
    packets: Option<u64>,
    last_packet: Instant,
    end: Option<(DrainEnd, Instant)>,
}

impl Drain {
    pub fn new(now: Instant, timeout: Duration, idle: Duration) -> Drain {
        Drain {
            started: now,
            timeout,
            idle,
            packets: None,
            last_packet: now,
            end: None,
        }
    }

    /// Records the drained services' packet count (None: unknown) and whether it ended.
    pub fn observe(&mut self, packets: Option<u64>, now: Instant) -> Option<DrainEnd> {
        if self.end.is_none() {
            if let Some(p) = packets {
                if self.packets.is_some_and(|before| p != before) {
                    self.last_packet = now;
                }
                self.packets = Some(p);
            }
            let end = if now.saturating_duration_since(self.last_packet) >= self.idle {
                Some(DrainEnd::Idle)
            } else if now.saturating_duration_since(self.started) >= self.timeout {
                Some(DrainEnd::Timeout)
            } else {
                None
            };
            self.end = end.map(|e| (e, now));
        }
        self.end.map(|(e, _)| e)
    }

    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    /// "draining for 2s (last packet 0.4s ago, at most 28s more)" or "drained (idle)".
    pub fn describe(&self, now: Instant) -> String {
        match self.end {
            Some((DrainEnd::Idle, at)) => format!(
                "drained: no packet for {}s, after {:.1}s",
                self.idle.as_secs_f64(),
                at.saturating_duration_since(self.started).as_secs_f64()
            ),
            Some((DrainEnd::Timeout, _)) => format!(
                "drained: drain_timeout ({}s) passed",
                self.timeout.as_secs_f64()
            ),
            None => format!(
                "draining for {:.1}s (last packet {:.1}s ago; ends after {}s idle or {}s)",
                now.saturating_duration_since(self.started).as_secs_f64(),
                now.saturating_duration_since(self.last_packet)
                    .as_secs_f64(),
                self.idle.as_secs_f64(),
                self.timeout.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    const HOLD: Duration = Duration::from_secs(5);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn id(vip: &str, port: u16) -> ServiceId {
        ServiceId {
            vip: ip(vip),
            port,
            protocol: Protocol::Tcp,
        }
    }

    fn ready(entries: &[(&str, u16, bool, Option<bool>)]) -> Readiness {
        entries
            .iter()
            .map(|&(vip, port, programmed, quorum)| {
                (
                    id(vip, port),
                    ServiceReadiness {
                        vip: ip(vip),
                        programmed,
                        quorum,
                    },
                )
            })
            .collect()
    }

    const A: &str = "198.51.100.10";
    const B: &str = "198.51.100.11";

    #[test]
    fn one_ready_service_of_a_shared_vip_is_enough() {
        let t0 = Instant::now();
        let (mut vips, stray) = Vips::new([ip(A), ip(B)], HOLD, &[]);
        assert!(stray.is_empty());
        // Nothing reported yet: nothing announced.
        assert!(vips.evaluate(&Readiness::new(), t0).is_empty());
        let r = ready(&[
            (A, 80, true, Some(false)),
            (A, 443, true, Some(true)),
            (B, 80, false, Some(true)),
        ]);
        assert_eq!(vips.evaluate(&r, t0), vec![(ip(A), Action::Announce)]);
        let rows = vips.rows();
        assert_eq!(rows[0], (ip(A), true, "announced".into()));
        assert_eq!(rows[1], (ip(B), false, "withdrawn: not programmed".into()));
        // The healthy one loses quorum: below quorum, then a hold-down once it is back.
        let r = ready(&[(A, 80, true, Some(false)), (A, 443, true, Some(false))]);
        assert_eq!(vips.evaluate(&r, t0), vec![(ip(A), Action::Withdraw)]);
        assert_eq!(vips.rows()[0].2, "withdrawn: below quorum");
        let r = ready(&[(A, 80, true, Some(true))]);
        let t1 = t0 + Duration::from_millis(1500);
        assert!(vips.evaluate(&r, t1).is_empty());
        assert_eq!(vips.rows()[0].2, "withdrawn: hold-down (5s left)");
        assert_eq!(vips.wake_in(), Some(HOLD));
        assert!(vips
            .evaluate(&r, t1 + Duration::from_millis(4100))
            .is_empty());
        assert_eq!(vips.rows()[0].2, "withdrawn: hold-down (1s left)");
        assert_eq!(
            vips.evaluate(&r, t1 + HOLD),
            vec![(ip(A), Action::Announce)]
        );
    }

    #[test]
    fn quorum_of_an_unprogrammed_service_does_not_count() {
        let (mut vips, _) = Vips::new([ip(A)], HOLD, &[]);
        let r = ready(&[(A, 80, false, Some(true)), (A, 443, true, Some(false))]);
        assert!(vips.evaluate(&r, Instant::now()).is_empty());
        assert_eq!(vips.rows()[0].2, "withdrawn: below quorum");
    }

    #[test]
    fn drain_and_undrain() {
        let t0 = Instant::now();
        let (mut vips, _) = Vips::new([ip(A), ip(B)], HOLD, &[]);
        let r = ready(&[(A, 80, true, Some(true)), (B, 80, true, Some(true))]);
        assert_eq!(vips.evaluate(&r, t0).len(), 2);
        vips.set_drained(true);
        assert_eq!(
            vips.evaluate(&r, t0),
            vec![(ip(A), Action::Withdraw), (ip(B), Action::Withdraw)]
        );
        assert!(!vips.any_announced());
        assert_eq!(vips.rows()[0].2, "withdrawn: drained");
        vips.set_drained(false);
        assert_eq!(
            vips.evaluate(&r, t0),
            vec![(ip(A), Action::Announce), (ip(B), Action::Announce)]
        );
    }

    #[test]
    fn addresses_left_by_a_kept_dataplane_wait_for_the_services_state() {
        let t0 = Instant::now();
        let other = ip("192.0.2.99");
        let (mut vips, stray) = Vips::new([ip(A), ip(B)], HOLD, &[ip(A), ip(B), other]);
        assert_eq!(stray, vec![other]);
        assert_eq!(vips.on_link(), [ip(A), ip(B)].into());
        // Programmed, quorum not known yet: kept.
        let r = ready(&[(A, 80, true, None), (B, 80, true, None)]);
        assert!(vips.evaluate(&r, t0).is_empty());
        assert!(vips.rows()[0].1);
        // A is ready (the address is already there: no change), B turns out below quorum.
        let r = ready(&[(A, 80, true, Some(true)), (B, 80, true, Some(false))]);
        assert_eq!(vips.evaluate(&r, t0), vec![(ip(B), Action::Withdraw)]);
        assert_eq!(vips.on_link(), [ip(A)].into());
    }

    #[test]
    fn reload_adds_and_removes_vips() {
        let t0 = Instant::now();
        let (mut vips, _) = Vips::new([ip(A)], HOLD, &[]);
        let r = ready(&[(A, 80, true, Some(true)), (B, 80, true, Some(true))]);
        assert_eq!(vips.evaluate(&r, t0), vec![(ip(A), Action::Announce)]);
        assert_eq!(vips.reconfigure([ip(B)], HOLD), vec![ip(A)]);
        assert_eq!(vips.evaluate(&r, t0), vec![(ip(B), Action::Announce)]);
    }

    #[test]
    fn drain_ends_when_idle_or_at_the_timeout() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Drain::new(t0, Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(d.observe(Some(100), ms(200)), None);
        assert_eq!(d.observe(Some(150), ms(900)), None);
        // Idle counts from the last change (at 900 ms).
        assert_eq!(d.observe(Some(150), ms(1800)), None);
        assert!(d.describe(ms(1800)).starts_with("draining for 1.8s"));
        assert_eq!(d.observe(Some(150), ms(1900)), Some(DrainEnd::Idle));
        assert!(d.ended());
        assert_eq!(d.observe(Some(999), ms(5000)), Some(DrainEnd::Idle));

        let mut busy = Drain::new(t0, Duration::from_secs(2), Duration::from_secs(1));
        for n in 0..20u64 {
            let end = busy.observe(Some(n), ms(n * 100));
            assert_eq!(end.is_some(), n * 100 >= 2000, "{n}");
        }
        assert_eq!(busy.observe(Some(21), ms(2100)), Some(DrainEnd::Timeout));
        assert_eq!(
            busy.describe(ms(3000)),
            "drained: drain_timeout (2s) passed"
        );
        // Unknown counters: idle counts from the start.
        let mut blind = Drain::new(t0, Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(blind.observe(None, ms(1000)), Some(DrainEnd::Idle));
    }
}
