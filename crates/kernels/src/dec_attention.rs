//! Decoder attention over cached keys and values: a few queries (one per beam, or a prompt)
//! against keys stored **transposed per head** and values stored row-major, in f32 or f16.
//!
//! Why a kernel of its own: a decoding step is a handful of queries against up to 1500 cached
//! keys per head, so it is bound by reading the cache, not by arithmetic. Transposed keys
//! (`[head][head_dim][stride]`) make the scores a streaming multiply-add over contiguous key
//! rows; f16 storage halves the bytes read per step (the cross-attention cache of Whisper base
//! is 37 MB in f32, more than the L3 of our machines). Every query of a step (all beams) is
//! scored in one pass over the keys, with the scores of a block of keys held in registers.
//!
//! Layout (`d = n_heads · head_dim`):
//! * `q`, `out`: `[n_q][d]` f32, heads interleaved as in the model;
//! * `kt`: `[n_heads][head_dim][stride]`, key `j`'s component `c` of head `h` at
//!   `(h·head_dim + c)·stride + j`; `stride` is a multiple of 16 and `≥ n_kv` rounded up to 16
//!   (the padding must hold finite values — it is read, never used);
//! * `v`: `[n_heads][stride][head_dim]`, value `j` of head `h` at `(h·stride + j)·head_dim`
//!   (head-major, so each head's values are one contiguous stream).
//!
//! Both caches are thus one contiguous block per head: a step reads them sequentially.
//!
//! Causality as in [`crate::attention_f32`]: with `causal`, query `i` sees keys
//! `j < n_kv − n_q + i + 1`.

use crate::isa::Isa;
use crate::softmax::{softmax_row_poly, softmax_row_std};
use rayon::prelude::*;
use std::cell::RefCell;

/// Element type of a key/value cache: `f32`, or `half::f16` (half the memory traffic; relative
/// rounding error 2⁻¹¹ per stored value).
pub trait KvElem: Copy + Default + Send + Sync + 'static + sealed::Sealed {
    /// Whether this is the 16-bit type (selects the converting loads in the vector paths).
    const IS_F16: bool;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
}

