//! Voice activity detection against faster-whisper 1.2.1 (goldens in testdata/vad/, made by
//! testdata/vad/make_goldens.py).
//!
//! The pure-logic tests always run. The model tests need Silero VAD and ONNX Runtime installed
//! (`amanuensis models pull silero-vad`): found in `$AMANUENSIS_VAD_DIR`, else
//! `$AMANUENSIS_MODELS/silero-vad`, else `~/.cache/amanuensis/models/silero-vad`. Without them
//! they are skipped, except under CI (`CI` set), where they fail.

use std::path::Path;

use serde_json::Value;
use whisper::vad::{
    file_probabilities, merge_chunks, speech_timestamps, SileroVad, SpeechChunk, SpeechTimeline,
    Vad, VadFeeder, VadOptions, CONTEXT, WINDOW,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn goldens() -> Value {
    let path = Path::new(TESTDATA).join("vad/goldens.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn options(v: &Value) -> VadOptions {
    VadOptions {
        threshold: v["threshold"].as_f64().unwrap(),
        neg_threshold: v["neg_threshold"].as_f64(),
        min_speech_duration_ms: v["min_speech_duration_ms"].as_u64().unwrap() as u32,
        max_speech_duration_s: v["max_speech_duration_s"].as_f64().unwrap_or(f64::INFINITY),
        min_silence_duration_ms: v["min_silence_duration_ms"].as_u64().unwrap() as u32,
        speech_pad_ms: v["speech_pad_ms"].as_u64().unwrap() as u32,
    }
}

fn option_sets(g: &Value) -> Vec<(String, VadOptions)> {
    g["options"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), options(v)))
        .collect()
}

fn chunks(v: &Value) -> Vec<SpeechChunk> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| SpeechChunk {
            start: p[0].as_u64().unwrap() as usize,
            end: p[1].as_u64().unwrap() as usize,
        })
        .collect()
}

/// Every golden entry: the clips, the synthetic signals and the long file.
fn entries(g: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = g["files"].as_array().unwrap().iter().collect();
    all.extend(g["synthetic"].as_array().unwrap());
    if !g["long"].is_null() {
        all.push(&g["long"]);
    }
    all
}

fn golden_probs(e: &Value) -> Vec<f32> {
    let rel = e["probs"].as_str().unwrap();
    let (shape, data) = whisper::npy::read_f32(Path::new(TESTDATA).join("vad").join(rel)).unwrap();
    assert_eq!(shape, [data.len()]);
    data
}

// ---------------------------------------------------------------------------------------------
// Pure logic
// ---------------------------------------------------------------------------------------------

#[test]
fn golden_probabilities_give_golden_timestamps() {
    let g = goldens();
    let sets = option_sets(&g);
    let mut checked = 0;
    for e in entries(&g) {
        let probs = golden_probs(e);
        let n = e["n_samples"].as_u64().unwrap() as usize;
        assert_eq!(probs.len(), n / WINDOW + 1, "{}", e["id"]);
        for (name, opts) in &sets {
            opts.validate().unwrap();
            let ours = speech_timestamps(&probs, n, opts);
            let theirs = chunks(&e["timestamps"][name]);
            assert_eq!(ours, theirs, "{} with {name} options", e["id"]);
            checked += 1;
        }
    }
    assert!(checked >= 3 * 24, "{checked}");
}

#[test]
fn defaults_are_faster_whispers() {
    let g = goldens();
    assert_eq!(VadOptions::default(), options(&g["options"]["default"]));
    assert_eq!(VadOptions::batched(30.0), options(&g["options"]["batched"]));
    assert_eq!(VadOptions::default().neg_threshold(), 0.35);
    let low = VadOptions {
        threshold: 0.1,
        ..Default::default()
    };
    assert_eq!(low.neg_threshold(), 0.01);
}

