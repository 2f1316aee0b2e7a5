//! int8 GEMM: u8 activations × i8 weights → i32, with AVX-512 VNNI (`vpdpbusd`), AVX2 and
//! scalar microkernels, plus the quantized linear layer with a fused dequantize + bias epilogue.
//!
//! Quantization scheme (documented contract, also used by [`crate::reference`]):
//! * weights: symmetric per output channel, `w ≈ s_w[j] · q_w[j][p]`, `q_w ∈ [-127, 127]`,
//!   `s_w[j] = max|w[j]| / 127` (1 for an all-zero row);
//! * activations: asymmetric per row, `x ≈ s_x[i] · (q_x[i][p] − z_x[i])`, `q_x ∈ [0, 255]`,
//!   the range `[min(0, min x), max(0, max x)]` mapped onto `[0, 255]`, `z_x` = the code of 0.0;
//! * `y[i][j] = (s_x[i]·s_w[j]) · (Σ_p q_x·q_w − z_x[i]·Σ_p q_w[j][p]) + bias[j]`, where the
//!   column sums `Σ_p q_w[j][p]` are computed once at load. The epilogue does exactly these
//!   f32 operations (a multiply then an add, no FMA) on every path, so `linear_i8` is
//!   bit-identical across paths and with the reference.
//!
//! Packed weight layout: panels of 16 output channels; within a panel, k is cut into groups of
//! 4 and each group stores 16 channels × 4 bytes (one 64-byte zmm, the `vpdpbusd` operand
//! order). k is zero padded to a multiple of 4.
//!
//! The AVX2 kernel does **not** use `vpmaddubsw`: that instruction saturates its i16 pair sums
//! (255·127·2 > 32767), which would break exactness for full-range inputs. It widens both
//! operands to i16 and uses `vpmaddwd`, which cannot overflow for u8×i8 products.

use crate::gemm_f32::{check_linear_shapes, NRU};
use crate::isa::Isa;
use crate::util::{div_ceil, round_up, with_scratch};
use std::cell::Cell;
use rayon::prelude::*;

/// i8 weights `[n][k]` packed for the int8 microkernels.
#[derive(Clone, Debug)]
pub struct PackedI8 {
    data: Vec<i8>,
    n: usize,
    k: usize,
}

impl PackedI8 {
    /// Packs integer weights `b`, row-major `[n][k]` (one row per output channel).
    ///
    /// # Panics
    /// If `b.len() != n * k`.
    pub fn new(b: &[i8], n: usize, k: usize) -> Self {
        assert_eq!(b.len(), n * k, "kernels: PackedI8::new: got {} values, expected n*k = {n}*{k}", b.len());
        let kq = div_ceil(k, 4);
        let n_panels = div_ceil(n, NRU);
        let mut data = vec![0i8; n_panels * kq * 64];
        let fill = |(panel, dst): (usize, &mut [i8])| {
            for c in 0..NRU.min(n - panel * NRU) {
                let row = &b[(panel * NRU + c) * k..][..k];
                for (p, &v) in row.iter().enumerate() {
                    dst[(p / 4) * 64 + c * 4 + p % 4] = v;
                }
            }
        };
        if kq > 0 {
            if n * k >= 1 << 18 {
                data.par_chunks_mut(kq * 64).enumerate().for_each(fill);
            } else {
                data.chunks_mut(kq * 64).enumerate().for_each(fill);
            }
        }
        PackedI8 { data, n, k }
    }

