//! The VRRP advert filter (`lb-vrrp-filter`, a socket filter) from user space: each
//! instance's receive socket gets the filter and a slot ([`FilterSlot`]); while the receive
//! thread holds the delegated master-down timer, the slot is armed with the template and
//! the kernel drops identical adverts, noting their arrival in the slot. The thread then
//! wakes once per master-down interval, not once per advert (issue 13).
//!
//! Loaded once per process, on first use, from the object embedded at build time or from
//! `LB_VRRP_FILTER_OBJECT`. Where it cannot be loaded or attached (no object, an old
//! kernel, a full slot table), VRRP works as before: the thread reads every advert.

use std::{
    collections::BTreeSet,
    io,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::PathBuf,
    ptr::{addr_of, addr_of_mut},
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Mutex, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

use aya::{
    maps::{HashMap, Map, MapData},
    programs::SocketFilter,
    Ebpf, EbpfLoader,
};
use lb_common::{vrrp_quiet, VrrpQuiet};
use tracing::{debug, info};

use super::receiver::Template;
use crate::map_memory::MapMemory;

/// Environment variable naming a filter object to load instead of the embedded one.
pub const OBJECT_ENV: &str = "LB_VRRP_FILTER_OBJECT";

static EMBEDDED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-vrrp-filter.o"));

/// The loaded filter, shared by every instance of the process.
struct Filter {
    /// Keeps the program and the maps alive.
    _ebpf: Ebpf,
    program_fd: libc::c_int,
    cookies: Mutex<HashMap<MapData, u64, u32>>,
    slots: MappedSlots,
    free: Mutex<BTreeSet<u32>>,
}

/// The process's filter, loaded on first use, or why it could not be (said once in the
/// log).
fn loaded() -> &'static Result<Filter, String> {
    static FILTER: OnceLock<Result<Filter, String>> = OnceLock::new();
    FILTER.get_or_init(|| {
        Filter::load().map_err(|e| {
            info!(error = %e, "VRRP advert filter not loaded: each advert wakes its instance's receive thread");
            e.to_string()
        })
    })
}

fn filter() -> Option<&'static Filter> {
    loaded().as_ref().ok()
}

/// Loads the filter if it is not yet: `Err` says why it cannot be (for tests and
/// diagnostics; instances simply go without).
pub fn load() -> Result<(), String> {
    loaded().as_ref().map(|_| ()).map_err(Clone::clone)
}

impl Filter {
    fn load() -> io::Result<Filter> {
        let bytes = object_bytes()?;
        let mut ebpf = EbpfLoader::new()
            .load(&bytes)
            .map_err(|e| io::Error::other(format!("loading lb-vrrp-filter: {e}")))?;
        let program: &mut SocketFilter = ebpf
            .program_mut(vrrp_quiet::PROGRAM)
            .ok_or_else(|| io::Error::other(format!("no program {}", vrrp_quiet::PROGRAM)))?
            .try_into()
            .map_err(|e| io::Error::other(format!("{}: {e}", vrrp_quiet::PROGRAM)))?;
        program
            .load()
            .map_err(|e| io::Error::other(format!("verifying {}: {e}", vrrp_quiet::PROGRAM)))?;
        let program_fd = program
            .fd()
            .map_err(|e| io::Error::other(format!("{}: {e}", vrrp_quiet::PROGRAM)))?
            .as_fd()
            .as_raw_fd();
        let slots = match ebpf.map(vrrp_quiet::SLOTS) {
            Some(Map::Array(data)) => MappedSlots::map(data.fd().as_fd(), vrrp_quiet::CAPACITY)?,
            _ => {
                return Err(io::Error::other(format!(
                    "no array map {}",
                    vrrp_quiet::SLOTS
                )))
            }
        };
        let cookies = ebpf
            .take_map(vrrp_quiet::COOKIES)
            .ok_or_else(|| io::Error::other(format!("no map {}", vrrp_quiet::COOKIES)))?;
        let cookies = HashMap::try_from(cookies)
            .map_err(|e| io::Error::other(format!("{}: {e}", vrrp_quiet::COOKIES)))?;
        Ok(Filter {
            _ebpf: ebpf,
            program_fd,
            cookies: Mutex::new(cookies),
            slots,
            free: Mutex::new((0..vrrp_quiet::CAPACITY).collect()),
        })
    }
}

/// The object's bytes, 8-byte aligned for the ELF parser.
fn object_bytes() -> io::Result<Vec<u8>> {
    if let Some(path) = std::env::var_os(OBJECT_ENV).map(PathBuf::from) {
        return std::fs::read(&path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{OBJECT_ENV}={}: {e}; run `cargo xtask build-ebpf` or fix the path",
                    path.display()
                ),
            )
        });
    }
    if EMBEDDED.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "this lb-daemon was built without lb-vrrp-filter; run `cargo xtask build` \
                 (or `cargo xtask build-ebpf` and set {OBJECT_ENV} to its path)"
            ),
        ));
    }
    Ok(EMBEDDED.to_vec())
}

