//! `--clip-timestamps` / `--prefix` through the binary and `clip_timestamps` / `prefix` on the
//! server's `/transcribe`: faster-whisper 1.2.1's segments (testdata/clip_prefix/goldens.json,
//! f32, temperature 0), the batched pipeline's clip windows, and clear errors for bad values.


mod server_support;

use server_support::{Form, Server};

use server_support::{run, testdata, tiny};

fn golden(name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(testdata().join("clip_prefix/goldens.json")).unwrap()).unwrap();
    v["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no golden {name}")).clone()
}

/// Asserts that verbose_json `segments` are the golden's (text and tokens exact, times to the
/// millisecond verbose_json keeps).
fn assert_segments(what: &str, got: &serde_json::Value, case: &serde_json::Value) {
    let got = got.as_array().unwrap_or_else(|| panic!("{what}: no segments"));
    let want = case["segments"].as_array().unwrap();
    let show = |s: &[serde_json::Value]| s.iter().map(|s| format!("[{}-{}]{}", s["start"], s["end"], s["text"])).collect::<Vec<_>>().join(" | ");
    assert_eq!(got.len(), want.len(), "{what}:\n  ours   {}\n  theirs {}", show(got), show(want));
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["text"], w["text"], "{what}");
        assert_eq!(g["tokens"], w["tokens"], "{what}");
        for k in ["start", "end"] {
            let (a, b) = (g[k].as_f64().unwrap(), w[k].as_f64().unwrap());
            assert!((a - b).abs() < 1e-3, "{what}: {k} {a} vs faster-whisper {b}");
        }
    }
}

#[test]
fn cli_matches_faster_whisper_with_clips_and_prefix() {
    let Some(model) = tiny() else { return };
    for (name, extra) in [
        ("clip_pair_greedy", &["--beam-size", "1", "--clip-timestamps", "2.5,9"][..]),
        ("clip_odd_beam", &["--beam-size", "5", "--clip-timestamps", "1,5.5,7"][..]),
        ("prefix_beam", &["--beam-size", "5", "--prefix", "So I said"][..]),
        ("prefix_no_timestamps_greedy", &["--beam-size", "1", "--prefix", "So I said", "--without-timestamps"][..]),
        ("prefix_clip_later_greedy", &["--beam-size", "1", "--prefix", "Hello", "--clip-timestamps", "2,9"][..]),
    ] {
        let case = golden(name);
        let file = testdata().join("audio").join(case["audio"][0].as_str().unwrap());
        let mut args = vec!["transcribe", file.to_str().unwrap(), "--model", &model, "--compute-type", "f32", "--temperature", "0", "--output-format", "verbose_json"];
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_segments(name, &v["segments"], &case);
    }
}

#[test]
fn cli_rejects_bad_clips_and_prefixes() {
    let Some(model) = tiny() else { return };
    let clip = testdata().join("audio/human/librivox_0880.wav");
    for (bad, words) in [
        (&["--clip-timestamps", "-1,2"][..], "-1 is not a time"),
        (&["--clip-timestamps", "1,x"][..], "`x` is not a number"),
        (&["--clip-timestamps", "nan"][..], "`nan` is not a number"),
        (&["--clip-timestamps", "2,2"][..], "start must be before the end"),
        (&["--clip-timestamps", "2,1"][..], "start must be before the end"),
        (&["--clip-timestamps", "0,2,1,3"][..], "must not overlap"),
        (&["--clip-timestamps", "0,2,1"][..], "must not overlap"),
        (&["--clip-timestamps", "0,2", "--vad-filter"][..], "replaces the VAD"),
        (&["--clip-timestamps", "0,2", "--batch-size", "2", "--vad-threshold", "0.4"][..], "replaces the VAD"),
        (&["--prefix", "<|endoftext|>"][..], "end-of-text"),
    ] {
        let mut args = vec!["transcribe", clip.to_str().unwrap(), "--model", &model];
        args.extend(bad);
        let o = run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad:?} accepted");
        assert!(!e.contains("panicked") && e.contains(words), "{bad:?}: {e}");
        assert!(bad[0] != "--clip-timestamps" || e.contains("--clip-timestamps"), "{bad:?}: {e}");
    }
}

