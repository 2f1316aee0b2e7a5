//! Engine benchmarks: encoder time per 30 s window and decoder time per token for each compute
//! type, and the KV cache's per-token speed-up over recomputing the whole prefix at 50, 100 and
//! 200 tokens. Uses an installed model (BENCH_MODEL, default tiny.en; see whisper::testing for
//! where models are looked up); prints why it skipped when none is installed.
//!
//! `cargo bench -p whisper --bench engine`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use whisper::compute::{Cpu, WeightType};
use whisper::mel::{Mel, MelExtractor, N_FRAMES};
use whisper::model::{CrossKv, Whisper};

fn model_dir() -> Option<std::path::PathBuf> {
    let name = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "tiny.en".into());
    let found = whisper::testing::model_candidates(&name).into_iter().find(|d| d.join("model.bin").is_file());
    if found.is_none() {
        eprintln!("engine bench skipped: model `{name}` is not installed (`amanuensis models pull {name}`)");
    }
    found
}

/// A real 30 s window: a bundled clip's log-mel, padded.
fn window(n_mels: usize) -> Mel {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/audio/tts/s11.wav");
    let samples = whisper::audio::load_audio(std::path::Path::new(path)).expect("bundled clip decodes");
    MelExtractor::new(n_mels).unwrap().compute(&samples).window(0, N_FRAMES).pad_or_trim(N_FRAMES)
}

/// Tokens to feed: the SOT sequence then ordinary text tokens, `n` in all.
fn tokens(model: &Whisper, n: usize) -> Vec<u32> {
    let tk = &model.tokenizer;
    let text = tk.encode(" the quick brown fox jumps over the lazy dog while the farmer watches from the open window").unwrap();
    let mut t = vec![tk.sot];
    while t.len() < n {
        t.extend_from_slice(&text);
    }
    t.truncate(n);
    t
}

fn time_cached(model: &Whisper, cross: &CrossKv, toks: &[u32]) -> Duration {
    let mut cache = model.new_kv_cache(1);
    let mut logits = vec![0f32; model.dims.n_vocab];
    let t0 = Instant::now();
    for &tok in toks {
        let h = model.decode(&[tok], 1, &mut cache, cross).unwrap();
        model.logits(h, 1, &mut logits);
    }
    t0.elapsed()
}

fn time_uncached(model: &Whisper, cross: &CrossKv, toks: &[u32]) -> Duration {
    let mut cache = model.new_kv_cache(1);
    let mut logits = vec![0f32; model.dims.n_vocab];
    let d = model.dims.n_text_state;
    let t0 = Instant::now();
    for i in 1..=toks.len() {
        cache.clear();
        let h = model.decode(&toks[..i], 1, &mut cache, cross).unwrap();
        model.logits(&h[(i - 1) * d..], 1, &mut logits);
    }
    t0.elapsed()
}

fn bench(c: &mut Criterion) {
    let Some(dir) = model_dir() else { return };
    for wt in [WeightType::F32, WeightType::Int8, WeightType::Bf16] {
        let model = Whisper::load(&dir, Box::new(Cpu::new(wt))).expect("model loads");
        let mel = window(model.dims.n_mels);
        let audio = model.encode(&mel).unwrap();
        let cross = model.cross_kv(&audio);
        let mut g = c.benchmark_group(format!("engine-{wt}"));
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.bench_function("encoder_window", |b| b.iter(|| model.encode(&mel).unwrap()));
        let toks = tokens(&model, 100);
        g.bench_function("decoder_100_tokens_cached", |b| b.iter(|| time_cached(&model, &cross, &toks)));
        g.finish();
        if wt == WeightType::F32 {
            println!("KV cache speed-up ({}, f32): per-token time with the cache vs recomputing the prefix", dir.display());
            for n in [50, 100, 200] {
                let toks = tokens(&model, n);
                let cached = time_cached(&model, &cross, &toks);
                let uncached = time_uncached(&model, &cross, &toks);
                println!(
                    "  {n:>3} tokens: cached {:.2} ms/token, uncached {:.2} ms/token, speed-up {:.1}x",
                    cached.as_secs_f64() * 1e3 / n as f64,
                    uncached.as_secs_f64() * 1e3 / n as f64,
                    uncached.as_secs_f64() / cached.as_secs_f64()
                );
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
