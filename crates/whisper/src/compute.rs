//! The narrow compute interface of the model graph: every matrix product and attention goes
//! through [`Compute`], so faster kernels (f32/int8/bf16) or an NPU can be swapped in without
//! touching the graph. [`Cpu`] is the CPU backend on top of the `kernels` crate.

use std::fmt;
use std::str::FromStr;


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

/// Element type of the decoder's key/value caches (self- and cross-attention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    /// f32: bit-for-bit the arithmetic of the f32 reference.
    F32,
    /// f16: half the memory and half the bytes read per decoding step (the cross-attention
    /// cache of Whisper base is 37 MB in f32); relative rounding error 2⁻¹¹ per stored value.
    F16,
    /// int8 codes with per-(head, position) scales, keys smoothed ([`kernels::CrossKvI8`]):
    /// a quarter of f32. Cross-attention caches only (written once per window); a backend
    /// asking for it for the self-attention cache gets f16.
    I8,
}

/// Borrowed keys (transposed per head, `[n_heads][head_dim][stride]`) and values (head-major,
/// `[n_heads][stride][head_dim]`) of one decoder cache, in the cache's element type.
#[derive(Clone, Copy)]
pub enum KvView<'a> {
    F32 { kt: &'a [f32], v: &'a [f32] },
    F16 { kt: &'a [half::f16], v: &'a [half::f16] },
    /// An int8 cross-attention cache (its own layout and scales; never causal).
    I8(&'a kernels::CrossKvI8),
}

/// The operations the model graph needs from a backend.
pub trait Compute: Send + Sync {
    fn name(&self) -> String;
    /// Prepares a linear layer from f32 weights `[n_out][k]`.
    fn prepare(&self, w: &[f32], n_out: usize, k: usize, bias: Option<Vec<f32>>, role: LayerRole) -> Linear;
    /// `y[m][n_out] = x[m][k]·Wᵀ + b`.
    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]);
    /// Scaled dot-product attention, softmax(q·kᵀ/√d)·v per head: `q` is `[n_q][d]`, `k`, `v`
    /// are `[n_kv][d]` (contiguous rows), `out` is `[n_q][d]` (the encoder's self-attention).
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape, out: &mut [f32]);
    /// Self-attention over the rows of a fused projection: `qkv` is `[n][3d]` (queries, keys,
    /// values side by side, `d = n_heads·head_dim`), `out` is `[n][d]`; `shape.n_q == n_kv`.
    /// By default the parts are copied out and passed to [`Compute::attention`].
    fn attention_qkv(&self, qkv: &[f32], shape: AttentionShape, out: &mut [f32]) {
        let [q, k, v] = split_qkv(qkv, shape);
        self.attention(&q, &k, &v, shape, out)
    }
    /// Element type for the decoder's caches. f32 by default; compact backends choose f16.
    fn kv_type(&self) -> KvType {
        KvType::F32
    }
    /// Element type for the cross-attention caches (one per window, read by every step): the
    /// self-attention type by default.
    fn cross_kv_type(&self) -> KvType {
        self.kv_type()
    }
    /// Attention of a few queries (a decoding step: one per beam, or a prompt) against a
    /// decoder cache: keys transposed and values head-major, one block per head (see
    /// [`kernels::attention_kt`] for the layout and causality).
    fn attention_cached(&self, q: &[f32], kv: KvView<'_>, shape: kernels::KtShape, out: &mut [f32]) {
        match kv {
            KvView::F32 { kt, v } => kernels::attention_kt(q, kt, v, shape, out),
            KvView::F16 { kt, v } => kernels::attention_kt(q, kt, v, shape, out),
            KvView::I8(kv) => {
                assert!(!shape.causal && shape.n_kv == kv.n_kv, "attention_cached: an int8 cache is read whole, not causally");
                kernels::attention_kv_i8(q, kv, shape.n_q, out)
            }
        }
    }
    /// The scores `q·kᵀ/√head_dim` (before the softmax) of head `head` of `shape.n_q` queries
    /// against the first `shape.n_kv` keys of a decoder cache (keys transposed, as in
    /// [`Compute::attention_cached`]; causality is ignored): `out` is `[n_q][n_kv]`. Word
    /// timestamps read the cross-attention of a few heads this way.
    fn attention_scores(&self, q: &[f32], kv: KvView<'_>, shape: kernels::KtShape, head: usize, out: &mut [f32]) {
        match kv {
            KvView::F32 { kt, .. } => head_scores(q, kt, shape, head, out, |src, dst| dst.copy_from_slice(src)),
            KvView::F16 { kt, .. } => head_scores(q, kt, shape, head, out, half::slice::HalfFloatSliceExt::convert_to_f32_slice),
            // The dequantized keys (smoothing undone), one channel row at a time: the same loop
            // over a key "row" of channel c at offset c·stride.
            KvView::I8(kv) => {
                let hd = shape.head_dim;
                let key = |c: usize, dst: &mut [f32]| kv.key_channel(c / hd, c % hd, dst);
                head_scores_by(q, shape, head, out, key)
            }
        }
    }
}

