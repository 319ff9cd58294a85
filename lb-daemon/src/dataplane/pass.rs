//! The `lb_pass` program on its own: attached to the peer of a veth that the load
//! balancer transmits on, because the kernel drops native-mode `XDP_TX` frames sent into
//! a veth whose peer runs no XDP program.

use aya::{programs::XdpMode, EbpfLoader};
use lb_common::{map_names, program_names};

use super::{ifindex, object::Object, program_mut, DataplaneError};

/// Holds the program attached; dropping it detaches.
pub struct PassProgram {
    _ebpf: aya::Ebpf,
}

impl PassProgram {
    /// Attaches `lb_pass` in native mode to `ifname` (in the calling thread's network
    /// namespace).
    pub fn attach(ifname: &str) -> Result<Self, DataplaneError> {
        let object = Object::load()?;
        let mut loader = EbpfLoader::new();
        // Its maps are unused: keep them tiny.
        for name in map_names::ALL {
            loader.map_max_entries(name, 1);
        }
        let mut ebpf = loader.load(object.bytes()).map_err(DataplaneError::Load)?;
        let index = ifindex(ifname)?;
        let prog = program_mut(&mut ebpf, program_names::PASS)?;
        let err = |source| DataplaneError::Program {
            program: program_names::PASS,
            source,
        };
        prog.load().map_err(err)?;
        prog.attach_to_if_index(index, XdpMode::Driver)
            .map_err(err)?;
        Ok(Self { _ebpf: ebpf })
    }
}