    /// Output channels.
    pub fn n_out(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    fn kq(&self) -> usize {
        div_ceil(self.k, 4)
    }

    fn panel(&self, panel: usize) -> *const i8 {
        self.data[panel * self.kq() * 64..].as_ptr()
    }

    /// Wraps data already in the packed layout (for the fused attention's keys).
    pub(crate) fn from_raw(data: Vec<i8>, n: usize, k: usize) -> Self {
        debug_assert_eq!(data.len(), div_ceil(n, NRU) * div_ceil(k, 4) * 64);
        PackedI8 { data, n, k }
    }

    /// Start of panel `panel` (16 output channels × all k groups) for the fused attention.
    pub(crate) fn panel_ptr(&self, panel: usize) -> *const i8 {
        self.panel(panel)
    }
}

/// Linear-layer weights quantized per output channel (symmetric i8) at load time.
#[derive(Clone, Debug)]
pub struct QuantizedI8 {
    packed: PackedI8,
    /// Per-channel scale `s_w[j]`.
    scales: Vec<f32>,
    /// Per-channel `Σ_p q_w[j][p]` for the zero-point correction.
    col_sums: Vec<i32>,
}

impl QuantizedI8 {
    /// Quantizes and packs f32 weights `w`, row-major `[n_out][k]`.
    ///
    /// # Panics
    /// If `w.len() != n_out * k`.
    pub fn new(w: &[f32], n_out: usize, k: usize) -> Self {
        assert_eq!(w.len(), n_out * k, "kernels: QuantizedI8::new: got {} weights, expected n_out*k = {n_out}*{k}", w.len());
        let (q, scales) = quantize_weights_i8(w, n_out, k);
        let col_sums = (0..n_out).map(|j| q[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum()).collect();
        QuantizedI8 { packed: PackedI8::new(&q, n_out, k), scales, col_sums }
    }

    pub fn n_out(&self) -> usize {
        self.packed.n
    }

    pub fn k(&self) -> usize {
        self.packed.k
    }

    /// Per-channel weight scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The packed integer weights.
    pub fn packed(&self) -> &PackedI8 {
        &self.packed
    }
}

/// Round half to even for `|x| ≤ 2^22` by the 1.5·2^23 trick: plain IEEE adds, so every path
/// (and the baseline target, which has no `roundps`) gives the same bits quickly.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// Symmetric per-row quantization of weights `[n][k]`: returns (codes, scales).
pub fn quantize_weights_i8(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), n * k, "kernels: quantize_weights_i8: got {} weights, expected {n}*{k}", w.len());
    let mut q = vec![0i8; n * k];
    let mut scales = vec![1.0f32; n];
    match Isa::detect() {
        // SAFETY: detect only returns available paths. The body is plain IEEE arithmetic (no
        // fused operations), so the codes are the same on every path.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { quant_weights_avx512(w, n, k, &mut q, &mut scales) },
        _ => quant_weights_body(w, n, k, &mut q, &mut scales),
    }
    (q, scales)
}

/// # Safety
/// Needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn quant_weights_avx512(w: &[f32], n: usize, k: usize, q: &mut [i8], scales: &mut [f32]) {
    quant_weights_body(w, n, k, q, scales)
}

#[inline(always)]
pub(crate) fn quant_weights_body(w: &[f32], n: usize, k: usize, q: &mut [i8], scales: &mut [f32]) {
    for j in 0..n {
        let row = &w[j * k..][..k];
        let amax = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
        scales[j] = s;
        let inv = 1.0 / s;
        for (d, &v) in q[j * k..][..k].iter_mut().zip(row) {
            // Through i32: the value is integral and clamped (NaN gives 0 either way), and
            // the narrow conversion vectorizes.
            *d = round_even((v * inv).clamp(-127.0, 127.0)) as i32 as i8;
        }
    }
}

/// Asymmetric per-row quantization of activations `[m][k]` to u8 with a zero point.
/// Writes codes to `q`, and per row the scale and zero point. Identical bits on every path.
pub fn quantize_rows_u8(x: &[f32], m: usize, k: usize, q: &mut [u8], scales: &mut [f32], zero_points: &mut [i32]) {
    assert_eq!(x.len(), m * k, "kernels: quantize_rows_u8: x has {} values, expected {m}*{k}", x.len());
    assert_eq!(q.len(), m * k, "kernels: quantize_rows_u8: q has {} values, expected {m}*{k}", q.len());
    assert!(scales.len() == m && zero_points.len() == m, "kernels: quantize_rows_u8: need {m} scales and zero points");
    if m == 0 {
        return;
    }
    let isa = Isa::detect();
    #[allow(clippy::type_complexity)]
    let run = |(((x, q), s), z): (((&[f32], &mut [u8]), &mut [f32]), &mut [i32])| match isa {
        // SAFETY: Isa::detect only returns available paths.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { quant_rows_avx512(x, k, q, s, z) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { quant_rows_avx2(x, k, q, s, z) },
        _ => quant_rows_body::<false>(x, k, q, s, z),
    };
    if k == 0 {
        scales.fill(1.0);
        zero_points.fill(0);
        return;
    }
    // Rows in chunks of 16, in parallel when there is enough work.
    let rows = 16;
    if m * k >= 1 << 16 {
        x.par_chunks(rows * k).zip(q.par_chunks_mut(rows * k)).zip(scales.par_chunks_mut(rows)).zip(zero_points.par_chunks_mut(rows)).for_each(run);
    } else {
        x.chunks(rows * k).zip(q.chunks_mut(rows * k)).zip(scales.chunks_mut(rows)).zip(zero_points.chunks_mut(rows)).for_each(run);
    }
}

