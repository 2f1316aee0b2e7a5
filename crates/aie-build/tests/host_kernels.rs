//! The scalar paths of the AIE kernels (kernels/*/*.cc built on the host with
//! -DAIE_HOST_SCALAR, for the AIE2 and the AIE2P tile layouts) against kernels::reference, bit
//! for bit for the integer kernels. Each test drives whole problems through the same tiling the
//! IRON designs use (64x64x64 sub-tiles, K accumulated in i32, host-packed weights), so a wrong
//! layout, index or rounding shows up here. This is the only proof of the NPU numerics until
//! the kernels run on hardware.

// `%` rather than `is_multiple_of`: a style choice, kept (the toolchain has both).
#![allow(clippy::manual_is_multiple_of)]

use aie_build::device::NpuDevice;
use aie_build::layout::{pack_blocked, pack_gemm_weights, pack_gemm_weights_rq, packed_weight_tile, rq_slot_len, unpack_blocked};
use aie_build::quant::{gelu_lut_i8, requant_params, QParams};
use kernels::reference;
use proptest::prelude::*;

const TM: usize = 64;
const TK: usize = 64;
const TN: usize = 64;


mod ffi {
    extern "C" {
        pub fn gemm_i8_zero_aie2(c: *mut i32);
        pub fn gemm_i8_mac_aie2(a: *const u8, b: *const i8, c: *mut i32);
        pub fn gemm_i8_requant_aie2(c: *const i32, params: *const i32, out: *mut i8);
        pub fn gemm_i8_requant_b_aie2(c: *const i32, b: *const i8, out: *mut i8);
        pub fn gemm_i8_zero_aie2p(c: *mut i32);
        pub fn gemm_i8_mac_aie2p(a: *const u8, b: *const i8, c: *mut i32);
        pub fn gemm_i8_requant_aie2p(c: *const i32, params: *const i32, out: *mut i8);
        pub fn gemm_i8_requant_b_aie2p(c: *const i32, b: *const i8, out: *mut i8);
        pub fn gemm_bf16_zero_aie2(c: *mut f32);
        pub fn gemm_bf16_mac_aie2(a: *const u16, b: *const u16, c: *mut f32);
        pub fn gemm_bf16_zero_aie2p(c: *mut f32);
        pub fn gemm_bf16_mac_aie2p(a: *const u16, b: *const u16, c: *mut f32);
        pub fn softmax_lut_i8_rows_aie2(x: *const i8, lut: *const u32, out: *mut i16, rows: i32, cols: i32);
        pub fn softmax_lut_i8_rows_aie2p(x: *const i8, lut: *const u32, out: *mut i16, rows: i32, cols: i32);
        pub fn gelu_lut_i8_aie2(x: *const i8, lut: *const i8, out: *mut i8, n: i32);
        pub fn gelu_lut_i8_aie2p(x: *const i8, lut: *const i8, out: *mut i8, n: i32);
    }
}

/// The entry points of one arch's host build.
struct Kernels {
    device: NpuDevice,
    i8_zero: unsafe extern "C" fn(*mut i32),
    i8_mac: unsafe extern "C" fn(*const u8, *const i8, *mut i32),
    i8_requant: unsafe extern "C" fn(*const i32, *const i32, *mut i8),
    i8_requant_b: unsafe extern "C" fn(*const i32, *const i8, *mut i8),
    bf16_zero: unsafe extern "C" fn(*mut f32),
    bf16_mac: unsafe extern "C" fn(*const u16, *const u16, *mut f32),
    softmax: unsafe extern "C" fn(*const i8, *const u32, *mut i16, i32, i32),
    gelu: unsafe extern "C" fn(*const i8, *const i8, *mut i8, i32),
}

fn archs() -> [Kernels; 2] {
    [
        Kernels {
            device: NpuDevice::Npu,
            i8_zero: ffi::gemm_i8_zero_aie2,
            i8_mac: ffi::gemm_i8_mac_aie2,
            i8_requant: ffi::gemm_i8_requant_aie2,
            i8_requant_b: ffi::gemm_i8_requant_b_aie2,
            bf16_zero: ffi::gemm_bf16_zero_aie2,
            bf16_mac: ffi::gemm_bf16_mac_aie2,
            softmax: ffi::softmax_lut_i8_rows_aie2,
            gelu: ffi::gelu_lut_i8_aie2,
        },
        Kernels {
            device: NpuDevice::Npu2,
            i8_zero: ffi::gemm_i8_zero_aie2p,
            i8_mac: ffi::gemm_i8_mac_aie2p,
            i8_requant: ffi::gemm_i8_requant_aie2p,
            i8_requant_b: ffi::gemm_i8_requant_b_aie2p,
            bf16_zero: ffi::gemm_bf16_zero_aie2p,
            bf16_mac: ffi::gemm_bf16_mac_aie2p,
            softmax: ffi::softmax_lut_i8_rows_aie2p,
            gelu: ffi::gelu_lut_i8_aie2p,
        },
    ]
}