#[test]
fn options_validation() {
    VadOptions::default().validate().unwrap();
    VadOptions::batched(30.0).validate().unwrap();
    let err = |o: VadOptions| o.validate().unwrap_err().to_string();
    let d = VadOptions::default;
    let e = err(VadOptions {
        threshold: 1.5,
        ..d()
    });
    assert!(
        e.contains("threshold = 1.5") && e.contains("between 0 and 1"),
        "{e}"
    );
    let e = err(VadOptions {
        threshold: f64::NAN,
        ..d()
    });
    assert!(e.contains("threshold"), "{e}");
    let e = err(VadOptions {
        neg_threshold: Some(-0.1),
        ..d()
    });
    assert!(e.contains("neg_threshold = -0.1"), "{e}");
    let e = err(VadOptions {
        neg_threshold: Some(0.7),
        ..d()
    });
    assert!(e.contains("above threshold"), "{e}");
    let e = err(VadOptions {
        max_speech_duration_s: 0.0,
        ..d()
    });
    assert!(e.contains("max_speech_duration_s = 0"), "{e}");
    let e = err(VadOptions {
        max_speech_duration_s: f64::NAN,
        ..d()
    });
    assert!(e.contains("max_speech_duration_s"), "{e}");
    let e = err(VadOptions {
        max_speech_duration_s: 0.8,
        ..d()
    });
    assert!(
        e.contains("too short") && e.contains("speech_pad_ms = 400"),
        "{e}"
    );
    VadOptions {
        max_speech_duration_s: 0.9,
        ..d()
    }
    .validate()
    .unwrap();
    let e = err(VadOptions {
        speech_pad_ms: u32::MAX,
        ..d()
    });
    assert!(e.contains("speech_pad_ms"), "{e}");
}

#[test]
fn timestamps_edge_cases() {
    let opts = VadOptions::default();
    assert!(speech_timestamps(&[], 0, &opts).is_empty());
    assert!(speech_timestamps(&[0.0; 100], 51_000, &opts).is_empty());
    // All speech: one chunk over the whole file.
    assert_eq!(
        speech_timestamps(&[0.9; 100], 51_000, &opts),
        [SpeechChunk {
            start: 0,
            end: 51_000
        }]
    );
    // Speech that starts mid-file is padded by 400 ms, clamped to the file.
    let mut p = vec![0.0f32; 100];
    p[50..].fill(0.9);
    assert_eq!(
        speech_timestamps(&p, 51_000, &opts),
        [SpeechChunk {
            start: 50 * 512 - 6400,
            end: 51_000
        }]
    );
    // Thresholds compare in f32: a probability equal to f32(0.35) is not below neg_threshold.
    let mut p = vec![0.9f32; 200];
    p[50..].fill(0.35);
    assert_eq!(speech_timestamps(&p, 200 * 512, &opts).len(), 1);
    assert_eq!(speech_timestamps(&p, 200 * 512, &opts)[0].end, 200 * 512);
    // Forced split when there is no silence at all.
    let o = VadOptions {
        max_speech_duration_s: 2.0,
        speech_pad_ms: 0,
        ..Default::default()
    };
    let got = speech_timestamps(&[0.9; 200], 200 * 512, &o);
    assert!(
        got.len() > 1 && got.iter().all(|c| c.len() <= 32_000),
        "{got:?}"
    );
}

fn check_map(v: &Value) {
    let timeline = SpeechTimeline::new(&chunks(&v["chunks"]));
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() > 100);
    for c in cases {
        let t = c["time"].as_f64().unwrap();
        let want = c["original"].as_f64().unwrap();
        let got = if let Some(i) = c["chunk_index"].as_u64() {
            assert_eq!(timeline.chunk_index(t, false), i as usize, "{c}");
            timeline.original_time(t, Some(i as usize), false)
        } else {
            timeline.original_time(t, None, c["is_end"].as_bool().unwrap())
        };
        assert_eq!(got, want, "{c}");
    }
}

