//! [`NpuCompute`]: `whisper::compute::Compute` on the NPU, with every op it lacks, and every
//! failure, served by a CPU fallback.
//!
//! Projection layers are prepared as int8 (`Weights::I8`, the CPU int8 form) and their codes
//! uploaded to the NPU once, at load, one block per xclbin-sized column block (the fused QKV
//! projection `n = 3·d` as three `d`-column blocks, see [`crate::plan::column_blocks`]).
//! `linear` then runs the int8 pipeline of kernels::linear_i8 with the GEMM on the NPU:
//! activations quantized per row to u8 on the host (kernels::quantize_rows_u8) straight into
//! the runs' input buffers, the runs submitted as planned by [`crate::plan::plan_submissions`]
//! (chained in one run list when XRT has them), the i32 accumulators dequantized on the host
//! with the same f32 operations. The result is bit-identical to kernels::linear_i8 (tested
//! through the host executor, chained and not), so a call that falls back to the CPU int8
//! kernel gives the same numbers. Products with fewer rows than [`MIN_NPU_ROWS`] (decoder
//! steps), shapes without an xclbin, other layer roles and `attention` go to the fallback.
//! The fallback also decides the decoder's cache types (`kv_type`, `cross_kv_type`) and runs
//! every attention; the app wraps an int8 CPU only (`--compute-type int8`), since the NPU
//! projections are int8 whatever the fallback's type.

use crate::exec::{GemmExecutor, WeightKey};
use crate::plan::{self, Blocks};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use whisper::compute::{AttentionShape, Compute, KvType, KvView, LayerRole, Linear, Weights};
use kernels::KtShape;

/// Fewer rows than this are not worth a ~50 µs NPU dispatch (and the decoder's products are
/// matrix-vector shaped).
pub const MIN_NPU_ROWS: usize = 64;

/// Per-channel data of uploaded weights for the host epilogue.
struct Resident {
    scales: Vec<f32>,
    col_sums: Vec<i32>,
    blocks: Blocks,
}

struct State {
    exec: Box<dyn GemmExecutor>,
    weights: std::collections::HashMap<WeightKey, Resident>,
    q_scales: Vec<f32>,
    q_zero_points: Vec<i32>,
}

/// Counters of where work went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NpuStats {
    /// `linear` calls served by the NPU.
    pub npu_linear: u64,
    /// NPU runs (one per 1536-row chunk and column block).
    pub npu_runs: u64,
    /// Submissions to the NPU: run lists (several runs, one wait) or single runs.
    pub npu_submissions: u64,
    /// Calls served by the fallback (small, unsupported, attention, or after a failure).
    pub fallback: u64,
    /// NPU failures (each disables the NPU path).
    pub failures: u64,
}

/// The NPU compute backend.
pub struct NpuCompute<F: Compute = whisper::compute::Cpu> {
    fallback: F,
    state: Option<Mutex<State>>,
    disabled: AtomicBool,
    why_not: Option<String>,
    npu_linear: AtomicU64,
    npu_runs: AtomicU64,
    npu_submissions: AtomicU64,
    fallback_calls: AtomicU64,
    failures: AtomicU64,
}

/// Identity of int8 weights prepared by [`NpuCompute::prepare`]: the address of their
/// per-channel scales (heap data, stable while the `Linear` lives, whatever moves it), the
/// shape, and a hash of every scale, so that weights freed and replaced at the same address
/// are not mistaken for the old ones.
pub fn weight_key(lin: &Linear) -> Option<WeightKey> {
    let Weights::I8(q) = &lin.weights else { return None };
    let scales = q.scales();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in scales {
        h = (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3);
    }
    Some((scales.as_ptr() as usize, lin.n_out, lin.k, h))
}