impl KvElem for f32 {
    const IS_F16: bool = false;
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl KvElem for half::f16 {
    const IS_F16: bool = true;
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        half::f16::from_f32(x)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Shape of one [`attention_kt`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KtShape {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Keys per transposed key row (see the module docs).
    pub stride: usize,
    pub causal: bool,
}

impl KtShape {
    /// Keys query `i` sees.
    #[inline]
    pub fn visible(&self, i: usize) -> usize {
        if self.causal {
            (self.n_kv + i + 1).saturating_sub(self.n_q).min(self.n_kv)
        } else {
            self.n_kv
        }
    }

    /// The smallest valid `stride` for `n_kv` keys.
    pub fn min_stride(n_kv: usize) -> usize {
        n_kv.div_ceil(16) * 16
    }
}

/// `out = softmax(q·kᵀ/√head_dim)·v` per head, keys transposed (see the module docs).
///
/// # Panics
/// If the shape is inconsistent (stride not a multiple of 16 or too small, slices too short).
pub fn attention_kt<T: KvElem>(q: &[f32], kt: &[T], v: &[T], s: KtShape, out: &mut [f32]) {
    attention_kt_with(Isa::detect(), q, kt, v, s, out)
}

/// [`attention_kt`] on an explicit path. The AVX-512 path needs `head_dim == 64` (every Whisper
/// model); other head sizes take the AVX2 path's code.
pub fn attention_kt_with<T: KvElem>(isa: Isa, q: &[f32], kt: &[T], v: &[T], s: KtShape, out: &mut [f32]) {
    isa.assert_available();
    let d = s.n_heads * s.head_dim;
    assert!(
        s.stride.is_multiple_of(16) && s.stride >= KtShape::min_stride(s.n_kv),
        "kernels: attention_kt: stride {} must be a multiple of 16 and >= {}",
        s.stride,
        KtShape::min_stride(s.n_kv)
    );
    assert!(q.len() >= s.n_q * d && out.len() >= s.n_q * d, "kernels: attention_kt: q/out shorter than n_q*d");
    assert!(kt.len() >= d * s.stride, "kernels: attention_kt: kt has {} values, needs {}", kt.len(), d * s.stride);
    assert!(v.len() >= d * s.stride, "kernels: attention_kt: v has {} values, needs {}", v.len(), d * s.stride);
    if s.n_q == 0 || d == 0 {
        return;
    }
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..s.n_heads).into_par_iter().for_each(move |h| {
        SCRATCH.with_borrow_mut(|scratch| match isa {
            // SAFETY: the path's availability was asserted above; each task writes only its
            // head's columns of `out` (checked lengths).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if s.head_dim == 64 => unsafe { head_avx512(q, kt, v, &s, h, out_ptr, scratch) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 => unsafe { head_avx2(q, kt, v, &s, h, out_ptr, scratch) },
            _ => unsafe { head_generic(q, kt, v, &s, h, out_ptr, scratch) },
        })
    });
}

thread_local! {
    /// Per-thread scores (and scaled queries), grown once and reused: no allocation per step.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The output pointer shared by the head tasks.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges (one head each) of a buffer that outlives them.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// One head, written as plain loops (scalar path; compiled again for AVX2 below).
///
/// # Safety
/// `out` must point to `n_q · d` writable floats; only head `h`'s columns are written.
#[inline(always)]
unsafe fn head_generic<T: KvElem>(q: &[f32], kt: &[T], v: &[T], s: &KtShape, h: usize, out: OutPtr, scratch: &mut Vec<f32>) {
    let (d, hd) = (s.n_heads * s.head_dim, s.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    scratch.resize(s.stride + hd, 0.0);
    let (scores, qs) = scratch.split_at_mut(s.stride);
    for i in 0..s.n_q {
        let vis = s.visible(i);
        // SAFETY: row i, columns h·hd..(h+1)·hd belong to this task (caller's contract).
        let oi = std::slice::from_raw_parts_mut(out.0.add(i * d + h * hd), hd);
        oi.fill(0.0);
        if vis == 0 {
            continue;
        }
        for (x, &y) in qs.iter_mut().zip(&q[i * d + h * hd..i * d + (h + 1) * hd]) {
            *x = y * scale;
        }
        let sc = &mut scores[..vis];
        sc.fill(0.0);
        for (c, &qc) in qs.iter().enumerate() {
            let row = &kt[(h * hd + c) * s.stride..(h * hd + c) * s.stride + vis];
            for (a, k) in sc.iter_mut().zip(row) {
                *a += qc * k.to_f32();
            }
        }
        softmax_row_std(sc);
        for (j, &p) in sc.iter().enumerate() {
            let vj = &v[(h * s.stride + j) * hd..(h * s.stride + j + 1) * hd];
            for (o, x) in oi.iter_mut().zip(vj) {
                *o += p * x.to_f32();
            }
        }
    }
}

/// # Safety
/// AVX2 + FMA + F16C must be available; see [`head_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn head_avx2<T: KvElem>(q: &[f32], kt: &[T], v: &[T], s: &KtShape, h: usize, out: OutPtr, scratch: &mut Vec<f32>) {
    head_generic(q, kt, v, s, h, out, scratch)
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// 16 consecutive cache values as f32.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512vl,f16c,avx2,fma")]
unsafe fn ld16<T: KvElem>(p: *const T) -> __m512 {
    if T::IS_F16 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    } else {
        _mm512_loadu_ps(p as *const f32)
    }
}

/// Scores of `NQ` queries (`qs`, `[NQ][64]`, pre-scaled) against keys `j0 .. j0 + 16·NK` of one
/// head, into `scores` rows of length `row`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512vl,f16c,avx2,fma")]
unsafe fn scores_tile<T: KvElem, const NQ: usize, const NK: usize>(qs: *const f32, kh: *const T, stride: usize, j0: usize, scores: *mut f32, row: usize) {
    let mut acc = [[_mm512_setzero_ps(); NK]; NQ];
    for c in 0..64 {
        let kr = kh.add(c * stride + j0);
        let mut kv = [_mm512_setzero_ps(); NK];
        for (u, k) in kv.iter_mut().enumerate() {
            *k = ld16(kr.add(16 * u));
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*qs.add(i * 64 + c));
            for u in 0..NK {
                a[u] = _mm512_fmadd_ps(b, kv[u], a[u]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        for (u, x) in a.iter().enumerate() {
            _mm512_storeu_ps(scores.add(i * row + j0 + 16 * u), *x);
        }
    }
}

/// All key blocks `0 .. n16` (a multiple of 16) for `NQ` queries: wide tiles, then single
/// vectors for the rest.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512vl,f16c,avx2,fma")]
unsafe fn scores_rows<T: KvElem, const NQ: usize, const NK: usize>(qs: *const f32, kh: *const T, stride: usize, n16: usize, scores: *mut f32, row: usize) {
    let mut j0 = 0;
    while j0 + 16 * NK <= n16 {
        scores_tile::<T, NQ, NK>(qs, kh, stride, j0, scores, row);
        j0 += 16 * NK;
    }
    while j0 < n16 {
        scores_tile::<T, NQ, 1>(qs, kh, stride, j0, scores, row);
        j0 += 16;
    }
}

/// `out[i] = Σ_j p[i][j] · v[j]` for `NQ` queries of one head (64 columns, four registers).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512vl,f16c,avx2,fma")]
unsafe fn pv_rows<T: KvElem, const NQ: usize>(p: *const f32, row: usize, n: usize, vh: *const T, out: *mut f32, out_stride: usize) {
    let mut acc = [[_mm512_setzero_ps(); 4]; NQ];
    for j in 0..n {
        let vr = vh.add(j * 64);
        let vv = [ld16(vr), ld16(vr.add(16)), ld16(vr.add(32)), ld16(vr.add(48))];
        for (i, a) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*p.add(i * row + j));
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

/// One head on AVX-512 (`head_dim == 64`): queries in groups of up to four share each pass
/// over the keys and values.
///
/// # Safety
/// AVX-512F/VL + F16C must be available; see [`head_generic`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,f16c,avx2,fma")]
unsafe fn head_avx512<T: KvElem>(q: &[f32], kt: &[T], v: &[T], s: &KtShape, h: usize, out: OutPtr, scratch: &mut Vec<f32>) {
    const HD: usize = 64;
    const G: usize = 4;
    let d = s.n_heads * HD;
    let scale = 1.0 / (HD as f32).sqrt();
    let row = s.stride;
    scratch.resize(G * row + G * HD, 0.0);
    let (scores, qs) = scratch.split_at_mut(G * row);
    let kh = kt.as_ptr().add(h * HD * s.stride);
    let vh = v.as_ptr().add(h * s.stride * HD);
    let mut i0 = 0;
    while i0 < s.n_q {
        let nq = G.min(s.n_q - i0);
        // Causal visibility grows with i: the group's last query sees the most keys.
        let max_vis = s.visible(i0 + nq - 1);
        for i in 0..nq {
            let src = &q[(i0 + i) * d + h * HD..(i0 + i) * d + (h + 1) * HD];
            for (x, &y) in qs[i * HD..(i + 1) * HD].iter_mut().zip(src) {
                *x = y * scale;
            }
        }
        let n16 = max_vis.div_ceil(16) * 16;
        let (qp, sp) = (qs.as_ptr(), scores.as_mut_ptr());
        match nq {
            1 => scores_rows::<T, 1, 8>(qp, kh, s.stride, n16, sp, row),
            2 => scores_rows::<T, 2, 4>(qp, kh, s.stride, n16, sp, row),
            3 => scores_rows::<T, 3, 4>(qp, kh, s.stride, n16, sp, row),
            _ => scores_rows::<T, 4, 4>(qp, kh, s.stride, n16, sp, row),
        }
        for i in 0..nq {
            let vis = s.visible(i0 + i);
            let r = &mut scores[i * row..i * row + max_vis];
            softmax_row_poly(&mut r[..vis]);
            // Keys this query must not see weigh nothing in the shared pass over V.
            r[vis..].fill(0.0);
        }
        let o = out.0.add(i0 * d + h * HD);
        let sp = scores.as_ptr();
        match nq {
            1 => pv_rows::<T, 1>(sp, row, max_vis, vh, o, d),
            2 => pv_rows::<T, 2>(sp, row, max_vis, vh, o, d),
            3 => pv_rows::<T, 3>(sp, row, max_vis, vh, o, d),
            _ => pv_rows::<T, 4>(sp, row, max_vis, vh, o, d),
        }
        i0 += nq;
    }
}

/// f32 → f16 (round to nearest even, as `half::f16::from_f32`) for a whole slice, vectorized
/// where the CPU has F16C: used to store K/V caches compactly.
///
/// # Panics
/// If the lengths differ.
pub fn f32_to_f16_slice(src: &[f32], dst: &mut [half::f16]) {
    assert_eq!(src.len(), dst.len(), "kernels: f32_to_f16_slice: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if Isa::detect() != Isa::Scalar && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: F16C and AVX2 detected.
        unsafe { f32_to_f16_f16c(src, dst) };
        return;
    }
    for (o, &x) in dst.iter_mut().zip(src) {
        *o = half::f16::from_f32(x);
    }
}

/// # Safety
/// Needs F16C and AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [half::f16]) {
    let n8 = src.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        let x = _mm256_loadu_ps(src.as_ptr().add(i));
        let hx = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
        _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, hx);
    }
    for i in n8..src.len() {
        dst[i] = half::f16::from_f32(src[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Row-major values `[n_kv][d]` into the kernel's head-major layout.
    fn head_major<T: KvElem>(v: &[f32], n_kv: usize, heads: usize, hd: usize, stride: usize) -> Vec<T> {
        let mut out = vec![T::default(); heads * hd * stride];
        for j in 0..n_kv {
            for h in 0..heads {
                for c in 0..hd {
                    out[(h * stride + j) * hd + c] = T::from_f32(v[j * heads * hd + h * hd + c]);
                }
            }
        }
        out
    }

    /// Transposes row-major keys `[n_kv][d]` into the kernel's layout.
    fn transpose<T: KvElem>(k: &[f32], n_kv: usize, d: usize, stride: usize) -> Vec<T> {
        let mut kt = vec![T::default(); d * stride];
        for j in 0..n_kv {
            for c in 0..d {
                kt[c * stride + j] = T::from_f32(k[j * d + c]);
            }
        }
        kt
    }

    /// Runs every available path on random data and compares with `reference::attention` fed
    /// the same (rounded) keys and values.
    fn check<T: KvElem>(n_q: usize, n_kv: usize, n_heads: usize, head_dim: usize, extra: usize, causal: bool, seed: u64) {
        let d = n_heads * head_dim;
        let stride = KtShape::min_stride(n_kv) + 16 * extra;
        let q: Vec<f32> = lcg(n_q * d, seed).iter().map(|x| x * 3.0).collect();
        let k: Vec<f32> = lcg(n_kv * d, seed + 1).iter().map(|&x| T::from_f32(x * 3.0).to_f32()).collect();
        let v: Vec<f32> = lcg(n_kv * d, seed + 2).iter().map(|&x| T::from_f32(x).to_f32()).collect();
        let kt = transpose::<T>(&k, n_kv, d, stride);
        let vs = head_major::<T>(&v, n_kv, n_heads, head_dim, stride);
        let mut want = vec![0.0; n_q * d];
        crate::reference::attention(&q, &k, &v, n_q, n_kv, n_heads, head_dim, causal, &mut want);
        let s = KtShape { n_q, n_kv, n_heads, head_dim, stride, causal };
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; n_q * d];
            attention_kt_with(isa, &q, &kt, &vs, s, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()) * (head_dim as f32).sqrt(), "{isa:?} {s:?} [{i}]: got {g}, want {w}");
            }
        }
    }

    #[test]
    fn whisper_shapes_match_reference() {
        for causal in [false, true] {
            check::<f32>(1, 1500, 8, 64, 0, causal, 1);
            check::<half::f16>(5, 1500, 8, 64, 0, causal, 2);
            check::<half::f16>(3, 37, 6, 64, 2, causal, 3);
            check::<f32>(9, 448, 2, 64, 0, causal, 4);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn odd_shapes_match_reference(n_q in 1usize..11, n_kv in 0usize..70, heads in 1usize..4, hd in prop::sample::select(vec![8usize, 64, 7]), extra in 0usize..3, causal: bool, f16: bool, seed in 0u64..1000) {
            if f16 {
                check::<half::f16>(n_q, n_kv, heads, hd, extra, causal, seed);
            } else {
                check::<f32>(n_q, n_kv, heads, hd, extra, causal, seed);
            }
        }

        #[test]
        fn f16_conversion_matches_half(xs in prop::collection::vec(prop::num::f32::ANY, 0..70)) {
            let mut got = vec![half::f16::ZERO; xs.len()];
            f32_to_f16_slice(&xs, &mut got);
            for (g, &x) in got.iter().zip(&xs) {
                let w = half::f16::from_f32(x);
                prop_assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{x}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn padding_is_never_used() {
        // Infinite values in the padding and beyond the causal horizon must not leak.
        let (n_q, n_kv, d) = (2, 20, 64);
        let stride = 32;
        let q = lcg(n_q * d, 9);
        let k = lcg(n_kv * d, 10);
        let v = lcg(n_kv * d, 11);
        let mut kt = transpose::<f32>(&k, n_kv, d, stride);
        let v = head_major::<f32>(&v, n_kv, 1, d, stride);
        for c in 0..d {
            for j in n_kv..stride {
                kt[c * stride + j] = f32::INFINITY;
            }
        }
        let mut want = vec![0.0; n_q * d];
        crate::reference::attention(&q, &k, &v, n_q, n_kv, 1, d, true, &mut want);
        for isa in Isa::available() {
            let mut got = vec![0.0; n_q * d];
            attention_kt_with(isa, &q, &kt, &v, KtShape { n_q, n_kv, n_heads: 1, head_dim: d, stride, causal: true }, &mut got);
            assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-4), "{isa:?}");
        }
    }
}
