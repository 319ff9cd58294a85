//! One VRRP instance's state machine (RFC 3768 v2, RFC 5798 v3), with keepalived 2.2.7's
//! behaviour where it differs from the RFCs.
//!
//! Pure, like holo-vrrp: no sockets and no clocks. Time comes in only as timer-expiry
//! [`Event`]s and goes out only as timer [`Action`]s. An `Arm*` action (re)starts that timer,
//! replacing any pending one of the same kind, so the IO never runs two of a kind.
//!
//! "keepalived" below means keepalived 2.2.7, files under `keepalived/vrrp/`.

use std::{cmp::Ordering, net::IpAddr, time::Duration};

use super::types::{State, Version, PRIORITY_OWNER, PRIORITY_STOP};

/// Adverts missed before the master is declared down: keepalived's `down_timer_adverts`
/// default (VRRP_DOWN_TIMER_ADVERTS), the RFCs' 3.
const DOWN_TIMER_ADVERTS: u32 = 3;
/// keepalived's VRRP_PRIO_DFL, used when no priority is configured.
const PRIORITY_DEFAULT: u8 = 100;
/// What a Master that lost its arbiter advertises: the lowest, so any Backup that
/// reaches the arbiter preempts it.
const PRIORITY_ARBITER_LOST: u8 = 1;
/// The highest priority a non-owner can have (tracking clamps to it).
const PRIORITY_MAX_NON_OWNER: u8 = PRIORITY_OWNER - 1;
const MICROS_PER_CS: u64 = 10_000;
const CS_PER_SECOND: u16 = 100;
/// The reason of every transition made by [`Event::Force`]: a sync-group driver tells
/// forced transitions (which move nobody else) from a member's own by it.
pub const FORCED_BY_GROUP: &str = "forced by sync group";

/// One instance's parameters (from keepalived's `vrrp_instance`), already validated: what
/// the state machine needs of the configuration, named apart from [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub name: String,
    pub version: Version,
    pub vrid: u8,
    /// Configured (base) priority, 1..=255. 0 means "not configured": derived from
    /// `initial_state` as keepalived does (MASTER: 255, else 100).
    pub priority: u8,
    /// Configured `advert_int` in centiseconds (v2: a multiple of 100).
    pub advert_interval_cs: u16,
    /// keepalived `state`: Master or Backup (others: derived from the priority).
    pub initial_state: State,
    /// `false` = `nopreempt`.
    pub preempt: bool,
    /// keepalived `preempt_delay` (zero: none).
    pub preempt_delay: Duration,
    /// Our address on the interface: the advert source, and the tie-breaker.
    pub primary_address: IpAddr,
    /// The instance is a member of a `vrrp_sync_group`: it then asks the group
    /// ([`Action::RequestState`]) before becoming Master or leaving Fault on its own.
    pub in_sync_group: bool,
    /// keepalived's strict mode (`lower_prio_no_advert`): a Master does not answer a
    /// lower-priority advert with one of its own.
    pub strict: bool,
}

impl Params {
    /// keepalived's fix-ups of contradictory settings (vrrp_complete_instance), so the
    /// machine behaves as keepalived would even if the config layer let them through.
    fn normalized(mut self) -> Self {
        let configured_master = self.initial_state == State::Master;
        if self.priority == 0 {
            self.priority = if configured_master {
                PRIORITY_OWNER
            } else {
                PRIORITY_DEFAULT
            };
        }
        if !matches!(self.initial_state, State::Master | State::Backup) {
            self.initial_state = if self.priority == PRIORITY_OWNER {
                State::Master
            } else {
                State::Backup
            };
        }
        self.advert_interval_cs = normalized_interval(self.version, self.advert_interval_cs);
        // The owner and `state MASTER` always preempt; `preempt_delay` needs preemption
        // and is dropped with `state MASTER`.
        if self.priority == PRIORITY_OWNER || self.initial_state == State::Master {
            self.preempt = true;
        }
        if self.initial_state == State::Master || !self.preempt {
            self.preempt_delay = Duration::ZERO;
        }
        self
    }
}

/// keepalived: 0 means the 1 s default; v2 rounds to whole seconds (at least 1).
fn normalized_interval(version: Version, cs: u16) -> u16 {
    match (version, cs) {
        (_, 0) => CS_PER_SECOND,
        (Version::V2, cs) => {
            let secs = (u32::from(cs) + 50) / 100;
            u16::try_from(secs.max(1) * 100).unwrap_or(cs)
        }
        (Version::V3, cs) => cs,
    }
}

/// What happens to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The instance starts (after config load).
    Startup,
    /// Graceful stop.
    Shutdown,
    /// The advert timer fired.
    AdvertTimer,
    /// The master-down timer fired.
    MasterDownTimer,
    /// The preempt-delay window (see [`Action::ArmPreemptDelay`]) ended.
    PreemptDelayOver,
    /// A validated advert for our VRID.
    Advert {
        from: IpAddr,
        priority: u8,
        interval_cs: u16,
    },
    /// Tracking: some tracked thing failed (`true`) / everything recovered (`false`).
    Fault { faulty: bool, reason: String },
    /// Effective priority changed by tracking (see [`effective_priority`]).
    Priority(u8),
    /// A sync group forces Backup, Fault or Master.
    Force(State),
    /// A reload changed the parameters but not the instance's identity (name, VRID,
    /// version, source address): applied in place, the state kept, as keepalived's
    /// reload does. The configured priority replaces the effective one (tracking sends
    /// its weights again).
    Reconfigure(Params),
    /// Split brain resolved against us ([`super::split_brain::verdict`]): a Master steps
    /// down to Backup (no priority 0: the other node cannot hear it anyway) and holds
    /// there, its master-down timer re-armed instead of taking over, until
    /// [`Event::Hold`]`(false)` (the other node no longer answers for the VIPs).
    StepDown { reason: String },
    /// Start or end holding Backup (see [`Event::StepDown`]).
    Hold(bool),
    /// The arbiter is reachable (`true`) or not. Without it a Backup never takes over,
    /// and a Master advertises priority 1 so that a Backup that reaches the arbiter
    /// preempts it (one that does not leaves it the VIPs).
    Arbiter(bool),
    /// Our VIPs are answered by another node while its adverts are silent (the heartbeat
    /// is cut, the master is alive): a Backup does not take over while this holds.
    VipElsewhere(bool),
}

/// What the IO must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    ArmAdvertTimer(Duration),
    CancelAdvertTimer,
    ArmMasterDownTimer(Duration),
    CancelMasterDownTimer,
    /// Start the preempt-delay window; [`Event::PreemptDelayOver`] when it ends. There is no
    /// cancel: a window abandoned early (a master of higher or equal priority was heard, or
    /// we left Backup) ignores its late `PreemptDelayOver`, and a new window re-arms.
    ArmPreemptDelay(Duration),
    /// Become owner of the VIPs, then gratuitous ARP / unsolicited NA.
    AddVips,
    RemoveVips,
    /// For logs, notify scripts, metrics and sync groups.
    Transition {
        from: State,
        to: State,
        reason: String,
    },
    /// A MASTER heard an advert of lower priority (or equal priority from a lower
    /// address): keepalived's `notify_master_rx_lower_pri` script and FIFO event.
    HeardLowerPriority {
        from: IpAddr,
        priority: u8,
    },
    /// Sync-group members only: the instance would go to this state on its own (Master:
    /// its master-down timer expired; Backup: its fault cleared) but keepalived lets the
    /// group decide. Hand it to `SyncGroup::on_request`; a yes comes back as
    /// [`Event::Force`], a no needs nothing (the instance stays as it is).
    RequestState(State),
}

/// keepalived's `preempt_time`: the window starts at the first lower-priority advert a
/// Backup hears, not at startup (vrrp_state_backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreemptWindow {
    /// `preempt_time` unset: the next lower-priority advert opens the window.
    Idle,
    /// Inside the window: lower-priority masters are honoured.
    Running,
    /// The window ended: lower-priority adverts are ignored so we take over.
    Over,
}

