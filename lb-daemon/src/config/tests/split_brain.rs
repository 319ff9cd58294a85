//! The split-brain keys of `[[vrrp_instance]]`: values, defaults and diagnostics.

use std::time::Duration;

use super::{at, error, load, rejected, BASE};
use crate::config::*;

#[test]
fn off_by_default_on_with_every_key() {
    let config = load(BASE).config;
    assert_eq!(config.vrrp_instances[0].split_brain, None);
    let text = format!(
        "{BASE}advert_int = 2\nsplit_brain_check = true\nsplit_brain_check_interval = \"500ms\"\n\
         split_brain_resolution = \"step_down\"\nnotify_split_brain = \"/etc/lb/fence.sh\"\n"
    );
    let config = load(&text).config;
    assert_eq!(
        config.vrrp_instances[0].split_brain,
        Some(SplitBrainCheck {
            interval: Duration::from_millis(500),
            resolution: SplitBrainResolution::StepDown,
            notify: Some("/etc/lb/fence.sh".into()),
        })
    );
    // Defaults: the advert interval, alert only.
    let text = format!("{BASE}advert_int = 2\nsplit_brain_check = true\n");
    assert_eq!(
        load(&text).config.vrrp_instances[0].split_brain,
        Some(SplitBrainCheck {
            interval: Duration::from_secs(2),
            resolution: SplitBrainResolution::Alert,
            notify: None,
        })
    );
}

#[test]
fn settings_without_the_check_and_bad_values_are_errors() {
    let e = error(&format!("{BASE}split_brain_resolution = \"step_down\"\n"));
    assert_eq!(at(&e), (6, 26));
    assert_eq!(e.key, "vrrp_instance \"VI_1\".split_brain_resolution");
    assert_eq!(e.message, "has no effect: split-brain detection is off");
    assert_eq!(
        e.hint.as_deref(),
        Some("add `split_brain_check = true` to this instance, or remove the key")
    );
    let e = error(&format!(
        "{BASE}split_brain_check = true\nsplit_brain_resolution = \"stepdown\"\n"
    ));
    assert_eq!(at(&e), (7, 26));
    assert_eq!(e.message, "unknown value `stepdown`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `step_down`?"));
    let e = error(&format!(
        "{BASE}split_brain_check = true\nsplit_brain_check_interval = \"10ms\"\n"
    ));
    assert_eq!(at(&e), (7, 30));
    assert!(
        e.message.starts_with("must be between 100ms and"),
        "{}",
        e.message
    );
    let errors = rejected(&format!("{BASE}split_brain_chek = true\n")).errors;
    assert_eq!(
        errors[0].hint.as_deref(),
        Some("did you mean `split_brain_check`?")
    );
}
