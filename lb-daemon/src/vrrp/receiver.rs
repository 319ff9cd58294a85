//! An instance's adverts, read on a thread of its own (issue 13: an idle backup at or
//! below keepalived's CPU).
//!
//! A steady master sends the same advert every interval, and all a backup does with it is
//! restart its master-down timer. Waking the async runtime for each one (its reactor, the
//! instance's select loop, a second `recvmsg` to clear edge-triggered readiness) cost an
//! idle backup about twice keepalived's CPU. So the instance's socket is read here, in
//! `poll(2)` and one `recvmsg(2)` per datagram, and the instance task can hand this thread
//! its master-down timer together with a [`Template`] ([`Receiver::delegate`]: it is
//! BACKUP and the last advert did nothing but restart the timer):
//!
//! - an advert identical to the template (same source, destination, TTL, interface and
//!   VRRP message) restarts the delegated timer here and is counted; the task sleeps on;
//! - anything else goes to the task in arrival order, and withdraws the template first,
//!   so nothing received after it is taken here out of order; the timer stays delegated
//!   until the task takes it back;
//! - a delegated timer that runs out wakes the task ([`Incoming::Expired`]);
//! - the task takes the timer back before any event of its own
//!   ([`Receiver::take_back`]), so the state machine sees the timer as if each advert had
//!   restarted it on arrival.

use std::{
    io,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::warn;

use super::socket::{ReceiveSocket, Received};

/// How often the thread looks whether its instance is gone while nothing happens.
const STOP_CHECK: Duration = Duration::from_millis(250);
/// Pause after a receive error, so a persistent one does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The advert the instance task said only restarts its master-down timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub ifindex: u32,
    /// The VRRP message (the IPv4 header is left out: its ID changes with every advert).
    pub payload: Vec<u8>,
}

impl Template {
    pub fn of(r: &Received) -> Self {
        Template {
            src: r.src,
            dst: r.dst,
            ttl: r.ttl,
            ifindex: r.ifindex,
            payload: r.payload.clone(),
        }
    }

    fn matches(&self, r: &Received) -> bool {
        self.src == r.src
            && self.dst == r.dst
            && self.ttl == r.ttl
            && self.ifindex == r.ifindex
            && self.payload == r.payload
    }
}

/// What the task gets from the thread.
#[derive(Debug)]
pub enum Incoming {
    Datagram(io::Result<Received>),
    /// The delegated master-down timer ran out.
    Expired,
}

/// Adverts the thread took without waking the task, since it started: they count as
/// received (status and metrics add them), and are read live, not when the task wakes.
#[derive(Debug, Clone, Default)]
pub struct TakenCount(Arc<AtomicU64>);

impl TakenCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl PartialEq for TakenCount {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for TakenCount {}

/// What the thread and the task share.
#[derive(Debug, Default)]
struct Quiet {
    template: Option<Template>,
    /// The master-down interval an advert matching `template` restarts.
    restart: Duration,
    /// The delegated master-down deadline.
    deadline: Option<Instant>,
    /// [`Incoming::Expired`] was sent for `deadline`.
    expired: bool,
    taken: TakenCount,
}

impl Quiet {
    /// The receive thread's decision for one datagram: `true` = taken here, `false` = for
    /// the task (and no later datagram is taken here until the task delegates again).
    fn note(&mut self, r: &Received, now: Instant) -> bool {
        if self.template.as_ref().is_some_and(|t| t.matches(r)) {
            self.deadline = Some(now + self.restart);
            self.taken.add_one();
            return true;
        }
        self.template = None;
        false
    }

    /// How long the thread may wait: until the delegated deadline, if any is pending.
    fn wait(&self, now: Instant) -> Duration {
        match self.deadline {
            Some(d) if !self.expired => d.saturating_duration_since(now).min(STOP_CHECK),
            _ => STOP_CHECK,
        }
    }

    /// `true` once when the delegated deadline has passed: the task must be told.
    fn expire(&mut self, now: Instant) -> bool {
        if self.expired || self.deadline.is_none_or(|d| d > now) {
            return false;
        }
        self.expired = true;
        self.template = None;
        true
    }