/// [`Compute::attention_scores`] on the CPU: one transposed key row at a time (converted to
/// f32), accumulated into every query's scores, then scaled.
fn head_scores<T>(q: &[f32], kt: &[T], s: kernels::KtShape, head: usize, out: &mut [f32], to_f32: impl Fn(&[T], &mut [f32])) {
    head_scores_by(q, s, head, out, |c, key| to_f32(&kt[c * s.stride..c * s.stride + key.len()], key))
}

/// [`head_scores`] with `key(c, dst)` writing channel `c` (of `d`) of the first `dst.len()`
/// keys as f32.
fn head_scores_by(q: &[f32], s: kernels::KtShape, head: usize, out: &mut [f32], key_row: impl Fn(usize, &mut [f32])) {
    let (d, hd, n) = (s.n_heads * s.head_dim, s.head_dim, s.n_kv);
    let out = &mut out[..s.n_q * n];
    out.fill(0.0);
    let mut key = vec![0f32; n];
    for c in head * hd..(head + 1) * hd {
        key_row(c, &mut key);
        for (row, qr) in out.chunks_exact_mut(n).zip(q.chunks_exact(d)) {
            let qc = qr[c];
            row.iter_mut().zip(&key).for_each(|(o, k)| *o += qc * k);
        }
    }
    let scale = 1.0 / (hd as f32).sqrt();
    out.iter_mut().for_each(|o| *o *= scale);
}

/// The queries, keys and values of fused `[n][3d]` rows as three contiguous `[n][d]` copies.
fn split_qkv(qkv: &[f32], shape: AttentionShape) -> [Vec<f32>; 3] {
    let d = shape.n_heads * shape.head_dim;
    let n = shape.n_q;
    let mut parts = [vec![0f32; n * d], vec![0f32; n * d], vec![0f32; n * d]];
    for (t, row) in qkv[..n * 3 * d].chunks_exact(3 * d).enumerate() {
        for (p, part) in parts.iter_mut().enumerate() {
            part[t * d..(t + 1) * d].copy_from_slice(&row[p * d..(p + 1) * d]);
        }
    }
    parts
}

/// CPU backend: packed GEMMs of the `kernels` crate (f32, int8 VNNI or bf16 weights), fused
/// block-wise attention for the encoder, cache-streaming attention for decoder steps.
pub struct Cpu {
    pub weights: WeightType,
}

