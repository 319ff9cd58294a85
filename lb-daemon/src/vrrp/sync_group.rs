//! `vrrp_sync_group`: instances that change state together, with keepalived 2.2.7's rules
//! (`keepalived/vrrp/vrrp_sync.c`, the transition matrix in `vrrp_scheduler.c`, and
//! down_instance / try_up_instance):
//!
//! - a member going to FAULT takes every other member to FAULT (vrrp_sync_fault; a Master
//!   member sends priority 0 on the way);
//! - a member going MASTER → BACKUP, or FAULT → BACKUP, takes the others to BACKUP
//!   (vrrp_sync_backup);
//! - a member going BACKUP/FAULT → MASTER takes the others to MASTER (vrrp_sync_master);
//! - but a member only becomes MASTER on its own when every other member also wants MASTER
//!   (vrrp_sync_can_goto_master: "prefer backup state to avoid thrashing"), and only leaves
//!   FAULT when no member is faulty (try_up_instance counts `num_member_fault`). Members ask
//!   with [`Action::RequestState`]; the group answers with [`Event::Force`] to every member
//!   (keepalived's group state flips, and vrrp_sync_master moves them all).
//! - a forced transition moves nobody else: the force that caused it was sent to the
//!   whole group (keepalived: the group is already in that state).
//!
//! Pure like the instance machine. A driver whose instances run apart (one task each)
//! forwards every member's `Transition` to [`SyncGroup::on_transition`] (member states) and
//! every `RequestState` to [`SyncGroup::on_request`] ([`MemberStatus`] snapshots), and
//! delivers the answers as `Force` events; [`SyncGroup::update_state`] then gives the group
//! notify. Such a driver reads member states that lag the forces it has sent: it decides
//! through [`InFlight`], over the states its forces lead to. [`SyncGroup::dispatch`] does
//! all of it synchronously over a map of instances (the reference for the cascade, and
//! what the tests use).

use std::collections::{HashMap, VecDeque};

use super::fsm::{Action, Event, Instance};
use super::types::State;

/// What the group needs to know of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberStatus {
    pub state: State,
    /// keepalived's `wantstate == MASTER`.
    pub wants_master: bool,
    /// The member's own tracking reports a fault (not merely forced to FAULT by the group).
    pub faulty: bool,
}

impl From<&Instance> for MemberStatus {
    fn from(inst: &Instance) -> Self {
        Self {
            state: inst.state(),
            wants_master: inst.wants_master(),
            faulty: inst.is_faulty(),
        }
    }
}

/// The outcome of [`SyncGroup::dispatch`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cascade {
    /// Every member's actions, in order (the group's answers to `RequestState` are applied,
    /// not returned).
    pub actions: Vec<(String, Action)>,
    /// The group's own state change, for `notify GROUP <name> <STATE>` (Init: STOP).
    pub group_transition: Option<(State, State)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub name: String,
    members: Vec<String>,
    /// The last state derived by [`SyncGroup::update_state`].
    state: State,
}

