//! Fused multi-head attention with bf16 products: the encoder's attention for the compact
//! compute types. Same block-wise (online) softmax as [`crate::attention_f32`], but both
//! products — scores `Q·Kᵀ` and `P·V` — run on the bf16 GEMM microkernel (`vdpbf16ps`, twice
//! the multiply-adds per instruction of an f32 FMA), with f32 accumulation and an f32 softmax.
//!
//! Why: the encoder's attention (8 heads × 1500² × 64 per layer for Whisper base) is the
//! largest cost of a window once the projections run in int8. Rounding Q, K, P and V to bf16
//! (8 significant bits) costs accuracy that `attention_bf16_accuracy` in the tests and the
//! engine's WER measurements bound; the f32 engine keeps [`crate::attention_f32`].

use crate::bf16::{bf16_microkernel, bf16_mr, PackedBf16};
use crate::isa::Isa;
use crate::softmax::f32_to_bf16;
use crate::util::{div_ceil, MatMut};
use rayon::prelude::*;

/// Query rows per task.
const BQ: usize = 64;
/// Keys per block (a multiple of 32: two 16-key panels per microkernel call).
const BK: usize = 256;

/// [`crate::attention_f32`] with bf16 products (same layout, causality and panics).
#[allow(clippy::too_many_arguments)]
pub fn attention_bf16(q: &[f32], k: &[f32], v: &[f32], n_q: usize, n_kv: usize, n_heads: usize, head_dim: usize, causal: bool, out: &mut [f32]) {
    attention_bf16_with(Isa::detect(), q, k, v, n_q, n_kv, n_heads, head_dim, causal, out)
}

