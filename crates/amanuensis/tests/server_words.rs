//! Words, log-probabilities and OpenAI's answer shapes through the real server: word timestamps
//! of requests decoded together in the continuous batch equal faster-whisper's (the goldens of
//! `testdata/words`), OpenAI's `timestamp_granularities[]` / `include[]=logprobs` / `usage` /
//! language names, streamed words and log-probs, words on the upload's timeline with the VAD,
//! and `--model-alias`.

mod server_support;

use std::collections::BTreeMap;

use serde_json::Value;
use server_support::{get, testdata, wav_bytes, Form, Server};

/// A word: text, start, end, probability.
type W = (String, f64, f64, f64);

/// faster-whisper 1.2.1's words (tiny.en, float32, sequential, beam 1) by clip id, with the
/// clip's audio file.
fn golden_words() -> BTreeMap<String, (String, Vec<W>)> {
    let text = std::fs::read_to_string(testdata().join("words/goldens.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let run = g["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "tiny.en" && r["compute_type"] == "float32" && r["mode"] == "sequential")
        .unwrap();
    run["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let words = c["segments"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["words"].as_array().unwrap().iter())
                .map(|w| (w["word"].as_str().unwrap().to_string(), w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap(), w["probability"].as_f64().unwrap()))
                .collect();
            (c["id"].as_str().unwrap().to_string(), (c["audio"].as_str().unwrap().to_string(), words))
        })
        .collect()
}

fn words_of(segments: &Value) -> Vec<W> {
    segments
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap_or_else(|| panic!("a segment without words: {s}")).iter())
        .map(|w| (w["word"].as_str().unwrap().to_string(), w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap(), w["probability"].as_f64().unwrap()))
        .collect()
}

