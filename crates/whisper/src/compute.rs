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
    /// Attention of a few queries against keys stored transposed per head
    /// (`[n_heads][head_dim][n_kv]`, see [`Keys::Transposed`]) and values `[n_kv][d]`: the
    /// decoder's cross-attention, whose keys are laid out once per 30 s window.
    fn attention_transposed(&self, q: &[f32], kt: &[f32], v: &[f32], shape: AttentionShape, out: &mut [f32]) {
        attention_small(q, Keys::Transposed(kt), v, shape, out);
    }
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
    /// Per-thread score rows for [`attention_small`], grown once and reused (no allocation
    /// per decoding step).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A pointer shared by rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks only write disjoint column ranges (one head each) of the output.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// How the keys of [`attention_small`] are laid out.
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    /// `[n_kv][n_heads * head_dim]`, the model layout (the self-attention cache).
    Rows(&'a [f32]),
    /// `[n_heads][head_dim][n_kv]`: per head, one contiguous row of every key's component, so
    /// scores are streaming multiply-adds (the cross-attention keys, transposed once a window).
    Transposed(&'a [f32]),
}

/// Scores of query `qi` (one head) against `n_kv` keys, into `scores`.
#[inline(always)]
fn head_scores(qi: &[f32], keys: Keys<'_>, h: usize, s: &AttentionShape, n: usize, scores: &mut [f32]) {
    let (d, hd) = (s.n_heads * s.head_dim, s.head_dim);
    match keys {
        Keys::Rows(k) => {
            for (j, sc) in scores[..n].iter_mut().enumerate() {
                let kj = &k[j * d + h * hd..j * d + (h + 1) * hd];
                let mut acc = 0.0;
                for c in 0..hd {
                    acc += qi[c] * kj[c];
                }
                *sc = acc;
            }
        }
        Keys::Transposed(kt) => {
            let base = h * hd * s.n_kv;
            scores[..n].fill(0.0);
            for c in 0..hd {
                let row = &kt[base + c * s.n_kv..base + c * s.n_kv + n];
                let qc = qi[c];
                for (sc, kv) in scores[..n].iter_mut().zip(row) {
                    *sc += qc * kv;
                }
            }
        }
    }
}

/// One head of [`attention_small`]: the loops are written so the compiler vectorizes them for
/// whatever instruction set the caller was compiled for.
#[inline(always)]
fn attention_head(q: &[f32], keys: Keys<'_>, v: &[f32], s: &AttentionShape, h: usize, out: SharedOut, scores: &mut Vec<f32>) {
    let (d, hd) = (s.n_heads * s.head_dim, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    scores.resize(s.n_kv, 0.0);
    for i in 0..s.n_q {
        let visible = if s.causal { s.n_kv - s.n_q + i + 1 } else { s.n_kv };
        let qi = &q[i * d + h * hd..i * d + (h + 1) * hd];
        head_scores(qi, keys, h, s, visible, scores);
        for sc in scores[..visible].iter_mut() {
            *sc *= scale;
        }
        kernels::softmax_f32(&mut scores[..visible], 1, visible);
        // SAFETY: row i, columns h*hd..(h+1)*hd belong to this head's task alone and lie
        // inside `out` (checked by the caller).
        let oi = unsafe { std::slice::from_raw_parts_mut(out.0.add(i * d + h * hd), hd) };
        oi.fill(0.0);
        for (j, &p) in scores[..visible].iter().enumerate() {
            let vj = &v[j * d + h * hd..j * d + (h + 1) * hd];
            for (a, b) in oi.iter_mut().zip(vj) {
                *a += p * b;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attention_head_avx512(q: &[f32], keys: Keys<'_>, v: &[f32], s: &AttentionShape, h: usize, out: SharedOut, scores: &mut Vec<f32>) {
    attention_head(q, keys, v, s, h, out, scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_head_avx2(q: &[f32], keys: Keys<'_>, v: &[f32], s: &AttentionShape, h: usize, out: SharedOut, scores: &mut Vec<f32>) {
    attention_head(q, keys, v, s, h, out, scores)
}

/// Attention for a few queries (decoder steps), parallel over heads, vectorized for the CPU
/// at hand. `v` is `[n_kv][d]`; `out` is `[n_q][d]`.
pub fn attention_small(q: &[f32], keys: Keys<'_>, v: &[f32], s: AttentionShape, out: &mut [f32]) {
    let d = s.n_heads * s.head_dim;
    let k_len = match keys {
        Keys::Rows(k) | Keys::Transposed(k) => k.len(),
    };
    assert!(out.len() >= s.n_q * d && q.len() >= s.n_q * d && k_len >= s.n_kv * d && v.len() >= s.n_kv * d);
    let out_ptr = SharedOut(out.as_mut_ptr());
    let isa = kernels::Isa::detect();
    (0..s.n_heads).into_par_iter().for_each(|h| {
        let out_ptr = out_ptr;
        SCORES.with_borrow_mut(|scores| match isa {
            // SAFETY: the instruction set was detected on this CPU.
            #[cfg(target_arch = "x86_64")]
            kernels::Isa::Avx512 => unsafe { attention_head_avx512(q, keys, v, &s, h, out_ptr, scores) },
            #[cfg(target_arch = "x86_64")]
            kernels::Isa::Avx2 => unsafe { attention_head_avx2(q, keys, v, &s, h, out_ptr, scores) },
            _ => attention_head(q, keys, v, &s, h, out_ptr, scores),
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
            attention_small(q, Keys::Rows(k), v, s, out);
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
            if !causal {
                // Keys transposed per head ([h][hd][n_kv]) give the same result.
                let mut kt = vec![0f32; n_kv * d];
                for j in 0..n_kv {
                    for c in 0..d {
                        kt[c * n_kv + j] = k[j * d + c];
                    }
                }
                let mut got_t = vec![0f32; n_q * d];
                let shape = AttentionShape { n_q, n_kv, n_heads: h, head_dim: hd, causal };
                Cpu::new(WeightType::F32).attention_transposed(&q, &kt, &v, shape, &mut got_t);
                let err = want.iter().zip(&got_t).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err < 1e-5, "transposed n_q {n_q} n_kv {n_kv}: max error {err}");
            }
        }
    }

    #[test]
    fn weight_types_parse() {
        assert_eq!("int8".parse::<WeightType>().unwrap(), WeightType::Int8);
        assert!("fp4".parse::<WeightType>().is_err());
    }
}
