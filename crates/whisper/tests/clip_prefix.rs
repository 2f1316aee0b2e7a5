//! `clip_timestamps` and `prefix` against faster-whisper 1.2.1 (testdata/clip_prefix/goldens.json,
//! made by testdata/clip_prefix/make_goldens.py): f32, greedy and beam search, temperature 0.
//! Every segment's text, tokens, start, end and seek must be faster-whisper's. tiny.en always;
//! the multilingual `base` cases (language detection at the first clip) with RUN_SLOW_TESTS.

use std::path::{Path, PathBuf};

use whisper::compute::{Cpu, WeightType};
use whisper::model::Whisper;
use whisper::pipeline::{clip_windows, BatchInput};
use whisper::transcribe::{Segment, TranscribeOptions, Transcriber, Transcript};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn load(name: &str) -> Option<Whisper> {
    let dir = whisper::testing::model_dir(name)?;
    Some(Whisper::load(&dir, Box::new(Cpu::new(WeightType::F32))).expect("model loads"))
}

fn goldens() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data().join("clip_prefix/goldens.json")).unwrap()).unwrap()
}

/// The case's audio: its clips concatenated (as the golden script does).
fn audio(case: &serde_json::Value) -> Vec<f32> {
    case["audio"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| whisper::audio::load_audio(&data().join("audio").join(c.as_str().unwrap())).unwrap())
        .collect()
}

/// faster-whisper's `transcribe` arguments as our options (temperature 0, as in the goldens).
fn options(case: &serde_json::Value) -> TranscribeOptions {
    let o = &case["options"];
    let mut opts = TranscribeOptions { temperatures: vec![0.0], ..Default::default() };
    if let Some(b) = o["beam_size"].as_u64() {
        opts.beam_size = b as usize;
    }
    match &o["clip_timestamps"] {
        serde_json::Value::String(s) => opts.clip_timestamps = whisper::clip::parse(s).unwrap(),
        serde_json::Value::Array(a) => opts.clip_timestamps = a.iter().map(|v| v.as_f64().unwrap()).collect(),
        _ => {}
    }
    let text = |k: &str| o[k].as_str().map(str::to_string);
    opts.prefix = text("prefix");
    opts.hotwords = text("hotwords");
    opts.initial_prompt = text("initial_prompt");
    opts.without_timestamps = o["without_timestamps"].as_bool().unwrap_or(false);
    opts
}

