//! `[[vrrp_track_process]]` (keepalived's `vrrp_track_process NAME { process ... }`).

use super::{name, Named};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{ParamMatch, VrrpTrackProcess, PROCESS_COMM_MAX, WEIGHT_RANGE};

const MATCHES: &[(&str, ParamMatch)] = &[
    ("exact", ParamMatch::Exact),
    ("initial", ParamMatch::Initial),
    ("partial", ParamMatch::Partial),
];

pub(super) fn decode(
    d: &mut Decoder<'_>,
    mut t: Table<'_, '_>,
) -> (Option<VrrpTrackProcess>, Option<Named>) {
    let errors_before = d.error_count();
    let name = name(d, &mut t);
    let process_field = t.required(d, "process");
    let process = process_field.as_ref().and_then(|f| f.string(d));
    let parameters: Vec<String> = t
        .get(d, "parameters")
        .and_then(|f| f.array(d))
        .map(|items| {
            items
                .iter()
                .filter_map(|f| f.str(d).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let param_match = t.get(d, "param_match").and_then(|f| f.keyword(d, MATCHES));
    let full_command = t.get(d, "full_command").and_then(|f| f.bool(d));
    let weight = t
        .get(d, "weight")
        .and_then(|f| f.int(d, WEIGHT_RANGE))
        .unwrap_or(0);
    let reverse = t.get(d, "reverse").and_then(|f| f.bool(d)).unwrap_or(false);
    let quorum_field = t.get(d, "quorum");
    let quorum_max_field = t.get(d, "quorum_max");
    let quorum_max = quorum_max_field
        .as_ref()
        .and_then(|f| f.int::<u32>(d, 0..=65_535));
    let quorum = quorum_field
        .as_ref()
        .and_then(|f| f.int::<u32>(d, 1..=65_535))
        // keepalived: `quorum_max 0` alone means "up while none runs".
        .unwrap_or(if quorum_max == Some(0) { 0 } else { 1 });
    let quorum_max = quorum_max.unwrap_or(u32::MAX);
    if quorum > quorum_max {
        if let Some(f) = quorum_max_field.as_ref() {
            f.error(
                d,
                format!("quorum_max {quorum_max} is below quorum {quorum}"),
            )
            .hint("the process is up while quorum <= running <= quorum_max");
        }
    }
    let delay = t.get(d, "delay").and_then(|f| f.duration(d));
    let fork_delay = t
        .get(d, "fork_delay")
        .and_then(|f| f.duration(d))
        .or(delay)
        .unwrap_or_default();
    let terminate_delay = t
        .get(d, "terminate_delay")
        .and_then(|f| f.duration(d))
        .or(delay)
        .unwrap_or_default();
    t.finish(d);
    // keepalived: parameters or a param_match mean matching the command line.
    let full_command =
        full_command.unwrap_or(false) || !parameters.is_empty() || param_match.is_some();
    let param_match = match (param_match, parameters.is_empty()) {
        (Some(m), _) => m,
        (None, false) => ParamMatch::Exact,
        (None, true) => ParamMatch::Any,
    };
    if let (Some(p), Some(f)) = (&process, &process_field) {
        if !full_command && p.chars().count() > PROCESS_COMM_MAX {
            f.error(
                d,
                format!(
                    "`{p}` is longer than the {PROCESS_COMM_MAX} characters of a process name (/proc/PID/comm): it would never match"
                ),
            )
            .hint("set full_command = true to match the command's first word instead");
        }
    }
    let typed = match (&name, process) {
        (Some(name), Some(process)) if d.error_count() == errors_before => Some(VrrpTrackProcess {
            name: name.name.clone(),
            process,
            parameters,
            param_match,
            full_command,
            weight,
            reverse,
            quorum,
            quorum_max,
            fork_delay,
            terminate_delay,
        }),
        _ => None,
    };
    (typed, name)
}
