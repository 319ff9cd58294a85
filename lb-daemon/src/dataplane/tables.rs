//! How full the data plane's flow tables are, and where the program runs: what an
//! operator alerts on before a full table starts dropping new flows, or when a driver
//! left the program in the slow generic path.

use aya::maps::{HashMap as BpfHashMap, MapData};
use lb_common::{map_names, Conn, FlowKey, NatEntry};

use super::{map_err, AttachMode, Dataplane, DataplaneError};

/// One table's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUse {
    /// "conntrack" (the connection table) or "nat" (translation entries).
    pub table: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

/// The plane's tables and attachments (empty for planes without them, e.g. IPVS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaneUsage {
    pub tables: Vec<TableUse>,
    /// Interfaces the program is attached to, with the mode it runs in.
    pub attached: Vec<(String, AttachMode)>,
    /// The connection-table filter (XDP, when it could be mapped).
    pub conn_filter: Option<super::conn_filter::FilterUse>,
}

impl AttachMode {
    /// As metrics and status name it.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

impl Dataplane {
    /// Entries and capacity of the connection and NAT tables. Counting walks the keys
    /// (one syscall each, no value copies): a full 64k-entry table costs a few ms.
    pub fn table_use(&self) -> Result<Vec<TableUse>, DataplaneError> {
        let capacity = self.capacity();
        let conntrack = self.count_keys::<Conn>(map_names::CONNTRACK)?;
        let nat = self.count_keys::<NatEntry>(map_names::NAT)?;
        Ok(vec![
            TableUse {
                table: "conntrack",
                entries: conntrack,
                capacity: capacity.conntrack.into(),
            },
            TableUse {
                table: "nat",
                entries: nat,
                capacity: capacity.nat.into(),
            },
        ])
    }

    fn count_keys<V: aya::Pod>(&self, name: &'static str) -> Result<u64, DataplaneError> {
        let map: BpfHashMap<&MapData, FlowKey, V> =
            BpfHashMap::try_from(self.map(name)?).map_err(|e| map_err(name, e))?;
        // A key deleted during the walk just ends it early or is skipped.
        Ok(map.keys().filter(Result::is_ok).count() as u64)
    }

    /// What [`PlaneUsage`] reports for this plane.
    pub fn usage(&self) -> Result<PlaneUsage, DataplaneError> {
        Ok(PlaneUsage {
            tables: self.table_use()?,
            attached: self.attached(),
            conn_filter: self.conn_filter.as_ref().map(|f| f.bitmaps().usage()),
        })
    }
}