impl SyncGroup {
    /// Members are instance names; duplicates are dropped (keepalived ignores an instance
    /// listed twice).
    pub fn new(name: impl Into<String>, members: impl IntoIterator<Item = String>) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for member in members {
            if !unique.contains(&member) {
                unique.push(member);
            }
        }
        Self {
            name: name.into(),
            members: unique,
            state: State::Init,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn contains(&self, member: &str) -> bool {
        self.members.iter().any(|m| m == member)
    }

    /// The group state as last derived by [`SyncGroup::update_state`].
    pub fn state(&self) -> State {
        self.state
    }

    /// The group state for these member states ([`group_state`]); `None` when none of the
    /// members is in `states`.
    pub fn group_state(&self, states: &HashMap<String, State>) -> Option<State> {
        let mut known = self
            .members
            .iter()
            .filter_map(|m| states.get(m))
            .copied()
            .peekable();
        known.peek()?;
        Some(group_state(known))
    }

    /// Given that `member` just made the transition `from` → `to`, the `Force` events the
    /// other members need. Members already in the target state are skipped, so forced
    /// transitions echoing back produce nothing (no ping-pong).
    pub fn on_transition(
        &self,
        member: &str,
        from: State,
        to: State,
        states: &HashMap<String, State>,
    ) -> Vec<(String, State)> {
        let Some(target) = sync_target(from, to) else {
            return Vec::new();
        };
        self.members
            .iter()
            .filter(|m| m.as_str() != member)
            .filter(|m| states.get(m.as_str()).is_some_and(|s| *s != target))
            .map(|m| (m.clone(), target))
            .collect()
    }

    /// A member's [`Action::RequestState`]: if the group agrees, the `Force`s that take it
    /// and every other member not already there to `want`; else nothing.
    pub fn on_request(
        &self,
        member: &str,
        want: State,
        members: &HashMap<String, MemberStatus>,
    ) -> Vec<(String, State)> {
        let others = || {
            self.members
                .iter()
                .filter(move |m| m.as_str() != member)
                .filter_map(|m| members.get(m.as_str()))
        };
        let agreed = match want {
            // vrrp_sync_can_goto_master: every other member wants MASTER.
            State::Master => others().all(|s| s.wants_master),
            // try_up_instance: no member still faulty.
            State::Backup => others().all(|s| !s.faulty),
            State::Init | State::Fault => false,
        };
        if !(agreed && self.contains(member)) {
            return Vec::new();
        }
        // The asking member first, as keepalived moves it and then syncs the others.
        let others = self
            .members
            .iter()
            .filter(|m| m.as_str() != member)
            .filter(|m| members.get(m.as_str()).is_some_and(|s| s.state != want));
        std::iter::once(member)
            .chain(others.map(String::as_str))
            .map(|m| (m.to_string(), want))
            .collect()
    }

    /// For a group formed (or re-formed) by a reload around members that ran on their
    /// own: the `Force`s that bring every running member to the group state of their
    /// current states — keepalived's reload takes the restored group state (MASTER only if
    /// every member was MASTER, FAULT if any was) and vrrp_init_state puts each member in
    /// it. Members in Init are left to their own startup.
    pub fn reconcile(&self, states: &HashMap<String, State>) -> Vec<(String, State)> {
        let Some(target) = self.group_state(states) else {
            return Vec::new();
        };
        self.members
            .iter()
            .filter(|m| {
                states
                    .get(m.as_str())
                    .is_some_and(|s| *s != State::Init && *s != target)
            })
            .map(|m| (m.clone(), target))
            .collect()
    }

    /// Re-derive the group state; the change, if any, is what keepalived reports with
    /// `notify GROUP <name> <STATE>` (Init meaning STOP). Call it once a cascade has settled.
    pub fn update_state(&mut self, states: &HashMap<String, State>) -> Option<(State, State)> {
        let next = self.group_state(states).unwrap_or(State::Init);
        let prev = std::mem::replace(&mut self.state, next);
        (prev != next).then_some((prev, next))
    }

    /// Deliver `event` to `member` and run the whole cascade: `Force`s from transitions and
    /// answers to requests, breadth first, until it settles. It always settles: every
    /// `Force` of a cascade aims at the same state, and a member already in it ignores it.
    pub fn dispatch(
        &mut self,
        instances: &mut HashMap<String, Instance>,
        member: &str,
        event: Event,
    ) -> Cascade {
        let mut cascade = Cascade::default();
        let mut queue = VecDeque::from([(member.to_string(), event)]);
        while let Some((name, event)) = queue.pop_front() {
            let Some(inst) = instances.get_mut(&name) else {
                continue;
            };
            let forced = matches!(event, Event::Force(_));
            for action in inst.handle(event) {
                let forces = match &action {
                    // A forced transition moves nobody: its force went to every member.
                    Action::Transition { .. } if forced => Vec::new(),
                    Action::Transition { from, to, .. } => {
                        self.on_transition(&name, *from, *to, &self.states(instances))
                    }
                    Action::RequestState(want) => {
                        self.on_request(&name, *want, &self.statuses(instances))
                    }
                    _ => Vec::new(),
                };
                queue.extend(forces.into_iter().map(|(m, s)| (m, Event::Force(s))));
                if !matches!(action, Action::RequestState(_)) {
                    cascade.actions.push((name.clone(), action));
                }
            }
        }
        cascade.group_transition = self.update_state(&self.states(instances));
        cascade
    }

    /// The states of the members present in `instances`.
    pub fn states(&self, instances: &HashMap<String, Instance>) -> HashMap<String, State> {
        self.members
            .iter()
            .filter_map(|m| instances.get(m).map(|inst| (m.clone(), inst.state())))
            .collect()
    }

    /// Snapshots of the members present in `instances`.
    pub fn statuses(&self, instances: &HashMap<String, Instance>) -> HashMap<String, MemberStatus> {
        self.members
            .iter()
            .filter_map(|m| {
                instances
                    .get(m)
                    .map(|inst| (m.clone(), MemberStatus::from(inst)))
            })
            .collect()
    }
}

/// The forces a driver whose members run apart (one task each) has sent and not yet seen
/// applied: the last one per member. Members read their commands in order, so the states
/// such a driver reads lag its own forces; a cascade decided on them alone can cross
/// another one (one member dragged to MASTER while the other falls back to BACKUP, each
/// seen still in its old state) and move the two in opposite directions for ever. Decided
/// over the states the forces in flight lead to, the second cascade overrides the first.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    last: HashMap<String, State>,
}