#[test]
fn words_of_batched_requests_match_faster_whisper() {
    let s = Server::start(&[]);
    let goldens = golden_words();
    // Every clip at once: their windows share the decoder passes and are aligned as they finish.
    let answers: Vec<(String, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = goldens
            .iter()
            .map(|(id, (audio, _))| {
                let s = &s;
                scope.spawn(move || {
                    let r = Form::new().clip(audio).text("beam_size", "1").text("word_timestamps", "true").post(&s.url("/transcribe"));
                    assert_eq!(r.status, 200, "{id}: {}", r.body);
                    (id.clone(), r.json())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (mut total, mut within) = (0, 0);
    for (id, v) in &answers {
        let want = &goldens[id].1;
        let got = words_of(&v["segments"]);
        let texts = |w: &[W]| w.iter().map(|w| w.0.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&got), texts(want), "{id}: the words differ from faster-whisper's");
        for (g, w) in got.iter().zip(want) {
            total += 1;
            within += usize::from((g.1 - w.1).abs() <= 0.02 + 1e-9 && (g.2 - w.2).abs() <= 0.02 + 1e-9);
            assert!((g.3 - w.3).abs() < 0.02, "{id}: `{}` probability {} vs faster-whisper's {}", g.0, g.3, w.3);
        }
        let seg = &v["segments"][0];
        assert_eq!(seg["start"].as_f64().unwrap(), got[0].1, "{id}: the segment starts with its first word");
    }
    assert!(total >= 150, "{total} words");
    assert!(within * 100 >= total * 95, "{within} of {total} words within 20 ms of faster-whisper");
}

#[test]
fn openai_shapes_words_segments_logprobs_usage() {
    let s = Server::start(&["--model-alias", "gpt-4o-transcribe", "--model-alias", "my-whisper"]);
    let url = s.url("/v1/audio/transcriptions");
    let clip = "audio/tts/s03.wav";
    let native = Form::new().clip(clip).text("word_timestamps", "true").post(&s.url("/transcribe")).json();
    let native_words = words_of(&native["segments"]);
    let post = |fields: &[(&str, &str)]| {
        let mut f = Form::new().clip(clip).text("model", "gpt-4o-transcribe");
        for (k, v) in fields {
            f = f.text(k, v);
        }
        let r = f.post(&url);
        assert_eq!(r.status, 200, "{fields:?}: {}", r.body);
        r.json()
    };
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    // Only words: OpenAI leaves the segments out.
    let w = post(&[("response_format", "verbose_json"), ("timestamp_granularities[]", "word")]);
    assert_eq!(keys(&w), ["duration", "language", "task", "text", "usage", "words"], "{w}");
    assert_eq!(w["language"], "english");
    assert_eq!(w["usage"], serde_json::json!({ "type": "duration", "seconds": 10 }), "9.33 s of audio, rounded up");
    let words = w["words"].as_array().unwrap();
    assert_eq!(words.len(), native_words.len());
    for (a, b) in words.iter().zip(&native_words) {
        assert_eq!(keys(a), ["end", "start", "word"]);
        assert_eq!(a["word"], b.0.trim());
        assert_eq!((a["start"].as_f64().unwrap(), a["end"].as_f64().unwrap()), (b.1, b.2));
    }
    // Both: segments in OpenAI's field set (no words inside), words at the top.
    let both = post(&[("response_format", "verbose_json"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")]);
    assert_eq!(both["words"], w["words"]);
    let segs = both["segments"].as_array().unwrap();
    assert_eq!(segs.len(), native["segments"].as_array().unwrap().len());
    assert_eq!(keys(&segs[0]), ["avg_logprob", "compression_ratio", "end", "id", "no_speech_prob", "seek", "start", "temperature", "text", "tokens"]);
    // Segments only (or nothing asked): no words.
    let plain = post(&[("response_format", "verbose_json"), ("timestamp_granularities[]", "segment")]);
    assert!(plain.get("words").is_none() && plain["segments"].is_array(), "{plain}");
    // json: text and usage; with include[]=logprobs, one per text token of the segments.
    let j = post(&[]);
    assert_eq!(keys(&j), ["text", "usage"], "{j}");
    let lp = post(&[("include[]", "logprobs")]);
    let logprobs = lp["logprobs"].as_array().unwrap();
    let eot = 50256;
    let text_tokens: Vec<u64> = segs.iter().flat_map(|s| s["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap())).filter(|&t| t < eot).collect();
    assert_eq!(logprobs.len(), text_tokens.len());
    let mut bytes = Vec::new();
    for l in logprobs {
        assert_eq!(keys(l), ["bytes", "logprob", "token"]);
        let x = l["logprob"].as_f64().unwrap();
        assert!(x <= 0.0 && x > -30.0, "{l}");
        let b: Vec<u8> = l["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
        assert_eq!(l["token"].as_str().unwrap().as_bytes(), &b[..]);
        bytes.extend(b);
    }
    assert_eq!(String::from_utf8(bytes).unwrap().trim(), lp["text"].as_str().unwrap());
    // Aliases are listed and accepted; others are not.
    let ids: Vec<String> = get(&s.url("/v1/models")).json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["tiny.en", "whisper-1", "gpt-4o-transcribe", "my-whisper"]);
    assert_eq!(get(&s.url("/v1/models/my-whisper")).status, 200);
    let r = Form::new().clip(clip).text("model", "my-whisper").post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = Form::new().clip(clip).text("model", "gpt-4o-mini-transcribe").post(&url);
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`gpt-4o-transcribe`"), "{}", r.body);
}

#[test]
fn streamed_events_carry_words_and_logprobs() {
    let s = Server::start(&[]);
    let resp = Form::new()
        .clip("audio/tts/s03.wav")
        .text("stream", "true")
        .text("response_format", "verbose_json")
        .text("timestamp_granularities[]", "word")
        .text("include[]", "logprobs")
        .post_streaming(&s.url("/v1/audio/transcriptions"));
    assert_eq!(resp.status(), 200);
    let body = resp.into_string().unwrap();
    let events: Vec<Value> = body.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| serde_json::from_str(d.trim()).unwrap()).collect();
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{body}");
    assert!(!deltas.is_empty());
    let mut n = 0;
    for d in deltas {
        assert!(!d["segment"]["words"].as_array().unwrap().is_empty(), "{d}");
        let lps = d["logprobs"].as_array().unwrap();
        let text: Vec<u8> = lps.iter().flat_map(|l| l["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8)).collect();
        assert_eq!(String::from_utf8(text).unwrap(), d["delta"].as_str().unwrap());
        n += lps.len();
    }
    assert_eq!(done["logprobs"].as_array().unwrap().len(), n);
    assert!(done["language_probability"].is_number());
    // Native verbose_json: words with probabilities, and the language probability.
    let v = Form::new().clip("audio/tts/s03.wav").text("word_timestamps", "true").text("response_format", "verbose_json").post(&s.url("/transcribe")).json();
    assert!(v["segments"][0]["words"][0]["probability"].is_number(), "{v}");
    assert_eq!(v["language_probability"], 1.0);
    // hallucination_silence_threshold is accepted with word timestamps, refused without.
    let r = Form::new().clip("audio/tts/s03.wav").text("word_timestamps", "true").text("hallucination_silence_threshold", "2").post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = Form::new().clip("audio/tts/s03.wav").text("hallucination_silence_threshold", "2").post(&s.url("/transcribe"));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("word_timestamps=true"));
}

#[test]
fn words_with_the_vad_are_on_the_upload_timeline() {
    if !server_support::vad_installed() {
        return;
    }
    let s = Server::start(&[]);
    let speech = whisper::audio::load_audio(&testdata().join("audio/human/librivox_0880.wav")).unwrap();
    let mut samples = vec![0.0f32; 16_000 * 20];
    samples.extend(&speech);
    let r = Form::new().file("file", "gap.wav", &wav_bytes(&samples)).text("vad_filter", "true").text("word_timestamps", "true").post(&s.url("/transcribe"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let words = words_of(&v["segments"]);
    assert!(words.len() >= 5, "{v}");
    assert!(words[0].1 >= 19.5 && words.last().unwrap().2 <= 23.2, "{v}");
    assert!(words.windows(2).all(|w| w[0].2 <= w[1].1 + 1e-9), "{v}");
    assert_eq!(v["segments"][0]["start"].as_f64().unwrap(), words[0].1);
}
