//! f32 GEMM (`sgemm`, `linear_f32`) against the f64 reference on every path.

use crate::common::{assert_close, paths, Rng};
use kernels::{reference, Isa, PackedF32};
use proptest::prelude::*;

/// Storage orders exercised for each operand.
#[derive(Clone, Copy, Debug)]
enum Order {
    RowMajor,
    ColMajor,
    /// Row-major with 3 spare elements per row.
    Padded,
    /// Row-major with rows stored last-to-first (negative row stride).
    Reversed,
}

fn strides(order: Order, rows: usize, cols: usize) -> (isize, isize, usize) {
    let (r, c) = (rows.max(1) as isize, cols.max(1) as isize);
    match order {
        Order::RowMajor => (c, 1, rows * cols),
        Order::ColMajor => (1, r, rows * cols),
        Order::Padded => (c + 3, 1, rows * (cols + 3)),
        Order::Reversed => (-c, 1, rows * cols),
    }
}

/// Compares `sgemm_with(isa, ..)` with the reference; tolerance scales with k through the
/// magnitude bound Σ|a||b|.
#[allow(clippy::too_many_arguments)]
fn check(isa: Isa, m: usize, n: usize, k: usize, alpha: f32, beta: f32, orders: [Order; 3], seed: u64) {
    let mut rng = Rng::new(seed);
    let (rsa, csa, la) = strides(orders[0], m, k);
    let (rsb, csb, lb) = strides(orders[1], k, n);
    let (rsc, csc, lc) = strides(orders[2], m, n);
    let a = rng.vec(la);
    let b = rng.vec(lb);
    let c0 = rng.vec(lc);
    let mut got = c0.clone();
    kernels::sgemm_with(isa, m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut got, rsc, csc);
    let mut want = c0.clone();
    reference::sgemm(m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut want, rsc, csc);
    // Bound: |alpha|·Σ|a||b| + |beta·c|.
    let (aa, ba): (Vec<f32>, Vec<f32>) = (a.iter().map(|v| v.abs()).collect(), b.iter().map(|v| v.abs()).collect());
    let mut bound: Vec<f32> = c0.iter().map(|v| v.abs()).collect();
    reference::sgemm(m, n, k, alpha.abs(), &aa, rsa, csa, &ba, rsb, csb, beta.abs(), &mut bound, rsc, csc);
    let eps = f32::EPSILON * (k as f32 + 4.0);
    assert_close(
        &format!("sgemm {} {m}x{n}x{k} alpha {alpha} beta {beta} {orders:?}", isa.name()),
        &got,
        &want,
        |i| eps * bound[i] + 1e-30,
    );
}

#[test]
fn sgemm_small_shapes_every_path() {
    for isa in paths("sgemm") {
        for m in 0..20 {
            for n in [0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 47] {
                for k in [0, 1, 3, 8, 19] {
                    check(isa, m, n, k, 1.0, 0.0, [Order::RowMajor; 3], (m * 1000 + n * 10 + k) as u64);
                }
            }
        }
    }
}

