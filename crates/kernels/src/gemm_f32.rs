//! f32 GEMM: packed, cache-blocked, register-tiled microkernels (AVX-512, AVX2+FMA, scalar),
//! multi-threaded with rayon for large shapes.
//!
//! Layout of packed B (the right-hand operand, i.e. the weights of a linear layer): k is cut
//! into blocks of `KC`; inside a block the n columns are cut into panels of `NRU` = 16 columns,
//! each stored as `kc × 16` contiguous floats (zero padded past n). One layout serves every
//! instruction set: the AVX-512 microkernel reads two adjacent panels (14×32 tile), AVX2 one
//! panel (6×16 tile), the scalar kernel one panel (4×16 tile). A is packed per call into
//! `mr × kc` micro-panels stored k-major so the kernel broadcasts one element per row per step.
//!
//! Loop order inside a task: k-block → micro-panel of A (stays in L1) → panels of B (the
//! `kc × n_chunk` block stays in L2). Tasks are (row chunk × column chunk) tiles of C, run in
//! parallel by rayon when the product is large enough to pay for it.

use crate::isa::Isa;
use crate::util::{assert_no_alias, div_ceil, origin_offset, round_up, with_scratch, MatMut, MatRef};
use std::cell::Cell;

thread_local! {
    /// Per-thread packed rows of A, reused so steady-state products allocate nothing.
    static APACK: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}
use rayon::prelude::*;

/// Width of a packed B panel (columns).
pub(crate) const NRU: usize = 16;
/// Depth of a k-block.
pub(crate) const KC: usize = 256;
/// Columns of C per parallel task (multiple of 2·NRU).
const NC: usize = 512;
/// Below this many multiply-adds a GEMM runs on the calling thread only.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// Row tile of the microkernel for each path.
pub(crate) fn mr_of(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 14,
        Isa::Avx2 => 6,
        Isa::Scalar => 4,
    }
}

/// Right-hand operand packed once (see the module docs for the layout).
#[derive(Clone, Debug)]
pub struct PackedF32 {
    data: Vec<f32>,
    /// Columns of B (= output features of a linear layer).
    n: usize,
    /// Reduction length.
    k: usize,
    /// k-block depth used for this packing.
    kc: usize,
}

impl PackedF32 {
    /// Packs linear-layer weights `w`, row-major `[n_out][k]` (PyTorch / CTranslate2 layout),
    /// for `y = x·Wᵀ (+ bias)`.
    ///
    /// # Panics
    /// If `w.len() != n_out * k`.
    pub fn new(w: &[f32], n_out: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n_out * k,
            "kernels: PackedF32::new: weight slice has {} elements, expected n_out*k = {}*{}",
            w.len(),
            n_out,
            k
        );
        // B[p][j] = W[j][p]
        let b = MatRef { ptr: w.as_ptr(), rs: 1, cs: k as isize };
        // SAFETY: shape validated above; `w` outlives the call.
        unsafe { Self::pack(b, k, n_out, KC) }
    }

    /// Packs a general strided `k × n` matrix B (`b[(p, j)]` at `p*rs + j*cs`) with k-blocks of
    /// `kc` (the fused attention packs V with its own block depth).
    pub(crate) fn from_strided(b: &[f32], k: usize, n: usize, rs: isize, cs: isize, kc: usize) -> Self {
        let off = origin_offset("B", k, n, rs, cs, b.len());
        // SAFETY: origin_offset checked that every element is inside `b`.
        unsafe { Self::pack(MatRef { ptr: b.as_ptr().add(off), rs, cs }, k, n, kc) }
    }

    /// # Safety
    /// Every `(p, j)` with `p < k`, `j < n` must be readable through `b`.
    unsafe fn pack(b: MatRef, k: usize, n: usize, kc: usize) -> Self {
        let kc = kc.max(1);
        let n_panels = div_ceil(n, NRU);
        let mut data = vec![0.0f32; n_panels * NRU * k];
        if n == 0 || k == 0 {
            return PackedF32 { data, n, k, kc };
        }
        // One chunk per (k-block, panel); chunks are contiguous in `data` in that order.
        let mut chunks: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(div_ceil(k, kc) * n_panels);
        let mut rest: &mut [f32] = &mut data;
        for k0 in (0..k).step_by(kc) {
            let kcb = kc.min(k - k0);
            for panel in 0..n_panels {
                let (head, tail) = rest.split_at_mut(kcb * NRU);
                chunks.push((k0, panel, head));
                rest = tail;
            }
        }
        let fill = |(k0, panel, dst): (usize, usize, &mut [f32])| {
            let kcb = dst.len() / NRU;
            let j0 = panel * NRU;
            let cols = NRU.min(n - j0);
            // Column-outer order reads a weight row contiguously when B = Wᵀ.
            for c in 0..cols {
                for p in 0..kcb {
                    // SAFETY: (k0+p, j0+c) is inside the k×n shape.
                    dst[p * NRU + c] = unsafe { b.at(k0 + p, j0 + c) };
                }
            }
        };
        if k * n >= 1 << 18 {
            chunks.into_par_iter().for_each(fill);
        } else {
            chunks.into_iter().for_each(fill);
        }
        PackedF32 { data, n, k, kc }
    }

    /// Output features (columns of B).
    pub fn n_out(&self) -> usize {
        self.n
    }

    /// Reduction length (input features).
    pub fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn n_panels(&self) -> usize {
        div_ceil(self.n, NRU)
    }

    pub(crate) fn kc(&self) -> usize {
        self.kc
    }

    pub(crate) fn n_kblocks(&self) -> usize {
        div_ceil(self.k, self.kc)
    }

    /// Pointer to panel `panel` of k-block `kb`, and that block's depth.
    #[inline]
    pub(crate) fn panel_ptr(&self, kb: usize, panel: usize) -> (*const f32, usize) {
        let k0 = kb * self.kc;
        let kcb = self.kc.min(self.k - k0);
        let off = k0 * self.n_panels() * NRU + panel * kcb * NRU;
        (self.data[off..].as_ptr(), kcb)
    }
}

