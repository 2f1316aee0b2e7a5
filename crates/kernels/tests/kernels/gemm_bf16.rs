//! bf16 linear layer against the bf16-rounded f64 reference on every path.

use crate::common::{assert_close, paths, Rng};
use kernels::{reference, PackedBf16};

#[test]
fn linear_bf16_every_path() {
    for isa in paths("linear_bf16") {
        if isa == kernels::Isa::Avx512 && !isa.has_bf16() {
            eprintln!("!!! linear_bf16: no AVX512_BF16 here; the avx512 path runs the AVX2 kernel");
        }
        for (s, &(m, k, n)) in [(1, 1, 1), (7, 13, 33), (20, 512, 512), (3, 511, 70), (0, 4, 4), (2, 0, 3), (15, 64, 2048)].iter().enumerate() {
            let mut rng = Rng::new(s as u64 + 40);
            let x = rng.vec(m * k);
            let w = rng.vec(n * k);
            let bias = rng.vec(n);
            let mut got = vec![f32::NAN; m * n];
            kernels::linear_bf16_with(isa, &x, m, &PackedBf16::new(&w, n, k), Some(&bias), &mut got);
            let mut want = vec![0.0; m * n];
            reference::linear_bf16(&x, m, &w, n, k, Some(&bias), &mut want);
            let tol = f32::EPSILON * (k as f32 + 4.0) * k as f32 + 1e-6;
            assert_close(&format!("linear_bf16 {} {m}x{k}x{n}", isa.name()), &got, &want, |_| tol);
            // and close to f32 (bf16 keeps 8 significant bits)
            let mut exact = vec![0.0; m * n];
            reference::linear(&x, m, &w, n, k, Some(&bias), &mut exact);
            assert_close(&format!("linear_bf16 vs f32 {}", isa.name()), &got, &exact, |_| 0.01 * (k as f32).sqrt() + 1e-6);
        }
    }
}
