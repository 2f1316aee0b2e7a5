//! The continuous batch: windows decoded together give the same tokens as decoded alone (f32),
//! windows join and leave while others are in flight, a failing window leaves the others
//! alone, and the batched pipeline gives the sequential text on single-window clips.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use whisper::batch::ContinuousBatch;
use whisper::compute::{Cpu, WeightType};
use whisper::mel::{Mel, N_FRAMES};
use whisper::model::Whisper;
use whisper::pipeline::{fixed_windows, BatchInput};
use whisper::transcribe::{TranscribeOptions, Transcriber};
use whisper::window::{decode_window, WindowOptions, WindowResult};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn load() -> Option<Whisper> {
    let dir = whisper::testing::model_dir("tiny.en")?;
    Some(Whisper::load(&dir, Box::new(Cpu::new(WeightType::F32))).expect("model loads"))
}

const CLIPS: &[&str] = &["librivox_0870", "arctic_a0007", "s01", "s02", "s03", "goforward", "cards_001", "s04"];

/// Encoder outputs of the first window of each clip.
fn encoded(model: &Whisper) -> Vec<Vec<f32>> {
    let mels: Vec<Mel> = CLIPS
        .iter()
        .map(|id| {
            let (shape, data) = whisper::npy::read_f32(&data().join(format!("features/{id}.npy"))).unwrap();
            Mel { n_mels: shape[0], n_frames: shape[1], data }.window(0, N_FRAMES).pad_or_trim(N_FRAMES)
        })
        .collect();
    model.encode_batch(&mels).unwrap()
}

/// Options per clip: greedy, beam 5, and greedy with fallback to sampling, mixed.
fn options(model: &Whisper, i: usize) -> Arc<WindowOptions> {
    let tr = Transcriber::new(model).unwrap();
    let mut o = TranscribeOptions { beam_size: if i % 3 == 1 { 5 } else { 1 }, ..Default::default() };
    if i % 3 == 0 {
        o.temperatures = vec![0.0];
    } else if i % 3 == 2 {
        // A log-prob threshold no decoding passes forces the whole fallback ladder.
        o.log_prob_threshold = Some(-0.0001);
        o.no_speech_threshold = None;
    }
    Arc::new(tr.window_options(&o))
}

fn prompt(model: &Whisper) -> Vec<u32> {
    model.tokenizer.sot_sequence(Some("en"), whisper::tokenizer::Task::Transcribe).unwrap()
}

fn alone(model: &Whisper, audio: &[Vec<f32>]) -> Vec<WindowResult> {
    let mut cache = model.new_kv_cache(1);
    audio
        .iter()
        .enumerate()
        .map(|(i, a)| decode_window(model, &model.cross_kv(a), &mut cache, prompt(model), options(model, i)).unwrap())
        .collect()
}

fn same(a: &WindowResult, b: &WindowResult, what: &str) {
    assert_eq!(a.generation.tokens, b.generation.tokens, "{what}: tokens differ");
    assert_eq!(a.generation.sum_logprob.to_bits(), b.generation.sum_logprob.to_bits(), "{what}: log-prob differs");
    let bits = |g: &whisper::decode::Generation| g.token_logprobs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.generation), bits(&b.generation), "{what}: token log-probs differ");
    assert_eq!(a.generation.no_speech_prob.to_bits(), b.generation.no_speech_prob.to_bits(), "{what}: no-speech probability differs");
    assert_eq!(a.temperature, b.temperature, "{what}: temperature differs");
}

#[test]
fn batched_f32_equals_alone_with_joins_and_leaves() {
    let Some(model) = load() else { return };
    let audio = encoded(&model);
    let reference = alone(&model, &audio);
    // Capacity 3 for 8 windows: windows join as others leave, mid-flight.
    for capacity in [3, 8] {
        let mut batch = ContinuousBatch::new(&model, capacity);
        let mut results: Vec<Option<WindowResult>> = vec![None; audio.len()];
        let (mut next, mut max_seen, mut joined_mid_flight) = (0, 0, false);
        let mut steps = 0;
        while results.iter().any(Option::is_none) {
            while batch.has_room() && next < audio.len() {
                joined_mid_flight |= !batch.is_empty() && steps > 0;
                batch.join(next, &audio[next], prompt(&model), options(&model, next)).map_err(|(_, e)| e).unwrap();
                next += 1;
            }
            max_seen = max_seen.max(batch.len());
            for (i, r) in batch.step() {
                assert!(results[i].is_none());
                results[i] = Some(r.unwrap());
            }
            steps += 1;
            assert!(steps < 20_000, "the batch does not finish");
        }
        assert_eq!(max_seen, capacity.min(audio.len()));
        assert!(capacity == 8 || joined_mid_flight, "no window joined while others were decoding");
        for (i, (r, want)) in results.iter().zip(&reference).enumerate() {
            same(r.as_ref().unwrap(), want, &format!("capacity {capacity}, clip {}", CLIPS[i]));
        }
        // The forced fallback really ran (windows 2 and 5 end at the last temperature).
        assert_eq!(results[2].as_ref().unwrap().temperature, 1.0);
    }
}

