//! Which links are up, kept from rtnetlink's link events (`RTNLGRP_LINK`), as keepalived
//! tracks interfaces: a change reaches VRRP's tracking at once and nothing polls `/sys`
//! (ten reads a second per instance were a visible part of an idle backup's CPU).

use std::{collections::HashMap, time::Duration};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{
    link::{LinkAttribute, LinkFlags, LinkMessage, State},
    RouteNetlinkMessage,
};
use tokio::sync::watch;
use tracing::warn;

use super::link::name;

/// Interface name -> up (administratively up, and operationally up or unknown, as
/// `ip link` shows `UP` / `UNKNOWN`). A link that does not exist is absent: down.
pub type LinkStates = HashMap<String, bool>;

/// A full dump this often as well, in case events were lost (a full socket buffer).
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Whether `msg` describes a link that is up (pure).
pub fn is_up(msg: &LinkMessage) -> bool {
    let admin = msg.header.flags.contains(LinkFlags::Up);
    let oper = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    });
    admin && matches!(oper, Some(State::Up | State::Unknown) | None)
}

/// Applies one event to the states (pure): a new or changed link, or a removed one.
pub fn apply(states: &mut LinkStates, msg: &RouteNetlinkMessage) -> bool {
    match msg {
        RouteNetlinkMessage::NewLink(l) => match name(l) {
            Some(n) => states.insert(n, is_up(l)) != Some(is_up(l)),
            None => false,
        },
        RouteNetlinkMessage::DelLink(l) => name(l).is_some_and(|n| states.remove(&n).is_some()),
        _ => false,
    }
}

/// Starts watching (in the calling thread's network namespace): subscribes first, then
/// dumps, so no change falls between the two. `None` when rtnetlink cannot be opened
/// (the caller falls back to reading `/sys`).
pub async fn start() -> Option<watch::Receiver<LinkStates>> {
    let opened = {
        // The socket registers with the runtime's reactor.
        let _guard = tokio::runtime::Handle::current().enter();
        rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
    };
    let (connection, handle, mut events) = match opened {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot subscribe to link events: interfaces are polled instead");
            return None;
        }
    };
    tokio::spawn(connection);
    let mut states = match dump(&handle).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot list the links: interfaces are polled instead");
            return None;
        }
    };
    let (tx, rx) = watch::channel(states.clone());
    tokio::spawn(async move {
        let mut resync =
            tokio::time::interval_at(tokio::time::Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some((msg, _)) = event else {
                        warn!("the link-event socket closed: link states are no longer updated");
                        return;
                    };
                    if let NetlinkPayload::InnerMessage(m) = msg.payload {
                        if apply(&mut states, &m) {
                            tx.send_replace(states.clone());
                        }
                    }
                }
                _ = resync.tick() => match dump(&handle).await {
                    Ok(fresh) if fresh != states => {
                        states = fresh;
                        tx.send_replace(states.clone());
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "re-listing the links failed"),
                },
                () = tx.closed() => return,
            }
        }
    });
    Some(rx)
}

async fn dump(handle: &rtnetlink::Handle) -> Result<LinkStates, rtnetlink::Error> {
    handle
        .link()
        .get()
        .execute()
        .try_filter_map(|l| async move { Ok(name(&l).map(|n| (n, is_up(&l)))) })
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, admin_up: bool, oper: Option<State>) -> LinkMessage {
        let mut msg = LinkMessage::default();
        if admin_up {
            msg.header.flags = LinkFlags::Up;
        }
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(s) = oper {
            msg.attributes.push(LinkAttribute::OperState(s));
        }
        msg
    }

    #[test]
    fn up_means_administratively_up_and_operationally_up_or_unknown() {
        assert!(is_up(&link("eth0", true, Some(State::Up))));
        // Loopback, ifb and tunnels report UNKNOWN.
        assert!(is_up(&link("lo", true, Some(State::Unknown))));
        assert!(!is_up(&link("eth0", true, Some(State::Down))));
        assert!(!is_up(&link("eth0", true, Some(State::LowerLayerDown))));
        assert!(!is_up(&link("eth0", false, Some(State::Up))));
    }

    /// In a namespace: the watcher lists the links, then follows a veth going down (its
    /// peer loses carrier too), up, and away, without polling.
    #[test]
    fn the_watcher_follows_real_links() {
        use crate::netns::{veth, Netns};
        let a = Netns::new("lwa").unwrap();
        let b = Netns::new("lwb").unwrap();
        veth(&a, "w0", &b, "w1").unwrap();
        let seen = a.run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(async move {
                    let mut rx = start().await.expect("link events");
                    let mut seen = vec![rx.borrow().get("w0").copied()];
                    let wait = |want: Option<bool>, rx: &mut watch::Receiver<LinkStates>| {
                        let mut rx = rx.clone();
                        async move {
                            let deadline = std::time::Duration::from_secs(5);
                            tokio::time::timeout(deadline, async {
                                while rx.borrow_and_update().get("w0").copied() != want {
                                    rx.changed().await.expect("watcher alive");
                                }
                            })
                            .await
                            .is_ok()
                            .then_some(want)
                            .flatten()
                        }
                    };
                    for (cmd, want) in [
                        ("ip link set w0 down", Some(false)),
                        ("ip link set w0 up", Some(true)),
                    ] {
                        std::process::Command::new("sh")
                            .args(["-c", cmd])
                            .status()
                            .expect(cmd);
                        seen.push(wait(want, &mut rx).await);
                    }
                    std::process::Command::new("sh")
                        .args(["-c", "ip link del w0"])
                        .status()
                        .expect("ip link del");
                    let gone = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        while rx.borrow_and_update().contains_key("w0") {
                            rx.changed().await.expect("watcher alive");
                        }
                    })
                    .await
                    .is_ok();
                    (seen, gone)
                })
        });
        assert_eq!(seen.0, vec![Some(true), Some(false), Some(true)]);
        assert!(seen.1, "a deleted link leaves the states");
    }

    #[test]
    fn events_change_the_states_and_say_when_they_did() {
        let mut states = LinkStates::new();
        let up = RouteNetlinkMessage::NewLink(link("eth0", true, Some(State::Up)));
        let down = RouteNetlinkMessage::NewLink(link("eth0", true, Some(State::Down)));
        assert!(apply(&mut states, &up));
        assert!(
            !apply(&mut states, &up),
            "the same state again is no change"
        );
        assert_eq!(states.get("eth0"), Some(&true));
        assert!(apply(&mut states, &down));
        assert_eq!(states.get("eth0"), Some(&false));
        let gone = RouteNetlinkMessage::DelLink(link("eth0", false, None));
        assert!(apply(&mut states, &gone));
        assert!(!states.contains_key("eth0"));
        assert!(!apply(&mut states, &gone));
    }
}
