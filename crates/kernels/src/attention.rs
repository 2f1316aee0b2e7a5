//! Fused multi-head attention with block-wise (online) softmax: the `n_q × n_kv` score matrix
//! is never materialized; each task holds one `BQ × BK` block of scores at a time.
//!
//! Per head, K and V are packed once into the GEMM's panel layout; each (head, query block)
//! task then loops over key blocks: `S = Q·Kᵀ` (packed microkernel), running max / sum update
//! with rescaling of the partial output, `O += P·V` (microkernel again), and finally `O /= l`.
//! Tasks run in parallel with rayon.

use crate::gemm_f32::{run_tile, PackedF32, Problem};
use crate::isa::Isa;
use crate::util::{div_ceil, MatMut, MatRef};
use crate::vmath::{exp_poly, max_f32};
use rayon::prelude::*;

/// Query rows per task.
const BQ: usize = 64;
/// Keys per block (also V's packing depth).
const BK: usize = 256;

/// `out = softmax(Q·Kᵀ/√head_dim)·V` for every head.
///
/// `q` is `[n_q][n_heads·head_dim]`, `k` and `v` are `[n_kv][n_heads·head_dim]`, `out` is like
/// `q`, all row-major with heads interleaved as in the model (head `h` owns columns
/// `h·head_dim .. (h+1)·head_dim`). With `causal`, query `i` sees keys `j ≤ i + (n_kv − n_q)`
/// (queries aligned with the last keys, as when decoding with a KV cache); a query that sees no
/// key gets a zero output.
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
pub fn attention_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_q: usize,
    n_kv: usize,
    n_heads: usize,
    head_dim: usize,
    causal: bool,
    out: &mut [f32],
) {
    attention_f32_with(Isa::detect(), q, k, v, n_q, n_kv, n_heads, head_dim, causal, out)
}

/// [`attention_f32`] on an explicit path.
#[allow(clippy::too_many_arguments)]
pub fn attention_f32_with(
    isa: Isa,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_q: usize,
    n_kv: usize,
    n_heads: usize,
    head_dim: usize,
    causal: bool,
    out: &mut [f32],
) {
    isa.assert_available();
    let d = n_heads * head_dim;
    if !check_and_trivial("attention", q, k, v, n_q, n_kv, d, out) {
        return;
    }
    // Pack K (as B of S = Q·Kᵀ: B[c][j] = K[j][h·hd + c]) and V (B[j][c] = V[j][h·hd + c]).
    let packed: Vec<(PackedF32, PackedF32)> = (0..n_heads)
        .into_par_iter()
        .map(|h| {
            let kh = PackedF32::from_strided(&k[h * head_dim..], head_dim, n_kv, 1, d as isize, head_dim);
            let vh = PackedF32::from_strided(&v[h * head_dim..], n_kv, head_dim, d as isize, 1, BK);
            (kh, vh)
        })
        .collect();
    let scale = 1.0 / (head_dim as f32).sqrt();
    let n_qb = div_ceil(n_q, BQ);
    let outp = MatMut { ptr: out.as_mut_ptr(), rs: d as isize, cs: 1 };
    let task = |t: usize| {
        let outp = &outp; // capture the whole (Sync) view, not its raw-pointer field
        let (h, qb) = (t / n_qb, t % n_qb);
        let q0 = qb * BQ;
        let rows = BQ.min(n_q - q0);
        let (kp, vp) = &packed[h];
        let mut s = vec![0.0f32; rows * BK];
        let mut o = vec![0.0f32; rows * head_dim];
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let mut apack = Vec::new();
        // Keys visible to the last query of the block.
        let shift = n_kv as isize - n_q as isize;
        let kv_end = if causal { ((q0 + rows) as isize + shift).clamp(0, n_kv as isize) as usize } else { n_kv };
        for kb in 0..div_ceil(kv_end, BK) {
            let k0 = kb * BK;
            let cols = BK.min(n_kv - k0);
            let ps = Problem {
                m: rows,
                a: MatRef { ptr: q[q0 * d + h * head_dim..].as_ptr(), rs: d as isize, cs: 1 },
                a_k0: 0,
                b: kp,
                kb_start: 0,
                kb_end: kp.n_kblocks(),
                panel0: k0 / 16,
                n: cols,
                c: MatMut { ptr: s.as_mut_ptr(), rs: BK as isize, cs: 1 },
                alpha: 1.0,
                beta: 0.0,
                bias: None,
            };
            // SAFETY: isa checked; all views are inside their slices (shapes checked above).
            unsafe { run_tile(isa, &ps, 0..rows, 0..cols, &mut apack) };
            let limit = |i: usize| if causal { (q0 + i) as isize + shift - k0 as isize + 1 } else { cols as isize };
            online_softmax(isa, &mut s, BK, rows, cols, &limit, scale, &mut m, &mut l, &mut o, head_dim);
            let pv = Problem {
                m: rows,
                a: MatRef { ptr: s.as_ptr(), rs: BK as isize, cs: 1 },
                a_k0: k0,
                b: vp,
                kb_start: kb,
                kb_end: kb + 1,
                panel0: 0,
                n: head_dim,
                c: MatMut { ptr: o.as_mut_ptr(), rs: head_dim as isize, cs: 1 },
                alpha: 1.0,
                beta: 1.0,
                bias: None,
            };
            // SAFETY: as above.
            unsafe { run_tile(isa, &pv, 0..rows, 0..head_dim, &mut apack) };
        }
        // SAFETY: tasks own disjoint (query block, head) tiles of `out`.
        unsafe { write_normalized(outp, &o, &l, q0, rows, h, head_dim) };
    };
    run_tasks(n_heads * n_qb, n_q * n_kv * d, task);
}

