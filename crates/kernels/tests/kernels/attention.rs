//! Fused attention against the f64 reference, causal and not, on every path.

use crate::common::{assert_close, paths, Rng};
use kernels::reference;

#[allow(clippy::too_many_arguments)]
fn check(isa: kernels::Isa, n_q: usize, n_kv: usize, heads: usize, hd: usize, causal: bool, sd: f32, seed: u64) {
    let d = heads * hd;
    let mut rng = Rng::new(seed);
    let q: Vec<f32> = (0..n_q * d).map(|_| rng.normal(sd)).collect();
    let k: Vec<f32> = (0..n_kv * d).map(|_| rng.normal(sd)).collect();
    let v: Vec<f32> = (0..n_kv * d).map(|_| rng.normal(1.0)).collect();
    let mut got = vec![f32::NAN; n_q * d];
    kernels::attention_f32_with(isa, &q, &k, &v, n_q, n_kv, heads, hd, causal, &mut got);
    let mut want = vec![0.0; n_q * d];
    reference::attention(&q, &k, &v, n_q, n_kv, heads, hd, causal, &mut want);
    let tol = 2e-6 * ((hd + n_kv) as f32).sqrt() * 4.0;
    assert_close(&format!("attention {} {n_q}x{n_kv} h{heads} d{hd} causal {causal}", isa.name()), &got, &want, |_| tol);
}

#[test]
fn small_and_odd_shapes_every_path() {
    for isa in paths("attention_f32") {
        for &(n_q, n_kv, h, hd) in &[(1, 1, 1, 1), (5, 7, 2, 3), (64, 256, 1, 64), (65, 300, 2, 64), (130, 517, 3, 16), (7, 3, 1, 8), (0, 4, 1, 4), (3, 0, 1, 4)] {
            for causal in [false, true] {
                check(isa, n_q, n_kv, h, hd, causal, 1.0, (n_q + n_kv + h) as u64);
            }
        }
    }
}

/// Sharp attention (large logits) stresses the running-max rescaling.
#[test]
fn sharp_scores_every_path() {
    for isa in paths("attention_f32 sharp") {
        check(isa, 70, 600, 2, 64, false, 3.0, 1);
        check(isa, 600, 600, 1, 64, true, 3.0, 2);
    }
}

/// Encoder-sized key length (1500) with a subset of queries, 8 heads of 64.
#[test]
fn encoder_length_every_path() {
    for isa in paths("attention_f32 encoder") {
        check(isa, 40, 1500, 8, 64, false, 1.0, 3);
    }
}
