//! Softmax variants: f32 within tolerance, int8-LUT and int16 bit-exact with the reference,
//! bf16 within one bf16 step; attention-output accuracy on real encoder activations.

use crate::common::{assert_close, paths, read_npy_f32, Rng};
use kernels::{reference, Bf16, Isa, SoftmaxI16Params, SoftmaxLut};
use proptest::prelude::*;

#[test]
fn f32_every_path() {
    for isa in paths("softmax_f32") {
        for (rows, cols) in [(3, 1), (5, 17), (7, 1500), (2, 64), (0, 5), (4, 0)] {
            let mut rng = Rng::new(cols as u64);
            let x: Vec<f32> = (0..rows * cols).map(|_| rng.normal(4.0)).collect();
            let mut got = x.clone();
            kernels::softmax_f32_with(isa, &mut got, rows, cols);
            let mut want = x.clone();
            reference::softmax(&mut want, rows, cols);
            assert_close(&format!("softmax_f32 {} {rows}x{cols}", isa.name()), &got, &want, |i| 4e-6 * want[i] + 1e-9);
        }
        // Masked entries and fully masked rows.
        let mut x = vec![1.0, f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY];
        kernels::softmax_f32_with(isa, &mut x, 2, 3);
        assert_eq!(x[1], 0.0);
        assert!((x[0] + x[2] - 1.0).abs() < 1e-6);
        assert_eq!(&x[3..], &[0.0, 0.0, 0.0]);
    }
}

fn check_lut(isa: Isa, rows: usize, cols: usize, scale: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<i8> = (0..rows * cols).map(|_| rng.next_u64() as i8).collect();
    let lut = SoftmaxLut::new(scale);
    let mut got = vec![0i16; rows * cols];
    kernels::softmax_lut_i8_with(isa, &x, rows, cols, &lut, &mut got);
    let mut want = vec![0i16; rows * cols];
    reference::softmax_lut_i8(&x, rows, cols, &lut, &mut want);
    assert_eq!(got, want, "softmax_lut_i8 {} {rows}x{cols} scale {scale}", isa.name());
}

fn check_i16(isa: Isa, rows: usize, cols: usize, scale: f32, spread: i32, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<i16> = (0..rows * cols).map(|_| (rng.below(2 * spread as u64 + 1) as i32 - spread) as i16).collect();
    let p = SoftmaxI16Params::new(scale);
    let mut got = vec![0i16; rows * cols];
    kernels::softmax_i16_with(isa, &x, rows, cols, p, &mut got);
    let mut want = vec![0i16; rows * cols];
    reference::softmax_i16(&x, rows, cols, p, &mut want);
    assert_eq!(got, want, "softmax_i16 {} {rows}x{cols} scale {scale}", isa.name());
}

#[test]
fn lut_and_i16_every_path() {
    for isa in paths("softmax_lut_i8 / softmax_i16") {
        for (rows, cols) in [(1, 1), (3, 7), (5, 64), (4, 1500), (2, 0)] {
            for scale in [0.01, 0.1, 0.5, 3.0] {
                check_lut(isa, rows, cols, scale, cols as u64);
                check_i16(isa, rows, cols, scale / 200.0, 32767, cols as u64);
                check_i16(isa, rows, cols, scale, 20, cols as u64 + 1);
            }
        }
    }
}

/// The integer formats give accurate probabilities for the scores they represent (input
/// quantization aside): compared with the f64 softmax of the dequantized codes.
#[test]
fn integer_probabilities_are_accurate() {
    let (rows, cols) = (8, 300);
    let mut rng = Rng::new(4);
    let s: Vec<f32> = (0..rows * cols).map(|_| rng.normal(3.0)).collect();
    let amax = s.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let exact_of = |deq: Vec<f32>| {
        let mut e = deq;
        reference::softmax(&mut e, rows, cols);
        e
    };
    let mut p = vec![0i16; rows * cols];
    // int16: codes with step amax/32767
    let sc = amax / 32767.0;
    let q: Vec<i16> = s.iter().map(|v| (v / sc).round() as i16).collect();
    kernels::softmax_i16(&q, rows, cols, SoftmaxI16Params::new(sc), &mut p);
    let got: Vec<f32> = p.iter().map(|&v| v as f32 / 32768.0).collect();
    let exact = exact_of(q.iter().map(|&v| v as f32 * sc).collect());
    assert_close("softmax_i16 accuracy", &got, &exact, |i| 1e-4 * exact[i] + 4e-5);
    // int8 LUT: codes with step amax/127
    let sc = amax / 127.0;
    let q: Vec<i8> = s.iter().map(|v| (v / sc).round() as i8).collect();
    kernels::softmax_lut_i8(&q, rows, cols, &SoftmaxLut::new(sc), &mut p);
    let got: Vec<f32> = p.iter().map(|&v| v as f32 / 32768.0).collect();
    let exact = exact_of(q.iter().map(|&v| v as f32 * sc).collect());
    assert_close("softmax_lut_i8 accuracy", &got, &exact, |i| 1e-4 * exact[i] + 4e-5);
}

