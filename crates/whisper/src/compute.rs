//! The narrow compute interface of the model graph: every matrix product and attention goes
//! through [`Compute`], so faster kernels (f32/int8/bf16) or an NPU can be swapped in without
//! touching the graph. [`Cpu`] is the CPU backend on top of the `kernels` crate.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

/// Numeric type of the weights of the big matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit float (reference accuracy).
    F32,
    /// int8 weights per output channel, int8 activations per row, i32 accumulation (VNNI).
    Int8,
    /// bfloat16 weights and activations, f32 accumulation (AVX512_BF16).
    Bf16,
}

impl WeightType {
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::Int8 => "int8",
            WeightType::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for WeightType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WeightType {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "f32" | "float32" => Ok(WeightType::F32),
            "int8" => Ok(WeightType::Int8),
            "bf16" | "bfloat16" => Ok(WeightType::Bf16),
            _ => Err(crate::Error::InvalidArgument(format!("unknown compute type `{s}` (use f32, int8 or bf16)"))),
        }
    }
}

/// What a linear layer is for; backends may keep some roles in higher precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerRole {
    /// The two encoder convolutions (small, precision-sensitive: kept in f32).
    Conv,
    /// Attention and MLP projections.
    Projection,
    /// The vocabulary projection of the decoder.
    Logits,
}

/// Weights of a linear layer in the form the backend prepared.
pub enum Weights {
    F32(kernels::PackedF32),
    I8(kernels::QuantizedI8),
    Bf16(kernels::PackedBf16),
}

/// A linear layer `y = x·Wᵀ + b` with `W` given row-major `[n_out][k]` (the PyTorch and
/// CTranslate2 layout) and held in the backend's prepared form.
pub struct Linear {
    pub n_out: usize,
    pub k: usize,
    pub weights: Weights,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    /// Bytes held by the prepared weights and bias.
    pub fn bytes(&self) -> usize {
        let w = match &self.weights {
            Weights::F32(_) => self.n_out * self.k * 4,
            Weights::I8(_) => self.n_out * self.k + self.n_out * 8,
            Weights::Bf16(_) => self.n_out * self.k * 2,
        };
        w + self.bias.as_ref().map_or(0, Vec::len) * 4
    }
}

/// Shapes of one multi-head attention call. Rows of `q` are queries, rows of `k`/`v` keys and
/// values; each row holds `n_heads * head_dim` values, heads side by side (the model layout).
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Queries are the last `n_q` positions and see only keys up to their own position.
    pub causal: bool,
}

/// The operations the model graph needs from a backend.
pub trait Compute: Send + Sync {
    fn name(&self) -> String;
    /// Prepares a linear layer from f32 weights `[n_out][k]`.
    fn prepare(&self, w: &[f32], n_out: usize, k: usize, bias: Option<Vec<f32>>, role: LayerRole) -> Linear;
    /// `y[m][n_out] = x[m][k]·Wᵀ + b`.
    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]);
    /// Scaled dot-product attention, softmax(q·kᵀ/√d)·v per head: `q` is `[n_q][d]`, `k`, `v`
    /// are `[n_kv][d]` (contiguous rows), `out` is `[n_q][d]`.
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, out: &mut [f32]);
}

/// CPU backend: packed GEMMs of the `kernels` crate (f32, int8 VNNI or bf16 weights),
/// fused block-wise attention for long query sets, dot-product loops for decoder steps.
pub struct Cpu {
    pub weights: WeightType,
}

impl Cpu {
    pub fn new(weights: WeightType) -> Cpu {
        Cpu { weights }
    }
}

/// Query counts below this use the per-query loops (decoder steps): packing K/V for the fused
/// kernel would cost more than it saves.
const FUSED_ATTENTION_MIN_QUERIES: usize = 16;

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorize and pipeline the loop.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// In-place max-subtracted softmax of one row.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

