//! NPU vs CPU on Whisper's encoder GEMM shapes (1500 rows; K x N in {512x512, 512x2048,
//! 2048x512}, plus the fused QKV projection 512x1536 that runs as three chained 512x512
//! runs): the NPU int8 path (XRT runs, host quantization and dequantization included)
//! against kernels::linear_i8 and kernels::linear_f32 on the CPU. Runs only with NPU_TESTS=1
//! on a machine with an NPU and built xclbins; otherwise prints why it skipped.

use criterion::{criterion_group, criterion_main, Criterion};
use whisper::compute::{Compute, Cpu, LayerRole, WeightType};

fn data(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut r = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let x = (0..m * k).map(|_| r()).collect();
    let w = (0..n * k).map(|_| r() * 0.1).collect();
    let b = (0..n).map(|_| r()).collect();
    (x, w, b)
}

fn bench(c: &mut Criterion) {
    if std::env::var("NPU_TESTS").map_or(true, |v| v != "1") {
        eprintln!("npu_gemm: skipped: set NPU_TESTS=1 on a machine with an AMD NPU (XRT >= 2.17, amdxdna, xclbins from `cargo xtask build-kernels`)");
        return;
    }
    let root = npu::default_xclbin_root();
    let availability = npu::probe(&root);
    if !availability.is_available() {
        eprintln!("npu_gemm: skipped: {availability}");
        return;
    }
    let npu = npu::NpuCompute::open(Cpu::new(WeightType::Int8), &root);
    if !npu.npu_active() {
        eprintln!("npu_gemm: skipped: {}", npu.why_not().unwrap_or("NPU not active"));
        return;
    }
    let m = 1500;
    let mut shapes = aie_build::catalog::WHISPER_KN.to_vec();
    shapes.push((512, 1536));
    for (k, n) in shapes {
        let (x, w, bias) = data(m, k, n);
        let lin = npu.prepare(&w, n, k, Some(bias.clone()), LayerRole::Projection);
        let mut y = vec![0f32; m * n];
        let mut g = c.benchmark_group(format!("gemm_{m}x{k}x{n}"));
        g.sample_size(20);
        g.bench_function("npu_int8", |b| b.iter(|| npu.linear(&x, m, &lin, &mut y)));
        let q = kernels::QuantizedI8::new(&w, n, k);
        g.bench_function("cpu_linear_i8", |b| b.iter(|| kernels::linear_i8(&x, m, &q, Some(&bias), &mut y)));
        let p = kernels::PackedF32::new(&w, n, k);
        g.bench_function("cpu_linear_f32", |b| b.iter(|| kernels::linear_f32(&x, m, &p, Some(&bias), &mut y)));
        g.finish();
    }
    let s = npu.stats();
    assert_eq!(s.failures, 0, "the NPU failed during the benchmark: results above are CPU fallbacks");
}

criterion_group!(benches, bench);
criterion_main!(benches);
