//! Executors of the int8 GEMM `C (i32, [rows][n]) = A (u8, [rows][k]) · Wᵀ` with `W` the
//! quantized weights (i8, `[n][k]`), one run per call for a fixed number of rows:
//!
//! * [`XrtExecutor`]: the NPU through XRT, with the xclbins of aie-build's catalog; device,
//!   contexts, kernels, instruction and activation/output buffers are opened once; weights are
//!   packed into the design's tile order and uploaded once per weight matrix;
//! * [`HostExecutor`]: the same contract on the CPU, reading the weights in the packed tile
//!   order the NPU receives (so the host tests check the packing the device would get).

use aie_build::catalog::{Target, TILE};
use aie_build::layout::{blocked_index, pack_gemm_weights};
use aie_build::NpuDevice;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use xrt::{Bo, BoFlags, Device, HwContext, Kernel, Run, SyncDirection, Xclbin};

/// Identity of a weight matrix (see `backend::weight_key`).
pub type WeightKey = (usize, usize, usize, u64);

/// Runs int8 GEMMs of a fixed row count.
pub trait GemmExecutor: Send {
    /// Rows of one run (inputs are zero-padded up to it).
    fn rows(&self) -> usize;
    /// Whether a `k x n` GEMM can run.
    fn supports(&self, k: usize, n: usize) -> bool;
    /// Whether the weights for `key` are already resident.
    fn has_weights(&self, key: &WeightKey) -> bool;
    /// Uploads quantized weights `q` (`[n][k]` i8) for `key`.
    fn upload_weights(&mut self, key: WeightKey, q: &[i8], k: usize, n: usize) -> Result<(), String>;
    /// The activation buffer of a `k`-column run (`rows x k` u8) to fill before [`Self::run`].
    fn input(&mut self, k: usize, n: usize) -> Result<&mut [u8], String>;
    /// Runs the GEMM with the filled input and the weights of `key`; returns `rows x n` i32.
    fn run(&mut self, key: &WeightKey, k: usize, n: usize) -> Result<&[i32], String>;
    /// A short description for logs.
    fn describe(&self) -> String;
}

// ------------------------------------------------------------------------------------ host

/// The GEMM contract on the CPU, from the NPU-packed weights.
pub struct HostExecutor {
    rows: usize,
    shapes: Vec<(usize, usize)>,
    mmul: (usize, usize, usize),
    weights: HashMap<WeightKey, Vec<i8>>,
    input: Vec<u8>,
    output: Vec<i32>,
    counters: Arc<HostCounters>,
}

/// What a [`HostExecutor`] did (shared, so tests can read it after boxing the executor).
#[derive(Debug, Default)]
pub struct HostCounters {
    pub runs: AtomicUsize,
    pub uploads: AtomicUsize,
}

impl HostExecutor {
    /// An executor for `rows`-row runs of the given (k, n) shapes with the tile layout of
    /// `device`.
    pub fn new(device: NpuDevice, rows: usize, shapes: &[(usize, usize)]) -> HostExecutor {
        HostExecutor {
            rows,
            shapes: shapes.to_vec(),
            mmul: device.mmul_i8(),
            weights: HashMap::new(),
            input: Vec::new(),
            output: Vec::new(),
            counters: Arc::default(),
        }
    }

    pub fn counters(&self) -> Arc<HostCounters> {
        self.counters.clone()
    }
}

