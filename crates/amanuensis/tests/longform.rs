//! The long-form front end through the real binary: stdin and raw PCM, the VAD (silence and
//! noise give no text, speech is found and its times map back), the batched pipeline, bad
//! options, and flat memory on a long generated recording.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[allow(dead_code)]
mod server_support;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amanuensis"));
    c.args(args).env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str]) -> Output {
    cmd(args).output().expect("binary runs")
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn tiny() -> Option<String> {
    whisper::testing::model_dir("tiny.en").map(|d| d.display().to_string())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

fn expected_0880() -> String {
    let path = testdata().join("transcripts/tiny.en_float32_b1.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["clips"]["librivox_0880"]["text"].as_str().unwrap().to_string()
}

fn clip() -> PathBuf {
    testdata().join("audio/human/librivox_0880.wav")
}

/// A 16 kHz mono 16-bit WAV of `samples`.
fn wav(path: &Path, samples: &[f32]) {
    std::fs::write(path, server_support::wav_bytes(samples)).unwrap();
}

/// Deterministic low noise (about -50 dBFS).
fn noise(n: usize) -> Vec<f32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.006
        })
        .collect()
}

#[test]
fn stdin_and_raw_pcm_give_the_file_text() {
    let Some(model) = tiny() else { return };
    let bytes = std::fs::read(clip()).unwrap();
    let o = run_stdin(&["transcribe", "-", "--model", &model, "--beam-size", "1", "--output-format", "json"], &bytes);
    assert_eq!(json(&o)["text"], expected_0880().as_str());
    // The same samples as headerless s16le.
    let samples = whisper::audio::load_audio(&clip()).unwrap();
    let raw: Vec<u8> = samples.iter().flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes()).collect();
    let o = run_stdin(&["transcribe", "-", "--raw-s16le", "16000", "--model", &model, "--beam-size", "1", "--output-format", "json"], &raw);
    assert_eq!(json(&o)["text"], expected_0880().as_str());
    // Empty and garbage stdin: clear errors, no panic.
    for (input, words) in [(&b""[..], "no data"), (&b"definitely not audio, just some text"[..], "stdin")] {
        let o = run_stdin(&["transcribe", "-", "--model", &model], input);
        assert!(!o.status.success(), "accepted {input:?}");
        let e = stderr(&o);
        assert!(!e.contains("panicked") && e.to_lowercase().contains(words), "{e}");
    }
}

#[test]
fn vad_gives_no_text_on_silence_or_noise() {
    let Some(model) = tiny() else { return };
    if !server_support::vad_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, samples) in [("silence", vec![0.0f32; 16_000 * 60]), ("noise", noise(16_000 * 60))] {
        let f = dir.path().join(format!("{name}.wav"));
        wav(&f, &samples);
        for extra in [&["--vad-filter"][..], &["--batch-size", "4"][..]] {
            let mut args = vec!["transcribe", f.to_str().unwrap(), "--model", &model, "--output-format", "verbose_json"];
            args.extend(extra);
            let v = json(&run(&args));
            assert_eq!(v["segments"].as_array().unwrap().len(), 0, "{name} {extra:?}: {v}");
            assert_eq!(v["text"], "", "{name} {extra:?}");
        }
    }
}

