//! The narrow compute interface of the model graph: every matrix product and attention goes
//! through [`Compute`], so faster kernels (f32/int8/bf16) or an NPU can be swapped in without
//! touching the graph.

use rayon::prelude::*;

/// A linear layer `y = x·Wᵀ + b` with `W` stored row-major `[n_out][k]` (the PyTorch and
/// CTranslate2 layout). The weights are held in whatever form the backend prepared.
pub struct Linear {
    pub n_out: usize,
    pub k: usize,
    pub weights: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl Linear {
    pub fn new(weights: Vec<f32>, n_out: usize, k: usize, bias: Option<Vec<f32>>) -> Linear {
        assert_eq!(weights.len(), n_out * k, "linear weight shape");
        if let Some(b) = &bias {
            assert_eq!(b.len(), n_out, "linear bias shape");
        }
        Linear {
            n_out,
            k,
            weights,
            bias,
        }
    }

    /// Bytes held by the weights.
    pub fn bytes(&self) -> usize {
        (self.weights.len() + self.bias.as_ref().map_or(0, Vec::len)) * 4
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
    /// Query `i` sees keys `0..=i + causal_offset` (for a prompt appended after `causal_offset`
    /// cached positions). `None`: every query sees every key.
    pub causal_offset: Option<usize>,
}

/// The operations the model graph needs from a backend.
pub trait Compute: Send + Sync {
    fn name(&self) -> &'static str;
    /// `y[m][n_out] = x[m][k]·Wᵀ + b`.
    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]);
    /// Scaled dot-product attention, softmax(q·kᵀ/√d)·v per head, into `out[n_q][n_heads*head_dim]`.
    /// `q_stride`, `kv_stride` are the row strides (elements) of `q` and of `k`/`v`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &[f32],
        q_stride: usize,
        k: &[f32],
        v: &[f32],
        kv_stride: usize,
        shape: AttentionShape,
        out: &mut [f32],
    );
}

/// Plain f32 CPU backend: `matrixmultiply` for large products, vectorizable dot loops for
/// the decoder's skinny ones, rayon over both cores.
#[derive(Default)]
pub struct CpuF32;

/// Rows above which a product is done as a blocked GEMM rather than dot products.
const GEMM_MIN_ROWS: usize = 16;

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorize and pipeline the loop.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// `c[m][n] = a[m][k] · b[n][k]ᵀ` (single-threaded; callers parallelize).
fn gemm_abt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices cover the strided extents, checked by the asserts below.
    assert!(
        a.len() >= (m - 1) * lda + k
            && b.len() >= (n - 1) * ldb + k
            && c.len() >= (m - 1) * ldc + n
    );
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            1,
            ldb as isize,
            0.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// `c[m][n] = a[m][k] · b[k][n]`.
fn gemm_ab(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        a.len() >= (m - 1) * lda + k
            && b.len() >= (k.max(1) - 1) * ldb + n
            && c.len() >= (m - 1) * ldc + n
    );
    // SAFETY: extents checked above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            ldb as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

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

