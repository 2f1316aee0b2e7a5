//! Encoder self-attention with int8 scores: `S = Q·Kᵀ` on the int8 VNNI microkernel
//! (`vpdpbusd`: 64 multiply-adds per instruction, twice `vdpbf16ps`), an exact f32 softmax
//! over whole rows, and `P·V` on the bf16 microkernel.
//!
//! Why: the encoder's attention is the largest cost of a window once its projections run in
//! int8 (8 heads × 1500² × 64 per layer for Whisper base, twice). With 1500 keys a block of
//! query rows' whole score rows fits in L2, so this kernel computes each row's softmax in one
//! pass (no online rescaling of the output) and writes the probabilities straight into the
//! bf16 operand of `P·V`.
//!
//! Quantization (the SageAttention recipe): keys are first *smoothed* — the mean key over all
//! positions is subtracted per channel, which shifts every score of a query by the same
//! constant `q·mean` and so leaves the softmax unchanged exactly — then quantized symmetric
//! per key (`k ≈ s_k[j]·c_k[j]`, codes in [-127, 127]); queries are quantized per row,
//! asymmetric u8 with a zero point, as [`crate::linear_i8`] quantizes activations. Smoothing
//! removes the channel offsets Whisper's keys carry, which would otherwise eat the int8
//! range. The probabilities and values are rounded to bf16 as in [`crate::attention_bf16`].
//! Accuracy is bounded by the tests below and by the engine's WER measurements.
//!
//! Inputs are strided views: row `t` of `q` starts at `q[t·ld]` (so the three parts of a
//! fused QKV projection are read in place, without copies).

use crate::attention_bf16::to_bf16;
use crate::bf16::{bf16_microkernel_rows, bf16_mr, PackedBf16};
use crate::int8::{quant_weights_body, quantize_rows_u8, vnni_microkernel, PackedI8};
use crate::softmax::f32_to_bf16;
use crate::isa::Isa;
use crate::util::{div_ceil, with_scratch};
use crate::vmath::{exp_poly, max_f32};
use rayon::prelude::*;
use std::cell::Cell;

/// Query rows per task (a multiple of the bf16 microkernel's 14 rows).
const BQ: usize = 42;

/// Shapes of an [`attention_i8qk`] call.
#[derive(Clone, Copy, Debug)]
pub struct StridedAttention {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Elements from one row of `q`, `k` or `v` to the next (≥ n_heads·head_dim).
    pub ld: usize,
}

/// Non-causal multi-head attention `softmax(q·kᵀ/√d)·v` with int8 scores and bf16 `P·V`.
/// `q`, `k`, `v` hold rows of `n_heads·head_dim` values `ld` apart (the last row may be
/// short); `out` is `[n_q][n_heads·head_dim]`, contiguous.
///
/// # Panics
/// If a slice is too short for its shape or `ld < n_heads·head_dim`.
pub fn attention_i8qk(q: &[f32], k: &[f32], v: &[f32], s: StridedAttention, out: &mut [f32]) {
    attention_i8qk_with(Isa::detect(), q, k, v, s, out)
}

/// Keys of one head, smoothed and quantized, and its values packed as bf16 `Vᵀ`.
struct HeadPack {
    /// Codes `[n_kv][head_dim]` (the paths without VNNI read these).
    codes: Vec<i8>,
    packed: Option<PackedI8>,
    scales: Vec<f32>,
    col_sums: Vec<i32>,
    vt: PackedBf16,
}

fn needed(rows: usize, d: usize, ld: usize) -> usize {
    if rows == 0 {
        0
    } else {
        (rows - 1) * ld + d
    }
}