/// One VRRP instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    cfg: Params,
    state: State,
    /// keepalived's `wantstate`: what the instance would be without its sync group. Starts
    /// as the configured state; a sync group lets members become Master only when all of
    /// them want it (vrrp_sync_can_goto_master).
    want: State,
    /// Effective priority (base + tracking).
    priority: u8,
    /// Master_Adver_Interval: v3 Backups adopt the master's.
    master_adver_cs: u16,
    /// The last master heard while Backup.
    master_addr: Option<IpAddr>,
    /// Our own tracking says faulty.
    faulty: bool,
    /// A sync group forced Fault before we started.
    fault_pending: bool,
    window: PreemptWindow,
    /// Holding Backup after a split-brain step-down.
    held: bool,
    /// The arbiter answers (always true without an arbiter).
    arbiter_ok: bool,
    /// See [`Event::VipElsewhere`].
    vip_elsewhere: bool,
    /// A lower-priority master's adverts arrive and we let the down timer run out to
    /// preempt it: it holds the VIPs, and is not silent.
    preempting: bool,
}

impl Instance {
    pub fn new(cfg: Params) -> Self {
        let cfg = cfg.normalized();
        Self {
            state: State::Init,
            want: cfg.initial_state,
            priority: cfg.priority,
            master_adver_cs: cfg.advert_interval_cs,
            master_addr: None,
            faulty: false,
            fault_pending: false,
            window: PreemptWindow::Idle,
            held: false,
            arbiter_ok: true,
            vip_elsewhere: false,
            preempting: false,
            cfg,
        }
    }