impl GemmExecutor for HostExecutor {
    fn rows(&self) -> usize {
        self.rows
    }
    fn supports(&self, k: usize, n: usize) -> bool {
        self.shapes.contains(&(k, n))
    }
    fn has_weights(&self, key: &WeightKey) -> bool {
        self.weights.contains_key(key)
    }
    fn upload_weights(&mut self, key: WeightKey, q: &[i8], k: usize, n: usize) -> Result<(), String> {
        let (_, s, t) = self.mmul;
        self.weights.insert(key, pack_gemm_weights(q, n, k, TILE.1, TILE.2, s, t));
        self.counters.uploads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn input(&mut self, k: usize, _n: usize) -> Result<&mut [u8], String> {
        self.input.resize(self.rows * k, 0);
        Ok(&mut self.input)
    }
    fn run(&mut self, key: &WeightKey, k: usize, n: usize) -> Result<&[i32], String> {
        let packed = self.weights.get(key).ok_or("host executor: weights not uploaded")?;
        let (_, s, t) = self.mmul;
        let (tk, tn) = (TILE.1, TILE.2);
        self.output.resize(self.rows * n, 0);
        // Unpack the tile order once per run into [n][k] and multiply.
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
        let pw = kernels::PackedI8::new(&w, n, k);
        kernels::gemm_u8i8_i32(self.rows, &self.input, &pw, &mut self.output);
        self.counters.runs.fetch_add(1, Ordering::Relaxed);
        Ok(&self.output)
    }
    fn describe(&self) -> String {
        format!("host executor ({} rows)", self.rows)
    }
}

// -------------------------------------------------------------------------------------- XRT

/// One opened xclbin: context, kernel, instruction stream and the reusable buffers and run.
struct Slot {
    kernel: Kernel,
    // Field order is drop order: runs and buffers before the context and xclbin.
    run: Run,
    instr: Bo<u32>,
    n_words: u32,
    a: Bo<u8>,
    c: Bo<i32>,
    weights: HashMap<WeightKey, Bo<i8>>,
    _ctx: HwContext,
    _xclbin: Xclbin,
}

/// MLIR-AIE calling convention: arg 0 opcode (3 = transaction), 1 instruction buffer,
/// 2 instruction count, 3.. data buffers (inputs, then outputs).
const OPCODE: u32 = 3;
/// A GEMM that takes longer than this is treated as hung.
const RUN_TIMEOUT_MS: u32 = 10_000;

/// The NPU through XRT.
pub struct XrtExecutor {
    device: Device,
    npu: NpuDevice,
    rows: usize,
    slots: HashMap<(usize, usize), Slot>,
}

impl XrtExecutor {
    /// Opens device 0 and every target's xclbin under `root/<device>/`.
    pub fn open(root: &Path, npu: NpuDevice, targets: &[Target]) -> Result<XrtExecutor, String> {
        let device = Device::open(0).map_err(|e| e.to_string())?;
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
        Ok(XrtExecutor { device, npu, rows, slots })
    }
}

fn open_slot(device: &Device, dir: &Path, m: usize, k: usize, n: usize) -> Result<Slot, String> {
    let e = |e: xrt::Error| e.to_string();
    let xclbin = Xclbin::load(&dir.join(aie_build::manifest::XCLBIN_NAME)).map_err(e)?;
    device.register_xclbin(&xclbin).map_err(e)?;
    let ctx = HwContext::new(device, &xclbin).map_err(e)?;
    let name = xclbin.kernel_with_prefix("MLIR_AIE").map_err(e)?;
    let kernel = Kernel::open(&ctx, &name).map_err(e)?;
    let words = xrt::read_instructions(&dir.join(aie_build::manifest::INSTS_NAME)).map_err(|e| e.to_string())?;
    let mut instr = Bo::<u32>::alloc(device, words.len(), BoFlags::Cacheable, kernel.group_id(1).map_err(e)?).map_err(e)?;
    instr.write_and_sync(&words, 0).map_err(e)?;
    let a = Bo::<u8>::alloc(device, m * k, BoFlags::HostOnly, kernel.group_id(3).map_err(e)?).map_err(e)?;
    let c = Bo::<i32>::alloc(device, m * n, BoFlags::HostOnly, kernel.group_id(5).map_err(e)?).map_err(e)?;
    let run = Run::new(&kernel).map_err(e)?;
    Ok(Slot { kernel, run, instr, n_words: words.len() as u32, a, c, weights: HashMap::new(), _ctx: ctx, _xclbin: xclbin })
}

impl GemmExecutor for XrtExecutor {
    fn rows(&self) -> usize {
        self.rows
    }
    fn supports(&self, k: usize, n: usize) -> bool {
        self.slots.contains_key(&(k, n))
    }
    fn has_weights(&self, key: &WeightKey) -> bool {
        self.slots.values().any(|s| s.weights.contains_key(key))
    }
    fn upload_weights(&mut self, key: WeightKey, q: &[i8], k: usize, n: usize) -> Result<(), String> {
        let (_, s, t) = self.npu.mmul_i8();
        let packed = pack_gemm_weights(q, n, k, TILE.1, TILE.2, s, t);
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        let group = slot.kernel.group_id(4).map_err(|e| e.to_string())?;
        let mut bo = Bo::<i8>::alloc(&self.device, k * n, BoFlags::HostOnly, group).map_err(|e| e.to_string())?;
        bo.write_and_sync(&packed, 0).map_err(|e| e.to_string())?;
        slot.weights.insert(key, bo);
        Ok(())
    }
    fn input(&mut self, k: usize, n: usize) -> Result<&mut [u8], String> {
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        Ok(slot.a.as_mut_slice())
    }
    fn run(&mut self, key: &WeightKey, k: usize, n: usize) -> Result<&[i32], String> {
        let slot = self.slots.get_mut(&(k, n)).ok_or_else(|| format!("no xclbin for K={k}, N={n}"))?;
        let e = |e: xrt::Error| e.to_string();
        let b = slot.weights.get(key).ok_or("weights not uploaded")?;
        slot.a.sync(SyncDirection::ToDevice).map_err(e)?;
        slot.run.set_arg_u32(0, OPCODE).map_err(e)?;
        slot.run.set_arg_bo(1, &slot.instr).map_err(e)?;
        slot.run.set_arg_u32(2, slot.n_words).map_err(e)?;
        slot.run.set_arg_bo(3, &slot.a).map_err(e)?;
        slot.run.set_arg_bo(4, b).map_err(e)?;
        slot.run.set_arg_bo(5, &slot.c).map_err(e)?;
        slot.run.execute(RUN_TIMEOUT_MS).map_err(e)?;
        slot.c.sync(SyncDirection::FromDevice).map_err(e)?;
        Ok(slot.c.as_slice())
    }
    fn describe(&self) -> String {
        let mut shapes: Vec<_> = self.slots.keys().collect();
        shapes.sort();
        format!("XRT {} ({} rows, K x N {:?})", self.npu, self.rows, shapes)
    }
}