/// `lb_vrrp_slots` mapped into this process: the daemon arms and reads slots with plain
/// (volatile or atomic) memory accesses, no system call per wake-up.
struct MappedSlots {
    memory: MapMemory,
    slots: u32,
}

impl MappedSlots {
    fn map(fd: BorrowedFd<'_>, slots: u32) -> io::Result<Self> {
        // Array elements are 8-byte aligned; VrrpQuiet is 192 bytes, a multiple of 8.
        const _: () = assert!(size_of::<VrrpQuiet>().is_multiple_of(8));
        let memory = MapMemory::map(fd, slots as usize * size_of::<VrrpQuiet>())
            .map_err(|e| io::Error::other(format!("mapping {}: {e}", vrrp_quiet::SLOTS)))?;
        Ok(MappedSlots { memory, slots })
    }

    fn slot(&self, index: u32) -> *mut VrrpQuiet {
        assert!(index < self.slots, "slot {index} out of range");
        // SAFETY: in range of the mapping, which lives as long as the process's filter;
        // page-aligned, and the values are 8-byte multiples: every slot is aligned.
        unsafe {
            self.memory
                .base()
                .as_ptr()
                .cast::<VrrpQuiet>()
                .add(index as usize)
        }
    }
}

/// What the filter took since the slot was last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken {
    /// Adverts dropped in the kernel as identical to the template.
    pub count: u64,
    /// When the last of them arrived.
    pub last: Option<Instant>,
}

/// One socket's slot: the filter is attached to the socket, and the slot freed (and the
/// socket's cookie forgotten) when this is dropped.
pub struct FilterSlot {
    filter: &'static Filter,
    index: u32,
    cookie: u64,
    /// `taken` as last read.
    seen: u64,
}

impl std::fmt::Debug for FilterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterSlot")
            .field("index", &self.index)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl FilterSlot {
    /// Attaches the filter to `socket` and gives it a slot, disarmed: `None` (logged at
    /// debug level) when the filter is not loaded or any step fails.
    pub fn attach(socket: BorrowedFd<'_>, interface: &str) -> Option<FilterSlot> {
        let filter = filter()?;
        match Self::try_attach(filter, socket) {
            Ok(slot) => Some(slot),
            Err(e) => {
                debug!(interface, error = %e, "VRRP advert filter not attached: every advert is read in user space");
                None
            }
        }
    }

    fn try_attach(filter: &'static Filter, socket: BorrowedFd<'_>) -> io::Result<FilterSlot> {
        let index = lock(&filter.free)
            .pop_first()
            .ok_or_else(|| io::Error::other("all filter slots in use"))?;
        // From here on, dropping `slot` (on an error below) frees the index again.
        let mut slot = FilterSlot {
            filter,
            index,
            cookie: 0,
            seen: 0,
        };
        // SAFETY: the slot is ours alone until its cookie is published below.
        unsafe { slot.ptr().write_volatile(disarmed()) };
        slot.cookie = socket_cookie(socket)?;
        let cookie = slot.cookie;
        lock(&filter.cookies)
            .insert(cookie, index, 0)
            .map_err(|e| io::Error::other(format!("{}: {e}", vrrp_quiet::COOKIES)))?;
        let fd = filter.program_fd;
        super::socket::set_opt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_BPF,
            &fd,
            "SO_ATTACH_BPF",
        )?;
        Ok(slot)
    }

    fn ptr(&self) -> *mut VrrpQuiet {
        self.filter.slots.slot(self.index)
    }

    fn armed(&self) -> &AtomicU32 {
        // SAFETY: an aligned u32 inside the live mapping.
        unsafe { AtomicU32::from_ptr(addr_of_mut!((*self.ptr()).armed)) }
    }

    /// Arms the slot with `template`: from now on the kernel drops identical adverts.
    /// `false` when the template cannot be filtered (a longer message than a slot holds);
    /// the slot stays disarmed.
    pub fn arm(&self, template: &Template) -> bool {
        self.disarm();
        let Some(mut value) = slot_value(template) else {
            return false;
        };
        // `taken` keeps running across arms (the reader counts from what it saw last).
        // SAFETY: an aligned u64 inside the live mapping.
        value.taken = unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.ptr()).taken)) }
            .load(Ordering::Acquire);
        // SAFETY: the slot is disarmed, so the filter only reads `armed` meanwhile;
        // `armed` is written last, with release ordering.
        unsafe { self.ptr().write_volatile(value) };
        self.armed().store(1, Ordering::Release);
        true
    }

    /// Disarms the slot: every datagram reaches the socket again.
    pub fn disarm(&self) {
        self.armed().store(0, Ordering::Release);
    }

    /// Whether the slot is armed (the filter disarms it on a datagram that differs).
    pub fn is_armed(&self) -> bool {
        self.armed().load(Ordering::Acquire) != 0
    }

    /// What the filter took since the last call.
    pub fn read(&mut self) -> Taken {
        let p = self.ptr();
        // SAFETY: aligned u64s inside the live mapping, written by the filter.
        let (taken, last_ns) = unsafe {
            (
                AtomicU64::from_ptr(addr_of_mut!((*p).taken)).load(Ordering::Acquire),
                addr_of!((*p).last_ns).read_volatile(),
            )
        };
        let count = taken.wrapping_sub(self.seen);
        self.seen = taken;
        Taken {
            count,
            last: (count > 0 && last_ns != 0).then(|| monotonic_instant(last_ns)),
        }
    }
}