/// [`attention_i8qk`] on an explicit path: every path computes the same integer scores and
/// the same bf16-rounded operands (the products of `P·V` differ by f32 rounding only).
pub fn attention_i8qk_with(
    isa: Isa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: StridedAttention,
    out: &mut [f32],
) {
    isa.assert_available();
    let StridedAttention {
        n_q,
        n_kv,
        n_heads,
        head_dim: hd,
        ld,
    } = s;
    let d = n_heads * hd;
    assert!(
        ld >= d,
        "kernels: attention_i8qk: ld {ld} < n_heads*head_dim {d}"
    );
    assert!(
        q.len() >= needed(n_q, d, ld),
        "kernels: attention_i8qk: q too short"
    );
    assert!(
        k.len() >= needed(n_kv, d, ld) && v.len() >= needed(n_kv, d, ld),
        "kernels: attention_i8qk: k or v too short"
    );
    assert_eq!(
        out.len(),
        n_q * d,
        "kernels: attention_i8qk: out has {} values, expected {n_q}*{d}",
        out.len()
    );
    if n_q == 0 || d == 0 {
        return;
    }
    if n_kv == 0 {
        out.fill(0.0);
        return;
    }
    let heads: Vec<HeadPack> = (0..n_heads).into_par_iter().map(|h| prep_head(isa, k, v, ld, h, hd, n_kv)).collect();
    let scale = 1.0 / (hd as f32).sqrt();
    let n_qb = div_ceil(n_q, BQ);
    let mr = bf16_mr(isa);
    let wide = isa.has_bf16();
    let kq = div_ceil(hd, 4);
    let kp = div_ceil(n_kv, 2);
    let n_kv32 = div_ceil(n_kv, 32) * 32;
    let outp = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let outp = &outp;
        let (h, qb) = (t / n_qb, t % n_qb);
        let hp = &heads[h];
        let q0 = qb * BQ;
        let rows = BQ.min(n_q - q0);
        // This block's queries of head h, quantized per row.
        let mut qh = vec![0f32; rows * hd];
        for i in 0..rows {
            qh[i * hd..(i + 1) * hd].copy_from_slice(&q[(q0 + i) * ld + h * hd..][..hd]);
        }
        let (mut qq, mut sq, mut zq) = (vec![0u8; rows * hd], vec![0f32; rows], vec![0i32; rows]);
        quantize_rows_u8(&qh, rows, hd, &mut qq, &mut sq, &mut zq);
        // Scores of the block's rows, scaled by 1/√d: [rows][n_kv32].
        with_scratch(&SCORES, |sc| {
            with_scratch(&PROBS, |p16| {
                sc.resize(rows * n_kv32, 0.0);
                scores(
                    isa, hp, &qq, &sq, &zq, rows, hd, kq, n_kv, n_kv32, scale, sc,
                );
                // Probabilities as bf16 rows (pairs zero padded), then P·V group by group.
                let lda = 2 * kp;
                p16.resize(rows * lda, 0);
                let mut l = vec![0f32; rows];
                for i in 0..rows {
                    let row = &mut sc[i * n_kv32..][..n_kv];
                    l[i] = softmax_row(isa, row);
                    to_bf16(isa, row, &mut p16[i * lda..][..n_kv]);
                    if lda > n_kv {
                        p16[i * lda + n_kv] = 0;
                    }
                }
                let mut acc = [0f32; 14 * 32];
                for r0 in (0..rows).step_by(mr) {
                    let n = mr.min(rows - r0);
                    let mut c0 = 0;
                    while c0 < hd {
                        let nv = if wide && hd - c0 > 16 { 2 } else { 1 };
                        let (p0, p1) = (c0 / 16, c0 / 16 + nv - 1);
                        // SAFETY: isa checked; p16 holds n rows of kp pairs from r0; Vᵀ panels hold kp pairs.
                        unsafe {
                            bf16_microkernel_rows(
                                isa,
                                n,
                                nv,
                                kp,
                                p16[r0 * lda..].as_ptr(),
                                lda,
                                hp.vt.panel_ptr(p0),
                                hp.vt.panel_ptr(p1),
                                acc.as_mut_ptr(),
                            )
                        };
                        let w = (16 * nv).min(hd - c0);
                        for i in 0..n {
                            let inv = 1.0 / l[r0 + i];
                            // SAFETY: row q0+r0+i, columns of head h: this task's tile alone.
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    outp.0.add((q0 + r0 + i) * d + h * hd + c0),
                                    w,
                                )
                            };
                            for (o, a) in dst.iter_mut().zip(&acc[i * 32..i * 32 + w]) {
                                *o = a * inv;
                            }
                        }
                        c0 += 16 * nv;
                    }
                }
            })
        })
    };
    crate::attention::run_tasks(n_heads * n_qb, n_q * n_kv * d, task);
}