#[test]
fn spare_caches_stay_bounded_while_prompts_grow() {
    // A long recording in the server: each window is prompted with the text before it, so its
    // cache needs more positions than the last one's; outgrown caches must not pile up.
    let Some(model) = load() else { return };
    let audio = encoded(&model);
    let mut batch = ContinuousBatch::new(&model, 2);
    for (k, a) in audio.iter().enumerate() {
        let mut p = vec![model.tokenizer.sot_prev];
        p.extend((0..20 * k as u32).map(|t| 400 + t % 50));
        p.extend(prompt(&model));
        batch.join(k, a, p, options(&model, 0)).map_err(|(_, e)| e).unwrap();
        while !batch.is_empty() {
            for (_, r) in batch.step() {
                r.unwrap();
            }
        }
        assert!(batch.spare_caches() <= 2, "window {k}: {} spare caches kept", batch.spare_caches());
    }
}

#[test]
fn a_failing_window_leaves_the_others_alone() {
    let Some(model) = load() else { return };
    let audio = encoded(&model);
    let reference = alone(&model, &audio[..2]);
    let mut batch = ContinuousBatch::new(&model, 4);
    batch.join(0, &audio[0], prompt(&model), options(&model, 0)).map_err(|(_, e)| e).unwrap();
    // A prompt token outside the vocabulary and a prompt with no start of transcript.
    let bad = vec![model.tokenizer.sot, model.dims.n_vocab as u32 + 7];
    let (tag, err) = batch.join(9, &audio[1], bad, options(&model, 0)).unwrap_err();
    assert_eq!(tag, 9);
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let (_, err) = batch.join(8, &audio[1], vec![220, 221], options(&model, 0)).unwrap_err();
    assert!(err.to_string().contains("start-of-transcript"), "{err}");
    batch.join(1, &audio[1], prompt(&model), options(&model, 1)).map_err(|(_, e)| e).unwrap();
    assert_eq!(batch.len(), 2);
    let mut got: Vec<Option<WindowResult>> = vec![None, None];
    while !batch.is_empty() {
        for (i, r) in batch.step() {
            got[i] = Some(r.unwrap());
        }
    }
    same(got[0].as_ref().unwrap(), &reference[0], "window 0");
    same(got[1].as_ref().unwrap(), &reference[1], "window 1");
}

#[test]
fn batched_pipeline_gives_the_sequential_text_on_single_window_clips() {
    let Some(model) = load() else { return };
    let tr = Transcriber::new(&model).unwrap();
    let opts = TranscribeOptions { beam_size: 1, language: Some("en".into()), ..Default::default() };
    let mut compared = 0;
    for id in CLIPS {
        let path = data().join("audio");
        let tsv = std::fs::read_to_string(path.join("clips.tsv")).unwrap();
        let rel = tsv.lines().find(|l| l.split('\t').next() == Some(id)).unwrap().split('\t').nth(1).unwrap().to_string();
        let samples = whisper::audio::load_audio(&path.join(rel)).unwrap();
        let seq = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
        if seq.segments.iter().any(|s| s.seek != 0) || samples.len() >= 16_000 * 30 {
            continue; // the sequential loop sought into a second window
        }
        let windows = fixed_windows(samples.len());
        let mut read = |r: std::ops::Range<usize>| Ok(samples[r].to_vec());
        let input = BatchInput { read: &mut read, timeline: None, duration: seq.duration };
        let mut streamed = 0;
        let bat = tr.transcribe_batched(&windows, input, &opts, 4, &mut |_| streamed += 1).unwrap();
        assert_eq!(bat.text(), seq.text(), "{id}");
        assert_eq!(streamed, bat.segments.len());
        let ends = |t: &whisper::transcribe::Transcript| t.segments.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>();
        assert_eq!(ends(&bat), ends(&seq), "{id}");
        compared += 1;
    }
    assert!(compared >= 4, "only {compared} clips compared");
}

#[test]
fn batch_size_out_of_range_is_refused() {
    let Some(model) = load() else { return };
    let tr = Transcriber::new(&model).unwrap();
    for bs in [0, 65] {
        let mut read = |_r: std::ops::Range<usize>| Ok(vec![0.0; 10]);
        let input = BatchInput { read: &mut read, timeline: None, duration: 1.0 };
        let err = tr.transcribe_batched(&fixed_windows(16_000), input, &TranscribeOptions::default(), bs, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("between 1 and 64"), "{err}");
    }
}

/// Multilingual models (base: RUN_SLOW_TESTS): detecting the language on the first window as
/// transcribed gives the same language and text as faster-whisper's detection window.
#[test]
fn language_detection_on_the_first_window_keeps_the_text() {
    let Some(dir) = whisper::testing::model_dir("base") else { return };
    let model = Whisper::load(&dir, Box::new(Cpu::new(WeightType::F32))).unwrap();
    let tr = Transcriber::new(&model).unwrap();
    for id in ["librivox_0880", "s01", "arctic_a0007"] {
        let tsv = std::fs::read_to_string(data().join("audio/clips.tsv")).unwrap();
        let rel = tsv.lines().find(|l| l.split('\t').next() == Some(id)).unwrap().split('\t').nth(1).unwrap().to_string();
        let samples = whisper::audio::load_audio(&data().join("audio").join(rel)).unwrap();
        let exact = tr.transcribe(&samples, &TranscribeOptions { beam_size: 1, ..Default::default() }, &mut |_| {}).unwrap();
        let opts = TranscribeOptions { beam_size: 1, detect_on_first_window: true, ..Default::default() };
        let fast = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
        assert_eq!(fast.language, exact.language, "{id}");
        assert!((fast.language_probability - exact.language_probability).abs() < 0.05, "{id}");
        assert_eq!(fast.text(), exact.text(), "{id}");
    }
}
