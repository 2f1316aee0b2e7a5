//! int8 GEMM: the raw u8×i8→i32 product bit-exact with the reference on every path, and the
//! quantized linear layer (bit-exact with its reference, close to f32).

use crate::common::{paths, Rng};
use kernels::{reference, Isa, PackedI8, QuantizedI8};
use proptest::prelude::*;

fn check_raw(isa: Isa, m: usize, n: usize, k: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let a: Vec<u8> = (0..m * k).map(|_| rng.next_u64() as u8).collect();
    let b: Vec<i8> = (0..n * k).map(|_| rng.next_u64() as i8).collect();
    let packed = PackedI8::new(&b, n, k);
    let mut got = vec![i32::MIN; m * n];
    kernels::gemm_u8i8_i32_with(isa, m, &a, &packed, &mut got);
    let mut want = vec![0; m * n];
    reference::gemm_u8i8_i32(m, n, k, &a, &b, &mut want);
    assert_eq!(got, want, "gemm_u8i8_i32 {} {m}x{n}x{k}", isa.name());
}

#[test]
fn raw_small_shapes_every_path() {
    for isa in paths("gemm_u8i8_i32") {
        for m in 0..20 {
            for n in [0, 1, 5, 16, 17, 32, 33, 49] {
                for k in [0, 1, 3, 4, 5, 8, 21] {
                    check_raw(isa, m, n, k, (m * 7 + n * 3 + k) as u64);
                }
            }
        }
    }
}

/// Extreme values: 255 × −128 everywhere maximizes every pair sum (saturates `vpmaddubsw`).
#[test]
fn raw_extremes_exact() {
    let (m, n, k) = (17, 35, 515);
    for isa in paths("gemm_u8i8_i32 extremes") {
        for (av, bv) in [(255u8, -128i8), (255, 127), (0, -128)] {
            let a = vec![av; m * k];
            let b = vec![bv; n * k];
            let mut got = vec![0; m * n];
            kernels::gemm_u8i8_i32_with(isa, m, &a, &PackedI8::new(&b, n, k), &mut got);
            assert!(got.iter().all(|&v| v == av as i32 * bv as i32 * k as i32), "{} {av}x{bv}", isa.name());
        }
    }
}

#[test]
fn raw_whisper_shapes_every_path() {
    for isa in paths("gemm_u8i8_i32 whisper") {
        for (s, &(m, k, n)) in [(29, 512, 512), (15, 512, 2048), (14, 2048, 512), (3, 512, 4000)].iter().enumerate() {
            check_raw(isa, m, n, k, s as u64);
        }
    }
}

#[test]
fn linear_i8_bit_exact_and_close_to_f32() {
    for isa in paths("linear_i8") {
        for (s, &(m, k, n)) in [(1, 512, 700), (31, 512, 512), (5, 100, 33), (0, 8, 8), (3, 0, 5)].iter().enumerate() {
            let mut rng = Rng::new(100 + s as u64);
            // GELU-like skewed activations and small normal weights.
            let x: Vec<f32> = (0..m * k).map(|_| rng.normal(1.0).max(-0.17)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.normal(0.05)).collect();
            let bias = rng.vec(n);
            let q = QuantizedI8::new(&w, n, k);
            let mut got = vec![f32::NAN; m * n];
            kernels::linear_i8_with(isa, &x, m, &q, Some(&bias), &mut got);
            let mut want = vec![0.0; m * n];
            reference::linear_i8(&x, m, &w, n, k, Some(&bias), &mut want);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "linear_i8 {} {m}x{k}x{n} not bit-identical to reference",
                isa.name()
            );
            let mut exact = vec![0.0; m * n];
            reference::linear(&x, m, &w, n, k, Some(&bias), &mut exact);
            let err: f64 = got.iter().zip(&exact).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
            let mag: f64 = exact.iter().map(|&b| ((b - 0.0) as f64).powi(2)).sum::<f64>();
            if m * n > 0 && k > 0 {
                let rel = (err / mag).sqrt();
                assert!(rel < 0.02, "linear_i8 {} {m}x{k}x{n}: relative RMS error {rel} vs f32", isa.name());
            }
        }
    }
}

fn dims() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..20, (1usize..10).prop_map(|i| 7 * i), Just(64)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn raw_matches_reference(m in dims(), n in dims(), k in dims(), seed in any::<u64>()) {
        for isa in Isa::available() {
            check_raw(isa, m, n, k, seed);
        }
    }
}
