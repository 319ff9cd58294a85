//! `lb_maglev` mapped into this process (`BPF_F_MMAPABLE`): a Maglev table is written
//! with plain stores instead of one `bpf()` system call per slot. 100 services of 2,039
//! slots cost 204,000 system calls (about 0.4 s) the old way, which is what a MASTER
//! transition waited for. A map created without the flag (pinned by an older build)
//! cannot be mapped: the caller falls back to system calls.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// An array map's elements are 8-byte aligned (`round_up(value_size, 8)`): a u32 slot
/// takes 8 bytes of the mapping, so slot `i` is the u32 at index `2 i`.
const STRIDE_U32S: usize = 2;

/// The whole slot array, shared with the kernel.
pub struct MappedRing {
    base: NonNull<AtomicU32>,
    slots: usize,
    bytes: usize,
}

// SAFETY: the mapping is plain shared memory, accessed only through atomics.
unsafe impl Send for MappedRing {}
unsafe impl Sync for MappedRing {}

impl MappedRing {
    /// Maps the array map `fd` of `slots` u32 values read-write.
    pub fn map(fd: BorrowedFd<'_>, slots: u32) -> std::io::Result<Self> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as usize);
        let bytes = (slots as usize * 4 * STRIDE_U32S).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the size
        // and that the map is mmapable.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU32>()).ok_or(std::io::ErrorKind::Other)?;
        Ok(MappedRing {
            base,
            slots: slots as usize,
            bytes,
        })
    }

    /// Stores `value` in slot `index`; false when out of range. A single aligned 32-bit
    /// store: the program, reading concurrently, sees the old value or the new one.
    pub fn set(&self, index: u32, value: u32) -> bool {
        let i = index as usize;
        if i >= self.slots {
            return false;
        }
        // SAFETY: in range of the mapping, which lives as long as `self`.
        unsafe { self.base.as_ptr().add(i * STRIDE_U32S).as_ref() }
            .map(|slot| slot.store(value, Ordering::Release))
            .is_some()
    }
}

impl Drop for MappedRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
        }
    }
}
