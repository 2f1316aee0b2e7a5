//! bf16 GEMM for linear layers: AVX512_BF16 `vdpbf16ps` where the CPU has it, otherwise a
//! kernel that widens bf16 to f32 (exact) and uses FMA (AVX2) or plain loops (scalar).
//!
//! Weights are rounded to bf16 (nearest even) once at load; activations are rounded to bf16
//! when packed; accumulation is in f32 on every path. Packed weight layout: panels of 16
//! output channels; k in pairs, each pair storing 16 channels × 2 bf16 (64 bytes, the
//! `vdpbf16ps` operand order); k zero padded to even.
//!
//! `vdpbf16ps` flushes denormal inputs/outputs and rounds each pair sum once, so its results
//! differ from the fallback by rounding only (tests use a k-scaled tolerance).

use crate::gemm_f32::{check_linear_shapes, NRU};
use crate::isa::Isa;
use crate::softmax::f32_to_bf16;
use crate::util::{div_ceil, round_up, with_scratch};
use std::cell::Cell;

thread_local! {
    /// Per-thread packed rows of x (bf16), reused so steady-state products allocate nothing.
    static APACK: Cell<Vec<u16>> = const { Cell::new(Vec::new()) };
}
use rayon::prelude::*;

/// Linear-layer weights `[n_out][k]` rounded to bf16 and packed.
#[derive(Clone, Debug)]
pub struct PackedBf16 {
    data: Vec<u16>,
    n: usize,
    k: usize,
}

impl PackedBf16 {
    /// Rounds (nearest even) and packs f32 weights, row-major `[n_out][k]`.
    ///
    /// # Panics
    /// If `w.len() != n_out * k`.
    pub fn new(w: &[f32], n_out: usize, k: usize) -> Self {
        assert_eq!(w.len(), n_out * k, "kernels: PackedBf16::new: got {} weights, expected n_out*k = {n_out}*{k}", w.len());
        let kp = div_ceil(k, 2);
        let mut data = vec![0u16; div_ceil(n_out, NRU) * kp * 32];
        if kp > 0 {
            data.par_chunks_mut(kp * 32).enumerate().for_each(|(panel, dst)| {
                for c in 0..NRU.min(n_out - panel * NRU) {
                    for (p, &v) in w[(panel * NRU + c) * k..][..k].iter().enumerate() {
                        dst[(p / 2) * 32 + c * 2 + p % 2] = f32_to_bf16(v).to_bits();
                    }
                }
            });
        }
        PackedBf16 { data, n: n_out, k }
    }

    pub fn n_out(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    fn panel(&self, panel: usize) -> *const u16 {
        self.data[panel * div_ceil(self.k, 2) * 32..].as_ptr()
    }

    /// Wraps bf16 data already in the packed layout (for the fused attention's values).
    pub(crate) fn from_raw(data: Vec<u16>, n: usize, k: usize) -> Self {
        debug_assert_eq!(data.len(), div_ceil(n, NRU) * div_ceil(k, 2) * 32);
        PackedBf16 { data, n, k }
    }

    /// Start of panel `panel` (16 output channels × all k pairs) for the fused attention.
    pub(crate) fn panel_ptr(&self, panel: usize) -> *const u16 {
        self.panel(panel)
    }
}

/// `y[m×n_out] = bf16(x)·bf16(W)ᵀ + bias`, f32 accumulation.
///
/// # Panics
/// If a slice length does not match the shapes.
pub fn linear_bf16(x: &[f32], m: usize, w: &PackedBf16, bias: Option<&[f32]>, y: &mut [f32]) {
    linear_bf16_with(Isa::detect(), x, m, w, bias, y)
}

/// Row tile of the bf16 microkernel on a path (for the fused attention's packing).
pub(crate) fn bf16_mr(isa: Isa) -> usize {
    mr_of(isa)
}

fn mr_of(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 if isa.has_bf16() => 14,
        Isa::Scalar => 4,
        _ => 6,
    }
}

