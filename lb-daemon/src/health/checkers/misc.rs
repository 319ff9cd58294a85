//! MISC_CHECK: runs `misc_path` (keepalived `check_misc.c`, `misc_check_child_thread`).
//! Exit 0 is up; with `misc_dynamic`, exit 2..=255 is up too with weight `code - 2`;
//! any other exit, a signal or the timeout is down.

use super::Verdict;
use crate::{
    health::spec::{Common, MiscCheck},
    script::{self, Script},
};

pub(super) async fn run(misc: &MiscCheck, common: &Common) -> Verdict {
    // keepalived: no misc_timeout means the delay_loop.
    let timeout = if misc.timeout.is_zero() {
        common.delay_loop
    } else {
        misc.timeout
    };
    let outcome = script::run(&Script {
        command: misc.path.clone(),
        args: Vec::new(),
        timeout,
        user: misc.user.clone(),
    })
    .await;
    verdict(misc.dynamic, &outcome)
}

fn verdict(dynamic: bool, outcome: &script::Outcome) -> Verdict {
    let reason = outcome.describe();
    match *outcome {
        // With misc_dynamic, exit 0 means "weight unchanged": the configured one (None).
        script::Outcome::Exited(0) => Verdict::up(reason),
        script::Outcome::Exited(code @ 2..=255) if dynamic => Verdict {
            up: true,
            weight: u32::try_from(code - 2).ok(),
            reason: reason.into(),
        },
        _ => Verdict::down(reason),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::health::checkers::test_support::common;

    fn misc(path: &str, dynamic: bool, timeout_ms: u64) -> MiscCheck {
        MiscCheck {
            path: path.into(),
            timeout: Duration::from_millis(timeout_ms),
            dynamic,
            user: None,
        }
    }

    #[tokio::test]
    async fn exit_codes() {
        let c = common(1000);
        assert_eq!(
            run(&misc("exit 0", false, 2000), &c).await,
            Verdict::up("exit 0")
        );
        assert_eq!(
            run(&misc("exit 1", false, 2000), &c).await,
            Verdict::down("exit 1")
        );
        // Without misc_dynamic, any other code is a failure.
        assert_eq!(
            run(&misc("exit 12", false, 2000), &c).await,
            Verdict::down("exit 12")
        );
        assert_eq!(
            run(&misc("kill -9 $$", false, 2000), &c).await,
            Verdict::down("signal 9")
        );
    }

    #[tokio::test]
    async fn dynamic_weights() {
        let c = common(1000);
        let v = run(&misc("exit 12", true, 2000), &c).await;
        assert_eq!((v.up, v.weight), (true, Some(10)), "{v:?}");
        let v = run(&misc("exit 2", true, 2000), &c).await;
        assert_eq!((v.up, v.weight), (true, Some(0)), "{v:?}");
        let v = run(&misc("exit 255", true, 2000), &c).await;
        assert_eq!((v.up, v.weight), (true, Some(253)), "{v:?}");
        assert_eq!(
            run(&misc("exit 0", true, 2000), &c).await,
            Verdict::up("exit 0")
        );
        assert_eq!(
            run(&misc("exit 1", true, 2000), &c).await,
            Verdict::down("exit 1")
        );
    }

    #[tokio::test]
    async fn timeout_is_down() {
        let start = Instant::now();
        let v = run(&misc("sleep 5", false, 200), &common(1000)).await;
        assert_eq!(v, Verdict::down("timeout"));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_script_that_cannot_start_is_down() {
        let v = verdict(false, &script::Outcome::Failed("no user \"x\"".into()));
        assert!(!v.up && v.reason.starts_with("not started"), "{v:?}");
    }
}
