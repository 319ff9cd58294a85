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
//!
//! Where the advert filter is loaded ([`super::advert_filter`]), the template also arms
//! the socket's filter slot: identical adverts are then dropped in the kernel, which
//! notes their arrival, and the thread does not wake for them at all; it wakes at the
//! delegated deadline, reads the slot, and sleeps on until the deadline the last advert
//! set. The first datagram that differs disarms the slot in the kernel and is received
//! here, so the order above holds.

use std::{
    io,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::warn;

use super::{
    advert_filter::FilterSlot,
    socket::{ReceiveSocket, Received},
};

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
/// received (status and metrics add them), and are read live, not when the task wakes
/// (those the kernel filter took are added when the thread next wakes, at the latest
/// one master-down interval later).
#[derive(Debug, Clone, Default)]
pub struct TakenCount(Arc<[AtomicU64; 2]>);

impl TakenCount {
    /// All adverts taken without the task.
    pub fn get(&self) -> u64 {
        self.0[0].load(Ordering::Relaxed)
    }

    /// Of those, the ones the kernel filter took (the thread did not wake for them):
    /// `lb_vrrp_adverts_filtered_total`.
    pub fn in_kernel(&self) -> u64 {
        self.0[1].load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0[0].fetch_add(1, Ordering::Relaxed);
    }

    fn add_in_kernel(&self, n: u64) {
        self.0[0].fetch_add(n, Ordering::Relaxed);
        self.0[1].fetch_add(n, Ordering::Relaxed);
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
    /// The socket's advert filter slot, where the filter is loaded.
    slot: Option<FilterSlot>,
    /// The filter can take adverts like the template (it fits a slot).
    filterable: bool,
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
        self.withdraw();
        false
    }

    /// Whether the template should be (re)armed in the filter: taken here while the slot
    /// is disarmed (a datagram the filter let through and the parser dropped disarmed it).
    fn rearm_wanted(&self) -> bool {
        self.template.is_some()
            && self.filterable
            && self.slot.as_ref().is_some_and(|s| !s.is_armed())
    }

    fn rearm(&mut self) {
        if let (Some(t), Some(slot)) = (self.template.as_ref(), self.slot.as_mut()) {
            slot.arm(t);
        }
    }

    /// Brings in what the kernel filter took: the count, and the delegated deadline
    /// restarted from the last advert it took.
    fn sync(&mut self) {
        let Some(taken) = self.slot.as_mut().map(FilterSlot::read) else {
            return;
        };
        if taken.count == 0 {
            return;
        }
        self.taken.add_in_kernel(taken.count);
        if let (Some(last), Some(deadline), false) = (taken.last, self.deadline, self.expired) {
            self.deadline = Some(deadline.max(last + self.restart));
        }
    }

    /// Withdraws the template, here and in the filter.
    fn withdraw(&mut self) {
        self.template = None;
        if let Some(slot) = &self.slot {
            slot.disarm();
        }
        self.sync();
    }

    /// How long the thread may wait: until the delegated deadline, if one is pending;
    /// else until a datagram comes or the receiver is dropped (`None`).
    fn wait(&self, now: Instant) -> Option<Duration> {
        match self.deadline {
            Some(d) if !self.expired => Some(d.saturating_duration_since(now)),
            _ => None,
        }
    }

    /// `true` once when the delegated deadline has passed: the task must be told.
    fn expire(&mut self, now: Instant) -> bool {
        self.sync();
        if self.expired || self.deadline.is_none_or(|d| d > now) {
            return false;
        }
        self.expired = true;
        self.withdraw();
        true
    }

    fn delegate(&mut self, template: Template, restart: Duration, deadline: Instant) {
        self.sync();
        self.filterable = self.slot.as_mut().is_some_and(|slot| slot.arm(&template));
        self.template = Some(template);
        self.restart = restart;
        self.deadline = Some(deadline);
        self.expired = false;
    }

    fn take_back(&mut self) -> Option<Instant> {
        self.withdraw();
        self.expired = false;
        self.deadline.take()
    }
}

/// The instance task's end: what needs it, and the shared [`Quiet`] state.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Incoming>,
    quiet: Arc<Mutex<Quiet>>,
    wake: Arc<Wake>,
}

/// Wakes the thread from `poll(2)`: an eventfd, written when its instance hands it the
/// timer (the thread must wait for the new deadline, not only for datagrams: the filter
/// may take every one that follows) and when the receiver is dropped (`stop`). Without
/// it the thread would have to wake periodically to look.
#[derive(Debug)]
struct Wake {
    stop: AtomicBool,
    fd: OwnedFd,
}

