//! The split-brain keys of a `[[vrrp_instance]]`: `split_brain_check`,
//! `split_brain_check_interval`, `split_brain_resolution`, `notify_split_brain`.

use std::time::Duration;

use super::{read, At};
use crate::config::reader::{Decoder, Table};
use crate::config::schema::{SplitBrainCheck, SplitBrainResolution};

const RESOLUTIONS: &[(&str, SplitBrainResolution)] = &[
    ("step_down", SplitBrainResolution::StepDown),
    ("alert", SplitBrainResolution::Alert),
];

/// Probing more often than this floods the segment for nothing.
const INTERVAL_MIN: Duration = Duration::from_millis(100);
const INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// The keys as written.
pub(super) struct Written<'a, 'i> {
    check: Option<At<'a, 'i, bool>>,
    interval: Option<At<'a, 'i, Duration>>,
    resolution: Option<At<'a, 'i, SplitBrainResolution>>,
    notify: Option<At<'a, 'i, String>>,
}

pub(super) fn fields<'a, 'i>(d: &mut Decoder<'_>, t: &mut Table<'a, 'i>) -> Written<'a, 'i> {
    Written {
        check: read(d, t, "split_brain_check", |d, f| f.bool(d)),
        interval: read(d, t, "split_brain_check_interval", |d, f| {
            f.duration_in(d, INTERVAL_MIN..=INTERVAL_MAX)
        }),
        resolution: read(d, t, "split_brain_resolution", |d, f| {
            f.keyword(d, RESOLUTIONS)
        }),
        notify: read(d, t, "notify_split_brain", |d, f| f.string(d)),
    }
}

/// The check, or None when off; a setting without `split_brain_check = true` is an error
/// (it would silently do nothing).
pub(super) fn resolve(
    d: &mut Decoder<'_>,
    w: Written<'_, '_>,
    advert_int: Duration,
) -> Option<SplitBrainCheck> {
    let on = w.check.as_ref().is_some_and(|c| c.value);
    if !on {
        let settings = [
            w.interval.as_ref().map(|a| &a.field),
            w.resolution.as_ref().map(|a| &a.field),
            w.notify.as_ref().map(|a| &a.field),
        ];
        for field in settings.into_iter().flatten() {
            field
                .error(d, "has no effect: split-brain detection is off")
                .hint("add `split_brain_check = true` to this instance, or remove the key");
        }
        return None;
    }
    Some(SplitBrainCheck {
        interval: w.interval.map_or(advert_int, |a| a.value),
        resolution: w
            .resolution
            .map_or_else(SplitBrainResolution::default, |a| a.value),
        notify: w.notify.map(|a| a.value),
    })
}
