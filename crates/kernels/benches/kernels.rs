//! Benchmarks of the kernels on Whisper base shapes, with a printed summary: GFLOP/s, % of the
//! machine's measured FMA peak, speed-up over the reference, int8 / bf16 vs f32, and (with
//! `--features compare`) the `gemm` and `matrixmultiply` crates on the same shapes.
//!
//! `cargo bench -p kernels` prints the summary, then runs the criterion benches.
//! `KERNELS_BENCH_SUMMARY=0` skips the summary; `KERNELS_BENCH_CRITERION=0` skips criterion.

use criterion::{black_box, Criterion};
use kernels::{reference, Isa, PackedBf16, PackedF32, PackedI8, QuantizedI8};
use std::time::{Duration, Instant};

/// Whisper base linear shapes, (M, K, N): y[M×N] = x[M×K]·W[N×K]ᵀ.
const SHAPES: [(&str, usize, usize, usize); 5] = [
    ("enc qkv/out 1500x512x512", 1500, 512, 512),
    ("enc fc1 1500x512x2048", 1500, 512, 2048),
    ("enc fc2 1500x2048x512", 1500, 2048, 512),
    ("dec logits 1x512x51865", 1, 512, 51865),
    ("dec logits 5x512x51865", 5, 512, 51865),
];

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Best wall time of `f` after one warm-up: at least `reps` runs, and more until about a second
/// has passed (best-of, because the other core is often busy with others' builds).
fn best_time(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < reps || (start.elapsed() < Duration::from_secs(1) && runs < 200) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

// ------------------------------------------------------------------ FMA peak

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    /// 16 independent zmm FMA chains; returns a value so nothing is optimized away.
    ///
    /// # Safety
    /// Needs AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn zmm(iters: u64) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); 16];
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// 16 independent ymm FMA chains.
    ///
    /// # Safety
    /// Needs AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn ymm(iters: u64) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); 12];
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut out = [0.0f32; 8];
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        _mm256_storeu_ps(out.as_mut_ptr(), s);
        out.iter().sum()
    }
}

/// Measured f32 FMA peak in GFLOP/s: (one core, two threads at once). Best of many short runs
/// of the zmm and ymm loops (whichever is faster); the two-thread figure times both threads
/// together on the wall clock.
fn fma_peak() -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        let iters = 1_000_000u64;
        // (function, flops per call)
        type PeakLoop = unsafe fn(u64) -> f32;
        let mut loops: Vec<(PeakLoop, f64)> = Vec::new();
        if Isa::Avx512.is_available() {
            loops.push((peak::zmm, (iters * 16 * 16 * 2) as f64));
        }
        if Isa::Avx2.is_available() {
            loops.push((peak::ymm, (iters * 12 * 8 * 2) as f64));
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        let (mut single, mut total) = (0.0f64, 0.0f64);
        for (f, flops) in loops {
            // SAFETY: each loop is only listed when its instruction set was detected.
            let t1 = best_time(40, || {
                black_box(unsafe { f(black_box(iters)) });
            });
            single = single.max(flops / t1.as_secs_f64() / 1e9);
            let t2 = best_time(40, || {
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| black_box(unsafe { f(black_box(iters)) }));
                    }
                })
            });
            total = total.max(threads as f64 * flops / t2.as_secs_f64() / 1e9);
        }
        (single, total)
    }
    #[cfg(not(target_arch = "x86_64"))]
    (0.0, 0.0)
}

