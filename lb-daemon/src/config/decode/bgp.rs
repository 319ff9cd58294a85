//! `[bgp]`: active-active VIPs announced through BIRD (docs/bgp.md). Absent, every key
//! takes its default; only `interfaces` has none, and only announced services need it.

use crate::config::reader::{Decoder, Table};
use crate::config::schema::Bgp;
use crate::config::source::{KeyPath, Span};

use super::virtual_server::interfaces;

/// `[bgp]` decoded, with where it was written (for diagnostics about a missing key).
pub(crate) struct BgpFacts {
    /// The section's path and span; None when there is no `[bgp]`.
    pub section: Option<(KeyPath, Span)>,
}

pub(super) fn decode(d: &mut Decoder<'_>, t: Option<Table<'_, '_>>) -> (Bgp, BgpFacts) {
    let defaults = Bgp::default();
    let Some(mut t) = t else {
        return (defaults, BgpFacts { section: None });
    };
    let bgp = Bgp {
        interface: t
            .get(d, "interface")
            .and_then(|f| f.interface(d))
            .unwrap_or(defaults.interface),
        bird_socket: t
            .get(d, "bird_socket")
            .and_then(|f| f.absolute_path(d))
            .unwrap_or(defaults.bird_socket),
        hold_down: t
            .get(d, "hold_down")
            .and_then(|f| f.duration(d))
            .unwrap_or(defaults.hold_down),
        drain_timeout: t
            .get(d, "drain_timeout")
            .and_then(|f| f.duration(d))
            .unwrap_or(defaults.drain_timeout),
        drain_idle: t
            .get(d, "drain_idle")
            .and_then(|f| f.nonzero_duration(d))
            .unwrap_or(defaults.drain_idle),
        interfaces: t
            .get(d, "interfaces")
            .map(|f| interfaces(d, &f))
            .unwrap_or_default(),
    };
    let facts = BgpFacts {
        section: Some((t.path().clone(), t.span())),
    };
    t.finish(d);
    (bgp, facts)
}
