//! Split brain: another node holds our virtual addresses while we are MASTER (the
//! heartbeat between the two broke: a cable, a firewall dropping protocol 112, a NIC).
//!
//! Pure, like [`super::fsm`]: the instance task feeds it what it saw ([`Evidence`]) and the
//! end of each probe round; it answers with [`Change`]s (an episode began or ended) and,
//! on a beginning, a [`Verdict`] from [`verdict`]: step down or stay.
//!
//! Two kinds of evidence:
//! - a probe of one of our VIPs (ARP who-has with the VIP as target and our address as
//!   sender) answered from another MAC: another node holds the VIP;
//! - adverts from another MASTER of our virtual router that did not step down although we
//!   outrank it (it cannot hear us: a one-way heartbeat). One such advert is normal (two
//!   masters meeting, the lower leaves at once); [`FOREIGN_ADVERTS_FOR_EPISODE`] within one
//!   probe round is a split brain.
//!
//! Resolution ([`Resolution`]): the lower priority (then the lower primary address, the
//! VRRP tie-break) steps down; a node that does not know the other's priority stays (two
//! nodes both stepping down would leave the VIP unheld and flap). Or nobody moves and the
//! operator is alerted.

use std::{cmp::Ordering, fmt, net::IpAddr};

use super::fsm::compare_addresses;

/// Adverts from the same foreign master within one probe round that make an episode.
pub const FOREIGN_ADVERTS_FOR_EPISODE: u32 = 2;

/// What to do about a split brain (`split_brain_resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolution {
    /// The node that ranks lower by (priority, primary address) steps down to BACKUP and
    /// stays there while the other node still answers for the VIP.
    StepDown,
    /// Both stay MASTER; only logs, metrics and the notify hook.
    #[default]
    Alert,
}

impl Resolution {
    pub fn word(self) -> &'static str {
        match self {
            Resolution::StepDown => "step_down",
            Resolution::Alert => "alert",
        }
    }
}

/// A node's rank in the VRRP election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    pub priority: u8,
    pub address: IpAddr,
}

/// What was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A probe (or a gratuitous announcement) for `vip` came from another MAC.
    VipAnswered { vip: IpAddr, mac: [u8; 6] },
    /// An advert from another MASTER that keeps advertising although we outrank it.
    ForeignMaster { from: IpAddr, priority: u8 },
}

/// One split-brain episode: who the other node is, as far as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// The VIP answered from `peer_mac` (ARP evidence).
    pub vip: Option<IpAddr>,
    pub peer_mac: Option<[u8; 6]>,
    /// The other node's rank: from its adverts (this episode's, or the last master we
    /// heard before the heartbeat broke).
    pub peer: Option<Rank>,
}

impl fmt::Display for Episode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(peer) = self.peer {
            parts.push(format!(
                "node {} (priority {})",
                peer.address, peer.priority
            ));
        }
        if let Some(mac) = self.peer_mac {
            parts.push(format!("MAC {}", mac_text(mac)));
        }
        if let Some(vip) = self.vip {
            parts.push(format!("answering for {vip}"));
        }
        if parts.is_empty() {
            f.write_str("another node")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the instance does about an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    StepDown,
    Stay,
}

/// Whether we step down: only with [`Resolution::StepDown`], only when the other node's
/// rank is known, and only when it outranks us (VRRP's order: priority, then address).
pub fn verdict(resolution: Resolution, ours: Rank, peer: Option<Rank>) -> Verdict {
    let Some(peer) = peer else {
        return Verdict::Stay;
    };
    if resolution == Resolution::Alert || peer.address == ours.address {
        return Verdict::Stay;
    }
    match peer
        .priority
        .cmp(&ours.priority)
        .then(compare_addresses(peer.address, ours.address))
    {
        Ordering::Greater => Verdict::StepDown,
        Ordering::Less | Ordering::Equal => Verdict::Stay,
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Began(Episode),
    Ended(Episode),
}

/// Episodes and counts for one instance.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    active: Option<Episode>,
    /// Evidence was seen during the current probe round.
    seen_this_round: bool,
    /// Adverts from a foreign master this round: (address, priority, count).
    foreign: Option<(IpAddr, u8, u32)>,
    episodes: u64,
}

impl Detector {
    pub fn active(&self) -> Option<&Episode> {
        self.active.as_ref()
    }

    /// Episodes begun since start (`lb_vrrp_split_brain_total`).
    pub fn episodes(&self) -> u64 {
        self.episodes
    }

    /// Something was seen. `last_master` is the last master heard before (the peer's rank
    /// when the ARP evidence alone does not tell it).
    pub fn observe(&mut self, ev: Evidence, last_master: Option<Rank>) -> Option<Change> {
        let episode = match ev {
            Evidence::VipAnswered { vip, mac } => {
                self.seen_this_round = true;
                Episode {
                    vip: Some(vip),
                    peer_mac: Some(mac),
                    peer: last_master,
                }
            }
            Evidence::ForeignMaster { from, priority } => {
                let count = match self.foreign {
                    Some((a, _, n)) if a == from => n + 1,
                    _ => 1,
                };
                self.foreign = Some((from, priority, count));
                if count < FOREIGN_ADVERTS_FOR_EPISODE && self.active.is_none() {
                    return None;
                }
                self.seen_this_round = true;
                Episode {
                    vip: None,
                    peer_mac: None,
                    peer: Some(Rank {
                        priority,
                        address: from,
                    }),
                }
            }
        };
        match &mut self.active {
            Some(active) => {
                // Learn more about the ongoing episode; nothing new begins.
                active.vip = active.vip.or(episode.vip);
                active.peer_mac = active.peer_mac.or(episode.peer_mac);
                active.peer = episode.peer.or(active.peer);
                None
            }
            None => {
                self.episodes += 1;
                self.active = Some(episode.clone());
                Some(Change::Began(episode))
            }
        }
    }

