//! NAT state in user space: which reals may be answered for without a translation
//! entry (`lb_nat_reals`), expiring translation entries by connection state (the data
//! plane never deletes them: a full table must not evict established connections),
//! and the next hops the data plane found unresolved (`lb_neigh_miss`).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData};
use lb_common::{map_names, nat_dir, nat_state, FlowKey, NatEntry, NatReal, NeighMiss, ServiceKey};

pub use crate::config::NatTimeouts;

use super::{
    map_err,
    spec::{decode_addr, encode_addr},
    Dataplane, DataplaneError, ForwardMode, ServiceId,
};

/// After an RST, as IPVS's CLOSE state.
const CLOSED_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection in `state` may stay idle.
fn idle_limit(timeouts: &NatTimeouts, state: u8) -> Duration {
    match state {
        nat_state::ESTABLISHED => timeouts.tcp,
        nat_state::SYN | nat_state::FIN => timeouts.tcpfin,
        nat_state::CLOSED => CLOSED_TIMEOUT,
        _ => timeouts.udp,
    }
}

/// What a sweep of the NAT table found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NatSweep {
    /// Entries present before the sweep.
    pub entries: usize,
    /// Entries removed (both directions of expired connections, and orphans).
    pub expired: usize,
}

/// The name of a [`nat_state`] value.
pub fn state_name(state: u8) -> &'static str {
    match state {
        nat_state::SYN => "SYN",
        nat_state::ESTABLISHED => "ESTABLISHED",
        nat_state::FIN => "FIN",
        nat_state::CLOSED => "CLOSED",
        nat_state::UDP => "UDP",
        _ => "?",
    }
}

/// One NAT'ed connection as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConnection {
    pub client: (IpAddr, u16),
    pub vip: (IpAddr, u16),
    /// The source the real sees (the client, or the SNAT address and port).
    pub source: (IpAddr, u16),
    pub real: (IpAddr, u16),
    pub protocol: u8,
    pub state: u8,
}

impl Dataplane {
    fn nat_map(&self) -> Result<BpfHashMap<&MapData, FlowKey, NatEntry>, DataplaneError> {
        let name = map_names::NAT;
        BpfHashMap::try_from(self.map(name)?).map_err(|e| map_err(name, e))
    }

