//! `lb-daemon decap`: keeps `lb_decap` attached to a backend's interface until stopped.

use crate::dataplane::HelperProgram;
use anyhow::{Context, Result};

use super::signals;

pub fn run(interface: &str) -> Result<()> {
    signals::install()?;
    let _prog = HelperProgram::decap(interface)
        .with_context(|| format!("attaching lb_decap to {interface}"))?;
    tracing::info!(
        interface,
        "lb_decap attached; tunnelled packets are decapsulated until Ctrl-C"
    );
    while signals::sleep(std::time::Duration::from_secs(3600)) {}
    tracing::info!(interface, "detaching lb_decap");
    Ok(())
}