/// Everything a task needs to compute a tile range of `C = alpha·A·B + beta·C (+ bias)`.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub m: usize,
    pub a: MatRef,
    /// Global k index of A's column 0 (the fused attention multiplies by one k-block of B).
    pub a_k0: usize,
    pub b: &'a PackedF32,
    /// k-blocks of B to use.
    pub kb_start: usize,
    pub kb_end: usize,
    /// First panel of B that maps to column 0 of C.
    pub panel0: usize,
    /// Columns of C.
    pub n: usize,
    pub c: MatMut,
    pub alpha: f32,
    pub beta: f32,
    /// Per-column bias (indexed like C's columns), added once.
    pub bias: Option<&'a [f32]>,
}

/// Output tile handed to a microkernel.
pub(crate) struct Tile {
    pub c: *mut f32,
    pub rsc: isize,
    pub csc: isize,
    pub nr: usize,
    pub alpha: f32,
    pub beta: f32,
    /// Null, or bias for this tile's first column.
    pub bias: *const f32,
}

/// Computes rows `m_range` × columns `cols` (in C coordinates, multiple of 16 at the start)
/// of the problem on the calling thread.
///
/// # Safety
/// `isa` must be available; `p` must describe valid memory (checked by the public entry points)
/// and no other thread may touch the same tile of C.
pub(crate) unsafe fn run_tile(
    isa: Isa,
    p: &Problem,
    m_range: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    apack: &mut Vec<f32>,
) {
    let mr_max = mr_of(isa);
    let kc = p.b.kc();
    apack.resize(mr_max * kc, 0.0);
    let step = if isa == Isa::Avx512 { 2 } else { 1 };
    for kb in p.kb_start..p.kb_end {
        let first = kb == p.kb_start;
        let beta = if first { p.beta } else { 1.0 };
        let k0 = kb * kc;
        let (_, kcb) = p.b.panel_ptr(kb, 0);
        for i0 in m_range.clone().step_by(mr_max) {
            let mr = mr_max.min(m_range.end - i0);
            // Pack A[i0..i0+mr, k0..k0+kcb] k-major.
            let a_base = MatRef {
                ptr: p.a.ptr.offset(i0 as isize * p.a.rs + (k0 - p.a_k0) as isize * p.a.cs),
                rs: p.a.rs,
                cs: p.a.cs,
            };
            pack_a(a_base, mr, kcb, apack);
            let mut j = cols.start;
            while j < cols.end {
                let panel = p.panel0 + j / NRU;
                let nv = step.min(div_ceil(cols.end - j, NRU));
                let nr = (nv * NRU).min(cols.end - j);
                let (b0, _) = p.b.panel_ptr(kb, panel);
                let b1 = if nv == 2 { p.b.panel_ptr(kb, panel + 1).0 } else { b0 };
                let tile = Tile {
                    c: p.c.ptr.offset(i0 as isize * p.c.rs + j as isize * p.c.cs),
                    rsc: p.c.rs,
                    csc: p.c.cs,
                    nr,
                    alpha: p.alpha,
                    beta,
                    bias: match p.bias {
                        Some(bias) if first => bias.as_ptr().add(j),
                        _ => std::ptr::null(),
                    },
                };
                microkernel(isa, mr, nv, kcb, apack.as_ptr(), b0, b1, &tile);
                j += nv * NRU;
            }
        }
    }
}

