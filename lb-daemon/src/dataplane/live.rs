//! The live-frames benchmark (`BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel runs the program
//! on real page-pool frames in batches and really transmits `XDP_TX`/redirected frames,
//! so the timed loop is what a NIC driver would do. Used by `lb-bench` only.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::Duration,
};

use aya::maps::{Array, MapError, ProgramArray};
use lb_common::{bench_maps, program_names, BenchFrame};

use super::{program_mut, Dataplane, DataplaneError};

fn map_missing(map: &'static str) -> DataplaneError {
    DataplaneError::Map {
        map,
        source: MapError::InvalidName { name: map.into() },
    }
}

impl Dataplane {
    /// Puts the benchmark wrapper in front of `program` (one of
    /// `lb_common::program_names`) with `frame` as its template, and returns the
    /// wrapper's fd for [`live_test_run`]. One program at a time per data plane.
    pub fn live_wrap(
        &mut self,
        program: &'static str,
        frame: &BenchFrame,
    ) -> Result<OwnedFd, DataplaneError> {
        let err = |program| move |source| DataplaneError::Program { program, source };
        let target = program_mut(&mut self.ebpf, program)?;
        if target.fd().is_err() {
            target.load().map_err(err(program))?;
        }
        let target_fd = target
            .fd()
            .map_err(err(program))?
            .try_clone()
            .map_err(|e| err(program)(aya::programs::ProgramError::IOError(e)))?;
        let wrap = program_mut(&mut self.ebpf, program_names::BENCH_WRAP)?;
        if wrap.fd().is_err() {
            wrap.load().map_err(err(program_names::BENCH_WRAP))?;
        }
        let wrap_fd = wrap
            .fd()
            .map_err(err(program_names::BENCH_WRAP))?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DataplaneError::Program {
                program: program_names::BENCH_WRAP,
                source: aya::programs::ProgramError::IOError(e),
            })?;
        let map_err = |map| move |source| DataplaneError::Map { map, source };
        let mut progs = ProgramArray::try_from(
            self.ebpf
                .map_mut(bench_maps::PROGS)
                .ok_or_else(|| map_missing(bench_maps::PROGS))?,
        )
        .map_err(map_err(bench_maps::PROGS))?;
        progs
            .set(0, &target_fd, 0)
            .map_err(map_err(bench_maps::PROGS))?;
        let mut frames: Array<_, BenchFrame> = Array::try_from(
            self.ebpf
                .map_mut(bench_maps::FRAME)
                .ok_or_else(|| map_missing(bench_maps::FRAME))?,
        )
        .map_err(map_err(bench_maps::FRAME))?;
        frames
            .set(0, frame, 0)
            .map_err(map_err(bench_maps::FRAME))?;
        Ok(wrap_fd)
    }
}

impl Dataplane {
    /// The fd of `program` once loaded (by [`Dataplane::live_wrap`]): for a profile of
    /// its machine code (`lb-bench datapath --profile`).
    pub fn program_fd(&self, program: &'static str) -> Result<BorrowedFd<'_>, DataplaneError> {
        let err = |source| DataplaneError::Program { program, source };
        let prog = self
            .ebpf
            .program(program)
            .ok_or(err(aya::programs::ProgramError::UnexpectedProgramType))?;
        Ok(prog.fd().map_err(err)?.as_fd())
    }
}

/// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// `struct xdp_md` as the test run's input context.
#[repr(C)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// Runs `prog` (from [`Dataplane::live_wrap`]) `repeat` times on `frame` in live-frames
/// mode, `batch` frames at a time, as received on `ifindex` (whose `XDP_TX` is a real
/// transmit): the kernel-measured time per packet. A raw syscall rather than aya's
/// `test_run`, so that several threads can run the same program at once.
pub fn live_test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> io::Result<Duration> {
    let ctx = XdpMd {
        data: 0,
        data_end: frame.len() as u32,
        data_meta: 0,
        ingress_ifindex: ifindex,
        rx_queue_index: 0,
        egress_ifindex: 0,
    };
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..TestAttr::default()
    };
    // SAFETY: attr points at a valid, fully initialised bpf_attr prefix; the buffers it
    // names outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            size_of::<TestAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::from_nanos(attr.duration as u64))
}