#[inline(always)]
fn quant_rows_body<const AVX512: bool>(x: &[f32], k: usize, q: &mut [u8], scales: &mut [f32], zero_points: &mut [i32]) {
    for (((row, qrow), sc), zp_out) in x.chunks_exact(k).zip(q.chunks_exact_mut(k)).zip(scales.iter_mut()).zip(zero_points.iter_mut()) {
        let mut lo = [0.0f32; 16];
        let mut hi = [0.0f32; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for l in 0..16 {
                lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
                hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
            }
        }
        let (mut mn, mut mx) = (0.0f32, 0.0f32);
        for &v in chunks.remainder().iter().chain(lo.iter()) {
            mn = if v < mn { v } else { mn };
        }
        for &v in chunks.remainder().iter().chain(hi.iter()) {
            mx = if v > mx { v } else { mx };
        }
        let range = mx - mn;
        let s = if range > 0.0 && range.is_finite() { range / 255.0 } else { 1.0 };
        let inv = 1.0 / s;
        let zp = round_even((-mn * inv).clamp(0.0, 255.0));
        *sc = s;
        *zp_out = zp as i32;
        if AVX512 {
            // SAFETY: AVX512 is only set by the AVX-512 entry point.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                codes_avx512(row, inv, zp, qrow)
            };
            #[cfg(target_arch = "x86_64")]
            continue;
        }
        for (d, &v) in qrow.iter_mut().zip(row) {
            *d = round_even((v * inv + zp).clamp(0.0, 255.0)) as u8;
        }
    }
}

/// The codes of one row, `round_even(clamp(v·inv + zp, 0, 255))`, 16 at a time: the same IEEE
/// operations as the scalar loop (`max`/`min` map NaN to 0 as `clamp` + `as u8` do).
///
/// # Safety
/// Needs AVX-512F; `q.len() == row.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn codes_avx512(row: &[f32], inv: f32, zp: f32, q: &mut [u8]) {
    use std::arch::x86_64::*;
    const MAGIC: f32 = 12_582_912.0;
    let (iv, zv, lo, hi, mg) = (_mm512_set1_ps(inv), _mm512_set1_ps(zp), _mm512_setzero_ps(), _mm512_set1_ps(255.0), _mm512_set1_ps(MAGIC));
    let n = row.len();
    let mut j = 0;
    while j < n {
        let mask: __mmask16 = if n - j >= 16 { 0xffff } else { (1u16 << (n - j)) - 1 };
        let x = _mm512_maskz_loadu_ps(mask, row.as_ptr().add(j));
        let t = _mm512_add_ps(_mm512_mul_ps(x, iv), zv);
        // max(t, 0) gives 0 for NaN (the second operand), as the scalar path's `as u8` does.
        let t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
        let r = _mm512_sub_ps(_mm512_add_ps(t, mg), mg);
        _mm512_mask_cvtusepi32_storeu_epi8(q.as_mut_ptr().add(j) as *mut _, mask, _mm512_cvttps_epi32(r));
        j += 16;
    }
}

/// # Safety
/// Needs AVX-512F/BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
unsafe fn quant_rows_avx512(x: &[f32], k: usize, q: &mut [u8], s: &mut [f32], z: &mut [i32]) {
    quant_rows_body::<true>(x, k, q, s, z)
}

/// # Safety
/// Needs AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quant_rows_avx2(x: &[f32], k: usize, q: &mut [u8], s: &mut [f32], z: &mut [i32]) {
    quant_rows_body::<false>(x, k, q, s, z)
}