/// What the int8 designs compute: for every 64x64 output tile, zero the accumulator, feed
/// every K tile (A cut into r x s blocks as the DMA does, B from the host-packed weights),
/// then un-block the i32 accumulator (`--out i32`) and, with `params`, requantize it from the
/// last K tile's B slot, which carries the n-tile's parameter block (`--out i8`).
fn npu_gemm_i8(kk: &Kernels, a: &[u8], w: &[i8], m: usize, k: usize, n: usize, params: Option<&[i32]>) -> (Vec<i32>, Vec<i8>) {
    let (r, s, t) = kk.device.mmul_i8();
    let packed = pack_gemm_weights(w, n, k, TK, TN, s, t);
    let packed_rq = params.map(|p| pack_gemm_weights_rq(w, n, k, TK, TN, s, t, p));
    let slot = rq_slot_len(TK, TN);
    let mut c32 = vec![0i32; m * n];
    let mut c8 = vec![0i8; m * n];
    let mut acc = vec![0i32; TM * TN];
    let mut out = vec![0i8; TM * TN];
    for mt in 0..m / TM {
        for nt in 0..n / TN {
            // SAFETY: every buffer holds a full 64x64 tile, as the kernel expects.
            unsafe { (kk.i8_zero)(acc.as_mut_ptr()) };
            for kt in 0..k / TK {
                let a_tile = pack_blocked(&a[mt * TM * k + kt * TK..], k, TM, TK, r, s);
                let b_tile = match &packed_rq {
                    // The fused design's slot: weights first (the mac reads only those).
                    Some(p) => &p[(nt * (k / TK) + kt) * slot..][..slot],
                    None => packed_weight_tile(&packed, k, TK, TN, nt, kt),
                };
                unsafe { (kk.i8_mac)(a_tile.as_ptr(), b_tile.as_ptr(), acc.as_mut_ptr()) };
            }
            unpack_blocked(&acc, TM, TN, r, t, &mut c32[mt * TM * n + nt * TN..], n);
            if let Some(p) = &packed_rq {
                let last = &p[(nt * (k / TK) + k / TK - 1) * slot..][..slot];
                unsafe { (kk.i8_requant_b)(acc.as_ptr(), last.as_ptr(), out.as_mut_ptr()) };
                unpack_blocked(&out, TM, TN, r, t, &mut c8[mt * TM * n + nt * TN..], n);
            }
        }
    }
    (c32, c8)
}

fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 33
    }
}

/// (mult, shift) pairs: realistic ones from quantize_multiplier and raw ones over the whole
/// valid range, including the extremes of the shift.
fn multipliers(n: usize, seed: u64, uniform_shift: bool) -> (Vec<i32>, Vec<i32>) {
    let mut rnd = lcg(seed);
    let mut mults = Vec::with_capacity(n);
    let mut shifts = Vec::with_capacity(n);
    let common_shift = (rnd() % 62) as i32 - 31;
    for j in 0..n {
        let (mlt, sh) = match j % 4 {
            0 => kernels::quantize_multiplier(1e-4 + (rnd() % 10_000) as f64 * 1e-5),
            1 => ((1 << 30) + (rnd() % (1 << 30)) as i32, (rnd() % 62) as i32 - 31),
            2 => ((rnd() % (1 << 31)) as i32, if j % 2 == 0 { -31 } else { 30 }),
            // 0.5 * 2^-k: acc * mult lands exactly on a half for many accumulators, which is
            // where round-half-away-from-zero differs from the other roundings.
            _ => (1 << 30, -((rnd() % 6) as i32)),
        };
        mults.push(mlt);
        shifts.push(if uniform_shift { common_shift } else { sh });
    }
    (mults, shifts)
}

