//! [`NpuCompute`]: `whisper::compute::Compute` on the NPU, with every op it lacks, and every
//! failure, served by a CPU fallback.
//!
//! Projection layers are prepared as int8 (`Weights::I8`, the CPU int8 form) and their codes
//! uploaded to the NPU once, at load. `linear` then runs the int8 pipeline of
//! kernels::linear_i8 with the GEMM on the NPU: activations quantized per row to u8 on the
//! host (kernels::quantize_rows_u8) straight into the run's input buffer, the i32
//! accumulators dequantized on the host with the same f32 operations. The result is
//! bit-identical to kernels::linear_i8 (tested through the host executor), so a call that
//! falls back to the CPU int8 kernel gives the same numbers. Products with fewer rows than
//! [`MIN_NPU_ROWS`] (decoder steps), shapes without an xclbin, other layer roles and
//! `attention` go to the fallback.

use crate::exec::{GemmExecutor, WeightKey};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use whisper::compute::{AttentionShape, Compute, LayerRole, Linear, Weights};

/// Fewer rows than this are not worth a ~50 µs NPU dispatch (and the decoder's products are
/// matrix-vector shaped).
pub const MIN_NPU_ROWS: usize = 64;

/// Per-channel data of uploaded weights for the host epilogue.
struct Resident {
    scales: Vec<f32>,
    col_sums: Vec<i32>,
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
    /// NPU runs (one per 1536-row chunk).
    pub npu_runs: u64,
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
            fallback: self.fallback_calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Prepares a projection for the NPU: int8 weights in the CPU's form, their codes
    /// uploaded once. None: not for the NPU (inactive, unsupported shape, upload failed).
    fn prepare_npu(&self, w: &[f32], n: usize, k: usize, bias: &Option<Vec<f32>>, role: LayerRole) -> Option<Linear> {
        let state = self.state.as_ref()?;
        if role != LayerRole::Projection || self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = state.lock().ok()?;
        if !st.exec.supports(k, n) {
            return None;
        }
        // The same quantization as QuantizedI8::new (it calls quantize_weights_i8).
        let (codes, scales) = kernels::quantize_weights_i8(w, n, k);
        let lin = Linear { n_out: n, k, weights: Weights::I8(kernels::QuantizedI8::new(w, n, k)), bias: bias.clone() };
        let key = weight_key(&lin)?;
        if let Err(e) = st.exec.upload_weights(key, &codes, k, n) {
            tracing::warn!("npu: uploading {n}x{k} weights failed, this layer stays on the CPU: {e}");
            return None;
        }
        let col_sums = (0..n).map(|j| codes[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum()).collect();
        st.weights.insert(key, Resident { scales, col_sums });
        Some(lin)
    }

    /// The NPU linear layer; Err means "use the fallback" (with the reason for failures).
    fn linear_npu(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]) -> Result<bool, String> {
        let Some(state) = &self.state else { return Ok(false) };
        if self.disabled.load(Ordering::Relaxed) || m < MIN_NPU_ROWS {
            return Ok(false);
        }
        let (k, n) = (lin.k, lin.n_out);
        let mut st = state.lock().map_err(|_| "NPU state poisoned by an earlier panic".to_string())?;
        let st = &mut *st;
        if !st.exec.supports(k, n) {
            return Ok(false);
        }
        let Some(key) = weight_key(lin) else { return Ok(false) };
        if !st.weights.contains_key(&key) || !st.exec.has_weights(&key) {
            // Not prepared by this backend (or evicted): the fallback handles it.
            return Ok(false);
        }
        let rows = st.exec.rows();
        st.q_scales.resize(rows, 0.0);
        st.q_zero_points.resize(rows, 0);
        for r0 in (0..m).step_by(rows) {
            let cnt = rows.min(m - r0);
            let input = st.exec.input(k, n)?;
            kernels::quantize_rows_u8(
                &x[r0 * k..(r0 + cnt) * k],
                cnt,
                k,
                &mut input[..cnt * k],
                &mut st.q_scales[..cnt],
                &mut st.q_zero_points[..cnt],
            );
            // Padding rows: zeros (their outputs are discarded).
            input[cnt * k..].fill(0);
            let acc = st.exec.run(&key, k, n)?;
            self.npu_runs.fetch_add(1, Ordering::Relaxed);
            let w = &st.weights[&key];
            for i in 0..cnt {
                let (sx, zx) = (st.q_scales[i], st.q_zero_points[i]);
                let out = &mut y[(r0 + i) * n..(r0 + i + 1) * n];
                let a = &acc[i * n..(i + 1) * n];
                // kernels::linear_i8's epilogue: the same f32 multiply then add, no FMA.
                for j in 0..n {
                    let b = lin.bias.as_ref().map_or(0.0, |b| b[j]);
                    out[j] = ((a[j] - zx * w.col_sums[j]) as f32) * (sx * w.scales[j]) + b;
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
}