/// With --batch-size > 1 the clips are the windows (no VAD is loaded): a clip longer than 30 s
/// is decoded whole in two windows, and nothing outside the clips is transcribed.
#[test]
fn batched_cli_decodes_the_clips() {
    let Some(model) = tiny() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let samples: Vec<f32> = ["tts/s11.wav", "tts/s08.wav", "tts/s03.wav"]
        .iter()
        .flat_map(|c| whisper::audio::load_audio(&testdata().join("audio").join(c)).unwrap())
        .collect();
    std::fs::write(&path, server_support::wav_bytes(&samples)).unwrap();
    let args = ["transcribe", path.to_str().unwrap(), "--model", &model, "--compute-type", "f32", "--beam-size", "1", "--batch-size", "4", "--output-format", "verbose_json", "--clip-timestamps", "1,38"];
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let segs = v["segments"].as_array().unwrap();
    assert!(segs.len() >= 4, "{v}");
    // Timestamps may reach a little into a window's padding, as in faster-whisper.
    assert!(segs.iter().all(|s| s["start"].as_f64().unwrap() >= 1.0 && s["end"].as_f64().unwrap() <= 39.0), "{v}");
    assert!(segs.iter().any(|s| s["start"].as_f64().unwrap() >= 31.0), "the second window (31-38 s) is decoded: {v}");
    let text = whisper::eval::normalize(v["text"].as_str().unwrap()).join(" ");
    assert!(text.contains("grandchildren") && text.contains("train"), "{text}");
    assert!(!text.contains("scientists"), "the first second is outside the clip: {text}");
}

#[test]
fn server_takes_clip_timestamps_and_prefix() {
    let s = Server::start(&[]);
    let post = |case: &serde_json::Value, fields: &[(&str, &str)]| {
        let file = case["audio"][0].as_str().unwrap();
        let wav = std::fs::read(testdata().join("audio").join(file)).unwrap();
        let mut f = Form::new().file("file", "a.wav", &wav).text("response_format", "verbose_json");
        for (k, v) in fields {
            f = f.text(k, v);
        }
        f.post(&s.url("/transcribe"))
    };
    for (name, fields) in [
        ("clip_pair_greedy", &[("beam_size", "1"), ("clip_timestamps", "2.5,9")][..]),
        ("clip_pair_beam", &[("beam_size", "5"), ("clip_timestamps", "[2.5, 9]")][..]),
        ("prefix_greedy", &[("beam_size", "1"), ("prefix", "So I said")][..]),
        ("prefix_beam", &[("beam_size", "5"), ("prefix", "So I said")][..]),
    ] {
        let case = golden(name);
        let r = post(&case, fields);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_segments(name, &r.json()["segments"], &case);
    }
    let case = golden("prefix_greedy");
    for (fields, words) in [
        (&[("clip_timestamps", "1,x")][..], "`x` is not a number"),
        (&[("clip_timestamps", "-2")][..], "-2 is not a time"),
        (&[("clip_timestamps", "3,1")][..], "start must be before the end"),
        (&[("clip_timestamps", "0,2,1,3")][..], "must not overlap"),
        (&[("clip_timestamps", "0,2"), ("vad_filter", "true")][..], "replaces the VAD"),
        (&[("prefix", "a<|endoftext|>")][..], "end-of-text"),
    ] {
        let r = post(&case, fields);
        assert_eq!(r.status, 400, "{fields:?}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["param"], fields[0].0, "{v}");
        let msg = r.error_message();
        assert!(msg.contains(words), "{fields:?}: `{msg}` does not mention `{words}`");
    }
}