    fn nat_map_mut(
        &mut self,
    ) -> Result<BpfHashMap<&mut MapData, FlowKey, NatEntry>, DataplaneError> {
        let name = map_names::NAT;
        BpfHashMap::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))
    }

    /// Every translation entry (both directions).
    pub fn nat_entries(&self) -> Result<Vec<(FlowKey, NatEntry)>, DataplaneError> {
        let map = self.nat_map()?;
        // An entry deleted between the key walk and its lookup is simply gone.
        Ok(map.iter().flatten().collect())
    }

    /// The NAT'ed connections, from their client-side entries.
    pub fn nat_connections(&self) -> Result<Vec<NatConnection>, DataplaneError> {
        let addr = |a: &lb_common::Addr, family| decode_addr(a, family);
        Ok(self
            .nat_entries()?
            .into_iter()
            .filter(|(_, e)| e.direction == nat_dir::TO_REAL)
            .filter_map(|(k, e)| {
                Some(NatConnection {
                    client: (addr(&k.src, k.family)?, u16::from_be(k.sport)),
                    vip: (addr(&k.dst, k.family)?, u16::from_be(k.dport)),
                    source: (addr(&e.src, k.family)?, u16::from_be(e.sport)),
                    real: (addr(&e.dst, k.family)?, u16::from_be(e.dport)),
                    protocol: k.proto,
                    state: e.state,
                })
            })
            .collect())
    }

    /// Removes the translation entries of connections idle longer than their state's
    /// timeout (`now_ns` on the `bpf_ktime_get_coarse_ns` clock, i.e. CLOCK_MONOTONIC).
    /// A connection's two entries go together; the newer activity and the more
    /// advanced state of the two decide.
    pub fn sweep_nat(
        &mut self,
        timeouts: &NatTimeouts,
        now_ns: u64,
    ) -> Result<NatSweep, DataplaneError> {
        let entries = self.nat_entries()?;
        let by_key: HashMap<FlowKey, NatEntry> = entries.iter().copied().collect();
        let mut doomed: HashSet<FlowKey> = HashSet::new();
        let mut paired: HashSet<FlowKey> = HashSet::new();
        let expired = |last: u64, state: u8| {
            now_ns.saturating_sub(last) > idle_limit(timeouts, state).as_nanos() as u64
        };
        for (key, e) in &entries {
            if e.direction != nat_dir::TO_REAL {
                continue;
            }
            let rkey = reply_key(key, e);
            let (last, state) = match by_key.get(&rkey) {
                Some(r) if r.direction == nat_dir::TO_CLIENT => {
                    paired.insert(rkey);
                    (e.last_seen_ns.max(r.last_seen_ns), e.state.max(r.state))
                }
                _ => (e.last_seen_ns, e.state),
            };
            if expired(last, state) {
                doomed.insert(*key);
                doomed.insert(rkey);
            }
        }
        // Reply entries whose client side is gone (replaced, or removed by hand).
        for (key, e) in &entries {
            if e.direction == nat_dir::TO_CLIENT
                && !paired.contains(key)
                && expired(e.last_seen_ns, e.state)
            {
                doomed.insert(*key);
            }
        }
        let mut map = self.nat_map_mut()?;
        let mut removed = 0;
        for key in &doomed {
            if map.remove(key).is_ok() {
                removed += 1;
            }
        }
        Ok(NatSweep {
            entries: entries.len(),
            expired: removed,
        })
    }

    /// Next hops the data plane could not resolve since the last call (cleared).
    pub fn take_neigh_misses(&mut self) -> Result<Vec<(IpAddr, u32)>, DataplaneError> {
        let name = map_names::NEIGH_MISS;
        let mut map: BpfHashMap<&mut MapData, NeighMiss, u64> =
            BpfHashMap::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        let keys: Vec<NeighMiss> = map.keys().filter_map(Result::ok).collect();
        let mut out = Vec::new();
        for k in keys {
            let _ = map.remove(&k);
            if let Some(addr) = decode_addr(&k.addr, k.family) {
                out.push((addr, k.ifindex));
            }
        }
        Ok(out)
    }

    /// Rewrites `lb_nat_reals` from the programmed services: a real of a NAT service
    /// without SNAT gets an entry when no other such service uses the same real
    /// address, port and protocol (else its replies would be ambiguous).
    pub(super) fn sync_nat_reals(&mut self) -> Result<(), DataplaneError> {
        let mut users: HashMap<ServiceKey, Vec<(ServiceId, u32)>> = HashMap::new();
        for (id, state) in &self.services {
            let Some(spec) = &state.spec else { continue };
            if spec.mode != (ForwardMode::Nat { snat: None }) {
                continue;
            }
            for b in &spec.backends {
                let (addr, family) = encode_addr(b.addr);
                let port = if b.port == 0 { id.port } else { b.port };
                let key = ServiceKey {
                    addr,
                    port: port.to_be(),
                    proto: id.protocol.number(),
                    family,
                };
                users.entry(key).or_default().push((*id, state.info.id));
            }
        }
        let wanted: HashMap<ServiceKey, NatReal> = users
            .into_iter()
            .filter_map(|(key, services)| match services.as_slice() {
                [(id, sid)] => Some((
                    key,
                    NatReal {
                        vip: encode_addr(id.vip).0,
                        vport: id.port.to_be(),
                        pad: 0,
                        service: *sid,
                    },
                )),
                _ => {
                    tracing::warn!(
                        real = ?decode_addr(&key.addr, key.family),
                        port = u16::from_be(key.port),
                        "a real server serves several NAT services: its replies need a translation entry (no fallback after a failover or with a full NAT table)"
                    );
                    None
                }
            })
            .collect();
        self.write_global_flags()?;
        let name = map_names::NAT_REALS;
        let mut map: BpfHashMap<&mut MapData, ServiceKey, NatReal> =
            BpfHashMap::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        let present: Vec<ServiceKey> = map.keys().filter_map(Result::ok).collect();
        for key in present {
            if !wanted.contains_key(&key) {
                map.remove(&key).map_err(|e| map_err(name, e))?;
            }
        }
        for (key, value) in &wanted {
            if map.get(key, 0).ok().as_ref() != Some(value) {
                map.insert(key, value, 0).map_err(|e| map_err(name, e))?;
            }
        }
        Ok(())
    }
}