    fn take_back(&mut self) -> Option<Instant> {
        self.template = None;
        self.expired = false;
        self.deadline.take()
    }
}

/// The instance task's end: what needs it, and the shared [`Quiet`] state.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Incoming>,
    quiet: Arc<Mutex<Quiet>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts the thread reading `socket` for instance `instance`.
    pub fn spawn(
        instance: &str,
        mut socket: ReceiveSocket,
        taken: TakenCount,
    ) -> io::Result<Receiver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let quiet = Arc::new(Mutex::new(Quiet {
            taken,
            ..Quiet::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (Arc::clone(&quiet), Arc::clone(&stop));
        let name = instance.to_string();
        std::thread::Builder::new()
            .name(format!("vrrp-rx {instance}"))
            .spawn(move || {
                let mut now = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    let wait = lock(&q).wait(now);
                    let got = socket.recv_timeout(wait);
                    now = Instant::now();
                    let incoming = match got {
                        // Quiet: the moment to look whether the task is gone.
                        Ok(None) if tx.is_closed() => break,
                        Ok(None) => None,
                        Ok(Some(r)) => {
                            if lock(&q).note(&r, now) {
                                continue;
                            }
                            Some(Incoming::Datagram(Ok(r)))
                        }
                        Err(e) => {
                            std::thread::sleep(ERROR_PAUSE);
                            Some(Incoming::Datagram(Err(e)))
                        }
                    };
                    if let Some(incoming) = incoming {
                        if tx.send(incoming).is_err() {
                            return;
                        }
                    }
                    if lock(&q).expire(now) && tx.send(Incoming::Expired).is_err() {
                        return;
                    }
                }
                tracing::debug!(instance = %name, interface = %socket.interface(), "VRRP receive thread ends");
            })?;
        Ok(Receiver { rx, quiet, stop })
    }

    /// The next datagram or expiry the task must see. Never resolves if the thread is
    /// gone (it only ends when this receiver is dropped).
    pub async fn recv(&mut self) -> Incoming {
        match self.rx.recv().await {
            Some(r) => r,
            None => {
                warn!("VRRP receive thread ended");
                std::future::pending().await
            }
        }
    }

    /// Hands the thread the master-down timer, running until `deadline`: from now on,
    /// adverts matching `template` restart it by `restart` without waking the task.
    pub fn delegate(&self, template: Template, restart: Duration, deadline: Instant) {
        let mut q = lock(&self.quiet);
        q.template = Some(template);
        q.restart = restart;
        q.deadline = Some(deadline);
        q.expired = false;
    }

    /// Takes the timer back: its deadline, if it was delegated. Withdraws the template.
    pub fn take_back(&self) -> Option<Instant> {
        lock(&self.quiet).take_back()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The lock is held for a compare and a few stores: a panic cannot leave it half-written.
fn lock(q: &Mutex<Quiet>) -> MutexGuard<'_, Quiet> {
    q.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(src: &str, payload: &[u8]) -> Received {
        Received {
            src: src.parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
            ttl: 255,
            ifindex: 3,
            payload: payload.to_vec(),
            ip_header: vec![0x45, 0, 0, 40, 0, 7],
        }
    }

    const RESTART: Duration = Duration::from_millis(72);

    fn delegated(t: &Received, deadline: Instant) -> Quiet {
        Quiet {
            template: Some(Template::of(t)),
            restart: RESTART,
            deadline: Some(deadline),
            ..Quiet::default()
        }
    }

    #[test]
    fn an_identical_advert_restarts_the_delegated_timer_and_anything_else_withdraws_the_template() {
        let same = advert("10.0.0.1", &[0x31, 7, 100, 1]);
        let t0 = Instant::now();
        // Nothing delegated: everything goes to the task.
        assert!(!Quiet::default().note(&same, t0));
        let mut q = delegated(&same, t0 + RESTART);
        // The IPv4 header (its ID) may differ.
        let mut next = same.clone();
        next.ip_header[5] = 8;
        let t1 = t0 + Duration::from_millis(20);
        assert!(q.note(&next, t1));
        let t2 = t1 + Duration::from_millis(20);
        assert!(q.note(&same, t2));
        assert_eq!(q.take_back(), Some(t2 + RESTART));
        assert_eq!(q.taken.get(), 2);
        assert_eq!(q.take_back(), None);
        assert!(!q.note(&same, t2), "taken back: nothing more is taken here");
        // Each field that can differ sends the datagram to the task and ends the taking;
        // the timer stays delegated, unchanged, until taken back.
        let variants: Vec<Received> = vec![
            advert("10.0.0.2", &[0x31, 7, 100, 1]),
            advert("10.0.0.1", &[0x31, 7, 0, 1]),
            Received {
                ttl: 254,
                ..same.clone()
            },
            Received {
                ifindex: 4,
                ..same.clone()
            },
            Received {
                dst: "10.0.0.9".parse().unwrap(),
                ..same.clone()
            },
        ];
        for v in variants {
            let mut q = delegated(&same, t0 + RESTART);
            assert!(!q.note(&v, t1), "{v:?} must reach the task");
            assert!(!q.note(&same, t2), "nothing after it is taken here");
            assert_eq!(q.take_back(), Some(t0 + RESTART));
            assert_eq!(q.taken.get(), 0);
        }
    }

    #[test]
    fn a_delegated_timer_expires_once_even_after_the_template_is_withdrawn() {
        let same = advert("10.0.0.1", &[0x31, 7, 100, 1]);
        let t0 = Instant::now();
        let mut q = delegated(&same, t0 + RESTART);
        assert_eq!(q.wait(t0), RESTART);
        assert!(!q.expire(t0 + RESTART - Duration::from_millis(1)));
        // A datagram for the task withdraws the template, not the timer.
        assert!(!q.note(&advert("10.0.0.2", &[1]), t0));
        assert!(q.expire(t0 + RESTART));
        assert!(!q.expire(t0 + RESTART * 2), "told once");
        assert_eq!(q.wait(t0 + RESTART), STOP_CHECK);
        assert_eq!(q.take_back(), Some(t0 + RESTART));
        // Nothing delegated: nothing expires; the thread only wakes to look for its stop.
        assert!(!q.expire(t0 + RESTART * 3));
        assert_eq!(q.wait(t0), STOP_CHECK);
    }
}