#[test]
fn bf16_every_path() {
    let (rows, cols) = (6, 333);
    let mut rng = Rng::new(8);
    let x: Vec<Bf16> = (0..rows * cols).map(|_| kernels::f32_to_bf16(rng.normal(3.0))).collect();
    let mut want = vec![Bf16::ZERO; rows * cols];
    reference::softmax_bf16(&x, rows, cols, &mut want);
    for isa in paths("softmax_bf16") {
        let mut got = vec![Bf16::ZERO; rows * cols];
        kernels::softmax_bf16_with(isa, &x, rows, cols, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Same value or one bf16 step apart (f64 vs f32 before the final rounding).
            assert!((g.to_bits() as i32 - w.to_bits() as i32).abs() <= 1, "softmax_bf16 {} element {i}: {g} vs {w}", isa.name());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]
    #[test]
    fn lut_matches_reference(rows in 0usize..5, cols in prop_oneof![0usize..20, (1usize..10).prop_map(|i| 7 * i), Just(1500)], scale in 0.001f32..4.0, seed in any::<u64>()) {
        for isa in Isa::available() { check_lut(isa, rows, cols, scale, seed); }
    }
    #[test]
    fn i16_matches_reference(rows in 0usize..5, cols in prop_oneof![0usize..20, (1usize..10).prop_map(|i| 7 * i), Just(1500)], scale in 0.0001f32..2.0, spread in 1i32..32767, seed in any::<u64>()) {
        for isa in Isa::available() { check_i16(isa, rows, cols, scale, spread, seed); }
    }
}

/// Real encoder activations (see tests/data/README.md) projected by seeded random matrices.
pub fn encoder_qkv(gain: f32) -> (usize, usize, Vec<f32>, Vec<f32>, Vec<f32>) {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/base_librivox_0870_enc256.npy")).expect("tests/data fixture");
    let (shape, x) = read_npy_f32(&bytes);
    let (n, d) = (shape[0], shape[1]);
    let mut rng = Rng::new(2024);
    let sd = gain / (d as f32).sqrt();
    let mut proj = || {
        let w: Vec<f32> = (0..d * d).map(|_| rng.normal(sd)).collect();
        let mut y = vec![0.0; n * d];
        kernels::linear_f32(&x, n, &kernels::PackedF32::new(&w, d, d), None, &mut y);
        y
    };
    let (q, k, v) = (proj(), proj(), proj());
    (n, d, q, k, v)
}

#[test]
fn attention_accuracy_on_encoder_activations() {
    for gain in [1.0, 2.0] {
        let (n, d, q, k, v) = encoder_qkv(gain);
        let report = kernels::attention_accuracy(&q, &k, &v, n, n, d / 64, 64);
        for r in &report {
            eprintln!(
                "attention accuracy (gain {gain}, {n} tokens, {} heads): {:9} corr {:.6}  max err {:.3e} (max |out| {:.3})",
                d / 64,
                r.variant,
                r.correlation,
                r.max_abs_err,
                r.max_abs_ref
            );
        }
        let get = |name: &str| report.iter().find(|r| r.variant == name).unwrap();
        assert!(get("int8-lut").correlation >= 0.999, "int8 LUT attention correlation {} < 0.999", get("int8-lut").correlation);
        assert!(get("int16").correlation >= 0.99999);
        assert!(get("f32").correlation >= 0.999999);
        assert!(get("bf16").correlation >= 0.999);
    }
}