impl Compute for CpuF32 {
    fn name(&self) -> &'static str {
        "cpu-f32"
    }

    fn linear(&self, x: &[f32], m: usize, lin: &Linear, y: &mut [f32]) {
        let (k, n) = (lin.k, lin.n_out);
        assert!(
            x.len() >= m * k && y.len() >= m * n,
            "linear: buffers too small"
        );
        if m >= GEMM_MIN_ROWS {
            // Split rows across threads; each runs a cache-blocked GEMM.
            let rows_per = m
                .div_ceil(rayon::current_num_threads().max(1))
                .max(GEMM_MIN_ROWS);
            y[..m * n]
                .par_chunks_mut(rows_per * n)
                .zip(x[..m * k].par_chunks(rows_per * k))
                .for_each(|(yc, xc)| {
                    let rows = xc.len() / k;
                    gemm_abt(rows, n, k, xc, k, &lin.weights, k, yc, n);
                });
        } else {
            // Skinny product (decoder steps): split the output columns across threads so the
            // weights are streamed once.
            let cols_per = 256;
            let w = &lin.weights;
            let out_ptr = SyncPtr(y.as_mut_ptr());
            (0..n.div_ceil(cols_per)).into_par_iter().for_each(|cb| {
                let (j0, j1) = (cb * cols_per, ((cb + 1) * cols_per).min(n));
                for j in j0..j1 {
                    let wr = &w[j * k..(j + 1) * k];
                    for r in 0..m {
                        let v = dot(&x[r * k..(r + 1) * k], wr);
                        // SAFETY: each (r, j) is written by exactly one task (j ranges are disjoint).
                        unsafe { *out_ptr.get().add(r * n + j) = v };
                    }
                }
            });
        }
        if let Some(b) = &lin.bias {
            for row in y[..m * n].chunks_exact_mut(n) {
                for (v, bv) in row.iter_mut().zip(b) {
                    *v += bv;
                }
            }
        }
    }

    fn attention(
        &self,
        q: &[f32],
        q_stride: usize,
        k: &[f32],
        v: &[f32],
        kv_stride: usize,
        s: AttentionShape,
        out: &mut [f32],
    ) {
        let d = s.n_heads * s.head_dim;
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let out_ptr = SyncPtr(out.as_mut_ptr());
        let out_len = out.len();
        assert!(out_len >= s.n_q * d);
        (0..s.n_heads).into_par_iter().for_each(|h| {
            let off = h * s.head_dim;
            let mut scores = vec![0f32; s.n_q * s.n_kv];
            let mut head_out = vec![0f32; s.n_q * s.head_dim];
            if s.n_q >= GEMM_MIN_ROWS {
                gemm_abt(
                    s.n_q,
                    s.n_kv,
                    s.head_dim,
                    &q[off..],
                    q_stride,
                    &k[off..],
                    kv_stride,
                    &mut scores,
                    s.n_kv,
                );
            } else {
                for i in 0..s.n_q {
                    let qi = &q[i * q_stride + off..i * q_stride + off + s.head_dim];
                    for j in 0..s.n_kv {
                        scores[i * s.n_kv + j] = dot(
                            qi,
                            &k[j * kv_stride + off..j * kv_stride + off + s.head_dim],
                        );
                    }
                }
            }
            for i in 0..s.n_q {
                let row = &mut scores[i * s.n_kv..(i + 1) * s.n_kv];
                let visible = match s.causal_offset {
                    Some(o) => (i + o + 1).min(s.n_kv),
                    None => s.n_kv,
                };
                for x in row[..visible].iter_mut() {
                    *x *= scale;
                }
                softmax_in_place(&mut row[..visible]);
                row[visible..].fill(0.0);
            }
            if s.n_q >= GEMM_MIN_ROWS {
                gemm_ab(
                    s.n_q,
                    s.head_dim,
                    s.n_kv,
                    &scores,
                    s.n_kv,
                    &v[off..],
                    kv_stride,
                    &mut head_out,
                    s.head_dim,
                );
            } else {
                for i in 0..s.n_q {
                    let o = &mut head_out[i * s.head_dim..(i + 1) * s.head_dim];
                    for j in 0..s.n_kv {
                        let p = scores[i * s.n_kv + j];
                        if p != 0.0 {
                            let vj = &v[j * kv_stride + off..j * kv_stride + off + s.head_dim];
                            for (a, b) in o.iter_mut().zip(vj) {
                                *a += p * b;
                            }
                        }
                    }
                }
            }
            for i in 0..s.n_q {
                // SAFETY: head `h` writes only columns off..off+head_dim of each row.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        head_out.as_ptr().add(i * s.head_dim),
                        out_ptr.get().add(i * d + off),
                        s.head_dim,
                    );
                }
            }
        });
    }
}

/// A raw pointer that may be shared between rayon tasks writing disjoint elements.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}
