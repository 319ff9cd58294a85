//! Routes and rules that follow VRRP: an instance's `virtual_routes` / `virtual_rules`
//! (added on becoming MASTER, after its addresses; removed on leaving it, before them),
//! and the `[static]` addresses, routes and rules (added at start, removed at a graceful
//! stop), as keepalived 2.2.7 does (`vrrp_handle_iproutes`, `vrrp_handle_iprules`,
//! `vrrp_daemon.c`). Failures are logged and never stop VRRP (keepalived logs them too).
//! A static address or route whose interface comes (back) up is added again
//! (keepalived's `static_track_group_reinstate_config`): the kernel drops a downed
//! link's IPv4 routes and IPv6 addresses; a static route deleted while its link is up
//! is added again too ([`keep_statics`]).

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{route::RouteMessage, RouteNetlinkMessage};
use rtnetlink::MulticastGroup;
use tokio::sync::watch;
use tracing::{info, warn};

use super::vip::{Vip, VipManager};
use crate::config::{IpRoute, IpRule, StaticNetwork};
use crate::net::link_watch::LinkStates;
use crate::net::route;

/// Adds `routes` then `rules` (a rule may point at a table the routes fill).
pub async fn install(handle: &rtnetlink::Handle, who: &str, routes: &[IpRoute], rules: &[IpRule]) {
    for r in routes {
        match route::add_route(handle, r).await {
            Ok(()) => info!(%who, route = %r, "route added"),
            Err(e) => warn!(%who, error = %e, "adding a route failed"),
        }
    }
    for r in rules {
        match route::add_rule(handle, r).await {
            Ok(()) => info!(%who, rule = %r, "rule added"),
            Err(e) => warn!(%who, error = %e, "adding a rule failed"),
        }
    }
}

/// Removes `rules` then `routes` (the reverse of [`install`]).
pub async fn uninstall(
    handle: &rtnetlink::Handle,
    who: &str,
    routes: &[IpRoute],
    rules: &[IpRule],
) {
    for r in rules {
        match route::remove_rule(handle, r).await {
            Ok(()) => info!(%who, rule = %r, "rule removed"),
            Err(e) => warn!(%who, error = %e, "removing a rule failed"),
        }
    }
    for r in routes {
        match route::remove_route(handle, r).await {
            Ok(()) => info!(%who, route = %r, "route removed"),
            Err(e) => warn!(%who, error = %e, "removing a route failed"),
        }
    }
}

/// The items of `a` that `b` lacks.
pub fn missing<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

fn static_vips(s: &StaticNetwork) -> Vec<Vip> {
    s.ipaddress
        .iter()
        .map(|a| Vip {
            addr: a.address,
            prefix: a.prefix_len,
            // The decoder refuses static addresses without `dev`.
            dev: a.dev.clone().unwrap_or_default(),
            label: a.label.clone(),
        })
        .collect()
}

/// Moves the `[static]` state from `old` to `new`: what left is removed (rules, routes,
/// addresses), what came is added (addresses, routes, rules). `old` empty: the start;
/// `new` empty: the stop.
pub async fn apply_static(
    handle: &rtnetlink::Handle,
    vips: &VipManager,
    old: &StaticNetwork,
    new: &StaticNetwork,
) {
    let who = "static";
    uninstall(
        handle,
        who,
        &missing(&old.routes, &new.routes),
        &missing(&old.rules, &new.rules),
    )
    .await;
    let (old_vips, new_vips) = (static_vips(old), static_vips(new));
    for v in missing(&old_vips, &new_vips) {
        match vips.remove(&v).await {
            Ok(()) => info!(%who, address = %v, "static address removed"),
            Err(e) => warn!(%who, error = %e, "removing a static address failed"),
        }
    }
    for v in missing(&new_vips, &old_vips) {
        match vips.add(&v).await {
            Ok(()) => info!(%who, address = %v, "static address added"),
            Err(e) => warn!(%who, error = %e, "adding a static address failed"),
        }
    }
    install(
        handle,
        who,
        &missing(&new.routes, &old.routes),
        &missing(&new.rules, &old.rules),
    )
    .await;
}

