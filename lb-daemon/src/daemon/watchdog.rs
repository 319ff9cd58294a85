//! systemd's watchdog (`WatchdogSec=`): the main loop sends `WATCHDOG=1` at half the
//! interval systemd announces in `WATCHDOG_USEC`, so a wedged loop stops the pings and
//! systemd restarts the daemon. Same rules as sd_watchdog_enabled(3): the pings are ours
//! only when `WATCHDOG_PID` is unset or names this process.

use std::time::Duration;

/// How often to ping, from `WATCHDOG_USEC` and `WATCHDOG_PID` (None: no watchdog, or a
/// value that does not parse, which systemd would not set).
pub fn ping_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec = usec?.trim().parse::<u64>().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// The interval for this process, from its environment.
pub fn from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    ping_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// A timer for the main loop's `select!`: ticks at the ping interval, or never.
pub struct Pinger {
    timer: Option<tokio::time::Interval>,
}

impl Pinger {
    pub fn new(every: Option<Duration>) -> Self {
        let timer = every.map(|every| {
            let mut timer = tokio::time::interval(every);
            // After a stall, one ping now rather than a burst.
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        });
        Pinger { timer }
    }

    /// Waits for the next ping time (forever without a watchdog).
    pub async fn tick(&mut self) {
        match &mut self.timer {
            Some(timer) => {
                timer.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_interval() {
        assert_eq!(
            ping_interval(Some("4000000"), None, 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            ping_interval(Some("4000000"), Some("7"), 7),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn another_process_watchdog_or_none_is_not_ours() {
        assert_eq!(ping_interval(Some("4000000"), Some("8"), 7), None);
        assert_eq!(ping_interval(None, None, 7), None);
        assert_eq!(ping_interval(Some("0"), None, 7), None);
        assert_eq!(ping_interval(Some("soon"), None, 7), None);
        assert_eq!(ping_interval(Some("4000000"), Some("me"), 7), None);
    }

    #[tokio::test]
    async fn the_pinger_ticks_or_waits_forever() {
        let mut pinger = Pinger::new(Some(Duration::from_millis(50)));
        pinger.tick().await;
        let start = tokio::time::Instant::now();
        pinger.tick().await;
        assert!(start.elapsed() >= Duration::from_millis(40));
        let mut none = Pinger::new(None);
        let waited = tokio::time::timeout(Duration::from_millis(100), none.tick()).await;
        assert!(waited.is_err());
    }
}
