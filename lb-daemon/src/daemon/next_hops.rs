//! Backends' next hops (egress interface and MACs), resolved ahead of need and cached,
//! so that programming a service, above all when its VRRP instance becomes MASTER, reads
//! a table instead of waiting on lookups. Lookups run concurrently, one per distinct
//! address, each bounded by [`RESOLVE_TIMEOUT`].

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use futures::future::join_all;

use crate::dataplane::{self, Egress};
use crate::net::neigh::Neighbours;

/// How long resolving one next hop may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Resolved next hops by backend address (only successes: a missing entry is looked up
/// again when next needed).
#[derive(Debug, Default)]
pub struct NextHops(HashMap<IpAddr, Egress>);

impl NextHops {
    pub fn get(&self, addr: IpAddr) -> Option<Egress> {
        self.0.get(&addr).copied()
    }

    /// Which of `addrs` (deduplicated) have no entry.
    pub fn missing(&self, addrs: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
        let wanted: HashSet<IpAddr> = addrs.into_iter().collect();
        wanted
            .into_iter()
            .filter(|a| !self.0.contains_key(a))
            .collect()
    }

    /// The addresses cached, to refresh them.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.0.keys().copied().collect()
    }

    /// Records lookups: a success replaces the entry, a failure removes it. Returns the
    /// addresses whose next hop appeared or changed (their services need reprogramming:
    /// a backend left out for want of a next hop comes back, a new MAC is used).
    pub fn record(&mut self, results: impl IntoIterator<Item = Resolved>) -> HashSet<IpAddr> {
        let mut changed = HashSet::new();
        for r in results {
            match r.egress {
                Ok(egress) => {
                    if self.0.insert(r.addr, egress) != Some(egress) {
                        changed.insert(r.addr);
                    }
                }
                Err(_) => {
                    self.0.remove(&r.addr);
                }
            }
        }
        changed
    }

    /// Forgets addresses no configured backend has any more.
    pub fn retain(&mut self, keep: &HashSet<IpAddr>) {
        self.0.retain(|a, _| keep.contains(a));
    }
}

/// One lookup's outcome.
#[derive(Debug)]
pub struct Resolved {
    pub addr: IpAddr,
    pub egress: Result<Egress, String>,
}

/// Looks next hops up through rtnetlink (making the kernel resolve missing neighbours).
#[derive(Clone)]
pub struct Resolver {
    neigh: Neighbours,
}

impl Resolver {
    pub fn new(neigh: Neighbours) -> Self {
        Resolver { neigh }
    }

    /// Resolves every address at once; the whole takes at most about one
    /// [`RESOLVE_TIMEOUT`], however many there are.
    pub async fn resolve_all(&self, addrs: Vec<IpAddr>) -> Vec<Resolved> {
        join_all(addrs.into_iter().map(|addr| self.resolve(addr))).await
    }

    pub async fn resolve(&self, addr: IpAddr) -> Resolved {
        let egress = dataplane::resolve_egress(&self.neigh, addr, RESOLVE_TIMEOUT)
            .await
            .map_err(|e| e.to_string());
        Resolved { addr, egress }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(ifindex: u32) -> Egress {
        Egress {
            ifindex,
            next_hop_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            tunnel_src: None,
        }
    }

    #[test]
    fn successes_are_cached_and_failures_forget_the_entry() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut hops = NextHops::default();
        hops.record([Resolved {
            addr: a,
            egress: Ok(egress(3)),
        }]);
        assert_eq!(hops.get(a), Some(egress(3)));
        assert_eq!(hops.missing([a, b, b]), [b]);
        let same = hops.record([Resolved {
            addr: a,
            egress: Ok(egress(3)),
        }]);
        assert!(
            same.is_empty(),
            "an unchanged next hop needs no reprogramming"
        );
        let moved = hops.record([Resolved {
            addr: a,
            egress: Ok(egress(4)),
        }]);
        assert_eq!(moved, HashSet::from([a]));
        hops.record([Resolved {
            addr: a,
            egress: Err("no route".into()),
        }]);
        assert_eq!(hops.get(a), None);
    }

    #[test]
    fn retain_forgets_unconfigured_backends() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut hops = NextHops::default();
        hops.record([Resolved {
            addr: a,
            egress: Ok(egress(3)),
        }]);
        hops.retain(&HashSet::new());
        assert!(hops.addresses().is_empty());
    }
}