/// The static addresses and routes to add again when links change from `before` to
/// `after` (pure): those whose `dev` was down or absent and is up now. Routes marked
/// `no_track` are left alone, as keepalived leaves them; rules outlive their links.
pub fn reinstated(
    statics: &StaticNetwork,
    before: &LinkStates,
    after: &LinkStates,
) -> (Vec<Vip>, Vec<IpRoute>) {
    let came_up = |dev: Option<&str>| {
        dev.is_some_and(|d| after.get(d) == Some(&true) && before.get(d) != Some(&true))
    };
    let vips = static_vips(statics)
        .into_iter()
        .filter(|v| came_up(Some(&v.dev)))
        .collect();
    let routes = statics
        .routes
        .iter()
        .filter(|r| !r.no_track && came_up(r.dev.as_deref()))
        .cloned()
        .collect();
    (vips, routes)
}

/// How long a deleted static route waits for its link's event before being restored.
const LINK_EVENT_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Keeps the static addresses and routes in place, as keepalived does, until `links`
/// closes: adds them again each time their interface comes up (addresses first), and
/// adds a static route again when it is deleted while its interface stays up
/// (keepalived's `reinstate_static_route` on RTM_DELROUTE). `statics`: the `[static]`
/// configuration in force (reloads change it; empty once the daemon stops, so its own
/// removals are not undone).
pub async fn keep_statics(
    mut links: watch::Receiver<LinkStates>,
    statics: watch::Receiver<StaticNetwork>,
    vips: VipManager,
) {
    let mut deletions = route_events();
    let mut before = links.borrow_and_update().clone();
    loop {
        tokio::select! {
            changed = links.changed() => {
                if changed.is_err() {
                    return;
                }
                let after = links.borrow_and_update().clone();
                let (addresses, routes) = reinstated(&statics.borrow(), &before, &after);
                before = after;
                for v in addresses {
                    match vips.add(&v).await {
                        Ok(()) => info!(address = %v, "link up: static address restored"),
                        Err(e) => warn!(error = %e, "link up: restoring a static address failed"),
                    }
                }
                install(vips.handle(), "static (link up)", &routes, &[]).await;
            }
            Some(deleted) = next_deleted(&mut deletions) => {
                if deleted_statics(&statics.borrow(), &deleted, &before).is_empty() {
                    continue;
                }
                // A link going down deletes its IPv6 routes before its link event comes:
                // the link's state is read again a moment later, so those wait for it.
                tokio::time::sleep(LINK_EVENT_GRACE).await;
                let now = links.borrow().clone();
                let routes = deleted_statics(&statics.borrow(), &deleted, &now);
                for r in &routes {
                    info!(route = %r, "a static route was deleted: restoring it");
                }
                install(vips.handle(), "static (deleted)", &routes, &[]).await;
            }
        }
    }
}

/// The static routes `deleted` was (pure): not `no_track`, with their `dev` up (a route
/// the kernel dropped with its link comes back with the link).
pub fn deleted_statics(
    statics: &StaticNetwork,
    deleted: &RouteMessage,
    links: &LinkStates,
) -> Vec<IpRoute> {
    statics
        .routes
        .iter()
        .filter(|r| !r.no_track && route::is_route(r, deleted))
        .filter(|r| r.dev.as_deref().is_none_or(|d| links.get(d) == Some(&true)))
        .cloned()
        .collect()
}

type RouteEvents = futures::channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    netlink_sys::SocketAddr,
)>;

/// Route events (both families), or `None` (logged) when they cannot be subscribed to.
fn route_events() -> Option<RouteEvents> {
    let groups = [MulticastGroup::Ipv4Route, MulticastGroup::Ipv6Route];
    match rtnetlink::new_multicast_connection(&groups) {
        Ok((connection, _handle, events)) => {
            tokio::spawn(connection);
            Some(events)
        }
        Err(e) => {
            warn!(error = %e, "cannot watch route deletions: a deleted static route is not restored");
            None
        }
    }
}