impl InFlight {
    /// A member's own transition (not forced): the forces that take the group to where it
    /// leads, over the states the forces in flight lead to. A force still on its way to
    /// that member itself is overridden too.
    pub fn on_transition(
        &mut self,
        group: &SyncGroup,
        member: &str,
        from: State,
        to: State,
        states: &HashMap<String, State>,
    ) -> Vec<(String, State)> {
        self.arrived(member, to);
        let mut now = states.clone();
        now.insert(member.to_string(), to);
        let lead_to = self.lead_to(&now);
        let mut moves = group.on_transition(member, from, to, &lead_to);
        if let Some(target) = sync_target(from, to) {
            if lead_to.get(member).is_some_and(|s| *s != target) {
                moves.push((member.to_string(), target));
            }
        }
        self.sent(&moves);
        moves
    }

    /// A member's request ([`SyncGroup::on_request`]), over the states the forces in
    /// flight lead to.
    pub fn on_request(
        &mut self,
        group: &SyncGroup,
        member: &str,
        want: State,
        statuses: &HashMap<String, MemberStatus>,
    ) -> Vec<(String, State)> {
        let mut view = statuses.clone();
        for (m, s) in &self.last {
            if let Some(status) = view.get_mut(m) {
                status.state = *s;
            }
        }
        let moves = group.on_request(member, want, &view);
        self.sent(&moves);
        moves
    }

    /// A member's forced transition to `to`: the force has arrived. It moves nobody.
    pub fn on_forced(&mut self, member: &str, to: State) {
        self.arrived(member, to);
    }

    /// Forces sent outside a cascade (a reload's reconcile, a member freed from FAULT).
    pub fn sent(&mut self, moves: &[(String, State)]) {
        for (m, s) in moves {
            self.last.insert(m.clone(), *s);
        }
    }

    /// A reload replaced the members' channels: nothing sent before will arrive.
    pub fn clear(&mut self) {
        self.last.clear();
    }

    fn arrived(&mut self, member: &str, to: State) {
        if self.last.get(member) == Some(&to) {
            self.last.remove(member);
        }
    }

    fn lead_to(&self, states: &HashMap<String, State>) -> HashMap<String, State> {
        let mut out = states.clone();
        for (m, s) in &self.last {
            if let Some(state) = out.get_mut(m) {
                *state = *s;
            }
        }
        out
    }
}

/// Which state a member's transition drags the others to (keepalived's TSM plus the
/// fault hooks). From Init (startup) only a fault propagates: vrrp_init_state starts every
/// member in FAULT when the group is. Going to Init (shutdown) propagates nothing.
fn sync_target(from: State, to: State) -> Option<State> {
    match (from, to) {
        (_, State::Fault) => Some(State::Fault),
        (State::Master | State::Fault, State::Backup) => Some(State::Backup),
        (State::Backup | State::Fault, State::Master) => Some(State::Master),
        _ => None,
    }
}

/// The group state from its members' states (keepalived keeps `sgroup->state` in step with
/// its syncs; this derives the same once a cascade has settled): FAULT if any member is,
/// MASTER if all running members are, INIT if none runs, else BACKUP. Members in Init (not
/// started, or stopped) don't count, so a group stopping one member at a time stays in its
/// state until the last one stops.
pub fn group_state(states: impl IntoIterator<Item = State>) -> State {
    let mut running = states.into_iter().filter(|s| *s != State::Init).peekable();
    if running.peek().is_none() {
        return State::Init;
    }
    let mut all_master = true;
    for state in running {
        if state == State::Fault {
            return State::Fault;
        }
        all_master &= state == State::Master;
    }
    if all_master {
        State::Master
    } else {
        State::Backup
    }
}