thread_local! {
    /// Per-thread score row for [`attention_small`], grown once and reused (no allocation per
    /// decoding step).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A pointer shared by rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks only write disjoint column ranges (one head each) of the output.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// Attention for a few queries (decoder steps), parallel over heads.
fn attention_small(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    let d = s.n_heads * s.head_dim;
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    assert!(out.len() >= s.n_q * d && q.len() >= s.n_q * d && k.len() >= s.n_kv * d && v.len() >= s.n_kv * d);
    let out_ptr = SharedOut(out.as_mut_ptr());
    (0..s.n_heads).into_par_iter().for_each(|h| {
        let out_ptr = out_ptr;
        let off = h * s.head_dim;
        SCORES.with_borrow_mut(|scores| {
            scores.resize(s.n_kv, 0.0);
            for i in 0..s.n_q {
                let visible = if s.causal { s.n_kv - s.n_q + i + 1 } else { s.n_kv };
                let qi = &q[i * d + off..i * d + off + s.head_dim];
                for (j, sc) in scores[..visible].iter_mut().enumerate() {
                    *sc = dot(qi, &k[j * d + off..j * d + off + s.head_dim]) * scale;
                }
                softmax_in_place(&mut scores[..visible]);
                // SAFETY: row i, columns off..off+head_dim belong to this head's task alone,
                // and lie inside `out` (asserted above).
                let oi = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(i * d + off), s.head_dim) };
                oi.fill(0.0);
                for (j, &p) in scores[..visible].iter().enumerate() {
                    let vj = &v[j * d + off..j * d + off + s.head_dim];
                    for (a, b) in oi.iter_mut().zip(vj) {
                        *a += p * b;
                    }
                }
            }
        });
    });
}

impl Compute for Cpu {
    fn name(&self) -> String {
        format!("cpu-{}", self.weights)
    }

    fn prepare(&self, w: &[f32], n_out: usize, k: usize, bias: Option<Vec<f32>>, role: LayerRole) -> Linear {
        assert_eq!(w.len(), n_out * k, "linear weight shape");
        if let Some(b) = &bias {
            assert_eq!(b.len(), n_out, "linear bias shape");
        }
        let weights = match (self.weights, role) {
            (_, LayerRole::Conv) | (WeightType::F32, _) => Weights::F32(kernels::PackedF32::new(w, n_out, k)),
            (WeightType::Int8, _) => Weights::I8(kernels::QuantizedI8::new(w, n_out, k)),
            (WeightType::Bf16, _) => Weights::Bf16(kernels::PackedBf16::new(w, n_out, k)),
        };
        Linear { n_out, k, weights, bias }
    }

    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]) {
        let (x, y) = (&x[..m * lin.k], &mut y[..m * lin.n_out]);
        let bias = lin.bias.as_deref();
        match &lin.weights {
            Weights::F32(w) => kernels::linear_f32(x, m, w, bias, y),
            Weights::I8(w) => kernels::linear_i8(x, m, w, bias, y),
            Weights::Bf16(w) => kernels::linear_bf16(x, m, w, bias, y),
        }
    }

    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
        let d = s.n_heads * s.head_dim;
        let (q, k, v, out) = (&q[..s.n_q * d], &k[..s.n_kv * d], &v[..s.n_kv * d], &mut out[..s.n_q * d]);
        if s.n_q >= FUSED_ATTENTION_MIN_QUERIES {
            kernels::attention_f32(q, k, v, s.n_q, s.n_kv, s.n_heads, s.head_dim, s.causal, out);
        } else {
            attention_small(q, k, v, s, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Both attention paths agree with the plain reference, causal and not.
    #[test]
    fn attention_paths_match_reference() {
        for &(n_q, n_kv, causal) in &[(1, 7, true), (3, 9, true), (5, 1500, false), (20, 20, true), (40, 75, false)] {
            let (h, hd) = (4, 16);
            let d = h * hd;
            let (q, k, v) = (lcg(n_q * d, 1), lcg(n_kv * d, 2), lcg(n_kv * d, 3));
            let mut want = vec![0f32; n_q * d];
            kernels::reference::attention(&q, &k, &v, n_q, n_kv, h, hd, causal, &mut want);
            let mut got = vec![0f32; n_q * d];
            Cpu::new(WeightType::F32).attention(&q, &k, &v, AttentionShape { n_q, n_kv, n_heads: h, head_dim: hd, causal }, &mut got);
            let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "n_q {n_q} n_kv {n_kv} causal {causal}: max error {err}");
        }
    }

    #[test]
    fn weight_types_parse() {
        assert_eq!("int8".parse::<WeightType>().unwrap(), WeightType::Int8);
        assert!("fp4".parse::<WeightType>().is_err());
    }
}
