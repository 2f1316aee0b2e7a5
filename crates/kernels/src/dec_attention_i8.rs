//! Decoder cross-attention over an **int8** key/value cache: a few queries (one per beam, or a
//! prompt) against the keys and values of one audio window, stored once per window.
//!
//! Why: a decoding step is bound by reading the cross-attention cache (Whisper base: 6 layers ×
//! 1500 positions × 512 channels of keys and of values, 18 MB in f16, read in full by every
//! step of every sequence; batching shares the weights but not these). int8 halves the bytes
//! again and the memory each window in flight holds.
//!
//! Quantization ([`CrossKvI8::new`]):
//! * keys are *smoothed* — the mean key over the window's positions is subtracted per channel,
//!   which shifts every score of a query by the same constant `q·mean` and so leaves the softmax
//!   unchanged exactly (as [`crate::attention_i8qk`] does in the encoder) — then quantized
//!   symmetric per (head, key): `k − mean ≈ s_k[h][j]·c_k[h][j][·]`, codes in [−127, 127];
//! * values symmetric per (head, position): `v ≈ s_v[h][j]·c_v[h][j][·]`;
//! * each query is quantized per head at run time, asymmetric u8 with a zero point (the
//!   convention of [`crate::linear_i8`]'s activations, on the head's `head_dim` values), so the
//!   scores are integer dot products: `score = (Σ q_u·c_k − z_q·Σ c_k)·s_q·s_k/√head_dim`
//!   (`Σ c_k` per key stored with the cache). Every path computes the same integer scores.
//! * The softmax is f32; `P·V` runs in f32 on the values converted in registers, the value
//!   scale folded into the probabilities.
//!
//! Layout (per head `h`, `stride` = `n_kv` rounded up to 16, padding zero):
//! * key codes `[n_heads][head_dim/4][stride][4]`: four consecutive channels of a key side by
//!   side, the operand layout of `vpdpbusd` (one 64-byte load = 16 keys × 4 channels);
//! * value codes `[n_heads][stride][head_dim]` (head-major, one contiguous stream per head);
//! * `k_scale`, `k_sum`, `v_scale`: `[n_heads][stride]`; `k_mean`: `[n_heads·head_dim]`.

use crate::isa::Isa;
use crate::softmax::{softmax_row_poly, softmax_row_std};
use rayon::prelude::*;
use std::cell::RefCell;

/// Cross-attention keys and values of one window, smoothed and quantized to int8 (see the
/// module docs for the format).
#[derive(Clone, Debug)]
pub struct CrossKvI8 {
    pub n_kv: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Positions per head block (`n_kv` rounded up to 16).
    pub stride: usize,
    pub(crate) k: Vec<i8>,
    pub(crate) k_scale: Vec<f32>,
    pub(crate) k_sum: Vec<i32>,
    pub(crate) k_mean: Vec<f32>,
    pub(crate) v: Vec<i8>,
    pub(crate) v_scale: Vec<f32>,
}

/// Symmetric int8 code of `x / s` (round half to even, saturated).
#[inline(always)]
fn code_i8(x: f32, inv: f32) -> i8 {
    round_even_small(x * inv).clamp(-127.0, 127.0) as i8
}

/// `x.round_ties_even()` for the values a code is clamped from: exact for `|x| < 2²²`, and
/// beyond that still at least 2²¹ in magnitude with the sign of `x` (so any clamp to a code
/// range gives the same code); NaN stays NaN. Written as the add-and-subtract of 1.5·2²³
/// because `round_ties_even` is a libm call (`rintf`) on the baseline x86-64 target, which
/// keeps the quantization loops scalar.
#[inline(always)]
fn round_even_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (x + MAGIC) - MAGIC
}

/// Scale of a symmetric int8 block with largest magnitude `amax` (1 for an all-zero block).
#[inline(always)]
fn sym_scale(amax: f32) -> f32 {
    if amax > 0.0 && amax.is_finite() {
        amax / 127.0
    } else {
        1.0
    }
}