#[test]
fn vad_maps_speech_back_to_the_original_timeline() {
    let Some(model) = tiny() else { return };
    if !server_support::vad_installed() {
        return;
    }
    // 40 s of silence, the clip, 50 s of silence, the clip again.
    let speech = whisper::audio::load_audio(&clip()).unwrap();
    let mut samples = vec![0.0f32; 16_000 * 40];
    samples.extend(&speech);
    samples.extend(vec![0.0f32; 16_000 * 50]);
    let second = samples.len() as f64 / 16_000.0;
    samples.extend(&speech);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gaps.wav");
    wav(&f, &samples);
    let want = whisper::eval::normalize(&expected_0880());
    let clip_secs = speech.len() as f64 / 16_000.0;
    for extra in [&["--vad-filter"][..], &["--batch-size", "4"][..]] {
        let mut args = vec!["transcribe", f.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--output-format", "verbose_json"];
        args.extend(extra);
        let v = json(&run(&args));
        let segs = v["segments"].as_array().unwrap();
        let text = whisper::eval::normalize(v["text"].as_str().unwrap());
        let twice: Vec<String> = want.iter().chain(&want).cloned().collect();
        assert_eq!(text, twice, "{extra:?}");
        assert!((v["duration"].as_f64().unwrap() - samples.len() as f64 / 16_000.0).abs() < 0.01);
        // Every segment starts and ends within (padded) speech, never in the silences (a
        // segment may span the two clips: the silence between them is removed).
        let in_speech = |t: f64| (40.0 - 0.5..=40.0 + clip_secs + 0.5).contains(&t) || (second - 0.5..=second + clip_secs + 0.5).contains(&t);
        assert!(!segs.is_empty());
        for s in segs {
            let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
            assert!(in_speech(a) && in_speech(b) && a < b, "{extra:?}: segment {a}..{b} outside the speech");
        }
    }
}

#[test]
fn long_form_options_are_checked() {
    let Some(model) = tiny() else { return };
    let c = clip();
    let c = c.to_str().unwrap();
    for (bad, words) in [
        (&["--batch-size", "0"][..], "batch-size"),
        (&["--batch-size", "65"][..], "batch-size"),
        (&["--vad-filter", "--vad-threshold", "1.5"][..], "threshold"),
        (&["--vad-filter", "--vad-speech-pad-ms", "999999999"][..], "pad"),
        (&["--vad-threshold", "0.3"][..], "--vad-filter"),
        (&["--batch-size", "4", "--vad-max-speech-s", "45"][..], "30"),
        (&["--repetition-penalty", "0"][..], "repetition penalty"),
        (&["--suppress-tokens", "abc"][..], "suppress-tokens"),
        (&["--raw-s16le", "5"][..], "raw-s16le"),
    ] {
        let mut args = vec!["transcribe", c, "--model", &model];
        args.extend(bad);
        let o = run(&args);
        assert!(!o.status.success(), "{bad:?} accepted");
        let e = stderr(&o);
        assert!(!e.contains("panicked") && e.contains(words), "{bad:?}: {e}");
    }
}

#[test]
fn hallucination_controls_change_nothing_at_their_neutral_values_and_apply_otherwise() {
    let Some(model) = tiny() else { return };
    // s03 says " the" four times.
    let c = testdata().join("audio/tts/s03.wav");
    let want = {
        let path = testdata().join("transcripts/tiny.en_float32_b1.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["clips"]["s03"]["text"].as_str().unwrap().to_string()
    };
    let base = ["transcribe", c.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--compute-type", "f32", "--output-format", "json"];
    let text = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        json(&run(&a))["text"].as_str().unwrap().to_string()
    };
    assert_eq!(text(&["--repetition-penalty", "1", "--no-repeat-ngram-size", "0"]), want);
    assert!(want.matches(" the ").count() >= 3, "{want}");
    // Banning every repeated token (1-grams) allows the token " the" once.
    let banned = text(&["--no-repeat-ngram-size", "1", "--temperature", "0"]);
    assert!(banned.matches(" the ").count() <= 1, "{banned}");
    // Banning repeated 2-grams and a strong repetition penalty change the text as well.
    assert_ne!(text(&["--repetition-penalty", "3", "--temperature", "0"]), want);
    // Suppressing the most common word-start tokens changes the text too.
    let the = text(&["--suppress-tokens", "-1,262,383", "--temperature", "0"]);
    assert!(!the.contains(" the "), "{the}");
}

/// Peak resident memory of a transcription (the binary reports it with
/// AMANUENSIS_REPORT_PEAK_RSS=1).
fn peak_rss_kb(args: &[&str]) -> u64 {
    let o = cmd(args).env("AMANUENSIS_REPORT_PEAK_RSS", "1").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    e.lines().find_map(|l| l.strip_prefix("peak_rss_kb ")).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no peak: {e}"))
}

#[test]
fn memory_stays_flat_on_a_long_recording() {
    let Some(model) = tiny() else { return };
    // Speech every 2 minutes over quiet noise: 4 minutes against 40 minutes.
    let speech = whisper::audio::load_audio(&clip()).unwrap();
    let make = |minutes: usize, path: &Path| {
        let mut s = noise(16_000 * 60 * minutes);
        for at in (0..s.len()).step_by(16_000 * 120) {
            let n = speech.len().min(s.len() - at);
            s[at..at + n].copy_from_slice(&speech[..n]);
        }
        wav(path, &s);
    };
    let dir = tempfile::tempdir().unwrap();
    let (short, long) = (dir.path().join("short.wav"), dir.path().join("long.wav"));
    make(4, &short);
    make(40, &long);
    let args = |f: &Path| vec!["transcribe".to_string(), f.display().to_string(), "--model".into(), model.clone(), "--beam-size".into(), "1".into(), "--temperature".into(), "0".into()];
    let a = args(&short);
    let b = args(&long);
    let short_kb = peak_rss_kb(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let long_kb = peak_rss_kb(&b.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("peak RSS: 4 min {short_kb} kB, 40 min {long_kb} kB");
    // The 40-minute file's samples alone (as f32) would be 150 MB.
    assert!(long_kb as f64 <= short_kb as f64 * 1.10 + 4096.0, "peak RSS grew with the length: 4 min {short_kb} kB, 40 min {long_kb} kB");
}
