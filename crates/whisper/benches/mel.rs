//! Criterion bench of the log-mel front end: 30 s of audio on one core (target: < 30 ms, i.e.
//! ≥ 1000× realtime), plus filter-bank construction.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use whisper::mel::{MelExtractor, N_SAMPLES};

/// Deterministic speech-like test signal: a few drifting tones plus LCG noise, so the FFT and
/// log see realistic non-trivial values (the cost does not depend on the content).
fn signal(n: usize) -> Vec<f32> {
    let mut seed = 0x2545_f491u32;
    (0..n)
        .map(|i| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let t = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * (220.0 + 30.0 * t) * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 1800.0 * t).sin()
                + 0.05 * noise
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let audio = signal(N_SAMPLES);
    // One rayon thread: the figure is for a single core.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("mel");
    group.throughput(Throughput::Elements(N_SAMPLES as u64));
    for n_mels in [80, 128] {
        let ext = MelExtractor::new(n_mels).unwrap();
        group.bench_function(format!("compute_30s_{n_mels}mels_1thread"), |b| {
            pool.install(|| b.iter(|| ext.compute(black_box(&audio))))
        });
    }
    group.finish();
    // Construction (filter bank, FFT plan) is paid once per model load, not per clip.
    c.bench_function("mel/extractor_new_80", |b| {
        b.iter(|| MelExtractor::new(black_box(80)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