impl<F: Compute> NpuCompute<F> {
    /// A backend that uses `exec` for the GEMMs it supports and `fallback` for the rest.
    pub fn with_executor(fallback: F, exec: Box<dyn GemmExecutor>) -> NpuCompute<F> {
        tracing::info!("npu: using {}", exec.describe());
        NpuCompute {
            fallback,
            state: Some(Mutex::new(State { exec, weights: Default::default(), q_scales: Vec::new(), q_zero_points: Vec::new() })),
            disabled: AtomicBool::new(false),
            why_not: None,
            npu_linear: AtomicU64::new(0),
            npu_runs: AtomicU64::new(0),
            npu_submissions: AtomicU64::new(0),
            fallback_calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// A backend that only forwards to `fallback`, recording why the NPU is not used.
    pub fn fallback_only(fallback: F, why: String) -> NpuCompute<F> {
        tracing::info!("npu: not used: {why}");
        NpuCompute {
            fallback,
            state: None,
            disabled: AtomicBool::new(true),
            why_not: Some(why),
            npu_linear: AtomicU64::new(0),
            npu_runs: AtomicU64::new(0),
            npu_submissions: AtomicU64::new(0),
            fallback_calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Probes the NPU under `xclbin_root` and opens it, or falls back (logging why).
    pub fn open(fallback: F, xclbin_root: &std::path::Path) -> NpuCompute<F> {
        match crate::probe::probe(xclbin_root) {
            crate::Availability::Available { device, .. } => {
                match crate::exec::XrtExecutor::open(xclbin_root, device, &crate::probe::required_targets()) {
                    Ok(exec) => NpuCompute::with_executor(fallback, Box::new(exec)),
                    Err(e) => NpuCompute::fallback_only(fallback, crate::Reason::Setup { detail: e }.to_string()),
                }
            }
            crate::Availability::Unavailable(r) => NpuCompute::fallback_only(fallback, r.to_string()),
        }
    }

    /// Whether the NPU path is active (not unavailable, not disabled by a failure).
    pub fn npu_active(&self) -> bool {
        self.state.is_some() && !self.disabled.load(Ordering::Relaxed)
    }

    /// Why the NPU is not used (None while it is).
    pub fn why_not(&self) -> Option<&str> {
        self.why_not.as_deref()
    }

    pub fn stats(&self) -> NpuStats {
        NpuStats {
            npu_linear: self.npu_linear.load(Ordering::Relaxed),
            npu_runs: self.npu_runs.load(Ordering::Relaxed),
            npu_submissions: self.npu_submissions.load(Ordering::Relaxed),
            fallback: self.fallback_calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Prepares a projection for the NPU: int8 weights in the CPU's form, their codes
    /// uploaded once, block by block. None: not for the NPU (inactive, no xclbin for the
    /// shape, upload failed).
    fn prepare_npu(&self, w: &[f32], n: usize, k: usize, bias: &Option<Vec<f32>>, role: LayerRole) -> Option<Linear> {
        let state = self.state.as_ref()?;
        if role != LayerRole::Projection || self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = state.lock().ok()?;
        let blocks = plan::column_blocks(k, n, &st.exec.shapes())?;
        // The same quantization as QuantizedI8::new (it calls quantize_weights_i8).
        let (codes, scales) = kernels::quantize_weights_i8(w, n, k);
        let lin = Linear { n_out: n, k, weights: Weights::I8(kernels::QuantizedI8::new(w, n, k)), bias: bias.clone() };
        let key = weight_key(&lin)?;
        // Column block b is weight rows b·n_block.. of the [n][k] codes: contiguous.
        let block_len = blocks.n_block * k;
        for b in 0..blocks.count {
            if let Err(e) = st.exec.upload_weights((key, b), &codes[b * block_len..(b + 1) * block_len], k, blocks.n_block) {
                tracing::warn!("npu: uploading {n}x{k} weights failed, this layer stays on the CPU: {e}");
                return None;
            }
        }
        let col_sums = (0..n).map(|j| codes[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum()).collect();
        st.weights.insert(key, Resident { scales, col_sums, blocks });
        Some(lin)
    }

    /// The NPU linear layer. Ok(false): not for the NPU (the fallback runs it); Err: the NPU
    /// failed (the fallback runs it and the NPU is turned off).
    fn linear_npu(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]) -> Result<bool, String> {
        let Some(state) = &self.state else { return Ok(false) };
        if self.disabled.load(Ordering::Relaxed) || m < MIN_NPU_ROWS {
            return Ok(false);
        }
        let (k, n) = (lin.k, lin.n_out);
        let mut st = state.lock().map_err(|_| "NPU state poisoned by an earlier panic".to_string())?;
        let st = &mut *st;
        let Some(key) = weight_key(lin) else { return Ok(false) };
        let Some(blocks) = st.weights.get(&key).map(|w| w.blocks) else {
            // Not prepared by this backend: the fallback handles it.
            return Ok(false);
        };
        if !(0..blocks.count).all(|b| st.exec.has_weights(&(key, b))) {
            return Ok(false);
        }
        let nb = blocks.n_block;
        let rows = st.exec.rows();
        let chunks = plan::row_chunks(m, rows);
        let submissions = plan::plan_submissions(chunks.len(), blocks.count, st.exec.chain_mode());
        let (inputs, _) = plan::slots_needed(&submissions);
        // Row quantization parameters per input slot (a slot keeps its chunk across
        // submissions when a chunk's blocks do not fit in one).
        st.q_scales.resize(inputs * rows, 0.0);
        st.q_zero_points.resize(inputs * rows, 0);
        for sub in &submissions {
            for &(c, slot) in &sub.fill {
                let ch = chunks[c];
                let input = st.exec.input(k, nb, slot)?;
                let qs = slot * rows..slot * rows + ch.rows;
                kernels::quantize_rows_u8(
                    &x[ch.row0 * k..(ch.row0 + ch.rows) * k],
                    ch.rows,
                    k,
                    &mut input[..ch.rows * k],
                    &mut st.q_scales[qs.clone()],
                    &mut st.q_zero_points[qs],
                );
                // Padding rows: zeros (their outputs are discarded).
                input[ch.rows * k..].fill(0);
            }
            st.exec.submit(&key, k, nb, &sub.runs)?;
            self.npu_runs.fetch_add(sub.runs.len() as u64, Ordering::Relaxed);
            self.npu_submissions.fetch_add(1, Ordering::Relaxed);
            let w = &st.weights[&key];
            for r in &sub.runs {
                let ch = chunks[r.chunk];
                let acc = st.exec.output(k, nb, r.output)?;
                let c0 = r.block * nb;
                for i in 0..ch.rows {
                    let (sx, zx) = (st.q_scales[r.input * rows + i], st.q_zero_points[r.input * rows + i]);
                    let out = &mut y[(ch.row0 + i) * n + c0..(ch.row0 + i) * n + c0 + nb];
                    let a = &acc[i * nb..(i + 1) * nb];
                    // kernels::linear_i8's epilogue: the same f32 multiply then add, no FMA.
                    for j in 0..nb {
                        let b = lin.bias.as_ref().map_or(0.0, |b| b[c0 + j]);
                        out[j] = ((a[j] - zx * w.col_sums[c0 + j]) as f32) * (sx * w.scales[c0 + j]) + b;
                    }
                }
            }
        }
        Ok(true)
    }
}

impl<F: Compute> Compute for NpuCompute<F> {
    fn name(&self) -> String {
        if self.npu_active() {
            format!("npu-int8 (fallback {})", self.fallback.name())
        } else {
            self.fallback.name()
        }
    }

    fn prepare(&self, w: &[f32], n_out: usize, k: usize, bias: Option<Vec<f32>>, role: LayerRole) -> Linear {
        match self.prepare_npu(w, n_out, k, &bias, role) {
            Some(lin) => lin,
            None => self.fallback.prepare(w, n_out, k, bias, role),
        }
    }

    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]) {
        assert!(x.len() >= m * lin.k && y.len() >= m * lin.n_out, "linear: buffers too small");
        match self.linear_npu(x, m, lin, y) {
            Ok(true) => {
                self.npu_linear.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(false) => {}
            Err(e) => {
                // A failed run may leave the device in an unknown state: stop using it.
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.disabled.swap(true, Ordering::Relaxed) {
                    tracing::warn!("npu: GEMM {}x{}x{} failed, using the CPU from now on: {e}", m, lin.k, lin.n_out);
                }
            }
        }
        self.fallback_calls.fetch_add(1, Ordering::Relaxed);
        self.fallback.linear(x, m, lin, y)
    }

    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, out: &mut [f32]) {
        // No NPU attention yet: the LUT softmax kernel exists but the fused pipeline does not.
        self.fallback_calls.fetch_add(1, Ordering::Relaxed);
        self.fallback.attention(q, k, v, shape, out)
    }

    // Everything below is the fallback's, so that the NPU path keeps the CPU compute's cache
    // types (int8 cross-attention, f16 self-attention for int8) and its attention kernels.
    fn attention_qkv(&self, qkv: &[f32], shape: AttentionShape, out: &mut [f32]) {
        self.fallback_calls.fetch_add(1, Ordering::Relaxed);
        self.fallback.attention_qkv(qkv, shape, out)
    }

    fn kv_type(&self) -> KvType {
        self.fallback.kv_type()
    }

    fn cross_kv_type(&self) -> KvType {
        self.fallback.cross_kv_type()
    }

    fn attention_cached(&self, q: &[f32], kv: KvView<'_>, shape: KtShape, out: &mut [f32]) {
        self.fallback.attention_cached(q, kv, shape, out)
    }

    fn attention_scores(&self, q: &[f32], kv: KvView<'_>, shape: KtShape, head: usize, out: &mut [f32]) {
        self.fallback.attention_scores(q, kv, shape, head, out)
    }
}