    /// The configuration after keepalived's fix-ups.
    pub fn params(&self) -> &Params {
        &self.cfg
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The priority we run with: tracking's, or 1 while the arbiter is unreachable.
    pub fn effective_priority(&self) -> u8 {
        if self.arbiter_ok {
            self.priority
        } else {
            PRIORITY_ARBITER_LOST
        }
    }

    /// Whether a Backup may become Master when its master-down timer runs out.
    pub fn takeover_blocked(&self) -> bool {
        // The VIPs answered elsewhere only block a takeover from a silent master; a
        // lower-priority one we preempt answers for them by right.
        self.held || !self.arbiter_ok || (self.vip_elsewhere && !self.preempting)
    }

    /// Who is master: us when Master, the last advertiser heard when Backup.
    pub fn master_address(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.cfg.primary_address),
            State::Backup => self.master_addr,
            State::Init | State::Fault => None,
        }
    }

    pub fn master_adver_interval_cs(&self) -> u16 {
        self.master_adver_cs
    }

    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.cfg.version, self.priority, self.master_adver_cs)
    }

    pub fn skew_time(&self) -> Duration {
        skew_time(self.cfg.version, self.priority, self.master_adver_cs)
    }

    /// keepalived's `wantstate == MASTER` (for the sync group's decision).
    pub fn wants_master(&self) -> bool {
        self.want == State::Master
    }

    /// Our own tracking reports a fault (a state of Fault forced by a sync group is not).
    pub fn is_faulty(&self) -> bool {
        self.faulty
    }

    /// Holding Backup after a split-brain step-down.
    pub fn is_held(&self) -> bool {
        self.held
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut acts = Vec::new();
        match event {
            Event::Startup => self.startup(&mut acts),
            Event::Shutdown => self.shutdown(&mut acts),
            Event::AdvertTimer => self.advert_timer(&mut acts),
            Event::MasterDownTimer => self.master_down_timer(&mut acts),
            Event::PreemptDelayOver => self.preempt_delay_over(),
            Event::Advert {
                from,
                priority,
                interval_cs,
            } => self.advert(&mut acts, from, priority, interval_cs),
            Event::Fault { faulty, reason } => self.fault(&mut acts, faulty, &reason),
            Event::Priority(priority) => self.set_priority(priority),
            Event::Force(state) => self.force(&mut acts, state),
            Event::Reconfigure(params) => self.reconfigure(&mut acts, params),
            Event::StepDown { reason } => self.step_down(&mut acts, reason),
            Event::Hold(held) => self.held = held && self.state == State::Backup,
            Event::Arbiter(ok) => self.arbiter(&mut acts, ok),
            Event::VipElsewhere(yes) => self.vip_elsewhere = yes && self.state == State::Backup,
        }
        acts
    }

    /// keepalived vrrp_init_state: the owner with `state MASTER` takes over at once (a
    /// 1 µs master-down timer); `state MASTER` otherwise waits one advert interval plus the
    /// minimum skew for a master to show up; `state BACKUP` (even the owner) waits the full
    /// Master_Down_Interval. Nothing is sent before the timer expires.
    fn startup(&mut self, acts: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        if self.faulty || self.fault_pending {
            self.fault_pending = false;
            self.enter_fault(acts, "startup with a fault".into());
            return;
        }
        if self.cfg.priority == PRIORITY_OWNER && self.cfg.initial_state == State::Master {
            self.enter_master(acts, false, "startup as address owner".into());
        } else if self.cfg.initial_state == State::Master {
            let wait =
                self.advert_interval() + skew_time_units(self.cfg.version, 1, self.master_adver_cs);
            self.enter_backup(acts, Some(wait), "startup (state MASTER)".into());
        } else {
            self.enter_backup(acts, None, "startup".into());
        }
        // A running instance starts with the configured wantstate (vrrp_init_state only
        // sets it to FAULT).
        self.want = self.cfg.initial_state;
    }

    /// keepalived restore_vrrp_interfaces: only a Master sends priority 0 and drops the VIPs.
    fn shutdown(&mut self, acts: &mut Vec<Action>) {
        match self.state {
            State::Init => return,
            State::Master => self.leave_master(acts, true),
            State::Backup => self.leave_backup(acts, false),
            State::Fault => {}
        }
        self.want = self.cfg.initial_state;
        self.master_adver_cs = self.cfg.advert_interval_cs;
        self.transition(acts, State::Init, "shutdown".into());
    }

    fn advert_timer(&mut self, acts: &mut Vec<Action>) {
        if self.state == State::Master {
            self.advertise(acts);
        }
    }

    /// keepalived vrrp_goto_master; in a sync group vrrp_state_goto_master first asks
    /// vrrp_sync_can_goto_master, which re-arms a full down timer while it waits.
    fn master_down_timer(&mut self, acts: &mut Vec<Action>) {
        if self.state != State::Backup {
            return;
        }
        if self.takeover_blocked() {
            // The master is silent but still holds the VIPs (the heartbeat is cut), or we
            // cannot reach the arbiter: stay.
            acts.push(Action::ArmMasterDownTimer(self.master_down_interval()));
            return;
        }
        self.want = State::Master;
        if self.cfg.in_sync_group {
            acts.push(Action::ArmMasterDownTimer(self.master_down_interval()));
            acts.push(Action::RequestState(State::Master));
        } else {
            self.enter_master(acts, true, "master down timer expired".into());
        }
    }

    fn preempt_delay_over(&mut self) {
        if self.window == PreemptWindow::Running {
            self.window = PreemptWindow::Over;
        }
    }

    fn advert(&mut self, acts: &mut Vec<Action>, from: IpAddr, priority: u8, interval_cs: u16) {
        // keepalived vrrp_check_packet drops v2 adverts whose interval isn't ours.
        if self.cfg.version == Version::V2 && interval_cs != self.cfg.advert_interval_cs {
            return;
        }
        match self.state {
            State::Backup => self.backup_rx(acts, from, priority, interval_cs),
            State::Master => self.master_rx(acts, from, priority, interval_cs),
            State::Init | State::Fault => {}
        }
    }

    /// keepalived vrrp_state_backup. Equal priority counts as a valid master whatever its
    /// address: ties are only broken between two Masters.
    fn backup_rx(&mut self, acts: &mut Vec<Action>, from: IpAddr, priority: u8, interval_cs: u16) {
        if priority == PRIORITY_STOP {
            acts.push(Action::ArmMasterDownTimer(self.skew_time()));
            return;
        }
        // keepalived records the sender even when ignoring it.
        self.master_addr = Some(from);
        if !self.honours(priority) {
            // Lower priority, preemption on: let the down timer run out and take over.
            self.preempting = true;
            return;
        }
        self.preempting = false;
        self.adopt_interval(interval_cs);
        self.want = State::Backup;
        acts.push(Action::ArmMasterDownTimer(self.master_down_interval()));
        self.track_preempt_window(acts, priority);
    }

    /// Whether a Backup accepts a master with this priority.
    fn honours(&self, priority: u8) -> bool {
        let in_window = !self.cfg.preempt_delay.is_zero() && self.window != PreemptWindow::Over;
        !self.cfg.preempt || priority >= self.priority || in_window
    }

    /// keepalived: a master of higher or equal priority resets `preempt_time`; the first
    /// lower-priority one starts it.
    fn track_preempt_window(&mut self, acts: &mut Vec<Action>, priority: u8) {
        if self.cfg.preempt_delay.is_zero() {
            return;
        }
        if priority >= self.priority {
            self.window = PreemptWindow::Idle;
        } else if self.window == PreemptWindow::Idle {
            self.window = PreemptWindow::Running;
            acts.push(Action::ArmPreemptDelay(self.cfg.preempt_delay));
        }
    }

    /// keepalived vrrp_state_master_rx (with the defaults `lower_prio_no_advert` and
    /// `higher_prio_send_advert` off).
    fn master_rx(&mut self, acts: &mut Vec<Action>, from: IpAddr, priority: u8, interval_cs: u16) {
        if priority == PRIORITY_STOP {
            // The backups will start their skew timers: tell them we're still here.
            self.advertise(acts);
            return;
        }
        let addr = compare_addresses(from, self.cfg.primary_address);
        let mine = self.effective_priority();
        if priority == mine {
            if addr == Ordering::Equal {
                // keepalived only warns (an advert with our own address).
                return;
            }
            if self.priority == PRIORITY_OWNER {
                // Two owners: keepalived reports a configuration error and demotes itself.
                self.priority = PRIORITY_MAX_NON_OWNER;
            }
        }
        match priority.cmp(&self.effective_priority()).then(addr) {
            // keepalived re-advertises at once ("forcing new election"), except in
            // strict mode (`lower_prio_no_advert`): the next advert comes on time.
            Ordering::Less => {
                if !self.cfg.strict {
                    self.advertise(acts);
                }
                acts.push(Action::HeardLowerPriority { from, priority });
            }
            Ordering::Greater => {
                let reason = if priority > mine {
                    format!("higher priority {priority} advert from {from}")
                } else {
                    format!("equal priority advert from higher address {from}")
                };
                self.adopt_interval(interval_cs);
                self.enter_backup(acts, None, reason);
                self.master_addr = Some(from);
            }
            Ordering::Equal => {}
        }
    }

    /// A Master advertises its new priority at once, so Backups learn it now.
    fn arbiter(&mut self, acts: &mut Vec<Action>, ok: bool) {
        if ok == self.arbiter_ok {
            return;
        }
        self.arbiter_ok = ok;
        if self.state == State::Master {
            self.advertise(acts);
        }
    }

    /// Split brain, resolved against us: Backup, held there.
    fn step_down(&mut self, acts: &mut Vec<Action>, reason: String) {
        if self.state != State::Master {
            return;
        }
        self.enter_backup(acts, None, reason);
        self.held = true;
    }

    /// RFC 5798 6.4.2: a v3 Backup uses the interval in the master's adverts.
    fn adopt_interval(&mut self, interval_cs: u16) {
        if self.cfg.version == Version::V3 && interval_cs > 0 {
            self.master_adver_cs = interval_cs;
        }
    }

    /// keepalived down_instance / try_up_instance. Recovery always goes to Backup with a
    /// full down timer, even for the owner (down_instance set its wantstate to FAULT).
    fn fault(&mut self, acts: &mut Vec<Action>, faulty: bool, reason: &str) {
        if faulty {
            self.faulty = true;
            if matches!(self.state, State::Backup | State::Master) {
                self.enter_fault(acts, format!("fault: {reason}"));
            }
            return;
        }
        if !self.faulty {
            return;
        }
        self.faulty = false;
        if self.state != State::Fault {
            return;
        }
        if self.cfg.in_sync_group {
            // keepalived keeps a member in FAULT while any member is faulty.
            acts.push(Action::RequestState(State::Backup));
        } else {
            self.enter_backup(acts, None, format!("fault cleared: {reason}"));
        }
    }

    /// keepalived vrrp_set_effective_priority: the owner never changes; the new priority
    /// goes out with the next advert (nothing is sent at once). keepalived also shifts a
    /// running master-down deadline by the change in skew; without a clock the new skew
    /// applies from the next (re)arm instead (less than one advert interval apart).
    fn set_priority(&mut self, priority: u8) {
        if self.cfg.priority == PRIORITY_OWNER {
            return;
        }
        self.priority = priority.clamp(1, PRIORITY_MAX_NON_OWNER);
    }

    /// New parameters, same state. A Master advertises the new priority or interval at
    /// once: a peer that now outranks it takes over by the usual rules (preemption),
    /// one it still outranks hears nothing new. A Backup that now outranks the master
    /// lets its down timer run out (the master's adverts no longer reset it).
    fn reconfigure(&mut self, acts: &mut Vec<Action>, params: Params) {
        let new = params.normalized();
        let old = std::mem::replace(&mut self.cfg, new);
        let old_priority = self.priority;
        self.priority = self.cfg.priority;
        if (self.cfg.preempt, self.cfg.preempt_delay) != (old.preempt, old.preempt_delay) {
            self.window = PreemptWindow::Idle;
        }
        let interval_changed = self.cfg.advert_interval_cs != old.advert_interval_cs;
        match self.state {
            State::Init => self.want = self.cfg.initial_state,
            State::Master => {
                self.master_adver_cs = self.cfg.advert_interval_cs;
                if self.priority != old_priority || interval_changed {
                    self.advertise(acts);
                }
            }
            State::Backup | State::Fault => {
                // v2 adverts carry whole seconds and must match ours; a v3 Backup keeps
                // the interval it learned from the master.
                if self.cfg.version == Version::V2 {
                    self.master_adver_cs = self.cfg.advert_interval_cs;
                }
            }
        }
    }

    /// The same transitions as natural ones (keepalived vrrp_sync_master / _backup / _fault).
    fn force(&mut self, acts: &mut Vec<Action>, to: State) {
        if to == self.state {
            return;
        }
        let reason = || FORCED_BY_GROUP.to_string();
        match (self.state, to) {
            // Not started: remember a forced fault for startup (vrrp_init_state uses the
            // group's state).
            (State::Init, State::Fault) => self.fault_pending = true,
            (State::Init, _) => self.fault_pending = false,
            (_, State::Init) => {}
            (_, State::Fault) => self.enter_fault(acts, reason()),
            // Our own fault keeps us down whatever the group says.
            _ if self.faulty => {}
            (_, State::Backup) => self.enter_backup(acts, None, reason()),
            (_, State::Master) => self.enter_master(acts, false, reason()),
        }
    }

    /// keepalived vrrp_state_goto_master → vrrp_state_master_tx: the advert goes first so
    /// the old master drops the VIPs before our gratuitous ARPs.
    fn enter_master(&mut self, acts: &mut Vec<Action>, down_timer_fired: bool, reason: String) {
        match self.state {
            State::Master => return,
            State::Backup => self.leave_backup(acts, down_timer_fired),
            State::Init | State::Fault => {}
        }
        self.want = State::Master;
        self.master_adver_cs = self.cfg.advert_interval_cs;
        acts.push(Action::SendAdvert {
            priority: self.effective_priority(),
        });
        acts.push(Action::AddVips);
        acts.push(Action::ArmAdvertTimer(self.advert_interval()));
        self.transition(acts, State::Master, reason);
    }

    /// keepalived vrrp_state_leave_master (no priority 0) / vrrp_state_leave_fault.
    /// `down` overrides the full Master_Down_Interval (startup with `state MASTER`).
    fn enter_backup(&mut self, acts: &mut Vec<Action>, down: Option<Duration>, reason: String) {
        match self.state {
            State::Backup => return,
            State::Master => self.leave_master(acts, false),
            // Leaving fault/init forgets any interval adopted from an old master.
            State::Init | State::Fault => self.master_adver_cs = self.cfg.advert_interval_cs,
        }
        self.want = State::Backup;
        self.window = PreemptWindow::Idle;
        self.master_addr = None;
        let down = down.unwrap_or_else(|| self.master_down_interval());
        acts.push(Action::ArmMasterDownTimer(down));
        self.transition(acts, State::Backup, reason);
    }

    /// keepalived vrrp_state_leave_master / leave_fault with wantstate FAULT: a Master
    /// sends priority 0 so a backup takes over after its skew time.
    fn enter_fault(&mut self, acts: &mut Vec<Action>, reason: String) {
        match self.state {
            State::Fault => return,
            State::Master => self.leave_master(acts, true),
            State::Backup => self.leave_backup(acts, false),
            State::Init => {}
        }
        self.want = State::Fault;
        self.transition(acts, State::Fault, reason);
    }

    fn leave_master(&mut self, acts: &mut Vec<Action>, resign: bool) {
        acts.push(Action::CancelAdvertTimer);
        if resign {
            acts.push(Action::SendAdvert {
                priority: PRIORITY_STOP,
            });
        }
        acts.push(Action::RemoveVips);
    }

    fn leave_backup(&mut self, acts: &mut Vec<Action>, down_timer_fired: bool) {
        self.held = false;
        self.vip_elsewhere = false;
        self.preempting = false;
        if !down_timer_fired {
            acts.push(Action::CancelMasterDownTimer);
        }
        self.window = PreemptWindow::Idle;
    }

    fn advertise(&self, acts: &mut Vec<Action>) {
        acts.push(Action::SendAdvert {
            priority: self.effective_priority(),
        });
        acts.push(Action::ArmAdvertTimer(self.advert_interval()));
    }

    fn transition(&mut self, acts: &mut Vec<Action>, to: State, reason: String) {
        acts.push(Action::Transition {
            from: self.state,
            to,
            reason,
        });
        self.state = to;
    }

    /// A master always advertises at its configured interval.
    fn advert_interval(&self) -> Duration {
        cs(self.cfg.advert_interval_cs)
    }
}