fn gemm_case(kk: &Kernels, m: usize, k: usize, n: usize, seed: u64, extreme: bool) {
    let mut rnd = lcg(seed);
    let a: Vec<u8> = (0..m * k).map(|_| if extreme { 255 } else { rnd() as u8 }).collect();
    let w: Vec<i8> = (0..n * k).map(|i| if extreme { if i % 2 == 0 { -128 } else { 127 } } else { rnd() as i8 }).collect();
    let mut want = vec![0i32; m * n];
    reference::gemm_u8i8_i32(m, n, k, &a, &w, &mut want);

    let offsets: Vec<i32> = (0..n).map(|_| (rnd() % 2_000_001) as i32 - 1_000_000).collect();
    let (mults, shifts) = multipliers(n, seed ^ 0x5eed, seed % 2 == 0);
    let zp = (rnd() % 256) as i32 - 128;
    let params = requant_params(&offsets, &mults, &shifts, zp, TN);
    let (got32, got8) = npu_gemm_i8(kk, &a, &w, m, k, n, Some(&params));
    assert_eq!(got32, want, "{}: i32 GEMM {m}x{k}x{n} differs from kernels::reference", kk.device);

    let shifted: Vec<i32> = want.iter().enumerate().map(|(i, &v)| v + offsets[i % n]).collect();
    let mut want8 = vec![0i8; m * n];
    reference::requantize_per_channel(&shifted, &mults, &shifts, zp, &mut want8);
    assert_eq!(got8, want8, "{}: requantized GEMM {m}x{k}x{n} differs from kernels::reference", kk.device);
}

#[test]
fn gemm_i8_whisper_k_and_extreme_values() {
    for kk in &archs() {
        // Largest |accumulator| of the encoder (K = 2048, 255 x -128) and its sign flips.
        gemm_case(kk, 64, 2048, 128, 1, true);
        gemm_case(kk, 128, 512, 256, 2, false);
    }
}