/// Packs an `mr × kc` block of A into `dst[p*mr + i]`.
#[inline]
unsafe fn pack_a(a: MatRef, mr: usize, kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..mr * kc];
    if a.cs == 1 {
        for i in 0..mr {
            let row = std::slice::from_raw_parts(a.ptr.offset(i as isize * a.rs), kc);
            for (p, &v) in row.iter().enumerate() {
                *dst.get_unchecked_mut(p * mr + i) = v;
            }
        }
    } else {
        for p in 0..kc {
            for i in 0..mr {
                *dst.get_unchecked_mut(p * mr + i) = a.at(i, p);
            }
        }
    }
}

/// Runs a whole problem, splitting it into tasks and running them in parallel when large.
///
/// # Safety
/// As [`run_tile`], for the whole of C.
pub(crate) unsafe fn run_problem(isa: Isa, p: &Problem) {
    let (m, n) = (p.m, p.n);
    if m == 0 || n == 0 {
        return;
    }
    let k = (p.kb_end - p.kb_start) * p.b.kc();
    let macs = m * n * k.max(1);
    let threads = rayon::current_num_threads();
    let mr = mr_of(isa);
    // Few rows (decoder steps) are bound by reading B: split its columns finely so both cores
    // stream their share, down to products of a quarter million multiply-adds.
    let small_m = m <= 2 * mr;
    let min_macs = if small_m { 1 << 18 } else { PARALLEL_MIN_MACS };
    if macs < min_macs || threads <= 1 {
        with_scratch(&APACK, |apack| run_tile(isa, p, 0..m, 0..n, apack));
        return;
    }
    let n_chunk = if small_m {
        round_up(div_ceil(n, 4 * threads), 2 * NRU).clamp(2 * NRU, NC)
    } else if n <= NC + NC / 2 {
        n
    } else {
        NC
    };
    let n_tasks = div_ceil(n, n_chunk);
    // Enough row chunks that rayon can balance load (the other core is often busy).
    let want_m_tasks = div_ceil(8 * threads, n_tasks).max(1);
    let m_chunk = round_up(div_ceil(m, want_m_tasks), mr).max(mr);
    let m_tasks = div_ceil(m, m_chunk);
    (0..m_tasks * n_tasks).into_par_iter().for_each(|t| {
        let (mi, ni) = (t / n_tasks, t % n_tasks);
        let rows = mi * m_chunk..(m.min((mi + 1) * m_chunk));
        let cols = ni * n_chunk..(n.min((ni + 1) * n_chunk));
        // SAFETY: tasks cover disjoint tiles of C; the caller guarantees the rest.
        with_scratch(&APACK, |apack| unsafe { run_tile(isa, p, rows, cols, apack) });
    });
}

/// `C[m×n] = alpha·A·B + beta·C` with arbitrary row/column strides (in elements), like BLAS
/// `sgemm`. Runs on the path chosen by [`Isa::detect`].
///
/// Strides may be negative; as in BLAS, each matrix then occupies the lowest addresses of its
/// slice (row or column 0 at the far end). With `beta == 0`, C is not read (NaNs in C vanish).
///
/// # Panics
/// If a matrix does not fit its slice, or C's strides make elements overlap.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    sgemm_with(Isa::detect(), m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
}