impl Dataplane {
    /// Rewrites `lb_flags[0]`: packets not for a VIP are looked up as NAT replies only
    /// while NAT is in use; new flows are reported while flow-state sync is on.
    pub(super) fn write_global_flags(&mut self) -> Result<(), DataplaneError> {
        // A service adopted from pinned maps has no spec until it is programmed again;
        // its pinned entry says whether it is NAT. Without this, the first write after
        // an upgrade restart (sync learning, another service) switched the NAT reply
        // path off until the NAT service was programmed again: replies were lost.
        let nat_in_use = self.services.values().any(|s| match &s.spec {
            Some(spec) => spec.mode.is_nat(),
            None => s.info.flags & lb_common::mode::MASK == lb_common::mode::NAT,
        });
        let value = self.global_flag_bits(nat_in_use);
        let name = map_names::FLAGS;
        let mut flags: Array<&mut MapData, u32> =
            Array::try_from(self.map_mut(name)?).map_err(|e| map_err(name, e))?;
        flags.set(0, value, 0).map_err(|e| map_err(name, e))
    }
}

/// The key a connection's replies arrive with: its client-side entry's rewritten
/// tuple, reversed.
pub fn reply_key(key: &FlowKey, e: &NatEntry) -> FlowKey {
    FlowKey {
        src: e.dst,
        dst: e.src,
        sport: e.dport,
        dport: e.sport,
        proto: key.proto,
        family: key.family,
        pad: 0,
    }
}

/// Now on the clock the data plane stamps entries with (`bpf_ktime_get_coarse_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names() {
        assert_eq!(state_name(nat_state::ESTABLISHED), "ESTABLISHED");
        assert_eq!(state_name(nat_state::UDP), "UDP");
        assert_eq!(state_name(0), "?");
    }

    #[test]
    fn timeouts_by_state() {
        let t = NatTimeouts::default();
        assert_eq!(
            idle_limit(&t, nat_state::ESTABLISHED),
            Duration::from_secs(900)
        );
        assert_eq!(idle_limit(&t, nat_state::SYN), Duration::from_secs(120));
        assert_eq!(idle_limit(&t, nat_state::FIN), Duration::from_secs(120));
        assert_eq!(idle_limit(&t, nat_state::CLOSED), CLOSED_TIMEOUT);
        assert_eq!(idle_limit(&t, nat_state::UDP), Duration::from_secs(300));
    }

    #[test]
    fn reply_key_reverses_the_rewritten_tuple() {
        let key = FlowKey {
            src: [1, 0, 0, 0],
            dst: [2, 0, 0, 0],
            sport: 10,
            dport: 80,
            proto: 6,
            family: 4,
            pad: 0,
        };
        let e = NatEntry {
            src: [9, 0, 0, 0],
            dst: [3, 0, 0, 0],
            sport: 2000,
            dport: 8080,
            ..Default::default()
        };
        let r = reply_key(&key, &e);
        assert_eq!(
            (r.src, r.dst, r.sport, r.dport),
            ([3, 0, 0, 0], [9, 0, 0, 0], 8080, 2000)
        );
        assert_eq!((r.proto, r.family), (6, 4));
    }
}
