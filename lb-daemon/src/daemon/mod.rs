//! The daemon as a whole: the parts wired together, and how it shows itself.

pub mod control;
pub mod dataplane_owner;
pub mod metrics;
pub mod plane_choice;
pub mod snapshot;
pub mod status_view;
pub mod systemd;
pub mod view;
