//! A `BPF_F_MMAPABLE` array map mapped into this process: its values are read and written
//! with plain (atomic or volatile) memory accesses instead of a `bpf()` system call each.
//! Used for `lb_maglev` (dataplane/mapped_ring.rs) and the VRRP advert filter's slots
//! (vrrp/advert_filter.rs).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// The shared mapping of a whole array map; unmapped on drop.
pub struct MapMemory {
    base: NonNull<u8>,
    bytes: usize,
}

// SAFETY: plain shared memory; its users access it only through atomics or volatile
// operations.
unsafe impl Send for MapMemory {}
unsafe impl Sync for MapMemory {}

impl MapMemory {
    /// Maps `value_bytes` (entries x their 8-byte-aligned size) of the array map `fd`
    /// read-write, rounded up to whole pages.
    pub fn map(fd: BorrowedFd<'_>, value_bytes: usize) -> std::io::Result<Self> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |p| p as usize);
        let bytes = value_bytes.div_ceil(page) * page;
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
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(std::io::ErrorKind::Other)?;
        Ok(MapMemory { base, bytes })
    }

    /// The first byte of the array's values.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }
}

impl Drop for MapMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
        }
    }
}
