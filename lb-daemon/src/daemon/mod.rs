//! The daemon as a whole: the parts wired together ([`app`]), the task that owns the
//! forwarding plane ([`dataplane_owner`]) and how the daemon shows itself.

mod admission;
pub mod announcer;
pub mod app;
pub mod control;
pub mod counter_totals;
pub mod dataplane_owner;
mod kept_masters;
pub mod metrics;
pub mod next_hops;
pub mod plane;
pub mod plane_choice;
mod reload;
pub mod snapshot;
pub mod status_view;
pub mod systemd;
pub mod view;
pub mod watchdog;
