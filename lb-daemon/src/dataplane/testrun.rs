//! Running the programs on a frame with `BPF_PROG_TEST_RUN`: the packet fixtures and the
//! data-path benchmark use it (feature `lab`: the production daemon never does).

use std::time::Duration;

use aya::{programs::TestRunOptions, TestRun};

use super::{program_mut, Dataplane, DataplaneError};

/// Bytes the program may prepend (tunnel headers) beyond the input frame.
const HEADROOM: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The XDP action (`XDP_PASS` = 2, `XDP_TX` = 3, ...).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Kernel-measured duration per repetition.
    pub duration: Duration,
}

impl Dataplane {
    /// Runs `program` (one of `lb_common::program_names`) on `frame`, `repeat` times.
    /// With `repeat > 1` the kernel does not restore the frame between runs.
    pub fn test_run(
        &mut self,
        program: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestRunOutput, DataplaneError> {
        self.test_run_on(program, frame, repeat, 0)
    }

    /// As [`Dataplane::test_run`], the frame received on `ifindex` (an interface of this
    /// network namespace; 0: none, as `test_run`).
    pub fn test_run_on(
        &mut self,
        program: &'static str,
        frame: &[u8],
        repeat: u32,
        ifindex: u32,
    ) -> Result<TestRunOutput, DataplaneError> {
        // `struct xdp_md`: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let ctx: Vec<u8> = [0, frame.len() as u32, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        let prog = program_mut(&mut self.ebpf, program)?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|source| DataplaneError::Program { program, source })?;
        }
        let mut out = vec![0u8; frame.len() + HEADROOM];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: repeat.max(1),
                ctx_in: (ifindex != 0).then_some(ctx.as_slice()),
                ..TestRunOptions::new()
            })
            .map_err(|source| DataplaneError::Program { program, source })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput {
            action: result.return_value,
            frame: out,
            duration: result.duration,
        })
    }
}