/// [`linear_bf16`] on an explicit path (AVX-512 without AVX512_BF16 runs the AVX2 kernel).
pub fn linear_bf16_with(isa: Isa, x: &[f32], m: usize, w: &PackedBf16, bias: Option<&[f32]>, y: &mut [f32]) {
    isa.assert_available();
    let (n, k) = (w.n, w.k);
    check_linear_shapes("linear_bf16", x.len(), m, k, n, bias.map(|b| b.len()), y.len());
    if m == 0 || n == 0 {
        return;
    }
    let kp = div_ceil(k, 2);
    let mr = mr_of(isa);
    let step = if isa.has_bf16() { 2 } else { 1 };
    let threads = rayon::current_num_threads();
    // Few rows (decoder steps) are bound by reading the weights: split the columns finely so
    // both cores stream their share, down to products of a quarter million multiply-adds.
    let small_m = m <= 2 * mr;
    let big = m * n * k >= if small_m { 1 << 18 } else { 1 << 21 } && threads > 1;
    let n_chunk = if small_m && big {
        round_up(div_ceil(n, 4 * threads), 2 * NRU).clamp(2 * NRU, 512)
    } else if n <= 768 {
        n
    } else {
        512
    };
    let n_tasks = div_ceil(n, n_chunk);
    let want_m = if big { div_ceil(8 * threads, n_tasks) } else { 1 };
    let m_chunk = round_up(div_ceil(m, want_m), mr).max(mr);
    let m_tasks = div_ceil(m, m_chunk);
    let yp = YPtr(y.as_mut_ptr());
    let task = |apack: &mut Vec<u16>, t: usize| {
        let yp = &yp;
        let (mi, ni) = (t / n_tasks, t % n_tasks);
        let rows = mi * m_chunk..m.min((mi + 1) * m_chunk);
        let cols = ni * n_chunk..n.min((ni + 1) * n_chunk);
        apack.resize(mr * kp * 2, 0);
        let mut acc = [0.0f32; 14 * 32];
        for i0 in rows.clone().step_by(mr) {
            let mr_now = mr.min(rows.end - i0);
            let dst = &mut apack[..mr_now * kp * 2];
            dst.fill(0);
            for i in 0..mr_now {
                for (p, &v) in x[(i0 + i) * k..][..k].iter().enumerate() {
                    dst[(p / 2) * mr_now * 2 + i * 2 + p % 2] = f32_to_bf16(v).to_bits();
                }
            }
            let mut j = cols.start;
            while j < cols.end {
                let nv = step.min(div_ceil(cols.end - j, NRU));
                let nr = (nv * NRU).min(cols.end - j);
                let b0 = w.panel(j / NRU);
                let b1 = if nv == 2 { w.panel(j / NRU + 1) } else { b0 };
                // SAFETY: isa checked; packed operands sized for kp pairs; acc holds 14×32.
                unsafe { microkernel(isa, mr_now, nv, kp, apack.as_ptr(), b0, b1, acc.as_mut_ptr()) };
                for i in 0..mr_now {
                    for c in 0..nr {
                        let v = acc[i * 32 + c] + bias.map_or(0.0, |b| b[j + c]);
                        // SAFETY: (i0+i, j+c) is inside y; tasks own disjoint tiles.
                        unsafe { *yp.0.add((i0 + i) * n + j + c) = v };
                    }
                }
                j += nv * NRU;
            }
        }
    };
    let task = |t: usize| with_scratch(&APACK, |apack| task(apack, t));
    if big {
        (0..m_tasks * n_tasks).into_par_iter().for_each(task);
    } else {
        (0..m_tasks * n_tasks).for_each(task);
    }
}

struct YPtr(*mut f32);
// SAFETY: tasks write disjoint tiles of the output.
unsafe impl Sync for YPtr {}
unsafe impl Send for YPtr {}

/// The microkernel, for the fused attention.
///
/// # Safety
/// As [`microkernel`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn bf16_microkernel(isa: Isa, mr: usize, nv: usize, kp: usize, a: *const u16, b0: *const u16, b1: *const u16, acc: *mut f32) {
    microkernel(isa, mr, nv, kp, a, b0, b1, acc)
}