/// How a microkernel finishes a tile.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    /// Store raw i32 sums to `c[i*ldc + j]`.
    Raw { c: *mut i32, ldc: usize },
    /// `y = (sx[i]·sw[j])·(acc − zx[i]·colsum[j]) + bias[j]` to `y[i*ldy + j]`.
    Dequant { y: *mut f32, ldy: usize, sx: &'a [f32], zx: &'a [i32], sw: &'a [f32], col_sums: &'a [i32], bias: Option<&'a [f32]> },
}
// SAFETY: tasks write disjoint tiles of the output pointed to.
unsafe impl Send for Epilogue<'_> {}
unsafe impl Sync for Epilogue<'_> {}

/// Row tile per path (AVX-512 without VNNI uses the AVX2 kernel).
fn mr_of(isa: Isa) -> usize {
    if isa.has_vnni() {
        14
    } else if isa != Isa::Scalar {
        2
    } else {
        4
    }
}

fn panels_per_call(isa: Isa) -> usize {
    if isa.has_vnni() {
        2
    } else {
        1
    }
}

/// `C[m×n] (i32) = A[m×k] (u8, row-major) · Bᵀ` where `B` holds i8 rows `[n][k]` (packed).
/// Exact (no saturation) on every path.
///
/// # Panics
/// If slice lengths do not match the shapes.
pub fn gemm_u8i8_i32(m: usize, a: &[u8], b: &PackedI8, c: &mut [i32]) {
    gemm_u8i8_i32_with(Isa::detect(), m, a, b, c)
}

/// [`gemm_u8i8_i32`] on an explicit path.
pub fn gemm_u8i8_i32_with(isa: Isa, m: usize, a: &[u8], b: &PackedI8, c: &mut [i32]) {
    isa.assert_available();
    let (n, k) = (b.n, b.k);
    assert_eq!(a.len(), m * k, "kernels: gemm_u8i8_i32: a has {} values, expected m*k = {m}*{k}", a.len());
    assert_eq!(c.len(), m * n, "kernels: gemm_u8i8_i32: c has {} values, expected m*n = {m}*{n}", c.len());
    run(isa, m, a, b, Epilogue::Raw { c: c.as_mut_ptr(), ldc: n });
}

/// `y[m×n_out] = x[m×k] · Wᵀ + bias` through int8: `x` is quantized per row at run time,
/// multiplied in integers, and dequantized (+ bias) in the microkernel epilogue.
///
/// # Panics
/// If slice lengths do not match the shapes.
pub fn linear_i8(x: &[f32], m: usize, w: &QuantizedI8, bias: Option<&[f32]>, y: &mut [f32]) {
    linear_i8_with(Isa::detect(), x, m, w, bias, y)
}

/// [`linear_i8`] on an explicit path.
pub fn linear_i8_with(isa: Isa, x: &[f32], m: usize, w: &QuantizedI8, bias: Option<&[f32]>, y: &mut [f32]) {
    isa.assert_available();
    let (n, k) = (w.n_out(), w.k());
    check_linear_shapes("linear_i8", x.len(), m, k, n, bias.map(|b| b.len()), y.len());
    with_scratch(&QUANT_X, |q| {
        with_scratch(&QUANT_S, |sx| {
            with_scratch(&QUANT_Z, |zx| {
                q.resize(m * k, 0);
                sx.resize(m, 0.0);
                zx.resize(m, 0);
                let (q, sx, zx) = (&mut q[..m * k], &mut sx[..m], &mut zx[..m]);
                quantize_rows_u8(x, m, k, q, sx, zx);
                let epi = Epilogue::Dequant { y: y.as_mut_ptr(), ldy: n, sx, zx, sw: &w.scales, col_sums: &w.col_sums, bias };
                run(isa, m, q, &w.packed, epi);
            })
        })
    })
}

