//! `[[vrrp_script]]`.

use super::{name, Named};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{VrrpScript, DEFAULT_SCRIPT_INTERVAL, WEIGHT_RANGE};

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
) -> (Option<VrrpScript>, Option<Named>) {
    let errors_before = d.error_count();
    let name = name(d, &mut t);
    let script = t.required(d, "script").and_then(|f| f.string(d));
    let interval = t
        .get(d, "interval")
        .and_then(|f| f.nonzero_duration(d))
        .unwrap_or(DEFAULT_SCRIPT_INTERVAL);
    // keepalived: a script that sets no timeout may run for a whole interval.
    let timeout = t
        .get(d, "timeout")
        .and_then(|f| f.nonzero_duration(d))
        .unwrap_or(interval);
    let weight = t
        .get(d, "weight")
        .and_then(|f| f.int(d, WEIGHT_RANGE))
        .unwrap_or(0);
    let reverse = t.get(d, "reverse").and_then(|f| f.bool(d)).unwrap_or(false);
    let rise = t
        .get(d, "rise")
        .and_then(|f| f.int(d, 1..=i64::MAX))
        .unwrap_or(1);
    let fall = t
        .get(d, "fall")
        .and_then(|f| f.int(d, 1..=i64::MAX))
        .unwrap_or(1);
    let user = t.get(d, "user").and_then(|f| f.string(d));
    t.finish(d);

    let typed = match (&name, script) {
        (Some(name), Some(script)) if d.error_count() == errors_before => Some(VrrpScript {
            name: name.name.clone(),
            script,
            interval,
            timeout,
            weight,
            reverse,
            rise,
            fall,
            user,
        }),
        _ => None,
    };
    (typed, name)
}
