//! The daemon's side of `lb_conn_filter` ([`lb_common::conn_filter`]): the bitmap of the
//! connection table's keys that lets the program skip the table for flows it cannot
//! hold. The daemon sets a key's bits before and after each insert of its own
//! (flow-state sync), and a thread of its own ([`Rebuilder`]) periodically rebuilds the
//! idle bitmap from a walk of the table, then makes it the active one, which drops the
//! bits of expired and evicted entries. The program reads the bitmap only once the first
//! rebuild made it trustworthy.
//!
//! The walk is memory-bound (every bucket and entry of the table, cold): ~0.5 s for a
//! million entries here. It runs off the map owner's task, paced so that it takes at most
//! 1/[`PACE`] of a core.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lb_common::conn_filter::{key_hash, position, word_index, SECOND_ACTIVE, TRUSTED, WORDS_MASK};
use lb_common::{Conn, FlowKey};

use crate::map_memory::MapMemory;

/// The two bitmaps and the control word, over any word storage (the map's mapping, or
/// plain memory in tests): the rebuild protocol without the IO.
pub struct Bitmaps<'a> {
    words: u32,
    cells: &'a [AtomicU64],
}

impl<'a> Bitmaps<'a> {
    /// `cells` holds the control word and two bitmaps of `words` words (a power of two);
    /// None when they do not fit.
    pub fn new(cells: &'a [AtomicU64], words: u32) -> Option<Self> {
        let fits = words.is_power_of_two()
            && words <= WORDS_MASK
            && cells.len() >= lb_common::conn_filter::map_entries(words) as usize;
        fits.then_some(Bitmaps { words, cells })
    }

    fn control(&self) -> u32 {
        self.cells[0].load(Ordering::Acquire) as u32
    }

    fn cell(&self, second: bool, w: u32) -> &AtomicU64 {
        &self.cells[word_index(second, w) as usize]
    }

    /// Announces the bitmaps' size to the program, untrusted: from now on it sets bits
    /// after each insert but does not yet skip the table on a clear one.
    pub fn announce(&self) {
        self.cells[0].store(u64::from(self.words), Ordering::Release);
    }

    /// Sets `key`'s bit in both bitmaps. The daemon calls it before inserting (the
    /// program may skip the table for the flow the moment the entry exists) and again
    /// after (a rebuild's clear between the two would otherwise take the bit of an entry
    /// its walk may have passed already).
    pub fn remember(&self, key: &FlowKey) {
        let (w, bit) = position(key_hash(key), self.words);
        self.cell(false, w).fetch_or(bit, Ordering::AcqRel);
        self.cell(true, w).fetch_or(bit, Ordering::AcqRel);
    }

    /// Whether the program may skip the table for `key` (tests and `explain`).
    pub fn proves_absent(&self, key: &FlowKey) -> bool {
        let control = self.control();
        if control & TRUSTED == 0 {
            return false;
        }
        let (w, bit) = position(key_hash(key), self.words);
        self.cell(control & SECOND_ACTIVE != 0, w)
            .load(Ordering::Acquire)
            & bit
            == 0
    }

    fn idle_is_second(&self) -> bool {
        self.control() & SECOND_ACTIVE == 0
    }

    /// Step 1 of a rebuild: clears the idle bitmap. The walk of the table must start
    /// after this returns.
    pub fn clear_idle(&self) {
        let second = self.idle_is_second();
        for w in 0..self.words {
            self.cell(second, w).store(0, Ordering::Release);
        }
    }

    /// Step 2: sets the bit of a key found by the walk in the idle bitmap.
    pub fn mark_idle(&self, key: &FlowKey) {
        let (w, bit) = position(key_hash(key), self.words);
        self.cell(self.idle_is_second(), w)
            .fetch_or(bit, Ordering::AcqRel);
    }

    /// Step 3: the idle bitmap becomes the active one, trusted. The old one is cleared
    /// only by the next rebuild, long after any program run that read it ended.
    pub fn flip(&self) {
        let second = self.idle_is_second();
        let control = u64::from(self.words)
            | u64::from(TRUSTED)
            | if second { u64::from(SECOND_ACTIVE) } else { 0 };
        self.cells[0].store(control, Ordering::Release);
    }

    /// Fraction of the active bitmap's bits that are set (the chance that a flow with
    /// no entry still pays the lookup).
    pub fn fill(&self) -> f64 {
        let u = self.usage();
        u.bits_set as f64 / u.bits as f64
    }

    /// The active bitmap's bits, set and in all, and whether the program trusts it.
    pub fn usage(&self) -> FilterUse {
        let control = self.control();
        let second = control & SECOND_ACTIVE != 0;
        FilterUse {
            bits_set: (0..self.words)
                .map(|w| u64::from(self.cell(second, w).load(Ordering::Relaxed).count_ones()))
                .sum(),
            bits: u64::from(self.words) * 64,
            trusted: control & TRUSTED != 0,
        }
    }
}

/// How full the filter is (`lb_conn_filter_fill_ratio`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterUse {
    pub bits_set: u64,
    pub bits: u64,
    /// Rebuilt at least once: the program consults it (under a flood).
    pub trusted: bool,
}

