//! Elementwise f32 math written so the compiler vectorizes it: `exp` and `erf` as branch-free
//! polynomials, and lane-parallel reductions.
//!
//! The bodies are `#[inline(always)]` and get compiled inside each path's `target_feature`
//! entry point (the matrixmultiply pattern), so one source yields AVX-512, AVX2 and scalar
//! code. `FMA` selects `mul_add` (only sensible where the target has FMA; without it
//! `mul_add` becomes a slow library call).

/// Lanes used by the reductions (one zmm, two ymm).
pub(crate) const LANES: usize = 16;

#[inline(always)]
pub(crate) fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x, relative error below 2e-7 on [-87, 88]; returns exactly 0 below -87 (so masked
/// −∞ scores give 0) and saturates at e^88 above. Cephes-style: x = n·ln2 + r, |r| ≤ ln2/2,
/// degree-6 polynomial for e^r, 2^n built in the exponent bits.
#[inline(always)]
pub(crate) fn exp_poly<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer kept in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = fma::<FMA>(xc, LOG2E, MAGIC);
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = fma::<FMA>(n, -LN2_LO, fma::<FMA>(n, -LN2_HI, xc));
    let mut p = 1.987_569_1e-4f32;
    p = fma::<FMA>(p, r, 1.398_199_9e-3);
    p = fma::<FMA>(p, r, 8.333_452e-3);
    p = fma::<FMA>(p, r, 4.166_579_6e-2);
    p = fma::<FMA>(p, r, 1.666_666_5e-1);
    p = fma::<FMA>(p, r, 0.5);
    let e = fma::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    let v = e * scale;
    if x < -87.0 {
        0.0
    } else {
        v
    }
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7 in exact arithmetic; about
/// 2.5e-7 measured in f32), odd-symmetric, branch-free.
#[inline(always)]
pub(crate) fn erf_poly<const FMA: bool>(x: f32) -> f32 {
    let ax = x.abs().min(10.0);
    let t = 1.0 / fma::<FMA>(0.327_591_1, ax, 1.0);
    let mut p = 1.061_405_4f32;
    p = fma::<FMA>(p, t, -1.453_152);
    p = fma::<FMA>(p, t, 1.421_413_8);
    p = fma::<FMA>(p, t, -0.284_496_74);
    p = fma::<FMA>(p, t, 0.254_829_6);
    p *= t;
    let y = 1.0 - p * exp_poly::<FMA>(-ax * ax);
    y.copysign(x)
}

/// Exact (erf) GELU as in Whisper: `0.5·x·(1 + erf(x/√2))`.
#[inline(always)]
pub(crate) fn gelu_one<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_poly::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Maximum of a slice (−∞ for an empty one), lane-parallel so it vectorizes.
#[inline(always)]
pub(crate) fn max_f32(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    let mut r = f32::NEG_INFINITY;
    for &v in chunks.remainder().iter().chain(m.iter()) {
        r = if v > r { v } else { r };
    }
    r
}

/// Sum of a slice with LANES partial sums (vectorizable; fixed order, so deterministic).
#[inline(always)]
pub(crate) fn sum_f32(x: &[f32]) -> f32 {
    let mut s = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            s[l] += c[l];
        }
    }
    let mut r = 0.0;
    for &v in chunks.remainder() {
        r += v;
    }
    let mut t = 0.0;
    for v in s {
        t += v;
    }
    t + r
}
