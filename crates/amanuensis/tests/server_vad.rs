//! The server's VAD and decoding controls: `vad_filter` on `/transcribe`, OpenAI's
//! `chunking_strategy`, silence that gives no text, speech times mapped back to the upload's
//! timeline, and clear 400s for bad values.

mod server_support;

use server_support::{testdata, wav_bytes as wav, Form, Server};

const CLIP: &str = "audio/human/librivox_0880.wav";


#[test]
fn vad_on_the_server() {
    if !server_support::vad_installed() {
        return;
    }
    let s = Server::start(&["--compute-type", "f32"]);
    // 60 s of silence: no text with the VAD (Whisper alone tends to invent some).
    let silence = wav(&vec![0.0; 16_000 * 60]);
    for (path, field, value) in [("/transcribe", "vad_filter", "true"), ("/v1/audio/transcriptions", "chunking_strategy", "auto")] {
        let r = Form::new().file("file", "silence.wav", &silence).text(field, value).text("response_format", "verbose_json").post(&s.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["text"], "", "{path}: {v}");
        assert_eq!(v["segments"].as_array().map_or(0, Vec::len), 0, "{path}");
    }
    // 30 s of silence, then the clip: the segments are stamped on the upload's timeline.
    let speech = whisper::audio::load_audio(&testdata().join(CLIP)).unwrap();
    let mut samples = vec![0.0f32; 16_000 * 30];
    samples.extend(&speech);
    let body = wav(&samples);
    let strategy = r#"{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}"#;
    for (path, field, value) in [("/transcribe", "vad_filter", "true"), ("/v1/audio/transcriptions", "chunking_strategy", strategy)] {
        let r = Form::new().file("file", "gap.wav", &body).text(field, value).text("response_format", "verbose_json").post(&s.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let v = r.json();
        let segs = v["segments"].as_array().unwrap();
        assert!(!segs.is_empty(), "{path}: {v}");
        let first = segs[0]["start"].as_f64().unwrap();
        assert!((29.0..31.0).contains(&first), "{path}: first segment starts at {first}, the speech at 30 s");
        assert!(whisper::eval::normalize(v["text"].as_str().unwrap()).len() >= 5, "{path}: {v}");
    }
    // Streaming: the events carry the mapped times too.
    let resp = Form::new().file("file", "gap.wav", &body).text("vad_filter", "true").text("stream", "true").post_streaming(&s.url("/transcribe"));
    let text = resp.into_string().unwrap();
    let first_delta = text.lines().find(|l| l.contains("transcript.text.delta")).expect("a delta event");
    let ev: serde_json::Value = serde_json::from_str(first_delta.trim_start_matches("data:").trim()).unwrap();
    assert!(ev["segment"]["start"].as_f64().unwrap() >= 29.0, "{ev}");
}

#[test]
fn vad_and_decoding_controls_are_checked() {
    let s = Server::start(&[]);
    let wav = std::fs::read(testdata().join(CLIP)).unwrap();
    let form = || Form::new().file("file", "a.wav", &wav);
    for (path, field, value, words) in [
        ("/transcribe", "vad_threshold", "0.3", "vad_filter=true"),
        ("/v1/audio/transcriptions", "chunking_strategy", "sometimes", "auto"),
        ("/v1/audio/transcriptions", "chunking_strategy", r#"{"type": "semantic_vad"}"#, "server_vad"),
        ("/v1/audio/transcriptions", "chunking_strategy", r#"{"type": "server_vad", "treshold": 0.5}"#, "treshold"),
        ("/v1/audio/transcriptions", "chunking_strategy", r#"{"type": "server_vad", "threshold": 7}"#, "threshold"),
        ("/transcribe", "repetition_penalty", "-2", "repetition"),
        ("/transcribe", "no_repeat_ngram_size", "many", "no_repeat_ngram_size"),
        ("/transcribe", "suppress_tokens", "1,x", "suppress_tokens"),
        ("/transcribe", "no_speech_threshold", "inf", "no_speech_threshold"),
    ] {
        let mut f = form().text(field, value);
        if field.starts_with("vad_") && field != "vad_threshold" {
            f = f.text("vad_filter", "true");
        }
        let r = f.post(&s.url(path));
        assert_eq!(r.status, 400, "{field}={value}: {}", r.body);
        let msg = r.error_message();
        assert!(msg.contains(words), "{field}={value}: `{msg}` does not mention `{words}`");
    }
    // Valid controls are accepted.
    let r = form().text("no_repeat_ngram_size", "3").text("repetition_penalty", "1.1").text("hotwords", "Mister").post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
}
