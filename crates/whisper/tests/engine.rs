//! Engine correctness gates: encoder vs CTranslate2, cached vs uncached decoding, and
//! transcripts vs faster-whisper's on the shared clips (tiny.en always; base with RUN_SLOW_TESTS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use whisper::compute::{Cpu, WeightType};
use whisper::decode::{generate, GenerateOptions};
use whisper::mel::{Mel, N_FRAMES};
use whisper::model::Whisper;
use whisper::transcribe::{TranscribeOptions, Transcriber};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn load(name: &str) -> Option<Whisper> {
    let dir = whisper::testing::model_dir(name)?;
    Some(Whisper::load(&dir, Box::new(Cpu::new(WeightType::F32))).expect("model loads"))
}

fn features(id: &str) -> Mel {
    let (shape, data) = whisper::npy::read_f32(&data().join(format!("features/{id}.npy"))).unwrap();
    Mel {
        n_mels: shape[0],
        n_frames: shape[1],
        data,
    }
}

/// faster-whisper's output for one model/compute/beam: clip id -> (text, tokens of all segments).
fn reference(model: &str, beam: usize) -> BTreeMap<String, (String, Vec<u32>)> {
    let path = data().join(format!("transcripts/{model}_float32_b{beam}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["clips"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, c)| {
            let tokens = c["segments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| {
                    s["tokens"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_u64().unwrap() as u32)
                })
                .collect();
            (
                id.clone(),
                (c["text"].as_str().unwrap().to_string(), tokens),
            )
        })
        .collect()
}