impl CrossKvI8 {
    /// Quantizes `n_kv` keys and values given as rows of `n_heads·head_dim` values, `ld`
    /// elements apart in `k` and `v` (e.g. the two halves of a fused K/V projection, read in
    /// place).
    ///
    /// # Panics
    /// If `head_dim` is not a multiple of 4, `ld < n_heads·head_dim`, or a slice is too short.
    pub fn new(k: &[f32], v: &[f32], ld: usize, n_kv: usize, n_heads: usize, head_dim: usize) -> CrossKvI8 {
        let d = n_heads * head_dim;
        assert!(head_dim.is_multiple_of(4), "kernels: CrossKvI8: head_dim {head_dim} must be a multiple of 4");
        assert!(ld >= d, "kernels: CrossKvI8: ld {ld} < {d}");
        let need = if n_kv == 0 { 0 } else { (n_kv - 1) * ld + d };
        assert!(k.len() >= need && v.len() >= need, "kernels: CrossKvI8: k/v shorter than {n_kv} rows");
        let stride = n_kv.div_ceil(16) * 16;
        let mut kv = CrossKvI8 {
            n_kv,
            n_heads,
            head_dim,
            stride,
            k: vec![0; d * stride],
            k_scale: vec![0.0; n_heads * stride],
            k_sum: vec![0; n_heads * stride],
            k_mean: vec![0.0; d],
            v: vec![0; d * stride],
            v_scale: vec![0.0; n_heads * stride],
        };
        if n_kv == 0 || d == 0 {
            return kv;
        }
        // Mean key per channel (f64 sum: 1500 rows).
        let mut sum = vec![0f64; d];
        for j in 0..n_kv {
            sum.iter_mut().zip(&k[j * ld..j * ld + d]).for_each(|(s, &x)| *s += x as f64);
        }
        kv.k_mean.iter_mut().zip(&sum).for_each(|(m, &s)| *m = (s / n_kv as f64) as f32);
        let hd = head_dim;
        let CrossKvI8 { k: kc, k_scale, k_sum, k_mean, v: vc, v_scale, .. } = &mut kv;
        // One head per task: each writes its own blocks.
        kc.par_chunks_mut(hd * stride)
            .zip(vc.par_chunks_mut(hd * stride))
            .zip(k_scale.par_chunks_mut(stride).zip(k_sum.par_chunks_mut(stride)))
            .zip(v_scale.par_chunks_mut(stride))
            .enumerate()
            .for_each(|(h, (((kh, vh), (ks, ksum)), vs))| {
                let mean = &k_mean[h * hd..(h + 1) * hd];
                let mut key = vec![0f32; hd];
                let mut codes = vec![0i8; hd];
                for j in 0..n_kv {
                    let row = &k[j * ld + h * hd..j * ld + (h + 1) * hd];
                    key.iter_mut().zip(row.iter().zip(mean)).for_each(|(o, (&x, &m))| *o = x - m);
                    let s = sym_scale(key.iter().fold(0f32, |a, &x| a.max(x.abs())));
                    let inv = 1.0 / s;
                    codes.iter_mut().zip(&key).for_each(|(q, &x)| *q = code_i8(x, inv));
                    // Four channels side by side per key (see the layout above).
                    for (g, four) in codes.chunks_exact(4).enumerate() {
                        kh[g * stride * 4 + j * 4..g * stride * 4 + j * 4 + 4].copy_from_slice(four);
                    }
                    ks[j] = s;
                    ksum[j] = codes.iter().map(|&q| q as i32).sum();
                    let row = &v[j * ld + h * hd..j * ld + (h + 1) * hd];
                    let s = sym_scale(row.iter().fold(0f32, |a, &x| a.max(x.abs())));
                    let inv = 1.0 / s;
                    vh[j * hd..(j + 1) * hd].iter_mut().zip(row).for_each(|(o, &x)| *o = code_i8(x, inv));
                    vs[j] = s;
                }
            });
        kv
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.k.len() + self.v.len() + 4 * (self.k_scale.len() + self.k_sum.len() + self.k_mean.len() + self.v_scale.len())
    }

    /// The dequantized key `j` of head `h`, channel `c` (mean added back).
    #[inline]
    pub fn key(&self, h: usize, c: usize, j: usize) -> f32 {
        let hd = self.head_dim;
        let code = self.k[h * hd * self.stride + (c / 4) * self.stride * 4 + j * 4 + c % 4];
        code as f32 * self.k_scale[h * self.stride + j] + self.k_mean[h * hd + c]
    }

    /// The dequantized value `j` of head `h`, channel `c`.
    #[inline]
    pub fn value(&self, h: usize, c: usize, j: usize) -> f32 {
        let hd = self.head_dim;
        self.v[(h * self.stride + j) * hd + c] as f32 * self.v_scale[h * self.stride + j]
    }