/// [`sgemm`] on an explicit path.
///
/// # Panics
/// As [`sgemm`], and if the host lacks `isa`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    isa.assert_available();
    let c_off = origin_offset("C", m, n, rsc, csc, c.len());
    assert_no_alias("C", m, n, rsc, csc);
    let a_off = origin_offset("A", m, k, rsa, csa, a.len());
    if m == 0 || n == 0 {
        return;
    }
    let cm = MatMut { ptr: unsafe { c.as_mut_ptr().add(c_off) }, rs: rsc, cs: csc };
    if k == 0 || alpha == 0.0 {
        // Only the beta·C part remains (BLAS: beta == 0 clears C without reading it).
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside the validated shape of C.
                unsafe {
                    let e = cm.ptr.offset(i as isize * rsc + j as isize * csc);
                    *e = if beta == 0.0 { 0.0 } else { beta * *e };
                }
            }
        }
        return;
    }
    let bp = PackedF32::from_strided(b, k, n, rsb, csb, KC);
    let p = Problem {
        m,
        a: MatRef { ptr: unsafe { a.as_ptr().add(a_off) }, rs: rsa, cs: csa },
        a_k0: 0,
        b: &bp,
        kb_start: 0,
        kb_end: bp.n_kblocks(),
        panel0: 0,
        n,
        c: cm,
        alpha,
        beta,
        bias: None,
    };
    // SAFETY: all shapes validated above; isa checked.
    unsafe { run_problem(isa, &p) }
}

/// `y[m×n_out] = x[m×k] · Wᵀ + bias`, with `x`, `y` row-major and `w` packed at load time.
///
/// # Panics
/// If a slice length does not match the shapes.
pub fn linear_f32(x: &[f32], m: usize, w: &PackedF32, bias: Option<&[f32]>, y: &mut [f32]) {
    linear_f32_with(Isa::detect(), x, m, w, bias, y)
}

/// [`linear_f32`] on an explicit path.
pub fn linear_f32_with(isa: Isa, x: &[f32], m: usize, w: &PackedF32, bias: Option<&[f32]>, y: &mut [f32]) {
    isa.assert_available();
    let (k, n) = (w.k(), w.n_out());
    check_linear_shapes("linear_f32", x.len(), m, k, n, bias.map(|b| b.len()), y.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in y.chunks_exact_mut(n) {
            match bias {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(0.0),
            }
        }
        return;
    }
    let p = Problem {
        m,
        a: MatRef { ptr: x.as_ptr(), rs: k as isize, cs: 1 },
        a_k0: 0,
        b: w,
        kb_start: 0,
        kb_end: w.n_kblocks(),
        panel0: 0,
        n,
        c: MatMut { ptr: y.as_mut_ptr(), rs: n as isize, cs: 1 },
        alpha: 1.0,
        beta: 0.0,
        bias,
    };
    // SAFETY: shapes validated; isa checked.
    unsafe { run_problem(isa, &p) }
}

pub(crate) fn check_linear_shapes(
    what: &str,
    x_len: usize,
    m: usize,
    k: usize,
    n: usize,
    bias_len: Option<usize>,
    y_len: usize,
) {
    assert_eq!(x_len, m * k, "kernels: {what}: x has {x_len} elements, expected m*k = {m}*{k}");
    assert_eq!(y_len, m * n, "kernels: {what}: y has {y_len} elements, expected m*n_out = {m}*{n}");
    if let Some(bl) = bias_len {
        assert_eq!(bl, n, "kernels: {what}: bias has {bl} elements, expected n_out = {n}");
    }
}