fn clip_ids() -> Vec<String> {
    let tsv = std::fs::read_to_string(data().join("audio/clips.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn clip_path(id: &str) -> PathBuf {
    let tsv = std::fs::read_to_string(data().join("audio/clips.tsv")).unwrap();
    let line = tsv
        .lines()
        .find(|l| l.split('\t').next() == Some(id))
        .unwrap();
    data().join("audio").join(line.split('\t').nth(1).unwrap())
}

fn check_encoder(model_name: &str, clip: &str) {
    let Some(model) = load(model_name) else {
        return;
    };
    let mel = features(clip).window(0, N_FRAMES).pad_or_trim(N_FRAMES);
    let ours = model.encode(&mel).unwrap();
    let (shape, theirs) =
        whisper::npy::read_f32(&data().join(format!("encoder/{model_name}_{clip}.npy"))).unwrap();
    assert_eq!(
        shape,
        vec![model.dims.n_audio_ctx, model.dims.n_audio_state]
    );
    let (mut num, mut den, mut max_abs) = (0f64, 0f64, 0f32);
    for (a, b) in ours.iter().zip(&theirs) {
        num += ((a - b) as f64).powi(2);
        den += (*b as f64).powi(2);
        max_abs = max_abs.max((a - b).abs());
    }
    let rel = (num / den).sqrt();
    eprintln!("{model_name} {clip}: encoder relative error {rel:.2e}, max abs {max_abs:.2e}");
    assert!(rel <= 1e-3, "encoder relative error {rel} > 1e-3");
}

#[test]
fn encoder_matches_ctranslate2_tiny_en() {
    check_encoder("tiny.en", "librivox_0870");
    check_encoder("tiny.en", "librivox_0880");
}

#[test]
fn encoder_matches_ctranslate2_base() {
    check_encoder("base", "librivox_0870");
}

/// Greedy decoding with the KV cache gives exactly the tokens of recomputing the whole prefix.
#[test]
fn cached_decoding_equals_uncached() {
    let Some(model) = load("tiny.en") else { return };
    let mel = features("s03").window(0, N_FRAMES).pad_or_trim(N_FRAMES);
    let cross = model.cross_kv(&model.encode(&mel).unwrap());
    let tk = &model.tokenizer;
    let prompt = tk
        .sot_sequence(Some("en"), whisper::tokenizer::Task::Transcribe)
        .unwrap();
    let mut cache = model.new_kv_cache(1);
    let opts = GenerateOptions {
        beam_size: 1,
        suppress_tokens: vec![],
        suppress_blank: false,
        ..Default::default()
    };
    let cached = generate(
        &model,
        &cross,
        &mut cache,
        &[prompt.clone(), vec![tk.no_timestamps]].concat(),
        &opts,
    )
    .unwrap();
    assert!(
        cached.tokens.len() > 10,
        "expected a real sentence, got {:?}",
        cached.tokens
    );

    // Uncached: every step re-runs the decoder over the full sequence from an empty cache.
    let mut seq = [prompt, vec![tk.no_timestamps]].concat();
    let mut uncached = Vec::new();
    let vocab = model.dims.n_vocab;
    let d = model.dims.n_text_state;
    let mut logits = vec![0f32; vocab];
    for _ in 0..cached.tokens.len() + 1 {
        let mut fresh = model.new_kv_cache(1);
        let hidden = model.decode(&seq, 1, &mut fresh, &cross).unwrap();
        model.logits(&hidden[(seq.len() - 1) * d..], 1, &mut logits);
        let best = (0..vocab)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        if best == tk.eot {
            break;
        }
        uncached.push(best);
        seq.push(best);
    }
    assert_eq!(cached.tokens, uncached);
}

/// Beam reordering (regions moved, shared histories copied) leaves every beam with its own
/// history: one more cached step per beam equals running that beam's whole sequence through a
/// fresh cache. Checked for f32 caches and for the f16 caches of the int8 backend.
#[test]
fn reordered_cache_continues_each_beam() {
    let Some(dir) = whisper::testing::model_dir("tiny.en") else { return };
    for wt in [WeightType::F32, WeightType::Int8] {
        let model = Whisper::load(&dir, Box::new(Cpu::new(wt))).unwrap();
        let mel = features("s03").window(0, N_FRAMES).pad_or_trim(N_FRAMES);
        let cross = model.cross_kv(&model.encode(&mel).unwrap());
        let d = model.dims.n_text_state;
        let prompt = model.tokenizer.sot_sequence(Some("en"), whisper::tokenizer::Task::Transcribe).unwrap();
        // Three beams with different continuations of the prompt.
        let mut seqs: Vec<Vec<u32>> = [[464u32, 3290], [40, 1101], [1867, 318]].iter().map(|t| [prompt.clone(), t.to_vec()].concat()).collect();
        let mut cache = model.new_kv_cache(4);
        model.decode(&prompt, 1, &mut cache, &cross).unwrap();
        cache.reorder(&[0, 0, 0]);
        let step: Vec<u32> = seqs.iter().map(|s| s[prompt.len()]).collect();
        model.decode(&step, 3, &mut cache, &cross).unwrap();
        let step: Vec<u32> = seqs.iter().map(|s| s[prompt.len() + 1]).collect();
        model.decode(&step, 3, &mut cache, &cross).unwrap();
        // Beam 0 continues old beam 2, beams 1 and 2 both continue old beam 0; old beam 1 dies.
        let src = [2usize, 0, 0];
        seqs = src.iter().map(|&s| seqs[s].clone()).collect();
        cache.reorder(&src);
        let next = [220u32, 257, 290];
        let hidden = model.decode(&next, 3, &mut cache, &cross).unwrap().to_vec();
        for (b, seq) in seqs.iter_mut().enumerate() {
            seq.push(next[b]);
            let mut fresh = model.new_kv_cache(1);
            let full = model.decode(seq, 1, &mut fresh, &cross).unwrap();
            let want = &full[(seq.len() - 1) * d..];
            let got = &hidden[b * d..(b + 1) * d];
            let err = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let scale = want.iter().map(|a| a.abs()).fold(0f32, f32::max);
            assert!(err <= 2e-3 * scale, "{wt}: beam {b}: max error {err} (scale {scale})");
        }
    }
}

fn check_transcripts(model_name: &str, beam: usize, min_identical: f64) {
    let Some(model) = load(model_name) else {
        return;
    };
    let reference = reference(model_name, beam);
    let tr = Transcriber::new(&model).unwrap();
    let mut opts = TranscribeOptions {
        beam_size: beam,
        ..Default::default()
    };
    if beam == 1 {
        opts.temperatures = vec![0.0];
    }
    if model_name.ends_with(".en") {
        opts.language = Some("en".into());
    }
    let ids = clip_ids();
    let mut identical = 0;
    let mut report = String::new();
    for id in &ids {
        let samples = whisper::audio::load_audio(&clip_path(id)).unwrap();
        let t = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
        let (want, want_tokens) = &reference[id];
        let got_tokens: Vec<u32> = t
            .segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        // Identical means the same tokens (timestamps included), hence the same text.
        if &got_tokens == want_tokens {
            assert_eq!(&t.text(), want, "{id}: same tokens, different text");
            identical += 1;
        } else {
            report += &format!("\n{id}:\n  ours:   {}\n  theirs: {want}\n  ours {got_tokens:?}\n  theirs {want_tokens:?}", t.text());
        }
    }
    let frac = identical as f64 / ids.len() as f64;
    eprintln!(
        "{model_name} beam {beam}: {identical}/{} identical{report}",
        ids.len()
    );
    assert!(frac >= min_identical, "{model_name} beam {beam}: only {identical}/{} token sequences identical to faster-whisper:{report}", ids.len());
}

#[test]
fn greedy_matches_faster_whisper_tiny_en() {
    check_transcripts("tiny.en", 1, 1.0);
}

#[test]
fn beam5_matches_faster_whisper_tiny_en() {
    check_transcripts("tiny.en", 5, 0.9);
}

#[test]
fn greedy_matches_faster_whisper_base() {
    if whisper::testing::slow_tests_enabled() {
        check_transcripts("base", 1, 1.0);
    }
}

#[test]
fn beam5_matches_faster_whisper_base() {
    if whisper::testing::slow_tests_enabled() {
        check_transcripts("base", 5, 0.9);
    }
}

/// The lower-precision types end to end: every shared clip transcribed with tiny.en (greedy)
/// in `wt`, its text compared with faster-whisper float32's. Tolerance: pooled WER against
/// that text (whisper's normalizer) at most `max_wer`, and at least `min_identical` of the
/// clips word for word the same.
fn check_low_precision(wt: WeightType, max_wer: f64, min_identical: f64) {
    let Some(dir) = whisper::testing::model_dir("tiny.en") else { return };
    let model = Whisper::load(&dir, Box::new(Cpu::new(wt))).expect("model loads");
    let f32_ref = reference("tiny.en", 1);
    let tr = Transcriber::new(&model).unwrap();
    let opts = TranscribeOptions { beam_size: 1, temperatures: vec![0.0], language: Some("en".into()), ..Default::default() };
    let ids = clip_ids();
    let ours: Vec<String> = ids
        .iter()
        .map(|id| tr.transcribe(&whisper::audio::load_audio(&clip_path(id)).unwrap(), &opts, &mut |_| {}).unwrap().text())
        .collect();
    let pairs = || ids.iter().zip(&ours).map(|(id, h)| (f32_ref[id].0.as_str(), h.as_str()));
    let wer = whisper::eval::wer(pairs());
    let same = pairs().filter(|(r, h)| whisper::eval::normalize(r) == whisper::eval::normalize(h)).count();
    let line = format!("tiny.en {wt:?} greedy vs faster-whisper float32: WER {:.2}%, {same}/{} clips the same words", wer * 100.0, ids.len());
    eprintln!("{line}");
    for (id, (r, h)) in ids.iter().zip(pairs()) {
        if whisper::eval::normalize(r) != whisper::eval::normalize(h) {
            eprintln!("  {id}:\n    {wt:?}:    {h}\n    float32: {r}");
        }
    }
    assert!(wer <= max_wer, "{line}");
    assert!(same as f64 >= min_identical * ids.len() as f64, "{line}");
}

#[test]
fn int8_transcripts_stay_close_to_float32() {
    // Measured: 3.31 % pooled WER, 16/20 clips the same words (its errors are near-homophones:
    // "a well" / "the well", "market" / "mark round").
    check_low_precision(WeightType::Int8, 0.05, 0.75);
}

#[test]
fn bf16_transcripts_stay_close_to_float32() {
    // Measured: 0 % WER, 20/20 clips the same words.
    check_low_precision(WeightType::Bf16, 0.02, 0.9);
}

/// WER on the human clips (reference transcripts in clips.tsv) is no worse than
/// faster-whisper's, through the same normalizer.
fn check_wer(model_name: &str) {
    let Some(model) = load(model_name) else { return };
    let tsv = std::fs::read_to_string(data().join("audio/clips.tsv")).unwrap();
    let human: Vec<(String, String)> = tsv
        .lines()
        .skip(1)
        .filter(|l| l.contains("\thuman/"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[5].to_string())
        })
        .collect();
    assert_eq!(human.len(), 8, "clips.tsv lists the 8 human clips");
    let peer = reference(model_name, 5);
    let tr = Transcriber::new(&model).unwrap();
    let opts = TranscribeOptions::default();
    let ours: Vec<String> = human
        .iter()
        .map(|(id, _)| tr.transcribe(&whisper::audio::load_audio(&clip_path(id)).unwrap(), &opts, &mut |_| {}).unwrap().text())
        .collect();
    let wer_ours = whisper::eval::wer(human.iter().zip(&ours).map(|((_, r), h)| (r.as_str(), h.as_str())));
    let wer_peer = whisper::eval::wer(human.iter().map(|(id, r)| (r.as_str(), peer[id].0.as_str())));
    eprintln!("{model_name} beam 5 WER on human clips: ours {:.1}%, faster-whisper {:.1}%", wer_ours * 100.0, wer_peer * 100.0);
    assert!(wer_ours <= wer_peer + 1e-9, "our WER {wer_ours} is worse than faster-whisper's {wer_peer}");
}

#[test]
fn wer_no_worse_than_faster_whisper_tiny_en() {
    check_wer("tiny.en");
}

#[test]
fn wer_no_worse_than_faster_whisper_base() {
    if whisper::testing::slow_tests_enabled() {
        check_wer("base");
    }
}

/// A ten-minute recording (the clips, repeated, with pauses) transcribes end to end with
/// monotonic timestamps inside the audio and a sensible word error rate.
#[test]
fn ten_minute_file_long_form() {
    let Some(model) = load("tiny.en") else { return };
    let tsv = std::fs::read_to_string(data().join("audio/clips.tsv")).unwrap();
    let clips: Vec<(Vec<f32>, String)> = tsv
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (whisper::audio::load_audio(&data().join("audio").join(f[1])).unwrap(), f[5].to_string())
        })
        .collect();
    let sr = whisper::audio::SAMPLE_RATE;
    let (mut samples, mut reference) = (Vec::new(), String::new());
    let mut i = 0usize;
    while samples.len() < 600 * sr {
        let (clip, text) = &clips[i % clips.len()];
        samples.extend_from_slice(clip);
        // Pauses of 0.4 .. 2.2 s between sentences, as in speech.
        samples.extend(std::iter::repeat_n(0.0, sr * (4 + (i * 7) % 19) / 10));
        reference.push_str(text);
        reference.push(' ');
        i += 1;
    }
    let duration = samples.len() as f64 / sr as f64;
    let tr = Transcriber::new(&model).unwrap();
    let opts = TranscribeOptions { beam_size: 1, ..Default::default() };
    let t0 = std::time::Instant::now();
    let t = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let wer = whisper::eval::wer([(reference.as_str(), t.text().as_str())]);
    eprintln!("{duration:.0} s of audio in {wall:.1} s ({:.1}x), {} segments, WER {:.1}%", duration / wall, t.segments.len(), wer * 100.0);
    assert!(t.segments.len() >= 50, "only {} segments for {duration:.0} s", t.segments.len());
    let mut prev_start = 0.0;
    for s in &t.segments {
        assert!(s.start >= prev_start - 1e-9, "segment {} starts at {} before the previous start {prev_start}", s.id, s.start);
        assert!(s.end > s.start, "segment {} ends at {} before its start {}", s.id, s.end, s.start);
        assert!(s.end <= duration + 1.0, "segment {} ends at {} after the audio ({duration} s)", s.id, s.end);
        prev_start = s.start;
    }
    assert!(t.segments.last().unwrap().end > duration - 60.0, "the last minute was not transcribed");
    assert!(wer < 0.25, "WER {wer} on the ten-minute file");
}