    /// Channel `c` of head `h` of the first `out.len()` dequantized keys (mean added back):
    /// what a reader of the pre-softmax scores (word alignment) multiplies queries with.
    pub fn key_channel(&self, h: usize, c: usize, out: &mut [f32]) {
        assert!(out.len() <= self.n_kv, "kernels: CrossKvI8::key_channel: {} keys of {}", out.len(), self.n_kv);
        let base = &self.k[self.head_dim * h * self.stride + (c / 4) * self.stride * 4 + c % 4..];
        let (scale, mean) = (&self.k_scale[h * self.stride..], self.k_mean[h * self.head_dim + c]);
        for (j, o) in out.iter_mut().enumerate() {
            *o = base[j * 4] as f32 * scale[j] + mean;
        }
    }
}

/// Quantizes one query head (`x`, `head_dim` values) to u8 with a zero point: returns
/// `(scale, zero point)`. Range `[min(0, min x), max(0, max x)]` onto [0, 255], round half to
/// even, as [`crate::linear_i8`] quantizes activations.
pub(crate) fn quantize_query(x: &[f32], out: &mut [u8]) -> (f32, i32) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in x {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
    }
    let range = hi - lo;
    let s = if range > 0.0 && range.is_finite() { range / 255.0 } else { 1.0 };
    let inv = 1.0 / s;
    let zp = round_even_small((-lo * inv).clamp(0.0, 255.0));
    for (o, &v) in out.iter_mut().zip(x) {
        *o = round_even_small(v * inv + zp).clamp(0.0, 255.0) as u8;
    }
    (s, zp as i32)
}

/// `out = softmax(q·kᵀ/√head_dim)·v` per head over an int8 cache: `q` and `out` are
/// `[n_q][n_heads·head_dim]` (heads interleaved as in the model). Not causal (every query sees
/// all `kv.n_kv` keys).
///
/// # Panics
/// If `q` or `out` is shorter than `n_q` rows.
pub fn attention_kv_i8(q: &[f32], kv: &CrossKvI8, n_q: usize, out: &mut [f32]) {
    attention_kv_i8_with(Isa::detect(), q, kv, n_q, out)
}

/// [`attention_kv_i8`] on an explicit path. The AVX-512 path needs VNNI and `head_dim == 64`
/// (every Whisper model); otherwise the plain loops run (compiled for AVX2 on that path).
pub fn attention_kv_i8_with(isa: Isa, q: &[f32], kv: &CrossKvI8, n_q: usize, out: &mut [f32]) {
    isa.assert_available();
    let d = kv.n_heads * kv.head_dim;
    assert!(q.len() >= n_q * d && out.len() >= n_q * d, "kernels: attention_kv_i8: q/out shorter than n_q*d");
    if n_q == 0 || d == 0 {
        return;
    }
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..kv.n_heads).into_par_iter().for_each(move |h| {
        SCRATCH.with_borrow_mut(|scratch| match isa {
            // SAFETY: the path's availability was asserted above (VNNI checked here); each task
            // writes only its head's columns of `out` (checked lengths).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if kv.head_dim == 64 && isa.has_vnni() => unsafe { head_avx512(q, kv, n_q, h, out_ptr, scratch) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 => unsafe { head_avx2(q, kv, n_q, h, out_ptr, scratch) },
            _ => unsafe { head_generic(q, kv, n_q, h, out_ptr, scratch) },
        })
    });
}

/// Per-thread scratch: scores (f32) and quantized queries, grown once and reused.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    qu: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges (one head each) of a buffer that outlives them.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Quantizes query `i`'s head `h` into `qu` and returns its score multiplier and zero point.
#[inline(always)]
fn query_head(q: &[f32], kv: &CrossKvI8, i: usize, h: usize, qu: &mut [u8]) -> (f32, i32) {
    let (d, hd) = (kv.n_heads * kv.head_dim, kv.head_dim);
    let (s, zp) = quantize_query(&q[i * d + h * hd..i * d + (h + 1) * hd], qu);
    (s / (hd as f32).sqrt(), zp)
}

/// The score of key `j` from its integer dot product (shared by every path, so the scores are
/// the same floats everywhere).
#[inline(always)]
fn dequant_score(acc: i32, zp: i32, ksum: i32, sq: f32, sk: f32) -> f32 {
    (acc - zp * ksum) as f32 * (sq * sk)
}

