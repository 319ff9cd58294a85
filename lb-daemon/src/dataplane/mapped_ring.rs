//! `lb_maglev` mapped into this process (`BPF_F_MMAPABLE`): a Maglev table is written
//! with plain stores instead of one `bpf()` system call per slot. 100 services of 2,039
//! slots cost 204,000 system calls (about 0.4 s) the old way, which is what a MASTER
//! transition waited for. A map created without the flag (pinned by an older build)
//! cannot be mapped: the caller falls back to system calls.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::map_memory::MapMemory;

/// An array map's elements are 8-byte aligned (`round_up(value_size, 8)`): a u32 slot
/// takes 8 bytes of the mapping, so slot `i` is the u32 at index `2 i`.
const STRIDE_U32S: usize = 2;

/// The whole slot array, shared with the kernel.
pub struct MappedRing {
    memory: MapMemory,
    slots: usize,
}

impl MappedRing {
    /// Maps the array map `fd` of `slots` u32 values read-write.
    pub fn map(fd: BorrowedFd<'_>, slots: u32) -> std::io::Result<Self> {
        let memory = MapMemory::map(fd, slots as usize * 4 * STRIDE_U32S)?;
        Ok(MappedRing {
            memory,
            slots: slots as usize,
        })
    }

    /// Stores `value` in slot `index`; false when out of range. A single aligned 32-bit
    /// store: the program, reading concurrently, sees the old value or the new one.
    pub fn set(&self, index: u32, value: u32) -> bool {
        let i = index as usize;
        if i >= self.slots {
            return false;
        }
        let base = self.memory.base().as_ptr().cast::<AtomicU32>();
        // SAFETY: in range of the mapping, which lives as long as `self`; page-aligned,
        // so every u32 slot is aligned.
        unsafe { base.add(i * STRIDE_U32S).as_ref() }
            .map(|slot| slot.store(value, Ordering::Release))
            .is_some()
    }
}