impl Drop for FilterSlot {
    fn drop(&mut self) {
        self.disarm();
        if let Err(e) = lock(&self.filter.cookies).remove(&self.cookie) {
            debug!(error = %e, "forgetting a VRRP socket's filter cookie");
        }
        lock(&self.filter.free).insert(self.index);
    }
}

/// An all-zero, disarmed slot.
fn disarmed() -> VrrpQuiet {
    VrrpQuiet {
        armed: 0,
        ifindex: 0,
        src: [0; 16],
        dst: [0; 16],
        ttl: 0,
        v6: 0,
        len: 0,
        pad: 0,
        payload: [0; vrrp_quiet::PAYLOAD_MAX / 8],
        last_ns: 0,
        taken: 0,
    }
}

/// The slot's value for `template` (disarmed; `None` when it does not fit).
fn slot_value(t: &Template) -> Option<VrrpQuiet> {
    let len = u16::try_from(t.payload.len()).ok()?;
    if len == 0 || usize::from(len) > vrrp_quiet::PAYLOAD_MAX {
        return None;
    }
    let mut v = disarmed();
    v.ifindex = t.ifindex;
    v.ttl = t.ttl;
    v.len = len;
    let (src, dst, v6) = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets().to_vec(), d.octets().to_vec(), 0),
        (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets().to_vec(), d.octets().to_vec(), 1),
        _ => return None,
    };
    v.src[..src.len()].copy_from_slice(&src);
    v.dst[..dst.len()].copy_from_slice(&dst);
    v.v6 = v6;
    let mut bytes = [0u8; vrrp_quiet::PAYLOAD_MAX];
    bytes[..t.payload.len()].copy_from_slice(&t.payload);
    for (w, chunk) in v.payload.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_ne_bytes(chunk.try_into().ok()?);
    }
    Some(v)
}

/// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`) as an [`Instant`] (which is
/// `CLOCK_MONOTONIC` on Linux, but opaque).
fn monotonic_instant(ns: u64) -> Instant {
    let now = Instant::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable timespec.
    let now_ns = if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0 {
        (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        ns
    };
    now.checked_sub(Duration::from_nanos(now_ns.saturating_sub(ns)))
        .unwrap_or(now)
}

fn socket_cookie(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` is a writable u64 and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "SO_COOKIE: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(cookie)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(src: &str, dst: &str, payload: &[u8]) -> Template {
        Template {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 255,
            ifindex: 7,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_slot_holds_the_template_as_the_filter_reads_it() {
        let msg = [0x31, 51, 150, 1, 0x00, 0x64, 0xab, 0xcd, 198, 18, 0, 100];
        let v = slot_value(&template("198.18.0.1", "224.0.0.18", &msg)).unwrap();
        assert_eq!((v.armed, v.ifindex, v.ttl, v.v6, v.len), (0, 7, 255, 0, 12));
        assert_eq!(v.src[..4], [198, 18, 0, 1]);
        assert_eq!(v.src[4..], [0; 12]);
        assert_eq!(v.dst[..4], [224, 0, 0, 18]);
        // The message as native-endian words, zero after its length (the filter loads
        // the packet's bytes into zeroed words and compares word by word).
        assert_eq!(
            v.payload[0],
            u64::from_ne_bytes(msg[..8].try_into().unwrap())
        );
        assert_eq!(
            v.payload[1],
            u64::from_ne_bytes([198, 18, 0, 100, 0, 0, 0, 0])
        );
        assert!(v.payload[2..].iter().all(|&w| w == 0));
        assert_eq!((v.last_ns, v.taken), (0, 0));

        let v6 = slot_value(&template("fe80::1", "ff02::12", &msg)).unwrap();
        assert_eq!(v6.v6, 1);
        assert_eq!(
            v6.src,
            "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            v6.dst,
            "ff02::12".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn what_a_slot_cannot_hold_is_left_to_user_space() {
        let full = vec![1u8; vrrp_quiet::PAYLOAD_MAX];
        assert!(slot_value(&template("198.18.0.1", "224.0.0.18", &full)).is_some());
        let long = vec![1u8; vrrp_quiet::PAYLOAD_MAX + 4];
        assert!(slot_value(&template("198.18.0.1", "224.0.0.18", &long)).is_none());
        assert!(slot_value(&template("198.18.0.1", "224.0.0.18", &[])).is_none());
        assert!(slot_value(&template("198.18.0.1", "ff02::12", &[1, 2, 3, 4])).is_none());
    }

    #[test]
    fn kernel_monotonic_time_is_an_instant() {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a writable timespec.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
            0
        );
        let ns = (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64;
        let before = Instant::now();
        let at = monotonic_instant(ns - 50_000_000);
        let ago = before.saturating_duration_since(at);
        assert!(
            ago >= Duration::from_millis(49) && ago <= Duration::from_millis(60),
            "50 ms ago read as {ago:?} ago"
        );
    }
}
