//! Executors of the int8 GEMM `C (i32, [rows][n]) = A (u8, [rows][k]) · Wᵀ` with `W` quantized
//! weights (i8, `[n][k]`), for a fixed run height `rows`, in submissions of one or more runs
//! planned by [`crate::plan`]:
//!
//! * [`XrtExecutor`]: the NPU through XRT, with the xclbins of aie-build's catalog. Device,
//!   hardware contexts, kernels and instruction buffers are opened once; weights are packed
//!   into the design's tile order and uploaded once per weight block; input and output buffers
//!   and run objects are allocated on first need (up to the chain length) and reused by every
//!   later call; the runs of a submission go to the device as one `xrt::runlist` when the shim
//!   has it ([`ChainMode::RunList`]), else start/wait each;
//! * [`HostExecutor`]: the same contract on the CPU, reading the weights in the packed tile
//!   order the NPU receives and enforcing the limits XRT imposes on a submission (so the host
//!   tests check the packing and the chaining the device would get).

use crate::plan::{ChainMode, RunSpec};
use aie_build::catalog::{Target, TILE};
use aie_build::layout::{blocked_index, pack_gemm_weights};
use aie_build::NpuDevice;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use xrt::{Bo, BoFlags, Device, HwContext, Kernel, Run, RunList, SyncDirection, Xclbin};

/// Identity of a weight matrix (see `backend::weight_key`).
pub type WeightKey = (usize, usize, usize, u64);

/// One column block of a weight matrix (see [`crate::plan::column_blocks`]).
pub type BlockKey = (WeightKey, usize);

/// Runs int8 GEMMs of a fixed row count, in submissions of one or more runs.
pub trait GemmExecutor: Send {
    /// Rows of one run (inputs are zero-padded up to it).
    fn rows(&self) -> usize;
    /// The `(k, n)` shapes a run can have.
    fn shapes(&self) -> Vec<(usize, usize)>;
    /// Whether a `k x n` run exists.
    fn supports(&self, k: usize, n: usize) -> bool {
        self.shapes().contains(&(k, n))
    }
    /// How the runs of one submission reach the device (bounds the runs per submission).
    fn chain_mode(&self) -> ChainMode;
    /// Whether the weights of `key` are resident.
    fn has_weights(&self, key: &BlockKey) -> bool;
    /// Uploads quantized weights `q` (`[n][k]` i8) for `key`, to be run as a `k x n` GEMM.
    fn upload_weights(&mut self, key: BlockKey, q: &[i8], k: usize, n: usize) -> Result<(), String>;
    /// Input slot `slot` of the `k x n` runs (`rows x k` u8), to fill before [`Self::submit`].
    fn input(&mut self, k: usize, n: usize, slot: usize) -> Result<&mut [u8], String>;
    /// Runs `runs` (at most `chain_mode().max_runs()`, distinct output slots) with the
    /// weight blocks `(key, run.block)`, and waits for all of them.
    fn submit(&mut self, key: &WeightKey, k: usize, n: usize, runs: &[RunSpec]) -> Result<(), String>;
    /// Output slot `slot` of the `k x n` runs after [`Self::submit`] (`rows x n` i32).
    fn output(&self, k: usize, n: usize, slot: usize) -> Result<&[i32], String>;
    /// A short description for logs.
    fn describe(&self) -> String;
}

