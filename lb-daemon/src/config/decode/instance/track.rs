//! `track_interface`, `track_script`, `track_file`: each entry a bare name or
//! `{ name = …, weight = …, reverse = true }`.

use std::path::PathBuf;

use crate::config::address::valid_ifname;
use crate::config::decode::name;
use crate::config::reader::{Decoder, Field};
use crate::config::schema::{
    BfdInstance, TrackBfd, TrackFile, TrackInterface, TrackProcess, TrackScript, VrrpScript,
    VrrpTrackProcess, BFD_WEIGHT_RANGE, WEIGHT_RANGE,
};
use crate::config::source::{KeyPath, Span};
use crate::config::suggest;

/// One entry, with where its name is written.
struct Tracked {
    name: String,
    path: KeyPath,
    span: Span,
    weight: Option<i32>,
    /// The weight (a file's value) counts the other way.
    reverse: bool,
}

fn tracked(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<Tracked> {
    if let Some(name) = f.peek_str() {
        if name.trim().is_empty() {
            f.error(d, "must not be empty");
            return None;
        }
        return Some(Tracked {
            name: name.to_owned(),
            path: f.path().clone(),
            span: f.span(),
            weight: None,
            reverse: false,
        });
    }
    if !f.is_table() {
        f.error(d, "expected a name or a table { name = …, weight = … }");
        return None;
    }
    let mut t = f.table(d)?;
    let errors_before = d.error_count();
    let name = name(d, &mut t);
    let weight = t.get(d, "weight").and_then(|f| f.int(d, WEIGHT_RANGE));
    let reverse = t.get(d, "reverse").and_then(|f| f.bool(d)).unwrap_or(false);
    t.finish(d);
    let name = name.filter(|_| d.error_count() == errors_before)?;
    Some(Tracked {
        name: name.name,
        path: name.path,
        span: name.span,
        weight,
        reverse,
    })
}

pub(super) fn interface(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<TrackInterface> {
    let entry = tracked(d, f)?;
    if !valid_ifname(&entry.name) {
        d.error(
            &entry.path,
            entry.span,
            format!("`{}` is not a valid interface name", entry.name),
        );
        return None;
    }
    Some(TrackInterface {
        name: entry.name,
        weight: entry.weight.unwrap_or(0),
        reverse: entry.reverse,
    })
}

/// Whether `entry` names one of `known` (a `section`); an error with the closest
/// name otherwise.
fn defined(d: &mut Decoder<'_>, entry: &Tracked, known: &[&str], section: &str) -> bool {
    if known.contains(&entry.name.as_str()) {
        return true;
    }
    let hint = suggest::closest(&entry.name, known.iter().copied())
        .map(|s| format!("did you mean `{s}`?"));
    d.error(
        &entry.path,
        entry.span.clone(),
        format!("no {section} is named `{}`", entry.name),
    )
    .maybe_hint(hint);
    false
}

/// `known` lists every script name, `scripts` only those that decoded.
pub(super) fn script(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    known: &[&str],
    scripts: &[VrrpScript],
) -> Option<TrackScript> {
    let entry = tracked(d, f)?;
    if !defined(d, &entry, known, "vrrp_script") {
        return None;
    }
    // A script with errors of its own has no weight; the file is rejected anyway.
    let def = scripts.iter().find(|s| s.name == entry.name);
    Some(TrackScript {
        weight: entry.weight.or(def.map(|s| s.weight)).unwrap_or(0),
        // An entry's own weight brings its own `reverse` (keepalived's vrrp_track.c).
        reverse: if entry.weight.is_some() {
            entry.reverse
        } else {
            entry.reverse || def.is_some_and(|s| s.reverse)
        },
        name: entry.name,
    })
}

/// `track_process = ["NAME", { name = "NAME", weight = W, reverse = true }]`.
pub(super) fn process(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    known: &[&str],
    processes: &[VrrpTrackProcess],
) -> Option<TrackProcess> {
    let entry = tracked(d, f)?;
    if !defined(d, &entry, known, "vrrp_track_process") {
        return None;
    }
    let def = processes.iter().find(|p| p.name == entry.name);
    Some(TrackProcess {
        weight: entry.weight.or(def.map(|p| p.weight)).unwrap_or(0),
        // An entry's own weight brings its own `reverse` (keepalived's track_process).
        reverse: if entry.weight.is_some() {
            entry.reverse
        } else {
            entry.reverse || def.is_some_and(|p| p.reverse)
        },
        name: entry.name,
    })
}

pub(super) fn file(d: &mut Decoder<'_>, f: &Field<'_, '_>) -> Option<TrackFile> {
    let entry = tracked(d, f)?;
    let path = PathBuf::from(&entry.name);
    if !path.is_absolute() {
        d.error(
            &entry.path,
            entry.span,
            format!("`{}` is not an absolute path", entry.name),
        );
        return None;
    }
    // keepalived: a tracked file's weight defaults to 1 (the file's value counts as is).
    Some(TrackFile {
        path,
        weight: entry.weight.unwrap_or(1),
        reverse: entry.reverse,
    })
}

/// `track_bfd = ["NAME", { name = "NAME", weight = W, reverse = true }]` (keepalived's
/// `track_bfd { NAME [weight W [reverse]] }`): the entry's weight, else the
/// bfd_instance's. A session used only by checkers (`vrrp = false`) is an error.
pub(in crate::config::decode) fn bfd(
    d: &mut Decoder<'_>,
    f: &Field<'_, '_>,
    known: &[&str],
    defs: &[BfdInstance],
) -> Option<TrackBfd> {
    let entry = tracked(d, f)?;
    if !defined(d, &entry, known, "bfd_instance") {
        return None;
    }
    if let Some(w) = entry.weight {
        if !BFD_WEIGHT_RANGE.contains(&i64::from(w)) {
            d.error(
                &entry.path,
                entry.span.clone(),
                format!("track_bfd weight must be between -253 and 253, got {w}"),
            );
            return None;
        }
    }
    let def = defs.iter().find(|b| b.name == entry.name);
    if def.is_some_and(|b| !b.vrrp) {
        d.error(
            &entry.path,
            entry.span.clone(),
            format!(
                "bfd_instance `{}` is for checkers only (vrrp = false)",
                entry.name
            ),
        )
        .hint("set vrrp = true in the bfd_instance, or remove both vrrp and checker");
        return None;
    }
    Some(TrackBfd {
        weight: entry.weight.or(def.map(|b| b.weight)).unwrap_or(0),
        reverse: if entry.weight.is_some() {
            entry.reverse
        } else {
            entry.reverse || def.is_some_and(|b| b.reverse)
        },
        name: entry.name,
    })
}