/// # Safety
/// `a` holds `kp × mr × 2` bf16, `b0`/`b1` `kp × 32` bf16, `acc` `mr × 32` f32; isa available.
#[allow(clippy::too_many_arguments)]
unsafe fn microkernel(isa: Isa, mr: usize, nv: usize, kp: usize, a: *const u16, b0: *const u16, b1: *const u16, acc: *mut f32) {
    macro_rules! by_mr {
        ($f:ident, $nv:literal, [$($m:literal),*]) => {
            match mr { $($m => $f::<$m, $nv>(kp, a, b0, b1, acc),)* _ => unreachable!() }
        };
    }
    #[cfg(target_arch = "x86_64")]
    {
        if isa.has_bf16() {
            return if nv == 2 {
                by_mr!(ukr_avx512bf16, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            } else {
                by_mr!(ukr_avx512bf16, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            };
        }
        if isa != Isa::Scalar {
            return by_mr!(ukr_avx2, 1, [1, 2, 3, 4, 5, 6]);
        }
    }
    let _ = isa;
    by_mr!(ukr_scalar, 1, [1, 2, 3, 4])
}

#[inline(always)]
fn widen(v: u16) -> f32 {
    f32::from_bits((v as u32) << 16)
}

/// # Safety
/// See [`microkernel`].
#[inline(never)]
unsafe fn ukr_scalar<const MR: usize, const NV: usize>(kp: usize, a: *const u16, b0: *const u16, _b1: *const u16, acc: *mut f32) {
    let mut s = [[0.0f32; NRU]; MR];
    for q in 0..kp {
        let b = b0.add(q * 32);
        for (i, row) in s.iter_mut().enumerate() {
            let (a0, a1) = (widen(*a.add((q * MR + i) * 2)), widen(*a.add((q * MR + i) * 2 + 1)));
            for (c, r) in row.iter_mut().enumerate() {
                *r += a0 * widen(*b.add(c * 2)) + a1 * widen(*b.add(c * 2 + 1));
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        std::ptr::copy_nonoverlapping(row.as_ptr(), acc.add(i * 32), NRU);
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// AVX2 fallback: bf16 pairs widened to f32 by shifts/masks, two FMAs per pair.
///
/// # Safety
/// See [`microkernel`]; needs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ukr_avx2<const MR: usize, const NV: usize>(kp: usize, a: *const u16, b0: *const u16, _b1: *const u16, acc: *mut f32) {
    let mut s = [[_mm256_setzero_ps(); 2]; MR];
    let hi_mask = _mm256_set1_epi32(0xffff_0000u32 as i32);
    for q in 0..kp {
        let b = b0.add(q * 32);
        let mut be = [_mm256_setzero_ps(); 2];
        let mut bo = [_mm256_setzero_ps(); 2];
        for h in 0..2 {
            let v = _mm256_loadu_si256(b.add(h * 16) as *const __m256i);
            be[h] = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v));
            bo[h] = _mm256_castsi256_ps(_mm256_and_si256(v, hi_mask));
        }
        for (i, row) in s.iter_mut().enumerate() {
            let pair = (a.add((q * MR + i) * 2) as *const u32).read_unaligned();
            let a0 = _mm256_set1_ps(f32::from_bits(pair << 16));
            let a1 = _mm256_set1_ps(f32::from_bits(pair & 0xffff_0000));
            for h in 0..2 {
                row[h] = _mm256_fmadd_ps(a0, be[h], row[h]);
                row[h] = _mm256_fmadd_ps(a1, bo[h], row[h]);
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        _mm256_storeu_ps(acc.add(i * 32), row[0]);
        _mm256_storeu_ps(acc.add(i * 32 + 8), row[1]);
    }
}

/// AVX512_BF16 kernel: one `vdpbf16ps` per row, panel and k pair.
///
/// # Safety
/// See [`microkernel`]; needs AVX-512F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn ukr_avx512bf16<const MR: usize, const NV: usize>(kp: usize, a: *const u16, b0: *const u16, b1: *const u16, acc: *mut f32) {
    let mut s = [[_mm512_setzero_ps(); NV]; MR];
    for q in 0..kp {
        let bv0: __m512bh = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b0.add(q * 32) as *const _));
        let bv1: __m512bh = if NV == 2 { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b1.add(q * 32) as *const _)) } else { bv0 };
        for (i, row) in s.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32((a.add((q * MR + i) * 2) as *const i32).read_unaligned()));
            row[0] = _mm512_dpbf16_ps(row[0], av, bv0);
            if NV == 2 {
                row[NV - 1] = _mm512_dpbf16_ps(row[NV - 1], av, bv1);
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            _mm512_storeu_ps(acc.add(i * 32 + h * NRU), v);
        }
    }
}

/// The microkernel with a row-major `a` (row `i`'s pair `q` at `a + i·lda + 2q`, `lda` in
/// bf16 elements), for `P·V` in the fused attention: the probabilities are written row by row
/// and never repacked. `acc` is `mr × 32` f32.
///
/// # Safety
/// `a` holds `mr` rows of `kp` pairs `lda` apart; `b0`/`b1` `kp × 32` bf16; isa available.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn bf16_microkernel_rows(isa: Isa, mr: usize, nv: usize, kp: usize, a: *const u16, lda: usize, b0: *const u16, b1: *const u16, acc: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    if isa.has_bf16() {
        macro_rules! by_mr {
            ($nv:literal, [$($m:literal),*]) => {
                match mr { $($m => ukr_avx512bf16_rows::<$m, $nv>(kp, a, lda, b0, b1, acc),)* _ => unreachable!() }
            };
        }
        return if nv == 2 { by_mr!(2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) } else { by_mr!(1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) };
    }
    // Other paths: repack as [pair][row][2] and run the packed kernel.
    let mut packed = vec![0u16; kp * mr * 2];
    for i in 0..mr {
        for q in 0..kp {
            packed[(q * mr + i) * 2] = *a.add(i * lda + 2 * q);
            packed[(q * mr + i) * 2 + 1] = *a.add(i * lda + 2 * q + 1);
        }
    }
    microkernel(isa, mr, nv, kp, packed.as_ptr(), b0, b1, acc)
}

/// # Safety
/// See [`bf16_microkernel_rows`]; needs AVX-512F and AVX512_BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn ukr_avx512bf16_rows<const MR: usize, const NV: usize>(kp: usize, a: *const u16, lda: usize, b0: *const u16, b1: *const u16, acc: *mut f32) {
    let mut s = [[_mm512_setzero_ps(); NV]; MR];
    for q in 0..kp {
        let bv0: __m512bh = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b0.add(q * 32) as *const _));
        let bv1: __m512bh = if NV == 2 { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b1.add(q * 32) as *const _)) } else { bv0 };
        for (i, row) in s.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32((a.add(i * lda + 2 * q) as *const i32).read_unaligned()));
            row[0] = _mm512_dpbf16_ps(row[0], av, bv0);
            if NV == 2 {
                row[NV - 1] = _mm512_dpbf16_ps(row[NV - 1], av, bv1);
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            _mm512_storeu_ps(acc.add(i * 32 + h * NRU), v);
        }
    }
}