impl Wake {
    fn new() -> io::Result<Wake> {
        // SAFETY: plain system call; the descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Wake {
            stop: AtomicBool::new(false),
            // SAFETY: a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 (an eventfd's unit); a failure only
        // means the counter is already at its maximum, i.e. a wake-up is pending anyway.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears pending wake-ups (non-blocking: nothing pending is fine).
    fn clear(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Receiver {
    /// Starts the thread reading `socket` for instance `instance`.
    pub fn spawn(
        instance: &str,
        mut socket: ReceiveSocket,
        taken: TakenCount,
    ) -> io::Result<Receiver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let slot = FilterSlot::attach(socket.as_fd(), socket.interface());
        let quiet = Arc::new(Mutex::new(Quiet {
            taken,
            slot,
            ..Quiet::default()
        }));
        let wake = Arc::new(Wake::new()?);
        let (q, w) = (Arc::clone(&quiet), Arc::clone(&wake));
        let name = instance.to_string();
        std::thread::Builder::new()
            .name(format!("vrrp-rx {instance}"))
            .spawn(move || {
                let mut now = Instant::now();
                while !w.stopped() {
                    let wait = lock(&q).wait(now);
                    let got = socket.recv_timeout(wait, Some(w.fd.as_fd()));
                    now = Instant::now();
                    let incoming = match got {
                        // Quiet (or stopped): the moment to look whether the task is gone.
                        Ok(None) if tx.is_closed() => break,
                        Ok(None) => {
                            // Woken by a new deadline (or by nothing: a timeout).
                            w.clear();
                            None
                        }
                        Ok(Some(r)) => {
                            let mut quiet = lock(&q);
                            if quiet.note(&r, now) {
                                // Nothing queued behind it: the filter may take the next.
                                if quiet.rearm_wanted() && socket.queue_empty() {
                                    quiet.rearm();
                                }
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
        Ok(Receiver { rx, quiet, wake })
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
        lock(&self.quiet).delegate(template, restart, deadline);
        // The thread may be waiting for datagrams only, which the filter now takes.
        self.wake.wake();
    }

    /// Takes the timer back: its deadline, if it was delegated. Withdraws the template.
    pub fn take_back(&self) -> Option<Instant> {
        lock(&self.quiet).take_back()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.wake.stop();
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

    /// The thread waits for datagrams only while it holds no timer; a timer handed over
    /// then must wake it, or (with the kernel filter taking every advert that follows)
    /// it would sleep through the deadline. Real sockets in network namespaces.
    #[test]
    fn a_timer_handed_over_while_the_thread_waits_for_datagrams_expires() {
        use crate::net::proto::VRRP_GROUP_V4;
        use crate::vrrp::socket::{
            testing::{in_ns, pair, runtime},
            SocketConfig, VrrpSocket,
        };
        let (a, b) = pair("vrrp-rxw", 72);
        let rt = runtime();
        let group = IpAddr::V4(VRRP_GROUP_V4);
        let cfg = |dev: &str, host: u8| SocketConfig {
            interface: dev.into(),
            family_v6: false,
            src: format!("198.18.72.{host}").parse().unwrap(),
            multicast_group: Some(group),
            ah_key: None,
        };
        let master = {
            let c = cfg("va", 1);
            in_ns(&a, &rt, move || VrrpSocket::open(&c).unwrap())
        };
        let c = cfg("vb", 2);
        let (_send, reader) = in_ns(&b, &rt, move || VrrpSocket::open_split(&c).unwrap());
        let mut receiver = Receiver::spawn("VI_wake", reader, TakenCount::default()).unwrap();
        let advert = [0x31, 7, 150, 1, 0x00, 0x64, 0, 0, 198, 18, 72, 100];
        rt.block_on(async {
            master.send(&advert, group).await.unwrap();
            let Incoming::Datagram(Ok(first)) = receiver.recv().await else {
                panic!("the first advert reaches the task");
            };
            // The thread is back in poll(2), waiting for datagrams only.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let handed = Instant::now();
            receiver.delegate(Template::of(&first), RESTART, handed + RESTART);
            let got = tokio::time::timeout(Duration::from_secs(2), receiver.recv())
                .await
                .expect("the delegated timer must run out with no advert to wake the thread");
            assert!(matches!(got, Incoming::Expired), "{got:?}");
            assert!(
                handed.elapsed() >= RESTART,
                "expired early: {:?}",
                handed.elapsed()
            );
        });
    }

    #[test]
    fn a_delegated_timer_expires_once_even_after_the_template_is_withdrawn() {
        let same = advert("10.0.0.1", &[0x31, 7, 100, 1]);
        let t0 = Instant::now();
        let mut q = delegated(&same, t0 + RESTART);
        assert_eq!(q.wait(t0), Some(RESTART));
        assert!(!q.expire(t0 + RESTART - Duration::from_millis(1)));
        // A datagram for the task withdraws the template, not the timer.
        assert!(!q.note(&advert("10.0.0.2", &[1]), t0));
        assert!(q.expire(t0 + RESTART));
        assert!(!q.expire(t0 + RESTART * 2), "told once");
        assert_eq!(
            q.wait(t0 + RESTART),
            None,
            "told: the thread waits for datagrams only"
        );
        assert_eq!(q.take_back(), Some(t0 + RESTART));
        // Nothing delegated: nothing expires; the thread only wakes for datagrams (and
        // its stop).
        assert!(!q.expire(t0 + RESTART * 3));
        assert_eq!(q.wait(t0), None);
    }
}