/// The next deleted route; never resolves without events.
async fn next_deleted(events: &mut Option<RouteEvents>) -> Option<RouteMessage> {
    let Some(rx) = events else {
        return std::future::pending().await;
    };
    loop {
        let Some((msg, _)) = rx.next().await else {
            warn!("the route-event socket closed: deleted static routes are no longer restored");
            *events = None;
            return std::future::pending().await;
        };
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) = msg.payload {
            return Some(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statics(addresses: &[&str], routes: &[&str]) -> StaticNetwork {
        StaticNetwork {
            ipaddress: addresses
                .iter()
                .map(|a| a.parse().expect("address"))
                .collect(),
            routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
            ..StaticNetwork::default()
        }
    }

    fn links(states: &[(&str, bool)]) -> LinkStates {
        states
            .iter()
            .map(|(n, up)| ((*n).to_owned(), *up))
            .collect()
    }

    #[test]
    fn a_deleted_static_route_comes_back_while_its_link_is_up() {
        let s = statics(
            &[],
            &[
                "10.1.0.0/16 via 192.0.2.1 dev eth1",
                "10.2.0.0/16 dev eth1 no_track",
                "10.3.0.0/16 via 198.18.0.1",
            ],
        );
        let deleted = |line: &str| {
            let r: IpRoute = line.parse().expect("route");
            route::route_message(&r, &route::Oifs::default(), false)
        };
        let texts =
            |routes: Vec<IpRoute>| -> Vec<String> { routes.into_iter().map(|r| r.text).collect() };
        let up = links(&[("eth1", true)]);
        assert_eq!(
            texts(deleted_statics(
                &s,
                &deleted("10.1.0.0/16 via 192.0.2.1 dev eth1"),
                &up
            )),
            ["10.1.0.0/16 via 192.0.2.1 dev eth1"]
        );
        assert_eq!(
            texts(deleted_statics(
                &s,
                &deleted("10.3.0.0/16 via 198.18.0.1"),
                &up
            )),
            ["10.3.0.0/16 via 198.18.0.1"]
        );
        // Its link down (the kernel dropped it with the link), no_track, not ours.
        let down = links(&[("eth1", false)]);
        assert!(
            deleted_statics(&s, &deleted("10.1.0.0/16 via 192.0.2.1 dev eth1"), &down).is_empty()
        );
        assert!(deleted_statics(&s, &deleted("10.2.0.0/16 dev eth1 no_track"), &up).is_empty());
        assert!(deleted_statics(&s, &deleted("10.9.0.0/16 dev eth1"), &up).is_empty());
    }

    #[test]
    fn what_a_link_coming_up_brings_back() {
        let s = statics(
            &["2001:db8:5::1/64 dev eth1", "192.0.2.5/24 dev eth2"],
            &[
                "10.1.0.0/16 via 192.0.2.1 dev eth1",
                "10.2.0.0/16 dev eth1 no_track",
                "10.3.0.0/16 via 198.18.0.1",
                "10.4.0.0/16 dev eth2",
            ],
        );
        let text = |(v, r): (Vec<Vip>, Vec<IpRoute>)| {
            (
                v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                r.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
            )
        };
        // eth1 down -> up: its address and tracked route, not the no_track one nor
        // the route without `dev`; eth2 stayed up: nothing of it.
        let before = links(&[("eth1", false), ("eth2", true)]);
        let after = links(&[("eth1", true), ("eth2", true)]);
        let (v, r) = text(reinstated(&s, &before, &after));
        assert_eq!(v.len(), 1);
        assert!(v[0].starts_with("2001:db8:5::1/64"), "{v:?}");
        assert_eq!(r, vec!["10.1.0.0/16 via 192.0.2.1 dev eth1".to_string()]);
        // A link that appears (created after the start) counts as coming up.
        let (v, r) = text(reinstated(&s, &links(&[("eth1", true)]), &after));
        assert_eq!((v.len(), r), (1, vec!["10.4.0.0/16 dev eth2".to_string()]));
        // Going down, or staying up, brings nothing.
        let (v, r) = text(reinstated(&s, &after, &before));
        assert!(v.is_empty() && r.is_empty());
        let (v, r) = text(reinstated(&s, &after, &after));
        assert!(v.is_empty() && r.is_empty());
    }
}