/// Smooths, quantizes and packs the keys of head `h` and packs its values as bf16 `Vᵀ`,
/// straight from the strided rows (one pass over each, no transposed copies).
fn prep_head(isa: Isa, k: &[f32], v: &[f32], ld: usize, h: usize, hd: usize, n_kv: usize) -> HeadPack {
    match isa {
        // SAFETY: isa availability was checked by the caller. The body is plain IEEE
        // arithmetic without fused operations: every path computes the same codes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { prep_head_avx512(isa, k, v, ld, h, hd, n_kv) },
        _ => prep_head_body(isa, k, v, ld, h, hd, n_kv),
    }
}

/// # Safety
/// Needs AVX-512F/BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn prep_head_avx512(isa: Isa, k: &[f32], v: &[f32], ld: usize, h: usize, hd: usize, n_kv: usize) -> HeadPack {
    prep_head_body(isa, k, v, ld, h, hd, n_kv)
}

#[inline(always)]
fn prep_head_body(isa: Isa, k: &[f32], v: &[f32], ld: usize, h: usize, hd: usize, n_kv: usize) -> HeadPack {
    let key = |j: usize| &k[j * ld + h * hd..][..hd];
    let mut mean = vec![0f64; hd];
    for j in 0..n_kv {
        for (m, &x) in mean.iter_mut().zip(key(j)) {
            *m += x as f64;
        }
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n_kv as f64) as f32).collect();
    let vnni = isa.has_vnni();
    let kq = div_ceil(hd, 4);
    // VNNI: codes straight into the packed layout (panels of 16 keys, groups of 4 channels);
    // other paths: row-major codes.
    let mut data = vec![0i8; if vnni { div_ceil(n_kv, 16) * kq * 64 } else { n_kv * hd }];
    let (mut scales, mut col_sums) = (vec![0f32; n_kv], vec![0i32; n_kv]);
    let (mut row, mut codes) = (vec![0f32; hd], vec![0i8; kq * 4]);
    for j in 0..n_kv {
        for ((r, &x), m) in row.iter_mut().zip(key(j)).zip(&mean) {
            *r = x - m;
        }
        quant_weights_body(&row, 1, hd, &mut codes[..hd], &mut scales[j..j + 1]);
        col_sums[j] = codes[..hd].iter().map(|&c| c as i32).sum();
        if vnni {
            let panel = &mut data[(j / 16) * kq * 64..];
            for g in 0..kq {
                panel[g * 64 + (j % 16) * 4..][..4].copy_from_slice(&codes[g * 4..g * 4 + 4]);
            }
        } else {
            data[j * hd..(j + 1) * hd].copy_from_slice(&codes[..hd]);
        }
    }
    // Vᵀ as the bf16 weights of P·V: panels of 16 channels, keys in pairs.
    let kp = div_ceil(n_kv, 2);
    let mut vt = vec![0u16; div_ceil(hd, 16) * kp * 32];
    for j in 0..n_kv {
        let (p, t) = (j / 2, j % 2);
        for (c, &x) in v[j * ld + h * hd..][..hd].iter().enumerate() {
            vt[(c / 16) * kp * 32 + p * 32 + (c % 16) * 2 + t] = f32_to_bf16(x).to_bits();
        }
    }
    let (codes, packed) = if vnni { (Vec::new(), Some(PackedI8::from_raw(data, n_kv, hd))) } else { (data, None) };
    HeadPack { codes, packed, scales, col_sums, vt: PackedBf16::from_raw(vt, hd, n_kv) }
}

thread_local! {
    /// Per-thread scores and probabilities of a task, reused across tasks and calls.
    static SCORES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static PROBS: Cell<Vec<u16>> = const { Cell::new(Vec::new()) };
}

struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (query block, head) tiles.
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}

