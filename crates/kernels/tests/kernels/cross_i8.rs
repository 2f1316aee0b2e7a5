//! Decoder cross-attention over an int8 cache (`attention_kv_i8`): every path against the f64
//! reference on the same quantized cache, and the quantization's error against exact attention.

use crate::common::{assert_close, paths, Rng};
use kernels::{reference, CrossKvI8, Isa};
use proptest::prelude::*;

/// Keys with per-channel offsets (as Whisper's carry: what smoothing removes), values, queries;
/// keys and values fused in `[n_kv][2d]` rows as the model's K/V projection writes them.
fn data(n_q: usize, n_kv: usize, d: usize, sd: f32, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let offset: Vec<f32> = (0..d).map(|_| rng.normal(2.0 * sd)).collect();
    let q: Vec<f32> = (0..n_q * d).map(|_| rng.normal(sd)).collect();
    let mut kv = vec![0f32; n_kv * 2 * d];
    for row in kv.chunks_exact_mut(2 * d) {
        for c in 0..d {
            row[c] = offset[c] + rng.normal(sd);
            row[d + c] = rng.normal(1.0);
        }
    }
    (q, kv)
}

fn check(isa: Isa, n_q: usize, n_kv: usize, heads: usize, hd: usize, sd: f32, seed: u64) {
    let d = heads * hd;
    let (q, kv) = data(n_q, n_kv, d, sd, seed);
    let cache = CrossKvI8::new(&kv, &kv[d.min(kv.len())..], 2 * d, n_kv, heads, hd);
    let mut want = vec![0f32; n_q * d];
    reference::attention_kv_i8(&q, &cache, n_q, &mut want);
    let mut got = vec![f32::NAN; n_q * d];
    kernels::attention_kv_i8_with(isa, &q, &cache, n_q, &mut got);
    assert_close(&format!("attention_kv_i8 {} {n_q}x{n_kv} h{heads} d{hd}", isa.name()), &got, &want, |i| 2e-5 * (1.0 + want[i].abs()) * 4.0);
}

#[test]
fn whisper_shapes_every_path() {
    for isa in paths("attention_kv_i8") {
        check(isa, 1, 1500, 8, 64, 1.0, 1);
        check(isa, 5, 1500, 8, 64, 1.5, 2);
        check(isa, 9, 37, 6, 64, 1.0, 3);
        check(isa, 4, 0, 2, 64, 1.0, 4);
    }
}

/// Against exact attention on the unquantized keys and values: the error int8 storage and
/// u8 queries cost, on data with channel offsets and fairly sharp attention.
#[test]
fn quantization_error_is_small() {
    let (n_q, n_kv, heads, hd) = (8, 1500, 8, 64);
    let d = heads * hd;
    for (sd, seed) in [(1.0, 5), (1.6, 6)] {
        let (q, kv) = data(n_q, n_kv, d, sd, seed);
        let (k, v): (Vec<f32>, Vec<f32>) = (kv.chunks_exact(2 * d).flat_map(|r| r[..d].to_vec()).collect(), kv.chunks_exact(2 * d).flat_map(|r| r[d..].to_vec()).collect());
        let mut exact = vec![0f32; n_q * d];
        reference::attention(&q, &k, &v, n_q, n_kv, heads, hd, false, &mut exact);
        let cache = CrossKvI8::new(&kv, &kv[d..], 2 * d, n_kv, heads, hd);
        let mut got = vec![0f32; n_q * d];
        kernels::attention_kv_i8(&q, &cache, n_q, &mut got);
        let f64s = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let corr = kernels::correlation(&f64s(&got), &f64s(&exact));
        let max = exact.iter().fold(0f32, |a, x| a.max(x.abs()));
        let err = got.iter().zip(&exact).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        eprintln!("sd {sd}: correlation {corr:.6}, max error {err:.4} (max |out| {max:.3})");
        assert!(corr > 0.999, "correlation {corr}");
        assert!(err < 0.05 * max, "max error {err} of {max}");
    }
}

/// The dequantized keys (what the word alignment reads) are the inputs up to half a step.
#[test]
fn dequantized_keys_and_values() {
    let (n_kv, heads, hd) = (50, 2, 8);
    let d = heads * hd;
    let (_, kv) = data(0, n_kv, d, 1.0, 7);
    let cache = CrossKvI8::new(&kv, &kv[d..], 2 * d, n_kv, heads, hd);
    let mut row = vec![0f32; n_kv];
    for h in 0..heads {
        for c in 0..hd {
            cache.key_channel(h, c, &mut row);
            for j in 0..n_kv {
                let (k, v) = (kv[j * 2 * d + h * hd + c], kv[j * 2 * d + d + h * hd + c]);
                assert_eq!(row[j], cache.key(h, c, j));
                assert!((row[j] - k).abs() < 0.04, "key h{h} c{c} j{j}: {} vs {k}", row[j]);
                assert!((cache.value(h, c, j) - v).abs() < 0.02, "value h{h} c{c} j{j}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn odd_shapes_match_reference(n_q in 1usize..11, n_kv in 0usize..70, heads in 1usize..4, hd in prop::sample::select(vec![4usize, 8, 64]), sd in 0.2f32..2.0, seed in 0u64..1000) {
        for isa in Isa::available() {
            check(isa, n_q, n_kv, heads, hd, sd, seed);
        }
    }
}