/// Full encoder shapes (1536 x {512, 2048} x {512, 2048}); minutes in debug builds.
#[test]
fn gemm_i8_full_encoder_shapes_slow() {
    if std::env::var("RUN_SLOW_TESTS").is_err() {
        eprintln!("skipped: set RUN_SLOW_TESTS=1 for the full 1536-row encoder GEMMs");
        return;
    }
    for kk in &archs() {
        for (k, n) in aie_build::catalog::WHISPER_KN {
            gemm_case(kk, 1536, k, n, (k * n) as u64, false);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gemm_i8_matches_reference(mt in 1usize..4, kt in 1usize..5, nt in 1usize..4, seed in any::<u64>(), arch in 0usize..2) {
        gemm_case(&archs()[arch], mt * TM, kt * TK, nt * TN, seed, false);
    }

    #[test]
    fn requantization_matches_reference(wide in proptest::collection::vec(any::<i32>(), TM * TN), seed in any::<u64>(), arch in 0usize..2, uniform in any::<bool>()) {
        // Accumulators over the whole i32 range and, for half of them, small values where the
        // results do not saturate and ties are common (offset 0 so sums cannot overflow).
        let acc: Vec<i32> = wide.iter().enumerate().map(|(i, &v)| if i % 2 == 0 { v } else { v % 512 }).collect();
        let kk = &archs()[arch];
        let (r, _, t) = kk.device.mmul_i8();
        let (mults, shifts) = multipliers(TN, seed, uniform);
        let zp = (seed % 256) as i32 - 128;
        let params = requant_params(&vec![0; TN], &mults, &shifts, zp, TN);
        let blocked = pack_blocked(&acc, TN, TM, TN, r, t);
        let mut out = vec![0i8; TM * TN];
        unsafe { (kk.i8_requant)(blocked.as_ptr(), params.as_ptr(), out.as_mut_ptr()) };
        let mut got = vec![0i8; TM * TN];
        unpack_blocked(&out, TM, TN, r, t, &mut got, TN);
        let mut want = vec![0i8; TM * TN];
        reference::requantize_per_channel(&acc, &mults, &shifts, zp, &mut want);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn softmax_lut_matches_reference(rows in 1usize..6, cols in 1usize..1600, scale in 0.001f32..2.0, spread in 1u32..256, seed in any::<u64>(), arch in 0usize..2) {
        let mut rnd = lcg(seed);
        let x: Vec<i8> = (0..rows * cols).map(|_| (127 - (rnd() as u32 % spread) as i32) as i8).collect();
        softmax_case(&archs()[arch], &x, rows, cols, scale);
    }

    #[test]
    fn gelu_lut_matches_reference(s_in in 0.005f32..0.2, zp_in in -20i32..20, s_out in 0.005f32..0.2, zp_out in -60i32..0, seed in any::<u64>(), arch in 0usize..2) {
        let kk = &archs()[arch];
        let (inp, outp) = (QParams { scale: s_in, zero_point: zp_in }, QParams { scale: s_out, zero_point: zp_out });
        let gelu = |v: f32| { let mut b = [v]; reference::gelu(&mut b); b[0] };
        let lut = gelu_lut_i8(inp, outp, gelu);
        let mut rnd = lcg(seed);
        let n = 4096;
        let x: Vec<i8> = (0..n).map(|i| if i < 256 { (i as i32 - 128) as i8 } else { rnd() as i8 }).collect();
        let mut got = vec![0i8; n];
        unsafe { (kk.gelu)(x.as_ptr(), lut.as_ptr(), got.as_mut_ptr(), n as i32) };
        for (i, (&xi, &g)) in x.iter().zip(&got).enumerate() {
            // The definition, element by element: dequantize, exact-erf GELU, requantize.
            let y = gelu(s_in * (xi as i32 - zp_in) as f32);
            let want = ((y / s_out).round_ties_even() + zp_out as f32).clamp(-128.0, 127.0) as i8;
            prop_assert_eq!(g, want, "value {} at {}", xi, i);
        }
    }
}

fn softmax_case(kk: &Kernels, x: &[i8], rows: usize, cols: usize, scale: f32) {
    let lut = kernels::SoftmaxLut::new(scale);
    let mut got = vec![0i16; rows * cols];
    // SAFETY: rows x cols scores and outputs, 256-entry table.
    unsafe { (kk.softmax)(x.as_ptr(), lut.table().as_ptr(), got.as_mut_ptr(), rows as i32, cols as i32) };
    let mut want = vec![0i16; rows * cols];
    reference::softmax_lut_i8(x, rows, cols, &lut, &mut want);
    assert_eq!(got, want, "{}: softmax {rows}x{cols} scale {scale}", kk.device);
}

#[test]
fn softmax_lut_edge_rows() {
    for kk in &archs() {
        // Attention rows of the encoder (1500 keys), constant rows, one hot, the full range.
        let cols = 1500;
        let mut x = vec![0i8; 4 * cols];
        x[cols..2 * cols].fill(-128);
        x[2 * cols + 7] = 127;
        for (i, v) in x[3 * cols..].iter_mut().enumerate() {
            *v = (i % 256) as i32 as u8 as i8;
        }
        for scale in [0.01f32, 0.125, 1.0, 8.0] {
            softmax_case(kk, &x, 4, cols, scale);
        }
    }
}

/// bf16: the scalar path adds the exact f32 products in k order, tile after tile; the same
/// order in Rust must give the same bits, and the result must be within a K-scaled bound of
/// kernels::reference::linear_bf16 (f64 sums).
#[test]
fn gemm_bf16_matches_sequential_f32_and_reference() {
    for kk in &archs() {
        let (r, s, t) = kk.device.mmul_bf16();
        let (m, k, n) = (128, 512, 128);
        // The bf16 kernel's tile is 64x32x64 (catalog::TILE_BF16).
        let tk = aie_build::catalog::TILE_BF16.1;
        let mut rnd = lcg(9);
        let x: Vec<f32> = (0..m * k).map(|_| (rnd() % 20001) as f32 / 10000.0 - 1.0).collect();
        let w: Vec<f32> = (0..n * k).map(|_| ((rnd() % 20001) as f32 / 10000.0 - 1.0) * 0.05).collect();
        let xb: Vec<u16> = x.iter().map(|&v| kernels::f32_to_bf16(v).to_bits()).collect();
        let wb: Vec<u16> = w.iter().map(|&v| kernels::f32_to_bf16(v).to_bits()).collect();
        let f = |b: u16| f32::from_bits((b as u32) << 16);
        let packed = pack_gemm_weights(&wb, n, k, tk, TN, s, t);
        let mut got = vec![0f32; m * n];
        let mut acc = vec![0f32; TM * TN];
        for mt in 0..m / TM {
            for nt in 0..n / TN {
                unsafe { (kk.bf16_zero)(acc.as_mut_ptr()) };
                for kt in 0..k / tk {
                    let a_tile = pack_blocked(&xb[mt * TM * k + kt * tk..], k, TM, tk, r, s);
                    let b_tile = packed_weight_tile(&packed, k, tk, TN, nt, kt);
                    unsafe { (kk.bf16_mac)(a_tile.as_ptr(), b_tile.as_ptr(), acc.as_mut_ptr()) };
                }
                unpack_blocked(&acc, TM, TN, r, t, &mut got[mt * TM * n + nt * TN..], n);
            }
        }
        let mut want = vec![0f32; m * n];
        reference::linear_bf16(&x, m, &w, n, k, None, &mut want);
        for i in 0..m {
            for j in 0..n {
                let mut seq = 0f32;
                let mut abs = 0f64;
                for p in 0..k {
                    let prod = f(xb[i * k + p]) * f(wb[j * k + p]);
                    seq += prod;
                    abs += prod.abs() as f64;
                }
                let g = got[i * n + j];
                assert_eq!(g.to_bits(), seq.to_bits(), "{}: ({i},{j}) not the sequential f32 sum", kk.device);
                let tol = k as f64 * f32::EPSILON as f64 * abs + 1e-30;
                assert!(((g - want[i * n + j]) as f64).abs() <= tol, "{}: ({i},{j}) {g} vs {} (tol {tol})", kk.device, want[i * n + j]);
            }
        }
    }
}
