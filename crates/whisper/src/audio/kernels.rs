//! The summation order of libswresample's x86 resampling kernels, reproduced so our sums
//! round like theirs.
//!
//! swr's float kernel (`resample_common_float`, `resample.asm`) keeps one partial sum per
//! SIMD lane — tap `i` goes to lane `i mod lanes`, fused multiply-add with FMA3 — then adds
//! the lanes pairwise: 8 → 4 (`lo + hi`), then `(l0 + l2) + (l1 + l3)`. The variant is picked
//! from the CPU like swr picks it: FMA3 (8 lanes, fused), else AVX (8 lanes), else SSE (4).
//! The double kernel is SSE2 only: 2 lanes, `l0 + l1`. The linear-interpolation kernels
//! interpolate the two phases lane by lane (after the 8 → 4 step) before the final adds.

/// Which of swr's float kernels this CPU gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Fma3,
    Avx,
    Sse,
}

impl Kernel {
    pub(crate) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx") {
                return Kernel::Fma3;
            }
            if is_x86_feature_detected!("avx") {
                return Kernel::Avx;
            }
        }
        Kernel::Sse
    }
}

/// Per-lane partial sums of `src · taps` over `N` lanes, fused or not.
#[inline(always)]
fn lanes<const N: usize>(src: &[f32], taps: &[f32], fused: bool) -> [f32; N] {
    let mut a = [0f32; N];
    let mut s = src.chunks_exact(N);
    let mut t = taps.chunks_exact(N);
    for (cs, ct) in (&mut s).zip(&mut t) {
        for j in 0..N {
            a[j] = if fused {
                cs[j].mul_add(ct[j], a[j])
            } else {
                a[j] + cs[j] * ct[j]
            };
        }
    }
    for (j, (&x, &y)) in s.remainder().iter().zip(t.remainder()).enumerate() {
        a[j] = if fused {
            x.mul_add(y, a[j])
        } else {
            a[j] + x * y
        };
    }
    a
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn lanes8_fma(src: &[f32], taps: &[f32]) -> [f32; 8] {
    lanes::<8>(src, taps, true)
}

/// The four partial sums swr has after its 8 → 4 step (or its 4 SSE lanes).
fn quad(kernel: Kernel, src: &[f32], taps: &[f32]) -> [f32; 4] {
    let a: [f32; 8] = match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Kernel::Fma3 is only chosen when the CPU has AVX and FMA.
        Kernel::Fma3 => unsafe { lanes8_fma(src, taps) },
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Fma3 => lanes::<8>(src, taps, true),
        Kernel::Avx => lanes::<8>(src, taps, false),
        Kernel::Sse => return lanes::<4>(src, taps, false),
    };
    [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]]
}

fn reduce4(b: [f32; 4]) -> f32 {
    (b[0] + b[2]) + (b[1] + b[3])
}

/// `Σ src[i] · taps[i]` as swr's float kernel computes it.
pub(crate) fn dot_f32(kernel: Kernel, src: &[f32], taps: &[f32]) -> f32 {
    reduce4(quad(kernel, src, taps))
}

/// swr's float linear kernel: `v1 + (v2 − v1) · (frac · (1 / src_incr))`, lane by lane.
pub(crate) fn dot_linear_f32(
    kernel: Kernel,
    src: &[f32],
    taps1: &[f32],
    taps2: &[f32],
    frac: i64,
    src_incr: i64,
) -> f32 {
    let b0 = quad(kernel, src, taps1);
    let b2 = quad(kernel, src, taps2);
    let x = frac as f32 * (1.0f32 / src_incr as f32);
    let mut e = [0f32; 4];
    for j in 0..4 {
        let d = b2[j] - b0[j];
        e[j] = if kernel == Kernel::Sse || kernel == Kernel::Avx {
            b0[j] + d * x
        } else {
            d.mul_add(x, b0[j])
        };
    }
    reduce4(e)
}

/// Two SSE2 lanes for doubles.
fn pair(src: &[f64], taps: &[f64]) -> [f64; 2] {
    let mut a = [0f64; 2];
    for (i, (&x, &y)) in src.iter().zip(taps).enumerate() {
        a[i & 1] += x * y;
    }
    a
}

/// `Σ src[i] · taps[i]` as swr's double kernel computes it.
pub(crate) fn dot_f64(src: &[f64], taps: &[f64]) -> f64 {
    let a = pair(src, taps);
    a[0] + a[1]
}

/// swr's double linear kernel.
pub(crate) fn dot_linear_f64(
    src: &[f64],
    taps1: &[f64],
    taps2: &[f64],
    frac: i64,
    src_incr: i64,
) -> f64 {
    let b0 = pair(src, taps1);
    let b2 = pair(src, taps2);
    let x = frac as f64 * (1.0 / src_incr as f64);
    let e0 = b0[0] + (b2[0] - b0[0]) * x;
    let e1 = b0[1] + (b2[1] - b0[1]) * x;
    e0 + e1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_sum_like_a_dot_product() {
        let src: Vec<f32> = (0..92).map(|i| (i as f32 * 0.37).sin()).collect();
        let taps: Vec<f32> = (0..92).map(|i| (i as f32 * 0.11).cos() / 92.0).collect();
        let exact: f64 = src
            .iter()
            .zip(&taps)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        for k in [Kernel::Fma3, Kernel::Avx, Kernel::Sse] {
            assert!(
                (dot_f32(k, &src, &taps) as f64 - exact).abs() < 1e-5,
                "{k:?}"
            );
            let same = dot_linear_f32(k, &src, &taps, &taps, 123, 1 << 20);
            assert!((same as f64 - exact).abs() < 1e-5, "{k:?}");
        }
        let s64: Vec<f64> = src.iter().map(|&x| x as f64).collect();
        let t64: Vec<f64> = taps.iter().map(|&x| x as f64).collect();
        assert!((dot_f64(&s64, &t64) - exact).abs() < 1e-12);
    }
}