/// Differences between our transcript and the golden's, as readable lines.
fn differences(case: &serde_json::Value, t: &Transcript) -> Vec<String> {
    let name = case["name"].as_str().unwrap();
    let want = case["segments"].as_array().unwrap();
    let mut out = Vec::new();
    if t.language != case["language"].as_str().unwrap() {
        out.push(format!("{name}: language {} (faster-whisper {})", t.language, case["language"]));
    }
    let show = |s: &[Segment]| s.iter().map(|s| format!("[{:.2}-{:.2}]{}", s.start, s.end, s.text)).collect::<Vec<_>>().join(" | ");
    let theirs = want.iter().map(|s| format!("[{:.2}-{:.2}]{}", s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap(), s["text"].as_str().unwrap())).collect::<Vec<_>>().join(" | ");
    if t.segments.len() != want.len() {
        out.push(format!("{name}: {} segments, faster-whisper {}\n  ours:   {}\n  theirs: {theirs}", t.segments.len(), want.len(), show(&t.segments)));
        return out;
    }
    for (i, (got, want)) in t.segments.iter().zip(want).enumerate() {
        let tokens: Vec<u32> = want["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let (start, end) = (want["start"].as_f64().unwrap(), want["end"].as_f64().unwrap());
        if got.text != want["text"].as_str().unwrap()
            || got.tokens != tokens
            || (got.start - start).abs() > 1e-9
            || (got.end - end).abs() > 1e-9
            || got.seek as u64 != want["seek"].as_u64().unwrap()
        {
            out.push(format!(
                "{name} segment {i}:\n  ours:   [{}-{}] seek {} {:?} {:?}\n  theirs: [{start}-{end}] seek {} {:?} {tokens:?}",
                got.start, got.end, got.seek, got.text, got.tokens, want["seek"], want["text"]
            ));
        }
    }
    out
}

fn check(model_name: &str) {
    let Some(model) = load(model_name) else { return };
    let tr = Transcriber::new(&model).unwrap();
    let goldens = goldens();
    let mut failures = Vec::new();
    let mut n = 0;
    for case in goldens["cases"].as_array().unwrap().iter().filter(|c| c["model"] == model_name) {
        let samples = audio(case);
        let opts = options(case);
        let t = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
        failures.extend(differences(case, &t));
        if model.tokenizer.multilingual {
            // Detecting on the first window as transcribed (the server's setting, which reuses
            // that encoding) finds the same language on these clips, so the same transcript.
            let o = TranscribeOptions { detect_on_first_window: true, ..opts.clone() };
            failures.extend(differences(case, &tr.transcribe(&samples, &o, &mut |_| {}).unwrap()).into_iter().map(|d| format!("detect_on_first_window: {d}")));
        }
        n += 1;
    }
    assert!(n > 0, "no {model_name} cases in the goldens");
    assert!(failures.is_empty(), "{} of {n} {model_name} cases differ from faster-whisper:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn clip_timestamps_and_prefix_match_faster_whisper_tiny_en() {
    check("tiny.en");
}

#[test]
fn clip_timestamps_and_prefix_match_faster_whisper_base() {
    if whisper::testing::slow_tests_enabled() {
        check("base");
    }
}

/// The streamed log-mel (flat memory, what the CLI uses) gives the same result with clips.
#[test]
fn streamed_features_give_the_same_clipped_transcript() {
    let Some(model) = load("tiny.en") else { return };
    let tr = Transcriber::new(&model).unwrap();
    let goldens = goldens();
    let case = goldens["cases"].as_array().unwrap().iter().find(|c| c["name"] == "clip_long_tail_greedy").unwrap();
    let source = whisper::audio::VecSource(audio(case));
    let t = tr.transcribe_source(Box::new(source), &options(case), &mut |_| {}).unwrap();
    let diff = differences(case, &t);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// The batched pipeline decodes each clip on its own, from the clip's own audio: each clip's
/// segments are those of the clip cut out and transcribed alone (f32, no conditioning),
/// shifted to the clip's start; clips longer than 30 s become several windows; the prefix goes
/// to the first window only when it starts at 0.
#[test]
fn batched_clips_are_decoded_like_the_clips_alone() {
    let Some(model) = load("tiny.en") else { return };
    let tr = Transcriber::new(&model).unwrap();
    let goldens = goldens();
    let long = goldens["cases"].as_array().unwrap().iter().find(|c| c["name"] == "clip_long_greedy").unwrap();
    let samples = audio(long);
    let n = samples.len();
    let base = TranscribeOptions { beam_size: 1, temperatures: vec![0.0], condition_on_previous_text: false, ..Default::default() };
    for (clips, prefix) in [(vec![0.0, 4.5, 6.25, 14.0], Some("Scientists say")), (vec![2.0, 9.0, 9.5], Some("Hello")), (vec![1.0, 38.0], None)] {
        let opts = TranscribeOptions { clip_timestamps: clips.clone(), prefix: prefix.map(str::to_string), ..base.clone() };
        let windows = clip_windows(&clips, n);
        let mut read = |r: std::ops::Range<usize>| Ok(samples[r].to_vec());
        let input = BatchInput { read: &mut read, timeline: None, duration: n as f64 / 16000.0 };
        let batched = tr.transcribe_batched(&windows, input, &opts, 4, &mut |_| {}).unwrap();
        // The same windows transcribed one by one, the prefix only on a window at 0.
        let mut alone = Vec::new();
        for w in &windows {
            let r = w.pieces[0].clone();
            let at_zero = r.start == 0;
            let o = TranscribeOptions { clip_timestamps: Vec::new(), prefix: if at_zero { opts.prefix.clone() } else { None }, ..base.clone() };
            for s in tr.transcribe(&samples[r.clone()], &o, &mut |_| {}).unwrap().segments {
                alone.push((s.start + w.offset, s.end + w.offset, s.text));
            }
        }
        let got: Vec<(f64, f64, String)> = batched.segments.iter().map(|s| (s.start, s.end, s.text.clone())).collect();
        assert_eq!(got.len(), alone.len(), "{clips:?}: batched {got:?}\nalone {alone:?}");
        for (g, a) in got.iter().zip(&alone) {
            assert!((g.0 - a.0).abs() < 1e-9 && (g.1 - a.1).abs() < 1e-9 && g.2 == a.2, "{clips:?}: batched {g:?}, alone {a:?}");
        }
        if clips == [1.0, 38.0] {
            assert_eq!(windows.len(), 2, "a 37 s clip is two windows");
            assert!(batched.segments.iter().all(|s| s.start >= 1.0 && s.end <= 38.0 + 1e-9), "{got:?}");
        }
        if let Some(p) = prefix {
            assert_eq!(batched.segments[0].text.trim().starts_with(p), clips[0] == 0.0, "{clips:?}: {got:?}");
        }
    }
}

/// Clips that all lie past the end of the audio transcribe nothing (and do not fail).
#[test]
fn clips_past_the_end_give_nothing() {
    let Some(model) = load("tiny.en") else { return };
    let tr = Transcriber::new(&model).unwrap();
    let samples = whisper::audio::load_audio(&data().join("audio/human/librivox_0880.wav")).unwrap();
    for clips in [vec![100.0, 200.0], vec![3.5]] {
        let opts = TranscribeOptions { clip_timestamps: clips.clone(), beam_size: 1, ..Default::default() };
        let t = tr.transcribe(&samples, &opts, &mut |_| {}).unwrap();
        assert!(t.segments.is_empty(), "{clips:?}: {:?}", t.segments);
        let windows = clip_windows(&clips, samples.len());
        assert!(windows.is_empty(), "{clips:?}: {windows:?}");
    }
}

