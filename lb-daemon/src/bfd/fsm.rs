//! The BFD session state machine (RFC 5880 6.2, 6.8.6), pure: states, the transition
//! table, timer negotiation, detection time, poll/final and the jittered TX interval.
//!
//! Times are microseconds, as on the wire. The IO layer (`session.rs`) turns the
//! intervals into deadlines and calls [`Session::receive`] / [`Session::expire`].
//! keepalived 2.2.7 (`keepalived/bfd/bfd_scheduler.c`) follows the same RFC rules: the
//! idle interval (`idle_tx`, 1 s) is sent while not Up, `min_tx` once Up.

use super::packet::{Control, DropReason};

/// Session state (RFC 5880 4.1 `Sta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// Two bits: every value is a state.
    pub fn from_code(code: u8) -> State {
        match code & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// keepalived's spelling in logs and status.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// Diagnostic code (RFC 5880 4.1 `Diag`): why the session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    NoDiagnostic,
    ControlDetectionExpired,
    EchoFailed,
    NeighborSignaledDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9-31: reserved, carried as received.
    Reserved(u8),
}

impl Diag {
    pub fn code(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(c) => c & 0x1f,
        }
    }

    pub fn from_code(code: u8) -> Diag {
        match code & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            c => Diag::Reserved(c),
        }
    }

    /// For status and logs (snake_case, also a metric label).
    pub fn label(self) -> &'static str {
        match self {
            Diag::NoDiagnostic => "none",
            Diag::ControlDetectionExpired => "detection_time_expired",
            Diag::EchoFailed => "echo_failed",
            Diag::NeighborSignaledDown => "neighbor_signaled_down",
            Diag::ForwardingPlaneReset => "forwarding_plane_reset",
            Diag::PathDown => "path_down",
            Diag::ConcatenatedPathDown => "concatenated_path_down",
            Diag::AdministrativelyDown => "administratively_down",
            Diag::ReverseConcatenatedPathDown => "reverse_concatenated_path_down",
            Diag::Reserved(_) => "reserved",
        }
    }
}

/// RFC 5880 6.8.6: the local state after a packet from a neighbor in `remote`, with the
/// diagnostic to set; `None` = no change.
pub fn transition(local: State, remote: State) -> Option<(State, Diag)> {
    match (local, remote) {
        (State::AdminDown, _) => None,
        (State::Down, State::AdminDown) => None,
        (_, State::AdminDown) => Some((State::Down, Diag::NeighborSignaledDown)),
        (State::Down, State::Down) => Some((State::Init, Diag::NoDiagnostic)),
        (State::Down, State::Init) => Some((State::Up, Diag::NoDiagnostic)),
        (State::Down, _) => None,
        (State::Init, State::Init | State::Up) => Some((State::Up, Diag::NoDiagnostic)),
        (State::Init, _) => None,
        (State::Up, State::Down) => Some((State::Down, Diag::NeighborSignaledDown)),
        (State::Up, _) => None,
    }
}

/// The detection timer fired: Init and Up go Down (RFC 5880 6.8.4).
pub fn on_expiry(local: State) -> Option<(State, Diag)> {
    match local {
        State::Init | State::Up => Some((State::Down, Diag::ControlDetectionExpired)),
        State::AdminDown | State::Down => None,
    }
}

/// A session's configured timers (keepalived's `min_rx`, `min_tx`, `idle_tx`,
/// `multiplier`), microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub min_rx_us: u32,
    pub min_tx_us: u32,
    pub idle_tx_us: u32,
    pub multiplier: u8,
}

/// A state change, for logs, tracking and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: State,
    pub to: State,
    pub diag: Diag,
}

/// What the IO layer does after a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    pub change: Option<Change>,
    /// The neighbor polled (P): answer at once with F set (RFC 5880 6.8.7).
    pub reply_now: bool,
}