impl Cpu {
    pub fn new(weights: WeightType) -> Cpu {
        Cpu { weights }
    }
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
        match self.weights {
            WeightType::F32 => kernels::attention_f32(q, k, v, s.n_q, s.n_kv, s.n_heads, s.head_dim, s.causal, out),
            // The compact types also run the encoder's attention products in bf16 (1.4x the
            // f32 kernel; their WER is measured end to end, docs/BENCHMARKS.md).
            WeightType::Int8 | WeightType::Bf16 => kernels::attention_bf16(q, k, v, s.n_q, s.n_kv, s.n_heads, s.head_dim, s.causal, out),
        }
    }

    /// int8 weights take int8 scores as well ([`kernels::attention_i8qk`], read in place).
    fn attention_qkv(&self, qkv: &[f32], s: AttentionShape, out: &mut [f32]) {
        let d = s.n_heads * s.head_dim;
        match self.weights {
            WeightType::Int8 if !s.causal && s.n_q == s.n_kv => {
                let shape = kernels::StridedAttention { n_q: s.n_q, n_kv: s.n_kv, n_heads: s.n_heads, head_dim: s.head_dim, ld: 3 * d };
                let qkv = &qkv[..s.n_q * 3 * d];
                kernels::attention_i8qk(qkv, &qkv[d..], &qkv[2 * d..], shape, &mut out[..s.n_q * d]);
            }
            _ => {
                let [q, k, v] = split_qkv(qkv, s);
                self.attention(&q, &k, &v, s, out)
            }
        }
    }

    /// f32 weights keep f32 caches (the reference arithmetic, token for token with
    /// faster-whisper float32); the compact weight types store the caches in f16.
    fn kv_type(&self) -> KvType {
        match self.weights {
            WeightType::F32 => KvType::F32,
            WeightType::Int8 | WeightType::Bf16 => KvType::F16,
        }
    }

    /// int8 weights keep their cross-attention K/V in int8 (half the bytes every step reads,
    /// half the memory of a window in flight); f32 stays f32 (bit-exact), bf16 stays f16.
    fn cross_kv_type(&self) -> KvType {
        match self.weights {
            WeightType::Int8 => KvType::I8,
            _ => self.kv_type(),
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
            // The same through a decoder cache (keys transposed, padded stride), f32 and f16.
            let stride = kernels::KtShape::min_stride(n_kv) + 16;
            let mut kt = vec![0f32; d * stride];
            for j in 0..n_kv {
                for c in 0..d {
                    kt[c * stride + j] = k[j * d + c];
                }
            }
            let mut vh = vec![0f32; d * stride];
            for j in 0..n_kv {
                for hh in 0..h {
                    vh[(hh * stride + j) * hd..(hh * stride + j + 1) * hd].copy_from_slice(&v[j * d + hh * hd..j * d + (hh + 1) * hd]);
                }
            }
            let v = vh;
            let shape = kernels::KtShape { n_q, n_kv, n_heads: h, head_dim: hd, stride, causal };
            let mut got_t = vec![0f32; n_q * d];
            Cpu::new(WeightType::F32).attention_cached(&q, KvView::F32 { kt: &kt, v: &v }, shape, &mut got_t);
            let err = want.iter().zip(&got_t).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "cached f32 n_q {n_q} n_kv {n_kv}: max error {err}");
            let (kt16, v16): (Vec<_>, Vec<_>) = (kt.iter().map(|&x| half::f16::from_f32(x)).collect(), v.iter().map(|&x| half::f16::from_f32(x)).collect());
            Cpu::new(WeightType::Int8).attention_cached(&q, KvView::F16 { kt: &kt16, v: &v16 }, shape, &mut got_t);
            let err = want.iter().zip(&got_t).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 2e-3, "cached f16 n_q {n_q} n_kv {n_kv}: max error {err}");
        }
    }

    /// Self-attention over fused QKV rows: exactly `attention` on the parts for f32; for int8
    /// (int8 scores, read in place) close to the f32 result.
    #[test]
    fn attention_over_fused_rows() {
        let (n, h, hd) = (300, 4, 16);
        let d = h * hd;
        let qkv = lcg(n * 3 * d, 7);
        let shape = AttentionShape { n_q: n, n_kv: n, n_heads: h, head_dim: hd, causal: false };
        let [q, k, v] = split_qkv(&qkv, shape);
        assert_eq!(&q[d..2 * d], &qkv[3 * d..4 * d]);
        assert_eq!(&v[..d], &qkv[2 * d..3 * d]);
        let mut want = vec![0f32; n * d];
        Cpu::new(WeightType::F32).attention(&q, &k, &v, shape, &mut want);
        let mut got = vec![0f32; n * d];
        Cpu::new(WeightType::F32).attention_qkv(&qkv, shape, &mut got);
        assert_eq!(got, want);
        Cpu::new(WeightType::Int8).attention_qkv(&qkv, shape, &mut got);
        let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 0.02, "int8 scores: max error {err}");
    }

    /// An int8 cross cache through the trait: attention close to the exact one, and the
    /// pre-softmax scores (word alignment) close to f32 scores of the unquantized keys —
    /// smoothing undone, so the scores themselves, not just their softmax, agree.
    #[test]
    fn int8_cross_cache() {
        let (n_q, n_kv, h, hd) = (3, 200, 4, 16);
        let d = h * hd;
        let (q, mut kv) = (lcg(n_q * d, 11), lcg(n_kv * 2 * d, 12));
        // Channel offsets on the keys, as Whisper's carry.
        kv.chunks_exact_mut(2 * d).for_each(|r| r[..d].iter_mut().enumerate().for_each(|(c, x)| *x += (c % 7) as f32 * 0.3));
        let k: Vec<f32> = kv.chunks_exact(2 * d).flat_map(|r| r[..d].to_vec()).collect();
        let v: Vec<f32> = kv.chunks_exact(2 * d).flat_map(|r| r[d..].to_vec()).collect();
        let cache = kernels::CrossKvI8::new(&kv, &kv[d..], 2 * d, n_kv, h, hd);
        let shape = kernels::KtShape { n_q, n_kv, n_heads: h, head_dim: hd, stride: cache.stride, causal: false };
        let cpu = Cpu::new(WeightType::Int8);
        assert_eq!(cpu.cross_kv_type(), KvType::I8);
        assert_eq!(Cpu::new(WeightType::F32).cross_kv_type(), KvType::F32);
        let mut want = vec![0f32; n_q * d];
        kernels::reference::attention(&q, &k, &v, n_q, n_kv, h, hd, false, &mut want);
        let mut got = vec![0f32; n_q * d];
        cpu.attention_cached(&q, KvView::I8(&cache), shape, &mut got);
        let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 5e-3, "int8 cross attention: max error {err}");
        // f32 scores of the original keys through a transposed f32 cache.
        let stride = shape.stride;
        let mut kt = vec![0f32; d * stride];
        for j in 0..n_kv {
            for c in 0..d {
                kt[c * stride + j] = k[j * d + c];
            }
        }
        let zeros = vec![0f32; d * stride];
        for head in 0..h {
            let (mut a, mut b) = (vec![0f32; n_q * n_kv], vec![0f32; n_q * n_kv]);
            cpu.attention_scores(&q, KvView::F32 { kt: &kt, v: &zeros }, shape, head, &mut a);
            cpu.attention_scores(&q, KvView::I8(&cache), shape, head, &mut b);
            let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(err < 2e-3, "head {head}: score error {err}");
        }
    }

    #[test]
    fn weight_types_parse() {
        assert_eq!("int8".parse::<WeightType>().unwrap(), WeightType::Int8);
        assert!("fp4".parse::<WeightType>().is_err());
    }
}
