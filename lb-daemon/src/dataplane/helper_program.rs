//! The object's small programs, attached on their own:
//! - `lb_pass` on the peer of a veth that the load balancer transmits on: the kernel drops
//!   native-mode `XDP_TX` frames sent into a veth whose peer runs no XDP program;
//! - `lb_decap` on a backend of a TUN service that has no ipip/ip6tnl device.

use aya::{programs::XdpMode, EbpfLoader};
use lb_common::{map_names, program_names};

use super::{ifindex, object::Object, program_mut, DataplaneError};

/// Holds the program attached; dropping it detaches.
pub struct HelperProgram {
    _ebpf: aya::Ebpf,
}

impl HelperProgram {
    /// Attaches `program` (`lb_pass` or `lb_decap`) in native mode to `ifname`, in the
    /// calling thread's network namespace.
    pub fn attach(program: &'static str, ifname: &str) -> Result<Self, DataplaneError> {
        let object = Object::load()?;
        let mut loader = EbpfLoader::new();
        // The load balancer's maps are unused here: keep them tiny.
        for name in map_names::ALL {
            if name != map_names::STATS {
                loader.map_max_entries(name, 1);
            }
        }
        let mut ebpf = loader.load(object.bytes()).map_err(DataplaneError::Load)?;
        let index = ifindex(ifname)?;
        let prog = program_mut(&mut ebpf, program)?;
        let err = |source| DataplaneError::Program { program, source };
        prog.load().map_err(err)?;
        prog.attach_to_if_index(index, XdpMode::Driver)
            .map_err(err)?;
        Ok(Self { _ebpf: ebpf })
    }

    /// `lb_pass`, for the peer of a veth the load balancer sends on (labs and tests).
    #[cfg(feature = "lab")]
    pub fn pass(ifname: &str) -> Result<Self, DataplaneError> {
        Self::attach(program_names::PASS, ifname)
    }

    /// `lb_decap`, for a TUN backend.
    pub fn decap(ifname: &str) -> Result<Self, DataplaneError> {
        Self::attach(program_names::DECAP, ifname)
    }
}