fn gflops(flops: f64, t: Duration) -> f64 {
    flops / t.as_secs_f64() / 1e9
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

// ------------------------------------------------------------------ summary

fn summary() {
    let (p1, p2) = fma_peak();
    println!("\n=== kernels summary ===");
    println!("CPU: {} | threads: {} | path: {} | load avg before: {}", cpu_model(), rayon::current_num_threads(), Isa::detect().name(), load_avg());
    println!("measured f32 FMA peak: {p1:.1} GFLOP/s on one core, {p2:.1} GFLOP/s on two threads\n");
    println!(
        "{:28} {:>9} {:>8} {:>6} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "shape (MxKxN)", "f32 ms", "GFLOP/s", "%peak", "ref x", "i8 ms", "i8/f32", "bf16 ms", "bf16/f32"
    );
    for &(name, m, k, n) in &SHAPES {
        let x = seeded(m * k, 1);
        let w = seeded(n * k, 2);
        let bias = seeded(n, 3);
        let pf = PackedF32::new(&w, n, k);
        let qi = QuantizedI8::new(&w, n, k);
        let pb = PackedBf16::new(&w, n, k);
        let mut y = vec![0.0f32; m * n];
        let reps = if m * n * k > 100_000_000 { 5 } else { 20 };
        let t_f32 = best_time(reps, || kernels::linear_f32(&x, m, &pf, Some(&bias), &mut y));
        let t_i8 = best_time(reps, || kernels::linear_i8(&x, m, &qi, Some(&bias), &mut y));
        let t_bf = best_time(reps, || kernels::linear_bf16(&x, m, &pb, Some(&bias), &mut y));
        // Reference on a sample of rows (and of columns for the huge GEMV), scaled linearly.
        let (mr, nr) = (m.min(8), n.min(4096));
        let wr = &w[..nr * k];
        let mut yr = vec![0.0f32; mr * nr];
        let t_ref = best_time(1, || reference::linear(&x[..mr * k], mr, wr, nr, k, Some(&bias[..nr]), &mut yr));
        let t_ref_full = t_ref.as_secs_f64() * (m as f64 / mr as f64) * (n as f64 / nr as f64);
        let flops = 2.0 * (m * n * k) as f64;
        let g = gflops(flops, t_f32);
        println!(
            "{:28} {:9.3} {:8.1} {:5.0}% {:9.0} {:9.3} {:7.2}x {:9.3} {:7.2}x",
            name,
            t_f32.as_secs_f64() * 1e3,
            g,
            100.0 * g / p2,
            t_ref_full / t_f32.as_secs_f64(),
            t_i8.as_secs_f64() * 1e3,
            t_f32.as_secs_f64() / t_i8.as_secs_f64(),
            t_bf.as_secs_f64() * 1e3,
            t_f32.as_secs_f64() / t_bf.as_secs_f64()
        );
    }
    println!("(ref x = speed-up over reference::linear timed on ≤8 rows × ≤4096 columns and scaled; i8 includes run-time activation quantization)");

    // Raw int8 GEMM (no quantization) for the big shapes.
    for &(name, m, k, n) in &SHAPES[..3] {
        let a: Vec<u8> = (0..m * k).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<i8> = (0..n * k).map(|i| (i * 13 % 255) as i8).collect();
        let pb = PackedI8::new(&b, n, k);
        let mut c = vec![0i32; m * n];
        let t = best_time(5, || kernels::gemm_u8i8_i32(m, &a, &pb, &mut c));
        println!("raw gemm_u8i8_i32 {name}: {:.3} ms, {:.1} GOP/s", t.as_secs_f64() * 1e3, gflops(2.0 * (m * n * k) as f64, t));
    }

    // Paths for one shape.
    let (m, k, n) = (1500, 512, 512);
    let x = seeded(m * k, 1);
    let w = seeded(n * k, 2);
    let pf = PackedF32::new(&w, n, k);
    let mut y = vec![0.0f32; m * n];
    for isa in Isa::available() {
        let t = best_time(3, || kernels::linear_f32_with(isa, &x, m, &pf, None, &mut y));
        println!("linear_f32 1500x512x512 on {:6}: {:8.3} ms  {:7.1} GFLOP/s", isa.name(), t.as_secs_f64() * 1e3, gflops(2.0 * (m * n * k) as f64, t));
    }
    // Single thread, to compare with the one-core peak.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for isa in Isa::available().into_iter().filter(|&i| i != Isa::Scalar) {
        let t = pool.install(|| best_time(10, || kernels::linear_f32_with(isa, &x, m, &pf, None, &mut y)));
        let g = gflops(2.0 * (m * n * k) as f64, t);
        println!("linear_f32 1500x512x512 one thread {:6}: {:.3} ms  {:.1} GFLOP/s = {:.0}% of one-core peak", isa.name(), t.as_secs_f64() * 1e3, g, 100.0 * g / p1);
    }

    compare(p2);

    // Attention: 8 heads, 1500 × 1500, head dim 64.
    let (nq, hd, h) = (1500, 64, 8);
    let d = h * hd;
    let q = seeded(nq * d, 4);
    let kk = seeded(nq * d, 5);
    let v = seeded(nq * d, 6);
    let mut out = vec![0.0f32; nq * d];
    let t = best_time(5, || kernels::attention_f32(&q, &kk, &v, nq, nq, h, hd, false, &mut out));
    let flops = 4.0 * (nq * nq * d) as f64;
    // Reference on 8 query rows, scaled.
    let sample = 8;
    let mut outr = vec![0.0f32; sample * d];
    let tr = best_time(1, || reference::attention(&q[..sample * d], &kk, &v, sample, nq, h, hd, false, &mut outr));
    let tr_full = tr.as_secs_f64() * nq as f64 / sample as f64;
    let g = gflops(flops, t);
    println!(
        "\nattention 8 heads 1500x1500x64: {:.2} ms, {:.1} GFLOP/s ({:.0}% of peak), {:.0}x the reference (timed on {sample} query rows, scaled)",
        t.as_secs_f64() * 1e3,
        g,
        100.0 * g / p2,
        tr_full / t.as_secs_f64()
    );
    for isa in Isa::available() {
        let t = best_time(2, || kernels::attention_f32_with(isa, &q, &kk, &v, nq, nq, h, hd, false, &mut out));
        println!("attention on {:6}: {:8.2} ms", isa.name(), t.as_secs_f64() * 1e3);
    }
    // The bf16-product attention of the compact compute types, and its agreement with f32.
    let mut outb = vec![0.0f32; nq * d];
    let tb = best_time(3, || kernels::attention_bf16(&q, &kk, &v, nq, nq, h, hd, false, &mut outb));
    kernels::attention_f32(&q, &kk, &v, nq, nq, h, hd, false, &mut out);
    let (a, b): (Vec<f64>, Vec<f64>) = (out.iter().map(|&x| x as f64).collect(), outb.iter().map(|&x| x as f64).collect());
    println!(
        "attention_bf16 8 heads 1500x1500x64: {:.2} ms, {:.1} GFLOP/s, {:.2}x f32, correlation with f32 {:.6}",
        tb.as_secs_f64() * 1e3,
        gflops(flops, tb),
        t.as_secs_f64() / tb.as_secs_f64(),
        kernels::correlation(&a, &b)
    );

    // Softmax / layer norm / GELU throughput on encoder-sized rows.
    let mut s = seeded(1500 * 1500, 7);
    let t = best_time(5, || kernels::softmax_f32(&mut s, 1500, 1500));
    println!("softmax_f32 1500x1500: {:.3} ms", t.as_secs_f64() * 1e3);
    let s8: Vec<i8> = (0..1500 * 1500).map(|i| (i * 31 % 255) as i8).collect();
    let mut p = vec![0i16; 1500 * 1500];
    let lut = kernels::SoftmaxLut::new(0.05);
    let t = best_time(5, || kernels::softmax_lut_i8(&s8, 1500, 1500, &lut, &mut p));
    println!("softmax_lut_i8 1500x1500: {:.3} ms", t.as_secs_f64() * 1e3);
    let xs = seeded(1500 * 512, 8);
    let g = vec![1.0; 512];
    let b = vec![0.0; 512];
    let mut o = vec![0.0; 1500 * 512];
    let t = best_time(10, || kernels::layer_norm(&xs, 1500, 512, &g, &b, 1e-5, &mut o));
    println!("layer_norm 1500x512: {:.3} ms", t.as_secs_f64() * 1e3);
    let mut gx = seeded(1500 * 2048, 9);
    let t = best_time(10, || kernels::gelu(&mut gx));
    println!("gelu 1500x2048: {:.3} ms", t.as_secs_f64() * 1e3);
    println!("load avg after: {}\n", load_avg());
}