#[test]
fn sgemm_strides_alpha_beta_every_path() {
    let orders = [Order::RowMajor, Order::ColMajor, Order::Padded, Order::Reversed];
    for isa in paths("sgemm strides") {
        for (t, &(m, n, k)) in [(7, 14, 21), (29, 35, 300), (15, 33, 5)].iter().enumerate() {
            for (o, &oa) in orders.iter().enumerate() {
                for &ob in &orders {
                    for &oc in &orders {
                        for &(alpha, beta) in &[(1.0, 0.0), (-0.5, 1.0), (2.0, -0.25)] {
                            check(isa, m, n, k, alpha, beta, [oa, ob, oc], (t * 100 + o) as u64);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sgemm_beta_zero_ignores_nan_in_c() {
    for isa in paths("sgemm beta=0") {
        let (m, n, k) = (9, 40, 13);
        let mut rng = Rng::new(3);
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let mut c = vec![f32::NAN; m * n];
        kernels::sgemm_with(isa, m, n, k, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1);
        assert!(c.iter().all(|v| v.is_finite()), "{}: NaN from C leaked through beta = 0", isa.name());
        // k = 0 and beta = 0 clear C.
        let mut c = vec![f32::NAN; m * n];
        kernels::sgemm_with(isa, m, n, 0, 1.0, &[], 0, 1, &[], n as isize, 1, 0.0, &mut c, n as isize, 1);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}

#[test]
#[should_panic(expected = "needs")]
fn sgemm_rejects_short_slice() {
    let mut c = vec![0.0; 4];
    kernels::sgemm(2, 2, 3, 1.0, &[0.0; 5], 3, 1, &[0.0; 6], 2, 1, 0.0, &mut c, 2, 1);
}

#[test]
#[should_panic(expected = "overlapping")]
fn sgemm_rejects_aliasing_output() {
    let mut c = vec![0.0; 4];
    kernels::sgemm(2, 2, 1, 1.0, &[0.0; 2], 1, 1, &[0.0; 2], 2, 1, 0.0, &mut c, 1, 1);
}

/// `linear_f32` with bias on Whisper-like shapes (few rows, so the reference stays quick).
#[test]
fn linear_whisper_shapes_every_path() {
    let shapes = [(37, 512, 512), (29, 512, 2048), (15, 2048, 512), (1, 512, 51865), (5, 512, 51865), (20, 240, 512)];
    for isa in paths("linear_f32") {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            let mut rng = Rng::new(s as u64 + 77);
            let x = rng.vec(m * k);
            let w: Vec<f32> = (0..n * k).map(|_| rng.normal(0.05)).collect();
            let bias = rng.vec(n);
            let packed = PackedF32::new(&w, n, k);
            let mut got = vec![f32::NAN; m * n];
            kernels::linear_f32_with(isa, &x, m, &packed, Some(&bias), &mut got);
            let mut want = vec![0.0; m * n];
            reference::linear(&x, m, &w, n, k, Some(&bias), &mut want);
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let wa: Vec<f32> = w.iter().map(|v| v.abs()).collect();
            let mut bound = vec![0.0; m * n];
            reference::linear(&xa, m, &wa, n, k, None, &mut bound);
            let eps = f32::EPSILON * (k as f32 + 4.0);
            assert_close(&format!("linear {} {m}x{k}x{n}", isa.name()), &got, &want, |i| eps * (bound[i] + bias[i % n].abs()) + 1e-30);
        }
    }
}

/// Large enough to take the multi-threaded route.
#[test]
fn linear_threaded_matches_serial_reference() {
    let (m, k, n) = (300, 256, 640);
    let mut rng = Rng::new(5);
    let x = rng.vec(m * k);
    let w = rng.vec(n * k);
    let packed = PackedF32::new(&w, n, k);
    let mut want = vec![0.0; m * n];
    reference::linear(&x, m, &w, n, k, None, &mut want);
    for isa in paths("linear_f32 threaded") {
        let mut got = vec![0.0; m * n];
        kernels::linear_f32_with(isa, &x, m, &packed, None, &mut got);
        assert_close(&format!("linear threaded {}", isa.name()), &got, &want, |_| f32::EPSILON * 260.0 * 256.0);
    }
}

fn dims() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..20, (1usize..10).prop_map(|i| 7 * i), Just(64), Just(100)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn sgemm_matches_reference(m in dims(), n in dims(), k in dims(), oa in 0usize..4, ob in 0usize..4, oc in 0usize..4,
                               alpha in prop_oneof![Just(1.0f32), -2.0f32..2.0], beta in prop_oneof![Just(0.0f32), Just(1.0f32), -1.0f32..1.0], seed in any::<u64>()) {
        let o = [Order::RowMajor, Order::ColMajor, Order::Padded, Order::Reversed];
        for isa in Isa::available() {
            check(isa, m, n, k, alpha, beta, [o[oa], o[ob], o[oc]], seed);
        }
    }
}