/// Dispatches to the microkernel for (`isa`, `mr`, `nv` panels).
///
/// # Safety
/// `a` holds `kc × mr` packed floats, `b0`/`b1` `kc × 16` each; the tile is writable.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn microkernel(
    isa: Isa,
    mr: usize,
    nv: usize,
    kc: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    t: &Tile,
) {
    macro_rules! by_mr {
        ($f:ident, $nv:literal, [$($m:literal),*]) => {
            match mr { $($m => $f::<$m, $nv>(kc, a, b0, b1, t),)* _ => unreachable!() }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            if nv == 2 {
                by_mr!(ukr_avx512, 2, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            } else {
                by_mr!(ukr_avx512, 1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => by_mr!(ukr_avx2, 1, [1, 2, 3, 4, 5, 6]),
        _ => by_mr!(ukr_scalar, 1, [1, 2, 3, 4]),
    }
}

/// Scalar epilogue: `c = alpha·acc + bias + beta·c` for an `MR × nr` tile held in `acc`
/// (row stride `ld`).
#[inline(always)]
unsafe fn store_tile_scalar(acc: &[f32], ld: usize, mr: usize, t: &Tile) {
    for i in 0..mr {
        for j in 0..t.nr {
            let mut v = t.alpha * acc[i * ld + j];
            if !t.bias.is_null() {
                v += *t.bias.add(j);
            }
            let e = t.c.offset(i as isize * t.rsc + j as isize * t.csc);
            if t.beta != 0.0 {
                v += t.beta * *e;
            }
            *e = v;
        }
    }
}

/// # Safety
/// See [`microkernel`].
#[inline(never)]
unsafe fn ukr_scalar<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    _b1: *const f32,
    t: &Tile,
) {
    let mut acc = [[0.0f32; NRU]; MR];
    for p in 0..kc {
        let b = &*(b0.add(p * NRU) as *const [f32; NRU]);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = *a.add(p * MR + i);
            for c in 0..NRU {
                row[c] += av * b[c];
            }
        }
    }
    store_tile_scalar(acc.as_flattened(), NRU, MR, t);
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// AVX2+FMA microkernel, `MR × 16` tile (two ymm accumulators per row).
///
/// # Safety
/// See [`microkernel`]; the CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ukr_avx2<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    _b1: *const f32,
    t: &Tile,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut a, mut b) = (a, b0);
    for _ in 0..kc {
        let bl = _mm256_loadu_ps(b);
        let bh = _mm256_loadu_ps(b.add(8));
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(i));
            row[0] = _mm256_fmadd_ps(av, bl, row[0]);
            row[1] = _mm256_fmadd_ps(av, bh, row[1]);
        }
        a = a.add(MR);
        b = b.add(NRU);
    }
    let alpha = _mm256_set1_ps(t.alpha);
    if t.csc == 1 && t.nr == NRU {
        let beta = _mm256_set1_ps(t.beta);
        for (i, row) in acc.iter().enumerate() {
            let c = t.c.offset(i as isize * t.rsc);
            for (h, &v) in row.iter().enumerate() {
                let mut r = _mm256_mul_ps(alpha, v);
                if !t.bias.is_null() {
                    r = _mm256_add_ps(r, _mm256_loadu_ps(t.bias.add(8 * h)));
                }
                if t.beta != 0.0 {
                    r = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c.add(8 * h)), r);
                }
                _mm256_storeu_ps(c.add(8 * h), r);
            }
        }
    } else {
        let mut buf = [[0.0f32; NRU]; MR];
        for (i, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(buf[i].as_mut_ptr(), row[0]);
            _mm256_storeu_ps(buf[i].as_mut_ptr().add(8), row[1]);
        }
        store_tile_scalar(buf.as_flattened(), NRU, MR, t);
    }
}

/// AVX-512 microkernel, `MR × 16·NV` tile (NV = 1 or 2 panels, one zmm accumulator each).
///
/// # Safety
/// See [`microkernel`]; the CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn ukr_avx512<const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    t: &Tile,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (mut a, mut b0, mut b1) = (a, b0, b1);
    for _ in 0..kc {
        let bv0 = _mm512_loadu_ps(b0);
        let bv1 = if NV == 2 { _mm512_loadu_ps(b1) } else { bv0 };
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(i));
            row[0] = _mm512_fmadd_ps(av, bv0, row[0]);
            if NV == 2 {
                row[NV - 1] = _mm512_fmadd_ps(av, bv1, row[NV - 1]);
            }
        }
        a = a.add(MR);
        b0 = b0.add(NRU);
        b1 = b1.add(NRU);
    }
    let alpha = _mm512_set1_ps(t.alpha);
    if t.csc == 1 {
        let beta = _mm512_set1_ps(t.beta);
        for (i, row) in acc.iter().enumerate() {
            let c = t.c.offset(i as isize * t.rsc);
            for (h, &v) in row.iter().enumerate() {
                let left = t.nr.saturating_sub(h * NRU).min(NRU);
                if left == 0 {
                    continue;
                }
                let mask: __mmask16 = if left == NRU { 0xffff } else { (1u16 << left) - 1 };
                let mut r = _mm512_mul_ps(alpha, v);
                if !t.bias.is_null() {
                    r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, t.bias.add(NRU * h)));
                }
                if t.beta != 0.0 {
                    r = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, c.add(NRU * h)), r);
                }
                _mm512_mask_storeu_ps(c.add(NRU * h), mask, r);
            }
        }
    } else {
        let mut buf = [[0.0f32; 2 * NRU]; MR];
        for (i, row) in acc.iter().enumerate() {
            for (h, &v) in row.iter().enumerate() {
                _mm512_storeu_ps(buf[i].as_mut_ptr().add(NRU * h), v);
            }
        }
        store_tile_scalar(buf.as_flattened(), 2 * NRU, MR, t);
    }
}