/// Writes a task's `O / l` rows into its (query rows, head) tile of the output.
///
/// # Safety
/// Rows `q0..q0+rows`, columns of head `h` must lie inside the output behind `outp` and belong
/// to this task alone.
pub(crate) unsafe fn write_normalized(outp: &MatMut, o: &[f32], l: &[f32], q0: usize, rows: usize, h: usize, head_dim: usize) {
    for i in 0..rows {
        let inv = if l[i] > 0.0 { 1.0 / l[i] } else { 0.0 };
        for c in 0..head_dim {
            *outp.ptr.offset((q0 + i) as isize * outp.rs + (h * head_dim + c) as isize) = o[i * head_dim + c] * inv;
        }
    }
}

/// Runs the (head, query block) tasks, in parallel unless the whole product is small.
pub(crate) fn run_tasks(n_tasks: usize, size: usize, task: impl Fn(usize) + Sync + Send) {
    if size < 1 << 20 {
        (0..n_tasks).for_each(task);
    } else {
        (0..n_tasks).into_par_iter().for_each(task);
    }
}

/// Checks the slice lengths of a fused attention call (panicking with a message) and handles
/// the empty cases; `false` when there is nothing more to compute.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_and_trivial(what: &str, q: &[f32], k: &[f32], v: &[f32], n_q: usize, n_kv: usize, d: usize, out: &mut [f32]) -> bool {
    assert_eq!(q.len(), n_q * d, "kernels: {what}: q has {} values, expected n_q*n_heads*head_dim = {n_q}*{d}", q.len());
    assert_eq!(k.len(), n_kv * d, "kernels: {what}: k has {} values, expected n_kv*n_heads*head_dim = {n_kv}*{d}", k.len());
    assert_eq!(v.len(), n_kv * d, "kernels: {what}: v has {} values, expected n_kv*n_heads*head_dim = {n_kv}*{d}", v.len());
    assert_eq!(out.len(), n_q * d, "kernels: {what}: out has {} values, expected {n_q}*{d}", out.len());
    if n_q == 0 || d == 0 {
        return false;
    }
    if n_kv == 0 {
        out.fill(0.0);
        return false;
    }
    true
}

/// Turns a block of raw scores into unnormalized probabilities in place, updating the running
/// max `m`, sum `l` and rescaling the partial output `o`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn online_softmax(
    isa: Isa,
    s: &mut [f32],
    ld: usize,
    rows: usize,
    cols: usize,
    limit: &dyn Fn(usize) -> isize,
    scale: f32,
    m: &mut [f32],
    l: &mut [f32],
    o: &mut [f32],
    hd: usize,
) {
    for i in 0..rows {
        let lim = limit(i).clamp(0, cols as isize) as usize;
        let row = &mut s[i * ld..i * ld + cols];
        let orow = &mut o[i * hd..(i + 1) * hd];
        match isa {
            // SAFETY: isa availability was checked by the caller.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { row_avx512(row, lim, scale, &mut m[i], &mut l[i], orow) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { row_avx2(row, lim, scale, &mut m[i], &mut l[i], orow) },
            _ => row_body::<false>(row, lim, scale, &mut m[i], &mut l[i], orow),
        }
    }
}

#[inline(always)]
fn row_body<const FMA: bool>(row: &mut [f32], lim: usize, scale: f32, m: &mut f32, l: &mut f32, o: &mut [f32]) {
    row[lim..].fill(0.0);
    let new_m = max_f32(&row[..lim]).max(*m);
    if new_m == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let corr = if *m == f32::NEG_INFINITY { 0.0 } else { exp_poly::<FMA>((*m - new_m) * scale) };
    let mut sum = [0.0f32; 16];
    let mut chunks = row[..lim].chunks_exact_mut(16);
    for c in &mut chunks {
        for t in 0..16 {
            c[t] = exp_poly::<FMA>((c[t] - new_m) * scale);
            sum[t] += c[t];
        }
    }
    let mut total = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_poly::<FMA>((*v - new_m) * scale);
        total += *v;
    }
    for v in sum {
        total += v;
    }
    *l = *l * corr + total;
    *m = new_m;
    if corr != 1.0 {
        for x in o.iter_mut() {
            *x *= corr;
        }
    }
}

/// # Safety
/// Needs AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn row_avx512(row: &mut [f32], lim: usize, scale: f32, m: &mut f32, l: &mut f32, o: &mut [f32]) {
    row_body::<true>(row, lim, scale, m, l, o)
}

/// # Safety
/// Needs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(row: &mut [f32], lim: usize, scale: f32, m: &mut f32, l: &mut f32, o: &mut [f32]) {
    row_body::<true>(row, lim, scale, m, l, o)
}