#[cfg(test)]
mod tests {
    use super::super::fsm::Params;
    use super::super::types::Version;
    use super::*;
    use std::time::Duration;

    fn member(name: &str, priority: u8) -> Instance {
        Instance::new(Params {
            name: name.into(),
            version: Version::V2,
            vrid: 51,
            priority,
            advert_interval_cs: 100,
            initial_state: State::Backup,
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address: "10.0.0.1".parse().unwrap(),
            in_sync_group: true,
            strict: false,
        })
    }

    fn states(pairs: &[(&str, State)]) -> HashMap<String, State> {
        pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn a_group_formed_by_reload_takes_its_members_to_the_group_state() {
        use State::*;
        let g = SyncGroup::new("G1", ["a", "b", "c"].map(String::from));
        // All masters: a master group, nobody moves (the VIPs stay).
        assert!(g
            .reconcile(&states(&[("a", Master), ("b", Master), ("c", Master)]))
            .is_empty());
        // Mixed: a BACKUP group; the masters step down and will ask to come back together.
        assert_eq!(
            g.reconcile(&states(&[("a", Master), ("b", Backup), ("c", Master)])),
            vec![("a".to_string(), Backup), ("c".to_string(), Backup)]
        );
        // A faulty member: every running member to FAULT; a member not started is left alone.
        assert_eq!(
            g.reconcile(&states(&[("a", Master), ("b", Fault), ("c", Init)])),
            vec![("a".to_string(), Fault)]
        );
        // No member running: nothing to do.
        assert!(g.reconcile(&states(&[("a", Init)])).is_empty());
        assert!(g.reconcile(&HashMap::new()).is_empty());
    }

    struct Lab {
        group: SyncGroup,
        instances: HashMap<String, Instance>,
    }

    impl Lab {
        fn new(names: &[&str]) -> Self {
            let group = SyncGroup::new("G1", names.iter().map(|n| n.to_string()));
            let instances = names
                .iter()
                .map(|n| (n.to_string(), member(n, 100)))
                .collect();
            Self { group, instances }
        }

        fn send(&mut self, member: &str, event: Event) -> Cascade {
            self.group.dispatch(&mut self.instances, member, event)
        }

        /// Start every member; then let each master-down timer fire, so all are Master.
        fn all_master(names: &[&str]) -> Self {
            let mut lab = Self::new(names);
            for n in names {
                lab.send(n, Event::Startup);
            }
            for n in names {
                lab.send(n, Event::MasterDownTimer);
            }
            assert_eq!(lab.states(), vec![State::Master; names.len()]);
            lab
        }

        fn states(&self) -> Vec<State> {
            self.group
                .members()
                .iter()
                .map(|m| self.instances[m].state())
                .collect()
        }

        fn states_map(&self) -> HashMap<String, State> {
            self.group.states(&self.instances)
        }
    }

    fn fault(faulty: bool) -> Event {
        Event::Fault {
            faulty,
            reason: "track_script chk_lb".into(),
        }
    }

    fn transitions(c: &Cascade) -> Vec<(&str, State, State)> {
        c.actions
            .iter()
            .filter_map(|(m, a)| match a {
                Action::Transition { from, to, .. } => Some((m.as_str(), *from, *to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn startup_notifies_group_backup() {
        let mut lab = Lab::new(&["VI_1", "VI_2"]);
        assert_eq!(
            lab.send("VI_1", Event::Startup).group_transition,
            Some((State::Init, State::Backup))
        );
        assert_eq!(lab.send("VI_2", Event::Startup).group_transition, None);
    }

    #[test]
    fn master_waits_until_every_member_wants_it() {
        let mut lab = Lab::new(&["VI_1", "VI_2", "VI_3"]);
        for m in ["VI_1", "VI_2", "VI_3"] {
            lab.send(m, Event::Startup);
        }
        let c = lab.send("VI_1", Event::MasterDownTimer);
        // Held in Backup with a fresh down timer; the request isn't an IO action.
        assert_eq!(
            c.actions,
            vec![(
                "VI_1".to_string(),
                Action::ArmMasterDownTimer(Duration::from_micros(3_609_375))
            )]
        );
        let c = lab.send("VI_2", Event::MasterDownTimer);
        assert!(transitions(&c).is_empty(), "VI_3 still hears its master");
        assert_eq!(lab.states(), vec![State::Backup; 3]);
        let c = lab.send("VI_3", Event::MasterDownTimer);
        assert_eq!(
            transitions(&c),
            vec![
                ("VI_3", State::Backup, State::Master),
                ("VI_1", State::Backup, State::Master),
                ("VI_2", State::Backup, State::Master)
            ]
        );
        assert!(c
            .actions
            .contains(&("VI_1".to_string(), Action::CancelMasterDownTimer)));
        assert_eq!(c.group_transition, Some((State::Backup, State::Master)));
    }

    #[test]
    fn hearing_a_master_withdraws_the_wish() {
        let mut lab = Lab::new(&["VI_1", "VI_2"]);
        lab.send("VI_1", Event::Startup);
        lab.send("VI_2", Event::Startup);
        lab.send("VI_1", Event::MasterDownTimer);
        lab.send(
            "VI_1",
            Event::Advert {
                from: "10.0.0.9".parse().unwrap(),
                priority: 200,
                interval_cs: 100,
            },
        );
        // Only VI_2 lost its master: the group prefers Backup to thrashing.
        let c = lab.send("VI_2", Event::MasterDownTimer);
        assert!(transitions(&c).is_empty());
        assert_eq!(lab.states(), vec![State::Backup, State::Backup]);
    }

    #[test]
    fn fault_propagates_and_masters_send_priority_zero() {
        let mut lab = Lab::all_master(&["VI_1", "VI_2", "VI_3"]);
        let c = lab.send("VI_2", fault(true));
        assert_eq!(
            transitions(&c),
            vec![
                ("VI_2", State::Master, State::Fault),
                ("VI_1", State::Master, State::Fault),
                ("VI_3", State::Master, State::Fault)
            ]
        );
        let zeros = c
            .actions
            .iter()
            .filter(|(_, a)| *a == Action::SendAdvert { priority: 0 })
            .count();
        assert_eq!(zeros, 3);
        assert_eq!(c.group_transition, Some((State::Master, State::Fault)));
    }

    #[test]
    fn recovery_waits_for_every_faulty_member() {
        let mut lab = Lab::all_master(&["VI_1", "VI_2"]);
        lab.send("VI_1", fault(true));
        lab.send("VI_2", fault(true));
        let c = lab.send("VI_1", fault(false));
        assert!(c.actions.is_empty(), "VI_2 still faulty: {c:?}");
        assert_eq!(lab.states(), vec![State::Fault, State::Fault]);
        let c = lab.send("VI_2", fault(false));
        assert_eq!(
            transitions(&c),
            vec![
                ("VI_2", State::Fault, State::Backup),
                ("VI_1", State::Fault, State::Backup)
            ]
        );
        assert_eq!(c.group_transition, Some((State::Fault, State::Backup)));
    }

    #[test]
    fn backup_propagates_without_priority_zero() {
        let mut lab = Lab::all_master(&["VI_1", "VI_2"]);
        let c = lab.send(
            "VI_1",
            Event::Advert {
                from: "10.0.0.9".parse().unwrap(),
                priority: 200,
                interval_cs: 100,
            },
        );
        assert_eq!(
            transitions(&c),
            vec![
                ("VI_1", State::Master, State::Backup),
                ("VI_2", State::Master, State::Backup)
            ]
        );
        assert!(!c
            .actions
            .iter()
            .any(|(_, a)| *a == Action::SendAdvert { priority: 0 }));
        assert!(c
            .actions
            .contains(&("VI_2".to_string(), Action::RemoveVips)));
        assert_eq!(c.group_transition, Some((State::Master, State::Backup)));
    }

    #[test]
    fn no_ping_pong_members_already_in_state_are_skipped() {
        let lab = Lab::all_master(&["VI_1", "VI_2"]);
        let states = lab.states_map();
        // A forced transition echoing back asks nothing of anyone.
        assert!(lab
            .group
            .on_transition("VI_2", State::Backup, State::Master, &states)
            .is_empty());
        let mut inst = lab.instances["VI_1"].clone();
        assert!(inst.handle(Event::Force(State::Master)).is_empty());
    }

    #[test]
    fn each_member_transitions_once_per_cascade() {
        let mut lab = Lab::all_master(&["A", "B", "C", "D"]);
        let c = lab.send("C", fault(true));
        assert_eq!(transitions(&c).len(), 4);
        let c = lab.send("C", fault(false));
        assert_eq!(transitions(&c).len(), 4);
        assert_eq!(lab.states(), vec![State::Backup; 4]);
    }

    #[test]
    fn a_member_starting_faulty_holds_the_others_in_fault() {
        let mut lab = Lab::new(&["VI_1", "VI_2"]);
        lab.send("VI_1", fault(true));
        let c = lab.send("VI_1", Event::Startup);
        assert_eq!(transitions(&c), vec![("VI_1", State::Init, State::Fault)]);
        let c = lab.send("VI_2", Event::Startup);
        assert_eq!(transitions(&c), vec![("VI_2", State::Init, State::Fault)]);
        let c = lab.send("VI_1", fault(false));
        assert_eq!(lab.states(), vec![State::Backup, State::Backup], "{c:?}");
    }

    #[test]
    fn on_transition_targets() {
        let g = SyncGroup::new("G1", ["VI_1", "VI_2"].map(String::from));
        let mut states = HashMap::from([
            ("VI_1".to_string(), State::Fault),
            ("VI_2".to_string(), State::Master),
        ]);
        let to = |s: State| vec![("VI_2".to_string(), s)];
        assert_eq!(
            g.on_transition("VI_1", State::Master, State::Fault, &states),
            to(State::Fault)
        );
        assert_eq!(
            g.on_transition("VI_1", State::Init, State::Fault, &states),
            to(State::Fault)
        );
        assert!(g
            .on_transition("VI_1", State::Master, State::Init, &states)
            .is_empty());
        assert!(g
            .on_transition("VI_1", State::Init, State::Backup, &states)
            .is_empty());
        assert!(g
            .on_transition("VI_1", State::Init, State::Master, &states)
            .is_empty());
        assert_eq!(
            g.on_transition("VI_1", State::Master, State::Backup, &states),
            to(State::Backup)
        );
        assert_eq!(
            g.on_transition("VI_1", State::Fault, State::Backup, &states),
            to(State::Backup)
        );
        states.insert("VI_2".into(), State::Backup);
        assert!(g
            .on_transition("VI_1", State::Fault, State::Backup, &states)
            .is_empty());
        assert_eq!(
            g.on_transition("VI_1", State::Backup, State::Master, &states),
            to(State::Master)
        );
        assert_eq!(
            g.on_transition("VI_1", State::Fault, State::Master, &states),
            to(State::Master)
        );
        // Unknown members aren't forced.
        states.remove("VI_2");
        assert!(g
            .on_transition("VI_1", State::Master, State::Fault, &states)
            .is_empty());
    }

    #[test]
    fn crossing_cascades_settle_through_the_forces_in_flight() {
        use State::{Backup, Master};
        // Members that run apart: the driver reads states that lag its own forces.
        let g = SyncGroup::new("G", ["VI_1", "VI_2"].map(String::from));
        let mut in_flight = InFlight::default();
        let states = |a, b| HashMap::from([("VI_1".to_string(), a), ("VI_2".to_string(), b)]);
        let wanting = |state| MemberStatus {
            state,
            wants_master: true,
            faulty: false,
        };
        let statuses = HashMap::from([
            ("VI_1".to_string(), wanting(Backup)),
            ("VI_2".to_string(), wanting(Backup)),
        ]);
        let moves = |v: &[(&str, State)]| {
            v.iter()
                .map(|(m, s)| (m.to_string(), *s))
                .collect::<Vec<_>>()
        };
        // Both want MASTER; VI_1 asks and the whole group is sent to MASTER.
        assert_eq!(
            in_flight.on_request(&g, "VI_1", Master, &statuses),
            moves(&[("VI_1", Master), ("VI_2", Master)])
        );
        // VI_1 gets there, then hears a better master and falls back while VI_2's force
        // is still on its way: VI_2, seen in BACKUP, is sent to BACKUP after it.
        in_flight.on_forced("VI_1", Master);
        assert_eq!(
            in_flight.on_transition(&g, "VI_1", Master, Backup, &states(Backup, Backup)),
            moves(&[("VI_2", Backup)])
        );
        // VI_2 applies both in order; forced transitions move nobody, so nothing bounces
        // back to VI_1 (which would then fall back again, for ever).
        in_flight.on_forced("VI_2", Master);
        in_flight.on_forced("VI_2", Backup);
        // Nothing in flight any more: a later transition decides on the true states.
        assert_eq!(
            in_flight.on_transition(&g, "VI_2", Backup, Master, &states(Backup, Backup)),
            moves(&[("VI_1", Master)])
        );
    }

    #[test]
    fn a_force_on_its_way_to_the_member_that_moves_is_overridden() {
        use State::{Backup, Fault, Master};
        let g = SyncGroup::new("G", ["VI_1", "VI_2"].map(String::from));
        let mut in_flight = InFlight::default();
        in_flight.sent(&[("VI_1".to_string(), Master), ("VI_2".to_string(), Master)]);
        // Before its force arrives VI_1 faults on its own: both go to FAULT, VI_1 too
        // (after the MASTER force still queued for it).
        let states = HashMap::from([("VI_1".to_string(), Backup), ("VI_2".to_string(), Backup)]);
        assert_eq!(
            in_flight.on_transition(&g, "VI_1", Backup, Fault, &states),
            vec![("VI_2".to_string(), Fault), ("VI_1".to_string(), Fault)]
        );
        in_flight.clear();
        assert!(in_flight.last.is_empty());
    }

    #[test]
    fn on_request_rules() {
        let lab = Lab::new(&["VI_1", "VI_2"]);
        let status = |state, wants_master, faulty| MemberStatus {
            state,
            wants_master,
            faulty,
        };
        let mut statuses = HashMap::from([
            ("VI_1".to_string(), status(State::Backup, true, false)),
            ("VI_2".to_string(), status(State::Backup, false, false)),
        ]);
        let g = &lab.group;
        assert!(g.on_request("VI_1", State::Master, &statuses).is_empty());
        statuses.get_mut("VI_2").unwrap().wants_master = true;
        assert_eq!(
            g.on_request("VI_1", State::Master, &statuses),
            vec![
                ("VI_1".to_string(), State::Master),
                ("VI_2".to_string(), State::Master)
            ]
        );
        statuses.insert("VI_2".into(), status(State::Fault, false, true));
        assert!(g.on_request("VI_1", State::Backup, &statuses).is_empty());
        statuses.get_mut("VI_2").unwrap().faulty = false;
        assert_eq!(
            g.on_request("VI_1", State::Backup, &statuses),
            vec![
                ("VI_1".to_string(), State::Backup),
                ("VI_2".to_string(), State::Backup)
            ]
        );
        assert!(g.on_request("nobody", State::Backup, &statuses).is_empty());
    }

    #[test]
    fn group_state_derivation() {
        use State::*;
        assert_eq!(group_state([Master, Master]), Master);
        assert_eq!(group_state([Master, Backup]), Backup);
        assert_eq!(group_state([Master, Fault]), Fault);
        assert_eq!(group_state([Backup, Backup]), Backup);
        assert_eq!(group_state([Init, Master]), Master);
        assert_eq!(group_state([Init, Init]), Init);
        assert_eq!(group_state([]), Init);
        let g = SyncGroup::new("G1", ["VI_1", "VI_2"].map(String::from));
        let states = |v: &[(&str, State)]| v.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        assert_eq!(g.group_state(&states(&[])), None);
        assert_eq!(g.group_state(&states(&[("other", Fault)])), None);
        assert_eq!(
            g.group_state(&states(&[("VI_1", Master), ("other", Fault)])),
            Some(Master)
        );
        assert_eq!(
            g.group_state(&states(&[("VI_1", Master), ("VI_2", Fault)])),
            Some(Fault)
        );
    }

    #[test]
    fn shutdown_reports_the_group_stopping_once() {
        let mut lab = Lab::all_master(&["VI_1", "VI_2"]);
        assert_eq!(lab.send("VI_1", Event::Shutdown).group_transition, None);
        assert_eq!(
            lab.instances["VI_2"].state(),
            State::Master,
            "shutdown doesn't propagate"
        );
        assert_eq!(
            lab.send("VI_2", Event::Shutdown).group_transition,
            Some((State::Master, State::Init))
        );
    }

    #[test]
    fn duplicate_members_are_dropped() {
        let g = SyncGroup::new("G", ["a", "b", "a"].map(String::from));
        assert_eq!(g.members(), ["a", "b"]);
        assert!(g.contains("b") && !g.contains("c"));
        assert_eq!(g.name(), "G");
    }
}
