//! `amanuensis transcribe` and `amanuensis mel` end to end through the real binary: every audio
//! format, every output format, stdout hygiene, and clear errors for bad input.

use std::path::Path;


mod server_support;
use server_support::{run, testdata, tiny};

/// faster-whisper's greedy tiny.en text of librivox_0880, from the golden transcripts.
fn expected_0880() -> String {
    let path = testdata().join("transcripts/tiny.en_float32_b1.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["clips"]["librivox_0880"]["text"].as_str().unwrap().to_string()
}

#[test]
fn every_audio_format_transcribes() {
    let Some(model) = tiny() else { return };
    let dir = testdata().join("audio/formats");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected the format variants, found {files:?}");
    // Several variants share a stem (librivox_0880.flac, .ogg, .m4a), and same-stem inputs are
    // refused (their outputs would overwrite each other): each is linked under a name of its own.
    let inputs = tempfile::tempdir().unwrap();
    let files: Vec<String> = files
        .iter()
        .map(|f| {
            let name = Path::new(f).file_name().unwrap().to_string_lossy().replace('.', "_");
            let ext = Path::new(f).extension().unwrap().to_string_lossy().into_owned();
            let link = inputs.path().join(format!("{name}.{ext}"));
            std::os::unix::fs::symlink(f, &link).unwrap();
            link.display().to_string()
        })
        .collect();
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["transcribe", "--model", &model, "--beam-size", "1", "--output-dir", out.path().to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let o = run(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "transcribe failed: {stderr}");
    assert!(o.stdout.is_empty(), "with --output-dir nothing goes to stdout");
    let want = whisper::eval::normalize(&expected_0880());
    let written = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(written, files.len(), "one transcript per input");
    for f in &files {
        let stem = Path::new(f).file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(out.path().join(format!("{stem}.txt"))).unwrap();
        let got = whisper::eval::normalize(&text);
        // Clips cut to 1 s cannot hold the whole sentence; the others must give it exactly.
        if stem.contains("_1s_") {
            assert!(!got.is_empty() && want.starts_with(&got[..1]), "{stem}: {text:?}");
        } else {
            assert_eq!(got, want, "{stem}");
        }
        assert!(stderr.contains(&format!("{stem}.")), "per-file realtime line for {stem} missing: {stderr}");
    }
    assert!(stderr.contains("realtime"), "realtime factor on stderr");
}

#[test]
fn all_output_formats() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "transcribe",
        clip.to_str().unwrap(),
        "--model",
        &model,
        "--beam-size",
        "1",
        "--no-fallback",
        "--output-format",
        "all",
        "--output-dir",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |ext: &str| std::fs::read_to_string(out.path().join(format!("librivox_0880.{ext}"))).unwrap();
    let want = expected_0880();
    assert_eq!(read("txt").trim(), want);
    let json: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
    assert_eq!(json["text"], want.as_str());
    let v: serde_json::Value = serde_json::from_str(&read("verbose.json")).unwrap();
    assert_eq!(v["language"], "en");
    assert_eq!(v["task"], "transcribe");
    let seg = &v["segments"][0];
    for key in ["id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob"] {
        assert!(!seg[key].is_null(), "verbose_json segment lacks {key}: {seg}");
    }
    assert!(read("srt").starts_with("1\n00:00:00,000 --> 00:00:0"));
    assert!(read("vtt").starts_with("WEBVTT\n\n00:00:00.000 --> "));
    // Every format carries the whole transcript: its text parts, joined, are the text.
    let joined = |parts: Vec<String>| parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
    let segs = joined(v["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap().to_string()).collect());
    let cue_text = |body: String| joined(body.lines().filter(|l| !l.is_empty() && !l.contains("-->") && l.parse::<u32>().is_err() && *l != "WEBVTT").map(String::from).collect());
    let tsv = joined(read("tsv").lines().skip(1).map(|l| l.splitn(3, '\t').nth(2).unwrap().to_string()).collect());
    let lrc = joined(read("lrc").lines().filter_map(|l| l.split_once(']').map(|(_, t)| t.to_string())).collect());
    assert!(read("tsv").starts_with("start\tend\ttext\n"), "{}", read("tsv"));
    for (fmt, text) in [("verbose.json", segs), ("srt", cue_text(read("srt"))), ("vtt", cue_text(read("vtt"))), ("tsv", tsv), ("lrc", lrc)] {
        assert_eq!(text, want, "{fmt}");
    }
    // Words only when asked for.
    assert!(seg.get("words").is_none() && json.get("words").is_none());
}

/// faster-whisper's words of librivox_0880 (tiny.en, float32, greedy, sequential), from the
/// word goldens: (word, start, end).
fn expected_words_0880() -> Vec<(String, f64, f64)> {
    let path = testdata().join("words/goldens.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let run = v["runs"].as_array().unwrap().iter().find(|r| r["model"] == "tiny.en" && r["compute_type"] == "float32" && r["mode"] == "sequential").unwrap();
    let clip = run["clips"].as_array().unwrap().iter().find(|c| c["id"] == "librivox_0880").unwrap();
    let words = clip["segments"].as_array().unwrap().iter().flat_map(|s| s["words"].as_array().unwrap().clone());
    words.map(|w| (w["word"].as_str().unwrap().to_string(), w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap())).collect()
}

#[test]
fn word_timestamps_in_json_outputs() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let want = expected_words_0880();
    assert!(want.len() >= 6);
    // Sequential and batched: both give faster-whisper's words.
    for batch in ["1", "2"] {
        let out = tempfile::tempdir().unwrap();
        #[rustfmt::skip]
        let o = run(&[
            "transcribe", clip.to_str().unwrap(), "--model", &model, "--compute-type", "f32", "--beam-size", "1",
            "--no-fallback", "--word-timestamps", "--batch-size", batch, "--output-format", "all",
            "--output-dir", out.path().to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let read = |ext: &str| std::fs::read_to_string(out.path().join(format!("librivox_0880.{ext}"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&read("verbose.json")).unwrap();
        let mut all = Vec::new();
        for seg in v["segments"].as_array().unwrap() {
            let words = seg["words"].as_array().unwrap_or_else(|| panic!("batch {batch}: segment without words: {seg}"));
            for w in words {
                assert!(w["probability"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{w}");
                all.push((w["word"].as_str().unwrap().to_string(), w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap()));
            }
            // The segment spans its words.
            assert_eq!(seg["start"], words[0]["start"]);
            assert_eq!(seg["end"], words[words.len() - 1]["end"]);
        }
        assert_eq!(all.len(), want.len(), "batch {batch}: {all:?}");
        for (got, want) in all.iter().zip(&want) {
            assert_eq!(got.0, want.0);
            assert!((got.1 - want.1).abs() <= 0.020001 && (got.2 - want.2).abs() <= 0.020001, "batch {batch}: {got:?} vs {want:?}");
        }
        // `json`: the text and every word in one top-level list.
        let json: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
        let flat: Vec<&serde_json::Value> = v["segments"].as_array().unwrap().iter().flat_map(|s| s["words"].as_array().unwrap()).collect();
        assert_eq!(json["words"].as_array().unwrap().iter().collect::<Vec<_>>(), flat);
        assert_eq!(json["text"], v["text"]);
    }
}

#[test]
fn inputs_with_the_same_stem_are_refused_with_output_dir() {
    let Some(model) = tiny() else { return };
    let formats = testdata().join("audio/formats");
    let (a, b) = (formats.join("librivox_0880.flac"), formats.join("librivox_0880.ogg"));
    let out = tempfile::tempdir().unwrap();
    let o = run(&["transcribe", a.to_str().unwrap(), b.to_str().unwrap(), "--model", &model, "--output-dir", out.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "same-stem inputs accepted: {err}");
    for part in ["librivox_0880.flac", "librivox_0880.ogg", "overwrite", "rename one"] {
        assert!(err.contains(part), "error lacks {part:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn stdout_carries_only_the_result() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let o = run(&["transcribe", clip.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--output-format", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is exactly the JSON result");
    assert_eq!(v["text"], expected_0880().as_str());
}

#[test]
fn bad_inputs_fail_clearly() {
    let Some(model) = tiny() else { return };
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("noise.wav");
    std::fs::write(&garbage, b"this is not audio at all, just text pretending").unwrap();
    let o = run(&["transcribe", garbage.to_str().unwrap(), "--model", &model]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("noise.wav"), "error names the file: {err}");
    assert_eq!(err.matches("noise.wav").count(), 1, "the file is named once: {err}");

    let o = run(&["transcribe", "/nonexistent/x.wav", "--model", &model]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no such file"));

    let clip = testdata().join("audio/human/librivox_0880.wav");
    for bad in [["--beam-size", "0"], ["--beam-size", "1000"], ["--temperature", "-1"], ["--language", "klingon"]] {
        let mut args = vec!["transcribe", clip.to_str().unwrap(), "--model", &model];
        args.extend(bad);
        let o = run(&args);
        assert!(!o.status.success(), "{bad:?} accepted");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"), "{bad:?} panicked");
    }
    let o = run(&["transcribe", clip.to_str().unwrap(), "--model", &model, "--output-format", "all"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--output-dir"));
}

#[test]
fn mel_writes_faster_whisper_features() {
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mel.npy");
    let o = run(&["mel", clip.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, ours) = whisper::npy::read_f32(&out).unwrap();
    let (want_shape, theirs) = whisper::npy::read_f32(&testdata().join("features/librivox_0880.npy")).unwrap();
    assert_eq!(shape, want_shape);
    let max_err = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max_err <= 1e-4, "max abs error {max_err}");
}

#[test]
fn an_ogg_page_with_a_bad_crc_is_skipped_with_a_warning() {
    let Some(model) = tiny() else { return };
    // The last audio page of the file (byte 16313) with its checksum broken: FFmpeg skips the
    // page and goes on; so does the decoder, and the words before it are still there.
    let mut bytes = std::fs::read(testdata().join("audio/formats/librivox_0880.ogg")).unwrap();
    assert_eq!(&bytes[16313..16317], b"OggS");
    bytes[16313 + 22] ^= 0x5A;
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.ogg");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = run(&["transcribe", damaged.to_str().unwrap(), "--model", &model, "--beam-size", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("wrong checksum"), "warned: {err}");
    let got = whisper::eval::normalize(&String::from_utf8_lossy(&o.stdout));
    let want = whisper::eval::normalize(&expected_0880());
    eprintln!("damaged: {got:?}\nwhole:   {want:?}");
    // "he was not an ...": the sentence up to the lost page.
    assert!(got.len() >= 5 && got[..4] == want[..4], "{got:?} vs {want:?}");
}

#[test]
fn max_audio_secs_refuses_longer_inputs_while_decoding() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/human/librivox_0880.wav");
    let o = run(&["transcribe", clip.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--max-audio-secs", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a 3 s clip passed a 2 s limit: {err}");
    assert!(err.contains("longer than the limit of 2 s") && err.contains("cut the recording"), "{err}");
    assert_eq!(err.matches("librivox_0880.wav").count(), 1, "the file is named once: {err}");
    let o = run(&["transcribe", clip.to_str().unwrap(), "--model", &model, "--beam-size", "1", "--max-audio-secs", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