/// The limits XRT puts on one submission: 1..=max runs, each with its own run object
/// (output slot), reading input slots that exist.
fn check_submission(mode: ChainMode, runs: &[RunSpec], inputs: usize) -> Result<(), String> {
    if runs.is_empty() || runs.len() > mode.max_runs() {
        return Err(format!("{} runs in one submission; {mode} allows 1..={}", runs.len(), mode.max_runs()));
    }
    for (i, r) in runs.iter().enumerate() {
        if runs[..i].iter().any(|o| o.output == r.output) {
            return Err(format!("output slot {} twice in one submission (a run object may be queued once)", r.output));
        }
        if r.input >= inputs {
            return Err(format!("input slot {} was never filled", r.input));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ host

/// The GEMM contract on the CPU, from the NPU-packed weights.
pub struct HostExecutor {
    rows: usize,
    shapes: Vec<(usize, usize)>,
    mmul: (usize, usize, usize),
    mode: ChainMode,
    weights: HashMap<BlockKey, kernels::PackedI8>,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<i32>>,
    counters: Arc<HostCounters>,
}

/// What a [`HostExecutor`] did (shared, so tests can read it after boxing the executor).
#[derive(Debug, Default)]
pub struct HostCounters {
    pub runs: AtomicUsize,
    pub uploads: AtomicUsize,
    /// Submissions (run lists, or single runs).
    pub submissions: AtomicUsize,
    /// Most runs seen in one submission.
    pub longest_submission: AtomicUsize,
    /// Input and output buffers allocated (each once, then reused).
    pub buffers: AtomicUsize,
}

impl HostExecutor {
    /// An executor for `rows`-row runs of the given (k, n) shapes with the tile layout of
    /// `device`, one run per submission.
    pub fn new(device: NpuDevice, rows: usize, shapes: &[(usize, usize)]) -> HostExecutor {
        HostExecutor {
            rows,
            shapes: shapes.to_vec(),
            mmul: device.mmul_i8(),
            mode: ChainMode::StartWait,
            weights: HashMap::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            counters: Arc::default(),
        }
    }

    /// The same, accepting submissions as `mode` does (e.g. run lists of several runs).
    pub fn with_chain_mode(mut self, mode: ChainMode) -> HostExecutor {
        self.mode = mode;
        self
    }

    pub fn counters(&self) -> Arc<HostCounters> {
        self.counters.clone()
    }
}

impl GemmExecutor for HostExecutor {
    fn rows(&self) -> usize {
        self.rows
    }
    fn shapes(&self) -> Vec<(usize, usize)> {
        self.shapes.clone()
    }
    fn chain_mode(&self) -> ChainMode {
        self.mode
    }
    fn has_weights(&self, key: &BlockKey) -> bool {
        self.weights.contains_key(key)
    }
    fn upload_weights(&mut self, key: BlockKey, q: &[i8], k: usize, n: usize) -> Result<(), String> {
        if !self.supports(k, n) {
            return Err(format!("host executor: no {k}x{n} runs"));
        }
        let (_, s, t) = self.mmul;
        let (tk, tn) = (TILE.1, TILE.2);
        let packed = pack_gemm_weights(q, n, k, tk, tn, s, t);
        // Read back from the device's tile order into [n][k]: a wrong packing gives wrong sums.
        let mut w = vec![0i8; n * k];
        for nt in 0..n / tn {
            for kt in 0..k / tk {
                let base = (nt * (k / tk) + kt) * tk * tn;
                for p in 0..tk {
                    for j in 0..tn {
                        w[(nt * tn + j) * k + kt * tk + p] = packed[base + blocked_index(p, j, tn, s, t)];
                    }
                }
            }
        }
        self.weights.insert(key, kernels::PackedI8::new(&w, n, k));
        self.counters.uploads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn input(&mut self, k: usize, n: usize, slot: usize) -> Result<&mut [u8], String> {
        if !self.supports(k, n) || slot >= self.mode.max_runs() {
            return Err(format!("host executor: no input slot {slot} for {k}x{n} runs"));
        }
        while self.inputs.len() <= slot {
            self.inputs.push(Vec::new());
            self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        }
        let buf = &mut self.inputs[slot];
        buf.resize(self.rows * k, 0);
        Ok(buf)
    }
    fn submit(&mut self, key: &WeightKey, k: usize, n: usize, runs: &[RunSpec]) -> Result<(), String> {
        check_submission(self.mode, runs, self.inputs.len()).map_err(|e| format!("host executor: {e}"))?;
        for r in runs {
            let w = self.weights.get(&(*key, r.block)).ok_or("host executor: weights not uploaded")?;
            let a = &self.inputs[r.input];
            if a.len() != self.rows * k {
                return Err(format!("host executor: input slot {} holds {} bytes, not {}x{k}", r.input, a.len(), self.rows));
            }
            while self.outputs.len() <= r.output {
                self.outputs.push(Vec::new());
                self.counters.buffers.fetch_add(1, Ordering::Relaxed);
            }
            let c = &mut self.outputs[r.output];
            c.resize(self.rows * n, 0);
            kernels::gemm_u8i8_i32(self.rows, a, w, c);
        }
        self.counters.runs.fetch_add(runs.len(), Ordering::Relaxed);
        self.counters.submissions.fetch_add(1, Ordering::Relaxed);
        self.counters.longest_submission.fetch_max(runs.len(), Ordering::Relaxed);
        Ok(())
    }
    fn output(&self, _k: usize, n: usize, slot: usize) -> Result<&[i32], String> {
        match self.outputs.get(slot) {
            Some(c) if c.len() == self.rows * n => Ok(c),
            _ => Err(format!("host executor: output slot {slot} holds no {n}-column result")),
        }
    }
    fn describe(&self) -> String {
        format!("host executor ({} rows, {})", self.rows, self.mode)
    }
}

// -------------------------------------------------------------------------------------- XRT

/// One opened xclbin (one `k x n` shape): context, kernel, instruction stream, the resident
/// weight blocks, and the reusable input/output buffers and run objects (run `i` writes
/// output `i`; its fixed arguments are set once).
struct Slot {
    // Field order is drop order: the run list before its runs, runs before the buffers they
    // name, everything before the kernel, context and xclbin.
    list: Option<RunList>,
    runs: Vec<Run>,
    inputs: Vec<Bo<u8>>,
    /// Input slots written by the host since their last sync to the device.
    dirty: Vec<bool>,
    outputs: Vec<Bo<i32>>,
    weights: HashMap<BlockKey, Bo<i8>>,
    instr: Bo<u32>,
    n_words: u32,
    m: usize,
    k: usize,
    n: usize,
    kernel: Kernel,
    ctx: HwContext,
    _xclbin: Xclbin,
}

/// MLIR-AIE calling convention: arg 0 opcode (3 = transaction), 1 instruction buffer,
/// 2 instruction count, 3.. data buffers (inputs A and W, then the output C).
const OPCODE: u32 = 3;
const ARG_A: i32 = 3;
const ARG_W: i32 = 4;
const ARG_C: i32 = 5;
/// A GEMM that takes longer than this is treated as hung (a run list gets this per run).
const RUN_TIMEOUT_MS: u32 = 10_000;

fn xe(e: xrt::Error) -> String {
    e.to_string()
}

impl Slot {
    /// Allocates input slots up to `inputs` and output slots (with their runs) up to
    /// `outputs`; existing ones are kept (this is the only allocation after opening).
    fn ensure(&mut self, device: &Device, inputs: usize, outputs: usize) -> Result<(), String> {
        while self.inputs.len() < inputs {
            let a = Bo::<u8>::alloc(device, self.m * self.k, BoFlags::HostOnly, self.kernel.group_id(ARG_A).map_err(xe)?).map_err(xe)?;
            self.inputs.push(a);
            self.dirty.push(false);
        }
        while self.outputs.len() < outputs {
            let c = Bo::<i32>::alloc(device, self.m * self.n, BoFlags::HostOnly, self.kernel.group_id(ARG_C).map_err(xe)?).map_err(xe)?;
            let mut run = Run::new(&self.kernel).map_err(xe)?;
            run.set_arg_u32(0, OPCODE).map_err(xe)?;
            run.set_arg_bo(1, &self.instr).map_err(xe)?;
            run.set_arg_u32(2, self.n_words).map_err(xe)?;
            run.set_arg_bo(ARG_C, &c).map_err(xe)?;
            self.outputs.push(c);
            self.runs.push(run);
        }
        Ok(())
    }
}

/// The NPU through XRT.
pub struct XrtExecutor {
    // Slots (buffers, runs, contexts) before the device.
    slots: HashMap<(usize, usize), Slot>,
    device: Device,
    npu: NpuDevice,
    rows: usize,
    mode: ChainMode,
    mode_reason: String,
}

impl XrtExecutor {
    /// Opens device 0 and every target's xclbin under `root/<device>/`, and chooses how runs
    /// are chained (run lists when the shim has them and [`crate::plan::RUNLIST_ENV`] does not
    /// turn them off, and a run list can be created in every context).
    pub fn open(root: &Path, npu: NpuDevice, targets: &[Target]) -> Result<XrtExecutor, String> {
        let device = Device::open(0).map_err(xe)?;
        let mut slots = HashMap::new();
        let mut rows = 0;
        for t in targets {
            let aie_build::TargetKind::GemmU8I8I32 { m, k, n } = t.kind else {
                return Err(format!("{}: the XRT executor runs only u8 x i8 -> i32 GEMMs", t.name));
            };
            rows = m;
            let dir = root.join(npu.name()).join(&t.name);
            let slot = open_slot(&device, &dir, m, k, n).map_err(|e| format!("{}: {e}", dir.display()))?;
            slots.insert((k, n), slot);
        }
        let env = std::env::var(crate::plan::RUNLIST_ENV).ok();
        let (mut mode, mut mode_reason) = crate::plan::choose_chain_mode(xrt::build_info().has_runlist, env.as_deref());
        if let ChainMode::RunList { .. } = mode {
            for slot in slots.values_mut() {
                match RunList::new(&slot.ctx) {
                    Ok(l) => slot.list = Some(l),
                    Err(e) => {
                        mode = ChainMode::StartWait;
                        mode_reason = format!("creating an xrt::runlist failed ({e})");
                        break;
                    }
                }
            }
            if mode == ChainMode::StartWait {
                for slot in slots.values_mut() {
                    slot.list = None;
                }
            }
        }
        tracing::info!("npu: {mode}: {mode_reason}");
        Ok(XrtExecutor { slots, device, npu, rows, mode, mode_reason })
    }
}

fn open_slot(device: &Device, dir: &Path, m: usize, k: usize, n: usize) -> Result<Slot, String> {
    let xclbin = Xclbin::load(&dir.join(aie_build::manifest::XCLBIN_NAME)).map_err(xe)?;
    device.register_xclbin(&xclbin).map_err(xe)?;
    let ctx = HwContext::new(device, &xclbin).map_err(xe)?;
    let name = xclbin.kernel_with_prefix("MLIR_AIE").map_err(xe)?;
    let kernel = Kernel::open(&ctx, &name).map_err(xe)?;
    let words = xrt::read_instructions(&dir.join(aie_build::manifest::INSTS_NAME)).map_err(|e| e.to_string())?;
    let mut instr = Bo::<u32>::alloc(device, words.len(), BoFlags::Cacheable, kernel.group_id(1).map_err(xe)?).map_err(xe)?;
    instr.write_and_sync(&words, 0).map_err(xe)?;
    let mut slot = Slot {
        list: None,
        runs: Vec::new(),
        inputs: Vec::new(),
        dirty: Vec::new(),
        outputs: Vec::new(),
        weights: HashMap::new(),
        instr,
        n_words: words.len() as u32,
        m,
        k,
        n,
        kernel,
        ctx,
        _xclbin: xclbin,
    };
    // The buffers of an unchained call exist from the start, so that a missing memlock
    // allowance shows up at open time rather than in the first encoder call.
    slot.ensure(device, 1, 1)?;
    Ok(slot)
}

impl GemmExecutor for XrtExecutor {
    fn rows(&self) -> usize {
        self.rows
    }
    fn shapes(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<_> = self.slots.keys().copied().collect();
        v.sort();
        v
    }
    fn supports(&self, k: usize, n: usize) -> bool {
        self.slots.contains_key(&(k, n))
    }
    fn chain_mode(&self) -> ChainMode {
        self.mode
    }
    fn has_weights(&self, key: &BlockKey) -> bool {
        self.slots.values().any(|s| s.weights.contains_key(key))
    }
    fn upload_weights(&mut self, key: BlockKey, q: &[i8], k: usize, n: usize) -> Result<(), String> {
        let (_, s, t) = self.npu.mmul_i8();
        let packed = pack_gemm_weights(q, n, k, TILE.1, TILE.2, s, t);
        let device = &self.device;
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        let group = slot.kernel.group_id(ARG_W).map_err(xe)?;
        let mut bo = Bo::<i8>::alloc(device, k * n, BoFlags::HostOnly, group).map_err(xe)?;
        bo.write_and_sync(&packed, 0).map_err(xe)?;
        slot.weights.insert(key, bo);
        Ok(())
    }
    fn input(&mut self, k: usize, n: usize, slot_index: usize) -> Result<&mut [u8], String> {
        let max = self.mode.max_runs();
        if slot_index >= max {
            return Err(format!("input slot {slot_index} beyond the chain length {max}"));
        }
        let device = &self.device;
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        slot.ensure(device, slot_index + 1, 0)?;
        slot.dirty[slot_index] = true;
        Ok(slot.inputs[slot_index].as_mut_slice())
    }
    fn submit(&mut self, key: &WeightKey, k: usize, n: usize, runs: &[RunSpec]) -> Result<(), String> {
        let mode = self.mode;
        let outputs = runs.iter().map(|r| r.output + 1).max().unwrap_or(0);
        let device = &self.device;
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        check_submission(mode, runs, slot.inputs.len())?;
        slot.ensure(device, 0, outputs)?;
        for (i, dirty) in slot.dirty.iter_mut().enumerate() {
            if std::mem::take(dirty) {
                slot.inputs[i].sync(SyncDirection::ToDevice).map_err(xe)?;
            }
        }
        for r in runs {
            let w = slot.weights.get(&(*key, r.block)).ok_or("weights not uploaded")?;
            let run = &mut slot.runs[r.output];
            run.set_arg_bo(ARG_A, &slot.inputs[r.input]).map_err(xe)?;
            run.set_arg_bo(ARG_W, w).map_err(xe)?;
        }
        match (&mut slot.list, runs) {
            (Some(list), [_, _, ..]) => {
                // One submission, executed in order, one wait; then the list is emptied so its
                // runs are free for the next call (XRT queues a run object in one list only).
                for r in runs {
                    list.add(&slot.runs[r.output]).map_err(xe)?;
                }
                list.execute().map_err(xe)?;
                list.wait(RUN_TIMEOUT_MS.saturating_mul(runs.len() as u32)).map_err(xe)?;
                list.reset().map_err(xe)?;
            }
            _ => {
                for r in runs {
                    slot.runs[r.output].execute(RUN_TIMEOUT_MS).map_err(xe)?;
                }
            }
        }
        for r in runs {
            slot.outputs[r.output].sync(SyncDirection::FromDevice).map_err(xe)?;
        }
        Ok(())
    }
    fn output(&self, k: usize, n: usize, slot_index: usize) -> Result<&[i32], String> {
        let slot = self.slots.get(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        slot.outputs.get(slot_index).map(|c| c.as_slice()).ok_or_else(|| format!("no output slot {slot_index}"))
    }
    fn describe(&self) -> String {
        format!("XRT {} ({} rows, K x N {:?}, {}: {})", self.npu, self.rows, self.shapes(), self.mode, self.mode_reason)
    }
}