/// `lb_conn_filter` mapped into this process.
pub struct ConnFilter {
    memory: MapMemory,
    words: u32,
    cells: usize,
}

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for ConnFilter {}

impl ConnFilter {
    /// Maps the filter of a program whose table has `conntrack` entries and announces
    /// its size (untrusted until the first [`ConnFilter::rebuild`]).
    pub fn map(fd: BorrowedFd<'_>, conntrack: u32) -> std::io::Result<Self> {
        let filter = Self::open(fd, lb_common::conn_filter::words_for(conntrack))?;
        filter.bitmaps().announce();
        Ok(filter)
    }

    /// Maps a filter of `words` words per bitmap, announcing nothing (the rebuild
    /// thread's own mapping of a filter [`ConnFilter::map`] announced).
    fn open(fd: BorrowedFd<'_>, words: u32) -> std::io::Result<Self> {
        let cells = lb_common::conn_filter::map_entries(words) as usize;
        let filter = ConnFilter {
            memory: MapMemory::map(fd, cells * 8)?,
            words,
            cells,
        };
        if filter.checked_bitmaps().is_none() {
            return Err(std::io::Error::other(format!(
                "lb_conn_filter: {words} words per bitmap is not a power of two up to {WORDS_MASK}"
            )));
        }
        Ok(filter)
    }

    fn checked_bitmaps(&self) -> Option<Bitmaps<'_>> {
        // SAFETY: the mapping holds `cells` 8-byte values (an array map's values are
        // 8-byte aligned and a u64 takes exactly 8), lives as long as `self`, and is
        // only accessed atomically, here and by the program.
        let cells = unsafe {
            std::slice::from_raw_parts(self.memory.base().as_ptr().cast::<AtomicU64>(), self.cells)
        };
        Bitmaps::new(cells, self.words)
    }

    pub fn bitmaps(&self) -> Bitmaps<'_> {
        // Checked once, in `open`, against the same fields.
        self.checked_bitmaps()
            .expect("lb_conn_filter's size is checked when it is mapped")
    }

    /// Rebuilds the idle bitmap from the connection table `conntrack` (its fd) and makes
    /// it the active one. Returns the keys walked and the fraction of the active bitmap
    /// now set. On a failed walk nothing is flipped: the active bitmap (or none, before
    /// the first rebuild) stays in use.
    pub fn rebuild(&self, conntrack: BorrowedFd<'_>) -> std::io::Result<(u64, f64)> {
        let bitmaps = self.bitmaps();
        bitmaps.clear_idle();
        let mut walked = 0u64;
        for_each_key(conntrack, |key| {
            bitmaps.mark_idle(key);
            walked += 1;
        })?;
        bitmaps.flip();
        Ok((walked, bitmaps.fill()))
    }
}

/// How often the filter is rebuilt at most (the owner asks this often).
pub const EVERY: Duration = Duration::from_secs(5);
/// A rebuild that took `d` is followed by at least `PACE x d` without one: the walk
/// takes at most 1/PACE of a core however large the table.
pub const PACE: u32 = 20;

/// When the next rebuild may start, after one that ran from `started` for `took`.
pub fn next_rebuild(started: Instant, took: Duration) -> Instant {
    started + EVERY.max(took * PACE)
}

/// What the rebuild thread owns: its own handle on the connection table and its own
/// mapping of the filter, so that it needs nothing of the [`super::Dataplane`].
pub struct RebuildJob {
    conntrack: OwnedFd,
    filter: ConnFilter,
}

impl RebuildJob {
    pub fn new(
        conntrack: BorrowedFd<'_>,
        filter: &ConnFilter,
        filter_fd: BorrowedFd<'_>,
    ) -> std::io::Result<Self> {
        Ok(RebuildJob {
            conntrack: conntrack.try_clone_to_owned()?,
            filter: ConnFilter::open(filter_fd, filter.words)?,
        })
    }

    /// One rebuild: keys walked and the active bitmap's fill.
    pub fn run(&self) -> std::io::Result<(u64, f64)> {
        self.filter.rebuild(self.conntrack.as_fd())
    }
}

/// The rebuild thread: rebuilds when asked ([`Rebuilder::request`]), no sooner than
/// [`next_rebuild`] allows. Dropping it ends the thread after its current rebuild.
pub struct Rebuilder {
    requests: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Rebuilder {
    pub fn start(job: RebuildJob) -> std::io::Result<Self> {
        // One request waits at most: asking while one waits changes nothing.
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("conn-filter".into())
            .spawn(move || {
                let mut not_before = Instant::now();
                let mut warned = false;
                while rx.recv().is_ok() {
                    if Instant::now() < not_before {
                        continue;
                    }
                    let started = Instant::now();
                    match job.run() {
                        Ok((entries, fill)) => tracing::debug!(
                            entries,
                            fill = format!("{:.1}%", fill * 100.0),
                            took_ms = started.elapsed().as_millis() as u64,
                            "connection-table filter rebuilt"
                        ),
                        // The active bitmap stays in use: every bit it lacks was set by
                        // an insert, so it only grows stale.
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(error = %e, "rebuilding the connection-table filter failed; new flows keep their lookups, stale bits are not cleared");
                        }
                        Err(_) => {}
                    }
                    not_before = next_rebuild(started, started.elapsed());
                }
            })?;
        Ok(Rebuilder { requests: Some(tx) })
    }