/// [`attention_bf16`] on an explicit path (without AVX512_BF16 the products widen bf16 to
/// f32 exactly, so every path computes the same rounded operands).
#[allow(clippy::too_many_arguments)]
pub fn attention_bf16_with(isa: Isa, q: &[f32], k: &[f32], v: &[f32], n_q: usize, n_kv: usize, n_heads: usize, head_dim: usize, causal: bool, out: &mut [f32]) {
    isa.assert_available();
    let d = n_heads * head_dim;
    if !crate::attention::check_and_trivial("attention_bf16", q, k, v, n_q, n_kv, d, out) {
        return;
    }
    // Per head: K as the weights of S = Q·Kᵀ ([n_kv][hd]) and Vᵀ as those of O = P·V
    // ([hd][n_kv]), both rounded and packed once.
    let packed: Vec<(PackedBf16, PackedBf16)> = (0..n_heads)
        .into_par_iter()
        .map(|h| {
            let mut kh = vec![0f32; n_kv * head_dim];
            let mut vt = vec![0f32; head_dim * n_kv];
            for j in 0..n_kv {
                let src = &k[j * d + h * head_dim..j * d + (h + 1) * head_dim];
                kh[j * head_dim..(j + 1) * head_dim].copy_from_slice(src);
                for c in 0..head_dim {
                    vt[c * n_kv + j] = v[j * d + h * head_dim + c];
                }
            }
            (PackedBf16::new(&kh, n_kv, head_dim), PackedBf16::new(&vt, head_dim, n_kv))
        })
        .collect();
    let scale = 1.0 / (head_dim as f32).sqrt();
    let n_qb = div_ceil(n_q, BQ);
    let mr = bf16_mr(isa);
    // Only the AVX512_BF16 microkernel takes two panels per call.
    let wide = isa.has_bf16();
    let (kp_q, kp_blk) = (div_ceil(head_dim, 2), BK / 2);
    let outp = MatMut { ptr: out.as_mut_ptr(), rs: d as isize, cs: 1 };
    let task = |t: usize| {
        let outp = &outp;
        let (h, qb) = (t / n_qb, t % n_qb);
        let q0 = qb * BQ;
        let rows = BQ.min(n_q - q0);
        let (kp, vp) = &packed[h];
        let groups: Vec<(usize, usize)> = (0..rows).step_by(mr).map(|r0| (r0, mr.min(rows - r0))).collect();
        // Q rows of each group, packed [pair][row][2] once per task.
        let mut qpack = vec![0u16; groups.len() * mr * kp_q * 2];
        let mut row16 = vec![0u16; head_dim.max(BK) + 2];
        for (g, &(r0, n)) in groups.iter().enumerate() {
            let dst = &mut qpack[g * mr * kp_q * 2..][..n * kp_q * 2];
            for i in 0..n {
                let src = &q[(q0 + r0 + i) * d + h * head_dim..][..head_dim];
                to_bf16(isa, src, &mut row16[..head_dim]);
                row16[head_dim] = 0;
                scatter_pairs(&row16, kp_q, i, n, dst);
            }
        }
        let mut s = vec![0.0f32; rows * BK];
        let mut o = vec![0.0f32; rows * head_dim];
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let mut ppack = vec![0u16; mr * kp_blk * 2];
        let mut acc = [0.0f32; 14 * 32];
        let shift = n_kv as isize - n_q as isize;
        let kv_end = if causal { ((q0 + rows) as isize + shift).clamp(0, n_kv as isize) as usize } else { n_kv };
        for kb in 0..div_ceil(kv_end, BK) {
            let k0 = kb * BK;
            let cols = BK.min(n_kv - k0);
            // Scores: 32 keys (two panels) per microkernel call.
            for (g, &(r0, n)) in groups.iter().enumerate() {
                let a = qpack[g * mr * kp_q * 2..].as_ptr();
                let mut j = 0;
                while j < cols {
                    let nv = if wide && cols - j > 16 { 2 } else { 1 };
                    let p0 = (k0 + j) / 16;
                    // SAFETY: isa checked; `a` holds n rows × kp_q pairs; panels exist up to
                    // n_kv (padded to 16); acc is 14 × 32.
                    unsafe { bf16_microkernel(isa, n, nv, kp_q, a, kp.panel_ptr(p0), kp.panel_ptr(p0 + nv - 1), acc.as_mut_ptr()) };
                    let w = (16 * nv).min(cols - j);
                    for i in 0..n {
                        s[(r0 + i) * BK + j..][..w].copy_from_slice(&acc[i * 32..i * 32 + w]);
                    }
                    j += 16 * nv;
                }
            }
            let limit = |i: usize| if causal { (q0 + i) as isize + shift - k0 as isize + 1 } else { cols as isize };
            crate::attention::online_softmax(isa, &mut s, BK, rows, cols, &limit, scale, &mut m, &mut l, &mut o, head_dim);
            // O += P·V over this block's keys (pairs k0/2 .. k0/2 + kpc of the packed Vᵀ).
            let kpc = div_ceil(cols, 2);
            for &(r0, n) in &groups {
                let dst = &mut ppack[..n * kpc * 2];
                for i in 0..n {
                    to_bf16(isa, &s[(r0 + i) * BK..][..cols], &mut row16[..cols]);
                    row16[cols] = 0;
                    scatter_pairs(&row16, kpc, i, n, dst);
                }
                let mut c0 = 0;
                while c0 < head_dim {
                    let nv = if wide && head_dim - c0 > 16 { 2 } else { 1 };
                    let (p0, p1) = (c0 / 16, c0 / 16 + nv - 1);
                    // SAFETY: as above; the V panels hold n_kv (padded to even) pairs, and
                    // k0/2 + kpc ≤ that.
                    unsafe {
                        let b0 = vp.panel_ptr(p0).add(k0 / 2 * 32);
                        let b1 = vp.panel_ptr(p1).add(k0 / 2 * 32);
                        bf16_microkernel(isa, n, nv, kpc, ppack.as_ptr(), b0, b1, acc.as_mut_ptr());
                    }
                    let w = (16 * nv).min(head_dim - c0);
                    for i in 0..n {
                        for (x, a) in o[(r0 + i) * head_dim + c0..][..w].iter_mut().zip(&acc[i * 32..i * 32 + w]) {
                            *x += a;
                        }
                    }
                    c0 += 16 * nv;
                }
            }
        }
        // SAFETY: tasks own disjoint (query block, head) tiles of `out`.
        unsafe { crate::attention::write_normalized(outp, &o, &l, q0, rows, h, head_dim) };
    };
    crate::attention::run_tasks(n_heads * n_qb, n_q * n_kv * d, task);
}