thread_local! {
    /// Per-thread scratch (quantized activations, their scales and zero points, packed rows):
    /// reused, so a decoder step allocates nothing.
    static QUANT_X: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static QUANT_S: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static QUANT_Z: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
    static APACK: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
    /// All rows of a product packed once, when several column chunks share them.
    static APACK_ALL: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Splits the product into (row chunk × column chunk) tasks and runs them.
fn run(isa: Isa, m: usize, a: &[u8], b: &PackedI8, epi: Epilogue) {
    let n = b.n;
    if m == 0 || n == 0 {
        return;
    }
    let mr = mr_of(isa);
    let threads = rayon::current_num_threads();
    let macs = m * n * b.k.max(1);
    // Few rows (decoder steps) are bound by reading the weights: split the columns finely
    // so both cores stream their share, down to products of a quarter million MACs.
    let small_m = m <= 2 * mr;
    let min_macs = if small_m { 1 << 18 } else { 1 << 22 };
    let n_chunk = if small_m && threads > 1 && macs >= min_macs {
        round_up(div_ceil(n, 4 * threads), 2 * NRU).clamp(2 * NRU, 512)
    } else if n <= 768 {
        n
    } else {
        512
    };
    let n_tasks = div_ceil(n, n_chunk);
    let want_m = if macs < min_macs || threads <= 1 { 1 } else { div_ceil(8 * threads, n_tasks) };
    let m_chunk = round_up(div_ceil(m, want_m), mr).max(mr);
    let m_tasks = div_ceil(m, m_chunk);
    let serial = m_tasks * n_tasks == 1 || macs < min_macs || threads <= 1;
    // With VNNI and several column chunks, the rows are packed once for all of them.
    let prepack = isa.has_vnni() && n_tasks > 1;
    with_scratch(&APACK_ALL, |all| {
        if prepack {
            let kq = b.kq();
            let block = mr * kq * 4;
            all.resize(div_ceil(m, mr) * block, 0);
            let pack = |(blk, dst): (usize, &mut [u8])| {
                let i0 = blk * mr;
                pack_rows_u8(a, b.k, i0, mr.min(m - i0), kq, dst);
            };
            if serial {
                all.chunks_mut(block).enumerate().for_each(pack);
            } else {
                all.par_chunks_mut(block).enumerate().for_each(pack);
            }
        }
        let packed = if prepack { Some(&all[..]) } else { None };
        let task = |apack: &mut Vec<u64>, t: usize| {
            let (mi, ni) = (t / n_tasks, t % n_tasks);
            let rows = mi * m_chunk..m.min((mi + 1) * m_chunk);
            let cols = ni * n_chunk..n.min((ni + 1) * n_chunk);
            // SAFETY: isa checked by callers; shapes checked; tasks write disjoint tiles.
            unsafe { run_tile(isa, a, b, rows, cols, &epi, apack, packed) };
        };
        let task = |t: usize| with_scratch(&APACK, |apack| task(apack, t));
        if serial {
            (0..m_tasks * n_tasks).for_each(task);
        } else {
            (0..m_tasks * n_tasks).into_par_iter().for_each(task);
        }
    })
}

/// Packs rows `i0..i0+mr` of the u8 matrix `a` (`k` columns) as `[kq][mr][4]`, zero padded:
/// the VNNI microkernel's operand.
fn pack_rows_u8(a: &[u8], k: usize, i0: usize, mr: usize, kq: usize, dst: &mut [u8]) {
    let dst = &mut dst[..mr * kq * 4];
    let full = k / 4;
    if full < kq {
        dst[full * mr * 4..].fill(0); // zero padding of the last group
    }
    for i in 0..mr {
        let row = &a[(i0 + i) * k..][..k];
        // Whole groups of 4 bytes move as one u32.
        for (q, quad) in row.chunks_exact(4).enumerate() {
            dst[(q * mr + i) * 4..][..4].copy_from_slice(quad);
        }
        for p in full * 4..k {
            dst[(full * mr + i) * 4 + p % 4] = row[p];
        }
    }
}

/// # Safety
/// `isa` available; `a` is `m × k`; `rows`/`cols` inside the output; exclusive tile.
unsafe fn run_tile(
    isa: Isa,
    a: &[u8],
    b: &PackedI8,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    epi: &Epilogue,
    apack: &mut Vec<u64>,
    packed: Option<&[u8]>,
) {
    let k = b.k;
    let kq = b.kq();
    let mr_max = mr_of(isa);
    let step = panels_per_call(isa);
    let wide = isa != Isa::Scalar && !isa.has_vnni(); // AVX2 kernel wants i16 activations
    // u64 storage keeps the i16 view aligned.
    apack.resize(div_ceil(mr_max * kq * 4 * if wide { 2 } else { 1 }, 8), 0);
    let mut acc = [0i32; 14 * 32];
    for i0 in rows.clone().step_by(mr_max) {
        let mr = mr_max.min(rows.end - i0);
        // Pack rows i0..i0+mr as [q][mr][4] (u8, or i16 for the AVX2 kernel), zero padded.
        if wide {
            let dst = std::slice::from_raw_parts_mut(apack.as_mut_ptr() as *mut i16, mr * kq * 4);
            dst.fill(0);
            for i in 0..mr {
                for (p, &v) in a[(i0 + i) * k..][..k].iter().enumerate() {
                    dst[(p / 4) * mr * 4 + i * 4 + p % 4] = v as i16;
                }
            }
        } else if packed.is_none() {
            let dst = std::slice::from_raw_parts_mut(apack.as_mut_ptr() as *mut u8, mr * kq * 4);
            pack_rows_u8(a, k, i0, mr, kq, dst);
        }
        // Pre-packed blocks of mr_max rows (the last one shorter) start at block · mr_max · kq · 4.
        let a_ptr = match packed {
            Some(all) => all[i0 / mr_max * mr_max * kq * 4..].as_ptr(),
            None => apack.as_ptr() as *const u8,
        };
        let mut j = cols.start;
        while j < cols.end {
            let panel = j / NRU;
            let nv = step.min(div_ceil(cols.end - j, NRU));
            let nr = (nv * NRU).min(cols.end - j);
            let b0 = b.panel(panel);
            let b1 = if nv == 2 { b.panel(panel + 1) } else { b0 };
            let ldacc = 32;
            microkernel(isa, mr, nv, kq, a_ptr, b0, b1, acc.as_mut_ptr(), ldacc);
            finish(epi, &acc, ldacc, i0, mr, j, nr);
            j += nv * NRU;
        }
    }
}

/// Applies the epilogue to an `mr × nr` tile of sums at (i0, j0).
#[inline]
unsafe fn finish(epi: &Epilogue, acc: &[i32], ld: usize, i0: usize, mr: usize, j0: usize, nr: usize) {
    match *epi {
        Epilogue::Raw { c, ldc } => {
            for i in 0..mr {
                std::ptr::copy_nonoverlapping(acc.as_ptr().add(i * ld), c.add((i0 + i) * ldc + j0), nr);
            }
        }
        Epilogue::Dequant { y, ldy, sx, zx, sw, col_sums, bias } => {
            for i in 0..mr {
                let (s, z) = (sx[i0 + i], zx[i0 + i]);
                let out = std::slice::from_raw_parts_mut(y.add((i0 + i) * ldy + j0), nr);
                let row = &acc[i * ld..][..nr];
                let (sw, cs) = (&sw[j0..j0 + nr], &col_sums[j0..j0 + nr]);
                // Same operation order as reference::dequantize_one.
                match bias {
                    Some(bias) => {
                        let bias = &bias[j0..j0 + nr];
                        for j in 0..nr {
                            out[j] = dequantize_one(row[j], z, cs[j], s, sw[j], bias[j]);
                        }
                    }
                    None => {
                        for j in 0..nr {
                            out[j] = dequantize_one(row[j], z, cs[j], s, sw[j], 0.0);
                        }
                    }
                }
            }
        }
    }
}

/// The dequantization of one sum (shared by every path and by the reference).
#[inline(always)]
pub(crate) fn dequantize_one(acc: i32, zx: i32, col_sum: i32, sx: f32, sw: f32, bias: f32) -> f32 {
    ((acc - zx * col_sum) as f32) * (sx * sw) + bias
}

/// The AVX-512 VNNI microkernel for the fused attention: `acc[mr][ld] = a·b` over `kq` groups.
///
/// # Safety
/// As [`microkernel`]; the CPU has AVX-512 VNNI; `a` holds u8.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn vnni_microkernel(mr: usize, nv: usize, kq: usize, a: *const u8, b0: *const i8, b1: *const i8, acc: *mut i32, ld: usize) {
    microkernel(Isa::Avx512, mr, nv, kq, a, b0, b1, acc, ld)
}