#[cfg(feature = "compare")]
fn compare(peak: f64) {
    println!("\nthird-party GEMMs on the same shapes (C = A·Bᵀ, B row-major [N][K], 2 threads):");
    for &(name, m, k, n) in &SHAPES {
        let x = seeded(m * k, 1);
        let w = seeded(n * k, 2);
        let pf = PackedF32::new(&w, n, k);
        let mut y = vec![0.0f32; m * n];
        let reps = if m * n * k > 100_000_000 { 5 } else { 20 };
        let flops = 2.0 * (m * n * k) as f64;
        let t_ours = best_time(reps, || kernels::linear_f32(&x, m, &pf, None, &mut y));
        let t_mm = best_time(reps, || unsafe {
            matrixmultiply::sgemm(m, k, n, 1.0, x.as_ptr(), k as isize, 1, w.as_ptr(), 1, k as isize, 0.0, y.as_mut_ptr(), n as isize, 1)
        });
        let t_gemm = best_time(reps, || unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(2),
            )
        });
        println!(
            "{:28} ours {:7.1} GFLOP/s ({:3.0}%) | gemm {:7.1} | matrixmultiply {:7.1}",
            name,
            gflops(flops, t_ours),
            100.0 * gflops(flops, t_ours) / peak,
            gflops(flops, t_gemm),
            gflops(flops, t_mm)
        );
    }
}

