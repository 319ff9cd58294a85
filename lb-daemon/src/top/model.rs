//! `lb-daemon top`'s model, pure: rows from two successive snapshots (rates are the
//! counters' differences over the time between them), sorted and filtered as asked.

use crate::daemon::{metrics::host_port, snapshot::Snapshot};

/// What the rows are sorted by (`s` cycles, largest first except by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Name,
    PacketsPerSecond,
    BytesPerSecond,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Name => SortKey::PacketsPerSecond,
            SortKey::PacketsPerSecond => SortKey::BytesPerSecond,
            SortKey::BytesPerSecond => SortKey::Name,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::PacketsPerSecond => "packets/s",
            SortKey::BytesPerSecond => "bytes/s",
        }
    }
}

/// One backend of one service (the service's own row has `backend` None).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub service: String,
    pub backend: Option<String>,
    /// "yes"/"no" for a backend, "quorum"/"no quorum" for a service.
    pub health: &'static str,
    pub weight: Option<u32>,
    /// NAT services: connections in the translation table.
    pub connections: Option<u64>,
    pub packets_per_second: f64,
    pub bytes_per_second: f64,
    pub packets: u64,
    pub bytes: u64,
}

/// Rows of `cur`, with rates against `prev` taken `seconds` earlier (0 without one).
pub fn rows(prev: Option<&Snapshot>, cur: &Snapshot, seconds: f64) -> Vec<Row> {
    let rate = |now: u64, before: Option<u64>| match before {
        Some(b) if seconds > 0.0 => now.saturating_sub(b) as f64 / seconds,
        _ => 0.0,
    };
    let mut out = Vec::new();
    for s in &cur.services {
        let name = format!("{}/{}", host_port(&s.address, s.port), s.protocol);
        let before = prev.and_then(|p| {
            p.services
                .iter()
                .find(|o| o.address == s.address && o.port == s.port && o.protocol == s.protocol)
        });
        out.push(Row {
            service: name.clone(),
            backend: None,
            health: if s.quorum_up { "quorum" } else { "no quorum" },
            weight: None,
            connections: s.nat_connections,
            packets_per_second: rate(s.packets, before.map(|b| b.packets)),
            bytes_per_second: rate(s.bytes, before.map(|b| b.bytes)),
            packets: s.packets,
            bytes: s.bytes,
        });
        for b in &s.backends {
            let old = before.and_then(|o| {
                o.backends
                    .iter()
                    .find(|x| x.address == b.address && x.port == b.port)
            });
            out.push(Row {
                service: name.clone(),
                backend: Some(host_port(&b.address, b.port)),
                health: if b.healthy { "yes" } else { "no" },
                weight: Some(b.weight),
                connections: b.connections,
                packets_per_second: rate(b.packets, old.map(|o| o.packets)),
                bytes_per_second: rate(b.bytes, old.map(|o| o.bytes)),
                packets: b.packets,
                bytes: b.bytes,
            });
        }
    }
    out
}

/// The rows to show: those whose service or backend contains `filter`, each service
/// followed by its backends, services and backends each in `sort` order.
pub fn visible(rows: &[Row], sort: SortKey, filter: &str) -> Vec<Row> {
    let matches = |r: &Row| {
        filter.is_empty()
            || r.service.contains(filter)
            || r.backend.as_deref().is_some_and(|b| b.contains(filter))
    };
    let order = |a: &Row, b: &Row| match sort {
        SortKey::Name => a.service.cmp(&b.service).then(a.backend.cmp(&b.backend)),
        SortKey::PacketsPerSecond => b.packets_per_second.total_cmp(&a.packets_per_second),
        SortKey::BytesPerSecond => b.bytes_per_second.total_cmp(&a.bytes_per_second),
    };
    let mut services: Vec<&Row> = rows.iter().filter(|r| r.backend.is_none()).collect();
    services.sort_by(|a, b| order(a, b));
    let mut out = Vec::new();
    for s in services {
        let mut backends: Vec<&Row> = rows
            .iter()
            .filter(|r| r.backend.is_some() && r.service == s.service && matches(r))
            .collect();
        if backends.is_empty() && !matches(s) {
            continue;
        }
        backends.sort_by(|a, b| order(a, b));
        out.push(s.clone());
        out.extend(backends.into_iter().cloned());
    }
    out
}

/// "1.2k", "3.4M": rates in a narrow column.
pub fn human(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::snapshot::{BackendSnapshot, ServiceSnapshot};

    fn snap(packets: [u64; 2]) -> Snapshot {
        let backend = |addr: &str, packets: u64| BackendSnapshot {
            address: addr.into(),
            port: 80,
            weight: 1,
            healthy: addr.ends_with('1'),
            packets,
            bytes: packets * 100,
            ..Default::default()
        };
        Snapshot {
            services: vec![ServiceSnapshot {
                address: "10.0.0.10".into(),
                port: 80,
                protocol: "TCP".into(),
                quorum_up: true,
                packets: packets[0] + packets[1],
                bytes: (packets[0] + packets[1]) * 100,
                backends: vec![
                    backend("10.0.1.1", packets[0]),
                    backend("10.0.1.2", packets[1]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_differences_over_time() {
        let r = rows(Some(&snap([10, 0])), &snap([30, 100]), 2.0);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].packets_per_second, 60.0);
        assert_eq!(r[1].packets_per_second, 10.0);
        assert_eq!(r[2].bytes_per_second, 5000.0);
        assert_eq!(r[2].health, "no");
        // The first snapshot has no rates yet.
        assert!(rows(None, &snap([30, 100]), 0.0)
            .iter()
            .all(|r| r.packets_per_second == 0.0));
    }

    #[test]
    fn sorting_and_filtering_keep_backends_under_their_service() {
        let r = rows(Some(&snap([10, 0])), &snap([30, 100]), 1.0);
        let names =
            |v: Vec<Row>| -> Vec<Option<String>> { v.into_iter().map(|r| r.backend).collect() };
        assert_eq!(
            names(visible(&r, SortKey::PacketsPerSecond, "")),
            [None, Some("10.0.1.2:80".into()), Some("10.0.1.1:80".into())]
        );
        assert_eq!(
            names(visible(&r, SortKey::Name, "10.0.1.1")),
            [None, Some("10.0.1.1:80".into())]
        );
        assert!(visible(&r, SortKey::Name, "nothing").is_empty());
        assert_eq!(SortKey::BytesPerSecond.next(), SortKey::Name);
        assert_eq!(human(1234.0), "1.2k");
    }
}