/// Effective priority from tracking, with keepalived's rule (vrrp_set_effective_priority):
/// a base of 255 never changes; otherwise base + sum of weights clamped to 1..=254.
pub fn effective_priority(base: u8, weights_sum: i32) -> u8 {
    if base == PRIORITY_OWNER {
        return base;
    }
    let total = i64::from(base) + i64::from(weights_sum);
    let clamped = total.clamp(1, i64::from(PRIORITY_MAX_NON_OWNER));
    u8::try_from(clamped).unwrap_or(PRIORITY_MAX_NON_OWNER)
}

/// Skew_Time as keepalived computes it (VRRP_TIMER_SKEW, vrrp.h), in whole microseconds:
/// v2 (256 − priority)/256 s; v3 (256 − priority) × Master_Adver_Interval / 256. keepalived
/// doesn't round v3 to centiseconds as RFC 5798's integer formula would.
pub fn skew_time(version: Version, priority: u8, master_adver_interval_cs: u16) -> Duration {
    skew_time_units(version, 256 - u64::from(priority), master_adver_interval_cs)
}

/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time.
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval_cs: u16,
) -> Duration {
    cs(master_adver_interval_cs) * DOWN_TIMER_ADVERTS
        + skew_time(version, priority, master_adver_interval_cs)
}

/// keepalived VRRP_TIMER_SKEW_CALC: `units` is 256 − priority (or 1 for the minimum skew).
fn skew_time_units(version: Version, units: u64, master_adver_interval_cs: u16) -> Duration {
    let micros = match version {
        Version::V2 => units * 1_000_000 / 256,
        // 625 / 16 = 10_000 µs per cs / 256.
        Version::V3 => units * u64::from(master_adver_interval_cs) * 625 / 16,
    };
    Duration::from_micros(micros)
}

fn cs(centiseconds: u16) -> Duration {
    Duration::from_micros(u64::from(centiseconds) * MICROS_PER_CS)
}

