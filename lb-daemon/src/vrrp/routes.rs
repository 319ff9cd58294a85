//! Routes and rules that follow VRRP: an instance's `virtual_routes` / `virtual_rules`
//! (added on becoming MASTER, after its addresses; removed on leaving it, before them),
//! and the `[static]` addresses, routes and rules (added at start, removed at a graceful
//! stop), as keepalived 2.2.7 does (`vrrp_handle_iproutes`, `vrrp_handle_iprules`,
//! `vrrp_daemon.c`). Failures are logged and never stop VRRP (keepalived logs them too).

use tracing::{info, warn};

use super::vip::{Vip, VipManager};
use crate::config::{IpRoute, IpRule, StaticNetwork};
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
