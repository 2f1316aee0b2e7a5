//! Layer normalization and exact (erf) GELU, vectorized through per-ISA entry points.

use crate::isa::Isa;
use crate::vmath::{gelu_one, sum_f32, LANES};

/// `out[r] = (x[r] − mean) / sqrt(var + eps) · gamma + beta` for each of `rows` rows of `cols`
/// (biased variance, as PyTorch). Two passes over the row (mean, then centred variance) avoid
/// the cancellation of the one-pass formula.
///
/// # Panics
/// If a slice length does not match the shapes.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(x: &[f32], rows: usize, cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    layer_norm_with(Isa::detect(), x, rows, cols, gamma, beta, eps, out)
}

/// [`layer_norm`] on an explicit path.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_with(isa: Isa, x: &[f32], rows: usize, cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    isa.assert_available();
    assert_eq!(x.len(), rows * cols, "kernels: layer_norm: x has {} values, expected rows*cols = {rows}*{cols}", x.len());
    assert_eq!(out.len(), rows * cols, "kernels: layer_norm: out has {} values, expected {rows}*{cols}", out.len());
    assert!(gamma.len() == cols && beta.len() == cols, "kernels: layer_norm: gamma and beta need {cols} values each");
    if cols == 0 {
        return;
    }
    match isa {
        // SAFETY: availability checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { ln_avx512(x, cols, gamma, beta, eps, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { ln_avx2(x, cols, gamma, beta, eps, out) },
        _ => ln_body(x, cols, gamma, beta, eps, out),
    }
}

#[inline(always)]
fn ln_body(x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    for (row, orow) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let mean = sum_f32(row) / cols as f32;
        let mut acc = [0.0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                let d = c[l] - mean;
                acc[l] += d * d;
            }
        }
        let mut var = 0.0;
        for &v in chunks.remainder() {
            var += (v - mean) * (v - mean);
        }
        for a in acc {
            var += a;
        }
        let rstd = 1.0 / (var / cols as f32 + eps).sqrt();
        for (((o, &v), &g), &b) in orow.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = (v - mean) * rstd * g + b;
        }
    }
}

/// # Safety
/// Needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn ln_avx512(x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    ln_body(x, cols, gamma, beta, eps, out)
}

/// # Safety
/// Needs AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ln_avx2(x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    ln_body(x, cols, gamma, beta, eps, out)
}

/// Exact GELU in place, `x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, with a vectorized erf
/// (Abramowitz–Stegun 7.1.26); max abs error vs f64 is stated in the crate README and checked
/// by the tests.
pub fn gelu(x: &mut [f32]) {
    gelu_with(Isa::detect(), x)
}

/// [`gelu`] on an explicit path.
pub fn gelu_with(isa: Isa, x: &mut [f32]) {
    isa.assert_available();
    match isa {
        // SAFETY: availability checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { gelu_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { gelu_avx2(x) },
        _ => x.iter_mut().for_each(|v| *v = gelu_one::<false>(*v)),
    }
}

/// # Safety
/// Needs AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn gelu_avx512(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_one::<true>(*v);
    }
}

/// # Safety
/// Needs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_one::<true>(*v);
    }
}