/// One head, plain loops (scalar path; compiled again for AVX2 below).
///
/// # Safety
/// `out` must point to `n_q · d` writable floats; only head `h`'s columns are written.
#[inline(always)]
unsafe fn head_generic(q: &[f32], kv: &CrossKvI8, n_q: usize, h: usize, out: OutPtr, scratch: &mut Scratch) {
    let (d, hd, st, n) = (kv.n_heads * kv.head_dim, kv.head_dim, kv.stride, kv.n_kv);
    scratch.scores.resize(st, 0.0);
    scratch.qu.resize(hd, 0);
    let (scores, qu) = (&mut scratch.scores[..n], &mut scratch.qu[..]);
    let kh = &kv.k[h * hd * st..(h + 1) * hd * st];
    let vh = &kv.v[h * hd * st..(h + 1) * hd * st];
    let (ks, ksum, vs) = (&kv.k_scale[h * st..], &kv.k_sum[h * st..], &kv.v_scale[h * st..]);
    for i in 0..n_q {
        // SAFETY: row i, columns h·hd..(h+1)·hd belong to this task (caller's contract).
        let oi = std::slice::from_raw_parts_mut(out.0.add(i * d + h * hd), hd);
        oi.fill(0.0);
        if n == 0 {
            continue;
        }
        let (sq, zp) = query_head(q, kv, i, h, qu);
        for (j, sc) in scores.iter_mut().enumerate() {
            let mut acc = 0i32;
            for c4 in 0..hd / 4 {
                let kr = &kh[c4 * st * 4 + j * 4..c4 * st * 4 + j * 4 + 4];
                for (t, &kc) in kr.iter().enumerate() {
                    acc += qu[c4 * 4 + t] as i32 * kc as i32;
                }
            }
            *sc = dequant_score(acc, zp, ksum[j], sq, ks[j]);
        }
        softmax_row_std(scores);
        for (j, &p) in scores.iter().enumerate() {
            let w = p * vs[j];
            for (o, &x) in oi.iter_mut().zip(&vh[j * hd..(j + 1) * hd]) {
                *o += w * x as f32;
            }
        }
    }
}

/// # Safety
/// AVX2 + FMA must be available; see [`head_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(q: &[f32], kv: &CrossKvI8, n_q: usize, h: usize, out: OutPtr, scratch: &mut Scratch) {
    head_generic(q, kv, n_q, h, out, scratch)
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Integer scores of `NQ` queries (`qu`, `[NQ][64]` u8) against keys `j0 .. j0 + 16·NK` of one
/// head (`kh`: `[16][stride][4]` codes), dequantized into `scores` rows of length `row`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_tile<const NQ: usize, const NK: usize>(
    qu: *const u8,
    sq: &[f32; 4],
    zp: &[i32; 4],
    kh: *const i8,
    ks: *const f32,
    ksum: *const i32,
    stride: usize,
    j0: usize,
    scores: *mut f32,
    row: usize,
) {
    let mut acc = [[_mm512_setzero_si512(); NK]; NQ];
    for c4 in 0..16 {
        let kr = kh.add(c4 * stride * 4 + j0 * 4);
        let mut kv = [_mm512_setzero_si512(); NK];
        for (u, k) in kv.iter_mut().enumerate() {
            *k = _mm512_loadu_si512(kr.add(64 * u) as *const _);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_epi32((qu.add(i * 64 + c4 * 4) as *const i32).read_unaligned());
            for u in 0..NK {
                a[u] = _mm512_dpbusd_epi32(a[u], b, kv[u]);
            }
        }
    }
    for u in 0..NK {
        let j = j0 + 16 * u;
        let sk = _mm512_loadu_ps(ks.add(j));
        let sum = _mm512_loadu_si512(ksum.add(j) as *const _);
        for (i, a) in acc.iter().enumerate() {
            // (acc − zp·Σc) as f32 · (s_q·s_k): the formula of `dequant_score`, lane by lane.
            let x = _mm512_sub_epi32(a[u], _mm512_mullo_epi32(_mm512_set1_epi32(zp[i]), sum));
            let m = _mm512_mul_ps(_mm512_set1_ps(sq[i]), sk);
            _mm512_storeu_ps(scores.add(i * row + j), _mm512_mul_ps(_mm512_cvtepi32_ps(x), m));
        }
    }
}

/// `out[i] = Σ_j w[i][j] · v[j]` for `NQ` queries (64 columns, four registers), values int8
/// converted in registers.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
unsafe fn pv_rows<const NQ: usize>(w: *const f32, row: usize, n: usize, vh: *const i8, out: *mut f32, out_stride: usize) {
    let mut acc = [[_mm512_setzero_ps(); 4]; NQ];
    for j in 0..n {
        let vr = vh.add(j * 64);
        let mut vv = [_mm512_setzero_ps(); 4];
        for (u, x) in vv.iter_mut().enumerate() {
            *x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(vr.add(16 * u) as *const __m128i)));
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(i * row + j));
            for u in 0..4 {
                a[u] = _mm512_fmadd_ps(b, vv[u], a[u]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        for (u, x) in a.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * out_stride + 16 * u), *x);
        }
    }
}

