//! Requantization: the fixed-point multiplier and bit-exact vector paths.

use crate::common::{paths, Rng};
use kernels::{quantize_multiplier, reference, requantize_one, Isa};
use proptest::prelude::*;

#[test]
fn multiplier_represents_the_factor() {
    for &real in &[1.0, 0.5, 0.75, 1e-3, 3.3e-5, 0.999_999_999, 2.0, 1234.5, 1e-9, 1e-12] {
        let (m, s) = quantize_multiplier(real);
        assert!((1 << 30..=i32::MAX).contains(&m) || real < 1e-9, "{real}: mult {m} not normalized");
        let back = m as f64 * 2f64.powi(s - 31);
        assert!((back - real).abs() <= real * 2f64.powi(-30) + 2f64.powi(-62), "{real}: got {back} ({m}, {s})");
    }
    assert_eq!(quantize_multiplier(0.0), (0, 0));
    assert_eq!(quantize_multiplier(1e-25), (0, 0));
}

#[test]
#[should_panic(expected = "must be finite")]
fn multiplier_rejects_negative() {
    quantize_multiplier(-1.0);
}

#[test]
fn rounds_half_away_from_zero_and_saturates() {
    let (m, s) = (1 << 30, 0); // factor 0.5
    let cases = [(1, 1), (-1, -1), (3, 2), (-3, -2), (2, 1), (-2, -1), (5, 3), (-5, -3), (300, 127), (-300, -128), (0, 0)];
    for (acc, want) in cases {
        assert_eq!(requantize_one(acc, m, s, 0), want, "acc {acc}");
        assert_eq!(reference::requantize_one(acc, m, s, 0), want, "reference, acc {acc}");
    }
    // zero point shifts before saturation
    assert_eq!(requantize_one(250, m, s, -10), 115);
    assert_eq!(requantize_one(i32::MIN, i32::MAX, 30, 0), -128);
    assert_eq!(requantize_one(i32::MAX, i32::MAX, -31, 0), 1); // (2^31−1)²/2^62 ≈ 0.99999
}

#[test]
fn per_tensor_and_per_channel_every_path() {
    let mut rng = Rng::new(9);
    let acc: Vec<i32> = (0..1000 * 3 + 17).map(|i| if i % 5 == 0 { rng.next_u64() as i32 } else { (rng.next_u64() % 20001) as i32 - 10000 }).collect();
    for isa in paths("requantize") {
        for &(real, zp) in &[(0.0123, 3), (1.7, -5), (2.5e-6, 0), (0.5, 127)] {
            let (m, s) = quantize_multiplier(real);
            let mut got = vec![0i8; acc.len()];
            kernels::requantize_with(isa, &acc, m, s, zp, &mut got);
            let mut want = vec![0i8; acc.len()];
            reference::requantize(&acc, m, s, zp, &mut want);
            assert_eq!(got, want, "requantize {} real {real}", isa.name());
        }
        let ch = 61;
        let acc = &acc[..ch * 49];
        let (mults, shifts): (Vec<i32>, Vec<i32>) = (0..ch).map(|j| quantize_multiplier(1e-4 * (j as f64 + 1.0).powf(2.5))).unzip();
        let mut got = vec![0i8; acc.len()];
        kernels::requantize_per_channel_with(isa, acc, &mults, &shifts, -3, &mut got);
        let mut want = vec![0i8; acc.len()];
        reference::requantize_per_channel(acc, &mults, &shifts, -3, &mut want);
        assert_eq!(got, want, "requantize_per_channel {}", isa.name());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
    #[test]
    fn matches_reference(acc in prop::collection::vec(any::<i32>(), 0..100), mult in (1i32 << 30)..i32::MAX, shift in -31i32..=30, zp in -128i32..=127) {
        let mut want = vec![0i8; acc.len()];
        reference::requantize(&acc, mult, shift, zp, &mut want);
        for isa in Isa::available() {
            let mut got = vec![0i8; acc.len()];
            kernels::requantize_with(isa, &acc, mult, shift, zp, &mut got);
            prop_assert_eq!(&got, &want, "{}", isa.name());
        }
    }
}