    /// Asks for a rebuild (ignored while one is pending or the pace forbids it).
    pub fn request(&self) {
        if let Some(tx) = &self.requests {
            let _ = tx.try_send(());
        }
    }
}

impl Drop for Rebuilder {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.requests.take();
    }
}

/// `BPF_MAP_LOOKUP_BATCH`'s part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Keys per system call.
const BATCH: usize = 4096;

/// Calls `f` with every key of the connection table, a bucket at a time
/// (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+: a key present for the whole walk is always seen,
/// unlike a `get_next_key` walk that restarts when its key is deleted under it).
fn for_each_key(fd: BorrowedFd<'_>, mut f: impl FnMut(&FlowKey)) -> std::io::Result<()> {
    let mut keys = vec![FlowKey::default(); BATCH];
    let mut values = vec![Conn::default(); BATCH];
    // The batch token of a hash map is a bucket index (u32); room for more, zeroed.
    let mut token_in = [0u64; 1];
    let mut token_out = [0u64; 1];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                token_in.as_mut_ptr() as u64
            },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: BATCH as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values of the map's sizes
        // (the caller passes the connection table) and at two 8-byte tokens, all live
        // for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(std::io::Error::last_os_error);
        let n = (attr.count as usize).min(BATCH);
        keys[..n].iter().for_each(&mut f);
        match err {
            None => {}
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Some(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            src: [0x0100_000a, 0, 0, 0],
            dst: [0x0200_000a, 0, 0, 0],
            sport: port.to_be(),
            dport: 80u16.to_be(),
            proto: 6,
            family: 4,
            pad: 0,
        }
    }

    fn cells(words: u32) -> Vec<AtomicU64> {
        (0..lb_common::conn_filter::map_entries(words))
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    /// The program's insert: both bitmaps, as `lb-ebpf/src/conn_filter.rs` does.
    fn program_inserts(b: &Bitmaps<'_>, k: &FlowKey) {
        b.remember(k);
    }

    #[test]
    fn untrusted_until_the_first_rebuild() {
        let c = cells(64);
        let b = Bitmaps::new(&c, 64).unwrap();
        b.announce();
        assert_eq!(c[0].load(Ordering::Relaxed), 64);
        assert!(
            !b.proves_absent(&key(1)),
            "nothing is proven before a rebuild"
        );
        b.clear_idle();
        b.flip();
        assert!(b.proves_absent(&key(1)));
    }

    #[test]
    fn no_entry_is_ever_without_its_bit_across_rebuilds() {
        let c = cells(64);
        let b = Bitmaps::new(&c, 64).unwrap();
        b.announce();
        let mut table: Vec<FlowKey> = Vec::new();
        for round in 0..6u16 {
            // Entries come and go between rebuilds; each insert sets its bits after it.
            for p in 0..50 {
                let k = key(round * 100 + p);
                table.push(k);
                program_inserts(&b, &k);
            }
            table.drain(..table.len().saturating_sub(60));
            b.clear_idle();
            // An insert racing the walk: after the clear, so its own bits survive.
            let racing = key(60_000 + round);
            table.push(racing);
            program_inserts(&b, &racing);
            for k in &table {
                b.mark_idle(k);
            }
            b.flip();
            for k in &table {
                assert!(!b.proves_absent(k), "round {round}: {k:?} lost its bit");
            }
        }
        // The bits of the entries gone are gone too (most of them: 64 words hold a
        // few hundred keys with few collisions).
        let gone = (0..50).filter(|&p| b.proves_absent(&key(p))).count();
        assert!(gone > 30, "{gone} of 50 expired keys cleared");
    }

    #[test]
    fn the_daemons_installs_set_both_bitmaps() {
        let c = cells(16);
        let b = Bitmaps::new(&c, 16).unwrap();
        b.clear_idle();
        b.flip();
        b.remember(&key(7));
        assert!(!b.proves_absent(&key(7)));
        // The other bitmap has it too: the next flip keeps it.
        b.clear_idle();
        b.flip();
        assert!(
            b.proves_absent(&key(7)),
            "a rebuild that walked nothing clears it"
        );
        b.remember(&key(7));
        b.flip();
        assert!(!b.proves_absent(&key(7)));
    }

    #[test]
    fn a_long_walk_spaces_the_next_one_out() {
        let t0 = Instant::now();
        assert_eq!(next_rebuild(t0, Duration::from_millis(30)), t0 + EVERY);
        assert_eq!(
            next_rebuild(t0, Duration::from_millis(500)),
            t0 + Duration::from_secs(10)
        );
    }

    #[test]
    fn rejects_storage_that_does_not_fit() {
        let c = cells(16);
        assert!(Bitmaps::new(&c, 32).is_none());
        assert!(Bitmaps::new(&c, 12).is_none());
        assert!(Bitmaps::new(&c, 16).is_some());
    }
}