/// One session (RFC 5880 6.8.1 state variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub timers: Timers,
    pub passive: bool,
    pub state: State,
    pub local_diag: Diag,
    pub local_discr: u32,
    pub remote_discr: u32,
    pub remote_state: State,
    pub remote_min_rx_us: u32,
    pub remote_min_tx_us: u32,
    pub remote_multiplier: u8,
    /// We sent P and wait for F (after a change of our intervals).
    pub polling: bool,
    /// The next packet carries F.
    pub final_pending: bool,
    /// Why the session last went Down (None while it never was Up).
    pub last_down: Option<Diag>,
}

impl Session {
    pub fn new(timers: Timers, passive: bool, local_discr: u32) -> Self {
        Self {
            timers,
            passive,
            state: State::Down,
            local_diag: Diag::NoDiagnostic,
            local_discr,
            remote_discr: 0,
            remote_state: State::Down,
            // RFC 5880 6.8.1: initialised to 1.
            remote_min_rx_us: 1,
            remote_min_tx_us: 0,
            remote_multiplier: 0,
            polling: false,
            final_pending: false,
            last_down: None,
        }
    }

    /// bfd.DesiredMinTxInterval: `idle_tx` until Up (RFC 5880 6.8.3: at least 1 s), then
    /// `min_tx`.
    pub fn desired_min_tx_us(&self) -> u32 {
        if self.state == State::Up {
            self.timers.min_tx_us
        } else {
            self.timers.idle_tx_us.max(self.timers.min_tx_us)
        }
    }

    /// The negotiated TX interval, or `None` when nothing is to be sent periodically: a
    /// passive session that has heard nothing, or a neighbor asking for no packets.
    pub fn tx_interval_us(&self) -> Option<u32> {
        if self.passive && self.remote_discr == 0 {
            return None;
        }
        if self.remote_min_rx_us == 0 || self.state == State::AdminDown {
            return None;
        }
        Some(self.desired_min_tx_us().max(self.remote_min_rx_us))
    }

    /// The negotiated receive interval: max(our min_rx, the neighbor's desired min TX).
    pub fn rx_interval_us(&self) -> u32 {
        self.timers.min_rx_us.max(self.remote_min_tx_us)
    }

    /// Detection time (asynchronous mode, RFC 5880 6.8.4): the neighbor's multiplier times
    /// the negotiated receive interval; `None` before anything was heard or while Down.
    pub fn detection_time_us(&self) -> Option<u64> {
        if self.remote_multiplier == 0 || matches!(self.state, State::Down | State::AdminDown) {
            return None;
        }
        Some(u64::from(self.remote_multiplier) * u64::from(self.rx_interval_us()))
    }

    fn set_state(&mut self, to: State, diag: Diag) -> Option<Change> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        self.local_diag = diag;
        match to {
            // Our desired TX interval drops from idle_tx to min_tx: poll (RFC 5880 6.8.3).
            State::Up => self.polling = true,
            State::Down | State::AdminDown => {
                self.polling = false;
                if from == State::Up || from == State::Init {
                    self.last_down = Some(diag);
                }
            }
            State::Init => {}
        }
        Some(Change { from, to, diag })
    }

    /// A decoded packet from the neighbor (RFC 5880 6.8.6 after the codec's checks).
    pub fn receive(&mut self, pkt: &Control) -> Result<Received, DropReason> {
        if pkt.your_discr != 0 && pkt.your_discr != self.local_discr {
            return Err(DropReason::NoSession);
        }
        self.remote_discr = pkt.my_discr;
        self.remote_state = pkt.state;
        self.remote_min_rx_us = pkt.required_min_rx_us;
        self.remote_min_tx_us = pkt.desired_min_tx_us;
        self.remote_multiplier = pkt.detect_mult;
        if pkt.final_ {
            self.polling = false;
        }
        let reply_now = pkt.poll;
        if reply_now {
            self.final_pending = true;
        }
        let change =
            transition(self.state, pkt.state).and_then(|(to, diag)| self.set_state(to, diag));
        Ok(Received { change, reply_now })
    }

    /// The detection timer expired without a packet.
    pub fn expire(&mut self) -> Option<Change> {
        let (to, diag) = on_expiry(self.state)?;
        let change = self.set_state(to, diag);
        // RFC 5880 6.8.1: the neighbor is forgotten.
        self.remote_discr = 0;
        self.remote_min_rx_us = 1;
        self.remote_min_tx_us = 0;
        self.remote_multiplier = 0;
        self.remote_state = State::Down;
        change
    }

    /// Administratively down (a removed or disabled session says so before going).
    pub fn admin_down(&mut self) -> Option<Change> {
        self.set_state(State::AdminDown, Diag::AdministrativelyDown)
    }

    /// The next packet to send; clears the pending F.
    pub fn build(&mut self) -> Control {
        let final_ = std::mem::take(&mut self.final_pending);
        Control {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.timers.multiplier,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: self.desired_min_tx_us(),
            required_min_rx_us: self.timers.min_rx_us,
            required_min_echo_rx_us: 0,
        }
    }
}

