//! `lb-daemon counters`: the global counters of a running (or pinned) data plane.

use std::{io::Write, path::Path};

use anyhow::{Context, Result};
use aya::maps::{MapData, PerCpuArray};
use lb_common::{map_names, Counter};

pub fn run(pin_dir: &Path) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (name, value) in read(pin_dir)? {
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{name:<20} {value}").is_err() {
            break;
        }
    }
    Ok(())
}

/// Every global counter (summed over CPUs) with its name, in index order.
pub fn read(pin_dir: &Path) -> Result<Vec<(&'static str, u64)>> {
    let path = pin_dir.join(map_names::STATS);
    let data = MapData::from_pin(&path).with_context(|| {
        format!(
            "opening {}: is the data plane running with bpf_pin_path {}?",
            path.display(),
            pin_dir.display()
        )
    })?;
    let map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))?;
    Counter::ALL
        .iter()
        .map(|&(counter, name)| Ok((name, map.get(&(counter as u32), 0)?.iter().sum())))
        .collect()
}
