//! Layer norm, GELU and conv1d against the reference on every path.

use crate::common::{assert_close, paths, Rng};
use kernels::{reference, ConvInput, PackedF32};

#[test]
fn layer_norm_every_path() {
    for isa in paths("layer_norm") {
        for (rows, cols) in [(3, 512), (5, 17), (1, 1), (2, 384), (0, 8)] {
            let mut rng = Rng::new(cols as u64);
            // Offset mean: a one-pass variance would cancel badly here.
            let x: Vec<f32> = (0..rows * cols).map(|_| 100.0 + rng.normal(2.0)).collect();
            let g = rng.vec(cols);
            let b = rng.vec(cols);
            let mut got = vec![0.0; rows * cols];
            kernels::layer_norm_with(isa, &x, rows, cols, &g, &b, 1e-5, &mut got);
            let mut want = vec![0.0; rows * cols];
            reference::layer_norm(&x, rows, cols, &g, &b, 1e-5, &mut want);
            assert_close(&format!("layer_norm {} {rows}x{cols}", isa.name()), &got, &want, |_| 2e-4);
        }
    }
}

#[test]
fn reference_erf_known_values() {
    for (x, e) in [(0.5, 0.520_499_877_813_046_5), (1.0, 0.842_700_792_949_714_9), (2.0, 0.995_322_265_018_952_7), (3.0, 0.999_977_909_503_001_4), (-0.1, -0.112_462_916_018_284_9)] {
        assert!((reference::erf(x) - e).abs() < 1e-14, "erf({x}) = {}", reference::erf(x));
    }
}

/// Max abs error of GELU vs the f64 reference over [-10, 10] (step 1/1024), every path.
#[test]
fn gelu_every_path() {
    let x: Vec<f32> = (-10 * 1024..=10 * 1024).map(|i| i as f32 / 1024.0).collect();
    let mut want = x.clone();
    reference::gelu(&mut want);
    for isa in paths("gelu") {
        let mut got = x.clone();
        kernels::gelu_with(isa, &mut got);
        let max_err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        eprintln!("gelu {}: max abs error {max_err:.2e} on [-10, 10]", isa.name());
        assert_close(&format!("gelu {}", isa.name()), &got, &want, |i| 1.5e-6 + 2e-7 * x[i].abs());
    }
}

#[test]
fn conv1d_whisper_like_every_path() {
    // (c_in, t, c_out, kernel, stride, padding): conv1 and conv2 of Whisper, scaled down in t.
    let cases = [(80, 100, 64, 3, 1, 1), (64, 100, 48, 3, 2, 1), (3, 10, 5, 4, 3, 0), (2, 2, 3, 3, 1, 2), (4, 1, 2, 3, 2, 0)];
    for isa in paths("conv1d") {
        for (s, &(c_in, t, c_out, kernel, stride, pad)) in cases.iter().enumerate() {
            let mut rng = Rng::new(s as u64);
            let x = rng.vec(c_in * t);
            let w = rng.vec(c_out * c_in * kernel);
            let bias = rng.vec(c_out);
            let packed = PackedF32::new(&w, c_out, c_in * kernel);
            let t_out = kernels::conv1d_out_len(t, kernel, stride, pad);
            for layout in [ConvInput::ChannelMajor, ConvInput::TimeMajor] {
                let mut got = vec![f32::NAN; t_out * c_out];
                kernels::conv1d_with(isa, layout, &x, c_in, t, &packed, kernel, stride, pad, Some(&bias), &mut got);
                let mut want = vec![0.0; t_out * c_out];
                reference::conv1d(&x, layout, c_in, t, &w, c_out, kernel, stride, pad, Some(&bias), &mut want);
                let tol = f32::EPSILON * (c_in * kernel + 4) as f32 * (c_in * kernel) as f32;
                assert_close(&format!("conv1d {} case {s} {layout:?}", isa.name()), &got, &want, |_| tol + 1e-6);
            }
        }
    }
}