#[cfg(not(feature = "compare"))]
fn compare(_peak: f64) {
    println!("(run with --features compare to measure the gemm and matrixmultiply crates too)");
}

// ------------------------------------------------------------------ criterion

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for &(name, m, k, n) in &SHAPES {
        let x = seeded(m * k, 1);
        let w = seeded(n * k, 2);
        let pf = PackedF32::new(&w, n, k);
        let qi = QuantizedI8::new(&w, n, k);
        let mut y = vec![0.0f32; m * n];
        g.bench_function(format!("linear_f32 {name}"), |b| b.iter(|| kernels::linear_f32(&x, m, &pf, None, &mut y)));
        g.bench_function(format!("linear_i8 {name}"), |b| b.iter(|| kernels::linear_i8(&x, m, &qi, None, &mut y)));
    }
    let (nq, h, hd) = (1500, 8, 64);
    let q = seeded(nq * h * hd, 4);
    let mut out = vec![0.0f32; nq * h * hd];
    g.bench_function("attention 8x1500x1500x64", |b| b.iter(|| kernels::attention_f32(&q, &q, &q, nq, nq, h, hd, false, &mut out)));
    g.bench_function("attention_bf16 8x1500x1500x64", |b| b.iter(|| kernels::attention_bf16(&q, &q, &q, nq, nq, h, hd, false, &mut out)));
    let shape = kernels::StridedAttention { n_q: nq, n_kv: nq, n_heads: h, head_dim: hd, ld: h * hd };
    g.bench_function("attention_i8qk 8x1500x1500x64", |b| b.iter(|| kernels::attention_i8qk(&q, &q, &q, shape, &mut out)));
    decoder_cross_benches(&mut g);
    g.finish();
}

/// Decoder cross-attention of one step: f16 caches (`attention_kt`) against int8 caches
/// (`attention_kv_i8`). "1 cache" re-reads one layer's cache (it stays in L3); "48 caches" is a
/// batched step of Whisper base (8 windows × 6 layers, each its own cache: read from memory,
/// as in `transcribe --batch-size 8`).
fn decoder_cross_benches(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let (n_kv, h, hd) = (1500, 8, 64);
    let d = h * hd;
    let stride = kernels::KtShape::min_stride(n_kv);
    let kv = seeded(n_kv * 2 * d, 7);
    let n_caches = 48;
    let f16: Vec<(Vec<half::f16>, Vec<half::f16>)> = (0..n_caches)
        .map(|i| {
            let x: Vec<half::f16> = kv.iter().take(d * stride).map(|&x| half::f16::from_f32(x + i as f32 * 1e-3)).collect();
            (x.clone(), x)
        })
        .collect();
    let i8s: Vec<kernels::CrossKvI8> = (0..n_caches).map(|_| kernels::CrossKvI8::new(&kv, &kv[d..], 2 * d, n_kv, h, hd)).collect();
    for n_q in [1, 5] {
        let q = seeded(n_q * d, 8);
        let mut out = vec![0.0f32; n_q * d];
        let s = kernels::KtShape { n_q, n_kv, n_heads: h, head_dim: hd, stride, causal: false };
        g.bench_function(format!("dec_cross f16 {n_q}q x1500 8x64, 1 cache"), |b| b.iter(|| kernels::attention_kt(&q, &f16[0].0, &f16[0].1, s, &mut out)));
        g.bench_function(format!("dec_cross i8 {n_q}q x1500 8x64, 1 cache"), |b| b.iter(|| kernels::attention_kv_i8(&q, &i8s[0], n_q, &mut out)));
        g.bench_function(format!("dec_cross f16 {n_q}q x1500 8x64, 48 caches"), |b| {
            b.iter(|| f16.iter().for_each(|(k, v)| kernels::attention_kt(&q, k, v, s, &mut out)))
        });
        g.bench_function(format!("dec_cross i8 {n_q}q x1500 8x64, 48 caches"), |b| b.iter(|| i8s.iter().for_each(|c| kernels::attention_kv_i8(&q, c, n_q, &mut out))));
    }
}

fn main() {
    let on = |var: &str| std::env::var(var).map_or(true, |v| v != "0");
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep that run short.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if on("KERNELS_BENCH_SUMMARY") && bench_mode {
        summary();
    }
    if on("KERNELS_BENCH_CRITERION") {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
}
