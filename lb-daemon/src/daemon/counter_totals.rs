//! Counters that only grow for the daemon's lifetime.
//!
//! The data plane's packet and byte counters live in map slots that go with their
//! service: when a VRRP instance leaves MASTER the owner removes its services, and when
//! it takes MASTER again they count from 0; a reload, a backend leaving its service or a
//! new plane does the same. Prometheus would read each as a restart and `status` would
//! hide the traffic. The owner passes every reading through [`CounterTotals`], which
//! banks a counter's last value when its source goes away (told by [`CounterTotals::retire`],
//! or seen when a reading goes backwards) and adds the bank to what the source counts next.

use std::{collections::HashMap, hash::Hash, net::IpAddr};

use lb_common::Traffic;

use crate::dataplane::{BackendStatus, ServiceId, ServiceStatus};

/// One counter: the source's last reading and what earlier sources counted.
#[derive(Debug, Default, Clone, Copy)]
struct Carry {
    last: u64,
    banked: u64,
}

impl Carry {
    fn total(self) -> u64 {
        self.banked.saturating_add(self.last)
    }
}

/// Monotonic totals of counters whose source may restart from 0.
#[derive(Debug)]
struct Monotonic<K> {
    seen: HashMap<K, Carry>,
}

impl<K> Default for Monotonic<K> {
    fn default() -> Self {
        Monotonic {
            seen: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> Monotonic<K> {
    /// The total after the source read `raw`.
    fn observe(&mut self, key: K, raw: u64) -> u64 {
        let c = self.seen.entry(key).or_default();
        if raw < c.last {
            // The source restarted underneath (a slot freed and reused).
            c.banked = c.total();
        }
        c.last = raw;
        c.total()
    }

    /// The source is gone; the next one starts from 0.
    fn retire(&mut self, key: &K) {
        if let Some(c) = self.seen.get_mut(key) {
            c.banked = c.total();
            c.last = 0;
        }
    }

    fn total(&self, key: &K) -> u64 {
        self.seen.get(key).map_or(0, |c| c.total())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Service(ServiceId),
    Backend(ServiceId, IpAddr, u16),
}

/// Lifetime totals of the plane's service, backend and global counters.
#[derive(Debug, Default)]
pub struct CounterTotals {
    packets: Monotonic<Key>,
    bytes: Monotonic<Key>,
    globals: Monotonic<String>,
}

impl CounterTotals {
    fn observe(&mut self, key: Key, raw: Traffic) -> Traffic {
        Traffic {
            packets: self.packets.observe(key, raw.packets),
            bytes: self.bytes.observe(key, raw.bytes),
        }
    }

    fn total(&self, key: Key) -> Traffic {
        Traffic {
            packets: self.packets.total(&key),
            bytes: self.bytes.total(&key),
        }
    }

    /// The plane's status with lifetime totals. Services and backends counted before
    /// but not programmed now are included with what they counted (mode None, no slots).
    pub fn status(&mut self, live: Vec<ServiceStatus>) -> Vec<ServiceStatus> {
        let mut out: Vec<ServiceStatus> = live
            .into_iter()
            .map(|mut s| {
                s.traffic = self.observe(Key::Service(s.id), s.traffic);
                for b in &mut s.backends {
                    b.traffic = self.observe(Key::Backend(s.id, b.addr, b.port), b.traffic);
                }
                s
            })
            .collect();
        for key in self.packets.seen.keys() {
            match *key {
                Key::Service(id) if !out.iter().any(|s| s.id == id) => out.push(ServiceStatus {
                    id,
                    mode: None,
                    table_size: 0,
                    traffic: self.total(*key),
                    backends: Vec::new(),
                    nat_connections: None,
                }),
                _ => {}
            }
        }
        for s in &mut out {
            for key in self.packets.seen.keys() {
                let Key::Backend(id, addr, port) = *key else {
                    continue;
                };
                if id == s.id && !s.backends.iter().any(|b| b.addr == addr && b.port == port) {
                    s.backends.push(BackendStatus {
                        addr,
                        port,
                        weight: 0,
                        slots: 0,
                        traffic: self.total(*key),
                        connections: None,
                    });
                }
            }
            s.backends.sort_by_key(|b| (b.addr, b.port));
        }
        out.sort_by_key(|s| (s.id.vip, s.id.port, s.id.protocol.number()));
        out
    }

    /// `id` is about to be removed from the plane, which drops its counters; `last` is
    /// its final reading (None if the plane had none).
    pub fn retire(&mut self, id: ServiceId, last: Option<&ServiceStatus>) {
        if let Some(s) = last {
            self.status(vec![s.clone()]);
        }
        let keys: Vec<Key> = self
            .packets
            .seen
            .keys()
            .filter(|k| matches!(k, Key::Service(s) | Key::Backend(s, ..) if *s == id))
            .copied()
            .collect();
        for key in keys {
            self.packets.retire(&key);
            self.bytes.retire(&key);
        }
    }

    /// Global counters (drops by reason, ...) as lifetime totals.
    pub fn counters(&mut self, live: Vec<(String, u64)>) -> Vec<(String, u64)> {
        live.into_iter()
            .map(|(name, raw)| {
                let total = self.globals.observe(name.clone(), raw);
                (name, total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn id() -> ServiceId {
        ServiceId {
            vip: "10.0.0.1".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        }
    }

    fn reading(service: u64, backend: u64) -> ServiceStatus {
        ServiceStatus {
            id: id(),
            mode: None,
            table_size: 7,
            traffic: Traffic {
                packets: service,
                bytes: service * 100,
            },
            backends: vec![BackendStatus {
                addr: "10.0.1.1".parse().unwrap(),
                port: 80,
                weight: 1,
                slots: 7,
                traffic: Traffic {
                    packets: backend,
                    bytes: backend * 100,
                },
                connections: None,
            }],
            nat_connections: None,
        }
    }

    fn packets(s: &[ServiceStatus]) -> (u64, u64) {
        (s[0].traffic.packets, s[0].backends[0].traffic.packets)
    }

    #[test]
    fn a_removed_service_keeps_its_count_and_adds_the_next() {
        let mut t = CounterTotals::default();
        assert_eq!(packets(&t.status(vec![reading(10, 6)])), (10, 6));
        // Counted up to 15 / 8 before its removal, unread since.
        t.retire(id(), Some(&reading(15, 8)));
        let away = t.status(Vec::new());
        assert_eq!(
            packets(&away),
            (15, 8),
            "still reported while not programmed"
        );
        assert_eq!(away[0].traffic.bytes, 1500);
        assert_eq!(away[0].backends[0].slots, 0);
        // Programmed again: the plane counts from 0, even past the old value at once.
        assert_eq!(packets(&t.status(vec![reading(20, 20)])), (35, 28));
        assert_eq!(packets(&t.status(vec![reading(21, 20)])), (36, 28));
    }

    #[test]
    fn a_reading_going_backwards_is_a_restart_not_a_loss() {
        let mut t = CounterTotals::default();
        t.status(vec![reading(100, 50)]);
        assert_eq!(packets(&t.status(vec![reading(3, 2)])), (103, 52));
        assert_eq!(
            t.counters(vec![("no_backend".into(), 9)]),
            vec![("no_backend".to_string(), 9)]
        );
        assert_eq!(
            t.counters(vec![("no_backend".into(), 1)]),
            vec![("no_backend".to_string(), 10)]
        );
    }

    #[test]
    fn a_backend_missing_from_a_live_service_keeps_its_total() {
        let mut t = CounterTotals::default();
        t.status(vec![reading(10, 6)]);
        let mut without = reading(12, 0);
        without.backends.clear();
        let s = t.status(vec![without]);
        assert_eq!(packets(&s), (12, 6));
        assert_eq!(
            s[0].table_size, 7,
            "a live service stays as the plane reads it"
        );
    }
}