/// RFC 5880 6.8.7: the interval reduced by 0-25 % at random (10-25 % when the multiplier
/// is 1, so that a single late packet cannot expire the neighbor). `rand01` in [0, 1).
pub fn jittered_us(interval_us: u32, multiplier: u8, rand01: f64) -> u32 {
    let r = rand01.clamp(0.0, 1.0);
    let reduction = if multiplier == 1 {
        0.10 + 0.15 * r
    } else {
        0.25 * r
    };
    let v = f64::from(interval_us) * (1.0 - reduction);
    (v as u32).max(1)
}

/// 10 ms x 3 once Up, 1 s before: the timers the BFD tests share.
#[cfg(test)]
pub(crate) const TEST_TIMERS: Timers = Timers {
    min_rx_us: 10_000,
    min_tx_us: 10_000,
    idle_tx_us: 1_000_000,
    multiplier: 3,
};

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timers = TEST_TIMERS;

    #[test]
    fn transition_table_rfc5880() {
        use State::*;
        let nsd = Diag::NeighborSignaledDown;
        let none = Diag::NoDiagnostic;
        let table = [
            (AdminDown, AdminDown, None),
            (AdminDown, Down, None),
            (AdminDown, Init, None),
            (AdminDown, Up, None),
            (Down, AdminDown, None),
            (Down, Down, Some((Init, none))),
            (Down, Init, Some((Up, none))),
            (Down, Up, None),
            (Init, AdminDown, Some((Down, nsd))),
            (Init, Down, None),
            (Init, Init, Some((Up, none))),
            (Init, Up, Some((Up, none))),
            (Up, AdminDown, Some((Down, nsd))),
            (Up, Down, Some((Down, nsd))),
            (Up, Init, None),
            (Up, Up, None),
        ];
        for (local, remote, want) in table {
            assert_eq!(transition(local, remote), want, "{local:?} <- {remote:?}");
        }
        for (local, want) in [
            (AdminDown, None),
            (Down, None),
            (Init, Some((Down, Diag::ControlDetectionExpired))),
            (Up, Some((Down, Diag::ControlDetectionExpired))),
        ] {
            assert_eq!(on_expiry(local), want);
        }
    }

    #[test]
    fn state_and_diag_codes_round_trip() {
        for c in 0..4 {
            assert_eq!(State::from_code(c).code(), c);
        }
        for c in 0..32 {
            assert_eq!(Diag::from_code(c).code(), c);
        }
    }

    /// Two sessions talking to each other come Up through the three-way handshake.
    #[test]
    fn two_sessions_come_up_and_negotiate() {
        let mut a = Session::new(T, false, 1);
        let mut b = Session::new(
            Timers {
                min_rx_us: 50_000,
                min_tx_us: 20_000,
                ..T
            },
            false,
            2,
        );
        // Before anything is heard: idle interval, no detection.
        assert_eq!(a.tx_interval_us(), Some(1_000_000));
        assert_eq!(a.detection_time_us(), None);
        let p = a.build();
        assert_eq!(p.your_discr, 0);
        let r = b.receive(&p).unwrap();
        assert_eq!(r.change.map(|c| c.to), Some(State::Init));
        let r = a.receive(&b.build()).unwrap();
        assert_eq!(r.change.map(|c| c.to), Some(State::Up));
        assert!(a.polling, "Up changes our desired TX: poll");
        let pa = a.build();
        assert!(pa.poll);
        let r = b.receive(&pa).unwrap();
        assert_eq!(r.change.map(|c| c.to), Some(State::Up));
        assert!(r.reply_now);
        let pb = b.build();
        assert!(pb.final_ && !pb.poll, "F answers P, never both");
        a.receive(&pb).unwrap();
        assert!(!a.polling, "F ends the poll");
        // Negotiation: a sends at max(10 ms, b's 50 ms min_rx).
        assert_eq!(a.tx_interval_us(), Some(50_000));
        // b sends at max(20 ms, a's 10 ms).
        assert_eq!(b.tx_interval_us(), Some(20_000));
        // a detects b after 3 x max(10 ms, 20 ms); b detects a after 3 x max(50, 10).
        assert_eq!(a.detection_time_us(), Some(60_000));
        assert_eq!(b.detection_time_us(), Some(150_000));
    }

    #[test]
    fn expiry_forgets_the_neighbor_and_records_why() {
        let mut a = Session::new(T, false, 1);
        let mut b = Session::new(T, false, 2);
        b.receive(&a.build()).unwrap();
        a.receive(&b.build()).unwrap();
        b.receive(&a.build()).unwrap();
        assert_eq!((a.state, b.state), (State::Up, State::Up));
        let c = a.expire().unwrap();
        assert_eq!((c.from, c.to), (State::Up, State::Down));
        assert_eq!(a.last_down, Some(Diag::ControlDetectionExpired));
        assert_eq!(a.remote_discr, 0);
        assert_eq!(a.detection_time_us(), None);
        assert_eq!(a.tx_interval_us(), Some(1_000_000), "back to idle_tx");
        // b hears a's Down with diag 1 and goes Down too.
        let c = b.receive(&a.build()).unwrap().change.unwrap();
        assert_eq!((c.to, c.diag), (State::Down, Diag::NeighborSignaledDown));
        assert_eq!(a.expire(), None, "already Down");
    }

    #[test]
    fn wrong_your_discriminator_is_no_session() {
        let mut a = Session::new(T, false, 1);
        let mut b = Session::new(T, false, 2);
        let mut p = b.build();
        p.your_discr = 99;
        assert_eq!(a.receive(&p), Err(DropReason::NoSession));
    }

    #[test]
    fn passive_waits_for_the_neighbor() {
        let mut p = Session::new(T, true, 1);
        assert_eq!(p.tx_interval_us(), None);
        let mut a = Session::new(T, false, 2);
        p.receive(&a.build()).unwrap();
        assert_eq!(p.tx_interval_us(), Some(1_000_000));
    }

    #[test]
    fn neighbor_min_rx_zero_stops_periodic_tx() {
        let mut a = Session::new(T, false, 1);
        let mut b = Session::new(T, false, 2);
        let mut pkt = b.build();
        pkt.required_min_rx_us = 0;
        a.receive(&pkt).unwrap();
        assert_eq!(a.tx_interval_us(), None);
    }

    #[test]
    fn admin_down_is_sticky() {
        let mut a = Session::new(T, false, 1);
        let c = a.admin_down().unwrap();
        assert_eq!(c.diag, Diag::AdministrativelyDown);
        let mut b = Session::new(T, false, 2);
        assert_eq!(a.receive(&b.build()).unwrap().change, None);
        assert_eq!(a.build().state, State::AdminDown);
    }

    #[test]
    fn jitter_bounds() {
        for r in [0.0, 0.5, 0.999_999] {
            let v = jittered_us(100_000, 3, r);
            assert!((75_000..=100_000).contains(&v), "{v}");
            let v = jittered_us(100_000, 1, r);
            assert!((75_000..=90_000).contains(&v), "{v}");
        }
        assert_eq!(jittered_us(1, 3, 0.99), 1);
    }
}