/// Dequantized, scaled scores of `rows` quantized queries against all keys of a head.
#[allow(clippy::too_many_arguments)]
fn scores(
    isa: Isa,
    hp: &HeadPack,
    qq: &[u8],
    sq: &[f32],
    zq: &[i32],
    rows: usize,
    hd: usize,
    kq: usize,
    n_kv: usize,
    ld: usize,
    scale: f32,
    sc: &mut [f32],
) {
    const MR: usize = 14;
    let mut apack = vec![0u8; MR * kq * 4];
    let mut acc = [0i32; MR * 32];
    for i0 in (0..rows).step_by(MR) {
        let mr = MR.min(rows - i0);
        match &hp.packed {
            Some(packed) => {
                // Rows i0..i0+mr as [group of 4][row][4], zero padded.
                apack.fill(0);
                for i in 0..mr {
                    for (p, &c) in qq[(i0 + i) * hd..][..hd].iter().enumerate() {
                        apack[((p / 4) * mr + i) * 4 + p % 4] = c;
                    }
                }
                let mut j = 0;
                while j < n_kv {
                    let nv = if n_kv - j > 16 { 2 } else { 1 };
                    // SAFETY: VNNI present (packed exists only then); panels j/16 (+1) exist.
                    unsafe {
                        vnni_microkernel(
                            mr,
                            nv,
                            kq,
                            apack.as_ptr(),
                            packed.panel_ptr(j / 16),
                            packed.panel_ptr(j / 16 + nv - 1),
                            acc.as_mut_ptr(),
                            32,
                        )
                    };
                    let w = (16 * nv).min(n_kv - j);
                    for i in 0..mr {
                        let out = &mut sc[(i0 + i) * ld + j..][..w];
                        let (acc, cs, sk) = (
                            &acc[i * 32..][..w],
                            &hp.col_sums[j..j + w],
                            &hp.scales[j..j + w],
                        );
                        // SAFETY: the VNNI path implies AVX-512F.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            dequant_avx512(acc, zq[i0 + i], sq[i0 + i] * scale, cs, sk, out)
                        };
                        #[cfg(not(target_arch = "x86_64"))]
                        dequant(acc, zq[i0 + i], sq[i0 + i] * scale, cs, sk, out);
                    }
                    j += 32;
                }
            }
            None => {
                let _ = isa;
                for i in i0..i0 + mr {
                    let qrow = &qq[i * hd..(i + 1) * hd];
                    for j in 0..n_kv {
                        let krow = &hp.codes[j * hd..(j + 1) * hd];
                        let dot: i32 = qrow
                            .iter()
                            .zip(krow)
                            .map(|(&a, &b)| a as i32 * b as i32)
                            .sum();
                        sc[i * ld + j] = ((dot - zq[i] * hp.col_sums[j]) as f32)
                            * (sq[i] * scale * hp.scales[j]);
                    }
                }
            }
        }
    }
}

/// [`dequant`] with AVX-512 intrinsics (the same operations in the same order: an integer
/// multiply-subtract, a conversion, two multiplies).
///
/// # Safety
/// Needs AVX-512F; `acc`, `cs`, `sk` and `out` have the same length ≤ 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dequant_avx512(acc: &[i32], z: i32, f: f32, cs: &[i32], sk: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (zv, fv) = (_mm512_set1_epi32(z), _mm512_set1_ps(f));
    let n = out.len();
    let mut j = 0;
    while j < n {
        let mask: __mmask16 = if n - j >= 16 { 0xffff } else { (1u16 << (n - j)) - 1 };
        let a = _mm512_maskz_loadu_epi32(mask, acc.as_ptr().add(j));
        let c = _mm512_maskz_loadu_epi32(mask, cs.as_ptr().add(j));
        let k = _mm512_maskz_loadu_ps(mask, sk.as_ptr().add(j));
        let t = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_mullo_epi32(zv, c)));
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(j), mask, _mm512_mul_ps(t, _mm512_mul_ps(fv, k)));
        j += 16;
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn dequant(acc: &[i32], z: i32, f: f32, cs: &[i32], sk: &[f32], out: &mut [f32]) {
    for j in 0..out.len() {
        out[j] = ((acc[j] - z * cs[j]) as f32) * (f * sk[j]);
    }
}

/// Replaces a row of scores by `exp(s − max)` and returns their sum.
fn softmax_row(isa: Isa, row: &mut [f32]) -> f32 {
    match isa {
        // SAFETY: isa availability was checked by the caller.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { softmax_row_avx512(row) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { softmax_row_avx2(row) },
        _ => softmax_row_body::<false>(row),
    }
}

#[inline(always)]
fn softmax_row_body<const FMA: bool>(row: &mut [f32]) -> f32 {
    let m = max_f32(row);
    let mut sum = [0.0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for t in 0..16 {
            c[t] = exp_poly::<FMA>(c[t] - m);
            sum[t] += c[t];
        }
    }
    let mut total = 0.0;
    for x in chunks.into_remainder() {
        *x = exp_poly::<FMA>(*x - m);
        total += *x;
    }
    total + sum.iter().sum::<f32>()
}

