//! Requantization i32 → i8 with a fixed-point multiplier (Q31) and a rounding shift.
//!
//! Contract: a real factor `r` is represented as `(mult, shift)` with
//! `r ≈ mult · 2^(shift − 31)`, `mult ∈ [2^30, 2^31)` (or 0). For an accumulator `acc`,
//! `out = saturate_i8(zero_point + round(acc · mult / 2^(31 − shift)))`, computed exactly in
//! 64-bit integers with **one** rounding, **round half away from zero** (unlike gemmlowp's
//! two-step doubling-high-mul + rounding shift, there is no double rounding). `shift` must lie
//! in `[-31, 30]`, so the total right shift is in `[1, 62]` and nothing overflows i64.
//!
//! The vector paths (AVX-512, AVX2) are the same integer body compiled under per-ISA
//! `target_feature` entry points, so they are bit-exact with the scalar reference by
//! construction; the tests check it anyway.

use crate::isa::Isa;

/// Splits a positive real multiplier into a Q31 fixed-point `(multiplier, shift)`.
///
/// Factors below `2^-62` round to `(0, 0)` (every output becomes the zero point).
///
/// # Panics
/// If `real` is negative, not finite, or `>= 2^30` (far outside any requantization scale).
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    assert!(
        real.is_finite() && real >= 0.0 && real < (1u64 << 30) as f64,
        "kernels: quantize_multiplier: factor {real} must be finite and in [0, 2^30)"
    );
    if real == 0.0 {
        return (0, 0);
    }
    // real = frac · 2^exp with frac in [0.5, 1).
    let mut exp = real.log2().floor() as i32 + 1;
    let mut frac = real / 2f64.powi(exp);
    // log2 can be off by one near powers of two: renormalize.
    while frac >= 1.0 {
        frac /= 2.0;
        exp += 1;
    }
    while frac < 0.5 {
        frac *= 2.0;
        exp -= 1;
    }
    let mut mult = (frac * (1u64 << 31) as f64).round() as i64;
    if mult == 1 << 31 {
        mult /= 2;
        exp += 1;
    }
    if exp < -31 {
        // Fold the excess shift into the multiplier (rounding half away from zero).
        let extra = (-31 - exp) as u32;
        if extra >= 63 {
            return (0, 0);
        }
        mult = (mult + (1i64 << (extra - 1))) >> extra;
        exp = -31;
        if mult == 0 {
            return (0, 0);
        }
    }
    (mult as i32, exp)
}

/// One requantized value (the definition; every path computes exactly this).
#[inline(always)]
pub fn requantize_one(acc: i32, mult: i32, shift: i32, zero_point: i32) -> i8 {
    let total = (31 - shift) as u32;
    let x = acc as i64 * mult as i64;
    let half = 1i64 << (total - 1);
    // Round half away from zero: the `- (x < 0)` turns floor division into the symmetric rule.
    let r = (x + half - (x < 0) as i64) >> total;
    (r + zero_point as i64).clamp(-128, 127) as i8
}

fn check_shift(shift: i32) {
    assert!(
        (-31..=30).contains(&shift),
        "kernels: requantize: shift {shift} outside [-31, 30]; build (mult, shift) with quantize_multiplier"
    );
}

/// `out[i] = saturate_i8(zero_point + round(acc[i] · mult · 2^(shift−31)))`.
///
/// # Panics
/// If `acc` and `out` differ in length or `shift` is outside `[-31, 30]`.
pub fn requantize(acc: &[i32], mult: i32, shift: i32, zero_point: i32, out: &mut [i8]) {
    requantize_with(Isa::detect(), acc, mult, shift, zero_point, out)
}

/// [`requantize`] on an explicit path.
pub fn requantize_with(isa: Isa, acc: &[i32], mult: i32, shift: i32, zero_point: i32, out: &mut [i8]) {
    isa.assert_available();
    check_shift(shift);
    assert_eq!(acc.len(), out.len(), "kernels: requantize: {} inputs but {} outputs", acc.len(), out.len());
    match isa {
        // SAFETY: availability checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { requant_avx512(acc, mult, shift, zero_point, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { requant_avx2(acc, mult, shift, zero_point, out) },
        _ => requant_body(acc, mult, shift, zero_point, out),
    }
}

/// Per-channel requantization of a row-major `[rows][channels]` matrix: channel `j` uses
/// `(mults[j], shifts[j])`.
///
/// # Panics
/// If the lengths disagree or a shift is outside `[-31, 30]`.
pub fn requantize_per_channel(acc: &[i32], mults: &[i32], shifts: &[i32], zero_point: i32, out: &mut [i8]) {
    requantize_per_channel_with(Isa::detect(), acc, mults, shifts, zero_point, out)
}

/// [`requantize_per_channel`] on an explicit path.
pub fn requantize_per_channel_with(isa: Isa, acc: &[i32], mults: &[i32], shifts: &[i32], zero_point: i32, out: &mut [i8]) {
    isa.assert_available();
    let ch = mults.len();
    assert_eq!(shifts.len(), ch, "kernels: requantize_per_channel: {} multipliers but {} shifts", ch, shifts.len());
    assert_eq!(acc.len(), out.len(), "kernels: requantize_per_channel: {} inputs but {} outputs", acc.len(), out.len());
    assert!(
        ch > 0 && acc.len().is_multiple_of(ch) || acc.is_empty(),
        "kernels: requantize_per_channel: {} values is not a whole number of rows of {ch} channels",
        acc.len()
    );
    shifts.iter().for_each(|&s| check_shift(s));
    if acc.is_empty() {
        return;
    }
    for (a, o) in acc.chunks_exact(ch).zip(out.chunks_exact_mut(ch)) {
        match isa {
            // SAFETY: availability checked above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { requant_pc_avx512(a, mults, shifts, zero_point, o) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { requant_pc_avx2(a, mults, shifts, zero_point, o) },
            _ => requant_pc_body(a, mults, shifts, zero_point, o),
        }
    }
}

#[inline(always)]
fn requant_body(acc: &[i32], mult: i32, shift: i32, zp: i32, out: &mut [i8]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = requantize_one(a, mult, shift, zp);
    }
}

#[inline(always)]
fn requant_pc_body(acc: &[i32], mults: &[i32], shifts: &[i32], zp: i32, out: &mut [i8]) {
    for (((o, &a), &m), &s) in out.iter_mut().zip(acc).zip(mults).zip(shifts) {
        *o = requantize_one(a, m, s, zp);
    }
}

/// # Safety
/// Needs AVX-512F/BW/DQ/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
unsafe fn requant_avx512(acc: &[i32], mult: i32, shift: i32, zp: i32, out: &mut [i8]) {
    requant_body(acc, mult, shift, zp, out)
}

/// # Safety
/// Needs AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_avx2(acc: &[i32], mult: i32, shift: i32, zp: i32, out: &mut [i8]) {
    requant_body(acc, mult, shift, zp, out)
}

/// # Safety
/// Needs AVX-512F/BW/DQ/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
unsafe fn requant_pc_avx512(acc: &[i32], mults: &[i32], shifts: &[i32], zp: i32, out: &mut [i8]) {
    requant_pc_body(acc, mults, shifts, zp, out)
}

/// # Safety
/// Needs AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_pc_avx2(acc: &[i32], mults: &[i32], shifts: &[i32], zp: i32, out: &mut [i8]) {
    requant_pc_body(acc, mults, shifts, zp, out)
}