/// One head on AVX-512 VNNI (`head_dim == 64`): queries in groups of up to four share each pass
/// over the keys and values.
///
/// # Safety
/// AVX-512F/BW/VL + VNNI + FMA must be available; see [`head_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")]
unsafe fn head_avx512(q: &[f32], kv: &CrossKvI8, n_q: usize, h: usize, out: OutPtr, scratch: &mut Scratch) {
    const HD: usize = 64;
    const G: usize = 4;
    let (d, st, n) = (kv.n_heads * HD, kv.stride, kv.n_kv);
    scratch.scores.resize(G * st, 0.0);
    scratch.qu.resize(G * HD, 0);
    let (scores, qu) = (&mut scratch.scores[..], &mut scratch.qu[..]);
    let kh = kv.k.as_ptr().add(h * HD * st);
    let vh = kv.v.as_ptr().add(h * HD * st);
    let (ks, ksum, vs) = (kv.k_scale.as_ptr().add(h * st), kv.k_sum.as_ptr().add(h * st), &kv.v_scale[h * st..h * st + n]);
    let mut i0 = 0;
    while i0 < n_q {
        let nq = G.min(n_q - i0);
        if n == 0 {
            for i in 0..nq {
                std::slice::from_raw_parts_mut(out.0.add((i0 + i) * d + h * HD), HD).fill(0.0);
            }
            i0 += nq;
            continue;
        }
        let (mut sq, mut zp) = ([0f32; 4], [0i32; 4]);
        for i in 0..nq {
            (sq[i], zp[i]) = query_head(q, kv, i0 + i, h, &mut qu[i * HD..(i + 1) * HD]);
        }
        let (qp, sp) = (qu.as_ptr(), scores.as_mut_ptr());
        macro_rules! rows {
            ($nq:literal, $nk:literal) => {{
                let mut j0 = 0;
                while j0 + 16 * $nk <= st {
                    scores_tile::<$nq, $nk>(qp, &sq, &zp, kh, ks, ksum, st, j0, sp, st);
                    j0 += 16 * $nk;
                }
                while j0 < st {
                    scores_tile::<$nq, 1>(qp, &sq, &zp, kh, ks, ksum, st, j0, sp, st);
                    j0 += 16;
                }
            }};
        }
        match nq {
            1 => rows!(1, 8),
            2 => rows!(2, 4),
            3 => rows!(3, 4),
            _ => rows!(4, 4),
        }
        for i in 0..nq {
            let r = &mut scores[i * st..i * st + n];
            softmax_row_poly(r);
            // The value scale folded into the probabilities.
            r.iter_mut().zip(vs).for_each(|(p, &s)| *p *= s);
        }
        let o = out.0.add(i0 * d + h * HD);
        let sp = scores.as_ptr();
        match nq {
            1 => pv_rows::<1>(sp, st, n, vh, o, d),
            2 => pv_rows::<2>(sp, st, n, vh, o, d),
            3 => pv_rows::<3>(sp, st, n, vh, o, d),
            _ => pv_rows::<4>(sp, st, n, vh, o, d),
        }
        i0 += nq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The add-and-subtract rounding gives `round_ties_even`'s codes wherever a code is taken:
    /// ties of both parities, both signs, the clamp limits and far beyond them, ±∞ and NaN.
    #[test]
    fn rounding_matches_round_ties_even_for_codes() {
        let mut xs: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.25).collect();
        xs.extend([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -127.5, 254.5, 255.5, 0.49999997, -0.49999997]);
        xs.extend([4_194_303.5, 4.0e6, 5.0e6, -5.0e6, 2.0e7, -2.0e7, 3.0e38, -3.0e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..100_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            xs.push((seed as f32 / u32::MAX as f32 - 0.5) * 600.0);
        }
        for &x in &xs {
            let want = x.round_ties_even();
            assert_eq!(code_i8(x, 1.0), want.clamp(-127.0, 127.0) as i8, "i8 code of {x}");
            assert_eq!(round_even_small(x).clamp(0.0, 255.0) as u8, want.clamp(0.0, 255.0) as u8, "u8 code of {x}");
        }
    }
}