/// Writes the pairs of one bf16 row (`row[2p], row[2p+1]`, `kp` pairs) as row `i` of a
/// `[pair][n][2]` microkernel operand.
#[inline]
fn scatter_pairs(row: &[u16], kp: usize, i: usize, n: usize, dst: &mut [u16]) {
    for p in 0..kp {
        dst[(p * n + i) * 2] = row[2 * p];
        dst[(p * n + i) * 2 + 1] = row[2 * p + 1];
    }
}

/// Rounds f32 to bf16 (nearest even) — `vcvtneps2bf16` where the CPU has it.
pub(crate) fn to_bf16(isa: Isa, src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if isa.has_bf16() {
        // SAFETY: AVX512_BF16 present (has_bf16 implies the AVX-512 path).
        unsafe { to_bf16_avx512(src, dst) };
        return;
    }
    let _ = isa;
    for (o, &x) in dst.iter_mut().zip(src) {
        *o = f32_to_bf16(x).to_bits();
    }
}

/// # Safety
/// Needs AVX-512F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
unsafe fn to_bf16_avx512(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let n16 = src.len() / 16 * 16;
    for i in (0..n16).step_by(16) {
        let h: __m256bh = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.as_ptr().add(i)));
        _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(h));
    }
    for i in n16..src.len() {
        dst[i] = f32_to_bf16(src[i]).to_bits();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn corr(a: &[f32], b: &[f32]) -> f64 {
        let w = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
        crate::correlation(&w(a), &w(b))
    }

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every path against the f64 reference, within the error bf16 operands allow.
    fn check(n_q: usize, n_kv: usize, heads: usize, hd: usize, causal: bool, seed: u64) {
        let d = heads * hd;
        let q: Vec<f32> = lcg(n_q * d, seed).iter().map(|x| x * 2.0).collect();
        let k: Vec<f32> = lcg(n_kv * d, seed + 1).iter().map(|x| x * 2.0).collect();
        let v = lcg(n_kv * d, seed + 2);
        let mut want = vec![0.0; n_q * d];
        crate::reference::attention(&q, &k, &v, n_q, n_kv, heads, hd, causal, &mut want);
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; n_q * d];
            attention_bf16_with(isa, &q, &k, &v, n_q, n_kv, heads, hd, causal, &mut got);
            let err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
            // Scores carry ~2^-8 relative error per operand; outputs are averages of |v| ≤ 1.
            assert!(err < 0.03, "{isa:?} n_q {n_q} n_kv {n_kv} heads {heads} hd {hd} causal {causal}: max error {err}");
            let corr = corr(&got, &want);
            assert!(n_q * d < 64 || corr > 0.999, "{isa:?}: correlation {corr}");
        }
    }

    #[test]
    fn whisper_shape_matches_reference() {
        check(1500, 1500, 2, 64, false, 1);
        check(300, 300, 3, 64, true, 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn odd_shapes_match_reference(n_q in 1usize..90, n_kv in 1usize..300, heads in 1usize..3, hd in prop::sample::select(vec![1usize, 7, 16, 33, 64]), causal: bool, seed in 0u64..1000) {
            check(n_q, n_kv, heads, hd, causal, seed);
        }
    }

    /// Agrees with the f32 kernel to bf16 accuracy on every path (and the paths agree).
    #[test]
    fn close_to_f32_attention() {
        let (n, heads, hd) = (700, 2, 64);
        let d = heads * hd;
        let (q, k, v) = (lcg(n * d, 7), lcg(n * d, 8), lcg(n * d, 9));
        let mut f = vec![0.0; n * d];
        crate::attention_f32(&q, &k, &v, n, n, heads, hd, false, &mut f);
        let mut b = vec![0.0; n * d];
        attention_bf16(&q, &k, &v, n, n, heads, hd, false, &mut b);
        assert!(corr(&f, &b) > 0.9999);
    }
}