#[test]
fn timeline_matches_speech_timestamps_map() {
    let g = goldens();
    check_map(&g["gap_map"]);
    if !g["long_map"].is_null() {
        check_map(&g["long_map"]);
    }
    // Hand-made: chunks 1..2 s and 4..5 s; speech time 1.5 s is 0.5 s into the second chunk.
    let t = SpeechTimeline::new(&[
        SpeechChunk {
            start: 16_000,
            end: 32_000,
        },
        SpeechChunk {
            start: 64_000,
            end: 80_000,
        },
    ]);
    assert_eq!(t.original_time(0.5, None, false), 1.5);
    assert_eq!(t.original_time(1.5, None, false), 4.5);
    // Exactly at the end of the first chunk: the next chunk, unless it is an end time.
    assert_eq!(t.original_time(1.0, None, false), 4.0);
    assert_eq!(t.original_time(1.0, None, true), 2.0);
    // Past the end: the last chunk.
    assert_eq!(t.original_time(9.0, None, false), 12.0);
    assert_eq!(
        SpeechTimeline::new(&[]).original_time(1.234, None, false),
        1.23
    );
}

fn check_windows(v: &Value) {
    let max = v["max_duration_s"].as_f64().unwrap();
    let input = chunks(&v["chunks"]);
    let ours = merge_chunks(&input, max);
    let theirs = v["windows"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    let mut all = Vec::new();
    for (k, (w, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            w.offset_secs(),
            t["offset_s"].as_f64().unwrap(),
            "window {k}"
        );
        assert_eq!(
            w.duration_secs(),
            t["duration_s"].as_f64().unwrap(),
            "window {k}"
        );
        assert_eq!(
            w.duration,
            t["n_samples"].as_u64().unwrap() as usize,
            "window {k}"
        );
        assert_eq!(w.duration, w.chunks.iter().map(|c| c.len()).sum::<usize>());
        assert_eq!(
            (w.start, w.end),
            (w.chunks[0].start, w.chunks.last().unwrap().end)
        );
        // faster-whisper's `segments` leave out the chunk that opened each later window.
        let skip = usize::from(k > 0);
        assert_eq!(w.chunks[skip..], chunks(&t["segments"])[..], "window {k}");
        assert!(w.duration as f64 <= max * 16_000.0 || w.chunks.len() == 1);
        all.extend_from_slice(&w.chunks);
    }
    assert_eq!(all, input);
}

#[test]
fn merge_matches_collect_chunks() {
    let g = goldens();
    check_windows(&g["gap_windows"]);
    if !g["long_windows"].is_null() {
        check_windows(&g["long_windows"]);
        assert!(g["long_windows"]["windows"].as_array().unwrap().len() > 10);
    }
    assert!(merge_chunks(&[], 30.0).is_empty());
}

/// A fake detector: each window's "probability" is a hash of its samples and of everything
/// before, so any slip in feeding shows; it records the windows it saw.
#[derive(Default)]
struct Recorder {
    state: f32,
    windows: Vec<Vec<f32>>,
}

impl Vad for Recorder {
    fn reset(&mut self) {
        self.state = 0.0;
        self.windows.clear();
    }
    fn probabilities(&mut self, samples: &[f32]) -> whisper::Result<Vec<f32>> {
        assert_eq!(samples.len() % WINDOW, 0);
        Ok(samples
            .chunks(WINDOW)
            .map(|w| {
                self.windows.push(w.to_vec());
                self.state = (self.state * 0.5
                    + w.iter().enumerate().map(|(i, x)| x * i as f32).sum::<f32>())
                .fract();
                self.state
            })
            .collect())
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 + 0.001)
        .collect()
}

#[test]
fn feeder_pads_like_faster_whisper_and_blocks_do_not_matter() {
    for n in [
        0,
        1,
        100,
        448,
        449,
        511,
        512,
        513,
        5 * 512,
        5 * 512 + 460,
        12_345,
    ] {
        let audio = ramp(n);
        let mut whole = Recorder::default();
        let probs = file_probabilities(&mut whole, &audio).unwrap();
        assert_eq!(probs.len(), n / WINDOW + 1, "n = {n}");
        // The padded audio, with the last 64 samples of the last window zeroed.
        let mut padded = audio.clone();
        padded.resize((n / WINDOW + 1) * WINDOW, 0.0);
        let len = padded.len();
        padded[len - CONTEXT..].fill(0.0);
        assert_eq!(whole.windows.concat(), padded, "n = {n}");
        for block in [1, 7, 512, 1000, 4096] {
            let mut fed = Recorder::default();
            let mut feeder = VadFeeder::new(&mut fed);
            for b in audio.chunks(block) {
                feeder.push(b).unwrap();
            }
            let (p, count) = feeder.finish().unwrap();
            assert_eq!(count, n);
            assert_eq!(p, probs, "n = {n}, block {block}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

fn load() -> Option<SileroVad> {
    let (model, runtime) = whisper::testing::vad_files()?;
    Some(SileroVad::load(&model, &runtime).unwrap())
}

fn clip(rel: &str) -> Vec<f32> {
    whisper::audio::load_audio(&Path::new(TESTDATA).join(rel)).unwrap()
}

/// The synthetic signals of make_goldens.py, rebuilt here.
fn synthetic(id: &str) -> Vec<f32> {
    const N60: usize = 60 * 16_000;
    match id {
        "silence_60s" => vec![0.0; N60],
        "noise_60s" => {
            let (amplitude, mut state) = (64u64, 12345u64);
            (0..N60)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % (2 * amplitude + 1)) as f32 - amplitude as f32
                })
                .map(|v| v / 32768.0)
                .collect()
        }
        "speech_gap_speech" => {
            let mut a = clip("audio/human/librivox_0880.wav");
            a.resize(a.len() + 20 * 16_000 + 300, 0.0);
            a.extend(clip("audio/human/arctic_a0007.wav"));
            a
        }
        _ => panic!("unknown synthetic signal {id}"),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check_against_golden(
    vad: &mut SileroVad,
    e: &Value,
    audio: &[f32],
    sets: &[(String, VadOptions)],
) -> f32 {
    let id = e["id"].as_str().unwrap();
    assert_eq!(
        audio.len(),
        e["n_samples"].as_u64().unwrap() as usize,
        "{id}"
    );
    let ours = file_probabilities(&mut *vad, audio).unwrap();
    let diff = max_diff(&ours, &golden_probs(e));
    assert!(diff < 1e-4, "{id}: probabilities differ by {diff}");
    for (name, opts) in sets {
        assert_eq!(
            speech_timestamps(&ours, audio.len(), opts),
            chunks(&e["timestamps"][name]),
            "{id} with {name} options"
        );
    }
    diff
}

#[test]
fn model_matches_faster_whisper() {
    let Some(mut vad) = load() else { return };
    let g = goldens();
    let sets = option_sets(&g);
    let mut worst = 0f32;
    let mut files = 0;
    for e in g["files"].as_array().unwrap() {
        let audio = clip(e["source"].as_str().unwrap());
        worst = worst.max(check_against_golden(&mut vad, e, &audio, &sets));
        files += 1;
    }
    for e in g["synthetic"].as_array().unwrap() {
        let audio = synthetic(e["id"].as_str().unwrap());
        worst = worst.max(check_against_golden(&mut vad, e, &audio, &sets));
        files += 1;
    }
    eprintln!("{files} files: timestamps equal, largest probability difference {worst:e}");
}

#[test]
fn silence_and_noise_have_no_speech() {
    let Some(mut vad) = load() else { return };
    for id in ["silence_60s", "noise_60s"] {
        let audio = synthetic(id);
        let probs = file_probabilities(&mut vad, &audio).unwrap();
        assert!(probs.iter().all(|&p| p < 0.5), "{id}");
        for opts in [VadOptions::default(), VadOptions::batched(30.0)] {
            assert!(
                speech_timestamps(&probs, audio.len(), &opts).is_empty(),
                "{id}"
            );
        }
    }
}

#[test]
fn block_fed_equals_one_call() {
    let Some(mut vad) = load() else { return };
    let mut audio = clip("audio/tts/s11.wav");
    audio.truncate(audio.len() / WINDOW * WINDOW);
    vad.reset();
    let one = vad.probabilities(&audio).unwrap();
    assert_eq!(one.len(), audio.len() / WINDOW);
    for block in [1, 3, 64, 1000] {
        vad.reset();
        let mut fed = Vec::new();
        for b in audio.chunks(block * WINDOW) {
            fed.extend(vad.probabilities(b).unwrap());
        }
        assert_eq!(fed, one, "blocks of {block} windows");
    }
    // reset() starts a new stream.
    vad.reset();
    assert_eq!(vad.probabilities(&audio).unwrap(), one);
    // The feeder, with blocks that are not whole windows, equals one call on the whole file.
    let whole = file_probabilities(&mut vad, &audio).unwrap();
    let mut feeder = VadFeeder::new(&mut vad);
    for b in audio.chunks(1234) {
        feeder.push(b).unwrap();
    }
    assert_eq!(feeder.finish().unwrap().0, whole);
    // Not a whole number of windows.
    let err = vad.probabilities(&audio[..100]).unwrap_err().to_string();
    assert!(err.contains("512"), "{err}");
}

#[test]
fn bad_files_give_errors_not_panics() {
    let Some((model, runtime)) = whisper::testing::vad_files() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.onnx");
    let err = SileroVad::load(&missing, &runtime).unwrap_err().to_string();
    assert!(
        err.contains("nope.onnx") && err.contains("amanuensis models pull silero-vad"),
        "{err}"
    );
    let err = SileroVad::load(&model, &dir.path().join("libnope.so"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("libnope.so") && err.contains("amanuensis models pull silero-vad"),
        "{err}"
    );
    // A runtime that is not a shared library at all.
    let garbage_so = dir.path().join("libonnxruntime.so");
    std::fs::write(&garbage_so, b"not an ELF file").unwrap();
    let err = SileroVad::load(&model, &garbage_so)
        .unwrap_err()
        .to_string();
    eprintln!("garbage runtime: {err}");
    assert!(err.contains("libonnxruntime.so"), "{err}");
    // Corrupt models: garbage, a truncated model, an empty file, a directory.
    let bytes = std::fs::read(&model).unwrap();
    for (name, content) in [
        ("garbage.onnx", b"this is not an onnx model".to_vec()),
        ("truncated.onnx", bytes[..bytes.len() / 3].to_vec()),
        ("empty.onnx", Vec::new()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let err = SileroVad::load(&p, &runtime).unwrap_err().to_string();
        eprintln!("{name}: {err}");
        assert!(
            err.contains(name) && err.contains("not a valid Silero VAD model"),
            "{name}: {err}"
        );
    }
    let err = SileroVad::load(dir.path(), &runtime)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a file"), "{err}");
    // The good model still loads afterwards.
    SileroVad::load(&model, &runtime).unwrap();
}

/// The 10-minute long.wav of the shared folder is too big for the repository: with
/// RUN_SLOW_TESTS set, give its path in AMANUENSIS_VAD_LONG_WAV.
#[test]
fn long_file_matches_faster_whisper() {
    if !whisper::testing::slow_tests_enabled() {
        eprintln!("skipping: RUN_SLOW_TESTS is unset");
        return;
    }
    let Some(path) = std::env::var_os("AMANUENSIS_VAD_LONG_WAV").filter(|v| !v.is_empty()) else {
        eprintln!(
            "skipping: AMANUENSIS_VAD_LONG_WAV (path of shared/audio/long/long.wav) is unset"
        );
        return;
    };
    let Some(mut vad) = load() else { return };
    let g = goldens();
    let audio = whisper::audio::load_audio(Path::new(&path)).unwrap();
    let diff = check_against_golden(&mut vad, &g["long"], &audio, &option_sets(&g));
    eprintln!("long.wav: timestamps equal, largest probability difference {diff:e}");
}