/// # Safety
/// Needs AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn softmax_row_avx512(row: &mut [f32]) -> f32 {
    softmax_row_body::<true>(row)
}

/// # Safety
/// Needs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row_avx2(row: &mut [f32]) -> f32 {
    softmax_row_body::<true>(row)
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
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Runs every path on fused rows `[n][3d]` (q, k, v side by side, as the encoder holds
    /// them) plus an offset on the keys (which smoothing must absorb) and compares with the
    /// f64 reference on contiguous copies.
    fn check(n_q: usize, n_kv: usize, heads: usize, hd: usize, seed: u64, key_offset: f32) {
        let d = heads * hd;
        let ld = 3 * d;
        let n = n_q.max(n_kv);
        let mut fused = lcg(n * ld, seed);
        for t in 0..n {
            for c in 0..d {
                fused[t * ld + c] *= 2.0;
                fused[t * ld + d + c] =
                    fused[t * ld + d + c] * 2.0 + key_offset * ((c % 7) as f32 - 3.0);
            }
        }
        let part = |off: usize, rows: usize| {
            (0..rows)
                .flat_map(|t| fused[t * ld + off..t * ld + off + d].to_vec())
                .collect::<Vec<f32>>()
        };
        let (q, k, v) = (part(0, n_q), part(d, n_kv), part(2 * d, n_kv));
        let mut want = vec![0.0; n_q * d];
        crate::reference::attention(&q, &k, &v, n_q, n_kv, heads, hd, false, &mut want);
        let shape = StridedAttention {
            n_q,
            n_kv,
            n_heads: heads,
            head_dim: hd,
            ld,
        };
        let mut first: Option<Vec<f32>> = None;
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; n_q * d];
            attention_i8qk_with(isa, &fused, &fused[d..], &fused[2 * d..], shape, &mut got);
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err < 0.05,
                "{isa:?} n_q {n_q} n_kv {n_kv} heads {heads} hd {hd}: max error {err}"
            );
            let c = corr(&got, &want);
            assert!(n_q * d < 64 || c > 0.999, "{isa:?}: correlation {c}");
            // Paths share the integer scores and the bf16 operands: only f32 rounding differs.
            if let Some(f) = &first {
                let diff = got
                    .iter()
                    .zip(f)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(diff < 1e-3, "{isa:?} differs from the first path by {diff}");
            } else {
                first = Some(got);
            }
        }
    }

    #[test]
    fn whisper_shape_matches_reference() {
        check(1500, 1500, 2, 64, 1, 0.0);
        check(300, 300, 3, 64, 2, 5.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn odd_shapes_match_reference(n_q in 1usize..90, n_kv in 1usize..300, heads in 1usize..3, hd in prop::sample::select(vec![1usize, 7, 16, 33, 64]), seed in 0u64..1000, off in prop::sample::select(vec![0.0f32, 3.0])) {
            check(n_q, n_kv, heads, hd, seed, off);
        }
    }

    /// Agrees with the f32 kernel closely enough for the encoder (correlation on random data,
    /// which is harder than real activations: no dominant keys).
    #[test]
    fn close_to_f32_attention() {
        let (n, heads, hd) = (700, 2, 64);
        let d = heads * hd;
        let (q, k, v) = (lcg(n * d, 7), lcg(n * d, 8), lcg(n * d, 9));
        let mut f = vec![0.0; n * d];
        crate::attention_f32(&q, &k, &v, n, n, heads, hd, false, &mut f);
        let mut b = vec![0.0; n * d];
        attention_i8qk(
            &q,
            &k,
            &v,
            StridedAttention {
                n_q: n,
                n_kv: n,
                n_heads: heads,
                head_dim: hd,
                ld: d,
            },
            &mut b,
        );
        assert!(corr(&f, &b) > 0.999, "correlation {}", corr(&f, &b));
    }

    #[test]
    fn empty_shapes() {
        let mut out = vec![1.0f32; 4];
        attention_i8qk(
            &[0.0; 4],
            &[],
            &[],
            StridedAttention {
                n_q: 1,
                n_kv: 0,
                n_heads: 1,
                head_dim: 4,
                ld: 4,
            },
            &mut out,
        );
        assert_eq!(out, vec![0.0; 4]);
    }
}