/// keepalived vrrp_saddr_cmp / inet_inaddrcmp: numeric within a family; addresses of
/// different families compare equal (no tie-break).
pub(super) fn compare_addresses(a: IpAddr, b: IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.cmp(&b),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.cmp(&b),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A1: &str = "10.0.0.1";
    const A2: &str = "10.0.0.2";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn us(micros: u64) -> Duration {
        Duration::from_micros(micros)
    }

    fn params(version: Version, priority: u8, initial_state: State) -> Params {
        Params {
            name: "VI_1".into(),
            version,
            vrid: 51,
            priority,
            advert_interval_cs: 100,
            initial_state,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address: ip(A1),
            in_sync_group: false,
            strict: false,
        }
    }

    fn instance(priority: u8, initial_state: State) -> Instance {
        Instance::new(params(Version::V2, priority, initial_state))
    }

    /// Feed events in order; the actions of each event.
    fn replay(inst: &mut Instance, events: impl IntoIterator<Item = Event>) -> Vec<Vec<Action>> {
        events.into_iter().map(|ev| inst.handle(ev)).collect()
    }

    /// The actions of the last event of a script.
    fn last(inst: &mut Instance, events: impl IntoIterator<Item = Event>) -> Vec<Action> {
        replay(inst, events).pop().unwrap()
    }

    fn advert(from: &str, priority: u8) -> Event {
        advert_int(from, priority, 100)
    }

    fn advert_int(from: &str, priority: u8, interval_cs: u16) -> Event {
        Event::Advert {
            from: ip(from),
            priority,
            interval_cs,
        }
    }

    fn fault(faulty: bool) -> Event {
        Event::Fault {
            faulty,
            reason: "eth0 down".into(),
        }
    }

    /// The actions with Transition reasons blanked, for comparison.
    fn plain(acts: Vec<Action>) -> Vec<Action> {
        acts.into_iter()
            .map(|a| match a {
                Action::Transition { from, to, .. } => tr(from, to),
                other => other,
            })
            .collect()
    }

    fn tr(from: State, to: State) -> Action {
        Action::Transition {
            from,
            to,
            reason: String::new(),
        }
    }

    fn become_master(priority: u8, from: State) -> Vec<Action> {
        vec![
            Action::SendAdvert { priority },
            Action::AddVips,
            Action::ArmAdvertTimer(us(1_000_000)),
            tr(from, State::Master),
        ]
    }

    /// A Backup (priority 100, v2, 1 s) that became Master.
    fn master(priority: u8) -> Instance {
        let mut inst = instance(priority, State::Backup);
        replay(&mut inst, [Event::Startup, Event::MasterDownTimer]);
        assert_eq!(inst.state(), State::Master);
        inst
    }

    fn reconfigure(priority: u8) -> Event {
        Event::Reconfigure(params(Version::V2, priority, State::Backup))
    }

    #[test]
    fn reconfigure_keeps_a_master_that_stays_highest() {
        let mut m = master(150);
        let acts = m.handle(reconfigure(200));
        assert_eq!(m.state(), State::Master);
        assert_eq!(m.effective_priority(), 200);
        // The new priority goes out at once; no transition, the VIPs stay.
        assert_eq!(
            acts,
            vec![
                Action::SendAdvert { priority: 200 },
                Action::ArmAdvertTimer(Duration::from_secs(1)),
            ]
        );
        // A lower peer is still put down.
        assert_eq!(
            m.handle(advert("10.0.0.9", 180)),
            vec![
                Action::SendAdvert { priority: 200 },
                Action::ArmAdvertTimer(Duration::from_secs(1)),
                Action::HeardLowerPriority {
                    from: ip("10.0.0.9"),
                    priority: 180
                },
            ]
        );
        // Unchanged parameters: nothing at all.
        assert!(m.handle(reconfigure(200)).is_empty());
    }

    #[test]
    fn reconfigure_below_a_peer_yields_by_the_usual_rules() {
        let mut m = master(150);
        let acts = m.handle(reconfigure(50));
        assert_eq!(m.state(), State::Master);
        assert_eq!(acts[0], Action::SendAdvert { priority: 50 });
        // The peer (priority 100, preempting) takes over; we follow its advert.
        let acts = m.handle(advert("10.0.0.9", 100));
        assert_eq!(m.state(), State::Backup);
        assert!(
            acts.iter().any(|a| matches!(a, Action::RemoveVips)),
            "{acts:?}"
        );
    }

    #[test]
    fn reconfigure_of_a_backup_above_the_master_preempts_when_the_timer_runs_out() {
        let mut b = instance(100, State::Backup);
        b.handle(Event::Startup);
        b.handle(advert("10.0.0.9", 150));
        assert!(b.handle(reconfigure(200)).is_empty());
        assert_eq!(b.state(), State::Backup);
        // The master's adverts no longer reset the down timer.
        assert!(b.handle(advert("10.0.0.9", 150)).is_empty());
        b.handle(Event::MasterDownTimer);
        assert_eq!(b.state(), State::Master);
    }

    #[test]
    fn reconfigure_with_nopreempt_keeps_a_backup_where_it_is() {
        let mut b = instance(100, State::Backup);
        b.handle(Event::Startup);
        b.handle(advert("10.0.0.9", 150));
        let mut p = params(Version::V2, 200, State::Backup);
        p.preempt = false;
        b.handle(Event::Reconfigure(p));
        assert!(matches!(
            b.handle(advert("10.0.0.9", 150)).as_slice(),
            [Action::ArmMasterDownTimer(_)]
        ));
    }

    #[test]
    fn startup_owner_with_state_master_takes_over_at_once() {
        let mut inst = instance(255, State::Master);
        let acts = inst.handle(Event::Startup);
        assert_eq!(plain(acts), become_master(255, State::Init));
        assert_eq!(inst.master_address(), Some(ip(A1)));
    }

    #[test]
    fn startup_state_master_waits_one_interval_and_minimum_skew() {
        let mut inst = instance(100, State::Master);
        let acts = inst.handle(Event::Startup);
        // 1 s + 1/256 s, nothing sent first.
        assert_eq!(
            plain(acts),
            vec![
                Action::ArmMasterDownTimer(us(1_003_906)),
                tr(State::Init, State::Backup)
            ]
        );
        assert!(inst.wants_master());
        let acts = inst.handle(Event::MasterDownTimer);
        assert_eq!(plain(acts), become_master(100, State::Backup));
    }

    #[test]
    fn startup_state_master_v3_minimum_skew_scales_with_interval() {
        let mut cfg = params(Version::V3, 100, State::Master);
        cfg.advert_interval_cs = 50;
        let mut inst = Instance::new(cfg);
        // 0.5 s + 50 cs / 256 = 500_000 + 1_953 µs.
        assert_eq!(
            inst.handle(Event::Startup)[0],
            Action::ArmMasterDownTimer(us(501_953))
        );
    }

    #[test]
    fn startup_state_master_yields_to_a_higher_master_heard_in_time() {
        let mut inst = instance(100, State::Master);
        let acts = last(&mut inst, [Event::Startup, advert(A2, 200)]);
        assert_eq!(acts, vec![Action::ArmMasterDownTimer(us(3_609_375))]);
        assert_eq!(inst.state(), State::Backup);
        assert!(!inst.wants_master());
    }

    #[test]
    fn startup_state_backup_waits_master_down_interval() {
        let mut inst = instance(100, State::Backup);
        let acts = inst.handle(Event::Startup);
        assert_eq!(
            plain(acts),
            vec![
                Action::ArmMasterDownTimer(us(3_609_375)),
                tr(State::Init, State::Backup)
            ]
        );
        assert_eq!(inst.master_address(), None);
    }

    #[test]
    fn startup_owner_with_state_backup_waits_like_keepalived() {
        // keepalived only short-cuts the owner when its wantstate is MASTER.
        let mut inst = instance(255, State::Backup);
        let acts = inst.handle(Event::Startup);
        assert_eq!(acts[0], Action::ArmMasterDownTimer(us(3_003_906)));
        assert_eq!(inst.state(), State::Backup);
    }

    #[test]
    fn startup_while_faulty_enters_fault_without_timers() {
        let mut inst = instance(100, State::Backup);
        let acts = last(&mut inst, [fault(true), Event::Startup]);
        assert_eq!(plain(acts), vec![tr(State::Init, State::Fault)]);
        // A faulty `state MASTER` doesn't want MASTER (it would unblock its sync group).
        let mut inst = instance(100, State::Master);
        replay(&mut inst, [fault(true), Event::Startup]);
        assert!(!inst.wants_master());
    }

    #[test]
    fn master_down_interval_v2_is_exact() {
        // (priority, interval cs, µs): 3 × interval + (256 − p) × 1 s / 256, truncated to µs.
        for (priority, interval, expected) in [
            (255, 100, 3_003_906),
            (254, 100, 3_007_812),
            (200, 100, 3_218_750),
            (100, 100, 3_609_375),
            (1, 100, 3_996_093),
            (100, 200, 6_609_375),
        ] {
            assert_eq!(
                master_down_interval(Version::V2, priority, interval),
                us(expected),
                "p={priority}"
            );
        }
        assert_eq!(skew_time(Version::V2, 100, 100), us(609_375));
        assert_eq!(skew_time(Version::V2, 100, 300), us(609_375));
    }

    #[test]
    fn master_down_interval_v3_is_exact() {
        // 3 × interval + (256 − p) × interval / 256, in µs.
        for (priority, interval, expected) in [
            (100, 100, 3_609_375),
            (255, 100, 3_003_906),
            (200, 50, 1_609_375),
            (1, 25, 999_023),
            (100, 4095, 147_803_906),
        ] {
            assert_eq!(
                master_down_interval(Version::V3, priority, interval),
                us(expected),
                "p={priority}"
            );
        }
        assert_eq!(skew_time(Version::V3, 200, 50), us(109_375));
    }

    #[test]
    fn instance_reports_its_timers() {
        let mut inst = Instance::new(params(Version::V3, 200, State::Backup));
        inst.handle(Event::Startup);
        assert_eq!(inst.skew_time(), us(218_750));
        assert_eq!(inst.master_down_interval(), us(3_218_750));
        assert_eq!(inst.master_adver_interval_cs(), 100);
    }

    #[test]
    fn preemption_on_higher_backup_takes_over_from_lower_master() {
        let mut inst = instance(150, State::Backup);
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 100),
                advert(A2, 100),
                Event::MasterDownTimer,
            ],
        );
        // Lower adverts are ignored: the timer armed at startup runs out.
        assert!(steps[1].is_empty() && steps[2].is_empty());
        assert_eq!(plain(steps[3].clone()), become_master(150, State::Backup));
    }

    #[test]
    fn lower_advert_still_records_the_master_address() {
        let mut inst = instance(150, State::Backup);
        replay(&mut inst, [Event::Startup, advert(A2, 100)]);
        assert_eq!(inst.master_address(), Some(ip(A2)));
    }

    #[test]
    fn nopreempt_stays_backup_under_a_lower_master() {
        let mut cfg = params(Version::V2, 150, State::Backup);
        cfg.preempt = false;
        let mut inst = Instance::new(cfg);
        let steps = replay(
            &mut inst,
            [Event::Startup, advert(A2, 100), advert(A2, 100)],
        );
        assert_eq!(steps[1], vec![Action::ArmMasterDownTimer(us(3_414_062))]);
        assert_eq!(steps[2], steps[1]);
        assert_eq!(inst.master_address(), Some(ip(A2)));
    }

    #[test]
    fn preempt_delay_starts_at_first_lower_advert_then_preempts() {
        let mut cfg = params(Version::V2, 150, State::Backup);
        cfg.preempt_delay = Duration::from_secs(30);
        let mut inst = Instance::new(cfg);
        let down = Action::ArmMasterDownTimer(us(3_414_062));
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 100),
                advert(A2, 100),
                Event::PreemptDelayOver,
                advert(A2, 100),
                Event::MasterDownTimer,
            ],
        );
        assert_eq!(
            steps[1],
            vec![
                down.clone(),
                Action::ArmPreemptDelay(Duration::from_secs(30))
            ]
        );
        assert_eq!(steps[2], vec![down]);
        assert!(steps[3].is_empty());
        assert!(
            steps[4].is_empty(),
            "after the window, lower adverts are ignored"
        );
        assert_eq!(plain(steps[5].clone()), become_master(150, State::Backup));
    }

    #[test]
    fn preempt_delay_is_reset_by_a_higher_master() {
        let mut cfg = params(Version::V2, 150, State::Backup);
        cfg.preempt_delay = Duration::from_secs(30);
        let mut inst = Instance::new(cfg);
        let down = Action::ArmMasterDownTimer(us(3_414_062));
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 100),
                advert(A2, 200),
                Event::PreemptDelayOver, // late: that window was abandoned
                advert(A2, 100),
                advert(A2, 100),
            ],
        );
        assert_eq!(steps[2], vec![down.clone()]);
        assert!(steps[3].is_empty());
        // A new window starts (re-arming replaces the old timer): the lower master is
        // still honoured.
        assert_eq!(
            steps[4],
            vec![
                down.clone(),
                Action::ArmPreemptDelay(Duration::from_secs(30))
            ]
        );
        assert_eq!(steps[5], vec![down]);
    }

    #[test]
    fn priority_zero_from_master_means_take_over_after_skew() {
        let mut inst = instance(100, State::Backup);
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 200),
                advert(A2, 0),
                Event::MasterDownTimer,
            ],
        );
        assert_eq!(steps[2], vec![Action::ArmMasterDownTimer(us(609_375))]);
        assert_eq!(plain(steps[3].clone()), become_master(100, State::Backup));
    }

    #[test]
    fn backup_accepts_equal_priority_from_any_address() {
        for from in ["10.0.0.0", A2] {
            let mut inst = instance(100, State::Backup);
            let acts = last(&mut inst, [Event::Startup, advert(from, 100)]);
            assert_eq!(
                acts,
                vec![Action::ArmMasterDownTimer(us(3_609_375))],
                "{from}"
            );
        }
    }

    /// At equal priority the higher address wins, compared numerically: IPv4 (VRRPv2) and
    /// IPv6 (VRRPv3) alike. Each row: version, our address, a lower one, a higher one.
    #[test]
    fn master_tie_is_won_by_the_numerically_higher_address() {
        let rows = [
            (Version::V2, A1, "10.0.0.0", A2),
            (Version::V3, "fe80::10", "fe80::9", "fe80::1:0"),
        ];
        for (version, ours, lower, higher) in rows {
            let mut cfg = params(version, 100, State::Backup);
            cfg.primary_address = ip(ours);
            let mut inst = Instance::new(cfg);
            replay(&mut inst, [Event::Startup, Event::MasterDownTimer]);
            assert_eq!(inst.state(), State::Master, "{ours}");

            // A lower address loses and hears a re-advert at once.
            let acts = inst.handle(advert(lower, 100));
            assert_eq!(
                acts,
                vec![
                    Action::SendAdvert { priority: 100 },
                    Action::ArmAdvertTimer(us(1_000_000)),
                    Action::HeardLowerPriority {
                        from: ip(lower),
                        priority: 100
                    },
                ],
                "{lower}"
            );
            assert_eq!(inst.state(), State::Master, "{lower}");

            // A higher address wins.
            let acts = inst.handle(advert(higher, 100));
            assert_eq!(
                plain(acts),
                vec![
                    Action::CancelAdvertTimer,
                    Action::RemoveVips,
                    Action::ArmMasterDownTimer(us(3_609_375)),
                    tr(State::Master, State::Backup)
                ],
                "{higher}"
            );
            assert_eq!(inst.state(), State::Backup, "{higher}");
            assert_eq!(inst.master_address(), Some(ip(higher)), "{higher}");
        }
    }

    #[test]
    fn master_ignores_its_own_address_at_equal_priority() {
        let mut inst = master(100);
        assert!(inst.handle(advert(A1, 100)).is_empty());
        assert_eq!(inst.state(), State::Master);
    }

    #[test]
    fn master_hearing_lower_priority_readvertises_at_once() {
        let mut inst = master(150);
        let acts = inst.handle(advert(A2, 100));
        // ... and tells notify_master_rx_lower_pri (keepalived's send_event_notify).
        assert_eq!(
            acts,
            vec![
                Action::SendAdvert { priority: 150 },
                Action::ArmAdvertTimer(us(1_000_000)),
                Action::HeardLowerPriority {
                    from: ip(A2),
                    priority: 100
                },
            ]
        );
    }

    #[test]
    fn master_hearing_priority_zero_readvertises_at_once() {
        let mut inst = master(150);
        let acts = inst.handle(advert(A2, 0));
        assert_eq!(acts[0], Action::SendAdvert { priority: 150 });
        assert_eq!(inst.state(), State::Master);
    }

    #[test]
    fn master_advert_timer_sends_and_rearms() {
        let mut inst = master(150);
        let acts = inst.handle(Event::AdvertTimer);
        assert_eq!(
            acts,
            vec![
                Action::SendAdvert { priority: 150 },
                Action::ArmAdvertTimer(us(1_000_000))
            ]
        );
    }

    #[test]
    fn two_owners_the_one_that_hears_the_other_demotes_itself() {
        let mut inst = instance(255, State::Master);
        inst.handle(Event::Startup);
        inst.handle(advert(A2, 255));
        assert_eq!(inst.state(), State::Backup);
        assert_eq!(inst.effective_priority(), 254);
    }

    #[test]
    fn v3_backup_adopts_the_masters_interval() {
        let mut inst = Instance::new(params(Version::V3, 100, State::Backup));
        let acts = last(&mut inst, [Event::Startup, advert_int(A2, 200, 50)]);
        // 3 × 0.5 s + 156 × 0.5 s / 256.
        assert_eq!(acts, vec![Action::ArmMasterDownTimer(us(1_804_687))]);
        assert_eq!(inst.master_adver_interval_cs(), 50);
        // Becoming master goes back to our own interval.
        let acts = inst.handle(Event::MasterDownTimer);
        assert_eq!(acts[2], Action::ArmAdvertTimer(us(1_000_000)));
        assert_eq!(inst.master_adver_interval_cs(), 100);
    }

    #[test]
    fn v3_master_adopts_the_interval_when_it_steps_down() {
        let mut inst = Instance::new(params(Version::V3, 100, State::Backup));
        replay(&mut inst, [Event::Startup, Event::MasterDownTimer]);
        let acts = inst.handle(advert_int(A2, 200, 200));
        assert_eq!(acts[2], Action::ArmMasterDownTimer(us(7_218_750)));
    }

    #[test]
    fn v3_lower_priority_advert_is_not_adopted() {
        let mut inst = Instance::new(params(Version::V3, 150, State::Backup));
        replay(&mut inst, [Event::Startup, advert_int(A2, 100, 50)]);
        assert_eq!(inst.master_adver_interval_cs(), 100);
    }

    #[test]
    fn v2_advert_with_another_interval_is_dropped() {
        let mut inst = instance(100, State::Backup);
        let acts = last(&mut inst, [Event::Startup, advert_int(A2, 0, 200)]);
        assert!(acts.is_empty());
        assert_eq!(inst.master_adver_interval_cs(), 100);
    }

    #[test]
    fn master_fault_sends_priority_zero_and_drops_vips() {
        let mut inst = master(100);
        let acts = inst.handle(fault(true));
        assert_eq!(
            plain(acts),
            vec![
                Action::CancelAdvertTimer,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                tr(State::Master, State::Fault)
            ]
        );
        // Nothing runs in Fault.
        assert!(replay(
            &mut inst,
            [
                advert(A2, 50),
                Event::AdvertTimer,
                Event::MasterDownTimer,
                fault(true)
            ]
        )
        .iter()
        .all(Vec::is_empty));
    }

    #[test]
    fn backup_fault_and_recovery() {
        let mut inst = instance(100, State::Backup);
        let steps = replay(&mut inst, [Event::Startup, fault(true), fault(false)]);
        assert_eq!(
            plain(steps[1].clone()),
            vec![
                Action::CancelMasterDownTimer,
                tr(State::Backup, State::Fault)
            ]
        );
        assert_eq!(
            plain(steps[2].clone()),
            vec![
                Action::ArmMasterDownTimer(us(3_609_375)),
                tr(State::Fault, State::Backup)
            ]
        );
        assert!(
            inst.handle(fault(false)).is_empty(),
            "nothing to recover from"
        );
    }

    #[test]
    fn fault_recovery_forgets_an_adopted_interval() {
        let mut inst = Instance::new(params(Version::V3, 100, State::Backup));
        let acts = last(
            &mut inst,
            [
                Event::Startup,
                advert_int(A2, 200, 50),
                fault(true),
                fault(false),
            ],
        );
        assert_eq!(acts[0], Action::ArmMasterDownTimer(us(3_609_375)));
    }

    #[test]
    fn owner_recovers_through_backup_like_keepalived() {
        let mut inst = instance(255, State::Master);
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                fault(true),
                fault(false),
                Event::MasterDownTimer,
            ],
        );
        assert_eq!(steps[2][0], Action::ArmMasterDownTimer(us(3_003_906)));
        assert_eq!(plain(steps[3].clone()), become_master(255, State::Backup));
    }

    #[test]
    fn preempt_window_restarts_after_a_fault() {
        let mut cfg = params(Version::V2, 150, State::Backup);
        cfg.preempt_delay = Duration::from_secs(5);
        let mut inst = Instance::new(cfg);
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 100),
                fault(true),
                fault(false),
                Event::PreemptDelayOver, // the old window's
                advert(A2, 100),
            ],
        );
        assert_eq!(
            plain(steps[2].clone()),
            vec![
                Action::CancelMasterDownTimer,
                tr(State::Backup, State::Fault)
            ]
        );
        assert!(steps[4].is_empty());
        assert_eq!(steps[5][1], Action::ArmPreemptDelay(Duration::from_secs(5)));
    }

    #[test]
    fn effective_priority_follows_keepalived() {
        assert_eq!(effective_priority(255, -100), 255);
        assert_eq!(effective_priority(100, 50), 150);
        assert_eq!(effective_priority(100, -500), 1);
        assert_eq!(effective_priority(200, 100), 254);
        assert_eq!(effective_priority(100, i32::MAX), 254);
    }

    #[test]
    fn master_advertises_a_lowered_priority_at_its_next_advert() {
        let mut inst = master(150);
        assert!(
            inst.handle(Event::Priority(50)).is_empty(),
            "nothing is sent at once"
        );
        assert_eq!(
            inst.handle(Event::AdvertTimer)[0],
            Action::SendAdvert { priority: 50 }
        );
        // A backup at 100 ignores our adverts, takes over and is then obeyed.
        let acts = inst.handle(advert(A2, 100));
        assert_eq!(
            acts.last().map(|a| plain(vec![a.clone()])),
            Some(vec![tr(State::Master, State::Backup)])
        );
    }

    #[test]
    fn backup_whose_priority_rises_preempts_after_the_next_advert() {
        let mut inst = instance(100, State::Backup);
        let steps = replay(
            &mut inst,
            [
                Event::Startup,
                advert(A2, 150),
                Event::Priority(200),
                advert(A2, 150),
                Event::MasterDownTimer,
            ],
        );
        assert_eq!(steps[1], vec![Action::ArmMasterDownTimer(us(3_609_375))]);
        assert!(steps[2].is_empty());
        assert!(steps[3].is_empty(), "now a lower master: ignored");
        assert_eq!(plain(steps[4].clone()), become_master(200, State::Backup));
    }

    #[test]
    fn tracking_never_changes_the_owner_and_clamps_others() {
        let mut owner = instance(255, State::Master);
        owner.handle(Event::Priority(10));
        assert_eq!(owner.effective_priority(), 255);
        let mut inst = instance(100, State::Backup);
        inst.handle(Event::Priority(255));
        assert_eq!(inst.effective_priority(), 254);
        inst.handle(Event::Priority(0));
        assert_eq!(inst.effective_priority(), 1);
    }

    #[test]
    fn shutdown_master_sends_priority_zero_and_removes_vips() {
        let mut inst = master(100);
        let acts = inst.handle(Event::Shutdown);
        assert_eq!(
            plain(acts),
            vec![
                Action::CancelAdvertTimer,
                Action::SendAdvert { priority: 0 },
                Action::RemoveVips,
                tr(State::Master, State::Init)
            ]
        );
        assert!(inst.handle(Event::Shutdown).is_empty());
        assert!(inst.handle(Event::AdvertTimer).is_empty());
    }

    #[test]
    fn shutdown_backup_and_fault_only_cancel_timers() {
        let mut inst = instance(100, State::Backup);
        let acts = last(&mut inst, [Event::Startup, Event::Shutdown]);
        assert_eq!(
            plain(acts),
            vec![
                Action::CancelMasterDownTimer,
                tr(State::Backup, State::Init)
            ]
        );
        let acts = last(&mut inst, [Event::Startup, fault(true), Event::Shutdown]);
        assert_eq!(plain(acts), vec![tr(State::Fault, State::Init)]);
    }

    #[test]
    fn force_master_acts_as_master_down_expiry() {
        let mut inst = instance(100, State::Backup);
        let acts = last(&mut inst, [Event::Startup, Event::Force(State::Master)]);
        let mut expected = vec![Action::CancelMasterDownTimer];
        expected.extend(become_master(100, State::Backup));
        assert_eq!(plain(acts), expected);
        assert!(inst.handle(Event::Force(State::Master)).is_empty());
    }

    #[test]
    fn force_backup_from_master_does_not_send_priority_zero() {
        let mut inst = master(100);
        let acts = inst.handle(Event::Force(State::Backup));
        assert_eq!(
            plain(acts),
            vec![
                Action::CancelAdvertTimer,
                Action::RemoveVips,
                Action::ArmMasterDownTimer(us(3_609_375)),
                tr(State::Master, State::Backup)
            ]
        );
    }

    #[test]
    fn force_fault_from_master_sends_priority_zero() {
        let mut inst = master(100);
        let acts = inst.handle(Event::Force(State::Fault));
        assert!(acts.contains(&Action::SendAdvert { priority: 0 }));
        assert_eq!(inst.state(), State::Fault);
        assert!(!inst.is_faulty());
        // Forced fault ends with the group's say-so.
        inst.handle(Event::Force(State::Backup));
        assert_eq!(inst.state(), State::Backup);
    }

    #[test]
    fn force_cannot_lift_our_own_fault() {
        let mut inst = instance(100, State::Backup);
        replay(&mut inst, [Event::Startup, fault(true)]);
        assert!(inst.handle(Event::Force(State::Master)).is_empty());
        assert!(inst.handle(Event::Force(State::Backup)).is_empty());
        assert_eq!(inst.state(), State::Fault);
    }

    #[test]
    fn force_fault_before_startup_is_applied_at_startup() {
        let mut inst = instance(100, State::Backup);
        let steps = replay(&mut inst, [Event::Force(State::Fault), Event::Startup]);
        assert!(steps[0].is_empty());
        assert_eq!(plain(steps[1].clone()), vec![tr(State::Init, State::Fault)]);
        let mut inst = instance(100, State::Backup);
        let acts = last(
            &mut inst,
            [
                Event::Force(State::Fault),
                Event::Force(State::Backup),
                Event::Startup,
            ],
        );
        assert_eq!(inst.state(), State::Backup, "{acts:?}");
    }

    #[test]
    fn sync_member_asks_its_group() {
        let mut cfg = params(Version::V2, 100, State::Backup);
        cfg.in_sync_group = true;
        let mut inst = Instance::new(cfg);
        let acts = last(&mut inst, [Event::Startup, Event::MasterDownTimer]);
        assert_eq!(
            acts,
            vec![
                Action::ArmMasterDownTimer(us(3_609_375)),
                Action::RequestState(State::Master)
            ]
        );
        assert_eq!(inst.state(), State::Backup);
        assert!(inst.wants_master());
        // Hearing a master again withdraws the wish.
        inst.handle(advert(A2, 200));
        assert!(!inst.wants_master());
        let acts = last(&mut inst, [fault(true), fault(false)]);
        assert_eq!(acts, vec![Action::RequestState(State::Backup)]);
        assert_eq!(inst.state(), State::Fault);
    }

    #[test]
    fn keepalived_config_fixups() {
        let mut cfg = params(Version::V2, 255, State::Backup);
        cfg.preempt = false;
        assert!(Instance::new(cfg).params().preempt, "owner always preempts");
        let mut cfg = params(Version::V2, 100, State::Master);
        cfg.preempt = false;
        cfg.preempt_delay = Duration::from_secs(10);
        let fixed = Instance::new(cfg).params().clone();
        assert!(
            fixed.preempt && fixed.preempt_delay.is_zero(),
            "state MASTER clears both"
        );
        let mut cfg = params(Version::V2, 0, State::Master);
        cfg.advert_interval_cs = 149;
        let fixed = Instance::new(cfg).params().clone();
        assert_eq!((fixed.priority, fixed.advert_interval_cs), (255, 100));
        let mut cfg = params(Version::V2, 0, State::Init);
        cfg.advert_interval_cs = 0;
        let fixed = Instance::new(cfg).params().clone();
        assert_eq!(
            (
                fixed.priority,
                fixed.initial_state,
                fixed.advert_interval_cs
            ),
            (100, State::Backup, 100)
        );
    }

    #[test]
    fn split_brain_step_down_holds_backup_until_released() {
        let mut inst = master(100);
        let acts = inst.handle(Event::StepDown {
            reason: "split brain".into(),
        });
        assert_eq!(
            plain(acts),
            vec![
                Action::CancelAdvertTimer,
                Action::RemoveVips,
                Action::ArmMasterDownTimer(us(3_609_375)),
                tr(State::Master, State::Backup)
            ],
            "no priority 0"
        );
        assert!(inst.is_held());
        // The silent master still holds the VIPs: no takeover, the timer re-armed.
        assert_eq!(
            inst.handle(Event::MasterDownTimer),
            vec![Action::ArmMasterDownTimer(us(3_609_375))]
        );
        assert_eq!(inst.state(), State::Backup);
        inst.handle(Event::Hold(false));
        assert_eq!(
            plain(inst.handle(Event::MasterDownTimer)),
            become_master(100, State::Backup)
        );
        assert!(!inst.is_held());
        // Only a Master steps down; a hold needs Backup.
        let mut backup = instance(100, State::Backup);
        backup.handle(Event::Startup);
        assert!(backup
            .handle(Event::StepDown {
                reason: String::new()
            })
            .is_empty());
        let mut m = master(100);
        m.handle(Event::Hold(true));
        assert!(!m.is_held());
    }

    #[test]
    fn a_backup_without_its_arbiter_or_with_the_vip_answered_elsewhere_stays() {
        let mut inst = instance(100, State::Backup);
        inst.handle(Event::Startup);
        inst.handle(Event::Arbiter(false));
        assert_eq!(
            inst.handle(Event::MasterDownTimer),
            vec![Action::ArmMasterDownTimer(us(3_609_375))]
        );
        inst.handle(Event::Arbiter(true));
        inst.handle(Event::VipElsewhere(true));
        assert_eq!(inst.state(), State::Backup);
        assert_eq!(
            inst.handle(Event::MasterDownTimer),
            vec![Action::ArmMasterDownTimer(us(3_609_375))]
        );
        inst.handle(Event::VipElsewhere(false));
        assert_eq!(
            plain(inst.handle(Event::MasterDownTimer)),
            become_master(100, State::Backup)
        );
        // Only a Backup holds back for the VIP.
        inst.handle(Event::VipElsewhere(true));
        assert!(!inst.takeover_blocked());
    }

    #[test]
    fn strict_mode_does_not_answer_a_lower_priority_advert() {
        let mut m = master(150);
        assert_eq!(
            m.handle(advert("10.0.0.2", 100)),
            vec![
                Action::SendAdvert { priority: 150 },
                Action::ArmAdvertTimer(us(1_000_000)),
                Action::HeardLowerPriority {
                    from: ip("10.0.0.2"),
                    priority: 100
                },
            ],
            "keepalived forces a new election at once"
        );
        let mut p = params(Version::V2, 150, State::Backup);
        p.strict = true;
        let mut strict = Instance::new(p);
        replay(&mut strict, [Event::Startup, Event::MasterDownTimer]);
        assert_eq!(
            strict.handle(advert("10.0.0.2", 100)),
            vec![Action::HeardLowerPriority {
                from: ip("10.0.0.2"),
                priority: 100
            }],
            "lower_prio_no_advert: the next advert comes on time (the event is still told)"
        );
        assert_eq!(strict.state(), State::Master);
    }

    #[test]
    fn a_lower_priority_master_answering_for_the_vip_is_still_preempted() {
        let mut inst = instance(150, State::Backup);
        inst.handle(Event::Startup);
        // The lower master's adverts arrive (ignored: we preempt) and it answers for
        // the VIP, as it should: not a silent master behind a cut heartbeat.
        inst.handle(advert("10.0.0.2", 100));
        inst.handle(Event::VipElsewhere(true));
        assert!(!inst.takeover_blocked());
        assert_eq!(
            plain(inst.handle(Event::MasterDownTimer)),
            become_master(150, State::Backup)
        );
    }

    #[test]
    fn a_master_without_its_arbiter_advertises_priority_one_and_yields() {
        let mut inst = master(150);
        assert_eq!(
            inst.handle(Event::Arbiter(false)),
            vec![
                Action::SendAdvert { priority: 1 },
                Action::ArmAdvertTimer(us(1_000_000))
            ]
        );
        assert_eq!(inst.effective_priority(), 1);
        assert!(inst.handle(Event::Arbiter(false)).is_empty(), "no change");
        // A Backup that reaches the arbiter preempts it.
        let acts = inst.handle(advert(A2, 100));
        assert_eq!(inst.state(), State::Backup, "{acts:?}");
        // Back: its priority again, at the next advert it would send as Master.
        inst.handle(Event::Arbiter(true));
        assert_eq!(inst.effective_priority(), 150);
        // A lower master is outranked again while we have the arbiter: re-advertise.
        let mut m = master(150);
        m.handle(Event::Arbiter(false));
        m.handle(Event::Arbiter(true));
        assert_eq!(
            m.handle(advert(A2, 100))[0],
            Action::SendAdvert { priority: 150 }
        );
    }

    /// Two routers wired back to back: each SendAdvert reaches the other.
    #[test]
    fn two_routers_converge_and_fail_over() {
        let mut a = instance(100, State::Backup);
        let mut b_cfg = params(Version::V2, 200, State::Backup);
        b_cfg.primary_address = ip(A2);
        let mut b = Instance::new(b_cfg);
        let sent = |acts: &[Action]| {
            acts.iter().find_map(|a| match a {
                Action::SendAdvert { priority } => Some(*priority),
                _ => None,
            })
        };
        a.handle(Event::Startup);
        b.handle(Event::Startup);
        // a's timer fires first (a slow b): a becomes master.
        let acts = a.handle(Event::MasterDownTimer);
        let p = sent(&acts).unwrap();
        assert!(
            b.handle(advert(A1, p)).is_empty(),
            "b ignores the lower master"
        );
        let acts = b.handle(Event::MasterDownTimer);
        let p = sent(&acts).unwrap();
        let acts = a.handle(advert(A2, p));
        assert_eq!(a.state(), State::Backup, "{acts:?}");
        assert_eq!(b.state(), State::Master);
        // b shuts down: a takes over after its skew time only.
        let acts = b.handle(Event::Shutdown);
        let acts = a.handle(advert(A2, sent(&acts).unwrap()));
        assert_eq!(acts, vec![Action::ArmMasterDownTimer(a.skew_time())]);
        a.handle(Event::MasterDownTimer);
        assert_eq!(a.state(), State::Master);
    }
}