/// # Safety
/// `a` packed `[kq][mr][4]` (u8, or i16 on the AVX2 path), `b0`/`b1` panels of `kq × 64`
/// bytes, `acc` holds `mr × ld` i32.
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn microkernel(isa: Isa, mr: usize, nv: usize, kq: usize, a: *const u8, b0: *const i8, b1: *const i8, acc: *mut i32, ld: usize) {
    macro_rules! by_mr {
        ($f:ident, $nv:literal, [$($m:literal),*]) => {
            match mr { $($m => $f::<$m, $nv>(kq, a, b0, b1, acc, ld),)* _ => unreachable!() }
        };
    }
    #[cfg(target_arch = "x86_64")]
    {
        if isa.has_vnni() {
            return if nv == 2 {
                by_mr!(ukr_vnni, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            } else {
                by_mr!(ukr_vnni, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            };
        }
        if isa != Isa::Scalar {
            return by_mr!(ukr_avx2, 1, [1, 2]);
        }
    }
    let _ = isa;
    by_mr!(ukr_scalar, 1, [1, 2, 3, 4])
}

/// # Safety
/// See [`microkernel`].
#[inline(never)]
unsafe fn ukr_scalar<const MR: usize, const NV: usize>(kq: usize, a: *const u8, b0: *const i8, _b1: *const i8, acc: *mut i32, ld: usize) {
    let mut s = [[0i32; NRU]; MR];
    for q in 0..kq {
        let b = b0.add(q * 64);
        for (i, row) in s.iter_mut().enumerate() {
            let av = a.add((q * MR + i) * 4);
            for (c, r) in row.iter_mut().enumerate() {
                for t in 0..4 {
                    *r += *av.add(t) as i32 * *b.add(c * 4 + t) as i32;
                }
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        std::ptr::copy_nonoverlapping(row.as_ptr(), acc.add(i * ld), NRU);
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// AVX2 kernel: `MR × 16`, operands widened to i16, `vpmaddwd` (exact).
///
/// # Safety
/// See [`microkernel`]; needs AVX2. `a` holds i16 values here.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ukr_avx2<const MR: usize, const NV: usize>(kq: usize, a: *const u8, b0: *const i8, _b1: *const i8, acc: *mut i32, ld: usize) {
    let a = a as *const i16;
    // acc[i][g]: channels 4g..4g+4, each as two partial sums (k pairs 0-1 and 2-3).
    let mut s = [[_mm256_setzero_si256(); 4]; MR];
    for q in 0..kq {
        let b = b0.add(q * 64);
        let bw = [
            _mm256_cvtepi8_epi16(_mm_loadu_si128(b as *const __m128i)),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16) as *const __m128i)),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(32) as *const __m128i)),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(48) as *const __m128i)),
        ];
        for (i, row) in s.iter_mut().enumerate() {
            let av = _mm256_set1_epi64x((a.add((q * MR + i) * 4) as *const i64).read_unaligned());
            for g in 0..4 {
                row[g] = _mm256_add_epi32(row[g], _mm256_madd_epi16(av, bw[g]));
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute restores channel order.
        let lo = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(row[0], row[1]));
        let hi = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(row[2], row[3]));
        _mm256_storeu_si256(acc.add(i * ld) as *mut __m256i, lo);
        _mm256_storeu_si256(acc.add(i * ld + 8) as *mut __m256i, hi);
    }
}

/// AVX-512 VNNI kernel: `MR × 16·NV`, one `vpdpbusd` per row, panel and group of 4 k.
///
/// # Safety
/// See [`microkernel`]; needs AVX-512F and AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn ukr_vnni<const MR: usize, const NV: usize>(kq: usize, a: *const u8, b0: *const i8, b1: *const i8, acc: *mut i32, ld: usize) {
    let mut s = [[_mm512_setzero_si512(); NV]; MR];
    for q in 0..kq {
        let bv0 = _mm512_loadu_si512(b0.add(q * 64) as *const _);
        let bv1 = if NV == 2 { _mm512_loadu_si512(b1.add(q * 64) as *const _) } else { bv0 };
        for (i, row) in s.iter_mut().enumerate() {
            let av = _mm512_set1_epi32((a.add((q * MR + i) * 4) as *const i32).read_unaligned());
            row[0] = _mm512_dpbusd_epi32(row[0], av, bv0);
            if NV == 2 {
                row[NV - 1] = _mm512_dpbusd_epi32(row[NV - 1], av, bv1);
            }
        }
    }
    for (i, row) in s.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            _mm512_storeu_si512(acc.add(i * ld + h * NRU) as *mut _, v);
        }
    }
}