    /// A probe round ended: a round without evidence ends the episode.
    pub fn round_over(&mut self) -> Option<Change> {
        let seen = std::mem::take(&mut self.seen_this_round);
        if let Some((a, p, _)) = self.foreign {
            self.foreign = Some((a, p, 0));
        }
        if seen {
            return None;
        }
        self.active.take().map(Change::Ended)
    }

    /// Probing stopped (we left MASTER and are not holding back): any episode ends.
    pub fn reset(&mut self) -> Option<Change> {
        self.seen_this_round = false;
        self.foreign = None;
        self.active.take().map(Change::Ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rank(priority: u8, address: &str) -> Rank {
        Rank {
            priority,
            address: ip(address),
        }
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    #[test]
    fn lower_priority_then_lower_address_steps_down() {
        let me = rank(100, "10.0.0.1");
        let s = Resolution::StepDown;
        assert_eq!(
            verdict(s, me, Some(rank(150, "10.0.0.2"))),
            Verdict::StepDown
        );
        assert_eq!(verdict(s, me, Some(rank(50, "10.0.0.2"))), Verdict::Stay);
        assert_eq!(
            verdict(s, me, Some(rank(100, "10.0.0.2"))),
            Verdict::StepDown,
            "equal priority: the higher address wins"
        );
        assert_eq!(verdict(s, me, Some(rank(100, "10.0.0.0"))), Verdict::Stay);
        assert_eq!(verdict(s, me, None), Verdict::Stay, "unknown peer: stay");
        assert_eq!(verdict(s, me, Some(me)), Verdict::Stay, "ourselves");
        assert_eq!(
            verdict(Resolution::Alert, me, Some(rank(150, "10.0.0.2"))),
            Verdict::Stay
        );
    }

    #[test]
    fn the_two_nodes_never_both_step_down() {
        let a = rank(150, "10.0.0.1");
        let b = rank(100, "10.0.0.2");
        for (ka, kb) in [
            (Some(b), Some(a)),
            (None, Some(a)),
            (Some(b), None),
            (None, None),
        ] {
            let both = verdict(Resolution::StepDown, a, ka) == Verdict::StepDown
                && verdict(Resolution::StepDown, b, kb) == Verdict::StepDown;
            assert!(!both, "{ka:?} {kb:?}");
        }
    }

    #[test]
    fn an_answered_probe_begins_an_episode_and_a_quiet_round_ends_it() {
        let mut d = Detector::default();
        let vip = ip("198.18.0.100");
        let last = Some(rank(150, "198.18.0.11"));
        let began = d.observe(Evidence::VipAnswered { vip, mac: MAC }, last);
        let episode = Episode {
            vip: Some(vip),
            peer_mac: Some(MAC),
            peer: last,
        };
        assert_eq!(began, Some(Change::Began(episode.clone())));
        assert_eq!(
            episode.to_string(),
            "node 198.18.0.11 (priority 150), MAC 02:00:00:00:00:02, answering for 198.18.0.100"
        );
        assert_eq!(
            d.observe(Evidence::VipAnswered { vip, mac: MAC }, last),
            None
        );
        assert_eq!(d.round_over(), None, "evidence in this round");
        assert_eq!(d.round_over(), Some(Change::Ended(episode)));
        assert_eq!(d.round_over(), None);
        assert_eq!(d.episodes(), 1);
    }

    #[test]
    fn one_foreign_master_advert_is_an_election_two_are_a_split_brain() {
        let mut d = Detector::default();
        let ev = Evidence::ForeignMaster {
            from: ip("10.0.0.2"),
            priority: 50,
        };
        assert_eq!(d.observe(ev.clone(), None), None);
        assert_eq!(d.round_over(), None, "nothing began");
        assert_eq!(
            d.observe(ev.clone(), None),
            None,
            "the count restarts per round"
        );
        let began = d.observe(ev.clone(), None);
        assert!(matches!(
            began,
            Some(Change::Began(Episode { peer: Some(r), .. })) if r == rank(50, "10.0.0.2")
        ));
        // Within an episode a single advert keeps it going.
        d.round_over();
        assert_eq!(d.observe(ev, None), None);
        assert_eq!(d.round_over(), None);
        assert!(matches!(d.round_over(), Some(Change::Ended(_))));
    }

    #[test]
    fn reset_ends_an_episode() {
        let mut d = Detector::default();
        d.observe(
            Evidence::VipAnswered {
                vip: ip("198.18.0.100"),
                mac: MAC,
            },
            None,
        );
        assert!(matches!(d.reset(), Some(Change::Ended(_))));
        assert_eq!(d.reset(), None);
    }
}
